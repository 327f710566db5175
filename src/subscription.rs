//! The receiving side: blocking, non-blocking, with a timeout, as an iterator
//! or as a `Stream`.

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;

use crate::completion::Envelope;
use crate::core::{BusCore, Registered, SubscriberState};
use crate::error::{RecvError, RecvTimeoutError, TryRecvError};
use crate::event::Event;
use crate::sync::queue::{self, Receiver};
use crate::sync::Ordering;

/// A subscription to an [`EventBus`](crate::EventBus): receives `Arc<dyn Event>`.
///
/// Use it from a plain thread ([`recv`](Self::recv), [`iter`](Self::iter)) or
/// from any async runtime: it is a [`futures_core::Stream`]. It ends (returns
/// [`RecvError`] / `None`) once the bus is dropped or the subscription is
/// unsubscribed and the events already queued have been received.
///
/// Dropping a `Subscription` unsubscribes it.
///
/// ```
/// use switchboard::{Event, EventBus, Timestamp};
///
/// #[derive(Event)]
/// #[event(type = "tick")]
/// struct Tick(u32, #[event(timestamp)] Timestamp);
///
/// let bus = EventBus::new();
/// let ticks = bus.subscribe("clock", 16).unwrap();
/// bus.start();
///
/// let consumer = std::thread::spawn(move || {
///     ticks.iter().filter_map(|e| e.downcast_ref::<Tick>().map(|t| t.0)).sum::<u32>()
/// });
/// for i in 1..=3 {
///     bus.publish(Tick(i, Timestamp::now()));
/// }
/// drop(bus); // ends the subscription once drained
/// assert_eq!(consumer.join().unwrap(), 6);
/// ```
pub struct Subscription {
    // Field order matters: the receiver must drop (closing the queue)
    // before `_unblock` wakes the publishers waiting for room in it.
    receiver: Receiver<Envelope>,
    _unblock: UnblockOnDrop,
    state: Arc<SubscriberState>,
    bus: Weak<BusCore>,
}

/// Wakes the waiting publishers blocked on the queue once it is gone: they
/// find it closed and stop waiting.
struct UnblockOnDrop(Arc<SubscriberState>);

impl Drop for UnblockOnDrop {
    fn drop(&mut self) {
        self.0.room.notify();
    }
}

impl Subscription {
    /// The subscription of what `bus` registered.
    pub(crate) fn new(registered: Registered, bus: Weak<BusCore>) -> Self {
        let Registered { receiver, state } = registered;
        Self {
            receiver,
            _unblock: UnblockOnDrop(Arc::clone(&state)),
            state,
            bus,
        }
    }

    pub(crate) fn belongs_to(&self, bus: &Arc<BusCore>) -> bool {
        std::ptr::eq(self.bus.as_ptr(), Arc::as_ptr(bus))
    }

    /// Counts an envelope taken from the queue and tells publishers waiting
    /// for room that there is some.
    #[inline]
    fn took(&self, envelope: Envelope) -> Envelope {
        self.state.received.fetch_add(1, Ordering::Relaxed);
        self.state.room.notify();
        envelope
    }

    pub(crate) fn recv_envelope(&self) -> Result<Envelope, RecvError> {
        self.receiver
            .recv()
            .map(|e| self.took(e))
            .map_err(|_| RecvError)
    }

    pub(crate) fn try_recv_envelope(&self) -> Result<Envelope, TryRecvError> {
        match self.receiver.try_recv() {
            Ok(envelope) => Ok(self.took(envelope)),
            Err(queue::TryRecvError::Empty) => Err(TryRecvError::Empty),
            Err(queue::TryRecvError::Disconnected) => Err(TryRecvError::Closed),
        }
    }

    pub(crate) fn recv_deadline_envelope(
        &self,
        deadline: Instant,
    ) -> Result<Envelope, RecvTimeoutError> {
        match self.receiver.recv_deadline(deadline) {
            Ok(envelope) => Ok(self.took(envelope)),
            Err(queue::RecvTimeoutError::Timeout) => Err(RecvTimeoutError::Timeout),
            Err(queue::RecvTimeoutError::Disconnected) => Err(RecvTimeoutError::Closed),
        }
    }

