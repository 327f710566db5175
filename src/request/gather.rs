//! The bookkeeping both request waits share: which responses count, whether
//! the quorum is met, and what to report at the end.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bus::EventBus;
use crate::event::{Event, Response};
use crate::options::{SubscribeOptions, TypeSet};
use crate::subscription::TypedSubscription;

use super::cancel::CancelToken;
use super::options::RequestOptions;
use super::outcome::{RequestError, RequestOptionsError, RequestResult};

/// Above this many expected responders, responders are looked up in a hash
/// map instead of by a linear scan.
const LINEAR_LOOKUP_MAX: usize = 16;

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The quorum was met.
    Met,
    /// The deadline passed first.
    TimedOut,
    /// The cancel token was cancelled first.
    Cancelled,
}

/// A validated request that has not been published yet, and then the state
/// of its gathering.
pub(super) struct Gather<R> {
    request_id: Box<str>,
    expected: Vec<String>,
    /// Name to index in `expected`, for long responder lists only.
    index: Option<HashMap<String, usize>>,
    answered: Vec<bool>,
    required: usize,
    responses: Vec<Arc<R>>,
    timeout: Duration,
    cancel: Option<CancelToken>,
    capacity: usize,
}

impl<R: Response> Gather<R> {
    /// Validates `options` for a request with `request_id`.
    pub(super) fn new(
        request_id: &str,
        options: RequestOptions,
    ) -> Result<Self, RequestOptionsError> {
        options.validate()?;
        let required = options.required();
        let capacity = options.resolved_response_capacity();
        let expected = options.expected_responders;
        let index = (expected.len() > LINEAR_LOOKUP_MAX).then(|| {
            expected
                .iter()
                .enumerate()
                .map(|(i, name)| (name.clone(), i))
                .collect()
        });
        Ok(Self {
            request_id: request_id.into(),
            answered: vec![false; expected.len()],
            responses: Vec::with_capacity(required),
            expected,
            index,
            required,
            timeout: options.timeout,
            cancel: options.cancel_token,
            capacity,
        })
    }

    /// When the request times out if it starts now; `None` if the timeout is
    /// too long to represent, which means no timeout.
    pub(super) fn deadline_from_now(&self) -> Option<Instant> {
        Instant::now().checked_add(self.timeout)
    }

    pub(super) fn cancel_token(&self) -> Option<&CancelToken> {
        self.cancel.as_ref()
    }

    pub(super) fn is_cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(CancelToken::is_cancelled)
    }

    /// Registers the response subscription, then publishes `request`: in that
    /// order, so no response can be missed. `async_consumer`: the responses
    /// will be polled by a future.
    pub(super) fn launch(
        &self,
        bus: &EventBus,
        request: Arc<dyn Event>,
        async_consumer: bool,
    ) -> TypedSubscription<R> {
        let options = SubscribeOptions::new(format!("request:{}", self.request_id), self.capacity)
            .rust_types(TypeSet::new().with::<R>());
        let subscription = bus
            .subscribe_internal(options, async_consumer)
            .map(TypedSubscription::new)
            .unwrap_or_else(|error| unreachable!("request options were validated: {error}"));
        bus.publish_arc(request);
        subscription
    }

    /// Counts `response` if it answers this request, comes from an expected
    /// responder and is that responder's first; returns whether the quorum
    /// is now met.
    pub(super) fn accept(&mut self, response: Arc<R>) -> bool {
        if Response::request_id(&*response) != &*self.request_id {
            return false; // an answer to another request
        }
        let responder = response.responder();
        let position = match &self.index {
            Some(index) => index.get(responder).copied(),
            None => self.expected.iter().position(|name| name == responder),
        };
        let Some(position) = position else {
            return false; // not an expected responder
        };
        if !self.answered[position] {
            self.answered[position] = true;
            self.responses.push(response);
        }
        self.is_met()
    }

    pub(super) fn is_met(&self) -> bool {
        self.responses.len() >= self.required
    }

    /// The result as it stands, and how it ended.
    pub(super) fn finish(self, outcome: Outcome) -> Result<RequestResult<R>, RequestError<R>> {
        let required = self.required;
        let timeout = self.timeout;
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::test_support::{answer, Answer};

    #[test]
    fn counts_each_expected_responder_once() {
        let mut gather =
            Gather::<Answer>::new("r1", RequestOptions::new(["a", "b", "c"]).min_responses(2))
                .unwrap();
        assert!(!gather.accept(answer("r2", "a")), "other request");
        assert!(!gather.accept(answer("r1", "z")), "unknown responder");
        assert!(!gather.accept(answer("r1", "a")));
        assert!(!gather.accept(answer("r1", "a")), "duplicate");
        assert!(gather.accept(answer("r1", "c")));
        let result = gather.finish(Outcome::Met).unwrap();
        let from: Vec<_> = result.responses.iter().map(|r| r.responder()).collect();
        assert_eq!(from, ["a", "c"]);
        assert_eq!(result.errors, ["no response from b"]);
        assert_eq!(result.missing, ["b"]);
    }

    #[test]
    fn first_response_wins() {
        let mut gather = Gather::<Answer>::new("r", RequestOptions::new(["a", "b"])).unwrap();
        let first = answer("r", "a");
        gather.accept(Arc::clone(&first));
        gather.accept(answer("r", "a"));
        let partial = gather.finish(Outcome::TimedOut).unwrap_err().into_partial();
        assert!(Arc::ptr_eq(&partial.unwrap().responses[0], &first));
    }

    #[test]
    fn long_responder_lists_use_the_index() {
        let names: Vec<String> = (0..100).map(|i| format!("v{i}")).collect();
        let mut gather = Gather::<Answer>::new("r", RequestOptions::new(names.clone())).unwrap();
        assert!(gather.index.is_some());
        for name in &names[..99] {
            assert!(!gather.accept(answer("r", name)));
        }
        assert!(!gather.accept(answer("r", "v1000")));
        assert!(gather.accept(answer("r", "v99")));
        assert!(gather.finish(Outcome::Met).unwrap().is_complete());
    }

    #[test]
    fn outcomes_map_to_errors_with_the_partial_result() {
        let gather = Gather::<Answer>::new("r", RequestOptions::new(["a"])).unwrap();
        match gather.finish(Outcome::Cancelled) {
            Err(RequestError::Cancelled { required, partial }) => {
                assert_eq!(required, 1);
                assert_eq!(partial.errors, ["no response from a"]);
            }
            other => panic!("{other:?}"),
        }
    }
}
