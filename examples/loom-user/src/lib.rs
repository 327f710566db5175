//! A downstream crate that model-checks its own concurrent code with loom,
//! with switchboard inside the model.
//!
//! [`Stock`] is the user code under test: a counter of items left that
//! several threads reserve from, each successful reservation announced on an
//! [`EventBus`] as a [`Reserved`] event for whoever keeps the books. Its
//! invariant: no item is reserved twice, and every reservation is announced
//! exactly once.
//!
//! `tests/loom.rs` checks it with two reserving threads and a consumer on
//! another thread, under `RUSTFLAGS="--cfg switchboard_loom"`: that cfg makes
//! switchboard take its atomics, locks, queues and wakers from loom, and this
//! crate takes its own atomic from loom too (below). Built with
//! `--cfg loom_user_planted_race` as well, [`Stock::reserve`] has a race (a
//! check-then-act on the counter) that the same test finds.
//!
//! ```text
//! RUSTFLAGS="--cfg switchboard_loom" cargo test -p loom-user --release
//! RUSTFLAGS="--cfg switchboard_loom --cfg loom_user_planted_race" cargo test -p loom-user --release  # fails
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(switchboard_loom)]
use loom::sync::atomic::{AtomicU32, Ordering};
#[cfg(not(switchboard_loom))]
use std::sync::atomic::{AtomicU32, Ordering};

use switchboard::{Event, EventBus, Timestamp};

/// Announced once per reserved item.
#[derive(Debug, Event)]
#[event(type = "stock.reserved")]
pub struct Reserved {
    /// Who reserved it.
    pub by: &'static str,
    /// How many items were left after this reservation.
    pub left: u32,
    /// When.
    pub timestamp: Timestamp,
}

/// Items left to reserve, shared by threads; each reservation is published
/// on the bus.
#[derive(Debug)]
pub struct Stock {
    left: AtomicU32,
    bus: EventBus,
}

impl Stock {
    /// `items` items, announced on `bus`.
    pub fn new(items: u32, bus: EventBus) -> Self {
        Self {
            left: AtomicU32::new(items),
            bus,
        }
    }

    /// Reserves one item for `by` if any is left, and announces it; returns
    /// whether it did.
    pub fn reserve(&self, by: &'static str) -> bool {
        match self.take_one() {
            Some(left) => {
                self.bus.publish(Reserved {
                    by,
                    left,
                    timestamp: Timestamp::now(),
                });
                true
            }
            None => false,
        }
    }

    /// How many items are left.
    pub fn left(&self) -> u32 {
        self.left.load(Ordering::Acquire)
    }

    /// Takes one item; returns how many are left after it, or `None` if none was.
    #[cfg(not(loom_user_planted_race))]
    fn take_one(&self) -> Option<u32> {
        self.left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(1)
            })
            .ok()
            .map(|before| before - 1)
    }

    /// The planted race: check, then act, as two separate steps, so two
    /// threads can both see the last item and both take it.
    #[cfg(loom_user_planted_race)]
    fn take_one(&self) -> Option<u32> {
        let left = self.left.load(Ordering::Acquire);
        if left == 0 {
            return None;
        }
        self.left.store(left - 1, Ordering::Release);
        Some(left - 1)
    }
}

#[cfg(all(test, not(switchboard_loom)))]
mod tests {
    use super::*;

    #[test]
    fn reservations_stop_at_zero_and_are_announced() {
        let bus = EventBus::new();
        let books = bus.subscribe_to::<Reserved>("books", 8).unwrap();
        bus.start();
        let stock = Stock::new(2, bus);
        assert!(stock.reserve("a"));
        assert!(stock.reserve("b"));
        assert!(!stock.reserve("c"));
        assert_eq!(stock.left(), 0);
        let announced: Vec<_> = books.try_iter().map(|r| (r.by, r.left)).collect();
        assert_eq!(announced, [("a", 1), ("b", 0)]);
    }
}
