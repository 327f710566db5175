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
//! # Quick tour
//!
//! ```
//! use std::time::SystemTime;
//! use switchboard::{Event, EventBus};
//!
//! struct RouteAdded { path: String, at: SystemTime }
//!
//! impl Event for RouteAdded {
//!     fn event_type(&self) -> &str { "route.added" }
//!     fn timestamp(&self) -> SystemTime { self.at }
//! }
//!
//! let bus = EventBus::new(100);
//!
//! // Subscribe during startup, in any order: events published before
//! // `start()` are buffered and replayed in order.
//! let everything = bus.subscribe("audit", 128).unwrap();
//! let routes = bus.subscribe_to::<RouteAdded>("router", 64).unwrap();
//! let metrics = bus.subscribe_types_lossy("metrics", 8, ["route.added"]).unwrap();
//!
//! bus.publish(RouteAdded { path: "/api".into(), at: SystemTime::now() });
//! bus.start();
//!
//! assert_eq!(routes.recv().unwrap().path, "/api"); // typed: Arc<RouteAdded>
//! assert_eq!(everything.recv().unwrap().event_type(), "route.added");
//! assert_eq!(metrics.len(), 1);
//! assert_eq!(bus.dropped_events(), 0);
//! ```
//!
//! # Kinds of subscription
//!
//! - **Universal** ([`EventBus::subscribe`]): every event.
//! - **By event-type string** ([`EventBus::subscribe_types`]): events whose
//!   [`Event::event_type`] is in a list.
//! - **By Rust type** ([`EventBus::subscribe_to`], [`EventBus::subscribe_multiple`]):
//!   filtered by `TypeId` at the bus; `subscribe_to::<T>` yields `Arc<T>`.
//! - **Critical or lossy**: a critical subscriber's drops go to the drop
//!   callback ([`EventBus::set_drop_callback`]); a lossy one's are only counted.
//! - **Leader-only** variants skip the warning logged for subscriptions made
//!   after `start()`.
//!
//! All of them are shortcuts for [`EventBus::subscribe_with`] and
//! [`SubscribeOptions`].
//!
//! # Lock-freedom, precisely
//!
//! `publish` on a started bus takes no lock: it reads an atomic state and an
//! [`arc_swap`](https://docs.rs/arc-swap) snapshot of the subscribers, and
//! offers the event to each matching subscriber's crossbeam channel with
//! `try_send`. Subscribing and unsubscribing copy and swap that snapshot and
//! never make a publisher wait. Two places may still lock briefly: while the
//! bus is buffering (before `start`, after `pause`) publishers queue on the mode
//! lock, and crossbeam's `try_send` takes its internal waker lock when it has
//! to wake a consumer parked in a blocking `recv`.
//!
//! # Cargo features
//!
//! - `tracing` (default): log the warnings of the reference design (late
//!   subscriptions with the caller's file and line, critical drops, pre-start
//!   overflow, a panicking drop callback) through [`tracing`](https://docs.rs/tracing).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod bus;
mod drops;
mod error;
mod event;
mod hash;
mod log;
mod options;
mod registry;
pub mod ringbuffer;
mod stats;
mod subscriber;
mod subscription;
mod sync;

pub use bus::{EventBus, EventBusBuilder, MAX_PRE_START_BUFFER_SIZE};
pub use drops::{DropCallback, DropInfo, DropReason};
pub use error::{RecvError, RecvTimeoutError, SubscribeError, TryRecvError};
pub use event::{Event, Request, Response};
pub use options::{SubscribeOptions, TypeSet, MAX_BUFFER_SIZE};
pub use stats::{BusStats, SubscriberKind, SubscriberStats};
pub use subscription::{IntoIter, Iter, Subscription, TryIter, TypedSubscription};
