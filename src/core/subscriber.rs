//! One subscriber as the bus sees it: the sending half of its queue, its
//! filter, its counters and its async waker.

use std::sync::Arc;

use crate::completion::Envelope;
use crate::event::Event;
use crate::mutants::mutant;
use crate::options::Filter;
use crate::padding::{CountsGap, LineGap};
use crate::sync::queue::{Sender, TrySendError};
use crate::sync::wait_list::WaitList;
use crate::sync::{AtomicBool, AtomicU64, AtomicWaker, Ordering};

/// What a subscriber is, shared by the bus's registry entry and the
/// [`Subscription`](crate::Subscription) handle.
///
/// `#[repr(C)]` for the gap before the consumer's counters (see `padding`).
#[repr(C)]
pub(crate) struct SubscriberState {
    pub(crate) id: u64,
    pub(crate) name: Box<str>,
    pub(crate) capacity: usize,
    pub(crate) lossy: bool,
    pub(crate) leader_only: bool,
    /// The crate's own route for responses, not a user's subscription.
    pub(crate) routed: bool,
    pub(crate) filter: Filter,
    /// `filter.label()`, computed once so reporting a drop allocates nothing.
    pub(crate) filter_label: Box<str>,
    /// Written by publishers, on the drop path only.
    pub(crate) dropped: AtomicU64,
    /// Set when the subscription is dropped: its entry stays in the registry
    /// until the next change compacts it away (see `BusCore::abandon`), and
    /// publishers that meet it meanwhile deliver nothing and count no drop.
    pub(crate) abandoned: AtomicBool,
    /// Set (for good) before a tracked event is first queued here: a
    /// dropped subscription that may hold tracked events is compacted away
    /// at once, so that its queue, and the tokens in it, are freed and their
    /// completions resolve (see `BusCore::abandon` and `waiting.rs`).
    pub(crate) tracked: AtomicBool,
    /// The consumer's memo that it has switched its registry entry to one
    /// that wakes it (see [`Subscriber::wakes_consumer`]).
    pub(crate) wakeups_enabled: AtomicBool,
    pub(crate) waker: AtomicWaker,
    /// Keeps the consumer's counters below off the lines publishers read.
    pub(crate) _gap: LineGap,
    /// Written by the consumer only.
    pub(crate) received: AtomicU64,
    /// Received events that `drain_coalesced` skipped; written by the consumer.
    pub(crate) coalesced: AtomicU64,
    /// How many of the `dropped` events the consumer has been told about
    /// (`take_missed`); only ever raised, with `fetch_max`.
    pub(crate) missed_reported: AtomicU64,
    /// Waiting publishers blocked on a full queue, woken by the consumer
    /// each time it takes an event (and when the subscription goes). Beside
    /// the consumer's counters: the consumer reads it after every take.
    pub(crate) room: WaitList,
}

/// How a subscriber's events are delivered: the settings of
/// [`SubscriberState::new`].
pub(crate) struct DeliverySettings {
    pub(crate) capacity: usize,
    pub(crate) lossy: bool,
    pub(crate) leader_only: bool,
    pub(crate) routed: bool,
}

impl SubscriberState {
    /// A new subscriber's state, every counter at zero.
    pub(crate) fn new(id: u64, name: Box<str>, filter: Filter, delivery: DeliverySettings) -> Self {
        let DeliverySettings {
            capacity,
            lossy,
            leader_only,
            routed,
        } = delivery;
        Self {
            id,
            name,
            capacity,
            lossy,
            leader_only,
            routed,
            filter_label: filter.label().into(),
            filter,
            dropped: AtomicU64::new(0),
            abandoned: AtomicBool::new(false),
            tracked: AtomicBool::new(false),
            wakeups_enabled: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            _gap: LineGap::new(),
            received: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            missed_reported: AtomicU64::new(0),
            room: WaitList::new(),
        }
    }
}

/// The outcome of offering one event to one subscriber.
///
/// Carries no data: the publish loop keeps it in registers. (Enums carrying
/// the event, passed around that loop, went through the stack and stalled
/// every send on store forwarding.)
pub(crate) enum Offer {
    Delivered,
    /// The buffer was full; the drop is already counted on the subscriber.
    Full,
    /// Not delivered, and not a drop: the consumer is gone (it is being
    /// removed from the registry), or a route found nobody waiting for the
    /// event (the route counts that itself).
    Closed,
}

