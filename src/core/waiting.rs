//! The waiting publish: delivery that waits for room at critical subscribers
//! instead of dropping, and gives up (counting what it gives up) only at its
//! deadline or when cancelled. Lossy subscribers and request routes are
//! offered the event as by `publish`.
//!
//! The future that drives these steps is the face's (`publish.rs`); the
//! steps and their counting live here, beside plain delivery.

use std::sync::Arc;
use std::task::Waker;

use crate::completion::{Envelope, Tracking};
use crate::drops::DropReason;
use crate::event::Event;
use crate::log;
use crate::sync::Ordering;

use super::subscriber::{HeldQueue, Offer, Placed, Subscriber, SubscriberState};
use super::BusCore;

/// A critical subscriber whose queue was full, and the copy waiting for it
/// (taken out only while it is offered again).
pub(crate) struct Blocked {
    queue: HeldQueue,
    envelope: Option<Envelope>,
}

impl Blocked {
    /// The event it waits to deliver.
    pub(crate) fn event(&self) -> &Arc<dyn Event> {
        self.envelope
            .as_ref()
            .expect("a blocked subscriber has its copy")
            .event()
    }
}

/// What offering a blocked subscriber its copy again did.
enum Retried {
    Delivered,
    StillFull,
    /// It left the bus: the copy is withdrawn.
    Gone,
}

impl BusCore {
    /// Offers `event` to every matching subscriber: critical queues get a
    /// copy (with a token if `tracking`) or, if full, are added to `blocked`;
    /// the others are offered it as by `publish`. Returns how many received
    /// it now. The last subscriber gets the caller's `Arc`, as in `publish`;
    /// the event stays reachable through the blocked copies.
    pub(crate) fn deliver_waiting(
        &self,
        event: Arc<dyn Event>,
        tracking: Option<&Tracking>,
        blocked: &mut Vec<Blocked>,
    ) -> usize {
        let registry = self.registry.load();
        let Some((last, others)) = registry.matching(&*event).split_last() else {
            return 0;
        };
        let mut delivered = 0;
        let mut dropped = Vec::new();
        for part in others.parts() {
            for subscriber in part {
                delivered += self.offer_waiting(
                    subscriber,
                    Arc::clone(&event),
                    tracking,
                    blocked,
                    &mut dropped,
                );
            }
        }
        delivered += self.offer_waiting(last, event, tracking, blocked, &mut dropped);
        drop(registry);
        // Lossy subscribers, and zero-capacity ones, drop as with `publish`.
        if !dropped.is_empty() {
            self.count_missed(&dropped);
            self.report_missed(&dropped);
        }
        delivered
    }

    /// Offers `event` to one subscriber for a waiting publish; returns 1 if
    /// it received it now.
    #[inline(always)]
    fn offer_waiting(
        &self,
        subscriber: &Arc<Subscriber>,
        event: Arc<dyn Event>,
        tracking: Option<&Tracking>,
        blocked: &mut Vec<Blocked>,
        dropped: &mut Vec<(Arc<Subscriber>, Arc<dyn Event>)>,
    ) -> usize {
        if !subscriber.waits_for_room() {
            return match subscriber.offer(&event) {
                Offer::Delivered => 1,
                Offer::Full => {
                    dropped.push((Arc::clone(subscriber), event));
                    0
                }
                Offer::Closed => 0,
            };
        }
        let envelope = Envelope::new(event, tracking.map(Tracking::token));
        match self.place(subscriber.state(), envelope, |e| subscriber.place(e)) {
            Placed::Delivered => 1,
            Placed::Full(envelope) => {
                blocked.push(Blocked {
                    queue: subscriber.hold(),
                    envelope: Some(envelope),
                });
                0
            }
            Placed::Closed(envelope) => {
                withdraw(envelope);
                0
            }
        }
    }

    /// Queues `envelope` with `place` if there is room. A tracked one
    /// marks the subscriber first, and if the subscription turns out to have
    /// been dropped, compacts it away so the token is freed (the handshake
    /// is on `BusCore::abandon`).
    fn place(
        &self,
        state: &SubscriberState,
        envelope: Envelope,
        place: impl FnOnce(Envelope) -> Placed,
    ) -> Placed {
        if !envelope.is_tracked() {
            return place(envelope);
        }
        state.tracked.store(true, Ordering::SeqCst);
        let placed = place(envelope);
        if matches!(placed, Placed::Delivered) && state.abandoned.load(Ordering::SeqCst) {
            self.compact();
        }
        placed
    }

