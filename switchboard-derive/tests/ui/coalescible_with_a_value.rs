use switchboard::{Event, Timestamp};

#[derive(Event)]
#[event(coalescible = true)]
struct Load {
    timestamp: Timestamp,
}

fn main() {}
