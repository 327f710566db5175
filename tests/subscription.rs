//! What a subscription says about itself: the accessors of `Subscription` and
//! of `TypedSubscription` (which must report its own subscription's state, not
//! a constant), the owned iterators, and `Stream::size_hint`.
//!
//! Mutation testing found these unchecked (docs/mutation-testing.md): each
//! test says which mutants of `src/subscription.rs` it kills.

#![cfg(feature = "derive")]

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::events::{n_of, numbered, Numbered};
use common::{within, GUARD};
use futures::Stream;
use switchboard::{EventBus, RecvTimeoutError};

/// Kills every accessor of `TypedSubscription` replaced by a constant: each
/// is read at two different values (the name and capacity at one that is
/// neither of cargo-mutants' constants), so no constant passes.
#[test]
fn a_typed_subscription_reports_its_own_state() {
    let bus = EventBus::new();
    let typed = bus.subscribe_to::<Numbered>("typed", 3).unwrap();
    assert_eq!(typed.name(), "typed");
    assert_eq!(typed.capacity(), 3);
    assert_eq!(typed.len(), 0);
    assert!(typed.is_empty());
    assert_eq!(typed.dropped(), 0);
    assert_eq!(typed.received_count(), 0);
    assert!(typed.is_subscribed());

    bus.start();
    for n in 0..5 {
        bus.publish(numbered("x", n)); // 3 fit, 2 are dropped
    }
    assert_eq!(typed.len(), 3);
    assert!(!typed.is_empty());
    assert_eq!(typed.dropped(), 2);
    assert_eq!(typed.try_recv().unwrap().n, 0);
    assert_eq!(typed.try_recv().unwrap().n, 1);
    assert_eq!(typed.received_count(), 2);
    assert_eq!(typed.len(), 1);

    assert!(typed.unsubscribe());
    assert!(!typed.is_subscribed());
    assert_eq!(typed.len(), 1, "what was queued stays");
}

/// The typed accessors report what the untyped subscription underneath
/// does, at every step.
#[test]
fn a_typed_subscription_agrees_with_its_untyped_self() {
    let bus = EventBus::new();
    let typed = bus.subscribe_to::<Numbered>("agreeing", 2).unwrap();
    let check = |step: &str| {
        let untyped = typed.as_untyped();
        assert_eq!(typed.name(), untyped.name(), "{step}");
        assert_eq!(typed.capacity(), untyped.capacity(), "{step}");
        assert_eq!(typed.len(), untyped.len(), "{step}");
        assert_eq!(typed.is_empty(), untyped.is_empty(), "{step}");
        assert_eq!(typed.dropped(), untyped.dropped(), "{step}");
        assert_eq!(typed.received_count(), untyped.received_count(), "{step}");
        assert_eq!(typed.is_subscribed(), untyped.is_subscribed(), "{step}");
        assert_eq!(typed.coalesced_count(), untyped.coalesced_count(), "{step}");
    };
    check("subscribed");
    bus.start();
    for n in 0..4 {
        bus.publish(numbered("x", n));
    }
    check("full");
    typed.try_recv().unwrap();
    check("one received");
    drop(bus);
    check("bus gone");
}

/// Kills `Subscription::is_empty` replaced by `true` (the other tests only
/// ever saw it empty).
#[test]
fn is_empty_is_false_while_an_event_is_queued() {
    let bus = EventBus::new();
    let sub = bus.subscribe("s", 4).unwrap();
    bus.start();
    assert!(sub.is_empty());
    bus.publish(numbered("x", 1));
    assert!(!sub.is_empty());
    assert_eq!(sub.len(), 1);
    sub.try_recv().unwrap();
    assert!(sub.is_empty());
}

/// Kills the owned `IntoIterator for Subscription` yielding nothing
/// (`IntoIter::next` replaced by `None`); the typed one rides on it.
#[test]
fn the_owned_iterators_yield_what_was_queued_then_end() {
    let bus = EventBus::new();
    let sub = bus.subscribe("owned", 8).unwrap();
    let typed = bus.subscribe_to::<Numbered>("owned-typed", 8).unwrap();
    bus.start();
    for n in 0..3 {
        bus.publish(numbered("x", n));
    }
    drop(bus); // both end once drained
    let got: Vec<u64> = sub.into_iter().map(|e| n_of(&e)).collect();
    assert_eq!(got, [0, 1, 2]);
    let got: Vec<u64> = typed.into_iter().map(|e| e.n).collect();
    assert_eq!(got, [0, 1, 2]);
}

