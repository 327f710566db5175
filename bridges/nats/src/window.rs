//! The at-least-once exporter's window: up to
//! [`publish_window`](crate::JetStreamOptions::publish_window) events
//! published to JetStream whose acknowledgements have not come yet.
//!
//! Acknowledgements come in any order; events leave the window in the
//! order they were sent. A publish that failed (no acknowledgement within
//! `ack_timeout`, no stream, an error from the stream) is sent again with
//! the same message id, so the stream stores it once, and before any event
//! not yet sent: while one waits for its retry, the exporter takes no new
//! event. After a retry the stream may hold an event behind later events
//! of its publisher; the importer puts them back in order from the numbers
//! in their ids, holding the later ones until it arrives.
//!
//! The window awaits the stream's acknowledgements itself, on one inbox
//! subscription (`{inbox}.{slot}.{attempt}`) and one timer for the oldest
//! publish, rather than through a future, a reply inbox and a timer per
//! publish: the bookkeeping per event is a slot in a ring.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use async_nats::client::PublishErrorKind;
use async_nats::{Client, HeaderMap, StatusCode, Subject, Subscriber};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::time::{Instant, Sleep};

use crate::prepared::Prepared;
use crate::stats::{bump, warn_counted};

/// The first retry of a failed publish waits this long...
const FIRST_RETRY: Duration = Duration::from_millis(50);
/// ...doubling up to this, until a publish is acknowledged again.
const MAX_RETRY: Duration = Duration::from_secs(2);

/// What became of a settled publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settled {
    /// The stream acknowledged it.
    Stored,
    /// It failed and waits to be sent again.
    Failed,
    /// No stream captures its subject: add it again before the retry.
    NoStream(Subject),
}

/// Whether a new event went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// In the window, under its number (sent, or failed and to be retried).
    Taken,
    /// Larger than the server's `max_payload`: never sent, no number taken.
    Oversized,
}

/// Why a publish was not acknowledged.
#[derive(Debug)]
enum Failure {
    TimedOut,
    NoStream,
    Rejected(String),
    NotSent(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::TimedOut => f.write_str("no acknowledgement within ack_timeout"),
            Failure::NoStream => f.write_str("no stream captures the subject"),
            Failure::Rejected(why) => write!(f, "the stream refused it: {why}"),
            Failure::NotSent(why) => write!(f, "not sent: {why}"),
        }
    }
}

/// A stream's answer to a publish.
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    duplicate: bool,
    error: Option<AnswerError>,
}

#[derive(Deserialize)]
struct AnswerError {
    #[serde(default)]
    description: String,
    #[serde(default)]
    code: u64,
}

enum State {
    /// Sent as attempt `attempt`; its answer is awaited.
    InFlight {
        attempt: u64,
    },
    Stored {
        duplicate: bool,
    },
    Failed,
    /// Found too large at a retry (the server's `max_payload` shrank):
    /// counted, and leaves the window with the next stored ones.
    Oversized,
}

struct Slot {
    /// Its headers are sent away with the first attempt, and made again
    /// from its template for a retry.
    prepared: Prepared,
    id: String,
    state: State,
    /// Failed attempts so far.
    failures: u64,
}

/// The events sent and not yet out of the window, in the order they were sent.
pub(crate) struct Window {
    bridge: String,
    client: Client,
    /// The acknowledgements' subject prefix, and its subscription.
    inbox: String,
    answers: Subscriber,
    answers_closed: bool,
    slots: VecDeque<Slot>,
    /// The number of `slots[0]`; slot numbers only grow.
    first: u64,
    /// Publishes awaiting their answer, (deadline, slot, attempt), in the
    /// order they were sent, which is the order of their deadlines; entries
    /// whose slot has moved on are skipped when they come up.
    deadlines: VecDeque<(Instant, u64, u64)>,
    in_flight: usize,
    failed: usize,
    capacity: usize,
    ack_timeout: Duration,
    /// Fires at the oldest publish's deadline; one timer, reset, rather
    /// than a new one per wait.
    timer: Pin<Box<Sleep>>,
    /// When the failed publishes are sent again, and the wait after that.
    retry_at: Option<Instant>,
    wait: Duration,
}

impl Window {
    pub(crate) async fn new(
        bridge: String,
        client: Client,
        capacity: usize,
        ack_timeout: Duration,
    ) -> Result<Self, async_nats::SubscribeError> {
        let inbox = client.new_inbox();
        let answers = client.subscribe(format!("{inbox}.>")).await?;
        Ok(Self {
            bridge,
            client,
            inbox,
            answers,
            answers_closed: false,
            slots: VecDeque::with_capacity(capacity),
            first: 0,
            deadlines: VecDeque::with_capacity(capacity),
            in_flight: 0,
            failed: 0,
            capacity,
            ack_timeout,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            retry_at: None,
            wait: FIRST_RETRY,
        })
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
        self.in_flight > 0
    }

