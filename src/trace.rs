//! W3C Trace Context: the `traceparent` and `tracestate` an event may carry,
//! so that the trail of *why* it happened survives a process boundary.
//!
//! Opt-in, per event type: an event whose type has no trace context
//! ([`Event::trace_context`](crate::Event::trace_context) keeps its default,
//! `None`) costs exactly what it did before. The core only carries and
//! validates the context; it starts no spans and needs no tracing library.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// A validated [W3C Trace Context](https://www.w3.org/TR/trace-context/):
/// the `traceparent` (trace id, parent id, flags) and, optionally, the
/// vendor-specific `tracestate`.
///
/// - `traceparent` is `{version}-{trace-id}-{parent-id}-{flags}` in lowercase
///   hex: version `00` (a higher version is read as the spec asks, by its
///   first four fields, and written back as `00`; `ff` is invalid), a
///   32-digit trace id and a 16-digit parent id, neither all zeros, and
///   2 digits of flags (bit 0: sampled).
/// - `tracestate` is kept as the string it is, once checked against the
///   spec's limits: at most 32 comma-separated `key=value` members, keys of
///   the spec's two shapes (`vendor`, `tenant@vendor`), values of up to 256
///   printable characters.
///
/// Cloning is cheap: the `tracestate` is shared.
///
/// ```
/// use switchboard::TraceContext;
///
/// let context = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")?
///     .with_tracestate("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")?;
/// assert!(context.sampled());
/// assert_eq!(context.trace_id()[0], 0x4b);
/// assert_eq!(
///     context.traceparent(),
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
/// );
/// assert_eq!(context.tracestate(), Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
///
/// assert!(TraceContext::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_err());
/// # Ok::<(), switchboard::TraceContextError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
    tracestate: Option<Arc<str>>,
}

/// Why a `traceparent` or a `tracestate` is not valid W3C Trace Context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceContextError {
    /// The `traceparent` does not have the shape
    /// `{version}-{trace-id}-{parent-id}-{flags}` in lowercase hex (or has
    /// version `ff`, or more than the four fields at version `00`).
    Traceparent,
    /// The trace id is all zeros.
    ZeroTraceId,
    /// The parent id is all zeros.
    ZeroParentId,
    /// The `tracestate` has more than 32 members, or a member that is not
    /// `key=value` within the spec's limits.
    Tracestate,
}

impl fmt::Display for TraceContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TraceContextError::Traceparent => {
                "the traceparent is not `00-{32 hex trace id}-{16 hex parent id}-{2 hex flags}` \
                 in lowercase hex"
            }
            TraceContextError::ZeroTraceId => "the traceparent's trace id is all zeros",
            TraceContextError::ZeroParentId => "the traceparent's parent id is all zeros",
            TraceContextError::Tracestate => {
                "the tracestate is not at most 32 comma-separated `key=value` members within the \
                 W3C Trace Context limits"
            }
        })
    }
}

impl Error for TraceContextError {}

/// The length of a version-00 `traceparent`.
const TRACEPARENT_LEN: usize = 55;
/// The most members a `tracestate` may have.
const MAX_MEMBERS: usize = 32;

impl TraceContext {
    /// A context from its parts, with no `tracestate`; an error if either
    /// id is all zeros.
    pub fn new(
        trace_id: [u8; 16],
        parent_id: [u8; 8],
        flags: u8,
    ) -> Result<Self, TraceContextError> {
        if trace_id == [0; 16] {
            return Err(TraceContextError::ZeroTraceId);
        }
        if parent_id == [0; 8] {
            return Err(TraceContextError::ZeroParentId);
        }
        Ok(Self {
            trace_id,
            parent_id,
            flags,
            tracestate: None,
        })
    }

    /// Reads a `traceparent` header value, with no `tracestate`.
    pub fn parse(traceparent: &str) -> Result<Self, TraceContextError> {
        let text = traceparent.as_bytes();
        if text.len() < TRACEPARENT_LEN {
            return Err(TraceContextError::Traceparent);
        }
        let version = hex_byte(&text[0..2]).ok_or(TraceContextError::Traceparent)?;
        // Version 00 is exactly its four fields; a later version may add
        // fields after a dash, which this version ignores (the spec's
        // rule for versions it does not know). Version ff is invalid.
        let shape_ok = match version {
            0 => text.len() == TRACEPARENT_LEN,
            0xff => false,
            _ => text.len() == TRACEPARENT_LEN || text[TRACEPARENT_LEN] == b'-',
        };
        if !shape_ok || text[2] != b'-' || text[35] != b'-' || text[52] != b'-' {
            return Err(TraceContextError::Traceparent);
        }
        let mut trace_id = [0; 16];
        for (i, byte) in trace_id.iter_mut().enumerate() {
            *byte = hex_byte(&text[3 + 2 * i..5 + 2 * i]).ok_or(TraceContextError::Traceparent)?;
        }
        let mut parent_id = [0; 8];
        for (i, byte) in parent_id.iter_mut().enumerate() {
            *byte =
                hex_byte(&text[36 + 2 * i..38 + 2 * i]).ok_or(TraceContextError::Traceparent)?;
        }
        let flags = hex_byte(&text[53..55]).ok_or(TraceContextError::Traceparent)?;
        Self::new(trace_id, parent_id, flags)
    }

