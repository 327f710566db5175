//! `drain_coalesced`: superseded coalescible events are skipped and counted,
//! everything else is kept in order.

use std::sync::Arc;
use std::time::SystemTime;

use switchboard::{Event, EventBus};

/// A status update: only the latest per `key` matters.
#[derive(Debug)]
struct Status {
    key: &'static str,
    value: u32,
}

impl Event for Status {
    fn event_type(&self) -> &str {
        self.key
    }
    fn timestamp(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH
    }
    fn coalescible(&self) -> bool {
        true
    }
}

/// A command: never skipped, even when others of its type follow.
#[derive(Debug)]
struct Command(u32);

impl Event for Command {
    fn event_type(&self) -> &str {
        "command"
    }
    fn timestamp(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH
    }
}

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
    bus.publish(Status {
        key: "cpu",
        value: 1,
    });
    bus.publish(Command(1));
    bus.publish(Status {
        key: "mem",
        value: 1,
    });
    bus.publish(Status {
        key: "cpu",
        value: 2,
    });
    bus.publish(Command(2));
    bus.publish(Status {
        key: "cpu",
        value: 3,
    });
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
        bus.publish(Command(n));
    }
    let got: Vec<String> = sub.drain_coalesced().iter().map(label).collect();
    assert_eq!(got, ["cmd0", "cmd1", "cmd2", "cmd3"]);
    assert_eq!(sub.coalesced_count(), 0);
}

#[test]
fn a_coalescible_event_is_superseded_by_any_later_event_of_its_type() {
    // A later non-coalescible event of the same type supersedes a coalescible
    // one; the later one itself is kept.
    #[derive(Debug)]
    struct Final;
    impl Event for Final {
        fn event_type(&self) -> &str {
            "cpu"
        }
        fn timestamp(&self) -> SystemTime {
            SystemTime::UNIX_EPOCH
        }
    }
    let bus = EventBus::new();
    let sub = bus.subscribe("s", 8).unwrap();
    bus.start();
    bus.publish(Status {
        key: "cpu",
        value: 1,
    });
    bus.publish(Final);
    let got = sub.drain_coalesced();
    assert_eq!(got.len(), 1);
    assert!(got[0].is::<Final>());
}

#[test]
fn only_what_is_queued_now_is_drained_and_empty_is_fine() {
    let bus = EventBus::new();
    let sub = bus.subscribe("s", 8).unwrap();
    assert!(sub.drain_coalesced().is_empty());
    bus.start();
    bus.publish(Status {
        key: "cpu",
        value: 1,
    });
    assert_eq!(sub.drain_coalesced().len(), 1);
    bus.publish(Status {
        key: "cpu",
        value: 2,
    });
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
        bus.publish(Status { key: "cpu", value });
    }
    bus.publish(Status {
        key: "mem",
        value: 9,
    });
    let got: Vec<(&str, u32)> = sub
        .drain_coalesced()
        .iter()
        .map(|s| (s.key, s.value))
        .collect();
    assert_eq!(got, [("cpu", 4), ("mem", 9)]);
    assert_eq!(sub.coalesced_count(), 4);
}
