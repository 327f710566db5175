//! The at-least-once importer: the bridge's durable consumer, read on a
//! connection of its own, with what it takes to keep each publisher's order
//! and to survive what the server forgets or gives up on.
//!
//! - An event goes into the bus with the waiting publish: a full critical
//!   subscriber makes the importer wait (and so the consumer, up to its
//!   `max_ack_pending`), never drop. Its message is acknowledged once the
//!   event is complete (every critical subscriber that received it finished
//!   with it), turned back for redelivery if one abandoned it; meanwhile
//!   later messages go on, and the pending ones are marked in progress.
//! - A message whose publisher's earlier event is missing is held here,
//!   unacknowledged and marked in progress, until that one comes or the
//!   order wait ends: after an import, the held event right after it in
//!   its run is tried again (and the next, while they go in); at each tick,
//!   every held message, in stream order.
//! - A message the server gave up delivering (its max-deliveries advisory)
//!   is read back through the JSON message API and imported at once, or
//!   stored as a dead letter.
//! - Errors of the message stream make the importer look for the stream and
//!   the consumer and create what is gone (see [`Consumer::recover`]); a
//!   consumer connection whose client died is built again.

use std::future::IntoFuture;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::client::FlushErrorKind;
use async_nats::jetstream::consumer::pull::MessagesErrorKind;
use async_nats::jetstream::{self, AckKind};
use async_nats::{Client, ConnectOptions, HeaderMap, ServerAddr, Subscriber};
use futures_util::StreamExt;
use switchboard::{Completed, Completion, Event};
use tokio::sync::watch;
use tokio::time::Interval;

use super::check::{process, route, Memory, Route, Verdict};
use super::pending::{Identity, InBus, Pending};
use crate::cloudevents;
use crate::dead_letter::{header_block, parse_header_block, Letter};
use crate::jetstream::{Consumer, Forgotten};
use crate::shared::Shared;
use crate::stats::{add, bump, warn_counted};
use crate::stop::Stop;
use crate::types::ImportType;

/// Consecutive errors of the consumer's message stream after which the
/// importer looks for the consumer again (a server that restarted without
/// it answers pulls with errors forever).
const ERRORS_BEFORE_RECOVERY: u64 = 3;

/// How long a liveness check waits for a flush (a live client that is
/// disconnected holds it until it reconnects; a dead one fails at once).
const LIVENESS_WAIT: Duration = Duration::from_millis(100);

/// How to build the consumer's connection again.
pub(crate) struct Reconnect {
    pub addrs: Vec<ServerAddr>,
    /// With the bridge's event callback installed.
    pub options: ConnectOptions,
}

/// One stream message as the importer handles it, from a delivery or from
/// the message API.
struct StreamMessage<'a> {
    subject: &'a str,
    stream_sequence: u64,
    deliveries: u64,
    headers: Option<&'a HeaderMap>,
    payload: &'a [u8],
    /// Whether it may be held back for order (not when nothing would
    /// deliver it again).
    may_hold: bool,
    /// The delivery, to mark in progress while its event waits for room;
    /// `None` when read back through the message API.
    delivery: Option<&'a jetstream::Message>,
}

/// A message held back for its publisher's order.
struct Held {
    sequence: u64,
    /// Its place in its exporter's order, from its `ce-id`.
    place: Option<Place>,
    message: Box<jetstream::Message>,
}

/// An event's exporter run and number, from its `ce-id` (`{run}.{seq}`).
#[derive(PartialEq, Eq)]
struct Place {
    run: Box<str>,
    seq: u64,
}

impl Place {
    fn of(message: &jetstream::Message) -> Option<Self> {
        let id = message.headers.as_ref()?.get(cloudevents::ID)?.as_str();
        let (run, seq) = id.rsplit_once('.')?;
        Some(Self {
            run: run.into(),
            seq: seq.parse().ok()?,
        })
    }

    /// The place right after this one in its run.
    fn next(&self) -> Option<Self> {
        Some(Self {
            run: self.run.clone(),
            seq: self.seq.checked_add(1)?,
        })
    }
}

