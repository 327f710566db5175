//! Every case of docs/design.md, "Bad input", each with its documented outcome.
//!
//! A counting global allocator records the largest single allocation made by
//! each thread, so the "absurd capacity" cases can check that nothing huge is
//! allocated before the error (and that the accepted maximum really is).
//!
//! The events are `numbered("a", n)` (event type "a") and `other(n)` (another
//! Rust type, event type "other").

#![cfg(feature = "derive")]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::drops::{DropRecorder, Dropped};
use common::events::{n_of, numbered, other, Numbered, Other};
use common::{running_bus, wait_until, within, GUARD};
use switchboard::{
    DropReason, EventBus, RecvError, RecvTimeoutError, SubscribeError, SubscribeOptions,
    Subscription, TryRecvError, TypeSet, MAX_CAPACITY,
};

// ---------------------------------------------------------------- allocation probe

#[path = "common/alloc_probe.rs"]
mod alloc_probe;

use alloc_probe::largest_allocation_in;

// ---------------------------------------------------------------- zero capacity

#[test]
fn zero_capacity_with_nobody_waiting_drops_and_counts_the_event() {
    let bus = running_bus();
    let drops = DropRecorder::install(&bus);
    // Nobody is blocked in `recv` (no other thread exists that could be), so
    // every send finds no receiver.
    let sub = bus.subscribe("unbuffered", 0).unwrap();
    assert_eq!(sub.capacity(), 0);
    for i in 0..3 {
        assert_eq!(
            bus.publish(numbered("a", i)),
            0,
            "nobody waits: not delivered"
        );
    }
    assert_eq!(sub.try_recv().err(), Some(TryRecvError::Empty));
    assert_eq!(sub.dropped(), 3);
    assert_eq!(bus.stats().dropped_critical, 3);
    assert_eq!(bus.stats().dropped(), 3);
    let unbuffered = |n| Dropped {
        reason: DropReason::BufferFull,
        n: Some(n),
        event_type: "a".into(),
        subscriber_name: "unbuffered".into(),
        capacity: 0,
        event_types: String::new(),
    };
    assert_eq!(drops.drops(), [unbuffered(0), unbuffered(1), unbuffered(2)]);
}

#[test]
fn zero_capacity_polled_as_a_stream_receives_nothing_and_counts_the_drop() {
    // Documented: an async consumer never blocks in `recv`, so a 0-capacity
    // subscription used as a `Stream` receives nothing.
    let bus = running_bus();
    let sub = bus
        .subscribe_with(SubscribeOptions::new("unbuffered-stream", 0).lossy())
        .unwrap();
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(sub.poll_recv(&mut cx).is_pending());
    assert_eq!(bus.publish(numbered("a", 1)), 0);
    assert!(sub.poll_recv(&mut cx).is_pending());
    assert_eq!(sub.dropped(), 1);
    assert_eq!(bus.stats().dropped_observability, 1);
}

#[test]
fn zero_capacity_with_a_receiver_blocked_in_recv_hands_the_event_over() {
    const ATTEMPTS: u64 = 5_000;
    let bus = running_bus();
    let sub = bus.subscribe("unbuffered", 0).unwrap();
    thread::scope(|scope| {
        let receiver = scope.spawn(|| sub.recv_timeout(GUARD).map(|e| n_of(&e)));
        // Publish until the receiver is blocked and takes one; every miss
        // before that is dropped and counted.
        let mut attempts = 0;
        let handed_over = loop {
            assert!(
                attempts < ATTEMPTS,
                "no send succeeded in {ATTEMPTS} attempts"
            );
            let delivered = bus.publish(numbered("a", attempts));
            attempts += 1;
            if delivered == 1 {
                break attempts - 1;
            }
            assert_eq!(delivered, 0);
            thread::sleep(Duration::from_millis(1));
        };
        assert_eq!(receiver.join().unwrap(), Ok(handed_over));
        assert_eq!(sub.dropped(), attempts - 1);
        assert_eq!(bus.stats().dropped_critical, attempts - 1);
    });
    assert_eq!(sub.try_recv().err(), Some(TryRecvError::Empty));
}

