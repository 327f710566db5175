//! The lock-free core behind [`EventBus`](crate::EventBus): the registry
//! snapshot publishers read, its writer, delivery, the start/pause state
//! machine and the retained events.
//!
//! The public face (`bus.rs`) owns a [`BusCore`] and turns what it hands back
//! into public types: [`BusCore::register`] returns the queue's receiver and
//! the subscriber's shared state, from which the face builds a
//! [`Subscription`](crate::Subscription). Nothing here depends on the face.
//!
//! Each part owns its state and its methods; [`BusCore`] composes them and
//! passes each the others it needs (the parts never import the bus core):
//!
//! - `registry`: the immutable, indexed set of subscribers publishers read.
//! - `subscriber`: one registry entry (the sending half of a queue) and the
//!   state it shares with its subscription.
//! - `writer`: `RegistryWriter`, copy-and-swap of the registry, and freeing
//!   replaced ones.
//! - `delivery`: `Delivery`, the registry snapshot publishers read, offering
//!   one event to the matching subscribers, and counting and reporting what
//!   they missed.
//! - `waiting`: the waiting publish's steps through a `Delivery`: wait for
//!   room instead of dropping, and count what it gives up.
//! - `pre_start`: `PreStart`, buffering before `start` and after `pause`,
//!   the replay, and the waiting publishes that wait for `start`.
//! - `retained`: `RetainedStore`, the latest retained event of each type and
//!   its exactly-once hand-over to late subscribers.
//! - `published`: the published count, one slot per publishing thread.
//! - `snapshot`: the plain copies of the counters that `stats()` is made of.
//!
//! The ordering arguments are collected in the design document's "Memory
//! orders" section (`docs/design.md`).

mod delivery;
mod pre_start;
mod published;
mod registry;
mod retained;
mod snapshot;
mod subscriber;
mod waiting;
mod writer;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use std::task::Waker;

use crossbeam_utils::CachePadded;

use crate::completion::{Envelope, Tracking};
use crate::drops::{DropCallback, DropReason};
use crate::error::SubscribeError;
use crate::event::Event;
use crate::options::{Filter, SubscribeOptions, TypeSet};
use crate::sync::queue::{bounded, Receiver};
use crate::sync::{lock, AtomicU64, Mutex, Ordering};

pub(crate) use self::pre_start::Published;
pub(crate) use self::retained::Clear;
pub(crate) use self::snapshot::RequestCounters;
pub use self::snapshot::{RequestStats, SubscriberKind, SubscriberStats};
pub(crate) use self::subscriber::{Route, SubscriberState};
pub(crate) use self::waiting::Blocked;

use self::delivery::Delivery;
use self::pre_start::PreStart;
use self::published::PublishedCounter;
use self::registry::Registry;
use self::retained::RetainedStore;
use self::subscriber::{DeliverySettings, Inbox, Subscriber};
use self::writer::{retire, RegistryWriter};

/// How many dropped subscriptions may wait in the registry for the next change.
const MAX_ABANDONED: usize = 1;

/// The largest queue a dropped subscription may keep while it waits: a larger
/// one is compacted away at once, freeing its memory.
const MAX_ABANDONED_CAPACITY: usize = 1024;

