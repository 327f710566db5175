//! A small simulated ingress controller on plain threads.
//!
//! Components subscribe during startup while a watcher already publishes;
//! `start()` replays the early events in order; a typed subscriber, a slow
//! critical subscriber whose drops reach the drop callback, and a lossy
//! metrics subscriber that falls behind. Ends with the bus's counters.
//!
//! Run with `cargo run --release --example demo`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime};

use switchboard::{Event, EventBus, SubscribeOptions};

#[derive(Event)]
#[event(type = "config.changed")]
struct ConfigChanged {
    revision: u64,
    #[event(timestamp)]
    at: SystemTime,
}

#[derive(Event)]
#[event(type = "route.added")]
struct RouteAdded {
    path: String,
    #[event(timestamp)]
    at: SystemTime,
}

#[derive(Event)]
#[event(type = "request.served")]
struct RequestServed {
    status: u16,
    #[event(timestamp)]
    at: SystemTime,
}

fn main() {
    let bus = EventBus::new();

    let critical_drops = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&critical_drops);
    bus.set_drop_callback(Some(Box::new(move |info| {
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= 3 {
            println!(
                "  [drop callback] {} (capacity {}, filter [{}]) missed a {:?} event",
                info.subscriber_name, info.capacity, info.event_types, info.event_type
            );
        }
    })));

    println!("1. startup: the watcher publishes before anyone has subscribed");
    for revision in 1..=3 {
        let delivered = bus.publish(ConfigChanged {
            revision,
            at: SystemTime::now(),
        });
        println!("  published config revision {revision}: delivered to {delivered} (buffered)");
    }
    bus.publish(RouteAdded {
        path: "/api".into(),
        at: SystemTime::now(),
    });
    println!(
        "  {} events wait in the pre-start buffer",
        bus.stats().pre_start_len
    );

    println!("2. components subscribe, in any order");
    let router = bus.subscribe_to::<RouteAdded>("router", 64).unwrap();
    let renderer = bus
        .subscribe_with(
            SubscribeOptions::new("renderer", 4).event_types(["config.changed", "route.added"]),
        )
        .unwrap();
    let metrics = bus
        .subscribe_with(SubscribeOptions::new("metrics", 8).lossy())
        .unwrap();
    let audit = bus.subscribe("audit", 4096).unwrap();

    println!("3. start(): the buffer is replayed in order, then delivery is direct");
    bus.start();
    let audit_thread = thread::spawn(move || {
        let mut lines = Vec::new();
        for event in &audit {
            lines.push(event.event_type().to_string());
        }
        lines
    });
    let router_thread = thread::spawn(move || {
        let mut paths = Vec::new();
        for route in router.iter() {
            paths.push(route.path.clone()); // `route` is an Arc<RouteAdded>: no downcast
        }
        paths
    });
    // The renderer is slow: it renders one event per 20 ms.
    let renderer_thread = thread::spawn(move || {
        let mut revisions = Vec::new();
        for event in &renderer {
            if let Some(config) = event.downcast_ref::<ConfigChanged>() {
                revisions.push(config.revision);
            }
            thread::sleep(Duration::from_millis(20));
        }
        (revisions, renderer.dropped())
    });

    println!("4. traffic: a burst of config changes, routes and request metrics");
    for i in 0..200u64 {
        bus.publish(RequestServed {
            status: if i % 10 == 0 { 503 } else { 200 },
            at: SystemTime::now(),
        });
        if i % 20 == 0 {
            bus.publish(ConfigChanged {
                revision: 4 + i / 20,
                at: SystemTime::now(),
            });
            bus.publish(RouteAdded {
                path: format!("/svc-{i}"),
                at: SystemTime::now(),
            });
        }
    }
    // Nobody reads `metrics` until now: it fell behind and lost events, counted.
    let kept: Vec<_> = metrics.try_iter().collect();
    let errors = kept
        .iter()
        .filter_map(|e| e.downcast_ref::<RequestServed>())
        .filter(|r| r.status >= 500)
        .count();
    println!(
        "  metrics (lossy, capacity 8) kept the first {} events ({errors} of them 5xx), \
         dropped {} (counted as observability drops, no callback)",
        kept.len(),
        metrics.dropped()
    );

    println!("5. final report");
    println!("{}", bus.stats());
    println!(
        "  critical drops reported to the callback: {}",
        critical_drops.load(Ordering::Relaxed)
    );

    drop(metrics);
    drop(bus); // every subscription ends once drained
    let audit_lines = audit_thread.join().unwrap();
    let paths = router_thread.join().unwrap();
    let (revisions, renderer_dropped) = renderer_thread.join().unwrap();
    println!(
        "  audit saw {} events, first four in replay order: {:?}",
        audit_lines.len(),
        &audit_lines[..4]
    );
    println!("  router saw {} routes: {:?} ...", paths.len(), &paths[..3]);
    println!(
        "  renderer rendered config revisions {revisions:?} and missed {renderer_dropped} events"
    );
}
