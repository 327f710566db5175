//! At-least-once messages whose events are in the bus but not complete yet:
//! each waits, unacknowledged, until every critical subscriber that
//! received its event has finished with it, while the importer goes on
//! with later messages.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_nats::jetstream;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use switchboard::{Completed, Completion};

use crate::types::ImportType;

/// A message whose event is in the bus.
pub(super) struct InBus {
    /// The delivery to acknowledge; `None` for a message read back through
    /// the message API (the server gave up on it: nothing to acknowledge).
    pub message: Option<Box<jetstream::Message>>,
    pub entry: Arc<ImportType>,
    /// The event's identity, forgotten if a subscriber abandons it.
    pub identity: Identity,
}

impl InBus {
    pub(super) fn new(
        message: Option<Box<jetstream::Message>>,
        entry: Arc<ImportType>,
        identity: Identity,
    ) -> Self {
        Self {
            message,
            entry,
            identity,
        }
    }
}

/// An imported event's (`ce-source`, `ce-id`), owned: the message it came
/// in is acknowledged, or turned back, long after it was parsed.
pub(super) struct Identity {
    pub source: String,
    pub id: String,
}

/// The messages in the bus, by stream sequence, and their completions.
#[derive(Default)]
pub(super) struct Pending {
    messages: BTreeMap<u64, InBus>,
    completions: FuturesUnordered<Tagged>,
}

impl Pending {
    /// Waits for `completion` of stream message `sequence`.
    pub(super) fn insert(&mut self, sequence: u64, in_bus: InBus, completion: Completion) {
        self.messages.insert(sequence, in_bus);
        self.completions.push(Tagged {
            sequence,
            completion,
        });
    }

    /// Whether stream message `sequence` is in the bus.
    pub(super) fn contains(&self, sequence: u64) -> bool {
        self.messages.contains_key(&sequence)
    }

    /// A redelivery of a message still in the bus (a lost in-progress mark,
    /// a consumer created again): the acknowledgement goes to the newest
    /// delivery. The message back if it is not in the bus.
    pub(super) fn redelivered(
        &mut self,
        sequence: u64,
        message: Box<jetstream::Message>,
    ) -> Result<(), Box<jetstream::Message>> {
        match self.messages.get_mut(&sequence) {
            Some(in_bus) => {
                in_bus.message = Some(message);
                Ok(())
            }
            None => Err(message),
        }
    }

    /// The next message whose event is complete; `None` when none is in the
    /// bus. Cancel-safe.
    pub(super) async fn next(&mut self) -> Option<(u64, InBus, Completed)> {
        loop {
            let (sequence, completed) = self.completions.next().await?;
            if let Some(in_bus) = self.messages.remove(&sequence) {
                return Some((sequence, in_bus, completed));
            }
        }
    }

    /// The deliveries waiting, in stream order.
    pub(super) fn deliveries(&self) -> impl Iterator<Item = &jetstream::Message> {
        self.messages
            .values()
            .filter_map(|in_bus| in_bus.message.as_deref())
    }

    /// Forgets everything (the stream is a new one: these messages will
    /// never be acknowledged).
    pub(super) fn clear(&mut self) {
        self.messages.clear();
        self.completions.clear();
    }
}

/// A completion and the stream sequence it is for.
struct Tagged {
    sequence: u64,
    completion: Completion,
}

impl Future for Tagged {
    type Output = (u64, Completed);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(u64, Completed)> {
        let sequence = self.sequence;
        Pin::new(&mut self.completion)
            .poll(cx)
            .map(|completed| (sequence, completed))
    }
}
