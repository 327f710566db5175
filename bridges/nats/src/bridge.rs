//! The running bridge: how it is built and started (in three steps: its
//! [plan](crate::plan), [connecting](crate::connect) and
//! [spawning](crate::spawn) its tasks), its methods, how it stops.

use std::any::{type_name, TypeId};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::{Client, ConnectOptions, ToServerAddrs};
use switchboard::{Event, EventBus};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::builder::BridgeBuilder;
use crate::codec::{Codec, Json};
use crate::config::ConfigError;
use crate::connect::{self, Connected};
use crate::dead_letter::{DeadLetter, DeadLetterError};
use crate::echo::Imported;
use crate::error::BridgeError;
use crate::names::NameGuard;
use crate::pending_replies::PendingReplies;
use crate::plan::Plan;
use crate::retained::{self, Retained, RetainedConfig, RetainedStats};
use crate::shared::Shared;
use crate::spawn::spawn;
use crate::stats::{BridgeStats, RequestCounters, UnroutedCounters};

/// How long dropping a bridge that owns its runtime waits for its tasks to
/// count what they abandon.
const DROP_GRACE: Duration = Duration::from_secs(5);

/// How long `shutdown` waits for the bridge's tasks to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long `shutdown` waits for the client to flush to the server.
const FINAL_FLUSH: Duration = Duration::from_secs(5);

/// A running bridge between an [`EventBus`] and NATS.
///
/// Build it with [`Bridge::builder`]. It runs as tokio tasks: on the runtime
/// that called [`connect`](BridgeBuilder::connect), or on a runtime thread
/// of its own after [`connect_blocking`](BridgeBuilder::connect_blocking).
/// It keeps the bus alive while it runs.
///
/// Dropping the bridge stops it: its bus subscriptions end (events still
/// queued for export are counted as abandoned), its NATS subscriptions are
/// removed, and its JetStream consumer stays on the server for the next
/// start. [`shutdown`](Self::shutdown) does the same and waits until the
/// counters are final.
pub struct Bridge {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    handle: Handle,
    /// The runtime of a bridge started by `connect_blocking`.
    runtime: Option<Runtime>,
    /// The retained state, if the bridge has retained types (`retained.rs`).
    retained: Option<Arc<Retained>>,
    _name: NameGuard,
}

impl Bridge {
    /// A builder for a bridge of `bus`, with the JSON codec.
    pub fn builder(bus: &EventBus) -> BridgeBuilder<Json> {
        Self::builder_with_codec(bus, Json)
    }

    /// A builder for a bridge of `bus` whose payloads use `codec`. Every
    /// bridge exchanging a subject must use the same codec.
    pub fn builder_with_codec<C: Codec>(bus: &EventBus, codec: C) -> BridgeBuilder<C> {
        BridgeBuilder::new(bus, codec)
    }

    pub(crate) async fn start<C: Codec>(
        builder: BridgeBuilder<C>,
        addrs: impl ToServerAddrs,
        options: ConnectOptions,
    ) -> Result<Self, BridgeError> {
        let plan = Plan::new(builder)?;
        let name_guard = NameGuard::claim(&plan.name)?;
        let (connected, subscribed) = connect::connect(&plan, addrs, options).await?;
        let (shared, retained) = share(plan, connected);
        let shared = Arc::new(shared);
        // The fleet's retained state is in the bus before `connect` returns.
        let (retained, retained_tasks) = retained::start(&shared, retained).await?.unzip();

        let (stop, stopped) = watch::channel(false);
        let handle = Handle::current();
        let tasks = spawn(
            &handle,
            &shared,
            subscribed,
            retained.as_ref().zip(retained_tasks),
            &stopped,
        );
        Ok(Self {
            shared,
            stop,
            tasks,
            handle,
            runtime: None,
            retained,
            _name: name_guard,
        })
    }

    pub(crate) fn with_runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The bridge's name: its CloudEvents `ce-source`.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The subject prefix.
    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// The bridge's NATS client, e.g. to check its connection state or
    /// publish something of your own on the same connection.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// A snapshot of the bridge's counters.
    ///
    /// The export queues' figures come from the bus's own stats (the bridge
    /// is an ordinary subscriber there).
    pub fn stats(&self) -> BridgeStats {
        self.shared.stats()
    }

