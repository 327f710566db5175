use switchboard::{Event, Timestamp};

#[derive(Event)]
#[event(type = "a")]
#[event(type = "b")]
struct RouteAdded {
    timestamp: Timestamp,
}

fn main() {}
