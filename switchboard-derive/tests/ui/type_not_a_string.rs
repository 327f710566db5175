use switchboard::{Event, Timestamp};

#[derive(Event)]
#[event(type = route.added)]
struct RouteAdded {
    timestamp: Timestamp,
}

fn main() {}