    /// The dead letters of the bridge's prefix: the at-least-once messages
    /// an importer could not import, oldest first (every importer of the
    /// prefix sends its own there). Reads every one, a request each: for
    /// inspection and repair, not for a hot path.
    ///
    /// # Errors
    ///
    /// [`DeadLetterError::JetStream`] if the stream cannot be read.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, DeadLetterError> {
        self.shared.dead_letters.list().await
    }

    /// Publishes a dead letter again on its original subject, with its
    /// original headers and payload (once the cause is fixed: a codec that
    /// can now decode it, a limit raised...), and deletes it from the dead
    /// letters. The republished message gets a new JetStream message id, so
    /// the stream stores it again; the importers' deduplication by
    /// `(ce-source, ce-id)` does not skip it, since it was never imported.
    ///
    /// # Errors
    ///
    /// [`DeadLetterError::Unparseable`] if its headers cannot be published as
    /// they are, [`DeadLetterError::JetStream`] if the publish or the
    /// deletion fails (the dead letter stays when the publish fails).
    pub async fn replay_dead_letter(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        self.shared.dead_letters.replay(letter).await
    }

    /// Deletes a dead letter for good.
    ///
    /// # Errors
    ///
    /// [`DeadLetterError::JetStream`] if the deletion fails.
    pub async fn discard_dead_letter(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        self.shared.dead_letters.discard(letter.sequence).await
    }

    /// Clears the retained state of `T` fleet-wide: writes a tombstone to
    /// its key (a purge), so that importing bridges clear their local copy
    /// (in the order the server stored it among the values), and bridges
    /// connecting later load nothing for it.
    ///
    /// If this bridge exports `T` retained, the tombstone is written after
    /// the local events of `T` published before this call. If it imports
    /// `T` retained, its own local copy is cleared when the tombstone comes
    /// back, in the server's order; if it does not, the local copy of `T`
    /// is cleared once the tombstone is stored.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NotRetained`] (as [`BridgeError::Config`]) if `T` is
    /// neither exported nor imported retained, and the JetStream error if
    /// the tombstone could not be stored.
    pub async fn clear_retained<T: Event>(&self) -> Result<(), BridgeError> {
        let rust_type = type_name::<T>();
        let retained = self
            .retained
            .as_ref()
            .ok_or(BridgeError::Config(ConfigError::NotRetained { rust_type }))?;
        if retained
            .clear(TypeId::of::<T>(), rust_type, &self.shared.name)
            .await?
        {
            self.shared.bus.clear_retained::<T>();
        }
        Ok(())
    }

    /// [`clear_retained`](Self::clear_retained) from plain threads.
    ///
    /// # Errors
    ///
    /// As [`clear_retained`](Self::clear_retained).
    ///
    /// # Panics
    ///
    /// Inside an async context; use `clear_retained` there.
    pub fn clear_retained_blocking<T: Event>(&self) -> Result<(), BridgeError> {
        self.handle.block_on(self.clear_retained::<T>())
    }

    /// The counters of the retained types
    /// ([`export_retained`](BridgeBuilder::export_retained),
    /// [`import_retained`](BridgeBuilder::import_retained)); empty if the
    /// bridge has none.
    pub fn retained_stats(&self) -> RetainedStats {
        self.retained
            .as_ref()
            .map(|retained| retained.stats())
            .unwrap_or_default()
    }

    /// Stops the bridge and waits until it has: events still queued for
    /// export are counted as abandoned, what was handed to the client is
    /// flushed to the server. Returns the final counters.
    pub async fn shutdown(mut self) -> BridgeStats {
        self.stop.send_replace(true);
        let tasks = futures_util::future::join_all(std::mem::take(&mut self.tasks));
        // Every task watches the stop signal; the bound is for a client call
        // that does not return (a task that panicked has nothing left to count).
        if tokio::time::timeout(SHUTDOWN_GRACE, tasks).await.is_err() {
            tracing::warn!(
                bridge = %self.shared.name,
                "switchboard-nats: a task did not stop within {SHUTDOWN_GRACE:?}; left behind"
            );
        }
        // While disconnected a flush would wait for the reconnect, forever
        // if the server is gone: what is still in the client is lost then.
        if self.shared.client.connection_state() == State::Connected {
            match tokio::time::timeout(FINAL_FLUSH, self.shared.client.flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(
                    bridge = %self.shared.name,
                    %error,
                    "switchboard-nats: the final flush failed"
                ),
                Err(_) => tracing::warn!(
                    bridge = %self.shared.name,
                    "switchboard-nats: the final flush did not finish in time"
                ),
            }
        }
        self.stats()
    }

    /// [`shutdown`](Self::shutdown) from plain threads.
    ///
    /// # Panics
    ///
    /// Inside an async context; use `shutdown` there.
    pub fn shutdown_blocking(self) -> BridgeStats {
        let handle = self.handle.clone();
        handle.block_on(self.shutdown())
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        let Some(runtime) = self.runtime.take() else {
            // On the user's runtime the tasks wind down by themselves.
            return;
        };
        if Handle::try_current().is_ok() {
            // Dropped inside some async context: blocking here would panic.
            runtime.shutdown_background();
            return;
        }
        let tasks = std::mem::take(&mut self.tasks);
        runtime.block_on(async {
            let all = futures_util::future::join_all(tasks);
            let _ = tokio::time::timeout(DROP_GRACE, all).await;
        });
        runtime.shutdown_timeout(DROP_GRACE);
    }
}