// ---------------------------------------------------------------- absurd capacities

/// Every subscribe method, with `capacity`.
fn subscribe_every_way(bus: &EventBus, capacity: usize) -> Vec<Result<usize, SubscribeError>> {
    fn cap(r: Result<Subscription, SubscribeError>) -> Result<usize, SubscribeError> {
        r.map(|s| s.capacity())
    }
    vec![
        cap(bus.subscribe("s", capacity)),
        cap(bus.subscribe_with(SubscribeOptions::new("s", capacity).leader_only())),
        cap(bus.subscribe_with(SubscribeOptions::new("s", capacity).lossy())),
        cap(bus.subscribe_with(SubscribeOptions::new("s", capacity).event_types(["a"]))),
        cap(bus.subscribe_with(
            SubscribeOptions::new("s", capacity)
                .event_types(["a"])
                .leader_only(),
        )),
        cap(bus.subscribe_with(
            SubscribeOptions::new("s", capacity)
                .event_types(["a"])
                .lossy(),
        )),
        bus.subscribe_to::<Numbered>("s", capacity)
            .map(|s| s.capacity()),
        cap(bus.subscribe_with(
            SubscribeOptions::new("s", capacity).rust_types(TypeSet::new().with::<Numbered>()),
        )),
        cap(bus.subscribe_with(SubscribeOptions::new("s", capacity).lossy().leader_only())),
    ]
}

