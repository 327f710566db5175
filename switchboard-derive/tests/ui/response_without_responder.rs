use switchboard::{Event, Response, Timestamp};

#[derive(Event, Response)]
struct Verdict {
    request_id: String,
    validator: String,
    timestamp: Timestamp,
}

fn main() {}
