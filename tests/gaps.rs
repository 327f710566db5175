//! Lag as information in the receive loop: `take_missed` and `with_gaps`
//! (docs/design.md, "Receiving").
#![cfg(feature = "derive")]

mod common;

use std::sync::Arc;
use std::thread;

use common::drops::DropRecorder;
use common::events::{n_of, numbered, other, Other};
use common::{running_bus, within, GUARD};
use futures::StreamExt;
use switchboard::{Event, Received, SubscribeOptions};

fn label(item: Received<Arc<dyn Event>>) -> String {
    match item {
        Received::Missed(n) => format!("missed {n}"),
        Received::Event(event) => n_of(&event).to_string(),
    }
}

#[test]
fn take_missed_reports_each_miss_once_for_critical_and_lossy_subscribers() {
    let bus = running_bus();
    let drops = DropRecorder::install(&bus);
    let critical = bus.subscribe("critical", 2).unwrap();
    let lossy = bus
        .subscribe_with(SubscribeOptions::new("lossy", 1).lossy())
        .unwrap();
    for n in 0..5 {
        bus.publish(numbered("x", n));
    }
    assert_eq!(critical.take_missed(), 3);
    assert_eq!(lossy.take_missed(), 4);
    assert_eq!(
        (critical.take_missed(), lossy.take_missed()),
        (0, 0),
        "once"
    );
    assert_eq!(
        drops.count(),
        3,
        "only the critical misses reach the callback"
    );

    // Room again, then more misses: only the new ones are reported.
    assert_eq!(critical.try_iter().count(), 2);
    for n in 5..9 {
        bus.publish(numbered("x", n));
    }
    assert_eq!(critical.take_missed(), 2);
    assert_eq!(critical.dropped(), 5, "the total keeps counting");
}

#[test]
fn several_threads_asking_split_the_misses_without_double_counting() {
    let bus = running_bus();
    let sub = Arc::new(
        bus.subscribe_with(SubscribeOptions::new("shared", 1).lossy())
            .unwrap(),
    );
    let askers: Vec<_> = (0..4)
        .map(|_| {
            let sub = Arc::clone(&sub);
            thread::spawn(move || (0..200).map(|_| sub.take_missed()).sum::<u64>())
        })
        .collect();
    for n in 0..2000 {
        bus.publish(numbered("x", n));
    }
    let reported: u64 =
        askers.into_iter().map(|a| a.join().unwrap()).sum::<u64>() + sub.take_missed();
    assert_eq!(reported, sub.dropped());
    assert_eq!(reported, 1999);
}

#[test]
fn with_gaps_as_an_iterator_reports_misses_before_the_next_events_and_at_the_end() {
    let bus = running_bus();
    let sub = bus.subscribe("slow", 2).unwrap();
    for n in 0..5 {
        bus.publish(numbered("x", n)); // 2, 3 and 4 are missed
    }
    let consumer = {
        let items = sub.with_gaps();
        thread::spawn(move || items.into_iter().map(label).collect::<Vec<_>>())
    };
    drop(bus);
    assert_eq!(
        within(GUARD, "the gap-reporting loop", move || consumer
            .join()
            .unwrap()),
        ["missed 3", "0", "1"]
    );
}

#[test]
fn with_gaps_as_a_stream_reports_misses_and_ends_with_the_bus() {
    let bus = running_bus();
    let mut sub = bus.subscribe_to::<Other>("typed", 1).unwrap().with_gaps();
    bus.publish(other(1));
    bus.publish(other(2)); // missed
    let seen = futures::executor::block_on(async {
        let mut seen = Vec::new();
        seen.push(sub.next().await);
        seen.push(sub.next().await);
        bus.publish(other(3));
        bus.publish(other(4)); // missed
        bus.publish(other(5)); // missed
        drop(bus);
        while let Some(item) = sub.next().await {
            seen.push(Some(item));
        }
        seen
    });
    let labels: Vec<String> = seen
        .into_iter()
        .map(|item| match item {
            Some(Received::Missed(n)) => format!("missed {n}"),
            Some(Received::Event(event)) => event.0.to_string(),
            None => "end".into(),
        })
        .collect();
    assert_eq!(labels, ["missed 1", "1", "missed 2", "3"]);
    assert_eq!(sub.get_ref().dropped(), 3);
}

#[test]
fn with_gaps_yields_events_unchanged_when_nothing_is_missed() {
    let bus = running_bus();
    let sub = bus.subscribe("roomy", 16).unwrap();
    for n in 0..3 {
        bus.publish(numbered("x", n));
    }
    drop(bus);
    let items: Vec<String> = sub.with_gaps().into_iter().map(label).collect();
    assert_eq!(items, ["0", "1", "2"]);
    assert_eq!(
        Received::Event(7).event(),
        Some(7),
        "Received::event unwraps an event"
    );
    assert_eq!(Received::<u8>::Missed(1).event(), None);
}

#[test]
fn the_subscription_comes_back_out_of_with_gaps() {
    let bus = running_bus();
    let sub = bus
        .subscribe_with(SubscribeOptions::new("lossy", 1).lossy())
        .unwrap();
    bus.publish(numbered("x", 0));
    bus.publish(numbered("x", 1));
    let gaps = sub.with_gaps();
    assert_eq!(gaps.get_ref().name(), "lossy");
    let sub = gaps.into_inner();
    assert_eq!(sub.take_missed(), 1);
}