    pub(crate) fn poll_envelope(&self, cx: &mut Context<'_>) -> Poll<Option<Envelope>> {
        match self.try_recv_envelope() {
            Ok(envelope) => return Poll::Ready(Some(envelope)),
            Err(TryRecvError::Closed) => return Poll::Ready(None),
            Err(TryRecvError::Empty) => {}
        }
        if !self.state.wakeups_enabled.load(Ordering::Relaxed) {
            if let Some(bus) = self.bus.upgrade() {
                bus.enable_wakeups(self.state.id);
            }
            // Without a bus, the queue is closing and its closing wakes us.
            self.state.wakeups_enabled.store(true, Ordering::Relaxed);
        }
        self.state.waker.register(cx.waker());
        // Re-check after registering: an event sent before the registration
        // either is visible now or its publisher's wake finds our waker.
        match self.try_recv_envelope() {
            Ok(envelope) => Poll::Ready(Some(envelope)),
            Err(TryRecvError::Closed) => Poll::Ready(None),
            Err(TryRecvError::Empty) => Poll::Pending,
        }
    }

    /// Waits for the next event.
    ///
    /// # Errors
    ///
    /// [`RecvError`] once the subscription is closed and drained.
    pub fn recv(&self) -> Result<Arc<dyn Event>, RecvError> {
        self.recv_envelope().map(Envelope::finish)
    }

    /// Takes the next event if one is queued.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if nothing is queued, [`TryRecvError::Closed`]
    /// once the subscription is closed and drained.
    pub fn try_recv(&self) -> Result<Arc<dyn Event>, TryRecvError> {
        self.try_recv_envelope().map(Envelope::finish)
    }

