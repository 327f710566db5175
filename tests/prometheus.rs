//! The Prometheus collector, scraped over HTTP after a known workload
//! (feature `prometheus`).
#![cfg(feature = "derive")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::events::{numbered, Numbered};
use common::GUARD;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use switchboard::prometheus::BusCollector;
use switchboard::{
    Event, EventBus, Request, RequestOptions, Response, SubscribeOptions, Timestamp,
};

#[derive(Event, Request)]
#[event(type = "validate")]
struct Validate {
    request_id: String,
    timestamp: Timestamp,
}

#[derive(Event, Response)]
#[event(type = "verdict")]
struct Verdict {
    request_id: String,
    responder: String,
    timestamp: Timestamp,
}

/// Serves `registry` on `/metrics` of a loopback port until `scrapes`
/// requests were answered; returns the address.
fn serve(registry: Registry, scrapes: usize) -> (String, thread::JoinHandle<()>) {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("bind a loopback port");
    let address = server
        .server_addr()
        .to_ip()
        .expect("an IP address")
        .to_string();
    let registry = Arc::new(Mutex::new(registry));
    let serving = thread::spawn(move || {
        for request in server.incoming_requests().take(scrapes) {
            let response = if request.url() == "/metrics" {
                let mut body = String::new();
                encode(&mut body, &registry.lock().unwrap()).unwrap();
                tiny_http::Response::from_string(body)
            } else {
                tiny_http::Response::from_string("not found").with_status_code(404)
            };
            request.respond(response).unwrap();
        }
    });
    (address, serving)
}

/// `GET path` over HTTP: the status line and the body.
fn get(address: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(GUARD)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// The value of the sample whose line starts with `series ` in `scrape`.
fn sample(scrape: &str, series: &str) -> u64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in\n{scrape}"))
        .parse()
        .unwrap()
}

#[test]
fn a_scrape_over_http_shows_the_workload_s_counters() {
    let bus = EventBus::builder().pre_start_limit(2).build();
    let critical = bus.subscribe("renderer", 2).unwrap();
    let _lossy = bus
        .subscribe_with(SubscribeOptions::new("dashboard", 1).lossy())
        .unwrap();
    let _twin_a = bus.subscribe_to::<Numbered>("twin", 8).unwrap();
    let _twin_b = bus.subscribe_to::<Numbered>("twin", 4).unwrap();
    for n in 0..3 {
        bus.publish(numbered("early", n)); // the third overflows the pre-start buffer
    }
    assert_eq!(bus.stats().pre_start_len, 2);
    let mut registry = Registry::default();
    registry.register_collector(Box::new(BusCollector::new(&bus)));
    let (address, serving) = serve(registry, 3);

    let (_, before_start) = get(&address, "/metrics");
    assert_eq!(sample(&before_start, "switchboard_running"), 0);
    assert_eq!(sample(&before_start, "switchboard_pre_start_buffered"), 2);

    bus.start(); // renderer takes 2, dashboard 1 (1 missed)
    bus.publish(numbered("late", 3)); // renderer and dashboard miss it
    bus.publish_retained(numbered("config", 4)); // and this
    let _validator = bus.subscribe_to::<Validate>("validator", 4).unwrap();
    let timed_out = bus.request::<Verdict, _>(
        Validate {
            request_id: "r1".into(),
            timestamp: Timestamp::UNIX_EPOCH,
        },
        RequestOptions::new(["validator"]).timeout(Duration::from_millis(20)),
    );
    assert!(timed_out.unwrap_err().is_timeout());
    bus.publish(Verdict {
        request_id: "r1".into(),
        responder: "validator".into(),
        timestamp: Timestamp::UNIX_EPOCH,
    }); // late
    drop(critical.try_recv().unwrap()); // received, no longer queued

    let (status, scrape) = get(&address, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(sample(&scrape, "switchboard_running"), 1);
    // 3 early, 1 late, 1 retained, 1 request, 1 late response.
    assert_eq!(sample(&scrape, "switchboard_events_published_total"), 7);
    assert_eq!(
        sample(
            &scrape,
            r#"switchboard_events_dropped_total{reason="pre_start"}"#
        ),
        1
    );
    // renderer missed late, config, the request and the response.
    assert_eq!(
        sample(
            &scrape,
            r#"switchboard_events_dropped_total{reason="critical"}"#
        ),
        4
    );
    // dashboard missed early 1, late, config, the request and the response.
    assert_eq!(
        sample(
            &scrape,
            r#"switchboard_events_dropped_total{reason="observability"}"#
        ),
        5
    );
    assert_eq!(
        sample(
            &scrape,
            r#"switchboard_subscriber_dropped_total{subscriber="renderer",reason="critical"}"#
        ),
        4
    );
    assert_eq!(
        sample(
            &scrape,
            r#"switchboard_subscriber_dropped_total{subscriber="dashboard",reason="observability"}"#
        ),
        5
    );
    assert_eq!(
        sample(
            &scrape,
            r#"switchboard_subscriber_delivered_total{subscriber="renderer"}"#
        ),
        2
    );
    assert_eq!(
        sample(
            &scrape,
            r#"switchboard_subscriber_queued{subscriber="renderer"}"#
        ),
        1
    );
    // Two subscriptions named "twin": summed, one series.
    assert_eq!(
        sample(
            &scrape,
            r#"switchboard_subscriber_capacity{subscriber="twin"}"#
        ),
        12
    );
    assert_eq!(
        sample(
            &scrape,
            r#"switchboard_subscriber_queued{subscriber="twin"}"#
        ),
        8,
        "the 2 replayed, late and config, for each of the two"
    );
    assert_eq!(
        sample(&scrape, "switchboard_subscribers"),
        5,
        "the response route is not counted"
    );
    assert_eq!(sample(&scrape, "switchboard_retained_events"), 1);
    assert_eq!(
        sample(
            &scrape,
            r#"switchboard_requests_total{outcome="timed_out"}"#
        ),
        1
    );
    assert_eq!(
        sample(&scrape, r#"switchboard_requests_total{outcome="answered"}"#),
        0
    );
    assert_eq!(
        sample(
            &scrape,
            r#"switchboard_responses_discarded_total{reason="late"}"#
        ),
        1
    );
    assert!(
        scrape.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );

    let (status, _) = get(&address, "/elsewhere");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    serving.join().unwrap();
}

#[test]
fn a_collector_whose_bus_is_gone_reports_nothing() {
    let bus = EventBus::new();
    let mut registry = Registry::default();
    registry.register_collector(Box::new(BusCollector::new(&bus)));
    drop(bus);
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert_eq!(text, "# EOF\n");
}
