//! What a subscription asks for: one options type behind the three subscribe methods.

use std::any::{type_name, TypeId};
use std::fmt;

use crate::error::SubscribeError;
use crate::event::Event;

/// The largest capacity of a subscriber's buffer that the bus accepts.
///
/// Buffers are allocated up front (a slot is 24 bytes), so this caps one
/// subscription at about 25 MiB. A consumer that needs more than a million
/// queued events to keep up needs a faster consumer or a lossy subscription,
/// not a bigger buffer.
pub const MAX_CAPACITY: usize = 1 << 20;

/// A set of Rust event types, for subscriptions filtered by [`TypeId`] at the bus.
///
/// ```
/// use switchboard::{Event, Timestamp, TypeSet};
///
/// #[derive(Event)]
/// struct Created { timestamp: Timestamp }
/// #[derive(Event)]
/// struct Deleted { timestamp: Timestamp }
///
/// let types = TypeSet::new().with::<Created>().with::<Deleted>();
/// assert_eq!(types.len(), 2);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TypeSet {
    types: Vec<(TypeId, &'static str)>,
}

impl TypeSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The set with `T` added (adding a type twice keeps one entry).
    #[must_use]
    pub fn with<T: Event>(mut self) -> Self {
        let id = TypeId::of::<T>();
        if !self.types.iter().any(|(t, _)| *t == id) {
            self.types.push((id, type_name::<T>()));
        }
        self
    }

    /// How many types are in the set.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// The Rust type names in the set, in insertion order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.types.iter().map(|(_, name)| *name)
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = TypeId> + '_ {
        self.types.iter().map(|(id, _)| *id)
    }
}

impl fmt::Debug for TypeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

/// Which events reach a subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Filter {
    /// Every event.
    All,
    /// Events whose `event_type()` is one of these strings (deduplicated).
    EventTypes(Vec<Box<str>>),
    /// Events whose concrete Rust type is in the set.
    RustTypes(TypeSet),
}

impl Filter {
    /// The filter's types joined by commas, as `DropInfo::event_types` reports them.
    pub(crate) fn label(&self) -> String {
        match self {
            Filter::All => String::new(),
            Filter::EventTypes(names) => names.join(","),
            Filter::RustTypes(types) => types.names().collect::<Vec<_>>().join(","),
        }
    }
}

/// How to subscribe: name, capacity, filter and delivery flavour.
///
/// [`EventBus::subscribe_with`](crate::EventBus::subscribe_with) takes it;
/// the shortcuts [`subscribe`](crate::EventBus::subscribe) (every event) and
/// [`subscribe_to`](crate::EventBus::subscribe_to) (one Rust type, received
/// as `Arc<T>`) build one. [`SubscribeOptions::of`] starts the typed form,
/// [`TypedOptions`](crate::TypedOptions), for a subscription to one Rust
/// type with any of the flavours below. The builder methods combine freely, except the two
/// filters:
///
/// - which events: every one (the default), [`event_types`](Self::event_types)
///   (by type string) or [`rust_types`](Self::rust_types) (by `TypeId`);
/// - what a miss does: critical (the default: reported to the drop callback)
///   or [`lossy`](Self::lossy) (only counted);
/// - [`leader_only`](Self::leader_only): no warning when made after `start()`;
/// - [`with_retained`](Self::with_retained): the retained events first.
///
/// ```
/// use switchboard::{EventBus, SubscribeOptions};
///
/// let bus = EventBus::new();
/// let metrics = bus
///     .subscribe_with(
///         SubscribeOptions::new("metrics", 256)
///             .event_types(["route.added", "route.removed"])
///             .lossy(),
///     )
///     .unwrap();
/// assert_eq!(metrics.capacity(), 256);
/// ```
#[derive(Clone, Debug)]
pub struct SubscribeOptions {
    pub(crate) name: String,
    pub(crate) capacity: usize,
    pub(crate) lossy: bool,
    pub(crate) leader_only: bool,
    pub(crate) event_types: Option<Vec<String>>,
    pub(crate) rust_types: Option<TypeSet>,
    pub(crate) with_retained: bool,
}

