//! Publish/subscribe behaviour of a started bus.

#![cfg(feature = "derive")]

mod common;

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::drops::{DropRecorder, Dropped};
use common::events::{from_thread, n_of, numbered, other, FromThread, Numbered, Other};
use common::{running_bus, within, GUARD};
use switchboard::{
    DropReason, Event, EventBus, SubscribeOptions, SubscriberKind, TryRecvError, TypeSet,
};

#[test]
fn publish_reaches_a_subscriber_in_order() {
    let bus = EventBus::new();
    let sub = bus.subscribe("a", 16).unwrap();
    bus.start();
    for n in 0..10 {
        assert_eq!(bus.publish(numbered("x", n)), 1);
    }
    let got: Vec<u64> = sub.try_iter().map(|e| n_of(&e)).collect();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    assert_eq!(sub.received_count(), 10);
}

#[test]
fn publish_with_no_subscriber_returns_zero() {
    let bus = running_bus();
    assert_eq!(bus.publish(numbered("x", 1)), 0);
    assert_eq!(bus.stats().published, 1);
    assert_eq!(bus.stats().dropped(), 0);
}

#[test]
fn every_subscriber_gets_the_same_shared_event() {
    let bus = EventBus::new();
    let subs: Vec<_> = (0..8)
        .map(|i| bus.subscribe(&format!("s{i}"), 4).unwrap())
        .collect();
    bus.start();
    let event: Arc<dyn Event> = Arc::new(numbered("x", 7));
    assert_eq!(bus.publish_arc(Arc::clone(&event)), 8);
    for sub in &subs {
        let got = sub.try_recv().unwrap();
        assert!(Arc::ptr_eq(&got, &event), "no copy, one shared allocation");
    }
    // The 8 queued references were taken out and dropped; only ours is left.
    assert_eq!(Arc::strong_count(&event), 1);
}

#[test]
fn a_slow_subscriber_drops_the_newest_and_counts_it_others_are_unaffected() {
    let bus = EventBus::new();
    let slow = bus.subscribe("slow", 2).unwrap();
    let fast = bus.subscribe("fast", 16).unwrap();
    bus.start();
    let mut delivered = Vec::new();
    for n in 0..5 {
        delivered.push(bus.publish(numbered("x", n)));
    }
    assert_eq!(delivered, [2, 2, 1, 1, 1]);
    assert_eq!(slow.dropped(), 3);
    assert_eq!(fast.dropped(), 0);
    let kept: Vec<u64> = slow.try_iter().map(|e| n_of(&e)).collect();
    assert_eq!(kept, [0, 1], "the oldest stay, the newest are dropped");
    assert_eq!(fast.try_iter().count(), 5);
    assert_eq!(bus.stats().dropped_critical, 3);
    assert_eq!(bus.stats().dropped_observability, 0);
    assert_eq!(bus.stats().dropped(), 3);
}

#[test]
fn critical_drops_call_the_callback_lossy_drops_do_not() {
    let bus = EventBus::new();
    let drops = DropRecorder::install(&bus);
    let critical = bus
        .subscribe_with(SubscribeOptions::new("critical", 1).event_types(["x", "y"]))
        .unwrap();
    let lossy = bus
        .subscribe_with(SubscribeOptions::new("metrics", 1).lossy())
        .unwrap();
    bus.start();
    bus.publish(numbered("x", 1));
    bus.publish(numbered("x", 2));
    bus.publish(numbered("y", 3));

    assert_eq!(critical.dropped(), 2);
    assert_eq!(lossy.dropped(), 2);
    assert_eq!(bus.stats().dropped_critical, 2);
    assert_eq!(bus.stats().dropped_observability, 2);
    assert_eq!(bus.stats().dropped(), 4);
    let critical_drop = |n, event_type: &str| Dropped {
        reason: DropReason::BufferFull,
        n: Some(n),
        event_type: event_type.into(),
        subscriber_name: "critical".into(),
        capacity: 1,
        event_types: "x,y".into(),
    };
    assert_eq!(
        drops.drops(),
        [critical_drop(2, "x"), critical_drop(3, "y")]
    );
}

