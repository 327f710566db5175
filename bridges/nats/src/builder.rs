//! Configuring a bridge: which types leave, which come in, which requests
//! are served, and how.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use switchboard::{Event, EventBus, Request, Response, TypeSet, MAX_CAPACITY};

use crate::codec::{Codec, Json};
use crate::config::{
    is_plain_name, ConfigError, ContentMode, Delivery, ExportQueue, JetStreamOptions,
    DEFAULT_MAX_IMPORT_BYTES, DEFAULT_MAX_PENDING_REQUESTS, DEFAULT_PREFIX,
};
use crate::retained::RetainedConfig;
use crate::subject::{check_event_type, check_prefix};
use crate::types::{ExportType, ImportType, ServedType};

/// Configures and connects a [`Bridge`](crate::Bridge); from [`Bridge::builder`](crate::Bridge::builder) or
/// [`Bridge::builder_with_codec`](crate::Bridge::builder_with_codec).
///
/// Every setter records what it is given; problems (an event type that
/// cannot be a subject, a type exported twice...) are reported by
/// [`validate`](Self::validate) and by [`connect`](Self::connect), which
/// checks first, before it touches the network.
///
/// ```
/// use std::time::SystemTime;
/// use serde::{Deserialize, Serialize};
/// use switchboard::{Event, EventBus};
/// use switchboard_nats::{Bridge, ConfigError, Delivery};
///
/// #[derive(Event, Serialize, Deserialize)]
/// #[event(type = "route.added")]
/// struct RouteAdded { path: String, timestamp: SystemTime }
///
/// #[derive(Event, Serialize, Deserialize)]
/// #[event(type = "route.*")]
/// struct AnyRoute { timestamp: SystemTime }
///
/// let bus = EventBus::new();
/// let builder = Bridge::builder(&bus)
///     .name("replica-a")
///     .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
///     .import::<RouteAdded>("route.added", Delivery::AtLeastOnce);
/// assert_eq!(builder.validate(), Ok(()));
///
/// // A wildcard would subscribe to, or publish on, many subjects at once.
/// let error = Bridge::builder(&bus)
///     .export::<AnyRoute>("route.*", Delivery::AtMostOnce)
///     .validate()
///     .unwrap_err();
/// assert!(matches!(error, ConfigError::InvalidEventType { .. }));
/// assert!(error.to_string().contains("AnyRoute"), "{error}");
/// ```
pub struct BridgeBuilder<C: Codec = Json> {
    pub(crate) bus: EventBus,
    pub(crate) codec: Arc<C>,
    pub(crate) name: Option<String>,
    pub(crate) prefix: String,
    pub(crate) exports: Vec<ExportType>,
    pub(crate) imports: Vec<ImportType>,
    pub(crate) served: Vec<ServedType>,
    /// The exported types of each delivery mode, for the bus subscriptions
    /// that feed the exporters.
    pub(crate) at_most_once_types: TypeSet,
    pub(crate) at_least_once_types: TypeSet,
    /// The response types of `served`, for the bus subscription that forwards them.
    pub(crate) response_types: TypeSet,
    pub(crate) at_most_once_queue: ExportQueue,
    pub(crate) at_least_once_queue: ExportQueue,
    pub(crate) jetstream: JetStreamOptions,
    pub(crate) max_import_bytes: usize,
    pub(crate) max_pending_requests: usize,
    /// How exported events travel, unless their type says otherwise.
    pub(crate) content_mode: ContentMode,
    /// Problems found by the setters, reported by `validate`.
    pub(crate) problems: Vec<ConfigError>,
    /// The types exported and imported as retained state (`retained.rs`).
    pub(crate) retained: RetainedConfig,
}

impl<C: Codec> BridgeBuilder<C> {
    /// The builder of a bridge of `bus` whose payloads use `codec`, with
    /// the defaults ([`Bridge::builder_with_codec`](crate::Bridge::builder_with_codec)).
    pub(crate) fn new(bus: &EventBus, codec: C) -> Self {
        BridgeBuilder {
            bus: bus.clone(),
            codec: Arc::new(codec),
            name: None,
            prefix: DEFAULT_PREFIX.to_owned(),
            exports: Vec::new(),
            imports: Vec::new(),
            served: Vec::new(),
            at_most_once_types: TypeSet::new(),
            at_least_once_types: TypeSet::new(),
            response_types: TypeSet::new(),
            at_most_once_queue: ExportQueue::default_for(Delivery::AtMostOnce),
            at_least_once_queue: ExportQueue::default_for(Delivery::AtLeastOnce),
            jetstream: JetStreamOptions::default(),
            max_import_bytes: DEFAULT_MAX_IMPORT_BYTES,
            max_pending_requests: DEFAULT_MAX_PENDING_REQUESTS,
            content_mode: ContentMode::Binary,
            problems: Vec::new(),
            retained: RetainedConfig::default(),
        }
    }

