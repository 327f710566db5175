use switchboard::Request;

#[derive(Request)]
struct Validate {
    request_id: String,
}

fn main() {}
