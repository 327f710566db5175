//! The responding side of requests across processes: a request from
//! another process is published into the local bus, and the local
//! responses to it are sent back to the requester's reply inbox until the
//! requester stops waiting.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_nats::Subscriber;
use bytes::Bytes;
use futures_util::StreamExt;
use switchboard::Subscription;
use tokio::sync::watch;

use crate::bridge::Shared;
use crate::cloudevents::{Incoming, Outgoing};
use crate::export::log_now;
use crate::stats::bump;
use crate::types::{type_id_of, ServedType};

/// How long responses to a request are forwarded when the requester did not
/// say how long it waits (`ce-sbttl`).
const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// The longest a requester can make the bridge forward responses.
const MAX_TTL: Duration = Duration::from_secs(600);
/// Below this many pending requests, expired ones are not swept; above it,
/// they are swept each time the count doubles since the last sweep.
const SWEEP_FLOOR: usize = 256;
/// The most requests from other processes waiting for answers at once: past
/// it, new ones are rejected (counted), so remote input cannot grow memory
/// without bound.
const MAX_PENDING: usize = 65_536;

struct Pending {
    reply: String,
    until: Instant,
}

/// The reply inboxes of the requests in flight, by request id (several
/// requesters may use one id).
#[derive(Default)]
pub(crate) struct PendingReplies {
    inner: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    by_id: HashMap<String, Vec<Pending>>,
    /// Sweep expired entries once there are this many (amortized: each
    /// sweep is paid for by as many inserts as it scans).
    sweep_at: usize,
    /// When the last sweep ran: while full, sweeps run at most once a
    /// second, so a flood of rejected requests costs no scan each.
    swept: Option<Instant>,
}

impl PendingReplies {
    /// Remembers `reply` for `request_id` until `until`; `false` if
    /// [`MAX_PENDING`] requests are waiting already.
    fn insert(&self, request_id: String, reply: String, until: Instant) -> bool {
        let mut waiting = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let full = waiting.by_id.len() >= MAX_PENDING
            && waiting
                .swept
                .is_none_or(|swept| now.duration_since(swept) >= Duration::from_secs(1));
        if waiting.by_id.len() >= waiting.sweep_at.max(SWEEP_FLOOR) || full {
            waiting.by_id.retain(|_, pending| {
                pending.retain(|p| p.until > now);
                !pending.is_empty()
            });
            waiting.sweep_at = 2 * waiting.by_id.len();
            waiting.swept = Some(now);
        }
        if waiting.by_id.len() >= MAX_PENDING && !waiting.by_id.contains_key(&request_id) {
            return false;
        }
        waiting
            .by_id
            .entry(request_id)
            .or_default()
            .push(Pending { reply, until });
        true
    }

    /// The inboxes still waiting for answers to `request_id`.
    fn replies(&self, request_id: &str) -> Vec<String> {
        let mut waiting = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let map = &mut waiting.by_id;
        let Some(pending) = map.get_mut(request_id) else {
            return Vec::new();
        };
        let now = Instant::now();
        pending.retain(|p| p.until > now);
        let replies = pending.iter().map(|p| p.reply.clone()).collect();
        if pending.is_empty() {
            map.remove(request_id);
        }
        replies
    }
}

fn reject(shared: &Shared, entry: &ServedType, why: &dyn std::fmt::Display) {
    bump(&shared.requests.served_rejected);
    if log_now(shared.requests.served_rejected.load(Ordering::Relaxed)) {
        tracing::warn!(
            bridge = %shared.name,
            request_type = %entry.request_type,
            %why,
            "switchboard-nats: skipped a request from another process"
        );
    }
}

