//! The public face of the bus: `EventBus`, its builder and weak handle; each
//! call checks its input and hands the work to the core (`crate::core`).

use std::fmt;
use std::sync::{Arc, Weak};

use crate::core::{BusCore, Clear};
use crate::drops::DropCallback;
use crate::error::SubscribeError;
use crate::event::Event;
use crate::log;
use crate::options::SubscribeOptions;
use crate::publish::WaitingPublish;
use crate::stats::BusStats;
use crate::subscription::{Subscription, TypedSubscription};
use crate::typed_options::SubscribeWith;

/// How many events the bus keeps while buffering (before [`EventBus::start`] or
/// after [`EventBus::pause`]) unless its builder sets another
/// [`pre_start_limit`](EventBusBuilder::pre_start_limit). The Go original's
/// `MaxPreStartBufferSize`.
pub const DEFAULT_PRE_START_LIMIT: usize = 1000;

/// A lock-free, in-process publish/subscribe event bus.
///
/// Publishing never blocks: each subscriber has its own bounded buffer, and an
/// event that does not fit is dropped *for that subscriber only* and counted.
/// The bus starts out buffering: events published before [`start`](Self::start)
/// are kept (up to a limit) and replayed in order when it is called, so
/// components can subscribe in any order during startup.
///
/// `EventBus` is a cheap handle: clones share one bus. The bus lives until the
/// last handle is dropped; then every subscription ends (after its queued
/// events are received). Subscriptions do not keep the bus alive.
///
/// ```
/// use switchboard::{Event, EventBus, Timestamp};
///
/// #[derive(Event)]
/// #[event(type = "route.added")]
/// struct RouteAdded(&'static str, #[event(timestamp)] Timestamp);
///
/// let bus = EventBus::new();
/// let routes = bus.subscribe_to::<RouteAdded>("router", 64).unwrap();
///
/// assert_eq!(bus.publish(RouteAdded("/api", Timestamp::now())), 0); // buffered: not started yet
/// bus.start(); // replays the buffer, then delivers directly
/// assert_eq!(bus.publish(RouteAdded("/web", Timestamp::now())), 1);
///
/// assert_eq!(routes.recv().unwrap().0, "/api");
/// assert_eq!(routes.recv().unwrap().0, "/web");
/// ```
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<BusCore>,
}

/// A handle to an [`EventBus`] that does not keep it alive; see
/// [`EventBus::downgrade`].
///
/// This is what a drop callback should capture to use the bus: the bus owns
/// its callback, so a captured [`EventBus`] would keep the bus alive forever
/// (a reference cycle) and its subscriptions would never end.
#[derive(Clone, Debug)]
pub struct WeakEventBus {
    inner: Weak<BusCore>,
}

impl WeakEventBus {
    /// The bus, if some [`EventBus`] handle still keeps it alive.
    pub fn upgrade(&self) -> Option<EventBus> {
        self.inner.upgrade().map(|inner| EventBus { inner })
    }
}

/// Builds an [`EventBus`] with non-default settings.
///
/// ```
/// use switchboard::EventBus;
///
/// let bus = EventBus::builder()
///     .pre_start_reserve(64)
///     .pre_start_limit(10_000)
///     .build();
/// assert!(!bus.is_running());
/// ```
#[derive(Clone, Debug)]
pub struct EventBusBuilder {
    pre_start_reserve: usize,
    pre_start_limit: usize,
}

impl Default for EventBusBuilder {
    fn default() -> Self {
        Self {
            pre_start_reserve: 0,
            pre_start_limit: DEFAULT_PRE_START_LIMIT,
        }
    }
}

impl EventBusBuilder {
    /// How many pre-start events to allocate room for up front (default 0;
    /// the pre-start buffer grows as needed up to
    /// [`pre_start_limit`](Self::pre_start_limit), and a larger value is
    /// reduced to it). The `capacity` argument of the Go original's
    /// `NewEventBus(capacity)`.
    #[must_use]
    pub fn pre_start_reserve(mut self, reserve: usize) -> Self {
        self.pre_start_reserve = reserve;
        self
    }

