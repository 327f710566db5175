//! Retained state across processes, with real servers and real second
//! processes: a replica that starts late, restarts, or becomes leader has
//! the fleet's current state, first and exactly once; clearing is
//! fleet-wide; a server restart keeps the state; hostile input is counted.
//!
//! Each test prints a `RETAINED ...` line with its figures
//! (`cargo test -p switchboard-nats --test retained -- --nocapture`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use async_nats::ConnectOptions;
use common::{eventually, init_tracing, NatsServer, ServerOptions};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use switchboard::{Event, EventBus, SubscribeOptions};
use switchboard_nats::{Bridge, BridgeError, ConfigError};

/// The generous deadline of every wait for an expected condition.
const WAIT: Duration = Duration::from_secs(60);

/// The bucket of the default prefix.
const BUCKET_STREAM: &str = "KV_SB_RETAINED";

/// The replicas' shared state: a numbered route table.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(type = "routes.table")]
struct RouteTable {
    publisher: String,
    n: u64,
    timestamp: SystemTime,
}

impl RouteTable {
    fn new(publisher: &str, n: u64) -> Self {
        Self {
            publisher: publisher.to_owned(),
            n,
            timestamp: SystemTime::now(),
        }
    }
}

/// A replica's bridge: exports and imports the state. Its name gets a
/// number, unique in this process (the tests run side by side, and a
/// process's bridges must have names of their own).
async fn replica(bus: &EventBus, name: &str, url: &str) -> Bridge {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    Bridge::builder(bus)
        .name(format!("{name}-{}", NEXT.fetch_add(1, Ordering::Relaxed)))
        .export_retained::<RouteTable>("routes.table")
        .import_retained::<RouteTable>("routes.table")
        .connect(url, ConnectOptions::new())
        .await
        .unwrap()
}

/// A started bus and its replica's bridge.
async fn running_replica(name: &str, url: &str) -> (EventBus, Bridge) {
    let bus = EventBus::new();
    bus.start();
    let bridge = replica(&bus, name, url).await;
    (bus, bridge)
}

/// Replicas A and B, running, both holding the state n = 1, which A wrote.
async fn two_replicas_holding_one(url: &str) -> (EventBus, Bridge, EventBus, Bridge) {
    let (a_bus, a) = running_replica("replica-a", url).await;
    let (b_bus, b) = running_replica("replica-b", url).await;
    publish_stored(&a_bus, &a, "replica-a", 1).await;
    assert!(eventually(WAIT, || retained_n(&b_bus) == Some(1)).await);
    (a_bus, a, b_bus, b)
}

fn retained_n(bus: &EventBus) -> Option<u64> {
    bus.retained::<RouteTable>().map(|t| t.n)
}

