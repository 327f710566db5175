//! A lock-free, runtime-agnostic, in-process event bus.
//!
//! Components of one program publish events and subscribe to the ones they
//! care about, without knowing each other. Publishing is fire-and-forget and
//! never blocks: every subscriber has its own bounded buffer, and an event that
//! does not fit is dropped *for that subscriber only*, counted, and (for
//! critical subscribers) reported to a drop callback. Nothing is lost without
//! being counted.
//!
//! The same [`Subscription`] works as a blocking receiver on a plain thread and
//! as a [`futures_core::Stream`] on any async runtime.
//!
//! How it works, the invariants it keeps and why, is in the
//! [design document](docs::design).
//!
//! # Publishing
//!
//! Anything that implements [`Event`] can be published; `#[derive(Event)]`
//! writes the implementation. Events travel as `Arc<dyn Event>`: one
//! allocation by the publisher, one reference count per receiving subscriber.
//! [`EventBus::publish`] returns how many subscribers received the event.
//!
//! ```
//! use switchboard::{Event, EventBus, Timestamp};
//!
//! #[derive(Event)]
//! #[event(type = "route.added")]
//! struct RouteAdded {
//!     path: String,
//!     timestamp: Timestamp,
//! }
//!
//! let bus = EventBus::new();
//! let everything = bus.subscribe("audit", 128).unwrap();
//! bus.start();
//!
//! let delivered = bus.publish(RouteAdded { path: "/api".into(), timestamp: Timestamp::now() });
//! assert_eq!(delivered, 1);
//! let event = everything.recv().unwrap();
//! assert_eq!(event.event_type(), "route.added");
//! assert_eq!(event.downcast_ref::<RouteAdded>().unwrap().path, "/api");
//! ```
//!
//! # Subscribing and receiving
//!
//! A [`Subscription`] is a receiver: [`recv`](Subscription::recv) blocks,
//! [`try_recv`](Subscription::try_recv) does not,
//! [`recv_timeout`](Subscription::recv_timeout) waits a while, and
//! [`iter`](Subscription::iter) / [`try_iter`](Subscription::try_iter) loop.
//! It ends (a [`RecvError`], or the end of the iterator or stream) once the
//! bus is dropped or the subscription unsubscribed, and what was already
//! queued has been received. Dropping a subscription unsubscribes it.
//!
//! ```
//! # use switchboard::{Event, EventBus, Timestamp};
//! #[derive(Event)]
//! struct Tick(u32, #[event(timestamp)] Timestamp);
//!
//! let bus = EventBus::new();
//! let ticks = bus.subscribe_to::<Tick>("clock", 16).unwrap();
//! bus.start();
//! let consumer = std::thread::spawn(move || ticks.iter().map(|t| t.0).sum::<u32>());
//! for n in 1..=4 {
//!     bus.publish(Tick(n, Timestamp::now()));
//! }
//! drop(bus); // the consumer's loop ends once it has drained its queue
//! assert_eq!(consumer.join().unwrap(), 10);
//! ```
//!
//! # Filtering at the bus
//!
//! - **Universal** ([`EventBus::subscribe`]): every event.
//! - **By event-type string** ([`SubscribeOptions::event_types`]): events whose
//!   [`Event::event_type`] is in a list.
//! - **By Rust type** ([`EventBus::subscribe_to`], or
//!   [`SubscribeOptions::rust_types`] with a [`TypeSet`]): filtered by
//!   `TypeId`; `subscribe_to::<T>` yields `Arc<T>`, no downcasting.
//!
//! The bus keeps an index per filter kind, so a publish costs only the
//! subscribers that match it. Three methods subscribe: [`EventBus::subscribe`]
//! and [`EventBus::subscribe_to`] are the shortcuts, [`EventBus::subscribe_with`]
//! takes [`SubscribeOptions`], which say the filter, the kind (critical or
//! lossy, leader-only) and whether retained events come first, and makes a
//! [`Subscription`]; given [`SubscribeOptions::of::<T>`](SubscribeOptions::of)
//! ([`TypedOptions`]: the same kinds, for the Rust type `T`), it makes a
//! [`TypedSubscription<T>`]. The design
//! document maps each method of the Go original to its call here
//! ([Origin](docs::design#origin)).
//!
//! # Critical and lossy subscribers, drop monitoring
//!
//! A **critical** subscriber (the default) that misses an event because its
//! buffer is full has the miss counted and reported to the drop callback
//! ([`EventBus::set_drop_callback`], with a [`DropInfo`]). A **lossy**
//! (observability) subscriber's misses are only counted: use it for metrics
//! and debug views that may fall behind. [`EventBus::stats`] gives every
//! counter, per subscriber and in total.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use switchboard::{Event, EventBus, SubscribeOptions, Timestamp};
//! # #[derive(Event)]
//! # struct Ping { timestamp: Timestamp }
//!
//! let bus = EventBus::new();
//! let missed = Arc::new(Mutex::new(Vec::new()));
//! let log = Arc::clone(&missed);
//! bus.set_drop_callback(Some(Box::new(move |info| {
//!     log.lock().unwrap().push(info.subscriber_name.to_string());
//! })));
//! let _slow = bus.subscribe("slow", 1).unwrap();
//! let _metrics = bus.subscribe_with(SubscribeOptions::new("metrics", 1).lossy()).unwrap();
//! bus.start();
//! bus.publish(Ping { timestamp: Timestamp::now() });
//! bus.publish(Ping { timestamp: Timestamp::now() }); // both buffers are full now
//!
//! assert_eq!(*missed.lock().unwrap(), ["slow"]); // only the critical one is reported
//! let stats = bus.stats();
//! assert_eq!((stats.dropped_critical, stats.dropped_observability), (1, 1));
//! ```
//!
//! # Start and pause
//!
//! A new bus is *buffering*: events published before [`EventBus::start`] are
//! kept in its pre-start buffer, in order, up to [`DEFAULT_PRE_START_LIMIT`]
//! (configurable with [`EventBus::builder`]); what does not fit is counted and
//! reported, never lost silently. `start()` replays them to the subscribers
//! registered at that moment before anything published after it returns, so
//! components can subscribe in any order during startup. [`EventBus::pause`]
//! buffers again. Subscribing to a running bus logs a warning naming the
//! caller, unless the subscription is
//! [`leader_only`](SubscribeOptions::leader_only).
//!
//! # Async use
//!
//! [`Subscription`] and [`TypedSubscription`] implement
//! [`Stream`](futures_core::Stream) and work on any executor (tokio, smol,
//! async-std, `futures::executor`): publishers wake a parked consumer; a
//! consumer that never polls as a stream costs them nothing.
//!
//! ```
//! # use switchboard::{Event, EventBus, Timestamp};
//! use futures::StreamExt;
//! # #[derive(Event)]
//! # struct Tick(u32, #[event(timestamp)] Timestamp);
//!
//! let bus = EventBus::new();
//! let mut ticks = bus.subscribe_to::<Tick>("clock", 16).unwrap();
//! bus.start();
//! std::thread::spawn(move || {
//!     bus.publish(Tick(1, Timestamp::now()));
//!     bus.publish(Tick(2, Timestamp::now()));
//! }); // the bus is dropped at the end of the thread: the stream ends
//! let sum = futures::executor::block_on(async {
//!     let mut sum = 0;
//!     while let Some(tick) = ticks.next().await {
//!         sum += tick.0;
//!     }
//!     sum
//! });
//! assert_eq!(sum, 3);
//! ```
//!
//! # Requests
//!
//! [`EventBus::request`] publishes a [`Request`] and gathers the [`Response`]s
//! of the expected responders, with a quorum, a timeout, cancellation and the
//! partial result on failure; [`EventBus::request_async`] does the same on any
//! executor. `#[derive(Request)]` and `#[derive(Response)]` name the fields
//! that carry the request id and the responder. A request carried by other
//! means (`switchboard-nats` carries them across processes) gathers its
//! responses with the same [`RequestTally`], and waits for its
//! [`CancelToken`] with [`CancelToken::cancelled`].
//!
//! # Late joiners, lag, listeners
//!
//! - **Retained events**: [`EventBus::publish_retained`] keeps the latest
//!   event of each type; a subscription made
//!   [`with_retained`](SubscribeOptions::with_retained) (or, typed,
//!   [`TypedOptions::with_retained`]) receives them first, exactly once,
//!   then live events.
//! - **Gaps**: [`Subscription::take_missed`] tells the receive loop how many
//!   events it missed since it last asked; [`Subscription::with_gaps`] yields
//!   a [`Received::Missed`] before the next event.
//! - **Who listens**: [`EventBus::listeners`] counts the subscribers an event
//!   of a type would reach, cheaply enough to ask before building it.
//!
//! ```
//! use switchboard::{Received, Event, EventBus, SubscribeOptions, Timestamp};
//!
//! #[derive(Event)]
//! #[event(type = "config.current")]
//! struct CurrentConfig { revision: u32, timestamp: Timestamp }
//!
//! let bus = EventBus::new();
//! bus.start();
//! assert_eq!(bus.listeners::<CurrentConfig>(), 0);
//! bus.publish_retained(CurrentConfig { revision: 7, timestamp: Timestamp::now() });
//!
//! // Typed: receives `Arc<CurrentConfig>`, the retained one first.
//! let late = bus
//!     .subscribe_with(
//!         SubscribeOptions::of::<CurrentConfig>("late", 1)
//!             .with_retained()
//!             .leader_only(),
//!     )
//!     .unwrap();
//! assert_eq!(bus.listeners::<CurrentConfig>(), 1);
//! bus.publish(CurrentConfig { revision: 8, timestamp: Timestamp::now() }); // buffer full: missed
//! drop(bus);
//! let seen: Vec<_> = late
//!     .with_gaps()
//!     .into_iter()
//!     .map(|item| match item {
//!         Received::Missed(n) => format!("missed {n}"),
//!         Received::Event(config) => config.revision.to_string(),
//!     })
//!     .collect();
//! assert_eq!(seen, ["missed 1", "7"]);
//! ```
//!
//! # Recent events and coalescing
//!
//! [`ringbuffer::RingBuffer`] keeps the last N of anything (a "recent events"
//! view). [`Subscription::drain_coalesced`] takes what is queued, skipping
//! [coalescible](Event::coalescible) events that a later one supersedes.
//!
//! # Lock-freedom, precisely
//!
//! `publish` on a started bus takes no lock: it reads an atomic state and an
//! [`arc_swap`](https://docs.rs/arc-swap) snapshot of the subscribers, and
//! offers the event to each matching subscriber's crossbeam channel with
//! `try_send`. Subscribing and unsubscribing copy and swap that snapshot and
//! never make a publisher wait.
//!
//! Where a publish does lock, briefly:
//!
//! - while the bus is buffering (before `start`, after `pause`), publishers
//!   queue on the mode lock;
//! - crossbeam's `try_send` takes its internal waker lock when it has to wake
//!   a consumer parked in a blocking `recv`;
//! - a thread's first publish takes a lock once, to claim the slot that
//!   counts its publishes from then on;
//! - a retained publish takes the retained lock for its delivery;
//! - a response to a request takes its response type's route lock while it
//!   is matched to the waiting request, and that request's slot lock to hand
//!   it over; the request is woken after both are released.
//!
//! No lock is held while the [drop callback](EventBus::set_drop_callback) runs.
//! An event's trait methods ([`Event::event_type`], [`Response::request_id`],
//! [`Response::responder`]: field reads when derived) may run under the route
//! and retained locks, and an async consumer's waker may be woken under the
//! mode or retained lock: neither may call back into the same bus
//! synchronously.
//!
//! # Model-checking your own code with loom
//!
//! Built with `RUSTFLAGS="--cfg switchboard_loom"`, switchboard takes its
//! atomics, locks, registry snapshot, queues and wakers from
//! [loom](https://docs.rs/loom), so a crate that uses it can model-check its
//! own concurrent code, switchboard included. See the design document's
//! section "Loom for users" for what is and is not available under the cfg;
//! `examples/loom-user/` in the repository is a crate doing it.
//!
//! # Cargo features
//!
//! - `derive` (default): `#[derive(Event)]`, `#[derive(Request)]` and
//!   `#[derive(Response)]`.
//! - `tracing` (default): log the warnings of the Go original (late
//!   subscriptions with the caller's file and line, critical drops, pre-start
//!   overflow, a panicking drop callback) through [`tracing`](https://docs.rs/tracing).
//! - `prometheus`: `prometheus::BusCollector` (a module that exists only with
//!   the feature, hence no link here), a
//!   [`prometheus-client`](https://docs.rs/prometheus-client) collector that
//!   reads the bus's counters at scrape time.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

