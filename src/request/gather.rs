//! The bookkeeping of one request: which responses count, whether the quorum
//! is met, and what to report at the end. [`RequestTally`] is public so that
//! a request carried elsewhere (`switchboard-nats` carries them across
//! processes) gathers exactly as a local one does.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::event::Response;

use super::cancel::CancelToken;
use super::options::RequestOptions;
use super::outcome::{RequestError, RequestOptionsError, RequestResult};

/// Above this many expected responders, responders are looked up in a hash
/// map instead of by a linear scan.
const LINEAR_LOOKUP_MAX: usize = 16;

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The quorum was met.
    Met,
    /// The deadline passed first.
    TimedOut,
    /// The cancel token was cancelled first (or the future was dropped).
    Cancelled,
    /// The request reached no subscriber on a running bus.
    NoResponders,
}

/// How long a request may wait and what cancels it: what the waiting side
/// keeps, while the [`RequestTally`] lives where responses are delivered.
pub(super) struct Terms {
    pub(super) timeout: Duration,
    pub(super) cancel: Option<CancelToken>,
}

impl Terms {
    /// When the request times out if it starts now; `None` if the timeout is
    /// too long to represent, which means no timeout.
    pub(super) fn deadline_from_now(&self) -> Option<Instant> {
        Instant::now().checked_add(self.timeout)
    }

    pub(super) fn is_cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(CancelToken::is_cancelled)
    }
}

/// The responses of a request's expected responders, gathered toward its
/// quorum: the tally behind [`EventBus::request`](crate::EventBus::request),
/// for requests carried by other means (such as across processes).
///
/// Made from the request's [`RequestOptions`], it counts the first response
/// of each expected responder and ignores the rest; [`finish`](Self::finish)
/// turns it into the [`RequestResult`], with a `"no response from NAME"`
/// line for each expected responder that did not answer. Long responder
/// lists are looked up through a hash index.
///
/// ```
/// use std::sync::Arc;
/// use switchboard::{Event, RequestOptions, RequestTally, Response, Timestamp};
///
/// #[derive(Event, Response)]
/// struct Verdict {
///     request_id: String,
///     responder: String,
///     timestamp: Timestamp,
/// }
/// let verdict = |from: &str| {
///     Arc::new(Verdict { request_id: "r1".into(), responder: from.into(), timestamp: Timestamp::now() })
/// };
///
/// let options = RequestOptions::new(["schema", "policy", "quota"]).min_responses(2);
/// let mut tally = RequestTally::new(options).unwrap();
/// assert_eq!(tally.required(), 2);
/// assert!(tally.offer(&verdict("schema")));
/// assert!(!tally.offer(&verdict("schema")), "a responder counts once");
/// assert!(!tally.offer(&verdict("intruder")), "only expected responders count");
/// assert!(!tally.is_met());
/// assert!(tally.offer(&verdict("quota")));
/// assert!(tally.is_met());
///
/// let result = tally.finish();
/// assert_eq!(result.responses.len(), 2);
/// assert_eq!(result.missing, ["policy"]);
/// assert_eq!(result.errors, ["no response from policy"]);
/// assert_eq!(
///     result.progress(2).to_string(),
///     "2 of 2 required responses (no response from policy)"
/// );
/// ```
pub struct RequestTally<R> {
    expected: Vec<String>,
    /// Name to index in `expected`, for long responder lists only.
    index: Option<HashMap<String, usize>>,
    answered: Vec<bool>,
    required: usize,
    responses: Vec<Arc<R>>,
}

impl<R: Response> RequestTally<R> {
    /// A tally for a request made with `options`, nothing counted yet. Only
    /// the responders and the quorum are kept: take the timeout and the
    /// cancel token out first if the request needs them.
    ///
    /// # Errors
    ///
    /// The options fail [`RequestOptions::validate`].
    pub fn new(options: RequestOptions) -> Result<Self, RequestOptionsError> {
        options.validate()?;
        let required = options.required();
        let expected = options.expected_responders;
        let index = (expected.len() > LINEAR_LOOKUP_MAX).then(|| {
            expected
                .iter()
                .enumerate()
                .map(|(i, name)| (name.clone(), i))
                .collect()
        });
        Ok(Self {
            answered: vec![false; expected.len()],
            responses: Vec::with_capacity(expected.len()),
            expected,
            index,
            required,
        })
    }

