//! The first step of a bridge's start, before anything is contacted: from
//! the builder's configuration to what the bridge will connect, subscribe
//! and spawn. Nothing here touches the network or the bus, so what a
//! configuration leads to is tested without a server.
//!
//! The next steps: [`connect`](crate::connect) opens the connections and
//! subscriptions the plan names, [`spawn`](crate::spawn) starts a task for
//! each of them.

use std::sync::Arc;

use switchboard::{EventBus, SubscribeOptions, TypeSet};

use crate::builder::BridgeBuilder;
use crate::codec::Codec;
use crate::config::{ConfigError, Delivery, ExportQueue, JetStreamOptions};
use crate::retained::RetainedConfig;
use crate::serve::done_subject;
use crate::subject::{default_stream_name, for_event_type};
use crate::types::{ExportType, ImportType, ServedType};

/// What a bridge will connect, subscribe and spawn.
pub(crate) struct Plan {
    pub bus: EventBus,
    pub name: String,
    pub prefix: String,
    /// What the codec writes, for the messages' `content-type`.
    pub content_type: String,
    /// The exported types, each with its subject and content mode.
    pub exports: Vec<Arc<ExportType>>,
    /// The imported types, each with its subject. The at-most-once ones
    /// get a core subscription and a task each; the at-least-once ones
    /// share the consumer.
    pub imports: Vec<Arc<ImportType>>,
    /// The served request types: a subscription to the requests and one to
    /// the done notices ([`Plan::done_subject`]) each, read by one task.
    pub served: Vec<(String, Arc<ServedType>)>,
    pub done_subject: String,
    /// The bus subscriptions that feed the exporters, one per delivery mode
    /// in use: an exporter task each.
    pub export_feeds: Vec<(Delivery, Feed)>,
    /// The bus subscription of the responses to served requests, read by
    /// one task; if the bridge serves requests.
    pub replies: Option<Feed>,
    /// The names the bridge holds on the prefix (see `presence`): its own,
    /// and its durable consumer's.
    pub presence_names: Vec<String>,
    /// The stream and consumer, if a type is at-least-once.
    pub jetstream: Option<JetStreamPlan>,
    pub jetstream_options: JetStreamOptions,
    pub max_import_bytes: usize,
    pub max_pending_requests: usize,
    /// The retained types: their bucket, consumer and tasks are worked out
    /// once the bridge is connected (`retained::start`).
    pub retained: RetainedConfig,
}

/// A bus subscription of the bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Feed {
    pub subscriber: String,
    pub queue: ExportQueue,
    pub types: TypeSet,
}

impl Feed {
    /// Its options: for the Rust types it carries, leader-only (the bridge
    /// may start after the bus; that is intended, not a late component).
    pub(crate) fn options(&self) -> SubscribeOptions {
        let options = SubscribeOptions::new(self.subscriber.clone(), self.queue.capacity)
            .rust_types(self.types.clone())
            .leader_only();
        if self.queue.lossy {
            options.lossy()
        } else {
            options
        }
    }
}

/// The JetStream side of a bridge with at-least-once types.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct JetStreamPlan {
    /// The prefix's stream.
    pub stream: String,
    /// The subjects of the bridge's at-least-once types, which the stream
    /// must capture.
    pub subjects: Vec<String>,
    /// The durable consumer, if the bridge imports at-least-once types: one
    /// task reads it, and the subject of the server's max-deliveries
    /// advisories about it.
    pub consumer: Option<(String, String)>,
    /// Whether the bridge creates the dead-letter stream at connect (it
    /// exports at-least-once: its importers need not be allowed to).
    pub dead_letters: bool,
}