    /// Names the bridge: its CloudEvents `ce-source`, by which an importer
    /// recognises (and skips) its own exports, and its durable JetStream
    /// consumer. 1 to 64 characters of `A-Z a-z 0-9 _ -`, unique among the
    /// processes sharing the prefix and stable across restarts (a replica's
    /// name, e.g. `controller-0`). Default: a random name, fine for
    /// at-most-once traffic; at-least-once imports need a set one.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the subject prefix (default [`DEFAULT_PREFIX`], `sb`): events of
    /// type `route.added` travel on `{prefix}.route.added`, and the
    /// JetStream stream of the prefix captures the subjects of its
    /// at-least-once types.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sends the local events of Rust type `T` to other processes, on the
    /// subject `{prefix}.{event_type}`.
    ///
    /// `event_type` must be what `T::event_type()` returns (the
    /// `#[event(type = "...")]` of its derive); an event whose
    /// `event_type()` differs is not sent and is counted as a type mismatch.
    /// It must make a valid literal subject: dot-separated non-empty tokens,
    /// no spaces, no wildcards (`*`, `>`).
    #[must_use]
    pub fn export<T: Event + Serialize>(
        mut self,
        event_type: impl Into<String>,
        delivery: Delivery,
    ) -> Self {
        let entry = ExportType::new::<T, C>(event_type.into(), delivery, &self.codec);
        if self.exports.iter().any(|e| e.type_id == entry.type_id) {
            self.problems.push(ConfigError::DuplicateExport {
                rust_type: entry.rust_type,
            });
        }
        // One subject, one delivery: a stream capturing it for the
        // at-least-once type would store the at-most-once one's events too.
        if self
            .exports
            .iter()
            .any(|e| e.event_type == entry.event_type && e.delivery != entry.delivery)
        {
            self.problems.push(ConfigError::MixedDelivery {
                event_type: entry.event_type.clone(),
            });
        }
        let types = match delivery {
            Delivery::AtMostOnce => &mut self.at_most_once_types,
            Delivery::AtLeastOnce => &mut self.at_least_once_types,
        };
        *types = std::mem::take(types).with::<T>();
        self.exports.push(entry);
        self
    }

    /// Exports `T` as [`export`](Self::export) does, its events in `mode`
    /// whatever the bridge's [`content_mode`](Self::content_mode).
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use switchboard::{Event, EventBus};
    /// use switchboard_nats::{Bridge, ContentMode, Delivery};
    ///
    /// #[derive(Event, serde::Serialize)]
    /// #[event(type = "audit.entry")]
    /// struct AuditEntry {
    ///     line: String,
    ///     timestamp: SystemTime,
    /// }
    ///
    /// let bus = EventBus::new();
    /// let builder = Bridge::builder(&bus).export_with_mode::<AuditEntry>(
    ///     "audit.entry",
    ///     Delivery::AtLeastOnce,
    ///     ContentMode::Structured,
    /// );
    /// builder.validate().unwrap();
    /// ```
    #[must_use]
    pub fn export_with_mode<T: Event + Serialize>(
        mut self,
        event_type: impl Into<String>,
        delivery: Delivery,
        mode: ContentMode,
    ) -> Self {
        self = self.export::<T>(event_type, delivery);
        if let Some(entry) = self.exports.last_mut() {
            entry.mode = Some(mode);
        }
        self
    }

    /// How this bridge's exported events carry their CloudEvents attributes
    /// (default [`ContentMode::Binary`]); [`export_with_mode`](Self::export_with_mode)
    /// chooses per type. Importers accept both modes, so exporters can
    /// change mode one at a time. Requests and their responses, and retained
    /// state, always travel in binary mode.
    #[must_use]
    pub fn content_mode(mut self, mode: ContentMode) -> Self {
        self.content_mode = mode;
        self
    }

