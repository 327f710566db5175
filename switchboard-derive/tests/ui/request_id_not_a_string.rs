use switchboard::{Event, Request, Timestamp};

#[derive(Event, Request)]
struct Validate {
    #[request(id)]
    revision: u64,
    timestamp: Timestamp,
}

fn main() {}
