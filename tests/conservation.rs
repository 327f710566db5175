//! Conservation under concurrency: every event is received or counted as
//! dropped, exactly, with publishers, consumers of every kind, subscription
//! churn and pause/start cycles all running at once. Bounded by iteration
//! counts, not time.

#![cfg(feature = "derive")]

mod common;

use std::collections::HashSet;
use std::future::IntoFuture;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use common::events::{from_thread, other, FromThread, Other};
use futures::StreamExt;
use switchboard::{Event, EventBus, SubscribeOptions, Subscription};

const PUBLISHERS: usize = 3;
const PER_PUBLISHER: u64 = 6_000;

/// Every 4th event is an `Other`, the rest `FromThread`.
fn event(thread: usize, seq: u64) -> Arc<dyn Event> {
    if seq % 4 == 3 {
        Arc::new(other(seq))
    } else {
        Arc::new(from_thread(thread, seq))
    }
}

/// What a consumer saw: how many events, and that each publisher's events
/// came in order with no duplicate.
#[derive(Default)]
struct Tally {
    received: u64,
    last_seq: [Option<u64>; PUBLISHERS],
}

impl Tally {
    fn see(&mut self, event: &Arc<dyn Event>) {
        self.received += 1;
        if let Some(e) = event.downcast_ref::<FromThread>() {
            let last = &mut self.last_seq[e.thread];
            assert!(*last < Some(e.seq), "duplicate or reordered event {e:?}");
            *last = Some(e.seq);
        }
    }
}

fn consume_blocking(sub: Subscription) -> thread::JoinHandle<(Tally, u64)> {
    thread::spawn(move || {
        let mut tally = Tally::default();
        for event in &sub {
            tally.see(&event);
        }
        (tally, sub.dropped())
    })
}

fn consume_async(mut sub: Subscription) -> thread::JoinHandle<(Tally, u64)> {
    thread::spawn(move || {
        futures::executor::block_on(async {
            let mut tally = Tally::default();
            while let Some(event) = sub.next().await {
                tally.see(&event);
            }
            (tally, sub.dropped())
        })
    })
}

#[test]
fn every_event_is_received_or_counted_exactly() {
    let total = PUBLISHERS as u64 * PER_PUBLISHER;
    let others = PUBLISHERS as u64 * (PER_PUBLISHER / 4);
    let bus = EventBus::builder().pre_start_limit(total as usize).build();

    // Long-lived subscribers of every kind, each with (lossy, expected matches).
    let long_lived: Vec<(Subscription, bool, u64, bool)> = vec![
        (bus.subscribe("critical", 64).unwrap(), false, total, false),
        (
            bus.subscribe_with(SubscribeOptions::new("lossy", 8).lossy())
                .unwrap(),
            true,
            total,
            false,
        ),
        (
            bus.subscribe_with(SubscribeOptions::new("by-string", 32).event_types(["from-thread"]))
                .unwrap(),
            false,
            total - others,
            false,
        ),
        (
            bus.subscribe_with(
                SubscribeOptions::new("by-string-lossy", 4)
                    .event_types(["other"])
                    .lossy(),
            )
            .unwrap(),
            true,
            others,
            true,
        ),
        (
            bus.subscribe_with(
                SubscribeOptions::new("by-type", 16)
                    .rust_types(switchboard::TypeSet::new().with::<Other>()),
            )
            .unwrap(),
            false,
            others,
            false,
        ),
        (bus.subscribe("async", 32).unwrap(), false, total, true),
        (
            bus.subscribe_with(SubscribeOptions::new("async-lossy", 4).lossy())
                .unwrap(),
            true,
            total,
            true,
        ),
    ];
    let mut consumers = Vec::new();
    for (sub, lossy, expected, is_async) in long_lived {
        let handle = if is_async {
            consume_async(sub)
        } else {
            consume_blocking(sub)
        };
        consumers.push((handle, lossy, expected));
    }
    bus.start();

    let done = Arc::new(AtomicBool::new(false));
    // Churn: subscribe, receive a little, unsubscribe, drain; critical and lossy.
    let churner = {
        let bus = bus.clone();
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let (mut critical_dropped, mut lossy_dropped, mut rounds) = (0, 0, 0u64);
            while !done.load(Ordering::Relaxed) || rounds < 50 {
                let lossy = rounds % 2 == 0;
                let sub = if lossy {
                    bus.subscribe_with(SubscribeOptions::new("churn", 4).lossy())
                        .unwrap()
                } else {
                    bus.subscribe_with(SubscribeOptions::new("churn", 4).leader_only())
                        .unwrap()
                };
                let mut tally = Tally::default();
                if let Ok(e) = sub.try_recv() {
                    tally.see(&e);
                }
                assert!(sub.unsubscribe());
                for e in &sub {
                    tally.see(&e); // drains what was queued, then ends
                }
                if lossy {
                    lossy_dropped += sub.dropped();
                } else {
                    critical_dropped += sub.dropped();
                }
                rounds += 1;
            }
            (critical_dropped, lossy_dropped)
        })
    };
    // Pause/start cycles while publishing.
    let toggler = {
        let bus = bus.clone();
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let mut cycles = 0u64;
            while !done.load(Ordering::Relaxed) || cycles < 20 {
                bus.pause();
                thread::yield_now();
                bus.start();
                cycles += 1;
            }
        })
    };
    let barrier = Arc::new(Barrier::new(PUBLISHERS));
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|thread| {
            let bus = bus.clone();
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                for seq in 0..PER_PUBLISHER {
                    bus.publish_arc(event(thread, seq));
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    toggler.join().unwrap();
    let (churn_critical, churn_lossy) = churner.join().unwrap();
    bus.start(); // flush whatever the last pause kept

    assert_eq!(bus.stats().published, total);
    assert_eq!(bus.stats().dropped_pre_start, 0);
    let (critical_dropped, lossy_dropped) = (
        bus.stats().dropped_critical,
        bus.stats().dropped_observability,
    );
    drop(bus); // ends every subscription once drained

    let (mut sum_critical, mut sum_lossy) = (churn_critical, churn_lossy);
    for (handle, lossy, expected) in consumers {
        let (tally, dropped) = handle.join().unwrap();
        assert_eq!(
            tally.received + dropped,
            expected,
            "received {} + dropped {dropped} (lossy: {lossy})",
            tally.received
        );
        if lossy {
            sum_lossy += dropped;
        } else {
            sum_critical += dropped;
        }
    }
    assert_eq!(
        critical_dropped, sum_critical,
        "bus critical total = sum of subscribers'"
    );
    assert_eq!(
        lossy_dropped, sum_lossy,
        "bus observability total = sum of subscribers'"
    );
}

/// Unsubscribing while `start()` replays never delivers an event twice (the Go
/// original, `pkg/events` of the HAProxy Template Ingress Controller, did in
/// 33 of 2000 trials) and keeps the replay's order.
#[test]
fn unsubscribing_during_replay_never_duplicates() {
    for _ in 0..2000 {
        let bus = EventBus::new();
        let sub = bus.subscribe("leaving", 64).unwrap();
        let _stays = bus.subscribe("staying", 64).unwrap();
        for seq in 0..20 {
            bus.publish(from_thread(0, seq));
        }
        let barrier = Arc::new(Barrier::new(2));
        let starter = {
            let bus = bus.clone();
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                bus.start();
            })
        };
        barrier.wait();
        bus.unsubscribe(&sub);
        starter.join().unwrap();
        let mut seen = HashSet::new();
        let mut last = None;
        for e in &sub {
            let e = e.downcast_ref::<FromThread>().unwrap();
            assert!(seen.insert(e.seq), "event {} delivered twice", e.seq);
            assert!(last < Some(e.seq), "replay order broken");
            last = Some(e.seq);
        }
        assert!(seen.len() <= 20);
    }
}

