//! Every case of DESIGN.md "Bad input", each with its documented outcome.
//!
//! A counting global allocator records the largest single allocation made by
//! each thread, so the "absurd buffer size" cases can check that nothing huge
//! is allocated before the error (and that the accepted maximum really is).

mod common;

use common::within;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime};

use switchboard::{
    DropReason, Event, EventBus, RecvError, RecvTimeoutError, SubscribeError, SubscribeOptions,
    Subscription, TryRecvError, TypeSet, MAX_CAPACITY,
};

// ---------------------------------------------------------------- allocation probe

#[path = "support/alloc_probe.rs"]
mod alloc_probe;

use alloc_probe::largest_allocation_in;

// ---------------------------------------------------------------- helpers

const GUARD: Duration = Duration::from_secs(10);

struct A(u32);

impl Event for A {
    fn event_type(&self) -> &str {
        "a"
    }
    fn timestamp(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH
    }
}

struct B;

impl Event for B {
    fn event_type(&self) -> &str {
        "b"
    }
    fn timestamp(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH
    }
}

fn running_bus() -> EventBus {
    let bus = EventBus::new();
    bus.start();
    bus
}

/// What the drop callback was told, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Dropped {
    reason: DropReason,
    event_type: String,
    subscriber_name: String,
    capacity: usize,
    event_types: String,
}

/// Installs a callback recording every drop report.
fn record_drops(bus: &EventBus) -> Arc<Mutex<Vec<Dropped>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    bus.set_drop_callback(Some(Box::new(move |info| {
        sink.lock().unwrap().push(Dropped {
            reason: info.reason,
            event_type: info.event_type.to_owned(),
            subscriber_name: info.subscriber_name.to_owned(),
            capacity: info.capacity,
            event_types: info.event_types.to_owned(),
        });
    })));
    log
}

// ---------------------------------------------------------------- zero buffer

#[test]
fn zero_buffer_with_nobody_waiting_drops_and_counts_the_event() {
    let bus = running_bus();
    let drops = record_drops(&bus);
    // Nobody is blocked in `recv` (no other thread exists that could be), so
    // every send finds no receiver.
    let sub = bus.subscribe("unbuffered", 0).unwrap();
    assert_eq!(sub.capacity(), 0);
    for i in 0..3 {
        assert_eq!(bus.publish(A(i)), 0, "nobody waits: not delivered");
    }
    assert_eq!(sub.try_recv().err(), Some(TryRecvError::Empty));
    assert_eq!(sub.dropped(), 3);
    assert_eq!(bus.dropped_events_critical(), 3);
    assert_eq!(bus.dropped_events(), 3);
    let drops = drops.lock().unwrap();
    assert_eq!(drops.len(), 3);
    assert!(drops.iter().all(|d| d.reason == DropReason::BufferFull
        && d.subscriber_name == "unbuffered"
        && d.capacity == 0
        && d.event_type == "a"));
}

#[test]
fn zero_buffer_polled_as_a_stream_receives_nothing_and_counts_the_drop() {
    // Documented: an async consumer never blocks in `recv`, so a 0-buffer
    // subscription used as a `Stream` receives nothing.
    let bus = running_bus();
    let sub = bus.subscribe_lossy("unbuffered-stream", 0).unwrap();
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(sub.poll_recv(&mut cx).is_pending());
    assert_eq!(bus.publish(A(1)), 0);
    assert!(sub.poll_recv(&mut cx).is_pending());
    assert_eq!(sub.dropped(), 1);
    assert_eq!(bus.dropped_events_observability(), 1);
}

