//! The responding side of requests across processes: a request from
//! another process is published into the local bus, and the local
//! responses to it are sent back to the requester's reply inbox until the
//! requester says it is done (or stops waiting); a request that cannot be
//! served is answered with why.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::{HeaderMap, Message, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt;
use switchboard::{Event, Subscription};
use tokio::sync::watch;

use crate::cloudevents::{Incoming, Outgoing, REJECTED, SOURCE};
use crate::shared::Shared;
use crate::stats::{bump, warn_counted};
use crate::stop::Stop;
use crate::types::{type_id_of, ServedType};

/// How long responses to a request are forwarded when the requester did not
/// say how long it waits (`ce-sbttl`).
const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// The longest a requester can make the bridge forward responses.
const MAX_TTL: Duration = Duration::from_secs(600);
/// The longest rejection reason sent back: it rides in a header.
const MAX_REASON_LEN: usize = 256;

/// The control subject on which a requester says that its request ended
/// (quorum, timeout, cancellation or drop); the payload is the request's
/// reply inbox, which only the requester and the serving bridges know.
pub(crate) fn done_subject(prefix: &str) -> String {
    crate::subject::control(prefix, "done")
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
            warn_counted!(
                &shared.requests.replies_failed,
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
                warn_counted!(
                    &shared.requests.replies_failed,
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
                    warn_counted!(
                        &shared.requests.replies_failed,
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
    fn rejection_reasons_are_valid_header_values() {
        assert_eq!(header_value("bad\r\nheader\tvalue"), "bad  header value");
        let long = "é".repeat(MAX_REASON_LEN);
        assert_eq!(header_value(&long).len(), MAX_REASON_LEN);
    }
}