/// Waiting publishers (blocking and async, some tracked) into slow critical
/// consumers with tiny buffers, and a lossy one: no critical subscriber
/// loses or duplicates anything, each publisher's order holds, the lossy
/// subscriber's receipts and drops add up, and every tracked event completes
/// with every copy finished (issue 18).
#[test]
fn waiting_publishers_into_slow_consumers_lose_nothing() {
    const PER: u64 = 2_000;
    let total = PUBLISHERS as u64 * PER;
    let bus = EventBus::new();
    let slow_blocking = bus.subscribe("slow-blocking", 2).unwrap();
    let slow_async = bus.subscribe("slow-async", 1).unwrap();
    let typed = bus.subscribe_to::<FromThread>("typed", 3).unwrap();
    let lossy = bus
        .subscribe_with(SubscribeOptions::new("metrics", 4).lossy())
        .unwrap();
    let consumers = [consume_blocking(slow_blocking), consume_async(slow_async)];
    let typed = thread::spawn(move || {
        let mut tally = Tally::default();
        for (i, event) in typed.iter().enumerate() {
            if i % 64 == 0 {
                thread::yield_now(); // slower than the publishers
            }
            tally.see(&(event as Arc<dyn Event>));
        }
        (tally, typed.dropped())
    });
    let lossy = consume_blocking(lossy);
    // Publishers start before `start`: they wait for it.
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|thread| {
            let bus = bus.clone();
            thread::spawn(move || {
                let mut completions = Vec::new();
                for seq in 0..PER {
                    let event = Arc::new(from_thread(thread, seq));
                    match (thread, seq % 3) {
                        (0, _) => {
                            bus.publish_waiting_arc(event).blocking().unwrap();
                        }
                        (1, 0) => completions
                            .push(bus.publish_waiting_arc(event).tracked().blocking().unwrap()),
                        _ => {
                            futures::executor::block_on(
                                bus.publish_waiting_arc(event).into_future(),
                            )
                            .unwrap();
                        }
                    }
                }
                completions
                    .into_iter()
                    .map(|completion| completion.wait())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    bus.start();
    let mut tracked = 0;
    for publisher in publishers {
        for done in publisher.join().unwrap() {
            assert_eq!(
                (done.delivered, done.finished),
                (3, 3),
                "every copy finished"
            );
            tracked += 1;
        }
    }
    assert_eq!(tracked, PER.div_ceil(3));
    drop(bus);
    for consumer in consumers {
        let (tally, dropped) = consumer.join().unwrap();
        assert_eq!((tally.received, dropped), (total, 0));
    }
    let (tally, dropped) = typed.join().unwrap();
    assert_eq!((tally.received, dropped), (total, 0));
    let (tally, dropped) = lossy.join().unwrap();
    assert_eq!(
        tally.received + dropped,
        total,
        "lossy: received or counted"
    );
}
