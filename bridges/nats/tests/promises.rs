//! Every written promise proven against a real server: the examples of the
//! README and the crate docs, the limits that configuration refuses, and
//! the connection errors, each under the connect options that could make
//! them lie.
//!
//! Each test prints a `PROMISE ...` line with what it observed
//! (`cargo test -p switchboard-nats --test promises -- --nocapture`).

mod common;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::ConnectOptions;
use common::{
    eventually, init_tracing, LoadSampled, NatsServer, RouteAdded, ServerOptions, Validate, Verdict,
};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use switchboard::{Event, EventBus, RequestOptions, TypedSubscription};
use switchboard_nats::subject::{SubjectError, MAX_SUBJECT_LEN};
use switchboard_nats::{Bridge, BridgeError, ConfigError, Delivery};

/// Generous: a deadline only keeps a broken test from hanging.
const WAIT: Duration = Duration::from_secs(30);

/// The bridge's README and the crate root, whose examples are mirrored here.
const README: &str = include_str!("../README.md");
const LIB_RS: &str = include_str!("../src/lib.rs");
const BRIDGE_RS: &str = include_str!("../src/bridge.rs");
const REQUEST_RS: &str = include_str!("../src/request.rs");

/// Fails unless every line of a mirror's configuration is still in its doc,
/// so that a doc edit breaks this test instead of leaving the mirror behind.
fn still_documented(doc_name: &str, doc: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            doc.lines().any(|l| l.contains(line.trim())),
            "{doc_name} no longer has `{line}`: update the mirror in tests/promises.rs"
        );
    }
}

/// Receives `n` events within [`WAIT`] each.
async fn take<T: Event>(subscription: &mut TypedSubscription<T>, n: usize) -> Vec<Arc<T>> {
    common::take(subscription, n, WAIT).await
}

/// An event whose type is whatever it carries: for event types too long to
/// spell in a derive.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct Long {
    kind: String,
    n: u64,
    timestamp: SystemTime,
}

impl Event for Long {
    fn event_type(&self) -> &str {
        &self.kind
    }

    fn timestamp(&self) -> SystemTime {
        self.timestamp
    }
}

// ---------------------------------------------------------------------------
// 1. The examples.
// ---------------------------------------------------------------------------

