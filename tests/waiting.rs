//! The waiting publish (`publish_waiting`): it waits for room at critical
//! subscribers instead of dropping, waits for `start`, and counts exactly
//! what it gives up at its deadline or when cancelled (design, "Waiting
//! publish and completion"; issue 18).

mod common;

use std::future::{Future, IntoFuture};
use std::task::{Context, Waker};
use std::thread;
use std::time::Duration;

use common::drops::DropRecorder;
use common::events::{from_thread, n_of, number, numbered, other, FromThread, Numbered, Other};
use common::{running_bus, wait_until, within, GUARD, WITHIN};
use switchboard::{DropReason, EventBus, RequestOptions, SubscribeOptions, Timestamp, TypeSet};

#[test]
fn a_full_critical_subscriber_makes_the_publisher_wait_and_loses_nothing() {
    let bus = running_bus();
    let slow = bus.subscribe("slow", 1).unwrap();
    let consumer = thread::spawn(move || {
        slow.iter()
            .map(|event| {
                thread::sleep(Duration::from_micros(50));
                n_of(&event)
            })
            .collect::<Vec<_>>()
    });
    let publisher = bus.clone();
    within(WITHIN, "waiting publishes", move || {
        for n in 0..500 {
            assert_eq!(
                publisher
                    .publish_waiting(numbered("a", n))
                    .blocking()
                    .unwrap(),
                1
            );
        }
    });
    drop(bus);
    assert_eq!(consumer.join().unwrap(), (0..500).collect::<Vec<_>>());
}

#[test]
fn the_async_form_waits_on_any_executor() {
    let bus = running_bus();
    let sub = bus.subscribe("one", 2).unwrap();
    let consumer = thread::spawn(move || sub.iter().map(|e| n_of(&e)).collect::<Vec<_>>());
    let publisher = bus.clone();
    within(WITHIN, "tokio", move || {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                for n in 0..200 {
                    publisher.publish_waiting(numbered("a", n)).await.unwrap();
                }
            });
        futures::executor::block_on(async {
            for n in 200..400 {
                publisher.publish_waiting(numbered("a", n)).await.unwrap();
            }
        });
    });
    drop(bus);
    assert_eq!(consumer.join().unwrap(), (0..400).collect::<Vec<_>>());
}

#[test]
fn lossy_subscribers_still_drop_and_count_while_critical_ones_make_it_wait() {
    let bus = running_bus();
    let critical = bus.subscribe("critical", 4).unwrap();
    let lossy = bus
        .subscribe_with(SubscribeOptions::new("metrics", 1).lossy())
        .unwrap();
    for n in 0..4 {
        let delivered = bus.publish_waiting(numbered("a", n)).blocking().unwrap();
        assert_eq!(
            delivered,
            if n == 0 { 2 } else { 1 },
            "the lossy one is full after one"
        );
    }
    assert_eq!(critical.len(), 4);
    assert_eq!(lossy.len(), 1);
    assert_eq!(lossy.dropped(), 3);
    assert_eq!(bus.stats().dropped_observability, 3);
    assert_eq!(bus.stats().dropped_critical, 0);
}

#[test]
fn a_zero_capacity_subscriber_has_no_room_to_wait_for_and_drops_as_with_publish() {
    let bus = running_bus();
    let recorder = DropRecorder::install(&bus);
    let _unbuffered = bus.subscribe("rendezvous", 0).unwrap();
    assert_eq!(bus.publish_waiting(numbered("a", 1)).blocking().unwrap(), 0);
    assert_eq!(bus.stats().dropped_critical, 1);
    assert_eq!(recorder.reasons(), [DropReason::BufferFull]);
}