    /// The same context with `tracestate` (a `tracestate` header value);
    /// an empty or blank one is no `tracestate`. An error if it breaks the
    /// spec's limits: per the spec, a receiver then keeps the
    /// `traceparent` and discards the `tracestate`.
    pub fn with_tracestate(mut self, tracestate: &str) -> Result<Self, TraceContextError> {
        if !valid_tracestate(tracestate) {
            return Err(TraceContextError::Tracestate);
        }
        self.tracestate = if tracestate.trim_matches([' ', '\t']).is_empty() {
            None
        } else {
            Some(Arc::from(tracestate))
        };
        Ok(self)
    }

    /// The same context without its `tracestate`.
    pub fn without_tracestate(mut self) -> Self {
        self.tracestate = None;
        self
    }

    /// The trace id: the same in every span of one trace.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The id of the span the event was published in (the parent of the
    /// spans that handle it).
    pub fn parent_id(&self) -> [u8; 8] {
        self.parent_id
    }

    /// The trace flags (bit 0: sampled).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the trace is sampled (flag bit 0).
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The `tracestate`, as it was given.
    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// The `traceparent` header value (version `00`).
    pub fn traceparent(&self) -> String {
        let mut out = String::with_capacity(TRACEPARENT_LEN);
        out.push_str("00-");
        push_hex(&mut out, &self.trace_id);
        out.push('-');
        push_hex(&mut out, &self.parent_id);
        out.push('-');
        push_hex(&mut out, &[self.flags]);
        out
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceContext")
            .field("traceparent", &self.traceparent())
            .field("tracestate", &self.tracestate())
            .finish()
    }
}

/// Writes the `traceparent`.
impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.traceparent())
    }
}

fn hex_digit(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None, // uppercase is invalid too
    }
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    Some(hex_digit(pair[0])? << 4 | hex_digit(pair[1])?)
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
}

/// `tracestate = list-member 0*31( OWS "," OWS list-member )`, empty
/// members allowed (and not counted).
fn valid_tracestate(tracestate: &str) -> bool {
    let mut members = 0;
    for member in tracestate.split(',') {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        members += 1;
        if members > MAX_MEMBERS || !valid_member(member) {
            return false;
        }
    }
    true
}

fn valid_member(member: &str) -> bool {
    let Some((key, value)) = member.split_once('=') else {
        return false;
    };
    valid_key(key.as_bytes()) && valid_value(value.as_bytes())
}

/// `simple-key = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )`, or
/// `tenant-id "@" system-id`, `tenant-id = ( lcalpha / DIGIT ) 0*240( ... )`,
/// `system-id = lcalpha 0*13( ... )`.
fn valid_key(key: &[u8]) -> bool {
    fn rest(byte: u8) -> bool {
        byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"_-*/".contains(&byte)
    }
    match key.iter().position(|&b| b == b'@') {
        None => {
            (1..=256).contains(&key.len())
                && key[0].is_ascii_lowercase()
                && key[1..].iter().all(|&b| rest(b))
        }
        Some(at) => {
            let (tenant, system) = (&key[..at], &key[at + 1..]);
            (1..=241).contains(&tenant.len())
                && (tenant[0].is_ascii_lowercase() || tenant[0].is_ascii_digit())
                && tenant[1..].iter().all(|&b| rest(b))
                && (1..=14).contains(&system.len())
                && system[0].is_ascii_lowercase()
                && system[1..].iter().all(|&b| rest(b))
        }
    }
}

