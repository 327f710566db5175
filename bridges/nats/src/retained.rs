//! Retained state across processes: the latest event of each type exported
//! as *retained* is kept in a JetStream key-value bucket, and importing
//! bridges load it into their bus's retained store at connect, then follow
//! its updates.
//!
//! - **Keys.** One bucket per prefix, `{STREAM}_RETAINED` (`SB_RETAINED` for
//!   the prefix `sb`; its stream is `KV_SB_RETAINED`), one key per event
//!   type (`route.added`), history 1, file storage, the replicas of
//!   [`JetStreamOptions::replicas`](crate::JetStreamOptions::replicas). The
//!   core bus retains one event per type, so the bucket does too: several
//!   replicas exporting a type write the same key, and the last write the
//!   server stored wins, for every process alike.
//! - **Export.** The bridge subscribes to the local events of its retained
//!   types and writes each to its key (CloudEvents headers, message id =
//!   `ce-id`, retried until stored), one at a time, in bus order.
//! - **Import.** One ordered consumer on the bucket, delivering the last
//!   message of each key first (`DeliverLastPerSubject`), then every later
//!   write, in the server's order: the initial values and the updates come
//!   through one stream, so an update written while the bridge loads is
//!   neither lost nor applied before an older value. `connect` returns once
//!   the consumer has delivered every message the bucket held when it was
//!   created; those values are published into the bus with
//!   `publish_retained_arc`, in the server's order. Later writes are
//!   published as they come.
//! - **Clearing.** [`Bridge::clear_retained`](crate::Bridge::clear_retained) purges the key (a tombstone,
//!   `KV-Operation: PURGE`); importers clear their local copy
//!   (`clear_retained_by_type`) when the tombstone comes, in the same order
//!   as the values.
//!
//! Only stream and consumer settings that nats-server 2.9 knows are used.

use std::any::{type_name, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::consumer::push::{Ordered, OrderedConfig};
use async_nats::jetstream::consumer::{DeliverPolicy, ReplayPolicy};
use async_nats::jetstream::stream::{Config as StreamConfig, DiscardPolicy, StorageType, Stream};
use async_nats::jetstream::Message;
use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use switchboard::{Event, SubscribeOptions, Subscription, TypeSet};
use tokio::sync::{mpsc, oneshot, watch};

use crate::cloudevents::{self, event_id, Incoming, Outgoing};
use crate::codec::Codec;
use crate::config::{ConfigError, ExportQueue};
use crate::echo::Imported;
use crate::error::BridgeError;
use crate::shared::Shared;
use crate::stats::{bump, warn_counted};
use crate::stop::Stop;
use crate::subject::{check_event_type, default_stream_name};
use crate::types::{decode_traced, type_id_of, DecodeFn, EncodeFn};

/// How long `connect` waits for the bucket's current values.
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest wait between two attempts to store a value or to watch the
/// bucket again.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(2);
/// The header of a key-value tombstone.
const KV_OPERATION: &str = "KV-Operation";

/// The bucket of retained events of a stream (`SB` -> `SB_RETAINED`).
pub(crate) fn bucket_name(stream: &str) -> String {
    format!("{stream}_RETAINED")
}

/// Whether `event_type` can be a key of the bucket: key-value keys are
/// dot-separated tokens of `A-Z a-z 0-9 - _ = /`.
fn is_valid_key(event_type: &str) -> bool {
    !event_type.is_empty()
        && !event_type.starts_with('.')
        && !event_type.ends_with('.')
        && event_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'/' | b'.'))
}

/// A type exported as retained.
struct ExportEntry {
    event_type: String,
    rust_type: &'static str,
    type_id: TypeId,
    encode: EncodeFn,
}

/// A type imported as retained.
struct ImportEntry {
    event_type: String,
    rust_type: &'static str,
    type_id: TypeId,
    decode: DecodeFn,
}

/// The retained types of a builder.
#[derive(Default)]
pub(crate) struct RetainedConfig {
    exports: Vec<ExportEntry>,
    imports: Vec<ImportEntry>,
    export_types: TypeSet,
    problems: Vec<ConfigError>,
}

impl RetainedConfig {
    pub(crate) fn is_empty(&self) -> bool {
        self.exports.is_empty() && self.imports.is_empty()
    }

    /// Adds `T`, exported as retained under `event_type` (see
    /// [`BridgeBuilder::export_retained`](crate::BridgeBuilder::export_retained)).
    pub(crate) fn export<T: Event + Serialize, C: Codec>(
        &mut self,
        event_type: String,
        codec: &Arc<C>,
    ) {
        if self.exports.iter().any(|e| e.type_id == TypeId::of::<T>()) {
            self.problems.push(ConfigError::DuplicateExport {
                rust_type: type_name::<T>(),
            });
        }
        let codec = Arc::clone(codec);
        self.exports.push(ExportEntry {
            event_type,
            rust_type: type_name::<T>(),
            type_id: TypeId::of::<T>(),
            encode: Box::new(move |event| match event.downcast_ref::<T>() {
                Some(event) => codec.encode(event),
                None => Err(crate::CodecError::new(format!(
                    "expected a {}, got an event of type {:?}",
                    type_name::<T>(),
                    event.event_type()
                ))),
            }),
        });
        self.export_types = std::mem::take(&mut self.export_types).with::<T>();
    }

