use switchboard::{Event, Request, Timestamp};

#[derive(Event, Request)]
struct Validate {
    revision: String,
    timestamp: Timestamp,
}

fn main() {}