#[test]
fn the_callback_can_be_replaced_and_removed() {
    let bus = EventBus::new();
    let (first, second) = (DropRecorder::default(), DropRecorder::default());
    let _full = bus.subscribe("full", 0).unwrap();
    bus.start();
    bus.set_drop_callback(Some(first.callback()));
    bus.publish(numbered("x", 1));
    bus.set_drop_callback(Some(second.callback()));
    bus.publish(numbered("x", 2));
    bus.set_drop_callback(None);
    bus.publish(numbered("x", 3));
    assert_eq!(first.numbers(), [1]);
    assert_eq!(second.numbers(), [2]);
    assert_eq!(bus.stats().dropped_critical, 3);
}

#[test]
fn string_filters_deliver_only_matching_types() {
    let bus = EventBus::new();
    let ab = bus
        .subscribe_with(SubscribeOptions::new("ab", 16).event_types(["a", "b"]))
        .unwrap();
    let c = bus
        .subscribe_with(SubscribeOptions::new("c", 16).event_types(vec!["c".to_string()]))
        .unwrap();
    let all = bus.subscribe("all", 16).unwrap();
    bus.start();
    assert_eq!(bus.publish(numbered("a", 1)), 2);
    assert_eq!(bus.publish(numbered("c", 2)), 2);
    assert_eq!(bus.publish(numbered("b", 3)), 2);
    assert_eq!(bus.publish(numbered("z", 4)), 1);
    assert_eq!(ab.try_iter().map(|e| n_of(&e)).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(c.try_iter().map(|e| n_of(&e)).collect::<Vec<_>>(), [2]);
    assert_eq!(all.try_iter().count(), 4);
}

#[test]
fn rust_type_filters_deliver_only_matching_types() {
    let bus = EventBus::new();
    let numbers = bus.subscribe_to::<Numbered>("numbers", 16).unwrap();
    let others = bus.subscribe_to::<Other>("others", 16).unwrap();
    let both = bus
        .subscribe_with(
            SubscribeOptions::new("both", 16)
                .rust_types(TypeSet::new().with::<Numbered>().with::<Other>()),
        )
        .unwrap();
    let threads = bus.subscribe_to::<FromThread>("threads", 16).unwrap();
    bus.start();
    assert_eq!(bus.publish(numbered("any", 1)), 2);
    assert_eq!(bus.publish(other(2)), 2);
    assert_eq!(
        bus.publish(numbered("other", 3)),
        2,
        "string type is irrelevant"
    );

    let n: Vec<u64> = numbers.try_iter().map(|e| e.n).collect();
    assert_eq!(n, [1, 3]);
    let o: Vec<u64> = others.try_iter().map(|e| e.0).collect();
    assert_eq!(o, [2]);
    assert_eq!(both.try_iter().count(), 3);
    assert_eq!(threads.try_recv().unwrap_err(), TryRecvError::Empty);
}

#[test]
fn string_and_type_filters_are_independent_indexes() {
    let bus = EventBus::new();
    let by_name = bus
        .subscribe_with(SubscribeOptions::new("by-name", 4).event_types(["other"]))
        .unwrap();
    let by_type = bus.subscribe_to::<Other>("by-type", 4).unwrap();
    bus.start();
    // `Other` has event_type "other": both match, each once.
    assert_eq!(bus.publish(other(1)), 2);
    // A `Numbered` with the same string matches the string filter only.
    assert_eq!(bus.publish(numbered("other", 2)), 1);
    assert_eq!(by_name.try_iter().count(), 2);
    assert_eq!(by_type.try_iter().count(), 1);
}

#[test]
fn lossy_and_leader_only_variants_deliver_like_the_plain_ones() {
    let bus = running_bus();
    let subs = [
        bus.subscribe_with(SubscribeOptions::new("leader", 4).leader_only())
            .unwrap(),
        bus.subscribe_with(SubscribeOptions::new("lossy", 4).lossy())
            .unwrap(),
        bus.subscribe_with(
            SubscribeOptions::new("tl", 4)
                .event_types(["x"])
                .leader_only(),
        )
        .unwrap(),
        bus.subscribe_with(
            SubscribeOptions::new("tlossy", 4)
                .event_types(["x"])
                .lossy(),
        )
        .unwrap(),
        bus.subscribe_with(SubscribeOptions::new("opts", 4).lossy().leader_only())
            .unwrap(),
    ];
    assert_eq!(bus.publish(numbered("x", 1)), 5);
    assert_eq!(bus.publish(numbered("y", 2)), 3);
    for sub in &subs {
        assert!(sub.try_recv().is_ok(), "{} got the x event", sub.name());
    }
    assert!(subs[1].is_lossy() && subs[3].is_lossy() && subs[4].is_lossy());
    assert!(!subs[0].is_lossy() && !subs[2].is_lossy());
}

#[test]
fn unsubscribe_explicitly_by_handle_and_by_drop() {
    let bus = EventBus::new();
    let a = bus.subscribe("a", 4).unwrap();
    let b = bus.subscribe("b", 4).unwrap();
    let c = bus.subscribe_to::<Numbered>("c", 4).unwrap();
    bus.start();
    assert_eq!(bus.stats().subscriber_count(), 3);

    assert!(bus.unsubscribe(&a));
    assert!(!bus.unsubscribe(&a), "second unsubscribe is a no-op");
    assert!(!a.unsubscribe());
    assert!(!a.is_subscribed());
    assert!(b.unsubscribe());
    assert!(bus.unsubscribe(&c));
    assert_eq!(bus.stats().subscriber_count(), 0);
    assert_eq!(bus.publish(numbered("x", 1)), 0);

    let d = bus
        .subscribe_with(SubscribeOptions::new("d", 4).leader_only())
        .unwrap();
    assert_eq!(bus.stats().subscriber_count(), 1);
    drop(d);
    assert_eq!(bus.stats().subscriber_count(), 0);
}

/// A dropped subscription's queued events are freed no later than the next
/// registry change: at once when another dropped one waits already or when
/// its queue is large, else by the next subscribe or unsubscribe.
#[test]
fn a_dropped_subscription_frees_its_queued_events_by_the_next_registry_change() {
    let bus = running_bus();
    let queued_by = |event: &Arc<dyn Event>| Arc::strong_count(event) - 1;

    let first = bus.subscribe("first", 4).unwrap();
    let second = bus.subscribe("second", 4).unwrap();
    let small: Arc<dyn Event> = Arc::new(numbered("x", 1));
    bus.publish_arc(Arc::clone(&small));
    assert_eq!(queued_by(&small), 2);
    drop(first);
    drop(second);
    assert_eq!(queued_by(&small), 0, "two dropped: both compacted away");

    let large = bus.subscribe("large", 4096).unwrap();
    let big: Arc<dyn Event> = Arc::new(numbered("x", 2));
    bus.publish_arc(Arc::clone(&big));
    drop(large);
    assert_eq!(queued_by(&big), 0, "a large queue is freed at once");

    let lone = bus.subscribe("lone", 4).unwrap();
    let waiting: Arc<dyn Event> = Arc::new(numbered("x", 3));
    bus.publish_arc(Arc::clone(&waiting));
    drop(lone);
    let next = bus.subscribe("next", 4).unwrap();
    assert_eq!(queued_by(&waiting), 0, "freed by the next registry change");
    assert_eq!(bus.stats().subscriber_count(), 1);
    drop(next);
}

#[test]
fn an_unsubscribed_subscription_drains_then_ends() {
    let bus = running_bus();
    let sub = bus
        .subscribe_with(SubscribeOptions::new("s", 8).leader_only())
        .unwrap();
    bus.publish(numbered("x", 1));
    bus.publish(numbered("x", 2));
    assert!(sub.unsubscribe());
    bus.publish(numbered("x", 3));
    let got: Vec<u64> = sub.iter().map(|e| n_of(&e)).collect();
    assert_eq!(got, [1, 2], "queued events stay, later ones never arrive");
    assert!(sub.recv().is_err());
    assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Closed);
}