    /// Adds `T`, imported as retained under `event_type` (see
    /// [`BridgeBuilder::import_retained`](crate::BridgeBuilder::import_retained)).
    pub(crate) fn import<T: Event + DeserializeOwned, C: Codec>(
        &mut self,
        event_type: String,
        codec: &Arc<C>,
    ) {
        if self.imports.iter().any(|i| i.event_type == event_type) {
            self.problems.push(ConfigError::DuplicateImport {
                event_type: event_type.clone(),
            });
        }
        let codec = Arc::clone(codec);
        self.imports.push(ImportEntry {
            event_type,
            rust_type: type_name::<T>(),
            type_id: TypeId::of::<T>(),
            decode: Box::new(move |bytes, trace| {
                Ok(Arc::new(decode_traced::<T, C>(&*codec, bytes, trace)?))
            }),
        });
    }

    /// The event types and Rust types configured, for the builder's checks.
    pub(crate) fn event_types(&self) -> impl Iterator<Item = (&'static str, &String)> {
        self.exports
            .iter()
            .map(|e| (e.rust_type, &e.event_type))
            .chain(self.imports.iter().map(|i| (i.rust_type, &i.event_type)))
    }

    /// Checks the retained types against each other and against the
    /// builder's other exports and imports.
    pub(crate) fn validate(
        &self,
        prefix: &str,
        exported: &[TypeId],
        imported: &[&str],
    ) -> Result<(), ConfigError> {
        if let Some(problem) = self.problems.first() {
            return Err(problem.clone());
        }
        for (rust_type, event_type) in self.event_types() {
            check_event_type(prefix, event_type).map_err(|reason| {
                ConfigError::InvalidEventType {
                    rust_type,
                    event_type: event_type.clone(),
                    reason,
                }
            })?;
            if !is_valid_key(event_type) {
                return Err(ConfigError::InvalidRetainedType {
                    rust_type,
                    event_type: event_type.clone(),
                    reason: "a retained event type is a key of the bucket: use only A-Z, a-z, \
                             0-9, '-', '_', '=', '/' and dots",
                });
            }
        }
        if let Some(entry) = self.exports.iter().find(|e| exported.contains(&e.type_id)) {
            return Err(ConfigError::DuplicateExport {
                rust_type: entry.rust_type,
            });
        }
        if let Some(entry) = self
            .imports
            .iter()
            .find(|i| imported.contains(&i.event_type.as_str()))
        {
            return Err(ConfigError::DuplicateImport {
                event_type: entry.event_type.clone(),
            });
        }
        Ok(())
    }
}

/// The counters of one retained event type, exported, imported or both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetainedCounts {
    /// Local events written to the bucket (each stored once).
    pub stored: u64,
    /// Attempts to write a local event or a tombstone that failed, each
    /// retried until it succeeded or the bridge stopped.
    pub store_failed: u64,
    /// Local events not written: imported by this bridge (not sent back),
    /// of another event type than configured, or not encodable.
    pub not_stored: u64,
    /// Local events still waiting to be written when the bridge stopped.
    pub abandoned: u64,
    /// Times the bus's retained event was written after the bridge's export
    /// queue had overflowed (events dropped by the bus, counted there), so
    /// that the bucket ends with the latest local state, not an older one.
    pub caught_up: u64,
    /// Tombstones this bridge wrote ([`Bridge::clear_retained`](crate::Bridge::clear_retained)).
    pub cleared_here: u64,
    /// Values published into the local bus at connect (the fleet's state).
    pub loaded: u64,
    /// Later values published into the local bus.
    pub updated: u64,
    /// Tombstones applied to the local bus (its copy cleared).
    pub cleared: u64,
    /// Values this bridge wrote itself and published again, because the
    /// local store showed an older value of another process that the
    /// server had stored before this one.
    pub reapplied: u64,
    /// Values that did not decode as the imported type: skipped, the local
    /// copy left as it was.
    pub undecodable: u64,
    /// Values whose trace context was not valid W3C Trace Context: applied
    /// without it.
    pub trace_invalid: u64,
}

/// The retained state's counters of a bridge: [`Bridge::retained_stats`](crate::Bridge::retained_stats).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetainedStats {
    /// The key-value bucket (`SB_RETAINED` for the prefix `sb`).
    pub bucket: String,
    /// Per retained event type.
    pub types: Vec<RetainedTypeStats>,
    /// How often the importer watched the bucket again after losing its
    /// consumer (a server restart, a lost connection, the bucket deleted).
    pub watch_restarts: u64,
    /// How often the bridge found the bucket gone and created it again.
    pub bucket_created_again: u64,
}

