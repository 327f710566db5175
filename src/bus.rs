//! The bus: publishing, the start/pause state machine, subscribing.

use std::fmt;
use std::mem;
use std::sync::{Arc, Weak};

use crossbeam_utils::CachePadded;

use crate::drops::{DropCallback, DropInfo, DropReason, DropReporter, DropSession};
use crate::error::SubscribeError;
use crate::event::Event;
use crate::log;
use crate::options::{SubscribeOptions, TypeSet};
use crate::registry::Registry;
use crate::stats::{BusStats, SubscriberStats};
use crate::subscriber::{Handover, Offer, Subscriber, SubscriberState};
use crate::subscription::{Subscription, TypedSubscription};
use crate::sync::queue::bounded;
use crate::sync::snapshot::Snapshot;
use crate::sync::{lock, AtomicBool, AtomicU64, AtomicU8, AtomicWaker, Mutex, Ordering};

/// How many events the bus keeps while buffering (before [`EventBus::start`] or
/// after [`EventBus::pause`]) unless its builder says otherwise.
pub const MAX_PRE_START_BUFFER_SIZE: usize = 1000;

const BUFFERING: u8 = 0;
const RUNNING: u8 = 1;

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
/// use std::time::SystemTime;
/// use switchboard::{Event, EventBus};
///
/// struct RouteAdded(&'static str);
/// impl Event for RouteAdded {
///     fn event_type(&self) -> &str { "route.added" }
///     fn timestamp(&self) -> SystemTime { SystemTime::now() }
/// }
///
/// let bus = EventBus::new(100);
/// let routes = bus.subscribe_to::<RouteAdded>("router", 64).unwrap();
///
/// assert_eq!(bus.publish(RouteAdded("/api")), 0); // buffered: not started yet
/// bus.start(); // replays the buffer, then delivers directly
/// assert_eq!(bus.publish(RouteAdded("/web")), 1);
///
/// assert_eq!(routes.recv().unwrap().0, "/api");
/// assert_eq!(routes.recv().unwrap().0, "/web");
/// ```
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

/// A handle to an [`EventBus`] that does not keep it alive; see
/// [`EventBus::downgrade`].
///
/// This is what a drop callback should capture to use the bus: the bus owns
/// its callback, so a captured [`EventBus`] would keep the bus alive forever
/// (a reference cycle) and its subscriptions would never end.
#[derive(Clone, Debug)]
pub struct WeakEventBus {
    inner: Weak<BusInner>,
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
///     .pre_start_capacity(64)
///     .max_pre_start_buffer(10_000)
///     .build();
/// assert!(!bus.is_running());
/// ```
#[derive(Clone, Debug)]
pub struct EventBusBuilder {
    pre_start_capacity: usize,
    max_pre_start_buffer: usize,
}

impl Default for EventBusBuilder {
    fn default() -> Self {
        Self {
            pre_start_capacity: 0,
            max_pre_start_buffer: MAX_PRE_START_BUFFER_SIZE,
        }
    }
}

impl EventBusBuilder {
    /// How many pre-start events to make room for up front (default 0; the
    /// buffer grows as needed up to [`max_pre_start_buffer`](Self::max_pre_start_buffer),
    /// and a larger value is reduced to it).
    #[must_use]
    pub fn pre_start_capacity(mut self, capacity: usize) -> Self {
        self.pre_start_capacity = capacity;
        self
    }

    /// How many events to keep while buffering (default
    /// [`MAX_PRE_START_BUFFER_SIZE`]). Past it, events are dropped, counted in
    /// [`EventBus::dropped_events_pre_start`] and reported to the drop callback.
    /// 0 keeps none: everything published while buffering is dropped and counted.
    #[must_use]
    pub fn max_pre_start_buffer(mut self, max: usize) -> Self {
        self.max_pre_start_buffer = max;
        self
    }