impl<'a> StreamMessage<'a> {
    fn delivered(message: &'a jetstream::Message) -> Self {
        let (stream_sequence, deliveries) = message.info().map_or((0, 1), |info| {
            (
                info.stream_sequence,
                u64::try_from(info.delivered).unwrap_or(1),
            )
        });
        Self {
            subject: message.subject.as_str(),
            stream_sequence,
            deliveries,
            headers: message.headers.as_ref(),
            payload: &message.payload,
            may_hold: true,
            delivery: Some(message),
        }
    }
}

/// What importing a message came to.
enum Outcome {
    /// Skipped, or stored as a dead letter: acknowledge it now.
    Done,
    /// Held back for its publisher's order.
    HoldBack,
    /// In the bus: acknowledge it once complete.
    InBus(Arc<ImportType>, Identity, Completion),
    /// The bridge stops: leave it unacknowledged, for the next process.
    Stopping,
}

/// The at-least-once importer.
struct Importer {
    shared: Arc<Shared>,
    memory: Memory,
    consumer: Consumer,
    reconnect: Reconnect,
    /// Consecutive errors of the message stream.
    failures: u64,
    /// The consumer client's connects when the message stream was opened.
    connects_seen: u64,
    /// Messages held back for their publisher's order, by stream sequence.
    /// Kept here rather than turned back: every redelivery counts towards
    /// `max_deliver`, so a turned-back message would run out of deliveries
    /// before the missing one came back. Each is marked in progress at
    /// every tick, so the server does not redeliver it; if the process
    /// dies, the server does.
    held: Vec<Held>,
    /// The most messages held at once: past it the oldest goes in, its gap
    /// counted as missed. Half of `max_ack_pending`, so that held messages
    /// never stop the server from delivering the missing ones.
    max_held: usize,
    /// Messages whose events are in the bus, until they are complete.
    pending: Pending,
    /// When held and pending messages are marked in progress.
    ticker: Interval,
    /// The stop, for the waits of a publish.
    stop: Stop,
    /// The bridge stops: nothing more goes into the bus.
    stopping: bool,
}

impl Importer {
    /// Routes and processes a message, publishing its event into the bus; a
    /// rejected one is stored as a dead letter. `Err` if that failed (the
    /// message must come again).
    async fn import(&mut self, message: &StreamMessage<'_>) -> Result<Outcome, ()> {
        if self.stopping {
            return Ok(Outcome::Stopping);
        }
        let shared = Arc::clone(&self.shared);
        let outcome = match route(&shared, message.subject) {
            Route::To(entry) => {
                match process(
                    &shared,
                    entry,
                    &mut self.memory,
                    message.headers,
                    message.payload,
                    message.may_hold,
                ) {
                    Verdict::Import(accepted) => {
                        let identity = Identity {
                            source: accepted.source.to_owned(),
                            id: accepted.id.to_owned(),
                        };
                        match self.publish(accepted.event, message.delivery).await {
                            Some(completion) => {
                                Outcome::InBus(Arc::clone(entry), identity, completion)
                            }
                            None => Outcome::Stopping,
                        }
                    }
                    Verdict::Done => Outcome::Done,
                    Verdict::HoldBack => Outcome::HoldBack,
                    Verdict::Rejected(reason) => {
                        let headers = header_block(message.headers);
                        self.dead_letter(message, &headers, &reason, &entry.counters.dead_lettered)
                            .await?;
                        Outcome::Done
                    }
                }
            }
            Route::OutsidePrefix => {
                warn_counted!(
                    &shared.unrouted.outside_prefix,
                    bridge = %shared.name,
                    subject = %truncated(message.subject),
                    "switchboard-nats: skipped a stream message outside the bridge's prefix"
                );
                Outcome::Done
            }
            Route::NotImported => {
                bump(&shared.unrouted.not_imported);
                Outcome::Done
            }
        };
        Ok(outcome)
    }

