//! The importers: messages from NATS checked, decoded and published into
//! the local bus.
//!
//! At-most-once types have one core subscription each, on their exact
//! subject. At-least-once types share the bridge's durable consumer, which
//! reads the whole stream in order; messages of other types are
//! acknowledged and skipped, messages that cannot be imported go to the
//! dead letters ([`crate::dead_letter`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull::MessagesErrorKind;
use async_nats::jetstream::{self, AckKind};
use async_nats::{HeaderMap, Subscriber};
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::bridge::Shared;
use crate::cloudevents::Incoming;
use crate::config::Delivery;
use crate::dead_letter::{header_block, parse_header_block, Letter};
use crate::export::{log_now, stop_requested};
use crate::jetstream::{Consumer, Forgotten};
use crate::order::{Admit, RecentIds, Runs};
use crate::stats::{add, bump};
use crate::subject;
use crate::types::ImportType;

/// What became of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Verdict {
    /// Published into the bus, or skipped for good: acknowledge it.
    Done,
    /// An earlier event of its publisher is missing: hold it back until that
    /// one comes (JetStream redelivers it) or the order wait ends.
    HoldBack,
    /// It cannot be parsed, decoded or validated (counted already): on
    /// JetStream it goes to the dead letters, for the reason given.
    Rejected(String),
}

/// What an importer remembers between messages.
struct Memory {
    /// JetStream only: the (source, id) of the events already imported.
    recent: Option<RecentIds>,
    runs: Runs,
}

impl Memory {
    fn core(shared: &Shared) -> Self {
        Self {
            recent: None,
            runs: Runs::new(None, window(shared)),
        }
    }

    fn jetstream(shared: &Shared) -> Self {
        Self {
            recent: Some(RecentIds::new(shared.jetstream.dedup_window)),
            runs: Runs::new(Some(shared.jetstream.resolved_order_wait()), window(shared)),
        }
    }
}

/// The largest jump in a publisher's numbers counted as a gap: the dedup
/// window (no exporter loses more in one go than an importer remembers).
fn window(shared: &Shared) -> u64 {
    u64::try_from(shared.jetstream.dedup_window).unwrap_or(u64::MAX)
}

/// Counts a message that cannot be imported in `counter`, logs it (a
/// handful of times per flood), and says why.
fn reject(shared: &Shared, entry: &ImportType, counter: &AtomicU64, reason: String) -> Verdict {
    bump(counter);
    let count = counter.load(Ordering::Relaxed);
    if log_now(count) {
        tracing::warn!(
            bridge = %shared.name,
            event_type = %entry.event_type,
            count,
            "switchboard-nats: a message could not be imported: {reason}"
        );
    }
    Verdict::Rejected(reason)
}

/// Checks, decodes and publishes one message of `entry`'s type.
fn process(
    shared: &Shared,
    entry: &ImportType,
    memory: &mut Memory,
    headers: Option<&HeaderMap>,
    payload: &[u8],
) -> Verdict {
    let counters = &entry.counters;
    bump(&counters.received);
    let meta = match Incoming::parse(headers) {
        Ok(meta) => meta,
        Err(why) => {
            return reject(
                shared,
                entry,
                &counters.malformed,
                format!("not a CloudEvent the bridge accepts: {why}"),
            );
        }
    };
    if meta.source == shared.name {
        bump(&counters.own_echo);
        return Verdict::Done;
    }
    if memory
        .recent
        .as_ref()
        .is_some_and(|r| r.contains(&meta.source, &meta.id))
    {
        bump(&counters.duplicates);
        return Verdict::Done;
    }
    if let Some((run, seq)) = &meta.sequence {
        if let Some(verdict) = admit(shared, entry, memory, &meta.source, run, *seq) {
            return verdict;
        }
    }
    if meta.event_type != entry.event_type {
        return reject(
            shared,
            entry,
            &counters.type_mismatch,
            format!(
                "its ce-type {:?} is not its subject's type",
                meta.event_type
            ),
        );
    }
    if payload.len() > shared.max_import_bytes {
        return reject(
            shared,
            entry,
            &counters.oversized,
            format!(
                "its payload of {} bytes exceeds max_import_bytes ({})",
                payload.len(),
                shared.max_import_bytes
            ),
        );
    }
    let event = match (entry.decode)(payload) {
        Ok(event) => event,
        Err(error) => {
            return reject(
                shared,
                entry,
                &counters.decode_failed,
                format!("the codec could not decode it: {error}"),
            );
        }
    };
    if shared.exported_types.contains(&entry.type_id) {
        shared.imported.insert(&event);
    }
    shared.bus.publish_arc(event);
    // Remembered only once accepted: a corrected republish of a message
    // that was rejected, with the same id, is not a duplicate.
    if let Some(recent) = memory.recent.as_mut() {
        recent.insert(&meta.source, &meta.id);
    }
    bump(&counters.imported);
    Verdict::Done
}

