//! Event metadata as CloudEvents 1.0 binary-mode headers.
//!
//! The payload is the event itself (encoded by the [`Codec`](crate::Codec));
//! the metadata travels in NATS headers, so any CloudEvents-aware consumer
//! can read a bridged message without knowing switchboard:
//!
//! | header | CloudEvents attribute | value |
//! |---|---|---|
//! | `ce-specversion` | `specversion` | `1.0` |
//! | `ce-id` | `id` | `{run}.{seq}`: unique per event and source; also the JetStream `Nats-Msg-Id` |
//! | `ce-type` | `type` | the event type, e.g. `route.added` |
//! | `ce-source` | `source` | the exporting bridge's name |
//! | `ce-time` | `time` | the event's timestamp, RFC 3339 |
//! | `content-type` | `datacontenttype` | the codec's content type; left out for JSON, the CloudEvents default |
//! | `traceparent` | `traceparent` (distributed-tracing extension) | the event's W3C trace context, if its type carries one ([`Event::trace_context`](switchboard::Event::trace_context)) |
//! | `tracestate` | `tracestate` (distributed-tracing extension) | its vendor-specific state, if any |
//! | `ce-sbttl` | extension | on requests only: milliseconds the requester still waits |
//! | `ce-sberror` | extension | on a reply to a request only: why the serving bridge named in its `ce-source` rejected it (no payload) |
//!
//! The trace context travels under the W3C header names, as the
//! CloudEvents distributed-tracing extension and the NATS clients'
//! OpenTelemetry propagation write it; an importer reads `ce-traceparent`
//! and `ce-tracestate` too (CloudEvents SDKs write extensions with the
//! `ce-` prefix), the unprefixed ones first. A `traceparent` that is not
//! valid W3C Trace Context is ignored and counted, never a reason to turn
//! the event away; an invalid `tracestate` is dropped (and counted) and the
//! `traceparent` kept, as the W3C spec says.
//!
//! A bridge's `ce-id` is `{run}.{seq}`: `run` is 22 letters and digits,
//! unique per exporter and event type (a new one each time a bridge
//! starts), and `seq` numbers the run's events from 1. From it an importer
//! counts the events lost in transit (a gap in the numbers) and, on
//! JetStream, keeps a publisher's order across redeliveries; ids of another
//! shape (other publishers) carry no numbers. The numbers ride in the id
//! rather than in headers of their own because every header costs: the
//! async-nats client's throughput falls with each header a message carries.
//!
//! Per message the bridge builds only what changes. The names, the values
//! that are the same for every event of a type and a map with room for the
//! id and the time are built once per exported type and cloned; the id and
//! the time are written straight into their values. An importer reads the
//! headers where they are, in one pass. What remains is the client's header
//! map, which holds each value in a `String` and each name's values in a
//! `Vec`: of the 21 allocations an exported at-most-once event costs, 17 are
//! the map's (built, written, freed); of the 21 an imported one costs, 17
//! are the map the client parses the headers into, 1 the client's copy of
//! the subject and 3 the decoded event. `tests/allocations.rs`
//! fails above 22 on either side; the bridge's README has the instruction
//! counts.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::{HeaderMap, HeaderValue};
use switchboard::TraceContext;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `ce-specversion`: always `1.0`.
pub const SPECVERSION: &str = "ce-specversion";
/// `ce-id`: unique per event and source.
pub const ID: &str = "ce-id";
/// `ce-type`: the event type.
pub const TYPE: &str = "ce-type";
/// `ce-source`: the exporting bridge's name.
pub const SOURCE: &str = "ce-source";
/// `ce-time`: the event's timestamp, RFC 3339.
pub const TIME: &str = "ce-time";
/// `content-type`: the payload's MIME type, when it is not JSON.
pub const CONTENT_TYPE: &str = "content-type";

