//! What a bridge is configured with, apart from its event types: delivery
//! modes, export queues, JetStream settings, and what is wrong with a
//! configuration.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use crate::subject::SubjectError;

/// The default subject prefix.
pub const DEFAULT_PREFIX: &str = "sb";

/// The default largest payload an importer accepts: 1 MiB, the server's
/// default `max_payload`.
pub const DEFAULT_MAX_IMPORT_BYTES: usize = 1 << 20;

/// The default most requests from other processes a serving bridge keeps
/// in flight at once: see [`BridgeBuilder::max_pending_requests`](crate::BridgeBuilder::max_pending_requests).
pub const DEFAULT_MAX_PENDING_REQUESTS: usize = 65_536;

/// How one event type crosses processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Core NATS publish/subscribe: fast, no storage, no acknowledgement. An
    /// event is lost if the server, the network or a subscriber is down or
    /// too slow at that moment; the importer counts what it detects as
    /// missing. For observability traffic that may be lossy.
    AtMostOnce,
    /// JetStream: the exporter retries until the stream has stored the event
    /// (one message id per event, deduplicated by the server); the
    /// importer's durable consumer publishes it into the local bus waiting
    /// for room at full critical subscribers, and acknowledges it only once
    /// every critical subscriber that received it has finished with it (an
    /// abandoned event is delivered again); redeliveries of an id already
    /// imported are skipped. For what must not be lost.
    AtLeastOnce,
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Delivery::AtMostOnce => "at-most-once",
            Delivery::AtLeastOnce => "at-least-once",
        })
    }
}

/// The bus subscription that feeds one delivery mode's exports: an ordinary
/// subscriber, whose local drops the bus counts like any other's.
///
/// ```
/// use switchboard_nats::ExportQueue;
///
/// let queue = ExportQueue::critical(4096);
/// assert!(!queue.lossy);
/// assert_eq!(ExportQueue::lossy(64).capacity, 64);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportQueue {
    /// How many events may wait for the bridge (at least 1, at most
    /// [`switchboard::MAX_CAPACITY`]).
    pub capacity: usize,
    /// Whether the bus counts drops as observability drops only (`true`) or
    /// also reports them to its drop callback (`false`, critical).
    pub lossy: bool,
}

impl ExportQueue {
    /// The default capacity of an export queue.
    pub const DEFAULT_CAPACITY: usize = 4096;

    /// A critical queue: the bus reports its drops to the drop callback.
    pub fn critical(capacity: usize) -> Self {
        Self {
            capacity,
            lossy: false,
        }
    }

    /// A lossy queue: the bus only counts its drops.
    pub fn lossy(capacity: usize) -> Self {
        Self {
            capacity,
            lossy: true,
        }
    }

    /// The default for `delivery`: lossy for [`Delivery::AtMostOnce`]
    /// (observability traffic), critical for [`Delivery::AtLeastOnce`], both
    /// of [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY).
    pub fn default_for(delivery: Delivery) -> Self {
        match delivery {
            Delivery::AtMostOnce => Self::lossy(Self::DEFAULT_CAPACITY),
            Delivery::AtLeastOnce => Self::critical(Self::DEFAULT_CAPACITY),
        }
    }
}

/// How an exported event's CloudEvents attributes travel
/// ([`BridgeBuilder::content_mode`](crate::BridgeBuilder::content_mode),
/// [`export_with_mode`](crate::BridgeBuilder::export_with_mode)). Importers
/// accept both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContentMode {
    /// Binary mode: the attributes in `ce-` headers, the payload the event
    /// as its codec encodes it. Consumers read the payload as it is.
    #[default]
    Binary,
    /// Structured mode: the attributes and the event in one JSON object in
    /// the payload (`content-type: application/cloudevents+json`, one
    /// header; the data in `data` for JSON codecs, `data_base64` for
    /// others). Cheaper in async-nats, whose costs grow with each header a
    /// message carries, and what CloudEvents tooling that reads only
    /// payloads expects.
    Structured,
}

