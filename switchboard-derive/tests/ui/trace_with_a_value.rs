use switchboard::{Event, Timestamp, TraceContext};

#[derive(Event)]
struct Traced {
    timestamp: Timestamp,
    #[event(trace = "w3c")]
    context: Option<TraceContext>,
}

fn main() {}
