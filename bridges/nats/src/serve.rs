//! The responding side of requests across processes: a request from
//! another process is published into the local bus, and the local
//! responses to it are sent back to the requester's reply inbox until the
//! requester says it is done (or stops waiting); a request that cannot be
//! served is answered with why.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_nats::{HeaderMap, Message, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt;
use switchboard::{Event, Subscription};
use tokio::sync::watch;

use crate::bridge::Shared;
use crate::cloudevents::{Incoming, Outgoing, REJECTED, SOURCE};
use crate::stats::{bump, warn_counted};
use crate::stop::Stop;
use crate::types::{type_id_of, ServedType};

/// How long responses to a request are forwarded when the requester did not
/// say how long it waits (`ce-sbttl`).
const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// The longest a requester can make the bridge forward responses.
const MAX_TTL: Duration = Duration::from_secs(600);
/// Below this many pending requests, expired ones are not swept; above it,
/// they are swept each time the count doubles since the last sweep.
const SWEEP_FLOOR: usize = 256;
/// The longest rejection reason sent back: it rides in a header.
const MAX_REASON_LEN: usize = 256;

/// The control subject on which a requester says that its request ended
/// (quorum, timeout, cancellation or drop); the payload is the request's
/// reply inbox, which only the requester and the serving bridges know.
pub(crate) fn done_subject(prefix: &str) -> String {
    crate::subject::control(prefix, "done")
}

struct Pending {
    reply: String,
    until: Instant,
}

/// The reply inboxes of the requests in flight, by request id (several
/// requesters may use one id), at most `max` of them.
pub(crate) struct PendingReplies {
    max: usize,
    inner: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    by_id: HashMap<String, Vec<Pending>>,
    /// The request id of each inbox in `by_id`: a done notice names the inbox.
    by_reply: HashMap<String, String>,
    /// Sweep expired entries once there are this many (amortized: each
    /// sweep is paid for by as many inserts as it scans).
    sweep_at: usize,
    /// When the last sweep ran: while full, sweeps run at most once a
    /// second, so a flood of rejected requests costs no scan each.
    swept: Option<Instant>,
}

impl Waiting {
    /// Forgets `reply`; whether it was waiting.
    fn remove(&mut self, reply: &str) -> bool {
        let Some(request_id) = self.by_reply.remove(reply) else {
            return false;
        };
        if let Some(pending) = self.by_id.get_mut(&request_id) {
            pending.retain(|p| p.reply != reply);
            if pending.is_empty() {
                self.by_id.remove(&request_id);
            }
        }
        true
    }

    fn sweep(&mut self, now: Instant) {
        let Waiting {
            by_id, by_reply, ..
        } = self;
        by_id.retain(|_, pending| {
            pending.retain(|p| p.until > now || forget(by_reply, &p.reply));
            !pending.is_empty()
        });
        self.sweep_at = 2 * self.by_reply.len();
        self.swept = Some(now);
    }
}

/// Drops an expired entry's inbox from the index; `false`: drop the entry too.
fn forget(by_reply: &mut HashMap<String, String>, reply: &str) -> bool {
    by_reply.remove(reply);
    false
}

impl PendingReplies {
    /// Room for `max` requests in flight.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers `reply` for `request_id` until `until` (an inbox used
    /// again waits for its latest request only); `false` if `max` requests
    /// are waiting already.
    fn insert(&self, request_id: String, reply: String, until: Instant) -> bool {
        let mut waiting = self.lock();
        waiting.remove(&reply);
        let now = Instant::now();
        let count = waiting.by_reply.len();
        let full = count >= self.max
            && waiting
                .swept
                .is_none_or(|swept| now.duration_since(swept) >= Duration::from_secs(1));
        if count >= waiting.sweep_at.max(SWEEP_FLOOR) || full {
            waiting.sweep(now);
        }
        if waiting.by_reply.len() >= self.max {
            return false;
        }
        waiting.by_reply.insert(reply.clone(), request_id.clone());
        waiting
            .by_id
            .entry(request_id)
            .or_default()
            .push(Pending { reply, until });
        true
    }

    /// The inboxes still waiting for answers to `request_id`.
    fn replies(&self, request_id: &str) -> Vec<String> {
        let mut waiting = self.lock();
        let Waiting {
            by_id, by_reply, ..
        } = &mut *waiting;
        let Some(pending) = by_id.get_mut(request_id) else {
            return Vec::new();
        };
        let now = Instant::now();
        pending.retain(|p| p.until > now || forget(by_reply, &p.reply));
        let replies = pending.iter().map(|p| p.reply.clone()).collect();
        if pending.is_empty() {
            by_id.remove(request_id);
        }
        replies
    }

