//! The `opentelemetry` feature against real nats-server processes: a user's
//! OpenTelemetry pipeline (here the official SDK with its in-memory span
//! exporter, behind `tracing-opentelemetry`) sees one trace across two
//! bridges: the importer's span has the producer's trace id, and the
//! producer's span as its (remote) parent.

mod common;

use std::time::{Duration, SystemTime};

use async_nats::ConnectOptions;
use common::NatsServer;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde::{Deserialize, Serialize};
use switchboard::{Event, EventBus, TraceContext};
use switchboard_nats::{otel, Bridge, Delivery};
use tracing_subscriber::layer::SubscriberExt;

const WAIT: Duration = Duration::from_secs(20);

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(type = "order.placed")]
struct OrderPlaced {
    n: u64,
    timestamp: SystemTime,
    #[serde(skip)]
    trace: Option<TraceContext>,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone)]
#[event(type = "order.shipped")]
struct OrderShipped {
    n: u64,
    timestamp: SystemTime,
    #[serde(skip)]
    trace: Option<TraceContext>,
}

fn import_spans(exporter: &InMemorySpanExporter, provider: &SdkTracerProvider) -> Vec<SpanData> {
    provider.force_flush().unwrap();
    exporter
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .filter(|span| span.name == "switchboard_nats.import")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumers_span_has_the_producers_trace_id_and_parent_across_two_bridges() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("switchboard-test")));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let server = NatsServer::start();
    let (producer_bus, consumer_bus) = (EventBus::new(), EventBus::new());
    let _consumer = Bridge::builder(&consumer_bus)
        .name("consumer")
        .import::<OrderPlaced>("order.placed", Delivery::AtMostOnce)
        .import::<OrderShipped>("order.shipped", Delivery::AtLeastOnce)
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    let _producer = Bridge::builder(&producer_bus)
        .name("producer")
        .export::<OrderPlaced>("order.placed", Delivery::AtMostOnce)
        .export::<OrderShipped>("order.shipped", Delivery::AtLeastOnce)
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    let mut placed = consumer_bus
        .subscribe_to::<OrderPlaced>("placed", 8)
        .unwrap();
    let mut shipped = consumer_bus
        .subscribe_to::<OrderShipped>("shipped", 8)
        .unwrap();
    producer_bus.start();
    consumer_bus.start();

    // The producer builds and publishes both events within its span.
    let produce = tracing::info_span!("place order");
    let sent = produce.in_scope(|| {
        let trace = otel::current_trace_context().expect("the span is recorded");
        producer_bus.publish(OrderPlaced {
            n: 1,
            timestamp: SystemTime::now(),
            trace: Some(trace.clone()),
        });
        producer_bus.publish(OrderShipped {
            n: 1,
            timestamp: SystemTime::now(),
            trace: Some(trace.clone()),
        });
        trace
    });
    drop(produce);
    // And one without a context: no span for it.
    producer_bus.publish(OrderPlaced {
        n: 2,
        timestamp: SystemTime::now(),
        trace: None,
    });

    let placed_events = common::take(&mut placed, 2, WAIT).await;
    assert_eq!(placed_events[0].trace_context(), Some(&sent));
    assert_eq!(placed_events[1].trace_context(), None);
    let shipped_event = common::take(&mut shipped, 1, WAIT).await.remove(0);
    assert_eq!(shipped_event.trace_context(), Some(&sent));

    // The at-least-once import span ends once the event is in the bus,
    // after the subscriber may have it: wait for both spans.
    let mut spans = Vec::new();
    assert!(
        common::eventually(WAIT, || {
            spans = import_spans(&exporter, &provider);
            spans.len() >= 2
        })
        .await,
        "two import spans, got {spans:?}"
    );
    provider.force_flush().unwrap();
    let all = exporter.get_finished_spans().unwrap();
    let producer_span = all
        .iter()
        .find(|span| span.name == "place order")
        .expect("the producer's span");
    assert_eq!(
        producer_span.span_context.trace_id().to_bytes(),
        sent.trace_id()
    );
    assert_eq!(
        producer_span.span_context.span_id().to_bytes(),
        sent.parent_id()
    );
    for span in &spans {
        println!(
            "IMPORT SPAN trace {} parent {} (remote {}), producer's span {}",
            span.span_context.trace_id(),
            span.parent_span_id,
            span.parent_span_is_remote,
            producer_span.span_context.span_id()
        );
        assert_eq!(
            span.span_context.trace_id(),
            producer_span.span_context.trace_id(),
            "the consumer's span is in the producer's trace"
        );
        assert_eq!(
            span.parent_span_id,
            producer_span.span_context.span_id(),
            "its parent is the producer's span"
        );
        assert!(span.parent_span_is_remote);
    }
    assert_eq!(
        import_spans(&exporter, &provider).len(),
        2,
        "no span for the event without a context"
    );
}
