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
    /// The subject would be longer than [`MAX_SUBJECT_LEN`] bytes: the server
    /// closes the connection of a client whose protocol line exceeds its
    /// `max_control_line` (4 KiB by default), and a delivered message's line
    /// also carries the reply subject.
    TooLong {
        /// The subject's length in bytes.
        len: usize,
    },
    /// The prefix's first token is [`RESERVED_TOKEN`], under which the
    /// bridges send their own control messages.
    Reserved,
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
            SubjectError::TooLong { len } => write!(
                f,
                "its subject would be {len} bytes long, more than the {MAX_SUBJECT_LEN} the bridge \
                 allows (the server's protocol lines are limited to 4 KiB)"
            ),
            SubjectError::Reserved => write!(
                f,
                "its first token {RESERVED_TOKEN:?} is reserved for the bridges' control subjects"
            ),
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

/// The longest subject the bridge uses for an event type, in bytes: a
/// quarter of nats-server's default `max_control_line` (4096), leaving room
/// on a protocol line for the reply subject (a JetStream acknowledgement
/// subject is over 100 bytes) and the numbers. A server configured with a
/// smaller `max_control_line` needs shorter types than this.
pub const MAX_SUBJECT_LEN: usize = 1024;

/// The first token of the bridges' own control subjects
/// (`_sb.{prefix}.…`), outside the prefix so that a stream capturing
/// `{prefix}.>` neither stores nor answers them: no prefix may start with it.
pub const RESERVED_TOKEN: &str = "_sb";

/// Checks that `prefix` can be the bridge's prefix: a valid name
/// ([`check_name`]) whose first token is not [`RESERVED_TOKEN`], short
/// enough that a subject under it (`{prefix}.x`) fits in
/// [`MAX_SUBJECT_LEN`] bytes.
///
/// ```
/// use switchboard_nats::subject::{check_prefix, SubjectError};
///
/// assert_eq!(check_prefix("acme.events"), Ok(()));
/// assert_eq!(check_prefix("_sb.x"), Err(SubjectError::Reserved));
/// assert_eq!(
///     check_prefix(&"p".repeat(5000)),
///     Err(SubjectError::TooLong { len: 5002 })
/// );
/// ```
///
/// # Errors
///
/// The first problem found, as a [`SubjectError`].
pub fn check_prefix(prefix: &str) -> Result<(), SubjectError> {
    check_name(prefix)?;
    if prefix.split('.').next() == Some(RESERVED_TOKEN) {
        return Err(SubjectError::Reserved);
    }
    // The shortest subject under the prefix: `{prefix}.x`. Unchecked, a
    // bridge without event types would start with a prefix whose control
    // subjects the server refuses.
    let shortest = prefix.len() + 2;
    if shortest > MAX_SUBJECT_LEN {
        return Err(SubjectError::TooLong { len: shortest });
    }
    Ok(())
}

/// Checks that `event_type` can travel under `prefix`: a valid name
/// ([`check_name`]) whose subject is at most [`MAX_SUBJECT_LEN`] bytes.
///
/// ```
/// use switchboard_nats::subject::{check_event_type, SubjectError};
///
/// assert_eq!(check_event_type("sb", "route.added"), Ok(()));
/// assert_eq!(
///     check_event_type("sb", &"x".repeat(5000)),
///     Err(SubjectError::TooLong { len: 5003 })
/// );
/// ```
///
/// # Errors
///
/// The first problem found, as a [`SubjectError`].
pub fn check_event_type(prefix: &str, event_type: &str) -> Result<(), SubjectError> {
    check_name(event_type)?;
    let len = prefix.len() + 1 + event_type.len();
    if len > MAX_SUBJECT_LEN {
        return Err(SubjectError::TooLong { len });
    }
    Ok(())
}

/// The bridges' control subject `_sb.{prefix}.{what}`.
pub(crate) fn control(prefix: &str, what: &str) -> String {
    format!("{RESERVED_TOKEN}.{prefix}.{what}")
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
