//! Subscriptions consumed as a `futures_core::Stream` on real executors: tokio's
//! multi-threaded runtime, `futures::executor::block_on` and `LocalPool`, with
//! events published from plain threads.
//!
//! Every wait is bounded (`GUARD`): a lost wake-up fails the test instead of
//! hanging it. A consumer counts as *parked* once its stream has returned
//! `Pending` (it has registered its waker by then), which the [`Watched`]
//! wrapper reports, so no test relies on a sleep to order a publish after a park.
//!
//! The events are `numbered("num", n)`, and `other(0)` where a typed
//! subscription must not see them.

#![cfg(feature = "derive")]

mod common;

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use common::events::{n_of, numbered, other, Numbered};
use common::{running_bus, wait_until, within, GUARD};
use futures::executor::{block_on, block_on_stream, LocalPool};
use futures::future::poll_fn;
use futures::task::LocalSpawnExt;
use futures::{Stream, StreamExt};
use switchboard::{Event, EventBus, SubscribeOptions, Subscription};

/// A stream wrapper that counts the `Pending`s its inner stream returned: once
/// the count moves, the consumer has registered its waker and is parked.
struct Watched<S> {
    inner: S,
    pendings: Arc<AtomicUsize>,
}

impl<S> Watched<S> {
    fn new(inner: S) -> (Self, Arc<AtomicUsize>) {
        let pendings = Arc::new(AtomicUsize::new(0));
        let watched = Watched {
            inner,
            pendings: Arc::clone(&pendings),
        };
        (watched, pendings)
    }
}

impl<S: Stream + Unpin> Stream for Watched<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let poll = Pin::new(&mut self.inner).poll_next(cx);
        if poll.is_pending() {
            self.pendings.fetch_add(1, Ordering::SeqCst);
        }
        poll
    }
}

/// Blocks (a plain thread) until `pendings` exceeds `seen`, or fails the test.
fn wait_parked(pendings: &AtomicUsize, seen: usize, what: &str) {
    wait_until(&format!("{what}: the consumer parks"), || {
        pendings.load(Ordering::SeqCst) > seen
    });
}

