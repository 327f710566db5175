//! The importers: messages from NATS checked, decoded and published into
//! the local bus.
//!
//! At-most-once types have one core subscription each, on their exact
//! subject, and publish into the bus as `publish` does: fire and forget, a
//! full subscriber drops (counted by the bus). At-least-once types share
//! the bridge's durable consumer, which reads the whole stream in order,
//! publishes with the waiting publish (a full critical subscriber slows the
//! consumer instead of dropping) and acknowledges each message once its
//! event is complete ([`durable`]); messages of other types are
//! acknowledged and skipped, messages that cannot be imported go to the
//! dead letters ([`crate::dead_letter`]).

mod check;
mod durable;
mod pending;

pub(crate) use durable::{run_jetstream, Reconnect};

use std::sync::Arc;

use async_nats::Subscriber;
use tokio::sync::watch;

use crate::shared::Shared;
use crate::stats::bump;
use crate::stop::Stop;
use crate::types::ImportType;
use check::{process, Memory, Verdict};

/// Imports one at-most-once type from its core subscription.
pub(crate) async fn run_core(
    shared: Arc<Shared>,
    entry: Arc<ImportType>,
    mut subscriber: Subscriber,
    stopped: watch::Receiver<bool>,
) {
    let mut memory = Memory::core(&shared);
    let mut stop = Stop::new(stopped);
    while let Some(Some(message)) = stop.next(&mut subscriber).await {
        // The subscription is on the exact subject; checked anyway, so that
        // nothing that arrived elsewhere can reach the bus.
        if message.subject.as_str() != entry.subject {
            bump(&shared.unrouted.outside_prefix);
            continue;
        }
        // Nothing is stored on core NATS: a rejected message was counted,
        // and that is all that can be done with it. An accepted one is
        // published fire-and-forget: nothing would deliver it again, so
        // waiting for room or completion would only slow the subscription
        // (whose overflow the client drops, counted as slow consumer).
        let verdict = process(
            &shared,
            &entry,
            &mut memory,
            message.headers.as_ref(),
            &message.payload,
            false,
        );
        if let Verdict::Import(accepted) = verdict {
            #[cfg(feature = "opentelemetry")]
            if let Some(span) = accepted.span {
                span.in_scope(|| shared.bus.publish_arc(accepted.event));
                continue;
            }
            shared.bus.publish_arc(accepted.event);
        }
    }
}
