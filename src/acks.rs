//! Receiving with acknowledgements: a consumer saying when it has *finished*
//! with an event, so that a tracked publish's [`Completion`] means
//! "processed", not merely "taken from the queue".
//!
//! [`Completion`]: crate::Completion

use std::fmt;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;

use crate::completion::{Envelope, Token};
use crate::error::{RecvError, RecvTimeoutError, TryRecvError};
use crate::event::Event;
use crate::subscription::{Subscription, TypedSubscription};

/// An event received [`with_acks`](Subscription::with_acks): it derefs to
/// the event, and tells a tracked publisher when the consumer is done.
///
/// The consumer has *finished* with the event when it calls
/// [`ack`](Self::ack) or drops the delivery; [`reject`](Self::reject), or a
/// drop while the thread panics, *abandons* it instead. Either way the
/// publisher's [`Completion`](crate::Completion) counts it. For an event
/// published without tracking, all of this costs nothing and tells nobody.
#[must_use = "dropping a delivery at once acknowledges it"]
pub struct Delivery<T> {
    event: T,
    token: Option<Token>,
}

impl<T> Delivery<T> {
    fn new(event: T, token: Option<Token>) -> Self {
        Self { event, token }
    }

    /// Finished: the same as dropping it, said explicitly.
    pub fn ack(mut self) {
        if let Some(token) = self.token.take() {
            token.finish();
        }
    }

    /// Not processed: the publisher's [`Completion`](crate::Completion)
    /// counts the event as abandoned (a bridge redelivers it).
    pub fn reject(mut self) {
        drop(self.token.take());
    }

    /// Whether its publisher tracks it (someone learns about the ack).
    pub fn is_tracked(&self) -> bool {
        self.token.is_some()
    }
}

impl<T> Deref for Delivery<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.event
    }
}

impl<T> Drop for Delivery<T> {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            // A consumer that panics while holding the event did not finish it.
            if !std::thread::panicking() {
                token.finish();
            }
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Delivery<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("event", &self.event)
            .field("tracked", &self.is_tracked())
            .finish()
    }
}

/// A subscription whose events come as [`Delivery`] items to acknowledge;
/// from [`Subscription::with_acks`] or [`TypedSubscription::with_acks`].
///
/// The receive methods of the subscription, a [`Stream`], and a blocking
/// iterator (`for delivery in &subscription`).
///
/// ```
/// use switchboard::{Event, EventBus, Timestamp};
///
/// #[derive(Event)]
/// struct Job { id: u32, timestamp: Timestamp }
///
/// let bus = EventBus::new();
/// let jobs = bus.subscribe_to::<Job>("worker", 8).unwrap().with_acks();
/// bus.start();
/// let completion = bus
///     .publish_waiting(Job { id: 1, timestamp: Timestamp::now() })
///     .tracked()
///     .blocking()
///     .unwrap();
///
/// let job = jobs.recv().unwrap();
/// assert!(!completion.is_complete(), "taken, but not finished");
/// job.reject(); // could not process it
/// let done = completion.wait();
/// assert_eq!(done.abandoned(), 1);
/// ```
#[derive(Debug)]
#[must_use = "a subscription receives nothing unless it is read"]
pub struct WithAcks<S> {
    subscription: S,
}

impl<S> WithAcks<S> {
    pub(crate) fn new(subscription: S) -> Self {
        Self { subscription }
    }

    /// The subscription inside (its counters, its name).
    pub fn get_ref(&self) -> &S {
        &self.subscription
    }

    /// Takes the subscription back out.
    pub fn into_inner(self) -> S {
        self.subscription
    }
}

// The adaptor's constructors live beside it, so `subscription.rs` needs
// nothing from this module.
impl Subscription {
    /// This subscription as a receive loop of [`Delivery`](crate::Delivery) items to
    /// acknowledge: a tracked publisher's [`Completion`](crate::Completion)
    /// then waits until the consumer has *finished* with each event (acked or
    /// dropped its delivery), not merely taken it. See [`WithAcks`].
    pub fn with_acks(self) -> WithAcks<Self> {
        WithAcks::new(self)
    }
}

