//! Error types: each says what went wrong and what to do about it.

use std::error::Error;
use std::fmt;

/// Why a subscription could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The capacity is larger than [`MAX_CAPACITY`](crate::MAX_CAPACITY).
    CapacityTooLarge {
        /// The capacity asked for.
        requested: usize,
        /// The largest accepted size.
        max: usize,
    },
    /// A type filter was given with no types in it.
    EmptyTypeList,
    /// Both a string filter and a Rust-type filter were given.
    MixedFilters,
}

impl fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubscribeError::CapacityTooLarge { requested, max } => write!(
                f,
                "subscription capacity of {requested} events exceeds the maximum of {max}: \
                 use a smaller capacity, a faster consumer, or a lossy subscription"
            ),
            SubscribeError::EmptyTypeList => f.write_str(
                "type filter is empty, so the subscription would never receive anything: \
                 name at least one type, or use subscribe() to receive every event",
            ),
            SubscribeError::MixedFilters => f.write_str(
                "a subscription filters either by event_type() strings or by Rust types, \
                 not both: make two subscriptions",
            ),
        }
    }
}

impl Error for SubscribeError {}

/// The subscription is closed: the bus was dropped or the subscription was
/// unsubscribed, and every event queued before that has been received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvError;

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("subscription closed: the bus was dropped or the subscription unsubscribed")
    }
}

impl Error for RecvError {}

/// Why [`try_recv`](crate::Subscription::try_recv) returned no event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing is queued right now.
    Empty,
    /// The subscription is closed and drained (see [`RecvError`]).
    Closed,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("no event queued"),
            TryRecvError::Closed => RecvError.fmt(f),
        }
    }
}

impl Error for TryRecvError {}

/// Why [`recv_timeout`](crate::Subscription::recv_timeout) returned no event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvTimeoutError {
    /// No event arrived in time.
    Timeout,
    /// The subscription is closed and drained (see [`RecvError`]).
    Closed,
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("timed out waiting for an event"),
            RecvTimeoutError::Closed => RecvError.fmt(f),
        }
    }
}

impl Error for RecvTimeoutError {}
