//! One side of the at-most-once bridge per process, for instruction counts
//! (callgrind) and allocation profiles: the other side runs in a child
//! process, so that only the side measured is counted.
//!
//! ```sh
//! cargo bench -p switchboard-nats --bench profile --no-run   # prints the binary's path
//! valgrind --tool=callgrind --callgrind-out-file=export.out BINARY export 4000
//! valgrind --tool=callgrind --callgrind-out-file=import.out BINARY import 4000
//! callgrind_annotate export.out | head -60
//! ```
//!
//! `SB_PROFILE_MODE=structured` profiles CloudEvents structured mode.
//!
//! - `export N`: bus A publishes N events, its bridge exports them; a child
//!   process receives them with a plain subscription and says when it has
//!   all of them.
//! - `import N`: a child process's bridge exports N events, this process's
//!   bridge imports them into bus B; bus B's count goes back to the child
//!   every 1 000 events, which keeps at most 2 000 in flight (nothing is
//!   dropped however slowly this side runs).
//!
//! The cost per event is the difference between two runs (N and 2N)
//! divided by N: setup and teardown cancel out. Without arguments (as
//! `cargo bench` runs it), it runs both sides once and prints the wall time
//! per event.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Child, Command};
use std::time::Instant;

use async_nats::{ConnectOptions, Subscriber};
use common::{NatsServer, RouteAdded};
use futures_util::StreamExt;
use switchboard::EventBus;
use switchboard_nats::{Bridge, ContentMode, Delivery, ExportQueue};

const PREFIX: &str = "prof";

/// The exporters' content mode: binary, or structured with
/// `SB_PROFILE_MODE=structured` (the child inherits it).
fn mode() -> ContentMode {
    match std::env::var("SB_PROFILE_MODE").as_deref() {
        Ok("structured") => ContentMode::Structured,
        _ => ContentMode::Binary,
    }
}
const SUBJECT: &str = "prof.route.added";
/// The importing side's count, every `PROGRESS` events.
const PROGRESS_SUBJECT: &str = "prof.progress";
/// The exporting side's "all received".
const DONE_SUBJECT: &str = "prof.done";
const PROGRESS: u64 = 1000;
/// Events the feeder sends ahead of the importer's count.
const WINDOW: u64 = 2000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let number = |arg: Option<&String>| -> u64 {
        arg.and_then(|n| n.parse().ok())
            .expect("a number of events")
    };
    match args.first().map(String::as_str) {
        Some("export") => {
            let server = NatsServer::start();
            runtime.block_on(export(&server.url(), number(args.get(1))));
        }
        Some("import") => {
            let server = NatsServer::start();
            runtime.block_on(import(&server.url(), number(args.get(1))));
        }
        Some("sink") => runtime.block_on(sink(&args[1], number(args.get(2)))),
        Some("feed") => runtime.block_on(feed(&args[1], number(args.get(2)))),
        // `cargo bench` passes `--bench`: one run of each side.
        _ => {
            let server = NatsServer::start();
            let n = 20_000;
            for (side, run) in [("export", true), ("import", false)] {
                let start = Instant::now();
                if run {
                    runtime.block_on(export(&server.url(), n));
                } else {
                    runtime.block_on(import(&server.url(), n));
                }
                let micros = start.elapsed().as_secs_f64() * 1e6 / n as f64;
                println!("at-most-once {side}: {micros:.1} µs per event (wall, {n} events)");
            }
        }
    }
}

/// This binary in another mode, as a child process.
fn spawn(mode: &str, url: &str, n: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([mode, url, &n.to_string()])
        .spawn()
        .expect("the other side")
}

async fn export(url: &str, n: u64) {
    let client = async_nats::connect(url).await.unwrap();
    let mut done = client.subscribe(DONE_SUBJECT).await.unwrap();
    client.flush().await.unwrap();
    let mut child = spawn("sink", url, n);
    // The sink says it is subscribed, then that it has everything.
    done.next().await.expect("the sink is ready");
    let bus = EventBus::new();
    let _bridge = Bridge::builder(&bus)
        .name("profile-export")
        .prefix(PREFIX)
        .export_with_mode::<RouteAdded>("route.added", Delivery::AtMostOnce, mode())
        .export_queue(Delivery::AtMostOnce, ExportQueue::critical(1 << 17))
        .connect(url, ConnectOptions::new())
        .await
        .expect("the exporting bridge");
    bus.start();
    for n in 1..=n {
        bus.publish(RouteAdded::new("profile", n));
    }
    done.next().await.expect("the sink has every event");
    child.wait().unwrap();
}

async fn sink(url: &str, n: u64) {
    let client = async_nats::connect(url).await.unwrap();
    let mut events = client.subscribe(SUBJECT).await.unwrap();
    client.flush().await.unwrap();
    client.publish(DONE_SUBJECT, "ready".into()).await.unwrap();
    for _ in 0..n {
        events.next().await.expect("an event");
    }
    client.publish(DONE_SUBJECT, "done".into()).await.unwrap();
    client.flush().await.unwrap();
}

async fn import(url: &str, n: u64) {
    let client = async_nats::connect(url).await.unwrap();
    let bus = EventBus::new();
    let _bridge = Bridge::builder(&bus)
        .name("profile-import")
        .prefix(PREFIX)
        .import::<RouteAdded>("route.added", Delivery::AtMostOnce)
        .connect(url, ConnectOptions::new())
        .await
        .expect("the importing bridge");
    let mut routes = bus.subscribe_to::<RouteAdded>("profile", 1 << 16).unwrap();
    bus.start();
    let mut child = spawn("feed", url, n);
    for received in 1..=n {
        routes.next().await.expect("an event");
        if received % PROGRESS == 0 || received == n {
            let count = received.to_string().into();
            client.publish(PROGRESS_SUBJECT, count).await.unwrap();
        }
    }
    client.flush().await.unwrap();
    child.wait().unwrap();
}

async fn feed(url: &str, n: u64) {
    let client = async_nats::connect(url).await.unwrap();
    let mut progress = client.subscribe(PROGRESS_SUBJECT).await.unwrap();
    client.flush().await.unwrap();
    let bus = EventBus::new();
    let _bridge = Bridge::builder(&bus)
        .name("profile-feed")
        .prefix(PREFIX)
        .export_with_mode::<RouteAdded>("route.added", Delivery::AtMostOnce, mode())
        .export_queue(Delivery::AtMostOnce, ExportQueue::critical(1 << 16))
        .connect(url, ConnectOptions::new())
        .await
        .expect("the feeding bridge");
    bus.start();
    let mut received = 0;
    for sent in 1..=n {
        while sent - received > WINDOW {
            received = count(&mut progress).await;
        }
        bus.publish(RouteAdded::new("profile", sent));
    }
    while received < n {
        received = count(&mut progress).await;
    }
}

/// The importer's next count.
async fn count(progress: &mut Subscriber) -> u64 {
    let message = progress.next().await.expect("the importer's count");
    std::str::from_utf8(&message.payload)
        .unwrap()
        .parse()
        .unwrap()
}