    /// Creates the bus, buffering until [`EventBus::start`].
    pub fn build(self) -> EventBus {
        let capacity = self.pre_start_capacity.min(self.max_pre_start_buffer);
        let registry = Arc::new(Registry::default());
        EventBus {
            inner: Arc::new(BusInner {
                registry: Snapshot::new(Arc::clone(&registry)),
                writer: CachePadded::new(RegistryWriter {
                    current: Mutex::new(registry),
                    next_id: AtomicU64::new(0),
                }),
                state: AtomicU8::new(BUFFERING),
                mode: Mutex::new(Vec::with_capacity(capacity)),
                max_pre_start_buffer: self.max_pre_start_buffer,
                drops: DropReporter::new(),
                published: CachePadded::new(AtomicU64::new(0)),
                dropped_critical: CachePadded::new(AtomicU64::new(0)),
                dropped_observability: CachePadded::new(AtomicU64::new(0)),
                dropped_pre_start: CachePadded::new(AtomicU64::new(0)),
            }),
        }
    }
}

pub(crate) struct BusInner {
    registry: Snapshot<Registry>,
    /// On its own cache line: subscribe and unsubscribe write it several
    /// times per change, and it must not evict what every publish reads
    /// (the snapshot pointer and the state).
    writer: CachePadded<RegistryWriter>,
    /// `BUFFERING` or `RUNNING`. Only changed under `mode`; read lock-free by
    /// publishers, which take `mode` and re-check only when they see `BUFFERING`.
    state: AtomicU8,
    /// The mode lock, guarding the pre-start buffer.
    mode: Mutex<Vec<Arc<dyn Event>>>,
    max_pre_start_buffer: usize,
    drops: DropReporter,
    published: CachePadded<AtomicU64>,
    dropped_critical: CachePadded<AtomicU64>,
    dropped_observability: CachePadded<AtomicU64>,
    dropped_pre_start: CachePadded<AtomicU64>,
}

/// The writer side of the registry.
struct RegistryWriter {
    /// Serializes registry copy-and-swap; holds the current registry, so a
    /// writer never has to load (and touch the reference count of) the one
    /// publishers are reading.
    current: Mutex<Arc<Registry>>,
    next_id: AtomicU64,
}

impl EventBus {
    /// Creates a bus that buffers until [`start`](Self::start), with room for
    /// `capacity` pre-start events up front (reduced to
    /// [`MAX_PRE_START_BUFFER_SIZE`] if larger).
    pub fn new(capacity: usize) -> Self {
        Self::builder().pre_start_capacity(capacity).build()
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
    /// [`dropped_events_pre_start`](Self::dropped_events_pre_start) and reported
    /// to the drop callback.
    pub fn publish_arc(&self, event: Arc<dyn Event>) -> usize {
        let inner = &*self.inner;
        inner.published.fetch_add(1, Ordering::Relaxed);
        if inner.state.load(Ordering::Acquire) == RUNNING {
            let mut drops = inner.drops.session();
            return inner.deliver(event, |subscriber, event| {
                inner.report_critical_drop(&mut drops, subscriber, &**event)
            });
        }
        inner.publish_while_buffering(event)
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
        let inner = &*self.inner;
        let _mode = lock(&inner.mode);
        inner.state.store(BUFFERING, Ordering::Release);
    }

    /// Whether the bus delivers directly (started and not paused).
    pub fn is_running(&self) -> bool {
        self.inner.state.load(Ordering::Acquire) == RUNNING
    }

    /// Subscribes to every event: a critical subscriber whose drops are
    /// reported to the drop callback.
    ///
    /// Subscribing while the bus is running logs a warning naming the caller
    /// (events published before were missed); use
    /// [`subscribe_leader_only`](Self::subscribe_leader_only) where that is intended.
    ///
    /// # Errors
    ///
    /// [`SubscribeError::BufferTooLarge`] if `buffer` exceeds
    /// [`MAX_BUFFER_SIZE`](crate::MAX_BUFFER_SIZE). A `buffer` of 0 is valid and
    /// means unbuffered (see [`SubscribeOptions::new`]).
    #[track_caller]
    pub fn subscribe(&self, name: &str, buffer: usize) -> Result<Subscription, SubscribeError> {
        self.subscribe_with(SubscribeOptions::new(name, buffer))
    }

    /// Like [`subscribe`](Self::subscribe), for components that subscribe after
    /// `start()` on becoming leader: no late-subscription warning.
    ///
    /// # Errors
    ///
    /// As [`subscribe`](Self::subscribe).
    #[track_caller]
    pub fn subscribe_leader_only(
        &self,
        name: &str,
        buffer: usize,
    ) -> Result<Subscription, SubscribeError> {
        self.subscribe_with(SubscribeOptions::new(name, buffer).leader_only())
    }

    /// Subscribes to every event as an *observability* subscriber: its drops
    /// are counted in [`dropped_events_observability`](Self::dropped_events_observability)
    /// and not reported to the drop callback.
    ///
    /// # Errors
    ///
    /// As [`subscribe`](Self::subscribe).
    #[track_caller]
    pub fn subscribe_lossy(
        &self,
        name: &str,
        buffer: usize,
    ) -> Result<Subscription, SubscribeError> {
        self.subscribe_with(SubscribeOptions::new(name, buffer).lossy())
    }

    /// Subscribes to the events whose [`event_type`](Event::event_type) is one
    /// of `types` (duplicates count once). The bus filters: other events cost
    /// this subscriber nothing.
    ///
    /// # Errors
    ///
    /// [`SubscribeError::EmptyTypeList`] if `types` is empty, and as
    /// [`subscribe`](Self::subscribe).
    #[track_caller]
    pub fn subscribe_types<I, S>(
        &self,
        name: &str,
        buffer: usize,
        types: I,
    ) -> Result<Subscription, SubscribeError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subscribe_with(SubscribeOptions::new(name, buffer).event_types(types))
    }

