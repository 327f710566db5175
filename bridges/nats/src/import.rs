//! The importers: messages from NATS checked, decoded and published into
//! the local bus.
//!
//! At-most-once types have one core subscription each, on their exact
//! subject. At-least-once types share the bridge's durable consumer, which
//! reads the whole stream in order; messages of other types are
//! acknowledged and skipped.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind};
use async_nats::{HeaderMap, Subscriber};
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::bridge::Shared;
use crate::cloudevents::Incoming;
use crate::config::Delivery;
use crate::export::log_now;
use crate::jetstream::Consumer;
use crate::order::{Admit, RecentIds, Runs};
use crate::stats::{add, bump};
use crate::subject;
use crate::types::ImportType;

/// What became of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Published into the bus, or skipped for good: acknowledge it.
    Done,
    /// An earlier event of its publisher is missing: turn it back, to come
    /// again after that one.
    HoldBack,
}

/// What an importer remembers between messages.
struct Memory {
    /// JetStream only: the ids already imported.
    recent: Option<RecentIds>,
    runs: Runs,
}

impl Memory {
    fn core() -> Self {
        Self {
            recent: None,
            runs: Runs::new(None),
        }
    }

    fn jetstream(shared: &Shared) -> Self {
        Self {
            recent: Some(RecentIds::new(shared.jetstream.dedup_window)),
            runs: Runs::new(Some(shared.jetstream.resolved_order_wait())),
        }
    }
}

/// Logs a skipped message, a handful of times per flood.
macro_rules! skipped {
    ($shared:expr, $entry:expr, $counter:ident, $($reason:tt)+) => {{
        bump(&$entry.counters.$counter);
        if log_now($entry.counters.$counter.load(Ordering::Relaxed)) {
            tracing::warn!(
                bridge = %$shared.name,
                event_type = %$entry.event_type,
                count = $entry.counters.$counter.load(Ordering::Relaxed),
                $($reason)+
            );
        }
        Verdict::Done
    }};
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
            return skipped!(shared, entry, malformed, %why,
                "switchboard-nats: skipped a message that is not a CloudEvent the bridge accepts");
        }
    };
    if meta.source == shared.name {
        bump(&counters.own_echo);
        return Verdict::Done;
    }
    if memory.recent.as_ref().is_some_and(|r| r.contains(&meta.id)) {
        bump(&counters.duplicates);
        return Verdict::Done;
    }
    if let Some((run, seq)) = &meta.sequence {
        match memory.runs.admit(run, *seq, Instant::now()) {
            Admit::InOrder => {}
            Admit::AfterGap { missed } => {
                add(&counters.missed, missed);
                tracing::warn!(
                    bridge = %shared.name,
                    event_type = %entry.event_type,
                    source = %meta.source,
                    missed,
                    "switchboard-nats: events of this publisher never arrived (counted as missed)"
                );
            }
            Admit::Late => bump(&counters.late),
            Admit::HoldBack => {
                bump(&counters.held_back);
                return Verdict::HoldBack;
            }
        }
    }
    if let Some(recent) = memory.recent.as_mut() {
        recent.insert(&meta.id);
    }
    if meta.event_type != entry.event_type {
        return skipped!(shared, entry, type_mismatch, ce_type = %meta.event_type,
            "switchboard-nats: skipped a message whose ce-type is not its subject's type");
    }
    if payload.len() > shared.max_import_bytes {
        return skipped!(
            shared,
            entry,
            oversized,
            bytes = payload.len(),
            max = shared.max_import_bytes,
            "switchboard-nats: skipped a message larger than max_import_bytes"
        );
    }
    let event = match (entry.decode)(payload) {
        Ok(event) => event,
        Err(error) => {
            return skipped!(shared, entry, decode_failed, %error,
                "switchboard-nats: skipped a message the codec could not decode");
        }
    };
    if shared.exported_types.contains(&entry.type_id) {
        shared.imported.insert(&event);
    }
    shared.bus.publish_arc(event);
    bump(&counters.imported);
    Verdict::Done
}

