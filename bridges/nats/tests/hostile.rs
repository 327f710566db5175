//! Hostile input and faults against real nats-server processes: bytes on
//! the bridge's subjects that are not what the protocol says, servers that
//! forget their state, forged ids, a second process with the same name.
//!
//! Each test prints a `HOSTILE ...` line with what it measured
//! (`cargo test -p switchboard-nats --test hostile -- --nocapture`).

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{ConnectOptions, HeaderMap};
use common::{eventually, init_tracing, raw_publish, LoadSampled, NatsServer, RouteAdded};
use futures_util::StreamExt;
use switchboard::{Event, EventBus, TypedSubscription};
use switchboard_nats::{cloudevents, Bridge, BridgeError, Delivery, JetStreamOptions};

const WAIT: Duration = Duration::from_secs(60);

/// Short JetStream timings, so that redeliveries happen within the test.
fn fast() -> JetStreamOptions {
    JetStreamOptions::default()
        .ack_wait(Duration::from_secs(1))
        .ack_timeout(Duration::from_millis(500))
        .max_deliver(3)
}

/// Receives `n` events within [`WAIT`] each.
async fn take<T: Event>(subscription: &mut TypedSubscription<T>, n: usize) -> Vec<Arc<T>> {
    common::take(subscription, n, WAIT).await
}

/// Header blocks the server accepts and the async-nats client cannot parse
/// (it drops the connection they arrive on).
const POISON: [&[u8]; 4] = [
    b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id: \xff\xfe\r\n\r\n",
    b"NATS/1.0\r\nce-specversion: 1.0\r\nthis line has no colon\r\n\r\n",
    b"NATS/1.0 abc\r\nce-specversion: 1.0\r\n\r\n",
    b"NATS/1.0\r\nce specversion: 1.0\r\n\r\n",
];

/// A header value with a lone carriage return: the async-nats client's
/// connection task panics on it, and the client is dead for good.
const LONE_CR: &[u8] = b"NATS/1.0\r\nce-specversion: 1.0\r\nx: a\rb\r\n\r\n";

/// A well-formed CloudEvent's headers from `source` with `id`.
fn cloudevent(source: &str, id: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(cloudevents::SPECVERSION, "1.0");
    headers.insert(cloudevents::ID, id);
    headers.insert(cloudevents::TYPE, "route.added");
    headers.insert(cloudevents::SOURCE, source);
    headers
}

