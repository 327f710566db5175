//! Completion: a tracked waiting publish learns when every critical
//! subscriber that received its event has finished with it (design,
//! "Waiting publish and completion"; issue 18).

mod common;

use std::thread;
use std::time::Duration;

use futures::StreamExt;
use switchboard::{Completed, SubscribeOptions};

use common::events::{n_of, numbered, Numbered, Status};
use common::{running_bus, within, GUARD, WITHIN};

fn completed(delivered: usize, finished: usize) -> (usize, usize) {
    (delivered, finished)
}

fn counts(done: Completed) -> (usize, usize) {
    (done.delivered, done.finished)
}

#[test]
fn a_plain_receive_finishes_the_event_when_it_takes_it() {
    let bus = running_bus();
    let sub = bus.subscribe("plain", 4).unwrap();
    let completion = bus
        .publish_waiting(numbered("a", 1))
        .tracked()
        .blocking()
        .unwrap();
    assert!(!completion.is_complete());
    let completion = completion
        .wait_timeout(Duration::from_millis(10))
        .unwrap_err();
    assert_eq!(n_of(&sub.recv().unwrap()), 1);
    assert!(completion.is_complete());
    assert_eq!(counts(completion.wait()), completed(1, 1));
}

#[test]
fn a_delivery_finishes_when_acked_or_dropped_and_is_abandoned_when_rejected() {
    let bus = running_bus();
    let sub = bus
        .subscribe_to::<Numbered>("worker", 4)
        .unwrap()
        .with_acks();
    let acked = bus
        .publish_waiting(numbered("a", 1))
        .tracked()
        .blocking()
        .unwrap();
    let dropped = bus
        .publish_waiting(numbered("a", 2))
        .tracked()
        .blocking()
        .unwrap();
    let rejected = bus
        .publish_waiting(numbered("a", 3))
        .tracked()
        .blocking()
        .unwrap();

    let first = sub.recv().unwrap();
    assert_eq!(first.n, 1);
    assert!(first.is_tracked());
    assert!(!acked.is_complete(), "taken, not finished");
    first.ack();
    assert_eq!(counts(acked.wait()), completed(1, 1));

    drop(sub.recv().unwrap());
    assert_eq!(counts(dropped.wait()), completed(1, 1));

    sub.recv().unwrap().reject();
    let done = rejected.wait();
    assert_eq!(counts(done), completed(1, 0));
    assert_eq!(done.abandoned(), 1);
    assert!(!done.all_finished());
}

#[test]
fn a_consumer_that_panics_holding_a_delivery_abandons_it() {
    let bus = running_bus();
    let sub = bus.subscribe("worker", 4).unwrap().with_acks();
    let completion = bus
        .publish_waiting(numbered("a", 1))
        .tracked()
        .blocking()
        .unwrap();
    let worker = thread::spawn(move || {
        let _delivery = sub.recv().unwrap();
        panic!("the handler failed");
    });
    assert!(worker.join().is_err());
    assert_eq!(counts(completion.wait()), completed(1, 0));
}

#[test]
fn every_critical_subscriber_counts_and_lossy_ones_do_not() {
    let bus = running_bus();
    let one = bus.subscribe("one", 4).unwrap().with_acks();
    let two = bus.subscribe("two", 4).unwrap().with_acks();
    let lossy = bus
        .subscribe_with(SubscribeOptions::new("metrics", 4).lossy())
        .unwrap()
        .with_acks();
    let completion = bus
        .publish_waiting(numbered("a", 1))
        .tracked()
        .blocking()
        .unwrap();
    assert!(
        !lossy.recv().unwrap().is_tracked(),
        "a lossy copy carries nothing"
    );
    let first = one.recv().unwrap();
    drop(first);
    let completion = completion
        .wait_timeout(Duration::from_millis(10))
        .unwrap_err();
    drop(two.recv().unwrap());
    assert_eq!(counts(completion.wait()), completed(2, 2));
}

