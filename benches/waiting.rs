//! The waiting publish (`EventBus::publish_waiting`) against the bounded
//! channels whose send waits for room: what backpressure costs through the
//! bus next to what it costs through a channel.
//!
//! Every group moves events from one publisher to its consumers through
//! buffers of [`BUFFER`] (64) events, small enough that the publisher keeps
//! meeting a full buffer and has to wait: each implementation's wait
//! registration, wake-up and re-try are in the measurement, not only its
//! send. One criterion iteration is one published event, timed from the
//! first send of a sample until every consumer has received its last event
//! (`Throughput::Elements(1)`: criterion also prints events per second).
//! Each implementation is handed an `Arc::clone` of one pre-made event per
//! publish, as in `benches/fanout.rs`.
//!
//! Groups:
//!
//! - `w_waiting_1x1_async`: one publisher task, one consumer task.
//!   `switchboard`: `publish_waiting_arc(..).await`, the consumer polling its
//!   `Subscription` as a `Stream`; `tokio_mpsc`: `tokio::sync::mpsc::channel`,
//!   `send().await` / `recv().await`; `async_channel`:
//!   `async_channel::bounded`, `send().await` / `recv().await`; `flume`:
//!   `flume::bounded`, `send_async().await` / `recv_async().await`.
//! - `w_waiting_1x4_async`: one publisher task, four consumer tasks, each
//!   receiving every event. The bus delivers one publish to its four
//!   subscribers; mpsc, async-channel and flume are not broadcast channels,
//!   so their fair shape is what a user without a bus writes: four channels,
//!   and the publisher sends the event to each in turn, awaiting each send
//!   (each send waits for room in its own channel, as the bus waits for
//!   room at each subscriber).
//! - `w_blocking_1x1`: one publisher thread (the benchmark's), one consumer
//!   thread blocked in `recv`. `switchboard`: `publish_waiting_arc(..)
//!   .blocking()`; `crossbeam`: `crossbeam_channel::bounded`, blocking
//!   `send` (the bar's peer: the bus's queues are crossbeam's); `flume`:
//!   `flume::bounded`, blocking `send`, for reference.
//!
//! Why the async groups run on a current-thread tokio runtime (publisher and
//! consumers are tasks of one thread) rather than on a 2-worker one: there,
//! every implementation does exactly the same sequence of work — fill the
//! buffer, park the publisher in its wait for room, run the consumers, which
//! drain and wake it — so the difference between the lines is the cost of
//! each one's send, wait registration, wake-up and receive, which is what the
//! bar compares. On a 2-worker runtime on this 2-core, shared machine the
//! result would mostly measure where tokio's scheduler puts the tasks (a
//! woken task goes to the waker's own worker first, so publisher and consumer
//! drift together and apart) and how the OS schedules the threads, and would
//! differ between runs by more than between implementations. Waiting across
//! threads is what `w_blocking_1x1` measures.
//!
//! Run: `cargo bench --bench waiting -- --warm-up-time 1 --measurement-time 3`
//! (also the defaults here). `cargo run --release --example bench_report`
//! runs it with the other benches and prints the ratios against the bars.

#[path = "support/events.rs"]
mod events;
#[path = "support/harness.rs"]
mod harness;

use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use futures::StreamExt;
use switchboard::{Event, EventBus, Subscription};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use events::tick;
use harness::{timed_end_to_end, Consumers};

type Ev = Arc<dyn Event>;
type Group<'a> = BenchmarkGroup<'a, WallTime>;

/// Events each buffer holds, in every group and for every implementation.
const BUFFER: usize = 64;

/// A started bus with `k` universal critical subscribers of [`BUFFER`].
fn switchboard_bus(k: usize) -> (EventBus, Vec<Subscription>) {
    let bus = EventBus::new();
    let subscriptions = (0..k)
        .map(|i| bus.subscribe(&format!("subscriber-{i}"), BUFFER).unwrap())
        .collect();
    bus.start();
    (bus, subscriptions)
}

// ---------------------------------------------------------------------------
// The async groups: one publisher task, k consumer tasks, one thread

/// The publisher's side of one implementation: hands `event` to every
/// consumer, waiting for room.
trait Publisher {
    async fn send(&self, event: &Ev);
}

/// `publish_waiting`: one publish reaches every subscriber.
struct Switchboard(EventBus);