    /// Publishes into the local bus, as `T`, the events other processes
    /// export on `{prefix}.{event_type}` with `delivery`: every kind of local
    /// subscriber (universal, by type string, by Rust type) receives them.
    ///
    /// An event type can be imported once, as one Rust type. The importer
    /// skips its own bridge's exports (by `ce-source`), and counts and skips
    /// messages that are malformed, of another type, too large or
    /// undecodable ([`ImportCounts`](crate::ImportCounts)).
    #[must_use]
    pub fn import<T: Event + DeserializeOwned>(
        mut self,
        event_type: impl Into<String>,
        delivery: Delivery,
    ) -> Self {
        let entry = ImportType::new::<T, C>(event_type.into(), delivery, &self.codec);
        self.check_unique_import(&entry.event_type.clone());
        self.imports.push(entry);
        self
    }

    /// Serves requests of type `Q` from other processes: each request that
    /// arrives on `{prefix}.{request_type}` is published into the local bus,
    /// and every local response of type `R` to it (same request id) is sent
    /// back to the requester, which gathers them with
    /// [`Bridge::request`](crate::Bridge::request). Requests and responses are JSON, whatever the
    /// bridge's codec.
    ///
    /// A request is kept (its reply inbox, to send the responses to) until
    /// its requester says it is done: its quorum answered, it timed out, was
    /// cancelled or dropped (a notice on the control subject
    /// `_sb.{prefix}.done`). A lost notice is made up for by the request's
    /// TTL: the requester's timeout (its `ce-sbttl` header), 30 s if it does
    /// not say, at most 10 min. At most
    /// [`max_pending_requests`](Self::max_pending_requests) are kept at
    /// once; a request past that, or one the bridge cannot read (no reply
    /// subject, malformed headers, larger than
    /// [`max_import_bytes`](Self::max_import_bytes), undecodable), is
    /// rejected: counted in
    /// [`RequestCounts::served_rejected`](crate::RequestCounts::served_rejected),
    /// and answered with a `ce-sberror` reply, so that its requester fails
    /// at once with [`RemoteRequestError::Rejected`](crate::RemoteRequestError::Rejected).
    ///
    /// If the local process also makes requests answered by `R` (through
    /// [`EventBus::request`](switchboard::EventBus::request)), the local bus
    /// sees the responses to served requests too, finds no local request
    /// waiting for their ids, and counts them in
    /// [`RequestStats::late_responses`](switchboard::RequestStats::late_responses):
    /// that count then includes answers that went to other processes.
    #[must_use]
    pub fn serve<Q, R>(mut self, request_type: impl Into<String>) -> Self
    where
        Q: Request + DeserializeOwned,
        R: Response + Serialize,
    {
        let entry = ServedType::new::<Q, R>(request_type.into());
        self.check_unique_import(&entry.request_type.clone());
        self.response_types = std::mem::take(&mut self.response_types).with::<R>();
        self.served.push(entry);
        self
    }

    /// Keeps the latest local event of Rust type `T` in NATS as the fleet's
    /// current state of `event_type`, and sends every later one.
    ///
    /// Each local event of `T` is written, in bus order, to the key
    /// `event_type` of the prefix's key-value bucket (`SB_RETAINED` for the
    /// prefix `sb`: file storage,
    /// [`JetStreamOptions::replicas`](crate::JetStreamOptions::replicas)),
    /// which keeps only the latest; bridges that
    /// [`import_retained`](Self::import_retained) it load it when they
    /// connect and receive every later write. Several processes may export
    /// the same type: the write the server stored last is the state, for
    /// every process alike. Publish such events with
    /// [`publish_retained`](switchboard::EventBus::publish_retained), so
    /// that the local bus retains them too.
    ///
    /// `event_type` follows the rules of [`export`](Self::export), and must
    /// also be a key-value key (dot-separated tokens of `A-Z a-z 0-9 - _ =
    /// /`). A type is exported either retained or not
    /// ([`ConfigError::DuplicateExport`] otherwise). Needs JetStream.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use serde::{Deserialize, Serialize};
    /// use switchboard::{Event, EventBus};
    /// use switchboard_nats::{Bridge, ConfigError, Delivery};
    ///
    /// #[derive(Event, Serialize, Deserialize)]
    /// #[event(type = "routes.table")]
    /// struct RouteTable { routes: Vec<String>, timestamp: SystemTime }
    ///
    /// let bus = EventBus::new();
    /// let builder = Bridge::builder(&bus)
    ///     .name("replica-a")
    ///     .export_retained::<RouteTable>("routes.table")
    ///     .import_retained::<RouteTable>("routes.table");
    /// assert_eq!(builder.validate(), Ok(()));
    ///
    /// // A type is exported once: as retained state, or as events.
    /// let error = Bridge::builder(&bus)
    ///     .export_retained::<RouteTable>("routes.table")
    ///     .export::<RouteTable>("routes.table", Delivery::AtLeastOnce)
    ///     .validate()
    ///     .unwrap_err();
    /// assert!(matches!(error, ConfigError::DuplicateExport { .. }));
    /// ```
    #[must_use]
    pub fn export_retained<T: Event + Serialize>(mut self, event_type: impl Into<String>) -> Self {
        self.retained.export::<T, C>(event_type.into(), &self.codec);
        self
    }