/// JetStream settings for [`Delivery::AtLeastOnce`] types.
///
/// The bridge uses one stream per prefix, capturing the subjects of the
/// at-least-once types (each bridge adds its own), creating it if it does
/// not exist, and one durable pull consumer per importing
/// bridge, named after the bridge unless [`durable`](Self::durable) says
/// otherwise.
///
/// ```
/// use std::time::Duration;
/// use switchboard_nats::JetStreamOptions;
///
/// let options = JetStreamOptions::default()
///     .replicas(3)
///     .max_age(Duration::from_secs(3600))
///     .ack_wait(Duration::from_secs(5));
/// assert_eq!(options.replicas, 3);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JetStreamOptions {
    /// The stream's name; `None`: the prefix upper-cased with dots as
    /// underscores ([`subject::default_stream_name`](crate::subject::default_stream_name)).
    pub stream: Option<String>,
    /// The stream's replicas when the bridge creates it (1; 3 or 5 in a cluster).
    pub replicas: usize,
    /// How long the stream keeps events when the bridge creates it (24 h):
    /// an importer down for longer misses what expired.
    pub max_age: Duration,
    /// The server's deduplication window when the bridge creates the stream
    /// (2 min): a retry within it is stored once.
    pub duplicate_window: Duration,
    /// The durable consumer's name; `None`: the bridge's name.
    pub durable: Option<String>,
    /// How long the server waits for an importer's acknowledgement before
    /// redelivering (10 s).
    pub ack_wait: Duration,
    /// How many messages the consumer hands out unacknowledged (1000): those
    /// the importer holds back for order, waits to publish, or waits for
    /// the completion of. This is the at-least-once importer's flow control:
    /// while a critical local subscriber is full the importer waits, and the
    /// server stops delivering at this bound. More lets later events go on
    /// past slow ones for longer; less bounds the memory held. Messages
    /// already delivered to the client but not yet reached by a waiting
    /// importer are not marked in progress: keep `ack_wait` above the time
    /// the slowest critical subscriber takes for a few hundred events, or
    /// they come again (skipped as duplicates, each counting a delivery).
    pub max_ack_pending: i64,
    /// How many imported event ids an importer remembers to skip
    /// redeliveries (100 000).
    pub dedup_window: usize,
    /// How long an importer holds back the later events of a publisher while
    /// an earlier one is missing, waiting for its redelivery, before it
    /// counts the missing one as missed and goes on. `None`: as long as the
    /// server may take to deliver a message `max_deliver` times and give up
    /// on it, plus one `ack_wait` (60 s with the defaults).
    pub order_wait: Option<Duration>,
    /// How long the exporter waits for the stream's acknowledgement before
    /// retrying (5 s).
    pub ack_timeout: Duration,
    /// How many events the exporter publishes ahead of the stream's
    /// acknowledgements, per delivery queue (256). A publish that fails is
    /// sent again, with the same message id, before any new event; if later
    /// events were stored meanwhile, the stream holds them ahead of it and
    /// the importer puts them back in order (holding the later ones back
    /// until it arrives: keep the window below half the importers'
    /// `max_ack_pending`, the most they hold back). 1 publishes one event
    /// at a time: the stream then holds each publisher's events in order
    /// even across retries, at a round trip per event.
    pub publish_window: usize,
    /// How many times the server delivers a message to the importer before
    /// it gives up on it (5). The importer then reads that message through
    /// the server's message API and imports it, or sends it to the dead
    /// letters if it cannot be parsed, decoded or validated: a message that
    /// the NATS client cannot even parse never reaches the importer
    /// otherwise. A message read back that way is imported at once, not held
    /// back for its publisher's order (nothing would deliver it again if the
    /// process died while it waited): if its successors went first, it
    /// counts as `late`.
    pub max_deliver: i64,
    /// The waits before each redelivery of an unacknowledged message
    /// (empty: `ack_wait` each time). Fewer entries than `max_deliver`; the
    /// last one repeats.
    pub redelivery_backoff: Vec<Duration>,
}

impl Default for JetStreamOptions {
    fn default() -> Self {
        Self {
            stream: None,
            replicas: 1,
            max_age: Duration::from_secs(24 * 3600),
            duplicate_window: Duration::from_secs(120),
            durable: None,
            ack_wait: Duration::from_secs(10),
            max_ack_pending: 1000,
            dedup_window: 100_000,
            order_wait: None,
            ack_timeout: Duration::from_secs(5),
            publish_window: 256,
            max_deliver: 5,
            redelivery_backoff: Vec::new(),
        }
    }
}

