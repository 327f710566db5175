use switchboard::{Event, Timestamp};

#[derive(Event)]
#[event(typ = "route.added")]
struct RouteAdded {
    timestamp: Timestamp,
}

fn main() {}