/// Publishes `n` retained and waits until the bucket stored it.
async fn publish_stored(bus: &EventBus, bridge: &Bridge, publisher: &str, n: u64) {
    let before = bridge.retained_stats().types[0].counts.stored;
    bus.publish_retained(RouteTable::new(publisher, n));
    assert!(
        eventually(WAIT, || bridge.retained_stats().types[0].counts.stored
            > before)
        .await,
        "{}",
        bridge.retained_stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_replica_loads_the_state_before_start_then_follows_updates() {
    init_tracing();
    let server = NatsServer::start();
    let url = server.url();
    let (a_bus, a) = running_replica("replica-a", &url).await;
    for n in 1..=3 {
        publish_stored(&a_bus, &a, "replica-a", n).await;
    }

    // B connects later, its bus not started yet.
    let b_bus = EventBus::new();
    let early = b_bus.subscribe_to::<RouteTable>("early", 64).unwrap();
    let b = replica(&b_bus, "replica-b", &url).await;
    // The pre-start buffer holds the fleet's state; the bus retains it at the replay.
    assert_eq!(b_bus.stats().pre_start_len, 1);
    assert_eq!(retained_n(&b_bus), None);
    b_bus.start();
    assert_eq!(retained_n(&b_bus), Some(3));
    assert_eq!(early.try_recv().unwrap().n, 3, "the replay delivers it");

    // A leader-only component made late gets the state first, exactly once.
    let late = b_bus
        .subscribe_with(
            SubscribeOptions::new("late", 64)
                .rust_types(switchboard::TypeSet::new().with::<RouteTable>())
                .with_retained()
                .leader_only(),
        )
        .unwrap();
    let first = late.try_recv().unwrap();
    assert_eq!(first.downcast_ref::<RouteTable>().unwrap().n, 3);
    assert!(late.try_recv().is_err(), "only the latest, once");

    // Then live updates, retained as they come.
    publish_stored(&a_bus, &a, "replica-a", 4).await;
    let mut late = late;
    let next = tokio::time::timeout(WAIT, late.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.downcast_ref::<RouteTable>().unwrap().n, 4);
    assert!(eventually(WAIT, || retained_n(&b_bus) == Some(4)).await);
    assert_eq!(early.recv_timeout(WAIT).unwrap().n, 4);

    // B's own write reaches A, and is not published twice in B.
    publish_stored(&b_bus, &b, "replica-b", 5).await;
    assert!(eventually(WAIT, || retained_n(&a_bus) == Some(5)).await);
    assert_eq!(early.recv_timeout(WAIT).unwrap().n, 5);
    let b_stats = b.retained_stats();
    let counts = b_stats.types[0].counts;
    assert_eq!((counts.loaded, counts.updated, counts.reapplied), (1, 1, 0));
    assert!(
        early.try_recv().is_err(),
        "B's own write did not come back into B"
    );
    println!(
        "RETAINED late replica: loaded {}, updated {}, stored {} (A), pre-start buffer 1 event, \
         late leader-only subscriber got n=3 first, then n=4",
        counts.loaded,
        counts.updated,
        a.retained_stats().types[0].counts.stored
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearing_is_fleet_wide_and_later_replicas_load_nothing() {
    init_tracing();
    let server = NatsServer::start();
    let url = server.url();
    let (a_bus, a, b_bus, b) = two_replicas_holding_one(&url).await;

    a.clear_retained::<RouteTable>().await.unwrap();
    assert!(eventually(WAIT, || retained_n(&b_bus).is_none()).await);
    assert!(eventually(WAIT, || retained_n(&a_bus).is_none()).await);

    let c_bus = EventBus::new();
    let c = replica(&c_bus, "replica-c", &url).await;
    c_bus.start();
    assert_eq!(retained_n(&c_bus), None, "a tombstone loads nothing");
    assert_eq!(c.retained_stats().types[0].counts.loaded, 0);

    // A value after the tombstone is the state again.
    publish_stored(&b_bus, &b, "replica-b", 2).await;
    assert!(eventually(WAIT, || retained_n(&c_bus) == Some(2)).await);
    assert!(eventually(WAIT, || retained_n(&a_bus) == Some(2)).await);

    // A type without retained state cannot be cleared.
    let error = a.clear_retained::<common::RouteAdded>().await.unwrap_err();
    assert!(matches!(
        error,
        BridgeError::Config(ConfigError::NotRetained { .. })
    ));
    println!(
        "RETAINED clear: A cleared here {}, B cleared {}, C loaded 0 after the tombstone",
        a.retained_stats().types[0].counts.cleared_here,
        b.retained_stats().types[0].counts.cleared
    );
}

/// A tombstone that comes while the importing bus is still buffering must
/// not let the replay retain the value it clears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tombstone_before_start_clears_the_buffered_value() {
    init_tracing();
    let server = NatsServer::start();
    let url = server.url();
    let (a_bus, a) = running_replica("replica-a", &url).await;
    publish_stored(&a_bus, &a, "replica-a", 1).await;

    let b_bus = EventBus::new();
    let b = replica(&b_bus, "replica-b", &url).await;
    assert_eq!(
        b_bus.stats().pre_start_len,
        1,
        "the loaded value waits for start"
    );
    a.clear_retained::<RouteTable>().await.unwrap();
    assert!(eventually(WAIT, || b.retained_stats().types[0].counts.cleared == 1).await);
    // The bus forgot the buffered value when the tombstone came: the replay
    // delivers it and retains nothing, at once.
    let early = b_bus.subscribe_to::<RouteTable>("early", 4).unwrap();
    b_bus.start();
    assert_eq!(retained_n(&b_bus), None);
    assert_eq!(early.try_recv().map(|table| table.n).ok(), Some(1));
    println!("RETAINED tombstone before start: the replay retained nothing");
}

/// Updates written while B connects: each value B sees, it sees once, in
/// the order written, and it ends with the last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_racing_the_connect_arrive_once_and_in_order() {
    init_tracing();
    const UPDATES: u64 = 1_500;
    const CONNECTS: usize = 5;
    let server = NatsServer::start();
    let url = server.url();
    let (a_bus, a) = running_replica("replica-a", &url).await;
    publish_stored(&a_bus, &a, "replica-a", 0).await;
    let writer = {
        let a_bus = a_bus.clone();
        tokio::spawn(async move {
            for n in 1..=UPDATES {
                a_bus.publish_retained(RouteTable::new("replica-a", n));
                if n % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    };
    let mut replicas = Vec::new();
    for i in 0..CONNECTS {
        let bus = EventBus::new();
        let seen = bus.subscribe_to::<RouteTable>("app", 65_536).unwrap();
        let bridge = replica(&bus, &format!("replica-b{i}"), &url).await;
        bus.start();
        replicas.push((bus, seen, bridge));
    }
    writer.await.unwrap();
    let mut figures = Vec::new();
    for (bus, seen, bridge) in &replicas {
        assert!(
            eventually(WAIT, || retained_n(bus) == Some(UPDATES)).await,
            "{}",
            bridge.retained_stats()
        );
        let values: Vec<u64> = seen.try_iter().map(|t| t.n).collect();
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "every value once, in order: {values:?}"
        );
        assert_eq!(values.last(), Some(&UPDATES));
        let counts = bridge.retained_stats().types[0].counts;
        figures.push(format!(
            "first n={} then {} updates",
            values[0],
            values.len() - 1
        ));
        assert_eq!(counts.loaded + counts.updated, values.len() as u64);
    }
    println!(
        "RETAINED race: {UPDATES} updates, {CONNECTS} replicas connecting meanwhile: {}",
        figures.join("; ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_survives_a_server_restart_on_its_store() {
    init_tracing();
    let mut server = NatsServer::start();
    let url = server.url();
    let (a_bus, a, b_bus, b) = two_replicas_holding_one(&url).await;

    server.restart();

    let c_bus = EventBus::new();
    let c = replica(&c_bus, "replica-c", &url).await;
    c_bus.start();
    assert_eq!(retained_n(&c_bus), Some(1), "the store kept the state");
    // The running replicas follow again.
    publish_stored(&a_bus, &a, "replica-a", 2).await;
    assert!(eventually(WAIT, || retained_n(&b_bus) == Some(2)).await);
    assert!(eventually(WAIT, || retained_n(&c_bus) == Some(2)).await);
    assert_eq!(retained_n(&b_bus), Some(2));
    println!(
        "RETAINED server restart: C loaded n=1 from the store; B watched again {} times; A store \
         failed {} times",
        b.retained_stats().watch_restarts,
        a.retained_stats().types[0].counts.store_failed
    );
    drop(c);
}

/// While the server is away the exporter's queue overflows and the bus
/// drops events of it; the bucket still ends with the latest local state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_queue_that_overflowed_still_stores_the_latest_state() {
    init_tracing();
    const UPDATES: u64 = 6_000;
    let mut server = NatsServer::start();
    let url = server.url();
    let (a_bus, a) = running_replica("replica-a", &url).await;
    publish_stored(&a_bus, &a, "replica-a", 0).await;
    server.kill();
    for n in 1..=UPDATES {
        a_bus.publish_retained(RouteTable::new("replica-a", n));
    }
    server.restart();
    assert!(a_bus.stats().dropped_critical > 0, "the queue overflowed");
    assert!(
        eventually(WAIT, || a.retained_stats().types[0].counts.caught_up >= 1).await,
        "{}",
        a.retained_stats()
    );
    let b_bus = EventBus::new();
    let b = replica(&b_bus, "replica-b", &url).await;
    b_bus.start();
    assert!(
        eventually(WAIT, || retained_n(&b_bus) == Some(UPDATES)).await,
        "B has n={:?}; {}",
        retained_n(&b_bus),
        a.retained_stats()
    );
    let counts = a.retained_stats().types[0].counts;
    println!(
        "RETAINED overflow: {UPDATES} updates while the server was away, {} dropped by the bus, \
         {} stored, caught up {} time(s); B loaded n={UPDATES}",
        a_bus.stats().dropped_critical,
        counts.stored,
        counts.caught_up
    );
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_value_is_counted_and_skipped() {
    init_tracing();
    let server = NatsServer::start();
    let url = server.url();
    let (a_bus, a) = running_replica("replica-a", &url).await;
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    js.publish("$KV.SB_RETAINED.routes.table", "not json".into())
        .await
        .unwrap()
        .await
        .unwrap();

    // At connect: counted, nothing loaded.
    let b_bus = EventBus::new();
    let b = replica(&b_bus, "replica-b", &url).await;
    b_bus.start();
    assert_eq!(retained_n(&b_bus), None);
    assert_eq!(b.retained_stats().types[0].counts.undecodable, 1);

    // Live: the local copy stays what it was.
    publish_stored(&a_bus, &a, "replica-a", 1).await;
    assert!(eventually(WAIT, || retained_n(&b_bus) == Some(1)).await);
    js.publish("$KV.SB_RETAINED.routes.table", "{\"n\": \"x\"}".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(eventually(WAIT, || b.retained_stats().types[0].counts.undecodable == 2).await);
    assert_eq!(retained_n(&b_bus), Some(1));
    // And the next good value goes in.
    publish_stored(&a_bus, &a, "replica-a", 2).await;
    assert!(eventually(WAIT, || retained_n(&b_bus) == Some(2)).await);
    println!(
        "RETAINED undecodable: {} skipped (one at connect, one live), the local copy kept",
        b.retained_stats().types[0].counts.undecodable
    );
}

/// A value written with an invalid trace context (by another producer, or a
/// hostile one) is applied without it and counted, as an import is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_with_an_invalid_trace_context_is_applied_without_it_and_counted() {
    use switchboard_nats::cloudevents::{ID, SOURCE, SPECVERSION, SPEC_VERSION, TRACEPARENT, TYPE};
    init_tracing();
    let server = NatsServer::start();
    let url = server.url();
    // A bridge creates the bucket; the value comes from a raw client.
    let (_a_bus, _a) = running_replica("replica-a", &url).await;
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(SPECVERSION, SPEC_VERSION);
    headers.insert(ID, "raw.1");
    headers.insert(TYPE, "routes.table");
    headers.insert(SOURCE, "another-producer");
    headers.insert(TRACEPARENT, "00-not-a-traceparent");
    let value = serde_json::to_vec(&RouteTable::new("another-producer", 7)).unwrap();
    js.publish_with_headers("$KV.SB_RETAINED.routes.table", headers, value.into())
        .await
        .unwrap()
        .await
        .unwrap();

    let b_bus = EventBus::new();
    let b = replica(&b_bus, "replica-b", &url).await;
    b_bus.start();
    assert_eq!(retained_n(&b_bus), Some(7), "applied");
    let counts = b.retained_stats().types[0].counts;
    assert_eq!((counts.trace_invalid, counts.loaded), (1, 1), "{counts:?}");
    assert_eq!(counts.undecodable, 0);
    let table = b_bus.retained::<RouteTable>().unwrap();
    assert_eq!(table.trace_context(), None, "without the invalid context");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_deleted_under_running_bridges_is_created_again() {
    init_tracing();
    let server = NatsServer::start();
    let url = server.url();
    let (a_bus, a, b_bus, b) = two_replicas_holding_one(&url).await;

    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    js.delete_stream(BUCKET_STREAM).await.unwrap();

    // B keeps its local copy; A's next write creates the bucket again and
    // reaches B once it watches the new bucket.
    assert_eq!(retained_n(&b_bus), Some(1));
    publish_stored(&a_bus, &a, "replica-a", 2).await;
    assert!(
        eventually(WAIT, || retained_n(&b_bus) == Some(2)).await,
        "{}",
        b.retained_stats()
    );
    let (a_stats, b_stats) = (a.retained_stats(), b.retained_stats());
    assert!(a_stats.bucket_created_again + b_stats.bucket_created_again >= 1);
    println!(
        "RETAINED bucket deleted: A store failed {}, created again by A {} / B {}, B watched \
         again {} times, B has n=2",
        a_stats.types[0].counts.store_failed,
        a_stats.bucket_created_again,
        b_stats.bucket_created_again,
        b_stats.watch_restarts
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_jetstream_is_an_error_at_connect() {
    init_tracing();
    let server = NatsServer::start_with(ServerOptions {
        no_jetstream: true,
        ..ServerOptions::default()
    });
    let bus = EventBus::new();
    let error = Bridge::builder(&bus)
        .name("replica-a")
        .import_retained::<RouteTable>("routes.table")
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap_err();
    assert!(matches!(error, BridgeError::NoJetStream { .. }), "{error}");
    assert!(error.to_string().contains("nats-server -js"), "{error}");
    println!("RETAINED no JetStream: {error}");
}

#[test]
fn configuration_errors() {
    let bus = EventBus::new();
    let error = Bridge::builder(&bus)
        .import_retained::<RouteTable>("routes.table")
        .import::<RouteTable>("routes.table", switchboard_nats::Delivery::AtMostOnce)
        .validate()
        .unwrap_err();
    assert!(matches!(error, ConfigError::DuplicateImport { .. }));
    let error = Bridge::builder(&bus)
        .export_retained::<RouteTable>("routes:table")
        .validate()
        .unwrap_err();
    assert!(
        matches!(error, ConfigError::InvalidRetainedType { .. }),
        "{error}"
    );
}

// ---- real second processes ----

/// Runs only as a child of `replicas_in_processes_share_the_state`: a
/// replica that exports and imports the state, publishes `SB_PUBLISH` if
/// set, prints `READY {n}` (its retained state once connected and
/// started), and on `lead` subscribes a leader-only component with retained
/// events and prints `LEADER GOT {n} PUBLISHED {published events}`.
/// Stops when its standard input closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a replica process of replicas_in_processes_share_the_state"]
async fn child_replica() {
    let url = std::env::var("SB_CHILD_URL").expect("started by the parent test");
    let name = std::env::var("SB_CHILD_NAME").expect("started by the parent test");
    let bus = EventBus::new();
    let bridge = replica(&bus, &name, &url).await;
    bus.start();
    if let Ok(n) = std::env::var("SB_PUBLISH") {
        publish_stored(&bus, &bridge, &name, n.parse().unwrap()).await;
    }
    let show = |n: Option<u64>| n.map_or("none".to_owned(), |n| n.to_string());
    println!("READY {}", show(retained_n(&bus)));
    let (lines, commands) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut commands = commands;
    let mut leader = None;
    while let Some(command) = commands.recv().await {
        if command == "lead" {
            let published_before = bus.stats().published;
            let component = bus
                .subscribe_with(
                    SubscribeOptions::new("leader-only", 16)
                        .rust_types(switchboard::TypeSet::new().with::<RouteTable>())
                        .with_retained()
                        .leader_only(),
                )
                .unwrap();
            let first = component.try_recv().ok();
            let n = first.and_then(|e| e.downcast_ref::<RouteTable>().map(|t| t.n));
            println!(
                "LEADER GOT {} PUBLISHED {}",
                show(n),
                bus.stats().published - published_before
            );
            leader = Some(component);
        }
    }
    drop(leader);
    bridge.shutdown().await;
}

/// A replica process, its output read line by line.
struct ReplicaProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl ReplicaProcess {
    fn spawn(url: &str, name: &str, publish: Option<u64>) -> Self {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--ignored", "--exact", "child_replica", "--nocapture"])
            .env("SB_CHILD_URL", url)
            .env("SB_CHILD_NAME", name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if let Some(n) = publish {
            command.env("SB_PUBLISH", n.to_string());
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        Self {
            child,
            stdin,
            lines,
        }
    }

    /// The next line of the child's own output starting with `prefix`.
    fn expect(&self, prefix: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("the replica process printed no {prefix:?} line"));
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_owned();
            }
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
    }

    fn stop(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the replica exited with {status}");
    }
}

/// The seed's scenario, with a process per replica: A publishes the state;
/// B starts later and has it; A is killed and restarts, and has it; B
/// becomes leader and its leader-only component receives the state
/// without anyone publishing it again; the server restarts on its store
/// and a new replica still loads it.
#[test]
fn replicas_in_processes_share_the_state() {
    let mut server = NatsServer::start();
    let url = server.url();

    let a = ReplicaProcess::spawn(&url, "replica-a", Some(7));
    assert_eq!(a.expect("READY"), "7");
    let mut b = ReplicaProcess::spawn(&url, "replica-b", None);
    assert_eq!(
        b.expect("READY"),
        "7",
        "B started later and loaded the state"
    );

    a.kill();
    let a = ReplicaProcess::spawn(&url, "replica-a", None);
    assert_eq!(a.expect("READY"), "7", "A restarted and loaded the state");

    b.send("lead");
    assert_eq!(
        b.expect("LEADER GOT"),
        "7 PUBLISHED 0",
        "B's leader-only component got the state, nobody published it again"
    );

    server.restart();
    let c = ReplicaProcess::spawn(&url, "replica-c", None);
    assert_eq!(
        c.expect("READY"),
        "7",
        "the server restarted on its store, the state is there"
    );
    println!(
        "RETAINED processes: A published n=7 and was killed; B (started later), A (restarted) \
         and C (after a server restart) each loaded n=7; B's leader-only component got n=7 \
         first, 0 events published again"
    );
    a.stop();
    b.stop();
    c.stop();
}