/// One retained event type's counters.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetainedTypeStats {
    /// The event type (the key).
    pub event_type: String,
    /// The Rust type exported or imported (the exported one if both).
    pub rust_type: &'static str,
    /// Whether this bridge exports it.
    pub exported: bool,
    /// Whether this bridge imports it.
    pub imported: bool,
    /// Its counters.
    pub counts: RetainedCounts,
}

impl fmt::Display for RetainedStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "retained in {}: watch restarts {}, bucket created again {}",
            self.bucket, self.watch_restarts, self.bucket_created_again
        )?;
        for t in &self.types {
            let c = &t.counts;
            writeln!(
                f,
                "  {} ({}{}): stored {}, store failed {}, not stored {}, abandoned {}, caught up \
                 {}, cleared here {}, loaded {}, updated {}, cleared {}, reapplied {}, \
                 undecodable {}, trace invalid {}",
                t.event_type,
                if t.exported { "export" } else { "" },
                if t.imported { " import" } else { "" },
                c.stored,
                c.store_failed,
                c.not_stored,
                c.abandoned,
                c.caught_up,
                c.cleared_here,
                c.loaded,
                c.updated,
                c.cleared,
                c.reapplied,
                c.undecodable,
                c.trace_invalid
            )?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Counters {
    stored: AtomicU64,
    store_failed: AtomicU64,
    not_stored: AtomicU64,
    abandoned: AtomicU64,
    caught_up: AtomicU64,
    cleared_here: AtomicU64,
    loaded: AtomicU64,
    updated: AtomicU64,
    cleared: AtomicU64,
    reapplied: AtomicU64,
    undecodable: AtomicU64,
    trace_invalid: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> RetainedCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RetainedCounts {
            stored: get(&self.stored),
            store_failed: get(&self.store_failed),
            not_stored: get(&self.not_stored),
            abandoned: get(&self.abandoned),
            caught_up: get(&self.caught_up),
            cleared_here: get(&self.cleared_here),
            loaded: get(&self.loaded),
            updated: get(&self.updated),
            cleared: get(&self.cleared),
            reapplied: get(&self.reapplied),
            undecodable: get(&self.undecodable),
            trace_invalid: get(&self.trace_invalid),
        }
    }
}

/// A retained event type at run time.
struct Key {
    event_type: String,
    subject: String,
    rust_type: &'static str,
    export: Option<(TypeId, EncodeFn)>,
    import: Option<(TypeId, DecodeFn)>,
    counters: Counters,
}

/// A write of this bridge instance: its id and the event, so the importer
/// can tell its own writes when they come back.
struct Written {
    id: String,
    event: Arc<dyn Event>,
}

/// A request to clear a key, sent to the exporter so that it is written
/// after the events already queued.
pub(crate) struct ClearRequest {
    key: usize,
    done: oneshot::Sender<Result<(), async_nats::Error>>,
}

/// What the retained tasks and the bridge's methods share.
pub(crate) struct Retained {
    bucket_name: String,
    /// The bucket's stream (`KV_{bucket}`).
    bucket: tokio::sync::Mutex<Stream>,
    context: async_nats::jetstream::Context,
    bucket_config: StreamConfig,
    keys: Vec<Key>,
    /// The exporter's run id: the ids of this instance's writes are `{run}.{seq}`.
    run: String,
    /// Per key, this instance's latest write.
    written: Mutex<HashMap<usize, Written>>,
    /// Events the importer published into the bus: not written back.
    imported: Imported,
    clears: Option<mpsc::UnboundedSender<ClearRequest>>,
    watch_restarts: AtomicU64,
    bucket_created_again: AtomicU64,
}

impl Retained {
    fn key_of_subject(&self, subject: &str) -> Option<usize> {
        self.keys.iter().position(|k| k.subject == subject)
    }

    fn key_of_type(&self, type_id: TypeId) -> Option<usize> {
        self.keys.iter().position(|k| {
            k.export.as_ref().map(|(id, _)| *id) == Some(type_id)
                || k.import.as_ref().map(|(id, _)| *id) == Some(type_id)
        })
    }

    pub(crate) fn stats(&self) -> RetainedStats {
        RetainedStats {
            bucket: self.bucket_name.clone(),
            types: self
                .keys
                .iter()
                .map(|k| RetainedTypeStats {
                    event_type: k.event_type.clone(),
                    rust_type: k.rust_type,
                    exported: k.export.is_some(),
                    imported: k.import.is_some(),
                    counts: k.counters.snapshot(),
                })
                .collect(),
            watch_restarts: self.watch_restarts.load(Ordering::Relaxed),
            bucket_created_again: self.bucket_created_again.load(Ordering::Relaxed),
        }
    }