// Lets `#[derive(Event)]`, which names `::switchboard`, work inside the crate too.
extern crate self as switchboard;

mod acks;
mod blocking;
mod bus;
mod completion;
mod core;
pub mod docs;
/// The README's Rust blocks, compiled and run as doctests (the quick start).
#[cfg(all(doctest, feature = "derive"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
mod drops;
mod error;
mod event;
mod gaps;
mod hash;
mod log;
mod mutants;
mod options;
mod padding;
#[cfg(feature = "prometheus")]
pub mod prometheus;
mod publish;
mod request;
pub mod ringbuffer;
mod stats;
mod subscription;
mod sync;
#[cfg(not(switchboard_loom))] // a std thread with a clock; loom has none
mod timer;
mod timestamp;
mod trace;
mod typed_options;

pub use acks::{AcksIter, Delivery, WithAcks};
pub use bus::{EventBus, EventBusBuilder, WeakEventBus, DEFAULT_PRE_START_LIMIT};
pub use completion::{Completed, Completion};
pub use drops::{DropCallback, DropInfo, DropReason};
pub use error::{RecvError, RecvTimeoutError, SubscribeError, TryRecvError};
pub use event::{Event, Request, Response};
pub use gaps::{GapsIter, Received, WithGaps};
pub use options::{SubscribeOptions, TypeSet, MAX_CAPACITY};
pub use publish::{
    PublishError, PublishFuture, TrackedPublish, TrackedPublishFuture, WaitingPublish,
};
pub use request::{
    CancelToken, CancelledFuture, RequestError, RequestFuture, RequestOptions, RequestOptionsError,
    RequestResult, RequestTally,
};
pub use stats::{BusStats, RequestStats, SubscriberKind, SubscriberStats};
pub use subscription::{IntoIter, Iter, Subscription, TryIter, TypedSubscription};
#[cfg(feature = "derive")]
pub use switchboard_derive::{Event, Request, Response};
pub use timestamp::Timestamp;
pub use trace::{TraceContext, TraceContextError};
pub use typed_options::{SubscribeWith, TypedOptions};
