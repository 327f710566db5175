//! The bridge next to raw async-nats, through one local nats-server.
//!
//! ```sh
//! cargo bench -p switchboard-nats --bench bridge
//! ```
//!
//! - at-most-once: events per second and p50/p99 latency from a publish in
//!   bus A to receipt in bus B, next to raw async-nats publish/subscribe of
//!   the same JSON payload between two connections;
//! - at-least-once: the same through JetStream (export acknowledged by the
//!   stream, import through a durable consumer), next to raw JetStream
//!   publish with each acknowledgement awaited, and with as many in flight
//!   as the exporter's window.
//!
//! Criterion measures each batch; the summary table at the end (one fixed
//! run each) gives the throughput ratios and the latency percentiles.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::{Client, ConnectOptions, HeaderMap, Subscriber};
use bytes::Bytes;
use common::{NatsServer, RouteAdded};
use criterion::{Criterion, Throughput};
use futures_util::StreamExt;
use switchboard::{EventBus, TypedSubscription};
use switchboard_nats::{cloudevents, Bridge, ContentMode, Delivery, ExportQueue, JetStreamOptions};
use tokio::runtime::Runtime;

/// Events per measured batch, at-most-once.
const CORE_BATCH: u64 = 1000;
/// Events per measured batch, at-least-once: several windows of publishes.
const DURABLE_BATCH: u64 = 2000;
/// Round trips measured for the latency percentiles.
const LATENCY_SAMPLES: usize = 2000;

/// Something that moves `n` events from one end to the other.
trait Batch {
    async fn batch(&mut self, n: u64);
}

/// Two buses bridged through one server in one delivery mode.
struct Bridged {
    bus_a: EventBus,
    routes: TypedSubscription<RouteAdded>,
    _a: Bridge,
    _b: Bridge,
    next: u64,
}

impl Bridged {
    async fn new(server: &NatsServer, delivery: Delivery, mode: ContentMode, label: &str) -> Self {
        let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
        // One prefix per pair: a subject carries one delivery mode.
        let b = Bridge::builder(&bus_b)
            .name(format!("bench-{label}-b"))
            .prefix(label)
            .import::<RouteAdded>("route.added", delivery)
            .jetstream(JetStreamOptions::default().max_ack_pending(10_000))
            .connect(server.url(), ConnectOptions::new())
            .await
            .expect("bridge B");
        let a = Bridge::builder(&bus_a)
            .name(format!("bench-{label}-a"))
            .prefix(label)
            .export_with_mode::<RouteAdded>("route.added", delivery, mode)
            .export_queue(delivery, ExportQueue::critical(1 << 16))
            .connect(server.url(), ConnectOptions::new())
            .await
            .expect("bridge A");
        let routes = bus_b.subscribe_to::<RouteAdded>("bench", 1 << 16).unwrap();
        bus_a.start();
        bus_b.start();
        Self {
            bus_a,
            routes,
            _a: a,
            _b: b,
            next: 0,
        }
    }
}

impl Batch for Bridged {
    /// Publishes `n` events in bus A and waits until bus B has them all.
    async fn batch(&mut self, n: u64) {
        for _ in 0..n {
            self.next += 1;
            self.bus_a.publish(RouteAdded::new("bench", self.next));
        }
        for _ in 0..n {
            self.routes.next().await.expect("an event");
        }
    }
}

/// Raw async-nats: a publishing and a subscribing connection; with the
/// bridge's five CloudEvents headers on every message, or none.
struct Raw {
    /// Its own subject: two raw paths must not receive each other's messages.
    subject: &'static str,
    publisher: Client,
    subscriber: Subscriber,
    payload: Bytes,
    headers: Option<HeaderMap>,
}

/// Headers like the ones the bridge sends.
fn cloudevents_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        (cloudevents::SPECVERSION, "1.0"),
        (cloudevents::ID, "ABCDEFGHIJKLMNOPQRSTUV.123456"),
        (cloudevents::TYPE, "route.added"),
        (cloudevents::SOURCE, "bench-core-a"),
        (cloudevents::TIME, "2026-12-02T15:03:35.517267Z"),
    ] {
        headers.insert(name, value);
    }
    headers
}

impl Raw {
    async fn new(server: &NatsServer, subject: &'static str, headers: Option<HeaderMap>) -> Self {
        let publisher = async_nats::connect(server.url()).await.unwrap();
        let receiver = async_nats::connect(server.url()).await.unwrap();
        let subscriber = receiver.subscribe(subject).await.unwrap();
        receiver.flush().await.unwrap();
        let payload = serde_json::to_vec(&RouteAdded::new("bench", 1))
            .unwrap()
            .into();
        Self {
            subject,
            publisher,
            subscriber,
            payload,
            headers,
        }
    }
}

impl Batch for Raw {
    async fn batch(&mut self, n: u64) {
        for _ in 0..n {
            let payload = self.payload.clone();
            match &self.headers {
                Some(headers) => self
                    .publisher
                    .publish_with_headers(self.subject, headers.clone(), payload)
                    .await
                    .unwrap(),
                None => self.publisher.publish(self.subject, payload).await.unwrap(),
            }
        }
        for _ in 0..n {
            self.subscriber.next().await.expect("a message");
        }
    }
}

