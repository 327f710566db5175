//! Exporting the bus's counters to Prometheus (feature `prometheus`).
//!
//! [`BusCollector`] is a [`prometheus_client`] collector: register it once,
//! and every scrape reads [`EventBus::stats`] at that moment. Nothing is added
//! to the publish path; the bus counts what it counts anyway.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `switchboard_events_published_total` | counter | |
//! | `switchboard_events_dropped_total` | counter | `reason`: `critical`, `observability`, `pre_start` |
//! | `switchboard_subscribers` | gauge | |
//! | `switchboard_pre_start_buffered` | gauge | |
//! | `switchboard_retained_events` | gauge | |
//! | `switchboard_running` | gauge (0 or 1) | |
//! | `switchboard_subscriber_delivered_total` | counter | `subscriber` |
//! | `switchboard_subscriber_dropped_total` | counter | `subscriber`, `reason`: `critical`, `observability` |
//! | `switchboard_subscriber_queued` | gauge | `subscriber` |
//! | `switchboard_subscriber_capacity` | gauge | `subscriber` |
//! | `switchboard_requests_total` | counter | `outcome`: `answered`, `timed_out`, `cancelled`, `no_responders` |
//! | `switchboard_responses_discarded_total` | counter | `reason`: `late`, `ignored` |
//!
//! Labels stay low-cardinality: subscribers are labelled by name, not id, and
//! subscriptions sharing a name are summed (capacities too). The crate's own
//! routes for request responses are left out of the per-subscriber metrics.
//! A subscriber's series ends when it unsubscribes; the bus totals keep
//! counting. Because same-named subscriptions are summed, a per-subscriber
//! counter goes down when one of them leaves, which `rate()` reads as a
//! counter reset: give subscriptions whose rates you graph unique names. To export several buses, register each collector in a
//! sub-registry with a label of your own (`Registry::sub_registry_with_label`).
//!
//! ```
//! use prometheus_client::encoding::text::encode;
//! use prometheus_client::registry::Registry;
//! use switchboard::prometheus::BusCollector;
//! use switchboard::{Event, EventBus, Timestamp};
//!
//! #[derive(Event)]
//! struct Ping { timestamp: Timestamp }
//!
//! let bus = EventBus::new();
//! let _audit = bus.subscribe("audit", 8).unwrap();
//! bus.start();
//! bus.publish(Ping { timestamp: Timestamp::now() });
//!
//! let mut registry = Registry::default();
//! registry.register_collector(Box::new(BusCollector::new(&bus)));
//! let mut text = String::new();
//! encode(&mut text, &registry).unwrap();
//! assert!(text.contains("switchboard_events_published_total 1"));
//! assert!(text.contains(r#"switchboard_subscriber_queued{subscriber="audit"} 1"#));
//! ```

use std::collections::BTreeMap;
use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::bus::{EventBus, WeakEventBus};
use crate::stats::{BusStats, SubscriberKind};

/// Reads a bus's counters on every scrape; see the [module](self).
///
/// It holds the bus weakly: it does not keep the bus alive, and once the bus
/// is gone it reports nothing.
#[derive(Debug)]
pub struct BusCollector {
    bus: WeakEventBus,
}

impl BusCollector {
    /// A collector of `bus`'s counters.
    pub fn new(bus: &EventBus) -> Self {
        Self {
            bus: bus.downgrade(),
        }
    }
}

/// One subscriber name's counters, summed over the subscriptions with it.
#[derive(Default)]
struct ByName {
    delivered: u64,
    dropped: u64,
    lossy: bool,
    queued: u64,
    capacity: u64,
}

impl Collector for BusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let Some(bus) = self.bus.upgrade() else {
            return Ok(());
        };
        let stats = bus.stats();
        encode_bus(&mut encoder, &stats)?;
        encode_subscribers(&mut encoder, &stats)?;
        encode_requests(&mut encoder, &stats)
    }
}