/// `traceparent`: the W3C trace context's trace id, parent id and flags.
pub const TRACEPARENT: &str = "traceparent";
/// `tracestate`: the W3C trace context's vendor-specific state.
pub const TRACESTATE: &str = "tracestate";
/// `traceparent` as some CloudEvents SDKs write extensions; read, never written.
const CE_TRACEPARENT: &str = "ce-traceparent";
/// `tracestate` as some CloudEvents SDKs write extensions; read, never written.
const CE_TRACESTATE: &str = "ce-tracestate";

/// The content type that goes without saying: CloudEvents' default, and
/// the [`Json`](crate::Json) codec's.
pub const DEFAULT_CONTENT_TYPE: &str = "application/json";
/// `ce-sbttl`: on requests, how many milliseconds the requester still waits.
pub const TTL: &str = "ce-sbttl";
/// `ce-sberror`: on a reply to a request, why the serving bridge named by
/// `ce-source` rejected the request.
pub const REJECTED: &str = "ce-sberror";

/// The CloudEvents version the bridge writes and accepts.
pub const SPEC_VERSION: &str = "1.0";

/// The header names as async-nats keys. A name made from a `&str` is copied
/// to the heap each time it is used, for an insert as for a lookup; these
/// point at the constants above.
pub(crate) mod name {
    use async_nats::HeaderName;

    pub(crate) const SPECVERSION: HeaderName = HeaderName::from_static(super::SPECVERSION);
    pub(crate) const ID: HeaderName = HeaderName::from_static(super::ID);
    pub(crate) const TYPE: HeaderName = HeaderName::from_static(super::TYPE);
    pub(crate) const SOURCE: HeaderName = HeaderName::from_static(super::SOURCE);
    pub(crate) const TIME: HeaderName = HeaderName::from_static(super::TIME);
    pub(crate) const CONTENT_TYPE: HeaderName = HeaderName::from_static(super::CONTENT_TYPE);
    pub(crate) const TTL: HeaderName = HeaderName::from_static(super::TTL);
    pub(crate) const TRACEPARENT: HeaderName = HeaderName::from_static(super::TRACEPARENT);
    pub(crate) const TRACESTATE: HeaderName = HeaderName::from_static(super::TRACESTATE);
}

/// The metadata of one outgoing message.
pub(crate) struct Outgoing<'a> {
    pub id: &'a str,
    pub event_type: &'a str,
    pub source: &'a str,
    pub time: SystemTime,
    pub content_type: &'a str,
    pub ttl: Option<Duration>,
    pub trace: Option<&'a TraceContext>,
}

impl Outgoing<'_> {
    pub(crate) fn headers(&self) -> HeaderMap {
        let mut headers = EventHeaders::new(self.event_type, self.source, self.content_type).event(
            self.id.to_owned(),
            self.time,
            self.trace,
        );
        if let Some(ttl) = self.ttl {
            let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            headers.insert(name::TTL, itoa::Buffer::new().format(millis));
        }
        headers
    }
}

/// The headers of one exported type's events. What all of them carry
/// (spec version, type, source, content type) is built once, with empty
/// values for the id and the time; each event's map is a clone, whose
/// empty values are replaced. Cloning names and values copies them without
/// checking them again, and a map that has all its entries from the start
/// does not grow (and hash every name again) when the event's are added.
pub(crate) struct EventHeaders {
    /// Whether the events carry their id as JetStream's message id too.
    message_id: bool,
    timed: HeaderMap,
    /// Without `ce-time`, which is optional in CloudEvents: a timestamp
    /// RFC 3339 cannot write (past the year 9999) is left out rather than
    /// invented.
    untimed: HeaderMap,
}

