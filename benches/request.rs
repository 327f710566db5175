//! One scatter-gather round trip with three responder threads, next to the
//! same exchange built directly on crossbeam channels.
//!
//! Every variant does the same work per iteration: make a request carrying a
//! fresh string id, hand it to three responder threads that are parked
//! waiting for it, and wait until all three have answered with a response
//! that carries the id back. So the difference between the lines is what
//! the bus adds to a bare request/reply: publishing through the registry,
//! routing responses by request id, counting expected responders once, the
//! timeout and the result.
//!
//! - `switchboard_request`: [`EventBus::request`], blocking.
//! - `switchboard_request_async`: [`EventBus::request_async`] under
//!   `futures::executor::block_on`.
//! - `crossbeam_request_reply`: three threads, each receiving on its own
//!   crossbeam channel and replying on a shared one.
//!
//! A second group, `request_round_trip_3_responder_tasks`, runs the same
//! exchange on one thread: the three responders are tasks of a
//! `futures::executor::LocalPool` consuming their subscription as a `Stream`,
//! and the requester runs on the same pool. No thread is woken, so what it
//! measures is the work of the round trip itself:
//!
//! - `switchboard_request_async`: [`EventBus::request_async`].
//! - `futures_request_reply`: three tasks, each receiving on its own
//!   `futures::channel::mpsc` channel and replying on a shared one.
//!
//! A third group, `request_round_trip_3_responder_tasks_tokio`, is the shape
//! users write: the three responders are tasks of a tokio multi-thread
//! runtime with two workers, consuming their subscription as a `Stream`, and
//! the requester is a task of the same runtime, timing its own loop of
//! requests:
//!
//! - `switchboard_request_async`: [`EventBus::request_async`].
//! - `tokio_request_reply`: the same exchange on `tokio::sync::mpsc`
//!   channels, its floor.
//!
//! Run: `cargo bench --bench request -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use futures::channel::mpsc;
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;
use futures::{SinkExt, StreamExt};
use switchboard::{
    Event, EventBus, Request, RequestOptions, Response, Timestamp, TypedSubscription,
};

const RESPONDERS: [&str; 3] = ["validator-0", "validator-1", "validator-2"];

#[derive(Event, Request)]
#[event(type = "ask")]
struct Ask {
    #[request(id)]
    id: String,
    timestamp: Timestamp,
}

fn ask(id: String) -> Ask {
    Ask {
        id,
        timestamp: Timestamp::UNIX_EPOCH,
    }
}

#[derive(Event, Response)]
#[event(type = "reply")]
struct Reply {
    #[response(request_id)]
    id: String,
    #[response(responder)]
    from: &'static str,
    timestamp: Timestamp,
}

fn reply(ask: &Ask, from: &'static str) -> Reply {
    Reply {
        id: ask.id.clone(),
        from,
        timestamp: Timestamp::UNIX_EPOCH,
    }
}

/// Three responder threads on a bus; dropping it stops and joins them.
struct BusResponders {
    subscriptions: Vec<Arc<TypedSubscription<Ask>>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl BusResponders {
    fn start(bus: &EventBus) -> Self {
        let mut subscriptions = Vec::new();
        let mut threads = Vec::new();
        for name in RESPONDERS {
            let requests = Arc::new(bus.subscribe_to::<Ask>(name, 64).unwrap());
            subscriptions.push(Arc::clone(&requests));
            let bus = bus.clone();
            threads.push(thread::spawn(move || {
                for ask in requests.iter() {
                    bus.publish(reply(&ask, name));
                }
            }));
        }
        Self {
            subscriptions,
            threads,
        }
    }
}

impl Drop for BusResponders {
    fn drop(&mut self) {
        for subscription in &self.subscriptions {
            subscription.unsubscribe();
        }
        for thread in self.threads.drain(..) {
            thread.join().unwrap();
        }
    }
}

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("request_round_trip_3_responders");
    let options = RequestOptions::new(RESPONDERS).timeout(Duration::from_secs(10));

