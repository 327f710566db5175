//! Allocation accounting with a counting global allocator.
//!
//! The design promises that a publish on a started bus allocates nothing but
//! the caller's event: one `Arc` per receiving subscriber is a reference-count
//! increment, the registry is read through a snapshot, the queues are
//! preallocated, and reporting a drop borrows everything it reports. These
//! tests check it on every path a publish can take (each kind of filter, a
//! full buffer with the drop callback, waking an async consumer), and measure
//! what subscribing and unsubscribing cost in allocations.
//!
//! Counting is per thread (a thread-local switch), so the other tests of this
//! binary, running in parallel, are not counted. See the counts with
//! `cargo test --test alloc -- --nocapture`.
//!
//! The events are `numbered("tick", n)`, and `other(n)` for the subscribers a
//! tick does not reach.

#![cfg(feature = "derive")]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use common::events::{numbered, Numbered, Other};
use switchboard::{Event, EventBus, SubscribeOptions, Subscription, TypeSet};

#[path = "common/alloc_probe.rs"]
mod alloc_probe;

/// Allocations (calls to `alloc`, `alloc_zeroed` and `realloc`) made by this
/// thread while running `f`, and their bytes.
fn count_allocations<R>(f: impl FnOnce() -> R) -> (R, u64, u64) {
    let (result, measured) = alloc_probe::measure(f);
    (result, measured.allocations, measured.bytes)
}

/// A tick: a realistic, non-zero-sized event (a string, a number and a timestamp).
fn tick(n: u64) -> Numbered {
    numbered("tick", n)
}

fn drain(subscriptions: &[Subscription]) -> usize {
    subscriptions.iter().map(|s| s.try_iter().count()).sum()
}

/// A started bus with a subscriber of every kind that a tick reaches, plus
/// ones it does not reach (so that every index of the registry is in use).
fn bus_with_every_kind() -> (EventBus, Vec<Subscription>, usize) {
    let bus = EventBus::new();
    let mut subscriptions = Vec::new();
    for i in 0..8 {
        subscriptions.push(bus.subscribe(&format!("universal-{i}"), 64).unwrap());
    }
    subscriptions.push(
        bus.subscribe_with(SubscribeOptions::new("lossy", 64).lossy())
            .unwrap(),
    );
    subscriptions.push(
        bus.subscribe_with(SubscribeOptions::new("by-name", 64).event_types(["tick"]))
            .unwrap(),
    );
    subscriptions.push(
        bus.subscribe_with(SubscribeOptions::new("by-names", 64).event_types(["other", "tick"]))
            .unwrap(),
    );
    subscriptions.push(
        bus.subscribe_with(
            SubscribeOptions::new("by-type", 64).rust_types(TypeSet::new().with::<Numbered>()),
        )
        .unwrap(),
    );
    let reached = subscriptions.len();
    subscriptions.push(
        bus.subscribe_with(SubscribeOptions::new("not-tick", 64).event_types(["other"]))
            .unwrap(),
    );
    subscriptions.push(
        bus.subscribe_with(
            SubscribeOptions::new("not-tick-type", 64).rust_types(TypeSet::new().with::<Other>()),
        )
        .unwrap(),
    );
    bus.start();
    (bus, subscriptions, reached)
}

#[test]
fn publish_after_start_allocates_only_the_callers_event() {
    let (bus, subscriptions, reached) = bus_with_every_kind();
    // The first publish on a thread may set up thread-local state (arc-swap's
    // reader slot); see `first_publish_on_a_new_thread`.
    assert_eq!(bus.publish(tick(0)), reached);
    drain(&subscriptions);

    for round in 0..20 {
        let event: Arc<dyn Event> = Arc::new(tick(round));
        let (delivered, allocations, _) = count_allocations(|| bus.publish_arc(Arc::clone(&event)));
        assert_eq!(delivered, reached);
        assert_eq!(allocations, 0, "publish_arc allocated");

        let (delivered, allocations, bytes) = count_allocations(|| bus.publish(tick(round)));
        assert_eq!(delivered, reached);
        assert_eq!(
            allocations, 1,
            "publish allocated more than the event's Arc"
        );
        assert!(
            bytes <= 64,
            "the one allocation is the small event ({bytes} bytes)"
        );
        assert_eq!(drain(&subscriptions), 2 * reached);
    }
    assert_eq!(bus.stats().dropped(), 0);
}

