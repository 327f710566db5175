//! Two replicas of one service, as two processes, exchanging events, a
//! request and their shared state through one nats-server.
//!
//! ```sh
//! cargo run -p switchboard-nats --example replicas
//! ```
//!
//! This process supervises: it starts a nats-server (found through
//! `NATS_SERVER` or `PATH`; or uses the one at `NATS_URL`) and runs two
//! copies of this program, replica B (on plain threads) then replica A (on
//! tokio). Replica A, the leader:
//!
//! - exports `RouteAdded` at-least-once (JetStream): B imports it;
//! - imports `LoadSampled` at-most-once (core NATS): B exports one per route;
//! - asks B's validators, across processes, to validate a config;
//! - publishes its `RouteTable` retained: both replicas export and import
//!   it as retained state, kept in NATS.
//!
//! Then the supervisor kills A (SIGKILL). B becomes leader: its leader-only
//! component subscribes with retained events and receives A's route table
//! at once, though nobody publishes it again. Both replicas print their
//! bridge's stats.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use async_nats::ConnectOptions;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use switchboard::{Event, EventBus, Request, RequestOptions, Response, SubscribeOptions};
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

/// The leader's state: retained in each bus, and in NATS for the fleet.
#[derive(Event, Serialize, Deserialize, Debug)]
#[event(type = "routes.table")]
struct RouteTable {
    leader: String,
    routes: Vec<String>,
    timestamp: SystemTime,
}

const ROUTES: u32 = 5;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (Some("--replica-a"), Some(url)) => replica_a(&url),
        (Some("--replica-b"), Some(url)) => replica_b(&url),
        _ => supervise(),
    }
}

/// A replica process, its output lines relayed through a channel.
struct Replica {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Replica {
    fn spawn(role: &str, url: &str) -> Result<Self, Box<dyn std::error::Error>> {
        let mut child = Command::new(std::env::current_exe()?)
            .args([role, url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        Ok(Self { child, lines })
    }

    /// Prints the replica's lines until one is `marker`.
    fn until(&self, marker: &str) -> Result<(), Box<dyn std::error::Error>> {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .map_err(|_| format!("a replica did not say {marker:?}"))?;
            if line == marker {
                return Ok(());
            }
            println!("{line}");
        }
    }

    fn tell(&mut self, line: &str) -> Result<(), Box<dyn std::error::Error>> {
        let stdin = self.child.stdin.as_mut().ok_or("no stdin")?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }
}

fn supervise() -> Result<(), Box<dyn std::error::Error>> {
    let (url, _server) = match std::env::var("NATS_URL") {
        Ok(url) => (url, None),
        Err(_) => start_server().map(|(url, server)| (url, Some(server)))?,
    };
    let mut b = Replica::spawn("--replica-b", &url)?;
    b.until("ready")?;
    let mut a = Replica::spawn("--replica-a", &url)?;
    a.until("state stored")?;

    println!("[supervisor] killing replica A");
    a.child.kill()?;
    a.child.wait()?;
    b.tell("lead")?;
    b.until("led")?;
    b.tell("done")?;
    for line in b.lines.iter() {
        println!("{line}");
    }
    let status = b.child.wait()?;
    if !status.success() {
        return Err(format!("replica B failed: {status}").into());
    }
    Ok(())
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

/// Replica A, the leader, on tokio.
#[tokio::main]
async fn replica_a(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let bus = EventBus::new();
    let mut loads = bus.subscribe_to::<LoadSampled>("dashboard", 64)?;
    let bridge = Bridge::builder(&bus)
        .name("replica-a")
        .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .import::<LoadSampled>("load.sampled", Delivery::AtMostOnce)
        .export_retained::<RouteTable>("routes.table")
        .import_retained::<RouteTable>("routes.table")
        .connect(url, ConnectOptions::new())
        .await?;
    bus.start();

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

    // The leader's state, for whoever leads next.
    bus.publish_retained(RouteTable {
        leader: "replica-a".into(),
        routes: (1..=ROUTES).map(|n| format!("/api/v{n}")).collect(),
        timestamp: SystemTime::now(),
    });
    while bridge.retained_stats().types[0].counts.stored == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("[a] stats:\n{}{}", bridge.stats(), bridge.retained_stats());
    println!("state stored");
    // Wait to be killed.
    std::future::pending::<()>().await;
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
        .export_retained::<RouteTable>("routes.table")
        .import_retained::<RouteTable>("routes.table")
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
    // Told to lead once A is gone, then to finish.
    let mut leader_only = None;
    for line in std::io::stdin().lines() {
        match line?.as_str() {
            "lead" => {
                // A leader-only component, subscribed when B becomes leader:
                // it gets the fleet's state first, without anyone
                // publishing it again.
                let published = bus.stats().published;
                let component = bus.subscribe_with(
                    SubscribeOptions::of::<RouteTable>("route-reconciler", 16)
                        .with_retained()
                        .leader_only(),
                )?;
                let table = component.recv_timeout(Duration::from_secs(30))?;
                println!(
                    "[b] leading; the route table of {} is here: {:?} ({} events published \
                     since)",
                    table.leader,
                    table.routes,
                    bus.stats().published - published
                );
                leader_only = Some(component);
                println!("led");
            }
            "done" => break,
            _ => {}
        }
    }
    drop(leader_only);
    println!("[b] stats:\n{}{}", bridge.stats(), bridge.retained_stats());
    bridge.shutdown_blocking();
    Ok(())
}