impl Plan {
    /// The plan of `builder`'s bridge.
    ///
    /// # Errors
    ///
    /// What [`BridgeBuilder::validate`] finds.
    pub(crate) fn new<C: Codec>(builder: BridgeBuilder<C>) -> Result<Self, ConfigError> {
        builder.validate()?;
        let BridgeBuilder {
            bus,
            codec,
            name,
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
            retained,
            problems: _,
        } = builder;
        let name = name.unwrap_or_else(|| format!("sb-{}", nuid::next()));

        let export_feeds = [
            (Delivery::AtMostOnce, at_most_once_queue, at_most_once_types),
            (
                Delivery::AtLeastOnce,
                at_least_once_queue,
                at_least_once_types,
            ),
        ]
        .into_iter()
        .filter(|(_, _, types)| !types.is_empty())
        .map(|(delivery, queue, types)| {
            let subscriber = format!("nats-bridge:{name}:export:{delivery}");
            let feed = Feed {
                subscriber,
                queue,
                types,
            };
            (delivery, feed)
        })
        .collect();
        let replies = (!served.is_empty()).then(|| Feed {
            subscriber: format!("nats-bridge:{name}:replies"),
            queue: ExportQueue::critical(ExportQueue::DEFAULT_CAPACITY),
            types: response_types,
        });

        let exports: Vec<Arc<ExportType>> = exports
            .into_iter()
            .map(|mut entry| {
                entry.subject = for_event_type(&prefix, &entry.event_type).into();
                entry.mode.get_or_insert(content_mode);
                Arc::new(entry)
            })
            .collect();
        let imports: Vec<Arc<ImportType>> = imports
            .into_iter()
            .map(|mut entry| {
                entry.subject = for_event_type(&prefix, &entry.event_type);
                Arc::new(entry)
            })
            .collect();
        let served = served
            .into_iter()
            .map(|entry| {
                (
                    for_event_type(&prefix, &entry.request_type),
                    Arc::new(entry),
                )
            })
            .collect();

        let jetstream = jetstream_plan(&prefix, &name, &jetstream_options, &exports, &imports);
        let durable = jetstream
            .as_ref()
            .and_then(|js| js.consumer.as_ref())
            .map(|(durable, _)| durable.clone());
        // The durable defaults to the bridge's name: one announcement then.
        let presence_names = std::iter::once(name.clone())
            .chain(durable.filter(|durable| *durable != name))
            .collect();

        Ok(Self {
            bus,
            content_type: codec.content_type().to_owned(),
            done_subject: done_subject(&prefix),
            name,
            prefix,
            exports,
            imports,
            served,
            export_feeds,
            replies,
            presence_names,
            jetstream,
            jetstream_options,
            max_import_bytes,
            max_pending_requests,
            retained,
        })
    }
}

