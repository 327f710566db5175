//! What a request asks for: who must answer, how many of them, for how long.

use std::time::Duration;

use crate::options::MAX_CAPACITY;

use super::cancel::CancelToken;
use super::outcome::RequestOptionsError;

/// The smallest response capacity a request gets unless
/// [`RequestOptions::response_capacity`] says otherwise.
const MIN_DEFAULT_RESPONSE_CAPACITY: usize = 256;

/// Response capacity per expected responder, for requests with so many
/// responders that [`MIN_DEFAULT_RESPONSE_CAPACITY`] would be tight.
const RESPONSE_CAPACITY_PER_RESPONDER: usize = 8;

/// How a scatter-gather request runs: who is expected to answer, how many
/// answers are enough, how long to wait, and how to cancel it.
///
/// Build it with [`RequestOptions::new`] and the chained setters, or as a
/// struct literal completed with `..Default::default()` (Go's
/// `RequestOptions{Timeout, ExpectedResponders, MinResponses}`):
///
/// ```
/// use std::time::Duration;
/// use switchboard::RequestOptions;
///
/// let chained = RequestOptions::new(["schema", "policy", "quota"])
///     .timeout(Duration::from_secs(2))
///     .min_responses(2);
///
/// let literal = RequestOptions {
///     timeout: Duration::from_secs(2),
///     expected_responders: vec!["schema".into(), "policy".into(), "quota".into()],
///     min_responses: 2,
///     ..Default::default()
/// };
/// assert_eq!(chained.expected_responders, literal.expected_responders);
/// assert!(chained.validate().is_ok());
/// ```
///
/// The options are checked when the request is made
/// ([`validate`](Self::validate) checks them earlier): invalid ones make it
/// fail with [`RequestError::InvalidOptions`](crate::RequestError::InvalidOptions)
/// before anything is subscribed or published.
#[derive(Clone, Debug)]
pub struct RequestOptions {
    /// How long to wait for the quorum (default 10 s). Must not be zero.
    ///
    /// A timeout too large to add to the current `Instant` (such as
    /// [`Duration::MAX`]) means no timeout: the request then ends only when
    /// the quorum is met or it is cancelled.
    pub timeout: Duration,
    /// The responders whose answers count, by [`Response::responder`](crate::Response::responder)
    /// name. At least one; each listed once. Responses from anyone else are
    /// ignored.
    pub expected_responders: Vec<String>,
    /// How many expected responders must answer: 0 (the default) means all of
    /// them; at most `expected_responders.len()`. The request returns as soon
    /// as this many have answered.
    pub min_responses: usize,
    /// Cancels the request when cancelled (Go's context); see [`CancelToken`].
    pub cancel_token: Option<CancelToken>,
    /// The response subscription's capacity; `None` (the default) sizes it as
    /// [`response_capacity`](Self::response_capacity) explains.
    pub response_capacity: Option<usize>,
}

impl Default for RequestOptions {
    /// A 10 s timeout, all expected responders required, no cancel token,
    /// the default response capacity — and no expected responders yet, which
    /// must be filled in before the options are valid.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            expected_responders: Vec::new(),
            min_responses: 0,
            cancel_token: None,
            response_capacity: None,
        }
    }
}