    /// Loads the fleet's current state of `event_type` into the local bus's
    /// retained store when the bridge connects, as `T`, then publishes each
    /// later write of it, retained.
    ///
    /// `connect` returns once the latest value of each retained type the
    /// bucket holds is published into the bus with
    /// [`publish_retained_arc`](switchboard::EventBus::publish_retained_arc),
    /// in the order the server stored them. On a bus not started yet they
    /// wait in its pre-start buffer and are retained when
    /// [`start`](switchboard::EventBus::start) replays it, before any later
    /// event: a subscription made
    /// [`with_retained`](switchboard::SubscribeOptions::with_retained) then
    /// receives the fleet's state first, exactly once, then live events.
    /// Writes made meanwhile come through the same ordered stream, so none
    /// is lost or applied before an older one. A tombstone
    /// ([`Bridge::clear_retained`](crate::Bridge::clear_retained) in any process) clears the local copy.
    ///
    /// A value that does not decode is counted
    /// ([`RetainedCounts::undecodable`](crate::RetainedCounts::undecodable)) and skipped: the local copy stays
    /// what it was. An event type is imported once, retained or not
    /// ([`ConfigError::DuplicateImport`] otherwise). Needs JetStream.
    #[must_use]
    pub fn import_retained<T: Event + DeserializeOwned>(
        mut self,
        event_type: impl Into<String>,
    ) -> Self {
        self.retained.import::<T, C>(event_type.into(), &self.codec);
        self
    }

    /// Sets the bus subscription that feeds the exports of `delivery`
    /// (defaults: [`ExportQueue::default_for`]).
    #[must_use]
    pub fn export_queue(mut self, delivery: Delivery, queue: ExportQueue) -> Self {
        match delivery {
            Delivery::AtMostOnce => self.at_most_once_queue = queue,
            Delivery::AtLeastOnce => self.at_least_once_queue = queue,
        }
        self
    }

    /// Sets the JetStream settings of at-least-once types.
    #[must_use]
    pub fn jetstream(mut self, options: JetStreamOptions) -> Self {
        self.jetstream = options;
        self
    }

    /// Sets the largest payload an importer accepts (default
    /// [`DEFAULT_MAX_IMPORT_BYTES`]); larger messages are counted as
    /// oversized and skipped.
    #[must_use]
    pub fn max_import_bytes(mut self, bytes: usize) -> Self {
        self.max_import_bytes = bytes;
        self
    }

    /// Sets how many requests from other processes a serving bridge
    /// ([`serve`](Self::serve)) keeps in flight at once, at least 1 (default
    /// [`DEFAULT_MAX_PENDING_REQUESTS`]), so that remote input cannot grow
    /// its memory without bound.
    ///
    /// A request is in flight from its arrival until its requester says it
    /// is done (its quorum answered, it timed out, was cancelled or
    /// dropped), or else until its TTL expires: the requester's timeout,
    /// 30 s if it does not say, at most 10 min. Past the limit, the bridge
    /// rejects new requests and tells their requesters, which fail at once
    /// with [`RemoteRequestError::Rejected`](crate::RemoteRequestError::Rejected);
    /// it counts them in [`RequestCounts::served_rejected`](crate::RequestCounts::served_rejected).
    /// Raise it if requests are rejected at a rate you mean to serve.
    #[must_use]
    pub fn max_pending_requests(mut self, max: usize) -> Self {
        self.max_pending_requests = max;
        self
    }

