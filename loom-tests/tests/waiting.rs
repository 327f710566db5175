//! Loom model checks of the waiting publish and of completion (design,
//! "Waiting publish and completion"; `src/core/waiting.rs`,
//! `src/sync/wait_list.rs`, `src/completion.rs`).
//!
//! Run with `RUSTFLAGS="--cfg switchboard_loom" cargo test -p loom-tests --release`.
//! Loom has no clock: these publishes have no deadline.
#![cfg(switchboard_loom)]

mod support;

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;
use switchboard::{Event, EventBus, Timestamp};

use support::model;

#[derive(Debug, Event)]
#[event(type = "ev")]
struct Ev(u32, #[event(timestamp)] Timestamp);

fn ev(n: u32) -> Ev {
    Ev(n, Timestamp::UNIX_EPOCH)
}

fn n(event: &Arc<dyn Event>) -> u32 {
    event.downcast_ref::<Ev>().unwrap().0
}

/// A publisher waiting for room in a full queue is woken by the consumer
/// that takes from it, whenever the take happens relative to the
/// publisher's registration: no lost wake-up, nothing dropped. Mutant
/// `switchboard_mutant_no_room_recheck` (registering without trying again)
/// must be caught.
///
/// The future is polled by hand with a waker that records its wake-up, so
/// that a lost one fails an assertion: a deadlock inside `block_on` would
/// abort the whole run rather than fail this test.
#[test]
fn a_waiting_publisher_is_woken_by_the_consumer_making_room() {
    model(
        "a_waiting_publisher_is_woken_by_the_consumer_making_room",
        || {
            let bus = EventBus::new();
            let sub = bus.subscribe("s", 1).unwrap();
            bus.start();
            bus.publish(ev(0)); // the queue is full
            let consumer = thread::spawn(move || {
                assert_eq!(n(&sub.recv().unwrap()), 0);
                sub
            });
            let woken = Arc::new(WakeFlag(AtomicBool::new(false)));
            let waker = Waker::from(Arc::clone(&woken));
            let mut cx = Context::from_waker(&waker);
            let mut publish = Box::pin(bus.publish_waiting(ev(1)).into_future());
            let first = publish.as_mut().poll(&mut cx);
            let sub = consumer.join().unwrap();
            if first.is_pending() {
                assert!(woken.0.load(Ordering::Acquire), "the take woke nobody");
                match publish.as_mut().poll(&mut cx) {
                    Poll::Ready(delivered) => assert_eq!(delivered.unwrap(), 1),
                    Poll::Pending => panic!("woken, yet still no room"),
                }
            }
            assert_eq!(n(&sub.try_recv().unwrap()), 1);
            assert_eq!(bus.stats().dropped(), 0);
        },
    );
}

/// A waker that records that it was woken.
struct WakeFlag(AtomicBool);

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

/// A waiting publisher blocked on a full queue whose consumer then waits as
/// a `Stream`, switching its registry entry to a waking one: the send the
/// publisher makes once there is room wakes the consumer. A waiting publish
/// holds the queue, not the entry (see `HeldQueue`), so the replaced entry's
/// own wake-up may come before that send and wake nobody.
#[test]
fn a_waiting_publisher_wakes_an_async_consumer_that_switched_entries() {
    model(
        "a_waiting_publisher_wakes_an_async_consumer_that_switched_entries",
        || {
            let bus = EventBus::new();
            let sub = bus.subscribe("s", 1).unwrap();
            bus.start();
            bus.publish(ev(0));
            let publisher_woken = Arc::new(WakeFlag(AtomicBool::new(false)));
            let waker = Waker::from(Arc::clone(&publisher_woken));
            let mut publish = Box::pin(bus.publish_waiting(ev(1)).into_future());
            let first = publish.as_mut().poll(&mut Context::from_waker(&waker));
            let consumer = thread::spawn(move || {
                let woken = Arc::new(WakeFlag(AtomicBool::new(false)));
                let waker = Waker::from(Arc::clone(&woken));
                let mut cx = Context::from_waker(&waker);
                let zero = sub.poll_recv(&mut cx).map(|e| n(&e.unwrap()));
                assert_eq!(zero, Poll::Ready(0));
                // Waits as a stream now: switches to a waking entry.
                let next = sub.poll_recv(&mut cx).map(|e| n(&e.unwrap()));
                (sub, next, woken)
            });
            let (sub, next, consumer_woken) = consumer.join().unwrap();
            if first.is_pending() {
                assert!(
                    publisher_woken.0.load(Ordering::Acquire),
                    "the take woke nobody"
                );
                let delivered = publish.as_mut().poll(&mut Context::from_waker(&waker));
                assert!(matches!(delivered, Poll::Ready(Ok(1))));
            }
            if next.is_pending() {
                assert!(
                    consumer_woken.0.load(Ordering::Acquire),
                    "the send woke nobody"
                );
                assert_eq!(n(&sub.try_recv().unwrap()), 1);
            } else {
                assert_eq!(next, Poll::Ready(1));
            }
        },
    );
}

/// A waiting publish made before `start` waits for it and is delivered
/// after the replay, whatever the interleaving with `start`.
#[test]
fn a_waiting_publish_before_start_is_woken_by_start() {
    model("a_waiting_publish_before_start_is_woken_by_start", || {
        let bus = EventBus::new();
        let sub = bus.subscribe("s", 2).unwrap();
        bus.publish(ev(0)); // buffered
        let publisher = {
            let bus = bus.clone();
            thread::spawn(move || bus.publish_waiting(ev(1)).blocking().unwrap())
        };
        bus.start();
        assert_eq!(publisher.join().unwrap(), 1);
        let got: Vec<u32> = sub.try_iter().map(|e| n(&e)).collect();
        assert_eq!(got, [0, 1], "after the replay");
    });
}

/// A tracked event's completion resolves only once every subscriber that
/// received it has finished, and then counts every finish: the consumers'
/// finishes race each other and the publisher's wait. Mutant
/// `switchboard_mutant_finish_after_release` (a finish counted after its
/// token is released) must be caught.
#[test]
fn a_completion_resolves_after_every_finish_and_counts_them_all() {
    model(
        "a_completion_resolves_after_every_finish_and_counts_them_all",
        || {
            let bus = EventBus::new();
            let one = bus.subscribe("one", 1).unwrap().with_acks();
            let two = bus.subscribe("two", 1).unwrap();
            bus.start();
            let completion = bus.publish_waiting(ev(1)).tracked().blocking().unwrap();
            let acking = thread::spawn(move || one.try_recv().unwrap().ack());
            let taking = thread::spawn(move || {
                two.try_recv().unwrap();
            });
            let done = completion.wait();
            assert_eq!((done.delivered, done.finished), (2, 2));
            acking.join().unwrap();
            taking.join().unwrap();
        },
    );
}