/// `wait_parked` for async test bodies.
async fn wait_parked_async(pendings: &AtomicUsize, seen: usize, what: &str) {
    let deadline = Instant::now() + GUARD;
    while pendings.load(Ordering::SeqCst) <= seen {
        assert!(Instant::now() < deadline, "{what}: consumer never parked");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Awaits `future` under the tokio guard.
async fn guarded<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: not done after {GUARD:?} (lost wake-up?)"))
}

// ---------------------------------------------------------------- tokio

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_stream_gets_every_event_in_order_and_ends_when_the_bus_is_dropped() {
    const N: u64 = 2_000;
    let bus = running_bus();
    let mut sub = bus.subscribe("consumer", N as usize).unwrap();
    let consumer = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(event) = guarded("next event", sub.next()).await {
            got.push(n_of(&event));
        }
        got
    });

    // The test's handle goes first: the publisher's clone keeps the bus alive.
    let publisher_bus = bus.clone();
    drop(bus);
    let publisher = thread::spawn(move || {
        let delivered: usize = (0..N)
            .map(|i| publisher_bus.publish(numbered("num", i)))
            .sum();
        (delivered, publisher_bus.stats().dropped())
        // The last handle drops here: the stream ends once drained.
    });
    let (delivered, dropped) = publisher.join().unwrap();
    assert_eq!(delivered as u64, N);
    assert_eq!(dropped, 0);

    let got = guarded("consumer task", consumer).await.unwrap();
    assert_eq!(got, (0..N).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_stream_ends_after_subscription_unsubscribe_once_drained() {
    let bus = running_bus();
    let mut sub = bus.subscribe("consumer", 8).unwrap();
    for i in 0..3 {
        assert_eq!(bus.publish(numbered("num", i)), 1);
    }
    assert!(sub.unsubscribe());
    assert_eq!(
        bus.publish(numbered("num", 99)),
        0,
        "unsubscribed: nothing delivered"
    );

    let mut got = Vec::new();
    while let Some(event) = guarded("next", sub.next()).await {
        got.push(n_of(&event));
    }
    assert_eq!(got, [0, 1, 2]);
    // Ended for good, while the bus lives on.
    assert!(guarded("next after end", sub.next()).await.is_none());
    assert_eq!(bus.stats().subscriber_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_stream_ends_after_bus_unsubscribe_once_drained() {
    let bus = running_bus();
    let mut sub = bus.subscribe_to::<Numbered>("typed", 8).unwrap();
    for i in 0..3 {
        assert_eq!(bus.publish(numbered("num", i)), 1);
    }
    assert!(bus.unsubscribe(&sub));

    let mut got = Vec::new();
    while let Some(event) = guarded("next", sub.next()).await {
        got.push(event.n);
    }
    assert_eq!(got, [0, 1, 2]);
    assert!(guarded("next after end", sub.next()).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_parked_consumer_is_woken_by_a_publish_from_a_thread() {
    let bus = running_bus();
    let (mut sub, pendings) = Watched::new(bus.subscribe("consumer", 4).unwrap());
    let consumer = tokio::spawn(async move {
        let first = sub.next().await.map(|e| n_of(&e));
        (first, sub)
    });
    wait_parked_async(&pendings, 0, "empty subscription").await;
    // Switching the subscription to async wake-ups left it registered once.
    assert_eq!(bus.stats().subscriber_count(), 1);
    assert_eq!(bus.stats().subscribers.len(), 1);

    let publisher_bus = bus.clone();
    let delivered = thread::spawn(move || publisher_bus.publish(numbered("num", 7)))
        .join()
        .unwrap();
    assert_eq!(delivered, 1);

    let (first, _sub) = guarded("parked consumer", consumer).await.unwrap();
    assert_eq!(first, Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_every_parked_consumer_is_woken_by_one_publish() {
    let bus = running_bus();
    let mut consumers = Vec::new();
    let mut watches = Vec::new();
    for i in 0..6 {
        // Universal, string-filtered and typed subscribers all match a "num" event.
        let stream: Pin<Box<dyn Stream<Item = u64> + Send>> = match i % 3 {
            0 => Box::pin(bus.subscribe("all", 1).unwrap().map(|e| n_of(&e))),
            1 => Box::pin(
                bus.subscribe_with(SubscribeOptions::new("by-name", 1).event_types(["num"]))
                    .unwrap()
                    .map(|e| n_of(&e)),
            ),
            _ => Box::pin(
                bus.subscribe_to::<Numbered>("typed", 1)
                    .unwrap()
                    .map(|e| e.n),
            ),
        };
        let (mut stream, pendings) = Watched::new(stream);
        watches.push(pendings);
        consumers.push(tokio::spawn(async move { stream.next().await }));
    }
    for pendings in &watches {
        wait_parked_async(pendings, 0, "six consumers").await;
    }

    let publisher_bus = bus.clone();
    let delivered = thread::spawn(move || publisher_bus.publish(numbered("num", 1)))
        .join()
        .unwrap();
    assert_eq!(delivered, 6);
    for consumer in consumers {
        assert_eq!(guarded("consumer", consumer).await.unwrap(), Some(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_parked_consumer_sees_the_end_when_the_last_bus_handle_is_dropped() {
    let bus = running_bus();
    let (mut sub, pendings) = Watched::new(bus.subscribe("consumer", 4).unwrap());
    let consumer = tokio::spawn(async move { sub.next().await.map(|e| n_of(&e)) });
    wait_parked_async(&pendings, 0, "empty subscription").await;

    // Dropping one of two handles does not end anything.
    let last = bus.clone();
    drop(bus);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !consumer.is_finished(),
        "the stream ended while a bus handle was alive"
    );

    thread::spawn(move || drop(last)).join().unwrap();
    assert_eq!(guarded("parked consumer", consumer).await.unwrap(), None);
}

/// A subscription shared between a parked consumer task and the thread that
/// unsubscribes it: `poll_recv` takes `&self`.
async fn parked_consumer_woken_by_unsubscribe(via_bus: bool) {
    let bus = running_bus();
    let sub = Arc::new(bus.subscribe("consumer", 4).unwrap());
    let pendings = Arc::new(AtomicUsize::new(0));
    let consumer = {
        let sub = Arc::clone(&sub);
        let pendings = Arc::clone(&pendings);
        tokio::spawn(async move {
            poll_fn(|cx| {
                let poll = sub.poll_recv(cx);
                if poll.is_pending() {
                    pendings.fetch_add(1, Ordering::SeqCst);
                }
                poll
            })
            .await
            .map(|e| n_of(&e))
        })
    };
    wait_parked_async(&pendings, 0, "empty subscription").await;

    let removed = {
        let (bus, sub) = (bus.clone(), Arc::clone(&sub));
        thread::spawn(move || {
            if via_bus {
                bus.unsubscribe(&sub)
            } else {
                sub.unsubscribe()
            }
        })
        .join()
        .unwrap()
    };
    assert!(removed);
    assert_eq!(guarded("parked consumer", consumer).await.unwrap(), None);
    assert!(bus.is_running(), "the bus itself lives on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_parked_consumer_sees_the_end_after_subscription_unsubscribe() {
    parked_consumer_woken_by_unsubscribe(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_parked_consumer_sees_the_end_after_bus_unsubscribe() {
    parked_consumer_woken_by_unsubscribe(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_typed_subscription_stream_yields_arc_of_the_type() {
    let bus = running_bus();
    let mut sub = bus.subscribe_to::<Numbered>("typed", 8).unwrap();
    let consumer = tokio::spawn(async move {
        let mut got: Vec<Arc<Numbered>> = Vec::new();
        while let Some(event) = sub.next().await {
            got.push(event);
        }
        got
    });
    let publisher = thread::spawn(move || {
        let mut delivered = Vec::new();
        for i in 0..3 {
            delivered.push(bus.publish(numbered("num", i)));
            delivered.push(bus.publish(other(0)));
        }
        delivered
    });
    assert_eq!(publisher.join().unwrap(), [1, 0, 1, 0, 1, 0]);
    let got = guarded("typed consumer", consumer).await.unwrap();
    assert_eq!(got.iter().map(|e| e.n).collect::<Vec<_>>(), [0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_small_capacity_stress_every_event_is_received_or_counted() {
    const N: u64 = 100_000;
    let bus = running_bus();
    let mut sub = bus.subscribe("counter", 16).unwrap();
    let consumer = tokio::spawn(async move {
        let (mut received, mut last, mut in_order) = (0u64, None, true);
        while let Some(event) = sub.next().await {
            let n = n_of(&event);
            in_order &= last.is_none_or(|last| n > last);
            last = Some(n);
            received += 1;
        }
        (received, in_order, sub.dropped())
    });
    let publisher = thread::spawn(move || {
        let delivered: usize = (0..N).map(|i| bus.publish(numbered("num", i))).sum();
        assert_eq!(bus.stats().published, N);
        (delivered as u64, bus.stats().dropped())
    });
    let (delivered, bus_dropped) = publisher.join().unwrap();
    let (received, in_order, sub_dropped) = guarded("counting consumer", consumer).await.unwrap();
    assert!(in_order, "events arrived out of order");
    assert_eq!(received, delivered);
    assert_eq!(sub_dropped, bus_dropped);
    assert_eq!(received + sub_dropped, N);
}

/// Each event is published only once the consumer took the previous one, so
/// nearly every publish has to wake a parked consumer: a lost wake-up stalls
/// the exchange and fails the guard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_ping_pong_never_loses_a_wake_up() {
    const N: u64 = 5_000;
    let bus = running_bus();
    let mut sub = bus.subscribe("pong", 1).unwrap();
    let taken = Arc::new(AtomicU64::new(0));
    let consumer = {
        let taken = Arc::clone(&taken);
        tokio::spawn(async move {
            while let Some(event) = sub.next().await {
                taken.store(n_of(&event) + 1, Ordering::SeqCst);
            }
        })
    };
    let publisher = thread::spawn(move || ping(&bus, &taken, N));
    publisher.join().unwrap();
    guarded("consumer end", consumer).await.unwrap();
}

/// Publishes `0..n` one at a time, each after the consumer acknowledged the
/// previous one, then drops the bus. Panics if the consumer stalls.
fn ping(bus: &EventBus, taken: &AtomicU64, n: u64) {
    let deadline = Instant::now() + GUARD;
    for i in 0..n {
        assert_eq!(
            bus.publish(numbered("num", i)),
            1,
            "event {i} not delivered"
        );
        while taken.load(Ordering::SeqCst) != i + 1 {
            assert!(
                Instant::now() < deadline,
                "consumer stalled at event {i} (lost wake-up)"
            );
            thread::yield_now();
        }
    }
}

/// A tiny xorshift generator: varying, reproducible spin lengths.
fn next_spin(seed: &mut u64, max: u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed % max
}

fn spin(n: u64) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

/// Announces at the start of every poll which event the consumer is polling
/// for (`received + 1`), then spins a varying while before looking, so that a
/// publisher reacting to the announcement lands anywhere around the
/// consumer's check-then-park.
struct Announcing<S> {
    inner: S,
    received: u64,
    polling_for: Arc<AtomicU64>,
    seed: u64,
}

impl<S> Announcing<S> {
    fn new(inner: S) -> (Self, Arc<AtomicU64>) {
        let polling_for = Arc::new(AtomicU64::new(0));
        let announcing = Announcing {
            inner,
            received: 0,
            polling_for: Arc::clone(&polling_for),
            seed: 0x2545_F491_4F6C_DD1D,
        };
        (announcing, polling_for)
    }
}

impl<S: Stream + Unpin> Stream for Announcing<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = &mut *self;
        this.polling_for.store(this.received + 1, Ordering::SeqCst);
        spin(next_spin(&mut this.seed, 2048));
        let poll = Pin::new(&mut this.inner).poll_next(cx);
        if let Poll::Ready(Some(_)) = poll {
            this.received += 1;
        }
        poll
    }
}

/// Publishes `0..n`, each as soon as the consumer announces it is polling for
/// it (after a short varying spin), so the publishes sweep the window between
/// the consumer's empty check and its park. A lost wake-up stalls the exchange.
fn race_the_park(bus: EventBus, polling_for: &AtomicU64, n: u64) {
    let deadline = Instant::now() + GUARD;
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    for i in 0..n {
        while polling_for.load(Ordering::SeqCst) != i + 1 {
            assert!(
                Instant::now() < deadline,
                "consumer stalled before event {i} (lost wake-up)"
            );
            thread::yield_now();
        }
        spin(next_spin(&mut seed, 64));
        assert_eq!(
            bus.publish(numbered("num", i)),
            1,
            "event {i} not delivered"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_publish_racing_the_park_never_loses_a_wake_up() {
    const N: u64 = 10_000;
    let bus = running_bus();
    let (mut sub, polling_for) = Announcing::new(bus.subscribe("racer", 1).unwrap());
    let consumer = tokio::spawn(async move {
        let mut expected = 0;
        while let Some(event) = sub.next().await {
            assert_eq!(n_of(&event), expected);
            expected += 1;
        }
        expected
    });
    let publisher = thread::spawn(move || race_the_park(bus, &polling_for, N));
    publisher.join().unwrap();
    assert_eq!(guarded("consumer end", consumer).await.unwrap(), N);
}

// ---------------------------------------------------------------- futures::executor

#[test]
fn block_on_stream_gets_every_event_in_order_and_ends_when_the_bus_is_dropped() {
    const N: u64 = 2_000;
    let bus = running_bus();
    let mut sub = bus.subscribe("consumer", N as usize).unwrap();
    let publisher = thread::spawn(move || {
        for i in 0..N {
            assert_eq!(bus.publish(numbered("num", i)), 1);
        }
    });
    let got = within(GUARD, "block_on consumer", move || {
        block_on(async {
            let mut got = Vec::new();
            while let Some(event) = sub.next().await {
                got.push(n_of(&event));
            }
            got
        })
    });
    publisher.join().unwrap();
    assert_eq!(got, (0..N).collect::<Vec<_>>());
}

#[test]
fn block_on_stream_iterator_ends_after_unsubscribe_once_drained() {
    let bus = running_bus();
    let sub = bus.subscribe_to::<Numbered>("typed", 8).unwrap();
    for i in 0..3 {
        bus.publish(numbered("num", i));
    }
    assert!(sub.unsubscribe());
    let got = within(GUARD, "block_on_stream", move || {
        block_on_stream(sub).map(|e| e.n).collect::<Vec<_>>()
    });
    assert_eq!(got, [0, 1, 2]);
}

#[test]
fn block_on_parked_consumer_is_woken_by_a_publish_from_a_thread() {
    let bus = running_bus();
    let (mut sub, pendings) = Watched::new(bus.subscribe("consumer", 4).unwrap());
    let publisher = {
        let bus = bus.clone();
        thread::spawn(move || {
            wait_parked(&pendings, 0, "block_on consumer");
            bus.publish(numbered("num", 5))
        })
    };
    let first = within(GUARD, "block_on parked consumer", move || {
        block_on(sub.next()).map(|e| n_of(&e))
    });
    assert_eq!(publisher.join().unwrap(), 1);
    assert_eq!(first, Some(5));
}

#[test]
fn block_on_parked_consumer_sees_the_end_when_the_bus_is_dropped() {
    let bus = running_bus();
    let (mut sub, pendings) = Watched::new(bus.subscribe("consumer", 4).unwrap());
    let dropper = thread::spawn(move || {
        wait_parked(&pendings, 0, "block_on consumer");
        drop(bus);
    });
    let first = within(GUARD, "block_on parked consumer", move || {
        block_on(sub.next()).map(|e| n_of(&e))
    });
    dropper.join().unwrap();
    assert_eq!(first, None);
}

#[test]
fn block_on_small_capacity_stress_every_event_is_received_or_counted() {
    const N: u64 = 100_000;
    let bus = running_bus();
    let mut sub = bus
        .subscribe_with(SubscribeOptions::new("counter", 16).lossy())
        .unwrap();
    let publisher = thread::spawn(move || {
        let delivered: usize = (0..N).map(|i| bus.publish(numbered("num", i))).sum();
        (delivered as u64, bus.stats().dropped_observability)
    });
    let (received, sub_dropped) = within(GUARD, "block_on counter", move || {
        let received = block_on(async {
            let mut received = 0u64;
            while sub.next().await.is_some() {
                received += 1;
            }
            received
        });
        (received, sub.dropped())
    });
    let (delivered, bus_dropped) = publisher.join().unwrap();
    assert_eq!(received, delivered);
    assert_eq!(sub_dropped, bus_dropped);
    assert_eq!(received + sub_dropped, N);
}

#[test]
fn block_on_ping_pong_never_loses_a_wake_up() {
    const N: u64 = 5_000;
    let bus = running_bus();
    let mut sub = bus.subscribe("pong", 1).unwrap();
    let taken = Arc::new(AtomicU64::new(0));
    let publisher = {
        let taken = Arc::clone(&taken);
        thread::spawn(move || ping(&bus, &taken, N))
    };
    within(GUARD, "block_on pong", move || {
        block_on(async {
            while let Some(event) = sub.next().await {
                taken.store(n_of(&event) + 1, Ordering::SeqCst);
            }
        })
    });
    publisher.join().unwrap();
}

#[test]
fn block_on_publish_racing_the_park_never_loses_a_wake_up() {
    const N: u64 = 10_000;
    let bus = running_bus();
    let (mut sub, polling_for) = Announcing::new(bus.subscribe("racer", 1).unwrap());
    let publisher = thread::spawn(move || race_the_park(bus, &polling_for, N));
    let received = within(GUARD, "block_on racer", move || {
        block_on(async {
            let mut expected = 0;
            while let Some(event) = sub.next().await {
                assert_eq!(n_of(&event), expected);
                expected += 1;
            }
            expected
        })
    });
    publisher.join().unwrap();
    assert_eq!(received, N);
}

/// The first time a subscription is polled empty it switches its registry
/// entry to one that wakes it, racing publishes that still use the old entry.
/// Each round makes a fresh subscription whose first poll races one publish
/// (timed as in `race_the_park`): the event must arrive every time.
#[test]
fn first_poll_racing_a_publish_never_loses_the_event() {
    const ROUNDS: u64 = 2_000;
    let bus = running_bus();
    // Universal subscribers are offered each event before string-filtered
    // ones: these stretch the time between a publish loading the registry and
    // its send to the racing subscription (a 0-capacity lossy offer just fails).
    let _padding: Vec<Subscription> = (0..200)
        .map(|_| {
            bus.subscribe_with(SubscribeOptions::new("padding", 0).lossy())
                .unwrap()
        })
        .collect();
    let polling_for = Arc::new(AtomicU64::new(0));
    let (subs_tx, subs_rx) = mpsc::channel::<Subscription>();
    let consumer = {
        let polling_for = Arc::clone(&polling_for);
        thread::spawn(move || {
            let mut seed = 0x2545_F491_4F6C_DD1D_u64;
            for round in 0..ROUNDS {
                let Ok(sub) = subs_rx.recv() else {
                    return round;
                };
                let mut first = Some(sub);
                let got = block_on(poll_fn(|cx| {
                    let sub = first.as_ref().expect("polled after completion");
                    polling_for.store(round + 1, Ordering::SeqCst);
                    spin(next_spin(&mut seed, 2048));
                    sub.poll_recv(cx)
                }));
                assert_eq!(got.as_ref().map(n_of), Some(round), "round {round}");
                first.take();
            }
            ROUNDS
        })
    };
    let deadline = Instant::now() + GUARD;
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    for round in 0..ROUNDS {
        let sub = bus
            .subscribe_with(
                SubscribeOptions::new("first-poll", 1)
                    .event_types(["num"])
                    .leader_only(),
            )
            .unwrap();
        subs_tx.send(sub).unwrap();
        while polling_for.load(Ordering::SeqCst) != round + 1 {
            assert!(
                Instant::now() < deadline,
                "consumer stalled in round {round} (lost wake-up)"
            );
            thread::yield_now();
        }
        spin(next_spin(&mut seed, 64));
        bus.publish(numbered("num", round));
    }
    drop(subs_tx);
    assert_eq!(
        within(GUARD, "first-poll consumer", move || consumer
            .join()
            .unwrap()),
        ROUNDS
    );
}

#[test]
fn local_pool_runs_two_stream_consumers_fed_from_a_thread() {
    const N: u64 = 500;
    let bus = running_bus();
    let all = bus.subscribe("all", 2 * N as usize).unwrap();
    let typed = bus.subscribe_to::<Numbered>("typed", N as usize).unwrap();
    let started = Arc::new(AtomicBool::new(false));
    let publisher = {
        let started = Arc::clone(&started);
        thread::spawn(move || {
            // Let the pool's tasks park first, then publish.
            wait_until("the pool starts", || started.load(Ordering::SeqCst));
            for i in 0..N {
                bus.publish(numbered("num", i));
                bus.publish(other(0));
            }
        })
    };
    let (all_got, typed_got) = within(GUARD, "LocalPool", move || {
        let mut pool = LocalPool::new();
        let spawner = pool.spawner();
        let (all_tx, all_rx) = futures::channel::oneshot::channel();
        let (typed_tx, typed_rx) = futures::channel::oneshot::channel();
        spawner
            .spawn_local(async move {
                let got: Vec<String> = all.map(|e| e.event_type().to_owned()).collect().await;
                let _ = all_tx.send(got);
            })
            .unwrap();
        spawner
            .spawn_local(async move {
                let got: Vec<u64> = typed.map(|e| e.n).collect().await;
                let _ = typed_tx.send(got);
            })
            .unwrap();
        pool.run_until_stalled();
        started.store(true, Ordering::SeqCst);
        pool.run();
        (
            block_on(all_rx).expect("the universal consumer finished"),
            block_on(typed_rx).expect("the typed consumer finished"),
        )
    });
    publisher.join().unwrap();
    assert_eq!(all_got.len() as u64, 2 * N);
    assert!(all_got.chunks(2).all(|pair| pair == ["num", "other"]));
    assert_eq!(typed_got, (0..N).collect::<Vec<_>>());
}

/// A compile-time check: `Subscription` is a `Send + Unpin` `Stream` of
/// `Arc<dyn Event>`, so it can move into a spawned task and be polled with `next()`.
#[test]
fn subscription_is_a_send_unpin_stream_of_shared_events() {
    fn assert_stream<S: Stream<Item = Arc<dyn Event>> + Send + Unpin + 'static>() {}
    assert_stream::<Subscription>();
}