/// Places event `seq` of `run` in its publisher's order and counts what
/// that says; `Some` if the message goes no further now.
fn admit(
    shared: &Shared,
    entry: &ImportType,
    memory: &mut Memory,
    source: &str,
    run: &str,
    seq: u64,
) -> Option<Verdict> {
    let counters = &entry.counters;
    match memory.runs.admit(run, seq, Instant::now()) {
        Admit::InOrder => {}
        Admit::AfterGap { missed } => {
            add(&counters.missed, missed);
            tracing::warn!(
                bridge = %shared.name,
                event_type = %entry.event_type,
                source,
                missed,
                "switchboard-nats: events of this publisher never arrived (counted as missed)"
            );
        }
        Admit::Late => bump(&counters.late),
        Admit::Unordered => bump(&counters.unordered),
        Admit::Jump => {
            bump(&counters.jumps);
            if log_now(counters.jumps.load(Ordering::Relaxed)) {
                tracing::warn!(
                    bridge = %shared.name,
                    event_type = %entry.event_type,
                    source,
                    seq,
                    "switchboard-nats: a publisher's event number jumped further ahead than \
                     dedup_window; counted as a new start, not as missed events"
                );
            }
        }
        Admit::HoldBack => {
            bump(&counters.held_back);
            return Some(Verdict::HoldBack);
        }
    }
    None
}

/// Imports one at-most-once type from its core subscription.
pub(crate) async fn run_core(
    shared: Arc<Shared>,
    entry: Arc<ImportType>,
    mut subscriber: Subscriber,
    mut stopped: watch::Receiver<bool>,
) {
    let mut memory = Memory::core(&shared);
    loop {
        let message = tokio::select! {
            biased;
            () = stop_requested(&mut stopped) => return,
            message = subscriber.next() => match message {
                Some(message) => message,
                None => return,
            },
        };
        // The subscription is on the exact subject; checked anyway, so that
        // nothing that arrived elsewhere can reach the bus.
        if message.subject.as_str() != entry.subject {
            bump(&shared.unrouted.outside_prefix);
            continue;
        }
        // Nothing is stored on core NATS: a rejected message was counted,
        // and that is all that can be done with it.
        process(
            &shared,
            &entry,
            &mut memory,
            message.headers.as_ref(),
            &message.payload,
        );
    }
}

/// The import type a JetStream message's subject carries, or why none.
enum Route<'a> {
    To(&'a Arc<ImportType>),
    OutsidePrefix,
    NotImported,
}

fn route<'a>(shared: &'a Shared, subject: &str) -> Route<'a> {
    let Some(event_type) = subject::event_type_of(&shared.prefix, subject) else {
        return Route::OutsidePrefix;
    };
    shared
        .imports
        .iter()
        .find(|i| i.delivery == Delivery::AtLeastOnce && i.event_type == event_type)
        .map_or(Route::NotImported, Route::To)
}

/// Consecutive errors of the consumer's message stream after which the
/// importer looks for the consumer again (a server that restarted without
/// it answers pulls with errors forever).
const ERRORS_BEFORE_RECOVERY: u64 = 3;

/// The at-least-once importer: the durable consumer, and what it remembers.
struct JetStreamImporter {
    shared: Arc<Shared>,
    memory: Memory,
    consumer: Consumer,
    /// Consecutive errors of the message stream.
    failures: u64,
    /// Messages held back for their publisher's order, in arrival order.
    /// Kept here rather than turned back: every redelivery counts towards
    /// `max_deliver`, so a held message would run out of deliveries before
    /// the missing one came back.
    held: Vec<Held>,
}

/// A message held back for its publisher's order.
enum Held {
    /// Unacknowledged, and marked in progress every `ack_wait / 2` so that
    /// the server does not redeliver it; if the process dies, it does.
    Delivered(Box<jetstream::Message>),
    /// Given up by the server and read back through the message API: no
    /// redelivery will come, so it is lost if the process dies meanwhile.
    GivenUp {
        raw: RawMessage,
        headers: Option<HeaderMap>,
        stream_sequence: u64,
        deliveries: u64,
    },
}

/// One stream message as the importer handles it, from a delivery or from
/// the message API.
struct StreamMessage<'a> {
    subject: &'a str,
    stream_sequence: u64,
    deliveries: u64,
    headers: Option<&'a HeaderMap>,
    payload: &'a [u8],
}

