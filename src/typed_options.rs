//! Typed subscribe options: [`SubscribeOptions`] for one Rust event type,
//! which [`EventBus::subscribe_with`](crate::EventBus::subscribe_with) makes
//! a [`TypedSubscription`], and the trait that lets it take either kind.

use std::fmt;
use std::marker::PhantomData;

use crate::event::Event;
use crate::options::{SubscribeOptions, TypeSet};
use crate::subscription::{Subscription, TypedSubscription};

// The typed form's constructor lives beside it, so `options.rs` (which the
// core imports) needs nothing from the subscriptions.
impl SubscribeOptions {
    /// Options for a subscription to the Rust event type `T` only, received
    /// as `Arc<T>`: [`subscribe_with`](crate::EventBus::subscribe_with) makes
    /// them a [`TypedSubscription<T>`]. What
    /// [`subscribe_to::<T>`](crate::EventBus::subscribe_to) subscribes with,
    /// open to [`lossy`](TypedOptions::lossy),
    /// [`leader_only`](TypedOptions::leader_only) and
    /// [`with_retained`](TypedOptions::with_retained). See [`TypedOptions`].
    pub fn of<T: Event>(name: impl Into<String>, capacity: usize) -> TypedOptions<T> {
        TypedOptions {
            options: Self::new(name, capacity).rust_types(TypeSet::new().with::<T>()),
            _type: PhantomData,
        }
    }
}

/// [`SubscribeOptions`] for the Rust event type `T` only, from
/// [`SubscribeOptions::of`]: [`EventBus::subscribe_with`](crate::EventBus::subscribe_with)
/// makes them a [`TypedSubscription<T>`], which yields `Arc<T>` (no
/// downcasting), filtered by `TypeId` at the bus.
///
/// The flavours are those of [`SubscribeOptions`]: [`lossy`](Self::lossy),
/// [`leader_only`](Self::leader_only), [`with_retained`](Self::with_retained).
/// The filter is `T`, and only `T`: there is no way to add event types or
/// other Rust types to it (a subscription to several types receives
/// `Arc<dyn Event>`: use [`SubscribeOptions::rust_types`]), so a typed
/// subscription never has a filter other than its type.
///
/// ```
/// use switchboard::{Event, EventBus, SubscribeOptions, Timestamp};
///
/// #[derive(Event)]
/// #[event(type = "leader.elected")]
/// struct LeaderElected { node: &'static str, timestamp: Timestamp }
///
/// let bus = EventBus::new();
/// bus.start();
/// bus.publish_retained(LeaderElected { node: "b", timestamp: Timestamp::now() });
///
/// // Made by a component when it becomes leader: the current leader first,
/// // as an `Arc<LeaderElected>`, and no late-subscription warning.
/// let leaders = bus
///     .subscribe_with(
///         SubscribeOptions::of::<LeaderElected>("leader", 8)
///             .with_retained()
///             .leader_only(),
///     )
///     .unwrap();
/// assert_eq!(leaders.recv().unwrap().node, "b");
/// ```
///
/// A filter by type string is not among its methods:
///
/// ```compile_fail
/// # use switchboard::{Event, SubscribeOptions, Timestamp};
/// # #[derive(Event)]
/// # struct LeaderElected { timestamp: Timestamp }
/// let options = SubscribeOptions::of::<LeaderElected>("leader", 8)
///     .event_types(["route.added"]); // no such method: a compile error
/// ```
#[must_use = "options subscribe nothing until given to EventBus::subscribe_with"]
pub struct TypedOptions<T> {
    options: SubscribeOptions,
    _type: PhantomData<fn() -> T>,
}

impl<T: Event> TypedOptions<T> {
    /// Drops for this subscriber are only counted; see [`SubscribeOptions::lossy`].
    pub fn lossy(self) -> Self {
        self.map(SubscribeOptions::lossy)
    }

    /// No late-subscription warning; see [`SubscribeOptions::leader_only`].
    pub fn leader_only(self) -> Self {
        self.map(SubscribeOptions::leader_only)
    }

    /// The retained event of type `T` first, then live events; see
    /// [`SubscribeOptions::with_retained`].
    pub fn with_retained(self) -> Self {
        self.map(SubscribeOptions::with_retained)
    }

    fn map(self, f: impl FnOnce(SubscribeOptions) -> SubscribeOptions) -> Self {
        Self {
            options: f(self.options),
            _type: PhantomData,
        }
    }
}

impl<T> Clone for TypedOptions<T> {
    fn clone(&self) -> Self {
        Self {
            options: self.options.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> fmt::Debug for TypedOptions<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TypedOptions").field(&self.options).finish()
    }
}

/// What [`EventBus::subscribe_with`](crate::EventBus::subscribe_with) takes:
/// [`SubscribeOptions`], which make a [`Subscription`], or
/// [`TypedOptions<T>`], which make a [`TypedSubscription<T>`]. Sealed: the
/// crate's two options types are the only ones.
pub trait SubscribeWith: sealed::Sealed {
    /// The subscription these options make.
    type Subscription;
}

impl SubscribeWith for SubscribeOptions {
    type Subscription = Subscription;
}

impl<T: Event> SubscribeWith for TypedOptions<T> {
    type Subscription = TypedSubscription<T>;
}

/// The conversions behind [`SubscribeWith`], out of users' reach: a typed
/// subscription may only wrap one the bus filters to its type.
mod sealed {
    use super::{SubscribeOptions, SubscribeWith, TypedOptions};
    use crate::event::Event;
    use crate::subscription::{Subscription, TypedSubscription};

    pub trait Sealed {
        /// The options as the bus registers them.
        fn into_options(self) -> SubscribeOptions;
        /// The subscription of the options, from the one the bus registered.
        fn wrap(subscription: Subscription) -> <Self as SubscribeWith>::Subscription
        where
            Self: SubscribeWith;
    }

    impl Sealed for SubscribeOptions {
        fn into_options(self) -> SubscribeOptions {
            self
        }
        fn wrap(subscription: Subscription) -> <Self as SubscribeWith>::Subscription {
            subscription
        }
    }

    impl<T: Event> Sealed for TypedOptions<T> {
        fn into_options(self) -> SubscribeOptions {
            self.options
        }
        fn wrap(subscription: Subscription) -> <Self as SubscribeWith>::Subscription {
            TypedSubscription::new(subscription)
        }
    }
}
