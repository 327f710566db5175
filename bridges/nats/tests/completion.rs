//! At-least-once ends at completion, with real servers: the importer
//! publishes with the waiting publish (a slow critical subscriber is waited
//! for, never dropped) and acknowledges a message to JetStream only once
//! every critical subscriber that received its event has finished with it.
//!
//! The acknowledgements are watched on the wire: a plain client subscribes
//! to the consumer's `$JS.ACK` subjects, and checks each acknowledgement
//! against what the application has finished.
//!
//! Each test prints a `COMPLETION ...` line with its figures
//! (`cargo test -p switchboard-nats --test completion -- --nocapture`).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::ConnectOptions;
use common::{consumer_settled, eventually, init_tracing, registered, NatsServer, RouteAdded};
use futures_util::StreamExt;
use switchboard::{EventBus, TypedSubscription, WithAcks};
use switchboard_nats::{Bridge, Delivery, JetStreamOptions};

/// The generous deadline of every wait for an expected condition.
const WAIT: Duration = Duration::from_secs(60);

/// What crossed the consumer's acknowledgement subjects, by stream sequence.
#[derive(Default)]
struct Acks {
    /// Stream sequences acknowledged, in the order the acks were seen.
    acked: Vec<u64>,
    /// Acknowledgements of a message whose event the application had not
    /// finished yet.
    premature: Vec<u64>,
    /// In-progress marks.
    in_progress: HashMap<u64, u64>,
    /// Negative acknowledgements (turned back for redelivery).
    naks: Vec<u64>,
}

/// The stream sequence of a JetStream acknowledgement subject, in either
/// form: `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>`
/// or, with a domain and an account hash, two tokens more before `<stream>`
/// and one after `<pending>`.
fn acked_sequence(subject: &str, durable: &str) -> Option<u64> {
    let tokens: Vec<&str> = subject.split('.').collect();
    let consumer_at = match tokens.len() {
        9 => 3,
        n if n >= 12 => 5,
        _ => return None,
    };
    if tokens[consumer_at] != durable {
        return None;
    }
    tokens[consumer_at + 2].parse().ok()
}

/// Watches the acknowledgements of `durable`'s messages; each
/// acknowledgement is checked against `finished`, the stream sequences the
/// application has finished with (each inserted before the application's
/// own ack, so before the importer can acknowledge it).
async fn watch_acks(
    url: &str,
    durable: &str,
    finished: Arc<Mutex<HashSet<u64>>>,
) -> Arc<Mutex<Acks>> {
    let client = async_nats::connect(url).await.unwrap();
    let mut acks_seen = client.subscribe("$JS.ACK.>").await.unwrap();
    registered(&client).await;
    let acks = Arc::new(Mutex::new(Acks::default()));
    let record = Arc::clone(&acks);
    let durable = durable.to_owned();
    tokio::spawn(async move {
        let _client = client;
        while let Some(message) = acks_seen.next().await {
            let Some(sequence) = acked_sequence(message.subject.as_str(), &durable) else {
                continue;
            };
            let mut acks = record.lock().unwrap();
            match &message.payload[..] {
                b"" | b"+ACK" => {
                    if !finished.lock().unwrap().contains(&sequence) {
                        acks.premature.push(sequence);
                    }
                    acks.acked.push(sequence);
                }
                b"+WPI" => *acks.in_progress.entry(sequence).or_default() += 1,
                payload if payload.starts_with(b"-NAK") => acks.naks.push(sequence),
                _ => {}
            }
        }
    });
    acks
}

/// An exporting bridge on one bus and an importing one on another, both of
/// `RouteAdded` at-least-once; the buses are not started yet.
async fn pair(
    server: &NatsServer,
    label: &str,
    options: JetStreamOptions,
) -> (EventBus, Bridge, EventBus, Bridge) {
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    let importer = Bridge::builder(&bus_b)
        .name(format!("{label}-importer"))
        .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .jetstream(options.clone())
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    let exporter = Bridge::builder(&bus_a)
        .name(format!("{label}-exporter"))
        .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .jetstream(options)
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    (bus_a, exporter, bus_b, importer)
}