#[test]
fn zero_buffer_with_a_receiver_blocked_in_recv_hands_the_event_over() {
    const ATTEMPTS: u32 = 5_000;
    let bus = running_bus();
    let sub = bus.subscribe("unbuffered", 0).unwrap();
    thread::scope(|scope| {
        let receiver = scope.spawn(|| {
            sub.recv_timeout(GUARD)
                .map(|e| e.downcast_ref::<A>().unwrap().0)
        });
        // Publish until the receiver is blocked and takes one; every miss
        // before that is dropped and counted.
        let mut attempts = 0;
        let handed_over = loop {
            assert!(
                attempts < ATTEMPTS,
                "no send succeeded in {ATTEMPTS} attempts"
            );
            let delivered = bus.publish(A(attempts));
            attempts += 1;
            if delivered == 1 {
                break attempts - 1;
            }
            assert_eq!(delivered, 0);
            thread::sleep(Duration::from_millis(1));
        };
        assert_eq!(receiver.join().unwrap(), Ok(handed_over));
        assert_eq!(sub.dropped(), u64::from(attempts - 1));
        assert_eq!(bus.dropped_events_critical(), u64::from(attempts - 1));
    });
    assert_eq!(sub.try_recv().err(), Some(TryRecvError::Empty));
}

// ---------------------------------------------------------------- absurd buffer sizes

/// Every subscribe method, with `buffer`.
fn subscribe_every_way(bus: &EventBus, buffer: usize) -> Vec<Result<usize, SubscribeError>> {
    fn cap(r: Result<Subscription, SubscribeError>) -> Result<usize, SubscribeError> {
        r.map(|s| s.capacity())
    }
    vec![
        cap(bus.subscribe("s", buffer)),
        cap(bus.subscribe_leader_only("s", buffer)),
        cap(bus.subscribe_lossy("s", buffer)),
        cap(bus.subscribe_types("s", buffer, ["a"])),
        cap(bus.subscribe_types_leader_only("s", buffer, ["a"])),
        cap(bus.subscribe_types_lossy("s", buffer, ["a"])),
        bus.subscribe_to::<A>("s", buffer).map(|s| s.capacity()),
        cap(bus.subscribe_multiple("s", buffer, TypeSet::new().with::<A>())),
        cap(bus.subscribe_with(SubscribeOptions::new("s", buffer).lossy().leader_only())),
    ]
}

#[test]
fn buffer_above_the_maximum_is_rejected_before_allocating() {
    let bus = EventBus::new();
    for buffer in [MAX_CAPACITY + 1, usize::MAX / 2, usize::MAX] {
        let (results, largest) = largest_allocation_in(|| subscribe_every_way(&bus, buffer));
        for result in results {
            assert_eq!(
                result,
                Err(SubscribeError::CapacityTooLarge {
                    requested: buffer,
                    max: MAX_CAPACITY
                })
            );
        }
        assert!(
            largest < 64 * 1024,
            "a rejected buffer of {buffer} still allocated {largest} bytes at once"
        );
    }
    assert_eq!(bus.subscriber_count(), 0, "nothing was registered");
}

#[test]
fn capacity_too_large_message_says_what_to_do() {
    let err = EventBus::new()
        .subscribe("huge", usize::MAX)
        .expect_err("usize::MAX is too large");
    let message = err.to_string();
    assert!(message.contains(&usize::MAX.to_string()), "{message}");
    assert!(message.contains(&MAX_CAPACITY.to_string()), "{message}");
    assert!(message.contains("use a smaller capacity"), "{message}");
    let _: &dyn std::error::Error = &err;
}

#[test]
fn buffer_of_exactly_the_maximum_is_accepted_and_works() {
    let bus = running_bus();
    let (sub, largest) = largest_allocation_in(|| bus.subscribe("max", MAX_CAPACITY));
    let sub = sub.expect("MAX_CAPACITY is accepted");
    assert_eq!(sub.capacity(), MAX_CAPACITY);
    // The probe works: the accepted buffer was allocated up front.
    assert!(largest >= MAX_CAPACITY, "largest allocation {largest}");
    assert_eq!(bus.publish(A(1)), 1);
    assert_eq!(sub.try_recv().unwrap().downcast_ref::<A>().unwrap().0, 1);
}

// ---------------------------------------------------------------- type lists