    /// Sends a new event.
    pub(crate) async fn send(&mut self, prepared: Prepared) -> Sent {
        let number = self.first + self.slots.len() as u64;
        self.slots.push_back(Slot {
            id: prepared.message_id().to_owned(),
            prepared,
            state: State::Failed,
            failures: 0,
        });
        self.failed += 1;
        if self.attempt(number).await == Sent::Oversized {
            self.slots.pop_back();
            return Sent::Oversized;
        }
        Sent::Taken
    }

    /// The next answer or timeout of a publish in flight, settled.
    /// Cancel-safe: a slot changes only once its answer or its deadline has
    /// come.
    pub(crate) async fn next_settled(&mut self) -> Settled {
        loop {
            self.forget_settled_deadlines();
            let deadline = self.deadlines.front().map(|(at, _, _)| *at);
            if let Some(at) = deadline.filter(|at| *at != self.timer.deadline()) {
                self.timer.as_mut().reset(at);
            }
            let outcome = tokio::select! {
                answer = self.answers.next(), if !self.answers_closed => match answer {
                    Some(answer) => self.answered(&answer),
                    // The client was closed: the deadlines settle what is in flight.
                    None => {
                        self.answers_closed = true;
                        None
                    }
                },
                () = &mut self.timer, if deadline.is_some() => self.timed_out(),
            };
            if let Some(settled) = outcome {
                return settled;
            }
        }
    }

    /// Sends again, in order, every publish that failed.
    pub(crate) async fn retry(&mut self) {
        self.retry_at = None;
        for index in 0..self.slots.len() {
            if matches!(self.slots[index].state, State::Failed) {
                self.attempt(self.first + index as u64).await;
            }
        }
        self.schedule_retry();
        self.release();
    }

    /// When the bridge stops: waits for the answers in flight (at most
    /// `ack_timeout`: the event may be stored already, and then it counts
    /// as exported), then counts what is left as abandoned.
    pub(crate) async fn close(mut self) {
        while self.in_flight() {
            self.next_settled().await;
        }
        for slot in &self.slots {
            match slot.state {
                State::Stored { duplicate } => stored(&self.bridge, slot, duplicate),
                State::Oversized => {}
                State::InFlight { .. } | State::Failed => {
                    bump(&slot.prepared.entry.counters.abandoned);
                }
            }
        }
    }

    /// Publishes the failed slot `number` again, as its next attempt.
    async fn attempt(&mut self, number: u64) -> Sent {
        let index = self.index(number).expect("a slot in the window");
        let slot = &mut self.slots[index];
        let attempt = slot.failures;
        let prepared = &mut slot.prepared;
        let headers = if attempt == 0 {
            std::mem::replace(&mut prepared.headers, HeaderMap::new())
        } else {
            prepared
                .format
                .headers(slot.id.clone(), prepared.time, prepared.trace.as_ref())
        };
        let result = self
            .client
            .publish_with_reply_and_headers(
                prepared.subject.clone(),
                format!("{}.{number}.{attempt}", self.inbox),
                headers,
                prepared.payload.clone(),
            )
            .await;
        self.failed -= 1;
        match result {
            Ok(()) => {
                slot.state = State::InFlight { attempt };
                self.in_flight += 1;
                let deadline = Instant::now() + self.ack_timeout;
                self.deadlines.push_back((deadline, number, attempt));
                Sent::Taken
            }
            Err(error) if error.kind() == PublishErrorKind::MaxPayloadExceeded => {
                oversized(&self.bridge, &slot.prepared, &error);
                slot.state = State::Oversized;
                Sent::Oversized
            }
            Err(error) => {
                let failure = Failure::NotSent(error.to_string());
                fail(&self.bridge, &mut self.failed, slot, &failure);
                self.schedule_retry();
                Sent::Taken
            }
        }
    }

    /// Settles the publish an answer is for; `None` if it is for none in
    /// flight (late, after a retry, or not ours).
    fn answered(&mut self, answer: &async_nats::Message) -> Option<Settled> {
        let (number, attempt) = parse_reply(&answer.subject, &self.inbox)?;
        let index = self.awaited(number, attempt)?;
        let result = if answer.status == Some(StatusCode::NO_RESPONDERS) {
            Err(Failure::NoStream)
        } else {
            match serde_json::from_slice::<Answer>(&answer.payload) {
                Ok(Answer {
                    error: None,
                    duplicate,
                }) => Ok(duplicate),
                Ok(Answer {
                    error: Some(error), ..
                }) => Err(Failure::Rejected(format!(
                    "{} (code {})",
                    error.description, error.code
                ))),
                Err(error) => Err(Failure::Rejected(format!("an unreadable answer: {error}"))),
            }
        };
        Some(self.settle(index, result))
    }