impl JetStreamImporter {
    /// Routes and processes a message; a rejected one is stored as a dead
    /// letter. `Err` if that failed (the message must come again).
    async fn import(&mut self, message: &StreamMessage<'_>) -> Result<Verdict, ()> {
        let shared = Arc::clone(&self.shared);
        let verdict = match route(&shared, message.subject) {
            Route::To(entry) => {
                let verdict = process(
                    &shared,
                    entry,
                    &mut self.memory,
                    message.headers,
                    message.payload,
                );
                if let Verdict::Rejected(reason) = &verdict {
                    let headers = header_block(message.headers);
                    self.dead_letter(message, &headers, reason, &entry.counters.dead_lettered)
                        .await?;
                }
                verdict
            }
            Route::OutsidePrefix => {
                bump(&shared.unrouted.outside_prefix);
                if log_now(shared.unrouted.outside_prefix.load(Ordering::Relaxed)) {
                    tracing::warn!(
                        bridge = %shared.name,
                        subject = %truncated(message.subject),
                        "switchboard-nats: skipped a stream message outside the bridge's prefix"
                    );
                }
                Verdict::Done
            }
            Route::NotImported => {
                bump(&shared.unrouted.not_imported);
                Verdict::Done
            }
        };
        if verdict != Verdict::HoldBack {
            self.consumer.handled(message.stream_sequence);
        }
        Ok(verdict)
    }

    async fn dead_letter(
        &self,
        message: &StreamMessage<'_>,
        headers: &[u8],
        reason: &str,
        counter: &AtomicU64,
    ) -> Result<(), ()> {
        let shared = &self.shared;
        let letter = Letter {
            stream: self.consumer.spec.name(),
            subject: message.subject,
            stream_sequence: message.stream_sequence,
            deliveries: message.deliveries,
            reason,
            headers,
            payload: message.payload,
        };
        match shared.dead_letters.store(&letter).await {
            Ok(()) => {
                bump(counter);
                tracing::warn!(
                    bridge = %shared.name,
                    stream_sequence = message.stream_sequence,
                    "switchboard-nats: a stream message went to the dead letters: {reason}"
                );
                Ok(())
            }
            Err(error) => {
                bump(&shared.consumer_counters.dead_letter_failed);
                tracing::warn!(
                    bridge = %shared.name,
                    stream_sequence = message.stream_sequence,
                    %error,
                    "switchboard-nats: could not store a dead letter; the message comes again"
                );
                Err(())
            }
        }
    }

    /// Handles a message delivered by the consumer, and acknowledges it
    /// (or holds it back).
    async fn delivered(&mut self, message: jetstream::Message) {
        self.handle(Held::Delivered(Box::new(message))).await;
    }

    /// Imports `message`, or holds it back; after an import, releases what
    /// it may have unblocked.
    async fn handle(&mut self, message: Held) {
        let verdict = self.try_import(&message).await;
        if verdict == Ok(Verdict::HoldBack) {
            self.held.push(message);
            return;
        }
        self.acknowledge(&message, verdict).await;
        if !self.held.is_empty() {
            self.release().await;
        }
    }

    async fn try_import(&mut self, message: &Held) -> Result<Verdict, ()> {
        match message {
            Held::Delivered(message) => {
                let (stream_sequence, deliveries) = message.info().map_or((0, 1), |info| {
                    (
                        info.stream_sequence,
                        u64::try_from(info.delivered).unwrap_or(1),
                    )
                });
                self.import(&StreamMessage {
                    subject: message.subject.as_str(),
                    stream_sequence,
                    deliveries,
                    headers: message.headers.as_ref(),
                    payload: &message.payload,
                })
                .await
            }
            Held::GivenUp {
                raw,
                headers,
                stream_sequence,
                deliveries,
            } => {
                self.import(&StreamMessage {
                    subject: &raw.subject,
                    stream_sequence: *stream_sequence,
                    deliveries: *deliveries,
                    headers: headers.as_ref(),
                    payload: &raw.payload,
                })
                .await
            }
        }
    }