/// Everything one bus shares between its handles and subscriptions: the
/// parts below, each owning its state, and what ties them together.
pub(crate) struct BusCore {
    /// What publishers read (the registry snapshot) and count (drops).
    delivery: Delivery,
    /// On its own cache line: subscribe and unsubscribe write it several
    /// times per change, and it must not evict what every publish reads
    /// (the snapshot pointer and the state).
    writer: CachePadded<RegistryWriter>,
    /// Buffering or running, the pre-start buffer behind the mode lock, and
    /// the waiting publishes that wait for `start`.
    pre_start: PreStart,
    /// The retained events, behind the retained lock.
    retained: RetainedStore,
    /// Events published, buffered ones included.
    published: PublishedCounter,
    /// Keys for waiting publishes in the wait lists.
    waiter_keys: AtomicU64,
    /// How requests on this bus ended, and the responses nobody waited for.
    requests: Arc<RequestCounters>,
    /// The long-lived routes that pass responses to waiting requests, one per
    /// response type, keyed by the route's own type.
    routes: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

/// What [`BusCore::register`] hands the face to build a subscription from.
pub(crate) struct Registered {
    pub(crate) receiver: Receiver<Envelope>,
    pub(crate) state: Arc<SubscriberState>,
}

impl BusCore {
    /// A buffering bus whose pre-start buffer keeps at most `pre_start_limit`
    /// events, with room for `pre_start_reserve` of them allocated now.
    pub(crate) fn new(pre_start_reserve: usize, pre_start_limit: usize) -> Self {
        let registry = Arc::new(Registry::default());
        Self {
            delivery: Delivery::new(Arc::clone(&registry)),
            writer: CachePadded::new(RegistryWriter::new(registry)),
            pre_start: PreStart::new(pre_start_reserve, pre_start_limit),
            retained: RetainedStore::default(),
            published: PublishedCounter::new(),
            waiter_keys: AtomicU64::new(0),
            requests: Arc::new(RequestCounters::default()),
            routes: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes `event`; returns how many subscribers received it (0 while
    /// buffering).
    // `inline(always)` down to the subscriber's send (with `publish_arc`'s
    // `inline`): left to how the compiler splits the crate into codegen
    // units, the send stopped being inlined into the publish once and
    // `a_publish_k1` took 1.5 times as long.
    #[inline(always)]
    pub(crate) fn publish(&self, event: Arc<dyn Event>) -> usize {
        match self.publish_for_outcome(event) {
            Published::Delivered(delivered) => delivered,
            Published::Buffered => 0,
        }
    }

    /// Publishes `event` and says whether it was delivered directly (to how
    /// many subscribers) or went to the pre-start buffer (kept or dropped).
    #[inline(always)]
    pub(crate) fn publish_for_outcome(&self, event: Arc<dyn Event>) -> Published {
        self.published.add_one();
        if self.pre_start.is_running() {
            return Published::Delivered(self.delivery.deliver_now(event));
        }
        self.pre_start
            .publish(event, false, &self.delivery, &self.retained)
    }

    /// Publishes `event` and retains it as the latest of its type once it is
    /// delivered (at once, or at the replay if the bus is buffering).
    pub(crate) fn publish_retained(&self, event: Arc<dyn Event>) -> usize {
        self.published.add_one();
        if self.pre_start.is_running() {
            return self.retained.deliver_now(&self.delivery, event);
        }
        match self
            .pre_start
            .publish(event, true, &self.delivery, &self.retained)
        {
            Published::Delivered(delivered) => delivered,
            Published::Buffered => 0,
        }
    }

    /// A key no other waiting publish of this bus uses (`Relaxed`: it only
    /// has to be unique).
    pub(crate) fn next_waiter_key(&self) -> u64 {
        self.waiter_keys.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether the bus delivers directly (started and not paused).
    pub(crate) fn is_running(&self) -> bool {
        self.pre_start.is_running()
    }

    /// Replays the pre-start buffer in order, then switches to direct
    /// delivery (design invariant 2).
    pub(crate) fn start(&self) {
        self.pre_start.start(&self.delivery, &self.retained);
    }

    /// Goes back to buffering.
    pub(crate) fn pause(&self) {
        self.pre_start.pause();
    }

    /// Adds a subscriber as `options` describe and hands back the receiving
    /// side. Its async consumer is woken once it first waits as a `Stream`
    /// (see [`enable_wakeups`](Self::enable_wakeups)).
    pub(crate) fn register(&self, options: SubscribeOptions) -> Result<Registered, SubscribeError> {
        let filter = options.validate()?;
        let (sender, receiver) = bounded(options.capacity);
        let state = Arc::new(SubscriberState::new(
            self.writer.next_id(),
            options.name.into(),
            filter,
            DeliverySettings {
                capacity: options.capacity,
                lossy: options.lossy,
                leader_only: options.leader_only,
                routed: false,
            },
        ));
        let subscriber = Arc::new(Subscriber::new(Inbox::Queue(sender), Arc::clone(&state)));
        if options.with_retained {
            self.retained
                .register(&self.delivery, &self.writer, subscriber);
        } else {
            self.update_registry(|current| Some(current.with(subscriber)));
        }
        Ok(Registered { receiver, state })
    }

    /// The route of type `T`, made by `make` and registered as a subscriber
    /// named `name` to the events of `types` the first time it is asked for;
    /// it then lives as long as the bus. `make` gets the bus's request
    /// counters.
    pub(crate) fn route<T: Route + Any>(
        &self,
        name: impl FnOnce() -> String,
        types: impl FnOnce() -> TypeSet,
        make: impl FnOnce(Arc<RequestCounters>) -> T,
    ) -> Arc<T> {
        let mut routes = lock(&self.routes);
        if let Some(route) = routes.get(&TypeId::of::<T>()) {
            return Arc::clone(route)
                .downcast::<T>()
                .unwrap_or_else(|_| unreachable!("routes are keyed by their own type"));
        }
        let route = Arc::new(make(Arc::clone(&self.requests)));
        let state = Arc::new(SubscriberState::new(
            self.writer.next_id(),
            name().into(),
            Filter::RustTypes(types()),
            DeliverySettings {
                capacity: 0,
                lossy: false,
                leader_only: false,
                routed: true,
            },
        ));
        let inbox = Inbox::Route(Arc::clone(&route) as Arc<dyn Route>);
        let subscriber = Arc::new(Subscriber::new(inbox, state));
        let replaced = self.writer.swap(self.delivery.registry(), |current| {
            Some(current.with(subscriber))
        });
        routes.insert(
            TypeId::of::<T>(),
            Arc::clone(&route) as Arc<dyn Any + Send + Sync>,
        );
        drop(routes);
        if let Some(replaced) = replaced {
            retire(replaced);
        }
        route
    }

    /// How requests on this bus ended.
    pub(crate) fn request_counters(&self) -> &RequestCounters {
        &self.requests
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

    /// Whether subscriber `id` is registered.
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.delivery.registry().load().contains(id)
    }

    /// Compacts away the abandoned entries now (a tracked event was queued
    /// into a dropped subscription).
    pub(crate) fn compact(&self) {
        self.update_registry(Registry::compacted);
    }

    /// Removes the subscriber with `id`; `false` if there is none. Waiting
    /// publishes blocked on its queue are woken to notice.
    pub(crate) fn remove(&self, state: &SubscriberState) -> bool {
        let removed = self.update_registry(|current| current.without(state.id));
        if removed {
            state.room.notify();
        }
        removed
    }

    /// The subscription of `state` was dropped: nobody will receive from its
    /// queue again. Its registry entry is marked abandoned (publishers that
    /// meet it deliver nothing and count no drop) and stays until the next
    /// registry change compacts it away, so that a subscribe-and-drop costs
    /// publishers one new registry rather than two. It is compacted away at
    /// once if another abandoned entry waits already, or if its queue is
    /// large (what it holds is freed with the entry).
    ///
    /// A subscription that may hold tracked events is compacted away at once
    /// too. `SeqCst` on `abandoned` and `tracked`, here and in a tracked
    /// publish (`waiting.rs`), which sets `tracked` before it queues and
    /// reads `abandoned` after: of two such stores each followed by a load of
    /// the other, at least one load sees the other store, so either this
    /// drop compacts, or the publish that queued into the dropped
    /// subscription does.
    pub(crate) fn abandon(&self, state: &SubscriberState) {
        self.update_registry(|current| {
            state.abandoned.store(true, Ordering::SeqCst);
            let lingering = current.abandoned();
            if lingering > MAX_ABANDONED
                || state.capacity > MAX_ABANDONED_CAPACITY
                || state.tracked.load(Ordering::SeqCst)
            {
                current.compacted()
            } else {
                None
            }
        });
    }

    pub(crate) fn set_drop_callback(&self, callback: Option<DropCallback>) {
        self.delivery.set_drop_callback(callback);
    }

    pub(crate) fn published(&self) -> u64 {
        self.published.total()
    }

    pub(crate) fn dropped_critical(&self) -> u64 {
        self.delivery.dropped_critical()
    }

    pub(crate) fn dropped_observability(&self) -> u64 {
        self.delivery.dropped_observability()
    }

    pub(crate) fn dropped_pre_start(&self) -> u64 {
        self.pre_start.dropped()
    }

    pub(crate) fn subscriber_count(&self) -> usize {
        self.delivery.registry().load().len()
    }

    /// How many live user subscribers match an event with this type string
    /// and this Rust type (`None`: not asked about).
    pub(crate) fn listeners(&self, event_type: Option<&str>, type_id: Option<TypeId>) -> usize {
        self.delivery
            .registry()
            .load()
            .listeners(event_type, type_id)
    }

    /// Every subscriber's counters, in subscription order.
    pub(crate) fn subscriber_stats(&self) -> Vec<SubscriberStats> {
        let registry = self.delivery.registry().load_full();
        registry
            .subscribers()
            .into_iter()
            .map(|s| SubscriberStats::of(s))
            .collect()
    }

    /// How many events wait in the pre-start buffer now.
    pub(crate) fn pre_start_len(&self) -> usize {
        self.pre_start.len()
    }

    /// The latest retained event of Rust type `id`.
    pub(crate) fn retained_of(&self, id: TypeId) -> Option<Arc<dyn Event>> {
        self.retained.latest_of(id)
    }

    /// The latest retained event whose type string is `name`.
    pub(crate) fn retained_named(&self, name: &str) -> Option<Arc<dyn Event>> {
        self.retained.latest_named(name)
    }

    /// Forgets the retained events `clear` says, including those buffered
    /// to be retained at the replay; returns how many types lost one.
    pub(crate) fn clear_retained(&self, clear: Clear<'_>) -> usize {
        self.pre_start.clear_retained(clear, &self.retained)
    }

    /// How many events are retained.
    pub(crate) fn retained_count(&self) -> usize {
        self.retained.len()
    }

    /// Offers `event` to every matching subscriber for a waiting publish;
    /// the critical ones that are full are added to `blocked` (see
    /// `waiting.rs`). Returns how many received it now.
    pub(crate) fn deliver_waiting(
        &self,
        event: Arc<dyn Event>,
        tracking: Option<&Tracking>,
        blocked: &mut Vec<Blocked>,
    ) -> usize {
        waiting::deliver(&self.delivery, event, tracking, blocked, &|| self.compact())
    }

    /// Tries the `blocked` subscribers again, waiting (as `key`, woken
    /// through `waker`) for room at those still full.
    pub(crate) fn retry_waiting(
        &self,
        blocked: &mut Vec<Blocked>,
        key: u64,
        waker: &Waker,
    ) -> usize {
        waiting::retry(&self.delivery, blocked, key, waker, &|| self.compact())
    }

    /// A waiting publish gives up on the `blocked` subscribers, counting a
    /// drop at each; returns their names.
    pub(crate) fn give_up_waiting(
        &self,
        blocked: Vec<Blocked>,
        key: u64,
        event: &Arc<dyn Event>,
        reason: DropReason,
    ) -> Vec<String> {
        waiting::give_up(&self.delivery, blocked, key, event, reason)
    }

    /// Waits (as `key`, woken through `waker`) for the bus to run; returns
    /// whether it runs now.
    pub(crate) fn wait_for_start(&self, key: u64, waker: &Waker) -> bool {
        self.pre_start.wait_for_start(key, waker)
    }

    /// A waiting publish ends before the bus started: counted and reported
    /// as a pre-start drop for `reason`.
    pub(crate) fn give_up_before_start(&self, key: u64, event: &dyn Event, reason: DropReason) {
        self.pre_start
            .give_up_waiting(&self.delivery, key, event, reason);
    }

    /// Counts a waiting publish in `BusStats::published`.
    pub(crate) fn count_published(&self) {
        self.published.add_one();
    }

    /// Swaps in the registry `change` makes of the current one, if it makes
    /// one; returns whether it did.
    fn update_registry(&self, change: impl FnOnce(&Registry) -> Option<Registry>) -> bool {
        self.writer.update(self.delivery.registry(), change)
    }
}