    /// [`subscribe_types`](Self::subscribe_types) without the late-subscription warning.
    ///
    /// # Errors
    ///
    /// As [`subscribe_types`](Self::subscribe_types).
    #[track_caller]
    pub fn subscribe_types_leader_only<I, S>(
        &self,
        name: &str,
        buffer: usize,
        types: I,
    ) -> Result<Subscription, SubscribeError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subscribe_with(
            SubscribeOptions::new(name, buffer)
                .event_types(types)
                .leader_only(),
        )
    }

    /// [`subscribe_types`](Self::subscribe_types) as an observability subscriber
    /// (see [`subscribe_lossy`](Self::subscribe_lossy)).
    ///
    /// # Errors
    ///
    /// As [`subscribe_types`](Self::subscribe_types).
    #[track_caller]
    pub fn subscribe_types_lossy<I, S>(
        &self,
        name: &str,
        buffer: usize,
        types: I,
    ) -> Result<Subscription, SubscribeError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subscribe_with(
            SubscribeOptions::new(name, buffer)
                .event_types(types)
                .lossy(),
        )
    }

    /// Subscribes to events of the Rust type `T`, filtered by `TypeId` at the
    /// bus, and receives them as `Arc<T>` (Go's generic `Subscribe[T]`).
    ///
    /// # Errors
    ///
    /// As [`subscribe`](Self::subscribe).
    #[track_caller]
    pub fn subscribe_to<T: Event>(
        &self,
        name: &str,
        buffer: usize,
    ) -> Result<TypedSubscription<T>, SubscribeError> {
        self.subscribe_with(
            SubscribeOptions::new(name, buffer).rust_types(TypeSet::new().with::<T>()),
        )
        .map(TypedSubscription::new)
    }

    /// Subscribes to events of any Rust type in `types`, filtered by `TypeId`
    /// at the bus (Go's `SubscribeMultiple`).
    ///
    /// # Errors
    ///
    /// [`SubscribeError::EmptyTypeList`] if `types` is empty, and as
    /// [`subscribe`](Self::subscribe).
    #[track_caller]
    pub fn subscribe_multiple(
        &self,
        name: &str,
        buffer: usize,
        types: TypeSet,
    ) -> Result<Subscription, SubscribeError> {
        self.subscribe_with(SubscribeOptions::new(name, buffer).rust_types(types))
    }

    /// Subscribes as `options` describe; every other `subscribe_*` method is a
    /// shortcut for this one.
    ///
    /// The new subscriber receives events published after this returns (and,
    /// while the bus is buffering, the buffered ones at [`start`](Self::start)).
    ///
    /// # Errors
    ///
    /// [`SubscribeError::BufferTooLarge`], [`SubscribeError::EmptyTypeList`] or
    /// [`SubscribeError::MixedFilters`], each before anything is allocated.
    #[track_caller]
    pub fn subscribe_with(
        &self,
        options: SubscribeOptions,
    ) -> Result<Subscription, SubscribeError> {
        let warn_if_late = !options.leader_only;
        let subscription = self.inner.subscribe(options, false)?;
        if warn_if_late && self.is_running() {
            log::warning!(
                subscriber = subscription.name(),
                caller = %std::panic::Location::caller(),
                "switchboard: subscribed after start(); events published before this \
                 subscription were missed (use a leader-only subscription if intended)"
            );
        }
        Ok(subscription)
    }

    /// Subscribes as `options` describe, for the crate's own subscriptions (such
    /// as a request's response subscription): never logs the late-subscription
    /// warning, and does not mark the subscription leader-only.
    ///
    /// `async_consumer`: the subscription will be polled as a future, so
    /// publishers wake it from the start (saving the registry swap its first
    /// empty poll would make).
    #[cfg_attr(switchboard_loom, allow(dead_code))] // requests are not built under loom
    pub(crate) fn subscribe_internal(
        &self,
        options: SubscribeOptions,
        async_consumer: bool,
    ) -> Result<Subscription, SubscribeError> {
        self.inner.subscribe(options, async_consumer)
    }

    /// Removes `subscription` from this bus. It then yields the events already
    /// queued and ends.
    ///
    /// Returns `true` if it was removed, `false` if it was not subscribed here
    /// (already unsubscribed, or made on another bus): calling it twice is
    /// harmless. Dropping a [`Subscription`] unsubscribes it too.
    ///
    /// Events published after this returns never reach the subscription; a
    /// publish running concurrently may still deliver one.
    pub fn unsubscribe(&self, subscription: &Subscription) -> bool {
        subscription.belongs_to(&self.inner) && self.inner.remove(subscription.id())
    }

    /// [`unsubscribe`](Self::unsubscribe) for a typed subscription.
    pub fn unsubscribe_typed<T: Event>(&self, subscription: &TypedSubscription<T>) -> bool {
        self.unsubscribe(subscription.as_untyped())
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
    /// let bus = EventBus::new(0);
    /// let missed = Arc::new(AtomicUsize::new(0));
    /// let counter = Arc::clone(&missed);
    /// bus.set_drop_callback(Some(Box::new(move |info| {
    ///     eprintln!("{} missed {}", info.subscriber_name, info.event_type);
    ///     counter.fetch_add(1, Ordering::Relaxed);
    /// })));
    /// ```
    pub fn set_drop_callback(&self, callback: Option<DropCallback>) {
        self.inner.drops.set(callback);
    }

    /// A handle that does not keep the bus alive, for drop callbacks and other
    /// places the bus itself owns.
    ///
    /// ```
    /// use switchboard::EventBus;
    ///
    /// let bus = EventBus::new(0);
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

    /// All events dropped so far: critical + observability + pre-start.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events_critical()
            + self.dropped_events_observability()
            + self.dropped_events_pre_start()
    }

    /// Events that critical subscribers missed because their buffer was full.
    ///
    /// A publish adds its drops to the bus totals once, just before it
    /// returns; so inside the drop callback the totals do not yet include the
    /// drops of the publish being reported, while the subscriber's own count
    /// ([`Subscription::dropped`]) does.
    pub fn dropped_events_critical(&self) -> u64 {
        self.inner.dropped_critical.load(Ordering::Relaxed)
    }

    /// Events that lossy (observability) subscribers missed; counted like
    /// [`dropped_events_critical`](Self::dropped_events_critical).
    pub fn dropped_events_observability(&self) -> u64 {
        self.inner.dropped_observability.load(Ordering::Relaxed)
    }

    /// Events dropped because the bus was buffering and its pre-start buffer
    /// was full.
    pub fn dropped_events_pre_start(&self) -> u64 {
        self.inner.dropped_pre_start.load(Ordering::Relaxed)
    }

    /// Events published so far, buffered ones included.
    pub fn published_events(&self) -> u64 {
        self.inner.published.load(Ordering::Relaxed)
    }

    /// How many subscriptions the bus has now.
    pub fn subscriber_count(&self) -> usize {
        self.inner.registry.load().len()
    }

    /// A snapshot of the bus's state and every counter, cheap enough to poll
    /// every second; its `Display` is a readable table.
    ///
    /// ```
    /// use switchboard::EventBus;
    ///
    /// let bus = EventBus::new(0);
    /// let _audit = bus.subscribe("audit", 8).unwrap();
    /// let stats = bus.stats();
    /// assert!(!stats.running);
    /// assert_eq!(stats.subscribers[0].name, "audit");
    /// println!("{stats}");
    /// ```
    pub fn stats(&self) -> BusStats {
        let inner = &*self.inner;
        let registry = inner.registry.load_full();
        BusStats {
            running: self.is_running(),
            pre_start_len: self.pre_start_len(),
            published: self.published_events(),
            dropped_critical: self.dropped_events_critical(),
            dropped_observability: self.dropped_events_observability(),
            dropped_pre_start: self.dropped_events_pre_start(),
            subscribers: registry
                .subscribers()
                .into_iter()
                .map(|s| SubscriberStats::of(s))
                .collect(),
        }
    }

    /// How many events wait in the pre-start buffer now.
    pub fn pre_start_len(&self) -> usize {
        lock(&self.inner.mode).len()
    }
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field("running", &self.is_running())
            .field("subscribers", &self.subscriber_count())
            .field("published", &self.published_events())
            .field("dropped", &self.dropped_events())
            .finish()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::builder().build()
    }
}

