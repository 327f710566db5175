//! What a request ends with: the gathered responses, or an error that still
//! carries them.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::event::Response;

/// The responses a request gathered, and who did not answer.
///
/// Returned by [`EventBus::request`](crate::EventBus::request) once the quorum
/// is met, and carried by [`RequestError::Timeout`],
/// [`RequestError::Cancelled`] and [`RequestError::NoResponders`] as the
/// partial result. [`RequestTally::finish`](crate::RequestTally::finish)
/// makes one.
///
/// Only responses from expected responders are here, each responder's first
/// response only, in the order they arrived: every such response that had
/// arrived when the request ended, so at least the quorum for a successful
/// request. With [`min_responses`](crate::RequestOptions::min_responses)
/// below the number of expected responders, a successful request may still
/// list missing ones.
#[non_exhaustive]
pub struct RequestResult<R> {
    /// The responses, one per responder that answered, in arrival order.
    pub responses: Vec<Arc<R>>,
    /// One line per expected responder that did not answer:
    /// `"no response from NAME"`, in the order the responders were listed.
    pub errors: Vec<String>,
    /// The names of the expected responders that did not answer, in the order
    /// they were listed (the same responders as [`errors`](Self::errors)).
    pub missing: Vec<String>,
}

impl<R: Response> RequestResult<R> {
    /// Whether every expected responder answered.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }

    /// The response from `responder`, if it answered.
    pub fn response_from(&self, responder: &str) -> Option<&Arc<R>> {
        self.responses
            .iter()
            .find(|response| response.responder() == responder)
    }
}

impl<R> RequestResult<R> {
    /// "N of `required` required responses", followed by the
    /// [`errors`](Self::errors) in parentheses if there are any: the text
    /// [`RequestError`]'s messages give for a partial result.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use switchboard::{Event, RequestOptions, RequestTally, Response, Timestamp};
    /// # #[derive(Event, Response)]
    /// # struct Verdict { request_id: String, responder: String, timestamp: Timestamp }
    /// let mut tally = RequestTally::new(RequestOptions::new(["a", "b"])).unwrap();
    /// tally.offer(&Arc::new(Verdict {
    ///     request_id: "r1".into(),
    ///     responder: "a".into(),
    ///     timestamp: Timestamp::now(),
    /// }));
    /// let partial = tally.finish();
    /// assert_eq!(partial.progress(2).to_string(), "1 of 2 required responses (no response from b)");
    /// ```
    pub fn progress(&self, required: usize) -> impl fmt::Display + '_ {
        self.progress_of(required)
    }

    /// The message of [`RequestError::Timeout`]: "request timed out after
    /// `timeout` with", then the [`progress`](Self::progress). A request
    /// carried by other means words its timeouts with it, so that they read
    /// as a local request's do.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use switchboard::{Event, RequestOptions, RequestTally, Response, Timestamp};
    /// # #[derive(Event, Response)]
    /// # struct Verdict { request_id: String, responder: String, timestamp: Timestamp }
    /// let tally = RequestTally::<Verdict>::new(RequestOptions::new(["a"])).unwrap();
    /// let partial = tally.finish();
    /// assert_eq!(
    ///     partial.timeout_message(Duration::from_millis(1500), 1).to_string(),
    ///     "request timed out after 1.5s with 0 of 1 required responses (no response from a)"
    /// );
    /// ```
    pub fn timeout_message(&self, timeout: Duration, required: usize) -> impl fmt::Display + '_ {
        Unmet::TimedOut(timeout, self.progress_of(required))
    }

    /// The message of [`RequestError::Cancelled`]: "request cancelled with",
    /// then the [`progress`](Self::progress). A request carried by other
    /// means words its cancellations with it, so that they read as a local
    /// request's do.
    ///
    /// ```
    /// # use switchboard::{Event, RequestOptions, RequestTally, Response, Timestamp};
    /// # #[derive(Event, Response)]
    /// # struct Verdict { request_id: String, responder: String, timestamp: Timestamp }
    /// let tally = RequestTally::<Verdict>::new(RequestOptions::new(["a"])).unwrap();
    /// let partial = tally.finish();
    /// assert_eq!(
    ///     partial.cancelled_message(1).to_string(),
    ///     "request cancelled with 0 of 1 required responses (no response from a)"
    /// );
    /// ```
    pub fn cancelled_message(&self, required: usize) -> impl fmt::Display + '_ {
        Unmet::Cancelled(self.progress_of(required))
    }

    /// [`progress`](Self::progress) as its own type, for the messages that
    /// embed it.
    fn progress_of(&self, required: usize) -> Progress<'_> {
        Progress {
            answered: self.responses.len(),
            required,
            errors: &self.errors,
        }
    }
}

