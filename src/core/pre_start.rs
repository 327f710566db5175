//! The start/pause state machine: buffering before `start` and after
//! `pause`, and the ordered replay (design invariants 2 to 4).

use std::mem;
use std::sync::Arc;

use crate::drops::{DropInfo, DropReason};
use crate::event::Event;
use crate::log;
use crate::sync::{lock, Ordering};

use super::subscriber::Subscriber;
use super::{BusCore, Published, RUNNING};

/// The events kept while the bus is buffering, in publish order. Guarded by
/// the mode lock (`BusCore::pre_start`).
pub(super) struct PreStartBuffer {
    events: Vec<Buffered>,
    /// The most events kept; past it, they are dropped and counted.
    limit: usize,
}

impl PreStartBuffer {
    /// An empty buffer keeping at most `limit` events, with room for
    /// `reserve` of them (at most `limit`) allocated now.
    pub(super) fn new(reserve: usize, limit: usize) -> Self {
        Self {
            events: Vec::with_capacity(reserve.min(limit)),
            limit,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.events.len()
    }
}

/// A buffered event, and whether it is to be retained when it is delivered
/// (the retained value follows delivery order, not publish order).
struct Buffered {
    event: Arc<dyn Event>,
    retain: bool,
}

impl BusCore {
    /// The publish path when the state said `BUFFERING`: re-check under the
    /// mode lock, then buffer, overflow, or deliver if `start` won the race.
    /// `retain`: the event is to be retained once delivered.
    #[cold]
    pub(super) fn publish_while_buffering(&self, event: Arc<dyn Event>, retain: bool) -> Published {
        let mut buffer = lock(&self.pre_start);
        // The mutant (a loom-tests self-check) skips this re-check.
        if !cfg!(switchboard_mutant_skip_recheck) && self.state.load(Ordering::Relaxed) == RUNNING {
            drop(buffer);
            let delivered = if retain {
                self.deliver_retained_now(event)
            } else {
                self.deliver_now(event)
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
        self.count_pre_start_drop(&*event, DropReason::PreStartOverflow, limit);
        Published::Buffered
    }

    /// Counts an event that never reached the bus's subscribers while it was
    /// buffering, and tells the drop callback (`capacity`: the pre-start
    /// limit for an overflow, 0 for a waiting publish that gave up).
    pub(super) fn count_pre_start_drop(
        &self,
        event: &dyn Event,
        reason: DropReason,
        capacity: usize,
    ) {
        self.counters
            .dropped_pre_start
            .fetch_add(1, Ordering::Relaxed);
        self.drops.session().report(&DropInfo {
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
    pub(crate) fn start(&self) {
        let mut missed: Vec<(Arc<Subscriber>, Arc<dyn Event>)> = Vec::new();
        let mut replaced: Vec<Arc<dyn Event>> = Vec::new();
        let replayed = {
            let mut buffer = lock(&self.pre_start);
            if self.state.load(Ordering::Relaxed) == RUNNING {
                return;
            }
            // Replay under the mode lock: publishers that see BUFFERING queue
            // up behind it, and RUNNING is published only once the replay is
            // done, so nothing overtakes a replayed event (invariant 2).
            let replayed = mem::take(&mut buffer.events);
            // The mutant (a loom-tests self-check) switches to direct delivery too early.
            if cfg!(switchboard_mutant_early_running) {
                self.state.store(RUNNING, Ordering::Release);
            }
            // Retained events are retained as they are delivered, under the
            // retained lock (taken after the mode lock, never before it).
            let mut retained = replayed
                .iter()
                .any(|buffered| buffered.retain)
                .then(|| lock(&self.retained));
            // Each subscriber gets a clone: the last reference must not go
            // (and run an event's `Drop`) under the mode lock.
            for Buffered { event, retain } in &replayed {
                if let (true, Some(store)) = (*retain, retained.as_mut()) {
                    replaced.extend(store.retain(event));
                }
                self.deliver(Arc::clone(event), |subscriber, event| {
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
        self.report_missed(&missed);
        // After the replay: waiting publishes come after every buffered event.
        self.started.notify();
    }
}
