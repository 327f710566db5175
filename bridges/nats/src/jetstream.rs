//! The JetStream side of at-least-once delivery: one stream per prefix, one
//! durable pull consumer per importing bridge.
//!
//! The stream captures the subjects of the at-least-once types only, not
//! all of `{prefix}.>`: at-most-once events and requests share the prefix,
//! and a stream capturing them would store the lossy traffic and answer
//! every request with an acknowledgement (so "no responders" could never be
//! detected). Each bridge adds the subjects of its at-least-once types to
//! the stream when it starts, and again if a publish finds none capturing
//! its subject.
//!
//! Only stream and consumer settings that nats-server 2.9 knows are used.

use std::sync::Arc;

use async_nats::jetstream::consumer::pull::Config as ConsumerConfig;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::ContextBuilder;
use async_nats::jetstream::stream::{Config as StreamConfig, StorageType, Stream};
use async_nats::jetstream::Context;
use async_nats::Client;

use crate::config::{Delivery, JetStreamOptions};
use crate::error::BridgeError;
use crate::subject::{default_stream_name, for_event_type, matches};
use crate::types::{ExportType, ImportType};

/// How often `ensure` re-reads and re-adds subjects that a concurrent
/// update of another bridge may have overwritten.
const ENSURE_ATTEMPTS: usize = 10;

/// The stream of a prefix, as this bridge would create it.
#[derive(Clone)]
pub(crate) struct StreamSpec {
    pub context: Context,
    pub config: StreamConfig,
}

impl StreamSpec {
    fn name(&self) -> &str {
        &self.config.name
    }

    /// Makes sure the stream exists and captures every subject of
    /// `subjects`, adding the missing ones to its configuration.
    ///
    /// Bridges starting at once may each read the subjects and write them
    /// back with only their own added; so each re-reads until it sees its
    /// subjects stored.
    pub(crate) async fn ensure(&self, subjects: &[String]) -> Result<Stream, async_nats::Error> {
        let mut last_error: Option<async_nats::Error> = None;
        for _ in 0..ENSURE_ATTEMPTS {
            let mut config = self.config.clone();
            config.subjects = subjects.to_vec();
            let stream = match self.context.get_or_create_stream(config).await {
                Ok(stream) => stream,
                Err(error) => {
                    last_error = Some(error.into());
                    continue;
                }
            };
            let existing = &stream.cached_info().config;
            let missing: Vec<&String> = subjects
                .iter()
                .filter(|subject| !existing.subjects.iter().any(|p| matches(p, subject)))
                .collect();
            if missing.is_empty() {
                return Ok(stream);
            }
            let mut updated = existing.clone();
            updated.subjects.extend(missing.into_iter().cloned());
            if let Err(error) = self.context.update_stream(updated).await {
                last_error = Some(error.into());
            }
        }
        Err(last_error.unwrap_or_else(|| {
            format!(
                "stream {} kept losing the subjects {subjects:?} to concurrent updates",
                self.name()
            )
            .into()
        }))
    }
}

/// What the bridge's JetStream tasks need.
pub(crate) struct JetStream {
    pub spec: StreamSpec,
    /// The importer's consumer, if the bridge imports at-least-once types.
    pub consumer: Option<Consumer>,
}

/// A durable consumer, with what it takes to create it again if it is
/// deleted while the bridge runs.
pub(crate) struct Consumer {
    pub stream: Stream,
    pub durable: String,
    pub config: ConsumerConfig,
    pub consumer: PullConsumer,
}

impl Consumer {
    /// Gets the consumer again, creating it if it no longer exists.
    pub(crate) async fn refresh(
        &mut self,
    ) -> Result<(), async_nats::jetstream::stream::ConsumerError> {
        self.consumer = self
            .stream
            .get_or_create_consumer(&self.durable, self.config.clone())
            .await?;
        Ok(())
    }
}

/// Ensures the stream (with the subjects of this bridge's at-least-once
/// types) and, if the bridge imports at-least-once types, its durable consumer.
pub(crate) async fn setup(
    client: &Client,
    prefix: &str,
    name: &str,
    options: &JetStreamOptions,
    exports: &[Arc<ExportType>],
    imports: &[Arc<ImportType>],
) -> Result<JetStream, BridgeError> {
    // The awaited publish acknowledgements use the context's timeout.
    let context = ContextBuilder::new()
        .timeout(options.ack_timeout)
        .build(client.clone());
    let stream_name = options
        .stream
        .clone()
        .unwrap_or_else(|| default_stream_name(prefix));
    let spec = StreamSpec {
        context,
        config: StreamConfig {
            name: stream_name.clone(),
            storage: StorageType::File,
            num_replicas: options.replicas,
            max_age: options.max_age,
            duplicate_window: options.duplicate_window,
            ..Default::default()
        },
    };
    let subjects: Vec<String> = exports
        .iter()
        .map(|e| (e.delivery, &e.event_type))
        .chain(imports.iter().map(|i| (i.delivery, &i.event_type)))
        .filter(|(delivery, _)| *delivery == Delivery::AtLeastOnce)
        .map(|(_, event_type)| for_event_type(prefix, event_type))
        .collect();
    let stream = spec
        .ensure(&subjects)
        .await
        .map_err(|source| BridgeError::JetStream {
            what: format!(
                "creating stream {stream_name} or adding the subjects {subjects:?} to it"
            ),
            source,
        })?;

    let imports_durably = imports.iter().any(|i| i.delivery == Delivery::AtLeastOnce);
    let consumer = if imports_durably {
        let durable = options.durable.clone().unwrap_or_else(|| name.to_owned());
        let config = ConsumerConfig {
            durable_name: Some(durable.clone()),
            description: Some(format!("switchboard-nats importer of bridge {name}")),
            ack_policy: AckPolicy::Explicit,
            ack_wait: options.ack_wait,
            max_ack_pending: options.max_ack_pending,
            // A new importer starts with what is published from now on, not
            // the stream's whole history; an existing one resumes where it was.
            deliver_policy: DeliverPolicy::New,
            ..Default::default()
        };
        let consumer = stream
            .get_or_create_consumer(&durable, config.clone())
            .await
            .map_err(|error| BridgeError::JetStream {
                what: format!("creating or looking up consumer {durable} on stream {stream_name}"),
                source: error.into(),
            })?;
        Some(Consumer {
            stream,
            durable,
            config,
            consumer,
        })
    } else {
        None
    };
    Ok(JetStream { spec, consumer })
}