fn payload(publisher: &str, n: u64) -> bytes::Bytes {
    serde_json::to_vec(&RouteAdded::new(publisher, n))
        .unwrap()
        .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_headers_in_the_stream_end_in_the_dead_letters_and_cut_nothing_else_off() {
    init_tracing();
    let server = NatsServer::start();
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    let importer = Bridge::builder(&bus_b)
        .name("poison-importer")
        .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .import::<LoadSampled>("load.sampled", Delivery::AtMostOnce)
        .jetstream(fast())
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    let exporter = Bridge::builder(&bus_a)
        .name("poison-exporter")
        .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .export::<LoadSampled>("load.sampled", Delivery::AtMostOnce)
        .jetstream(fast())
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    let mut routes = bus_b.subscribe_to::<RouteAdded>("routes", 256).unwrap();
    let mut loads = bus_b.subscribe_to::<LoadSampled>("loads", 256).unwrap();
    bus_a.start();
    bus_b.start();

    bus_a.publish(RouteAdded::new("poison-exporter", 1));
    take(&mut routes, 1).await;
    for block in POISON {
        raw_publish(server.port(), "sb.route.added", block, b"{}");
    }
    // Events behind the poison, and core traffic meanwhile on the main connection.
    for n in 2..=5 {
        bus_a.publish(RouteAdded::new("poison-exporter", n));
    }
    let mut load_n = 0;
    let poisoned = eventually(WAIT, || {
        load_n += 1;
        bus_a.publish(LoadSampled::new("poison-exporter", load_n));
        importer
            .stats()
            .import("route.added")
            .unwrap()
            .dead_lettered
            >= POISON.len() as u64
    })
    .await;
    assert!(poisoned, "{}", importer.stats());
    let behind: Vec<u64> = take(&mut routes, 4).await.iter().map(|r| r.n).collect();
    let mut sorted = behind.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [2, 3, 4, 5], "every event behind the poison, once");
    let loads_received = take(&mut loads, load_n as usize).await;
    assert!(loads_received.windows(2).all(|w| w[0].n < w[1].n));

    let letters = importer.dead_letters().await.unwrap();
    assert_eq!(letters.len(), POISON.len(), "{letters:?}");
    let sequences: HashSet<u64> = letters.iter().map(|l| l.stream_sequence).collect();
    assert_eq!(sequences.len(), POISON.len());
    let mut unparseable: u64 = 0;
    for letter in &letters {
        println!("dead letter: {letter:?}");
        assert_eq!(letter.subject, "sb.route.added");
        assert_eq!(&letter.payload[..], b"{}");
        assert_eq!(letter.bridge, "poison-importer");
        if letter.reason.contains("cannot parse its headers") {
            // Read back through the message API: kept byte for byte.
            unparseable += 1;
            assert!(POISON.contains(&&letter.headers[..]), "{letter:?}");
            assert_eq!(letter.deliveries, 3, "max_deliver: {letter:?}");
            assert!(letter.parsed_headers().is_err());
            let refused = importer.replay_dead_letter(letter).await.unwrap_err();
            assert!(refused.to_string().contains("correct them"), "{refused}");
        } else {
            // The server stored this one in a form the client parses (it
            // drops a status line's text): not a CloudEvent, rejected on its
            // first delivery that was not cut short by the poison before it.
            assert!(letter.reason.contains("not a CloudEvent"), "{letter:?}");
        }
    }
    assert!(unparseable >= 3, "{letters:?}");
    let stats = importer.stats();
    let counts = stats.import("route.added").unwrap();
    println!(
        "HOSTILE poison headers: {} poison messages, dead-lettered {}, events behind them \
         imported {:?} (late {}), consumer connection disconnects {}, main connection \
         disconnects {}, core events received {load_n}/{load_n}, server gave up {}",
        POISON.len(),
        counts.dead_lettered,
        behind,
        counts.late,
        stats.client.consumer_disconnects,
        stats.client.disconnects,
        stats.consumer.gave_up,
    );
    // Order holds unless the server gave up on an event behind the poison
    // (cut off `max_deliver` times): read back, it goes in at once, counted late.
    assert!(behind == sorted || counts.late > 0, "{behind:?}: {stats}");
    assert_eq!(
        stats.client.disconnects, 0,
        "the main connection is untouched"
    );
    assert!(stats.client.consumer_disconnects >= 1, "{stats}");
    assert_eq!(counts.malformed, POISON.len() as u64, "{stats}");
    assert_eq!(stats.consumer.lost, 0, "{stats}");
    drop(exporter);
}

/// Events `1..=n` received in order, each once: the importer's view.
fn assert_in_order_once(received: &[u64]) {
    assert!(
        received.windows(2).all(|w| w[0] < w[1]),
        "out of order or twice: {received:?}"
    );
}

/// An exporting and an importing bridge of `RouteAdded`, at-least-once.
async fn at_least_once_pair(
    server: &NatsServer,
    label: &str,
) -> (EventBus, Bridge, Bridge, TypedSubscription<RouteAdded>) {
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    let importer = Bridge::builder(&bus_b)
        .name(format!("{label}-importer"))
        .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .jetstream(fast())
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    let exporter = Bridge::builder(&bus_a)
        .name(format!("{label}-exporter"))
        .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .jetstream(fast())
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    let routes = bus_b.subscribe_to::<RouteAdded>("routes", 4096).unwrap();
    bus_a.start();
    bus_b.start();
    (bus_a, exporter, importer, routes)
}

