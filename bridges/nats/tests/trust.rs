//! The shipped `config/trusted-prefix.conf`: bridges connected as its
//! `exporter` and `importer` users exchange events on core NATS and
//! JetStream, and requests, while the server refuses every other client's
//! publish on the prefix, so importers never see a forged event.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_nats::jetstream;
use async_nats::{ConnectOptions, HeaderMap, ServerError};
use common::{eventually, init_tracing, NatsServer, RouteAdded, ServerOptions, Validate, Verdict};
use futures_util::StreamExt;
use switchboard::{EventBus, RequestOptions, TypedSubscription};
use switchboard_nats::{cloudevents, Bridge, BridgeError, Delivery, JetStreamOptions};

/// The configuration under test: the shipped file itself.
const CONFIG: &str = include_str!("../config/trusted-prefix.conf");

const WAIT: Duration = Duration::from_secs(20);

fn password(user: &str) -> String {
    format!("{user}-s3cret")
}

/// A server running the shipped configuration, its passwords' variables
/// defined ahead of it (as the environment would).
fn server() -> NatsServer {
    let mut config: Vec<String> = ["EXPORTER", "IMPORTER", "OBSERVER"]
        .iter()
        .map(|user| format!("{user}_PASSWORD: {:?}", password(&user.to_lowercase())))
        .collect();
    config.push(CONFIG.to_owned());
    NatsServer::start_with(ServerOptions {
        config,
        ..ServerOptions::default()
    })
}

fn login(user: &str) -> ConnectOptions {
    ConnectOptions::with_user_and_password(user.into(), password(user))
}

/// A raw client as `user`, with the errors the server reports to it.
async fn raw(server: &NatsServer, user: &str) -> (async_nats::Client, Arc<Mutex<Vec<String>>>) {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&errors);
    let client = login(user)
        .event_callback(move |event| {
            let log = Arc::clone(&log);
            async move {
                if let async_nats::Event::ServerError(ServerError::Other(message)) = event {
                    log.lock().unwrap().push(message.to_lowercase());
                }
            }
        })
        .connect(server.url())
        .await
        .expect("the raw client connects");
    (client, errors)
}

/// Waits until the server has refused a publish on each of `subjects`, in
/// order, and nothing else (compared in lower case, as the client may
/// report them).
async fn refused(errors: &Mutex<Vec<String>>, subjects: &[&str]) {
    let expected: Vec<String> = subjects
        .iter()
        .map(|s| format!("permissions violation for publish to \"{s}\"").to_lowercase())
        .collect();
    eventually(WAIT, || errors.lock().unwrap().len() >= expected.len()).await;
    let errors = errors.lock().unwrap();
    assert_eq!(errors.len(), expected.len(), "{errors:?}");
    for (error, expected) in errors.iter().zip(&expected) {
        assert!(error.contains(expected), "{error:?} is not {expected:?}");
    }
}

/// A well-formed CloudEvent of `route.added` from a forger, and garbage.
fn forgeries() -> [(HeaderMap, Vec<u8>); 2] {
    let mut headers = HeaderMap::new();
    headers.insert(cloudevents::SPECVERSION, "1.0");
    headers.insert(cloudevents::ID, "forged-1");
    headers.insert(cloudevents::TYPE, "route.added");
    // Another bridge's name: without permissions this would pass as its event.
    headers.insert(cloudevents::SOURCE, "exporter");
    let event = serde_json::to_vec(&RouteAdded::new("forger", 666)).unwrap();
    let mut garbage = HeaderMap::new();
    garbage.insert(cloudevents::SPECVERSION, "\u{7f}garbage");
    [(headers, event), (garbage, b"\xff\x00 not json".to_vec())]
}

