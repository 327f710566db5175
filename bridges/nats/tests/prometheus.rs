//! The bridge's Prometheus collector against a real server: every counter a
//! scrape shows is the bridge's own, dead letters included.

mod common;

use std::time::Duration;

use async_nats::{ConnectOptions, HeaderMap};
use common::{eventually, init_tracing, NatsServer, RouteAdded};
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use switchboard::EventBus;
use switchboard_nats::prometheus::BridgeCollector;
use switchboard_nats::{cloudevents, Bridge, Delivery, JetStreamOptions};

const WAIT: Duration = Duration::from_secs(30);

fn scrape(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_shows_the_bridges_counters_and_its_dead_letters() {
    init_tracing();
    let server = NatsServer::start();
    let (bus_a, bus_b) = (EventBus::new(), EventBus::new());
    let options = || JetStreamOptions::default().ack_wait(Duration::from_secs(1));
    let importer = Bridge::builder(&bus_b)
        .name("scraped-importer")
        .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .jetstream(options())
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    let exporter = Bridge::builder(&bus_a)
        .name("scraped-exporter")
        .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .jetstream(options())
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    let _routes = bus_b.subscribe_to::<RouteAdded>("routes", 64).unwrap();
    bus_a.start();
    bus_b.start();
    let mut registry = Registry::default();
    registry.register_collector(Box::new(BridgeCollector::new(&importer)));
    registry.register_collector(Box::new(BridgeCollector::new(&exporter)));

    bus_a.publish(RouteAdded::new("scraped-exporter", 1));
    // An undecodable message in the stream: a dead letter.
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let mut headers = HeaderMap::new();
    headers.insert(cloudevents::SPECVERSION, "1.0");
    headers.insert(cloudevents::ID, "broken-1");
    headers.insert(cloudevents::TYPE, "route.added");
    headers.insert(cloudevents::SOURCE, "somebody");
    js.publish_with_headers("sb.route.added", headers, "{not json".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let counted = eventually(WAIT, || {
        let counts = importer.stats().import("route.added").cloned().unwrap();
        counts.imported == 1
            && counts.dead_lettered == 1
            && exporter.stats().export("route.added").unwrap().exported == 1
    })
    .await;
    assert!(counted, "{}", importer.stats());

    let text = scrape(&registry);
    for line in [
        r#"switchboard_nats_import_total{bridge="scraped-importer",event_type="route.added",counter="imported"} 1"#,
        r#"switchboard_nats_import_total{bridge="scraped-importer",event_type="route.added",counter="dead_lettered"} 1"#,
        r#"switchboard_nats_import_total{bridge="scraped-importer",event_type="route.added",counter="decode_failed"} 1"#,
        r#"switchboard_nats_export_total{bridge="scraped-exporter",event_type="route.added",counter="exported"} 1"#,
        r#"switchboard_nats_client_total{bridge="scraped-importer",counter="disconnects"} 0"#,
        r#"switchboard_nats_client_stopped_for_good{bridge="scraped-importer"} 0"#,
        r#"switchboard_nats_consumer_total{bridge="scraped-importer",counter="recreated"} 0"#,
        r#"switchboard_nats_export_queue_dropped_total{bridge="scraped-exporter",delivery="at-least-once"} 0"#,
    ] {
        assert!(text.contains(line), "no {line} in\n{text}");
    }
    println!(
        "PROMETHEUS one scrape of two bridges: {} lines",
        text.lines().count()
    );
    // A bridge that stopped reports nothing.
    importer.shutdown().await;
    assert!(eventually(WAIT, || !scrape(&registry).contains("scraped-importer")).await);
    assert!(scrape(&registry).contains("scraped-exporter"));
}