    /// Forgets the request waiting on `reply`, its requester being done;
    /// whether one was. Only the exact inbox matches: a notice frees at most
    /// the one request whose inbox it names.
    fn done(&self, reply: &str) -> bool {
        self.lock().remove(reply)
    }
}

/// `why` as a header value: control characters (a line break would end the
/// header) become spaces, and it is cut to [`MAX_REASON_LEN`] bytes.
fn header_value(why: &str) -> String {
    why.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .scan(0, |len, c| {
            *len += c.len_utf8();
            (*len <= MAX_REASON_LEN).then_some(c)
        })
        .collect()
}

/// Counts and logs a request from another process that is not served, and
/// tells its requester why (a reply with [`REJECTED`]) if it gave an inbox,
/// so that it fails at once instead of waiting for its timeout.
async fn reject(
    shared: &Shared,
    entry: &ServedType,
    reply: Option<&async_nats::Subject>,
    why: &str,
) {
    warn_counted!(
        &shared.requests.served_rejected,
        bridge = %shared.name,
        request_type = %entry.request_type,
        %why,
        "switchboard-nats: rejected a request from another process"
    );
    let Some(reply) = reply else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(SOURCE, shared.name.as_str());
    headers.insert(REJECTED, header_value(why).as_str());
    match shared
        .client
        .publish_with_headers(reply.clone(), headers, Bytes::new())
        .await
    {
        Ok(()) => bump(&shared.requests.rejections_sent),
        Err(error) => {
            bump(&shared.requests.replies_failed);
            tracing::warn!(
                bridge = %shared.name,
                %error,
                "switchboard-nats: could not tell a requester its request was rejected"
            );
        }
    }
}

/// Checks a request from another process and registers its reply inbox:
/// the request to publish into the bus, `None` for this bridge's own
/// request, or why it is rejected.
fn admit(
    shared: &Shared,
    entry: &ServedType,
    message: &Message,
) -> Result<Option<Arc<dyn Event>>, String> {
    let reply = message
        .reply
        .as_ref()
        .ok_or_else(|| "it has no reply subject".to_owned())?;
    let meta = Incoming::parse(message.headers.as_ref())
        .map_err(|why| format!("its CloudEvents headers are malformed: {why}"))?;
    if meta.source == shared.name {
        // Its local responders answer `EventBus::request`, not the bridged one.
        return Ok(None);
    }
    if meta.event_type != entry.request_type {
        return Err(format!(
            "its ce-type is {:?}, not {:?}",
            meta.event_type, entry.request_type
        ));
    }
    if message.payload.len() > shared.max_import_bytes {
        return Err(format!(
            "its {} bytes exceed the serving bridge's max_import_bytes ({})",
            message.payload.len(),
            shared.max_import_bytes
        ));
    }
    let trace = meta.trace.resolve();
    if trace.invalid {
        bump(&shared.requests.trace_invalid);
    }
    let (request, request_id) = (entry.decode_request)(&message.payload, trace.context)
        .map_err(|error| format!("it does not decode as {}: {error}", entry.request_rust_type))?;
    let ttl = meta.ttl.unwrap_or(DEFAULT_TTL).min(MAX_TTL);
    // Registered before the request is published: a responder may answer
    // before `publish_arc` returns.
    if !shared
        .pending_replies
        .insert(request_id, reply.to_string(), Instant::now() + ttl)
    {
        return Err(format!(
            "{} requests, its max_pending_requests, are in flight already",
            shared.pending_replies.max
        ));
    }
    Ok(Some(request))
}

/// Publishes requests from other processes into the local bus, and frees
/// the entries of those whose requesters say they are done.
///
/// One task reads both subjects, requests first: the client hands over a
/// connection's messages in the order the server sent them, so a request
/// is registered before the done notice that ends it is read (read first,
/// the notice would find nothing and the entry would wait for its TTL).
/// While requests arrive faster than the task takes them, the notices wait
/// and the TTLs bound the entries. Each served type's task reads every
/// notice; each frees what it finds.
pub(crate) async fn run_requests(
    shared: Arc<Shared>,
    entry: Arc<ServedType>,
    mut subscriber: Subscriber,
    mut done: Subscriber,
    stopped: watch::Receiver<bool>,
) {
    let mut stop = Stop::new(stopped);
    loop {
        let message = tokio::select! {
            biased;
            () = stop.requested() => return,
            message = subscriber.next() => match message {
                Some(message) => message,
                None => return,
            },
            notice = done.next() => {
                let Some(notice) = notice else { return };
                // Anything but a waiting inbox (garbage, another bridge's
                // request, one already freed) frees nothing.
                if std::str::from_utf8(&notice.payload)
                    .is_ok_and(|inbox| shared.pending_replies.done(inbox))
                {
                    bump(&shared.requests.served_done);
                }
                continue;
            }
        };
        match admit(&shared, &entry, &message) {
            Ok(Some(request)) => {
                if shared.exported_types.contains(&type_id_of(&*request)) {
                    shared.imported.insert(&request);
                }
                shared.bus.publish_arc(request);
                bump(&shared.requests.served);
            }
            Ok(None) => {}
            Err(why) => reject(&shared, &entry, message.reply.as_ref(), &why).await,
        }
    }
}