/// Raw JetStream publish with up to `window` acknowledgements awaited at
/// once (1: each awaited before the next publish).
struct RawJetStream {
    context: jetstream::Context,
    subject: String,
    payload: Bytes,
    window: usize,
}

impl RawJetStream {
    async fn new(server: &NatsServer, window: usize) -> Self {
        let context = jetstream::new(async_nats::connect(server.url()).await.unwrap());
        let stream = format!("RAW{window}");
        let subject = format!("raw.durable{window}.route.added");
        context
            .get_or_create_stream(jetstream::stream::Config {
                name: stream,
                subjects: vec![subject.clone()],
                ..Default::default()
            })
            .await
            .unwrap();
        let payload = serde_json::to_vec(&RouteAdded::new("bench", 1))
            .unwrap()
            .into();
        Self {
            context,
            subject,
            payload,
            window,
        }
    }
}

impl Batch for RawJetStream {
    async fn batch(&mut self, n: u64) {
        let mut in_flight = std::collections::VecDeque::with_capacity(self.window);
        for _ in 0..n {
            if in_flight.len() == self.window {
                let ack: jetstream::context::PublishAckFuture = in_flight.pop_front().unwrap();
                ack.await.unwrap();
            }
            in_flight.push_back(
                self.context
                    .publish(self.subject.clone(), self.payload.clone())
                    .await
                    .unwrap(),
            );
        }
        for ack in in_flight {
            ack.await.unwrap();
        }
    }
}

/// Events per second over one run of `batches` batches of `n`.
async fn rate(path: &mut impl Batch, batches: u64, n: u64) -> f64 {
    let start = Instant::now();
    for _ in 0..batches {
        path.batch(n).await;
    }
    (batches * n) as f64 / start.elapsed().as_secs_f64()
}

/// p50 and p99 of single-event round trips.
async fn percentiles(path: &mut impl Batch) -> (Duration, Duration) {
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    for _ in 0..LATENCY_SAMPLES {
        let start = Instant::now();
        path.batch(1).await;
        samples.push(start.elapsed());
    }
    samples.sort();
    (
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
    )
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = NatsServer::start();
    let bridged =
        |delivery, mode, label| runtime.block_on(Bridged::new(&server, delivery, mode, label));
    let mut core = bridged(Delivery::AtMostOnce, ContentMode::Binary, "core");
    let mut core_structured = bridged(Delivery::AtMostOnce, ContentMode::Structured, "corestruct");
    let mut durable = bridged(Delivery::AtLeastOnce, ContentMode::Binary, "durable");
    let mut durable_structured = bridged(
        Delivery::AtLeastOnce,
        ContentMode::Structured,
        "durablestruct",
    );
    let mut raw = runtime.block_on(Raw::new(&server, "raw.plain", None));
    let mut raw_headers = runtime.block_on(Raw::new(
        &server,
        "raw.headers",
        Some(cloudevents_headers()),
    ));
    let mut raw_js = runtime.block_on(RawJetStream::new(&server, 1));
    let mut raw_js_window = runtime.block_on(RawJetStream::new(
        &server,
        JetStreamOptions::default().publish_window,
    ));

    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut paths = Paths {
        core: &mut core,
        core_structured: &mut core_structured,
        durable: &mut durable,
        durable_structured: &mut durable_structured,
        raw: &mut raw,
        raw_headers: &mut raw_headers,
        raw_js: &mut raw_js,
        raw_js_window: &mut raw_js_window,
    };
    criterion_groups(&mut criterion, &runtime, &mut paths);
    criterion.final_summary();

    // `cargo test --benches` runs each benchmark once, as a test: no summary then.
    if std::env::args().any(|arg| arg == "--bench") {
        summary(&runtime, &mut paths);
    }
}

/// Everything measured.
struct Paths<'a> {
    core: &'a mut Bridged,
    core_structured: &'a mut Bridged,
    durable: &'a mut Bridged,
    durable_structured: &'a mut Bridged,
    raw: &'a mut Raw,
    raw_headers: &'a mut Raw,
    raw_js: &'a mut RawJetStream,
    raw_js_window: &'a mut RawJetStream,
}

