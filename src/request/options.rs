//! What a request asks for: who must answer, how many of them, for how long.

use std::time::Duration;

use super::cancel::CancelToken;
use super::outcome::RequestOptionsError;

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
/// before anything is published.
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
}

impl Default for RequestOptions {
    /// A 10 s timeout, all expected responders required, no cancel token —
    /// and no expected responders yet, which
    /// must be filled in before the options are valid.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            expected_responders: Vec::new(),
            min_responses: 0,
            cancel_token: None,
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
    /// [`ZeroTimeout`](RequestOptionsError::ZeroTimeout).
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
        Ok(())
    }

    /// How many expected responders must answer (resolves 0 to all of them).
    pub(super) fn required(&self) -> usize {
        match self.min_responses {
            0 => self.expected_responders.len(),
            n => n,
        }
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
        assert!(options.validate().is_ok());
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
        assert!(RequestOptions::new(["a", "b"])
            .min_responses(2)
            .validate()
            .is_ok());
    }
}