impl JetStreamOptions {
    /// Sets [`stream`](Self::stream).
    #[must_use]
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.stream = Some(name.into());
        self
    }

    /// Sets [`replicas`](Self::replicas).
    #[must_use]
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }

    /// Sets [`max_age`](Self::max_age).
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Sets [`duplicate_window`](Self::duplicate_window).
    #[must_use]
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// Sets [`durable`](Self::durable).
    #[must_use]
    pub fn durable(mut self, name: impl Into<String>) -> Self {
        self.durable = Some(name.into());
        self
    }

    /// Sets [`ack_wait`](Self::ack_wait).
    #[must_use]
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// Sets [`max_ack_pending`](Self::max_ack_pending).
    #[must_use]
    pub fn max_ack_pending(mut self, max: i64) -> Self {
        self.max_ack_pending = max;
        self
    }

    /// Sets [`dedup_window`](Self::dedup_window).
    #[must_use]
    pub fn dedup_window(mut self, ids: usize) -> Self {
        self.dedup_window = ids;
        self
    }

    /// Sets [`order_wait`](Self::order_wait).
    #[must_use]
    pub fn order_wait(mut self, wait: Duration) -> Self {
        self.order_wait = Some(wait);
        self
    }

    /// Sets [`publish_window`](Self::publish_window).
    #[must_use]
    pub fn publish_window(mut self, events: usize) -> Self {
        self.publish_window = events;
        self
    }

    /// Sets [`max_deliver`](Self::max_deliver).
    #[must_use]
    pub fn max_deliver(mut self, deliveries: i64) -> Self {
        self.max_deliver = deliveries;
        self
    }

    /// Sets [`redelivery_backoff`](Self::redelivery_backoff).
    #[must_use]
    pub fn redelivery_backoff(mut self, waits: impl IntoIterator<Item = Duration>) -> Self {
        self.redelivery_backoff = waits.into_iter().collect();
        self
    }

    /// Sets [`ack_timeout`](Self::ack_timeout).
    #[must_use]
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// The order wait, by default as long as the server may take to
    /// deliver a message `max_deliver` times and give up on it: a missing
    /// event comes back within it, through a redelivery or, once the server
    /// gave up, the message API.
    pub(crate) fn resolved_order_wait(&self) -> Duration {
        self.order_wait.unwrap_or_else(|| {
            // After each delivery the server waits this long before the next
            // one, or before it gives up after the last.
            let deliveries = usize::try_from(self.max_deliver).unwrap_or(usize::MAX);
            (0..deliveries)
                .map(|delivery| match self.redelivery_backoff.get(delivery) {
                    Some(wait) => *wait,
                    None => *self.redelivery_backoff.last().unwrap_or(&self.ack_wait),
                })
                .fold(self.ack_wait, Duration::saturating_add)
        })
    }
}

