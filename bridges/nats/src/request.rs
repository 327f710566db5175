//! The requesting side of requests across processes: scatter-gather over
//! NATS request/reply, counted by the core's [`RequestTally`] as a local request is.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::StatusCode;
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use switchboard::{
    CancelToken, Request, RequestOptions, RequestOptionsError, RequestResult, RequestTally,
    Response,
};
use tokio::time::Instant;

use crate::bridge::Bridge;
use crate::cloudevents::{Incoming, Outgoing, REJECTED, SOURCE};
use crate::codec::{Codec, CodecError, Json};
use crate::serve::done_subject;
use crate::shared::Shared;
use crate::stats::bump;
use crate::subject::{self, SubjectError};
use crate::types::decode_traced;

/// Why a request across processes failed. Timeouts, cancellations and
/// rejections carry the partial result and how many responses were
/// required, as the core's [`RequestError`](switchboard::RequestError)
/// does; timeouts and cancellations are worded as its are.
#[non_exhaustive]
pub enum RemoteRequestError<R> {
    /// The options fail [`RequestOptions::validate`]; nothing was sent.
    InvalidOptions(RequestOptionsError),
    /// The request's event type cannot be a subject; nothing was sent.
    InvalidEventType {
        /// The event type.
        event_type: String,
        /// What is wrong with it.
        reason: SubjectError,
    },
    /// The codec could not encode the request; nothing was sent.
    Encode(CodecError),
    /// The request could not be sent (its reply inbox or its publish failed).
    Send(async_nats::Error),
    /// No process subscribes to the request's subject: NATS answered at
    /// once that there are no responders.
    NoResponders {
        /// The request's subject.
        subject: String,
    },
    /// The quorum did not answer in time (as
    /// [`RequestError::Timeout`](switchboard::RequestError::Timeout)).
    Timeout {
        /// The timeout that expired.
        timeout: Duration,
        /// How many expected responders had to answer.
        required: usize,
        /// What had arrived when the timeout expired.
        partial: RequestResult<R>,
    },
    /// The cancel token was cancelled before the quorum answered (as
    /// [`RequestError::Cancelled`](switchboard::RequestError::Cancelled)).
    Cancelled {
        /// How many expected responders had to answer.
        required: usize,
        /// What had arrived when the request was cancelled.
        partial: RequestResult<R>,
    },
    /// A serving bridge rejected the request and said why, so its
    /// responders will not answer: it had
    /// [`max_pending_requests`](crate::BridgeBuilder::max_pending_requests)
    /// requests in flight already, or it could not read the request (too
    /// large for its `max_import_bytes`, undecodable, malformed headers).
    /// The request ends at once rather than at its timeout.
    Rejected {
        /// The serving bridge's name (its `ce-source`; empty if the
        /// rejection did not say).
        by: String,
        /// Why, in the serving bridge's words.
        reason: String,
        /// How many expected responders had to answer.
        required: usize,
        /// What had arrived when the rejection came.
        partial: RequestResult<R>,
    },
    /// The bridge stopped before the request ended.
    Stopped,
}

impl<R> RemoteRequestError<R> {
    /// The partial result of a timed-out, cancelled or rejected request.
    pub fn partial(&self) -> Option<&RequestResult<R>> {
        match self {
            RemoteRequestError::Timeout { partial, .. }
            | RemoteRequestError::Cancelled { partial, .. }
            | RemoteRequestError::Rejected { partial, .. } => Some(partial),
            _ => None,
        }
    }

    /// Takes the partial result of a timed-out, cancelled or rejected
    /// request.
    pub fn into_partial(self) -> Option<RequestResult<R>> {
        match self {
            RemoteRequestError::Timeout { partial, .. }
            | RemoteRequestError::Cancelled { partial, .. }
            | RemoteRequestError::Rejected { partial, .. } => Some(partial),
            _ => None,
        }
    }

    /// Whether no process serves the request's subject (see
    /// [`RemoteRequestError::NoResponders`]).
    pub fn is_no_responders(&self) -> bool {
        matches!(self, RemoteRequestError::NoResponders { .. })
    }

    /// Whether the request timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RemoteRequestError::Timeout { .. })
    }

    /// Whether the request was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, RemoteRequestError::Cancelled { .. })
    }

    /// Whether a serving bridge rejected the request (see
    /// [`RemoteRequestError::Rejected`]).
    pub fn is_rejected(&self) -> bool {
        matches!(self, RemoteRequestError::Rejected { .. })
    }
}

