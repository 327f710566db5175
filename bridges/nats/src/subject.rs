//! NATS subjects: which names are valid, and how an event type becomes a subject.
//!
//! An event type `route.added` under the prefix `sb` travels on the subject
//! `sb.route.added`: the event type's dots become subject levels, so
//! subscribers can use NATS wildcards over them (`sb.route.*`).

use std::error::Error;
use std::fmt;

/// Why a prefix or an event type cannot be (part of) a NATS subject.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectError {
    /// The name is empty.
    Empty,
    /// The name has an empty token: a leading or trailing dot, or two dots in a row.
    EmptyToken,
    /// The name contains a NATS wildcard character, `*` or `>`, which would
    /// make the bridge publish to or subscribe to many subjects at once.
    Wildcard(char),
    /// The name contains whitespace or a control character, which the NATS
    /// protocol cannot carry in a subject.
    Whitespace,
}

impl fmt::Display for SubjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubjectError::Empty => f.write_str("it is empty"),
            SubjectError::EmptyToken => f.write_str(
                "it has an empty token (a leading or trailing dot, or two dots in a row)",
            ),
            SubjectError::Wildcard(c) => write!(f, "it contains the NATS wildcard {c:?}"),
            SubjectError::Whitespace => {
                f.write_str("it contains whitespace or a control character")
            }
        }
    }
}

impl Error for SubjectError {}

/// Checks that `name` can be a literal part of a subject: non-empty
/// dot-separated tokens, no wildcards, no whitespace or control characters.
///
/// ```
/// use switchboard_nats::subject::{check_name, SubjectError};
///
/// assert_eq!(check_name("route.added"), Ok(()));
/// assert_eq!(check_name("route.*"), Err(SubjectError::Wildcard('*')));
/// assert_eq!(check_name("route..added"), Err(SubjectError::EmptyToken));
/// assert_eq!(check_name("route added"), Err(SubjectError::Whitespace));
/// ```
///
/// # Errors
///
/// The first problem found, as a [`SubjectError`].
pub fn check_name(name: &str) -> Result<(), SubjectError> {
    if name.is_empty() {
        return Err(SubjectError::Empty);
    }
    if let Some(c) = name.chars().find(|c| matches!(c, '*' | '>')) {
        return Err(SubjectError::Wildcard(c));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(SubjectError::Whitespace);
    }
    if name.split('.').any(str::is_empty) {
        return Err(SubjectError::EmptyToken);
    }
    Ok(())
}

/// The subject an event type travels on under `prefix`: `{prefix}.{event_type}`.
///
/// Both parts must pass [`check_name`]; the bridge checks them when it is
/// configured, so this does not.
///
/// ```
/// assert_eq!(switchboard_nats::subject::for_event_type("sb", "route.added"), "sb.route.added");
/// ```
pub fn for_event_type(prefix: &str, event_type: &str) -> String {
    format!("{prefix}.{event_type}")
}

/// The event type a subject under `prefix` carries, or `None` if the subject
/// is not under the prefix.
///
/// ```
/// use switchboard_nats::subject::event_type_of;
///
/// assert_eq!(event_type_of("sb", "sb.route.added"), Some("route.added"));
/// assert_eq!(event_type_of("sb", "sbx.route.added"), None);
/// assert_eq!(event_type_of("sb", "sb"), None);
/// ```
pub fn event_type_of<'a>(prefix: &str, subject: &'a str) -> Option<&'a str> {
    subject
        .strip_prefix(prefix)?
        .strip_prefix('.')
        .filter(|rest| !rest.is_empty())
}

/// The JetStream stream name the bridge uses for `prefix` unless told
/// otherwise: the prefix upper-cased, dots replaced by underscores
/// (stream names cannot contain dots).
///
/// ```
/// assert_eq!(switchboard_nats::subject::default_stream_name("sb.events"), "SB_EVENTS");
/// ```
pub fn default_stream_name(prefix: &str) -> String {
    prefix.replace('.', "_").to_uppercase()
}

/// Whether the subject pattern `pattern` (which may hold the wildcards `*`
/// and `>`) matches the literal subject `subject`.
///
/// ```
/// use switchboard_nats::subject::matches;
///
/// assert!(matches("sb.route.added", "sb.route.added"));
/// assert!(matches("sb.>", "sb.route.added"));
/// assert!(matches("sb.*.added", "sb.route.added"));
/// assert!(!matches("sb.*", "sb.route.added")); // `*` is one token
/// assert!(!matches("sb.route", "sb.route.added"));
/// ```
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for token in pattern.split('.') {
        match (token, subject_tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (literal, Some(actual)) if literal == actual => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "route.added", "Route_Added-2", "a.b.c.d", "ünï.cödé"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        let bad = [
            ("", SubjectError::Empty),
            (".a", SubjectError::EmptyToken),
            ("a.", SubjectError::EmptyToken),
            ("a..b", SubjectError::EmptyToken),
            ("*", SubjectError::Wildcard('*')),
            ("a.>", SubjectError::Wildcard('>')),
            ("a*b", SubjectError::Wildcard('*')),
            ("a b", SubjectError::Whitespace),
            ("a\tb", SubjectError::Whitespace),
            ("a\u{7}b", SubjectError::Whitespace),
            ("a\r\nb", SubjectError::Whitespace),
        ];
        for (name, error) in bad {
            assert_eq!(check_name(name), Err(error), "{name:?}");
        }
    }

    #[test]
    fn wildcards() {
        assert!(matches(">", "a"));
        assert!(matches("*.b.>", "a.b.c.d"));
        assert!(!matches("a.>", "a"));
        assert!(!matches("a.b", "a"));
        assert!(!matches("*", "a.b"));
        assert!(!matches("a.c", "a.b"));
    }

    #[test]
    fn round_trip() {
        let subject = for_event_type("sb.x", "route.added");
        assert_eq!(event_type_of("sb.x", &subject), Some("route.added"));
        assert_eq!(event_type_of("sb.x", "sb.xy.route"), None);
    }
}
