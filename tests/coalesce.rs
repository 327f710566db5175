//! `drain_coalesced`: superseded coalescible events are skipped and counted,
//! everything else is kept in order.

#![cfg(feature = "derive")]

mod common;

use std::sync::Arc;

use common::events::{command, numbered, status, Command, Numbered, Status};
use switchboard::{Event, EventBus};

fn label(event: &Arc<dyn Event>) -> String {
    if let Some(s) = event.downcast_ref::<Status>() {
        format!("{}={}", s.key, s.value)
    } else {
        format!("cmd{}", event.downcast_ref::<Command>().unwrap().0)
    }
}

#[test]
fn superseded_coalescible_events_are_skipped_and_counted() {
    let bus = EventBus::new();
    let sub = bus.subscribe("dashboard", 32).unwrap();
    bus.start();
    bus.publish(status("cpu", 1));
    bus.publish(command(1));
    bus.publish(status("mem", 1));
    bus.publish(status("cpu", 2));
    bus.publish(command(2));
    bus.publish(status("cpu", 3));
    let got: Vec<String> = sub.drain_coalesced().iter().map(label).collect();
    assert_eq!(got, ["cmd1", "mem=1", "cmd2", "cpu=3"]);
    assert_eq!(sub.coalesced_count(), 2);
    assert_eq!(
        sub.received_count(),
        6,
        "skipped events were received, then coalesced"
    );
    assert!(sub.is_empty());
    let stats = bus.stats();
    assert_eq!(stats.subscribers[0].coalesced, 2);
    assert_eq!(stats.subscribers[0].delivered, 6);
}

#[test]
fn non_coalescible_events_are_never_skipped() {
    let bus = EventBus::new();
    let sub = bus.subscribe("s", 8).unwrap();
    bus.start();
    for n in 0..4 {
        bus.publish(command(n));
    }
    let got: Vec<String> = sub.drain_coalesced().iter().map(label).collect();
    assert_eq!(got, ["cmd0", "cmd1", "cmd2", "cmd3"]);
    assert_eq!(sub.coalesced_count(), 0);
}

#[test]
fn a_coalescible_event_is_superseded_by_any_later_event_of_its_type() {
    // A later non-coalescible event of the same type supersedes a coalescible
    // one; the later one itself is kept.
    let bus = EventBus::new();
    let sub = bus.subscribe("s", 8).unwrap();
    bus.start();
    bus.publish(status("cpu", 1));
    bus.publish(numbered("cpu", 2));
    let got = sub.drain_coalesced();
    assert_eq!(got.len(), 1);
    assert!(got[0].is::<Numbered>());
}

#[test]
fn only_what_is_queued_now_is_drained_and_empty_is_fine() {
    let bus = EventBus::new();
    let sub = bus.subscribe("s", 8).unwrap();
    assert!(sub.drain_coalesced().is_empty());
    bus.start();
    bus.publish(status("cpu", 1));
    assert_eq!(sub.drain_coalesced().len(), 1);
    bus.publish(status("cpu", 2));
    let got: Vec<String> = sub.drain_coalesced().iter().map(label).collect();
    assert_eq!(
        got,
        ["cpu=2"],
        "nothing from the previous drain is remembered"
    );
    assert_eq!(sub.coalesced_count(), 0);
}

#[test]
fn the_typed_twin_coalesces_too() {
    let bus = EventBus::new();
    let sub = bus.subscribe_to::<Status>("typed", 8).unwrap();
    bus.start();
    for value in 0..5 {
        bus.publish(status("cpu", value));
    }
    bus.publish(status("mem", 9));
    let got: Vec<(&str, u32)> = sub
        .drain_coalesced()
        .iter()
        .map(|s| (s.key, s.value))
        .collect();
    assert_eq!(got, [("cpu", 4), ("mem", 9)]);
    assert_eq!(sub.coalesced_count(), 4);
}