fn encode_bus(encoder: &mut DescriptorEncoder<'_>, stats: &BusStats) -> fmt::Result {
    counter(
        encoder,
        "switchboard_events_published",
        "Events published on the bus, buffered ones included.",
        stats.published,
    )?;
    counters(
        encoder,
        "switchboard_events_dropped",
        "Events dropped: missed by critical or observability (lossy) subscribers whose buffer was full, or by the full pre-start buffer.",
        &[
            ([("reason", "critical")], stats.dropped_critical),
            ([("reason", "observability")], stats.dropped_observability),
            ([("reason", "pre_start")], stats.dropped_pre_start),
        ],
    )?;
    gauge(
        encoder,
        "switchboard_subscribers",
        "Subscriptions on the bus now.",
        stats.subscriber_count() as u64,
    )?;
    gauge(
        encoder,
        "switchboard_pre_start_buffered",
        "Events waiting in the pre-start buffer for start().",
        stats.pre_start_len as u64,
    )?;
    gauge(
        encoder,
        "switchboard_retained_events",
        "Retained events: the latest retained event of each type.",
        stats.retained as u64,
    )?;
    gauge(
        encoder,
        "switchboard_running",
        "1 if the bus delivers directly, 0 while it buffers.",
        u64::from(stats.running),
    )
}

fn encode_subscribers(encoder: &mut DescriptorEncoder<'_>, stats: &BusStats) -> fmt::Result {
    let mut by_name: BTreeMap<&str, ByName> = BTreeMap::new();
    for subscriber in stats
        .subscribers
        .iter()
        .filter(|s| s.kind != SubscriberKind::Route)
    {
        let entry = by_name.entry(&subscriber.name).or_default();
        entry.delivered += subscriber.delivered;
        entry.dropped += subscriber.dropped;
        entry.lossy |= subscriber.lossy;
        entry.queued += subscriber.queued as u64;
        entry.capacity += subscriber.capacity as u64;
    }
    let labelled = |value: fn(&ByName) -> u64| -> Vec<([(&str, &str); 1], u64)> {
        by_name
            .iter()
            .map(|(name, counts)| ([("subscriber", *name)], value(counts)))
            .collect()
    };
    counters(
        encoder,
        "switchboard_subscriber_delivered",
        "Events queued for the subscriber so far (received plus queued now).",
        &labelled(|c| c.delivered),
    )?;
    let dropped: Vec<([(&str, &str); 2], u64)> = by_name
        .iter()
        .map(|(name, counts)| {
            let reason = if counts.lossy {
                "observability"
            } else {
                "critical"
            };
            ([("subscriber", *name), ("reason", reason)], counts.dropped)
        })
        .collect();
    counters(
        encoder,
        "switchboard_subscriber_dropped",
        "Events the subscriber missed because its buffer was full.",
        &dropped,
    )?;
    gauges(
        encoder,
        "switchboard_subscriber_queued",
        "Events waiting in the subscriber's buffer now.",
        &labelled(|c| c.queued),
    )?;
    gauges(
        encoder,
        "switchboard_subscriber_capacity",
        "How many events the subscriber's buffer holds.",
        &labelled(|c| c.capacity),
    )
}

fn encode_requests(encoder: &mut DescriptorEncoder<'_>, stats: &BusStats) -> fmt::Result {
    let requests = &stats.requests;
    counters(
        encoder,
        "switchboard_requests",
        "Scatter-gather requests, by how they ended.",
        &[
            ([("outcome", "answered")], requests.answered),
            ([("outcome", "timed_out")], requests.timed_out),
            ([("outcome", "cancelled")], requests.cancelled),
            ([("outcome", "no_responders")], requests.no_responders),
        ],
    )?;
    counters(
        encoder,
        "switchboard_responses_discarded",
        "Responses no waiting request took: late (the request had ended) or ignored (an unexpected or repeated responder).",
        &[
            ([("reason", "late")], requests.late_responses),
            ([("reason", "ignored")], requests.ignored_responses),
        ],
    )
}

/// A counter without labels.
fn counter(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// A gauge without labels.
fn gauge(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// A counter family: one sample per label set.
fn counters<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: &[(L, u64)],
) -> fmt::Result {
    family(encoder, name, help, samples, ConstCounter::new)
}

/// A gauge family: one sample per label set.
fn gauges<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: &[(L, u64)],
) -> fmt::Result {
    family(encoder, name, help, samples, ConstGauge::new)
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
