//! The bus's counters on a Prometheus `/metrics` endpoint (feature
//! `prometheus`).
//!
//! Runs a small controller-like workload (a critical and a lossy subscriber
//! that fall behind, a retained leadership event, a request answered, one
//! that times out, a late response), then serves `/metrics` on a loopback
//! port with `tiny_http`, reading the bus through
//! `switchboard::prometheus::BusCollector` at every scrape.
//!
//! ```sh
//! cargo run --example metrics --features prometheus                 # serve until stopped
//! cargo run --example metrics --features prometheus -- --scrape-once # scrape itself over HTTP, print, exit
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use switchboard::prometheus::BusCollector;
use switchboard::{
    Event, EventBus, Request, RequestOptions, Response, SubscribeOptions, Timestamp,
};

#[derive(Event)]
#[event(type = "route.added")]
struct RouteAdded {
    path: String,
    timestamp: Timestamp,
}

#[derive(Event)]
#[event(type = "leader.elected")]
struct LeaderElected {
    node: &'static str,
    timestamp: Timestamp,
}

#[derive(Event, Request)]
#[event(type = "config.validate")]
struct Validate {
    request_id: String,
    timestamp: Timestamp,
}

#[derive(Event, Response)]
#[event(type = "config.verdict")]
struct Verdict {
    request_id: String,
    responder: String,
    timestamp: Timestamp,
}

fn main() {
    let scrape_once = std::env::args().any(|arg| arg == "--scrape-once");
    let bus = EventBus::builder().pre_start_limit(2).build();
    let router = bus.subscribe_to::<RouteAdded>("router", 16).unwrap();
    let validator = {
        let requests = bus.subscribe_to::<Validate>("schema", 8).unwrap();
        // A weak handle: the validator must not keep the bus (and so its
        // own subscription) alive.
        let bus = bus.downgrade();
        thread::spawn(move || {
            for request in requests.iter() {
                let Some(bus) = bus.upgrade() else { break };
                bus.publish(Verdict {
                    request_id: request.request_id.clone(),
                    responder: "schema".into(),
                    timestamp: Timestamp::now(),
                });
            }
        })
    };
    let _renderer = bus.subscribe("renderer", 4).unwrap(); // critical, falls behind
    let _dashboard = bus
        .subscribe_with(SubscribeOptions::new("dashboard", 2).lossy())
        .unwrap(); // lossy, falls behind
    for n in 0..3 {
        // The third overflows the pre-start buffer (limit 2).
        bus.publish(RouteAdded {
            path: format!("/early-{n}"),
            timestamp: Timestamp::now(),
        });
    }
    bus.start();
    for n in 0..8 {
        bus.publish(RouteAdded {
            path: format!("/svc-{n}"),
            timestamp: Timestamp::now(),
        });
    }
    bus.publish_retained(LeaderElected {
        node: "replica-0",
        timestamp: Timestamp::now(),
    });
    let leader = bus.retained::<LeaderElected>().expect("retained");
    let first_route = router.recv().expect("a route").path.clone();
    println!("leader {}, first route {first_route}", leader.node);

    let validate = |revision: &str| Validate {
        request_id: revision.into(),
        timestamp: Timestamp::now(),
    };
    let answered = bus.request::<Verdict, _>(
        validate("rev-1"),
        RequestOptions::new(["schema"]).timeout(Duration::from_secs(5)),
    );
    println!(
        "rev-1: {} verdict(s)",
        answered.expect("schema answers").responses.len()
    );
    let timed_out = bus.request::<Verdict, _>(
        validate("rev-2"),
        RequestOptions::new(["schema", "policy"]).timeout(Duration::from_millis(50)),
    );
    println!("rev-2: {}", timed_out.unwrap_err());
    // An answer to a request that has ended is counted as late.
    bus.publish(Verdict {
        request_id: "rev-0".into(),
        responder: "policy".into(),
        timestamp: Timestamp::now(),
    });

    let mut registry = Registry::default();
    registry.register_collector(Box::new(BusCollector::new(&bus)));
    let registry = Arc::new(Mutex::new(registry));

    let port = if scrape_once { 0 } else { 9898 };
    let server = tiny_http::Server::http(("127.0.0.1", port)).expect("bind a loopback port");
    let address = server.server_addr().to_ip().expect("an IP address");
    let serving = {
        let registry = Arc::clone(&registry);
        thread::spawn(move || serve(&server, &registry, scrape_once))
    };
    if scrape_once {
        print!("{}", scrape(&address.to_string()));
    } else {
        println!("serving http://{address}/metrics (Ctrl-C to stop)");
    }
    serving.join().unwrap();
    drop(bus); // ends the validator's subscription
    validator.join().unwrap();
}

/// Answers `GET /metrics` with the registry's text encoding, and 404
/// otherwise; with `once`, returns after the first request.
fn serve(server: &tiny_http::Server, registry: &Mutex<Registry>, once: bool) {
    for request in server.incoming_requests() {
        let response = if request.url() == "/metrics" {
            let mut body = String::new();
            encode(&mut body, &registry.lock().unwrap()).expect("encoding to a String");
            let content_type = tiny_http::Header::from_bytes(
                "Content-Type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
            .expect("a valid header");
            tiny_http::Response::from_string(body).with_header(content_type)
        } else {
            tiny_http::Response::from_string("not found").with_status_code(404)
        };
        let _ = request.respond(response);
        if once {
            return;
        }
    }
}

/// The body of `GET /metrics` at `address`, as any scraper would fetch it.
fn scrape(address: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect to the metrics endpoint");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}