fn criterion_groups(criterion: &mut Criterion, runtime: &Runtime, paths: &mut Paths<'_>) {
    let mut group = criterion.benchmark_group("at-most-once");
    group.throughput(Throughput::Elements(CORE_BATCH));
    group.bench_function("bridge export->import", |b| {
        b.iter(|| runtime.block_on(paths.core.batch(CORE_BATCH)));
    });
    group.bench_function("bridge export->import, structured mode", |b| {
        b.iter(|| runtime.block_on(paths.core_structured.batch(CORE_BATCH)));
    });
    group.bench_function("raw async-nats pub/sub", |b| {
        b.iter(|| runtime.block_on(paths.raw.batch(CORE_BATCH)));
    });
    group.bench_function("raw async-nats pub/sub, CloudEvents headers", |b| {
        b.iter(|| runtime.block_on(paths.raw_headers.batch(CORE_BATCH)));
    });
    group.finish();

    let mut group = criterion.benchmark_group("at-least-once");
    group.throughput(Throughput::Elements(DURABLE_BATCH));
    group.bench_function("bridge export->import (JetStream)", |b| {
        b.iter(|| runtime.block_on(paths.durable.batch(DURABLE_BATCH)));
    });
    group.bench_function("bridge export->import (JetStream), structured mode", |b| {
        b.iter(|| runtime.block_on(paths.durable_structured.batch(DURABLE_BATCH)));
    });
    group.bench_function("raw JetStream publish, each ack awaited", |b| {
        b.iter(|| runtime.block_on(paths.raw_js.batch(DURABLE_BATCH)));
    });
    group.bench_function("raw JetStream publish, the bridge's window of acks", |b| {
        b.iter(|| runtime.block_on(paths.raw_js_window.batch(DURABLE_BATCH)));
    });
    group.finish();
}

/// Rounds of the summary: each rate in the table is the median of this many
/// runs, the paths taking turns so that the machine's moods fall on all.
const ROUNDS: usize = 3;

/// p50 and p99.
type Latency = (Duration, Duration);

/// The median of `rates`.
fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn summary(runtime: &Runtime, paths: &mut Paths<'_>) {
    runtime.block_on(async {
        let mut rates: [Vec<f64>; 8] = Default::default();
        for _ in 0..ROUNDS {
            rates[0].push(rate(paths.raw, 20, CORE_BATCH).await);
            rates[1].push(rate(paths.raw_headers, 20, CORE_BATCH).await);
            rates[2].push(rate(paths.core, 20, CORE_BATCH).await);
            rates[3].push(rate(paths.core_structured, 20, CORE_BATCH).await);
            rates[4].push(rate(paths.raw_js, 3, DURABLE_BATCH).await);
            rates[5].push(rate(paths.raw_js_window, 10, DURABLE_BATCH).await);
            rates[6].push(rate(paths.durable, 10, DURABLE_BATCH).await);
            rates[7].push(rate(paths.durable_structured, 10, DURABLE_BATCH).await);
        }
        let [raw, raw_headers, core, core_structured, raw_js, raw_js_window, durable, durable_st] =
            rates.map(median);
        let latency = [
            percentiles(paths.raw).await,
            percentiles(paths.raw_headers).await,
            percentiles(paths.core).await,
            percentiles(paths.core_structured).await,
            percentiles(paths.raw_js).await,
            percentiles(paths.durable).await,
            percentiles(paths.durable_structured).await,
        ];
        let window = paths.raw_js_window.window;

        println!();
        println!(
            "Medians of {ROUNDS} runs; p50/p99 of {LATENCY_SAMPLES} single-event round trips."
        );
        println!();
        println!("| mode | path | events/s | ratio | p50 | p99 |");
        println!("|---|---|---:|---:|---:|---:|");
        let micros = |d: Duration| format!("{:.0} µs", d.as_secs_f64() * 1e6);
        let row = |mode: &str, path: &str, rate: f64, ratio: String, latency: Option<Latency>| {
            let (p50, p99) =
                latency.map_or_else(Default::default, |(p50, p99)| (micros(p50), micros(p99)));
            println!("| {mode} | {path} | {rate:.0} | {ratio} | {p50} | {p99} |");
        };
        let of = |rate: f64, base: f64, what: &str| format!("{:.2}x {what}", rate / base);
        let amo = "at-most-once";
        let base = || "1.00x".to_owned();
        row(
            amo,
            "raw async-nats pub/sub, no headers",
            raw,
            base(),
            Some(latency[0]),
        );
        row(
            amo,
            "raw async-nats pub/sub, the bridge's 5 CloudEvents headers",
            raw_headers,
            of(raw_headers, raw, "raw"),
            Some(latency[1]),
        );
        row(
            amo,
            "bridge, binary mode, bus A -> bus B",
            core,
            of(core, raw_headers, "raw with the same headers (bar 0.8x)"),
            Some(latency[2]),
        );
        row(
            amo,
            "bridge, structured mode, bus A -> bus B",
            core_structured,
            of(core_structured, raw, "raw without headers (bar 0.5x)"),
            Some(latency[3]),
        );
        let alo = "at-least-once";
        let each = "raw JetStream publish, each ack awaited";
        row(alo, each, raw_js, base(), Some(latency[4]));
        row(
            alo,
            &format!("raw JetStream publish, {window} acks in flight"),
            raw_js_window,
            of(raw_js_window, raw_js, "each awaited"),
            None,
        );
        row(
            alo,
            &format!("bridge, binary mode, bus A -> bus B ({window} in flight)"),
            durable,
            of(
                durable,
                raw_js_window,
                "raw with the same window (bar 0.5x)",
            ),
            Some(latency[5]),
        );
        row(
            alo,
            &format!("bridge, structured mode, bus A -> bus B ({window} in flight)"),
            durable_st,
            of(durable_st, raw_js_window, "raw with the same window"),
            Some(latency[6]),
        );
    });
}