    /// How many events to keep while buffering (default
    /// [`DEFAULT_PRE_START_LIMIT`]). Past it, events are dropped, counted in
    /// [`BusStats::dropped_pre_start`] and reported to the drop callback.
    /// 0 keeps none: everything published while buffering is dropped and counted.
    #[must_use]
    pub fn pre_start_limit(mut self, limit: usize) -> Self {
        self.pre_start_limit = limit;
        self
    }

    /// Creates the bus, buffering until [`EventBus::start`].
    pub fn build(self) -> EventBus {
        EventBus {
            inner: Arc::new(BusCore::new(self.pre_start_reserve, self.pre_start_limit)),
        }
    }
}

impl EventBus {
    /// Creates a bus that buffers until [`start`](Self::start), keeping up to
    /// [`DEFAULT_PRE_START_LIMIT`] events meanwhile; [`builder`](Self::builder)
    /// sets other limits.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for a bus with non-default settings.
    pub fn builder() -> EventBusBuilder {
        EventBusBuilder::default()
    }

    /// Publishes `event` to every matching subscriber; see
    /// [`publish_arc`](Self::publish_arc).
    pub fn publish<E: Event>(&self, event: E) -> usize {
        self.publish_arc(Arc::new(event))
    }

    /// Publishes a shared event to every matching subscriber and returns how
    /// many received it.
    ///
    /// Never blocks and never waits for subscribe, unsubscribe or another
    /// publisher. A subscriber whose buffer is full misses the event; the miss
    /// is counted (on the subscriber and in the bus totals) and, for a critical
    /// subscriber, reported to the drop callback.
    ///
    /// While the bus is buffering (before [`start`](Self::start), after
    /// [`pause`](Self::pause)) the event is kept for replay and 0 is returned;
    /// if the pre-start buffer is full it is dropped, counted in
    /// [`BusStats::dropped_pre_start`] and reported to the drop callback.
    #[inline]
    pub fn publish_arc(&self, event: Arc<dyn Event>) -> usize {
        self.inner.publish(event)
    }