#[test]
fn capacity_above_the_maximum_is_rejected_before_allocating() {
    let bus = EventBus::new();
    for capacity in [MAX_CAPACITY + 1, usize::MAX / 2, usize::MAX] {
        let (results, largest) = largest_allocation_in(|| subscribe_every_way(&bus, capacity));
        for result in results {
            assert_eq!(
                result,
                Err(SubscribeError::CapacityTooLarge {
                    requested: capacity,
                    max: MAX_CAPACITY
                })
            );
        }
        assert!(
            largest < 64 * 1024,
            "a rejected capacity of {capacity} still allocated {largest} bytes at once"
        );
    }
    assert_eq!(bus.stats().subscriber_count(), 0, "nothing was registered");
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
fn capacity_of_exactly_the_maximum_is_accepted_and_works() {
    let bus = running_bus();
    let (sub, largest) = largest_allocation_in(|| bus.subscribe("max", MAX_CAPACITY));
    let sub = sub.expect("MAX_CAPACITY is accepted");
    assert_eq!(sub.capacity(), MAX_CAPACITY);
    // The probe works: the accepted capacity was allocated up front.
    assert!(largest >= MAX_CAPACITY, "largest allocation {largest}");
    assert_eq!(bus.publish(numbered("a", 1)), 1);
    assert_eq!(sub.try_recv().map(|e| n_of(&e)).unwrap(), 1);
}

// ---------------------------------------------------------------- type lists

#[test]
fn empty_type_lists_are_rejected() {
    let bus = EventBus::new();
    let none: [&str; 0] = [];
    let errors = [
        bus.subscribe_with(SubscribeOptions::new("s", 4).event_types(none))
            .err(),
        bus.subscribe_with(SubscribeOptions::new("s", 4).event_types(Vec::<String>::new()))
            .err(),
        bus.subscribe_with(
            SubscribeOptions::new("s", 4)
                .event_types(none)
                .leader_only(),
        )
        .err(),
        bus.subscribe_with(SubscribeOptions::new("s", 4).event_types(none).lossy())
            .err(),
        bus.subscribe_with(SubscribeOptions::new("s", 4).rust_types(TypeSet::new()))
            .err(),
        bus.subscribe_with(SubscribeOptions::new("s", 4).event_types(none))
            .err(),
        bus.subscribe_with(SubscribeOptions::new("s", 4).rust_types(TypeSet::new()))
            .err(),
    ];
    for error in errors {
        assert_eq!(error, Some(SubscribeError::EmptyTypeList));
    }
    assert_eq!(bus.stats().subscriber_count(), 0);
    let message = SubscribeError::EmptyTypeList.to_string();
    assert!(message.contains("at least one type"), "{message}");
}

#[test]
fn mixed_filters_are_rejected() {
    let bus = EventBus::new();
    let options = SubscribeOptions::new("mixed", 4)
        .event_types(["a"])
        .rust_types(TypeSet::new().with::<Numbered>());
    assert_eq!(
        bus.subscribe_with(options).err(),
        Some(SubscribeError::MixedFilters)
    );
    // In either order.
    let options = SubscribeOptions::new("mixed", 4)
        .rust_types(TypeSet::new().with::<Numbered>())
        .event_types(["a"]);
    assert_eq!(
        bus.subscribe_with(options).err(),
        Some(SubscribeError::MixedFilters)
    );
    assert_eq!(bus.stats().subscriber_count(), 0);
    let message = SubscribeError::MixedFilters.to_string();
    assert!(message.contains("not both"), "{message}");
}

#[test]
fn duplicate_type_names_deliver_an_event_once() {
    let bus = running_bus();
    let drops = DropRecorder::install(&bus);
    let sub = bus
        .subscribe_with(SubscribeOptions::new("dup", 1).event_types(["a", "a"]))
        .unwrap();
    assert_eq!(
        bus.publish(numbered("a", 1)),
        1,
        "one subscriber received it, once"
    );
    assert_eq!(sub.try_recv().map(|e| n_of(&e)).unwrap(), 1);
    assert_eq!(sub.try_recv().err(), Some(TryRecvError::Empty));
    assert_eq!(
        sub.dropped(),
        0,
        "no second copy was offered to the 1-slot buffer"
    );
    assert_eq!(bus.publish(other(0)), 0, "other types still filtered out");

    // The filter label (stats, drop reports) names the type once.
    assert_eq!(bus.stats().subscribers[0].event_types, "a");
    bus.publish(numbered("a", 2));
    bus.publish(numbered("a", 3));
    assert_eq!(drops.drops()[0].event_types, "a");
}

#[test]
fn duplicate_rust_types_are_kept_once() {
    let types = TypeSet::new().with::<Numbered>().with::<Numbered>();
    assert_eq!(types.len(), 1);
    assert_eq!(types, TypeSet::new().with::<Numbered>());
    let bus = running_bus();
    let sub = bus
        .subscribe_with(
            SubscribeOptions::new("dup", 1).rust_types(
                TypeSet::new()
                    .with::<Numbered>()
                    .with::<Other>()
                    .with::<Numbered>(),
            ),
        )
        .unwrap();
    assert_eq!(bus.publish(numbered("a", 1)), 1);
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

    let typed = bus.subscribe_to::<Numbered>("typed", 4).unwrap();
    assert!(bus.unsubscribe(&typed));
    assert!(!bus.unsubscribe(&typed));
    assert!(!typed.unsubscribe());

    let own_typed = bus.subscribe_to::<Numbered>("own-typed", 4).unwrap();
    assert!(own_typed.unsubscribe());
    assert!(!own_typed.unsubscribe());
    assert!(!bus.unsubscribe(&own_typed));
    assert_eq!(bus.stats().subscriber_count(), 0);
}

#[test]
fn unsubscribing_through_another_bus_returns_false_and_changes_nothing() {
    let bus = running_bus();
    let other = running_bus();
    let sub = bus.subscribe("mine", 4).unwrap();
    let typed = bus.subscribe_to::<Numbered>("typed", 4).unwrap();
    let _bystander = other.subscribe("theirs", 4).unwrap();

    assert!(!other.unsubscribe(&sub));
    assert!(!other.unsubscribe(&typed));
    assert_eq!(other.stats().subscriber_count(), 1);
    assert_eq!(bus.stats().subscriber_count(), 2);
    assert!(sub.is_subscribed());
    assert_eq!(bus.publish(numbered("a", 1)), 2, "both keep receiving");
    assert_eq!(sub.try_recv().map(|e| n_of(&e)).unwrap(), 1);
    assert_eq!(typed.try_recv().unwrap().n, 1);

    // A clone is the same bus, though.
    assert!(bus.clone().unsubscribe(&sub));
}

#[test]
fn subscription_unsubscribe_after_the_bus_is_dropped_returns_false() {
    let bus = running_bus();
    let sub = bus.subscribe("orphan", 4).unwrap();
    let typed = bus.subscribe_to::<Numbered>("typed", 4).unwrap();
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
    let typed = bus.subscribe_to::<Numbered>("t", 8).unwrap();
    for i in 1..=3 {
        bus.publish(numbered("a", i));
    }

    // Dropping one of two handles ends nothing.
    let last = bus.clone();
    drop(bus);
    assert!(sub.is_subscribed());
    assert_eq!(sub.try_recv().ok().map(|e| n_of(&e)), Some(1));
    assert_eq!(last.publish(numbered("a", 4)), 2);
    drop(last);
    assert!(!sub.is_subscribed());

    // What was queued is still received, then the subscription is closed.
    assert_eq!(sub.recv().map(|e| n_of(&e)).unwrap(), 2);
    let third = sub.recv_timeout(GUARD).expect("event 3 still queued");
    assert_eq!(n_of(&third), 3);
    assert_eq!(sub.try_recv().map(|e| n_of(&e)).unwrap(), 4);
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

    assert_eq!(typed.iter().map(|a| a.n).collect::<Vec<_>>(), [1, 2, 3, 4]);
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
    wait_until("the receiver starts", || started.load(Ordering::SeqCst));
    thread::sleep(Duration::from_millis(20)); // let it block in recv (ordering only)
    drop(bus);
    let result = within(GUARD, "blocked recv", move || receiver.join().unwrap());
    assert_eq!(result.err(), Some(RecvError));
}

// ---------------------------------------------------------------- panicking callback

#[test]
fn a_panicking_drop_callback_is_caught_and_the_bus_carries_on() {
    let bus = running_bus();
    let calls = DropRecorder::default();
    {
        let calls = calls.clone();
        bus.set_drop_callback(Some(Box::new(move |info| {
            calls.record(info);
            panic!("callback panics on {}", info.event_type);
        })));
    }
    let full = bus.subscribe("full", 1).unwrap();
    let roomy = bus.subscribe("roomy", 8).unwrap();

    assert_eq!(bus.publish(numbered("a", 1)), 2);
    // Each of these drops for `full`: the callback panics every time, the
    // publisher sees none of it, and later drops still reach the callback.
    for i in 2..=4 {
        assert_eq!(
            bus.publish(numbered("a", i)),
            1,
            "delivered to `roomy` despite the panic"
        );
    }
    assert_eq!(calls.numbers(), [2, 3, 4]);
    assert_eq!(full.dropped(), 3);
    assert_eq!(bus.stats().dropped_critical, 3);
    assert_eq!(bus.stats().dropped(), 3);
    assert_eq!(bus.stats().published, 4);
    assert_eq!(roomy.len(), 4);
    assert_eq!(full.try_recv().map(|e| n_of(&e)).unwrap(), 1);

    // The bus still works, subscribing included.
    let late = bus
        .subscribe_with(SubscribeOptions::new("late", 4).leader_only())
        .unwrap();
    assert_eq!(bus.publish(numbered("a", 5)), 3);
    assert_eq!(late.len(), 1);
}

#[test]
fn a_panicking_drop_callback_during_start_and_pre_start_overflow_is_caught() {
    let bus = EventBus::builder().pre_start_limit(2).build();
    let calls = DropRecorder::default();
    {
        let calls = calls.clone();
        bus.set_drop_callback(Some(Box::new(move |info| {
            calls.record(info);
            panic!("callback panics");
        })));
    }
    let full = bus.subscribe("full", 1).unwrap();
    for i in 0..3 {
        assert_eq!(bus.publish(numbered("a", i)), 0); // 2 buffered, 1 overflows
    }
    bus.start(); // replays 2 into a 1-slot queue: one drop, reported after the replay
    assert!(bus.is_running());
    assert_eq!(
        calls.reasons(),
        [DropReason::PreStartOverflow, DropReason::BufferFull]
    );
    assert_eq!(calls.numbers(), [2, 1]);
    assert_eq!(bus.stats().dropped_pre_start, 1);
    assert_eq!(bus.stats().dropped_critical, 1);
    assert_eq!(full.dropped(), 1);
    assert_eq!(full.try_recv().map(|e| n_of(&e)).unwrap(), 0);
}

// ---------------------------------------------------------------- re-entrant callback

#[test]
fn a_drop_callback_may_publish_subscribe_unsubscribe_and_replace_itself() {
    within(GUARD, "re-entrant drop callback", || {
        let bus = running_bus();
        let full = bus
            .subscribe_with(SubscribeOptions::new("full", 1).event_types(["a"]))
            .unwrap();
        let watcher = bus
            .subscribe_with(SubscribeOptions::new("watcher", 8).event_types(["other"]))
            .unwrap();
        let victim = Arc::new(bus.subscribe("victim", 8).unwrap());
        let made: Arc<Mutex<Vec<Subscription>>> = Arc::new(Mutex::new(Vec::new()));
        let (first_calls, replacement_calls) = (DropRecorder::default(), DropRecorder::default());
        {
            // The callback holds a bus handle: a cycle until it replaces itself.
            let (bus_in, victim, made) = (bus.clone(), Arc::clone(&victim), Arc::clone(&made));
            let (first_calls, replacement_calls) = (first_calls.clone(), replacement_calls.clone());
            bus.set_drop_callback(Some(Box::new(move |info| {
                first_calls.record(info);
                let new = bus_in
                    .subscribe_with(SubscribeOptions::new("made-in-callback", 8).leader_only())
                    .unwrap();
                made.lock().unwrap().push(new);
                bus_in.publish(other(0));
                bus_in.unsubscribe(&victim);
                bus_in.set_drop_callback(Some(replacement_calls.callback()));
            })));
        }
        assert_eq!(bus.publish(numbered("a", 1)), 2); // full + victim
        bus.publish(numbered("a", 2)); // `full` drops it: the first callback runs
        assert_eq!(first_calls.numbers(), [2]);
        assert_eq!(made.lock().unwrap().len(), 1, "the callback subscribed");
        assert_eq!(watcher.len(), 1, "the callback's publish was delivered");
        assert!(!victim.is_subscribed(), "the callback unsubscribed");
        // full, watcher, made-in-callback; the victim is gone.
        assert_eq!(bus.stats().subscriber_count(), 3);

        bus.publish(numbered("a", 3)); // dropped again: the replacement only is told
        assert_eq!(first_calls.numbers(), [2]);
        assert_eq!(replacement_calls.numbers(), [3]);
        assert_eq!(full.dropped(), 2);
        // The subscription made in the callback got its `other`, then "a" 3.
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
            let full = bus
                .subscribe_with(SubscribeOptions::new("full", 1).event_types(["a"]))
                .unwrap();
            let watcher = bus
                .subscribe_with(SubscribeOptions::new("watcher", 8).event_types(["other"]))
                .unwrap();
            let made: Arc<Mutex<Vec<Subscription>>> = Arc::new(Mutex::new(Vec::new()));
            let drops = DropRecorder::default();
            {
                // A weak handle: the bus owns the callback, so a strong one would
                // keep the bus alive forever.
                let (bus_in, made, drops) = (bus.downgrade(), Arc::clone(&made), drops.clone());
                bus.set_drop_callback(Some(Box::new(move |info| {
                    drops.record(info);
                    if info.event_type == "a" {
                        let bus_in = bus_in.upgrade().unwrap();
                        let new = bus_in
                            .subscribe_with(SubscribeOptions::new("made", 8).leader_only())
                            .unwrap();
                        made.lock().unwrap().push(new);
                        // While buffering, this overflows too: reported as an "other" drop.
                        bus_in.publish(other(0));
                    }
                })));
            }
            bus.publish(numbered("a", 1));
            bus.publish(numbered("a", 2)); // both buffered
            bus.publish(numbered("a", 3)); // overflows: the callback subscribes and publishes
            assert_eq!(
                drops.reasons(),
                [DropReason::PreStartOverflow, DropReason::PreStartOverflow]
            );
            assert_eq!(
                drops
                    .drops()
                    .iter()
                    .map(|d| &*d.event_type)
                    .collect::<Vec<_>>(),
                ["a", "other"]
            );
            assert_eq!(bus.stats().dropped_pre_start, 2);
            assert_eq!(made.lock().unwrap().len(), 1);

            // The replay puts "a" 1 in `full` and drops "a" 2; the callback,
            // told after the replay, subscribes and publishes `other`, now
            // delivered.
            bus.start();
            assert_eq!(drops.reasons().last(), Some(&DropReason::BufferFull));
            assert_eq!(full.len(), 1);
            assert_eq!(full.dropped(), 1);
            assert_eq!(watcher.len(), 1);
            let made = made.lock().unwrap();
            assert_eq!(made.len(), 2);
            // The first one (universal) got the replayed "a" 1 and 2, then `other`.
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
        let other = Arc::new(
            bus.subscribe_with(SubscribeOptions::new("other", 8).leader_only())
                .unwrap(),
        );
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
        assert_eq!(bus.publish(numbered("a", 1)), 1, "delivered to `other`");
        assert_eq!(*polls.lock().unwrap(), [true], "`other` was still empty");
        assert_eq!(other.try_recv().map(|e| n_of(&e)).unwrap(), 1);
        assert_eq!(bus.stats().subscriber_count(), 2);
    });
}

// ---------------------------------------------------------------- pre-start buffer limits

#[test]
fn a_pre_start_limit_of_zero_drops_and_counts_every_buffered_publish() {
    let bus = EventBus::builder().pre_start_limit(0).build();
    let drops = DropRecorder::install(&bus);
    let sub = bus.subscribe("s", 8).unwrap();
    for i in 0..3 {
        assert_eq!(bus.publish(numbered("a", i)), 0);
    }
    assert_eq!(bus.stats().pre_start_len, 0);
    assert_eq!(bus.stats().dropped_pre_start, 3);
    assert_eq!(bus.stats().dropped(), 3);
    assert_eq!(bus.stats().published, 3);
    let overflow = |n| Dropped {
        reason: DropReason::PreStartOverflow,
        n: Some(n),
        event_type: "a".into(),
        subscriber_name: String::new(),
        capacity: 0,
        event_types: String::new(),
    };
    assert_eq!(drops.drops(), [overflow(0), overflow(1), overflow(2)]);
    bus.start();
    assert_eq!(
        sub.try_recv().err(),
        Some(TryRecvError::Empty),
        "nothing replayed"
    );
    assert_eq!(
        bus.publish(numbered("a", 9)),
        1,
        "direct delivery after start"
    );
    // After pause, buffering drops everything again.
    bus.pause();
    assert_eq!(bus.publish(numbered("a", 10)), 0);
    assert_eq!(bus.stats().dropped_pre_start, 4);
    assert_eq!(drops.count(), 4);
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
        bus.publish(numbered("a", i));
    }
    assert_eq!(bus.stats().pre_start_len, 4);
    assert_eq!(bus.stats().dropped_pre_start, 2);
    bus.start();
    assert_eq!(
        sub.try_iter().map(|e| n_of(&e)).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );

    // An absurd pre-start reserve: reduced to the (default) pre-start limit.
    let (bus, largest) =
        largest_allocation_in(|| EventBus::builder().pre_start_reserve(usize::MAX).build());
    assert!(largest < 1024 * 1024, "allocated {largest} bytes up front");
    let sub = bus.subscribe("s", 2_000).unwrap();
    for i in 0..1_001 {
        bus.publish(numbered("a", i));
    }
    assert_eq!(
        bus.stats().pre_start_len,
        switchboard::DEFAULT_PRE_START_LIMIT
    );
    assert_eq!(bus.stats().dropped_pre_start, 1);
    bus.start();
    assert_eq!(sub.len(), switchboard::DEFAULT_PRE_START_LIMIT);
}