    {
        let bus = EventBus::new();
        let _responders = BusResponders::start(&bus);
        bus.start();
        let mut n = 0u64;
        group.bench_function("switchboard_request", |b| {
            b.iter(|| {
                n += 1;
                let result = bus
                    .request::<Reply, _>(ask(n.to_string()), options.clone())
                    .unwrap();
                assert_eq!(result.responses.len(), 3);
                black_box(result)
            })
        });
        assert_eq!(bus.stats().dropped(), 0);
    }

    {
        let bus = EventBus::new();
        let _responders = BusResponders::start(&bus);
        bus.start();
        let mut n = 0u64;
        group.bench_function("switchboard_request_async", |b| {
            b.iter(|| {
                n += 1;
                let future = bus.request_async::<Reply, _>(ask(n.to_string()), options.clone());
                let result = futures::executor::block_on(future).unwrap();
                assert_eq!(result.responses.len(), 3);
                black_box(result)
            })
        });
        assert_eq!(bus.stats().dropped(), 0);
    }

    {
        let (reply_tx, reply_rx) = crossbeam_channel::bounded::<Arc<Reply>>(RESPONDERS.len());
        let mut request_txs = Vec::new();
        let mut threads = Vec::new();
        for name in RESPONDERS {
            let (request_tx, request_rx) = crossbeam_channel::bounded::<Arc<Ask>>(64);
            request_txs.push(request_tx);
            let reply_tx = reply_tx.clone();
            threads.push(thread::spawn(move || {
                for ask in request_rx {
                    let reply = Arc::new(reply(&ask, name));
                    reply_tx.send(reply).unwrap();
                }
            }));
        }
        let mut n = 0u64;
        group.bench_function("crossbeam_request_reply", |b| {
            b.iter(|| {
                n += 1;
                let ask = Arc::new(ask(n.to_string()));
                for request_tx in &request_txs {
                    request_tx.send(Arc::clone(&ask)).unwrap();
                }
                let mut replies = Vec::with_capacity(RESPONDERS.len());
                while replies.len() < RESPONDERS.len() {
                    let reply = reply_rx.recv().unwrap();
                    if reply.id == ask.id {
                        replies.push(reply);
                    }
                }
                black_box(replies)
            })
        });
        drop(request_txs);
        for thread in threads {
            thread.join().unwrap();
        }
    }

    group.finish();
}

fn round_trip_on_one_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("request_round_trip_3_responder_tasks");
    let options = RequestOptions::new(RESPONDERS).timeout(Duration::from_secs(10));

    {
        let bus = EventBus::new();
        let mut pool = LocalPool::new();
        for name in RESPONDERS {
            let mut requests = bus.subscribe_to::<Ask>(name, 64).unwrap();
            let bus = bus.clone();
            pool.spawner()
                .spawn_local(async move {
                    while let Some(ask) = requests.next().await {
                        bus.publish(reply(&ask, name));
                    }
                })
                .unwrap();
        }
        bus.start();
        let mut n = 0u64;
        group.bench_function("switchboard_request_async", |b| {
            b.iter(|| {
                n += 1;
                let future = bus.request_async::<Reply, _>(ask(n.to_string()), options.clone());
                let result = pool.run_until(future).unwrap();
                assert_eq!(result.responses.len(), 3);
                black_box(result)
            })
        });
        assert_eq!(bus.stats().dropped(), 0);
    }

    {
        let mut pool = LocalPool::new();
        let (reply_tx, mut reply_rx) = mpsc::channel::<Arc<Reply>>(RESPONDERS.len());
        let mut request_txs = Vec::new();
        for name in RESPONDERS {
            let (request_tx, mut request_rx) = mpsc::channel::<Arc<Ask>>(64);
            request_txs.push(request_tx);
            let mut reply_tx = reply_tx.clone();
            pool.spawner()
                .spawn_local(async move {
                    while let Some(ask) = request_rx.next().await {
                        let reply = Arc::new(reply(&ask, name));
                        reply_tx.send(reply).await.unwrap();
                    }
                })
                .unwrap();
        }
        let mut n = 0u64;
        group.bench_function("futures_request_reply", |b| {
            b.iter(|| {
                n += 1;
                let ask = Arc::new(ask(n.to_string()));
                let replies = pool.run_until(async {
                    for request_tx in &mut request_txs {
                        request_tx.send(Arc::clone(&ask)).await.unwrap();
                    }
                    let mut replies = Vec::with_capacity(RESPONDERS.len());
                    while replies.len() < RESPONDERS.len() {
                        let reply = reply_rx.next().await.unwrap();
                        if reply.id == ask.id {
                            replies.push(reply);
                        }
                    }
                    replies
                });
                black_box(replies)
            })
        });
    }

    group.finish();
}