    /// Tries the `blocked` subscribers again, waiting (as `key`, woken
    /// through `waker`) for room at those still full; forgets those that
    /// left the bus. Returns how many received the event now.
    pub(crate) fn retry_waiting(
        &self,
        blocked: &mut Vec<Blocked>,
        key: u64,
        waker: &Waker,
    ) -> usize {
        let mut delivered = 0;
        let mut i = 0;
        while i < blocked.len() {
            match self.retry_one(&mut blocked[i], key, waker) {
                Retried::StillFull => i += 1,
                done => {
                    delivered += usize::from(matches!(done, Retried::Delivered));
                    blocked.swap_remove(i).queue.state().room.deregister(key);
                }
            }
        }
        delivered
    }

    fn retry_one(&self, blocked: &mut Blocked, key: u64, waker: &Waker) -> Retried {
        let Blocked { queue, envelope } = blocked;
        let state = queue.state();
        let copy = envelope.take().expect("a blocked subscriber has its copy");
        if !self.contains(state.id) {
            // Unsubscribed meanwhile: not a drop, the consumer is gone
            // (design invariant 6: a concurrent publish may miss it).
            withdraw(copy);
            return Retried::Gone;
        }
        // Register, then try: room made before the registration is seen by
        // the try, room made after it wakes us (`WaitList`).
        let placed = match self.place(state, copy, |copy| queue.place(copy)) {
            Placed::Full(copy) if !cfg!(switchboard_mutant_no_room_recheck) => {
                state.room.register(key, waker);
                self.place(state, copy, |copy| queue.place(copy))
            }
            // The mutant (a loom-tests self-check) registers without trying
            // again, so room made just before is never noticed.
            Placed::Full(copy) => {
                state.room.register(key, waker);
                Placed::Full(copy)
            }
            placed => placed,
        };
        match placed {
            Placed::Delivered => Retried::Delivered,
            Placed::Full(copy) => {
                *envelope = Some(copy);
                Retried::StillFull
            }
            Placed::Closed(copy) => {
                withdraw(copy);
                Retried::Gone
            }
        }
    }

    /// A waiting publish ends without reaching the `blocked` subscribers
    /// (its deadline passed, or it was cancelled): each counts a drop
    /// (`reason`), reported to the drop callback. Returns their names.
    pub(crate) fn give_up_waiting(
        &self,
        blocked: Vec<Blocked>,
        key: u64,
        event: &Arc<dyn Event>,
        reason: DropReason,
    ) -> Vec<String> {
        let mut missed = Vec::with_capacity(blocked.len());
        for Blocked { queue, envelope } in blocked {
            queue.state().room.deregister(key);
            if let Some(envelope) = envelope {
                withdraw(envelope);
            }
            if queue.count_drop() {
                missed.push(queue);
            }
        }
        if !missed.is_empty() {
            self.counters
                .dropped_critical
                .fetch_add(missed.len() as u64, Ordering::Relaxed);
            let mut drops = self.drops.session();
            for queue in &missed {
                self.report_critical_drop(&mut drops, queue.state(), &**event, reason);
            }
        }
        missed
            .iter()
            .map(|queue| queue.state().name.to_string())
            .collect()
    }

    /// Waits (as `key`, woken through `waker`) for the bus to run; returns
    /// whether it runs now.
    pub(crate) fn wait_for_start(&self, key: u64, waker: &Waker) -> bool {
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
    pub(crate) fn give_up_before_start(&self, key: u64, event: &dyn Event, reason: DropReason) {
        self.started.deregister(key);
        log::warning!(
            event_type = event.event_type(),
            ?reason,
            "switchboard: waiting publish ended before the bus started; event dropped"
        );
        self.count_pre_start_drop(event, reason, 0);
    }

    /// Counts a waiting publish in `published_events`.
    pub(crate) fn count_published(&self) {
        self.counters.published.add_one();
    }
}

/// A copy that never reached its subscriber: its token, if any, is taken
/// back rather than counted as abandoned.
fn withdraw(envelope: Envelope) {
    if let (_, Some(token)) = envelope.into_parts() {
        token.withdraw();
    }
}
