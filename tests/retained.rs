//! Retained events: the latest of each type, delivered first to subscriptions
//! that ask for them, exactly once (docs/design.md, "Retained events").
#![cfg(feature = "derive")]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use common::drops::DropRecorder;
use common::events::{n_of, number, numbered, other, Numbered, Other};
use common::running_bus;
use switchboard::{DropReason, Event, EventBus, SubscribeOptions, TypeSet};

/// A late subscription that asks for retained events.
fn late(name: &str, capacity: usize) -> SubscribeOptions {
    SubscribeOptions::new(name, capacity)
        .with_retained()
        .leader_only()
}

fn numbers(events: impl IntoIterator<Item = Arc<dyn Event>>) -> Vec<u64> {
    events.into_iter().map(|e| number(&*e).unwrap()).collect()
}

#[test]
fn a_late_subscriber_gets_the_latest_retained_events_first_then_live_ones() {
    let bus = running_bus();
    bus.publish_retained(numbered("config", 1));
    bus.publish_retained(numbered("config", 2));
    bus.publish(numbered("config", 3)); // not retained: the retained one stays 2
    let sub = bus.subscribe_with(late("late", 8)).unwrap();
    assert_eq!(bus.publish(numbered("config", 4)), 1);
    assert_eq!(numbers(sub.try_iter()), [2, 4]);
    assert_eq!(bus.retained_by_type("config").map(|e| n_of(&e)), Some(2));
}

#[test]
fn one_event_per_type_oldest_first_and_only_what_the_filter_matches() {
    let bus = running_bus();
    bus.publish_retained(numbered("a", 1));
    bus.publish_retained(other(10));
    bus.publish_retained(numbered("b", 20));
    bus.publish_retained(numbered("a", 30)); // replaces a=1, and is now the newest
    assert_eq!(bus.stats().retained, 3);

    let everything = bus.subscribe_with(late("all", 8)).unwrap();
    assert_eq!(numbers(everything.try_iter()), [10, 20, 30]);

    let by_name = bus
        .subscribe_with(late("names", 8).event_types(["a", "other"]))
        .unwrap();
    assert_eq!(numbers(by_name.try_iter()), [10, 30]);

    let by_type = bus
        .subscribe_with(late("numbered", 8).rust_types(TypeSet::new().with::<Numbered>()))
        .unwrap();
    assert_eq!(numbers(by_type.try_iter()), [20, 30]);

    let typed = bus
        .subscribe_with(late("other", 8).rust_types(TypeSet::new().with::<Other>()))
        .unwrap();
    assert_eq!(numbers(typed.try_iter()), [10]);
}

#[test]
fn a_subscription_that_does_not_ask_gets_no_retained_event() {
    let bus = running_bus();
    bus.publish_retained(numbered("config", 1));
    let sub = bus
        .subscribe_with(SubscribeOptions::new("plain", 8).leader_only())
        .unwrap();
    assert!(sub.try_recv().is_err());
    bus.publish_retained(numbered("config", 2));
    assert_eq!(
        numbers(sub.try_iter()),
        [2],
        "live retained events reach everyone"
    );
}

#[test]
fn the_retained_value_follows_delivery_across_start_and_pause() {
    let bus = EventBus::builder().pre_start_limit(1).build();
    let early = bus.subscribe("early", 8).unwrap();
    assert_eq!(bus.publish_retained(numbered("config", 1)), 0, "buffered");
    assert!(
        bus.retained_by_type("config").is_none(),
        "not retained before it is delivered"
    );
    assert_eq!(bus.publish_retained(numbered("config", 2)), 0);
    assert_eq!(
        bus.stats().dropped_pre_start,
        1,
        "2 overflowed the pre-start buffer"
    );
    bus.start();
    assert_eq!(bus.retained_by_type("config").map(|e| n_of(&e)), Some(1));
    assert_eq!(numbers(early.try_iter()), [1]);

    bus.pause();
    bus.publish_retained(numbered("config", 3));
    let joined_while_paused = bus.subscribe_with(late("paused", 8)).unwrap();
    assert_eq!(
        numbers(joined_while_paused.try_iter()),
        [1],
        "while paused, the retained value is still what was delivered"
    );
    bus.start();
    assert_eq!(bus.retained_by_type("config").map(|e| n_of(&e)), Some(3));
    assert_eq!(numbers(joined_while_paused.try_iter()), [3]);
}

#[test]
fn a_clear_while_buffering_forgets_what_the_replay_would_have_retained() {
    let bus = EventBus::new();
    let early = bus.subscribe("early", 8).unwrap();
    bus.publish_retained(numbered("a", 1));
    bus.publish_retained(numbered("a", 2));
    bus.publish_retained(numbered("b", 3));
    bus.publish_retained(other(4));
    assert_eq!(
        bus.clear_retained_by_type("a"),
        1,
        "one type lost the event it was to retain"
    );
    assert_eq!(bus.clear_retained::<Other>(), 1);
    bus.start();
    assert_eq!(
        numbers(early.try_iter()),
        [1, 2, 3, 4],
        "cleared events are still delivered, only not retained"
    );
    assert!(bus.retained_by_type("a").is_none());
    assert!(bus.retained::<Other>().is_none());
    assert_eq!(bus.retained_by_type("b").map(|e| n_of(&e)), Some(3));

    // Paused, with a retained value in the store and a newer one buffered:
    // the clear forgets both, and counts the type once.
    bus.pause();
    bus.publish_retained(numbered("b", 5));
    assert_eq!(bus.clear_all_retained(), 1);
    bus.start();
    assert_eq!(numbers(early.try_iter()), [5]);
    assert_eq!(bus.stats().retained, 0);
    let late = bus.subscribe_with(late("late", 8)).unwrap();
    assert!(late.try_recv().is_err(), "nothing retained is left");
}