    /// Counts `response` if it comes from an expected responder that has not
    /// answered yet; whether it counted. The caller checks that it answers
    /// this request ([`Response::request_id`]).
    pub fn offer(&mut self, response: &Arc<R>) -> bool {
        let responder = response.responder();
        let position = match &self.index {
            Some(index) => index.get(responder).copied(),
            None => self.expected.iter().position(|name| name == responder),
        };
        match position {
            Some(position) if !self.answered[position] => {
                self.answered[position] = true;
                self.responses.push(Arc::clone(response));
                true
            }
            _ => false,
        }
    }

    /// Whether the quorum is met: [`required`](Self::required) responses
    /// have counted.
    pub fn is_met(&self) -> bool {
        self.responses.len() >= self.required
    }

    /// The responders whose answers count, in the order they were listed.
    pub fn expected(&self) -> &[String] {
        &self.expected
    }

    /// How many expected responders must answer for the quorum
    /// ([`RequestOptions::min_responses`], with 0 resolved to all of them).
    pub fn required(&self) -> usize {
        self.required
    }

    /// The result as it stands: the counted responses in arrival order, and
    /// the expected responders that did not answer.
    pub fn finish(self) -> RequestResult<R> {
        let mut errors = Vec::new();
        let mut missing = Vec::new();
        for (name, answered) in self.expected.into_iter().zip(self.answered) {
            if !answered {
                errors.push(format!("no response from {name}"));
                missing.push(name);
            }
        }
        RequestResult {
            responses: self.responses,
            errors,
            missing,
        }
    }
}

/// Shows the progress and who answered, so `R` need not implement `Debug`.
impl<R: Response> fmt::Debug for RequestTally<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestTally")
            .field(
                "responses",
                &self
                    .responses
                    .iter()
                    .map(|r| r.responder())
                    .collect::<Vec<_>>(),
            )
            .field("required", &self.required)
            .field("expected", &self.expected)
            .finish()
    }
}

/// Validates `options` and splits them into the tally and the waiting terms.
pub(super) fn prepare<R: Response>(
    mut options: RequestOptions,
) -> Result<(RequestTally<R>, Terms), RequestOptionsError> {
    let terms = Terms {
        timeout: options.timeout,
        cancel: options.cancel_token.take(),
    };
    Ok((RequestTally::new(options)?, terms))
}

