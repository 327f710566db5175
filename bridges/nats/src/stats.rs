//! The bridge's counters: every event that crossed, and every one that did
//! not, by type and direction.
//!
//! Counters are atomics updated by the bridge's tasks; [`BridgeStats`] is a
//! snapshot of them, read one by one (each exact, the set a few events apart
//! under load), for any metrics system. Its `Display` is a table.
//!
//! Whatever goes wrong is counted and logged through one macro,
//! [`warn_counted!`], which logs a flood as a handful of lines.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::Delivery;

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// A count that [`warn_counted!`] adds to: a shared counter or a task's own
/// (one more), or a shared counter and how many more (`(&counter, n)`).
pub(crate) trait Counter {
    /// Adds to the count; the count before and after.
    fn add_counted(self) -> (u64, u64);
}

impl Counter for &AtomicU64 {
    fn add_counted(self) -> (u64, u64) {
        (self, 1).add_counted()
    }
}

impl Counter for (&AtomicU64, u64) {
    fn add_counted(self) -> (u64, u64) {
        let (counter, n) = self;
        let before = counter.fetch_add(n, Ordering::Relaxed);
        (before, before.saturating_add(n))
    }
}

impl Counter for &mut u64 {
    fn add_counted(self) -> (u64, u64) {
        let before = *self;
        *self += 1;
        (before, *self)
    }
}

/// Whether a count going from `before` to `after` reached a power of two
/// (the 1st, 2nd, 4th, 8th... occurrence, when counting one at a time).
pub(crate) fn reached_a_power_of_two(before: u64, after: u64) -> bool {
    before.leading_zeros() > after.leading_zeros()
}

/// Counts in `$counter` (a [`Counter`]) and logs it with
/// `tracing::warn!($($warn)+)`, with the `count` so far, each time the count
/// reaches a power of two (the 1st, 2nd, 4th, 8th... occurrence): whatever
/// a peer sends, a flood logs a handful of lines, not one each. Every site
/// that counts something gone wrong and logs it goes through here.
///
/// `warn_counted!(each: $counter, ..)` logs every occurrence, with its count:
/// for state changes a peer cannot repeat at will (a consumer or a bucket
/// created again, a client rebuilt), where each line matters.
macro_rules! warn_counted {
    (each: $counter:expr, $($warn:tt)+) => {{
        let (_, count) = $crate::stats::Counter::add_counted($counter);
        tracing::warn!(count, $($warn)+);
    }};
    ($counter:expr, $($warn:tt)+) => {{
        let (before, count) = $crate::stats::Counter::add_counted($counter);
        if $crate::stats::reached_a_power_of_two(before, count) {
            tracing::warn!(count, $($warn)+);
        }
    }};
}
pub(crate) use warn_counted;

