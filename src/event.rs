//! The event model: what travels on the bus and how to get the concrete type back.

use std::any::Any;
use std::sync::Arc;
use std::time::SystemTime;

use crate::TraceContext;

/// Something that can be published on an [`EventBus`](crate::EventBus).
///
/// Events travel as `Arc<dyn Event>`: the publisher allocates once and every
/// receiving subscriber gets a reference-count increment, never a copy.
///
/// Subscribers can filter by [`event_type`](Event::event_type) (a string, as in
/// the Go original) or by the Rust type itself ([`EventBus::subscribe_to`]).
///
/// `#[derive(Event)]` (the default `derive` feature) writes the
/// implementation; see its documentation for the attributes:
///
/// ```
/// use std::time::SystemTime;
/// use switchboard::Event;
///
/// #[derive(Event)]
/// #[event(type = "config.changed")]
/// struct ConfigChanged {
///     revision: u64,
///     #[event(timestamp)]
///     at: SystemTime,
/// }
/// ```
///
/// An event type that carries a [W3C trace context](TraceContext) has a
/// field `Option<TraceContext>` (skipped by serde, if the type is
/// serialized: the context travels beside the data, not in it):
///
/// ```
/// use switchboard::{Event, Timestamp, TraceContext};
///
/// #[derive(Event)]
/// struct OrderPlaced {
///     order: u64,
///     timestamp: Timestamp,
///     trace: Option<TraceContext>,
/// }
///
/// let parent = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
/// let mut event = OrderPlaced { order: 7, timestamp: Timestamp::now(), trace: None };
/// event.set_trace_context(Some(parent.clone()));
/// assert_eq!(event.trace_context(), Some(&parent));
/// ```
///
/// By hand, the same as the first is:
///
/// ```
/// # use std::time::SystemTime;
/// # struct ConfigChanged { revision: u64, at: SystemTime }
/// impl switchboard::Event for ConfigChanged {
///     fn event_type(&self) -> &str {
///         "config.changed"
///     }
///     fn timestamp(&self) -> SystemTime {
///         self.at
///     }
/// }
/// ```
///
/// [`EventBus::subscribe_to`]: crate::EventBus::subscribe_to
pub trait Event: Any + Send + Sync {
    /// The event's type name, used by string-filtered subscriptions
    /// ([`SubscribeOptions::event_types`](crate::SubscribeOptions::event_types)).
    fn event_type(&self) -> &str;

    /// When the event happened.
    fn timestamp(&self) -> SystemTime;

    /// Whether a later queued event of the same [`event_type`](Event::event_type)
    /// supersedes this one, so a consumer that falls behind may skip it
    /// (the Go original's `CoalescibleEvent`). Defaults to `false`.
    fn coalescible(&self) -> bool {
        false
    }

    /// The W3C trace context the event carries, if its type has one
    /// (opt-in: `#[derive(Event)]` reads a field of type
    /// `Option<TraceContext>`, or the field marked `#[event(trace)]`).
    /// Defaults to `None`: an event type without one pays nothing.
    ///
    /// The bus itself only carries it; the NATS bridge sends it across
    /// processes (CloudEvents' distributed-tracing extension) and gives it
    /// to the event it imports through
    /// [`set_trace_context`](Event::set_trace_context).
    fn trace_context(&self) -> Option<&TraceContext> {
        None
    }

    /// Sets the trace context, for an event type that carries one (the
    /// derive writes it with [`trace_context`](Event::trace_context)); a
    /// type without one ignores it (the default). Whoever builds events
    /// from elsewhere, such as a bridge decoding an event from the wire,
    /// calls it before publishing.
    fn set_trace_context(&mut self, context: Option<TraceContext>) {
        let _ = context;
    }
}

/// An event that asks for answers: the question half of a scatter-gather request.
pub trait Request: Event {
    /// Identifies the request; every [`Response`] to it carries the same id.
    fn request_id(&self) -> &str;
}

/// An event that answers a [`Request`].
pub trait Response: Event {
    /// The id of the [`Request`] this answers.
    fn request_id(&self) -> &str;

    /// Who answered; matched against the request's expected responders.
    fn responder(&self) -> &str;
}

impl std::fmt::Debug for dyn Event {
    /// Shows the event's type name and timestamp (the trait knows nothing else).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("event_type", &self.event_type())
            .field("timestamp", &self.timestamp())
            .finish_non_exhaustive()
    }
}

impl dyn Event {
    /// Returns `true` if the event's concrete type is `T`.
    pub fn is<T: Event>(&self) -> bool {
        let any: &dyn Any = self;
        any.is::<T>()
    }

    /// Borrows the event as its concrete type `T`, if it is one.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use switchboard::{Event, Timestamp};
    /// # #[derive(Event)]
    /// # struct Ping { timestamp: Timestamp }
    /// let event: Arc<dyn Event> = Arc::new(Ping { timestamp: Timestamp::now() });
    /// assert!(event.downcast_ref::<Ping>().is_some());
    /// ```
    pub fn downcast_ref<T: Event>(&self) -> Option<&T> {
        let any: &dyn Any = self;
        any.downcast_ref::<T>()
    }

    /// Converts a shared event into a shared `T` without copying it, or gives
    /// the event back unchanged if it is not a `T`.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use switchboard::{Event, Timestamp};
    /// # #[derive(Event)]
    /// # struct Ping { timestamp: Timestamp }
    /// let event: Arc<dyn Event> = Arc::new(Ping { timestamp: Timestamp::now() });
    /// let ping: Arc<Ping> = event.downcast_arc::<Ping>().ok().unwrap();
    /// ```
    pub fn downcast_arc<T: Event>(self: Arc<Self>) -> Result<Arc<T>, Arc<dyn Event>> {
        if !self.is::<T>() {
            return Err(self);
        }
        let any: Arc<dyn Any + Send + Sync> = self;
        Ok(any
            .downcast::<T>()
            .unwrap_or_else(|_| unreachable!("type checked just above")))
    }

    /// The `TypeId` of the concrete event type (not of `dyn Event`).
    pub(crate) fn concrete_type_id(&self) -> std::any::TypeId {
        let any: &dyn Any = self;
        any.type_id()
    }
}
