//! Two replicas of one service, as two processes, exchanging events and a
//! request through one nats-server.
//!
//! ```sh
//! cargo run -p switchboard-nats --example replicas
//! ```
//!
//! Replica A (this process, on tokio) starts a nats-server (found through
//! `NATS_SERVER` or `PATH`; or uses the one at `NATS_URL`), spawns replica B
//! (a second copy of this program, on plain threads), then:
//!
//! - exports `RouteAdded` at-least-once (JetStream): B imports it;
//! - imports `LoadSampled` at-most-once (core NATS): B exports one per route;
//! - asks B's validators, across processes, to validate a config.
//!
//! Both replicas print their bridge's stats at the end.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use async_nats::ConnectOptions;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use switchboard::{Event, EventBus, Request, RequestOptions, Response};
use switchboard_nats::{Bridge, Delivery};

#[derive(Event, Serialize, Deserialize, Debug)]
#[event(type = "route.added")]
struct RouteAdded {
    path: String,
    timestamp: SystemTime,
}

#[derive(Event, Serialize, Deserialize, Debug)]
#[event(type = "load.sampled")]
struct LoadSampled {
    replica: String,
    routes: u32,
    timestamp: SystemTime,
}

#[derive(Event, Request, Serialize, Deserialize)]
#[event(type = "config.validate")]
struct Validate {
    request_id: String,
    config: String,
    timestamp: SystemTime,
}

#[derive(Event, Response, Serialize, Deserialize)]
#[event(type = "config.verdict")]
struct Verdict {
    request_id: String,
    responder: String,
    ok: bool,
    timestamp: SystemTime,
}

const ROUTES: u32 = 5;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (Some("--replica-b"), Some(url)) => replica_b(&url),
        _ => replica_a(),
    }
}

/// A nats-server of our own on a free port, killed when dropped.
struct Server(Child, std::path::PathBuf);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn start_server() -> Result<(String, Server), Box<dyn std::error::Error>> {
    let binary = std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let store = std::env::temp_dir().join(format!("sb-replicas-{}", std::process::id()));
    let child = Command::new(&binary)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| {
            format!(
                "could not start {binary}: {error}; run scripts/ensure-nats-server, or set \
                 NATS_URL to a running server"
            )
        })?;
    let server = Server(child, store);
    for _ in 0..500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok((format!("nats://127.0.0.1:{port}"), server));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err("nats-server did not start".into())
}

#[tokio::main]
async fn replica_a() -> Result<(), Box<dyn std::error::Error>> {
    let (url, _server) = match std::env::var("NATS_URL") {
        Ok(url) => (url, None),
        Err(_) => start_server().map(|(url, server)| (url, Some(server)))?,
    };

    let bus = EventBus::new();
    let mut loads = bus.subscribe_to::<LoadSampled>("dashboard", 64)?;
    let bridge = Bridge::builder(&bus)
        .name("replica-a")
        .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .import::<LoadSampled>("load.sampled", Delivery::AtMostOnce)
        .connect(url.as_str(), ConnectOptions::new())
        .await?;
    bus.start();

    // Replica B: this very program again, told where the server is.
    let mut b = Command::new(std::env::current_exe()?)
        .args(["--replica-b", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut b_out = BufReader::new(b.stdout.take().ok_or("no stdout")?).lines();
    let ready = b_out.next().transpose()?;
    assert_eq!(ready.as_deref(), Some("ready"), "replica B did not start");

    for n in 1..=ROUTES {
        bus.publish(RouteAdded {
            path: format!("/api/v{n}"),
            timestamp: SystemTime::now(),
        });
    }
    for _ in 0..ROUTES {
        let load = tokio::time::timeout(Duration::from_secs(30), loads.next())
            .await?
            .ok_or("the bus closed")?;
        println!("[a] {} reports {} routes", load.replica, load.routes);
    }

    let verdicts = bridge
        .request::<Verdict, _>(
            Validate {
                request_id: "rev-42".into(),
                config: "listen: 443".into(),
                timestamp: SystemTime::now(),
            },
            RequestOptions::new(["schema", "policy"]).timeout(Duration::from_secs(10)),
        )
        .await?;
    for verdict in &verdicts.responses {
        println!(
            "[a] {} says {} about rev-42",
            verdict.responder,
            if verdict.ok { "ok" } else { "not ok" }
        );
    }

    println!("[a] stats:\n{}", bridge.shutdown().await);
    // Tell B to finish, and relay its stats.
    b.stdin.take().ok_or("no stdin")?.write_all(b"done\n")?;
    for line in b_out {
        println!("{}", line?);
    }
    let status = b.wait()?;
    if !status.success() {
        return Err(format!("replica B failed: {status}").into());
    }
    Ok(())
}

/// Replica B, on plain threads: the bridge owns its runtime.
fn replica_b(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let bus = EventBus::new();
    let routes = bus.subscribe_to::<RouteAdded>("router", 64)?;
    for validator in ["schema", "policy"] {
        let requests = bus.subscribe_to::<Validate>(validator, 16)?;
        let bus = bus.clone();
        std::thread::spawn(move || {
            for request in requests.iter() {
                bus.publish(Verdict {
                    request_id: request.request_id.clone(),
                    responder: validator.into(),
                    ok: !request.config.is_empty(),
                    timestamp: SystemTime::now(),
                });
            }
        });
    }
    let bridge = Bridge::builder(&bus)
        .name("replica-b")
        .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .export::<LoadSampled>("load.sampled", Delivery::AtMostOnce)
        .serve::<Validate, Verdict>("config.validate")
        .connect_blocking(url, ConnectOptions::new())?;
    bus.start();
    println!("ready");
    std::io::stdout().flush()?;

    for n in 1..=ROUTES {
        let route = routes.recv_timeout(Duration::from_secs(30))?;
        println!("[b] route {} added", route.path);
        bus.publish(LoadSampled {
            replica: "replica-b".into(),
            routes: n,
            timestamp: SystemTime::now(),
        });
    }
    // Wait for A to finish its request, then report.
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    println!("[b] stats:\n{}", bridge.shutdown_blocking());
    Ok(())
}
