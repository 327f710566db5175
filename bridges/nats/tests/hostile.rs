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

use async_nats::jetstream;
use async_nats::{ConnectOptions, HeaderMap};
use common::{eventually, init_tracing, raw_publish, LoadSampled, NatsServer, RouteAdded};
use futures_util::StreamExt;
use switchboard::{Event, EventBus, TypedSubscription};
use switchboard_nats::{cloudevents, Bridge, BridgeStats, Delivery, JetStreamOptions};

const WAIT: Duration = Duration::from_secs(60);

/// Short JetStream timings, so that redeliveries happen within the test.
fn fast() -> JetStreamOptions {
    JetStreamOptions::default()
        .ack_wait(Duration::from_secs(1))
        .ack_timeout(Duration::from_millis(500))
        .max_deliver(3)
}

/// Receives `n` events, failing the test if they do not come within [`WAIT`].
async fn take<T: Event>(subscription: &mut TypedSubscription<T>, n: usize) -> Vec<Arc<T>> {
    let mut events = Vec::with_capacity(n);
    while events.len() < n {
        match tokio::time::timeout(WAIT, subscription.next()).await {
            Ok(Some(event)) => events.push(event),
            other => panic!(
                "received {} of {n} events, then {:?}",
                events.len(),
                other.map(|e| e.is_some())
            ),
        }
    }
    events
}

/// Header blocks the server accepts and the async-nats client cannot parse
/// (it drops the connection they arrive on).
const POISON: [&[u8]; 4] = [
    b"NATS/1.0\r\nce-specversion: 1.0\r\nce-id: \xff\xfe\r\n\r\n",
    b"NATS/1.0\r\nce-specversion: 1.0\r\nthis line has no colon\r\n\r\n",
    b"NATS/1.0 abc\r\nce-specversion: 1.0\r\n\r\n",
    b"NATS/1.0\r\nce specversion: 1.0\r\n\r\n",
];

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
    assert_eq!(
        behind,
        [2, 3, 4, 5],
        "every event behind the poison, in order"
    );
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
         imported {}/4 in order, consumer connection disconnects {}, main connection disconnects \
         {}, core events received {load_n}/{load_n}, server gave up {}",
        POISON.len(),
        counts.dead_lettered,
        behind.len(),
        stats.client.consumer_disconnects,
        stats.client.disconnects,
        stats.consumer.gave_up,
    );
    assert_eq!(
        stats.client.disconnects, 0,
        "the main connection is untouched"
    );
    assert!(stats.client.consumer_disconnects >= unparseable);
    assert_eq!(counts.malformed, POISON.len() as u64, "{stats}");
    assert_eq!(stats.consumer.lost, 0, "{stats}");
    drop(exporter);
}