    /// Settles the oldest publish whose deadline has passed, if still in flight.
    fn timed_out(&mut self) -> Option<Settled> {
        let (_, number, attempt) = self.deadlines.pop_front()?;
        let index = self.awaited(number, attempt)?;
        Some(self.settle(index, Err(Failure::TimedOut)))
    }

    /// Drops the deadlines at the front whose publish was answered, so that
    /// the timer waits for one still in flight.
    fn forget_settled_deadlines(&mut self) {
        while let Some(&(_, number, attempt)) = self.deadlines.front() {
            if self.awaited(number, attempt).is_some() {
                return;
            }
            self.deadlines.pop_front();
        }
    }

    /// The index of slot `number` if its attempt `attempt` awaits its answer.
    fn awaited(&self, number: u64, attempt: u64) -> Option<usize> {
        let index = self.index(number)?;
        matches!(self.slots[index].state, State::InFlight { attempt: a } if a == attempt)
            .then_some(index)
    }

    fn settle(&mut self, index: usize, result: Result<bool, Failure>) -> Settled {
        self.in_flight -= 1;
        let slot = &mut self.slots[index];
        let settled = match result {
            Ok(duplicate) => {
                slot.state = State::Stored { duplicate };
                self.wait = FIRST_RETRY;
                Settled::Stored
            }
            Err(failure) => {
                let settled = match failure {
                    Failure::NoStream => Settled::NoStream(slot.prepared.subject.clone()),
                    _ => Settled::Failed,
                };
                fail(&self.bridge, &mut self.failed, slot, &failure);
                self.schedule_retry();
                settled
            }
        };
        self.release();
        settled
    }

    fn index(&self, number: u64) -> Option<usize> {
        let index = usize::try_from(number.checked_sub(self.first)?).ok()?;
        (index < self.slots.len()).then_some(index)
    }

    /// Sets the time of the next retry, if a publish waits for one and no
    /// time is set; each retry waits twice as long as the one before.
    fn schedule_retry(&mut self) {
        if self.failed > 0 && self.retry_at.is_none() {
            self.retry_at = Some(Instant::now() + self.wait);
            self.wait = (self.wait * 2).min(MAX_RETRY);
        }
    }

    /// Lets the settled events at the front of the window go, counting them.
    fn release(&mut self) {
        while let Some(front) = self.slots.front() {
            match front.state {
                State::Stored { duplicate } => stored(&self.bridge, front, duplicate),
                State::Oversized => {}
                State::InFlight { .. } | State::Failed => break,
            }
            self.slots.pop_front();
            self.first += 1;
        }
    }
}

/// The slot and attempt an answer's subject names.
fn parse_reply(subject: &str, inbox: &str) -> Option<(u64, u64)> {
    let rest = subject.strip_prefix(inbox)?.strip_prefix('.')?;
    let (number, attempt) = rest.split_once('.')?;
    Some((number.parse().ok()?, attempt.parse().ok()?))
}

/// Records a failed attempt of `slot`, which now waits for its retry.
fn fail(bridge: &str, failed: &mut usize, slot: &mut Slot, failure: &Failure) {
    slot.state = State::Failed;
    *failed += 1;
    bump(&slot.prepared.entry.counters.retries);
    warn_counted!(
        &mut slot.failures,
        bridge = %bridge,
        event_type = %slot.prepared.entry.event_type,
        id = %slot.id,
        error = %failure,
        "switchboard-nats: at-least-once publish not acknowledged; retrying with the same \
         message id (new events wait for the retry; the importer restores the order)"
    );
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

fn oversized(bridge: &str, prepared: &Prepared, error: &dyn fmt::Display) {
    warn_counted!(
        &prepared.entry.counters.oversized,
        bridge = %bridge,
        event_type = %prepared.entry.event_type,
        %error,
        "switchboard-nats: at-least-once event not published: larger than the server's max_payload"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_names_its_slot_and_attempt() {
        assert_eq!(parse_reply("_INBOX.abc.17.2", "_INBOX.abc"), Some((17, 2)));
        assert_eq!(parse_reply("_INBOX.abcd.17.2", "_INBOX.abc"), None);
        assert_eq!(parse_reply("_INBOX.abc.17", "_INBOX.abc"), None);
        assert_eq!(parse_reply("_INBOX.abc.x.2", "_INBOX.abc"), None);
    }
}
