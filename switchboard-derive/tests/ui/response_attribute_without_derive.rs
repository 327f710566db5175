use switchboard::{Event, Timestamp};

#[derive(Event)]
struct Verdict {
    #[response(responder)]
    validator: String,
    timestamp: Timestamp,
}

fn main() {}