impl SubscribeOptions {
    /// A critical, universal subscription named `name` whose buffer holds up
    /// to `capacity` queued events.
    ///
    /// A `capacity` of 0 makes an unbuffered subscription, like an unbuffered Go
    /// channel: an event is handed over only if the consumer is blocked in
    /// `recv` at that moment, and is dropped (and counted) otherwise. Async
    /// consumers never block in `recv`, so a 0-capacity subscription used as a
    /// `Stream` receives nothing; give it a capacity of at least 1.
    pub fn new(name: impl Into<String>, capacity: usize) -> Self {
        Self {
            name: name.into(),
            capacity,
            lossy: false,
            leader_only: false,
            event_types: None,
            rust_types: None,
            with_retained: false,
        }
    }

    /// Drops for this subscriber count as *observability* drops and do not call
    /// the drop callback: for metrics, logs and debugging views that may fall behind.
    #[must_use]
    pub fn lossy(mut self) -> Self {
        self.lossy = true;
        self
    }

    /// Marks a subscription made when a component becomes leader, after
    /// `start()`: it does not log the late-subscription warning.
    #[must_use]
    pub fn leader_only(mut self) -> Self {
        self.leader_only = true;
        self
    }

    /// Receive first the retained events this subscription's filter matches
    /// (the latest of each type, oldest first), then live events; see
    /// [`EventBus::publish_retained`](crate::EventBus::publish_retained).
    ///
    /// An event retained while the subscription is being made arrives
    /// exactly once, as a retained event or live; never is an older event of
    /// a type received after a newer one of that type. Retained events that
    /// do not fit in the buffer are missed and counted like any other: with
    /// capacity 0 (nobody can be waiting in `recv` yet while the
    /// subscription is made) every retained event is missed.
    #[must_use]
    pub fn with_retained(mut self) -> Self {
        self.with_retained = true;
        self
    }

    /// Receive only events whose `event_type()` is one of `types`.
    ///
    /// Duplicate names are kept once. An empty list is rejected at subscribe
    /// time ([`SubscribeError::EmptyTypeList`]).
    #[must_use]
    pub fn event_types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.event_types = Some(types.into_iter().map(Into::into).collect());
        self
    }

    /// Receive only events whose concrete Rust type is in `types`, filtered by
    /// `TypeId` at the bus.
    ///
    /// An empty set is rejected at subscribe time ([`SubscribeError::EmptyTypeList`]).
    #[must_use]
    pub fn rust_types(mut self, types: TypeSet) -> Self {
        self.rust_types = Some(types);
        self
    }

    /// Checks the options and resolves the filter.
    pub(crate) fn validate(&self) -> Result<Filter, SubscribeError> {
        if self.capacity > MAX_CAPACITY {
            return Err(SubscribeError::CapacityTooLarge {
                requested: self.capacity,
                max: MAX_CAPACITY,
            });
        }
        match (&self.event_types, &self.rust_types) {
            (Some(_), Some(_)) => Err(SubscribeError::MixedFilters),
            (None, None) => Ok(Filter::All),
            (Some(names), None) => {
                let mut unique: Vec<Box<str>> = Vec::with_capacity(names.len());
                for name in names {
                    if !unique.iter().any(|u| **u == **name) {
                        unique.push(name.as_str().into());
                    }
                }
                if unique.is_empty() {
                    return Err(SubscribeError::EmptyTypeList);
                }
                Ok(Filter::EventTypes(unique))
            }
            (None, Some(types)) if types.is_empty() => Err(SubscribeError::EmptyTypeList),
            (None, Some(types)) => Ok(Filter::RustTypes(types.clone())),
        }
    }
}
