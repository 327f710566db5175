//! The at-least-once exporter's window: up to
//! [`publish_window`](crate::JetStreamOptions::publish_window) events
//! published to JetStream whose acknowledgements have not come yet.
//!
//! Acknowledgements come in any order; events leave the window in the
//! order they were sent. A publish that failed (no acknowledgement within
//! `ack_timeout`, no stream, the connection lost) is sent again with the
//! same message id, so the stream stores it once, and before any event not
//! yet sent: while one waits for its retry, the exporter takes no new event.
//! After a retry the stream may hold an event behind later events of its
//! publisher; the importer puts them back in order from the numbers in
//! their ids, holding the later ones until it arrives.

use std::collections::VecDeque;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use tokio::time::Instant;

use crate::export::Prepared;
use crate::stats::bump;

/// The first retry of a failed publish waits this long...
const FIRST_RETRY: Duration = Duration::from_millis(50);
/// ...doubling up to this, until a publish is acknowledged again.
const MAX_RETRY: Duration = Duration::from_secs(2);

/// What became of a settled publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// The stream acknowledged it.
    Stored,
    /// It failed and waits to be sent again; `no_stream`: no stream
    /// captures its subject (add it again before the retry).
    Failed { no_stream: bool },
}

/// Whether a new event went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// In the window, under its number (sent, or failed and to be retried).
    Taken,
    /// Larger than the server's `max_payload`: never sent, no number taken.
    Oversized,
}

enum State {
    InFlight,
    Stored {
        duplicate: bool,
    },
    Failed,
    /// Found too large at a retry (the server's `max_payload` shrank):
    /// counted, and leaves the window with the next stored ones.
    Oversized,
}

struct Slot {
    prepared: Prepared,
    state: State,
    /// Failed attempts so far.
    failures: u64,
}

/// An acknowledgement future tagged with its slot's number.
struct Tagged {
    slot: u64,
    ack: Pin<Box<dyn Future<Output = Result<PublishAck, PublishError>> + Send>>,
}

impl Future for Tagged {
    type Output = (u64, Result<PublishAck, PublishError>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let slot = self.slot;
        self.ack.as_mut().poll(cx).map(|result| (slot, result))
    }
}

/// The events sent and not yet out of the window, in the order they were sent.
pub(crate) struct Window {
    bridge: String,
    slots: VecDeque<Slot>,
    /// The number of `slots[0]`; slot numbers only grow.
    first: u64,
    acks: FuturesUnordered<Tagged>,
    failed: usize,
    capacity: usize,
    /// When the failed publishes are sent again, and the wait after that.
    retry_at: Option<Instant>,
    wait: Duration,
}

impl Window {
    pub(crate) fn new(bridge: String, capacity: usize) -> Self {
        Self {
            bridge,
            slots: VecDeque::with_capacity(capacity),
            first: 0,
            acks: FuturesUnordered::new(),
            failed: 0,
            capacity,
            retry_at: None,
            wait: FIRST_RETRY,
        }
    }

    /// Whether a new event may be sent: the window has room and nothing
    /// waits for a retry.
    pub(crate) fn takes_new(&self) -> bool {
        self.slots.len() < self.capacity && self.failed == 0
    }

    /// When the failed publishes are due to be sent again (`None`: none waits).
    pub(crate) fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// Whether an acknowledgement is awaited.
    pub(crate) fn in_flight(&self) -> bool {
        !self.acks.is_empty()
    }

    /// Sends a new event.
    pub(crate) async fn send(
        &mut self,
        context: &async_nats::jetstream::Context,
        prepared: Prepared,
    ) -> Sent {
        let number = self.first + self.slots.len() as u64;
        match publish(context, &prepared).await {
            Ok(ack) => {
                self.acks.push(Tagged { slot: number, ack });
                self.slots.push_back(Slot {
                    prepared,
                    state: State::InFlight,
                    failures: 0,
                });
            }
            Err(error) if error.kind() == PublishErrorKind::MaxPayloadExceeded => {
                oversized(&self.bridge, &prepared, &error);
                return Sent::Oversized;
            }
            Err(error) => {
                let mut slot = Slot {
                    prepared,
                    state: State::InFlight,
                    failures: 0,
                };
                fail(&self.bridge, &mut self.failed, &mut slot, &error);
                self.slots.push_back(slot);
                self.schedule_retry();
            }
        }
        Sent::Taken
    }

    /// The next acknowledgement or failure of a publish in flight, settled,
    /// with the event's subject; `None` if none is in flight.
    pub(crate) async fn next_settled(&mut self) -> Option<(Settled, String)> {
        let (number, result) = self.acks.next().await?;
        let index = usize::try_from(number - self.first).expect("a slot in the window");
        let slot = &mut self.slots[index];
        let subject = slot.prepared.subject.clone();
        let settled = match result {
            Ok(ack) => {
                slot.state = State::Stored {
                    duplicate: ack.duplicate,
                };
                self.wait = FIRST_RETRY;
                Settled::Stored
            }
            Err(error) => {
                fail(&self.bridge, &mut self.failed, slot, &error);
                self.schedule_retry();
                Settled::Failed {
                    no_stream: error.kind() == PublishErrorKind::StreamNotFound,
                }
            }
        };
        self.release();
        Some((settled, subject))
    }