/// How many messages the prefix's stream holds, and its last sequence.
async fn stream_state(url: &str) -> (u64, u64) {
    let js = jetstream::new(async_nats::connect(url).await.unwrap());
    let mut stream = js.get_stream("SB").await.unwrap();
    let state = &stream.info().await.unwrap().state;
    (state.messages, state.last_sequence)
}

/// The case: 2 000 events into a critical subscriber of capacity 64
/// that takes about 2 ms per event. Acknowledged once they are in the bus,
/// the bus dropped 1 855 of them; acknowledged on completion, none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_critical_subscriber_gets_every_event_each_acked_only_once_processed() {
    const EVENTS: u64 = 2_000;
    const CAPACITY: usize = 64;
    const WORK: Duration = Duration::from_millis(2);
    init_tracing();
    let server = NatsServer::start();
    let (bus_a, exporter, bus_b, importer) =
        pair(&server, "slow", JetStreamOptions::default()).await;
    let app = bus_b
        .subscribe_to::<RouteAdded>("app", CAPACITY)
        .unwrap()
        .with_acks();
    // The stream holds only these events, stored in order by one exporter:
    // event n is stream message n (checked below).
    let finished = Arc::new(Mutex::new(HashSet::new()));
    let acks = watch_acks(&server.url(), "slow-importer", Arc::clone(&finished)).await;
    let worker = {
        let finished = Arc::clone(&finished);
        std::thread::spawn(move || {
            let mut received = Vec::new();
            while received.len() < EVENTS as usize {
                let Ok(route) = app.recv_timeout(WAIT) else {
                    break;
                };
                std::thread::sleep(WORK);
                received.push(route.n);
                finished.lock().unwrap().insert(route.n);
                route.ack();
            }
            (received, app)
        })
    };
    bus_a.start();
    bus_b.start();
    for n in 1..=EVENTS {
        bus_a
            .publish_waiting(RouteAdded::new("slow-exporter", n))
            .await
            .unwrap();
    }
    let (received, app) = tokio::task::spawn_blocking(move || worker.join().unwrap())
        .await
        .unwrap();
    assert!(consumer_settled(&server.url(), "SB", "slow-importer").await);
    let all_acked = eventually(WAIT, || {
        acks.lock()
            .unwrap()
            .acked
            .iter()
            .collect::<HashSet<_>>()
            .len()
            == EVENTS as usize
    })
    .await;
    let stats = importer.shutdown().await;
    let counts = stats.import("route.added").unwrap();
    let stored = stream_state(&server.url()).await;
    let acks = acks.lock().unwrap();
    let distinct_acks = acks.acked.iter().collect::<HashSet<_>>().len();
    let in_progress: u64 = acks.in_progress.values().sum();
    println!(
        "COMPLETION slow subscriber (capacity {CAPACITY}, {WORK:?} per event): sent {EVENTS}, \
         received {}, bus drops {}, subscriber drops {}, acks {} for {distinct_acks} messages, \
         acks before the application finished {}, in-progress marks {in_progress}, naks {}, \
         imported {}, duplicates skipped {}, abandoned {}",
        received.len(),
        bus_b.stats().dropped(),
        app.get_ref().dropped(),
        acks.acked.len(),
        acks.premature.len(),
        acks.naks.len(),
        counts.imported,
        counts.duplicates,
        counts.abandoned,
    );
    assert_eq!(
        received,
        (1..=EVENTS).collect::<Vec<_>>(),
        "all, once, in order"
    );
    assert_eq!(bus_b.stats().dropped(), 0, "{stats}");
    assert_eq!(app.get_ref().dropped(), 0);
    assert_eq!(stored, (EVENTS, EVENTS), "event n is stream message n");
    assert!(all_acked, "acknowledged {distinct_acks} of {EVENTS}");
    assert!(
        acks.premature.is_empty(),
        "{} acknowledged before the application finished, the first {:?}",
        acks.premature.len(),
        &acks.premature[..acks.premature.len().min(10)]
    );
    assert!(acks.naks.is_empty(), "{:?}", acks.naks);
    assert_eq!(counts.imported, EVENTS, "{stats}");
    assert_eq!(counts.abandoned, 0, "{stats}");
    drop(exporter);
}