/// The owned iterator blocks for events published later, on another thread,
/// and ends when the bus goes.
#[test]
fn the_owned_iterator_waits_for_later_events() {
    let bus = EventBus::new();
    let sub = bus.subscribe("consumer", 64).unwrap();
    bus.start();
    let publisher = thread::spawn(move || {
        for n in 0..50 {
            assert_eq!(bus.publish(numbered("x", n)), 1);
        }
        // The bus is dropped here: the iterator ends once it has the 50.
    });
    let got = within(GUARD, "the owned iterator", move || {
        let mut got = Vec::new();
        for event in sub {
            got.push(n_of(&event));
        }
        got
    });
    publisher.join().unwrap();
    assert_eq!(got, (0..50).collect::<Vec<_>>());
}

/// Kills both `Stream::size_hint`s replaced by constants: the lower bound is
/// what is queued (those events are there to take), and there is no upper
/// bound while the bus may publish more.
#[test]
fn the_stream_size_hint_is_what_is_queued_with_no_upper_bound() {
    let bus = EventBus::new();
    let sub = bus.subscribe("stream", 8).unwrap();
    let typed = bus.subscribe_to::<Numbered>("typed-stream", 8).unwrap();
    bus.start();
    assert_eq!(Stream::size_hint(&sub), (0, None));
    assert_eq!(Stream::size_hint(&typed), (0, None));
    for n in 0..2 {
        bus.publish(numbered("x", n));
    }
    assert_eq!(Stream::size_hint(&sub), (2, None));
    assert_eq!(Stream::size_hint(&typed), (2, None));
    sub.try_recv().unwrap();
    typed.try_recv().unwrap();
    assert_eq!(Stream::size_hint(&sub), (1, None));
    assert_eq!(Stream::size_hint(&typed), (1, None));
}

/// `recv_deadline` and `recv_timeout`, untyped and typed: a timeout when
/// nothing is queued by the deadline, the event when one is, the end once the
/// bus is gone. (Their mutants are unviable, so cargo-mutants cannot tell
/// whether this is checked; no other test called `recv_deadline`.)
#[test]
fn timed_waits_time_out_receive_or_end() {
    let bus = EventBus::new();
    let sub = bus.subscribe("timed", 4).unwrap();
    let typed = bus.subscribe_to::<Numbered>("timed-typed", 4).unwrap();
    bus.start();
    let passed = Instant::now();
    assert_eq!(
        sub.recv_deadline(passed).err(),
        Some(RecvTimeoutError::Timeout)
    );
    assert_eq!(
        typed.recv_deadline(passed).err(),
        Some(RecvTimeoutError::Timeout)
    );
    assert_eq!(
        sub.recv_timeout(Duration::ZERO).err(),
        Some(RecvTimeoutError::Timeout)
    );
    assert_eq!(
        typed.recv_timeout(Duration::ZERO).err(),
        Some(RecvTimeoutError::Timeout)
    );

    bus.publish(numbered("x", 7));
    bus.publish(numbered("x", 8));
    let deadline = Instant::now() + GUARD;
    assert_eq!(sub.recv_deadline(deadline).map(|e| n_of(&e)), Ok(7));
    assert_eq!(typed.recv_deadline(deadline).map(|e| e.n), Ok(7));
    assert_eq!(sub.recv_timeout(GUARD).map(|e| n_of(&e)), Ok(8));
    assert_eq!(typed.recv_timeout(GUARD).map(|e| e.n), Ok(8));
    assert_eq!((sub.received_count(), typed.received_count()), (2, 2));

    drop(bus);
    assert_eq!(
        sub.recv_deadline(deadline).err(),
        Some(RecvTimeoutError::Closed)
    );
    assert_eq!(
        typed.recv_deadline(deadline).err(),
        Some(RecvTimeoutError::Closed)
    );
}
