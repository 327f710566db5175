//! W3C trace context across processes, against real nats-server processes:
//! carried as the CloudEvents distributed-tracing extension in both content
//! modes and both delivery modes, given to the imported event, carried by
//! served requests and their responses; invalid input from the wire
//! ignored and counted, never a failed import.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::HeaderMap;
use common::{connect, init_tracing, NatsServer};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use switchboard::{Event, EventBus, Request, RequestOptions, Response, TraceContext};
use switchboard_nats::cloudevents::{
    ID, SOURCE, SPECVERSION, SPEC_VERSION, TRACEPARENT, TRACESTATE, TYPE,
};
use switchboard_nats::{structured, Bridge, ContentMode, Delivery};

const WAIT: Duration = Duration::from_secs(20);
const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const STATE: &str = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";

fn parent() -> TraceContext {
    TraceContext::parse(PARENT)
        .unwrap()
        .with_tracestate(STATE)
        .unwrap()
}

/// At-most-once in these tests. The trace context is not part of the data.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(type = "order.placed")]
struct OrderPlaced {
    n: u64,
    timestamp: SystemTime,
    #[serde(skip)]
    trace: Option<TraceContext>,
}

/// At-least-once in these tests.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(type = "order.shipped")]
struct OrderShipped {
    n: u64,
    timestamp: SystemTime,
    #[serde(skip)]
    trace: Option<TraceContext>,
}

#[derive(Event, Request, Serialize, Deserialize, Debug, Clone)]
#[event(type = "order.check")]
struct Check {
    request_id: String,
    timestamp: SystemTime,
    #[serde(skip)]
    trace: Option<TraceContext>,
}

#[derive(Event, Response, Serialize, Deserialize, Debug, Clone)]
#[event(type = "order.checked")]
struct Checked {
    request_id: String,
    responder: String,
    /// The trace id the responder saw on the request, as it saw it.
    seen: Option<String>,
    timestamp: SystemTime,
    #[serde(skip)]
    trace: Option<TraceContext>,
}

async fn next<T: Event>(subscription: &mut switchboard::TypedSubscription<T>) -> Arc<T> {
    common::take(subscription, 1, WAIT).await.remove(0)
}

