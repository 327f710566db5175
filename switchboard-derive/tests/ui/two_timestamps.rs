use std::time::SystemTime;
use switchboard::Event;

#[derive(Event)]
struct Measured {
    #[event(timestamp)]
    started: SystemTime,
    #[event(timestamp)]
    finished: SystemTime,
}

fn main() {}