#[test]
fn before_start_it_waits_for_the_bus_and_comes_after_the_replay() {
    let bus = EventBus::new();
    let sub = bus.subscribe("all", 16).unwrap();
    bus.publish(numbered("a", 1)); // buffered
    let publisher = bus.clone();
    let waiting = thread::spawn(move || publisher.publish_waiting(numbered("a", 2)).blocking());
    // It waits for start rather than entering the pre-start buffer.
    wait_until("the waiting publish is counted", || {
        bus.stats().published == 2
    });
    assert_eq!(bus.stats().pre_start_len, 1);
    assert!(sub.is_empty());
    bus.start();
    assert_eq!(waiting.join().unwrap().unwrap(), 1);
    assert_eq!(
        sub.iter().take(2).map(|e| n_of(&e)).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(bus.stats().dropped(), 0);
}

#[test]
fn a_deadline_before_start_counts_one_pre_start_drop_and_hands_the_event_back() {
    let bus = EventBus::new();
    let recorder = DropRecorder::install(&bus);
    let _sub = bus.subscribe("all", 16).unwrap();
    let error = bus
        .publish_waiting(numbered("a", 7))
        .timeout(Duration::from_millis(20))
        .blocking()
        .unwrap_err();
    assert!(error.before_start());
    assert_eq!(error.delivered(), 0);
    assert!(error.missed_by().is_empty());
    assert_eq!(n_of(error.event()), 7);
    assert!(
        error.to_string().contains("before the bus started"),
        "{error}"
    );
    assert_eq!(bus.stats().dropped_pre_start, 1);
    assert_eq!(recorder.reasons(), [DropReason::WaitTimedOut]);
    assert_eq!(recorder.drops()[0].subscriber_name, "");
}

#[test]
fn at_the_deadline_the_full_subscribers_count_a_drop_and_are_named() {
    let bus = running_bus();
    let recorder = DropRecorder::install(&bus);
    let free = bus.subscribe("free", 4).unwrap();
    let stuck = bus.subscribe("stuck", 1).unwrap();
    bus.publish(numbered("a", 0)); // fills "stuck"
    let error = bus
        .publish_waiting(numbered("a", 1))
        .timeout(Duration::from_millis(30))
        .blocking()
        .unwrap_err();
    assert!(!error.before_start());
    assert_eq!(error.delivered(), 1, "\"free\" had room");
    assert_eq!(error.missed_by(), ["stuck"]);
    assert!(error.to_string().contains("stuck"), "{error}");
    assert_eq!(stuck.dropped(), 1);
    assert_eq!(stuck.take_missed(), 1, "the miss is a visible gap");
    assert_eq!(bus.stats().dropped_critical, 1);
    assert_eq!(recorder.reasons(), [DropReason::WaitTimedOut]);
    assert_eq!(recorder.subscribers(), ["stuck"]);
    assert_eq!(free.len(), 2);
    assert_eq!(n_of(&error.into_event()), 1);
}

#[test]
fn the_async_deadline_is_driven_by_the_crate_s_timer_without_a_runtime_clock() {
    let bus = running_bus();
    let _stuck = bus.subscribe("stuck", 1).unwrap();
    bus.publish(numbered("a", 0));
    let publisher = bus.clone();
    let error = within(WITHIN, "async deadline", move || {
        futures::executor::block_on(
            publisher
                .publish_waiting(numbered("a", 1))
                .timeout(Duration::from_millis(30))
                .into_future(),
        )
    })
    .unwrap_err();
    assert_eq!(error.missed_by(), ["stuck"]);
}

#[test]
fn a_cancelled_waiting_publish_counts_what_it_had_not_delivered() {
    let bus = running_bus();
    let recorder = DropRecorder::install(&bus);
    let free = bus.subscribe("free", 4).unwrap();
    let stuck = bus.subscribe("stuck", 1).unwrap();
    bus.publish(numbered("a", 0));
    let mut future = Box::pin(bus.publish_waiting(numbered("a", 1)).into_future());
    let mut cx = Context::from_waker(Waker::noop());
    assert!(future.as_mut().poll(&mut cx).is_pending());
    assert_eq!(free.len(), 2, "delivered where there was room");
    drop(future);
    assert_eq!(stuck.dropped(), 1);
    assert_eq!(recorder.reasons(), [DropReason::WaitCancelled]);
    // A future never polled did nothing, and counts nothing.
    drop(bus.publish_waiting(numbered("a", 2)).into_future());
    assert_eq!(bus.stats().published, 2);
    assert_eq!(recorder.count(), 1);
}

#[test]
fn a_subscriber_that_leaves_while_the_publisher_waits_releases_it_uncounted() {
    for unsubscribe in [true, false] {
        let bus = running_bus();
        let stuck = bus.subscribe("stuck", 1).unwrap();
        bus.publish(numbered("a", 0));
        let publisher = bus.clone();
        let waiting = thread::spawn(move || publisher.publish_waiting(numbered("a", 1)).blocking());
        wait_until("the publisher waits", || bus.stats().published == 2);
        thread::sleep(Duration::from_millis(5));
        if unsubscribe {
            assert!(stuck.unsubscribe());
        } else {
            drop(stuck);
        }
        let delivered = within(GUARD, "released", move || waiting.join().unwrap().unwrap());
        assert_eq!(delivered, 0);
        assert_eq!(bus.stats().dropped(), 0);
    }
}

#[test]
fn typed_multiple_type_and_retained_subscribers_make_it_wait_too() {
    let bus = running_bus();
    bus.publish_retained(other(0));
    let typed = bus.subscribe_to::<Numbered>("typed", 1).unwrap();
    let multiple = bus
        .subscribe_with(
            SubscribeOptions::new("multiple", 1)
                .rust_types(TypeSet::new().with::<Numbered>().with::<Other>()),
        )
        .unwrap();
    let retained = bus
        .subscribe_with(SubscribeOptions::new("retained", 2).with_retained())
        .unwrap();
    assert_eq!(retained.len(), 1, "the retained event came first");
    assert_eq!(multiple.len(), 0);
    let typed = thread::spawn(move || typed.iter().take(50).map(|e| e.n).collect::<Vec<_>>());
    let multiple = thread::spawn(move || {
        multiple
            .iter()
            .take(50)
            .map(|e| n_of(&e))
            .collect::<Vec<_>>()
    });
    let retained = thread::spawn(move || {
        retained
            .iter()
            .take(51)
            .map(|e| number(&*e).unwrap())
            .collect::<Vec<_>>()
    });
    for n in 1..=50 {
        assert_eq!(bus.publish_waiting(numbered("a", n)).blocking().unwrap(), 3);
    }
    let (typed, multiple, retained) = (
        typed.join().unwrap(),
        multiple.join().unwrap(),
        retained.join().unwrap(),
    );
    let expected: Vec<u64> = (1..=50).collect();
    assert_eq!(typed, expected);
    assert_eq!(multiple, expected);
    assert_eq!(retained[0], 0);
    assert_eq!(retained[1..], expected);
    assert_eq!(bus.stats().dropped(), 0);
}

#[test]
fn per_publisher_order_holds_with_several_waiting_publishers() {
    let bus = running_bus();
    let sub = bus.subscribe_to::<FromThread>("ordered", 3).unwrap();
    let publishers: Vec<_> = (0..3)
        .map(|thread| {
            let bus = bus.clone();
            thread::spawn(move || {
                for seq in 0..300 {
                    bus.publish_waiting(from_thread(thread, seq))
                        .blocking()
                        .unwrap();
                }
            })
        })
        .collect();
    let mut next = [0u64; 3];
    for event in sub.iter().take(900) {
        assert_eq!(event.seq, next[event.thread], "publisher {}", event.thread);
        next[event.thread] += 1;
    }
    for publisher in publishers {
        publisher.join().unwrap();
    }
    assert_eq!(next, [300; 3]);
    assert_eq!(bus.stats().dropped(), 0);
}

#[derive(switchboard::Event, switchboard::Request)]
struct Ask {
    #[request(id)]
    id: String,
    timestamp: Timestamp,
}

#[derive(switchboard::Event, switchboard::Response)]
struct Answer {
    request_id: String,
    responder: String,
    timestamp: Timestamp,
}

#[test]
fn a_response_published_waiting_reaches_its_request() {
    let bus = running_bus();
    let asks = bus.subscribe_to::<Ask>("responder", 4).unwrap();
    let responder = bus.clone();
    let answering = thread::spawn(move || {
        let ask = asks.recv().unwrap();
        let answer = Answer {
            request_id: ask.id.clone(),
            responder: "responder".into(),
            timestamp: Timestamp::now(),
        };
        responder.publish_waiting(answer).blocking().unwrap()
    });
    let ask = Ask {
        id: "q".into(),
        timestamp: Timestamp::now(),
    };
    let result = bus
        .request::<Answer, _>(ask, RequestOptions::new(["responder"]).timeout(GUARD))
        .unwrap();
    assert_eq!(result.responses.len(), 1);
    assert_eq!(answering.join().unwrap(), 1, "the route took it");
}
