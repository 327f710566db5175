//! Fan-out: switchboard against the floor, a naive port of the Go original and
//! the broadcast-channel crates, on the workloads whose bars the design
//! document sets (`docs/design.md`, "Performance").
//!
//! Each criterion group is one workload; inside it every implementation does
//! the same work in the same run, so ratios within a group are meaningful
//! even on a noisy machine. One criterion iteration is one published event.
//!
//! Implementations:
//!
//! - `floor`: a raw loop of `crossbeam_channel::try_send` of an `Arc` clone
//!   over the k senders, no bus logic at all. Nothing that delivers through
//!   per-subscriber crossbeam queues can be cheaper.
//! - `switchboard`: [`EventBus::publish_arc`] on a started bus.
//! - `rwlock_port`: a faithful naive port of the Go original
//!   (`support/rwlock_port.rs`): `RwLock<Vec<Subscriber>>`, `HashSet<String>`
//!   type filters checked on every publish, drops counted in an `AtomicU64`.
//! - `tokio_broadcast`: `tokio::sync::broadcast`.
//! - `async_broadcast`: `async-broadcast` in overflow mode.
//! - `bus`: the `bus` crate (single producer; not applicable where two threads
//!   publish or where subscribers come and go while it publishes).
//!
//! Every implementation is handed an `Arc::clone` of one pre-made event per
//! publish (timed), as a caller re-publishing a shared event would; the floor
//! clones once per sender. The broadcast crates store an event once and let
//! each receiver clone it when it receives, so in the publish-only workloads
//! (a, b, c) their per-receiver cost is paid by the consumers, outside the
//! timed part; the end-to-end workloads (f, h) include it.
//!
//! Workloads (group names):
//!
//! - `a_publish_k{1,8,64}`: publish cost, one thread, k universal subscribers
//!   with room in their buffers; drained between batches of 64, untimed.
//! - `b_typed_dispatch_64`: 64 subscribers each on one distinct Rust type,
//!   events round-robin over the 64 types. switchboard filters by `TypeId`
//!   (`switchboard`) or by event-type string (`switchboard_by_name`); the
//!   port checks every subscriber's `HashSet<String>`; the broadcast crates,
//!   which cannot filter, get what their users would build: one channel per
//!   type in a `HashMap<TypeId, _>`; the floor sends to the right channel by index.
//! - `c_drop_path_k8`: 8 critical subscribers whose buffers are all full,
//!   drop counters and a drop callback on. `floor` is the failing `try_send`
//!   loop; `floor_with_accounting` adds the bookkeeping any bus must do (a
//!   per-subscriber and a bus counter, one callback call). The broadcast
//!   crates have no per-subscriber drop: tokio and async-broadcast overwrite
//!   their oldest slot (the lag is found by the receivers), bus rejects the
//!   whole event; they are shown for the cost of publishing to full queues.
//! - `d_two_publishers`: two publisher threads into two subscribers drained
//!   by two blocking consumer threads; time per event, wall time of rounds
//!   of 2 x 1024 events started in lockstep (buffers hold a whole round).
//! - `e_publish_under_churn_k8`: the k = 8 publish of (a) while another
//!   thread loops subscribe + unsubscribe (`*_idle`: no churn thread);
//!   `e_subscribe_unsubscribe`: time per subscribe + unsubscribe pair while
//!   another thread publishes as in (a) (`switchboard_idle`: nobody publishes).
//! - `f_end_to_end_1x4`: one publisher, four blocking consumers, buffers
//!   sized so nothing drops; time per event until all four received it
//!   (delivered events per second = 4 / time).
//! - `h_async_vs_sync_1x1`: one publisher, one consumer, same rounds as (f):
//!   blocking `recv` against async consumption (`Stream` /
//!   `recv().await` under `futures::executor::block_on`).
//!
//! Workload (g), the scatter-gather round trip, is `benches/request.rs`.
//!
//! Run: `cargo bench --bench fanout -- --warm-up-time 1 --measurement-time 3`
//! (those are also the defaults here), or one group with a filter such as
//! `cargo bench --bench fanout -- a_publish`. `cargo run --release --example
//! bench_report` runs this and the request bench and prints the table.

#[path = "support/events.rs"]
mod events;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/rwlock_port.rs"]
mod rwlock_port;

use std::any::TypeId;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ::bus::{Bus, BusReader};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use crossbeam_channel as cb;
use futures::StreamExt;
use switchboard::{Event, EventBus, SubscribeOptions, Subscription};
use tokio::sync::broadcast;

use events::{kinds, tick, type_id_of, TYPES, TYPE_NAMES};
use harness::{timed_batches, timed_end_to_end, Background, Consumers, Helper, BATCH, ROOM};
use rwlock_port::{PortSubscription, RwLockBus};

type Ev = Arc<dyn Event>;
type Group<'a> = BenchmarkGroup<'a, WallTime>;

// ---------------------------------------------------------------------------
// Small helpers per implementation

