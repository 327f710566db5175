//! The exporters: one task per delivery mode reads the bridge's bus
//! subscription and publishes each event, in the order the bus delivered
//! them.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::client::PublishErrorKind as CorePublishErrorKind;
use async_nats::connection::State;
use futures_util::StreamExt;
use switchboard::{Event, Subscription};
use tokio::sync::watch;

use crate::cloudevents::event_id;
use crate::jetstream::StreamSpec;
use crate::prepared::{Format, Prepared};
use crate::shared::Shared;
use crate::stats::{bump, warn_counted};
use crate::stop::Stop;
use crate::types::{type_id_of, ExportType};
use crate::window::{Sent, Settled, Window};

/// What an exporter task keeps per event type.
struct TypeRun {
    /// Unique per bridge instance, mode and type: the first part of the
    /// events' ids (`{run}.{seq}`).
    run: String,
    /// How many events were sent. Only sent events take a number, so an
    /// importer's gap is a loss in transit.
    sent: u64,
    format: Arc<Format>,
}

/// A run of one exporter task: per event type, a run id and the number of
/// events sent, which make the events' ids (`{run}.{seq}`).
struct Run {
    shared: Arc<Shared>,
    types: HashMap<TypeId, TypeRun>,
    /// Whether the events carry JetStream's message id.
    jetstream: bool,
}

impl Run {
    fn new(shared: Arc<Shared>, jetstream: bool) -> Self {
        Self {
            shared,
            types: HashMap::new(),
            jetstream,
        }
    }

    /// Encodes `event`, or counts why it is not sent.
    fn prepare(&mut self, event: &Arc<dyn Event>) -> Option<Prepared> {
        let shared = &self.shared;
        let entry = Arc::clone(shared.export_of(type_id_of(&**event))?);
        let counters = &entry.counters;
        if shared.imported.take(event) {
            bump(&counters.echo_skipped);
            return None;
        }
        if event.event_type() != entry.event_type {
            warn_counted!(
                &counters.type_mismatch,
                bridge = %shared.name,
                rust_type = entry.rust_type,
                configured = %entry.event_type,
                actual = event.event_type(),
                "switchboard-nats: not exported: the event's type differs from the one it was \
                 exported as; export it under its own event type"
            );
            return None;
        }
        let data = match (entry.encode)(&**event) {
            Ok(data) => data,
            Err(error) => {
                warn_counted!(
                    &counters.encode_failed,
                    bridge = %shared.name,
                    event_type = %entry.event_type,
                    %error,
                    "switchboard-nats: not exported: the codec could not encode the event"
                );
                return None;
            }
        };
        let jetstream = self.jetstream;
        let run = self.types.entry(entry.type_id).or_insert_with(|| TypeRun {
            run: nuid::next().to_string(),
            sent: 0,
            format: Arc::new(Format::new(
                &entry,
                &shared.name,
                &shared.content_type,
                jetstream,
            )),
        });
        let time = event.timestamp();
        let trace = event.trace_context();
        let (headers, payload) =
            run.format
                .message(event_id(&run.run, run.sent + 1), time, data, trace);
        Some(Prepared {
            subject: entry.subject.clone(),
            headers,
            format: Arc::clone(&run.format),
            time,
            trace: trace.cloned(),
            entry,
            payload,
        })
    }

    /// Gives the sent event its number for good.
    fn sent(&mut self, entry: &ExportType) {
        if let Some(run) = self.types.get_mut(&entry.type_id) {
            run.sent += 1;
        }
    }
}

/// Counts the events left in the queue when the bridge stops.
fn abandon(shared: &Shared, subscription: &Subscription) {
    let mut abandoned = 0;
    while let Ok(event) = subscription.try_recv() {
        if let Some(entry) = shared.export_of(type_id_of(&*event)) {
            bump(&entry.counters.abandoned);
            abandoned += 1;
        }
    }
    if abandoned > 0 {
        tracing::warn!(
            bridge = %shared.name,
            abandoned,
            "switchboard-nats: the bridge stopped with events still queued for export; they are \
             counted as abandoned"
        );
    }
}

