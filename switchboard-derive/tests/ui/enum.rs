use switchboard::Event;

#[derive(Event)]
enum Leadership {
    Gained,
    Lost,
}

fn main() {}