/// The floor: one `try_send` of an `Arc` clone per sender.
#[inline]
fn floor_send(senders: &[cb::Sender<Ev>], event: &Ev) -> usize {
    let mut sent = 0;
    for sender in senders {
        if sender.try_send(Arc::clone(event)).is_ok() {
            sent += 1;
        }
    }
    sent
}

fn floor_channels(k: usize, buffer: usize) -> (Vec<cb::Sender<Ev>>, Vec<cb::Receiver<Ev>>) {
    (0..k).map(|_| cb::bounded::<Ev>(buffer)).unzip()
}

fn drain_receivers(receivers: &[cb::Receiver<Ev>]) {
    for receiver in receivers {
        while receiver.try_recv().is_ok() {}
    }
}

fn drain_subscriptions(subscriptions: &[Subscription]) {
    for subscription in subscriptions {
        while subscription.try_recv().is_ok() {}
    }
}

fn drain_port(subscriptions: &[PortSubscription]) {
    for subscription in subscriptions {
        while subscription.receiver.try_recv().is_ok() {}
    }
}

fn drain_tokio(receivers: &mut [broadcast::Receiver<Ev>]) {
    for receiver in receivers {
        loop {
            match receiver.try_recv() {
                Ok(_) => {}
                Err(broadcast::error::TryRecvError::Lagged(_)) => panic!("tokio receiver lagged"),
                Err(_) => break,
            }
        }
    }
}

fn drain_async_broadcast(receivers: &mut [async_broadcast::Receiver<Ev>]) {
    for receiver in receivers {
        loop {
            match receiver.try_recv() {
                Ok(_) => {}
                Err(async_broadcast::TryRecvError::Overflowed(_)) => {
                    panic!("async-broadcast receiver overflowed")
                }
                Err(_) => break,
            }
        }
    }
}

fn drain_bus(readers: &mut [BusReader<Ev>]) {
    for reader in readers {
        while reader.try_recv().is_ok() {}
    }
}

/// A started bus with `k` universal critical subscribers of buffer `buffer`.
fn switchboard_universal(k: usize, buffer: usize) -> (EventBus, Vec<Subscription>) {
    let bus = EventBus::new();
    let subscriptions = (0..k)
        .map(|i| bus.subscribe(&format!("subscriber-{i}"), buffer).unwrap())
        .collect();
    bus.start();
    (bus, subscriptions)
}

fn port_universal(k: usize, buffer: usize) -> (Arc<RwLockBus>, Vec<PortSubscription>) {
    let port = Arc::new(RwLockBus::new());
    let subscriptions = (0..k)
        .map(|i| port.subscribe(&format!("subscriber-{i}"), buffer))
        .collect();
    port.start();
    (port, subscriptions)
}

fn tokio_channel(
    k: usize,
    capacity: usize,
) -> (broadcast::Sender<Ev>, Vec<broadcast::Receiver<Ev>>) {
    let (sender, first) = broadcast::channel(capacity);
    let mut receivers = vec![first];
    receivers.extend((1..k).map(|_| sender.subscribe()));
    (sender, receivers)
}

fn async_broadcast_channel(
    k: usize,
    capacity: usize,
) -> (
    async_broadcast::Sender<Ev>,
    Vec<async_broadcast::Receiver<Ev>>,
) {
    let (mut sender, first) = async_broadcast::broadcast(capacity);
    sender.set_overflow(true);
    let others: Vec<_> = (1..k).map(|_| first.new_receiver()).collect();
    let mut receivers = vec![first];
    receivers.extend(others);
    (sender, receivers)
}

fn bus_channel(k: usize, capacity: usize) -> (Bus<Ev>, Vec<BusReader<Ev>>) {
    let mut bus = Bus::new(capacity);
    let readers = (0..k).map(|_| bus.add_rx()).collect();
    (bus, readers)
}

/// Options of the subscriber that workload (e) adds and removes in a loop:
/// universal like the others, lossy so that one living long (its thread
/// descheduled) fills up without reaching the drop callback path, and
/// leader-only so that subscribing after `start()` logs nothing.
fn churn_options() -> SubscribeOptions {
    SubscribeOptions::new("churn", ROOM).lossy().leader_only()
}

// ---------------------------------------------------------------------------
// (a) publish cost, single thread, k universal subscribers