    /// Publishes an imported event, waiting for room at every critical
    /// subscriber. Meanwhile completed messages are acknowledged, and the
    /// waiting ones (`delivery` too) marked in progress at each tick. `None`
    /// if the bridge stops first: the publish is cancelled (the subscribers
    /// it had not reached count a drop) and the message comes again to the
    /// next process.
    async fn publish(
        &mut self,
        event: Arc<dyn Event>,
        delivery: Option<&jetstream::Message>,
    ) -> Option<Completion> {
        if self.stopping {
            return None;
        }
        let shared = Arc::clone(&self.shared);
        let mut publishing = std::pin::pin!(shared
            .bus
            .publish_waiting_arc(event)
            .tracked()
            .into_future());
        loop {
            tokio::select! {
                biased;
                () = self.stop.requested() => {
                    self.stopping = true;
                    return None;
                }
                published = &mut publishing => {
                    return Some(published.expect("a waiting publish without a deadline delivers"));
                }
                Some((sequence, in_bus, completed)) = self.pending.next() => {
                    self.completed(sequence, in_bus, completed).await;
                }
                _ = self.ticker.tick() => self.mark_in_progress(delivery).await,
            }
        }
    }

    /// Settles a delivered message once imported: acknowledges it, waits for
    /// its event's completion, or turns it back.
    async fn settle(
        &mut self,
        message: Box<jetstream::Message>,
        sequence: u64,
        outcome: Result<Outcome, ()>,
    ) {
        match outcome {
            Ok(Outcome::Done) => {
                // A redelivery of a message whose event is still in the bus
                // (a duplicate) is acknowledged once that event is complete.
                let Err(message) = self.pending.redelivered(sequence, message) else {
                    return;
                };
                self.acknowledge(&message, AckKind::Ack).await;
                self.consumer.handled.insert(sequence);
            }
            Ok(Outcome::InBus(entry, identity, completion)) => {
                let in_bus = InBus::new(Some(message), entry, identity);
                self.pending.insert(sequence, in_bus, completion);
            }
            // Held by the caller, or left for the next process.
            Ok(Outcome::HoldBack | Outcome::Stopping) => {}
            // The dead letter could not be stored: it comes again.
            Err(()) => self.turn_back(&message).await,
        }
    }

    async fn dead_letter(
        &self,
        message: &StreamMessage<'_>,
        headers: &[u8],
        reason: &str,
        counter: &std::sync::atomic::AtomicU64,
    ) -> Result<(), ()> {
        let shared = &self.shared;
        let letter = Letter {
            stream: self.consumer.spec.name(),
            stream_created: self.consumer.stream_created,
            subject: message.subject,
            stream_sequence: message.stream_sequence,
            deliveries: message.deliveries,
            reason,
            headers,
            payload: message.payload,
        };
        match shared.dead_letters.store(&letter).await {
            Ok(()) => {
                warn_counted!(
                    counter,
                    bridge = %shared.name,
                    stream_sequence = message.stream_sequence,
                    "switchboard-nats: a stream message went to the dead letters: {reason}"
                );
                Ok(())
            }
            Err(error) => {
                warn_counted!(
                    &shared.consumer_counters.dead_letter_failed,
                    bridge = %shared.name,
                    stream_sequence = message.stream_sequence,
                    %error,
                    "switchboard-nats: could not store a dead letter; the message comes again"
                );
                Err(())
            }
        }
    }

    /// Handles a message the consumer delivered: imports it (its
    /// acknowledgement waits for its event's completion), or holds it back;
    /// after an import, tries the held ones again.
    async fn delivered(&mut self, message: jetstream::Message) {
        // The delivery's metadata, parsed from its reply subject once.
        let incoming = StreamMessage::delivered(&message);
        let sequence = incoming.stream_sequence;
        let outcome = self.import(&incoming).await;
        if matches!(outcome, Ok(Outcome::HoldBack)) {
            let place = Place::of(&message);
            self.hold(message, sequence, place).await;
            return;
        }
        // Read only when something is held: most deliveries release nothing.
        let place = if self.held.is_empty() {
            None
        } else {
            Place::of(&message)
        };
        self.settle(Box::new(message), sequence, outcome).await;
        if let Some(place) = place {
            self.release_after(place).await;
        }
    }