impl<R> fmt::Display for RemoteRequestError<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteRequestError::InvalidOptions(error) => {
                write!(f, "invalid request options: {error}")
            }
            RemoteRequestError::InvalidEventType { event_type, reason } => write!(
                f,
                "the request type {event_type:?} cannot be a NATS subject because {reason}: \
                 give it a name of dot-separated tokens without spaces or wildcards"
            ),
            RemoteRequestError::Encode(error) => write!(f, "could not encode the request: {error}"),
            RemoteRequestError::Send(error) => write!(
                f,
                "could not send the request: {error}; check the connection to NATS"
            ),
            RemoteRequestError::NoResponders { subject } => write!(
                f,
                "no process serves requests on {subject:?}: start a bridge that serves this \
                 request type (BridgeBuilder::serve) in the responding processes"
            ),
            RemoteRequestError::Timeout {
                timeout,
                required,
                partial,
            } => partial.timeout_message(*timeout, *required).fmt(f),
            RemoteRequestError::Cancelled { required, partial } => {
                partial.cancelled_message(*required).fmt(f)
            }
            RemoteRequestError::Rejected {
                by,
                reason,
                required,
                partial,
            } => write!(
                f,
                "the serving bridge {by:?} rejected the request with {}: {reason}. If it had \
                 too many requests in flight, raise its BridgeBuilder::max_pending_requests or \
                 send fewer requests at once; otherwise fix the request (its size, encoding or \
                 headers)",
                partial.progress(*required)
            ),
            RemoteRequestError::Stopped => f.write_str("the bridge stopped during the request"),
        }
    }
}

impl<R: Response> fmt::Debug for RemoteRequestError<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteRequestError::Timeout { partial, .. } => {
                write!(f, "Timeout({self}; {partial:?})")
            }
            RemoteRequestError::Cancelled { partial, .. } => {
                write!(f, "Cancelled({self}; {partial:?})")
            }
            RemoteRequestError::Rejected { partial, .. } => {
                write!(f, "Rejected({self}; {partial:?})")
            }
            _ => write!(f, "{self}"),
        }
    }
}

impl<R: Response> Error for RemoteRequestError<R> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            RemoteRequestError::InvalidOptions(error) => Some(error),
            RemoteRequestError::InvalidEventType { reason, .. } => Some(reason),
            RemoteRequestError::Encode(error) => Some(error),
            RemoteRequestError::Send(error) => Some(&**error),
            _ => None,
        }
    }
}

/// Tells the serving bridges, when dropped, that the request waiting on
/// `inbox` has ended, however it ended (quorum, timeout, cancellation,
/// rejection, or the drop of its future), so that they forget it before its
/// TTL and have room for the next ones.
struct DoneNotice {
    shared: Arc<Shared>,
    inbox: String,
}

impl Drop for DoneNotice {
    fn drop(&mut self) {
        let subject = done_subject(&self.shared.prefix);
        let inbox = Bytes::from(std::mem::take(&mut self.inbox));
        // `Drop` cannot wait: handed to the client at once when its command
        // queue has room (the common case), else to a task if a runtime is
        // at hand. A lost notice only leaves the entries to their TTL.
        let sent = self
            .shared
            .client
            .publish(subject.clone(), inbox.clone())
            .now_or_never();
        if sent.is_none() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let client = self.shared.client.clone();
                runtime.spawn(async move { client.publish(subject, inbox).await });
            }
        }
    }
}