#[test]
fn empty_type_lists_are_rejected() {
    let bus = EventBus::new();
    let none: [&str; 0] = [];
    let errors = [
        bus.subscribe_types("s", 4, none).err(),
        bus.subscribe_types("s", 4, Vec::<String>::new()).err(),
        bus.subscribe_types_leader_only("s", 4, none).err(),
        bus.subscribe_types_lossy("s", 4, none).err(),
        bus.subscribe_multiple("s", 4, TypeSet::new()).err(),
        bus.subscribe_with(SubscribeOptions::new("s", 4).event_types(none))
            .err(),
        bus.subscribe_with(SubscribeOptions::new("s", 4).rust_types(TypeSet::new()))
            .err(),
    ];
    for error in errors {
        assert_eq!(error, Some(SubscribeError::EmptyTypeList));
    }
    assert_eq!(bus.subscriber_count(), 0);
    let message = SubscribeError::EmptyTypeList.to_string();
    assert!(message.contains("at least one type"), "{message}");
}

#[test]
fn mixed_filters_are_rejected() {
    let bus = EventBus::new();
    let options = SubscribeOptions::new("mixed", 4)
        .event_types(["a"])
        .rust_types(TypeSet::new().with::<A>());
    assert_eq!(
        bus.subscribe_with(options).err(),
        Some(SubscribeError::MixedFilters)
    );
    // In either order.
    let options = SubscribeOptions::new("mixed", 4)
        .rust_types(TypeSet::new().with::<A>())
        .event_types(["a"]);
    assert_eq!(
        bus.subscribe_with(options).err(),
        Some(SubscribeError::MixedFilters)
    );
    assert_eq!(bus.subscriber_count(), 0);
    let message = SubscribeError::MixedFilters.to_string();
    assert!(message.contains("not both"), "{message}");
}

#[test]
fn duplicate_type_names_deliver_an_event_once() {
    let bus = running_bus();
    let drops = record_drops(&bus);
    let sub = bus.subscribe_types("dup", 1, ["a", "a"]).unwrap();
    assert_eq!(bus.publish(A(1)), 1, "one subscriber received it, once");
    assert_eq!(sub.try_recv().unwrap().downcast_ref::<A>().unwrap().0, 1);
    assert_eq!(sub.try_recv().err(), Some(TryRecvError::Empty));
    assert_eq!(
        sub.dropped(),
        0,
        "no second copy was offered to the 1-slot buffer"
    );
    assert_eq!(bus.publish(B), 0, "other types still filtered out");

    // The filter label (stats, drop reports) names the type once.
    assert_eq!(bus.stats().subscribers[0].event_types, "a");
    bus.publish(A(2));
    bus.publish(A(3));
    assert_eq!(drops.lock().unwrap()[0].event_types, "a");
}

#[test]
fn duplicate_rust_types_are_kept_once() {
    let types = TypeSet::new().with::<A>().with::<A>();
    assert_eq!(types.len(), 1);
    assert_eq!(types, TypeSet::new().with::<A>());
    let bus = running_bus();
    let sub = bus
        .subscribe_multiple("dup", 1, TypeSet::new().with::<A>().with::<B>().with::<A>())
        .unwrap();
    assert_eq!(bus.publish(A(1)), 1);
    assert_eq!(sub.len(), 1);
    assert_eq!(sub.dropped(), 0);
}

// ---------------------------------------------------------------- unsubscribe

#[test]
fn unsubscribing_twice_returns_false_the_second_time() {
    let bus = running_bus();
    let sub = bus.subscribe("twice", 4).unwrap();
    assert!(bus.unsubscribe(&sub));
    assert!(!bus.unsubscribe(&sub));
    assert!(!sub.unsubscribe());
    assert!(!sub.is_subscribed());

    let own = bus.subscribe("own", 4).unwrap();
    assert!(own.unsubscribe());
    assert!(!own.unsubscribe());
    assert!(!bus.unsubscribe(&own));

    let typed = bus.subscribe_to::<A>("typed", 4).unwrap();
    assert!(bus.unsubscribe_typed(&typed));
    assert!(!bus.unsubscribe_typed(&typed));
    assert!(!typed.unsubscribe());
    assert_eq!(bus.subscriber_count(), 0);
}

