use std::time::SystemTime;
use switchboard::Event;

#[derive(Event)]
struct Tick {
    #[event(time)]
    at: SystemTime,
}

fn main() {}