#[test]
fn an_untracked_event_carries_nothing_and_a_delivery_of_it_tells_nobody() {
    let bus = running_bus();
    let sub = bus.subscribe("worker", 4).unwrap().with_acks();
    bus.publish(numbered("a", 1));
    bus.publish_waiting(numbered("a", 2)).blocking().unwrap();
    assert!(!sub.recv().unwrap().is_tracked());
    assert!(!sub.recv().unwrap().is_tracked());
}

#[test]
fn events_still_queued_when_the_subscription_is_dropped_are_abandoned_at_once() {
    let bus = running_bus();
    let sub = bus.subscribe("gone", 4).unwrap();
    let completions: Vec<_> = (0..3)
        .map(|n| {
            bus.publish_waiting(numbered("a", n))
                .tracked()
                .blocking()
                .unwrap()
        })
        .collect();
    drop(sub.recv().unwrap());
    // A dropped subscription's entry may wait for the next registry change
    // before its queue is freed; one that holds tracked events does not.
    drop(sub);
    let done = within(GUARD, "completions", move || {
        completions
            .into_iter()
            .map(|c| counts(c.wait()))
            .collect::<Vec<_>>()
    });
    assert_eq!(done, [completed(1, 1), completed(1, 0), completed(1, 0)]);
}

#[test]
fn events_left_queued_after_an_unsubscribe_are_abandoned_with_the_subscription() {
    let bus = running_bus();
    let sub = bus.subscribe("leaving", 4).unwrap();
    let completion = bus
        .publish_waiting(numbered("a", 1))
        .tracked()
        .blocking()
        .unwrap();
    assert!(sub.unsubscribe());
    let completion = completion
        .wait_timeout(Duration::from_millis(10))
        .unwrap_err();
    drop(sub);
    assert_eq!(counts(completion.wait()), completed(1, 0));
}

#[test]
fn coalesced_events_count_as_finished() {
    let bus = running_bus();
    let sub = bus.subscribe("dashboard", 4).unwrap();
    let completions: Vec<_> = (0..3)
        .map(|n| {
            bus.publish_waiting(common::events::status("load", n))
                .tracked()
                .blocking()
                .unwrap()
        })
        .collect();
    let kept = sub.drain_coalesced();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].downcast_ref::<Status>().unwrap().value, 2);
    for completion in completions {
        assert_eq!(counts(completion.wait()), completed(1, 1));
    }
}

#[test]
fn completion_and_acknowledging_stream_on_tokio() {
    let bus = running_bus();
    let jobs = bus
        .subscribe_to::<Numbered>("worker", 2)
        .unwrap()
        .with_acks();
    let publisher = bus;
    let handled = within(WITHIN, "tokio", move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap()
            .block_on(async move {
                let worker = tokio::spawn(async move {
                    let mut jobs = jobs;
                    let mut handled = Vec::new();
                    while let Some(job) = jobs.next().await {
                        tokio::task::yield_now().await; // some work
                        handled.push(job.n);
                        job.ack();
                    }
                    handled
                });
                for n in 0..100 {
                    let completion = publisher
                        .publish_waiting(numbered("a", n))
                        .tracked()
                        .await
                        .unwrap();
                    let done = completion.await;
                    assert_eq!((done.delivered, done.finished), (1, 1));
                }
                drop(publisher); // ends the worker's stream
                worker.await.unwrap()
            })
    });
    assert_eq!(handled, (0..100).collect::<Vec<_>>());
}

#[test]
fn a_tracked_publish_that_times_out_reports_as_an_untracked_one_does() {
    let bus = running_bus();
    let free = bus.subscribe("free", 4).unwrap();
    let stuck = bus.subscribe("stuck", 1).unwrap();
    bus.publish(numbered("a", 0));
    let error = bus
        .publish_waiting(numbered("a", 1))
        .tracked()
        .timeout(Duration::from_millis(20))
        .blocking()
        .unwrap_err();
    assert_eq!(error.delivered(), 1);
    assert_eq!(error.missed_by(), ["stuck"]);
    assert_eq!(free.len(), 2);
    assert_eq!(stuck.dropped(), 1);
}
