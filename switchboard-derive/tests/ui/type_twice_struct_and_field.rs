use switchboard::{Event, Timestamp};

#[derive(Event)]
#[event(type = "status")]
struct Status {
    #[event(type)]
    key: String,
    timestamp: Timestamp,
}

fn main() {}