/// Imports one at-most-once type from its core subscription.
pub(crate) async fn run_core(
    shared: Arc<Shared>,
    entry: Arc<ImportType>,
    mut subscriber: Subscriber,
    mut stopped: watch::Receiver<bool>,
) {
    let mut memory = Memory::core();
    loop {
        let message = tokio::select! {
            biased;
            _ = stopped.wait_for(|stop| *stop) => return,
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

/// How long a held-back message waits before it comes again: a quarter of
/// the ack wait, by when the missing one may have been redelivered.
fn hold_back_delay(shared: &Shared) -> Duration {
    shared.jetstream.ack_wait / 4
}

async fn handle_jetstream(shared: &Shared, memory: &mut Memory, message: jetstream::Message) {
    let verdict = match route(shared, message.subject.as_str()) {
        Route::To(entry) => {
            let verdict = process(
                shared,
                entry,
                memory,
                message.headers.as_ref(),
                &message.payload,
            );
            (verdict, Some(entry))
        }
        Route::OutsidePrefix => {
            bump(&shared.unrouted.outside_prefix);
            if log_now(shared.unrouted.outside_prefix.load(Ordering::Relaxed)) {
                tracing::warn!(
                    bridge = %shared.name,
                    subject = %message.subject,
                    "switchboard-nats: skipped a stream message outside the bridge's prefix"
                );
            }
            (Verdict::Done, None)
        }
        Route::NotImported => {
            bump(&shared.unrouted.not_imported);
            (Verdict::Done, None)
        }
    };
    let ack = match verdict.0 {
        Verdict::Done => message.ack().await,
        Verdict::HoldBack => {
            message
                .ack_with(AckKind::Nak(Some(hold_back_delay(shared))))
                .await
        }
    };
    if let (Err(error), Some(entry)) = (ack, verdict.1) {
        bump(&entry.counters.ack_failed);
        if log_now(entry.counters.ack_failed.load(Ordering::Relaxed)) {
            tracing::warn!(
                bridge = %shared.name,
                %error,
                "switchboard-nats: could not acknowledge a message; it will be redelivered and \
                 skipped as a duplicate"
            );
        }
    }
}

/// Imports every at-least-once type from the bridge's durable consumer,
/// acknowledging each message once its event is in the bus.
pub(crate) async fn run_jetstream(
    shared: Arc<Shared>,
    mut consumer: Consumer,
    mut stopped: watch::Receiver<bool>,
) {
    let mut memory = Memory::jetstream(&shared);
    let mut failures: u64 = 0;
    loop {
        // Every wait on the server races the stop signal: with the server
        // gone, these calls wait for a reconnect that may never come.
        let messages = tokio::select! {
            biased;
            _ = stopped.wait_for(|stop| *stop) => return,
            messages = consumer.consumer.messages() => messages,
        };
        match messages {
            Ok(mut messages) => loop {
                let item = tokio::select! {
                    biased;
                    _ = stopped.wait_for(|stop| *stop) => return,
                    item = messages.next() => item,
                };
                match item {
                    Some(Ok(message)) => {
                        failures = 0;
                        handle_jetstream(&shared, &mut memory, message).await;
                    }
                    // The stream recovers from missed heartbeats and failed
                    // pulls by itself (a server restart shows as these).
                    Some(Err(error)) => {
                        failures += 1;
                        if log_now(failures) {
                            tracing::warn!(
                                bridge = %shared.name,
                                %error,
                                "switchboard-nats: the durable consumer reported an error"
                            );
                        }
                        if error.kind()
                            == async_nats::jetstream::consumer::pull::MessagesErrorKind::ConsumerDeleted
                        {
                            break;
                        }
                    }
                    None => break,
                }
            },
            Err(error) => {
                failures += 1;
                if log_now(failures) {
                    tracing::warn!(
                        bridge = %shared.name,
                        %error,
                        "switchboard-nats: could not read from the durable consumer; retrying"
                    );
                }
            }
        }
        tokio::select! {
            biased;
            _ = stopped.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let refreshed = tokio::select! {
            biased;
            _ = stopped.wait_for(|stop| *stop) => return,
            refreshed = consumer.refresh() => refreshed,
        };
        if let Err(error) = refreshed {
            tracing::warn!(
                bridge = %shared.name,
                %error,
                "switchboard-nats: could not recreate the durable consumer; retrying"
            );
        }
    }
}
