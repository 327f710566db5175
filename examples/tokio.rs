//! The bus under tokio: subscriptions are `Stream`s.
//!
//! Two async consumers (one typed), publishers on a tokio task and on a plain
//! thread, and a clean end when the bus is dropped.
//!
//! Run with `cargo run --example tokio`.

use std::time::Duration;

use futures::StreamExt;
use switchboard::{Event, EventBus, Timestamp};

#[derive(Event)]
#[event(type = "deployed")]
struct Deployed {
    service: String,
    replicas: u32,
    timestamp: Timestamp,
}

#[tokio::main]
async fn main() {
    let bus = EventBus::new();
    let mut deployments = bus.subscribe_to::<Deployed>("scaler", 32).unwrap();
    let mut audit = bus.subscribe("audit", 32).unwrap();
    bus.start();

    let scaler = tokio::spawn(async move {
        let mut replicas = 0;
        while let Some(deployed) = deployments.next().await {
            replicas += deployed.replicas;
            println!(
                "scaler: {} now has {} replicas",
                deployed.service, deployed.replicas
            );
        }
        replicas
    });
    let auditor = tokio::spawn(async move {
        let mut lines = 0;
        while let Some(event) = audit.next().await {
            lines += 1;
            println!("audit: {}", event.event_type());
        }
        lines
    });

    // Publishing never blocks, so it is fine from async code and from threads.
    let from_thread = {
        let bus = bus.clone();
        std::thread::spawn(move || {
            bus.publish(Deployed {
                service: "billing".into(),
                replicas: 2,
                timestamp: Timestamp::now(),
            });
        })
    };
    for (i, service) in ["api", "web", "worker"].into_iter().enumerate() {
        bus.publish(Deployed {
            service: service.into(),
            replicas: i as u32 + 1,
            timestamp: Timestamp::now(),
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    from_thread.join().unwrap();
    drop(bus); // both streams end once drained

    let replicas = scaler.await.unwrap();
    let lines = auditor.await.unwrap();
    println!("{replicas} replicas deployed, {lines} audit lines");
}