/// The outcome of placing a copy in a queue for a waiting publish, which
/// counts nothing: the copy comes back unless it was queued.
pub(crate) enum Placed {
    Delivered,
    Full(Envelope),
    /// The consumer is gone.
    Closed(Envelope),
}

/// The outcome of handing the caller's own event to the last subscriber.
pub(crate) enum Handover {
    Delivered,
    /// As [`Offer::Full`], with the event back for the drop report.
    Full(Arc<dyn Event>),
    Closed,
}

/// Where a subscriber's events go.
pub(crate) enum Inbox {
    /// Its bounded queue, read by a [`Subscription`](crate::Subscription).
    Queue(Sender<Envelope>),
    /// Handed to a [`Route`] on the publishing thread: the crate's own
    /// subscriber that passes responses to the requests waiting for them.
    Route(Arc<dyn Route>),
}

/// Takes events on the publishing thread instead of queueing them: how
/// responses reach the requests waiting for them without a subscription per
/// request (`request/route.rs`). It must not block, and it must count what it
/// does not deliver.
pub(crate) trait Route: Send + Sync {
    /// Passes `event` on; returns whether someone took it.
    fn dispatch(&self, event: &Arc<dyn Event>) -> bool;
}

/// A registry entry: the subscriber's state plus where its events go.
///
/// Dropping the entry (when the last registry snapshot holding it goes away,
/// after unsubscribe or with the bus) closes the queue, then wakes a parked
/// async consumer so it sees the end of the stream.
///
/// Registries hold entries by `Arc`, cloned and dropped on every subscribe
/// and unsubscribe; the leading gap keeps those reference counts off the
/// cache lines publishers read (see `padding`).
#[repr(C)]
pub(crate) struct Subscriber {
    _gap: CountsGap,
    // Field order matters: the inbox must drop (closing the queue) before
    // `state` wakes the consumer.
    inbox: Inbox,
    /// Whether publishers wake the consumer's task after each send. Fixed for
    /// the life of the entry, so a blocking consumer costs publishers one
    /// well-predicted branch; a consumer that starts polling as a `Stream`
    /// swaps in an entry with this set (`BusCore::enable_wakeups`), and the
    /// replaced entry's drop wakes it once more (see `WakeOnDrop`).
    wakes_consumer: bool,
    /// Set when a send found the buffer full, cleared when it has room again.
    /// While set, publishers check for room before cloning the event, so a
    /// consumer that stays behind costs them no reference-count traffic. Only
    /// a hint: the drop itself is decided by the queue.
    seen_full: AtomicBool,
    state: WakeOnDrop,
}

/// Wakes the consumer when its registry entry goes away: after the queue
/// closes (unsubscribe, bus dropped), or after every publisher that could
/// still send through a replaced, non-waking entry has let go of it.
struct WakeOnDrop(Arc<SubscriberState>);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        self.0.waker.wake();
    }
}

impl Subscriber {
    /// A new entry, which does not wake its consumer (until
    /// [`with_wakeups`](Self::with_wakeups) replaces it).
    pub(crate) fn new(inbox: Inbox, state: Arc<SubscriberState>) -> Self {
        Self {
            _gap: CountsGap::new(),
            inbox,
            wakes_consumer: false,
            seen_full: AtomicBool::new(false),
            state: WakeOnDrop(state),
        }
    }

    /// The same subscriber, as an entry that wakes its consumer after each send.
    pub(crate) fn with_wakeups(&self) -> Self {
        Self {
            _gap: CountsGap::new(),
            inbox: match &self.inbox {
                Inbox::Queue(sender) => Inbox::Queue(sender.clone()),
                Inbox::Route(route) => Inbox::Route(Arc::clone(route)),
            },
            wakes_consumer: true,
            seen_full: AtomicBool::new(false),
            state: WakeOnDrop(Arc::clone(self.state())),
        }
    }

    pub(crate) fn wakes_consumer(&self) -> bool {
        self.wakes_consumer
    }

