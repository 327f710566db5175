//! The events the fan-out benchmarks publish: one small event type for the
//! universal workloads and 64 distinct Rust types for typed dispatch.

#![allow(dead_code)] // each benchmark uses a different part

use std::any::{Any, TypeId};
use std::sync::Arc;
use std::time::SystemTime;

use switchboard::{Event, Timestamp, TypeSet};

/// The event of the universal workloads: a word of payload.
#[derive(Event)]
#[event(type = "tick")]
pub struct Tick(pub u64, #[event(timestamp)] pub Timestamp);

pub fn tick() -> Arc<dyn Event> {
    Arc::new(Tick(0, Timestamp::UNIX_EPOCH))
}

/// One of 64 distinct Rust event types, each with its own `event_type` name.
///
/// Implemented by hand: its type string is picked by the const parameter,
/// which no derive attribute can express.
pub struct Kind<const N: usize>;

impl<const N: usize> Event for Kind<N> {
    fn event_type(&self) -> &str {
        TYPE_NAMES[N]
    }
    fn timestamp(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH
    }
}

pub const TYPES: usize = 64;

pub const TYPE_NAMES: [&str; TYPES] = [
    "type-00", "type-01", "type-02", "type-03", "type-04", "type-05", "type-06", "type-07",
    "type-08", "type-09", "type-10", "type-11", "type-12", "type-13", "type-14", "type-15",
    "type-16", "type-17", "type-18", "type-19", "type-20", "type-21", "type-22", "type-23",
    "type-24", "type-25", "type-26", "type-27", "type-28", "type-29", "type-30", "type-31",
    "type-32", "type-33", "type-34", "type-35", "type-36", "type-37", "type-38", "type-39",
    "type-40", "type-41", "type-42", "type-43", "type-44", "type-45", "type-46", "type-47",
    "type-48", "type-49", "type-50", "type-51", "type-52", "type-53", "type-54", "type-55",
    "type-56", "type-57", "type-58", "type-59", "type-60", "type-61", "type-62", "type-63",
];

/// One event of each of the 64 types, with the `TypeSet` naming its type
/// (element `i` is a `Kind<i>`, whose `event_type` is `TYPE_NAMES[i]`).
pub fn kinds() -> Vec<(Arc<dyn Event>, TypeSet)> {
    macro_rules! kinds {
        ($($n:literal)*) => {
            vec![$((Arc::new(Kind::<$n>) as Arc<dyn Event>, TypeSet::new().with::<Kind<$n>>())),*]
        };
    }
    let kinds = kinds!(
        0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
        32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60
        61 62 63
    );
    assert_eq!(kinds.len(), TYPES);
    kinds
}

/// The `TypeId` of an event's concrete type, as a user keeping one channel
/// per event type would look it up.
pub fn type_id_of(event: &Arc<dyn Event>) -> TypeId {
    let any: &dyn Any = &**event;
    any.type_id()
}
