//! Faults with real servers: a server killed mid-stream and restarted on the
//! same port and store, in each delivery mode (at-least-once also with the
//! exporter's window full), and a node of a three-node cluster killed under
//! an R3 stream.
//!
//! Each test prints a `FAULT ...` line with what was sent, received and
//! counted (`cargo test -p switchboard-nats --test faults -- --nocapture`).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use async_nats::ConnectOptions;
use common::{consumer_settled, eventually, init_tracing, NatsServer, RouteAdded};
use switchboard::{EventBus, TypedSubscription};
use switchboard_nats::{Bridge, BridgeStats, Delivery, ExportQueue, JetStreamOptions};

/// Events published in each fault test.
const EVENTS: u64 = 600;
/// The pause between two published events: the stream lasts about 1.8 s.
const PACE: Duration = Duration::from_millis(3);
/// The server dies after this many events...
const KILL_AT: u64 = 200;
/// ...and stays down this long.
const DOWN: Duration = Duration::from_millis(600);
/// The generous deadline of every wait for an expected condition.
const WAIT: Duration = Duration::from_secs(60);

/// Short JetStream timings, so that redeliveries and retries happen within
/// the test (the behaviour is the same with the defaults, only slower).
fn fast_jetstream() -> JetStreamOptions {
    JetStreamOptions::default()
        .ack_wait(Duration::from_secs(2))
        .ack_timeout(Duration::from_millis(500))
}

/// Drains what the subscription holds now.
fn drain(subscription: &TypedSubscription<RouteAdded>, into: &mut Vec<u64>) {
    into.extend(subscription.try_iter().map(|event| event.n));
}

/// Asserts that `received` is `1..=EVENTS`, each once, in order.
fn assert_exactly_once_in_order(received: &[u64]) {
    let mut seen = HashMap::new();
    for n in received {
        *seen.entry(*n).or_insert(0) += 1;
    }
    let duplicated: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        duplicated.is_empty(),
        "duplicates delivered: {duplicated:?}"
    );
    let missing: Vec<u64> = (1..=EVENTS).filter(|n| !seen.contains_key(n)).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert!(
        received.windows(2).all(|w| w[0] < w[1]),
        "out of order: {received:?}"
    );
}

fn print_jetstream_line(
    label: &str,
    received: &[u64],
    exporter: &BridgeStats,
    importer: &BridgeStats,
) {
    let export = exporter.export("route.added").unwrap();
    let import = importer.import("route.added").unwrap();
    println!(
        "FAULT {label}: sent {EVENTS}, received {}, duplicates delivered 0, \
         exporter retries {}, server-side duplicates {}, importer redeliveries skipped {}, \
         held back for order {}, missed {}, late {}",
        received.len(),
        export.retries,
        export.server_duplicates,
        import.duplicates,
        import.held_back,
        import.missed,
        import.late,
    );
}

/// An at-least-once exporting bridge on one bus and an importing one on
/// another (`{label}-exporter`, `{label}-importer`), both started, and a
/// subscriber in the importing bus with room for every event.
struct JetStreamPair {
    bus_a: EventBus,
    exporter: Bridge,
    importer: Bridge,
    routes: TypedSubscription<RouteAdded>,
    durable: String,
}

impl JetStreamPair {
    async fn connect(server: &NatsServer, label: &str, exporting: JetStreamOptions) -> Self {
        let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
        let durable = format!("{label}-importer");
        let importer = Bridge::builder(&bus_b)
            .name(durable.clone())
            .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
            .jetstream(fast_jetstream())
            .connect(server.url(), ConnectOptions::new())
            .await
            .unwrap();
        let exporter = Bridge::builder(&bus_a)
            .name(format!("{label}-exporter"))
            .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
            .jetstream(exporting)
            .connect(server.url(), ConnectOptions::new())
            .await
            .unwrap();
        let routes = bus_b
            .subscribe_to::<RouteAdded>("routes", EVENTS as usize * 2)
            .unwrap();
        bus_a.start();
        bus_b.start();
        Self {
            bus_a,
            exporter,
            importer,
            routes,
            durable,
        }
    }