/// The request's result, or how it failed. A quorum met by the time the
/// request ended counts as met, whatever ended it.
pub(super) fn settle<R: Response>(
    tally: RequestTally<R>,
    outcome: Outcome,
    timeout: Duration,
) -> Result<RequestResult<R>, RequestError<R>> {
    let outcome = if tally.is_met() {
        Outcome::Met
    } else {
        outcome
    };
    let required = tally.required();
    let partial = tally.finish();
    match outcome {
        Outcome::Met => Ok(partial),
        Outcome::TimedOut => Err(RequestError::Timeout {
            timeout,
            required,
            partial,
        }),
        Outcome::Cancelled => Err(RequestError::Cancelled { required, partial }),
        Outcome::NoResponders => Err(RequestError::NoResponders { required, partial }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::test_support::{answer, Answer};

    fn tally(options: RequestOptions) -> RequestTally<Answer> {
        RequestTally::new(options).unwrap()
    }

    const TIMEOUT: Duration = Duration::from_secs(1);

    #[test]
    fn counts_each_expected_responder_once() {
        let mut tally = tally(RequestOptions::new(["a", "b", "c"]).min_responses(2));
        assert_eq!(tally.required(), 2);
        assert_eq!(tally.expected(), ["a", "b", "c"]);
        assert!(!tally.offer(&answer("r1", "z")), "unknown responder");
        assert!(tally.offer(&answer("r1", "a")));
        assert!(!tally.is_met());
        assert!(!tally.offer(&answer("r1", "a")), "duplicate");
        assert!(tally.offer(&answer("r1", "c")));
        assert!(tally.is_met());
        assert_eq!(
            format!("{tally:?}"),
            r#"RequestTally { responses: ["a", "c"], required: 2, expected: ["a", "b", "c"] }"#
        );
        let result = settle(tally, Outcome::Met, TIMEOUT).unwrap();
        let from: Vec<_> = result.responses.iter().map(|r| r.responder()).collect();
        assert_eq!(from, ["a", "c"]);
        assert_eq!(result.errors, ["no response from b"]);
        assert_eq!(result.missing, ["b"]);
    }

    #[test]
    fn first_response_wins() {
        let mut tally = tally(RequestOptions::new(["a", "b"]));
        let first = answer("r", "a");
        tally.offer(&first);
        tally.offer(&answer("r", "a"));
        let partial = settle(tally, Outcome::TimedOut, TIMEOUT)
            .unwrap_err()
            .into_partial();
        assert!(Arc::ptr_eq(&partial.unwrap().responses[0], &first));
    }

    #[test]
    fn long_responder_lists_use_the_index() {
        let names: Vec<String> = (0..100).map(|i| format!("v{i}")).collect();
        let mut tally = tally(RequestOptions::new(names.clone()));
        assert!(tally.index.is_some());
        for name in &names[..99] {
            assert!(tally.offer(&answer("r", name)));
            assert!(!tally.is_met());
        }
        assert!(!tally.offer(&answer("r", "v1000")));
        assert!(!tally.offer(&answer("r", "v5")), "answered already");
        let partial = tally.finish();
        assert_eq!(partial.missing, ["v99"]);
        assert_eq!(partial.errors, ["no response from v99"]);

        let mut tally = self::tally(RequestOptions::new(names.clone()).min_responses(1));
        assert!(tally.offer(&answer("r", "v99")));
        assert!(tally.is_met());
        assert_eq!(tally.finish().missing.len(), 99);
    }

    #[test]
    fn short_lists_need_no_index() {
        let names: Vec<String> = (0..LINEAR_LOOKUP_MAX).map(|i| format!("v{i}")).collect();
        assert!(tally(RequestOptions::new(names)).index.is_none());
    }

    #[test]
    fn invalid_options_make_no_tally() {
        let error = RequestTally::<Answer>::new(RequestOptions::new(["a", "a"])).unwrap_err();
        assert_eq!(error, RequestOptionsError::DuplicateResponder("a".into()));
    }

    #[test]
    fn prepare_keeps_the_terms_apart() {
        let token = CancelToken::new();
        let options = RequestOptions::new(["a"])
            .timeout(TIMEOUT)
            .cancel_token(token.clone());
        let (tally, terms) = prepare::<Answer>(options).unwrap();
        assert_eq!((tally.required(), terms.timeout), (1, TIMEOUT));
        assert!(!terms.is_cancelled());
        token.cancel();
        assert!(terms.is_cancelled());
    }

    #[test]
    fn outcomes_map_to_errors_with_the_partial_result() {
        match settle(
            tally(RequestOptions::new(["a"])),
            Outcome::Cancelled,
            TIMEOUT,
        ) {
            Err(RequestError::Cancelled { required, partial }) => {
                assert_eq!(required, 1);
                assert_eq!(partial.errors, ["no response from a"]);
            }
            other => panic!("{other:?}"),
        }
        match settle(
            tally(RequestOptions::new(["a", "b"])),
            Outcome::NoResponders,
            TIMEOUT,
        ) {
            Err(RequestError::NoResponders { required, partial }) => {
                assert_eq!(required, 2);
                assert_eq!(partial.missing, ["a", "b"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_quorum_met_by_the_end_wins_over_what_ended_it() {
        let mut tally = tally(RequestOptions::new(["a"]));
        tally.offer(&answer("r", "a"));
        let result = settle(tally, Outcome::TimedOut, TIMEOUT).unwrap();
        assert!(result.is_complete());
        assert_eq!(result.progress(1).to_string(), "1 of 1 required responses");
    }
}
