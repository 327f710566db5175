//! What the bridge's tasks share: its configuration, resolved; its
//! connections; its counters. Built once the bridge is connected, read by
//! every task and by the [`Bridge`](crate::Bridge)'s methods.

use std::any::TypeId;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_nats::Client;
use switchboard::EventBus;

use crate::client_events::{connection_counts, ClientEvents};
use crate::config::{Delivery, ExportQueue, JetStreamOptions};
use crate::dead_letter::DeadLetters;
use crate::echo::Imported;
use crate::pending_replies::PendingReplies;
use crate::stats::{
    BridgeStats, ClientCounts, ConsumerCounters, ExportStats, ImportStats, QueueStats,
    RequestCounters, UnroutedCounters,
};
use crate::types::{ExportType, ImportType, ServedType};

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
    pub consumer_counters: Arc<ConsumerCounters>,
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
    /// The export of the Rust type `type_id`, if it is exported.
    pub(crate) fn export_of(&self, type_id: TypeId) -> Option<&Arc<ExportType>> {
        self.exports.iter().find(|e| e.type_id == type_id)
    }

    /// A snapshot of the bridge's counters (see [`Bridge::stats`](crate::Bridge::stats)).
    pub(crate) fn stats(&self) -> BridgeStats {
        let bus_stats = self.bus.stats();
        let queues = self
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
            name: self.name.clone(),
            exports: self
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
            imports: self
                .imports
                .iter()
                .map(|i| ImportStats {
                    event_type: i.event_type.clone(),
                    rust_type: i.rust_type,
                    delivery: i.delivery,
                    counts: i.counters.snapshot(),
                })
                .collect(),
            unrouted: self.unrouted.snapshot(),
            requests: self.requests.snapshot(),
            client: self.client_counts(),
            consumer: self.consumer_counters.snapshot(),
        }
    }

    /// A snapshot of the connections' counters.
    fn client_counts(&self) -> ClientCounts {
        let stopped_for_good = self.client_stopped.load(Ordering::Relaxed);
        let (connects, disconnects) = connection_counts(&self.client);
        // A client that stopped for good still says it is connected.
        let disconnects = if stopped_for_good {
            connects
        } else {
            disconnects
        };
        let (consumer_connects, consumer_disconnects) = self
            .consumer_client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or((0, 0), |client| {
                self.consumer_events.connection_counts(client)
            });
        let counters = &self.client_events.counters;
        let consumer = &self.consumer_events.counters;
        ClientCounts {
            connects,
            disconnects,
            consumer_connects,
            consumer_disconnects,
            slow_consumer: counters.slow_consumer.load(Ordering::Relaxed)
                + consumer.slow_consumer.load(Ordering::Relaxed),
            server_errors: counters.server_errors.load(Ordering::Relaxed)
                + consumer.server_errors.load(Ordering::Relaxed),
            name_conflicts: self.name_conflicts.load(Ordering::Relaxed),
            stopped_for_good,
        }
    }
}