    /// Waits for every event, then for the consumer to settle, and checks
    /// that each arrived exactly once and in order, and that the exporter
    /// stored each once and abandoned none.
    async fn every_event_once_in_order(self, server: &NatsServer, label: &str) -> BridgeStats {
        let Self {
            exporter,
            importer,
            routes,
            durable,
            ..
        } = self;
        assert!(
            eventually(WAIT, || routes.len() >= EVENTS as usize).await,
            "received {} of {EVENTS}:\n{}\n{}",
            routes.len(),
            exporter.stats(),
            importer.stats()
        );
        // Taken first: an event is acknowledged once the subscriber has it.
        let mut received = Vec::new();
        drain(&routes, &mut received);
        assert!(consumer_settled(&server.url(), "SB", &durable).await);
        // Anything redelivered after the consumer settled would show up now.
        tokio::time::sleep(Duration::from_millis(300)).await;
        drain(&routes, &mut received);
        let (exporter, importer) = (exporter.stats(), importer.stats());
        print_jetstream_line(label, &received, &exporter, &importer);
        assert_exactly_once_in_order(&received);
        let export = exporter.export("route.added").unwrap();
        assert_eq!(export.exported, EVENTS, "{exporter}");
        assert_eq!(export.abandoned + export.failed, 0, "{exporter}");
        assert_eq!(exporter.queue(Delivery::AtLeastOnce).unwrap().dropped, 0);
        assert_eq!(
            importer.import("route.added").unwrap().imported,
            EVENTS,
            "{importer}"
        );
        exporter
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_survives_a_server_restart_exactly_once_in_order() {
    init_tracing();
    let mut server = NatsServer::start();
    let pair = JetStreamPair::connect(&server, "restart", fast_jetstream()).await;
    for n in 1..=EVENTS {
        pair.bus_a.publish(RouteAdded::new("restart-exporter", n));
        if n == KILL_AT {
            server.kill();
            tokio::time::sleep(DOWN).await;
            server.restart();
        }
        tokio::time::sleep(PACE).await;
    }
    pair.every_event_once_in_order(&server, "at-least-once restart")
        .await;
}

/// The pipelined exporter with a full window when the server dies: the
/// events published as fast as the window lets them, the server killed
/// once a hundred are stored (the window's publishes in flight fail or
/// lose their acknowledgements) and restarted on its store. Each is sent
/// again with its message id: stored once, received once, in order. The
/// last hundred are published only once the server is dead, so the fault
/// always finds events to send again, however fast the others went.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_survives_a_server_kill_mid_window_exactly_once_in_order() {
    const KILL_AFTER_STORED: u64 = 100;
    init_tracing();
    let mut server = NatsServer::start();
    let pair =
        JetStreamPair::connect(&server, "window", fast_jetstream().publish_window(256)).await;
    let bus_a = pair.bus_a.clone();
    let (killed, server_dead) = tokio::sync::oneshot::channel::<()>();
    let publishing = tokio::spawn(async move {
        let mut server_dead = Some(server_dead);
        for n in 1..=EVENTS {
            if n == EVENTS - 99 {
                server_dead.take().unwrap().await.unwrap();
            }
            bus_a
                .publish_waiting(RouteAdded::new("window-exporter", n))
                .await
                .unwrap();
        }
    });
    let stored = || {
        pair.exporter
            .stats()
            .export("route.added")
            .unwrap()
            .exported
    };
    let reached = eventually(WAIT, || stored() >= KILL_AFTER_STORED).await;
    assert!(reached, "{}", pair.exporter.stats());
    server.kill();
    let stored_before_the_kill = stored();
    killed.send(()).unwrap();
    tokio::time::sleep(DOWN).await;
    server.restart();
    publishing.await.unwrap();
    let label =
        format!("at-least-once kill mid-window (stored {stored_before_the_kill} before it)");
    let exporter = pair.every_event_once_in_order(&server, &label).await;
    let export = exporter.export("route.added").unwrap();
    assert!(export.retries > 0, "the kill failed publishes: {exporter}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_once_loses_events_in_a_restart_and_counts_every_loss() {
    init_tracing();
    let mut server = NatsServer::start();
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    let importer = Bridge::builder(&bus_b)
        .name("lossy-importer")
        .import::<RouteAdded>("route.added", Delivery::AtMostOnce)
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    let exporter = Bridge::builder(&bus_a)
        .name("lossy-exporter")
        .export::<RouteAdded>("route.added", Delivery::AtMostOnce)
        .export_queue(Delivery::AtMostOnce, ExportQueue::lossy(4096))
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    let routes = bus_b.subscribe_to::<RouteAdded>("routes", 8192).unwrap();
    bus_a.start();
    bus_b.start();

    let mut sent = 0;
    for n in 1..=EVENTS {
        bus_a.publish(RouteAdded::new("lossy-exporter", n));
        sent += 1;
        if n == KILL_AT {
            server.kill();
            tokio::time::sleep(DOWN).await;
            server.restart();
        }
        tokio::time::sleep(PACE).await;
    }
    // Both clients reconnect on their own schedule: go on until an event
    // sent from now on arrives, so no loss hides at the tail.
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut n = EVENTS;
    loop {
        drain(&routes, &mut received);
        if received.last().is_some_and(|last| *last > EVENTS) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing arrived after the restart"
        );
        n += 1;
        bus_a.publish(RouteAdded::new("lossy-exporter", n));
        sent += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One last event, received for sure now that both ends are connected.
    n += 1;
    bus_a.publish(RouteAdded::new("lossy-exporter", n));
    sent += 1;
    assert!(
        eventually(WAIT, || routes.try_iter().any(|e| {
            received.push(e.n);
            e.n == n
        }))
        .await
    );
    assert!(
        eventually(WAIT, || importer
            .stats()
            .import("route.added")
            .unwrap()
            .imported
            == received.len() as u64)
        .await
    );

    let (exporter, importer) = (exporter.stats(), importer.stats());
    let export = exporter.export("route.added").unwrap();
    let import = importer.import("route.added").unwrap();
    let local_drops = exporter.queue(Delivery::AtMostOnce).unwrap().dropped;
    let counted_losses =
        export.unavailable + export.failed + local_drops + import.missed - import.late;
    println!(
        "FAULT at-most-once restart: sent {sent}, received {}, duplicates 0, lost {}, counted: \
         unavailable (not sent while disconnected) {}, publish failed {}, local queue drops {}, \
         missed in transit (sequence gaps) {}, late {}",
        received.len(),
        sent - received.len() as u64,
        export.unavailable,
        export.failed,
        local_drops,
        import.missed,
        import.late,
    );
    assert!(
        received.windows(2).all(|w| w[0] < w[1]),
        "no duplicates, in order"
    );
    assert!(
        sent > received.len() as u64,
        "the fault loses events in this mode"
    );
    assert_eq!(
        sent - received.len() as u64,
        counted_losses,
        "{exporter}\n{importer}"
    );
    assert_eq!(
        export.exported,
        received.len() as u64 + import.missed - import.late
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_keeps_delivering_when_a_node_dies() {
    init_tracing();
    let mut nodes = common::cluster();
    let urls: Vec<String> = nodes.iter().map(NatsServer::url).collect();
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    let options = || {
        JetStreamOptions::default()
            .replicas(3)
            .ack_wait(Duration::from_secs(2))
            .ack_timeout(Duration::from_secs(1))
    };
    // JetStream needs a meta leader first: retry the setup until the cluster has one.
    let deadline = tokio::time::Instant::now() + WAIT;
    let importer = loop {
        match Bridge::builder(&bus_b)
            .name("cluster-importer")
            .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
            .jetstream(options())
            .connect(urls.clone(), ConnectOptions::new())
            .await
        {
            Ok(bridge) => break bridge,
            Err(error) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no JetStream in the cluster: {error}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    let exporter = Bridge::builder(&bus_a)
        .name("cluster-exporter")
        .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .jetstream(options())
        .connect(urls.clone(), ConnectOptions::new())
        .await
        .unwrap();
    let routes = bus_b
        .subscribe_to::<RouteAdded>("routes", EVENTS as usize * 2)
        .unwrap();
    bus_a.start();
    bus_b.start();

    // The node the exporter talks to dies: its client fails over, and the
    // stream loses a replica (perhaps its leader) but keeps a quorum.
    let exporter_port = exporter.client().server_info().port;
    let victim = nodes
        .iter()
        .position(|node| node.port() == exporter_port)
        .unwrap_or(0);
    for n in 1..=EVENTS {
        bus_a.publish(RouteAdded::new("cluster-exporter", n));
        if n == KILL_AT {
            nodes[victim].kill();
        }
        tokio::time::sleep(PACE).await;
    }
    assert!(
        eventually(WAIT, || routes.len() >= EVENTS as usize).await,
        "received {} of {EVENTS}:\n{}\n{}",
        routes.len(),
        exporter.stats(),
        importer.stats()
    );
    let mut received = Vec::new();
    drain(&routes, &mut received);
    let survivor = &nodes[(victim + 1) % 3];
    assert!(consumer_settled(&survivor.url(), "SB", "cluster-importer").await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    drain(&routes, &mut received);
    let (exporter, importer) = (exporter.stats(), importer.stats());
    print_jetstream_line(
        "R3 cluster, one node killed",
        &received,
        &exporter,
        &importer,
    );
    assert_exactly_once_in_order(&received);
    assert_eq!(exporter.export("route.added").unwrap().exported, EVENTS);
}