/// Declares a snapshot struct of `u64` counters and its atomic twin.
macro_rules! counters {
    (
        $(#[$meta:meta])*
        $snapshot:ident / $atomic:ident {
            $( $(#[$field_meta:meta])* $field:ident ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct $snapshot {
            $( $(#[$field_meta])* pub $field: u64, )*
        }

        #[derive(Debug, Default)]
        pub(crate) struct $atomic {
            $( pub(crate) $field: AtomicU64, )*
        }

        impl $atomic {
            pub(crate) fn snapshot(&self) -> $snapshot {
                $snapshot { $( $field: self.$field.load(Ordering::Relaxed), )* }
            }
        }

        impl $snapshot {
            /// Each counter with its field's name, in declaration order.
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![$( (stringify!($field), self.$field), )*]
            }
        }
    };
}

counters! {
    /// What happened to the local events of one exported type.
    ///
    /// Every event the bridge's bus subscription received is counted in
    /// exactly one of `exported`, `echo_skipped`, `type_mismatch`,
    /// `encode_failed`, `oversized`, `unavailable`, `failed` or `abandoned`
    /// (events the bus could not even queue for the bridge are the bus's
    /// drops: see [`QueueStats::dropped`]).
    ExportCounts / ExportCounters {
        /// Sent: handed to the NATS client (at-most-once) or stored by
        /// JetStream, acknowledged (at-least-once).
        exported,
        /// At-least-once: acknowledgements that JetStream flagged as
        /// duplicates (a retry of an event it had already stored; counted in
        /// `exported` too).
        server_duplicates,
        /// At-least-once: publish attempts repeated after an error or a
        /// missing acknowledgement (the same message id each time).
        retries,
        /// Not sent: this bridge had imported the event (re-exporting it
        /// would send it back and forth between processes).
        echo_skipped,
        /// Not sent: the event's `event_type()` differs from the type it was
        /// configured with.
        type_mismatch,
        /// Not sent: the codec failed to encode the event.
        encode_failed,
        /// Not sent: the encoded message exceeds the server's `max_payload`.
        oversized,
        /// Not sent (at-most-once): the client was not connected, so the
        /// event was dropped rather than queued for a later reconnect.
        unavailable,
        /// Not sent: the publish failed for another reason (see the log).
        failed,
        /// Not sent: still queued, or (at-least-once) unacknowledged after
        /// its last attempt, when the bridge stopped; such an event may
        /// still have been stored.
        abandoned,
    }
}

counters! {
    /// What happened to the messages of one imported type.
    ///
    /// Every message routed to the type is counted in `received` and in
    /// exactly one of `imported`, `own_echo`, `duplicates`, `malformed`,
    /// `type_mismatch`, `oversized`, `decode_failed` or (JetStream)
    /// `held_back` (the last until it comes back). On JetStream, each message
    /// counted in `malformed`, `type_mismatch`, `oversized` or
    /// `decode_failed` is also in `dead_lettered` once stored there, and an
    /// `imported` event that a local subscriber abandoned is also in
    /// `abandoned` (its redelivery is counted again).
    ///
    /// Losses: `missed - late` events of this type's publishers never
    /// arrived (gaps in their numbers that no later arrival filled); the
    /// difference never goes negative, across restarts too, because only an
    /// arrival that fills a counted gap is `late`.
    ImportCounts / ImportCounters {
        /// Messages that arrived on the type's subject.
        received,
        /// Events published into the local bus, including the `late` and
        /// `unordered` ones. At-most-once: as `publish` does (a full
        /// subscriber drops it, counted by the bus; before `start`, buffered).
        /// At-least-once: with the waiting publish (a full critical
        /// subscriber is waited for; before `start`, the bus is), once more
        /// for each redelivery of an `abandoned` event.
        imported,
        /// Skipped: exported by this very bridge.
        own_echo,
        /// Skipped: an event already imported, by (`ce-source`, `ce-id`)
        /// (a JetStream redelivery or a republished event).
        duplicates,
        /// Not imported: missing or invalid CloudEvents headers (a foreign
        /// message), or (JetStream) a header block the client cannot parse.
        malformed,
        /// Not imported: `ce-type` names another type than the subject's.
        type_mismatch,
        /// Not imported: the payload exceeds the bridge's `max_import_bytes`.
        oversized,
        /// Not imported: the codec could not decode the payload.
        decode_failed,
        /// JetStream: messages that could not be imported, stored in the
        /// prefix's dead-letter stream ([`Bridge::dead_letters`](crate::Bridge::dead_letters)).
        dead_lettered,
        /// Events of this type that were sent by an exporter but had not
        /// arrived when a later one of the same exporter did: gaps in its
        /// event ids' numbers (lost by the network, the server, or the
        /// client's full subscription buffer).
        missed,
        /// Events imported that filled a gap counted in `missed`.
        late,
        /// Events imported after a later event of their exporter without a
        /// counted gap: redeliveries after the importer restarted (it does not
        /// know what it saw before), events behind a `jump`, or a republished
        /// id.
        unordered,
        /// Events whose number jumped further ahead of their exporter's
        /// previous one than the dedup window: counted as a new start of the
        /// exporter's numbering, not as that many missed events (no exporter
        /// loses so many at once; a forged id can claim it).
        jumps,
        /// JetStream: times a message was held back, unacknowledged, because
        /// an earlier event of its publisher had not arrived yet; it is tried
        /// again (and counted in `received` again) whenever an import may have
        /// filled the gap, until it goes in.
        held_back,
        /// JetStream: acknowledgements that could not be sent (the message
        /// comes back and is recognised as a duplicate).
        ack_failed,
        /// JetStream: imported events that a local critical subscriber
        /// abandoned (rejected its `Delivery`, dropped it while panicking, or
        /// unsubscribed with it unread). The message is turned back and
        /// imported again, to every subscriber; if the server had already
        /// given up on it, nothing delivers it again (counted in
        /// [`ConsumerCounts::lost`] too).
        abandoned,
        /// Messages whose trace context (`traceparent`, `tracestate`) was
        /// not valid W3C Trace Context: ignored, never a reason not to
        /// import (an invalid `traceparent` leaves the event without a
        /// context, an invalid `tracestate` is dropped and the
        /// `traceparent` kept). Counted besides the message's fate, for
        /// messages that got as far as decoding.
        trace_invalid,
    }
}

counters! {
    /// The at-least-once importer's durable consumer, and the streams the
    /// bridge writes and reads: what the server forgot or gave up on.
    ConsumerCounts / ConsumerCounters {
        /// Times the consumer was gone from the server (a restart without its
        /// store, a deletion) and was created again at the first message not
        /// acknowledged.
        recreated,
        /// Of those, times the stream itself was a new one: the importer read
        /// it from its start; what the old stream held unread is gone, and is
        /// counted per publisher in [`ImportCounts::missed`].
        new_streams,
        /// Stream messages (of any type the stream holds) lost to this
        /// importer: removed from the stream (expired, purged, deleted) before
        /// it read them, or given up by the server and unreadable afterwards.
        lost,
        /// Messages the server gave up delivering after `max_deliver`
        /// attempts (its max-deliveries advisory), read back through the
        /// message API and imported or sent to the dead letters.
        gave_up,
        /// Dead letters of messages that belong to no imported type.
        dead_lettered,
        /// Dead letters that could not be stored (the message comes again).
        dead_letter_failed,
        /// Acknowledgements of unrouted messages that could not be sent.
        ack_failed,
        /// Times the consumer's NATS client was built again because its
        /// connection task had ended (async-nats panics on a header value
        /// holding a lone carriage return).
        client_rebuilt,
        /// Streams (the prefix's, its dead letters) found broken and deleted,
        /// to be created again, by this bridge, exporting or importing: created
        /// while nats-server was still deleting the stream of the same name,
        /// such a stream lost its directory with the old one, and would
        /// acknowledge nothing or store what no consumer can read.
        streams_replaced,
    }
}

counters! {
    /// Messages that reached the bridge but belong to no imported type.
    UnroutedCounts / UnroutedCounters {
        /// JetStream: messages on a subject outside the bridge's prefix (the
        /// stream captures more subjects than the prefix's).
        outside_prefix,
        /// JetStream: messages of an event type this bridge does not import
        /// (acknowledged and skipped; the stream holds every type under the prefix).
        not_imported,
    }
}

counters! {
    /// Scatter-gather requests across processes, on both sides.
    ///
    /// A sent request ends in exactly one of `completed`, `timed_out`,
    /// `cancelled`, `rejected` or `no_responders` (or in none if its future
    /// is dropped or the bridge stops first). A request from another
    /// process is counted in `served` or in `served_rejected`.
    RequestCounts / RequestCounters {
        /// Requests this bridge sent.
        sent,
        /// Sent requests whose quorum answered in time.
        completed,
        /// Sent requests that timed out (with a partial result).
        timed_out,
        /// Sent requests cancelled by their token.
        cancelled,
        /// Sent requests that a serving bridge rejected (and said so): too
        /// many requests in flight there, or a request it could not read.
        rejected,
        /// Sent requests that no process subscribed to ("no responders").
        no_responders,
        /// Responses received that counted.
        responses,
        /// Responses received that did not count: another request's, an
        /// unexpected responder's, a responder's second, or undecodable.
        responses_ignored,
        /// Requests from other processes published into the local bus.
        served,
        /// Requests from other processes rejected: no reply subject,
        /// malformed headers, an undecodable payload, too large, or
        /// `max_pending_requests` already in flight.
        served_rejected,
        /// Rejected requests whose requester was told why (all but those
        /// without a reply subject, and those whose reply failed: see
        /// `replies_failed`).
        rejections_sent,
        /// Served requests forgotten before their TTL because their
        /// requester said it was done; the others are kept until it expires.
        served_done,
        /// Local responses sent back to a requesting process.
        replies_sent,
        /// Local responses, or rejections, that could not be sent back
        /// (encode or publish error).
        replies_failed,
        /// Requests served and responses received whose trace context was
        /// not valid W3C Trace Context: ignored, the request or response
        /// taken without it (or without its `tracestate`).
        trace_invalid,
    }
}

/// The bridge's NATS connections: the main one, and the one the
/// at-least-once importer's consumer reads on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientCounts {
    /// Connections established (the first one and every reconnect), from
    /// the client's own statistics.
    pub connects: u64,
    /// Connections lost: every connection but the current one.
    pub disconnects: u64,
    /// `connects` of the consumer's connection.
    pub consumer_connects: u64,
    /// `disconnects` of the consumer's connection (one per delivery of a
    /// message whose headers the client cannot parse, among others).
    pub consumer_disconnects: u64,
    /// Messages the client dropped because a subscription's buffer was
    /// full (one "slow consumer" event each; a lower bound if the client's
    /// own event queue overflowed too).
    pub slow_consumer: u64,
    /// Errors the server reported (`-ERR`), e.g. authorization violations.
    pub server_errors: u64,
    /// Announcements of another live bridge with this bridge's name on this
    /// prefix, heard after both had started (see [`BridgeError::NameTaken`](crate::BridgeError::NameTaken)).
    pub name_conflicts: u64,
    /// Whether the main connection's client has stopped for good: its
    /// connection task ended (async-nats panics on a header value holding a
    /// lone carriage return) and nothing is sent or received any more. Drop
    /// the bridge and connect a new one; subject permissions keep such
    /// messages out (see the crate's trust model).
    pub stopped_for_good: bool,
}

impl ClientCounts {
    /// Each counter with its field's name (`stopped_for_good` as 0 or 1).
    pub fn fields(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("connects", self.connects),
            ("disconnects", self.disconnects),
            ("consumer_connects", self.consumer_connects),
            ("consumer_disconnects", self.consumer_disconnects),
            ("slow_consumer", self.slow_consumer),
            ("server_errors", self.server_errors),
            ("name_conflicts", self.name_conflicts),
            ("stopped_for_good", u64::from(self.stopped_for_good)),
        ]
    }
}

/// The event-driven part of [`ClientCounts`].
#[derive(Debug, Default)]
pub(crate) struct ClientCounters {
    pub(crate) slow_consumer: AtomicU64,
    pub(crate) server_errors: AtomicU64,
}

/// One exported type's counters.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportStats {
    /// The event type, as configured.
    pub event_type: String,
    /// The Rust type.
    pub rust_type: &'static str,
    /// How it is delivered.
    pub delivery: Delivery,
    /// The counters.
    pub counts: ExportCounts,
}

/// One imported type's counters.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportStats {
    /// The event type, as configured.
    pub event_type: String,
    /// The Rust type.
    pub rust_type: &'static str,
    /// How it arrives.
    pub delivery: Delivery,
    /// The counters.
    pub counts: ImportCounts,
}

