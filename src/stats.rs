//! A point-in-time snapshot of the bus's counters, for any metrics system:
//! [`BusStats`] composes what the core copies out (see `core::snapshot`),
//! and formats it as a table.

use std::fmt;

pub use crate::core::{RequestStats, SubscriberKind, SubscriberStats};

impl fmt::Display for SubscriberKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubscriberKind::Universal => "universal",
            SubscriberKind::EventTypes => "types",
            SubscriberKind::RustTypes => "typed",
            SubscriberKind::Route => "route",
        })
    }
}

/// A snapshot of the bus, from [`EventBus::stats`](crate::EventBus::stats).
///
/// Counters are read one by one without stopping publishers, so under load the
/// totals may be a few events apart; each counter on its own is exact.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BusStats {
    /// Whether the bus delivers directly (`false`: buffering).
    pub running: bool,
    /// Events waiting in the pre-start buffer.
    pub pre_start_len: usize,
    /// Events published, buffered ones included.
    pub published: u64,
    /// Events critical subscribers missed because their buffer was full.
    ///
    /// A publish adds its drops to the bus totals once, just before it
    /// returns; so inside the drop callback the totals do not yet include the
    /// drops of the publish being reported, while the subscriber's own count
    /// ([`Subscription::dropped`](crate::Subscription::dropped)) does.
    pub dropped_critical: u64,
    /// Events lossy (observability) subscribers missed; counted like
    /// [`dropped_critical`](Self::dropped_critical).
    pub dropped_observability: u64,
    /// Events dropped because the bus was buffering and its pre-start buffer
    /// was full.
    pub dropped_pre_start: u64,
    /// Events retained now: the latest retained event of each type (see
    /// [`EventBus::publish_retained`](crate::EventBus::publish_retained)).
    pub retained: usize,
    /// How requests ended, and the responses nobody was waiting for.
    pub requests: RequestStats,
    /// Every subscriber, in subscription order: the user's, and the routes
    /// the bus keeps for request responses ([`SubscriberKind::Route`]).
    pub subscribers: Vec<SubscriberStats>,
}

impl BusStats {
    /// All events dropped: critical + observability + pre-start (Go's
    /// `DroppedEvents`).
    pub fn dropped(&self) -> u64 {
        self.dropped_critical + self.dropped_observability + self.dropped_pre_start
    }

    /// How many subscriptions the bus had: the user's, not the routes the bus
    /// keeps for request responses.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers
            .iter()
            .filter(|s| s.kind != SubscriberKind::Route)
            .count()
    }
}

impl fmt::Display for BusStats {
    /// A readable table, one line per subscriber.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "bus: {}, {} subscribers, {} published, {} pre-start queued, {} retained; dropped: {} critical, {} observability, {} pre-start",
            if self.running { "running" } else { "buffering" },
            self.subscriber_count(),
            self.published,
            self.pre_start_len,
            self.retained,
            self.dropped_critical,
            self.dropped_observability,
            self.dropped_pre_start,
        )?;
        let requests = &self.requests;
        if *requests != RequestStats::default() {
            writeln!(
                f,
                "requests: {} answered, {} timed out, {} cancelled, {} no responders; responses: {} late, {} ignored",
                requests.answered,
                requests.timed_out,
                requests.cancelled,
                requests.no_responders,
                requests.late_responses,
                requests.ignored_responses,
            )?;
        }
        let width = self
            .subscribers
            .iter()
            .map(|s| s.name.len())
            .chain([10])
            .max()
            .unwrap_or(10);
        writeln!(
            f,
            "  {:<width$}  {:<9}  {:<8}  {:>8}  {:>7}  {:>10}  {:>8}  {:>9}  filter",
            "subscriber",
            "kind",
            "delivery",
            "capacity",
            "queued",
            "delivered",
            "dropped",
            "coalesced"
        )?;
        for s in &self.subscribers {
            let delivery = match (s.lossy, s.leader_only) {
                (true, true) => "lossy,l",
                (true, false) => "lossy",
                (false, true) => "leader",
                (false, false) => "critical",
            };
            writeln!(
                f,
                "  {:<width$}  {:<9}  {:<8}  {:>8}  {:>7}  {:>10}  {:>8}  {:>9}  {}",
                s.name,
                s.kind.to_string(),
                delivery,
                s.capacity,
                s.queued,
                s.delivered,
                s.dropped,
                s.coalesced,
                s.event_types
            )?;
        }
        Ok(())
    }
}