    /// Tries the held-back messages again, in arrival order, until none
    /// moves on: an import may fill the gap that held the next one.
    async fn release(&mut self) {
        loop {
            let mut progressed = false;
            let mut index = 0;
            while index < self.held.len() {
                let message = self.held.remove(index);
                let verdict = self.try_import(&message).await;
                if verdict == Ok(Verdict::HoldBack) {
                    self.held.insert(index, message);
                    index += 1;
                } else {
                    self.acknowledge(&message, verdict).await;
                    progressed = true;
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// Every `ack_wait / 2`: releases what the order wait no longer holds,
    /// and marks the rest in progress.
    async fn tick(&mut self) {
        if self.held.is_empty() {
            return;
        }
        self.release().await;
        for message in &self.held {
            if let Held::Delivered(message) = message {
                // A lost mark means one redelivery, recognised as a duplicate.
                let _ = message.ack_with(AckKind::Progress).await;
            }
        }
    }

    async fn acknowledge(&self, message: &Held, verdict: Result<Verdict, ()>) {
        let message = match message {
            Held::Delivered(message) => message,
            // No redelivery follows: a failure to store the dead letter loses it.
            Held::GivenUp { .. } => {
                if verdict.is_err() {
                    bump(&self.shared.consumer_counters.lost);
                }
                return;
            }
        };
        let ack = match verdict {
            Ok(_) => message.ack().await,
            // The dead letter could not be stored: it comes again.
            Err(()) => {
                message
                    .ack_with(AckKind::Nak(Some(self.shared.jetstream.ack_wait)))
                    .await
            }
        };
        if let Err(error) = ack {
            let counter = match route(&self.shared, message.subject.as_str()) {
                Route::To(entry) => &entry.counters.ack_failed,
                _ => &self.shared.consumer_counters.ack_failed,
            };
            bump(counter);
            if log_now(counter.load(Ordering::Relaxed)) {
                tracing::warn!(
                    bridge = %self.shared.name,
                    %error,
                    "switchboard-nats: could not acknowledge a message; it will be redelivered \
                     and skipped as a duplicate"
                );
            }
        }
    }

    /// Handles a max-deliveries advisory: the server gave up delivering a
    /// message (perhaps one the client could not parse). The importer reads
    /// it through the message API and imports it or sends it to the dead
    /// letters.
    async fn gave_up(&mut self, advisory: &[u8]) {
        let shared = Arc::clone(&self.shared);
        let Some((stream_sequence, deliveries)) = parse_advisory(advisory) else {
            return;
        };
        bump(&shared.consumer_counters.gave_up);
        let raw = match get_message(&shared, self.consumer.spec.name(), stream_sequence).await {
            Ok(raw) => raw,
            Err(error) => {
                tracing::warn!(
                    bridge = %shared.name,
                    stream_sequence,
                    %error,
                    "switchboard-nats: the server gave up delivering a message and it could not \
                     be read; it is lost to this importer"
                );
                bump(&shared.consumer_counters.lost);
                return;
            }
        };
        match parse_header_block(&raw.headers) {
            Ok(headers) => {
                self.handle(Held::GivenUp {
                    raw,
                    headers,
                    stream_sequence,
                    deliveries,
                })
                .await;
            }
            Err(why) => {
                let message = StreamMessage {
                    subject: &raw.subject,
                    stream_sequence,
                    deliveries,
                    headers: None,
                    payload: &raw.payload,
                };
                let reason = format!("the NATS client cannot parse its headers: {why}");
                let counter = match route(&shared, &raw.subject) {
                    Route::To(entry) => {
                        bump(&entry.counters.received);
                        bump(&entry.counters.malformed);
                        &entry.counters.dead_lettered
                    }
                    _ => &shared.consumer_counters.dead_lettered,
                };
                if self
                    .dead_letter(&message, &raw.headers, &reason, counter)
                    .await
                    .is_err()
                {
                    bump(&shared.consumer_counters.lost);
                }
                self.consumer.handled(stream_sequence);
            }
        }
    }

    /// Finds the consumer again after errors, counting what the server forgot.
    async fn recover(&mut self) {
        let shared = &self.shared;
        match self.consumer.recover().await {
            Ok(Forgotten::Nothing) => {}
            Ok(Forgotten::Consumer { removed }) => {
                bump(&shared.consumer_counters.recreated);
                add(&shared.consumer_counters.lost, removed);
                tracing::warn!(
                    bridge = %shared.name,
                    durable = %self.consumer.durable,
                    after_stream_sequence = self.consumer.floor,
                    removed,
                    "switchboard-nats: the server had lost the durable consumer (a restart \
                     without its store, or a deletion); created again after the last message \
                     imported ({removed} messages after it were gone from the stream: counted as lost)"
                );
            }
            Ok(Forgotten::Stream) => {
                bump(&shared.consumer_counters.recreated);
                bump(&shared.consumer_counters.new_streams);
                tracing::warn!(
                    bridge = %shared.name,
                    stream = %self.consumer.spec.name(),
                    "switchboard-nats: the stream is a new one (the server lost or deleted the \
                     old): reading it from its start; what the old stream held beyond the last \
                     message imported is gone, counted per publisher as missed"
                );
            }
            Err(error) => tracing::warn!(
                bridge = %shared.name,
                %error,
                "switchboard-nats: could not find or create the durable consumer; retrying"
            ),
        }
    }

    /// Counts an error of the message stream; whether to look for the
    /// consumer again.
    fn failed(&mut self, error: &dyn std::fmt::Display, gone: bool) -> bool {
        self.failures += 1;
        if log_now(self.failures) {
            tracing::warn!(
                bridge = %self.shared.name,
                %error,
                "switchboard-nats: the durable consumer reported an error"
            );
        }
        gone || self.failures >= ERRORS_BEFORE_RECOVERY
    }
}

/// The stream sequence and delivery count of a max-deliveries advisory.
fn parse_advisory(payload: &[u8]) -> Option<(u64, u64)> {
    let advisory: serde_json::Value = serde_json::from_slice(payload).ok()?;
    Some((
        advisory.get("stream_seq")?.as_u64()?,
        advisory.get("deliveries")?.as_u64().unwrap_or(0),
    ))
}

/// A stream message as the JSON message API returns it: the header block
/// as bytes that the client does not parse.
struct RawMessage {
    subject: String,
    headers: Vec<u8>,
    payload: Vec<u8>,
}

async fn get_message(
    shared: &Shared,
    stream: &str,
    sequence: u64,
) -> Result<RawMessage, async_nats::Error> {
    use base64::Engine;
    let request = serde_json::to_vec(&serde_json::json!({ "seq": sequence }))?;
    let response = shared
        .client
        .request(format!("$JS.API.STREAM.MSG.GET.{stream}"), request.into())
        .await?;
    let response: serde_json::Value = serde_json::from_slice(&response.payload)?;
    if let Some(error) = response.get("error") {
        return Err(format!("the server answered {error}").into());
    }
    let message = response
        .get("message")
        .ok_or("the server's answer has no message")?;
    let base64 = |field: &str| -> Result<Vec<u8>, async_nats::Error> {
        match message.get(field).and_then(serde_json::Value::as_str) {
            Some(text) => Ok(base64::engine::general_purpose::STANDARD.decode(text)?),
            None => Ok(Vec::new()),
        }
    };
    Ok(RawMessage {
        subject: message
            .get("subject")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        headers: base64("hdrs")?,
        payload: base64("data")?,
    })
}

/// A subject for a log line: at most 256 bytes.
fn truncated(subject: &str) -> &str {
    let mut end = subject.len().min(256);
    while !subject.is_char_boundary(end) {
        end -= 1;
    }
    &subject[..end]
}

/// Imports every at-least-once type from the bridge's durable consumer,
/// acknowledging each message once its event is in the bus (or in the dead
/// letters); `advisories`: the server's max-deliveries advisories for it.
pub(crate) async fn run_jetstream(
    shared: Arc<Shared>,
    consumer: Consumer,
    mut advisories: Subscriber,
    mut stopped: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(shared.jetstream.ack_wait / 2);
    let mut importer = JetStreamImporter {
        memory: Memory::jetstream(&shared),
        shared,
        consumer,
        failures: 0,
        held: Vec::new(),
    };
    loop {
        // Every wait on the server races the stop signal: with the server
        // gone, these calls wait for a reconnect that may never come.
        let messages = tokio::select! {
            biased;
            () = stop_requested(&mut stopped) => return,
            messages = importer.consumer.consumer.messages() => messages,
        };
        match messages {
            Ok(mut messages) => loop {
                tokio::select! {
                    biased;
                    () = stop_requested(&mut stopped) => return,
                    Some(advisory) = advisories.next() => importer.gave_up(&advisory.payload).await,
                    _ = tick.tick() => importer.tick().await,
                    item = messages.next() => match item {
                        Some(Ok(message)) => {
                            importer.failures = 0;
                            importer.delivered(message).await;
                        }
                        Some(Err(error)) => {
                            let gone = matches!(
                                error.kind(),
                                MessagesErrorKind::ConsumerDeleted | MessagesErrorKind::NoResponders
                            );
                            if importer.failed(&error, gone) {
                                break;
                            }
                        }
                        None => break,
                    },
                }
            },
            Err(error) => {
                importer.failed(&error, true);
            }
        }
        tokio::select! {
            biased;
            () = stop_requested(&mut stopped) => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        tokio::select! {
            biased;
            () = stop_requested(&mut stopped) => return,
            () = importer.recover() => importer.failures = 0,
        }
    }
}
