use switchboard::Event;

#[derive(Event)]
union Bits {
    whole: u64,
    halves: (u32, u32),
}

fn main() {}