/// What [`RequestResult::timeout_message`] and
/// [`RequestResult::cancelled_message`] write.
enum Unmet<'a> {
    TimedOut(Duration, Progress<'a>),
    Cancelled(Progress<'a>),
}

impl fmt::Display for Unmet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unmet::TimedOut(timeout, progress) => {
                write!(f, "request timed out after {timeout:?} with {progress}")
            }
            Unmet::Cancelled(progress) => write!(f, "request cancelled with {progress}"),
        }
    }
}

/// What [`RequestResult::progress`] writes.
struct Progress<'a> {
    answered: usize,
    required: usize,
    errors: &'a [String],
}

impl fmt::Display for Progress<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} required responses",
            self.answered, self.required
        )?;
        if !self.errors.is_empty() {
            write!(f, " ({})", self.errors.join("; "))?;
        }
        Ok(())
    }
}

impl<R> Clone for RequestResult<R> {
    fn clone(&self) -> Self {
        Self {
            responses: self.responses.clone(),
            errors: self.errors.clone(),
            missing: self.missing.clone(),
        }
    }
}

/// Shows who answered, so `R` need not implement `Debug`.
impl<R: Response> fmt::Debug for RequestResult<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Responders<'a, R>(&'a [Arc<R>]);
        impl<R: Response> fmt::Debug for Responders<'_, R> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list()
                    .entries(self.0.iter().map(|r| r.responder()))
                    .finish()
            }
        }
        f.debug_struct("RequestResult")
            .field("responses", &Responders(&self.responses))
            .field("errors", &self.errors)
            .field("missing", &self.missing)
            .finish()
    }
}

/// Why a request failed. Timeouts, cancellations and "no responders" carry
/// the partial result.
///
/// ```
/// # use std::time::Duration;
/// # use switchboard::{Event, EventBus, Request, RequestError, RequestOptions, Response, Timestamp};
/// # #[derive(Event, Request)]
/// # struct Ask { request_id: String, timestamp: Timestamp }
/// # #[derive(Event, Response)]
/// # struct Answer { request_id: String, responder: String, timestamp: Timestamp }
/// let bus = EventBus::new();
/// let _asks = bus.subscribe_to::<Ask>("a", 4).unwrap(); // receives, never answers
/// bus.start();
/// // Nobody answers: the request times out with an empty partial result.
/// let options = RequestOptions::new(["a", "b"]).timeout(Duration::from_millis(10));
/// let ask = Ask { request_id: "q1".into(), timestamp: Timestamp::now() };
/// match bus.request::<Answer, _>(ask, options) {
///     Err(RequestError::Timeout { partial, .. }) => {
///         assert!(partial.responses.is_empty());
///         assert_eq!(partial.errors, ["no response from a", "no response from b"]);
///     }
///     other => panic!("unexpected: {other:?}"),
/// }
/// ```
#[non_exhaustive]
pub enum RequestError<R> {
    /// The options were invalid; nothing was published.
    InvalidOptions(RequestOptionsError),
    /// The bus was running and the request reached no subscriber at all, so
    /// nobody could answer: the request failed at once instead of waiting for
    /// its timeout (as NATS answers "no responders"). Either nothing
    /// subscribes to the request's type, or every subscriber's buffer was
    /// full (those misses are counted as drops).
    NoResponders {
        /// How many expected responders had to answer.
        required: usize,
        /// Empty responses, and every expected responder listed as missing.
        partial: RequestResult<R>,
    },
    /// The quorum was not met within the timeout.
    Timeout {
        /// The timeout that expired.
        timeout: Duration,
        /// How many expected responders had to answer.
        required: usize,
        /// What had arrived when the timeout expired.
        partial: RequestResult<R>,
    },
    /// The request's [`CancelToken`](crate::CancelToken) was cancelled before
    /// the quorum was met.
    Cancelled {
        /// How many expected responders had to answer.
        required: usize,
        /// What had arrived when the request was cancelled.
        partial: RequestResult<R>,
    },
}

