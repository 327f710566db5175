//! The lock-free core behind [`EventBus`](crate::EventBus): the registry
//! snapshot publishers read, its writer, delivery and the start/pause state
//! machine.
//!
//! The public face (`bus.rs`) owns a [`BusCore`] and turns what it hands back
//! into public types: [`BusCore::register`] returns the queue's receiver and
//! the subscriber's shared state, from which the face builds a
//! [`Subscription`](crate::Subscription). Nothing here depends on the face.
//!
//! - `registry`: the immutable, indexed set of subscribers publishers read.
//! - `subscriber`: one registry entry (the sending half of a queue) and the
//!   state it shares with its subscription.
//! - `writer`: copy-and-swap of the registry, and freeing replaced ones.
//! - `delivery`: offering one event to the matching subscribers, and tallying
//!   what happened.
//! - `pre_start`: buffering before `start` and after `pause`, and the replay.
//! - `waiting`: the waiting publish's steps: wait for room instead of
//!   dropping, and count what it gives up.
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

use crossbeam_utils::CachePadded;

use crate::completion::Envelope;
use crate::drops::{DropCallback, DropReporter};
use crate::error::SubscribeError;
use crate::event::Event;
use crate::options::{Filter, SubscribeOptions, TypeSet};
use crate::sync::queue::{bounded, Receiver};
use crate::sync::snapshot::Snapshot;
use crate::sync::wait_list::WaitList;
use crate::sync::{lock, AtomicU64, AtomicU8, Mutex, Ordering};

pub(crate) use self::snapshot::RequestCounters;
pub use self::snapshot::{RequestStats, SubscriberKind, SubscriberStats};
use self::subscriber::Delivery;
pub(crate) use self::subscriber::{Route, Subscriber, SubscriberState};
pub(crate) use self::waiting::Blocked;

use self::pre_start::PreStartBuffer;
use self::published::PublishedCounter;
use self::registry::Registry;
use self::retained::RetainedEvents;
use self::subscriber::Inbox;
use self::writer::{retire, RegistryWriter};

/// How many dropped subscriptions may wait in the registry for the next change.
const MAX_ABANDONED: usize = 1;

/// The largest queue a dropped subscription may keep while it waits: a larger
/// one is compacted away at once, freeing its memory.
const MAX_ABANDONED_CAPACITY: usize = 1024;

/// `BusCore::state` while events go to the pre-start buffer.
const BUFFERING: u8 = 0;
/// `BusCore::state` while events go directly to subscribers.
const RUNNING: u8 = 1;

