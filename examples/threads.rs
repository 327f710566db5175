//! The bus on plain threads, no async runtime anywhere.
//!
//! A producer publishes sensor readings; a typed consumer blocks in `recv`, a
//! string-filtered one polls with `recv_timeout`, and dropping the bus ends
//! both loops once they have drained their queues.
//!
//! Run with `cargo run --example threads`.

use std::thread;
use std::time::Duration;

use switchboard::{Event, EventBus, RecvTimeoutError, SubscribeOptions, Timestamp};

/// A sensor reading; its event type is the sensor's name.
#[derive(Event)]
struct Reading {
    #[event(type)]
    sensor: &'static str,
    celsius: f64,
    timestamp: Timestamp,
}

fn main() {
    let bus = EventBus::new();
    let all_readings = bus.subscribe_to::<Reading>("logger", 64).unwrap();
    let boiler = bus
        .subscribe_with(SubscribeOptions::new("boiler-guard", 8).event_types(["boiler"]))
        .unwrap();
    bus.start();

    let logger = thread::spawn(move || {
        let mut count = 0;
        for reading in all_readings.iter() {
            count += 1;
            println!("logger: {} = {:.1} °C", reading.sensor, reading.celsius);
        }
        count
    });
    let guard = thread::spawn(move || {
        let mut alarms = 0;
        loop {
            match boiler.recv_timeout(Duration::from_millis(100)) {
                Ok(event) => {
                    let reading = event.downcast_ref::<Reading>().unwrap();
                    if reading.celsius > 90.0 {
                        alarms += 1;
                        println!("guard: boiler too hot ({:.1} °C)", reading.celsius);
                    }
                }
                Err(RecvTimeoutError::Timeout) => println!("guard: quiet for 100 ms"),
                Err(RecvTimeoutError::Closed) => return alarms,
            }
        }
    });

    for step in 0..10 {
        let celsius = 80.0 + 2.5 * f64::from(step);
        bus.publish(Reading {
            sensor: "boiler",
            celsius,
            timestamp: Timestamp::now(),
        });
        bus.publish(Reading {
            sensor: "attic",
            celsius: 20.0 + f64::from(step) / 10.0,
            timestamp: Timestamp::now(),
        });
        thread::sleep(Duration::from_millis(15));
    }
    drop(bus); // ends every subscription once drained

    let logged = logger.join().unwrap();
    let alarms = guard.join().unwrap();
    println!("logged {logged} readings, raised {alarms} alarms");
}
