//! The start/pause state machine: buffering before `start` and after
//! `pause`, and the ordered replay (design invariants 2 to 4).

use std::mem;
use std::sync::Arc;
use std::task::Waker;

use crossbeam_utils::CachePadded;

use crate::drops::{DropInfo, DropReason};
use crate::event::Event;
use crate::log;
use crate::mutants::mutant;
use crate::sync::wait_list::WaitList;
use crate::sync::{lock, AtomicU64, AtomicU8, Mutex, Ordering};

use super::delivery::Delivery;
use super::retained::{key_of, Clear, RetainedStore};
use super::subscriber::Subscriber;

/// `PreStart::state` while events go to the pre-start buffer.
const BUFFERING: u8 = 0;
/// `PreStart::state` while events go directly to subscribers.
const RUNNING: u8 = 1;

/// What a publish did with the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Published {
    /// The bus was running: offered to the matching subscribers, this many
    /// of which received it.
    Delivered(usize),
    /// The bus was buffering: kept for the replay, or dropped and counted
    /// because the pre-start buffer was full.
    Buffered,
}

/// Whether the bus buffers or delivers, the buffer, and who waits for
/// `start`.
pub(super) struct PreStart {
    /// `BUFFERING` or `RUNNING`. Only changed under the mode lock; read
    /// lock-free by publishers, which take the lock and re-check only when
    /// they see `BUFFERING` (design invariant 4).
    state: AtomicU8,
    /// The mode lock, guarding the pre-start buffer.
    buffer: Mutex<PreStartBuffer>,
    /// Waiting publishes made while the bus was buffering: they wait for
    /// `start` rather than take a place in the pre-start buffer.
    started: WaitList,
    /// Events that never reached the subscribers (overflow, or a waiting
    /// publish that gave up before `start`); publishers write it.
    dropped: CachePadded<AtomicU64>,
}

/// The events kept while the bus is buffering, in publish order. Guarded by
/// the mode lock.
struct PreStartBuffer {
    events: Vec<Buffered>,
    /// The most events kept; past it, they are dropped and counted.
    limit: usize,
}

/// A buffered event, and whether it is to be retained when it is delivered
/// (the retained value follows delivery order, not publish order).
struct Buffered {
    event: Arc<dyn Event>,
    retain: bool,
}

impl PreStart {
    /// A buffering bus's state, whose buffer keeps at most `limit` events,
    /// with room for `reserve` of them (at most `limit`) allocated now.
    pub(super) fn new(reserve: usize, limit: usize) -> Self {
        Self {
            state: AtomicU8::new(BUFFERING),
            buffer: Mutex::new(PreStartBuffer {
                events: Vec::with_capacity(reserve.min(limit)),
                limit,
            }),
            started: WaitList::new(),
            dropped: CachePadded::new(AtomicU64::new(0)),
        }
    }

    /// Whether the bus delivers directly (started and not paused).
    #[inline]
    pub(super) fn is_running(&self) -> bool {
        // Acquire: a publisher that sees RUNNING also sees everything the
        // replay did before `start` stored it (design, "Memory orders").
        self.state.load(Ordering::Acquire) == RUNNING
    }

    /// How many events wait in the buffer now.
    pub(super) fn len(&self) -> usize {
        lock(&self.buffer).events.len()
    }

    /// Events that never reached the subscribers while the bus buffered.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Goes back to buffering. Under the mode lock, so that a replay in
    /// progress finishes first and a buffering publisher's re-check is exact.
    pub(super) fn pause(&self) {
        let _mode = lock(&self.buffer);
        self.state.store(BUFFERING, Ordering::Release);
    }

    /// The publish path when the state said `BUFFERING`: re-check under the
    /// mode lock, then buffer, overflow, or deliver if `start` won the race.
    /// `retain`: the event is to be retained once delivered.
    #[cold]
    pub(super) fn publish(
        &self,
        event: Arc<dyn Event>,
        retain: bool,
        delivery: &Delivery,
        retained: &RetainedStore,
    ) -> Published {
        let mut buffer = lock(&self.buffer);
        if mutant!(self.state.load(Ordering::Relaxed) == RUNNING; skip_recheck => false) {
            drop(buffer);
            let delivered = if retain {
                retained.deliver_now(delivery, event)
            } else {
                delivery.deliver_now(event)
            };
            return Published::Delivered(delivered);
        }
        if buffer.events.len() < buffer.limit {
            buffer.events.push(Buffered { event, retain });
            return Published::Buffered;
        }
        let limit = buffer.limit;
        drop(buffer);
        log::warning!(
            event_type = event.event_type(),
            limit,
            "switchboard: pre-start buffer is full; event dropped"
        );
        self.count_drop(delivery, &*event, DropReason::PreStartOverflow, limit);
        Published::Buffered
    }

