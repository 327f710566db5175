//! Who listens: the subscribers an event would reach, counted from the
//! registry's indexes.
#![cfg(feature = "derive")]

mod common;

#[path = "common/alloc_probe.rs"]
mod alloc_probe;

use std::time::Duration;

use common::events::{numbered, other, Numbered, Other};
use common::running_bus;
use switchboard::{Event, RequestOptions, Response, SubscribeOptions, TypeSet};

#[derive(Event, Response)]
#[event(type = "answer")]
struct Answer {
    request_id: String,
    responder: String,
    timestamp: switchboard::Timestamp,
}

#[derive(Event, switchboard::Request)]
#[event(type = "question")]
struct Question {
    request_id: String,
    timestamp: switchboard::Timestamp,
}

#[test]
fn listeners_count_universal_typed_and_named_subscribers_that_match() {
    let bus = running_bus();
    assert_eq!(bus.listeners::<Other>(), 0);
    assert_eq!(bus.listeners_by_type("a"), 0);

    let _all = bus
        .subscribe_with(SubscribeOptions::new("all", 4).leader_only())
        .unwrap();
    let _typed = bus.subscribe_to::<Other>("typed", 4).unwrap();
    let _both = bus
        .subscribe_with(
            SubscribeOptions::new("both", 4)
                .rust_types(TypeSet::new().with::<Other>().with::<Numbered>()),
        )
        .unwrap();
    let _named = bus
        .subscribe_with(
            SubscribeOptions::new("named", 4)
                .event_types(["a", "b"])
                .leader_only(),
        )
        .unwrap();

    assert_eq!(bus.listeners::<Other>(), 3, "all, typed, both");
    assert_eq!(bus.listeners::<Numbered>(), 2, "all, both");
    assert_eq!(bus.listeners_by_type("a"), 2, "all, named");
    assert_eq!(bus.listeners_by_type("z"), 1, "all");
    assert_eq!(bus.listeners_for(&numbered("a", 1)), 3, "all, both, named");
    assert_eq!(bus.listeners_for(&other(1)), 3, "all, typed, both");
    // What listeners_for says is what a publish delivers.
    assert_eq!(bus.publish(numbered("a", 1)), 3);
}

#[test]
fn dropped_and_unsubscribed_subscribers_no_longer_listen() {
    let bus = running_bus();
    let typed = bus.subscribe_to::<Other>("typed", 4).unwrap();
    let dropped = bus.subscribe_to::<Other>("dropped", 4).unwrap();
    assert_eq!(bus.listeners::<Other>(), 2);
    drop(dropped); // abandoned until the next registry change
    assert_eq!(bus.listeners::<Other>(), 1);
    typed.unsubscribe();
    assert_eq!(bus.listeners::<Other>(), 0);
}

#[test]
fn the_bus_s_own_response_route_is_not_a_listener() {
    let bus = running_bus();
    let _question = bus.subscribe_to::<Question>("q", 4).unwrap();
    let _ = bus.request::<Answer, _>(
        Question {
            request_id: "r".into(),
            timestamp: switchboard::Timestamp::UNIX_EPOCH,
        },
        RequestOptions::new(["nobody"]).timeout(Duration::from_millis(1)),
    );
    assert_eq!(bus.listeners::<Answer>(), 0);
    assert_eq!(bus.listeners_by_type("answer"), 0);
}

#[test]
fn asking_allocates_nothing() {
    let bus = running_bus();
    let _typed = bus.subscribe_to::<Other>("typed", 4).unwrap();
    let _named = bus
        .subscribe_with(
            SubscribeOptions::new("named", 4)
                .event_types(["a"])
                .leader_only(),
        )
        .unwrap();
    let event = numbered("a", 1);
    bus.listeners_for(&event); // any first-use setup of the thread
    let (counts, measured) = alloc_probe::measure(|| {
        (
            bus.listeners::<Other>(),
            bus.listeners_by_type("a"),
            bus.listeners_for(&event),
        )
    });
    assert_eq!(counts, (1, 1, 1));
    assert_eq!(measured.allocations, 0);
}