fn drain(routes: &TypedSubscription<RouteAdded>, into: &mut Vec<u64>) {
    into.extend(routes.try_iter().map(|r| r.n));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_without_its_store_gets_the_stream_and_consumer_back() {
    init_tracing();
    let mut server = NatsServer::start();
    let (bus_a, exporter, importer, routes) = at_least_once_pair(&server, "amnesia").await;
    let mut received = Vec::new();
    for n in 1..=100 {
        bus_a.publish(RouteAdded::new("amnesia-exporter", n));
    }
    assert!(
        eventually(WAIT, || {
            drain(&routes, &mut received);
            received.len() == 100
        })
        .await
    );
    // A redeploy without its volume: the stream and the consumer are gone.
    server.restart_empty();
    for n in 101..=300 {
        bus_a.publish(RouteAdded::new("amnesia-exporter", n));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let all = eventually(WAIT, || {
        drain(&routes, &mut received);
        received.len() == 300
    })
    .await;
    let (exporter, importer) = (exporter.stats(), importer.stats());
    println!(
        "HOSTILE server restarted with an empty store: sent 300, received {}, consumer recreated \
         {} (new streams {}), exporter retries {}, importer missed {}",
        received.len(),
        importer.consumer.recreated,
        importer.consumer.new_streams,
        exporter.export("route.added").unwrap().retries,
        importer.import("route.added").unwrap().missed,
    );
    assert!(
        all,
        "received {} of 300\n{exporter}\n{importer}",
        received.len()
    );
    assert_in_order_once(&received);
    assert!(importer.consumer.recreated >= 1, "{importer}");
    assert!(importer.consumer.new_streams >= 1, "{importer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_deleted_while_events_flow_loses_only_what_it_held_and_counts_it() {
    init_tracing();
    let server = NatsServer::start();
    let (bus_a, exporter, importer, routes) = at_least_once_pair(&server, "deleted").await;
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    const SENT: u64 = 400;
    let mut received = Vec::new();
    for n in 1..=SENT {
        bus_a.publish(RouteAdded::new("deleted-exporter", n));
        if n == 150 {
            js.delete_stream("SB").await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // A last event after the stream settled: a gap before it, up to the
    // last one sent above, is counted once it arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    bus_a.publish(RouteAdded::new("deleted-exporter", SENT + 1));
    // Every event is received, or counted as missed once a later one came.
    let accounted = eventually(WAIT, || {
        drain(&routes, &mut received);
        let import = importer.stats().import("route.added").cloned().unwrap();
        received.last() == Some(&(SENT + 1))
            && (received.len() as u64 - 1) + import.missed - import.late == SENT
    })
    .await;
    let (exporter, importer) = (exporter.stats(), importer.stats());
    let import = importer.import("route.added").unwrap();
    println!(
        "HOSTILE stream deleted mid-stream: sent {SENT} (and one after), received {}, missed {} \
         (late {}), consumer recreated {} (new streams {})",
        received.len().saturating_sub(1),
        import.missed,
        import.late,
        importer.consumer.recreated,
        importer.consumer.new_streams,
    );
    assert!(
        accounted,
        "received {}\n{exporter}\n{importer}",
        received.len()
    );
    assert_in_order_once(&received);
    assert!(importer.consumer.new_streams >= 1, "{importer}");
    // The new stream is read from its start: what it stored before the
    // importer found it again is not skipped.
    assert!(received.iter().filter(|n| **n > 150).count() as u64 >= SENT - 150 - import.missed);
}

/// Deletes stream `name` and creates it again with `config` at once: the
/// create is sent before the deletion's answer, as a script running `nats
/// stream rm` and `nats stream add` back to back may. nats-server 2.10 and
/// later may then create the new stream in the old one's directory, which
/// the deletion moves away: a broken stream.
async fn delete_and_create_at_once(client: &async_nats::Client, name: &str, config: &[u8]) {
    let deleted = client.request(format!("$JS.API.STREAM.DELETE.{name}"), bytes::Bytes::new());
    let created = client.request(
        format!("$JS.API.STREAM.CREATE.{name}"),
        bytes::Bytes::copy_from_slice(config),
    );
    let (deleted, created) = tokio::join!(deleted, created);
    deleted.unwrap();
    created.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_deleted_and_created_again_at_once_is_replaced_if_broken() {
    init_tracing();
    let server = NatsServer::start();
    let (bus_a, exporter, importer, routes) = at_least_once_pair(&server, "recreated").await;
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let config = js
        .get_stream("SB")
        .await
        .unwrap()
        .cached_info()
        .config
        .clone();
    let config = serde_json::to_vec(&config).unwrap();
    const ROUNDS: u64 = 20;
    const PER_ROUND: u64 = 50;
    let mut received = Vec::new();
    let mut n = 0;
    for _ in 0..ROUNDS {
        for _ in 0..PER_ROUND {
            n += 1;
            bus_a.publish(RouteAdded::new("recreated-exporter", n));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        delete_and_create_at_once(&client, "SB", &config).await;
        // The bridges find their way to the new stream before the next
        // attack: one event published after it comes through.
        n += 1;
        bus_a.publish(RouteAdded::new("recreated-exporter", n));
        let through = eventually(WAIT, || {
            drain(&routes, &mut received);
            received.last() == Some(&n)
        })
        .await;
        assert!(
            through,
            "event {n} did not come through after the stream was deleted and created again\n{}\n{}",
            exporter.stats(),
            importer.stats()
        );
    }
    let sent = n;
    // Every event is received, or counted as missed once a later one came.
    let accounted = eventually(WAIT, || {
        drain(&routes, &mut received);
        let import = importer.stats().import("route.added").cloned().unwrap();
        received.len() as u64 + import.missed - import.late == sent
    })
    .await;
    let (exporter, importer) = (exporter.stats(), importer.stats());
    let import = importer.import("route.added").unwrap();
    println!(
        "HOSTILE stream deleted and created again at once, {ROUNDS} times: sent {sent}, received \
         {}, missed {} (late {}), new streams {}, broken streams replaced {} (exporter) and {} \
         (importer)",
        received.len(),
        import.missed,
        import.late,
        importer.consumer.new_streams,
        exporter.consumer.streams_replaced,
        importer.consumer.streams_replaced,
    );
    assert!(
        accounted,
        "received {}\n{exporter}\n{importer}",
        received.len()
    );
    assert_in_order_once(&received);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_consumer_is_created_again_after_the_last_message_imported() {
    init_tracing();
    let server = NatsServer::start();
    let (bus_a, exporter, importer, routes) = at_least_once_pair(&server, "orphan").await;
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let mut received = Vec::new();
    for n in 1..=300 {
        bus_a.publish(RouteAdded::new("orphan-exporter", n));
        if n == 100 {
            let stream = js.get_stream("SB").await.unwrap();
            stream.delete_consumer("orphan-importer").await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let all = eventually(WAIT, || {
        drain(&routes, &mut received);
        received.len() == 300
    })
    .await;
    let (exporter, importer) = (exporter.stats(), importer.stats());
    println!(
        "HOSTILE consumer deleted mid-stream: sent 300, received {}, consumer recreated {}, \
         lost {}",
        received.len(),
        importer.consumer.recreated,
        importer.consumer.lost,
    );
    assert!(
        all,
        "received {} of 300\n{exporter}\n{importer}",
        received.len()
    );
    assert_in_order_once(&received);
    assert_eq!(importer.consumer.recreated, 1, "{importer}");
    assert_eq!(importer.consumer.new_streams, 0, "{importer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_deduplicated_by_source_and_id_and_only_once_accepted() {
    init_tracing();
    let server = NatsServer::start();
    let bus = EventBus::new();
    let importer = Bridge::builder(&bus)
        .name("dedup-importer")
        .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .jetstream(fast())
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    let mut routes = bus.subscribe_to::<RouteAdded>("routes", 64).unwrap();
    bus.start();
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let publish = |headers: HeaderMap, payload: bytes::Bytes| {
        let js = js.clone();
        async move {
            js.publish_with_headers("sb.route.added", headers, payload)
                .await
                .unwrap()
                .await
                .unwrap();
        }
    };
    // Two sources that both use the id "order-17": two events.
    publish(cloudevent("source-a", "order-17"), payload("source-a", 1)).await;
    publish(cloudevent("source-b", "order-17"), payload("source-b", 2)).await;
    // The same source and id again: a duplicate.
    let mut again = cloudevent("source-a", "order-17");
    again.insert("Nats-Msg-Id", "another-message-id");
    publish(again, payload("source-a", 1)).await;
    // Undecodable, then its corrected republish with the same id.
    publish(
        cloudevent("source-c", "fix-me"),
        b"{not json".to_vec().into(),
    )
    .await;
    let mut corrected = cloudevent("source-c", "fix-me");
    corrected.insert("Nats-Msg-Id", "corrected");
    publish(corrected, payload("source-c", 3)).await;
    publish(cloudevent("source-c", "last"), payload("source-c", 4)).await;

    let received: Vec<(String, u64)> = take(&mut routes, 4)
        .await
        .iter()
        .map(|r| (r.publisher.clone(), r.n))
        .collect();
    assert_eq!(
        received,
        [
            ("source-a".to_owned(), 1),
            ("source-b".to_owned(), 2),
            ("source-c".to_owned(), 3),
            ("source-c".to_owned(), 4)
        ]
    );
    let stats = importer.stats();
    let counts = stats.import("route.added").unwrap();
    println!(
        "HOSTILE dedup: imported {}, duplicates {}, decode failed {}, dead-lettered {}",
        counts.imported, counts.duplicates, counts.decode_failed, counts.dead_lettered
    );
    assert_eq!(counts.duplicates, 1, "{stats}");
    assert_eq!(counts.decode_failed, 1, "{stats}");
    assert!(
        eventually(WAIT, || importer
            .stats()
            .import("route.added")
            .unwrap()
            .dead_lettered
            == 1)
        .await
    );
    assert!(routes.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_id_far_ahead_is_a_jump_not_a_million_missed_events() {
    init_tracing();
    let server = NatsServer::start();
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    let importer = Bridge::builder(&bus_b)
        .name("jump-importer")
        .import::<RouteAdded>("route.added", Delivery::AtMostOnce)
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    let _exporter = Bridge::builder(&bus_a)
        .name("jump-exporter")
        .export::<RouteAdded>("route.added", Delivery::AtMostOnce)
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    let mut routes = bus_b.subscribe_to::<RouteAdded>("routes", 64).unwrap();
    bus_a.start();
    bus_b.start();
    bus_a.publish(RouteAdded::new("jump-exporter", 1));
    take(&mut routes, 1).await;
    // The genuine exporter's run id, read off the wire.
    let raw = async_nats::connect(server.url()).await.unwrap();
    let mut tap = raw.subscribe("sb.route.added").await.unwrap();
    common::registered(&raw).await;
    bus_a.publish(RouteAdded::new("jump-exporter", 2));
    let tapped = tokio::time::timeout(WAIT, tap.next())
        .await
        .unwrap()
        .unwrap();
    let id = tapped
        .headers
        .unwrap()
        .get(cloudevents::ID)
        .unwrap()
        .to_string();
    let (run, _) = id.split_once('.').unwrap();
    // A forged event of the same run, a million numbers ahead.
    let forged = format!("{run}.1000000");
    let mut headers = cloudevent("jump-exporter", &forged);
    headers.insert(cloudevents::SOURCE, "jump-exporter");
    raw.publish_with_headers("sb.route.added", headers, payload("forger", 999))
        .await
        .unwrap();
    // Processed by the server before the genuine events that follow.
    common::registered(&raw).await;
    for n in 3..=5 {
        bus_a.publish(RouteAdded::new("jump-exporter", n));
    }
    let received: Vec<u64> = take(&mut routes, 5).await.iter().map(|r| r.n).collect();
    assert_eq!(
        received,
        [2, 999, 3, 4, 5],
        "the genuine events still come in"
    );
    let stats = importer.stats();
    let counts = stats.import("route.added").unwrap();
    println!(
        "HOSTILE forged id a million ahead: missed {}, jumps {}, unordered {}, late {}",
        counts.missed, counts.jumps, counts.unordered, counts.late
    );
    assert_eq!(counts.missed, 0, "{stats}");
    assert_eq!(counts.jumps, 1, "{stats}");
    assert_eq!(counts.late, 0, "{stats}");
    assert!(
        counts.missed >= counts.late,
        "lost = missed - late stays >= 0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnects_are_counted_from_the_connection_not_from_events() {
    init_tracing();
    let mut server = NatsServer::start();
    let bus = EventBus::new();
    // A tiny subscription buffer: a flood makes the client report a slow
    // consumer per dropped message, more than its event queue (128) holds.
    let bridge = Bridge::builder(&bus)
        .name("counted")
        .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .import::<LoadSampled>("load.sampled", Delivery::AtMostOnce)
        .jetstream(fast())
        .connect(server.url(), ConnectOptions::new().subscription_capacity(1))
        .await
        .unwrap();
    bus.start();
    let flood = async_nats::connect(server.url()).await.unwrap();
    for n in 0..5_000 {
        flood
            .publish("sb.load.sampled", payload("flood", n))
            .await
            .unwrap();
    }
    flood.flush().await.unwrap();
    server.restart();
    let reconnected = eventually(WAIT, || {
        let client = bridge.stats().client;
        client.connects == 2 && client.consumer_connects == 2
    })
    .await;
    let client = bridge.stats().client;
    println!(
        "HOSTILE flood of 5000 into a buffer of 1, then a restart: slow consumer events counted \
         {}, connects {}, disconnects {}, consumer connects {}, consumer disconnects {}",
        client.slow_consumer,
        client.connects,
        client.disconnects,
        client.consumer_connects,
        client.consumer_disconnects
    );
    assert!(reconnected, "{}", bridge.stats());
    assert_eq!(client.disconnects, 1);
    assert_eq!(client.consumer_disconnects, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_live_bridge_with_the_same_name_is_refused_or_detected() {
    init_tracing();
    let server = NatsServer::start();
    let bus = EventBus::new();
    let first = Bridge::builder(&bus)
        .name("twin")
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    // The same name from another process: it asks the server, and the
    // first bridge answers. (Another process is simulated by the presence
    // protocol's own messages: within one process, names are unique anyway.)
    let raw = async_nats::connect(server.url()).await.unwrap();
    let answer = raw
        .request("_sb.sb.name.twin", "0123456789ABCDEFGHIJKL".into())
        .await
        .unwrap();
    assert_eq!(
        answer.payload.len(),
        22,
        "the holder answers with its instance id"
    );
    // Two processes that started at the same moment both passed that
    // check: their announcements reveal them to each other.
    raw.publish("_sb.sb.name.twin", "0123456789ABCDEFGHIJKL".into())
        .await
        .unwrap();
    raw.flush().await.unwrap();
    assert!(eventually(WAIT, || first.stats().client.name_conflicts == 1).await);
    // A bridge of another prefix may use the name.
    let other_bus = EventBus::new();
    drop(
        Bridge::builder(&other_bus)
            .name("twin-elsewhere")
            .prefix("other")
            .connect(server.url(), ConnectOptions::new())
            .await
            .unwrap(),
    );
    // Two bridges of other names sharing one durable consumer would split
    // its messages: the second is refused too.
    let durable = || JetStreamOptions::default().durable("shared-durable");
    let _holder = Bridge::builder(&EventBus::new())
        .name("durable-a")
        .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .jetstream(durable())
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    let refused = Bridge::builder(&EventBus::new())
        .name("durable-b")
        .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .jetstream(durable())
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, BridgeError::NameTaken { name } if name == "shared-durable"),
        "{refused}"
    );
    println!(
        "HOSTILE same name: the holder answered the probe; conflicts counted {}; a shared \
         durable refused: {refused}",
        first.stats().client.name_conflicts
    );
}

/// Runs only as the child of `a_bridge_name_held_by_another_process_is_refused`:
/// holds the bridge name `twin-process` until its standard input closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the second process of a_bridge_name_held_by_another_process_is_refused"]
async fn child_process_holding_a_bridge_name() {
    let url = std::env::var("SB_CHILD_URL").expect("started by the parent test");
    let bus = EventBus::new();
    let _bridge = Bridge::builder(&bus)
        .name("twin-process")
        .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .connect(url, ConnectOptions::new())
        .await
        .unwrap();
    println!("CHILD READY");
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_name_held_by_another_process_is_refused() {
    init_tracing();
    let server = NatsServer::start();
    let (mut child, started) = common::spawn_child_test(
        "child_process_holding_a_bridge_name",
        &[("SB_CHILD_URL", &server.url())],
    );
    tokio::task::spawn_blocking(move || started.recv_timeout(WAIT))
        .await
        .unwrap()
        .expect("the child started in time");
    let bus = EventBus::new();
    let refused = Bridge::builder(&bus)
        .name("twin-process")
        .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap_err();
    let message = refused.to_string();
    println!("HOSTILE same name in another process: {message}");
    assert!(
        matches!(refused, BridgeError::NameTaken { .. }),
        "{message}"
    );
    assert!(message.contains("own name"), "{message}");
    drop(child.stdin.take());
    let _ = child.wait();
    // Once the other process is gone, the name is free.
    let bus = EventBus::new();
    Bridge::builder(&bus)
        .name("twin-process")
        .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
}

/// Importers stopped mid-stream, with events published while none runs.
/// (Which counter a redelivery after a restart lands in, `unordered` and
/// never `late`, is checked by the unit tests of `order.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_importer_restart_every_event_arrives_and_lost_is_never_negative() {
    init_tracing();
    let server = NatsServer::start();
    let bus_a = EventBus::new();
    let exporter = Bridge::builder(&bus_a)
        .name("restarting-exporter")
        .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .jetstream(fast())
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    bus_a.start();
    let importer = |bus: EventBus| {
        let url = server.url();
        async move {
            Bridge::builder(&bus)
                .name("restarting-importer")
                .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
                .jetstream(fast())
                .connect(url, ConnectOptions::new())
                .await
                .unwrap()
        }
    };
    let mut seen = Vec::new();
    let mut counts = Vec::new();
    let mut next = 1;
    for round in 0..3 {
        let bus = EventBus::new();
        let bridge = importer(bus.clone()).await;
        let routes = bus.subscribe_to::<RouteAdded>("routes", 4096).unwrap();
        bus.start();
        let publish = |from: u64, to: u64| {
            for n in from..to {
                bus_a.publish(RouteAdded::new("restarting-exporter", n));
            }
        };
        if round < 2 {
            // Stopped mid-stream, and more published while no importer runs:
            // what it did not acknowledge comes to the next one.
            publish(next, next + 50);
            let stats = bridge.shutdown().await;
            publish(next + 50, next + 100);
            drain(&routes, &mut seen);
            counts.push(stats.import("route.added").cloned().unwrap());
        } else {
            publish(next, next + 100);
            // What the stopped importers had not acknowledged comes again
            // after `ack_wait`, behind the newer events.
            let sent = next + 99;
            assert!(
                eventually(WAIT, || {
                    drain(&routes, &mut seen);
                    seen.iter().collect::<HashSet<_>>().len() as u64 == sent
                })
                .await
            );
            counts.push(bridge.stats().import("route.added").cloned().unwrap());
        }
        next += 100;
    }
    let unique: HashSet<u64> = seen.iter().copied().collect();
    let missing: Vec<u64> = (1..next).filter(|n| !unique.contains(n)).collect();
    println!(
        "HOSTILE importer restarted twice mid-stream: sent {}, seen {} ({} distinct), per run \
         (missed, late, unordered, duplicates): {:?}, exporter retries {}",
        next - 1,
        seen.len(),
        unique.len(),
        counts
            .iter()
            .map(|c| (c.missed, c.late, c.unordered, c.duplicates))
            .collect::<Vec<_>>(),
        exporter.stats().export("route.added").unwrap().retries,
    );
    assert!(missing.is_empty(), "at least once: {missing:?}");
    for count in &counts {
        assert!(
            count.missed >= count.late,
            "lost = missed - late >= 0: {count:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_core_nats_unparseable_headers_cost_a_counted_reconnect_and_nothing_more() {
    init_tracing();
    let server = NatsServer::start();
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    let importer = Bridge::builder(&bus_b)
        .name("core-poison-importer")
        .import::<RouteAdded>("route.added", Delivery::AtMostOnce)
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    let _exporter = Bridge::builder(&bus_a)
        .name("core-poison-exporter")
        .export::<RouteAdded>("route.added", Delivery::AtMostOnce)
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    let mut routes = bus_b.subscribe_to::<RouteAdded>("routes", 64).unwrap();
    bus_a.start();
    bus_b.start();
    raw_publish(server.port(), "sb.route.added", POISON[0], b"{}");
    // Nothing is stored on core NATS: once reconnected, events flow again.
    let mut n = 0;
    let flowing = eventually(WAIT, || {
        n += 1;
        bus_a.publish(RouteAdded::new("core-poison-exporter", n));
        importer.stats().client.disconnects == 1 && !routes.is_empty()
    })
    .await;
    let stats = importer.stats();
    println!(
        "HOSTILE unparseable headers on core NATS: disconnects {}, connects {}, events imported \
         after it {}",
        stats.client.disconnects,
        stats.client.connects,
        stats.import("route.added").unwrap().imported
    );
    assert!(flowing, "{stats}");
    assert!(take(&mut routes, 1).await[0].n >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_that_kills_the_consumers_client_is_dead_lettered_by_a_new_client() {
    init_tracing();
    let server = NatsServer::start();
    let bus = EventBus::new();
    let importer = Bridge::builder(&bus)
        .name("lone-cr-importer")
        .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .jetstream(fast())
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    let mut routes = bus.subscribe_to::<RouteAdded>("routes", 64).unwrap();
    bus.start();
    raw_publish(server.port(), "sb.route.added", LONE_CR, b"{}");
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    js.publish_with_headers(
        "sb.route.added",
        cloudevent("lone-cr-source", "after"),
        payload("lone-cr-source", 7),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    assert_eq!(take(&mut routes, 1).await[0].n, 7, "the event behind it");
    assert!(
        eventually(WAIT, || importer
            .stats()
            .import("route.added")
            .unwrap()
            .dead_lettered
            == 1)
        .await,
        "{}",
        importer.stats()
    );
    let letters = importer.dead_letters().await.unwrap();
    let stats = importer.stats();
    println!(
        "HOSTILE lone carriage return in a header value: consumer client rebuilt {}, consumer \
         connects {}, dead letter: {}",
        stats.consumer.client_rebuilt, stats.client.consumer_connects, letters[0].reason
    );
    assert_eq!(&letters[0].headers[..], LONE_CR);
    assert!(letters[0].reason.contains("carriage return"), "{letters:?}");
    assert!(stats.consumer.client_rebuilt >= 1, "{stats}");
    assert_eq!(
        stats.client.disconnects, 0,
        "the main connection is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_core_nats_a_header_that_kills_the_client_is_reported_not_hidden() {
    init_tracing();
    let server = NatsServer::start();
    let bus = EventBus::new();
    let importer = Bridge::builder(&bus)
        .name("core-lone-cr-importer")
        .import::<RouteAdded>("route.added", Delivery::AtMostOnce)
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    bus.start();
    assert!(!importer.stats().client.stopped_for_good);
    raw_publish(server.port(), "sb.route.added", LONE_CR, b"{}");
    // Nothing can bring that client back (async-nats' panic); the bridge says so.
    let reported = eventually(WAIT, || importer.stats().client.stopped_for_good).await;
    let stats = importer.stats();
    println!(
        "HOSTILE lone carriage return on core NATS: stopped for good {}, connects {}, disconnects {}",
        stats.client.stopped_for_good, stats.client.connects, stats.client.disconnects
    );
    assert!(reported, "{stats}");
    assert!(stats.to_string().contains("STOPPED FOR GOOD"), "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_replayed_once_its_cause_is_fixed_is_imported() {
    init_tracing();
    let server = NatsServer::start();
    let bus_a = EventBus::new();
    let _exporter = Bridge::builder(&bus_a)
        .name("replay-exporter")
        .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .jetstream(fast())
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    bus_a.start();
    let importer = |max_import_bytes: usize| {
        let url = server.url();
        async move {
            let bus = EventBus::new();
            let bridge = Bridge::builder(&bus)
                .name("replay-importer")
                .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
                .max_import_bytes(max_import_bytes)
                .jetstream(fast())
                .connect(url, ConnectOptions::new())
                .await
                .unwrap();
            let routes = bus.subscribe_to::<RouteAdded>("routes", 64).unwrap();
            bus.start();
            (bridge, routes)
        }
    };
    // Too small a limit: the event is a dead letter.
    let (strict, _) = importer(10).await;
    bus_a.publish(RouteAdded::new("replay-exporter", 1));
    assert!(
        eventually(WAIT, || strict
            .stats()
            .import("route.added")
            .unwrap()
            .dead_lettered
            == 1)
        .await
    );
    strict.shutdown().await;
    // The cause fixed (a limit raised), the dead letter is replayed.
    let (fixed, mut routes) = importer(1 << 20).await;
    let letters = fixed.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(
        letters[0].reason.contains("max_import_bytes"),
        "{letters:?}"
    );
    fixed.replay_dead_letter(&letters[0]).await.unwrap();
    let replayed = take(&mut routes, 1).await;
    assert_eq!(replayed[0].n, 1);
    assert!(fixed.dead_letters().await.unwrap().is_empty());
    println!(
        "HOSTILE dead letter replayed: reason {:?}, imported after the replay {}",
        letters[0].reason,
        fixed.stats().import("route.added").unwrap().imported
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_dead_process_left_unacknowledged_comes_first_and_in_order() {
    init_tracing();
    let server = NatsServer::start();
    let importer = |bus: &EventBus| {
        Bridge::builder(bus)
            .name("resume-importer")
            .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
            .jetstream(fast())
            .connect(server.url(), ConnectOptions::new())
    };
    // The durable consumer exists; its bridge is gone.
    importer(&EventBus::new()).await.unwrap().shutdown().await;
    let bus_a = EventBus::new();
    let exporter = Bridge::builder(&bus_a)
        .name("resume-exporter")
        .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .jetstream(fast())
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    bus_a.start();
    let stored = |n: u64| {
        let exporter = &exporter;
        async move {
            assert!(
                eventually(WAIT, || exporter
                    .stats()
                    .export("route.added")
                    .unwrap()
                    .exported
                    == n)
                .await
            );
        }
    };
    for n in 1..=10 {
        bus_a.publish(RouteAdded::new("resume-exporter", n));
    }
    stored(10).await;
    // A process that took five of them and died before acknowledging any.
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let consumer: async_nats::jetstream::consumer::PullConsumer = js
        .get_stream("SB")
        .await
        .unwrap()
        .get_consumer("resume-importer")
        .await
        .unwrap();
    let mut taken = consumer.fetch().max_messages(5).messages().await.unwrap();
    let mut unacknowledged = 0;
    while let Some(message) = taken.next().await {
        message.unwrap();
        unacknowledged += 1;
    }
    assert_eq!(unacknowledged, 5);
    drop(js);
    for n in 11..=20 {
        bus_a.publish(RouteAdded::new("resume-exporter", n));
    }
    stored(20).await;
    // The bridge starts again: the five come first, then the rest, in order.
    let bus_b = EventBus::new();
    let restarted = importer(&bus_b).await.unwrap();
    let mut routes = bus_b.subscribe_to::<RouteAdded>("routes", 64).unwrap();
    bus_b.start();
    let received: Vec<u64> = take(&mut routes, 20).await.iter().map(|r| r.n).collect();
    println!(
        "HOSTILE restart after a process died holding 5 unacknowledged events: received {received:?}, unordered {}",
        restarted.stats().import("route.added").unwrap().unordered
    );
    assert_eq!(received, (1..=20).collect::<Vec<_>>());
}
