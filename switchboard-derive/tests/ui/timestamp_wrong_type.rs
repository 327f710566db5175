use switchboard::Event;

#[derive(Event)]
struct Tick {
    #[event(timestamp)]
    seconds: u64,
}

fn main() {}
