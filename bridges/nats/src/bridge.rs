//! The running bridge: what it shares with its tasks, how it starts, how it stops.

use std::any::TypeId;
use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::{Client, ConnectOptions, ServerAddr, Subscriber, ToServerAddrs};
use switchboard::{EventBus, SubscribeOptions, Subscription, TypeSet};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::builder::BridgeBuilder;
use crate::client_events::{connection_counts, ClientEvents};
use crate::codec::Codec;
use crate::config::{Delivery, ExportQueue, JetStreamOptions};
use crate::dead_letter::DeadLetters;
use crate::echo::Imported;
use crate::error::BridgeError;
use crate::import::Reconnect;
use crate::names::NameGuard;
use crate::serve::PendingReplies;
use crate::stats::{
    BridgeStats, ClientCounts, ConsumerCounters, ExportStats, ImportStats, QueueStats,
    RequestCounters, UnroutedCounters,
};
use crate::types::{ExportType, ImportType, ServedType};
use crate::{client_events, export, import, jetstream, presence, retained, serve, subject};

/// How long dropping a bridge that owns its runtime waits for its tasks to
/// count what they abandon.
const DROP_GRACE: Duration = Duration::from_secs(5);
/// How long `connect` waits for a bridge to answer its name's probe when
/// something other than a bridge keeps "no responders" from coming (a `>`
/// subscriber): a live bridge answers in a round trip.
const PROBE_WAIT: Duration = Duration::from_secs(1);
/// How long `connect` waits for the server to confirm the subscriptions.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// Returns once the server has processed every command this client sent
/// before it, subscriptions included: it processes a connection's commands
/// in order, so a message the client publishes to an inbox of its own comes
/// back only after them. (`flush` only writes the client's buffer to the
/// socket: another client's message could still reach the server before our
/// subscriptions, and miss them.)
async fn confirm_subscriptions(client: &Client) -> Result<(), BridgeError> {
    let inbox = client.new_inbox();
    let mut echo =
        client
            .subscribe(inbox.clone())
            .await
            .map_err(|source| BridgeError::Subscribe {
                subject: inbox.clone(),
                source,
            })?;
    let round_trip = async {
        client.publish(inbox, bytes::Bytes::new()).await.ok()?;
        futures_util::StreamExt::next(&mut echo).await
    };
    match tokio::time::timeout(CONFIRM_TIMEOUT, round_trip).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) | Err(_) => Err(BridgeError::NotConfirmed {
            waited: CONFIRM_TIMEOUT,
        }),
    }
}

