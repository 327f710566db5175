//! Typed subscriptions with options: `SubscribeOptions::of::<T>` given to
//! `subscribe_with` makes a `TypedSubscription<T>` that is lossy, leader-only
//! or gets the retained events first, through the one subscribe path
//! (docs/design.md, "Receiving"). The late-subscription warning of a
//! leader-only typed subscription is checked in `tests/warnings.rs`; a filter
//! added to typed options is a compile error (`switchboard-derive/tests/ui/`).
#![cfg(feature = "derive")]

mod common;

use common::drops::DropRecorder;
use common::events::{numbered, other, Numbered};
use common::running_bus;
use switchboard::{Received, SubscribeError, SubscribeOptions, MAX_CAPACITY};

#[test]
fn a_lossy_typed_subscription_counts_its_drops_and_reports_none() {
    let bus = running_bus();
    let reports = DropRecorder::install(&bus);
    let sub = bus
        .subscribe_with(SubscribeOptions::of::<Numbered>("metrics", 1).lossy())
        .unwrap();
    assert!(sub.is_lossy());
    for n in 0..3 {
        bus.publish(numbered("tick", n));
        bus.publish(other(n)); // another Rust type: never offered, never a drop
    }

    assert_eq!(sub.recv().unwrap().n, 0, "an Arc<Numbered>");
    assert!(sub.try_recv().is_err());
    assert_eq!(sub.dropped(), 2);
    let stats = bus.stats();
    assert_eq!(
        (stats.dropped_observability, stats.dropped_critical),
        (2, 0)
    );
    assert_eq!(
        reports.count(),
        0,
        "a lossy subscriber's drops are only counted"
    );
}

#[test]
fn typed_options_without_flavours_subscribe_as_subscribe_to_does() {
    let bus = running_bus();
    let reports = DropRecorder::install(&bus);
    let with = bus
        .subscribe_with(SubscribeOptions::of::<Numbered>("with", 1).leader_only())
        .unwrap();
    let to = bus.subscribe_to::<Numbered>("to", 1).unwrap();
    assert!(!with.is_lossy() && !to.is_lossy());
    bus.publish(numbered("tick", 1));
    bus.publish(numbered("tick", 2));

    assert_eq!((with.recv().unwrap().n, to.recv().unwrap().n), (1, 1));
    assert_eq!((with.dropped(), to.dropped()), (1, 1));
    assert_eq!(reports.subscribers(), ["with", "to"], "both critical");
    assert_eq!(bus.listeners::<Numbered>(), 2);
}

#[test]
fn a_typed_subscription_with_retained_gets_the_retained_event_of_its_type_first() {
    let bus = running_bus();
    bus.publish_retained(numbered("config", 1));
    bus.publish_retained(other(10)); // retained too, but of another Rust type
    bus.publish_retained(numbered("config", 2)); // replaces 1
    let sub = bus
        .subscribe_with(
            SubscribeOptions::of::<Numbered>("late", 8)
                .with_retained()
                .leader_only(),
        )
        .unwrap();
    bus.publish(numbered("config", 3));
    bus.publish(other(11));

    let seen: Vec<u64> = sub.try_iter().map(|event| event.n).collect();
    assert_eq!(seen, [2, 3]);
}

#[test]
fn a_typed_subscription_without_with_retained_gets_no_retained_event() {
    let bus = running_bus();
    bus.publish_retained(numbered("config", 1));
    let sub = bus
        .subscribe_with(SubscribeOptions::of::<Numbered>("plain", 8).leader_only())
        .unwrap();
    assert!(sub.try_recv().is_err());
}

#[test]
fn typed_options_refuse_a_capacity_above_the_maximum() {
    let bus = running_bus();
    let too_big = bus.subscribe_with(SubscribeOptions::of::<Numbered>("big", MAX_CAPACITY + 1));
    assert_eq!(
        too_big.unwrap_err(),
        SubscribeError::CapacityTooLarge {
            requested: MAX_CAPACITY + 1,
            max: MAX_CAPACITY
        }
    );
    assert_eq!(bus.stats().subscriber_count(), 0);
}

#[test]
fn a_lossy_typed_subscription_reports_its_gaps_in_the_loop() {
    let bus = running_bus();
    let sub = bus
        .subscribe_with(SubscribeOptions::of::<Numbered>("slow", 2).lossy())
        .unwrap()
        .with_gaps();
    for n in 0..5 {
        bus.publish(numbered("tick", n));
    }
    drop(bus);
    let seen: Vec<_> = sub
        .into_iter()
        .map(|item| match item {
            Received::Missed(missed) => format!("missed {missed}"),
            Received::Event(event) => event.n.to_string(),
        })
        .collect();
    assert_eq!(seen, ["missed 3", "0", "1"]);
}

#[test]
fn a_typed_subscription_with_options_acknowledges_and_unsubscribes() {
    let bus = running_bus();
    let options = SubscribeOptions::of::<Numbered>("worker", 4).leader_only();
    let debug = format!("{options:?}");
    assert!(debug.contains("worker"), "{debug}");
    let sub = bus.subscribe_with(options.clone()).unwrap();
    let acks = bus.subscribe_with(options).unwrap().with_acks();
    bus.publish(numbered("job", 7));

    let delivery = acks.recv().unwrap();
    assert_eq!(delivery.n, 7);
    delivery.ack();
    assert!(bus.unsubscribe(&sub));
    assert!(!sub.is_subscribed());
    assert_eq!(bus.listeners::<Numbered>(), 1);
}
