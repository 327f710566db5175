use switchboard::{Event, Timestamp};

#[derive(Event)]
struct Borrowed<'a> {
    path: &'a str,
    timestamp: Timestamp,
}

fn main() {}