/// Waits until `client` is connected (at once, unless it was built with
/// `retry_on_initial_connect`), or says why it is not: the client's last
/// connection error tells refused credentials from an absent server.
async fn wait_connected(client: &Client, events: &ClientEvents) -> Result<(), BridgeError> {
    let connected = async {
        while client.connection_state() != State::Connected {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(CONFIRM_TIMEOUT, connected)
        .await
        .map_err(|_| BridgeError::NotConnected {
            waited: CONFIRM_TIMEOUT,
            last_error: events.last_error(),
        })
}

/// Fails if the server answers that it has no JetStream for this account.
pub(crate) async fn check_jetstream(client: &Client) -> Result<(), BridgeError> {
    let failed = |source: async_nats::Error| BridgeError::JetStream {
        what: "asking the server for this account's JetStream information".to_owned(),
        source,
    };
    match client.request("$JS.API.INFO", bytes::Bytes::new()).await {
        Ok(answer) => {
            let answer: serde_json::Value =
                serde_json::from_slice(&answer.payload).map_err(|error| failed(error.into()))?;
            match answer.get("error") {
                Some(error) => Err(BridgeError::NoJetStream {
                    detail: error.to_string(),
                }),
                None => Ok(()),
            }
        }
        Err(error) if error.kind() == async_nats::RequestErrorKind::NoResponders => {
            Err(BridgeError::NoJetStream {
                detail: "no responders on the JetStream API".to_owned(),
            })
        }
        Err(error) => Err(failed(error.into())),
    }
}

/// Fails if the headers of some configured type would not fit in the
/// server's `max_payload`, which would refuse every one of its messages.
fn check_header_room<C: Codec>(
    client: &Client,
    builder: &BridgeBuilder<C>,
    name: &str,
) -> Result<(), BridgeError> {
    let max_payload = client.server_info().max_payload;
    let types = builder
        .exports
        .iter()
        .map(|e| (e.rust_type, &e.event_type))
        .chain(builder.imports.iter().map(|i| (i.rust_type, &i.event_type)))
        .chain(
            builder
                .served
                .iter()
                .map(|s| (s.request_rust_type, &s.request_type)),
        );
    for (rust_type, event_type) in types {
        let bytes = crate::cloudevents::largest_header_block(event_type, name);
        if bytes >= max_payload {
            return Err(BridgeError::Config(crate::ConfigError::HeadersTooLarge {
                rust_type,
                bytes,
                max_payload,
            }));
        }
    }
    Ok(())
}

/// A snapshot of the connections' counters.
fn client_counts(shared: &Shared) -> ClientCounts {
    let stopped_for_good = shared.client_stopped.load(Ordering::Relaxed);
    let (connects, disconnects) = connection_counts(&shared.client);
    // A client that stopped for good still says it is connected.
    let disconnects = if stopped_for_good {
        connects
    } else {
        disconnects
    };
    let (consumer_connects, consumer_disconnects) = shared
        .consumer_client
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .map_or((0, 0), |client| {
            shared.consumer_events.connection_counts(client)
        });
    let counters = &shared.client_events.counters;
    let consumer = &shared.consumer_events.counters;
    ClientCounts {
        connects,
        disconnects,
        consumer_connects,
        consumer_disconnects,
        slow_consumer: counters.slow_consumer.load(Ordering::Relaxed)
            + consumer.slow_consumer.load(Ordering::Relaxed),
        server_errors: counters.server_errors.load(Ordering::Relaxed)
            + consumer.server_errors.load(Ordering::Relaxed),
        name_conflicts: shared.name_conflicts.load(Ordering::Relaxed),
        stopped_for_good,
    }
}

/// How long `shutdown` waits for the bridge's tasks to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long `shutdown` waits for the client to flush to the server.
const FINAL_FLUSH: Duration = Duration::from_secs(5);

/// What the bridge's tasks share.
pub(crate) struct Shared {
    pub name: String,
    pub prefix: String,
    pub content_type: String,
    pub bus: EventBus,
    pub client: Client,
    /// The at-least-once importer's own connection, if it has one (built
    /// again by the importer if its client dies).
    pub consumer_client: Mutex<Option<Client>>,
    pub exports: Vec<Arc<ExportType>>,
    pub imports: Vec<Arc<ImportType>>,
    pub served: Vec<Arc<ServedType>>,
    /// The Rust types this bridge exports: only their imports need to be
    /// remembered for loop prevention.
    pub exported_types: HashSet<TypeId>,
    pub imported: Imported,
    pub unrouted: UnroutedCounters,
    pub requests: RequestCounters,
    pub client_events: Arc<ClientEvents>,
    pub consumer_events: Arc<ClientEvents>,
    pub consumer_counters: ConsumerCounters,
    /// Announcements heard from another live bridge of this name.
    pub name_conflicts: AtomicU64,
    /// Set once the main client's connection task is found ended.
    pub client_stopped: AtomicBool,
    pub dead_letters: DeadLetters,
    /// Each export queue in use, with its bus subscriber name.
    pub queues: Vec<(Delivery, ExportQueue, String)>,
    pub jetstream: JetStreamOptions,
    pub max_import_bytes: usize,
    pub pending_replies: PendingReplies,
}

impl Shared {
    pub(crate) fn export_of(&self, type_id: TypeId) -> Option<&Arc<ExportType>> {
        self.exports.iter().find(|e| e.type_id == type_id)
    }
}

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
    pub(crate) retained: Option<Arc<retained::Retained>>,
    _name: NameGuard,
}

/// The bus subscription of one delivery mode's exports, if any type uses it.
fn export_subscription(
    bus: &EventBus,
    name: &str,
    delivery: Delivery,
    queue: ExportQueue,
    types: TypeSet,
) -> Result<Option<(String, Subscription)>, BridgeError> {
    if types.is_empty() {
        return Ok(None);
    }
    let subscriber = format!("nats-bridge:{name}:export:{delivery}");
    let mut options = SubscribeOptions::new(subscriber.clone(), queue.capacity)
        .rust_types(types)
        // The bridge may start after the bus; that is intended, not a late component.
        .leader_only();
    if queue.lossy {
        options = options.lossy();
    }
    let subscription = bus.subscribe_with(options).map_err(BridgeError::Bus)?;
    Ok(Some((subscriber, subscription)))
}

impl Bridge {
    pub(crate) async fn start<C: Codec>(
        builder: BridgeBuilder<C>,
        addrs: impl ToServerAddrs,
        options: ConnectOptions,
    ) -> Result<Self, BridgeError> {
        builder.validate()?;
        let name = builder
            .name
            .clone()
            .unwrap_or_else(|| format!("sb-{}", nuid::next()));
        let name_guard = NameGuard::claim(&name)?;
        // Resolved once: the consumer's connection goes to the same servers.
        let addrs: Vec<ServerAddr> = addrs
            .to_server_addrs()
            .map_err(|error| {
                BridgeError::Connect(async_nats::ConnectError::with_source(
                    async_nats::ConnectErrorKind::ServerParse,
                    error,
                ))
            })?
            .collect();

        let client_events = Arc::new(ClientEvents::default());
        let client =
            client_events::install(options.clone(), &name, "main", Arc::clone(&client_events))
                .connect(addrs.clone())
                .await
                .map_err(BridgeError::Connect)?;
        wait_connected(&client, &client_events).await?;
        check_header_room(&client, &builder, &name)?;
        let durable = builder
            .imports
            .iter()
            .any(|i| i.delivery == Delivery::AtLeastOnce)
            .then(|| builder.jetstream.durable.as_deref().unwrap_or(&name));
        let names: Vec<&str> = std::iter::once(name.as_str()).chain(durable).collect();
        let presence = presence::claim(&client, &builder.prefix, &names, PROBE_WAIT).await?;

        let BridgeBuilder {
            bus,
            codec,
            prefix,
            exports,
            imports,
            served,
            at_most_once_types,
            at_least_once_types,
            response_types,
            at_most_once_queue,
            at_least_once_queue,
            jetstream: jetstream_options,
            max_import_bytes,
            max_pending_requests,
            content_mode,
            retained: retained_config,
            ..
        } = builder;

        let mut queues = Vec::new();
        let mut export_subscriptions = Vec::new();
        for (delivery, queue, types) in [
            (Delivery::AtMostOnce, at_most_once_queue, at_most_once_types),
            (
                Delivery::AtLeastOnce,
                at_least_once_queue,
                at_least_once_types,
            ),
        ] {
            if let Some((subscriber, subscription)) =
                export_subscription(&bus, &name, delivery, queue, types)?
            {
                queues.push((delivery, queue, subscriber));
                export_subscriptions.push((delivery, subscription));
            }
        }

        let imports: Vec<Arc<ImportType>> = imports
            .into_iter()
            .map(|mut entry| {
                entry.subject = crate::subject::for_event_type(&prefix, &entry.event_type);
                Arc::new(entry)
            })
            .collect();
        let served: Vec<Arc<ServedType>> = served.into_iter().map(Arc::new).collect();
        let exports: Vec<Arc<ExportType>> = exports
            .into_iter()
            .map(|mut entry| {
                entry.mode.get_or_insert(content_mode);
                Arc::new(entry)
            })
            .collect();

        let imports_durably = imports.iter().any(|i| i.delivery == Delivery::AtLeastOnce);
        let uses_jetstream = imports_durably
            || export_subscriptions
                .iter()
                .any(|(d, _)| *d == Delivery::AtLeastOnce);
        let consumer_events = Arc::new(ClientEvents::default());
        let (jetstream, consumer_client, advisories, reconnect) = if uses_jetstream {
            check_jetstream(&client).await?;
            // The consumer reads on a connection of its own: see `jetstream`.
            let (consumer_client, reconnect) = if imports_durably {
                let reconnect = Reconnect {
                    addrs,
                    options: client_events::install(
                        options,
                        &name,
                        "consumer",
                        Arc::clone(&consumer_events),
                    ),
                };
                let consumer_client = reconnect
                    .options
                    .clone()
                    .connect(reconnect.addrs.clone())
                    .await
                    .map_err(BridgeError::Connect)?;
                wait_connected(&consumer_client, &consumer_events).await?;
                (Some(consumer_client), Some(reconnect))
            } else {
                (None, None)
            };
            let jetstream = jetstream::setup(
                &client,
                consumer_client.as_ref(),
                &prefix,
                &name,
                &jetstream_options,
                &exports,
                &imports,
            )
            .await?;
            let advisories = match &jetstream.consumer {
                Some(consumer) => {
                    let subject = format!(
                        "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}",
                        consumer.spec.name(),
                        consumer.durable
                    );
                    Some(
                        client
                            .subscribe(subject.clone())
                            .await
                            .map_err(|source| BridgeError::Subscribe { subject, source })?,
                    )
                }
                None => None,
            };
            (Some(jetstream), consumer_client, advisories, reconnect)
        } else {
            (None, None, None, None)
        };

        let core_imports = subscribe_each(
            &client,
            imports
                .iter()
                .filter(|entry| entry.delivery == Delivery::AtMostOnce)
                .map(|entry| (entry.subject.clone(), entry)),
        )
        .await?;
        let served_subscriptions = subscribe_each(
            &client,
            served.iter().map(|entry| {
                let subject = subject::for_event_type(&prefix, &entry.request_type);
                (subject, entry)
            }),
        )
        .await?;
        // One subscription to the done notices per served type, read by the
        // type's task after its requests: see `serve::run_requests`.
        let done_subscriptions = subscribe_each(
            &client,
            served
                .iter()
                .map(|entry| (serve::done_subject(&prefix), entry)),
        )
        .await?;
        let replies = if served.is_empty() {
            None
        } else {
            let subscriber = format!("nats-bridge:{name}:replies");
            let options = SubscribeOptions::new(subscriber, ExportQueue::DEFAULT_CAPACITY)
                .rust_types(response_types)
                .leader_only();
            Some(bus.subscribe_with(options).map_err(BridgeError::Bus)?)
        };
        // The server has registered every subscription once this returns:
        // a message published after `connect` returns reaches them.
        confirm_subscriptions(&client).await?;

        let dead_letters = DeadLetters::new(
            jetstream::context(&client, &jetstream_options),
            &prefix,
            &name,
            &jetstream_options,
        );
        if exports.iter().any(|e| e.delivery == Delivery::AtLeastOnce) {
            dead_letters
                .ensure()
                .await
                .map_err(|source| BridgeError::JetStream {
                    what: "creating the dead-letter stream".to_owned(),
                    source,
                })?;
        }
        let shared = Arc::new(Shared {
            exported_types: exports.iter().map(|e| e.type_id).collect(),
            name,
            prefix,
            content_type: codec.content_type().to_owned(),
            bus,
            client,
            consumer_client: Mutex::new(consumer_client),
            exports,
            imports,
            served,
            imported: Imported::default(),
            unrouted: UnroutedCounters::default(),
            requests: RequestCounters::default(),
            client_events,
            consumer_events,
            consumer_counters: ConsumerCounters::default(),
            name_conflicts: AtomicU64::new(0),
            client_stopped: AtomicBool::new(false),
            dead_letters,
            queues,
            jetstream: jetstream_options,
            max_import_bytes,
            pending_replies: PendingReplies::new(max_pending_requests),
        });

        // The fleet's retained state is in the bus before `connect` returns.
        let retained = retained::start(&shared, retained_config).await?;

        let (stop, stopped) = watch::channel(false);
        let handle = Handle::current();
        let mut tasks = vec![handle.spawn(presence::run(
            Arc::clone(&shared),
            presence,
            stopped.clone(),
        ))];
        for (delivery, subscription) in export_subscriptions {
            let shared = Arc::clone(&shared);
            let stopped = stopped.clone();
            tasks.push(match delivery {
                Delivery::AtMostOnce => {
                    handle.spawn(export::run_core(shared, subscription, stopped))
                }
                Delivery::AtLeastOnce => {
                    let spec = jetstream
                        .as_ref()
                        .map(|js| js.spec.clone())
                        .expect("JetStream is set up whenever a type is exported at-least-once");
                    handle.spawn(export::run_jetstream(shared, spec, subscription, stopped))
                }
            });
        }
        for (entry, subscriber) in core_imports {
            tasks.push(handle.spawn(import::run_core(
                Arc::clone(&shared),
                entry,
                subscriber,
                stopped.clone(),
            )));
        }
        if let (Some(consumer), Some(advisories), Some(reconnect)) =
            (jetstream.and_then(|js| js.consumer), advisories, reconnect)
        {
            tasks.push(handle.spawn(import::run_jetstream(
                Arc::clone(&shared),
                consumer,
                reconnect,
                advisories,
                stopped.clone(),
            )));
        }
        for ((entry, subscriber), (_, done)) in
            served_subscriptions.into_iter().zip(done_subscriptions)
        {
            tasks.push(handle.spawn(serve::run_requests(
                Arc::clone(&shared),
                entry,
                subscriber,
                done,
                stopped.clone(),
            )));
        }
        if let Some(replies) = replies {
            tasks.push(handle.spawn(serve::run_replies(
                Arc::clone(&shared),
                replies,
                stopped.clone(),
            )));
        }
        let retained = retained.map(|(retained, retained_tasks)| {
            for task in retained_tasks {
                tasks.push(handle.spawn(task.run(
                    Arc::clone(&shared),
                    Arc::clone(&retained),
                    stopped.clone(),
                )));
            }
            retained
        });

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
        Self::stats_of(&self.shared)
    }

    pub(crate) fn stats_of(shared: &Shared) -> BridgeStats {
        let bus_stats = shared.bus.stats();
        let queues = shared
            .queues
            .iter()
            .map(|(delivery, queue, subscriber)| {
                let on_bus = bus_stats.subscribers.iter().find(|s| &s.name == subscriber);
                QueueStats {
                    delivery: *delivery,
                    subscriber: subscriber.clone(),
                    lossy: queue.lossy,
                    capacity: queue.capacity,
                    queued: on_bus.map_or(0, |s| s.queued),
                    dropped: on_bus.map_or(0, |s| s.dropped),
                }
            })
            .collect();
        BridgeStats {
            name: shared.name.clone(),
            exports: shared
                .exports
                .iter()
                .map(|e| ExportStats {
                    event_type: e.event_type.clone(),
                    rust_type: e.rust_type,
                    delivery: e.delivery,
                    counts: e.counters.snapshot(),
                })
                .collect(),
            queues,
            imports: shared
                .imports
                .iter()
                .map(|i| ImportStats {
                    event_type: i.event_type.clone(),
                    rust_type: i.rust_type,
                    delivery: i.delivery,
                    counts: i.counters.snapshot(),
                })
                .collect(),
            unrouted: shared.unrouted.snapshot(),
            requests: shared.requests.snapshot(),
            client: client_counts(shared),
            consumer: shared.consumer_counters.snapshot(),
        }
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

/// Subscribes to each entry's subject (the at-most-once imports, the served
/// request types and their done notices), pairing each subscription with
/// its entry.
async fn subscribe_each<'a, T: 'a>(
    client: &Client,
    entries: impl IntoIterator<Item = (String, &'a Arc<T>)>,
) -> Result<Vec<(Arc<T>, Subscriber)>, BridgeError> {
    let mut subscriptions = Vec::new();
    for (subject, entry) in entries {
        let subscriber = client
            .subscribe(subject.clone())
            .await
            .map_err(|source| BridgeError::Subscribe { subject, source })?;
        subscriptions.push((Arc::clone(entry), subscriber));
    }
    Ok(subscriptions)
}