impl RequestOptions {
    /// Options expecting an answer from each of `responders` within the
    /// default timeout of 10 s.
    pub fn new<I, S>(responders: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            expected_responders: responders.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Waits at most `timeout` for the quorum (default 10 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Returns as soon as `min_responses` expected responders have answered,
    /// instead of waiting for all of them: graceful degradation when some
    /// responders may be slow or down. 0 (the default) means all of them.
    #[must_use]
    pub fn min_responses(mut self, min_responses: usize) -> Self {
        self.min_responses = min_responses;
        self
    }

    /// Ends the request with [`RequestError::Cancelled`](crate::RequestError::Cancelled)
    /// (and the responses gathered so far) when `token` is cancelled, from any
    /// thread. A token cancelled before the request starts cancels it before
    /// anything is published.
    #[must_use]
    pub fn cancel_token(mut self, token: CancelToken) -> Self {
        self.cancel_token = Some(token);
        self
    }

    /// Sets the capacity of the request's response subscription.
    ///
    /// The response subscription receives *every* event of the response type,
    /// including responses to other requests in flight at the same time
    /// (which it then ignores). A response that arrives while the buffer is
    /// full is dropped like any event for a full critical subscriber: counted
    /// and reported to the drop callback — and, if it was one of this
    /// request's, missed. The requester drains the buffer as responses arrive,
    /// so it only has to absorb a burst that lands while the requester is not
    /// running.
    ///
    /// By default the buffer holds 256 responses, or 8 per expected
    /// responder if that is more: room for the answers to some 80 concurrent
    /// three-responder requests of the same response type arriving before the
    /// requester gets a chance to run. The buffer is allocated for each request
    /// (about 24 bytes a slot), so raise it only for many concurrent requests
    /// sharing one response type. Must be between 1 and
    /// [`MAX_CAPACITY`](crate::MAX_CAPACITY).
    #[must_use]
    pub fn response_capacity(mut self, capacity: usize) -> Self {
        self.response_capacity = Some(capacity);
        self
    }

    /// Checks the options without making a request; a request with options
    /// that fail this check fails with
    /// [`RequestError::InvalidOptions`](crate::RequestError::InvalidOptions).
    ///
    /// ```
    /// use switchboard::{RequestOptions, RequestOptionsError};
    ///
    /// let options = RequestOptions::new(["a", "b"]).min_responses(3);
    /// let error = options.validate().unwrap_err();
    /// assert_eq!(error, RequestOptionsError::MinResponsesTooHigh { min_responses: 3, expected: 2 });
    /// println!("{error}"); // says what to change
    /// ```
    ///
    /// # Errors
    ///
    /// The first problem found, in this order:
    /// [`NoExpectedResponders`](RequestOptionsError::NoExpectedResponders),
    /// [`DuplicateResponder`](RequestOptionsError::DuplicateResponder),
    /// [`MinResponsesTooHigh`](RequestOptionsError::MinResponsesTooHigh),
    /// [`ZeroTimeout`](RequestOptionsError::ZeroTimeout),
    /// [`InvalidResponseCapacity`](RequestOptionsError::InvalidResponseCapacity).
    pub fn validate(&self) -> Result<(), RequestOptionsError> {
        let expected = &self.expected_responders;
        if expected.is_empty() {
            return Err(RequestOptionsError::NoExpectedResponders);
        }
        if let Some(duplicate) = first_duplicate(expected) {
            return Err(RequestOptionsError::DuplicateResponder(
                duplicate.to_owned(),
            ));
        }
        if self.min_responses > expected.len() {
            return Err(RequestOptionsError::MinResponsesTooHigh {
                min_responses: self.min_responses,
                expected: expected.len(),
            });
        }
        if self.timeout.is_zero() {
            return Err(RequestOptionsError::ZeroTimeout);
        }
        if let Some(capacity) = self.response_capacity {
            if capacity == 0 || capacity > MAX_CAPACITY {
                return Err(RequestOptionsError::InvalidResponseCapacity {
                    requested: capacity,
                    max: MAX_CAPACITY,
                });
            }
        }
        Ok(())
    }

    /// How many expected responders must answer (resolves 0 to all of them).
    pub(super) fn required(&self) -> usize {
        match self.min_responses {
            0 => self.expected_responders.len(),
            n => n,
        }
    }

    /// The response subscription's capacity.
    pub(super) fn resolved_response_capacity(&self) -> usize {
        self.response_capacity.unwrap_or_else(|| {
            self.expected_responders
                .len()
                .saturating_mul(RESPONSE_CAPACITY_PER_RESPONDER)
                .clamp(MIN_DEFAULT_RESPONSE_CAPACITY, MAX_CAPACITY)
        })
    }
}

/// The first name listed twice, if any.
fn first_duplicate(names: &[String]) -> Option<&str> {
    if names.len() <= 16 {
        return names
            .iter()
            .enumerate()
            .find(|(i, name)| names[..*i].contains(name))
            .map(|(_, name)| name.as_str());
    }
    let mut seen = std::collections::HashSet::with_capacity(names.len());
    names
        .iter()
        .find(|name| !seen.insert(name.as_str()))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let options = RequestOptions::new(["a"]);
        assert_eq!(options.timeout, Duration::from_secs(10));
        assert_eq!(options.min_responses, 0);
        assert_eq!(options.required(), 1);
        assert_eq!(
            options.resolved_response_capacity(),
            MIN_DEFAULT_RESPONSE_CAPACITY
        );
        assert!(options.validate().is_ok());
    }

    #[test]
    fn response_capacity_grows_with_responders_and_is_capped() {
        let many = RequestOptions::new((0..100).map(|i| i.to_string()));
        assert_eq!(many.resolved_response_capacity(), 800);
        let mut absurd = RequestOptions::new(["a"]);
        absurd.expected_responders = vec![String::new(); MAX_CAPACITY / 4];
        assert_eq!(absurd.resolved_response_capacity(), MAX_CAPACITY);
        assert_eq!(
            RequestOptions::new(["a"])
                .response_capacity(3)
                .resolved_response_capacity(),
            3
        );
    }

    #[test]
    fn duplicates_are_found_in_short_and_long_lists() {
        let short: Vec<String> = ["a", "b", "a"].map(String::from).into();
        assert_eq!(first_duplicate(&short), Some("a"));
        let mut long: Vec<String> = (0..40).map(|i| i.to_string()).collect();
        assert_eq!(first_duplicate(&long), None);
        long.push("17".into());
        assert_eq!(first_duplicate(&long), Some("17"));
    }

    #[test]
    fn every_check() {
        use RequestOptionsError::*;
        let check = |o: RequestOptions| o.validate().unwrap_err();
        assert_eq!(
            check(RequestOptions::new(Vec::<String>::new())),
            NoExpectedResponders
        );
        assert_eq!(
            check(RequestOptions::new(["a", "b", "b"])),
            DuplicateResponder("b".into())
        );
        assert_eq!(
            check(RequestOptions::new(["a"]).min_responses(2)),
            MinResponsesTooHigh {
                min_responses: 2,
                expected: 1
            }
        );
        assert_eq!(
            check(RequestOptions::new(["a"]).timeout(Duration::ZERO)),
            ZeroTimeout
        );
        assert_eq!(
            check(RequestOptions::new(["a"]).response_capacity(0)),
            InvalidResponseCapacity {
                requested: 0,
                max: MAX_CAPACITY
            }
        );
        assert_eq!(
            check(RequestOptions::new(["a"]).response_capacity(MAX_CAPACITY + 1)),
            InvalidResponseCapacity {
                requested: MAX_CAPACITY + 1,
                max: MAX_CAPACITY
            }
        );
        assert!(RequestOptions::new(["a", "b"])
            .min_responses(2)
            .response_capacity(MAX_CAPACITY)
            .validate()
            .is_ok());
    }
}