    /// The bucket's stream, created if the server does not have it. The
    /// stream is created directly, not through async-nats' key-value API,
    /// which asks for account information that nats-server 2.9 does not
    /// give in the shape it expects.
    async fn open(
        context: &async_nats::jetstream::Context,
        config: &StreamConfig,
    ) -> Result<(Stream, bool), async_nats::Error> {
        if let Ok(stream) = context.get_stream(&config.name).await {
            return Ok((stream, false));
        }
        match context.create_stream(config.clone()).await {
            Ok(stream) => Ok((stream, true)),
            // Another bridge may have created it meanwhile.
            Err(error) => match context.get_stream(&config.name).await {
                Ok(stream) => Ok((stream, false)),
                Err(_) => Err(error.into()),
            },
        }
    }

    /// Opens the bucket again after an error that may mean it is gone.
    async fn reopen(&self) -> Result<(), async_nats::Error> {
        let (stream, created) = Self::open(&self.context, &self.bucket_config).await?;
        if created {
            warn_counted!(
                each: &self.bucket_created_again,
                bucket = %self.bucket_name,
                "switchboard-nats: the retained-state bucket was gone; created it again (empty)"
            );
        }
        *self.bucket.lock().await = stream;
        Ok(())
    }

    /// Writes a tombstone for `key`.
    async fn purge(&self, key: usize, source: &str) -> Result<(), async_nats::Error> {
        let entry = &self.keys[key];
        let mut headers = HeaderMap::new();
        headers.insert(KV_OPERATION, "PURGE");
        headers.insert("Nats-Rollup", "sub");
        headers.insert(cloudevents::SOURCE, source);
        headers.insert(cloudevents::TYPE, entry.event_type.as_str());
        self.context
            .publish_with_headers(entry.subject.clone(), headers, Bytes::new())
            .await?
            .await?;
        bump(&entry.counters.cleared_here);
        Ok(())
    }
}

/// Sets up the bucket, the exporter's bus subscription and the importer's
/// consumer, and loads the bucket's current values into the bus. Returns
/// the shared state and the tasks to spawn.
pub(crate) async fn start(
    shared: &Arc<Shared>,
    config: RetainedConfig,
) -> Result<Option<(Arc<Retained>, Vec<Task>)>, BridgeError> {
    if config.is_empty() {
        return Ok(None);
    }
    crate::jetstream::check(&shared.client).await?;
    let options = &shared.jetstream;
    let stream = options
        .stream
        .clone()
        .unwrap_or_else(|| default_stream_name(&shared.prefix));
    let bucket_name = bucket_name(&stream);
    // A key-value bucket as async-nats and the nats CLI lay one out
    // (`nats kv get SB_RETAINED routes.table` reads it).
    let bucket_config = StreamConfig {
        name: format!("KV_{bucket_name}"),
        description: Some(format!(
            "switchboard-nats: the latest retained event of each type under the prefix {}",
            shared.prefix
        )),
        subjects: vec![format!("$KV.{bucket_name}.>")],
        max_messages_per_subject: 1,
        storage: StorageType::File,
        num_replicas: options.replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: DiscardPolicy::New,
        ..Default::default()
    };
    let context = crate::jetstream::context(&shared.client, options);
    let failed =
        |what: String| move |source: async_nats::Error| BridgeError::JetStream { what, source };
    let (stream, _) = Retained::open(&context, &bucket_config)
        .await
        .map_err(failed(format!(
            "opening or creating the key-value bucket {bucket_name} of retained events \
             (stream KV_{bucket_name})"
        )))?;

    let mut keys: Vec<Key> = Vec::new();
    for entry in config.exports {
        keys.push(Key {
            subject: format!("$KV.{bucket_name}.{}", entry.event_type),
            event_type: entry.event_type,
            rust_type: entry.rust_type,
            export: Some((entry.type_id, entry.encode)),
            import: None,
            counters: Counters::default(),
        });
    }
    for entry in config.imports {
        match keys.iter_mut().find(|k| k.event_type == entry.event_type) {
            Some(key) => key.import = Some((entry.type_id, entry.decode)),
            None => keys.push(Key {
                subject: format!("$KV.{bucket_name}.{}", entry.event_type),
                event_type: entry.event_type,
                rust_type: entry.rust_type,
                export: None,
                import: Some((entry.type_id, entry.decode)),
                counters: Counters::default(),
            }),
        }
    }

    let subscription = if config.export_types.is_empty() {
        None
    } else {
        let options = SubscribeOptions::new(
            format!("nats-bridge:{}:export:retained", shared.name),
            ExportQueue::DEFAULT_CAPACITY,
        )
        .rust_types(config.export_types)
        // The bridge may start after the bus; that is intended.
        .leader_only();
        Some(
            shared
                .bus
                .subscribe_with(options)
                .map_err(BridgeError::Bus)?,
        )
    };
    let (clears, clear_requests) = if subscription.is_some() {
        let (sender, receiver) = mpsc::unbounded_channel();
        (Some(sender), Some(receiver))
    } else {
        (None, None)
    };
    let imports = keys.iter().any(|k| k.import.is_some());
    let retained = Arc::new(Retained {
        bucket_name: bucket_name.clone(),
        bucket: tokio::sync::Mutex::new(stream),
        context,
        bucket_config,
        keys,
        run: nuid::next().to_string(),
        written: Mutex::new(HashMap::new()),
        imported: Imported::default(),
        clears,
        watch_restarts: AtomicU64::new(0),
        bucket_created_again: AtomicU64::new(0),
    });

    let mut tasks = Vec::new();
    if imports {
        let mut importer = Importer::new(Arc::clone(shared), Arc::clone(&retained));
        let messages = importer.load().await.map_err(failed(format!(
            "loading the retained events of bucket {bucket_name} (consumer on stream \
             KV_{bucket_name})"
        )))?;
        tasks.push(Task::Import(Box::new((importer, messages))));
    }
    if let (Some(subscription), Some(requests)) = (subscription, clear_requests) {
        tasks.push(Task::Export(subscription, requests));
    }
    Ok(Some((retained, tasks)))
}