#[test]
fn subscriptions_end_when_the_last_bus_handle_is_dropped() {
    let bus = EventBus::new();
    let sub = bus.subscribe("s", 8).unwrap();
    let typed = bus.subscribe_to::<Numbered>("t", 8).unwrap();
    let clone = bus.clone();
    bus.start();
    bus.publish(numbered("x", 1));
    drop(bus);
    clone.publish(numbered("x", 2));
    let consumer = thread::spawn(move || {
        let got: Vec<u64> = sub.iter().map(|e| n_of(&e)).collect();
        let typed_got: Vec<u64> = typed.iter().map(|e| e.n).collect();
        (got, typed_got)
    });
    drop(clone);
    let (got, typed_got) = consumer.join().unwrap();
    assert_eq!(got, [1, 2]);
    assert_eq!(typed_got, [1, 2]);
}

#[test]
fn a_blocked_receiver_is_released_when_the_bus_is_dropped() {
    let bus = EventBus::new();
    let sub = bus.subscribe("s", 8).unwrap();
    let consumer = thread::spawn(move || sub.recv());
    // Whether or not the consumer is already parked, it must end.
    thread::sleep(Duration::from_millis(20));
    drop(bus);
    assert!(consumer.join().unwrap().is_err());
}

#[test]
fn concurrent_publishers_keep_per_publisher_order_and_lose_nothing() {
    const THREADS: usize = 4;
    // Miri interprets every instruction: keep its runs short.
    const PER_THREAD: u64 = if cfg!(miri) { 50 } else { 5_000 };
    let bus = EventBus::new();
    let sub = bus.subscribe("all", THREADS * PER_THREAD as usize).unwrap();
    let typed = bus
        .subscribe_to::<FromThread>("typed", THREADS * PER_THREAD as usize)
        .unwrap();
    bus.start();
    let publishers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let bus = bus.clone();
            thread::spawn(move || {
                for seq in 0..PER_THREAD {
                    assert_eq!(bus.publish(from_thread(thread, seq)), 2);
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    let mut next = [0u64; THREADS];
    for event in sub.try_iter() {
        let e = event.downcast_ref::<FromThread>().unwrap();
        assert_eq!(e.seq, next[e.thread], "publisher {} out of order", e.thread);
        next[e.thread] += 1;
    }
    assert_eq!(next, [PER_THREAD; THREADS]);
    assert_eq!(typed.try_iter().count(), THREADS * PER_THREAD as usize);
    assert_eq!(bus.stats().dropped(), 0);
    assert_eq!(bus.stats().published, THREADS as u64 * PER_THREAD);
}

#[test]
fn consumers_on_plain_threads_receive_everything() {
    const EVENTS: u64 = if cfg!(miri) { 200 } else { 20_000 };
    let bus = EventBus::new();
    let consumers: Vec<_> = (0..3)
        .map(|i| {
            let sub = bus.subscribe(&format!("c{i}"), 64).unwrap();
            thread::spawn(move || {
                let mut received = 0;
                let mut last = None;
                for event in &sub {
                    let n = n_of(&event);
                    assert!(last < Some(n), "in publish order");
                    last = Some(n);
                    received += 1;
                }
                (received, sub.dropped())
            })
        })
        .collect();
    bus.start();
    for n in 0..EVENTS {
        // A small capacity: some events may be dropped; keep the bus honest about it.
        bus.publish(numbered("x", n));
    }
    let dropped_total = bus.stats().dropped_critical;
    drop(bus);
    let mut dropped_seen = 0;
    for c in consumers {
        let (received, dropped) = c.join().unwrap();
        dropped_seen += dropped;
        assert_eq!(received + dropped, EVENTS, "received + dropped = published");
    }
    assert_eq!(dropped_seen, dropped_total);
}

#[test]
fn a_callback_holding_a_weak_bus_lets_the_bus_go() {
    let bus = EventBus::new();
    let sub = bus.subscribe("s", 0).unwrap();
    let weak = bus.downgrade();
    let drops = DropRecorder::default();
    let sink = drops.clone();
    bus.set_drop_callback(Some(Box::new(move |info| {
        sink.record(info);
        if let (Some(bus), "x") = (weak.upgrade(), info.event_type) {
            bus.publish(numbered("alert", 0));
        }
    })));
    bus.start();
    bus.publish(numbered("x", 1)); // unbuffered and nobody waiting: dropped
                                   // The drop of "x", then the drop of the "alert" the callback published.
    assert_eq!(drops.numbers(), [1, 0]);
    drop(bus);
    assert!(
        sub.recv().is_err(),
        "the bus is gone although its callback held a handle"
    );
}

#[test]
fn callbacks_see_the_dropped_event_itself() {
    let bus = EventBus::new();
    let _full = bus.subscribe("full", 0).unwrap();
    let drops = DropRecorder::install(&bus);
    bus.start();
    bus.publish(numbered("x", 42));
    assert_eq!(drops.numbers(), [42]);
}

#[test]
fn a_callback_replaced_during_a_publish_takes_over_for_the_rest_of_it() {
    let bus = running_bus();
    let subscriptions: Vec<_> = (0..3)
        .map(|i| {
            bus.subscribe_with(SubscribeOptions::new(format!("full-{i}"), 1).leader_only())
                .unwrap()
        })
        .collect();
    bus.publish(numbered("x", 0));
    let (first, second) = (DropRecorder::default(), DropRecorder::default());
    {
        let (weak, first, second) = (bus.downgrade(), first.clone(), second.clone());
        bus.set_drop_callback(Some(Box::new(move |info| {
            first.record(info);
            weak.upgrade()
                .unwrap()
                .set_drop_callback(Some(second.callback()));
        })));
    }
    // All three are full: the first drop goes to the first callback, which
    // replaces itself; the two later drops of the same publish see the
    // replacement.
    assert_eq!(bus.publish(numbered("x", 1)), 0);
    assert_eq!(first.subscribers(), ["full-0"]);
    assert_eq!(second.subscribers(), ["full-1", "full-2"]);
    assert_eq!(bus.stats().dropped_critical, 3);
    drop(subscriptions);
}

#[test]
fn the_callback_sees_the_subscriber_count_and_the_totals_follow_when_publish_returns() {
    let bus = running_bus();
    let full = Arc::new(
        bus.subscribe_with(SubscribeOptions::new("full", 1).leader_only())
            .unwrap(),
    );
    let lossy = bus
        .subscribe_with(SubscribeOptions::new("lossy", 1).lossy())
        .unwrap();
    bus.publish(numbered("x", 0));
    let seen: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    {
        let (weak, full, seen) = (bus.downgrade(), Arc::clone(&full), Arc::clone(&seen));
        bus.set_drop_callback(Some(Box::new(move |_| {
            let totals = weak.upgrade().unwrap().stats().dropped_critical;
            seen.lock().unwrap().push((full.dropped(), totals));
        })));
    }
    bus.publish(numbered("x", 1));
    bus.publish(numbered("x", 2));
    // The subscriber's own count includes the drop being reported; the bus
    // total includes it once that publish has returned.
    assert_eq!(*seen.lock().unwrap(), [(1, 0), (2, 1)]);
    assert_eq!(bus.stats().dropped_critical, 2);
    assert_eq!(bus.stats().dropped_observability, 2);
    assert_eq!(lossy.dropped(), 2);
}

#[test]
fn a_subscriber_that_was_full_receives_again_once_it_has_room() {
    let bus = running_bus();
    let slow = bus
        .subscribe_with(SubscribeOptions::new("slow", 2).leader_only())
        .unwrap();
    let other = bus
        .subscribe_with(SubscribeOptions::new("other", 8).leader_only())
        .unwrap();
    let missed = DropRecorder::install(&bus);
    let delivered: Vec<usize> = (0..5).map(|n| bus.publish(numbered("x", n))).collect();
    assert_eq!(delivered, [2, 2, 1, 1, 1]);
    assert_eq!(
        slow.try_iter().map(|e| n_of(&e)).collect::<Vec<_>>(),
        [0, 1]
    );
    assert_eq!(bus.publish(numbered("x", 5)), 2, "room again: delivered");
    assert_eq!(bus.publish(numbered("x", 6)), 2);
    assert_eq!(bus.publish(numbered("x", 7)), 1, "full again: dropped");
    assert_eq!(
        slow.try_iter().map(|e| n_of(&e)).collect::<Vec<_>>(),
        [5, 6]
    );
    assert_eq!(slow.dropped(), 4);
    assert_eq!(other.len(), 8);
    assert_eq!(missed.subscribers(), ["slow"; 4]);
    assert_eq!(
        missed.numbers(),
        [2, 3, 4, 7],
        "each drop reports the event it dropped"
    );
}

#[test]
fn the_last_matching_subscriber_being_full_still_reports_the_event() {
    // The last subscriber a publish reaches gets the caller's event rather
    // than a clone; when it is full, the drop report still carries the event.
    let bus = running_bus();
    let _room = bus
        .subscribe_with(SubscribeOptions::new("room", 8).leader_only())
        .unwrap();
    let _full = bus
        .subscribe_with(
            SubscribeOptions::new("full", 1)
                .event_types(["x"])
                .leader_only(),
        )
        .unwrap();
    let drops = DropRecorder::install(&bus);
    assert_eq!(bus.publish(numbered("x", 1)), 2);
    assert_eq!(bus.publish(numbered("x", 2)), 1);
    assert_eq!(drops.subscribers(), ["full"]);
    assert_eq!(drops.numbers(), [2]);
}

#[test]
fn a_zero_capacity_subscriber_still_takes_a_handoff_after_a_miss() {
    let bus = running_bus();
    let sub = bus
        .subscribe_with(SubscribeOptions::new("handoff", 0).leader_only())
        .unwrap();
    assert_eq!(bus.publish(numbered("x", 1)), 0, "nobody waits: missed");
    assert_eq!(sub.dropped(), 1);
    let receiver = thread::spawn(move || n_of(&sub.recv().unwrap()));
    // Once the receiver waits, a publish hands the event over.
    let handed_over = within(GUARD, "a handoff", move || {
        let mut n = 2;
        while bus.publish(numbered("x", n)) == 0 {
            thread::yield_now();
            n += 1;
        }
        n
    });
    assert_eq!(receiver.join().unwrap(), handed_over);
}

#[test]
fn stats_list_subscribers_in_subscription_order_whatever_their_kind() {
    let bus = EventBus::new();
    let _t1 = bus
        .subscribe_with(SubscribeOptions::new("t1", 1).event_types(["x"]))
        .unwrap();
    let _u1 = bus.subscribe("u1", 1).unwrap();
    let t2 = bus.subscribe_to::<Other>("t2", 1).unwrap();
    let _u2 = bus.subscribe("u2", 1).unwrap();
    let _t3 = bus
        .subscribe_with(SubscribeOptions::new("t3", 1).event_types(["y"]))
        .unwrap();
    bus.unsubscribe(&t2);
    let names: Vec<_> = bus
        .stats()
        .subscribers
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["t1", "u1", "u2", "t3"]);
    assert_eq!(bus.stats().subscriber_count(), 4);
}

#[test]
fn stats_report_every_subscriber_and_the_totals() {
    let bus = EventBus::new();
    let _a = bus.subscribe("a", 1).unwrap();
    let _b = bus
        .subscribe_with(SubscribeOptions::new("b", 1).event_types(["x"]).lossy())
        .unwrap();
    let _c = bus.subscribe_to::<Other>("c", 4).unwrap();
    bus.publish(numbered("x", 0));
    let before = bus.stats();
    assert!(!before.running);
    assert_eq!(before.pre_start_len, 1);
    bus.start();
    bus.publish(numbered("x", 1));
    let stats = bus.stats();
    assert!(stats.running);
    assert_eq!(stats.published, 2);
    assert_eq!(stats.pre_start_len, 0);
    assert_eq!(stats.dropped_critical, 1);
    assert_eq!(stats.dropped_observability, 1);
    let rows: Vec<_> = stats
        .subscribers
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.kind,
                s.lossy,
                s.queued,
                s.delivered,
                s.dropped,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("a", SubscriberKind::Universal, false, 1, 1, 1),
            ("b", SubscriberKind::EventTypes, true, 1, 1, 1),
            ("c", SubscriberKind::RustTypes, false, 0, 0, 0),
        ]
    );
    let table = stats.to_string();
    assert!(table.contains("running"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.trim_start().starts_with('b') && l.contains("lossy")),
        "{table}"
    );
}