/// Sends local responses back to the requesters waiting for them.
pub(crate) async fn run_replies(
    shared: Arc<Shared>,
    mut responses: Subscription,
    stopped: watch::Receiver<bool>,
) {
    let mut stop = Stop::new(stopped);
    while let Some(Some(response)) = stop.next(&mut responses).await {
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
            trace: response.trace_context(),
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

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[test]
    fn pending_replies_expire() {
        let pending = PendingReplies::new(16);
        let now = Instant::now();
        pending.insert("r1".into(), "inbox.a".into(), now + Duration::from_secs(60));
        pending.insert("r1".into(), "inbox.b".into(), now + Duration::from_secs(60));
        pending.insert("r2".into(), "inbox.c".into(), now);
        assert_eq!(pending.replies("r1"), ["inbox.a", "inbox.b"]);
        assert!(pending.replies("r2").is_empty());
        assert!(pending.replies("r3").is_empty());
        // Expired and dropped: nothing left for a done notice either.
        assert!(!pending.done("inbox.c"));
    }

    #[test]
    fn pending_replies_are_capped_and_done_frees_room() {
        let pending = PendingReplies::new(4);
        for n in 0..4 {
            assert!(pending.insert(n.to_string(), format!("inbox.{n}"), later()));
        }
        assert!(!pending.insert("4".into(), "inbox.4".into(), later()));
        // Another inbox for an id in flight is another request: no room either.
        assert!(!pending.insert("0".into(), "inbox.0b".into(), later()));
        assert!(pending.done("inbox.2"));
        assert!(pending.insert("4".into(), "inbox.4".into(), later()));
        assert!(pending.replies("2").is_empty());
        assert_eq!(pending.replies("4"), ["inbox.4"]);
    }

    #[test]
    fn a_done_notice_frees_only_the_inbox_it_names() {
        let pending = PendingReplies::new(16);
        pending.insert("r1".into(), "_INBOX.a".into(), later());
        pending.insert("r1".into(), "_INBOX.b".into(), later());
        pending.insert("r2".into(), "_INBOX.c".into(), later());
        for hostile in [
            "",
            "_INBOX.",
            "_INBOX.*",
            "_INBOX.>",
            "r1",
            "_INBOX.a ",
            "_INBOX.z",
        ] {
            assert!(!pending.done(hostile), "{hostile:?}");
        }
        assert!(pending.done("_INBOX.a"));
        assert!(!pending.done("_INBOX.a"), "freed once");
        assert_eq!(pending.replies("r1"), ["_INBOX.b"]);
        assert_eq!(pending.replies("r2"), ["_INBOX.c"]);
        assert!(pending.done("_INBOX.b"));
        assert!(pending.replies("r1").is_empty());
    }

    #[test]
    fn an_inbox_used_again_waits_for_its_latest_request() {
        let pending = PendingReplies::new(1);
        assert!(pending.insert("r1".into(), "inbox".into(), later()));
        assert!(pending.insert("r2".into(), "inbox".into(), later()));
        assert!(pending.replies("r1").is_empty());
        assert_eq!(pending.replies("r2"), ["inbox"]);
    }

    #[test]
    fn a_full_table_sweeps_the_expired_entries_and_their_index() {
        let pending = PendingReplies::new(2);
        let now = Instant::now();
        pending.insert("r1".into(), "inbox.1".into(), now);
        pending.insert("r2".into(), "inbox.2".into(), now);
        assert!(pending.insert("r3".into(), "inbox.3".into(), later()));
        assert!(!pending.done("inbox.1"));
        assert!(pending.insert("r4".into(), "inbox.4".into(), later()));
        assert!(!pending.insert("r5".into(), "inbox.5".into(), later()));
    }

    #[test]
    fn rejection_reasons_are_valid_header_values() {
        assert_eq!(header_value("bad\r\nheader\tvalue"), "bad  header value");
        let long = "é".repeat(MAX_REASON_LEN);
        assert_eq!(header_value(&long).len(), MAX_REASON_LEN);
    }
}