/// What one publish did, counted locally.
#[derive(Default)]
struct Tally {
    delivered: usize,
    dropped_critical: u64,
    dropped_observability: u64,
}

impl Tally {
    #[inline(always)]
    fn dropped(
        &mut self,
        subscriber: &Arc<Subscriber>,
        event: &Arc<dyn Event>,
        on_critical_drop: &mut impl FnMut(&Arc<Subscriber>, &Arc<dyn Event>),
    ) {
        if subscriber.state().lossy {
            self.dropped_observability += 1;
        } else {
            self.dropped_critical += 1;
            on_critical_drop(subscriber, event);
        }
    }
}

impl BusInner {
    /// Offers `event` to every matching subscriber, the last one getting the
    /// caller's `Arc`. `on_critical_drop` is told about each critical
    /// subscriber that missed it.
    ///
    /// The bus's drop totals are added once, after the loop: one atomic
    /// read-modify-write per publish rather than one per full subscriber.
    /// Each subscriber's own count is raised before its drop is reported.
    #[inline]
    fn deliver(
        &self,
        event: Arc<dyn Event>,
        mut on_critical_drop: impl FnMut(&Arc<Subscriber>, &Arc<dyn Event>),
    ) -> usize {
        let registry = self.registry.load();
        let Some((last, others)) = registry.matching(&*event).split_last() else {
            return 0;
        };
        let mut tally = Tally::default();
        for part in others.parts() {
            for subscriber in part {
                match subscriber.offer(&event) {
                    Offer::Delivered => tally.delivered += 1,
                    Offer::Full => tally.dropped(subscriber, &event, &mut on_critical_drop),
                    Offer::Closed => {}
                }
            }
        }
        match last.hand_over(event) {
            Handover::Delivered => tally.delivered += 1,
            Handover::Full(event) => tally.dropped(last, &event, &mut on_critical_drop),
            Handover::Closed => {}
        }
        if tally.dropped_critical > 0 {
            self.dropped_critical
                .fetch_add(tally.dropped_critical, Ordering::Relaxed);
        }
        if tally.dropped_observability > 0 {
            self.dropped_observability
                .fetch_add(tally.dropped_observability, Ordering::Relaxed);
        }
        tally.delivered
    }