impl fmt::Debug for Bridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bridge")
            .field("name", &self.shared.name)
            .field("prefix", &self.shared.prefix)
            .field("tasks", &self.tasks.len())
            .field("owns_runtime", &self.runtime.is_some())
            .finish_non_exhaustive()
    }
}

/// What the bridge's tasks will share, made of its plan and its
/// connections; and its retained types, started once it is shared.
fn share(plan: Plan, connected: Connected) -> (Shared, RetainedConfig) {
    let Plan {
        bus,
        name,
        prefix,
        content_type,
        exports,
        imports,
        served,
        export_feeds,
        jetstream_options,
        max_import_bytes,
        max_pending_requests,
        retained,
        ..
    } = plan;
    let Connected {
        client,
        client_events,
        consumer_client,
        consumer_events,
        dead_letters,
        consumer_counters,
    } = connected;
    let shared = Shared {
        exported_types: exports.iter().map(|e| e.type_id).collect(),
        name,
        prefix,
        content_type,
        bus,
        client,
        consumer_client: Mutex::new(consumer_client),
        exports,
        imports,
        served: served.into_iter().map(|(_, entry)| entry).collect(),
        imported: Imported::default(),
        unrouted: UnroutedCounters::default(),
        requests: RequestCounters::default(),
        client_events,
        consumer_events,
        consumer_counters,
        name_conflicts: AtomicU64::new(0),
        client_stopped: AtomicBool::new(false),
        dead_letters,
        queues: export_feeds
            .into_iter()
            .map(|(delivery, feed)| (delivery, feed.queue, feed.subscriber))
            .collect(),
        jetstream: jetstream_options,
        max_import_bytes,
        pending_replies: PendingReplies::new(max_pending_requests),
    };
    (shared, retained)
}

impl<C: Codec> BridgeBuilder<C> {
    /// Connects to the NATS servers `addrs` with `options` (credentials,
    /// TLS, reconnect policy...) and starts the bridge on the current tokio
    /// runtime.
    ///
    /// The bridge installs its own event callback on `options` (it counts
    /// and logs connection events); one set before is replaced. When this
    /// returns, the bridge's subscriptions are registered with the server
    /// and its JetStream stream and consumer exist.
    ///
    /// ```no_run
    /// # use switchboard::EventBus;
    /// # use switchboard_nats::{Bridge, Delivery};
    /// # #[derive(switchboard::Event, serde::Serialize, serde::Deserialize)]
    /// # #[event(type = "route.added")]
    /// # struct RouteAdded { timestamp: std::time::SystemTime }
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = EventBus::new();
    /// let bridge = Bridge::builder(&bus)
    ///     .name("replica-a")
    ///     .export::<RouteAdded>("route.added", Delivery::AtMostOnce)
    ///     .connect("nats://127.0.0.1:4222", async_nats::ConnectOptions::new())
    ///     .await?;
    /// bus.start();
    /// # drop(bridge); Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`BridgeError::Config`] for a configuration problem (nothing is
    /// contacted), [`BridgeError::Connect`] if no server accepts the
    /// connection (unreachable, or credentials refused), and the JetStream
    /// and subscription errors of the setup.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime; use [`connect_blocking`](Self::connect_blocking) there.
    pub async fn connect(
        self,
        addrs: impl ToServerAddrs,
        options: ConnectOptions,
    ) -> Result<Bridge, BridgeError> {
        Bridge::start(self, addrs, options).await
    }

    /// Like [`connect`](Self::connect), from plain threads: the bridge runs
    /// on a runtime thread of its own, stopped when the bridge is dropped.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect), and [`BridgeError::Runtime`] if the
    /// runtime thread cannot be started.
    ///
    /// # Panics
    ///
    /// Inside an async context (it blocks); use `connect` there.
    pub fn connect_blocking(
        self,
        addrs: impl ToServerAddrs,
        options: ConnectOptions,
    ) -> Result<Bridge, BridgeError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("switchboard-nats")
            .enable_all()
            .build()
            .map_err(BridgeError::Runtime)?;
        // The runtime stays out of the future: dropped inside it (when the
        // start fails), it would panic.
        let bridge = runtime
            .handle()
            .block_on(Bridge::start(self, addrs, options))?;
        Ok(bridge.with_runtime(runtime))
    }
}
