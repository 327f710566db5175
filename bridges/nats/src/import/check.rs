//! Checking one imported message, in either CloudEvents mode: parsed,
//! placed in its publisher's order, decoded; the verdict says whether it
//! goes into the bus. Both importers use it.

use std::borrow::Cow;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use async_nats::HeaderMap;
use switchboard::Event;

use crate::cloudevents::Incoming;
use crate::config::Delivery;
use crate::order::{Admit, RecentIds, Runs};
use crate::shared::Shared;
use crate::stats::{bump, warn_counted};
use crate::structured;
use crate::subject;
use crate::types::ImportType;

/// What became of one message.
pub(crate) enum Verdict<'a> {
    /// Accepted (counted as imported): the caller publishes it into the bus.
    Import(Accepted<'a>),
    /// Skipped for good: acknowledge it.
    Done,
    /// An earlier event of its publisher is missing: hold it back until that
    /// one comes (JetStream redelivers it) or the order wait ends.
    HoldBack,
    /// It cannot be parsed, decoded or validated (counted already): on
    /// JetStream it goes to the dead letters, for the reason given.
    Rejected(String),
}

/// An event accepted for the bus, with its identity, borrowed from the
/// message's headers: the at-most-once importer has no use for it, the
/// at-least-once one keeps a copy until the event is complete.
pub(crate) struct Accepted<'a> {
    pub(crate) event: Arc<dyn Event>,
    pub(crate) source: &'a str,
    pub(crate) id: &'a str,
    /// The span the event is imported in, if it has a trace context: it
    /// ends when the importer is done publishing (dropping this).
    #[cfg(feature = "opentelemetry")]
    pub(crate) span: Option<tracing::Span>,
}

/// What an importer remembers between messages.
pub(crate) struct Memory {
    /// JetStream only: the (source, id) of the events already imported.
    pub(crate) recent: Option<RecentIds>,
    runs: Runs,
}

impl Memory {
    pub(crate) fn core(shared: &Shared) -> Self {
        Self {
            recent: None,
            runs: Runs::new(None, window(shared)),
        }
    }

    pub(crate) fn jetstream(shared: &Shared) -> Self {
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
fn reject(
    shared: &Shared,
    entry: &ImportType,
    counter: &AtomicU64,
    reason: String,
) -> Verdict<'static> {
    warn_counted!(
        counter,
        bridge = %shared.name,
        event_type = %entry.event_type,
        "switchboard-nats: a message could not be imported: {reason}"
    );
    Verdict::Rejected(reason)
}

fn too_large<'a>(shared: &Shared, entry: &ImportType, bytes: usize) -> Verdict<'a> {
    reject(
        shared,
        entry,
        &entry.counters.oversized,
        format!(
            "its payload of {bytes} bytes exceeds max_import_bytes ({})",
            shared.max_import_bytes
        ),
    )
}

/// Checks, decodes and publishes one message of `entry`'s type, in either
/// CloudEvents mode.
/// `may_hold`: whether it may be held back for its publisher's order.
pub(crate) fn process<'a>(
    shared: &Shared,
    entry: &ImportType,
    memory: &mut Memory,
    headers: Option<&'a HeaderMap>,
    payload: &'a [u8],
    may_hold: bool,
) -> Verdict<'a> {
    let counters = &entry.counters;
    bump(&counters.received);
    let parsed = match Incoming::parse(headers) {
        Ok(meta) => Ok((meta, Cow::Borrowed(payload))),
        // Only a message without the binary-mode headers is looked at as a
        // structured one: binary mode pays nothing for it.
        Err(_) if structured::is_structured(headers) => {
            if payload.len() > shared.max_import_bytes {
                return too_large(shared, entry, payload.len());
            }
            structured::parse(payload)
        }
        Err(why) => Err(why.to_string()),
    };
    let (meta, payload) = match parsed {
        Ok(parsed) => parsed,
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
        .is_some_and(|r| r.contains(meta.source, meta.id))
    {
        bump(&counters.duplicates);
        return Verdict::Done;
    }
    if let Some((run, seq)) = meta.sequence {
        if let Some(verdict) = admit(shared, entry, memory, meta.source, run, seq, may_hold) {
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
        return too_large(shared, entry, payload.len());
    }
    let trace = meta.trace.resolve();
    if trace.invalid {
        warn_counted!(
            &counters.trace_invalid,
            bridge = %shared.name,
            event_type = %entry.event_type,
            "switchboard-nats: a message's trace context is not valid W3C Trace Context; \
             imported without it"
        );
    }
    #[cfg(feature = "opentelemetry")]
    let span = trace
        .context
        .as_ref()
        .map(|context| crate::otel::import_span(&entry.event_type, meta.source, context));
    #[cfg(feature = "opentelemetry")]
    let _entered = span.as_ref().map(tracing::Span::enter);
    let event = match (entry.decode)(&payload, trace.context) {
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
    // Counted before the caller publishes: whoever sees the event in the
    // bus sees it counted.
    bump(&counters.imported);
    // Remembered only once accepted: a corrected republish of a message
    // that was rejected, with the same id, is not a duplicate. Remembered
    // before it is complete: a redelivery meanwhile is one.
    if let Some(recent) = memory.recent.as_mut() {
        recent.insert(meta.source, meta.id);
    }
    #[cfg(feature = "opentelemetry")]
    drop(_entered);
    Verdict::Import(Accepted {
        event,
        source: meta.source,
        id: meta.id,
        #[cfg(feature = "opentelemetry")]
        span,
    })
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
    may_hold: bool,
) -> Option<Verdict<'static>> {
    let counters = &entry.counters;
    match memory.runs.admit(run, seq, Instant::now(), may_hold) {
        Admit::InOrder => {}
        Admit::AfterGap { missed } => {
            warn_counted!(
                (&counters.missed, missed),
                bridge = %shared.name,
                event_type = %entry.event_type,
                source,
                missed,
                "switchboard-nats: events of this publisher never arrived (counted as missed)"
            );
        }
        Admit::Late => bump(&counters.late),
        Admit::Unordered => bump(&counters.unordered),
        Admit::Jump => warn_counted!(
            &counters.jumps,
            bridge = %shared.name,
            event_type = %entry.event_type,
            source,
            seq,
            "switchboard-nats: a publisher's event number jumped further ahead than \
             dedup_window; counted as a new start, not as missed events"
        ),
        Admit::HoldBack => {
            bump(&counters.held_back);
            return Some(Verdict::HoldBack);
        }
    }
    None
}

/// The import type a JetStream message's subject carries, or why none.
pub(crate) enum Route<'a> {
    To(&'a Arc<ImportType>),
    OutsidePrefix,
    NotImported,
}

pub(crate) fn route<'a>(shared: &'a Shared, subject: &str) -> Route<'a> {
    let Some(event_type) = subject::event_type_of(&shared.prefix, subject) else {
        return Route::OutsidePrefix;
    };
    shared
        .imports
        .iter()
        .find(|i| i.delivery == Delivery::AtLeastOnce && i.event_type == event_type)
        .map_or(Route::NotImported, Route::To)
}