/// An exporter in `mode` and an importer; a traced and an untraced event
/// of each delivery mode cross; a raw client sees the attributes.
async fn crosses(mode: ContentMode) {
    init_tracing();
    let server = NatsServer::start();
    let raw = async_nats::connect(server.url()).await.unwrap();
    let mut wire = raw.subscribe("sb.>").await.unwrap();
    common::registered(&raw).await;
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    // Names are unique per process: the tests run side by side.
    let label = format!("{mode:?}").to_lowercase();
    let b = connect(
        Bridge::builder(&bus_b)
            .name(format!("importer-{label}"))
            .import::<OrderPlaced>("order.placed", Delivery::AtMostOnce)
            .import::<OrderShipped>("order.shipped", Delivery::AtLeastOnce),
        &server,
    )
    .await;
    let _a = connect(
        Bridge::builder(&bus_a)
            .name(format!("exporter-{label}"))
            .content_mode(mode)
            .export::<OrderPlaced>("order.placed", Delivery::AtMostOnce)
            .export::<OrderShipped>("order.shipped", Delivery::AtLeastOnce),
        &server,
    )
    .await;
    let mut placed = bus_b.subscribe_to::<OrderPlaced>("placed", 8).unwrap();
    let mut shipped = bus_b.subscribe_to::<OrderShipped>("shipped", 8).unwrap();
    bus_a.start();
    bus_b.start();
    let untraced_only = parent().without_tracestate();
    for (n, trace) in [
        (1, Some(parent())),
        (2, None),
        (3, Some(untraced_only.clone())),
    ] {
        let timestamp = SystemTime::now();
        bus_a.publish(OrderPlaced {
            n,
            timestamp,
            trace: trace.clone(),
        });
        bus_a.publish(OrderShipped {
            n,
            timestamp,
            trace: trace.clone(),
        });
        let (p, s) = (next(&mut placed).await, next(&mut shipped).await);
        assert_eq!((p.n, s.n), (n, n));
        assert_eq!(p.trace_context(), trace.as_ref(), "at most once, event {n}");
        assert_eq!(
            s.trace_context(),
            trace.as_ref(),
            "at least once, event {n}"
        );
    }

    // What a CloudEvents consumer that knows nothing of switchboard reads.
    for _ in 0..6 {
        let message = tokio::time::timeout(WAIT, wire.next())
            .await
            .unwrap()
            .unwrap();
        let headers = message.headers.unwrap();
        let (traceparent, tracestate, n) = match mode {
            ContentMode::Binary => {
                let data: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
                (
                    headers.get(TRACEPARENT).map(|v| v.as_str().to_owned()),
                    headers.get(TRACESTATE).map(|v| v.as_str().to_owned()),
                    data["n"].as_u64().unwrap(),
                )
            }
            _ => {
                assert!(headers.get(TRACEPARENT).is_none());
                let envelope: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
                println!("STRUCTURED {envelope}");
                let text = |key: &str| envelope.get(key).map(|v| v.as_str().unwrap().to_owned());
                (
                    text("traceparent"),
                    text("tracestate"),
                    envelope["data"]["n"].as_u64().unwrap(),
                )
            }
        };
        let expected = match n {
            1 => (Some(PARENT.to_owned()), Some(STATE.to_owned())),
            2 => (None, None),
            _ => (Some(PARENT.to_owned()), None),
        };
        assert_eq!((traceparent, tracestate), expected, "event {n}");
        assert!(
            !String::from_utf8_lossy(&message.payload).contains("trace\":"),
            "the context is not in the data"
        );
    }
    let stats = b.stats();
    for event_type in ["order.placed", "order.shipped"] {
        let counts = stats.import(event_type).unwrap();
        assert_eq!((counts.imported, counts.trace_invalid), (3, 0), "{stats}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_context_crosses_as_traceparent_and_tracestate_headers_in_binary_mode() {
    crosses(ContentMode::Binary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_context_crosses_as_envelope_attributes_in_structured_mode() {
    crosses(ContentMode::Structured).await;
}

/// Trace headers sent, the context the event must get, whether counted.
type Case<'a> = (Vec<(&'a str, &'a str)>, Option<TraceContext>, bool);

fn binary_headers(id: &str, trace: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(SPECVERSION, SPEC_VERSION);
    headers.insert(ID, id);
    headers.insert(TYPE, "order.placed");
    headers.insert(SOURCE, "another-producer");
    for (name, value) in trace {
        headers.insert(*name, *value);
    }
    headers
}

fn payload(n: u64) -> bytes::Bytes {
    serde_json::to_vec(&OrderPlaced {
        n,
        timestamp: SystemTime::now(),
        trace: None,
    })
    .unwrap()
    .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_trace_context_from_the_wire_is_ignored_and_counted_never_a_failed_import() {
    init_tracing();
    let server = NatsServer::start();
    let bus = EventBus::new();
    let importer = connect(
        Bridge::builder(&bus)
            .name("invalid-importer")
            .import::<OrderPlaced>("order.placed", Delivery::AtMostOnce)
            .import::<OrderShipped>("order.shipped", Delivery::AtLeastOnce),
        &server,
    )
    .await;
    let mut placed = bus.subscribe_to::<OrderPlaced>("placed", 32).unwrap();
    let mut shipped = bus.subscribe_to::<OrderShipped>("shipped", 32).unwrap();
    bus.start();
    let raw = async_nats::connect(server.url()).await.unwrap();
    let valid = TraceContext::parse(PARENT).unwrap();
    // (trace headers, the context the event must get, whether counted)
    let zero_trace = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
    let zero_parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01";
    let upper = PARENT.to_uppercase();
    let version_ff = format!("ff{}", &PARENT[2..]);
    let cases: Vec<Case<'_>> = vec![
        (vec![(TRACEPARENT, "00-not-a-traceparent")], None, true),
        (vec![(TRACEPARENT, zero_trace)], None, true),
        (vec![(TRACEPARENT, zero_parent)], None, true),
        (vec![(TRACEPARENT, &upper)], None, true),
        (vec![(TRACEPARENT, &version_ff)], None, true),
        (
            vec![(TRACEPARENT, "garbage"), (TRACESTATE, "a=1")],
            None,
            true,
        ),
        // The W3C rule: an invalid tracestate is dropped, the traceparent kept.
        (
            vec![(TRACEPARENT, PARENT), (TRACESTATE, "Not A Key=1")],
            Some(valid.clone()),
            true,
        ),
        // A tracestate alone means nothing: ignored, not counted.
        (vec![(TRACESTATE, "a=1")], None, false),
        // CloudEvents SDKs' prefixed names are read too.
        (
            vec![("ce-traceparent", PARENT), ("ce-tracestate", "a=1")],
            Some(valid.clone().with_tracestate("a=1").unwrap()),
            false,
        ),
        (vec![(TRACEPARENT, PARENT)], Some(valid.clone()), false),
    ];
    let counted = cases.iter().filter(|(_, _, counted)| *counted).count() as u64;
    for (n, (trace, _, _)) in cases.iter().enumerate() {
        let id = format!("evt-{n}");
        raw.publish_with_headers(
            "sb.order.placed",
            binary_headers(&id, trace),
            payload(n as u64),
        )
        .await
        .unwrap();
    }
    for (n, (_, expected, _)) in cases.iter().enumerate() {
        let event = next(&mut placed).await;
        assert_eq!(event.n, n as u64);
        assert_eq!(event.trace_context(), expected.as_ref(), "case {n}");
    }

    // Structured mode: a traceparent that is not a string, or not valid.
    let data = String::from_utf8(payload(100).to_vec()).unwrap();
    let mut structured_headers = HeaderMap::new();
    structured_headers.insert("content-type", structured::CONTENT_TYPE);
    for (i, traceparent) in ["7", "{\"a\":1}", "\"00-nope\""].iter().enumerate() {
        let envelope = format!(
            r#"{{"specversion":"1.0","id":"s-{i}","source":"another-producer","type":"order.placed","traceparent":{traceparent},"data":{data}}}"#
        );
        raw.publish_with_headers(
            "sb.order.placed",
            structured_headers.clone(),
            envelope.into(),
        )
        .await
        .unwrap();
        let event = next(&mut placed).await;
        assert_eq!((event.n, event.trace_context()), (100, None));
    }

    // At least once: imported and acknowledged, not dead-lettered.
    let shipped_headers = {
        let mut headers = binary_headers("ship-1", &[(TRACEPARENT, "00-broken")]);
        headers.insert(TYPE, "order.shipped");
        headers
    };
    raw.publish_with_headers("sb.order.shipped", shipped_headers, payload(7))
        .await
        .unwrap();
    let event = next(&mut shipped).await;
    assert_eq!((event.n, event.trace_context()), (7, None));

    let stats = importer.stats();
    let placed_counts = stats.import("order.placed").unwrap();
    println!(
        "INVALID TRACE CONTEXT: imported {}, trace_invalid {}, malformed {}",
        placed_counts.imported, placed_counts.trace_invalid, placed_counts.malformed
    );
    assert_eq!(
        (
            placed_counts.imported,
            placed_counts.trace_invalid,
            placed_counts.malformed,
            placed_counts.decode_failed
        ),
        (cases.len() as u64 + 3, counted + 3, 0, 0),
        "{stats}"
    );
    let shipped_counts = stats.import("order.shipped").unwrap();
    assert_eq!(
        (
            shipped_counts.imported,
            shipped_counts.trace_invalid,
            shipped_counts.dead_lettered
        ),
        (1, 1, 0),
        "{stats}"
    );
}

/// A responder that answers each `Check` within the request's trace: the
/// response carries the request's context.
fn responder(bus: &EventBus) {
    let mut requests = bus.subscribe_to::<Check>("checker", 16).unwrap();
    let bus = bus.clone();
    tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let trace = request.trace_context().cloned();
            bus.publish(Checked {
                request_id: request.request_id.clone(),
                responder: "checker".into(),
                seen: trace.as_ref().map(TraceContext::traceparent),
                timestamp: SystemTime::now(),
                trace,
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_requests_and_their_responses_carry_the_trace_context() {
    init_tracing();
    let server = NatsServer::start();
    let serving_bus = EventBus::new();
    responder(&serving_bus);
    let serving = connect(
        Bridge::builder(&serving_bus)
            .name("serving")
            .serve::<Check, Checked>("order.check"),
        &server,
    )
    .await;
    serving_bus.start();
    let asker = connect(Bridge::builder(&EventBus::new()).name("asker"), &server).await;

    let result = asker
        .request::<Checked, _>(
            Check {
                request_id: "traced".into(),
                timestamp: SystemTime::now(),
                trace: Some(parent()),
            },
            RequestOptions::new(["checker"]).timeout(WAIT),
        )
        .await
        .unwrap();
    let response = &result.responses[0];
    assert_eq!(response.seen.as_deref(), Some(PARENT), "the request had it");
    assert_eq!(
        response.trace_context(),
        Some(&parent()),
        "the response has it"
    );

    let untraced = asker
        .request::<Checked, _>(
            Check {
                request_id: "untraced".into(),
                timestamp: SystemTime::now(),
                trace: None,
            },
            RequestOptions::new(["checker"]).timeout(WAIT),
        )
        .await
        .unwrap();
    let response = &untraced.responses[0];
    assert_eq!(
        (response.seen.as_deref(), response.trace_context()),
        (None, None)
    );

    // A raw request with an invalid traceparent is served without it.
    let raw = async_nats::connect(server.url()).await.unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(SPECVERSION, SPEC_VERSION);
    headers.insert(ID, "raw-1");
    headers.insert(TYPE, "order.check");
    headers.insert(SOURCE, "raw-client");
    headers.insert(TRACEPARENT, "00-4bf92f3577b34da6a3ce929d0e0e4736-zz-01");
    let request = serde_json::to_vec(&Check {
        request_id: "raw".into(),
        timestamp: SystemTime::now(),
        trace: None,
    })
    .unwrap();
    let reply = tokio::time::timeout(
        WAIT,
        raw.request_with_headers("sb.order.check", headers, request.into()),
    )
    .await
    .unwrap()
    .unwrap();
    let checked: Checked = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!((checked.request_id.as_str(), checked.seen), ("raw", None));
    assert!(reply
        .headers
        .as_ref()
        .is_none_or(|headers| headers.get(TRACEPARENT).is_none()));

    let stats = serving.stats();
    assert_eq!(
        (stats.requests.served, stats.requests.trace_invalid),
        (3, 1),
        "{stats}"
    );
    assert_eq!(asker.stats().requests.trace_invalid, 0);
}