/// Receives the next delivery within [`WAIT`].
async fn next(
    worker: &mut WithAcks<TypedSubscription<RouteAdded>>,
) -> switchboard::Delivery<Arc<RouteAdded>> {
    tokio::time::timeout(WAIT, worker.next())
        .await
        .expect("a delivery in time")
        .expect("the subscription is open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_event_comes_again_to_every_subscriber_and_is_not_a_duplicate() {
    init_tracing();
    let server = NatsServer::start();
    let fast = JetStreamOptions::default()
        .ack_wait(Duration::from_secs(1))
        .ack_timeout(Duration::from_millis(500));
    let (bus_a, exporter, bus_b, importer) = pair(&server, "abandon", fast).await;
    let mut worker = bus_b
        .subscribe_to::<RouteAdded>("worker", 8)
        .unwrap()
        .with_acks();
    let mut audit = bus_b.subscribe_to::<RouteAdded>("audit", 8).unwrap();
    let finished = Arc::new(Mutex::new(HashSet::new()));
    let acks = watch_acks(&server.url(), "abandon-importer", Arc::clone(&finished)).await;
    bus_a.start();
    bus_b.start();

    // The audit takes each event as the worker handles it: its plain
    // receive finishes it.
    let mut audited = Vec::new();
    bus_a.publish(RouteAdded::new("abandon-exporter", 1));
    let first = next(&mut worker).await;
    assert_eq!(first.n, 1);
    first.reject();
    audited.extend(common::take(&mut audit, 1, WAIT).await.iter().map(|r| r.n));
    // Turned back, delivered again, and imported again rather than skipped.
    let again = next(&mut worker).await;
    assert_eq!(again.n, 1);
    audited.extend(common::take(&mut audit, 1, WAIT).await.iter().map(|r| r.n));
    finished.lock().unwrap().insert(1);
    again.ack();
    bus_a.publish(RouteAdded::new("abandon-exporter", 2));
    let second = next(&mut worker).await;
    assert_eq!(second.n, 2);
    audited.extend(common::take(&mut audit, 1, WAIT).await.iter().map(|r| r.n));
    finished.lock().unwrap().insert(2);
    second.ack();

    assert!(consumer_settled(&server.url(), "SB", "abandon-importer").await);
    let stats = importer.shutdown().await;
    let counts = stats.import("route.added").unwrap();
    let acks = acks.lock().unwrap();
    println!(
        "COMPLETION abandoned: the worker rejected event 1 once; audit received {audited:?}, \
         naks {:?}, acks {:?}, imported {}, abandoned {}, duplicates skipped {}",
        acks.naks, acks.acked, counts.imported, counts.abandoned, counts.duplicates
    );
    assert_eq!(
        audited,
        [1, 1, 2],
        "the redelivery reaches every subscriber"
    );
    assert!(audit.is_empty());
    assert_eq!(acks.naks, [1]);
    assert!(acks.premature.is_empty(), "{:?}", acks.premature);
    assert_eq!(counts.abandoned, 1, "{stats}");
    assert_eq!(counts.imported, 3, "{stats}");
    assert_eq!(counts.duplicates, 0, "{stats}");
    drop(exporter);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_work_keeps_its_message_in_progress_and_the_ack_follows_it() {
    init_tracing();
    let server = NatsServer::start();
    let fast = JetStreamOptions::default()
        .ack_wait(Duration::from_secs(1))
        .ack_timeout(Duration::from_millis(500));
    let (bus_a, exporter, bus_b, importer) = pair(&server, "long", fast).await;
    let mut worker = bus_b
        .subscribe_to::<RouteAdded>("worker", 8)
        .unwrap()
        .with_acks();
    let finished = Arc::new(Mutex::new(HashSet::new()));
    let acks = watch_acks(&server.url(), "long-importer", Arc::clone(&finished)).await;
    bus_a.start();
    bus_b.start();

    bus_a.publish(RouteAdded::new("long-exporter", 1));
    let job = next(&mut worker).await;
    // The work lasts until the importer has marked the message in progress
    // three times: longer than `ack_wait`, and not acknowledged meanwhile.
    let marked = eventually(WAIT, || {
        let acks = acks.lock().unwrap();
        assert!(acks.acked.is_empty(), "acknowledged during the work");
        acks.in_progress.get(&1).copied().unwrap_or(0) >= 3
    })
    .await;
    assert!(marked, "marked in progress");
    finished.lock().unwrap().insert(1);
    job.ack();

    assert!(consumer_settled(&server.url(), "SB", "long-importer").await);
    let stats = importer.shutdown().await;
    let counts = stats.import("route.added").unwrap();
    let acks = acks.lock().unwrap();
    println!(
        "COMPLETION long work: in-progress marks {:?}, acks {:?}, naks {:?}, received once, \
         redeliveries skipped as duplicates {}",
        acks.in_progress, acks.acked, acks.naks, counts.duplicates
    );
    assert!(acks.acked.contains(&1));
    assert!(acks.premature.is_empty(), "{:?}", acks.premature);
    assert!(acks.naks.is_empty(), "{:?}", acks.naks);
    assert!(
        worker.try_recv().is_err(),
        "the event reached the worker once"
    );
    assert_eq!(counts.imported, 1, "{stats}");
    drop(exporter);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_lost_while_events_are_in_the_bus_resumes_at_the_first_not_complete() {
    init_tracing();
    let server = NatsServer::start();
    let fast = JetStreamOptions::default()
        .ack_wait(Duration::from_secs(1))
        .ack_timeout(Duration::from_millis(500));
    let (bus_a, exporter, bus_b, importer) = pair(&server, "lost", fast).await;
    let mut worker = bus_b
        .subscribe_to::<RouteAdded>("worker", 8)
        .unwrap()
        .with_acks();
    bus_a.start();
    bus_b.start();

    // Three events in the bus, none finished.
    for n in 1..=3 {
        bus_a.publish(RouteAdded::new("lost-exporter", n));
    }
    let mut jobs = Vec::new();
    for n in 1..=3 {
        let job = next(&mut worker).await;
        assert_eq!(job.n, n);
        jobs.push(job);
    }
    let js = jetstream::new(async_nats::connect(server.url()).await.unwrap());
    js.get_stream("SB")
        .await
        .unwrap()
        .delete_consumer("lost-importer")
        .await
        .unwrap();
    // Created again at the first message not complete: the three come
    // again, and are recognised as the events still in the bus.
    let redelivered = eventually(WAIT, || {
        let stats = importer.stats();
        stats.consumer.recreated == 1 && stats.import("route.added").unwrap().duplicates == 3
    })
    .await;
    assert!(redelivered, "{}", importer.stats());
    // Finished now: acknowledged on the new consumer, through the newest deliveries.
    for job in jobs {
        job.ack();
    }
    bus_a.publish(RouteAdded::new("lost-exporter", 4));
    let last = next(&mut worker).await;
    assert_eq!(last.n, 4);
    last.ack();
    assert!(consumer_settled(&server.url(), "SB", "lost-importer").await);
    let stats = importer.shutdown().await;
    let counts = stats.import("route.added").unwrap();
    println!(
        "COMPLETION consumer lost with 3 events in the bus: recreated {}, lost {}, redeliveries \
         recognised {}, imported {}",
        stats.consumer.recreated, stats.consumer.lost, counts.duplicates, counts.imported
    );
    assert!(
        worker.try_recv().is_err(),
        "each event reached the worker once"
    );
    assert_eq!(counts.imported, 4, "{stats}");
    assert_eq!(stats.consumer.lost, 0, "{stats}");
    drop(exporter);
}
