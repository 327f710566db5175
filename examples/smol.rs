//! The bus under smol: the same `Stream`, another executor, no tokio.
//!
//! Run with `cargo run --example smol`.

use futures::StreamExt;
use switchboard::{Event, EventBus, Timestamp};

#[derive(Event)]
#[event(type = "tick")]
struct Tick(u32, #[event(timestamp)] Timestamp);

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
                bus.publish(Tick(n, Timestamp::now()));
            }
            // The bus is dropped here: the stream ends once drained.
        });
        publisher.join().unwrap();
        println!("sum of ticks: {}", counter.await);
    });
}