async fn request<R, Q>(
    shared: Arc<Shared>,
    request: Q,
    mut options: RequestOptions,
) -> Result<RequestResult<R>, RemoteRequestError<R>>
where
    Q: Request + Serialize,
    R: Response + DeserializeOwned,
{
    let timeout = options.timeout;
    let token = options.cancel_token.take();
    let mut tally = RequestTally::<R>::new(options).map_err(RemoteRequestError::InvalidOptions)?;
    if token.as_ref().is_some_and(CancelToken::is_cancelled) {
        bump(&shared.requests.cancelled);
        return Err(RemoteRequestError::Cancelled {
            required: tally.required(),
            partial: tally.finish(),
        });
    }
    let event_type = request.event_type().to_owned();
    subject::check_event_type(&shared.prefix, &event_type).map_err(|reason| {
        RemoteRequestError::InvalidEventType {
            event_type: event_type.clone(),
            reason,
        }
    })?;
    let subject = subject::for_event_type(&shared.prefix, &event_type);
    // Requests and responses are JSON whatever the bridges' codecs: see `Bridge::request`.
    let payload = Json.encode(&request).map_err(RemoteRequestError::Encode)?;
    let id = nuid::next().to_string();
    let headers = Outgoing {
        id: &id,
        event_type: &event_type,
        source: &shared.name,
        time: SystemTime::now(),
        content_type: Json.content_type(),
        ttl: Some(timeout),
        trace: request.trace_context(),
    }
    .headers();

    let inbox = shared.client.new_inbox();
    let mut replies = shared
        .client
        .subscribe(inbox.clone())
        .await
        .map_err(|error| RemoteRequestError::Send(error.into()))?;
    shared
        .client
        .publish_with_reply_and_headers(
            subject.clone(),
            inbox.clone(),
            headers,
            Bytes::from(payload),
        )
        .await
        .map_err(|error| RemoteRequestError::Send(error.into()))?;
    bump(&shared.requests.sent);
    // Sent after the request on the same connection, so a serving bridge
    // reads it after the request: see `serve::run_requests`.
    let _done = DoneNotice {
        shared: Arc::clone(&shared),
        inbox,
    };

    // A timeout too large to add to now means no timeout, as locally.
    let deadline = Instant::now().checked_add(timeout);
    let expired = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expired);
    let cancelled = async {
        match &token {
            Some(token) => token.cancelled().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(cancelled);
    let request_id = request.request_id();
    loop {
        let reply = tokio::select! {
            biased;
            () = &mut cancelled => {
                bump(&shared.requests.cancelled);
                return Err(RemoteRequestError::Cancelled {
                    required: tally.required(),
                    partial: tally.finish(),
                });
            }
            () = &mut expired => {
                bump(&shared.requests.timed_out);
                return Err(RemoteRequestError::Timeout {
                    timeout,
                    required: tally.required(),
                    partial: tally.finish(),
                });
            }
            reply = replies.next() => match reply {
                Some(reply) => reply,
                None => return Err(RemoteRequestError::Stopped),
            },
        };
        if reply.status == Some(StatusCode::NO_RESPONDERS) {
            bump(&shared.requests.no_responders);
            return Err(RemoteRequestError::NoResponders { subject });
        }
        if let Some(headers) = &reply.headers {
            if let Some(reason) = headers.get(REJECTED) {
                bump(&shared.requests.rejected);
                return Err(RemoteRequestError::Rejected {
                    by: headers
                        .get(SOURCE)
                        .map_or_else(String::new, |by| by.as_str().to_owned()),
                    reason: reason.as_str().to_owned(),
                    required: tally.required(),
                    partial: tally.finish(),
                });
            }
        }
        let counted = Incoming::parse(reply.headers.as_ref())
            .ok()
            .map(|meta| meta.trace.resolve())
            .and_then(|trace| {
                if trace.invalid {
                    bump(&shared.requests.trace_invalid);
                }
                decode_traced::<R, _>(&Json, &reply.payload, trace.context).ok()
            })
            .filter(|response| response.request_id() == request_id)
            .is_some_and(|response| tally.offer(&Arc::new(response)));
        if !counted {
            bump(&shared.requests.responses_ignored);
            continue;
        }
        bump(&shared.requests.responses);
        if tally.is_met() {
            bump(&shared.requests.completed);
            return Ok(tally.finish());
        }
    }
}

impl Bridge {
    /// Sends `request` to the processes that serve its type
    /// ([`BridgeBuilder::serve`](crate::BridgeBuilder::serve)) and gathers
    /// their responders' answers, as [`EventBus::request`](switchboard::EventBus::request)
    /// does locally: only the [`expected_responders`](RequestOptions::expected_responders)
    /// count, each once; it returns as soon as the quorum
    /// ([`min_responses`](RequestOptions::min_responses), or all) has answered.
    ///
    /// The request goes to `{prefix}.{event_type}` with a reply inbox; each
    /// serving bridge publishes it into its bus and sends back its local
    /// responses of type `R`. It does not reach this process's own
    /// responders (use the bus's `request` for those). Replies wait in the
    /// client's subscription buffer.
    ///
    /// When the request ends, however it ends (quorum, timeout,
    /// cancellation, error, or the drop of this future), the bridge tells
    /// the serving bridges so on `_sb.{prefix}.done`, and they forget it.
    /// A serving bridge otherwise keeps a request for its TTL, this
    /// request's timeout (at most 10 min), and keeps at most
    /// [`max_pending_requests`](crate::BridgeBuilder::max_pending_requests)
    /// at once: past that, or if it cannot read the request, it answers
    /// that it rejects it, and this request fails at once with
    /// [`RemoteRequestError::Rejected`] instead of waiting for its timeout.
    ///
    /// Requests and responses are always JSON, whatever codec the bridge's
    /// events use, so that any two bridges can exchange them.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use switchboard::{Event, Request, Response, RequestOptions};
    /// # use serde::{Serialize, Deserialize};
    /// # #[derive(Event, Request, Serialize, Deserialize)]
    /// # #[event(type = "config.validate")]
    /// # struct Validate { request_id: String, timestamp: std::time::SystemTime }
    /// # #[derive(Event, Response, Serialize, Deserialize)]
    /// # #[event(type = "config.verdict")]
    /// # struct Verdict { request_id: String, responder: String, timestamp: std::time::SystemTime }
    /// # async fn run(bridge: switchboard_nats::Bridge) -> Result<(), Box<dyn std::error::Error>> {
    /// let request = Validate { request_id: "rev-7".into(), timestamp: std::time::SystemTime::now() };
    /// let options = RequestOptions::new(["replica-b", "replica-c"])
    ///     .min_responses(1)
    ///     .timeout(Duration::from_secs(2));
    /// let result = bridge.request::<Verdict, _>(request, options).await?;
    /// println!("answered: {:?}, missing: {:?}", result.responses.len(), result.missing);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`RemoteRequestError::NoResponders`] at once if no process serves the
    /// type; [`Rejected`](RemoteRequestError::Rejected) as soon as a serving
    /// bridge rejects it; [`Timeout`](RemoteRequestError::Timeout) and
    /// [`Cancelled`](RemoteRequestError::Cancelled), like `Rejected` with the
    /// partial result; [`Stopped`](RemoteRequestError::Stopped) if the
    /// bridge stops; the others before anything is sent.
    pub async fn request<R, Q>(
        &self,
        request: Q,
        options: RequestOptions,
    ) -> Result<RequestResult<R>, RemoteRequestError<R>>
    where
        Q: Request + Serialize,
        R: Response + DeserializeOwned,
    {
        self::request(Arc::clone(self.shared()), request, options).await
    }

    /// [`request`](Self::request) from plain threads: runs it on the
    /// bridge's runtime and blocks until it ends.
    ///
    /// # Errors
    ///
    /// As [`request`](Self::request), and [`RemoteRequestError::Stopped`] if
    /// the runtime shut down first.
    ///
    /// # Panics
    ///
    /// Inside an async context; use `request` there.
    #[expect(
        clippy::result_large_err,
        reason = "the same error as `request` (whose future clippy does not measure), made once \
                  per request after a round trip to other processes: boxing it would make the \
                  two forms differ for no measurable gain"
    )]
    pub fn request_blocking<R, Q>(
        &self,
        request: Q,
        options: RequestOptions,
    ) -> Result<RequestResult<R>, RemoteRequestError<R>>
    where
        Q: Request + Serialize,
        R: Response + DeserializeOwned,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let shared = Arc::clone(self.shared());
        self.handle().spawn(async move {
            let _ = done.send(self::request(shared, request, options).await);
        });
        result
            .blocking_recv()
            .unwrap_or(Err(RemoteRequestError::Stopped))
    }
}