#[test]
fn the_drop_path_allocates_nothing() {
    let bus = EventBus::new();
    let reported = Arc::new(AtomicU64::new(0));
    {
        let reported = Arc::clone(&reported);
        // Not a `DropRecorder`: recording allocates, and this test counts
        // the drop path's allocations.
        bus.set_drop_callback(Some(Box::new(move |info| {
            assert_eq!(info.capacity, 1);
            reported.fetch_add(1, Ordering::Relaxed);
        })));
    }
    let _critical: Vec<Subscription> = (0..4)
        .map(|i| bus.subscribe(&format!("critical-{i}"), 1).unwrap())
        .collect();
    let _typed = bus.subscribe_to::<Numbered>("typed", 1).unwrap();
    let _lossy = bus
        .subscribe_with(SubscribeOptions::new("lossy", 1).lossy())
        .unwrap();
    bus.start();
    let event: Arc<dyn Event> = Arc::new(tick(0));
    assert_eq!(bus.publish_arc(Arc::clone(&event)), 6); // fills every buffer
    assert_eq!(bus.publish_arc(Arc::clone(&event)), 0); // first drops: warm-up

    let (delivered, allocations, _) = count_allocations(|| {
        (0..100)
            .map(|_| bus.publish_arc(Arc::clone(&event)))
            .sum::<usize>()
    });
    assert_eq!(delivered, 0);
    assert_eq!(allocations, 0, "dropping and reporting allocated");
    assert_eq!(bus.stats().dropped_critical, 101 * 5);
    assert_eq!(bus.stats().dropped_observability, 101);
    assert_eq!(reported.load(Ordering::Relaxed), 101 * 5);
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

#[test]
fn waking_an_async_consumer_allocates_nothing() {
    let bus = EventBus::new();
    let subscription = bus.subscribe("async", 64).unwrap();
    let typed = bus.subscribe_to::<Numbered>("async-typed", 64).unwrap();
    bus.start();
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(Arc::clone(&flag));
    let mut cx = Context::from_waker(&waker);
    let event: Arc<dyn Event> = Arc::new(tick(0));
    // The first publish on a thread sets up its thread-local state (see
    // `first_publish_on_a_new_thread`); take it out of the measurement.
    bus.publish_arc(Arc::clone(&event));
    assert!(subscription.try_recv().is_ok() && typed.try_recv().is_ok());

    for round in 0..20 {
        // Poll until pending: the first time also switches the bus to waking us.
        assert!(subscription.poll_recv(&mut cx).is_pending());
        assert!(typed.poll_recv(&mut cx).is_pending());
        flag.0.store(false, Ordering::Relaxed);
        let (delivered, allocations, _) = count_allocations(|| bus.publish_arc(Arc::clone(&event)));
        assert_eq!(delivered, 2);
        assert_eq!(allocations, 0, "round {round}: waking allocated");
        assert!(flag.0.load(Ordering::Acquire), "the consumer was not woken");
        assert!(matches!(
            subscription.poll_recv(&mut cx),
            Poll::Ready(Some(_))
        ));
        assert!(matches!(typed.poll_recv(&mut cx), Poll::Ready(Some(_))));
    }
}

#[test]
fn first_publish_on_a_new_thread() {
    let (bus, subscriptions, reached) = bus_with_every_kind();
    let event: Arc<dyn Event> = Arc::new(tick(0));
    let counts = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let first = count_allocations(|| bus.publish_arc(Arc::clone(&event)));
                let second = count_allocations(|| bus.publish_arc(Arc::clone(&event)));
                (first, second)
            })
            .join()
            .unwrap()
    });
    let ((delivered, first, first_bytes), (_, second, _)) = counts;
    assert_eq!(delivered, reached);
    println!(
        "first publish_arc on a new thread: {first} allocations ({first_bytes} bytes, \
         per-thread setup); the second: {second}"
    );
    assert!(
        first <= 4,
        "the first publish on a thread should only set up thread-local state, made {first}"
    );
    assert_eq!(second, 0);
    drain(&subscriptions);
}