impl Publisher for Switchboard {
    async fn send(&self, event: &Ev) {
        let delivered = self.0.publish_waiting_arc(Arc::clone(event)).await;
        black_box(delivered.expect("no deadline, so no timeout"));
    }
}

/// One channel per consumer, sent to in turn.
struct TokioMpsc(Vec<tokio::sync::mpsc::Sender<Ev>>);

impl Publisher for TokioMpsc {
    async fn send(&self, event: &Ev) {
        for sender in &self.0 {
            sender
                .send(Arc::clone(event))
                .await
                .expect("consumer alive");
        }
    }
}

struct AsyncChannel(Vec<async_channel::Sender<Ev>>);

impl Publisher for AsyncChannel {
    async fn send(&self, event: &Ev) {
        for sender in &self.0 {
            sender
                .send(Arc::clone(event))
                .await
                .expect("consumer alive");
        }
    }
}

struct Flume(Vec<flume::Sender<Ev>>);

impl Publisher for Flume {
    async fn send(&self, event: &Ev) {
        for sender in &self.0 {
            sender
                .send_async(Arc::clone(event))
                .await
                .expect("consumer alive");
        }
    }
}

/// Consumer tasks on the runtime, each storing its running count of
/// received events (the same loop for every implementation).
struct Tasks {
    counts: Vec<Arc<AtomicU64>>,
    handles: Vec<JoinHandle<()>>,
}

impl Tasks {
    fn new() -> Self {
        Self {
            counts: Vec::new(),
            handles: Vec::new(),
        }
    }

    /// Spawns the consumer `receive(count)`, which must store its running
    /// count into `count` and end once its channel is closed.
    fn spawn<F>(&mut self, runtime: &Runtime, receive: impl FnOnce(Arc<AtomicU64>) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let count = Arc::new(AtomicU64::new(0));
        self.counts.push(Arc::clone(&count));
        self.handles.push(runtime.spawn(receive(count)));
    }

    /// Waits for the consumers to end; call after closing their channels.
    fn join(self, runtime: &Runtime) {
        runtime.block_on(async {
            for handle in self.handles {
                handle.await.expect("consumer task panicked");
            }
        });
    }
}

/// The consumer loop: `recv` until it reports the channel closed.
macro_rules! consume {
    ($count:ident, $received:expr) => {
        async move {
            let mut n = 0;
            while $received {
                n += 1;
                $count.store(n, Ordering::Relaxed);
            }
        }
    };
}

/// Benchmarks `publisher` on the current-thread `runtime`, against the
/// consumer tasks already spawned there.
fn run_async(
    group: &mut Group<'_>,
    id: &str,
    runtime: &Runtime,
    publisher: &impl Publisher,
    tasks: &Tasks,
) {
    let event = tick();
    let mut published = 0u64;
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let sample = async {
                let start = Instant::now();
                for _ in 0..iters {
                    publisher.send(&event).await;
                }
                published += iters;
                // The consumers run whenever the publisher waits; the last
                // events of the sample are drained here, inside the timing.
                for count in &tasks.counts {
                    while count.load(Ordering::Relaxed) < published {
                        tokio::task::yield_now().await;
                    }
                }
                start.elapsed()
            };
            // A lost wake-up would park the thread for good: fail instead.
            runtime
                .block_on(async { tokio::time::timeout(STALLED, sample).await })
                .unwrap_or_else(|_| panic!("benchmark stalled: {id} made no progress"))
        })
    });
}

/// Longer than any sample: a sample that takes this long has lost a wake-up.
const STALLED: Duration = Duration::from_secs(60);

/// The runtime of the async groups; its timer only serves [`STALLED`].
fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime")
}