/// One replica configured exactly like the example of the bridge's README.md.
async fn readme_replica(
    bus: &EventBus,
    name: &str,
    url: &str,
) -> Result<Bridge, Box<dyn std::error::Error>> {
    // Mirrors bridges/nats/README.md, "Example" (the name is the parameter: two
    // replicas of it, "controller-0" and "controller-1").
    let bridge = Bridge::builder(bus)
        .name(name) // this replica, stable across restarts
        .export::<RouteAdded>("route.added", Delivery::AtLeastOnce) // must not be lost
        .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .export::<LoadSampled>("load.sampled", Delivery::AtMostOnce) // observability
        .connect(url, async_nats::ConnectOptions::new())
        .await?; // or .connect_blocking(..) from plain threads
    bus.start();
    println!("{}", bridge.stats()); // every counter, per type and direction
    Ok(bridge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_example_connects_and_its_events_cross() {
    init_tracing();
    still_documented(
        "bridges/nats/README.md",
        README,
        &[
            ".name(\"controller-0\")",
            ".export::<RouteAdded>(\"route.added\", Delivery::AtLeastOnce)  // must not be lost",
            ".import::<RouteAdded>(\"route.added\", Delivery::AtLeastOnce)",
            ".export::<LoadSampled>(\"load.sampled\", Delivery::AtMostOnce) // observability",
            ".connect(\"nats://127.0.0.1:4222\", async_nats::ConnectOptions::new())",
            "bus.start();",
        ],
    );
    let server = NatsServer::start();
    let raw = async_nats::connect(server.url()).await.unwrap();
    let mut load_on_the_wire = raw.subscribe("sb.load.sampled").await.unwrap();
    common::registered(&raw).await;

    let (bus0, bus1) = (EventBus::new(), EventBus::new());
    let mut routes0 = bus0.subscribe_to::<RouteAdded>("routes", 64).unwrap();
    let mut routes1 = bus1.subscribe_to::<RouteAdded>("routes", 64).unwrap();
    let load0 = bus0.subscribe_to::<LoadSampled>("load", 64).unwrap();
    let load1 = bus1.subscribe_to::<LoadSampled>("load", 64).unwrap();
    let c0 = readme_replica(&bus0, "controller-0", &server.url())
        .await
        .unwrap_or_else(|e| panic!("the README example does not connect: {e}"));
    let c1 = readme_replica(&bus1, "controller-1", &server.url())
        .await
        .unwrap_or_else(|e| panic!("the second replica does not connect: {e}"));

    // A LoadSampled leaves controller-0 (it is exported)...
    bus0.publish(LoadSampled::new("controller-0", 1));
    let on_wire = tokio::time::timeout(WAIT, load_on_the_wire.next())
        .await
        .expect("the exported LoadSampled on the wire")
        .unwrap();
    assert_eq!(on_wire.subject.as_str(), "sb.load.sampled");

    // ...and RouteAdded crosses both ways.
    bus0.publish(RouteAdded::new("controller-0", 1));
    bus1.publish(RouteAdded::new("controller-1", 1));
    let at0 = take(&mut routes0, 2).await;
    let at1 = take(&mut routes1, 2).await;
    let publishers = |events: &[Arc<RouteAdded>]| {
        let mut p: Vec<String> = events.iter().map(|e| e.publisher.clone()).collect();
        p.sort();
        p
    };
    assert_eq!(publishers(&at0), ["controller-0", "controller-1"]);
    assert_eq!(publishers(&at1), ["controller-0", "controller-1"]);
    assert!(
        eventually(WAIT, || {
            [&c0, &c1].iter().all(|b| {
                b.stats()
                    .import("route.added")
                    .is_some_and(|i| i.imported == 1)
            })
        })
        .await,
        "each replica imports the other's one event: {} / {}",
        c0.stats(),
        c1.stats()
    );

    // The LoadSampled, which was on the wire before the RouteAdded round
    // trip, reached no bus but its own: neither replica imports it.
    assert!(
        eventually(WAIT, || load0.len() == 1).await,
        "controller-0's own LoadSampled, locally"
    );
    assert_eq!(load1.len(), 0, "controller-1 does not import LoadSampled");
    for bridge in [&c0, &c1] {
        assert!(bridge.stats().import("load.sampled").is_none());
    }
    // The counters follow the events by a moment (counted once acknowledged).
    assert!(
        eventually(WAIT, || {
            let s0 = c0.stats();
            s0.export("route.added").is_some_and(|e| e.exported == 1)
                && s0.export("load.sampled").is_some_and(|e| e.exported == 1)
        })
        .await,
        "{}",
        c0.stats()
    );
    let (s0, s1) = (c0.stats(), c1.stats());
    println!(
        "PROMISE docs README: two replicas configured as in the bridge's README connected to \
         a fresh server; route.added crossed both ways (imported {} and {}), load.sampled left \
         controller-0 (exported {}, seen on sb.load.sampled) and reached no other bus ({} at \
         controller-1)",
        s0.import("route.added").unwrap().imported,
        s1.import("route.added").unwrap().imported,
        s0.export("load.sampled").unwrap().exported,
        load1.len()
    );
}

/// One replica configured exactly like the crate root's example (lib.rs).
async fn lib_rs_replica(
    bus: &EventBus,
    url: &str,
    name: &str,
) -> Result<(TypedSubscription<RouteAdded>, Bridge), Box<dyn std::error::Error>> {
    // Mirrors bridges/nats/src/lib.rs, "# Example" (the name is the
    // parameter: "replica-a" as there, and "replica-b").
    let routes = bus.subscribe_to::<RouteAdded>("router", 64)?;
    let bridge = Bridge::builder(bus)
        .name(name)
        .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .connect(url, async_nats::ConnectOptions::new())
        .await?;
    bus.start();
    Ok((routes, bridge))
}

/// The crate docs' examples, one after the other (they share the name
/// "replica-a", which one process allows once at a time), each on a fresh
/// server. src/dead_letter.rs has no example.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crate_docs_examples_connect_and_their_events_cross() {
    init_tracing();
    still_documented(
        "src/lib.rs",
        LIB_RS,
        &[
            "let routes = bus.subscribe_to::<RouteAdded>(\"router\", 64)?;",
            ".name(\"replica-a\")",
            ".export::<RouteAdded>(\"route.added\", Delivery::AtLeastOnce)",
            ".import::<RouteAdded>(\"route.added\", Delivery::AtLeastOnce)",
            ".connect(\"nats://127.0.0.1:4222\", async_nats::ConnectOptions::new())",
        ],
    );
    still_documented(
        "src/bridge.rs",
        BRIDGE_RS,
        &[
            ".name(\"replica-a\")",
            ".export::<RouteAdded>(\"route.added\", Delivery::AtMostOnce)",
            ".connect(\"nats://127.0.0.1:4222\", async_nats::ConnectOptions::new())",
        ],
    );
    still_documented(
        "src/request.rs",
        REQUEST_RS,
        &[
            "let options = RequestOptions::new([\"replica-b\", \"replica-c\"])",
            ".min_responses(1)",
            ".timeout(Duration::from_secs(2));",
            "let result = bridge.request::<Verdict, _>(request, options).await?;",
        ],
    );

    // lib.rs: two replicas, an event published on one arrives on the other.
    let server = NatsServer::start();
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    let (_routes_a, a) = lib_rs_replica(&bus_a, &server.url(), "replica-a")
        .await
        .unwrap_or_else(|e| panic!("the lib.rs example does not connect: {e}"));
    let (mut routes_b, b) = lib_rs_replica(&bus_b, &server.url(), "replica-b")
        .await
        .unwrap_or_else(|e| panic!("a second replica of it does not connect: {e}"));
    bus_a.publish(RouteAdded::new("replica-a", 1));
    let crossed = take(&mut routes_b, 1).await;
    assert_eq!(crossed[0].publisher, "replica-a");
    let lib_rs_stats = b.shutdown().await;
    drop(a.shutdown().await);
    drop(server);

    // bridge.rs `connect`: an at-most-once export, received by an importer.
    let server = NatsServer::start();
    let importer_bus = EventBus::new();
    let _importer = Bridge::builder(&importer_bus)
        .name("connect-example-importer")
        .import::<RouteAdded>("route.added", Delivery::AtMostOnce)
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    let mut imported = importer_bus
        .subscribe_to::<RouteAdded>("routes", 8)
        .unwrap();
    importer_bus.start();
    let connect_example = async {
        // Mirrors bridges/nats/src/bridge.rs, `BridgeBuilder::connect`.
        let bus = EventBus::new();
        let bridge = Bridge::builder(&bus)
            .name("replica-a")
            .export::<RouteAdded>("route.added", Delivery::AtMostOnce)
            .connect(server.url(), async_nats::ConnectOptions::new())
            .await?;
        bus.start();
        Ok::<_, BridgeError>((bus, bridge))
    };
    let (bus, exporter) = connect_example
        .await
        .unwrap_or_else(|e| panic!("the connect example does not connect: {e}"));
    bus.publish(RouteAdded::new("replica-a", 1));
    assert_eq!(take(&mut imported, 1).await[0].publisher, "replica-a");
    drop(exporter.shutdown().await);
    drop(server);

    // request.rs `Bridge::request`: responders "replica-b" and "replica-c"
    // in another process.
    let server = NatsServer::start();
    let serving_bus = EventBus::new();
    for responder in ["replica-b", "replica-c"] {
        let mut requests = serving_bus.subscribe_to::<Validate>(responder, 16).unwrap();
        let bus = serving_bus.clone();
        tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                bus.publish(Verdict {
                    request_id: request.request_id.clone(),
                    responder: responder.into(),
                    ok: true,
                    timestamp: SystemTime::now(),
                });
            }
        });
    }
    let _serving = Bridge::builder(&serving_bus)
        .name("request-example-server")
        .serve::<Validate, Verdict>("config.validate")
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    serving_bus.start();
    let bridge = Bridge::builder(&EventBus::new())
        .name("request-example-asker")
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    let request_example = async {
        // Mirrors bridges/nats/src/request.rs, `Bridge::request`.
        let request = Validate {
            request_id: "rev-7".into(),
            config: String::new(),
            timestamp: std::time::SystemTime::now(),
        };
        let options = RequestOptions::new(["replica-b", "replica-c"])
            .min_responses(1)
            .timeout(Duration::from_secs(2));
        let result = bridge.request::<Verdict, _>(request, options).await?;
        println!(
            "answered: {:?}, missing: {:?}",
            result.responses.len(),
            result.missing
        );
        Ok::<_, switchboard_nats::RemoteRequestError<Verdict>>(result)
    };
    let result = request_example
        .await
        .unwrap_or_else(|e| panic!("the request example fails: {e}"));
    assert!(!result.responses.is_empty());
    assert!(result.responses.iter().all(|v| v.request_id == "rev-7"));

    println!(
        "PROMISE docs crate: lib.rs example connected (at-least-once export+import of one type) \
         and its event crossed (imported {}); bridge.rs connect example's at-most-once event \
         crossed; request.rs example answered by {} of 2 responders; dead_letter.rs has no \
         example",
        lib_rs_stats.import("route.added").unwrap().imported,
        result.responses.len()
    );
}