impl<R> RequestError<R> {
    /// The partial result of a timed-out, cancelled or unanswerable request.
    pub fn partial(&self) -> Option<&RequestResult<R>> {
        match self {
            RequestError::Timeout { partial, .. }
            | RequestError::Cancelled { partial, .. }
            | RequestError::NoResponders { partial, .. } => Some(partial),
            RequestError::InvalidOptions(_) => None,
        }
    }

    /// Takes the partial result of a timed-out, cancelled or unanswerable
    /// request.
    pub fn into_partial(self) -> Option<RequestResult<R>> {
        match self {
            RequestError::Timeout { partial, .. }
            | RequestError::Cancelled { partial, .. }
            | RequestError::NoResponders { partial, .. } => Some(partial),
            RequestError::InvalidOptions(_) => None,
        }
    }

    /// Whether the request reached no subscriber (see
    /// [`RequestError::NoResponders`]).
    pub fn is_no_responders(&self) -> bool {
        matches!(self, RequestError::NoResponders { .. })
    }

    /// Whether the request timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RequestError::Timeout { .. })
    }

    /// Whether the request was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, RequestError::Cancelled { .. })
    }
}

impl<R> From<RequestOptionsError> for RequestError<R> {
    fn from(error: RequestOptionsError) -> Self {
        RequestError::InvalidOptions(error)
    }
}

impl<R> fmt::Display for RequestError<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::InvalidOptions(error) => write!(f, "invalid request options: {error}"),
            RequestError::Timeout {
                timeout,
                required,
                partial,
            } => partial.timeout_message(*timeout, *required).fmt(f),
            RequestError::Cancelled { required, partial } => {
                partial.cancelled_message(*required).fmt(f)
            }
            RequestError::NoResponders { required, .. } => write!(
                f,
                "no responders: the request reached no subscriber, so none of the {required} \
                 required responses could come; subscribe the responders to the request's type \
                 before requesting (or make room in their buffers)"
            ),
        }
    }
}

impl<R: Response> fmt::Debug for RequestError<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::InvalidOptions(error) => {
                f.debug_tuple("InvalidOptions").field(error).finish()
            }
            RequestError::Timeout {
                timeout,
                required,
                partial,
            } => f
                .debug_struct("Timeout")
                .field("timeout", timeout)
                .field("required", required)
                .field("partial", partial)
                .finish(),
            RequestError::Cancelled { required, partial } => f
                .debug_struct("Cancelled")
                .field("required", required)
                .field("partial", partial)
                .finish(),
            RequestError::NoResponders { required, partial } => f
                .debug_struct("NoResponders")
                .field("required", required)
                .field("partial", partial)
                .finish(),
        }
    }
}

impl<R: Response> Error for RequestError<R> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            RequestError::InvalidOptions(error) => Some(error),
            _ => None,
        }
    }
}

/// What is wrong with a [`RequestOptions`](crate::RequestOptions); each
/// message says what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestOptionsError {
    /// `expected_responders` is empty.
    NoExpectedResponders,
    /// A responder is listed more than once.
    DuplicateResponder(String),
    /// `min_responses` is larger than the number of expected responders.
    MinResponsesTooHigh {
        /// The `min_responses` asked for.
        min_responses: usize,
        /// How many responders are expected.
        expected: usize,
    },
    /// The timeout is zero.
    ZeroTimeout,
}