    /// Waits up to `timeout` for the next event.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] if none came in time,
    /// [`RecvTimeoutError::Closed`] once the subscription is closed and drained.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Arc<dyn Event>, RecvTimeoutError> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.recv_deadline(deadline),
            // A timeout too long to represent: wait without one.
            None => self.recv().map_err(|_| RecvTimeoutError::Closed),
        }
    }

    /// Waits until `deadline` for the next event.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Self::recv_timeout).
    pub fn recv_deadline(&self, deadline: Instant) -> Result<Arc<dyn Event>, RecvTimeoutError> {
        self.recv_deadline_envelope(deadline).map(Envelope::finish)
    }

    /// A blocking iterator over events; it ends when the subscription closes.
    pub fn iter(&self) -> Iter<'_> {
        Iter { subscription: self }
    }

    /// An iterator over the events queued now; it never blocks.
    pub fn try_iter(&self) -> TryIter<'_> {
        TryIter { subscription: self }
    }

    /// Polls for the next event, registering `cx`'s waker if there is none.
    /// What the `Stream` implementation calls; usable to build other futures.
    ///
    /// The first time it finds the queue empty, the subscription asks the bus
    /// to wake it from then on; until then publishers pay nothing for async
    /// support.
    ///
    /// The subscription keeps one waker, the last registered: have one task at
    /// a time wait on it, or a task may miss its wake-up.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Arc<dyn Event>>> {
        self.poll_envelope(cx)
            .map(|envelope| envelope.map(Envelope::finish))
    }

    /// Takes every event queued now, skipping each
    /// [coalescible](Event::coalescible) event that a later queued event of the
    /// same [`event_type`](Event::event_type) supersedes. Other events are
    /// never skipped, and the order is kept. Never blocks.
    ///
    /// Skipped events are counted ([`coalesced_count`](Self::coalesced_count),
    /// and in [`EventBus::stats`](crate::EventBus::stats)).
    ///
    /// ```
    /// use switchboard::{Event, EventBus, Timestamp};
    ///
    /// #[derive(Event)]
    /// #[event(type = "load", coalescible)] // only the latest matters
    /// struct Load(u32, #[event(timestamp)] Timestamp);
    ///
    /// let bus = EventBus::new();
    /// let sub = bus.subscribe("dashboard", 16).unwrap();
    /// bus.start();
    /// for percent in [10, 50, 90] {
    ///     bus.publish(Load(percent, Timestamp::now()));
    /// }
    /// let latest = sub.drain_coalesced();
    /// assert_eq!(latest.len(), 1);
    /// assert_eq!(latest[0].downcast_ref::<Load>().unwrap().0, 90);
    /// assert_eq!(sub.coalesced_count(), 2);
    /// ```
    pub fn drain_coalesced(&self) -> Vec<Arc<dyn Event>> {
        let queued: Vec<Arc<dyn Event>> = self.try_iter().take(self.len()).collect();
        let taken = queued.len();
        let keep = not_superseded(&queued);
        let kept: Vec<_> = queued
            .into_iter()
            .zip(keep)
            .filter_map(|(event, keep)| keep.then_some(event))
            .collect();
        self.state
            .coalesced
            .fetch_add((taken - kept.len()) as u64, Ordering::Relaxed);
        kept
    }

    /// Events that [`drain_coalesced`](Self::drain_coalesced) skipped so far.
    pub fn coalesced_count(&self) -> u64 {
        self.state.coalesced.load(Ordering::Relaxed)
    }

    /// How many events are queued.
    pub fn len(&self) -> usize {
        self.receiver.len()
    }

    /// Whether no event is queued.
    pub fn is_empty(&self) -> bool {
        self.receiver.is_empty()
    }

    /// How many events its buffer holds, as subscribed.
    pub fn capacity(&self) -> usize {
        self.state.capacity
    }

    /// The subscriber's name.
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// Events this subscription missed because its buffer was full.
    pub fn dropped(&self) -> u64 {
        self.state.dropped.load(Ordering::Relaxed)
    }

    /// Events taken from this subscription so far.
    pub fn received_count(&self) -> u64 {
        self.state.received.load(Ordering::Relaxed)
    }

    /// How many events this subscription missed (its buffer was full) since
    /// the last call: lag as information in the receive loop, for blocking
    /// and async consumers alike. Each miss is reported once, even with
    /// several threads asking; [`dropped`](Self::dropped) keeps the total.
    ///
    /// ```
    /// use switchboard::{Event, EventBus, SubscribeOptions, Timestamp};
    /// # #[derive(Event)]
    /// # struct Tick { timestamp: Timestamp }
    ///
    /// let bus = EventBus::new();
    /// let ticks = bus
    ///     .subscribe_with(SubscribeOptions::new("metrics", 1).lossy())
    ///     .unwrap();
    /// bus.start();
    /// for _ in 0..3 {
    ///     bus.publish(Tick { timestamp: Timestamp::now() });
    /// }
    /// assert_eq!(ticks.take_missed(), 2);
    /// assert_eq!(ticks.take_missed(), 0, "each miss is reported once");
    /// assert_eq!(ticks.dropped(), 2);
    /// ```
    pub fn take_missed(&self) -> u64 {
        let dropped = self.state.dropped.load(Ordering::Relaxed);
        let reported = self
            .state
            .missed_reported
            .fetch_max(dropped, Ordering::Relaxed);
        dropped.saturating_sub(reported)
    }

    /// Whether this subscription is a lossy (observability) one.
    pub fn is_lossy(&self) -> bool {
        self.state.lossy
    }

    /// Whether the bus still has this subscription (it has not been
    /// unsubscribed and the bus is alive).
    pub fn is_subscribed(&self) -> bool {
        self.bus
            .upgrade()
            .is_some_and(|bus| bus.contains(self.state.id))
    }

    /// Removes this subscription from its bus; it then yields the events
    /// already queued and ends. Returns `false` if it was already removed or
    /// the bus is gone. Dropping the subscription does the same.
    pub fn unsubscribe(&self) -> bool {
        self.bus
            .upgrade()
            .is_some_and(|bus| bus.remove(&self.state))
    }

    /// [`unsubscribe`](Self::unsubscribe), from `bus` only.
    pub(crate) fn unsubscribe_from(&self, bus: &Arc<BusCore>) -> bool {
        self.belongs_to(bus) && bus.remove(&self.state)
    }
}