impl<T: Event> TypedSubscription<T> {
    /// This subscription as a receive loop of [`Delivery`](crate::Delivery) items to
    /// acknowledge. See [`Subscription::with_acks`].
    pub fn with_acks(self) -> WithAcks<Self> {
        WithAcks::new(self)
    }
}

/// What both subscription types offer an acknowledging loop. Public but
/// unreachable: only the crate's subscriptions implement it.
pub trait Acks {
    /// What a delivery holds.
    type Item;
    /// The subscription underneath.
    fn untyped(&self) -> &Subscription;
    /// The event as a delivery holds it.
    fn cast(event: Arc<dyn Event>) -> Self::Item;
}

impl Acks for Subscription {
    type Item = Arc<dyn Event>;
    fn untyped(&self) -> &Subscription {
        self
    }
    fn cast(event: Arc<dyn Event>) -> Arc<dyn Event> {
        event
    }
}

impl<T: Event> Acks for TypedSubscription<T> {
    type Item = Arc<T>;
    fn untyped(&self) -> &Subscription {
        self.as_untyped()
    }
    fn cast(event: Arc<dyn Event>) -> Arc<T> {
        crate::subscription::cast(event)
    }
}

fn delivery<S: Acks>(envelope: Envelope) -> Delivery<S::Item> {
    let (event, token) = envelope.into_parts();
    Delivery::new(S::cast(event), token)
}

impl<S: Acks> WithAcks<S> {
    /// Waits for the next event. See [`Subscription::recv`].
    ///
    /// # Errors
    ///
    /// [`RecvError`] once the subscription is closed and drained.
    pub fn recv(&self) -> Result<Delivery<S::Item>, RecvError> {
        self.subscription
            .untyped()
            .recv_envelope()
            .map(delivery::<S>)
    }

    /// Takes the next event if one is queued. See [`Subscription::try_recv`].
    ///
    /// # Errors
    ///
    /// As [`Subscription::try_recv`].
    pub fn try_recv(&self) -> Result<Delivery<S::Item>, TryRecvError> {
        self.subscription
            .untyped()
            .try_recv_envelope()
            .map(delivery::<S>)
    }

    /// Waits up to `timeout` for the next event. See [`Subscription::recv_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Subscription::recv_timeout`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Delivery<S::Item>, RecvTimeoutError> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.recv_deadline(deadline),
            None => self.recv().map_err(|_| RecvTimeoutError::Closed),
        }
    }

    /// Waits until `deadline` for the next event.
    ///
    /// # Errors
    ///
    /// As [`Subscription::recv_timeout`].
    pub fn recv_deadline(&self, deadline: Instant) -> Result<Delivery<S::Item>, RecvTimeoutError> {
        self.subscription
            .untyped()
            .recv_deadline_envelope(deadline)
            .map(delivery::<S>)
    }

    /// Polls for the next event. See [`Subscription::poll_recv`].
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Delivery<S::Item>>> {
        self.subscription
            .untyped()
            .poll_envelope(cx)
            .map(|envelope| envelope.map(delivery::<S>))
    }

    /// A blocking iterator over deliveries; it ends when the subscription
    /// closes.
    pub fn iter(&self) -> AcksIter<'_, S> {
        AcksIter { acks: self }
    }
}

/// Blocking iterator over a [`WithAcks`]; see [`WithAcks::iter`].
#[derive(Debug)]
pub struct AcksIter<'a, S> {
    acks: &'a WithAcks<S>,
}

impl<S: Acks> Iterator for AcksIter<'_, S> {
    type Item = Delivery<S::Item>;

    fn next(&mut self) -> Option<Self::Item> {
        self.acks.recv().ok()
    }
}

impl<S: Acks + Unpin> Stream for WithAcks<S> {
    type Item = Delivery<S::Item>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_recv(cx)
    }
}

impl<'a, S: Acks> IntoIterator for &'a WithAcks<S> {
    type Item = Delivery<S::Item>;
    type IntoIter = AcksIter<'a, S>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