#[cfg(test)]
mod tests {
    use switchboard::{Event, RequestError};

    use super::*;

    #[derive(Event, Response)]
    #[event(type = "config.verdict")]
    struct Verdict {
        request_id: String,
        responder: String,
        timestamp: SystemTime,
    }

    /// What a request expecting `expected` gathered once `answered` answered.
    fn gathered(expected: &[&str], answered: &[&str]) -> RequestResult<Verdict> {
        let mut tally = RequestTally::new(RequestOptions::new(expected.to_vec())).unwrap();
        for responder in answered {
            tally.offer(&Arc::new(Verdict {
                request_id: "r1".into(),
                responder: (*responder).into(),
                timestamp: SystemTime::now(),
            }));
        }
        tally.finish()
    }

    fn rejected(partial: RequestResult<Verdict>) -> RemoteRequestError<Verdict> {
        RemoteRequestError::Rejected {
            by: "validators".into(),
            reason: "1 requests, its max_pending_requests, are in flight already".into(),
            required: 2,
            partial,
        }
    }

    #[test]
    fn timeouts_and_cancellations_read_as_a_local_requests_do() {
        let timeout = Duration::from_millis(1500);
        for partial in [
            gathered(&["a", "b"], &["a"]),
            gathered(&["a", "b"], &["a", "b"]),
        ] {
            let remote = RemoteRequestError::Timeout {
                timeout,
                required: 2,
                partial: partial.clone(),
            };
            let local = RequestError::Timeout {
                timeout,
                required: 2,
                partial: partial.clone(),
            };
            assert_eq!(remote.to_string(), local.to_string());
            let remote = RemoteRequestError::Cancelled {
                required: 2,
                partial: partial.clone(),
            };
            let local = RequestError::Cancelled {
                required: 2,
                partial,
            };
            assert_eq!(remote.to_string(), local.to_string());
        }
        let cancelled = RemoteRequestError::Cancelled {
            required: 2,
            partial: gathered(&["a", "b"], &["a", "b"]),
        };
        assert_eq!(
            cancelled.to_string(),
            "request cancelled with 2 of 2 required responses"
        );
    }