/// What is wrong with a bridge's configuration; found by
/// [`BridgeBuilder::validate`](crate::BridgeBuilder::validate) and before a
/// bridge connects. Each message says what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The subject prefix is not a valid literal subject.
    InvalidPrefix {
        /// The prefix.
        prefix: String,
        /// What is wrong with it.
        reason: SubjectError,
    },
    /// An event type would make an invalid, wildcard, reserved or too long
    /// subject.
    InvalidEventType {
        /// The Rust type it was configured for.
        rust_type: &'static str,
        /// The event type.
        event_type: String,
        /// What is wrong with it.
        reason: SubjectError,
    },
    /// A Rust type is exported twice.
    DuplicateExport {
        /// The Rust type.
        rust_type: &'static str,
    },
    /// An event type is exported both at-most-once and at-least-once (by two
    /// Rust types): its subject can have one delivery only.
    MixedDelivery {
        /// The event type.
        event_type: String,
    },
    /// An event type is imported twice (by the same or two Rust types), or
    /// both imported and served as a request.
    DuplicateImport {
        /// The event type.
        event_type: String,
    },
    /// The bridge's name is not 1 to 64 characters of `A-Z a-z 0-9 _ -`.
    InvalidName {
        /// The name.
        name: String,
    },
    /// Another bridge of this process already has this name, so each would
    /// take the other's events for its own echo.
    NameInUse {
        /// The name.
        name: String,
    },
    /// JetStream imports need a durable consumer that outlives the process,
    /// so a name that stays the same across restarts.
    DurableNeedsName,
    /// The stream or durable consumer name is not 1 to 64 characters of
    /// `A-Z a-z 0-9 _ -`.
    InvalidJetStreamName {
        /// The name.
        name: String,
    },
    /// An export queue's capacity is 0 or above [`switchboard::MAX_CAPACITY`].
    InvalidQueueCapacity {
        /// The delivery mode of the queue.
        delivery: Delivery,
        /// The capacity asked for.
        capacity: usize,
    },
    /// The CloudEvents headers of a type's messages alone would reach the
    /// server's `max_payload`, so the server would refuse every one of them
    /// (found at connect, from the server's limits).
    HeadersTooLarge {
        /// The Rust type.
        rust_type: &'static str,
        /// The size of the headers, in bytes.
        bytes: usize,
        /// The server's `max_payload`.
        max_payload: usize,
    },
    /// A JetStream setting is out of range.
    InvalidJetStreamSetting {
        /// Which setting and why.
        what: &'static str,
    },
    /// [`max_pending_requests`](crate::BridgeBuilder::max_pending_requests)
    /// is 0: a serving bridge would reject every request.
    InvalidMaxPendingRequests,
    /// A retained event type
    /// ([`export_retained`](crate::BridgeBuilder::export_retained),
    /// [`import_retained`](crate::BridgeBuilder::import_retained)) cannot
    /// be a key of the retained-state bucket.
    InvalidRetainedType {
        /// The Rust type.
        rust_type: &'static str,
        /// The event type.
        event_type: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// [`Bridge::clear_retained`](crate::Bridge::clear_retained) was called
    /// for a Rust type the bridge neither exports nor imports retained.
    NotRetained {
        /// The Rust type.
        rust_type: &'static str,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::InvalidPrefix { prefix, reason } => write!(
                f,
                "the subject prefix {:?} cannot be used because {reason}: use a short prefix of \
                 dot-separated tokens without spaces or wildcards, not starting with `_sb`, e.g. \
                 \"sb\" or \"acme.events\"",
                abbreviated(prefix)
            ),
            ConfigError::InvalidEventType {
                rust_type,
                event_type,
                reason,
            } => write!(
                f,
                "event type {:?} of {rust_type} cannot be a NATS subject because {reason}: \
                 give the type a short name of dot-separated tokens without spaces or wildcards \
                 (`*`, `>`), e.g. \"route.added\"",
                abbreviated(event_type)
            ),
            ConfigError::DuplicateExport { rust_type } => write!(
                f,
                "{rust_type} is exported twice: export each Rust type once"
            ),
            ConfigError::MixedDelivery { event_type } => write!(
                f,
                "event type {:?} is exported both at-most-once and at-least-once: its subject \
                 can have one delivery, export every Rust type of it with the same one",
                abbreviated(event_type)
            ),
            ConfigError::DuplicateImport { event_type } => write!(
                f,
                "event type {:?} is imported or served twice: a subject can feed one Rust type \
                 only, import it once",
                abbreviated(event_type)
            ),
            ConfigError::InvalidName { name } => write!(
                f,
                "the bridge name {name:?} is invalid: use 1 to 64 characters of A-Z, a-z, 0-9, \
                 '_' and '-' (it is the CloudEvents source and the default durable consumer name)"
            ),
            ConfigError::NameInUse { name } => write!(
                f,
                "another bridge in this process is already named {name:?}: give each bridge its \
                 own name (an importer skips events from its own name as echoes)"
            ),
            ConfigError::DurableNeedsName => f.write_str(
                "at-least-once imports need a durable consumer that survives restarts: name the \
                 bridge with .name(\"replica-a\") (stable across restarts, unique per process), \
                 or set JetStreamOptions::durable",
            ),
            ConfigError::InvalidJetStreamName { name } => write!(
                f,
                "{name:?} cannot name a JetStream stream or consumer: use 1 to 64 characters of \
                 A-Z, a-z, 0-9, '_' and '-'"
            ),
            ConfigError::InvalidQueueCapacity { delivery, capacity } => write!(
                f,
                "the {delivery} export queue's capacity {capacity} is invalid: use between 1 and {}",
                switchboard::MAX_CAPACITY
            ),
            ConfigError::HeadersTooLarge {
                rust_type,
                bytes,
                max_payload,
            } => write!(
                f,
                "the headers of {rust_type}'s messages take {bytes} bytes, and the server accepts \
                 at most {max_payload} per message: shorten its event type or the bridge name, or \
                 raise the server's max_payload"
            ),
            ConfigError::InvalidJetStreamSetting { what } => {
                write!(f, "invalid JetStream setting: {what}")
            }
            ConfigError::InvalidMaxPendingRequests => write!(
                f,
                "max_pending_requests is 0, so every served request would be rejected: set it \
                 to at least 1 (default {})",
                DEFAULT_MAX_PENDING_REQUESTS
            ),
            ConfigError::InvalidRetainedType {
                rust_type,
                event_type,
                reason,
            } => write!(
                f,
                "event type {:?} of {rust_type} cannot be retained: {reason}",
                abbreviated(event_type)
            ),
            ConfigError::NotRetained { rust_type } => write!(
                f,
                "{rust_type} has no retained state in this bridge: configure it with \
                 .export_retained or .import_retained"
            ),
        }
    }
}

