use switchboard::{Event, Timestamp};

#[derive(Event)]
struct Traced {
    timestamp: Timestamp,
    #[event(trace)]
    traceparent: String,
}

fn main() {}