    /// Sends again, in order, every publish that failed.
    pub(crate) async fn retry(&mut self, context: &async_nats::jetstream::Context) {
        self.retry_at = None;
        for index in 0..self.slots.len() {
            if !matches!(self.slots[index].state, State::Failed) {
                continue;
            }
            self.failed -= 1;
            let number = self.first + index as u64;
            let result = publish(context, &self.slots[index].prepared).await;
            let slot = &mut self.slots[index];
            match result {
                Ok(ack) => {
                    slot.state = State::InFlight;
                    self.acks.push(Tagged { slot: number, ack });
                }
                Err(error) if error.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    oversized(&self.bridge, &slot.prepared, &error);
                    slot.state = State::Oversized;
                }
                Err(error) => fail(&self.bridge, &mut self.failed, slot, &error),
            }
        }
        self.schedule_retry();
        self.release();
    }

    /// Sets the time of the next retry, if a publish waits for one and no
    /// time is set; each retry waits twice as long as the one before.
    fn schedule_retry(&mut self) {
        if self.failed > 0 && self.retry_at.is_none() {
            self.retry_at = Some(Instant::now() + self.wait);
            self.wait = (self.wait * 2).min(MAX_RETRY);
        }
    }

    /// When the bridge stops: waits for the acknowledgements in flight
    /// (each bounded by the ack timeout: the event may be stored already,
    /// and then it counts as exported), then counts what is left as abandoned.
    pub(crate) async fn close(mut self) {
        while let Some((number, result)) = self.acks.next().await {
            let index = usize::try_from(number - self.first).expect("a slot in the window");
            self.slots[index].state = match result {
                Ok(ack) => State::Stored {
                    duplicate: ack.duplicate,
                },
                Err(_) => State::Failed,
            };
        }
        for slot in self.slots {
            let counters = &slot.prepared.entry.counters;
            match slot.state {
                State::Stored { duplicate } => stored(&self.bridge, &slot, duplicate),
                State::Oversized => {}
                State::InFlight | State::Failed => bump(&counters.abandoned),
            }
        }
    }

    /// Lets the settled events at the front of the window go, counting them.
    fn release(&mut self) {
        while let Some(front) = self.slots.front() {
            match front.state {
                State::Stored { duplicate } => stored(&self.bridge, front, duplicate),
                State::Oversized => {}
                State::InFlight | State::Failed => break,
            }
            self.slots.pop_front();
            self.first += 1;
        }
    }
}

/// Publishes `prepared` with its id as the message id; the acknowledgement
/// is awaited separately.
async fn publish(
    context: &async_nats::jetstream::Context,
    prepared: &Prepared,
) -> Result<Pin<Box<dyn Future<Output = Result<PublishAck, PublishError>> + Send>>, PublishError> {
    let message = PublishMessage::build()
        .headers(prepared.headers.clone())
        .payload(prepared.payload.clone())
        .message_id(&prepared.id);
    let ack = context
        .send_publish(prepared.subject.clone(), message)
        .await?;
    Ok(ack.into_future())
}

/// Records a failed attempt of `slot`, which now waits for its retry.
fn fail(bridge: &str, failed: &mut usize, slot: &mut Slot, error: &PublishError) {
    slot.state = State::Failed;
    slot.failures += 1;
    *failed += 1;
    bump(&slot.prepared.entry.counters.retries);
    if crate::export::log_now(slot.failures) {
        tracing::warn!(
            bridge = %bridge,
            event_type = %slot.prepared.entry.event_type,
            id = %slot.prepared.id,
            failures = slot.failures,
            %error,
            "switchboard-nats: at-least-once publish not acknowledged; retrying with the same \
             message id (new events wait for the retry; the importer restores the order)"
        );
    }
}

fn stored(bridge: &str, slot: &Slot, duplicate: bool) {
    let counters = &slot.prepared.entry.counters;
    bump(&counters.exported);
    if duplicate {
        bump(&counters.server_duplicates);
    }
    if slot.failures > 0 {
        tracing::info!(
            bridge = %bridge,
            event_type = %slot.prepared.entry.event_type,
            attempts = slot.failures + 1,
            "switchboard-nats: at-least-once event stored after retries"
        );
    }
}

fn oversized(bridge: &str, prepared: &Prepared, error: &PublishError) {
    bump(&prepared.entry.counters.oversized);
    tracing::warn!(
        bridge = %bridge,
        event_type = %prepared.entry.event_type,
        %error,
        "switchboard-nats: at-least-once event not published: larger than the server's max_payload"
    );
}