/// At-most-once: publish on core NATS, or count the event as unavailable
/// while the client is disconnected (rather than let it reach the server
/// minutes later, or block the queue).
pub(crate) async fn run_core(
    shared: Arc<Shared>,
    mut subscription: Subscription,
    stopped: watch::Receiver<bool>,
) {
    let mut run = Run::new(Arc::clone(&shared), false);
    let mut stop = Stop::new(stopped);
    while let Some(event) = stop.next(&mut subscription).await {
        let Some(event) = event else { break }; // the bus is gone
        let Some(prepared) = run.prepare(&event) else {
            continue;
        };
        let counters = &prepared.entry.counters;
        if shared.client.connection_state() != State::Connected {
            warn_counted!(
                &counters.unavailable,
                bridge = %shared.name,
                event_type = %prepared.entry.event_type,
                "switchboard-nats: at-most-once event dropped: not connected to NATS"
            );
            continue;
        }
        match shared
            .client
            .publish_with_headers(prepared.subject, prepared.headers, prepared.payload)
            .await
        {
            Ok(()) => {
                bump(&counters.exported);
                run.sent(&prepared.entry);
            }
            Err(error) => {
                let counter = if error.kind() == CorePublishErrorKind::MaxPayloadExceeded {
                    &counters.oversized
                } else {
                    &counters.failed
                };
                warn_counted!(
                    counter,
                    bridge = %shared.name,
                    event_type = %prepared.entry.event_type,
                    %error,
                    "switchboard-nats: at-most-once event not published"
                );
            }
        }
    }
    abandon(&shared, &subscription);
}

/// At-least-once: publish to JetStream with the event's id as message id,
/// up to `publish_window` events awaiting the stream's acknowledgement (see
/// [`window`](crate::window)); a publish that fails is sent again with the
/// same id (the server stores it once) before any new event.
pub(crate) async fn run_jetstream(
    shared: Arc<Shared>,
    stream: StreamSpec,
    mut subscription: Subscription,
    stopped: watch::Receiver<bool>,
) {
    let mut run = Run::new(Arc::clone(&shared), true);
    let mut stop = Stop::new(stopped);
    let window = Window::new(
        shared.name.clone(),
        stream.context.client(),
        shared.jetstream.publish_window,
        shared.jetstream.ack_timeout,
    )
    .await;
    let mut window = match window {
        Ok(window) => window,
        Err(error) => {
            tracing::error!(
                bridge = %shared.name,
                %error,
                "switchboard-nats: the at-least-once exporter cannot subscribe to its \
                 acknowledgements; its events are abandoned"
            );
            stop.requested().await;
            abandon(&shared, &subscription);
            return;
        }
    };
    // One retry timer for the whole loop: a new one per event costs more
    // than the rest of the select.
    let mut retry = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
    let mut looked_at = Instant::now();
    loop {
        let retry_at = window.retry_at();
        if let Some(at) = retry_at.filter(|at| *at != retry.deadline()) {
            retry.as_mut().reset(at);
        }
        tokio::select! {
            biased;
            () = stop.requested() => break,
            settled = window.next_settled(), if window.in_flight() => match settled {
                // No stream captures the subject (deleted, or its subjects
                // rewritten): add it again before the retry.
                Settled::NoStream(subject) => {
                    ensure_captured(&shared, &stream, subject.to_string()).await;
                }
                // Unacknowledged: a server away, or a broken stream, which
                // would never answer. Looked at once a second at most.
                Settled::Failed if looked_at.elapsed() >= STREAM_LOOK_EVERY => {
                    looked_at = Instant::now();
                    heal(&shared, &stream).await;
                }
                Settled::Failed | Settled::Stored => {}
            },
            () = &mut retry, if retry_at.is_some() => window.retry().await,
            event = subscription.next(), if window.takes_new() => {
                // The subscription ended (the bus is gone): what is in
                // flight is still awaited and the rest counted, below.
                let Some(event) = event else { break };
                let Some(prepared) = run.prepare(&event) else {
                    continue;
                };
                let entry = Arc::clone(&prepared.entry);
                if window.send(prepared).await == Sent::Taken {
                    run.sent(&entry);
                }
            }
        }
    }
    window.close().await;
    abandon(&shared, &subscription);
}

/// How often at most an exporter whose publishes go unacknowledged looks
/// whether its stream is broken.
const STREAM_LOOK_EVERY: Duration = Duration::from_secs(1);

/// Replaces the stream if it is broken; a server that does not answer is
/// already counted in the retries.
async fn heal(shared: &Shared, stream: &StreamSpec) {
    if let Err(error) = stream.heal().await {
        tracing::debug!(
            bridge = %shared.name,
            %error,
            "switchboard-nats: could not look whether the stream is broken"
        );
    }
}

/// Adds `subject` to the stream again, which a publish found capturing none.
async fn ensure_captured(shared: &Shared, stream: &StreamSpec, subject: String) {
    if let Err(error) = stream.restore(std::slice::from_ref(&subject)).await {
        tracing::warn!(
            bridge = %shared.name,
            %subject,
            %error,
            "switchboard-nats: no stream captures the subject and it could not be added"
        );
    }
}