/// Everything one bus shares between its handles and subscriptions.
pub(crate) struct BusCore {
    /// What publishers read: the current subscribers, lock-free.
    registry: Snapshot<Registry>,
    /// On its own cache line: subscribe and unsubscribe write it several
    /// times per change, and it must not evict what every publish reads
    /// (the snapshot pointer and the state).
    writer: CachePadded<RegistryWriter>,
    /// `BUFFERING` or `RUNNING`. Only changed under the mode lock; read
    /// lock-free by publishers, which take the lock and re-check only when
    /// they see `BUFFERING` (design invariant 4).
    state: AtomicU8,
    /// The mode lock, guarding the pre-start buffer.
    pre_start: Mutex<PreStartBuffer>,
    /// Waiting publishes made while the bus was buffering: they wait for
    /// `start` rather than take a place in the pre-start buffer.
    started: WaitList,
    /// Keys for waiting publishes in the wait lists.
    waiter_keys: AtomicU64,
    /// The retained lock, guarding the retained events. Taken after the mode
    /// lock and before the writer lock, never the other way round.
    retained: Mutex<RetainedEvents>,
    drops: DropReporter,
    counters: Counters,
    /// How requests on this bus ended, and the responses nobody waited for.
    requests: Arc<RequestCounters>,
    /// The long-lived routes that pass responses to waiting requests, one per
    /// response type, keyed by the route's own type.
    routes: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

/// The bus totals, each on its own cache line: publishers write them.
struct Counters {
    published: PublishedCounter,
    dropped_critical: CachePadded<AtomicU64>,
    dropped_observability: CachePadded<AtomicU64>,
    dropped_pre_start: CachePadded<AtomicU64>,
}

/// What a publish did with the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Published {
    /// The bus was running: offered to the matching subscribers, this many
    /// of which received it.
    Delivered(usize),
    /// The bus was buffering: kept for the replay, or dropped and counted
    /// because the pre-start buffer was full.
    Buffered,
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
            registry: Snapshot::new(Arc::clone(&registry)),
            writer: CachePadded::new(RegistryWriter::new(registry)),
            state: AtomicU8::new(BUFFERING),
            pre_start: Mutex::new(PreStartBuffer::new(pre_start_reserve, pre_start_limit)),
            started: WaitList::new(),
            waiter_keys: AtomicU64::new(0),
            retained: Mutex::new(RetainedEvents::default()),
            drops: DropReporter::new(),
            counters: Counters {
                published: PublishedCounter::new(),
                dropped_critical: CachePadded::new(AtomicU64::new(0)),
                dropped_observability: CachePadded::new(AtomicU64::new(0)),
                dropped_pre_start: CachePadded::new(AtomicU64::new(0)),
            },
            requests: Arc::new(RequestCounters::default()),
            routes: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes `event`; returns how many subscribers received it (0 while
    /// buffering).
    #[inline]
    pub(crate) fn publish(&self, event: Arc<dyn Event>) -> usize {
        match self.publish_for_outcome(event) {
            Published::Delivered(delivered) => delivered,
            Published::Buffered => 0,
        }
    }

    /// Publishes `event` and says whether it was delivered directly (to how
    /// many subscribers) or went to the pre-start buffer (kept or dropped).
    #[inline]
    pub(crate) fn publish_for_outcome(&self, event: Arc<dyn Event>) -> Published {
        self.counters.published.add_one();
        // Acquire: a publisher that sees RUNNING also sees everything the
        // replay did before `start` stored it (design, "Memory orders").
        if self.state.load(Ordering::Acquire) == RUNNING {
            return Published::Delivered(self.deliver_now(event));
        }
        self.publish_while_buffering(event, false)
    }

    /// Publishes `event` and retains it as the latest of its type once it is
    /// delivered (at once, or at the replay if the bus is buffering).
    pub(crate) fn publish_retained(&self, event: Arc<dyn Event>) -> usize {
        self.counters.published.add_one();
        if self.state.load(Ordering::Acquire) == RUNNING {
            return self.deliver_retained_now(event);
        }
        match self.publish_while_buffering(event, true) {
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
        self.state.load(Ordering::Acquire) == RUNNING
    }

    /// Goes back to buffering. Under the mode lock, so that a replay in
    /// progress finishes first and a buffering publisher's re-check is exact.
    pub(crate) fn pause(&self) {
        let _mode = lock(&self.pre_start);
        self.state.store(BUFFERING, Ordering::Release);
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
            Delivery {
                capacity: options.capacity,
                lossy: options.lossy,
                leader_only: options.leader_only,
                routed: false,
            },
        ));
        let subscriber = Arc::new(Subscriber::new(Inbox::Queue(sender), Arc::clone(&state)));
        if options.with_retained {
            self.register_with_retained(subscriber);
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
            Delivery {
                capacity: 0,
                lossy: false,
                leader_only: false,
                routed: true,
            },
        ));
        let inbox = Inbox::Route(Arc::clone(&route) as Arc<dyn Route>);
        let subscriber = Arc::new(Subscriber::new(inbox, state));
        let replaced = self.swap_registry(|current| Some(current.with(subscriber)));
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
        self.registry.load().contains(id)
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
        self.drops.set(callback);
    }

    pub(crate) fn published(&self) -> u64 {
        self.counters.published.total()
    }

    pub(crate) fn dropped_critical(&self) -> u64 {
        self.counters.dropped_critical.load(Ordering::Relaxed)
    }

    pub(crate) fn dropped_observability(&self) -> u64 {
        self.counters.dropped_observability.load(Ordering::Relaxed)
    }

    pub(crate) fn dropped_pre_start(&self) -> u64 {
        self.counters.dropped_pre_start.load(Ordering::Relaxed)
    }

    pub(crate) fn subscriber_count(&self) -> usize {
        self.registry.load().len()
    }

    /// How many live user subscribers match an event with this type string
    /// and this Rust type (`None`: not asked about).
    pub(crate) fn listeners(&self, event_type: Option<&str>, type_id: Option<TypeId>) -> usize {
        self.registry.load().listeners(event_type, type_id)
    }

    /// Every subscriber's counters, in subscription order.
    pub(crate) fn subscriber_stats(&self) -> Vec<SubscriberStats> {
        let registry = self.registry.load_full();
        registry
            .subscribers()
            .into_iter()
            .map(|s| SubscriberStats::of(s))
            .collect()
    }

    /// How many events wait in the pre-start buffer now.
    pub(crate) fn pre_start_len(&self) -> usize {
        lock(&self.pre_start).len()
    }
}
