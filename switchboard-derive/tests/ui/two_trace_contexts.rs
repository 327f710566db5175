use switchboard::{Event, Timestamp, TraceContext};

#[derive(Event)]
struct Traced {
    timestamp: Timestamp,
    cause: Option<TraceContext>,
    own: Option<TraceContext>,
}

fn main() {}