// ---------------------------------------------------------------------------
// 2. Validation covers NATS's limits.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_limits_are_refused_at_configuration_with_what_to_do() {
    init_tracing();
    let bus = EventBus::new();

    // A 5 000-byte event type: refused, briefly.
    let huge = "x".repeat(5000);
    let builder = Bridge::builder(&bus)
        .name("limits")
        .export::<Long>(huge.clone(), Delivery::AtMostOnce);
    let error = builder.validate().unwrap_err();
    assert!(
        matches!(
            error,
            ConfigError::InvalidEventType {
                reason: SubjectError::TooLong { len: 5003 },
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&MAX_SUBJECT_LEN.to_string()), "{message}");
    assert!(message.len() < 400, "{} bytes: {message}", message.len());

    // connect() says the same without contacting anything: nothing listens
    // on a free port, and a listener of ours is never dialled.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    for url in [
        format!("nats://127.0.0.1:{}", common::free_port()),
        format!("nats://127.0.0.1:{}", listener.local_addr().unwrap().port()),
    ] {
        let error = Bridge::builder(&bus)
            .name("limits")
            .export::<Long>(huge.clone(), Delivery::AtMostOnce)
            .connect(url, ConnectOptions::new())
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                BridgeError::Config(ConfigError::InvalidEventType {
                    reason: SubjectError::TooLong { .. },
                    ..
                })
            ),
            "{error}"
        );
    }
    assert!(
        listener.accept().is_err(),
        "connect dialled the server despite an invalid configuration"
    );

    // The limit itself: a subject of exactly MAX_SUBJECT_LEN is accepted,
    // one byte more is refused.
    let room = MAX_SUBJECT_LEN - "sb.".len();
    let at_limit = |len: usize| {
        Bridge::builder(&bus)
            .export::<Long>("t".repeat(len), Delivery::AtMostOnce)
            .validate()
    };
    assert_eq!(at_limit(room), Ok(()));
    assert!(
        matches!(
            at_limit(room + 1),
            Err(ConfigError::InvalidEventType {
                reason: SubjectError::TooLong { len },
                ..
            }) if len == MAX_SUBJECT_LEN + 1
        ),
        "{:?}",
        at_limit(room + 1)
    );

    // The reserved control token cannot start a prefix.
    for prefix in ["_sb", "_sb.acme"] {
        let error = Bridge::builder(&bus).prefix(prefix).validate().unwrap_err();
        assert!(
            matches!(
                error,
                ConfigError::InvalidPrefix {
                    reason: SubjectError::Reserved,
                    ..
                }
            ),
            "{prefix}: {error:?}"
        );
        assert!(error.to_string().contains("_sb"), "{error}");
    }

    // A huge event type configured twice: the duplicate is reported, briefly.
    let error = Bridge::builder(&bus)
        .import::<Long>(huge.clone(), Delivery::AtMostOnce)
        .import::<Long>(huge.clone(), Delivery::AtMostOnce)
        .validate()
        .unwrap_err();
    assert!(
        matches!(error, ConfigError::DuplicateImport { .. }),
        "{error:?}"
    );
    let duplicate_len = error.to_string().len();
    assert!(duplicate_len < 400, "{duplicate_len} bytes: {error}");

    // A prefix with no room for an event type under it is refused too, even
    // on a bridge without event types (a requester): such a bridge used to
    // connect to nothing but a false NameTaken after 10 s, its control
    // subjects being longer than the server's protocol lines.
    let long_prefix = "p".repeat(5000);
    let builder = Bridge::builder(&bus)
        .name("long-prefix")
        .prefix(long_prefix.clone());
    let error = builder.validate().unwrap_err();
    assert!(
        matches!(
            error,
            ConfigError::InvalidPrefix {
                reason: SubjectError::TooLong { len: 5002 },
                ..
            }
        ),
        "{error:?}"
    );
    let prefix_len = error.to_string().len();
    assert!(prefix_len < 400, "{prefix_len} bytes: {error}");
    let error = builder
        .connect(
            format!("nats://127.0.0.1:{}", common::free_port()),
            ConnectOptions::new(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            BridgeError::Config(ConfigError::InvalidPrefix { .. })
        ),
        "{error}"
    );
    let longest_prefix = "p".repeat(MAX_SUBJECT_LEN - 2);
    assert_eq!(
        Bridge::builder(&bus).prefix(longest_prefix).validate(),
        Ok(())
    );

    println!(
        "PROMISE validation: a 5000-byte event type is refused by validate and connect \
         (TooLong, {} bytes of message, no connection made; imported twice: DuplicateImport in \
         {duplicate_len} bytes); a subject of {MAX_SUBJECT_LEN} bytes is accepted, {} refused; \
         prefixes \"_sb\" and \"_sb.acme\" refused (Reserved); a 5000-byte prefix refused \
         (TooLong, {prefix_len} bytes of message), one of {} accepted",
        message.len(),
        MAX_SUBJECT_LEN + 1,
        MAX_SUBJECT_LEN - 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_that_cannot_fit_the_servers_max_payload_fail_at_connect() {
    init_tracing();
    let server = NatsServer::start_with(ServerOptions {
        config: vec!["max_payload: 512".into()],
        no_jetstream: true,
        ..Default::default()
    });
    let bus = EventBus::new();
    let kind = "h".repeat(450);
    let builder = Bridge::builder(&bus)
        .name("headers-too-large")
        .export::<Long>(kind.clone(), Delivery::AtMostOnce);
    assert_eq!(builder.validate(), Ok(()), "a valid subject");
    let error = builder
        .connect(server.url(), ConnectOptions::new())
        .await
        .expect_err("a bridge whose every message the server would refuse connected");
    let message = error.to_string();
    let BridgeError::Config(ConfigError::HeadersTooLarge {
        bytes, max_payload, ..
    }) = error
    else {
        panic!("not HeadersTooLarge: {message}");
    };
    assert_eq!(max_payload, 512);
    assert!(bytes >= 512, "{bytes}");
    assert!(
        message.contains("shorten its event type")
            && message.contains("raise the server's max_payload"),
        "{message}"
    );

    // The same server takes an ordinary type.
    let ordinary = Bridge::builder(&bus)
        .name("headers-fit")
        .export::<RouteAdded>("route.added", Delivery::AtMostOnce)
        .connect(server.url(), ConnectOptions::new())
        .await;
    assert!(
        ordinary.is_ok(),
        "{:?}",
        ordinary.err().map(|e| e.to_string())
    );
    println!(
        "PROMISE validation: on a server with max_payload 512, a 450-byte event type (headers \
         {bytes} bytes) fails at connect with HeadersTooLarge; route.added connects there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_accepted_event_type_crosses_a_default_server() {
    init_tracing();
    let server = NatsServer::start();
    let kind = "t".repeat(MAX_SUBJECT_LEN - "sb.".len());
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    let _exporter = Bridge::builder(&bus_a)
        .name("longest-exporter")
        .export::<Long>(kind.clone(), Delivery::AtMostOnce)
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap_or_else(|e| panic!("the exporter of the longest type: {e}"));
    let importer = Bridge::builder(&bus_b)
        .name("longest-importer")
        .import::<Long>(kind.clone(), Delivery::AtMostOnce)
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap_or_else(|e| panic!("the importer of the longest type: {e}"));
    let mut received = bus_b.subscribe_to::<Long>("long", 8).unwrap();
    bus_a.start();
    bus_b.start();
    bus_a.publish(Long {
        kind: kind.clone(),
        n: 7,
        timestamp: SystemTime::now(),
    });
    let event = take(&mut received, 1).await;
    assert_eq!((event[0].n, event[0].kind.len()), (7, kind.len()));
    // The counters follow the events by a moment (counted once published).
    assert!(
        eventually(WAIT, || importer
            .stats()
            .import(&kind)
            .is_some_and(|i| i.imported == 1))
        .await,
        "{}",
        importer.stats()
    );
    // The longest accepted prefix leaves room for the control subjects.
    let longest_prefix = Bridge::builder(&EventBus::new())
        .name("longest-prefix")
        .prefix("p".repeat(MAX_SUBJECT_LEN - 2))
        .connect(server.url(), ConnectOptions::new())
        .await;
    assert!(
        longest_prefix.is_ok(),
        "{:?}",
        longest_prefix.err().map(|e| e.to_string())
    );
    println!(
        "PROMISE validation: an event type of {} bytes (subject of {MAX_SUBJECT_LEN}) crossed a \
         default server at-most-once; a bridge with a prefix of {} bytes connected",
        kind.len(),
        MAX_SUBJECT_LEN - 2
    );
}

// ---------------------------------------------------------------------------
// 3. Errors stay true under every ConnectOptions.
// ---------------------------------------------------------------------------

/// What went wrong, as a connection case expects it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Trouble {
    WrongPassword,
    NoServer,
    NoJetStream,
}

/// Connects a bridge with an at-least-once import under `options`, and
/// returns its error.
async fn fail(url: String, name: String, options: ConnectOptions) -> BridgeError {
    Bridge::builder(&EventBus::new())
        .name(name)
        .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .connect(url, options)
        .await
        .expect_err("the bridge connected")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_say_what_is_wrong_under_every_connect_option() {
    init_tracing();
    let guarded = NatsServer::start_with(ServerOptions {
        config: vec!["authorization { user: alice, password: s3cret }".into()],
        ..Default::default()
    });
    let plain = NatsServer::start_with(ServerOptions {
        no_jetstream: true,
        ..Default::default()
    });
    let nowhere = format!("nats://127.0.0.1:{}", common::free_port());

    let mut cases = Vec::new();
    for trouble in [
        Trouble::WrongPassword,
        Trouble::NoServer,
        Trouble::NoJetStream,
    ] {
        for retry in [false, true] {
            for short_timeout in [false, true] {
                let mut options = match trouble {
                    Trouble::WrongPassword => {
                        ConnectOptions::with_user_and_password("alice".into(), "guess".into())
                    }
                    _ => ConnectOptions::new(),
                };
                if retry {
                    options = options.retry_on_initial_connect();
                }
                if short_timeout {
                    options = options.connection_timeout(Duration::from_millis(200));
                }
                let url = match trouble {
                    Trouble::WrongPassword => guarded.url(),
                    Trouble::NoServer => nowhere.clone(),
                    Trouble::NoJetStream => plain.url(),
                };
                let name = format!(
                    "errors-{trouble:?}-{}-{}",
                    if retry { "retry" } else { "once" },
                    if short_timeout { "200ms" } else { "default" }
                );
                cases.push(async move {
                    let error = fail(url, name, options).await;
                    (trouble, retry, short_timeout, error)
                });
            }
        }
    }
    // The retrying cases each wait for the bridge's bound: all at once.
    let results = tokio::time::timeout(
        Duration::from_secs(120),
        futures_util::future::join_all(cases),
    )
    .await
    .expect("every case ends");

    let mut failures = Vec::new();
    for (trouble, retry, short_timeout, error) in &results {
        let message = error.to_string();
        let kind_ok = match (trouble, retry) {
            (Trouble::NoJetStream, _) => matches!(error, BridgeError::NoJetStream { .. }),
            (_, true) => matches!(error, BridgeError::NotConnected { .. }),
            (_, false) => matches!(error, BridgeError::Connect(_)),
        };
        let (must, must_not): (&[&str], &[&str]) = match trouble {
            Trouble::WrongPassword => (&["refused the credentials"], &["JetStream", "overloaded"]),
            Trouble::NoServer => (&["no server answered"], &["JetStream"]),
            Trouble::NoJetStream => (&["JetStream enabled"], &[]),
        };
        let text_ok = must.iter().all(|m| message.contains(m))
            && !must_not.iter().any(|m| message.contains(m));
        println!(
            "case {trouble:?} retry={retry} timeout={}: {}{message}",
            if *short_timeout { "200ms" } else { "default" },
            if kind_ok && text_ok { "" } else { "WRONG: " }
        );
        if !(kind_ok && text_ok) {
            failures.push(format!(
                "{trouble:?} retry={retry} short_timeout={short_timeout}: {message}"
            ));
        }
    }
    println!(
        "PROMISE errors: {} of {} cases (wrong password, no server, no JetStream; with and \
         without retry_on_initial_connect; default and 200 ms connection timeouts) give the \
         right error saying the right thing",
        results.len() - failures.len(),
        results.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}