/// Allocations of one subscribe, of an explicit unsubscribe, and of dropping
/// a subscription, on a started bus that already has `existing` subscribers
/// made with `existing_options`.
fn subscribe_costs(
    existing: usize,
    existing_options: &dyn Fn(String) -> SubscribeOptions,
    options: &dyn Fn() -> SubscribeOptions,
) -> (u64, u64, u64) {
    let bus = EventBus::new();
    let _others: Vec<Subscription> = (0..existing)
        .map(|i| {
            bus.subscribe_with(existing_options(format!("existing-{i}")))
                .unwrap()
        })
        .collect();
    bus.start();
    bus.publish(tick(0)); // thread-local set-up out of the way
    let warm_up = bus.subscribe_with(options()).unwrap();
    warm_up.unsubscribe();
    let (subscription, subscribe, _) = count_allocations(|| bus.subscribe_with(options()).unwrap());
    let (removed, unsubscribe, _) = count_allocations(|| subscription.unsubscribe());
    assert!(removed);
    drop(subscription);
    let dropped = bus.subscribe_with(options()).unwrap();
    let ((), drop_cost, _) = count_allocations(|| drop(dropped));
    assert_eq!(bus.stats().subscriber_count(), existing);
    (subscribe, unsubscribe, drop_cost)
}

#[test]
fn subscribe_and_unsubscribe_allocations() {
    let universal = || SubscribeOptions::new("churn", 64).leader_only();
    let by_name = || {
        SubscribeOptions::new("churn", 64)
            .event_types(["tick"])
            .leader_only()
    };
    let by_type = || {
        SubscribeOptions::new("churn", 64)
            .rust_types(TypeSet::new().with::<Numbered>())
            .leader_only()
    };
    let existing_universal = |name: String| SubscribeOptions::new(name, 64);
    let existing_by_name = |name: String| SubscribeOptions::new(name, 64).event_types(["tick"]);

    println!("allocations per subscribe / unsubscribe / drop, by subscribers already on the bus:");
    println!("| new subscriber | existing | subscribe | unsubscribe | drop |");
    println!("|---|---|---:|---:|---:|");
    for (kind, options) in [
        ("universal", &universal as &dyn Fn() -> SubscribeOptions),
        ("by event type", &by_name),
        ("by Rust type", &by_type),
    ] {
        for (existing_kind, existing_options) in [
            (
                "universal",
                &existing_universal as &dyn Fn(String) -> SubscribeOptions,
            ),
            ("by event type", &existing_by_name),
        ] {
            for existing in [0, 8, 64] {
                if existing == 0 && existing_kind != "universal" {
                    continue;
                }
                let (subscribe, unsubscribe, dropped) =
                    subscribe_costs(existing, existing_options, options);
                println!(
                    "| {kind} | {existing} {existing_kind} | {subscribe} | {unsubscribe} | {dropped} |"
                );
                // Dropping a subscription only marks it: the next registry
                // change compacts it away.
                assert_eq!(
                    dropped, 0,
                    "{kind}, {existing} {existing_kind}: drop allocated"
                );
                // A handful for the new queue and subscriber, plus the copied
                // part of the registry: the universal list, or the typed
                // indexes. Neither grows with the number of universal
                // subscribers; the typed indexes grow with typed subscribers
                // only as their vectors double (one bucket shared by all here).
                let (subscribe_base, unsubscribe_base) =
                    if kind == "universal" { (8, 3) } else { (16, 4) };
                let doublings = if kind != "universal" && existing_kind != "universal" {
                    2 * u64::from(u64::BITS - (existing as u64).leading_zeros())
                } else {
                    0
                };
                let limit = subscribe_base + doublings;
                assert!(
                    subscribe <= limit,
                    "{kind}, {existing} {existing_kind}: subscribe made {subscribe}"
                );
                let limit = unsubscribe_base + doublings;
                assert!(
                    unsubscribe <= limit,
                    "{kind}, {existing} {existing_kind}: unsubscribe made {unsubscribe}"
                );
            }
        }
    }

    // The queue is one allocation, whatever its size; a dropped subscription
    // with a large queue is compacted away at once, to free it.
    let small = subscribe_costs(8, &existing_universal, &|| {
        SubscribeOptions::new("small", 1).leader_only()
    });
    let large = subscribe_costs(8, &existing_universal, &|| {
        SubscribeOptions::new("large", 4096).leader_only()
    });
    assert_eq!(
        (small.0, small.1),
        (large.0, large.1),
        "the capacity changed the allocation count"
    );
    assert_eq!(small.2, 0);
    assert_eq!(
        large.2, large.1,
        "dropping a large subscription compacts at once"
    );
}