    /// Holds `message` back, in stream order; past `max_held`, the oldest
    /// held message goes in now.
    async fn hold(&mut self, message: jetstream::Message, sequence: u64, place: Option<Place>) {
        let index = self.held.partition_point(|held| held.sequence < sequence);
        let held = Held {
            sequence,
            place,
            message: Box::new(message),
        };
        self.held.insert(index, held);
        if self.held.len() > self.max_held {
            let oldest = self.held.remove(0);
            self.force(oldest.message, oldest.sequence).await;
            if let Some(place) = oldest.place {
                self.release_after(place).await;
            }
        }
    }

    /// Imports a held message now, whatever its publisher's order says.
    async fn force(&mut self, message: Box<jetstream::Message>, sequence: u64) {
        let mut forced = StreamMessage::delivered(&message);
        forced.may_hold = false;
        let outcome = self.import(&forced).await;
        self.settle(message, sequence, outcome).await;
    }

    /// After the event at `place` went in: tries the held event right after
    /// it in its run, and the next, while they go in. Only an import can
    /// fill a gap, and only the event after it in its run can follow;
    /// trying every held message after every import was quadratic in what
    /// is held.
    async fn release_after(&mut self, place: Place) {
        let mut next = place.next();
        while let Some(place) = next.take() {
            if self.stopping {
                return;
            }
            let found = self
                .held
                .iter()
                .position(|held| held.place.as_ref() == Some(&place));
            let Some(index) = found else { return };
            let held = self.held.remove(index);
            let outcome = self.import(&StreamMessage::delivered(&held.message)).await;
            if matches!(outcome, Ok(Outcome::HoldBack)) {
                self.held.insert(index, held);
                return;
            }
            self.settle(held.message, held.sequence, outcome).await;
            next = place.next();
        }
    }

    /// Tries every held-back message again, in stream order, until none
    /// moves on: at a tick (the order wait may have ended for some), and
    /// after a message read back through the message API.
    async fn release(&mut self) {
        loop {
            let mut progressed = false;
            let mut index = 0;
            while index < self.held.len() && !self.stopping {
                let held = self.held.remove(index);
                let outcome = self.import(&StreamMessage::delivered(&held.message)).await;
                if matches!(outcome, Ok(Outcome::HoldBack)) {
                    self.held.insert(index, held);
                    index += 1;
                } else {
                    self.settle(held.message, held.sequence, outcome).await;
                    progressed = true;
                }
            }
            if !progressed || self.stopping {
                return;
            }
        }
    }

    /// At every tick: releases what the order wait no longer holds, and
    /// marks the rest, and the messages whose events are in the bus, in
    /// progress. `false` if the message stream must be opened again: the
    /// consumer's client died, or it reconnected (a pull request sent
    /// before may be lost with the old connection, and the stream would
    /// only notice after missed heartbeats).
    async fn tick(&mut self) -> bool {
        let connects = self.client().statistics().connects.load(Ordering::Relaxed);
        if connects != self.connects_seen {
            self.connects_seen = connects;
            return false;
        }
        if !self.client_alive().await {
            return false;
        }
        // Unreachable now and then: the next tick tries again.
        let _ = self.consumer.sync_floor().await;
        if !self.held.is_empty() {
            self.release().await;
        }
        self.mark_in_progress(None).await;
        true
    }

    /// Marks the held messages, those whose events are in the bus, and
    /// `delivery` (waiting for room) in progress, so that the server does
    /// not deliver them again while they wait.
    async fn mark_in_progress(&self, delivery: Option<&jetstream::Message>) {
        let held = self.held.iter().map(|held| &*held.message);
        for message in held.chain(self.pending.deliveries()).chain(delivery) {
            // A lost mark means one redelivery, recognised as a duplicate.
            let _ = message.ack_with(AckKind::Progress).await;
        }
    }