/// Receives the next event, failing the test if it does not come within [`WAIT`].
async fn next(subscription: &mut TypedSubscription<RouteAdded>) -> Arc<RouteAdded> {
    tokio::time::timeout(WAIT, subscription.next())
        .await
        .expect("an event in time")
        .expect("the subscription is open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_core_nats_only_the_exporter_publishes_on_the_prefix() {
    init_tracing();
    let server = server();
    let (exporting_bus, importing_bus) = (EventBus::new(), EventBus::new());
    let exporter = Bridge::builder(&exporting_bus)
        .name("trust-core-exporter")
        .export::<RouteAdded>("route.added", Delivery::AtMostOnce)
        .connect(server.url(), login("exporter"))
        .await
        .expect("the exporter connects");
    let importer = Bridge::builder(&importing_bus)
        .name("trust-core-importer")
        .import::<RouteAdded>("route.added", Delivery::AtMostOnce)
        .connect(server.url(), login("importer"))
        .await
        .expect("the importer connects");
    let mut routes = importing_bus
        .subscribe_to::<RouteAdded>("routes", 64)
        .unwrap();
    exporting_bus.start();
    importing_bus.start();

    exporting_bus.publish(RouteAdded::new("exporter", 1));
    assert_eq!(next(&mut routes).await.n, 1);

    // Another application, and the importer's own user outside its bridge.
    for user in ["observer", "importer"] {
        let (client, errors) = raw(&server, user).await;
        if user == "importer" {
            // Its control subjects stay open to it.
            client
                .publish("_sb.sb.name.trust-core-importer", "".into())
                .await
                .unwrap();
        }
        for (headers, payload) in forgeries() {
            client
                .publish_with_headers("sb.route.added", headers, payload.into())
                .await
                .unwrap();
        }
        // The server handles a connection's messages in order: once the
        // flush returns, it has refused or routed every publish above.
        client.flush().await.unwrap();
        refused(&errors, &["sb.route.added", "sb.route.added"]).await;
    }

    // Sent after the forgeries were refused: once it arrives, anything
    // forged would have arrived before it.
    exporting_bus.publish(RouteAdded::new("exporter", 2));
    assert_eq!(next(&mut routes).await.n, 2);
    assert!(routes.is_empty());
    // The exporter counts an event once its publish returned, which may be
    // after the importer got it.
    common::eventually(Duration::from_secs(10), || {
        exporter.stats().export("route.added").unwrap().exported == 2
    })
    .await;
    let stats = importer.stats();
    let counts = stats.import("route.added").unwrap();
    assert_eq!(counts.received, 2, "{stats}");
    assert_eq!(counts.imported, 2, "{stats}");
    // The configuration allows all of the bridges' own traffic.
    assert_eq!(stats.client.server_errors, 0, "{stats}");
    let stats = exporter.stats();
    assert_eq!(stats.export("route.added").unwrap().exported, 2, "{stats}");
    assert_eq!(stats.client.server_errors, 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_jetstream_only_the_exporter_stores_events_on_the_prefix() {
    init_tracing();
    let server = server();
    let (exporting_bus, importing_bus) = (EventBus::new(), EventBus::new());
    // First: only the exporter may create the stream.
    let exporter = Bridge::builder(&exporting_bus)
        .name("trust-js-exporter")
        .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .connect(server.url(), login("exporter"))
        .await
        .expect("the exporter connects");
    let importer = Bridge::builder(&importing_bus)
        .name("trust-js-importer")
        .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        // The one consumer the importer user may use.
        .jetstream(JetStreamOptions::default().durable("importer"))
        .connect(server.url(), login("importer"))
        .await
        .expect("the importer connects");
    let mut routes = importing_bus
        .subscribe_to::<RouteAdded>("routes", 64)
        .unwrap();
    exporting_bus.start();
    importing_bus.start();

    exporting_bus.publish(RouteAdded::new("exporter", 1));
    assert_eq!(next(&mut routes).await.n, 1);

    let (observer, errors) = raw(&server, "observer").await;
    let observer_js = jetstream::new(observer.clone());
    for (headers, payload) in forgeries() {
        // Refused, so never acknowledged: the acknowledgement is not awaited.
        drop(
            observer_js
                .publish_with_headers("sb.route.added", headers, payload.into())
                .await
                .unwrap(),
        );
    }
    observer.flush().await.unwrap();
    refused(&errors, &["sb.route.added", "sb.route.added"]).await;

    // Nor may the importer's user make the server write for it: a stream's
    // `republish` or sources could put messages on the prefix.
    let (importer_raw, errors) = raw(&server, "importer").await;
    for subject in ["$JS.API.STREAM.CREATE.FORGED", "$JS.API.STREAM.UPDATE.SB"] {
        importer_raw.publish(subject, "{}".into()).await.unwrap();
    }
    importer_raw.flush().await.unwrap();
    refused(
        &errors,
        &["$JS.API.STREAM.CREATE.FORGED", "$JS.API.STREAM.UPDATE.SB"],
    )
    .await;

    exporting_bus.publish(RouteAdded::new("exporter", 2));
    assert_eq!(next(&mut routes).await.n, 2);
    assert!(routes.is_empty());
    let (exporter_raw, _) = raw(&server, "exporter").await;
    let stored = jetstream::new(exporter_raw)
        .get_stream("SB")
        .await
        .unwrap()
        .cached_info()
        .state
        .messages;
    assert_eq!(stored, 2, "only the exporter's events are stored");
    // The exporter counts an event once the stream's acknowledgement came
    // back, which may be after the importer got it.
    common::eventually(Duration::from_secs(10), || {
        exporter.stats().export("route.added").unwrap().exported == 2
    })
    .await;
    let stats = importer.stats();
    let counts = stats.import("route.added").unwrap();
    assert_eq!(counts.received, 2, "{stats}");
    assert_eq!(counts.imported, 2, "{stats}");
    assert_eq!(stats.client.server_errors, 0, "{stats}");
    let stats = exporter.stats();
    assert_eq!(stats.export("route.added").unwrap().exported, 2, "{stats}");
    assert_eq!(stats.client.server_errors, 0, "{stats}");
}

/// The importer user may only look the stream up: started before any
/// exporter created it, its bridge fails to connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_importer_cannot_create_the_stream() {
    init_tracing();
    let server = server();
    let bus = EventBus::new();
    let error = Bridge::builder(&bus)
        .name("trust-early-importer")
        .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .jetstream(
            JetStreamOptions::default()
                .durable("importer")
                // Each refused request waits this long for a reply that never comes.
                .ack_timeout(Duration::from_millis(100)),
        )
        .connect(server.url(), login("importer"))
        .await
        .unwrap_err();
    assert!(matches!(error, BridgeError::JetStream { .. }), "{error}");
    assert!(error.to_string().contains("creating stream SB"), "{error}");
}

/// Requests stay open: the exporter user asks, a bridge of the importer
/// user serves and answers (twice, to one reply inbox).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_asks_and_the_importer_answers() {
    init_tracing();
    let server = server();
    let serving_bus = EventBus::new();
    for responder in ["schema", "policy"] {
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
    let serving = Bridge::builder(&serving_bus)
        .name("trust-responder")
        .serve::<Validate, Verdict>("config.validate")
        .connect(server.url(), login("importer"))
        .await
        .expect("the responder connects");
    serving_bus.start();
    let asking = Bridge::builder(&EventBus::new())
        .name("trust-requester")
        .connect(server.url(), login("exporter"))
        .await
        .expect("the requester connects");

    let request = Validate {
        request_id: "trusted".into(),
        config: "listen: 443".into(),
        timestamp: SystemTime::now(),
    };
    let result = asking
        .request::<Verdict, _>(
            request,
            RequestOptions::new(["schema", "policy"]).timeout(WAIT),
        )
        .await
        .unwrap();
    assert!(result.is_complete(), "{result:?}");
    assert_eq!(serving.stats().client.server_errors, 0);
    assert_eq!(asking.stats().client.server_errors, 0);
}

/// The shared state of the fleet: a retained type.
#[derive(switchboard::Event, serde::Serialize, serde::Deserialize, Debug)]
#[event(type = "routes.table")]
struct RouteTable {
    n: u64,
    timestamp: SystemTime,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_exporter_writes_retained_state() {
    init_tracing();
    let server = server();
    let (exporting_bus, importing_bus) = (EventBus::new(), EventBus::new());
    exporting_bus.start();
    // First: only the exporter may create the bucket.
    let exporter = Bridge::builder(&exporting_bus)
        .name("trust-kv-exporter")
        .export_retained::<RouteTable>("routes.table")
        .import_retained::<RouteTable>("routes.table")
        .connect(server.url(), login("exporter"))
        .await
        .expect("the exporter connects");
    exporting_bus.publish_retained(RouteTable {
        n: 1,
        timestamp: SystemTime::now(),
    });
    assert!(
        eventually(WAIT, || exporter.retained_stats().types[0].counts.stored
            == 1)
        .await,
        "{}",
        exporter.retained_stats()
    );
    let importer = Bridge::builder(&importing_bus)
        .name("trust-kv-importer")
        .import_retained::<RouteTable>("routes.table")
        .connect(server.url(), login("importer"))
        .await
        .expect("the importer connects");
    importing_bus.start();
    assert_eq!(importing_bus.retained::<RouteTable>().unwrap().n, 1);

    // Neither the observer nor the importer may write to the bucket.
    let forged = serde_json::to_vec(&RouteTable {
        n: 666,
        timestamp: SystemTime::now(),
    })
    .unwrap();
    for user in ["observer", "importer"] {
        let (client, errors) = raw(&server, user).await;
        client
            .publish("$KV.SB_RETAINED.routes.table", forged.clone().into())
            .await
            .unwrap();
        client.flush().await.unwrap();
        refused(&errors, &["$KV.SB_RETAINED.routes.table"]).await;
    }
    // Nor clear it: the importing bridge's tombstone is refused.
    assert!(importer.clear_retained::<RouteTable>().await.is_err());

    exporting_bus.publish_retained(RouteTable {
        n: 2,
        timestamp: SystemTime::now(),
    });
    assert!(
        eventually(WAIT, || importing_bus.retained::<RouteTable>().unwrap().n
            == 2)
        .await
    );
    exporter.clear_retained::<RouteTable>().await.unwrap();
    assert!(eventually(WAIT, || importing_bus.retained::<RouteTable>().is_none()).await);
    let counts = importer.retained_stats().types[0].counts;
    assert_eq!(
        (
            counts.loaded,
            counts.updated,
            counts.cleared,
            counts.undecodable
        ),
        (1, 1, 1, 0),
        "{}",
        importer.retained_stats()
    );
    // The one server error: the refused tombstone.
    assert_eq!(importer.stats().client.server_errors, 1);
}
