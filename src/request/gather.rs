//! The bookkeeping of one request: which responses count, whether the quorum
//! is met, and what to report at the end.

use std::collections::HashMap;
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

/// What a response did to the tally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Accepted {
    /// It counts; `met` says whether the quorum is met now.
    Counted { met: bool },
    /// An unexpected responder, or one that had answered already.
    Ignored,
}

/// How long a request may wait and what cancels it: what the waiting side
/// keeps, while the [`Gather`] lives where responses are delivered.
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

/// The responses of the expected responders, gathered toward the quorum.
pub(super) struct Gather<R> {
    expected: Vec<String>,
    /// Name to index in `expected`, for long responder lists only.
    index: Option<HashMap<String, usize>>,
    answered: Vec<bool>,
    required: usize,
    responses: Vec<Arc<R>>,
}

/// Validates `options` and splits them into the tally and the waiting terms.
pub(super) fn prepare<R: Response>(
    options: RequestOptions,
) -> Result<(Gather<R>, Terms), RequestOptionsError> {
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
    let gather = Gather {
        answered: vec![false; expected.len()],
        responses: Vec::with_capacity(expected.len()),
        expected,
        index,
        required,
    };
    let terms = Terms {
        timeout: options.timeout,
        cancel: options.cancel_token,
    };
    Ok((gather, terms))
}

impl<R: Response> Gather<R> {
    /// Counts `response` (an answer to this request) if it comes from an
    /// expected responder that has not answered yet.
    pub(super) fn accept(&mut self, response: &Arc<R>) -> Accepted {
        let responder = response.responder();
        let position = match &self.index {
            Some(index) => index.get(responder).copied(),
            None => self.expected.iter().position(|name| name == responder),
        };
        match position {
            Some(position) if !self.answered[position] => {
                self.answered[position] = true;
                self.responses.push(Arc::clone(response));
                Accepted::Counted { met: self.is_met() }
            }
            _ => Accepted::Ignored,
        }
    }

    pub(super) fn is_met(&self) -> bool {
        self.responses.len() >= self.required
    }

    /// The result as it stands, and how it ended. A quorum met by the time
    /// the request ended counts as met, whatever ended it.
    pub(super) fn finish(
        self,
        outcome: Outcome,
        timeout: Duration,
    ) -> Result<RequestResult<R>, RequestError<R>> {
        let outcome = if self.is_met() { Outcome::Met } else { outcome };
        let required = self.required;
        let mut errors = Vec::new();
        let mut missing = Vec::new();
        for (name, answered) in self.expected.into_iter().zip(self.answered) {
            if !answered {
                errors.push(format!("no response from {name}"));
                missing.push(name);
            }
        }
        let result = RequestResult {
            responses: self.responses,
            errors,
            missing,
        };
        match outcome {
            Outcome::Met => Ok(result),
            Outcome::TimedOut => Err(RequestError::Timeout {
                timeout,
                required,
                partial: result,
            }),
            Outcome::Cancelled => Err(RequestError::Cancelled {
                required,
                partial: result,
            }),
            Outcome::NoResponders => Err(RequestError::NoResponders {
                required,
                partial: result,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::test_support::{answer, Answer};

    fn gather(options: RequestOptions) -> Gather<Answer> {
        prepare::<Answer>(options).unwrap().0
    }

    const TIMEOUT: Duration = Duration::from_secs(1);

    #[test]
    fn counts_each_expected_responder_once() {
        let mut gather = gather(RequestOptions::new(["a", "b", "c"]).min_responses(2));
        assert_eq!(
            gather.accept(&answer("r1", "z")),
            Accepted::Ignored,
            "unknown responder"
        );
        assert_eq!(
            gather.accept(&answer("r1", "a")),
            Accepted::Counted { met: false }
        );
        assert_eq!(
            gather.accept(&answer("r1", "a")),
            Accepted::Ignored,
            "duplicate"
        );
        assert_eq!(
            gather.accept(&answer("r1", "c")),
            Accepted::Counted { met: true }
        );
        let result = gather.finish(Outcome::Met, TIMEOUT).unwrap();
        let from: Vec<_> = result.responses.iter().map(|r| r.responder()).collect();
        assert_eq!(from, ["a", "c"]);
        assert_eq!(result.errors, ["no response from b"]);
        assert_eq!(result.missing, ["b"]);
    }

    #[test]
    fn first_response_wins() {
        let mut gather = gather(RequestOptions::new(["a", "b"]));
        let first = answer("r", "a");
        gather.accept(&first);
        gather.accept(&answer("r", "a"));
        let partial = gather
            .finish(Outcome::TimedOut, TIMEOUT)
            .unwrap_err()
            .into_partial();
        assert!(Arc::ptr_eq(&partial.unwrap().responses[0], &first));
    }

    #[test]
    fn long_responder_lists_use_the_index() {
        let names: Vec<String> = (0..100).map(|i| format!("v{i}")).collect();
        let mut gather = gather(RequestOptions::new(names.clone()));
        assert!(gather.index.is_some());
        for name in &names[..99] {
            assert_eq!(
                gather.accept(&answer("r", name)),
                Accepted::Counted { met: false }
            );
        }
        assert_eq!(gather.accept(&answer("r", "v1000")), Accepted::Ignored);
        assert_eq!(
            gather.accept(&answer("r", "v99")),
            Accepted::Counted { met: true }
        );
        assert!(gather.finish(Outcome::Met, TIMEOUT).unwrap().is_complete());
    }

    #[test]
    fn outcomes_map_to_errors_with_the_partial_result() {
        match gather(RequestOptions::new(["a"])).finish(Outcome::Cancelled, TIMEOUT) {
            Err(RequestError::Cancelled { required, partial }) => {
                assert_eq!(required, 1);
                assert_eq!(partial.errors, ["no response from a"]);
            }
            other => panic!("{other:?}"),
        }
        match gather(RequestOptions::new(["a", "b"])).finish(Outcome::NoResponders, TIMEOUT) {
            Err(RequestError::NoResponders { required, partial }) => {
                assert_eq!(required, 2);
                assert_eq!(partial.missing, ["a", "b"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_quorum_met_by_the_end_wins_over_what_ended_it() {
        let mut gather = gather(RequestOptions::new(["a"]));
        gather.accept(&answer("r", "a"));
        assert!(gather.finish(Outcome::TimedOut, TIMEOUT).is_ok());
    }
}
