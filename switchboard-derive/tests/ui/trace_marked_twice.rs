use switchboard::{Event, Timestamp, TraceContext};

#[derive(Event)]
struct Traced {
    timestamp: Timestamp,
    #[event(trace)]
    cause: Option<TraceContext>,
    #[event(trace)]
    own: Option<TraceContext>,
}

fn main() {}