/// The bus subscription that feeds one delivery mode's exports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// The delivery mode it feeds.
    pub delivery: Delivery,
    /// The subscriber's name on the bus.
    pub subscriber: String,
    /// Whether it is lossy (drops only counted) or critical (drops also
    /// reported to the bus's drop callback).
    pub lossy: bool,
    /// Its capacity.
    pub capacity: usize,
    /// Events waiting in it now.
    pub queued: usize,
    /// Events the bus could not queue for the bridge because the queue was
    /// full: local drops, counted by the bus like any subscriber's.
    pub dropped: u64,
}

/// A snapshot of a bridge's counters, from [`Bridge::stats`](crate::Bridge::stats).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeStats {
    /// The bridge's name (its CloudEvents source).
    pub name: String,
    /// Exported types, in configuration order.
    pub exports: Vec<ExportStats>,
    /// The export queues, one per delivery mode in use.
    pub queues: Vec<QueueStats>,
    /// Imported types, in configuration order.
    pub imports: Vec<ImportStats>,
    /// Messages that belong to no imported type.
    pub unrouted: UnroutedCounts,
    /// Requests across processes.
    pub requests: RequestCounts,
    /// The connection.
    pub client: ClientCounts,
    /// The at-least-once importer's durable consumer.
    pub consumer: ConsumerCounts,
}