/// A task of the retained state, to spawn once the bridge runs.
pub(crate) enum Task {
    Import(Box<(Importer, Ordered)>),
    Export(Subscription, mpsc::UnboundedReceiver<ClearRequest>),
}

impl Task {
    pub(crate) async fn run(
        self,
        shared: Arc<Shared>,
        retained: Arc<Retained>,
        stopped: watch::Receiver<bool>,
    ) {
        match self {
            Task::Import(import) => {
                let (importer, messages) = *import;
                importer.run(messages, Stop::new(stopped)).await;
            }
            Task::Export(subscription, requests) => {
                Exporter {
                    shared,
                    retained,
                    seq: 0,
                }
                .run(subscription, requests, Stop::new(stopped))
                .await;
            }
        }
    }
}

/// The next wait of a retry schedule: 50 ms, doubling, at most [`MAX_RETRY_WAIT`].
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50)
        .saturating_mul(2u32.saturating_pow(attempt.min(8)))
        .min(MAX_RETRY_WAIT)
}

/// Writes the local events of the exported retained types to the bucket.
struct Exporter {
    shared: Arc<Shared>,
    retained: Arc<Retained>,
    seq: u64,
}

impl Exporter {
    async fn run(
        mut self,
        mut subscription: Subscription,
        mut requests: mpsc::UnboundedReceiver<ClearRequest>,
        mut stop: Stop,
    ) {
        loop {
            tokio::select! {
                biased;
                () = stop.requested() => break,
                request = requests.recv() => {
                    let Some(request) = request else { break };
                    // Events published before the clear was asked for are
                    // in the queue already: written first.
                    while let Ok(event) = subscription.try_recv() {
                        if !self.store(event, &mut stop).await {
                            break;
                        }
                    }
                    let result = self.clear(request.key, &mut stop).await;
                    let _ = request.done.send(result);
                }
                event = subscription.next() => {
                    let Some(event) = event else { break };
                    if !self.store(event, &mut stop).await {
                        break;
                    }
                    if subscription.is_empty()
                        && subscription.take_missed() > 0
                        && !self.catch_up(&mut stop).await
                    {
                        break;
                    }
                }
            }
        }
        while let Ok(event) = subscription.try_recv() {
            if let Some(key) = self.retained.key_of_type(type_id_of(&*event)) {
                bump(&self.retained.keys[key].counters.abandoned);
            }
        }
    }