    fn report_critical_drop(
        &self,
        drops: &mut DropSession<'_>,
        subscriber: &Subscriber,
        event: &dyn Event,
    ) {
        let state = subscriber.state();
        let event_type = event.event_type();
        log::warning!(
            subscriber = &*state.name,
            event_type,
            buffer = state.buffer,
            "switchboard: critical subscriber's buffer is full; event dropped"
        );
        drops.report(&DropInfo {
            reason: DropReason::BufferFull,
            event,
            event_type,
            subscriber_name: &state.name,
            buffer_size: state.buffer,
            event_types: &state.filter_label,
        });
    }

    /// The publish path when the state said `BUFFERING`: re-check under the
    /// mode lock, then buffer, overflow, or deliver if `start` won the race.
    #[cold]
    fn publish_while_buffering(&self, event: Arc<dyn Event>) -> usize {
        let mut buffer = lock(&self.mode);
        // The mutant (a loom-tests self-check) skips this re-check.
        if !cfg!(switchboard_mutant_skip_recheck) && self.state.load(Ordering::Relaxed) == RUNNING {
            drop(buffer);
            let mut drops = self.drops.session();
            return self.deliver(event, |subscriber, event| {
                self.report_critical_drop(&mut drops, subscriber, &**event)
            });
        }
        if buffer.len() < self.max_pre_start_buffer {
            buffer.push(event);
            return 0;
        }
        drop(buffer);
        self.dropped_pre_start.fetch_add(1, Ordering::Relaxed);
        let event_type = event.event_type();
        log::warning!(
            event_type,
            max = self.max_pre_start_buffer,
            "switchboard: pre-start buffer is full; event dropped"
        );
        self.drops.session().report(&DropInfo {
            reason: DropReason::PreStartOverflow,
            event: &*event,
            event_type,
            subscriber_name: "",
            buffer_size: self.max_pre_start_buffer,
            event_types: "",
        });
        0
    }