impl Drop for Subscription {
    /// Leaves the bus: nobody receives from this queue again, so the bus
    /// only marks the entry and compacts it away with its next change (see
    /// the design, "Registry and publish").
    ///
    /// The queue is not drained here: that would make room for a publish
    /// racing the drop, counted as a delivery nobody receives. What is
    /// queued is freed with the entry (at most one abandoned entry lingers,
    /// and one above 1024 slots is compacted at once).
    fn drop(&mut self) {
        if let Some(bus) = self.bus.upgrade() {
            bus.abandon(&self.state);
        }
    }
}

/// Lets [`EventBus::unsubscribe`](crate::EventBus::unsubscribe) take either
/// kind of subscription.
impl AsRef<Subscription> for Subscription {
    fn as_ref(&self) -> &Subscription {
        self
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("name", &self.name())
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl Stream for Subscription {
    type Item = Arc<dyn Event>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_recv(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), None)
    }
}

/// For each event, whether `drain_coalesced` keeps it: all but the coalescible
/// events that a later event of the same type supersedes.
fn not_superseded(events: &[Arc<dyn Event>]) -> Vec<bool> {
    let mut later_types: Vec<&str> = Vec::new();
    let mut keep = vec![true; events.len()];
    for (i, event) in events.iter().enumerate().rev() {
        let event_type = event.event_type();
        if later_types.contains(&event_type) {
            keep[i] = !event.coalescible();
        } else {
            later_types.push(event_type);
        }
    }
    keep
}

/// Blocking iterator over a [`Subscription`]; see [`Subscription::iter`].
#[derive(Debug)]
pub struct Iter<'a> {
    subscription: &'a Subscription,
}

impl Iterator for Iter<'_> {
    type Item = Arc<dyn Event>;

    fn next(&mut self) -> Option<Self::Item> {
        self.subscription.recv().ok()
    }
}

/// Non-blocking iterator over a [`Subscription`]; see [`Subscription::try_iter`].
#[derive(Debug)]
pub struct TryIter<'a> {
    subscription: &'a Subscription,
}

impl Iterator for TryIter<'_> {
    type Item = Arc<dyn Event>;

    fn next(&mut self) -> Option<Self::Item> {
        self.subscription.try_recv().ok()
    }
}

/// Owning blocking iterator over a [`Subscription`].
#[derive(Debug)]
pub struct IntoIter {
    subscription: Subscription,
}

impl Iterator for IntoIter {
    type Item = Arc<dyn Event>;

    fn next(&mut self) -> Option<Self::Item> {
        self.subscription.recv().ok()
    }
}

impl<'a> IntoIterator for &'a Subscription {
    type Item = Arc<dyn Event>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for Subscription {
    type Item = Arc<dyn Event>;
    type IntoIter = IntoIter;

    fn into_iter(self) -> IntoIter {
        IntoIter { subscription: self }
    }
}

/// A subscription to one Rust event type `T`, from
/// [`EventBus::subscribe_to`](crate::EventBus::subscribe_to), or from
/// [`EventBus::subscribe_with`](crate::EventBus::subscribe_with) given
/// [`SubscribeOptions::of`](crate::SubscribeOptions::of) (lossy, leader-only,
/// retained events first): receives `Arc<T>`.
///
/// Filtering happens at the bus by `TypeId`, so other events never reach it and
/// no forwarding thread is involved. Otherwise it behaves as [`Subscription`],
/// [`with_gaps`](Self::with_gaps) and [`with_acks`](Self::with_acks) included.
pub struct TypedSubscription<T> {
    inner: Subscription,
    _type: PhantomData<fn() -> T>,
}

/// The bus routes only `T` here, so the downcast cannot fail.
pub(crate) fn cast<T: Event>(event: Arc<dyn Event>) -> Arc<T> {
    event
        .downcast_arc::<T>()
        .unwrap_or_else(|_| unreachable!("the bus routes only events of this type here"))
}

impl<T: Event> TypedSubscription<T> {
    pub(crate) fn new(inner: Subscription) -> Self {
        Self {
            inner,
            _type: PhantomData,
        }
    }