/// One publisher task and `k` consumer tasks per implementation.
fn waiting_async(group: &mut Group<'_>, k: usize) {
    let runtime = current_thread();
    {
        let (bus, subscriptions) = switchboard_bus(k);
        let mut tasks = Tasks::new();
        for mut subscription in subscriptions {
            tasks.spawn(&runtime, |count| {
                consume!(count, subscription.next().await.is_some())
            });
        }
        let publisher = Switchboard(bus);
        run_async(group, "switchboard", &runtime, &publisher, &tasks);
        assert_eq!(publisher.0.stats().dropped(), 0);
        drop(publisher);
        tasks.join(&runtime);
    }
    {
        let mut tasks = Tasks::new();
        let mut senders = Vec::new();
        for _ in 0..k {
            let (sender, mut receiver) = tokio::sync::mpsc::channel::<Ev>(BUFFER);
            senders.push(sender);
            tasks.spawn(&runtime, |count| {
                consume!(count, receiver.recv().await.is_some())
            });
        }
        run_async(group, "tokio_mpsc", &runtime, &TokioMpsc(senders), &tasks);
        tasks.join(&runtime);
    }
    {
        let mut tasks = Tasks::new();
        let mut senders = Vec::new();
        for _ in 0..k {
            let (sender, receiver) = async_channel::bounded::<Ev>(BUFFER);
            senders.push(sender);
            tasks.spawn(&runtime, |count| {
                consume!(count, receiver.recv().await.is_ok())
            });
        }
        run_async(
            group,
            "async_channel",
            &runtime,
            &AsyncChannel(senders),
            &tasks,
        );
        tasks.join(&runtime);
    }
    {
        let mut tasks = Tasks::new();
        let mut senders = Vec::new();
        for _ in 0..k {
            let (sender, receiver) = flume::bounded::<Ev>(BUFFER);
            senders.push(sender);
            tasks.spawn(&runtime, |count| {
                consume!(count, receiver.recv_async().await.is_ok())
            });
        }
        run_async(group, "flume", &runtime, &Flume(senders), &tasks);
        tasks.join(&runtime);
    }
}

fn w_waiting_1x1_async(c: &mut Criterion) {
    let mut group = c.benchmark_group("w_waiting_1x1_async");
    group.throughput(Throughput::Elements(1));
    waiting_async(&mut group, 1);
    group.finish();
}

fn w_waiting_1x4_async(c: &mut Criterion) {
    let mut group = c.benchmark_group("w_waiting_1x4_async");
    group.throughput(Throughput::Elements(1));
    waiting_async(&mut group, 4);
    group.finish();
}

// ---------------------------------------------------------------------------
// The blocking group: one publisher thread, one consumer thread

/// Benchmarks the blocking `send` of one event at a time, timed until the
/// consumer thread has received every event of the sample; afterwards drops
/// `send`, runs `finish` (which must let go of whatever keeps the channel
/// open) and joins the consumer.
fn run_blocking(
    group: &mut Group<'_>,
    id: &str,
    consumers: Consumers,
    mut send: impl FnMut(),
    finish: impl FnOnce(),
) {
    let mut published = 0u64;
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            // One round per sample: the publisher never stops to let the
            // consumer catch up, the buffer does that.
            timed_end_to_end(iters, iters, &mut published, &consumers, &mut send)
        })
    });
    drop(send);
    finish();
    consumers.join();
}

fn w_blocking_1x1(c: &mut Criterion) {
    let mut group = c.benchmark_group("w_blocking_1x1");
    group.throughput(Throughput::Elements(1));
    let event = tick();
    {
        let (bus, subscriptions) = switchboard_bus(1);
        let mut consumers = Consumers::new();
        for subscription in subscriptions {
            consumers.spawn(move || subscription.recv().is_ok());
        }
        let check = bus.clone();
        let event = Arc::clone(&event);
        run_blocking(
            &mut group,
            "switchboard",
            consumers,
            move || {
                let delivered = bus.publish_waiting_arc(Arc::clone(&event)).blocking();
                black_box(delivered.expect("no deadline, so no timeout"));
            },
            move || assert_eq!(check.stats().dropped(), 0),
        );
    }
    {
        let (sender, receiver) = crossbeam_channel::bounded::<Ev>(BUFFER);
        let mut consumers = Consumers::new();
        consumers.spawn(move || receiver.recv().is_ok());
        let event = Arc::clone(&event);
        run_blocking(
            &mut group,
            "crossbeam",
            consumers,
            move || sender.send(Arc::clone(&event)).expect("consumer alive"),
            || {},
        );
    }
    {
        let (sender, receiver) = flume::bounded::<Ev>(BUFFER);
        let mut consumers = Consumers::new();
        consumers.spawn(move || receiver.recv().is_ok());
        let event = Arc::clone(&event);
        run_blocking(
            &mut group,
            "flume",
            consumers,
            move || sender.send(Arc::clone(&event)).expect("consumer alive"),
            || {},
        );
    }
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
    targets = w_waiting_1x1_async, w_waiting_1x4_async, w_blocking_1x1
}
criterion_main!(benches);