    #[inline]
    pub(crate) fn state(&self) -> &Arc<SubscriberState> {
        &self.state.0
    }

    /// Tries to queue a clone of `event` without blocking; counts a drop on
    /// a full buffer.
    ///
    /// The wake needs no fence: `AtomicWaker::wake` and `register` are
    /// read-modify-writes on one atomic, so either the consumer's registration
    /// comes first and we wake it, or our wake comes first and synchronizes
    /// with the registration, after which the consumer's re-check sees the
    /// event (design, "Memory orders": wake-ups; the counters and the
    /// full-queue hint are `Relaxed` for the reasons given there).
    #[inline(always)]
    pub(crate) fn offer(&self, event: &Arc<dyn Event>) -> Offer {
        let sender = match &self.inbox {
            Inbox::Queue(sender) => sender,
            Inbox::Route(route) => return routed(&**route, event),
        };
        if let Some(full) = self.still_full(sender) {
            return full;
        }
        match sender.try_send(Envelope::plain(Arc::clone(event))) {
            Ok(()) => {
                self.sent();
                Offer::Delivered
            }
            Err(TrySendError::Full(_clone)) => self.found_full(),
            Err(TrySendError::Disconnected(_)) => Offer::Closed,
        }
    }

    /// As [`offer`](Self::offer), moving `event` in instead of a clone: a
    /// publish to k subscribers makes k - 1 clones.
    #[inline(always)]
    pub(crate) fn hand_over(&self, event: Arc<dyn Event>) -> Handover {
        let sender = match &self.inbox {
            Inbox::Queue(sender) => sender,
            Inbox::Route(route) => {
                return match routed(&**route, &event) {
                    Offer::Delivered => Handover::Delivered,
                    Offer::Full | Offer::Closed => Handover::Closed,
                }
            }
        };
        match self.still_full(sender) {
            Some(Offer::Full) => return Handover::Full(event),
            Some(_) => return Handover::Closed,
            None => {}
        }
        match sender.try_send(Envelope::plain(event)) {
            Ok(()) => {
                self.sent();
                Handover::Delivered
            }
            Err(TrySendError::Full(envelope)) => match self.found_full() {
                Offer::Full => Handover::Full(envelope.into_parts().0),
                _ => Handover::Closed,
            },
            Err(TrySendError::Disconnected(_)) => Handover::Closed,
        }
    }

    /// After a send found the queue full: whether it still is, in which case
    /// the event is not offered (and no clone of it is made): `Some(Full)`
    /// with the drop counted, or `Some(Closed)` if the subscription was
    /// dropped meanwhile. `None`: offer it.
    #[inline(always)]
    fn still_full(&self, sender: &Sender<Envelope>) -> Option<Offer> {
        if !self.seen_full.load(Ordering::Relaxed) {
            return None;
        }
        // A full queue at this instant is what a failed send would have
        // found. (A zero-capacity queue never sets the hint: it always reads
        // as full, yet a waiting receiver takes a send.) Unlike a send, this
        // does not notice a consumer that has just been unsubscribed; such an
        // event, published concurrently with the unsubscribe, is counted as
        // dropped instead of silently not delivered. A dropped subscription
        // is noticed (see `full`).
        if sender.is_full() {
            return Some(self.full());
        }
        self.seen_full.store(false, Ordering::Relaxed);
        None
    }

    /// Whether a waiting publish waits for room here: a critical subscriber
    /// with a queue that has room to wait for. Lossy subscribers drop as
    /// ever, a request route never is full, and a zero-capacity queue only
    /// hands over to a consumer already waiting in `recv`.
    pub(crate) fn waits_for_room(&self) -> bool {
        let state = self.state();
        !state.lossy && state.capacity > 0 && matches!(self.inbox, Inbox::Queue(_))
    }

    /// Queues `envelope` if there is room, counting nothing (a waiting
    /// publish). Only for subscribers that [wait for room](Self::waits_for_room).
    pub(crate) fn place(&self, envelope: Envelope) -> Placed {
        match try_place(self.sender(), envelope) {
            Placed::Delivered => {
                self.sent();
                Placed::Delivered
            }
            other => other,
        }
    }