    /// Writes `event` to its key, retrying until it is stored; false if the
    /// bridge stopped first (the event is counted as abandoned).
    async fn store(&mut self, event: Arc<dyn Event>, stop: &mut Stop) -> bool {
        let retained = Arc::clone(&self.retained);
        let Some(key) = retained.key_of_type(type_id_of(&*event)) else {
            return true;
        };
        let entry = &retained.keys[key];
        let Some((_, encode)) = &entry.export else {
            return true;
        };
        if retained.imported.take(&event) || event.event_type() != entry.event_type {
            bump(&entry.counters.not_stored);
            return true;
        }
        let payload = match encode(&*event) {
            Ok(payload) => Bytes::from(payload),
            Err(error) => {
                warn_counted!(
                    &entry.counters.not_stored,
                    bridge = %self.shared.name,
                    event_type = %entry.event_type,
                    %error,
                    "switchboard-nats: retained event not stored: the codec could not encode it"
                );
                return true;
            }
        };
        self.seq += 1;
        let id = event_id(&retained.run, self.seq);
        let mut headers = Outgoing {
            id: &id,
            event_type: &entry.event_type,
            source: &self.shared.name,
            time: event.timestamp(),
            content_type: &self.shared.content_type,
            ttl: None,
            trace: event.trace_context(),
        }
        .headers();
        headers.insert("Nats-Msg-Id", id.as_str());
        retained
            .written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                key,
                Written {
                    id: id.clone(),
                    event: Arc::clone(&event),
                },
            );
        let mut attempt = 0;
        loop {
            let sent = async {
                retained
                    .context
                    .publish_with_headers(entry.subject.clone(), headers.clone(), payload.clone())
                    .await?
                    .await
                    .map_err(async_nats::Error::from)
            };
            let Some(result) = stop.or(sent).await else {
                bump(&entry.counters.abandoned);
                return false;
            };
            match result {
                Ok(_) => {
                    bump(&entry.counters.stored);
                    return true;
                }
                Err(error) => {
                    if !self.failed(entry, &error, attempt, stop).await {
                        bump(&entry.counters.abandoned);
                        return false;
                    }
                    attempt += 1;
                }
            }
        }
    }

    /// After the bus dropped events of the queue (it was full, e.g. while
    /// the server was away), writes the bus's retained event of each
    /// exported type, which is the latest delivered: so the bucket does not
    /// keep an older state than the local one. False if the bridge stopped.
    async fn catch_up(&mut self, stop: &mut Stop) -> bool {
        let retained = Arc::clone(&self.retained);
        for (key, entry) in retained.keys.iter().enumerate() {
            let Some((type_id, _)) = &entry.export else {
                continue;
            };
            let Some(event) = self.shared.bus.retained_by_type(&entry.event_type) else {
                continue;
            };
            let written = retained
                .written
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&key)
                .is_some_and(|w| Arc::ptr_eq(&w.event, &event));
            if written || type_id_of(&*event) != *type_id {
                continue;
            }
            bump(&entry.counters.caught_up);
            if !self.store(event, stop).await {
                return false;
            }
        }
        true
    }

    /// Counts a failed write, waits, and looks for the bucket again (it may
    /// be gone); false if the bridge stopped meanwhile.
    async fn failed(
        &self,
        entry: &Key,
        error: &async_nats::Error,
        attempt: u32,
        stop: &mut Stop,
    ) -> bool {
        warn_counted!(
            &entry.counters.store_failed,
            bridge = %self.shared.name,
            event_type = %entry.event_type,
            %error,
            "switchboard-nats: writing retained state failed; retrying"
        );
        if stop
            .or(tokio::time::sleep(backoff(attempt)))
            .await
            .is_none()
        {
            return false;
        }
        if let Err(error) = self.retained.reopen().await {
            tracing::debug!(%error, "switchboard-nats: the retained-state bucket is not available");
        }
        true
    }

    /// Writes a tombstone for `key`, retrying until it is stored or the
    /// bridge stops.
    async fn clear(&self, key: usize, stop: &mut Stop) -> Result<(), async_nats::Error> {
        let entry = &self.retained.keys[key];
        let mut attempt = 0;
        loop {
            let error = match self.retained.purge(key, &self.shared.name).await {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            if attempt >= 4 || !self.failed(entry, &error, attempt, stop).await {
                return Err(error);
            }
            attempt += 1;
        }
    }
}

/// A key's value in the bucket: `None` for a tombstone.
type Value = Option<Arc<dyn Event>>;

/// What the importer last did to the local store for a key.
#[derive(Clone)]
enum Applied {
    Value(Arc<dyn Event>),
    Cleared,
}

/// Follows the bucket and applies it to the local bus.
pub(crate) struct Importer {
    shared: Arc<Shared>,
    retained: Arc<Retained>,
    /// Per key: the revision (stream sequence) last handled, and what was
    /// applied for it.
    state: HashMap<usize, (u64, Option<Applied>)>,
    /// When the stream the revisions belong to was created.
    stream_created: Option<time::OffsetDateTime>,
}

impl Importer {
    fn new(shared: Arc<Shared>, retained: Arc<Retained>) -> Self {
        Self {
            shared,
            retained,
            state: HashMap::new(),
            stream_created: None,
        }
    }

    /// Creates an ordered consumer delivering the last message of each key
    /// first; returns it with how many messages it has to deliver for
    /// those, and the bucket's last sequence when it was created.
    async fn watch(&mut self) -> Result<(Ordered, u64, u64), async_nats::Error> {
        let mut stream = self.retained.bucket.lock().await.clone();
        let info = stream.info().await?.clone();
        if self.stream_created != Some(info.created) {
            // A new bucket: its revisions start again.
            self.state.clear();
            self.stream_created = Some(info.created);
        }
        let consumer = stream
            .create_consumer(OrderedConfig {
                deliver_subject: self.shared.client.new_inbox(),
                description: Some(format!(
                    "switchboard-nats retained importer of bridge {}",
                    self.shared.name
                )),
                filter_subject: format!("$KV.{}.>", self.retained.bucket_name),
                deliver_policy: DeliverPolicy::LastPerSubject,
                replay_policy: ReplayPolicy::Instant,
                ..Default::default()
            })
            .await?;
        let pending = consumer.cached_info().num_pending;
        let messages = consumer.messages().await?;
        Ok((messages, pending, info.state.last_sequence))
    }

