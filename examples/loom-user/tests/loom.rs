//! The user's own loom model: two threads reserve the last item of a
//! [`Stock`] while a consumer keeps the books from a switchboard subscription.
//!
//! Run with `RUSTFLAGS="--cfg switchboard_loom" cargo test -p loom-user --release`.
#![cfg(switchboard_loom)]

use std::sync::Arc;

use loom::thread;
use loom_user::{Reserved, Stock};
use switchboard::EventBus;

/// One item, two buyers: exactly one gets it, and the books (a subscriber on
/// another thread, draining until the bus is gone) record exactly that one.
#[test]
fn the_last_item_is_reserved_once_and_announced_once() {
    loom::model(|| {
        let bus = EventBus::new();
        let books = bus.subscribe_to::<Reserved>("books", 4).unwrap();
        bus.start();
        let stock = Arc::new(Stock::new(1, bus));

        let bookkeeper = thread::spawn(move || books.iter().map(|r| r.by).collect::<Vec<_>>());
        let buyers: Vec<_> = ["alice", "bob"]
            .into_iter()
            .map(|name| {
                let stock = Arc::clone(&stock);
                thread::spawn(move || stock.reserve(name))
            })
            .collect();
        let successes = buyers
            .into_iter()
            .map(|buyer| buyer.join().unwrap())
            .filter(|&reserved| reserved)
            .count();
        assert_eq!(stock.left(), 0);
        drop(stock); // the last bus handle: the books' loop ends once drained
        let booked = bookkeeper.join().unwrap();
        assert_eq!(successes, 1, "the last item was reserved {successes} times");
        assert_eq!(booked.len(), 1, "announced: {booked:?}");
    });
}
