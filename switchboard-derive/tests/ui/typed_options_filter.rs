// Typed subscribe options filter by their type only: adding a filter by type
// string, or other Rust types, does not compile (rather than be refused, or
// ignored, at subscribe time).
use switchboard::{Event, SubscribeOptions, Timestamp, TypeSet};

#[derive(Event)]
struct RouteAdded {
    timestamp: Timestamp,
}

#[derive(Event)]
struct RouteRemoved {
    timestamp: Timestamp,
}

fn main() {
    let _ = SubscribeOptions::of::<RouteAdded>("router", 8).event_types(["route.removed"]);
    let _ = SubscribeOptions::of::<RouteAdded>("router", 8)
        .lossy()
        .rust_types(TypeSet::new().with::<RouteRemoved>());
}