    /// Imports every held message now (their stream is gone, or the
    /// importer stops with nothing left to wait for).
    async fn release_all(&mut self) {
        for held in std::mem::take(&mut self.held) {
            self.force(held.message, held.sequence).await;
        }
    }

    /// A message's event is complete: acknowledged if every subscriber that
    /// received it finished with it. If one abandoned it, the message is
    /// turned back and its event forgotten, so that the redelivery goes into
    /// the bus again (to every subscriber) rather than count as a duplicate.
    async fn completed(&mut self, sequence: u64, in_bus: InBus, completed: Completed) {
        if completed.all_finished() {
            if let Some(message) = &in_bus.message {
                self.acknowledge(message, AckKind::Ack).await;
            }
            self.consumer.handled.insert(sequence);
            return;
        }
        if let Some(recent) = self.memory.recent.as_mut() {
            recent.remove(&in_bus.identity.source, &in_bus.identity.id);
        }
        warn_counted!(
            &in_bus.entry.counters.abandoned,
            bridge = %self.shared.name,
            event_type = %in_bus.entry.event_type,
            stream_sequence = sequence,
            abandoned = completed.abandoned(),
            "switchboard-nats: local subscribers abandoned an imported event (rejected, or \
             dropped unread); its message comes again"
        );
        match &in_bus.message {
            Some(message) => self.turn_back(message).await,
            // Read back after the server gave up on it: nothing delivers it again.
            None => {
                bump(&self.shared.consumer_counters.lost);
                self.consumer.handled.insert(sequence);
            }
        }
    }

    /// Has the server deliver `message` again after `ack_wait`.
    async fn turn_back(&self, message: &jetstream::Message) {
        let delay = Some(self.shared.jetstream.ack_wait);
        self.acknowledge(message, AckKind::Nak(delay)).await;
    }

    async fn acknowledge(&self, message: &jetstream::Message, kind: AckKind) {
        if let Err(error) = message.ack_with(kind).await {
            let counter = match route(&self.shared, message.subject.as_str()) {
                Route::To(entry) => &entry.counters.ack_failed,
                _ => &self.shared.consumer_counters.ack_failed,
            };
            warn_counted!(
                counter,
                bridge = %self.shared.name,
                %error,
                "switchboard-nats: could not acknowledge a message; it will be redelivered \
                 (and skipped as a duplicate if its event was imported)"
            );
        }
    }

    /// Handles a max-deliveries advisory: the server gave up delivering a
    /// message (perhaps one the client could not parse). The importer reads
    /// it back through the message API and imports it at once (nothing
    /// would deliver it again while it waited) or sends it to the dead letters.
    async fn gave_up(&mut self, advisory: &[u8]) {
        let shared = Arc::clone(&self.shared);
        let Some((stream_sequence, deliveries)) =
            parse_advisory(advisory, self.consumer.spec.name(), &self.consumer.durable)
        else {
            return;
        };
        // Handled already, or its event is in the bus (redelivered until the
        // server gave up while the importer marked it in progress).
        if self.consumer.handled.contains(stream_sequence) || self.pending.contains(stream_sequence)
        {
            return;
        }
        bump(&shared.consumer_counters.gave_up);
        let raw = match get_message(&shared, self.consumer.spec.name(), stream_sequence).await {
            Ok(raw) => raw,
            Err(error) => {
                warn_counted!(
                    &shared.consumer_counters.lost,
                    bridge = %shared.name,
                    stream_sequence,
                    %error,
                    "switchboard-nats: the server gave up delivering a message and it could \
                     not be read back; it is lost to this importer (counted)"
                );
                return;
            }
        };
        let message = StreamMessage {
            subject: &raw.subject,
            stream_sequence,
            deliveries,
            headers: None,
            payload: &raw.payload,
            may_hold: false,
            delivery: None,
        };
        let imported = match parse_header_block(&raw.headers) {
            Ok(headers) => {
                self.import(&StreamMessage {
                    headers: headers.as_ref(),
                    ..message
                })
                .await
            }
            Err(why) => {
                let reason = format!("the NATS client cannot parse its headers: {why}");
                let counter = match route(&shared, &raw.subject) {
                    Route::To(entry) => {
                        bump(&entry.counters.received);
                        bump(&entry.counters.malformed);
                        &entry.counters.dead_lettered
                    }
                    _ => &shared.consumer_counters.dead_lettered,
                };
                let stored = self
                    .dead_letter(&message, &raw.headers, &reason, counter)
                    .await;
                stored.map(|()| Outcome::Done)
            }
        };
        match imported {
            Ok(Outcome::Done) => self.consumer.handled.insert(stream_sequence),
            Ok(Outcome::InBus(entry, identity, completion)) => {
                let in_bus = InBus::new(None, entry, identity);
                self.pending.insert(stream_sequence, in_bus, completion);
            }
            // Not held (`may_hold` is false), or left for the next process.
            Ok(Outcome::HoldBack | Outcome::Stopping) => return,
            // No redelivery follows: a failure to store the dead letter loses it.
            Err(()) => {
                bump(&shared.consumer_counters.lost);
                return;
            }
        }
        self.release().await;
    }