    /// Loads the bucket's current values into the bus (at connect), in the
    /// server's order; returns the consumer, which goes on with later writes.
    async fn load(&mut self) -> Result<Ordered, async_nats::Error> {
        let (mut messages, pending, last) = self.watch().await?;
        // Per key, its last message: published once all are in, so that
        // a tombstone among them never needs to clear a buffered event.
        let mut current: Vec<(usize, Value)> = Vec::new();
        if pending > 0 {
            loop {
                let message = tokio::time::timeout(LOAD_TIMEOUT, messages.next())
                    .await
                    .map_err(|_| {
                        format!("the bucket's values did not come within {LOAD_TIMEOUT:?}")
                    })?
                    .ok_or("the consumer ended")??;
                let info = message.info()?;
                let (sequence, remaining) = (info.stream_sequence, info.pending);
                if let Some((key, value)) = self.read(&message, sequence) {
                    current.retain(|(k, _)| *k != key);
                    current.push((key, value));
                }
                // Delivered in stream order: a message at or past the
                // bucket's last one at creation comes after all of them.
                if remaining == 0 || sequence >= last {
                    break;
                }
            }
        }
        let retained = Arc::clone(&self.retained);
        for (key, value) in current {
            let counters = &retained.keys[key].counters;
            match value {
                Some(event) => {
                    self.publish(key, event);
                    bump(&counters.loaded);
                }
                None => {
                    self.set_applied(key, Applied::Cleared);
                }
            }
        }
        Ok(messages)
    }

    /// Reads a message of the bucket: `None` if it is not for an imported
    /// key, already handled, or undecodable; else the key and its value
    /// (`None` for a tombstone). Records the revision.
    fn read(
        &mut self,
        message: &Message,
        sequence: u64,
    ) -> Option<(usize, Option<Arc<dyn Event>>)> {
        let key = self.retained.key_of_subject(message.subject.as_str())?;
        let entry = &self.retained.keys[key];
        let (_, decode) = entry.import.as_ref()?;
        let slot = self.state.entry(key).or_insert((0, None));
        if sequence <= slot.0 {
            return None;
        }
        slot.0 = sequence;
        let headers = message.headers.as_ref();
        let operation = headers
            .and_then(|h| h.get(KV_OPERATION))
            .map(|v| v.as_str().to_owned());
        if matches!(operation.as_deref(), Some("DEL" | "PURGE")) {
            return Some((key, None));
        }
        // The context the value was written with, if valid; an invalid one
        // is counted and the value applied without it, as an import does.
        let trace = Incoming::parse(headers)
            .ok()
            .map(|meta| meta.trace.resolve());
        if trace.as_ref().is_some_and(|trace| trace.invalid) {
            warn_counted!(
                &entry.counters.trace_invalid,
                bridge = %self.shared.name,
                event_type = %entry.event_type,
                "switchboard-nats: a retained value's trace context is not valid W3C Trace \
                 Context; applied without it"
            );
        }
        match decode(&message.payload, trace.and_then(|trace| trace.context)) {
            Ok(event) if event.event_type() == entry.event_type => Some((key, Some(event))),
            Ok(event) => {
                self.undecodable(key, &format!("it decodes as type {:?}", event.event_type()));
                None
            }
            Err(error) => {
                self.undecodable(key, &error.to_string());
                None
            }
        }
    }

    fn undecodable(&self, key: usize, why: &str) {
        let entry = &self.retained.keys[key];
        warn_counted!(
            &entry.counters.undecodable,
            bridge = %self.shared.name,
            event_type = %entry.event_type,
            why,
            "switchboard-nats: a retained value does not decode as the imported type; \
             skipped, the local copy is left as it was"
        );
    }

    fn set_applied(&mut self, key: usize, applied: Applied) {
        self.state.entry(key).or_insert((0, None)).1 = Some(applied);
    }

    /// Publishes `event` into the bus, retained, as an import.
    fn publish(&mut self, key: usize, event: Arc<dyn Event>) {
        self.retained.imported.insert(&event);
        self.shared.bus.publish_retained_arc(Arc::clone(&event));
        self.set_applied(key, Applied::Value(event));
    }

    /// Whether the local store shows what this importer last applied for
    /// `key` (nothing newer was published or cleared locally since).
    fn local_is_applied(&self, key: usize) -> bool {
        let local = self
            .shared
            .bus
            .retained_by_type(&self.retained.keys[key].event_type);
        match (self.state.get(&key).and_then(|s| s.1.as_ref()), local) {
            (Some(Applied::Value(applied)), Some(local)) => Arc::ptr_eq(applied, &local),
            (Some(Applied::Cleared), None) => true,
            _ => false,
        }
    }