fn round_trip_on_tokio(c: &mut Criterion) {
    let mut group = c.benchmark_group("request_round_trip_3_responder_tasks_tokio");
    let options = RequestOptions::new(RESPONDERS).timeout(Duration::from_secs(10));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();

    {
        let bus = EventBus::new();
        for name in RESPONDERS {
            let mut requests = bus.subscribe_to::<Ask>(name, 64).unwrap();
            let bus = bus.clone();
            runtime.spawn(async move {
                while let Some(ask) = requests.next().await {
                    bus.publish(reply(&ask, name));
                }
            });
        }
        bus.start();
        let mut n = 0u64;
        group.bench_function("switchboard_request_async", |b| {
            b.iter_custom(|iters| {
                let bus = bus.clone();
                let options = options.clone();
                let first = n;
                n += iters;
                let requester = runtime.spawn(async move {
                    let start = Instant::now();
                    for n in first..first + iters {
                        let request =
                            bus.request_async::<Reply, _>(ask(n.to_string()), options.clone());
                        let result = request.await.unwrap();
                        assert_eq!(result.responses.len(), 3);
                        black_box(result);
                    }
                    start.elapsed()
                });
                runtime.block_on(requester).unwrap()
            })
        });
        assert_eq!(bus.stats().dropped(), 0);
    }

    {
        let (reply_tx, reply_rx) = tokio::sync::mpsc::channel::<Arc<Reply>>(RESPONDERS.len());
        let mut request_txs = Vec::new();
        for name in RESPONDERS {
            let (request_tx, mut request_rx) = tokio::sync::mpsc::channel::<Arc<Ask>>(64);
            request_txs.push(request_tx);
            let reply_tx = reply_tx.clone();
            runtime.spawn(async move {
                while let Some(ask) = request_rx.recv().await {
                    let reply = Arc::new(reply(&ask, name));
                    reply_tx.send(reply).await.unwrap();
                }
            });
        }
        let request_txs = Arc::new(request_txs);
        let reply_rx = Arc::new(tokio::sync::Mutex::new(reply_rx));
        let mut n = 0u64;
        group.bench_function("tokio_request_reply", |b| {
            b.iter_custom(|iters| {
                let request_txs = Arc::clone(&request_txs);
                let reply_rx = Arc::clone(&reply_rx);
                let first = n;
                n += iters;
                let requester = runtime.spawn(async move {
                    let mut reply_rx = reply_rx.lock().await;
                    let start = Instant::now();
                    for n in first..first + iters {
                        let ask = Arc::new(ask(n.to_string()));
                        for request_tx in request_txs.iter() {
                            request_tx.send(Arc::clone(&ask)).await.unwrap();
                        }
                        let mut replies = Vec::with_capacity(RESPONDERS.len());
                        while replies.len() < RESPONDERS.len() {
                            let reply = reply_rx.recv().await.unwrap();
                            if reply.id == ask.id {
                                replies.push(reply);
                            }
                        }
                        black_box(replies);
                    }
                    start.elapsed()
                });
                runtime.block_on(requester).unwrap()
            })
        });
    }

    group.finish();
}

criterion_group!(
    benches,
    round_trip,
    round_trip_on_one_thread,
    round_trip_on_tokio
);
criterion_main!(benches);