impl BridgeStats {
    /// The counters of the exported event type `event_type`.
    pub fn export(&self, event_type: &str) -> Option<&ExportCounts> {
        self.exports
            .iter()
            .find(|s| s.event_type == event_type)
            .map(|s| &s.counts)
    }

    /// The counters of the imported event type `event_type`.
    pub fn import(&self, event_type: &str) -> Option<&ImportCounts> {
        self.imports
            .iter()
            .find(|s| s.event_type == event_type)
            .map(|s| &s.counts)
    }

    /// The export queue of `delivery`, if any type uses it.
    pub fn queue(&self, delivery: Delivery) -> Option<&QueueStats> {
        self.queues.iter().find(|q| q.delivery == delivery)
    }
}

impl fmt::Display for BridgeStats {
    /// A table: one line per exported type, export queue and imported type,
    /// then the unrouted, request and connection counters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "bridge {}", self.name)?;
        for s in &self.exports {
            let c = &s.counts;
            writeln!(
                f,
                "  export {:<20} {:<13} exported {} (server dup {}, retries {}) | echo skipped {} | \
                 not sent: mismatch {}, encode {}, oversized {}, unavailable {}, failed {}, abandoned {}",
                s.event_type,
                s.delivery,
                c.exported,
                c.server_duplicates,
                c.retries,
                c.echo_skipped,
                c.type_mismatch,
                c.encode_failed,
                c.oversized,
                c.unavailable,
                c.failed,
                c.abandoned
            )?;
        }
        for q in &self.queues {
            writeln!(
                f,
                "  queue  {:<20} {:<13} {} capacity {}, queued {}, dropped {}",
                q.subscriber,
                q.delivery,
                if q.lossy { "lossy" } else { "critical" },
                q.capacity,
                q.queued,
                q.dropped
            )?;
        }
        for s in &self.imports {
            let c = &s.counts;
            writeln!(
                f,
                "  import {:<20} {:<13} received {}, imported {} | skipped: own {}, dup {} | not \
                 imported: malformed {}, mismatch {}, oversized {}, decode {}, dead-lettered {} | \
                 missed {} (late {}), unordered {}, jumps {} | held back {} | ack failed {} | \
                 abandoned {} | trace invalid {}",
                s.event_type,
                s.delivery,
                c.received,
                c.imported,
                c.own_echo,
                c.duplicates,
                c.malformed,
                c.type_mismatch,
                c.oversized,
                c.decode_failed,
                c.dead_lettered,
                c.missed,
                c.late,
                c.unordered,
                c.jumps,
                c.held_back,
                c.ack_failed,
                c.abandoned,
                c.trace_invalid
            )?;
        }
        let u = &self.unrouted;
        let r = &self.requests;
        let c = &self.client;
        writeln!(
            f,
            "  unrouted: outside prefix {}, not imported {}",
            u.outside_prefix, u.not_imported
        )?;
        writeln!(
            f,
            "  requests: sent {} (completed {}, timed out {}, cancelled {}, rejected {}, \
             no responders {}), responses {} (ignored {}) | served {} (rejected {}, told {}; \
             done early {}), replies {} (failed {}) | trace invalid {}",
            r.sent,
            r.completed,
            r.timed_out,
            r.cancelled,
            r.rejected,
            r.no_responders,
            r.responses,
            r.responses_ignored,
            r.served,
            r.served_rejected,
            r.rejections_sent,
            r.served_done,
            r.replies_sent,
            r.replies_failed,
            r.trace_invalid
        )?;
        writeln!(
            f,
            "  client: connects {}, disconnects {}, slow consumer {}, server errors {}, name \
             conflicts {}{} | consumer connection: connects {}, disconnects {}",
            c.connects,
            c.disconnects,
            c.slow_consumer,
            c.server_errors,
            c.name_conflicts,
            if c.stopped_for_good {
                ", STOPPED FOR GOOD"
            } else {
                ""
            },
            c.consumer_connects,
            c.consumer_disconnects
        )?;
        let d = &self.consumer;
        writeln!(
            f,
            "  consumer: recreated {} (new streams {}), lost {}, gave up {}, dead-lettered unrouted \
             {}, dead letters failed {}, ack failed {}, client rebuilt {}, broken streams \
             replaced {}",
            d.recreated,
            d.new_streams,
            d.lost,
            d.gave_up,
            d.dead_lettered,
            d.dead_letter_failed,
            d.ack_failed,
            d.client_rebuilt,
            d.streams_replaced
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The counts at which a run of additions logs.
    fn logged_at(additions: &[u64]) -> Vec<u64> {
        let counter = AtomicU64::new(0);
        additions
            .iter()
            .filter_map(|&n| {
                let (before, after) = (&counter, n).add_counted();
                reached_a_power_of_two(before, after).then_some(after)
            })
            .collect()
    }

    #[test]
    fn one_at_a_time_logs_at_each_power_of_two() {
        assert_eq!(
            logged_at(&[1; 1000]),
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
        );
        let mut own = 0;
        let logged: Vec<u64> = (0..9)
            .filter_map(|_| {
                let (before, after) = (&mut own).add_counted();
                reached_a_power_of_two(before, after).then_some(after)
            })
            .collect();
        assert_eq!(logged, [1, 2, 4, 8]);
    }

    #[test]
    fn several_at_once_log_when_the_count_passes_a_power_of_two() {
        // 5 passes 1, 2 and 4 at once: one line; 6 none; 9 passes 8; 1009 passes 16..512.
        assert_eq!(logged_at(&[5, 1, 3, 1000, 0]), [5, 9, 1009]);
        assert_eq!(logged_at(&[0]), [0; 0], "nothing counted, nothing logged");
        let counter = AtomicU64::new(u64::MAX - 1);
        assert_eq!((&counter, 1).add_counted(), (u64::MAX - 1, u64::MAX));
    }
}