fn a_publish_cost(c: &mut Criterion) {
    for k in [1usize, 8, 64] {
        let mut group = c.benchmark_group(format!("a_publish_k{k}"));
        let event = tick();

        {
            let (senders, receivers) = floor_channels(k, ROOM);
            group.bench_function("floor", |b| {
                b.iter_custom(|iters| {
                    timed_batches(
                        iters,
                        || {
                            black_box(floor_send(&senders, &event));
                        },
                        || drain_receivers(&receivers),
                    )
                })
            });
        }
        {
            let (bus, subscriptions) = switchboard_universal(k, ROOM);
            group.bench_function("switchboard", |b| {
                b.iter_custom(|iters| {
                    timed_batches(
                        iters,
                        || {
                            black_box(bus.publish_arc(Arc::clone(&event)));
                        },
                        || drain_subscriptions(&subscriptions),
                    )
                })
            });
            assert_eq!(bus.stats().dropped(), 0);
        }
        {
            let (port, subscriptions) = port_universal(k, ROOM);
            group.bench_function("rwlock_port", |b| {
                b.iter_custom(|iters| {
                    timed_batches(
                        iters,
                        || {
                            black_box(port.publish(Arc::clone(&event)));
                        },
                        || drain_port(&subscriptions),
                    )
                })
            });
            assert_eq!(port.dropped_events(), 0);
        }
        {
            let (sender, mut receivers) = tokio_channel(k, ROOM);
            group.bench_function("tokio_broadcast", |b| {
                b.iter_custom(|iters| {
                    timed_batches(
                        iters,
                        || {
                            black_box(sender.send(Arc::clone(&event)).is_ok());
                        },
                        || drain_tokio(&mut receivers),
                    )
                })
            });
        }
        {
            let (sender, mut receivers) = async_broadcast_channel(k, ROOM);
            group.bench_function("async_broadcast", |b| {
                b.iter_custom(|iters| {
                    timed_batches(
                        iters,
                        || {
                            black_box(sender.try_broadcast(Arc::clone(&event)).is_ok());
                        },
                        || drain_async_broadcast(&mut receivers),
                    )
                })
            });
        }
        {
            let (mut bus, mut readers) = bus_channel(k, ROOM);
            group.bench_function("bus", |b| {
                b.iter_custom(|iters| {
                    timed_batches(
                        iters,
                        || {
                            assert!(bus.try_broadcast(Arc::clone(&event)).is_ok());
                        },
                        || drain_bus(&mut readers),
                    )
                })
            });
        }
        group.finish();
    }
}

/// The next of the 64 typed events, round-robin.
#[inline]
fn round_robin<'a>(events: &'a [Ev], next: &mut usize) -> &'a Ev {
    let event = &events[*next % TYPES];
    *next = next.wrapping_add(1);
    event
}

// ---------------------------------------------------------------------------
// (b) typed dispatch: 64 subscribers on 64 distinct types, round-robin events

