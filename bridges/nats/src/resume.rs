//! Opening an importer's durable consumer so that a restart resumes at the
//! first message its previous process did not acknowledge, in stream order,
//! whatever moment that process was killed at, the restart itself included.
//!
//! The server would redeliver unacknowledged messages only after
//! `ack_wait`, behind newer ones, breaking each publisher's order; so the
//! consumer is created again at the first of them. JetStream cannot move a
//! consumer's start: that takes a delete and a create, and a process killed
//! between the two would leave no consumer, so that the next start would
//! create a new one delivering only what is published from then on, losing
//! the messages in between. A placeholder consumer, `{durable}~resume` (a
//! name no bridge can take: `~` is not allowed in bridge or durable names),
//! holds the start sequence across the swap:
//!
//! 1. create the placeholder at the first unacknowledged sequence;
//! 2. delete the consumer;
//! 3. create the consumer at the placeholder's start;
//! 4. delete the placeholder.
//!
//! A start that finds the placeholder without the consumer was killed after
//! step 2 and goes on at step 3. One that finds both was killed after step 1
//! or step 3: it deletes the placeholder and looks at the consumer afresh.
//! The placeholder is never pulled from, so it holds no message.

use async_nats::jetstream::consumer::pull::Config as ConsumerConfig;
use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::stream::{ConsumerError, ConsumerErrorKind, Stream};
use async_nats::jetstream::ErrorCode;

/// The durable consumer `config` names, opened on `stream`, and its
/// acknowledgement floor (every stream sequence up to it was handled).
pub(crate) async fn open(
    stream: &Stream,
    config: &ConsumerConfig,
) -> Result<(PullConsumer, u64), async_nats::Error> {
    let durable = config
        .durable_name
        .clone()
        .expect("an importer's consumer is durable");
    let placeholder = placeholder_name(&durable);
    if let Some(found) = info_of(stream, &placeholder).await? {
        if let DeliverPolicy::ByStartSequence { start_sequence } = found.config.deliver_policy {
            if info_of(stream, &durable).await?.is_none() {
                // Killed after step 2: the placeholder is all that is left.
                let start = start_sequence.max(1);
                let consumer = create_at(stream, config, start).await?;
                delete(stream, &placeholder).await?;
                return Ok((consumer, start - 1));
            }
        }
        delete(stream, &placeholder).await?;
    }
    let mut consumer: PullConsumer = stream
        .get_or_create_consumer(&durable, config.clone())
        .await?;
    let info = consumer.info().await?;
    let floor = info.ack_floor.stream_sequence;
    if info.num_ack_pending == 0 {
        return Ok((consumer, floor));
    }
    let unacknowledged = info.num_ack_pending;
    let start = floor + 1;
    stream
        .create_consumer(placeholder_config(&placeholder, start))
        .await?;
    delete(stream, &durable).await?;
    consumer = create_at(stream, config, start).await?;
    delete(stream, &placeholder).await?;
    tracing::info!(
        durable = %durable,
        unacknowledged,
        resumed_at = start,
        "switchboard-nats: the durable consumer had messages its previous process did not \
         acknowledge; created again at the first of them, so they come first and in order"
    );
    Ok((consumer, floor))
}

/// The placeholder's name for the consumer `durable`.
fn placeholder_name(durable: &str) -> String {
    format!("{durable}~resume")
}

/// A consumer that only remembers `start`: never pulled from.
fn placeholder_config(name: &str, start: u64) -> ConsumerConfig {
    ConsumerConfig {
        durable_name: Some(name.to_owned()),
        description: Some(
            "switchboard-nats: where an importer's consumer resumes while it is created again"
                .to_owned(),
        ),
        ack_policy: AckPolicy::Explicit,
        deliver_policy: DeliverPolicy::ByStartSequence {
            start_sequence: start,
        },
        ..Default::default()
    }
}

async fn create_at(
    stream: &Stream,
    config: &ConsumerConfig,
    start: u64,
) -> Result<PullConsumer, async_nats::Error> {
    let mut config = config.clone();
    config.deliver_policy = DeliverPolicy::ByStartSequence {
        start_sequence: start,
    };
    Ok(stream.create_consumer(config).await?)
}

/// The consumer `name`'s description, if it exists.
async fn info_of(stream: &Stream, name: &str) -> Result<Option<consumer::Info>, async_nats::Error> {
    match stream.consumer_info(name).await {
        Ok(info) => Ok(Some(info)),
        Err(error) if matches!(error.kind(), ConsumerInfoErrorKind::NotFound) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Deletes the consumer `name`; one already gone is not an error.
async fn delete(stream: &Stream, name: &str) -> Result<(), async_nats::Error> {
    match stream.delete_consumer(name).await {
        Ok(_) => Ok(()),
        Err(error) if not_found(&error) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

fn not_found(error: &ConsumerError) -> bool {
    matches!(
        error.kind(),
        ConsumerErrorKind::JetStream(error) if error.error_code() == ErrorCode::CONSUMER_NOT_FOUND
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::is_plain_name;

    #[test]
    fn no_bridge_or_durable_name_is_a_placeholders() {
        let name = placeholder_name("replica-a");
        assert!(!is_plain_name(&name), "{name}");
    }
}