/// `value = 0*255(chr) nblk-chr`, `chr = %x20 / nblk-chr`,
/// `nblk-chr = %x21-2B / %x2D-3C / %x3E-7E`.
fn valid_value(value: &[u8]) -> bool {
    fn nblk(byte: u8) -> bool {
        matches!(byte, 0x21..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e)
    }
    (1..=256).contains(&value.len())
        && value.iter().all(|&b| b == b' ' || nblk(b))
        && nblk(value[value.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_round_trips() {
        let context = TraceContext::parse(GOOD).unwrap();
        assert_eq!(context.traceparent(), GOOD);
        assert_eq!(context.to_string(), GOOD);
        assert_eq!(
            context.parent_id(),
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(context.flags(), 1);
        assert!(context.sampled());
        assert_eq!(context.tracestate(), None);
        let unsampled = TraceContext::parse(&GOOD.replace("-01", "-00")).unwrap();
        assert!(!unsampled.sampled());
        assert_eq!(
            TraceContext::new(context.trace_id(), context.parent_id(), 1).unwrap(),
            context
        );
    }

    #[test]
    fn invalid_traceparents_say_why() {
        use TraceContextError::*;
        for (text, why) in [
            ("", Traceparent),
            ("00", Traceparent),
            (&GOOD[..54], Traceparent),
            (&format!("{GOOD}-"), Traceparent), // more fields at 00
            (&GOOD.replace("4bf9", "4BF9"), Traceparent), // uppercase
            (&GOOD.replacen('-', "_", 1), Traceparent), // separator
            (&format!("{}_{}", &GOOD[..35], &GOOD[36..]), Traceparent), // second
            (&format!("{}_{}", &GOOD[..52], &GOOD[53..]), Traceparent), // third
            (&GOOD.replace("4bf9", "4bg9"), Traceparent), // not hex
            (&GOOD.replacen("00", "ff", 1), Traceparent), // version ff
            (&GOOD.replace("-01", "-0x"), Traceparent), // flags
            (&GOOD.replace("-01", "-1"), Traceparent), // flags too short
            (&GOOD.replacen("00-", "0-0", 1), Traceparent), // shifted
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                ZeroTraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                ZeroParentId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01é",
                Traceparent,
            ),
        ] {
            assert_eq!(TraceContext::parse(text), Err(why), "{text:?}");
        }
        assert_eq!(TraceContext::new([0; 16], [1; 8], 0), Err(ZeroTraceId));
        assert_eq!(TraceContext::new([1; 16], [0; 8], 0), Err(ZeroParentId));
        assert!(!ZeroTraceId.to_string().is_empty());
    }

    #[test]
    fn a_later_version_is_read_by_its_first_four_fields_and_written_as_00() {
        let later = GOOD.replacen("00", "01", 1);
        assert_eq!(TraceContext::parse(&later).unwrap().traceparent(), GOOD);
        let extended = format!("{later}-what-comes-next");
        assert_eq!(TraceContext::parse(&extended).unwrap().traceparent(), GOOD);
        assert!(TraceContext::parse(&format!("{later}x")).is_err());
    }

    #[test]
    fn tracestate_is_kept_as_given_within_the_limits() {
        let context = TraceContext::parse(GOOD).unwrap();
        for good in [
            "rojo=00f067aa0ba902b7",
            "rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE",
            "tenant@vendor=x,a_b-c*d/e=some value",
            "0tenant@v=1",
            ",,rojo=1,,",
            "k=\"quoted\\back\"",
        ] {
            let with = context.clone().with_tracestate(good).unwrap();
            assert_eq!(with.tracestate(), Some(good));
        }
        assert_eq!(
            context.clone().with_tracestate(" ").unwrap().tracestate(),
            None
        );
        let max: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        assert!(context.clone().with_tracestate(&max.join(",")).is_ok());
        let too_many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        let long_key = format!("{}=v", "k".repeat(257));
        let long_value = format!("k={}", "v".repeat(257));
        for bad in [
            too_many.join(","),
            long_key,
            long_value,
            "novalue".to_owned(),
            "=v".to_owned(),
            "Upper=v".to_owned(),
            "1digitfirst=v".to_owned(),
            "k=v,k2=trailing "
                .to_owned()
                .replace("trailing ", "trailing\u{7f}"),
            "k=a=b".to_owned(),
            "k=a,b".to_owned(),
            "t@=v".to_owned(),
            "t@V=v".to_owned(),
            format!("t@{}=v", "s".repeat(15)),
            "k=caf\u{e9}".to_owned(),
        ] {
            assert_eq!(
                context.clone().with_tracestate(&bad),
                Err(TraceContextError::Tracestate),
                "{bad:?}"
            );
        }
        let kept = context.clone().with_tracestate("a=1").unwrap();
        assert_eq!(kept.without_tracestate(), context);
    }
}