    /// Finds the consumer again after errors, counting what the server
    /// forgot; builds the consumer's connection again if its client died.
    async fn recover(&mut self) {
        if !self.client_alive().await {
            self.reconnect().await;
        }
        let shared = Arc::clone(&self.shared);
        match self.consumer.recover().await {
            Ok(Forgotten::Nothing) => {}
            Ok(Forgotten::Consumer { removed }) => {
                add(&shared.consumer_counters.lost, removed);
                warn_counted!(
                    each: &shared.consumer_counters.recreated,
                    bridge = %shared.name,
                    durable = %self.consumer.durable,
                    resumed_at = self.consumer.handled.resume_at(),
                    removed,
                    "switchboard-nats: the server had lost the durable consumer (a restart \
                     without its store, or a deletion); created again at the first stream \
                     message not complete ({removed} stream messages were gone: counted as lost)"
                );
            }
            Ok(Forgotten::Stream) => {
                bump(&shared.consumer_counters.recreated);
                // What was held from the old stream will never come again;
                // what is in the bus can no longer be acknowledged.
                self.release_all().await;
                self.pending.clear();
                self.consumer.restart();
                warn_counted!(
                    each: &shared.consumer_counters.new_streams,
                    bridge = %shared.name,
                    stream = %self.consumer.spec.name(),
                    "switchboard-nats: the stream is a new one (the server lost or deleted the \
                     old): reading it from its start; what the old stream held beyond the last \
                     message handled is gone, counted per publisher as missed"
                );
            }
            Err(error) => tracing::warn!(
                bridge = %shared.name,
                %error,
                "switchboard-nats: could not find or create the durable consumer; retrying"
            ),
        }
    }

    fn client(&self) -> Client {
        self.shared
            .consumer_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .expect("an at-least-once importer has a consumer client")
    }

    /// Whether the consumer's client still has its connection task: a
    /// client whose task ended (async-nats panics on a header value holding
    /// a lone carriage return) cannot even queue a flush.
    async fn client_alive(&self) -> bool {
        let flushed = tokio::time::timeout(LIVENESS_WAIT, self.client().flush()).await;
        !matches!(flushed, Ok(Err(error)) if error.kind() == FlushErrorKind::SendError)
    }

    /// Builds the consumer's connection again.
    async fn reconnect(&mut self) {
        let shared = &self.shared;
        match self
            .reconnect
            .options
            .clone()
            .connect(self.reconnect.addrs.clone())
            .await
        {
            Ok(client) => {
                shared.consumer_events.retire(&self.client());
                warn_counted!(
                    each: &shared.consumer_counters.client_rebuilt,
                    bridge = %shared.name,
                    "switchboard-nats: the consumer's NATS client had stopped (its connection \
                     task ended); built a new one"
                );
                self.consumer.spec.context = crate::jetstream::context(&client, &shared.jetstream);
                *shared
                    .consumer_client
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(client);
            }
            Err(error) => tracing::warn!(
                bridge = %shared.name,
                %error,
                "switchboard-nats: could not build the consumer's NATS client again; retrying"
            ),
        }
    }