    /// Publishes `event`, waiting for room at every matching critical
    /// subscriber instead of dropping it: backpressure, as the publisher's
    /// choice. See [`publish_waiting_arc`](Self::publish_waiting_arc).
    pub fn publish_waiting<E: Event>(&self, event: E) -> WaitingPublish<'_> {
        self.publish_waiting_arc(Arc::new(event))
    }

    /// Publishes a shared event, waiting for room at every matching critical
    /// subscriber instead of dropping it.
    ///
    /// `.await` the returned [`WaitingPublish`] on any executor, or run it
    /// with [`blocking`](WaitingPublish::blocking) on a plain thread; give it
    /// a [`timeout`](WaitingPublish::timeout) or
    /// [`deadline`](WaitingPublish::deadline), and ask for a
    /// [`Completion`](crate::Completion) with
    /// [`tracked`](WaitingPublish::tracked). It resolves to how many
    /// subscribers received the event.
    ///
    /// - **Who waits:** critical subscribers with a buffer. Lossy
    ///   subscribers are offered the event as by [`publish`](Self::publish)
    ///   and drop it if full (counted); so does a subscriber of capacity 0,
    ///   which has no room to wait for (it takes an event only from inside
    ///   `recv`); the bus's request routes never are full.
    /// - **Order:** it delivers where there is room first, then waits for
    ///   the rest; each publisher's events keep their order at every
    ///   subscriber, as with `publish`.
    /// - **Before [`start`](Self::start)** (or after [`pause`](Self::pause))
    ///   it waits for the bus to run, rather than take a place in the
    ///   pre-start buffer (whose limit would drop it), and is delivered after
    ///   the replay.
    /// - **Deadline:** a subscriber still full at the deadline misses the
    ///   event: counted as dropped ([`DropReason::WaitTimedOut`](crate::DropReason),
    ///   reported to the drop callback) and named in the [`PublishError`](crate::PublishError),
    ///   which hands the event back; those that had room keep it. Before
    ///   the bus started, it counts one pre-start drop.
    /// - **Cancel** (the future dropped): the same, with
    ///   [`DropReason::WaitCancelled`](crate::DropReason).
    /// - **Unsubscribed meanwhile:** a subscriber that leaves while the
    ///   publish waits for it is skipped, not counted.
    /// - **Retained:** it does not retain the event (use
    ///   [`publish_retained`](Self::publish_retained)); subscriptions made
    ///   `with_retained` are subscribers like any other.
    ///
    /// ```
    /// use switchboard::{Event, EventBus, Timestamp};
    /// # futures::executor::block_on(async {
    ///
    /// #[derive(Event)]
    /// struct Order { id: u32, timestamp: Timestamp }
    ///
    /// let bus = EventBus::new();
    /// let orders = bus.subscribe_to::<Order>("billing", 1).unwrap();
    /// bus.start();
    ///
    /// let consumer = std::thread::spawn(move || orders.iter().map(|o| o.id).collect::<Vec<_>>());
    /// for id in 0..100 {
    ///     // A buffer of one, and nothing is lost: the publisher waits instead.
    ///     bus.publish_waiting(Order { id, timestamp: Timestamp::now() }).await.unwrap();
    /// }
    /// drop(bus);
    /// assert_eq!(consumer.join().unwrap(), (0..100).collect::<Vec<_>>());
    /// # });
    /// ```
    pub fn publish_waiting_arc(&self, event: Arc<dyn Event>) -> WaitingPublish<'_> {
        WaitingPublish::new(&self.inner, event)
    }

    /// Publishes `event` as [`publish`](Self::publish) does, and retains it:
    /// the bus keeps the latest retained event of each type (its Rust type
    /// and its [`event_type`](Event::event_type) string), and a subscription
    /// made [`with_retained`](crate::SubscribeOptions::with_retained) receives
    /// the retained events its filter matches first, then live events. For
    /// state that late joiners need: the current configuration, who leads.
    ///
    /// The event is retained when it is delivered: at once on a running bus,
    /// at the replay if the bus is buffering (so the retained value is what
    /// a subscriber would have seen), and not at all if the pre-start buffer
    /// has no room for it. A retained publish takes the bus's retained lock
    /// for the time of its delivery, so unlike `publish` it is not lock-free;
    /// it never waits for a consumer.
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
    /// bus.publish_retained(LeaderElected { node: "a", timestamp: Timestamp::now() });
    /// bus.publish_retained(LeaderElected { node: "b", timestamp: Timestamp::now() });
    ///
    /// // A component that starts later still learns who leads, and only the latest.
    /// let late = bus
    ///     .subscribe_with(SubscribeOptions::new("late", 8).with_retained().leader_only())
    ///     .unwrap();
    /// let first = late.try_recv().unwrap();
    /// assert_eq!(first.downcast_ref::<LeaderElected>().unwrap().node, "b");
    /// assert!(late.try_recv().is_err());
    /// assert_eq!(bus.retained::<LeaderElected>().unwrap().node, "b");
    /// ```
    pub fn publish_retained<E: Event>(&self, event: E) -> usize {
        self.publish_retained_arc(Arc::new(event))
    }

    /// [`publish_retained`](Self::publish_retained) for a shared event.
    pub fn publish_retained_arc(&self, event: Arc<dyn Event>) -> usize {
        self.inner.publish_retained(event)
    }

    /// The latest retained event of Rust type `T` (see
    /// [`publish_retained`](Self::publish_retained)), if any.
    pub fn retained<T: Event>(&self) -> Option<Arc<T>> {
        self.inner
            .retained_of(std::any::TypeId::of::<T>())
            .and_then(|event| event.downcast_arc::<T>().ok())
    }

    /// The latest retained event whose [`event_type`](Event::event_type) is
    /// `event_type`, of whatever Rust type, if any.
    pub fn retained_by_type(&self, event_type: &str) -> Option<Arc<dyn Event>> {
        self.inner.retained_named(event_type)
    }

    /// Forgets the retained events of Rust type `T`; returns how many it
    /// forgot. Later subscriptions no longer receive them. Before `start`
    /// (or while paused) it also forgets those buffered to be retained at
    /// the replay: they are still delivered, no longer retained.
    pub fn clear_retained<T: Event>(&self) -> usize {
        self.inner
            .clear_retained(Clear::RustType(std::any::TypeId::of::<T>()))
    }

    /// Forgets the retained events whose type string is `event_type`, as
    /// [`clear_retained`](Self::clear_retained) does; returns how many it
    /// forgot.
    pub fn clear_retained_by_type(&self, event_type: &str) -> usize {
        self.inner.clear_retained(Clear::Named(event_type))
    }

    /// Forgets every retained event, as
    /// [`clear_retained`](Self::clear_retained) does; returns how many it
    /// forgot.
    pub fn clear_all_retained(&self) -> usize {
        self.inner.clear_retained(Clear::All)
    }

    /// Replays the events buffered so far, in order, then switches to direct
    /// delivery. Idempotent; callable from any thread.
    ///
    /// Every event published before `start` returns reaches each subscriber
    /// registered at replay time before any event published after it returns.
    /// Drops during the replay are reported to the drop callback after it, on
    /// this thread.
    pub fn start(&self) {
        self.inner.start();
    }

    /// Goes back to buffering: events are kept for the next
    /// [`start`](Self::start). Idempotent; callable from any thread.
    pub fn pause(&self) {
        self.inner.pause();
    }

    /// Whether the bus delivers directly (started and not paused).
    pub fn is_running(&self) -> bool {
        self.inner.is_running()
    }

    /// Subscribes to every event: a critical subscriber whose drops are
    /// reported to the drop callback (Go's `Subscribe`).
    ///
    /// Subscribing while the bus is running logs a warning naming the caller
    /// (events published before were missed); where that is intended, make
    /// the subscription [`leader_only`](SubscribeOptions::leader_only) with
    /// [`subscribe_with`](Self::subscribe_with).
    ///
    /// # Errors
    ///
    /// [`SubscribeError::CapacityTooLarge`] if `capacity` exceeds
    /// [`MAX_CAPACITY`](crate::MAX_CAPACITY). A `capacity` of 0 is valid and
    /// means unbuffered (see [`SubscribeOptions::new`]).
    #[track_caller]
    pub fn subscribe(&self, name: &str, capacity: usize) -> Result<Subscription, SubscribeError> {
        self.subscribe_with(SubscribeOptions::new(name, capacity))
    }

    /// Subscribes to events of the Rust type `T`, filtered by `TypeId` at the
    /// bus, and receives them as `Arc<T>` (Go's generic `Subscribe[T]`): a
    /// critical subscriber, as with [`subscribe`](Self::subscribe). The
    /// shortcut for [`subscribe_with`](Self::subscribe_with) given
    /// [`SubscribeOptions::of::<T>(name, capacity)`](SubscribeOptions::of),
    /// which is also lossy, leader-only or with retained events first when
    /// asked.
    ///
    /// # Errors
    ///
    /// As [`subscribe`](Self::subscribe).
    #[track_caller]
    pub fn subscribe_to<T: Event>(
        &self,
        name: &str,
        capacity: usize,
    ) -> Result<TypedSubscription<T>, SubscribeError> {
        self.subscribe_with(SubscribeOptions::of::<T>(name, capacity))
    }

    /// Subscribes as `options` describe: which events (every one, a list of
    /// [`event_types`](SubscribeOptions::event_types), or a
    /// [`TypeSet`](crate::TypeSet) of
    /// [`rust_types`](SubscribeOptions::rust_types)), critical or
    /// [`lossy`](SubscribeOptions::lossy),
    /// [`leader_only`](SubscribeOptions::leader_only) (no late-subscription
    /// warning), and [`with_retained`](SubscribeOptions::with_retained).
    /// [`subscribe`](Self::subscribe) and [`subscribe_to`](Self::subscribe_to)
    /// are shortcuts for this one.
    ///
    /// [`SubscribeOptions`] make a [`Subscription`] (`Arc<dyn Event>`);
    /// [`SubscribeOptions::of::<T>`](SubscribeOptions::of), the same options
    /// for one Rust type, make a [`TypedSubscription<T>`] (`Arc<T>`). Both
    /// implement [`SubscribeWith`], which says what they make.
    ///
    /// The new subscriber receives events published after this returns (and,
    /// while the bus is buffering, the buffered ones at [`start`](Self::start)).
    ///
    /// ```
    /// use switchboard::{EventBus, SubscribeOptions};
    ///
    /// let bus = EventBus::new();
    /// bus.start();
    /// // Go's SubscribeTypesLossy, made by a leader after start: no warning.
    /// let metrics = bus
    ///     .subscribe_with(
    ///         SubscribeOptions::new("metrics", 256)
    ///             .event_types(["route.added", "route.removed"])
    ///             .lossy()
    ///             .leader_only(),
    ///     )
    ///     .unwrap();
    /// assert!(metrics.is_lossy());
    /// ```
    ///
    /// Typed, with the same flavours:
    ///
    /// ```
    /// use switchboard::{Event, EventBus, SubscribeOptions, Timestamp};
    ///
    /// #[derive(Event)]
    /// #[event(type = "route.added")]
    /// struct RouteAdded { path: &'static str, timestamp: Timestamp }
    ///
    /// let bus = EventBus::new();
    /// bus.start();
    /// let routes = bus
    ///     .subscribe_with(
    ///         SubscribeOptions::of::<RouteAdded>("route-metrics", 1)
    ///             .lossy()
    ///             .leader_only(),
    ///     )
    ///     .unwrap();
    /// bus.publish(RouteAdded { path: "/api", timestamp: Timestamp::now() });
    /// bus.publish(RouteAdded { path: "/web", timestamp: Timestamp::now() }); // full: counted only
    /// assert_eq!(routes.recv().unwrap().path, "/api"); // an Arc<RouteAdded>
    /// assert_eq!((routes.is_lossy(), routes.dropped()), (true, 1));
    /// ```
    ///
    /// # Errors
    ///
    /// [`SubscribeError::CapacityTooLarge`], [`SubscribeError::EmptyTypeList`] or
    /// [`SubscribeError::MixedFilters`], each before anything is allocated.
    /// Typed options have no filter to get wrong: only the capacity can be
    /// refused.
    #[track_caller]
    pub fn subscribe_with<O: SubscribeWith>(
        &self,
        options: O,
    ) -> Result<O::Subscription, SubscribeError> {
        let options = options.into_options();
        let warn_if_late = !options.leader_only;
        let registered = self.inner.register(options)?;
        let subscription = Subscription::new(registered, Arc::downgrade(&self.inner));
        if warn_if_late && self.is_running() {
            log::warning!(
                subscriber = subscription.name(),
                caller = %std::panic::Location::caller(),
                "switchboard: subscribed after start(); events published before this \
                 subscription were missed (use a leader-only subscription if intended)"
            );
        }
        Ok(O::wrap(subscription))
    }

    /// The core this handle drives, for the crate's own machinery (requests).
    pub(crate) fn core(&self) -> &BusCore {
        &self.inner
    }

    /// Removes `subscription` (a [`Subscription`] or a [`TypedSubscription`])
    /// from this bus. It then yields the events already queued and ends.
    ///
    /// Returns `true` if it was removed, `false` if it was not subscribed here
    /// (already unsubscribed, or made on another bus): calling it twice is
    /// harmless. [`Subscription::unsubscribe`] does the same from the
    /// subscription's side, and dropping it unsubscribes it too.
    ///
    /// Events published after this returns never reach the subscription; a
    /// publish running concurrently may still deliver one.
    pub fn unsubscribe(&self, subscription: &impl AsRef<Subscription>) -> bool {
        subscription.as_ref().unsubscribe_from(&self.inner)
    }

    /// Sets (or, with `None`, removes) the callback told about every event a
    /// critical subscriber misses and every pre-start overflow. Takes effect
    /// for drops that happen after it returns.
    ///
    /// The callback may use the bus (publish, subscribe, unsubscribe, even
    /// replace itself) without deadlock; give it a [`WeakEventBus`]
    /// ([`downgrade`](Self::downgrade)), not an `EventBus`, or the bus keeps
    /// itself alive. A panic in it is caught and logged once; the drop stays
    /// counted. When it runs, the subscriber's own drop count includes the
    /// drop; the bus totals include it once the publish returns.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use switchboard::EventBus;
    ///
    /// let bus = EventBus::new();
    /// let missed = Arc::new(AtomicUsize::new(0));
    /// let counter = Arc::clone(&missed);
    /// bus.set_drop_callback(Some(Box::new(move |info| {
    ///     eprintln!("{} missed {}", info.subscriber_name, info.event_type);
    ///     counter.fetch_add(1, Ordering::Relaxed);
    /// })));
    /// ```
    pub fn set_drop_callback(&self, callback: Option<DropCallback>) {
        self.inner.set_drop_callback(callback);
    }

    /// A handle that does not keep the bus alive, for drop callbacks and other
    /// places the bus itself owns.
    ///
    /// ```
    /// use switchboard::EventBus;
    ///
    /// let bus = EventBus::new();
    /// let weak = bus.downgrade();
    /// assert!(weak.upgrade().is_some());
    /// drop(bus);
    /// assert!(weak.upgrade().is_none());
    /// ```
    pub fn downgrade(&self) -> WeakEventBus {
        WeakEventBus {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// How many subscribers an event of Rust type `T` reaches, not counting
    /// those that filter by type string: the universal ones and those
    /// subscribed to `T` ([`subscribe_to`](Self::subscribe_to), or
    /// [`rust_types`](SubscribeOptions::rust_types) in their options).
    ///
    /// Cheap enough to ask before every publish, to skip building an event
    /// nobody listens to: no lock, no allocation, one hash lookup. The answer
    /// may be out of date by the time the event is published, if another
    /// thread subscribes or unsubscribes meanwhile. The crate's own routes
    /// for request responses are not counted.
    ///
    /// ```
    /// use switchboard::{Event, EventBus, Timestamp};
    ///
    /// #[derive(Event)]
    /// #[event(type = "config.rendered")]
    /// struct Rendered { config: String, timestamp: Timestamp }
    ///
    /// let bus = EventBus::new();
    /// bus.start();
    /// assert_eq!(bus.listeners::<Rendered>(), 0); // don't render for nobody
    /// let _viewer = bus.subscribe_to::<Rendered>("viewer", 4).unwrap();
    /// assert_eq!(bus.listeners::<Rendered>(), 1);
    /// ```
    pub fn listeners<T: Event>(&self) -> usize {
        self.inner
            .listeners(None, Some(std::any::TypeId::of::<T>()))
    }

    /// How many subscribers an event whose [`event_type`](Event::event_type)
    /// is `event_type` reaches, not counting those that filter by Rust type:
    /// the universal ones and those subscribed to that type string
    /// ([`event_types`](SubscribeOptions::event_types) in their options). As cheap as
    /// [`listeners`](Self::listeners).
    pub fn listeners_by_type(&self, event_type: &str) -> usize {
        self.inner.listeners(Some(event_type), None)
    }

    /// How many subscribers `event` would reach if published now: the
    /// universal ones, those subscribed to its type string and those
    /// subscribed to its Rust type. As cheap as [`listeners`](Self::listeners).
    pub fn listeners_for(&self, event: &dyn Event) -> usize {
        self.inner
            .listeners(Some(event.event_type()), Some(event.concrete_type_id()))
    }

    /// A snapshot of the bus's state and every counter: published, dropped
    /// (in total with [`BusStats::dropped`], and by kind), subscribers,
    /// pre-start buffer, retained events, requests; its `Display` is a
    /// readable table.
    ///
    /// Cheap enough to poll every second, not to call per publish: it copies
    /// one [`SubscriberStats`](crate::SubscriberStats) per subscriber (their
    /// names included) and briefly takes the mode and retained locks.
    ///
    /// ```
    /// use switchboard::EventBus;
    ///
    /// let bus = EventBus::new();
    /// let _audit = bus.subscribe("audit", 8).unwrap();
    /// let stats = bus.stats();
    /// assert!(!stats.running);
    /// assert_eq!(stats.subscriber_count(), 1);
    /// assert_eq!(stats.subscribers[0].name, "audit");
    /// assert_eq!(stats.dropped(), 0);
    /// println!("{stats}");
    /// ```
    pub fn stats(&self) -> BusStats {
        BusStats {
            running: self.is_running(),
            pre_start_len: self.inner.pre_start_len(),
            published: self.inner.published(),
            dropped_critical: self.inner.dropped_critical(),
            dropped_observability: self.inner.dropped_observability(),
            dropped_pre_start: self.inner.dropped_pre_start(),
            retained: self.inner.retained_count(),
            requests: self.inner.request_counters().snapshot(),
            subscribers: self.inner.subscriber_stats(),
        }
    }
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field("running", &self.is_running())
            .field("subscribers", &self.inner.subscriber_count())
            .field("published", &self.inner.published())
            .field(
                "dropped",
                &(self.inner.dropped_critical()
                    + self.inner.dropped_observability()
                    + self.inner.dropped_pre_start()),
            )
            .finish()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::builder().build()
    }
}
