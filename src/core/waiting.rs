//! The waiting publish: delivery that waits for room at critical subscribers
//! instead of dropping, and gives up (counting what it gives up) only at its
//! deadline or when cancelled. Lossy subscribers and request routes are
//! offered the event as by `publish`.
//!
//! The future that drives these steps is the face's (`publish.rs`); the
//! steps and their counting live here, beside plain delivery, as functions
//! of the [`Delivery`] they go through. `compact` is the bus's: it compacts
//! away the abandoned registry entries.

use std::sync::Arc;
use std::task::Waker;

use crate::completion::{Envelope, Tracking};
use crate::drops::DropReason;
use crate::event::Event;
use crate::mutants::mutant;
use crate::sync::Ordering;

use super::delivery::Delivery;
use super::subscriber::{HeldQueue, Offer, Placed, Subscriber, SubscriberState};

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

/// Offers `event` to every matching subscriber: critical queues get a
/// copy (with a token if `tracking`) or, if full, are added to `blocked`;
/// the others are offered it as by `publish`. Returns how many received
/// it now. The last subscriber gets the caller's `Arc`, as in `publish`;
/// the event stays reachable through the blocked copies.
pub(super) fn deliver(
    delivery: &Delivery,
    event: Arc<dyn Event>,
    tracking: Option<&Tracking>,
    blocked: &mut Vec<Blocked>,
    compact: &impl Fn(),
) -> usize {
    let registry = delivery.registry().load();
    let Some((last, others)) = registry.matching(&*event).split_last() else {
        return 0;
    };
    let mut delivered = 0;
    let mut dropped = Vec::new();
    for part in others.parts() {
        for subscriber in part {
            delivered += offer(
                subscriber,
                Arc::clone(&event),
                tracking,
                blocked,
                &mut dropped,
                compact,
            );
        }
    }
    delivered += offer(last, event, tracking, blocked, &mut dropped, compact);
    drop(registry);
    // Lossy subscribers, and zero-capacity ones, drop as with `publish`.
    if !dropped.is_empty() {
        delivery.count_missed(&dropped);
        delivery.report_missed(&dropped);
    }
    delivered
}

/// Offers `event` to one subscriber for a waiting publish; returns 1 if
/// it received it now.
#[inline(always)]
fn offer(
    subscriber: &Arc<Subscriber>,
    event: Arc<dyn Event>,
    tracking: Option<&Tracking>,
    blocked: &mut Vec<Blocked>,
    dropped: &mut Vec<(Arc<Subscriber>, Arc<dyn Event>)>,
    compact: &impl Fn(),
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
    match place(
        subscriber.state(),
        envelope,
        |e| subscriber.place(e),
        compact,
    ) {
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
    state: &SubscriberState,
    envelope: Envelope,
    place: impl FnOnce(Envelope) -> Placed,
    compact: &impl Fn(),
) -> Placed {
    if !envelope.is_tracked() {
        return place(envelope);
    }
    state.tracked.store(true, Ordering::SeqCst);
    let placed = place(envelope);
    if matches!(placed, Placed::Delivered) && state.abandoned.load(Ordering::SeqCst) {
        compact();
    }
    placed
}

/// Tries the `blocked` subscribers again, waiting (as `key`, woken
/// through `waker`) for room at those still full; forgets those that
/// left the bus. Returns how many received the event now.
pub(super) fn retry(
    delivery: &Delivery,
    blocked: &mut Vec<Blocked>,
    key: u64,
    waker: &Waker,
    compact: &impl Fn(),
) -> usize {
    let mut delivered = 0;
    let mut i = 0;
    while i < blocked.len() {
        match retry_one(delivery, &mut blocked[i], key, waker, compact) {
            Retried::StillFull => i += 1,
            done => {
                delivered += usize::from(matches!(done, Retried::Delivered));
                blocked.swap_remove(i).queue.state().room.deregister(key);
            }
        }
    }
    delivered
}

fn retry_one(
    delivery: &Delivery,
    blocked: &mut Blocked,
    key: u64,
    waker: &Waker,
    compact: &impl Fn(),
) -> Retried {
    let Blocked { queue, envelope } = blocked;
    let state = queue.state();
    let copy = envelope.take().expect("a blocked subscriber has its copy");
    if !delivery.registry().load().contains(state.id) {
        // Unsubscribed meanwhile: not a drop, the consumer is gone
        // (design invariant 6: a concurrent publish may miss it).
        withdraw(copy);
        return Retried::Gone;
    }
    // Register, then try: room made before the registration is seen by
    // the try, room made after it wakes us (`WaitList`).
    let placed = match place(state, copy, |copy| queue.place(copy), compact) {
        Placed::Full(copy) => {
            state.room.register(key, waker);
            mutant!(
                place(state, copy, |copy| queue.place(copy), compact);
                no_room_recheck => Placed::Full(copy)
            )
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
pub(super) fn give_up(
    delivery: &Delivery,
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
    let states: Vec<&SubscriberState> = missed.iter().map(|queue| &**queue.state()).collect();
    delivery.report_given_up(&states, &**event, reason);
    missed
        .iter()
        .map(|queue| queue.state().name.to_string())
        .collect()
}

/// A copy that never reached its subscriber: its token, if any, is taken
/// back rather than counted as abandoned.
fn withdraw(envelope: Envelope) {
    if let (_, Some(token)) = envelope.into_parts() {
        token.withdraw();
    }
}