fn b_typed_dispatch(c: &mut Criterion) {
    let mut group = c.benchmark_group("b_typed_dispatch_64");
    let kinds = kinds();
    let events: Vec<Ev> = kinds.iter().map(|(event, _)| Arc::clone(event)).collect();
    let mut next = 0usize;

    {
        let (senders, receivers) = floor_channels(TYPES, ROOM);
        group.bench_function("floor", |b| {
            b.iter_custom(|iters| {
                timed_batches(
                    iters,
                    || {
                        let i = next % TYPES;
                        next = next.wrapping_add(1);
                        black_box(senders[i].try_send(Arc::clone(&events[i])).is_ok());
                    },
                    || drain_receivers(&receivers),
                )
            })
        });
    }
    {
        let bus = EventBus::new();
        let subscriptions: Vec<Subscription> = kinds
            .iter()
            .enumerate()
            .map(|(i, (_, types))| {
                bus.subscribe_with(
                    SubscribeOptions::new(format!("typed-{i}"), ROOM).rust_types(types.clone()),
                )
                .unwrap()
            })
            .collect();
        bus.start();
        group.bench_function("switchboard", |b| {
            b.iter_custom(|iters| {
                timed_batches(
                    iters,
                    || {
                        black_box(bus.publish_arc(Arc::clone(round_robin(&events, &mut next))));
                    },
                    || drain_subscriptions(&subscriptions),
                )
            })
        });
        assert_eq!(bus.stats().dropped(), 0);
    }
    {
        let bus = EventBus::new();
        let subscriptions: Vec<Subscription> = TYPE_NAMES
            .iter()
            .map(|name| {
                bus.subscribe_with(SubscribeOptions::new(*name, ROOM).event_types([*name]))
                    .unwrap()
            })
            .collect();
        bus.start();
        group.bench_function("switchboard_by_name", |b| {
            b.iter_custom(|iters| {
                timed_batches(
                    iters,
                    || {
                        black_box(bus.publish_arc(Arc::clone(round_robin(&events, &mut next))));
                    },
                    || drain_subscriptions(&subscriptions),
                )
            })
        });
        assert_eq!(bus.stats().dropped(), 0);
    }
    {
        let port = RwLockBus::new();
        let subscriptions: Vec<PortSubscription> = TYPE_NAMES
            .iter()
            .map(|name| port.subscribe_types(name, ROOM, &[name]))
            .collect();
        port.start();
        group.bench_function("rwlock_port", |b| {
            b.iter_custom(|iters| {
                timed_batches(
                    iters,
                    || {
                        black_box(port.publish(Arc::clone(round_robin(&events, &mut next))));
                    },
                    || drain_port(&subscriptions),
                )
            })
        });
        assert_eq!(port.dropped_events(), 0);
    }
    {
        let mut senders = HashMap::new();
        let mut receivers = Vec::new();
        for event in &events {
            let (sender, receiver) = broadcast::channel::<Ev>(ROOM);
            senders.insert(type_id_of(event), sender);
            receivers.push(receiver);
        }
        group.bench_function("tokio_broadcast", |b| {
            b.iter_custom(|iters| {
                timed_batches(
                    iters,
                    || {
                        let event = round_robin(&events, &mut next);
                        black_box(senders[&type_id_of(event)].send(Arc::clone(event)).is_ok());
                    },
                    || drain_tokio(&mut receivers),
                )
            })
        });
    }
    {
        let mut senders = HashMap::new();
        let mut receivers = Vec::new();
        for event in &events {
            let (sender, receiver) = async_broadcast_channel(1, ROOM);
            senders.insert(type_id_of(event), sender);
            receivers.extend(receiver);
        }
        group.bench_function("async_broadcast", |b| {
            b.iter_custom(|iters| {
                timed_batches(
                    iters,
                    || {
                        let event = round_robin(&events, &mut next);
                        black_box(
                            senders[&type_id_of(event)]
                                .try_broadcast(Arc::clone(event))
                                .is_ok(),
                        );
                    },
                    || drain_async_broadcast(&mut receivers),
                )
            })
        });
    }
    {
        let mut buses: HashMap<TypeId, Bus<Ev>> = HashMap::new();
        let mut readers = Vec::new();
        for event in &events {
            let (bus, reader) = bus_channel(1, ROOM);
            buses.insert(type_id_of(event), bus);
            readers.extend(reader);
        }
        group.bench_function("bus", |b| {
            b.iter_custom(|iters| {
                timed_batches(
                    iters,
                    || {
                        let event = round_robin(&events, &mut next);
                        let bus = buses.get_mut(&type_id_of(event)).unwrap();
                        assert!(bus.try_broadcast(Arc::clone(event)).is_ok());
                    },
                    || drain_bus(&mut readers),
                )
            })
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// (c) the drop path: every buffer full, critical subscribers, counters and callback

fn c_drop_path(c: &mut Criterion) {
    const K: usize = 8;
    let mut group = c.benchmark_group("c_drop_path_k8");
    let event = tick();
    let no_drain = || {};

    {
        let (senders, _receivers) = floor_channels(K, 1);
        assert_eq!(floor_send(&senders, &event), K);
        group.bench_function("floor", |b| {
            b.iter_custom(|iters| {
                timed_batches(
                    iters,
                    || {
                        black_box(floor_send(&senders, &event));
                    },
                    no_drain,
                )
            })
        });
    }
    {
        let (senders, _receivers) = floor_channels(K, 1);
        assert_eq!(floor_send(&senders, &event), K);
        let per_subscriber: Vec<AtomicU64> = (0..K).map(|_| AtomicU64::new(0)).collect();
        let total = AtomicU64::new(0);
        let calls = Arc::new(AtomicU64::new(0));
        let callback: Box<dyn Fn(&str) + Send + Sync> = {
            let calls = Arc::clone(&calls);
            Box::new(move |name| {
                black_box(name);
                calls.fetch_add(1, Ordering::Relaxed);
            })
        };
        group.bench_function("floor_with_accounting", |b| {
            b.iter_custom(|iters| {
                timed_batches(
                    iters,
                    || {
                        let mut sent = 0;
                        for (sender, dropped) in senders.iter().zip(&per_subscriber) {
                            if sender.try_send(Arc::clone(&event)).is_ok() {
                                sent += 1;
                            } else {
                                dropped.fetch_add(1, Ordering::Relaxed);
                                total.fetch_add(1, Ordering::Relaxed);
                                callback("subscriber");
                            }
                        }
                        black_box(sent);
                    },
                    no_drain,
                )
            })
        });
        assert_eq!(total.load(Ordering::Relaxed), calls.load(Ordering::Relaxed));
    }
    {
        let (bus, _subscriptions) = switchboard_universal(K, 1);
        let calls = Arc::new(AtomicU64::new(0));
        {
            let calls = Arc::clone(&calls);
            bus.set_drop_callback(Some(Box::new(move |info| {
                black_box(info.subscriber_name);
                calls.fetch_add(1, Ordering::Relaxed);
            })));
        }
        assert_eq!(bus.publish_arc(Arc::clone(&event)), K);
        group.bench_function("switchboard", |b| {
            b.iter_custom(|iters| {
                timed_batches(
                    iters,
                    || {
                        black_box(bus.publish_arc(Arc::clone(&event)));
                    },
                    no_drain,
                )
            })
        });
        assert_eq!(bus.stats().dropped_critical, calls.load(Ordering::Relaxed));
    }
    {
        let (port, _subscriptions) = port_universal(K, 1);
        let calls = Arc::new(AtomicU64::new(0));
        {
            let calls = Arc::clone(&calls);
            port.set_drop_callback(Some(Arc::new(move |info| {
                black_box(info.subscriber_name);
                calls.fetch_add(1, Ordering::Relaxed);
            })));
        }
        assert_eq!(port.publish(Arc::clone(&event)), K);
        group.bench_function("rwlock_port", |b| {
            b.iter_custom(|iters| {
                timed_batches(
                    iters,
                    || {
                        black_box(port.publish(Arc::clone(&event)));
                    },
                    no_drain,
                )
            })
        });
        assert_eq!(port.dropped_critical(), calls.load(Ordering::Relaxed));
    }
    {
        let (sender, _receivers) = tokio_channel(K, 1);
        group.bench_function("tokio_broadcast", |b| {
            b.iter_custom(|iters| {
                timed_batches(
                    iters,
                    || {
                        black_box(sender.send(Arc::clone(&event)).is_ok());
                    },
                    no_drain,
                )
            })
        });
    }
    {
        let (sender, _receivers) = async_broadcast_channel(K, 1);
        group.bench_function("async_broadcast", |b| {
            b.iter_custom(|iters| {
                timed_batches(
                    iters,
                    || {
                        black_box(sender.try_broadcast(Arc::clone(&event)).is_ok());
                    },
                    no_drain,
                )
            })
        });
    }
    {
        let (mut bus, _readers) = bus_channel(K, 1);
        while bus.try_broadcast(Arc::clone(&event)).is_ok() {}
        group.bench_function("bus", |b| {
            b.iter_custom(|iters| {
                timed_batches(
                    iters,
                    || {
                        assert!(bus.try_broadcast(Arc::clone(&event)).is_err());
                    },
                    no_drain,
                )
            })
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// (d) two publisher threads into two draining subscribers

/// Events each of the two publishers sends per round.
const D_ROUND: u64 = 1024;
/// Buffers hold a whole round of both publishers: nothing drops.
const D_BUFFER: usize = 2 * D_ROUND as usize;

/// Benchmarks `publish` from two threads at once. `finish` runs after the
/// publishers are gone and must drop the last handle that keeps the queues
/// open (after checking what it wants), so that the consumers end.
fn run_two_publishers<F: Fn() + Send + Sync + 'static>(
    group: &mut Group<'_>,
    id: &str,
    publish: Arc<F>,
    consumers: Consumers,
    finish: impl FnOnce(),
) {
    let helper = Helper::spawn(Arc::clone(&publish));
    let mut published = 0u64;
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(2 * D_ROUND);
                total += helper.publish_together(n - n / 2, n / 2, &*publish);
                published += n;
                consumers.wait_for(published);
                left -= n;
            }
            total
        })
    });
    drop(helper);
    drop(publish);
    finish();
    consumers.join();
}

fn tokio_consumer(mut receiver: broadcast::Receiver<Ev>) -> impl FnMut() -> bool + Send {
    move || match receiver.blocking_recv() {
        Ok(_) => true,
        Err(broadcast::error::RecvError::Lagged(_)) => panic!("tokio receiver lagged"),
        Err(broadcast::error::RecvError::Closed) => false,
    }
}

fn async_broadcast_consumer(
    mut receiver: async_broadcast::Receiver<Ev>,
) -> impl FnMut() -> bool + Send {
    move || match receiver.recv_blocking() {
        Ok(_) => true,
        Err(async_broadcast::RecvError::Overflowed(_)) => panic!("async-broadcast overflowed"),
        Err(async_broadcast::RecvError::Closed) => false,
    }
}

fn d_two_publishers(c: &mut Criterion) {
    const K: usize = 2;
    let mut group = c.benchmark_group("d_two_publishers");
    let event = tick();

    {
        let (senders, receivers) = floor_channels(K, D_BUFFER);
        let mut consumers = Consumers::new();
        for receiver in receivers {
            consumers.spawn(move || receiver.recv().is_ok());
        }
        let event = Arc::clone(&event);
        let publish = Arc::new(move || {
            black_box(floor_send(&senders, &event));
        });
        run_two_publishers(&mut group, "floor", publish, consumers, || {});
    }
    {
        let (bus, subscriptions) = switchboard_universal(K, D_BUFFER);
        let mut consumers = Consumers::new();
        for subscription in subscriptions {
            consumers.spawn(move || subscription.recv().is_ok());
        }
        let check = bus.clone();
        let event = Arc::clone(&event);
        let publish = Arc::new(move || {
            black_box(bus.publish_arc(Arc::clone(&event)));
        });
        run_two_publishers(&mut group, "switchboard", publish, consumers, move || {
            assert_eq!(check.stats().dropped(), 0);
        });
    }
    {
        let (port, subscriptions) = port_universal(K, D_BUFFER);
        let mut consumers = Consumers::new();
        for subscription in subscriptions {
            consumers.spawn(move || subscription.receiver.recv().is_ok());
        }
        let check = Arc::clone(&port);
        let event = Arc::clone(&event);
        let publish = Arc::new(move || {
            black_box(port.publish(Arc::clone(&event)));
        });
        run_two_publishers(&mut group, "rwlock_port", publish, consumers, move || {
            assert_eq!(check.dropped_events(), 0);
        });
    }
    {
        let (sender, receivers) = tokio_channel(K, D_BUFFER);
        let mut consumers = Consumers::new();
        for receiver in receivers {
            consumers.spawn(tokio_consumer(receiver));
        }
        let event = Arc::clone(&event);
        let publish = Arc::new(move || {
            black_box(sender.send(Arc::clone(&event)).is_ok());
        });
        run_two_publishers(&mut group, "tokio_broadcast", publish, consumers, || {});
    }
    {
        let (sender, receivers) = async_broadcast_channel(K, D_BUFFER);
        let mut consumers = Consumers::new();
        for receiver in receivers {
            consumers.spawn(async_broadcast_consumer(receiver));
        }
        let event = Arc::clone(&event);
        let publish = Arc::new(move || {
            black_box(sender.try_broadcast(Arc::clone(&event)).is_ok());
        });
        run_two_publishers(&mut group, "async_broadcast", publish, consumers, || {});
    }
    // bus: n/a, a single-producer channel (`broadcast` takes `&mut self`).
    group.finish();
}

// ---------------------------------------------------------------------------
// (e) publish while another thread loops subscribe + unsubscribe

fn report_rate(what: &str, background: Background) {
    let (steps, per_second) = background.stop();
    if steps > 0 {
        eprintln!("    {what}: {steps} in all, {per_second:.0}/s");
    }
}

fn e_churn(c: &mut Criterion) {
    const K: usize = 8;
    let event = tick();

    let mut group = c.benchmark_group("e_publish_under_churn_k8");
    {
        let (senders, receivers) = floor_channels(K, ROOM);
        group.bench_function("floor", |b| {
            b.iter_custom(|iters| {
                timed_batches(
                    iters,
                    || {
                        black_box(floor_send(&senders, &event));
                    },
                    || drain_receivers(&receivers),
                )
            })
        });
    }
    {
        let (bus, subscriptions) = switchboard_universal(K, ROOM);
        let publish_with = |group: &mut Group<'_>, id: &str| {
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    timed_batches(
                        iters,
                        || {
                            black_box(bus.publish_arc(Arc::clone(&event)));
                        },
                        || drain_subscriptions(&subscriptions),
                    )
                })
            });
        };
        publish_with(&mut group, "switchboard_idle");
        let churn = {
            let bus = bus.clone();
            Background::spawn(move || drop(black_box(bus.subscribe_with(churn_options()))))
        };
        publish_with(&mut group, "switchboard");
        report_rate(
            "switchboard subscribe+unsubscribe pairs while publishing",
            churn,
        );
        assert_eq!(bus.stats().dropped_critical, 0);
    }
    {
        let (port, subscriptions) = port_universal(K, ROOM);
        let publish_with = |group: &mut Group<'_>, id: &str| {
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    timed_batches(
                        iters,
                        || {
                            black_box(port.publish(Arc::clone(&event)));
                        },
                        || drain_port(&subscriptions),
                    )
                })
            });
        };
        publish_with(&mut group, "rwlock_port_idle");
        let churn = {
            let port = Arc::clone(&port);
            Background::spawn(move || {
                let subscription = port.subscribe_lossy("churn", ROOM);
                port.unsubscribe(black_box(subscription.id));
            })
        };
        publish_with(&mut group, "rwlock_port");
        report_rate(
            "rwlock_port subscribe+unsubscribe pairs while publishing",
            churn,
        );
    }
    {
        let (sender, mut receivers) = tokio_channel(K, ROOM);
        let mut publish_with = |group: &mut Group<'_>, id: &str| {
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    timed_batches(
                        iters,
                        || {
                            black_box(sender.send(Arc::clone(&event)).is_ok());
                        },
                        || drain_tokio(&mut receivers),
                    )
                })
            });
        };
        publish_with(&mut group, "tokio_broadcast_idle");
        let churn = {
            let sender = sender.clone();
            Background::spawn(move || drop(black_box(sender.subscribe())))
        };
        publish_with(&mut group, "tokio_broadcast");
        report_rate(
            "tokio_broadcast subscribe+drop pairs while publishing",
            churn,
        );
    }
    {
        let (sender, mut receivers) = async_broadcast_channel(K, ROOM);
        let mut publish_with = |group: &mut Group<'_>, id: &str| {
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    timed_batches(
                        iters,
                        || {
                            black_box(sender.try_broadcast(Arc::clone(&event)).is_ok());
                        },
                        || drain_async_broadcast(&mut receivers),
                    )
                })
            });
        };
        publish_with(&mut group, "async_broadcast_idle");
        let churn = {
            let sender = sender.clone();
            Background::spawn(move || drop(black_box(sender.new_receiver())))
        };
        publish_with(&mut group, "async_broadcast");
        report_rate(
            "async_broadcast new_receiver+drop pairs while publishing",
            churn,
        );
    }
    // bus: n/a, `add_rx` takes `&mut Bus`, which its single publisher holds.
    group.finish();

    let mut group = c.benchmark_group("e_subscribe_unsubscribe");
    {
        let (bus, subscriptions) = switchboard_universal(K, ROOM);
        group.bench_function("switchboard_idle", |b| {
            b.iter(|| drop(black_box(bus.subscribe_with(churn_options()))))
        });
        let publisher = {
            let bus = bus.clone();
            let event = Arc::clone(&event);
            Background::spawn(move || {
                for _ in 0..BATCH {
                    black_box(bus.publish_arc(Arc::clone(&event)));
                }
                drain_subscriptions(&subscriptions);
            })
        };
        group.bench_function("switchboard", |b| {
            b.iter(|| drop(black_box(bus.subscribe_with(churn_options()))))
        });
        report_rate("switchboard batches of 64 published meanwhile", publisher);
    }
    {
        let (port, subscriptions) = port_universal(K, ROOM);
        let publisher = {
            let port = Arc::clone(&port);
            let event = Arc::clone(&event);
            Background::spawn(move || {
                for _ in 0..BATCH {
                    black_box(port.publish(Arc::clone(&event)));
                }
                drain_port(&subscriptions);
            })
        };
        group.bench_function("rwlock_port", |b| {
            b.iter(|| {
                let subscription = port.subscribe_lossy("churn", ROOM);
                port.unsubscribe(black_box(subscription.id))
            })
        });
        report_rate("rwlock_port batches of 64 published meanwhile", publisher);
    }
    {
        let (sender, mut receivers) = tokio_channel(K, ROOM);
        let publisher = {
            let sender = sender.clone();
            let event = Arc::clone(&event);
            Background::spawn(move || {
                for _ in 0..BATCH {
                    black_box(sender.send(Arc::clone(&event)).is_ok());
                }
                drain_tokio(&mut receivers);
            })
        };
        group.bench_function("tokio_broadcast", |b| {
            b.iter(|| drop(black_box(sender.subscribe())))
        });
        report_rate(
            "tokio_broadcast batches of 64 published meanwhile",
            publisher,
        );
    }
    {
        let (sender, mut receivers) = async_broadcast_channel(K, ROOM);
        let publisher = {
            let sender = sender.clone();
            let event = Arc::clone(&event);
            Background::spawn(move || {
                for _ in 0..BATCH {
                    black_box(sender.try_broadcast(Arc::clone(&event)).is_ok());
                }
                drain_async_broadcast(&mut receivers);
            })
        };
        group.bench_function("async_broadcast", |b| {
            b.iter(|| drop(black_box(sender.new_receiver())))
        });
        report_rate(
            "async_broadcast batches of 64 published meanwhile",
            publisher,
        );
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// (f) end to end, 1 publisher, 4 consumers; (h) async against sync consumers

/// Events per round in (f) and (h); every buffer holds a whole round.
const E2E_ROUND: u64 = 1024;
const E2E_BUFFER: usize = E2E_ROUND as usize;

/// Benchmarks `publish` end to end; `finish` as for [`run_two_publishers`].
fn run_end_to_end(
    group: &mut Group<'_>,
    id: &str,
    consumers: Consumers,
    mut publish: impl FnMut(),
    finish: impl FnOnce(),
) {
    let mut published = 0u64;
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            timed_end_to_end(iters, E2E_ROUND, &mut published, &consumers, &mut publish)
        })
    });
    drop(publish);
    finish();
    consumers.join();
}