    /// Checks the configuration without connecting.
    ///
    /// # Errors
    ///
    /// The first problem found: a setter's (a duplicate), then the prefix
    /// (not starting with the reserved token `_sb`), each event type (a
    /// valid literal subject under the prefix, at most
    /// [`MAX_SUBJECT_LEN`](crate::subject::MAX_SUBJECT_LEN) bytes), the
    /// name, the queues, the request limit and the JetStream settings.
    /// [`ConfigError::NameInUse`] is checked only by `connect`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(problem) = self.problems.first() {
            return Err(problem.clone());
        }
        check_prefix(&self.prefix).map_err(|reason| ConfigError::InvalidPrefix {
            prefix: self.prefix.clone(),
            reason,
        })?;
        let event_types = self
            .exports
            .iter()
            .map(|e| (e.rust_type, &e.event_type))
            .chain(self.imports.iter().map(|i| (i.rust_type, &i.event_type)))
            .chain(
                self.served
                    .iter()
                    .map(|s| (s.request_rust_type, &s.request_type)),
            );
        for (rust_type, event_type) in event_types {
            check_event_type(&self.prefix, event_type).map_err(|reason| {
                ConfigError::InvalidEventType {
                    rust_type,
                    event_type: event_type.clone(),
                    reason,
                }
            })?;
        }
        if let Some(name) = &self.name {
            if !is_plain_name(name) {
                return Err(ConfigError::InvalidName { name: name.clone() });
            }
        }
        for (delivery, queue) in [
            (Delivery::AtMostOnce, self.at_most_once_queue),
            (Delivery::AtLeastOnce, self.at_least_once_queue),
        ] {
            if queue.capacity == 0 || queue.capacity > MAX_CAPACITY {
                return Err(ConfigError::InvalidQueueCapacity {
                    delivery,
                    capacity: queue.capacity,
                });
            }
        }
        if self.max_pending_requests == 0 {
            return Err(ConfigError::InvalidMaxPendingRequests);
        }
        if self.uses_jetstream() {
            self.jetstream.validate()?;
        }
        let imports_durably = self
            .imports
            .iter()
            .any(|i| i.delivery == Delivery::AtLeastOnce);
        if imports_durably && self.name.is_none() && self.jetstream.durable.is_none() {
            return Err(ConfigError::DurableNeedsName);
        }
        if !self.retained.is_empty() {
            let exported: Vec<_> = self.exports.iter().map(|e| e.type_id).collect();
            let imported: Vec<&str> = self
                .imports
                .iter()
                .map(|i| i.event_type.as_str())
                .chain(self.served.iter().map(|s| s.request_type.as_str()))
                .collect();
            self.retained.validate(&self.prefix, &exported, &imported)?;
            self.jetstream.validate()?;
        }
        Ok(())
    }

    pub(crate) fn uses_jetstream(&self) -> bool {
        self.exports
            .iter()
            .map(|e| e.delivery)
            .chain(self.imports.iter().map(|i| i.delivery))
            .any(|d| d == Delivery::AtLeastOnce)
    }

    fn check_unique_import(&mut self, event_type: &str) {
        let taken: HashSet<&str> = self
            .imports
            .iter()
            .map(|i| i.event_type.as_str())
            .chain(self.served.iter().map(|s| s.request_type.as_str()))
            .collect();
        if taken.contains(event_type) {
            self.problems.push(ConfigError::DuplicateImport {
                event_type: event_type.to_owned(),
            });
        }
    }
}

impl<C: Codec> fmt::Debug for BridgeBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BridgeBuilder")
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .field(
                "exports",
                &self
                    .exports
                    .iter()
                    .map(|e| (&e.event_type, e.delivery))
                    .collect::<Vec<_>>(),
            )
            .field(
                "imports",
                &self
                    .imports
                    .iter()
                    .map(|i| (&i.event_type, i.delivery))
                    .collect::<Vec<_>>(),
            )
            .field(
                "served",
                &self
                    .served
                    .iter()
                    .map(|s| &s.request_type)
                    .collect::<Vec<_>>(),
            )
            .field("jetstream", &self.jetstream)
            .finish_non_exhaustive()
    }
}
