//! A NATS bridge for the [`switchboard`] event bus: the same
//! events across processes, on the official [`async_nats`] client.
//!
//! A [`Bridge`] connects one [`EventBus`](switchboard::EventBus) to NATS:
//!
//! - **Export**: local events of the Rust types you name leave the process,
//!   each on the subject `{prefix}.{event_type}` (`sb.route.added`). The
//!   bridge is an ordinary bus subscriber, so its local drops are counted by
//!   the bus like any other's.
//! - **Import**: messages on the subjects of the types you name are decoded
//!   and published into the local bus, so every kind of local subscriber
//!   receives them. An event never comes back to the bridge that exported
//!   it, and an imported event is never exported again.
//! - **Requests**: [`Bridge::request`] gathers the answers of responders in
//!   other processes, with the quorum, timeout and partial results of the
//!   local `request` (the same [`RequestResult`](switchboard::RequestResult),
//!   counted by the same [`RequestTally`](switchboard::RequestTally));
//!   [`BridgeBuilder::serve`] answers them. A serving
//!   bridge keeps a request until its requester says it is done (on the
//!   control subject `_sb.{prefix}.done`), and at most
//!   [`max_pending_requests`](BridgeBuilder::max_pending_requests) at once:
//!   past that it rejects new ones and says so, and their requesters fail at
//!   once ([`RemoteRequestError::Rejected`]) instead of timing out.
//!
//! Payloads are serde JSON by default ([`Codec`] makes it pluggable), and
//! metadata travels as CloudEvents binary-mode headers ([`cloudevents`]),
//! or, chosen per bridge or per type ([`ContentMode`]), in structured mode:
//! one JSON object in the payload and a single header ([`structured`]).
//! Importers accept both modes.
//!
//! # Delivery modes
//!
//! Chosen per exported type ([`Delivery`]):
//!
//! - **at-most-once**, core NATS: an event is lost if a server, a network
//!   link or a subscriber is down or too slow at that moment. The exporter
//!   counts what it could not send ([`ExportCounts::unavailable`]), the
//!   importer counts the gaps it detects ([`ImportCounts::missed`]) and
//!   publishes into the local bus as `publish` does (a full local
//!   subscriber drops, counted by the bus). For observability traffic.
//! - **at-least-once**, JetStream: the exporter retries until the stream has
//!   stored the event (message id = `ce-id`, deduplicated by the server).
//!   The importer's durable consumer publishes it into the local bus with
//!   the waiting publish (a full critical subscriber is waited for, never
//!   dropped: the consumer slows down, at most
//!   [`max_ack_pending`](JetStreamOptions::max_ack_pending) messages out)
//!   and acknowledges it once it is *complete*: every critical local
//!   subscriber that received it has finished with it, by taking it with a
//!   plain receive or, receiving [`with_acks`](switchboard::Subscription::with_acks),
//!   by acking or dropping the [`Delivery`](switchboard::Delivery). Until
//!   then the message is marked in progress, and later events go on. An
//!   event a subscriber abandoned (rejected, dropped while panicking, or
//!   left unread in a subscription that went away) is turned back and
//!   imported again, to every subscriber ([`ImportCounts::abandoned`]). An
//!   event that cannot be imported goes to the [dead letters](dead_letter),
//!   then is acknowledged, and redeliveries of an event already imported
//!   (same `ce-source` and `ce-id`) are not published twice. Lossy local
//!   subscribers still drop (counted by the bus). What a process had not
//!   seen acknowledged when it died or its bridge stopped, its next process
//!   receives again, first and in stream order. For what must not be lost.
//!
//! # Example
//!
//! ```no_run
//! use std::time::SystemTime;
//! use serde::{Deserialize, Serialize};
//! use switchboard::{Event, EventBus};
//! use switchboard_nats::{Bridge, Delivery};
//!
//! #[derive(Event, Serialize, Deserialize)]
//! #[event(type = "route.added")]
//! struct RouteAdded { path: String, timestamp: SystemTime }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let bus = EventBus::new();
//! let routes = bus.subscribe_to::<RouteAdded>("router", 64)?;
//! let bridge = Bridge::builder(&bus)
//!     .name("replica-a")
//!     .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
//!     .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
//!     .connect("nats://127.0.0.1:4222", async_nats::ConnectOptions::new())
//!     .await?;
//! bus.start();
//!
//! bus.publish(RouteAdded { path: "/api".into(), timestamp: SystemTime::now() });
//! // ...other replicas receive it; their events arrive on `routes`.
//! println!("{}", bridge.stats());
//! # Ok(()) }
//! ```
//!
//! # Retained state
//!
//! A type exported with [`BridgeBuilder::export_retained`] keeps its
//! latest event in NATS (a JetStream key-value bucket per prefix,
//! `SB_RETAINED`, one key per event type; the write the server stored last
//! wins). A bridge that [`import_retained`](BridgeBuilder::import_retained)s
//! it loads the fleet's current value into its bus before `connect`
//! returns, then follows every later write and tombstone
//! ([`Bridge::clear_retained`]) in the server's order. So a replica that
//! starts late, restarts or becomes leader has the state: a subscription
//! made [`with_retained`](switchboard::SubscribeOptions::with_retained)
//! receives it first, exactly once, then live events.
//!
//! ```no_run
//! use std::time::SystemTime;
//! use serde::{Deserialize, Serialize};
//! use switchboard::{Event, EventBus, SubscribeOptions};
//! use switchboard_nats::Bridge;
//!
//! #[derive(Event, Serialize, Deserialize)]
//! #[event(type = "routes.table")]
//! struct RouteTable { routes: Vec<String>, timestamp: SystemTime }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let bus = EventBus::new();
//! let bridge = Bridge::builder(&bus)
//!     .name("replica-b")
//!     .export_retained::<RouteTable>("routes.table")
//!     .import_retained::<RouteTable>("routes.table")
//!     .connect("nats://127.0.0.1:4222", async_nats::ConnectOptions::new())
//!     .await?;
//! bus.start(); // the fleet's route table is retained from here on
//!
//! // Later, when this replica becomes leader: the current table first,
//! // as an `Arc<RouteTable>`.
//! let reconciler = bus.subscribe_with(
//!     SubscribeOptions::of::<RouteTable>("reconciler", 16)
//!         .with_retained()
//!         .leader_only(),
//! )?;
//! # drop(reconciler);
//! println!("{}", bridge.retained_stats());
//! # Ok(()) }
//! ```
//!
//! From plain threads, [`BridgeBuilder::connect_blocking`] runs the bridge
//! on a runtime thread of its own. With the feature `prometheus`,
//! `prometheus::BridgeCollector` exports [`Bridge::stats`] to Prometheus.
//!
//! # Trace context
//!
//! An event whose type carries a W3C trace context (a field
//! `Option<switchboard::TraceContext>`, see [`switchboard::Event::trace_context`])
//! crosses with it, as the CloudEvents distributed-tracing extension: the
//! `traceparent` and `tracestate` headers in binary mode, attributes of the
//! same names in the JSON object in structured mode. The importer gives the
//! context to the event it decodes, before publishing it
//! ([`switchboard::Event::set_trace_context`]), so a subscriber reads
//! `event.trace_context()` as in the exporting process. Served requests
//! and their responses carry it the same way: a responder that answers
//! within the request's trace copies the request's context into its
//! response. Types without a trace context pay nothing for it.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use std::time::SystemTime;
//! use switchboard::{Event, TraceContext};
//!
//! #[derive(Event, Serialize, Deserialize)]
//! #[event(type = "order.placed")]
//! struct OrderPlaced {
//!     order: u64,
//!     timestamp: SystemTime,
//!     #[serde(skip)] // it travels beside the data, not in it
//!     trace: Option<TraceContext>,
//! }
//! ```
//!
//! A `traceparent` from the wire that is not valid W3C Trace Context is
//! ignored (the event is imported without a context) and counted in
//! [`ImportCounts::trace_invalid`] (for requests and responses,
//! [`RequestCounts::trace_invalid`], for retained values
//! [`RetainedCounts::trace_invalid`]); an invalid `tracestate` is dropped
//! and the `traceparent` kept, as the W3C spec says. Neither ever fails an
//! import. Importers also read `ce-traceparent`/`ce-tracestate`, the names
//! CloudEvents SDKs give extensions in binary mode.
//!
//! With the feature `opentelemetry`, the import of an event with a context
//! runs in a span whose OpenTelemetry parent is the producer's span (one
//! trace across processes), and `otel::current_trace_context()` fills an
//! event's context from the current span.
//!
//! # Bad input and faults
//!
//! Nothing the bridge can see is lost uncounted, and the bridge does not
//! panic:
//!
//! - A message on an imported subject that is not a CloudEvent, names
//!   another type, is larger than
//!   [`max_import_bytes`](BridgeBuilder::max_import_bytes) or does not
//!   decode is counted ([`ImportCounts`]), logged through `tracing` (a
//!   handful of lines per flood) and, on JetStream, stored as a
//!   [dead letter](dead_letter) (listed, replayed and discarded with
//!   [`Bridge::dead_letters`], [`Bridge::replay_dead_letter`] and
//!   [`Bridge::discard_dead_letter`]) before it is acknowledged.
//! - A message whose header block the NATS client cannot parse makes the
//!   client drop the connection it arrives on, or, for a header value
//!   holding a lone carriage return, panic in its connection task, which
//!   leaves the client dead (async-nats' behaviour, which the bridge cannot
//!   change). On JetStream the importer's consumer reads on a connection of
//!   its own, built again when its client dies; redelivery is bounded
//!   ([`JetStreamOptions::max_deliver`]), and the message the server gave up
//!   on is read back through the server's message API and dead-lettered:
//!   the bridge's other traffic is not cut off, and the stream is not
//!   blocked. On core NATS nothing is stored: the defence is the server's
//!   subject permissions (see "Trust model" below); without them, such a
//!   message costs the bridge's connection a reconnect, or its life.
//! - A server that forgot the stream or the consumer (a restart without its
//!   store, a deletion) is found out and the consumer created again at the
//!   first message not acknowledged, or from the start of a new stream; what is
//!   gone is counted ([`ConsumerCounts`], [`ImportCounts::missed`]).
//! - An importing process killed at any moment (SIGKILL, its restart
//!   included) gets, on its next start, every event that was not complete
//!   again, first and in stream order: its consumer is created again at the
//!   first unacknowledged message, with a placeholder consumer
//!   (`{durable}~resume`) holding that start while it is.
//! - Event types whose subject would exceed NATS's limits are refused at
//!   configuration ([`ConfigError::InvalidEventType`]), headers that alone
//!   exceed the server's `max_payload` at connect
//!   ([`ConfigError::HeadersTooLarge`]); a second live process using the
//!   bridge's name on its prefix is refused at connect
//!   ([`BridgeError::NameTaken`]) or, if both started at once, counted
//!   within seconds ([`ClientCounts::name_conflicts`]).
//! - A retained value that does not decode is counted
//!   ([`RetainedCounts::undecodable`]) and skipped, the local copy kept; a
//!   retained-state bucket deleted under running bridges is created again
//!   by the next write, and importers watch it again
//!   ([`RetainedStats::watch_restarts`]).
//! - A request a serving bridge cannot read is rejected, and its requester
//!   is told why; a done notice frees only the request whose reply inbox it
//!   names, so garbage on the control subject frees nothing.
//!
//! # Trust model
//!
//! An importer believes what arrives on its subjects. Any client allowed to
//! publish on the prefix can forge events (any `ce-source`, including
//! another bridge's name), make importers skip events (a forged id already
//! seen, or its own name as source), inflate their counters, fill the dead
//! letters (bounded: [`dead_letter::MAX_DEAD_LETTERS`]), and on core NATS
//! disconnect importers with headers the client cannot parse. Give only the
//! exporting processes publish rights on the prefix: the crate ships a
//! tested server configuration that does (`bridges/nats/config/trusted-prefix.conf`,
//! described in the crate's README).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod bridge;
mod builder;
mod client_events;
pub mod cloudevents;
mod codec;
mod config;
mod connect;
pub mod dead_letter;
mod echo;
mod error;
mod export;
mod import;
mod jetstream;
mod names;
mod order;
mod pending_replies;
mod plan;
mod prepared;
mod presence;
/// The README's Rust blocks, compiled as doctests (`no_run`: they need a
/// server).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
/// The Rust blocks of `docs/performance.md` (the bridge's part), compiled
/// as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/performance.md")]
pub struct PerformanceDoctests;
#[cfg(feature = "prometheus")]
pub mod prometheus;
mod request;
mod resume;
mod retained;
mod serve;
mod shared;
mod spawn;
mod stats;
mod stop;
pub mod structured;
pub mod subject;
mod types;
mod window;

#[cfg(feature = "opentelemetry")]
pub mod otel;

pub use bridge::Bridge;
pub use builder::BridgeBuilder;
pub use codec::{Codec, CodecError, Json};
pub use config::{
    ConfigError, ContentMode, Delivery, ExportQueue, JetStreamOptions, DEFAULT_MAX_IMPORT_BYTES,
    DEFAULT_MAX_PENDING_REQUESTS, DEFAULT_PREFIX,
};
pub use dead_letter::{DeadLetter, DeadLetterError};
pub use error::BridgeError;
pub use request::RemoteRequestError;
pub use retained::{RetainedCounts, RetainedStats, RetainedTypeStats};
pub use stats::{
    BridgeStats, ClientCounts, ConsumerCounts, ExportCounts, ExportStats, ImportCounts,
    ImportStats, QueueStats, RequestCounts, UnroutedCounts,
};