impl EventHeaders {
    pub(crate) fn new(event_type: &str, source: &str, content_type: &str) -> Self {
        let mut untimed = HeaderMap::new();
        untimed.insert(name::SPECVERSION, SPEC_VERSION);
        untimed.insert(name::TYPE, event_type);
        untimed.insert(name::SOURCE, source);
        untimed.insert(name::ID, HeaderValue::new());
        // One header less on every message of the default codec: each costs
        // throughput in the client.
        if content_type != DEFAULT_CONTENT_TYPE {
            untimed.insert(name::CONTENT_TYPE, content_type);
        }
        let mut timed = untimed.clone();
        timed.insert(name::TIME, HeaderValue::new());
        Self {
            message_id: false,
            timed,
            untimed,
        }
    }

    /// The same, for JetStream: each event's id is its message id as well,
    /// which the stream stores once within its duplicate window.
    pub(crate) fn with_message_id(mut self) -> Self {
        for headers in [&mut self.timed, &mut self.untimed] {
            headers.insert(NATS_MESSAGE_ID, HeaderValue::new());
        }
        self.message_id = true;
        self
    }

    /// The headers of the event `id`, stamped `time`, carrying `trace`.
    pub(crate) fn event(
        &self,
        id: String,
        time: SystemTime,
        trace: Option<&TraceContext>,
    ) -> HeaderMap {
        let mut headers = match format_time(time) {
            Some(time) => {
                let mut headers = self.timed.clone();
                headers.insert(name::TIME, time);
                headers
            }
            None => self.untimed.clone(),
        };
        if self.message_id {
            headers.insert(NATS_MESSAGE_ID, id.as_str());
        }
        headers.insert(name::ID, id);
        if let Some(trace) = trace {
            insert_trace(&mut headers, trace);
        }
        headers
    }
}

/// Adds `trace` as `traceparent` and `tracestate` headers. Only events that
/// carry a context get them (and the map's growth), so the others cost what
/// they did.
pub(crate) fn insert_trace(headers: &mut HeaderMap, trace: &TraceContext) {
    headers.insert(name::TRACEPARENT, trace.traceparent());
    if let Some(state) = trace.tracestate() {
        headers.insert(name::TRACESTATE, state);
    }
}

/// The trace context attributes of an incoming message, as they came.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TraceAttributes<'a> {
    pub traceparent: Option<Cow<'a, str>>,
    pub tracestate: Option<Cow<'a, str>>,
    /// An attribute that cannot be text (structured mode: not a JSON string).
    pub not_text: bool,
}

/// What an incoming message's trace context attributes amount to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Trace {
    /// The context to give the event: `None` if the message has none or its
    /// `traceparent` is invalid.
    pub context: Option<TraceContext>,
    /// Whether something was invalid and ignored (to be counted).
    pub invalid: bool,
}

impl TraceAttributes<'_> {
    /// Validates the attributes. A `traceparent` that is not valid W3C
    /// Trace Context is ignored; an invalid `tracestate` is dropped and the
    /// `traceparent` kept (the W3C rule); a `tracestate` without a
    /// `traceparent` means nothing and is ignored without counting.
    pub(crate) fn resolve(&self) -> Trace {
        let Some(traceparent) = self.traceparent.as_deref() else {
            return Trace {
                context: None,
                invalid: self.not_text,
            };
        };
        if self.not_text {
            // Which one was not text is not kept: ignore both.
            return Trace {
                context: None,
                invalid: true,
            };
        }
        let Ok(context) = TraceContext::parse(traceparent) else {
            return Trace {
                context: None,
                invalid: true,
            };
        };
        match self.tracestate.as_deref() {
            None => Trace {
                context: Some(context),
                invalid: false,
            },
            Some(state) => match context.clone().with_tracestate(state) {
                Ok(context) => Trace {
                    context: Some(context),
                    invalid: false,
                },
                Err(_) => Trace {
                    context: Some(context),
                    invalid: true,
                },
            },
        }
    }
}