/// The stream and consumer of a bridge, if a type it exports or imports is
/// at-least-once.
fn jetstream_plan(
    prefix: &str,
    name: &str,
    options: &JetStreamOptions,
    exports: &[Arc<ExportType>],
    imports: &[Arc<ImportType>],
) -> Option<JetStreamPlan> {
    let durably = |delivery: Delivery| delivery == Delivery::AtLeastOnce;
    let exports_durably = exports.iter().any(|e| durably(e.delivery));
    let imports_durably = imports.iter().any(|i| durably(i.delivery));
    if !exports_durably && !imports_durably {
        return None;
    }
    let stream = options
        .stream
        .clone()
        .unwrap_or_else(|| default_stream_name(prefix));
    // Each subject once, in order: a type may be exported and imported.
    let mut subjects: Vec<String> = Vec::new();
    let durable_types = exports
        .iter()
        .map(|e| (e.delivery, &e.event_type))
        .chain(imports.iter().map(|i| (i.delivery, &i.event_type)))
        .filter(|(delivery, _)| durably(*delivery));
    for (_, event_type) in durable_types {
        let subject = for_event_type(prefix, event_type);
        if !subjects.contains(&subject) {
            subjects.push(subject);
        }
    }
    let consumer = imports_durably.then(|| {
        let durable = options.durable.clone().unwrap_or_else(|| name.to_owned());
        let advisories = format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{durable}");
        (durable, advisories)
    });
    Some(JetStreamPlan {
        stream,
        subjects,
        consumer,
        dead_letters: exports_durably,
    })
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use serde::{Deserialize, Serialize};
    use switchboard::{Event, EventBus, Request, Response, TypeSet};

    use super::*;
    use crate::codec::Json;
    use crate::config::ContentMode;

    #[derive(Event, Serialize, Deserialize)]
    #[event(type = "route.added")]
    struct RouteAdded {
        timestamp: SystemTime,
    }

    #[derive(Event, Serialize, Deserialize)]
    #[event(type = "metrics.sample")]
    struct Sample {
        timestamp: SystemTime,
    }

    fn builder(bus: &EventBus) -> BridgeBuilder {
        BridgeBuilder::new(bus, Json)
    }

    fn plan(builder: BridgeBuilder) -> Plan {
        Plan::new(builder).expect("a valid configuration")
    }

    #[test]
    fn each_type_gets_its_subject_once_and_exports_their_mode() {
        let bus = EventBus::new();
        let plan = plan(
            builder(&bus)
                .name("a")
                .prefix("fleet")
                .content_mode(ContentMode::Structured)
                .export::<RouteAdded>("route.added", Delivery::AtMostOnce)
                .export_with_mode::<Sample>(
                    "metrics.sample",
                    Delivery::AtMostOnce,
                    ContentMode::Binary,
                )
                .import::<RouteAdded>("route.added", Delivery::AtMostOnce),
        );
        let exports: Vec<_> = plan
            .exports
            .iter()
            .map(|e| (e.subject.as_str(), e.mode))
            .collect();
        assert_eq!(
            exports,
            [
                ("fleet.route.added", Some(ContentMode::Structured)),
                ("fleet.metrics.sample", Some(ContentMode::Binary)),
            ]
        );
        assert_eq!(plan.imports[0].subject, "fleet.route.added");
        assert!(plan.served.is_empty() && plan.replies.is_none());
        assert_eq!(plan.done_subject, "_sb.fleet.done");
    }

    #[test]
    fn one_feed_per_delivery_mode_in_use() {
        let bus = EventBus::new();
        let plan = plan(
            builder(&bus)
                .name("a")
                .export::<RouteAdded>("route.added", Delivery::AtMostOnce)
                .export::<Sample>("metrics.sample", Delivery::AtMostOnce)
                .export_queue(Delivery::AtMostOnce, ExportQueue::lossy(8)),
        );
        assert_eq!(
            plan.export_feeds,
            [(
                Delivery::AtMostOnce,
                Feed {
                    subscriber: "nats-bridge:a:export:at-most-once".to_owned(),
                    queue: ExportQueue::lossy(8),
                    types: TypeSet::new().with::<RouteAdded>().with::<Sample>(),
                }
            )]
        );
    }

    #[test]
    fn at_most_once_needs_no_jetstream() {
        let bus = EventBus::new();
        let plan = plan(
            builder(&bus)
                .export::<RouteAdded>("route.added", Delivery::AtMostOnce)
                .import::<Sample>("metrics.sample", Delivery::AtMostOnce),
        );
        assert_eq!(plan.jetstream, None);
        assert!(plan.name.starts_with("sb-"), "a random name: {}", plan.name);
        assert_eq!(plan.presence_names, std::slice::from_ref(&plan.name));
    }

    #[test]
    fn an_at_least_once_exporter_has_a_stream_and_dead_letters_but_no_consumer() {
        let bus = EventBus::new();
        let plan = plan(
            builder(&bus)
                .name("a")
                .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
                .export::<Sample>("metrics.sample", Delivery::AtMostOnce),
        );
        assert_eq!(
            plan.jetstream,
            Some(JetStreamPlan {
                stream: "SB".to_owned(),
                subjects: vec!["sb.route.added".to_owned()],
                consumer: None,
                dead_letters: true,
            })
        );
        assert_eq!(plan.export_feeds.len(), 2);
    }

    #[test]
    fn an_at_least_once_importer_has_a_durable_consumer_and_holds_its_name() {
        let bus = EventBus::new();
        let plan = plan(
            builder(&bus)
                .name("replica-0")
                .prefix("fleet")
                .import::<RouteAdded>("route.added", Delivery::AtLeastOnce)
                .jetstream(JetStreamOptions {
                    stream: Some("EVENTS".to_owned()),
                    durable: Some("routes".to_owned()),
                    ..JetStreamOptions::default()
                }),
        );
        let jetstream = plan.jetstream.expect("a stream");
        assert_eq!(jetstream.stream, "EVENTS");
        assert_eq!(jetstream.subjects, ["fleet.route.added"]);
        assert_eq!(
            jetstream.consumer,
            Some((
                "routes".to_owned(),
                "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.EVENTS.routes".to_owned()
            ))
        );
        assert!(!jetstream.dead_letters);
        assert!(plan.export_feeds.is_empty());
        assert_eq!(plan.presence_names, ["replica-0", "routes"]);
    }

    #[test]
    fn a_type_exported_and_imported_durably_is_one_subject_and_the_default_durable_one_name() {
        let bus = EventBus::new();
        let plan = plan(
            builder(&bus)
                .name("replica-0")
                .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
                .import::<RouteAdded>("route.added", Delivery::AtLeastOnce),
        );
        let jetstream = plan.jetstream.expect("a stream");
        assert_eq!(jetstream.subjects, ["sb.route.added"]);
        assert_eq!(
            jetstream.consumer.map(|(durable, _)| durable).as_deref(),
            Some("replica-0"),
            "the durable defaults to the bridge's name"
        );
        assert_eq!(plan.presence_names, ["replica-0"], "announced once");
    }

    #[derive(Event, Request, Serialize, Deserialize)]
    #[event(type = "route.check")]
    struct Check {
        request_id: String,
        timestamp: SystemTime,
    }

    #[derive(Event, Response, Serialize, Deserialize)]
    #[event(type = "route.checked")]
    struct Checked {
        request_id: String,
        responder: String,
        timestamp: SystemTime,
    }

    #[test]
    fn a_served_type_has_its_subject_and_the_responses_a_feed() {
        let bus = EventBus::new();
        let plan = plan(
            builder(&bus)
                .name("a")
                .serve::<Check, Checked>("route.check"),
        );
        assert_eq!(plan.served[0].0, "sb.route.check");
        assert_eq!(
            plan.replies,
            Some(Feed {
                subscriber: "nats-bridge:a:replies".to_owned(),
                queue: ExportQueue::critical(ExportQueue::DEFAULT_CAPACITY),
                types: TypeSet::new().with::<Checked>(),
            })
        );
        assert_eq!(plan.jetstream, None);
    }

    #[test]
    fn an_invalid_configuration_makes_no_plan() {
        let bus = EventBus::new();
        let error =
            Plan::new(builder(&bus).import::<RouteAdded>("route.added", Delivery::AtLeastOnce))
                .err();
        assert_eq!(error, Some(ConfigError::DurableNeedsName));
    }
}
