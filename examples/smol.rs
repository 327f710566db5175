//! The bus under smol: the same `Stream`, another executor, no tokio.
//!
//! Run with `cargo run --example smol`.

use std::time::SystemTime;

use futures::StreamExt;
use switchboard::{Event, EventBus};

struct Tick(u32);

impl Event for Tick {
    fn event_type(&self) -> &str {
        "tick"
    }
    fn timestamp(&self) -> SystemTime {
        SystemTime::now()
    }
}

fn main() {
    smol::block_on(async {
        let bus = EventBus::new();
        let mut ticks = bus.subscribe_to::<Tick>("counter", 16).unwrap();
        bus.start();

        let counter = smol::spawn(async move {
            let mut sum = 0;
            while let Some(tick) = ticks.next().await {
                sum += tick.0;
            }
            sum
        });
        let publisher = std::thread::spawn(move || {
            for n in 1..=10 {
                bus.publish(Tick(n));
            }
            // The bus is dropped here: the stream ends once drained.
        });
        publisher.join().unwrap();
        println!("sum of ticks: {}", counter.await);
    });
}