    /// Applies a later write.
    fn apply(&mut self, message: &Message) {
        let Ok(info) = message.info() else {
            return;
        };
        let sequence = info.stream_sequence;
        let own = self.own_write(message);
        let Some((key, value)) = self.read(message, sequence) else {
            return;
        };
        let retained = Arc::clone(&self.retained);
        let counters = &retained.keys[key].counters;
        match (value, own) {
            (None, _) => {
                // Also before `start`: the bus then forgets a value buffered
                // for the replay too.
                self.shared
                    .bus
                    .clear_retained_by_type(&self.retained.keys[key].event_type);
                self.set_applied(key, Applied::Cleared);
                bump(&counters.cleared);
            }
            (Some(event), None) => {
                self.publish(key, event);
                bump(&counters.updated);
            }
            (Some(_), Some(mine)) => {
                // Published here already. Only if the local store still
                // shows an older write of another process, that the server
                // stored before this one, is it published again, so that
                // every process ends with the server's latest.
                if let Some(mine) = mine {
                    let local = self
                        .shared
                        .bus
                        .retained_by_type(&self.retained.keys[key].event_type);
                    let in_sync = local.is_some_and(|local| Arc::ptr_eq(&local, &mine));
                    if !in_sync && self.local_is_applied(key) {
                        self.publish(key, mine);
                        bump(&counters.reapplied);
                        return;
                    }
                    self.set_applied(key, Applied::Value(mine));
                }
            }
        }
    }

    /// Whether `message` is a write of this bridge instance: `Some(Some(event))`
    /// for its latest write of the key, `Some(None)` for an earlier one.
    #[allow(clippy::option_option)]
    fn own_write(&self, message: &Message) -> Option<Option<Arc<dyn Event>>> {
        let headers = message.headers.as_ref()?;
        let id = headers.get(cloudevents::ID)?.as_str();
        let (run, _) = id.rsplit_once('.')?;
        if run != self.retained.run
            || headers.get(cloudevents::SOURCE)?.as_str() != self.shared.name
        {
            return None;
        }
        let key = self.retained.key_of_subject(message.subject.as_str())?;
        let written = self
            .retained
            .written
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Some(
            written
                .get(&key)
                .filter(|w| w.id == id)
                .map(|w| Arc::clone(&w.event)),
        )
    }

    async fn run(mut self, mut messages: Ordered, mut stop: Stop) {
        let mut attempt = 0;
        loop {
            let Some(next) = stop.next(&mut messages).await else {
                return;
            };
            match next {
                Some(Ok(message)) => {
                    attempt = 0;
                    self.apply(&message);
                }
                failure => {
                    if let Some(Err(error)) = &failure {
                        tracing::warn!(
                            bridge = %self.shared.name,
                            %error,
                            "switchboard-nats: lost the retained-state consumer; watching again"
                        );
                    }
                    // Watch again until it works: the bucket may be gone
                    // (created again, empty) or the server away.
                    loop {
                        if stop
                            .or(tokio::time::sleep(backoff(attempt)))
                            .await
                            .is_none()
                        {
                            return;
                        }
                        attempt += 1;
                        bump(&self.retained.watch_restarts);
                        let watched = match self.retained.reopen().await {
                            Ok(()) => self.watch().await,
                            Err(error) => Err(error),
                        };
                        match watched {
                            Ok((fresh, _, _)) => {
                                messages = fresh;
                                break;
                            }
                            Err(error) => tracing::debug!(
                                %error,
                                "switchboard-nats: watching the retained-state bucket failed"
                            ),
                        }
                    }
                }
            }
        }
    }
}

impl Retained {
    /// Writes a tombstone for the retained type `type_id` (see
    /// [`Bridge::clear_retained`](crate::Bridge::clear_retained)); whether
    /// the local copy is left for the caller to clear (the bridge does not
    /// import the type, so no tombstone comes back to clear it).
    pub(crate) async fn clear(
        &self,
        type_id: TypeId,
        rust_type: &'static str,
        source: &str,
    ) -> Result<bool, BridgeError> {
        let not_retained = || BridgeError::Config(ConfigError::NotRetained { rust_type });
        let key = self.key_of_type(type_id).ok_or_else(not_retained)?;
        let entry = &self.keys[key];
        let failed = |source| BridgeError::JetStream {
            what: format!(
                "writing the tombstone of {} to bucket {}",
                entry.event_type, self.bucket_name
            ),
            source,
        };
        let exported = entry.export.as_ref().is_some_and(|(id, _)| *id == type_id);
        match (&self.clears, exported) {
            (Some(clears), true) => {
                let (done, result) = oneshot::channel();
                clears
                    .send(ClearRequest { key, done })
                    .map_err(|_| failed("the bridge has stopped".into()))?;
                result
                    .await
                    .map_err(|_| failed("the bridge has stopped".into()))?
                    .map_err(failed)?;
            }
            _ => self.purge(key, source).await.map_err(failed)?,
        }
        Ok(entry.import.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(is_valid_key("routes.table"));
        assert!(is_valid_key("a-b_c=d/e"));
        assert!(!is_valid_key("routes:table"));
        assert!(!is_valid_key("ünï"));
        assert!(!is_valid_key(".a"));
        assert_eq!(bucket_name("SB"), "SB_RETAINED");
    }

    #[test]
    fn backoff_grows_to_its_bound() {
        assert_eq!(backoff(0), Duration::from_millis(50));
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(30), MAX_RETRY_WAIT);
    }
}
