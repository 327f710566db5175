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
use crate::drops::{DropInfo, DropReason};
use crate::event::Event;
use crate::log;
use crate::sync::Ordering;

use super::subscriber::{Offer, Placed, Subscriber};
use super::BusCore;

/// A critical subscriber whose queue was full, and the copy waiting for it.
pub(crate) struct Blocked {
    subscriber: Arc<Subscriber>,
    envelope: Envelope,
}

impl BusCore {
    /// Offers `event` to every matching subscriber: critical queues get a
    /// copy (with a token if `tracking`) or, if full, are added to `blocked`;
    /// the others are offered it as by `publish`. Returns how many received
    /// it now.
    pub(crate) fn deliver_waiting(
        &self,
        event: &Arc<dyn Event>,
        tracking: Option<&Tracking>,
        blocked: &mut Vec<Blocked>,
    ) -> usize {
        let registry = self.registry.load();
        let mut delivered = 0;
        let mut dropped_observability = 0;
        for part in registry.matching(&**event).parts() {
            for subscriber in part {
                if !subscriber.waits_for_room() {
                    match subscriber.offer(event) {
                        Offer::Delivered => delivered += 1,
                        Offer::Full => dropped_observability += 1,
                        Offer::Closed => {}
                    }
                    continue;
                }
                let envelope = Envelope::new(Arc::clone(event), tracking.map(Tracking::token));
                match subscriber.place(envelope) {
                    Placed::Delivered => delivered += 1,
                    Placed::Full(envelope) => blocked.push(Blocked {
                        subscriber: Arc::clone(subscriber),
                        envelope,
                    }),
                    Placed::Closed(envelope) => withdraw(envelope),
                }
            }
        }
        if dropped_observability > 0 {
            self.counters
                .dropped_observability
                .fetch_add(dropped_observability, Ordering::Relaxed);
        }
        delivered
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
        let mut still = Vec::with_capacity(blocked.len());
        for Blocked {
            subscriber,
            envelope,
        } in blocked.drain(..)
        {
            let room = &subscriber.state().room;
            if !self.contains(subscriber.state().id) {
                // Unsubscribed meanwhile: not a drop, the consumer is gone
                // (design invariant 6: a concurrent publish may miss it).
                room.deregister(key);
                withdraw(envelope);
                continue;
            }
            // Register, then try: room made before the registration is seen
            // by the try, room made after it wakes us (`WaitList`).
            let envelope = match subscriber.place(envelope) {
                Placed::Full(envelope) if !cfg!(switchboard_mutant_no_room_recheck) => {
                    room.register(key, waker);
                    subscriber.place(envelope)
                }
                // The mutant (a loom-tests self-check) registers without
                // trying again, so room made just before is never noticed.
                Placed::Full(envelope) => {
                    room.register(key, waker);
                    Placed::Full(envelope)
                }
                placed => placed,
            };
            match envelope {
                Placed::Delivered => {
                    room.deregister(key);
                    delivered += 1;
                }
                Placed::Full(envelope) => still.push(Blocked {
                    subscriber,
                    envelope,
                }),
                Placed::Closed(envelope) => {
                    room.deregister(key);
                    withdraw(envelope);
                }
            }
        }
        *blocked = still;
        delivered
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
        for Blocked {
            subscriber,
            envelope,
        } in blocked
        {
            subscriber.state().room.deregister(key);
            withdraw(envelope);
            if subscriber.count_drop() {
                missed.push(subscriber);
            }
        }
        if !missed.is_empty() {
            self.counters
                .dropped_critical
                .fetch_add(missed.len() as u64, Ordering::Relaxed);
            let mut drops = self.drops.session();
            for subscriber in &missed {
                self.report_critical_drop(&mut drops, subscriber, &**event, reason);
            }
        }
        missed
            .iter()
            .map(|subscriber| subscriber.state().name.to_string())
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
        self.counters
            .dropped_pre_start
            .fetch_add(1, Ordering::Relaxed);
        let event_type = event.event_type();
        log::warning!(
            event_type,
            ?reason,
            "switchboard: waiting publish ended before the bus started; event dropped"
        );
        self.drops.session().report(&DropInfo {
            reason,
            event,
            event_type,
            subscriber_name: "",
            capacity: 0,
            event_types: "",
        });
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
