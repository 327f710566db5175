use switchboard::{Event, Timestamp};

#[derive(Event)]
#[event(type = "")]
struct RouteAdded {
    timestamp: Timestamp,
}

fn main() {}