    #[test]
    fn a_rejection_gives_the_progress_and_the_reason() {
        assert_eq!(
            rejected(gathered(&["a", "b"], &["a"])).to_string(),
            "the serving bridge \"validators\" rejected the request with 1 of 2 required \
             responses (no response from b): 1 requests, its max_pending_requests, are in \
             flight already. If it had too many requests in flight, raise its \
             BridgeBuilder::max_pending_requests or send fewer requests at once; otherwise fix \
             the request (its size, encoding or headers)"
        );
        let complete = rejected(gathered(&["a", "b"], &["a", "b"])).to_string();
        assert!(
            complete.contains("with 2 of 2 required responses: 1 requests"),
            "{complete}"
        );
    }

    #[test]
    fn the_other_errors_say_what_to_do() {
        let messages = [
            (
                RemoteRequestError::<Verdict>::InvalidOptions(RequestOptionsError::ZeroTimeout),
                "invalid request options: the timeout is zero, so the request would time out \
                 before any responder could answer: give a positive timeout (the default is 10 s)",
            ),
            (
                RemoteRequestError::InvalidEventType {
                    event_type: "config.*".into(),
                    reason: SubjectError::Wildcard('*'),
                },
                "the request type \"config.*\" cannot be a NATS subject because it contains the \
                 NATS wildcard '*': give it a name of dot-separated tokens without spaces or \
                 wildcards",
            ),
            (
                RemoteRequestError::Encode(CodecError::new("no map keys but strings")),
                "could not encode the request: codec error: no map keys but strings",
            ),
            (
                RemoteRequestError::Send("connection closed".into()),
                "could not send the request: connection closed; check the connection to NATS",
            ),
            (
                RemoteRequestError::NoResponders {
                    subject: "sb.config.validate".into(),
                },
                "no process serves requests on \"sb.config.validate\": start a bridge that \
                 serves this request type (BridgeBuilder::serve) in the responding processes",
            ),
            (
                RemoteRequestError::Stopped,
                "the bridge stopped during the request",
            ),
        ];
        for (error, message) in messages {
            assert_eq!(error.to_string(), message);
            assert_eq!(format!("{error:?}"), message);
            assert_eq!(
                error.source().is_some(),
                !matches!(
                    error,
                    RemoteRequestError::NoResponders { .. } | RemoteRequestError::Stopped
                )
            );
        }
    }

    #[test]
    fn accessors() {
        let timeout = RemoteRequestError::Timeout {
            timeout: Duration::from_secs(1),
            required: 2,
            partial: gathered(&["a", "b"], &["a"]),
        };
        assert!(timeout.is_timeout());
        assert!(!timeout.is_cancelled() && !timeout.is_rejected() && !timeout.is_no_responders());
        assert_eq!(timeout.partial().unwrap().missing, ["b"]);
        assert_eq!(timeout.into_partial().unwrap().responses.len(), 1);

        let cancelled = RemoteRequestError::Cancelled {
            required: 2,
            partial: gathered(&["a", "b"], &[]),
        };
        assert!(cancelled.is_cancelled() && !cancelled.is_timeout());
        assert_eq!(cancelled.into_partial().unwrap().missing, ["a", "b"]);

        let rejected = rejected(gathered(&["a", "b"], &["b"]));
        assert!(rejected.is_rejected() && !rejected.is_timeout());
        assert!(format!("{rejected:?}").starts_with("Rejected(the serving bridge"));
        assert_eq!(rejected.partial().unwrap().missing, ["a"]);
        assert_eq!(rejected.into_partial().unwrap().responses[0].responder, "b");

        let nobody = RemoteRequestError::<Verdict>::NoResponders {
            subject: "sb.config.validate".into(),
        };
        assert!(nobody.is_no_responders() && !nobody.is_timeout());
        assert!(nobody.partial().is_none());
        assert!(nobody.into_partial().is_none());
        assert!(RemoteRequestError::<Verdict>::Stopped
            .into_partial()
            .is_none());
    }
}