#[test]
fn retained_values_are_read_cleared_and_counted() {
    let bus = running_bus();
    assert!(bus.retained::<Other>().is_none());
    bus.publish_retained(other(1));
    bus.publish_retained(other(2));
    bus.publish_retained(numbered("a", 3));
    bus.publish_retained(numbered("b", 4));
    assert_eq!(bus.retained::<Other>().map(|e| e.0), Some(2));
    assert_eq!(
        bus.retained::<Numbered>().map(|e| e.n),
        Some(4),
        "the latest of the type"
    );
    assert_eq!(bus.retained_by_type("a").map(|e| n_of(&e)), Some(3));
    let stats = bus.stats();
    assert_eq!(stats.retained, 3);
    assert!(stats.to_string().contains("3 retained"), "{stats}");

    assert_eq!(bus.clear_retained_by_type("a"), 1);
    assert!(bus.retained_by_type("a").is_none());
    assert_eq!(bus.clear_retained::<Other>(), 1);
    assert!(bus.retained::<Other>().is_none());
    assert_eq!(bus.clear_retained::<Other>(), 0, "nothing left to clear");
    assert_eq!(bus.clear_all_retained(), 1);
    assert_eq!(bus.stats().retained, 0);
    let sub = bus.subscribe_with(late("late", 8)).unwrap();
    assert!(sub.try_recv().is_err(), "cleared events are not delivered");
}

#[test]
fn retained_events_that_do_not_fit_are_missed_and_counted() {
    let bus = running_bus();
    let drops = DropRecorder::install(&bus);
    for kind in ["a", "b", "c"] {
        bus.publish_retained(numbered(kind, 1));
    }
    let critical = bus.subscribe_with(late("small", 2)).unwrap();
    assert_eq!(critical.len(), 2);
    assert_eq!(critical.dropped(), 1);
    assert_eq!(critical.take_missed(), 1);
    assert_eq!(bus.stats().dropped_critical, 1);
    assert_eq!(drops.reasons(), [DropReason::BufferFull]);
    assert_eq!(drops.subscribers(), ["small"]);

    let lossy = bus.subscribe_with(late("lossy", 1).lossy()).unwrap();
    assert_eq!(lossy.dropped(), 2);
    assert_eq!(bus.stats().dropped_observability, 2);
    assert_eq!(drops.count(), 1, "lossy misses are only counted");
}

#[test]
fn the_replaced_event_is_dropped_outside_the_bus_s_locks() {
    // An event whose drop publishes: it would deadlock if the bus dropped it
    // while holding the retained lock.
    struct PublishesOnDrop {
        bus: switchboard::WeakEventBus,
        timestamp: switchboard::Timestamp,
    }
    impl Event for PublishesOnDrop {
        fn event_type(&self) -> &str {
            "on-drop"
        }
        fn timestamp(&self) -> std::time::SystemTime {
            self.timestamp.into()
        }
    }
    impl Drop for PublishesOnDrop {
        fn drop(&mut self) {
            if let Some(bus) = self.bus.upgrade() {
                bus.publish_retained(numbered("from-drop", 1));
            }
        }
    }
    let bus = running_bus();
    for _ in 0..2 {
        bus.publish_retained(PublishesOnDrop {
            bus: bus.downgrade(),
            timestamp: switchboard::Timestamp::UNIX_EPOCH,
        });
    }
    assert_eq!(bus.retained_by_type("from-drop").map(|e| n_of(&e)), Some(1));
    assert_eq!(bus.clear_all_retained(), 2);
}

/// A publisher retains 1..=N while subscribers join: each receives an
/// unbroken, strictly increasing run ending at N. A gap would show as a
/// missing number, a duplicate or an older event after a newer as a
/// non-increasing step.
#[test]
fn subscriptions_made_while_retained_events_are_published_miss_none_and_repeat_none() {
    const N: u64 = if cfg!(miri) { 100 } else { 20_000 };
    let bus = running_bus();
    bus.publish_retained(numbered("seq", 0));
    let done = Arc::new(AtomicBool::new(false));
    let joiners: Vec<_> = (0..2)
        .map(|i| {
            let bus = bus.clone();
            let done = Arc::clone(&done);
            thread::spawn(move || {
                let mut runs = Vec::new();
                while !done.load(Ordering::Acquire) {
                    let sub = bus
                        .subscribe_with(late(&format!("joiner-{i}"), N as usize + 1))
                        .unwrap();
                    runs.push(sub);
                    if runs.len() == 8 {
                        break;
                    }
                    thread::yield_now();
                }
                runs
            })
        })
        .collect();
    for n in 1..=N {
        bus.publish_retained(numbered("seq", n));
    }
    done.store(true, Ordering::Release);
    for joiner in joiners {
        for sub in joiner.join().unwrap() {
            let got: Vec<u64> = sub.try_iter().map(|e| n_of(&e)).collect();
            assert_eq!(sub.dropped(), 0);
            let first = *got.first().expect("at least the retained event");
            let expected: Vec<u64> = (first..=N).collect();
            assert_eq!(got, expected, "{} saw a gap or a repeat", sub.name());
        }
    }
}