impl fmt::Display for RequestOptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestOptionsError::NoExpectedResponders => f.write_str(
                "no expected responders, so no response could ever count: name the responders \
                 whose answers you need, e.g. RequestOptions::new([\"validator-a\", \"validator-b\"])",
            ),
            RequestOptionsError::DuplicateResponder(name) => write!(
                f,
                "responder {name:?} is listed more than once in expected_responders: \
                 list each responder once (a responder's answer counts once)"
            ),
            RequestOptionsError::MinResponsesTooHigh {
                min_responses,
                expected,
            } => write!(
                f,
                "min_responses is {min_responses} but only {expected} responders are expected, \
                 so the request could never succeed: set min_responses to at most {expected} \
                 (0 means all of them), or expect more responders"
            ),
            RequestOptionsError::ZeroTimeout => f.write_str(
                "the timeout is zero, so the request would time out before any responder could \
                 answer: give a positive timeout (the default is 10 s)",
            ),
        }
    }
}

impl Error for RequestOptionsError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::test_support::{answer, Answer};

    fn partial() -> RequestResult<Answer> {
        RequestResult {
            responses: vec![answer("r", "a")],
            errors: vec!["no response from b".into(), "no response from c".into()],
            missing: vec!["b".into(), "c".into()],
        }
    }

    #[test]
    fn messages_name_the_progress_and_the_missing() {
        let timeout = RequestError::Timeout {
            timeout: Duration::from_millis(1500),
            required: 2,
            partial: partial(),
        };
        assert_eq!(
            timeout.to_string(),
            "request timed out after 1.5s with 1 of 2 required responses \
             (no response from b; no response from c)"
        );
        let cancelled = RequestError::Cancelled {
            required: 3,
            partial: partial(),
        };
        assert_eq!(
            cancelled.to_string(),
            "request cancelled with 1 of 3 required responses \
             (no response from b; no response from c)"
        );
        assert!(format!("{cancelled:?}").contains(r#"responses: ["a"]"#));
        assert_eq!(
            timeout.to_string(),
            partial()
                .timeout_message(Duration::from_millis(1500), 2)
                .to_string()
        );
        assert_eq!(
            cancelled.to_string(),
            partial().cancelled_message(3).to_string()
        );
    }

    #[test]
    fn progress_lists_the_errors_only_if_there_are_any() {
        assert_eq!(
            partial().progress(2).to_string(),
            "1 of 2 required responses (no response from b; no response from c)"
        );
        let complete = RequestResult {
            responses: vec![answer("r", "a"), answer("r", "b")],
            errors: Vec::new(),
            missing: Vec::new(),
        };
        assert_eq!(
            complete.progress(2).to_string(),
            "2 of 2 required responses"
        );
        let cancelled = RequestError::Cancelled {
            required: 2,
            partial: complete,
        };
        assert_eq!(
            cancelled.to_string(),
            "request cancelled with 2 of 2 required responses"
        );
    }

    #[test]
    fn accessors() {
        let result = partial();
        assert!(!result.is_complete());
        assert_eq!(result.response_from("a").map(|r| r.responder()), Some("a"));
        assert!(result.response_from("b").is_none());

        let invalid: RequestError<Answer> = RequestOptionsError::ZeroTimeout.into();
        assert!(invalid.partial().is_none());
        assert!(invalid.source().is_some());
        assert!(!invalid.is_timeout() && !invalid.is_cancelled());
        assert!(invalid
            .to_string()
            .starts_with("invalid request options: the timeout is zero"));

        let cancelled = RequestError::Cancelled {
            required: 3,
            partial: partial(),
        };
        assert!(cancelled.is_cancelled());
        assert_eq!(cancelled.partial().unwrap().missing, ["b", "c"]);
        assert_eq!(cancelled.into_partial().unwrap().responses.len(), 1);
    }

    #[test]
    fn option_messages_say_what_to_change() {
        let too_high = RequestOptionsError::MinResponsesTooHigh {
            min_responses: 4,
            expected: 3,
        };
        assert!(too_high
            .to_string()
            .contains("set min_responses to at most 3"));
        assert!(RequestOptionsError::NoExpectedResponders
            .to_string()
            .contains("RequestOptions::new"));
        assert!(RequestOptionsError::DuplicateResponder("a".into())
            .to_string()
            .contains("list each responder once"));
    }
}
