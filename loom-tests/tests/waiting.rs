//! Loom model checks of the waiting publish and of completion (design,
//! "Waiting publish and completion"; `src/core/waiting.rs`,
//! `src/sync/wait_list.rs`, `src/completion.rs`).
//!
//! Run with `RUSTFLAGS="--cfg switchboard_loom" cargo test -p loom-tests --release`.
//! Loom has no clock: these publishes have no deadline.
#![cfg(switchboard_loom)]

use std::future::poll_fn;
use std::sync::atomic::AtomicUsize as StdAtomicUsize;
use std::sync::Arc;

use loom::thread;
use switchboard::{Event, EventBus, Subscription, Timestamp};

#[derive(Debug, Event)]
#[event(type = "ev")]
struct Ev(u32, #[event(timestamp)] Timestamp);

fn ev(n: u32) -> Ev {
    Ev(n, Timestamp::UNIX_EPOCH)
}

fn n(event: &Arc<dyn Event>) -> u32 {
    event.downcast_ref::<Ev>().unwrap().0
}

/// Runs `f` under loom and prints how many interleavings it explored.
fn model<F: Fn() + Sync + Send + 'static>(name: &str, f: F) {
    model_bounded(name, None, f);
}

/// As [`model`], with at most `preemptions` preemptions per execution
/// (`None`: loom's default, `LOOM_MAX_PREEMPTIONS`), for a model with many
/// threads whose full exploration would take too long.
fn model_bounded<F: Fn() + Sync + Send + 'static>(name: &str, preemptions: Option<usize>, f: F) {
    let runs = Arc::new(StdAtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let mut builder = loom::model::Builder::new();
    if preemptions.is_some() {
        builder.preemption_bound = preemptions;
    }
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    eprintln!(
        "loom model {name}: {} interleavings explored",
        runs.load(std::sync::atomic::Ordering::Relaxed)
    );
}

fn recv_async(sub: &Subscription) -> u32 {
    n(&loom::future::block_on(poll_fn(|cx| sub.poll_recv(cx))).unwrap())
}

/// A publisher waiting for room in a full queue is woken by the consumer
/// that takes from it, whenever the take happens relative to the
/// publisher's registration: no lost wake-up, nothing dropped, order kept.
/// Mutant `switchboard_mutant_no_room_recheck` (registering without trying
/// again) must be caught.
#[test]
fn a_waiting_publisher_is_woken_by_the_consumer_making_room() {
    model(
        "a_waiting_publisher_is_woken_by_the_consumer_making_room",
        || {
            let bus = EventBus::new();
            let sub = bus.subscribe("s", 1).unwrap();
            bus.start();
            bus.publish(ev(0)); // the queue is full
            let publisher = {
                let bus = bus.clone();
                thread::spawn(move || bus.publish_waiting(ev(1)).blocking().unwrap())
            };
            let first = n(&sub.recv().unwrap());
            let second = n(&sub.recv().unwrap());
            assert_eq!((first, second), (0, 1));
            assert_eq!(publisher.join().unwrap(), 1);
            assert_eq!(bus.dropped_events(), 0);
        },
    );
}

/// Two waiting publishers blocked on a full queue whose consumer then waits
/// as a `Stream` (switching its registry entry to a waking one while they
/// hold the old one): the consumer is woken by each send, and both events
/// arrive. Dropping the old entry would wake the consumer only once the
/// last publisher lets go of it, and the last one waits for room only the
/// consumer can make.
#[test]
fn waiting_publishers_holding_an_old_entry_wake_an_async_consumer() {
    model(
        "waiting_publishers_holding_an_old_entry_wake_an_async_consumer",
        || {
            let bus = EventBus::new();
            let sub = bus.subscribe("s", 1).unwrap();
            bus.start();
            bus.publish(ev(0));
            let publishers: Vec<_> = (1..=2)
                .map(|i| {
                    let bus = bus.clone();
                    thread::spawn(move || bus.publish_waiting(ev(i)).blocking().unwrap())
                })
                .collect();
            let mut got: Vec<u32> = (0..3).map(|_| recv_async(&sub)).collect();
            assert_eq!(got[0], 0);
            got.sort_unstable();
            assert_eq!(got, [0, 1, 2]);
            for publisher in publishers {
                assert_eq!(publisher.join().unwrap(), 1);
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
