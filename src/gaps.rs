//! Lag as information: what a consumer missed, reported in its receive loop.
//!
//! A subscriber whose buffer is full misses events; the bus counts each miss
//! ([`Subscription::dropped`]). A consumer that wants to know *in its loop*
//! asks [`Subscription::take_missed`], or wraps its subscription with
//! [`Subscription::with_gaps`] to receive a [`Received::Missed`] item before
//! the next event. Missing events is never an error that ends the loop, and
//! never silent.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::event::Event;
use crate::subscription::{Subscription, TypedSubscription};

/// An item of a subscription [`with_gaps`](Subscription::with_gaps): an event,
/// or how many events were missed just before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received<T> {
    /// The next event.
    Event(T),
    /// This many events were missed since the last report, because the
    /// buffer was full when they were published. Reported as soon as the
    /// receive loop comes back for more: the events that filled the buffer
    /// (still to be received after this item) are older than the missed
    /// ones.
    Missed(u64),
}

impl<T> Received<T> {
    /// The event, if this is one.
    pub fn event(self) -> Option<T> {
        match self {
            Received::Event(event) => Some(event),
            Received::Missed(_) => None,
        }
    }
}

/// A subscription whose receive loop also learns what it missed; from
/// [`Subscription::with_gaps`] or [`TypedSubscription::with_gaps`].
///
/// A [`Stream`], and a blocking iterator through [`IntoIterator`] (`for item
/// in subscription.with_gaps()`): before each event it yields
/// [`Received::Missed`] if events were missed since the last report, and at
/// the end it reports what was missed last before it ends.
///
/// ```
/// use switchboard::{Received, Event, EventBus, Timestamp};
///
/// #[derive(Event)]
/// struct Tick(u32, #[event(timestamp)] Timestamp);
///
/// let bus = EventBus::new();
/// let ticks = bus.subscribe_to::<Tick>("slow", 2).unwrap().with_gaps();
/// bus.start();
/// for n in 0..5 {
///     bus.publish(Tick(n, Timestamp::now())); // ticks 2, 3 and 4 find the buffer full
/// }
/// drop(bus);
/// let seen: Vec<String> = ticks
///     .into_iter()
///     .map(|item| match item {
///         Received::Missed(n) => format!("missed {n}"),
///         Received::Event(tick) => tick.0.to_string(),
///     })
///     .collect();
/// assert_eq!(seen, ["missed 3", "0", "1"]);
/// ```
#[derive(Debug)]
#[must_use = "a subscription receives nothing unless it is read"]
pub struct WithGaps<S> {
    subscription: S,
}

impl<S> WithGaps<S> {
    pub(crate) fn new(subscription: S) -> Self {
        Self { subscription }
    }

    /// The subscription inside.
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
    /// This subscription as a receive loop that also reports what it missed:
    /// a [`Stream`] (and, through `IntoIterator`, a blocking iterator) of
    /// [`Received`] items, with a [`Received::Missed`] before the next event
    /// whenever events were missed.
    pub fn with_gaps(self) -> WithGaps<Self> {
        WithGaps::new(self)
    }
}

impl<T: Event> TypedSubscription<T> {
    /// This subscription as a receive loop that also reports what it missed.
    /// See [`Subscription::with_gaps`].
    pub fn with_gaps(self) -> WithGaps<Self> {
        WithGaps::new(self)
    }
}

/// What both subscription types offer a gap-reporting loop.
trait Receive {
    type Item;
    fn take_missed(&self) -> u64;
    fn recv_next(&self) -> Option<Self::Item>;
    fn poll_next_item(&self, cx: &mut Context<'_>) -> Poll<Option<Self::Item>>;
}

impl Receive for Subscription {
    type Item = Arc<dyn Event>;
    fn take_missed(&self) -> u64 {
        Subscription::take_missed(self)
    }
    fn recv_next(&self) -> Option<Self::Item> {
        self.recv().ok()
    }
    fn poll_next_item(&self, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_recv(cx)
    }
}

impl<T: Event> Receive for TypedSubscription<T> {
    type Item = Arc<T>;
    fn take_missed(&self) -> u64 {
        TypedSubscription::take_missed(self)
    }
    fn recv_next(&self) -> Option<Self::Item> {
        self.recv().ok()
    }
    fn poll_next_item(&self, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_recv(cx)
    }
}

/// The next item once `next` produced an event or the end: a miss counted
/// meanwhile comes first (and, at the end, last).
fn gap_or<T, S: Receive>(subscription: &S, next: Option<T>) -> Option<Received<T>> {
    match next {
        Some(event) => Some(Received::Event(event)),
        None => match subscription.take_missed() {
            0 => None,
            missed => Some(Received::Missed(missed)),
        },
    }
}

/// Blocks until there is something to report.
fn next_blocking<S: Receive>(subscription: &S) -> Option<Received<S::Item>> {
    match subscription.take_missed() {
        0 => gap_or(subscription, subscription.recv_next()),
        missed => Some(Received::Missed(missed)),
    }
}

fn poll_next_delivery<S: Receive>(
    subscription: &S,
    cx: &mut Context<'_>,
) -> Poll<Option<Received<S::Item>>> {
    match subscription.take_missed() {
        0 => subscription
            .poll_next_item(cx)
            .map(|next| gap_or(subscription, next)),
        missed => Poll::Ready(Some(Received::Missed(missed))),
    }
}

/// The blocking iterator of a [`WithGaps`]; see its [`IntoIterator`].
#[derive(Debug)]
pub struct GapsIter<S> {
    subscription: S,
}

impl IntoIterator for WithGaps<Subscription> {
    type Item = Received<Arc<dyn Event>>;
    type IntoIter = GapsIter<Subscription>;

    fn into_iter(self) -> Self::IntoIter {
        GapsIter {
            subscription: self.subscription,
        }
    }
}

impl<T: Event> IntoIterator for WithGaps<TypedSubscription<T>> {
    type Item = Received<Arc<T>>;
    type IntoIter = GapsIter<TypedSubscription<T>>;

    fn into_iter(self) -> Self::IntoIter {
        GapsIter {
            subscription: self.subscription,
        }
    }
}

impl Iterator for GapsIter<Subscription> {
    type Item = Received<Arc<dyn Event>>;

    /// Blocks until there is something to report.
    fn next(&mut self) -> Option<Self::Item> {
        next_blocking(&self.subscription)
    }
}

impl<T: Event> Iterator for GapsIter<TypedSubscription<T>> {
    type Item = Received<Arc<T>>;

    /// Blocks until there is something to report.
    fn next(&mut self) -> Option<Self::Item> {
        next_blocking(&self.subscription)
    }
}

impl Stream for WithGaps<Subscription> {
    type Item = Received<Arc<dyn Event>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        poll_next_delivery(&self.subscription, cx)
    }
}

impl<T: Event> Stream for WithGaps<TypedSubscription<T>> {
    type Item = Received<Arc<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        poll_next_delivery(&self.subscription, cx)
    }
}
