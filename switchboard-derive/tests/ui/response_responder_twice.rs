use switchboard::{Event, Response, Timestamp};

#[derive(Event, Response)]
#[response(responder = "schema")]
struct Verdict {
    request_id: String,
    #[response(responder)]
    validator: String,
    timestamp: Timestamp,
}

fn main() {}