    /// Forgets the retained events `clear` says: those in the store, and
    /// those the buffer holds to be retained at the replay (they are still
    /// delivered, no longer retained). Returns how many types lost their
    /// retained event. Under the mode lock, so a `start` racing it replays
    /// either before (and the store forgets what the replay retained) or
    /// after (and retains nothing this clear forgot).
    pub(super) fn clear_retained(&self, clear: Clear<'_>, retained: &RetainedStore) -> usize {
        let mut buffer = lock(&self.buffer);
        let mut forgotten = Vec::new();
        for buffered in &mut buffer.events {
            if buffered.retain && clear.matches(&*buffered.event) {
                mutant!(buffered.retain = false; clear_skips_buffer => ());
                forgotten.push(key_of(&buffered.event));
            }
        }
        let cleared = retained.clear(clear);
        drop(buffer);
        forgotten.extend(cleared.iter().map(key_of));
        // Outside the locks: dropping the last reference may run user code.
        drop(cleared);
        forgotten.sort_unstable();
        forgotten.dedup();
        forgotten.len()
    }

    /// Counts an event that never reached the bus's subscribers while it was
    /// buffering, and tells the drop callback (`capacity`: the pre-start
    /// limit for an overflow, 0 for a waiting publish that gave up).
    fn count_drop(
        &self,
        delivery: &Delivery,
        event: &dyn Event,
        reason: DropReason,
        capacity: usize,
    ) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        delivery.report(&DropInfo {
            reason,
            event,
            event_type: event.event_type(),
            subscriber_name: "",
            capacity,
            event_types: "",
        });
    }

    /// Replays the pre-start buffer in order, then switches to direct
    /// delivery; drops during the replay are reported afterwards.
    pub(super) fn start(&self, delivery: &Delivery, retained: &RetainedStore) {
        let mut missed: Vec<(Arc<Subscriber>, Arc<dyn Event>)> = Vec::new();
        let mut replaced: Vec<Arc<dyn Event>> = Vec::new();
        let replayed = {
            let mut buffer = lock(&self.buffer);
            if self.state.load(Ordering::Relaxed) == RUNNING {
                return;
            }
            // Replay under the mode lock: publishers that see BUFFERING queue
            // up behind it, and RUNNING is published only once the replay is
            // done, so nothing overtakes a replayed event (invariant 2).
            let replayed = mem::take(&mut buffer.events);
            mutant!((); early_running => self.state.store(RUNNING, Ordering::Release));
            // Retained events are retained as they are delivered, under the
            // retained lock (taken after the mode lock, never before it).
            let mut retained = replayed
                .iter()
                .any(|buffered| buffered.retain)
                .then(|| retained.lock());
            // Each subscriber gets a clone: the last reference must not go
            // (and run an event's `Drop`) under the mode lock.
            for Buffered { event, retain } in &replayed {
                if let (true, Some(store)) = (*retain, retained.as_mut()) {
                    replaced.extend(store.retain(event));
                }
                delivery.deliver(Arc::clone(event), |subscriber, event| {
                    missed.push((Arc::clone(subscriber), Arc::clone(event)));
                });
            }
            drop(retained);
            self.state.store(RUNNING, Ordering::Release);
            replayed
        };
        // Outside the locks: callbacks may use the bus, and dropping the last
        // reference to an event may run user code.
        drop(replayed);
        drop(replaced);
        delivery.report_missed(&missed);
        // After the replay: waiting publishes come after every buffered event.
        self.started.notify();
    }

    /// Waits (as `key`, woken through `waker`) for the bus to run; returns
    /// whether it runs now.
    pub(super) fn wait_for_start(&self, key: u64, waker: &Waker) -> bool {
        if self.is_running() {
            return true;
        }
        self.started.register(key, waker);
        // Re-check after registering: a start made before the registration
        // woke nobody, but is visible now.
        let running = self.is_running();
        if running {
            self.started.deregister(key);
        }
        running
    }

    /// A waiting publish ends before the bus started: counted and reported
    /// as a pre-start drop for `reason`.
    pub(super) fn give_up_waiting(
        &self,
        delivery: &Delivery,
        key: u64,
        event: &dyn Event,
        reason: DropReason,
    ) {
        self.started.deregister(key);
        log::warning!(
            event_type = event.event_type(),
            ?reason,
            "switchboard: waiting publish ended before the bus started; event dropped"
        );
        self.count_drop(delivery, event, reason, 0);
    }
}