    fn start(&self) {
        let mut missed: Vec<(Arc<Subscriber>, Arc<dyn Event>)> = Vec::new();
        let replayed = {
            let mut buffer = lock(&self.mode);
            if self.state.load(Ordering::Relaxed) == RUNNING {
                return;
            }
            // Replay under the mode lock: publishers that see BUFFERING queue
            // up behind it, and RUNNING is published only once the replay is
            // done, so nothing overtakes a replayed event.
            let replayed = mem::take(&mut *buffer);
            // The mutant (a loom-tests self-check) switches to direct delivery too early.
            if cfg!(switchboard_mutant_early_running) {
                self.state.store(RUNNING, Ordering::Release);
            }
            // Each subscriber gets a clone: the last reference must not go
            // (and run an event's `Drop`) under the mode lock.
            for event in &replayed {
                self.deliver(Arc::clone(event), |subscriber, event| {
                    missed.push((Arc::clone(subscriber), Arc::clone(event)));
                });
            }
            self.state.store(RUNNING, Ordering::Release);
            replayed
        };
        // Outside the lock: callbacks may use the bus, and dropping the last
        // reference to an event may run user code.
        drop(replayed);
        let mut drops = self.drops.session();
        for (subscriber, event) in &missed {
            self.report_critical_drop(&mut drops, subscriber, &**event);
        }
    }

    fn subscribe(
        self: &Arc<Self>,
        options: SubscribeOptions,
        wakes_consumer: bool,
    ) -> Result<Subscription, SubscribeError> {
        let filter = options.validate()?;
        let (sender, receiver) = bounded(options.buffer);
        let id = self.writer.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(SubscriberState {
            id,
            name: options.name.into(),
            buffer: options.buffer,
            lossy: options.lossy,
            leader_only: options.leader_only,
            filter_label: filter.label().into(),
            filter,
            dropped: AtomicU64::new(0),
            wakeups_enabled: AtomicBool::new(wakes_consumer),
            waker: AtomicWaker::new(),
            received: CachePadded::new(AtomicU64::new(0)),
            coalesced: AtomicU64::new(0),
        });
        let subscriber = Arc::new(Subscriber::new(sender, Arc::clone(&state), wakes_consumer));
        self.update_registry(|current| Some(current.with(subscriber)));
        Ok(Subscription::new(receiver, state, Arc::downgrade(self)))
    }

    /// Makes publishers wake the consumer of subscriber `id` after each send.
    ///
    /// The registry entry is swapped for one that wakes. Publishers still
    /// holding an older snapshot may send through the old, non-waking entry;
    /// but that entry is dropped only when the last of them lets go of it
    /// (arc-swap pays its readers' debts on store, so each holds a real
    /// reference), and dropping it wakes the consumer. So a send made without
    /// a wake-up is always followed by one.
    pub(crate) fn enable_wakeups(&self, id: u64) {
        self.update_registry(|current| current.with_wakeups_for(id));
    }

    pub(crate) fn contains(&self, id: u64) -> bool {
        self.registry.load().contains(id)
    }

    /// Removes the subscriber with `id`; `false` if there is none.
    pub(crate) fn remove(&self, id: u64) -> bool {
        self.update_registry(|current| current.without(id))
    }

    /// Swaps in the registry `change` makes of the current one, if it makes
    /// one; returns whether it did.
    fn update_registry(&self, change: impl FnOnce(&Registry) -> Option<Registry>) -> bool {
        let replaced = {
            let mut current = lock(&self.writer.current);
            let Some(next) = change(&current) else {
                return false;
            };
            let next = Arc::new(next);
            self.registry.store(Arc::clone(&next));
            mem::replace(&mut *current, next)
        };
        retire(replaced);
        true
    }
}

/// Drops a replaced registry, outside the writer lock: it may be the last
/// owner of a removed subscriber, whose drop closes its queue and wakes its
/// consumer.
///
/// Publishers that loaded it may still hold it; the writer waits a moment for
/// them to finish so that it frees the registry itself. Otherwise the
/// publisher that lets go last would free it on its hot path, and freeing
/// memory another thread allocated is slow (the allocator's arena lock). The
/// wait is bounded: a descheduled publisher is left to free it.
fn retire(replaced: Arc<Registry>) {
    if cfg!(not(switchboard_loom)) {
        let backoff = crossbeam_utils::Backoff::new();
        while Arc::strong_count(&replaced) > 1 && !backoff.is_completed() {
            backoff.snooze();
        }
    }
    drop(replaced);
}
