//! The JetStream side of at-least-once delivery: one stream per prefix, one
//! durable pull consumer per importing bridge.
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
use crate::subject::{captures_prefix, default_stream_name};
use crate::types::ImportType;

/// What the bridge's JetStream tasks need.
pub(crate) struct JetStream {
    pub context: Context,
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

fn failed(what: String) -> impl FnOnce(async_nats::Error) -> BridgeError {
    move |source| BridgeError::JetStream { what, source }
}

/// Ensures the stream (creating it if missing) and, if the bridge imports
/// at-least-once types, its durable consumer.
pub(crate) async fn setup(
    client: &Client,
    prefix: &str,
    name: &str,
    options: &JetStreamOptions,
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
    let capture = format!("{prefix}.>");
    let stream = context
        .get_or_create_stream(StreamConfig {
            name: stream_name.clone(),
            subjects: vec![capture.clone()],
            storage: StorageType::File,
            num_replicas: options.replicas,
            max_age: options.max_age,
            duplicate_window: options.duplicate_window,
            ..Default::default()
        })
        .await
        .map_err(|error| {
            failed(format!("creating or looking up stream {stream_name}"))(error.into())
        })?;
    let subjects = &stream.cached_info().config.subjects;
    if !subjects.iter().any(|s| captures_prefix(s, prefix)) {
        return Err(BridgeError::JetStream {
            what: format!("checking stream {stream_name}"),
            source: format!(
                "the existing stream captures {subjects:?}, not {capture}: add {capture} to its \
                 subjects, or give the bridge another stream name"
            )
            .into(),
        });
    }

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
            .map_err(|error| {
                failed(format!(
                    "creating or looking up consumer {durable} on {stream_name}"
                ))(error.into())
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
    Ok(JetStream { context, consumer })
}