    /// Counts an error of the message stream; whether to look for the
    /// consumer again.
    fn failed(&mut self, error: &dyn std::fmt::Display, gone: bool) -> bool {
        warn_counted!(
            &mut self.failures,
            bridge = %self.shared.name,
            %error,
            "switchboard-nats: the durable consumer reported an error"
        );
        gone || self.failures >= ERRORS_BEFORE_RECOVERY
    }
}

/// The stream sequence and delivery count of a max-deliveries advisory
/// about `durable` on `stream`; `None` for anything else.
fn parse_advisory(payload: &[u8], stream: &str, durable: &str) -> Option<(u64, u64)> {
    let advisory: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let field = |name: &str| advisory.get(name).and_then(serde_json::Value::as_str);
    if field("type") != Some("io.nats.jetstream.advisory.v1.max_deliver")
        || field("stream") != Some(stream)
        || field("consumer") != Some(durable)
    {
        return None;
    }
    Some((
        advisory.get("stream_seq")?.as_u64()?,
        advisory
            .get("deliveries")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
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

/// How often held and pending messages are marked in progress: half the
/// shortest wait before a redelivery (a backoff's first entry replaces
/// `ack_wait` on the server).
fn tick_period(shared: &Shared) -> Duration {
    let options = &shared.jetstream;
    let shortest = options
        .redelivery_backoff
        .iter()
        .copied()
        .fold(options.ack_wait, Duration::min);
    (shortest / 2).max(Duration::from_millis(10))
}

/// Imports every at-least-once type from the bridge's durable consumer,
/// acknowledging each message once its event is complete (or in the dead
/// letters); `advisories`: the server's max-deliveries advisories for it.
pub(crate) async fn run_jetstream(
    shared: Arc<Shared>,
    consumer: Consumer,
    reconnect: Reconnect,
    mut advisories: Subscriber,
    stopped: watch::Receiver<bool>,
) {
    let max_held = usize::try_from(shared.jetstream.max_ack_pending / 2)
        .unwrap_or(usize::MAX)
        .max(1);
    let mut importer = Importer {
        memory: Memory::jetstream(&shared),
        ticker: tokio::time::interval(tick_period(&shared)),
        shared,
        consumer,
        reconnect,
        failures: 0,
        connects_seen: 0,
        held: Vec::new(),
        max_held,
        pending: Pending::default(),
        stop: Stop::new(stopped.clone()),
        stopping: false,
    };
    // The loop's own wait: the importer's is borrowed by its publishes.
    let mut stop = Stop::new(stopped);
    loop {
        // Every wait on the server races the stop signal: with the server
        // gone, these calls wait for a reconnect that may never come.
        importer.connects_seen = importer
            .client()
            .statistics()
            .connects
            .load(Ordering::Relaxed);
        let Some(messages) = stop.or(importer.consumer.consumer.messages()).await else {
            return;
        };
        match messages {
            Ok(mut messages) => loop {
                tokio::select! {
                    biased;
                    () = stop.requested() => return,
                    _ = importer.ticker.tick() => if !importer.tick().await {
                        break;
                    },
                    Some((sequence, in_bus, completed)) = importer.pending.next() => {
                        importer.completed(sequence, in_bus, completed).await;
                    }
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
                    Some(advisory) = advisories.next() => importer.gave_up(&advisory.payload).await,
                }
            },
            Err(error) => {
                importer.failed(&error, true);
            }
        }
        if stop
            .or(tokio::time::sleep(Duration::from_millis(500)))
            .await
            .is_none()
            || stop.or(importer.recover()).await.is_none()
        {
            return;
        }
        importer.failures = 0;
    }
}
