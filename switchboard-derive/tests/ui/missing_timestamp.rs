use switchboard::Event;

#[derive(Event)]
#[event(type = "route.added")]
struct RouteAdded {
    path: String,
}

fn main() {}