#[test]
fn unsubscribing_through_another_bus_returns_false_and_changes_nothing() {
    let bus = running_bus();
    let other = running_bus();
    let sub = bus.subscribe("mine", 4).unwrap();
    let typed = bus.subscribe_to::<A>("typed", 4).unwrap();
    let _bystander = other.subscribe("theirs", 4).unwrap();

    assert!(!other.unsubscribe(&sub));
    assert!(!other.unsubscribe_typed(&typed));
    assert_eq!(other.subscriber_count(), 1);
    assert_eq!(bus.subscriber_count(), 2);
    assert!(sub.is_subscribed());
    assert_eq!(bus.publish(A(1)), 2, "both keep receiving");
    assert_eq!(sub.try_recv().unwrap().downcast_ref::<A>().unwrap().0, 1);
    assert_eq!(typed.try_recv().unwrap().0, 1);

    // A clone is the same bus, though.
    assert!(bus.clone().unsubscribe(&sub));
}

#[test]
fn subscription_unsubscribe_after_the_bus_is_dropped_returns_false() {
    let bus = running_bus();
    let sub = bus.subscribe("orphan", 4).unwrap();
    let typed = bus.subscribe_to::<A>("typed", 4).unwrap();
    drop(bus);
    assert!(!sub.unsubscribe());
    assert!(!typed.unsubscribe());
    assert!(!sub.is_subscribed());
}

// ---------------------------------------------------------------- dropped bus