fn f_end_to_end(c: &mut Criterion) {
    const K: usize = 4;
    let mut group = c.benchmark_group("f_end_to_end_1x4");
    let event = tick();

    {
        let (senders, receivers) = floor_channels(K, E2E_BUFFER);
        let mut consumers = Consumers::new();
        for receiver in receivers {
            consumers.spawn(move || receiver.recv().is_ok());
        }
        let event = Arc::clone(&event);
        run_end_to_end(
            &mut group,
            "floor",
            consumers,
            move || {
                black_box(floor_send(&senders, &event));
            },
            || {},
        );
    }
    {
        let (bus, subscriptions) = switchboard_universal(K, E2E_BUFFER);
        let mut consumers = Consumers::new();
        for subscription in subscriptions {
            consumers.spawn(move || subscription.recv().is_ok());
        }
        let check = bus.clone();
        let event = Arc::clone(&event);
        run_end_to_end(
            &mut group,
            "switchboard",
            consumers,
            move || {
                black_box(bus.publish_arc(Arc::clone(&event)));
            },
            move || assert_eq!(check.stats().dropped(), 0),
        );
    }
    {
        let (port, subscriptions) = port_universal(K, E2E_BUFFER);
        let mut consumers = Consumers::new();
        for subscription in subscriptions {
            consumers.spawn(move || subscription.receiver.recv().is_ok());
        }
        let event = Arc::clone(&event);
        run_end_to_end(
            &mut group,
            "rwlock_port",
            consumers,
            move || {
                assert_eq!(port.publish(Arc::clone(&event)), K);
            },
            || {},
        );
    }
    {
        let (sender, receivers) = tokio_channel(K, E2E_BUFFER);
        let mut consumers = Consumers::new();
        for receiver in receivers {
            consumers.spawn(tokio_consumer(receiver));
        }
        let event = Arc::clone(&event);
        run_end_to_end(
            &mut group,
            "tokio_broadcast",
            consumers,
            move || {
                black_box(sender.send(Arc::clone(&event)).is_ok());
            },
            || {},
        );
    }
    {
        let (sender, receivers) = async_broadcast_channel(K, E2E_BUFFER);
        let mut consumers = Consumers::new();
        for receiver in receivers {
            consumers.spawn(async_broadcast_consumer(receiver));
        }
        let event = Arc::clone(&event);
        run_end_to_end(
            &mut group,
            "async_broadcast",
            consumers,
            move || {
                black_box(sender.try_broadcast(Arc::clone(&event)).is_ok());
            },
            || {},
        );
    }
    {
        let (mut bus, readers) = bus_channel(K, E2E_BUFFER);
        let mut consumers = Consumers::new();
        for mut reader in readers {
            consumers.spawn(move || reader.recv().is_ok());
        }
        let event = Arc::clone(&event);
        run_end_to_end(
            &mut group,
            "bus",
            consumers,
            move || {
                bus.broadcast(Arc::clone(&event));
            },
            || {},
        );
    }
    group.finish();
}

