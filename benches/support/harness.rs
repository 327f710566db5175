//! Timing and threading helpers shared by the fan-out benchmarks.
//!
//! Every benchmark here is written with `iter_custom`, one criterion
//! iteration being one published event, so that what the timer sees is
//! exactly the publishing (and, for the end-to-end workloads, the delivery)
//! and never the setup, the draining between batches or thread start-up.

#![allow(dead_code)] // each benchmark uses a different part of the harness

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;

/// Events published between two drains in the single-threaded workloads.
pub const BATCH: u64 = 64;

/// Buffer size of every queue in the single-threaded workloads: room for a
/// whole batch, so no publish there ever meets a full buffer.
pub const ROOM: usize = 128;

/// Times `iters` calls of `publish`, in batches of [`BATCH`], calling `drain`
/// after each batch outside the timed part.
///
/// The timer is read twice per batch (about 40 ns, under 1 ns per publish).
pub fn timed_batches(iters: u64, mut publish: impl FnMut(), mut drain: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(BATCH);
        let start = Instant::now();
        for _ in 0..n {
            publish();
        }
        total += start.elapsed();
        drain();
        left -= n;
    }
    total
}

/// Waits with a spin-then-yield backoff until `done()` holds; panics after
/// 30 s, so a broken benchmark fails instead of hanging.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let backoff = Backoff::new();
    while !done() {
        backoff.snooze();
        assert!(Instant::now() < deadline, "benchmark stalled: {what}");
    }
}

/// Consumer threads, each draining one subscription and publishing its
/// running count of received events.
#[derive(Default)]
pub struct Consumers {
    counts: Vec<Arc<AtomicU64>>,
    threads: Vec<JoinHandle<()>>,
}

impl Consumers {
    pub fn new() -> Self {
        Self::default()
    }

    /// A consumer that calls `recv_one` until it returns `false` (closed).
    pub fn spawn(&mut self, mut recv_one: impl FnMut() -> bool + Send + 'static) {
        self.spawn_loop(move |count| {
            let mut n = 0;
            while recv_one() {
                n += 1;
                count.store(n, Ordering::Release);
            }
        });
    }

    /// A consumer running `body`, which must store its running count of
    /// received events into the counter it is given, and return once its
    /// subscription is closed.
    pub fn spawn_loop(&mut self, body: impl FnOnce(Arc<AtomicU64>) + Send + 'static) {
        let count = Arc::new(AtomicU64::new(0));
        self.counts.push(Arc::clone(&count));
        self.threads.push(thread::spawn(move || body(count)));
    }

    /// Waits until every consumer has received `total` events in all.
    pub fn wait_for(&self, total: u64) {
        for count in &self.counts {
            wait_until("a consumer fell behind for 30 s", || {
                count.load(Ordering::Acquire) >= total
            });
        }
    }

    /// Joins the consumers; call after closing their subscriptions.
    pub fn join(self) {
        for thread in self.threads {
            thread.join().expect("consumer thread panicked");
        }
    }
}

/// Times `iters` events published by one publisher (the caller) in rounds of
/// at most `round` events, each round timed until every consumer has
/// received it: the end-to-end cost of one delivered event batch.
pub fn timed_end_to_end(
    iters: u64,
    round: u64,
    published: &mut u64,
    consumers: &Consumers,
    mut publish: impl FnMut(),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(round);
        let start = Instant::now();
        for _ in 0..n {
            publish();
        }
        *published += n;
        consumers.wait_for(*published);
        total += start.elapsed();
        left -= n;
    }
    total
}

/// A second publisher thread that publishes on command, started in lockstep
/// with the caller so that both publish at the same time.
pub struct Helper {
    commands: Option<crossbeam_channel::Sender<u64>>,
    ready: Arc<AtomicBool>,
    go: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Helper {
    pub fn spawn<F: Fn() + Send + Sync + 'static>(publish: Arc<F>) -> Self {
        let (commands, orders) = crossbeam_channel::unbounded::<u64>();
        let ready = Arc::new(AtomicBool::new(false));
        let go = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let thread = {
            let (ready, go, done) = (Arc::clone(&ready), Arc::clone(&go), Arc::clone(&done));
            thread::spawn(move || {
                for n in orders {
                    ready.store(true, Ordering::Release);
                    let backoff = Backoff::new();
                    while !go.swap(false, Ordering::Acquire) {
                        backoff.snooze();
                    }
                    for _ in 0..n {
                        publish();
                    }
                    done.store(true, Ordering::Release);
                }
            })
        };
        Self {
            commands: Some(commands),
            ready,
            go,
            done,
            thread: Some(thread),
        }
    }

    /// Publishes `mine` events here while the helper publishes `theirs`, and
    /// returns the wall time from the common start until both are done. The
    /// helper's wake-up happens before the timer starts.
    pub fn publish_together(&self, mine: u64, theirs: u64, publish: &impl Fn()) -> Duration {
        self.commands
            .as_ref()
            .expect("helper running")
            .send(theirs)
            .expect("helper alive");
        wait_until("the helper publisher did not start", || {
            self.ready.swap(false, Ordering::Acquire)
        });
        let start = Instant::now();
        self.go.store(true, Ordering::Release);
        for _ in 0..mine {
            publish();
        }
        let backoff = Backoff::new();
        while !self.done.swap(false, Ordering::Acquire) {
            backoff.snooze();
        }
        start.elapsed()
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        drop(self.commands.take());
        if let Some(thread) = self.thread.take() {
            thread.join().expect("helper thread panicked");
        }
    }
}

/// A background thread running `step` in a loop until stopped, counting the
/// steps: the churn thread of workload (e), or its background publisher.
pub struct Background {
    stop: Arc<AtomicBool>,
    steps: Arc<AtomicU64>,
    started: Instant,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    pub fn spawn(mut step: impl FnMut() + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let steps = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, steps) = (Arc::clone(&stop), Arc::clone(&steps));
            thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    step();
                    n += 1;
                    steps.store(n, Ordering::Relaxed);
                }
            })
        };
        Self {
            stop,
            steps,
            started: Instant::now(),
            thread: Some(thread),
        }
    }

    /// Stops the thread; returns its steps and steps per second.
    pub fn stop(mut self) -> (u64, f64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("background thread panicked");
        }
        let steps = self.steps.load(Ordering::Relaxed);
        (steps, steps as f64 / self.started.elapsed().as_secs_f64())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