/// The largest header block a message of `event_type` from bridge `source`
/// can carry: the longest id and time, a content type, and JetStream's
/// message id.
pub(crate) fn largest_header_block(event_type: &str, source: &str) -> usize {
    let longest_id = event_id(&"x".repeat(RUN_LEN), u64::MAX - 1);
    let mut headers = Outgoing {
        id: &longest_id,
        event_type,
        source,
        time: SystemTime::UNIX_EPOCH,
        content_type: "application/x-a-long-content-type-for-good-measure",
        ttl: None,
        trace: None,
    }
    .headers();
    headers.insert("Nats-Msg-Id", longest_id.as_str());
    headers.insert(TIME, "9999-12-31T23:59:59.999999999Z");
    crate::dead_letter::header_block(Some(&headers)).len()
}

/// `time` as RFC 3339, if it is representable (years 0 to 9999).
///
/// Checked all the way: `OffsetDateTime::from(SystemTime)` panics on times
/// outside its range, and an event's timestamp is whatever its publisher set.
pub(crate) fn format_time(time: SystemTime) -> Option<String> {
    let nanos = match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).ok()?,
        Err(before) => -i128::try_from(before.duration().as_nanos()).ok()?,
    };
    // Written into a buffer of the longest length
    // (`9999-12-31T23:59:59.999999999Z`), which then becomes the header
    // value as it is: one allocation.
    let mut text = Vec::with_capacity(30);
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()?
        .format_into(&mut text, &Rfc3339)
        .ok()?;
    String::from_utf8(text).ok()
}

/// The length of a run id: a NUID.
const RUN_LEN: usize = 22;

/// A bridge's event id: `{run}.{seq}`.
pub(crate) fn event_id(run: &str, seq: u64) -> String {
    let mut digits = itoa::Buffer::new();
    let seq = digits.format(seq);
    let mut id = String::with_capacity(run.len() + 1 + seq.len());
    id.push_str(run);
    id.push('.');
    id.push_str(seq);
    id
}

/// The run and number in an id of the bridge's shape. A number no exporter
/// can reach (`u64::MAX`, whose successor does not exist) makes it not one.
pub(crate) fn sequence_of(id: &str) -> Option<(&str, u64)> {
    let (run, seq) = id.split_once('.')?;
    let is_run = run.len() == RUN_LEN && run.bytes().all(|b| b.is_ascii_alphanumeric());
    let seq = seq
        .parse::<u64>()
        .ok()
        .filter(|seq| is_run && *seq < u64::MAX)?;
    Some((run, seq))
}

/// The metadata of one incoming message, borrowed from its headers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Incoming<'a> {
    pub id: &'a str,
    pub event_type: &'a str,
    pub source: &'a str,
    /// The exporter's run and the event's number in it, when the id has
    /// the bridge's shape.
    pub sequence: Option<(&'a str, u64)>,
    pub ttl: Option<Duration>,
    pub trace: TraceAttributes<'a>,
}

/// Why an incoming message is not a CloudEvent the bridge accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Malformed {
    NoHeaders,
    Missing(&'static str),
    SpecVersion,
    Number(&'static str),
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::NoHeaders => {
                f.write_str("no headers (not a CloudEvents binary-mode message)")
            }
            Malformed::Missing(header) => write!(f, "header {header} is missing or empty"),
            Malformed::SpecVersion => write!(f, "{SPECVERSION} is not {SPEC_VERSION}"),
            Malformed::Number(header) => write!(f, "header {header} is not a number"),
        }
    }
}