#[test]
fn a_dropped_bus_ends_subscriptions_after_what_was_queued() {
    let bus = running_bus();
    let sub = bus.subscribe("s", 8).unwrap();
    let typed = bus.subscribe_to::<A>("t", 8).unwrap();
    for i in 1..=3 {
        bus.publish(A(i));
    }

    // Dropping one of two handles ends nothing.
    let last = bus.clone();
    drop(bus);
    assert!(sub.is_subscribed());
    assert_eq!(
        sub.try_recv()
            .ok()
            .map(|e| e.downcast_ref::<A>().unwrap().0),
        Some(1)
    );
    assert_eq!(last.publish(A(4)), 2);
    drop(last);
    assert!(!sub.is_subscribed());

    // What was queued is still received, then the subscription is closed.
    assert_eq!(sub.recv().unwrap().downcast_ref::<A>().unwrap().0, 2);
    let third = sub.recv_timeout(GUARD).expect("event 3 still queued");
    assert_eq!(third.downcast_ref::<A>().unwrap().0, 3);
    assert_eq!(sub.try_recv().unwrap().downcast_ref::<A>().unwrap().0, 4);
    assert_eq!(sub.recv().err(), Some(RecvError));
    assert_eq!(sub.try_recv().err(), Some(TryRecvError::Closed));
    assert_eq!(
        sub.recv_timeout(GUARD).err(),
        Some(RecvTimeoutError::Closed)
    );
    assert_eq!(
        sub.recv_timeout(Duration::MAX).err(),
        Some(RecvTimeoutError::Closed)
    );
    assert_eq!(sub.iter().count(), 0);

    assert_eq!(typed.iter().map(|a| a.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(typed.recv().err(), Some(RecvError));
    assert_eq!(typed.try_recv().err(), Some(TryRecvError::Closed));
    assert_eq!(
        typed.recv_timeout(GUARD).err(),
        Some(RecvTimeoutError::Closed)
    );
}

#[test]
fn a_dropped_bus_wakes_a_receiver_blocked_in_recv() {
    let bus = running_bus();
    let sub = bus.subscribe("blocked", 4).unwrap();
    let started = Arc::new(AtomicBool::new(false));
    let receiver = {
        let started = Arc::clone(&started);
        thread::spawn(move || {
            started.store(true, Ordering::SeqCst);
            sub.recv()
        })
    };
    let deadline = std::time::Instant::now() + GUARD;
    while !started.load(Ordering::SeqCst) {
        assert!(
            std::time::Instant::now() < deadline,
            "receiver never started"
        );
        thread::yield_now();
    }
    thread::sleep(Duration::from_millis(20)); // let it block in recv (ordering only)
    drop(bus);
    let result = within(GUARD, "blocked recv", move || receiver.join().unwrap());
    assert_eq!(result.err(), Some(RecvError));
}

// ---------------------------------------------------------------- panicking callback

#[test]
fn a_panicking_drop_callback_is_caught_and_the_bus_carries_on() {
    let bus = running_bus();
    let calls = Arc::new(AtomicUsize::new(0));
    {
        let calls = Arc::clone(&calls);
        bus.set_drop_callback(Some(Box::new(move |info| {
            calls.fetch_add(1, Ordering::SeqCst);
            panic!("callback panics on {}", info.event_type);
        })));
    }
    let full = bus.subscribe("full", 1).unwrap();
    let roomy = bus.subscribe("roomy", 8).unwrap();

    assert_eq!(bus.publish(A(1)), 2);
    // Each of these drops for `full`: the callback panics every time, the
    // publisher sees none of it, and later drops still reach the callback.
    for i in 2..=4 {
        assert_eq!(
            bus.publish(A(i)),
            1,
            "delivered to `roomy` despite the panic"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(full.dropped(), 3);
    assert_eq!(bus.dropped_events_critical(), 3);
    assert_eq!(bus.dropped_events(), 3);
    assert_eq!(bus.published_events(), 4);
    assert_eq!(roomy.len(), 4);
    assert_eq!(full.try_recv().unwrap().downcast_ref::<A>().unwrap().0, 1);

    // The bus still works, subscribing included.
    let late = bus.subscribe_leader_only("late", 4).unwrap();
    assert_eq!(bus.publish(A(5)), 3);
    assert_eq!(late.len(), 1);
}

#[test]
fn a_panicking_drop_callback_during_start_and_pre_start_overflow_is_caught() {
    let bus = EventBus::builder().pre_start_limit(2).build();
    let calls = Arc::new(Mutex::new(Vec::new()));
    {
        let calls = Arc::clone(&calls);
        bus.set_drop_callback(Some(Box::new(move |info| {
            calls.lock().unwrap().push(info.reason);
            panic!("callback panics");
        })));
    }
    let full = bus.subscribe("full", 1).unwrap();
    for i in 0..3 {
        assert_eq!(bus.publish(A(i)), 0); // 2 buffered, 1 overflows
    }
    bus.start(); // replays 2 into a 1-slot buffer: one drop, reported after the replay
    assert!(bus.is_running());
    assert_eq!(
        *calls.lock().unwrap(),
        [DropReason::PreStartOverflow, DropReason::BufferFull]
    );
    assert_eq!(bus.dropped_events_pre_start(), 1);
    assert_eq!(bus.dropped_events_critical(), 1);
    assert_eq!(full.dropped(), 1);
    assert_eq!(full.try_recv().unwrap().downcast_ref::<A>().unwrap().0, 0);
}

// ---------------------------------------------------------------- re-entrant callback

#[test]
fn a_drop_callback_may_publish_subscribe_unsubscribe_and_replace_itself() {
    within(GUARD, "re-entrant drop callback", || {
        let bus = running_bus();
        let full = bus.subscribe_types("full", 1, ["a"]).unwrap();
        let watcher = bus.subscribe_types("watcher", 8, ["b"]).unwrap();
        let victim = Arc::new(bus.subscribe("victim", 8).unwrap());
        let made: Arc<Mutex<Vec<Subscription>>> = Arc::new(Mutex::new(Vec::new()));
        let first_calls = Arc::new(AtomicUsize::new(0));
        let replacement_calls = Arc::new(AtomicUsize::new(0));
        {
            // The callback holds a bus handle: a cycle until it replaces itself.
            let (bus_in, victim, made) = (bus.clone(), Arc::clone(&victim), Arc::clone(&made));
            let (first_calls, replacement_calls) =
                (Arc::clone(&first_calls), Arc::clone(&replacement_calls));
            bus.set_drop_callback(Some(Box::new(move |_| {
                first_calls.fetch_add(1, Ordering::SeqCst);
                let new = bus_in.subscribe_leader_only("made-in-callback", 8).unwrap();
                made.lock().unwrap().push(new);
                bus_in.publish(B);
                bus_in.unsubscribe(&victim);
                let replacement_calls = Arc::clone(&replacement_calls);
                bus_in.set_drop_callback(Some(Box::new(move |_| {
                    replacement_calls.fetch_add(1, Ordering::SeqCst);
                })));
            })));
        }
        assert_eq!(bus.publish(A(1)), 2); // full + victim
        bus.publish(A(2)); // `full` drops it: the first callback runs
        assert_eq!(first_calls.load(Ordering::SeqCst), 1);
        assert_eq!(made.lock().unwrap().len(), 1, "the callback subscribed");
        assert_eq!(watcher.len(), 1, "the callback's publish was delivered");
        assert!(!victim.is_subscribed(), "the callback unsubscribed");
        // full, watcher, made-in-callback; the victim is gone.
        assert_eq!(bus.subscriber_count(), 3);

        bus.publish(A(3)); // dropped again: the replacement only is told
        assert_eq!(first_calls.load(Ordering::SeqCst), 1);
        assert_eq!(replacement_calls.load(Ordering::SeqCst), 1);
        assert_eq!(full.dropped(), 2);
        // The subscription made in the callback got its `B`, then `A(3)`.
        assert_eq!(made.lock().unwrap()[0].len(), 2);
    });
}

#[test]
fn a_drop_callback_may_use_the_bus_during_pre_start_overflow_and_start() {
    within(
        GUARD,
        "re-entrant callback while buffering and starting",
        || {
            let bus = EventBus::builder().pre_start_limit(2).build();
            let full = bus.subscribe_types("full", 1, ["a"]).unwrap();
            let watcher = bus.subscribe_types("watcher", 8, ["b"]).unwrap();
            let made: Arc<Mutex<Vec<Subscription>>> = Arc::new(Mutex::new(Vec::new()));
            let reasons = Arc::new(Mutex::new(Vec::new()));
            {
                // A weak handle: the bus owns the callback, so a strong one would
                // keep the bus alive forever.
                let (bus_in, made, reasons) =
                    (bus.downgrade(), Arc::clone(&made), Arc::clone(&reasons));
                bus.set_drop_callback(Some(Box::new(move |info| {
                    reasons.lock().unwrap().push(info.reason);
                    if info.event_type == "a" {
                        let bus_in = bus_in.upgrade().unwrap();
                        let new = bus_in.subscribe_leader_only("made", 8).unwrap();
                        made.lock().unwrap().push(new);
                        // While buffering, this overflows too: reported as a "b" drop.
                        bus_in.publish(B);
                    }
                })));
            }
            bus.publish(A(1));
            bus.publish(A(2)); // both buffered
            bus.publish(A(3)); // overflows: the callback subscribes and publishes
            assert_eq!(
                *reasons.lock().unwrap(),
                [DropReason::PreStartOverflow, DropReason::PreStartOverflow]
            );
            assert_eq!(bus.dropped_events_pre_start(), 2);
            assert_eq!(made.lock().unwrap().len(), 1);

            // The replay puts A(1) in `full` and drops A(2); the callback, told
            // after the replay, subscribes and publishes `B`, now delivered.
            bus.start();
            assert_eq!(
                reasons.lock().unwrap().last(),
                Some(&DropReason::BufferFull)
            );
            assert_eq!(full.len(), 1);
            assert_eq!(full.dropped(), 1);
            assert_eq!(watcher.len(), 1);
            let made = made.lock().unwrap();
            assert_eq!(made.len(), 2);
            // The first one (universal) got the replayed A(1), A(2), then B.
            assert_eq!(made[0].len(), 3);
        },
    );
}

/// A drop callback runs on the publisher while it delivers; polling a
/// subscription there for the first time (which switches it to async
/// wake-ups, e.g. `now_or_never(sub.next())`) must not wait for that very
/// publish to finish.
#[test]
fn a_drop_callback_may_poll_a_subscription_for_the_first_time() {
    within(GUARD, "first poll inside a drop callback", || {
        let bus = running_bus();
        let _full = bus.subscribe("full", 0).unwrap(); // every publish drops here first
        let other = Arc::new(bus.subscribe_leader_only("other", 8).unwrap());
        let polls = Arc::new(Mutex::new(Vec::new()));
        {
            let (other, polls) = (Arc::clone(&other), Arc::clone(&polls));
            bus.set_drop_callback(Some(Box::new(move |_| {
                let waker = futures::task::noop_waker();
                let mut cx = std::task::Context::from_waker(&waker);
                let pending = other.poll_recv(&mut cx).is_pending();
                polls.lock().unwrap().push(pending);
            })));
        }
        assert_eq!(bus.publish(A(1)), 1, "delivered to `other`");
        assert_eq!(*polls.lock().unwrap(), [true], "`other` was still empty");
        assert_eq!(other.try_recv().unwrap().downcast_ref::<A>().unwrap().0, 1);
        assert_eq!(bus.subscriber_count(), 2);
    });
}

// ---------------------------------------------------------------- pre-start buffer limits

#[test]
fn max_pre_start_buffer_zero_drops_and_counts_every_buffered_publish() {
    let bus = EventBus::builder().pre_start_limit(0).build();
    let drops = record_drops(&bus);
    let sub = bus.subscribe("s", 8).unwrap();
    for i in 0..3 {
        assert_eq!(bus.publish(A(i)), 0);
    }
    assert_eq!(bus.pre_start_len(), 0);
    assert_eq!(bus.dropped_events_pre_start(), 3);
    assert_eq!(bus.dropped_events(), 3);
    assert_eq!(bus.published_events(), 3);
    {
        let drops = drops.lock().unwrap();
        assert_eq!(drops.len(), 3);
        for drop in drops.iter() {
            assert_eq!(
                *drop,
                Dropped {
                    reason: DropReason::PreStartOverflow,
                    event_type: "a".into(),
                    subscriber_name: String::new(),
                    capacity: 0,
                    event_types: String::new(),
                }
            );
        }
    }
    bus.start();
    assert_eq!(
        sub.try_recv().err(),
        Some(TryRecvError::Empty),
        "nothing replayed"
    );
    assert_eq!(bus.publish(A(9)), 1, "direct delivery after start");
    // After pause, buffering drops everything again.
    bus.pause();
    assert_eq!(bus.publish(A(10)), 0);
    assert_eq!(bus.dropped_events_pre_start(), 4);
    assert_eq!(drops.lock().unwrap().len(), 4);
}

#[test]
fn pre_start_reserve_larger_than_the_limit_is_accepted() {
    let (bus, largest) = largest_allocation_in(|| {
        EventBus::builder()
            .pre_start_reserve(usize::MAX)
            .pre_start_limit(4)
            .build()
    });
    assert!(largest < 64 * 1024, "allocated {largest} bytes up front");
    let sub = bus.subscribe("s", 8).unwrap();
    for i in 0..6 {
        bus.publish(A(i));
    }
    assert_eq!(bus.pre_start_len(), 4);
    assert_eq!(bus.dropped_events_pre_start(), 2);
    bus.start();
    assert_eq!(
        sub.try_iter()
            .map(|e| e.downcast_ref::<A>().unwrap().0)
            .collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );

    // An absurd pre-start reserve: reduced to the (default) pre-start limit.
    let (bus, largest) =
        largest_allocation_in(|| EventBus::builder().pre_start_reserve(usize::MAX).build());
    assert!(largest < 1024 * 1024, "allocated {largest} bytes up front");
    let sub = bus.subscribe("s", 2_000).unwrap();
    for i in 0..1_001 {
        bus.publish(A(i));
    }
    assert_eq!(bus.pre_start_len(), switchboard::DEFAULT_PRE_START_LIMIT);
    assert_eq!(bus.dropped_events_pre_start(), 1);
    bus.start();
    assert_eq!(sub.len(), switchboard::DEFAULT_PRE_START_LIMIT);
}