impl Error for ConfigError {}

/// `text`, cut to its first 64 characters when longer: a hostile or
/// mistaken 5 000-byte name need not fill an error message.
fn abbreviated(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(64) {
        Some((end, _)) => format!("{}… ({} bytes)", &text[..end], text.len()).into(),
        None => text.into(),
    }
}

/// Whether `name` is 1 to 64 characters of `A-Z a-z 0-9 _ -`: valid as a
/// CloudEvents source, a header value, and a JetStream stream or consumer name.
pub(crate) fn is_plain_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl JetStreamOptions {
    /// Checks the settings that the server would otherwise reject later.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |what| Err(ConfigError::InvalidJetStreamSetting { what });
        for name in [&self.stream, &self.durable].into_iter().flatten() {
            if !is_plain_name(name) {
                return Err(ConfigError::InvalidJetStreamName { name: name.clone() });
            }
        }
        if !(1..=5).contains(&self.replicas) {
            return invalid("replicas must be between 1 and 5");
        }
        if self.ack_wait.is_zero() || self.ack_timeout.is_zero() {
            return invalid("ack_wait and ack_timeout must be positive");
        }
        if self.max_ack_pending < 1 {
            return invalid("max_ack_pending must be at least 1");
        }
        if self.publish_window == 0 {
            return invalid(
                "publish_window must be at least 1 event (1: one publish awaits its \
                 acknowledgement at a time)",
            );
        }
        if self.dedup_window == 0 {
            return invalid("dedup_window must be at least 1 id");
        }
        if self.duplicate_window.is_zero() {
            return invalid("duplicate_window must be positive");
        }
        if self.max_deliver < 2 {
            return invalid(
                "max_deliver must be at least 2 (a message the client cannot parse is found \
                 after its deliveries run out, and one delivery leaves no retry)",
            );
        }
        if i64::try_from(self.redelivery_backoff.len()).map_or(true, |n| n >= self.max_deliver) {
            return invalid("redelivery_backoff must have fewer entries than max_deliver");
        }
        if self.redelivery_backoff.iter().any(Duration::is_zero) {
            return invalid("redelivery_backoff waits must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_plain_name("replica-a_0"));
        assert!(!is_plain_name(""));
        assert!(!is_plain_name("a.b"));
        assert!(!is_plain_name("a b"));
        assert!(!is_plain_name(&"x".repeat(65)));
    }

    #[test]
    fn jetstream_settings() {
        assert_eq!(JetStreamOptions::default().validate(), Ok(()));
        let bad = [
            JetStreamOptions::default().replicas(0),
            JetStreamOptions::default().replicas(6),
            JetStreamOptions::default().ack_wait(Duration::ZERO),
            JetStreamOptions::default().max_ack_pending(0),
            JetStreamOptions::default().dedup_window(0),
            JetStreamOptions::default().duplicate_window(Duration::ZERO),
            JetStreamOptions::default().max_deliver(1),
            JetStreamOptions::default()
                .max_deliver(2)
                .redelivery_backoff([Duration::from_secs(1); 2]),
            JetStreamOptions::default().redelivery_backoff([Duration::ZERO]),
        ];
        for options in bad {
            assert!(matches!(
                options.validate(),
                Err(ConfigError::InvalidJetStreamSetting { .. })
            ));
        }
        assert_eq!(
            JetStreamOptions::default().durable("a.b").validate(),
            Err(ConfigError::InvalidJetStreamName { name: "a.b".into() })
        );
        // Five deliveries 10 s apart, and one ack wait more.
        assert_eq!(
            JetStreamOptions::default().resolved_order_wait(),
            Duration::from_secs(60)
        );
        let backoff = JetStreamOptions::default()
            .ack_wait(Duration::from_secs(1))
            .max_deliver(4)
            .redelivery_backoff([Duration::from_secs(2), Duration::from_secs(5)]);
        // 2 + 5 + 5 + 5 (the last repeats), and one ack wait more.
        assert_eq!(backoff.resolved_order_wait(), Duration::from_secs(18));
    }
}