impl<'a> Incoming<'a> {
    pub(crate) fn parse(headers: Option<&'a HeaderMap>) -> Result<Self, Malformed> {
        let headers = headers.ok_or(Malformed::NoHeaders)?;
        // One pass over the map: cheaper than hashing each name to look it
        // up. The first value of each, as `HeaderMap::get` gives.
        let (mut specversion, mut id, mut event_type, mut source, mut ttl) =
            (None, None, None, None, None);
        let (mut traceparent, mut tracestate, mut ce_traceparent, mut ce_tracestate) =
            (None, None, None, None);
        for (key, values) in headers.iter() {
            let slot = match AsRef::<str>::as_ref(key) {
                SPECVERSION => &mut specversion,
                ID => &mut id,
                TYPE => &mut event_type,
                SOURCE => &mut source,
                TTL => &mut ttl,
                TRACEPARENT => &mut traceparent,
                TRACESTATE => &mut tracestate,
                CE_TRACEPARENT => &mut ce_traceparent,
                CE_TRACESTATE => &mut ce_tracestate,
                _ => continue,
            };
            *slot = values
                .first()
                .map(HeaderValue::as_str)
                .filter(|value| !value.is_empty());
        }
        if specversion.ok_or(Malformed::Missing(SPECVERSION))? != SPEC_VERSION {
            return Err(Malformed::SpecVersion);
        }
        let id = id.ok_or(Malformed::Missing(ID))?;
        Ok(Self {
            sequence: sequence_of(id),
            id,
            event_type: event_type.ok_or(Malformed::Missing(TYPE))?,
            source: source.ok_or(Malformed::Missing(SOURCE))?,
            ttl: ttl
                .map(|value| value.parse().map_err(|_| Malformed::Number(TTL)))
                .transpose()?
                .map(Duration::from_millis),
            // The unprefixed pair, or else the prefixed one; never a mix.
            trace: if traceparent.is_some() {
                TraceAttributes {
                    traceparent: traceparent.map(Cow::Borrowed),
                    tracestate: tracestate.map(Cow::Borrowed),
                    not_text: false,
                }
            } else {
                TraceAttributes {
                    traceparent: ce_traceparent.map(Cow::Borrowed),
                    tracestate: ce_tracestate.map(Cow::Borrowed),
                    not_text: false,
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(time: SystemTime) -> Outgoing<'static> {
        Outgoing {
            id: "ABCDEFGHIJKLMNOPQRSTUV.7",
            event_type: "route.added",
            source: "replica-a",
            time,
            content_type: "application/json",
            ttl: None,
            trace: None,
        }
    }

    #[test]
    fn round_trip() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_millis(1_500);
        let headers = outgoing(time).headers();
        assert_eq!(
            headers.get(TIME).unwrap().as_str(),
            "1970-01-01T00:00:01.5Z"
        );
        assert!(
            headers.get(CONTENT_TYPE).is_none(),
            "JSON goes without saying"
        );
        let cbor = Outgoing {
            content_type: "application/cbor",
            ..outgoing(time)
        };
        assert_eq!(
            cbor.headers().get(CONTENT_TYPE).unwrap().as_str(),
            "application/cbor"
        );
        let incoming = Incoming::parse(Some(&headers)).unwrap();
        assert_eq!(
            incoming,
            Incoming {
                id: "ABCDEFGHIJKLMNOPQRSTUV.7",
                event_type: "route.added",
                source: "replica-a",
                sequence: Some(("ABCDEFGHIJKLMNOPQRSTUV", 7)),
                ttl: None,
                trace: TraceAttributes::default(),
            }
        );
    }

    #[test]
    fn only_ids_of_the_bridges_shape_carry_numbers() {
        let run = "0123456789abcdefghijKL";
        assert_eq!(sequence_of(&event_id(run, 42)), Some((run, 42)));
        for foreign in [
            "order.17",
            "x",
            "0123456789abcdefghijK_.1",
            "0123456789abcdefghijKL.x",
            // No successor: an exporter never gets there, and counting the
            // next one would overflow.
            "0123456789abcdefghijKL.18446744073709551615",
            "",
        ] {
            assert_eq!(sequence_of(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn time_past_rfc3339_is_left_out() {
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert!(outgoing(far).headers().get(TIME).is_none());
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(format_time(before).as_deref(), Some("1969-12-31T00:00:00Z"));
    }

    #[test]
    fn malformed() {
        assert_eq!(Incoming::parse(None), Err(Malformed::NoHeaders));
        let good = outgoing(SystemTime::now()).headers();
        for (name, value, error) in [
            (SPECVERSION, "0.3", Malformed::SpecVersion),
            (ID, "", Malformed::Missing(ID)),
            (TTL, "-1", Malformed::Number(TTL)),
        ] {
            let mut headers = good.clone();
            headers.insert(name, value);
            assert_eq!(Incoming::parse(Some(&headers)), Err(error), "{name}");
        }
        let mut no_source = HeaderMap::new();
        no_source.insert(SPECVERSION, SPEC_VERSION);
        no_source.insert(ID, "1");
        no_source.insert(TYPE, "t");
        assert_eq!(
            Incoming::parse(Some(&no_source)),
            Err(Malformed::Missing(SOURCE))
        );
    }

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_trace_context_travels_in_the_w3c_headers() {
        let trace = TraceContext::parse(PARENT)
            .unwrap()
            .with_tracestate("rojo=1,congo=2")
            .unwrap();
        let headers = Outgoing {
            trace: Some(&trace),
            ..outgoing(SystemTime::now())
        }
        .headers();
        assert_eq!(headers.get(TRACEPARENT).unwrap().as_str(), PARENT);
        assert_eq!(headers.get(TRACESTATE).unwrap().as_str(), "rojo=1,congo=2");
        let incoming = Incoming::parse(Some(&headers)).unwrap();
        assert_eq!(
            incoming.trace.resolve(),
            Trace {
                context: Some(trace),
                invalid: false
            }
        );
        let untraced = outgoing(SystemTime::now()).headers();
        assert!(untraced.get(TRACEPARENT).is_none());
        let incoming = Incoming::parse(Some(&untraced)).unwrap();
        assert_eq!(
            incoming.trace.resolve(),
            Trace {
                context: None,
                invalid: false
            }
        );
    }

    #[test]
    fn the_ce_prefixed_names_are_read_and_the_w3c_ones_win() {
        let mut headers = outgoing(SystemTime::now()).headers();
        headers.insert(CE_TRACEPARENT, PARENT);
        headers.insert(CE_TRACESTATE, "a=1");
        let context = Incoming::parse(Some(&headers))
            .unwrap()
            .trace
            .resolve()
            .context
            .unwrap();
        assert_eq!(context.tracestate(), Some("a=1"));
        let other = PARENT.replace("-01", "-00");
        headers.insert(TRACEPARENT, other.as_str());
        let context = Incoming::parse(Some(&headers))
            .unwrap()
            .trace
            .resolve()
            .context
            .unwrap();
        assert_eq!((context.traceparent(), context.tracestate()), (other, None));
    }

    #[test]
    fn invalid_trace_context_is_ignored_and_said_so() {
        let attributes = |parent: Option<&'static str>, state: Option<&'static str>| {
            TraceAttributes {
                traceparent: parent.map(Cow::Borrowed),
                tracestate: state.map(Cow::Borrowed),
                not_text: false,
            }
            .resolve()
        };
        let bad = attributes(Some("00-zz-00f067aa0ba902b7-01"), Some("a=1"));
        assert_eq!((bad.context, bad.invalid), (None, true));
        let bad_state = attributes(Some(PARENT), Some("A=1"));
        assert!(bad_state.invalid);
        let kept = bad_state.context.unwrap();
        assert_eq!(
            (kept.traceparent().as_str(), kept.tracestate()),
            (PARENT, None)
        );
        let orphan = attributes(None, Some("a=1"));
        assert_eq!((orphan.context, orphan.invalid), (None, false));
        let not_text = TraceAttributes {
            traceparent: Some(Cow::Borrowed(PARENT)),
            tracestate: None,
            not_text: true,
        }
        .resolve();
        assert_eq!((not_text.context, not_text.invalid), (None, true));
    }
}
