//! Exporting a bridge's counters to Prometheus (feature `prometheus`).
//!
//! [`BridgeCollector`] is a [`prometheus_client`] collector: register it
//! once, and every scrape reads [`Bridge::stats`] at that moment. Each
//! family carries every counter of its part of [`BridgeStats`],
//! named by the `counter` label after the field (see the field's docs):
//!
//! | metric | type | labels | counters |
//! |---|---|---|---|
//! | `switchboard_nats_export_total` | counter | `event_type`, `counter` | [`ExportCounts`](crate::ExportCounts) |
//! | `switchboard_nats_import_total` | counter | `event_type`, `counter` | [`ImportCounts`](crate::ImportCounts), `dead_lettered` among them |
//! | `switchboard_nats_export_queue_dropped_total` | counter | `delivery` | [`QueueStats::dropped`](crate::QueueStats::dropped) |
//! | `switchboard_nats_export_queued` | gauge | `delivery` | [`QueueStats::queued`](crate::QueueStats::queued) |
//! | `switchboard_nats_unrouted_total` | counter | `counter` | [`UnroutedCounts`](crate::UnroutedCounts) |
//! | `switchboard_nats_consumer_total` | counter | `counter` | [`ConsumerCounts`](crate::ConsumerCounts) |
//! | `switchboard_nats_requests_total` | counter | `counter` | [`RequestCounts`](crate::RequestCounts) |
//! | `switchboard_nats_client_total` | counter | `counter` | [`ClientCounts`](crate::ClientCounts), but `stopped_for_good` |
//! | `switchboard_nats_client_stopped_for_good` | gauge (0 or 1) | | [`ClientCounts::stopped_for_good`](crate::ClientCounts::stopped_for_good) |
//!
//! Every family also has the label `bridge`, the bridge's name. Event types
//! are the configured ones, so the label's cardinality is what the
//! configuration makes it.
//!
//! ```no_run
//! # async fn run(bridge: switchboard_nats::Bridge) {
//! use prometheus_client::registry::Registry;
//! use switchboard_nats::prometheus::BridgeCollector;
//!
//! let mut registry = Registry::default();
//! registry.register_collector(Box::new(BridgeCollector::new(&bridge)));
//! # }
//! ```

use std::fmt;
use std::sync::{Arc, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::bridge::Bridge;
use crate::shared::Shared;
use crate::stats::BridgeStats;

/// Reads a bridge's counters on every scrape; see the [module](self).
///
/// It holds the bridge's state weakly: once the bridge is dropped it
/// reports nothing.
pub struct BridgeCollector {
    shared: Weak<Shared>,
}

impl fmt::Debug for BridgeCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BridgeCollector").finish_non_exhaustive()
    }
}

impl BridgeCollector {
    /// A collector of `bridge`'s counters.
    pub fn new(bridge: &Bridge) -> Self {
        Self {
            shared: Arc::downgrade(bridge.shared()),
        }
    }
}

/// The labels of one sample.
type Labels<'a> = Vec<(&'static str, &'a str)>;

impl Collector for BridgeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let Some(shared) = self.shared.upgrade() else {
            return Ok(());
        };
        let stats = shared.stats();
        encode(&mut encoder, &stats)
    }
}

fn encode(encoder: &mut DescriptorEncoder<'_>, stats: &BridgeStats) -> fmt::Result {
    let bridge = stats.name.as_str();
    let exports = by_type(
        bridge,
        stats
            .exports
            .iter()
            .map(|s| (s.event_type.as_str(), s.counts.fields())),
    );
    family(
        encoder,
        "switchboard_nats_export",
        "What happened to the local events of each exported type.",
        &exports,
        ConstCounter::new,
    )?;
    let imports = by_type(
        bridge,
        stats
            .imports
            .iter()
            .map(|s| (s.event_type.as_str(), s.counts.fields())),
    );
    family(
        encoder,
        "switchboard_nats_import",
        "What happened to the messages of each imported type.",
        &imports,
        ConstCounter::new,
    )?;
    let queues = |value: fn(&crate::QueueStats) -> u64| -> Vec<(Labels<'_>, u64)> {
        stats
            .queues
            .iter()
            .map(|q| {
                let delivery = match q.delivery {
                    crate::Delivery::AtMostOnce => "at-most-once",
                    crate::Delivery::AtLeastOnce => "at-least-once",
                };
                (vec![("bridge", bridge), ("delivery", delivery)], value(q))
            })
            .collect()
    };
    family(
        encoder,
        "switchboard_nats_export_queue_dropped",
        "Events the bus could not queue for export: the bridge's local drops.",
        &queues(|q| q.dropped),
        ConstCounter::new,
    )?;
    family(
        encoder,
        "switchboard_nats_export_queued",
        "Events waiting in the bridge's export queue now.",
        &queues(|q| q.queued as u64),
        ConstGauge::new,
    )?;
    let mut client = stats.client.fields();
    let stopped_for_good = client
        .iter()
        .position(|(name, _)| *name == "stopped_for_good")
        .map_or(0, |index| client.remove(index).1);
    for (name, help, rows) in [
        (
            "switchboard_nats_unrouted",
            "Messages that reached the bridge but belong to no imported type.",
            stats.unrouted.fields(),
        ),
        (
            "switchboard_nats_consumer",
            "The at-least-once importer's durable consumer, and the streams: what the server forgot or gave up on.",
            stats.consumer.fields(),
        ),
        (
            "switchboard_nats_requests",
            "Scatter-gather requests across processes, on both sides.",
            stats.requests.fields(),
        ),
        (
            "switchboard_nats_client",
            "The bridge's NATS connections.",
            client,
        ),
    ] {
        let samples: Vec<(Labels<'_>, u64)> = rows
            .into_iter()
            .map(|(counter, value)| (vec![("bridge", bridge), ("counter", counter)], value))
            .collect();
        family(encoder, name, help, &samples, ConstCounter::new)?;
    }
    family(
        encoder,
        "switchboard_nats_client_stopped_for_good",
        "1 once the main NATS client has stopped for good: drop the bridge and connect a new one.",
        &[(vec![("bridge", bridge)], stopped_for_good)],
        ConstGauge::new,
    )
}

/// One sample per counter of each type, from `(event_type, counters)`.
fn by_type<'a>(
    bridge: &'a str,
    types: impl Iterator<Item = (&'a str, Vec<(&'static str, u64)>)>,
) -> Vec<(Labels<'a>, u64)> {
    types
        .flat_map(|(event_type, counters)| {
            counters.into_iter().map(move |(counter, value)| {
                (
                    vec![
                        ("bridge", bridge),
                        ("event_type", event_type),
                        ("counter", counter),
                    ],
                    value,
                )
            })
        })
        .collect()
}

/// One metric family, each sample made into a metric by `metric`.
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: &[(L, u64)],
    metric: fn(u64) -> M,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, metric(0).metric_type())?;
    for (labels, value) in samples {
        metric(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}