    /// The underlying untyped subscription (for the accessors it shares).
    pub fn as_untyped(&self) -> &Subscription {
        &self.inner
    }

    /// Waits for the next event. See [`Subscription::recv`].
    ///
    /// # Errors
    ///
    /// [`RecvError`] once the subscription is closed and drained.
    pub fn recv(&self) -> Result<Arc<T>, RecvError> {
        self.inner.recv().map(cast)
    }

    /// Takes the next event if one is queued. See [`Subscription::try_recv`].
    ///
    /// # Errors
    ///
    /// As [`Subscription::try_recv`].
    pub fn try_recv(&self) -> Result<Arc<T>, TryRecvError> {
        self.inner.try_recv().map(cast)
    }

    /// Waits up to `timeout` for the next event. See [`Subscription::recv_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Subscription::recv_timeout`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Arc<T>, RecvTimeoutError> {
        self.inner.recv_timeout(timeout).map(cast)
    }

    /// Waits until `deadline` for the next event.
    ///
    /// # Errors
    ///
    /// As [`Subscription::recv_timeout`].
    pub fn recv_deadline(&self, deadline: Instant) -> Result<Arc<T>, RecvTimeoutError> {
        self.inner.recv_deadline(deadline).map(cast)
    }

    /// A blocking iterator over events; it ends when the subscription closes.
    pub fn iter(&self) -> impl Iterator<Item = Arc<T>> + '_ {
        self.inner.iter().map(cast)
    }

    /// An iterator over the events queued now; it never blocks.
    pub fn try_iter(&self) -> impl Iterator<Item = Arc<T>> + '_ {
        self.inner.try_iter().map(cast)
    }

    /// Polls for the next event. See [`Subscription::poll_recv`].
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Arc<T>>> {
        self.inner.poll_recv(cx).map(|event| event.map(cast))
    }

    /// Takes every event queued now, skipping superseded coalescible ones.
    /// See [`Subscription::drain_coalesced`].
    pub fn drain_coalesced(&self) -> Vec<Arc<T>> {
        self.inner.drain_coalesced().into_iter().map(cast).collect()
    }

    /// Events that [`drain_coalesced`](Self::drain_coalesced) skipped so far.
    pub fn coalesced_count(&self) -> u64 {
        self.inner.coalesced_count()
    }

    /// How many events are queued.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether no event is queued.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// How many events its buffer holds, as subscribed.
    pub fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    /// The subscriber's name.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// Events this subscription missed because its buffer was full.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped()
    }

    /// Events taken from this subscription so far.
    pub fn received_count(&self) -> u64 {
        self.inner.received_count()
    }

    /// How many events this subscription missed since the last call. See
    /// [`Subscription::take_missed`].
    pub fn take_missed(&self) -> u64 {
        self.inner.take_missed()
    }

    /// Whether this subscription is a lossy (observability) one; see
    /// [`TypedOptions::lossy`](crate::TypedOptions::lossy).
    pub fn is_lossy(&self) -> bool {
        self.inner.is_lossy()
    }

    /// Whether the bus still has this subscription.
    pub fn is_subscribed(&self) -> bool {
        self.inner.is_subscribed()
    }

    /// Removes this subscription from its bus. See [`Subscription::unsubscribe`].
    pub fn unsubscribe(&self) -> bool {
        self.inner.unsubscribe()
    }
}

/// The untyped view, as [`as_untyped`](TypedSubscription::as_untyped) gives it.
impl<T: Event> AsRef<Subscription> for TypedSubscription<T> {
    fn as_ref(&self) -> &Subscription {
        &self.inner
    }
}

impl<T> fmt::Debug for TypedSubscription<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TypedSubscription")
            .field(&std::any::type_name::<T>())
            .field(&self.inner)
            .finish()
    }
}

impl<T: Event> Stream for TypedSubscription<T> {
    type Item = Arc<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_recv(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), None)
    }
}

impl<T: Event> IntoIterator for TypedSubscription<T> {
    type Item = Arc<T>;
    type IntoIter = std::iter::Map<IntoIter, fn(Arc<dyn Event>) -> Arc<T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.inner.into_iter().map(cast::<T>)
    }
}
