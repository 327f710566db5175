//! What the core hands [`EventBus::stats`](crate::EventBus::stats): plain
//! copies of its counters, and the request counters they are read from. The
//! public `stats` module composes and formats them; the core knows nothing of
//! it.

use crate::options::Filter;
use crate::sync::{AtomicU64, Ordering};

use super::subscriber::Subscriber;

/// What a subscriber filters on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscriberKind {
    /// Every event.
    Universal,
    /// Events whose `event_type()` is in a list of strings.
    EventTypes,
    /// Events of a set of Rust types (by `TypeId`).
    RustTypes,
    /// The bus's own route for one response type: it passes each response to
    /// the request waiting for it (see [`EventBus::request`](crate::EventBus::request)).
    Route,
}

/// One subscriber's counters, from [`EventBus::stats`](crate::EventBus::stats).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriberStats {
    /// The subscriber's name.
    pub name: String,
    /// What it filters on.
    pub kind: SubscriberKind,
    /// The filter's types joined by commas (empty for universal subscribers).
    pub event_types: String,
    /// Whether its drops are observability drops (no callback).
    pub lossy: bool,
    /// Whether it was made [`leader_only`](crate::SubscribeOptions::leader_only).
    pub leader_only: bool,
    /// How many events its buffer holds.
    pub capacity: usize,
    /// Events queued now.
    pub queued: usize,
    /// Events queued for it so far (received plus queued now).
    pub delivered: u64,
    /// Events it missed because its buffer was full.
    pub dropped: u64,
    /// Delivered events that `drain_coalesced` skipped because a later event
    /// of the same type superseded them.
    pub coalesced: u64,
}

impl SubscriberStats {
    /// A copy of `subscriber`'s counters now.
    pub(crate) fn of(subscriber: &Subscriber) -> Self {
        let state = subscriber.state();
        let queued = subscriber.queued();
        Self {
            name: state.name.to_string(),
            kind: match state.filter {
                _ if state.routed => SubscriberKind::Route,
                Filter::All => SubscriberKind::Universal,
                Filter::EventTypes(_) => SubscriberKind::EventTypes,
                Filter::RustTypes(_) => SubscriberKind::RustTypes,
            },
            event_types: state.filter_label.to_string(),
            lossy: state.lossy,
            leader_only: state.leader_only,
            capacity: state.capacity,
            queued,
            delivered: state.received.load(Ordering::Relaxed) + queued as u64,
            dropped: state.dropped.load(Ordering::Relaxed),
            coalesced: state.coalesced.load(Ordering::Relaxed),
        }
    }
}

/// How the requests made on a bus ended, from
/// [`BusStats::requests`](crate::BusStats::requests).
///
/// Each request is counted once, when it ends. Responses are counted as they
/// are published: those a waiting request took are in its result; the others
/// are counted here, never silently lost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestStats {
    /// Requests whose quorum was met.
    pub answered: u64,
    /// Requests that timed out first.
    pub timed_out: u64,
    /// Requests cancelled first.
    pub cancelled: u64,
    /// Requests that reached no subscriber on a running bus, and failed at once.
    pub no_responders: u64,
    /// Responses published after the request they answer had ended (or for a
    /// request id nobody was waiting for): discarded.
    pub late_responses: u64,
    /// Responses to a waiting request from a responder it did not expect, or
    /// from one that had answered already: not counted toward its quorum.
    pub ignored_responses: u64,
}

/// The bus's request counters, written as requests end and responses are
/// routed; read by `stats()`.
#[derive(Default)]
pub(crate) struct RequestCounters {
    pub(crate) answered: AtomicU64,
    pub(crate) timed_out: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) no_responders: AtomicU64,
    pub(crate) late_responses: AtomicU64,
    pub(crate) ignored_responses: AtomicU64,
}

impl RequestCounters {
    /// Adds one to `counter` (`Relaxed`: each counter is exact on its own;
    /// design, "Memory orders").
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> RequestStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RequestStats {
            answered: read(&self.answered),
            timed_out: read(&self.timed_out),
            cancelled: read(&self.cancelled),
            no_responders: read(&self.no_responders),
            late_responses: read(&self.late_responses),
            ignored_responses: read(&self.ignored_responses),
        }
    }
}