/// Publishes requests from other processes into the local bus.
pub(crate) async fn run_requests(
    shared: Arc<Shared>,
    entry: Arc<ServedType>,
    mut subscriber: Subscriber,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let message = tokio::select! {
            biased;
            _ = stopped.wait_for(|stop| *stop) => return,
            message = subscriber.next() => match message {
                Some(message) => message,
                None => return,
            },
        };
        let Some(reply) = message.reply else {
            reject(&shared, &entry, &"no reply subject");
            continue;
        };
        let meta = match Incoming::parse(message.headers.as_ref()) {
            Ok(meta) => meta,
            Err(why) => {
                reject(&shared, &entry, &why);
                continue;
            }
        };
        if meta.source == shared.name {
            // This process's own request: its local responders answer
            // `EventBus::request`, not the bridged one.
            continue;
        }
        if meta.event_type != entry.request_type {
            reject(
                &shared,
                &entry,
                &format!("ce-type is {:?}", meta.event_type),
            );
            continue;
        }
        if message.payload.len() > shared.max_import_bytes {
            reject(&shared, &entry, &"larger than max_import_bytes");
            continue;
        }
        let (request, request_id) = match (entry.decode_request)(&message.payload) {
            Ok(decoded) => decoded,
            Err(error) => {
                reject(&shared, &entry, &error);
                continue;
            }
        };
        let ttl = meta.ttl.unwrap_or(DEFAULT_TTL).min(MAX_TTL);
        // Registered before the request is published: a responder may
        // answer before `publish_arc` returns.
        if !shared
            .pending_replies
            .insert(request_id, reply.to_string(), Instant::now() + ttl)
        {
            reject(&shared, &entry, &"too many requests in flight");
            continue;
        }
        if shared.exported_types.contains(&type_id_of(&*request)) {
            shared.imported.insert(&request);
        }
        shared.bus.publish_arc(request);
        bump(&shared.requests.served);
    }
}

/// Sends local responses back to the requesters waiting for them.
pub(crate) async fn run_replies(
    shared: Arc<Shared>,
    mut responses: Subscription,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let response = tokio::select! {
            biased;
            _ = stopped.wait_for(|stop| *stop) => return,
            response = responses.next() => match response {
                Some(response) => response,
                None => return,
            },
        };
        let type_id = type_id_of(&*response);
        let Some(entry) = shared.served.iter().find(|s| s.response_type_id == type_id) else {
            continue;
        };
        let Some(request_id) = (entry.response_request_id)(&*response) else {
            continue;
        };
        let replies = shared.pending_replies.replies(request_id);
        if replies.is_empty() {
            // A response to a local request, or to one whose requester gave up.
            continue;
        }
        let payload = match (entry.encode_response)(&*response) {
            Ok(payload) => Bytes::from(payload),
            Err(error) => {
                bump(&shared.requests.replies_failed);
                tracing::warn!(
                    bridge = %shared.name,
                    response_type = entry.response_rust_type,
                    %error,
                    "switchboard-nats: could not encode a response"
                );
                continue;
            }
        };
        let id = nuid::next().to_string();
        let headers = Outgoing {
            id: &id,
            event_type: response.event_type(),
            source: &shared.name,
            time: response.timestamp(),
            content_type: &shared.content_type,
            ttl: None,
        }
        .headers();
        for reply in replies {
            match shared
                .client
                .publish_with_headers(reply, headers.clone(), payload.clone())
                .await
            {
                Ok(()) => bump(&shared.requests.replies_sent),
                Err(error) => {
                    bump(&shared.requests.replies_failed);
                    tracing::warn!(
                        bridge = %shared.name,
                        %error,
                        "switchboard-nats: could not send a response back"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_replies_expire() {
        let pending = PendingReplies::default();
        let now = Instant::now();
        pending.insert("r1".into(), "inbox.a".into(), now + Duration::from_secs(60));
        pending.insert("r1".into(), "inbox.b".into(), now + Duration::from_secs(60));
        pending.insert("r2".into(), "inbox.c".into(), now);
        assert_eq!(pending.replies("r1"), ["inbox.a", "inbox.b"]);
        assert!(pending.replies("r2").is_empty());
        assert!(pending.replies("r3").is_empty());
    }

    #[test]
    fn pending_replies_are_capped_but_an_id_in_flight_still_gets_more_inboxes() {
        let pending = PendingReplies::default();
        let later = Instant::now() + Duration::from_secs(3600);
        for n in 0..MAX_PENDING {
            assert!(pending.insert(n.to_string(), "inbox".into(), later));
        }
        assert!(!pending.insert("one too many".into(), "inbox".into(), later));
        assert!(pending.insert("0".into(), "inbox.b".into(), later));
        assert_eq!(pending.replies("0"), ["inbox", "inbox.b"]);
    }
}