    /// What a waiting publish keeps while it waits for room here.
    pub(crate) fn hold(&self) -> HeldQueue {
        HeldQueue {
            sender: self.sender().clone(),
            state: Arc::clone(self.state()),
        }
    }

    fn sender(&self) -> &Sender<Envelope> {
        match &self.inbox {
            Inbox::Queue(sender) => sender,
            Inbox::Route(_) => unreachable!("only queues wait for room"),
        }
    }

    #[inline(always)]
    fn sent(&self) {
        if mutant!(self.wakes_consumer; no_wake => false) {
            self.state().waker.wake();
        }
    }

    #[inline(always)]
    fn found_full(&self) -> Offer {
        if self.state().capacity > 0 {
            self.seen_full.store(true, Ordering::Relaxed);
        }
        self.full()
    }

    /// The queue is full: a drop, counted, unless the subscription was
    /// dropped (its queue keeps what it held until the entry is compacted
    /// away, but nobody misses anything).
    #[inline(always)]
    fn full(&self) -> Offer {
        let state = self.state();
        if mutant!(state.abandoned.load(Ordering::Relaxed); abandoned_drops => false) {
            return Offer::Closed;
        }
        state.dropped.fetch_add(1, Ordering::Relaxed);
        Offer::Full
    }

    /// Events waiting in its queue (a route keeps none).
    pub(crate) fn queued(&self) -> usize {
        match &self.inbox {
            Inbox::Queue(sender) => sender.len(),
            Inbox::Route(_) => 0,
        }
    }
}

/// A subscriber's queue as a waiting publish keeps it while it waits for
/// room: the sending half and the shared state, not the registry entry.
///
/// Holding the entry would break the wake-up protocol of async consumers: a
/// consumer that starts waiting as a `Stream` swaps in a waking entry, and
/// relies on the replaced entry's drop to wake it after a send made through
/// the old one; a waiting publish could hold that entry indefinitely (while
/// waiting for room only the consumer can make). So a send from here always
/// wakes the consumer's task: the `AtomicWaker` handshake, without the
/// entry's flag.
pub(crate) struct HeldQueue {
    sender: Sender<Envelope>,
    state: Arc<SubscriberState>,
}

impl HeldQueue {
    pub(crate) fn state(&self) -> &Arc<SubscriberState> {
        &self.state
    }

    /// As [`Subscriber::place`].
    pub(crate) fn place(&self, envelope: Envelope) -> Placed {
        let placed = try_place(&self.sender, envelope);
        if let Placed::Delivered = placed {
            self.state.waker.wake();
        }
        placed
    }

    /// Counts a drop here, as [`Subscriber::count_drop`].
    pub(crate) fn count_drop(&self) -> bool {
        if self.state.abandoned.load(Ordering::Relaxed) {
            return false;
        }
        self.state.dropped.fetch_add(1, Ordering::Relaxed);
        true
    }
}

fn try_place(sender: &Sender<Envelope>, envelope: Envelope) -> Placed {
    match sender.try_send(envelope) {
        Ok(()) => Placed::Delivered,
        Err(TrySendError::Full(envelope)) => Placed::Full(envelope),
        Err(TrySendError::Disconnected(envelope)) => Placed::Closed(envelope),
    }
}

/// A route's dispatch, out of the queue path's way.
#[cold]
fn routed(route: &dyn Route, event: &Arc<dyn Event>) -> Offer {
    if route.dispatch(event) {
        Offer::Delivered
    } else {
        Offer::Closed
    }
}

#[cfg(all(test, not(switchboard_loom)))]
mod tests {
    use super::*;
    use std::mem::{align_of, offset_of, size_of};

    #[test]
    fn the_consumer_s_counters_sit_128_bytes_past_what_publishers_read() {
        let publishers_end = offset_of!(SubscriberState, waker) + size_of::<AtomicWaker>();
        assert!(offset_of!(SubscriberState, received) - publishers_end >= 128);
        assert!(offset_of!(SubscriberState, coalesced) > offset_of!(SubscriberState, received));
        // Not over-aligned: allocating it takes the allocator's fast path.
        assert!(align_of::<SubscriberState>() <= 16);
    }
}