fn h_async_vs_sync(c: &mut Criterion) {
    let mut group = c.benchmark_group("h_async_vs_sync_1x1");
    let event = tick();

    {
        let (senders, receivers) = floor_channels(1, E2E_BUFFER);
        let mut consumers = Consumers::new();
        for receiver in receivers {
            consumers.spawn(move || receiver.recv().is_ok());
        }
        let event = Arc::clone(&event);
        run_end_to_end(
            &mut group,
            "floor",
            consumers,
            move || {
                black_box(floor_send(&senders, &event));
            },
            || {},
        );
    }
    for stream in [false, true] {
        let (bus, subscriptions) = switchboard_universal(1, E2E_BUFFER);
        let mut consumers = Consumers::new();
        for mut subscription in subscriptions {
            if stream {
                consumers.spawn_loop(move |count| {
                    futures::executor::block_on(async move {
                        let mut n = 0;
                        while subscription.next().await.is_some() {
                            n += 1;
                            count.store(n, Ordering::Release);
                        }
                    })
                });
            } else {
                consumers.spawn(move || subscription.recv().is_ok());
            }
        }
        let check = bus.clone();
        let event = Arc::clone(&event);
        let id = if stream {
            "switchboard_stream"
        } else {
            "switchboard_recv"
        };
        run_end_to_end(
            &mut group,
            id,
            consumers,
            move || {
                black_box(bus.publish_arc(Arc::clone(&event)));
            },
            move || assert_eq!(check.stats().dropped(), 0),
        );
    }
    for stream in [false, true] {
        let (sender, receivers) = tokio_channel(1, E2E_BUFFER);
        let mut consumers = Consumers::new();
        for mut receiver in receivers {
            if stream {
                consumers.spawn_loop(move |count| {
                    futures::executor::block_on(async move {
                        let mut n = 0;
                        loop {
                            match receiver.recv().await {
                                Ok(_) => n += 1,
                                Err(broadcast::error::RecvError::Lagged(_)) => {
                                    panic!("tokio receiver lagged")
                                }
                                Err(broadcast::error::RecvError::Closed) => break,
                            }
                            count.store(n, Ordering::Release);
                        }
                    })
                });
            } else {
                consumers.spawn(tokio_consumer(receiver));
            }
        }
        let event = Arc::clone(&event);
        let id = if stream {
            "tokio_broadcast_async_recv"
        } else {
            "tokio_broadcast_blocking_recv"
        };
        run_end_to_end(
            &mut group,
            id,
            consumers,
            move || {
                black_box(sender.send(Arc::clone(&event)).is_ok());
            },
            || {},
        );
    }
    for stream in [false, true] {
        let (sender, receivers) = async_broadcast_channel(1, E2E_BUFFER);
        let mut consumers = Consumers::new();
        for mut receiver in receivers {
            if stream {
                consumers.spawn_loop(move |count| {
                    futures::executor::block_on(async move {
                        let mut n = 0;
                        while receiver.next().await.is_some() {
                            n += 1;
                            count.store(n, Ordering::Release);
                        }
                    })
                });
            } else {
                consumers.spawn(async_broadcast_consumer(receiver));
            }
        }
        let event = Arc::clone(&event);
        let id = if stream {
            "async_broadcast_stream"
        } else {
            "async_broadcast_recv_blocking"
        };
        run_end_to_end(
            &mut group,
            id,
            consumers,
            move || {
                black_box(sender.try_broadcast(Arc::clone(&event)).is_ok());
            },
            || {},
        );
    }
    // rwlock_port: its consumers are the floor's crossbeam receivers; bus: no async API.
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = a_publish_cost, b_typed_dispatch, c_drop_path, d_two_publishers, e_churn,
        f_end_to_end, h_async_vs_sync
}
criterion_main!(benches);
