//! CloudEvents structured mode: the whole event, attributes and data, as
//! one JSON object in the payload (the CloudEvents JSON event format), with
//! a single header, `content-type: application/cloudevents+json`.
//!
//! ```json
//! {"specversion":"1.0","type":"route.added","source":"replica-a",
//!  "datacontenttype":"application/json","id":"…","time":"…","data":{…}}
//! ```
//!
//! An event that carries a trace context
//! ([`Event::trace_context`](switchboard::Event::trace_context)) has the
//! distributed-tracing extension's `traceparent` and `tracestate`
//! attributes in the object as well.
//!
//! An exporter chooses it per bridge or per type
//! ([`ContentMode`](crate::ContentMode)); every importer accepts both modes,
//! telling them apart by the headers: a message without the `ce-` headers
//! whose content type is `application/cloudevents+json` is structured.
//! Data the codec encodes as JSON goes in `data` as it is; any other content
//! type goes in `data_base64`. The attributes that are the same for every
//! event of a type are written once per exported type; each event adds its
//! id, its time and its data.

use std::borrow::Cow;
use std::time::SystemTime;

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::{HeaderMap, HeaderValue};
use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use switchboard::TraceContext;

use crate::cloudevents::{format_time, name, sequence_of, Incoming, TraceAttributes, SPEC_VERSION};

/// The content type of a structured-mode message.
pub const CONTENT_TYPE: &str = "application/cloudevents+json";

/// One exported type's structured events.
pub(crate) struct Envelope {
    /// `{"specversion":"1.0","type":…,"source":…,"datacontenttype":…`:
    /// the attributes every event of the type shares, JSON-escaped once.
    head: Vec<u8>,
    /// Whether the codec's data is JSON, written as it is into `data`.
    json_data: bool,
    /// `content-type`, and an empty JetStream message id if the events
    /// carry one.
    headers: HeaderMap,
    message_id: bool,
}

impl Envelope {
    pub(crate) fn new(event_type: &str, source: &str, content_type: &str) -> Self {
        let mut head = br#"{"specversion":"1.0","type":"#.to_vec();
        write_json_string(&mut head, event_type);
        head.extend_from_slice(br#","source":"#);
        write_json_string(&mut head, source);
        head.extend_from_slice(br#","datacontenttype":"#);
        write_json_string(&mut head, content_type);
        let mut headers = HeaderMap::new();
        headers.insert(name::CONTENT_TYPE, CONTENT_TYPE);
        Self {
            head,
            json_data: is_json(content_type),
            headers,
            message_id: false,
        }
    }

    /// The same, for JetStream: each event's id is its message id too.
    pub(crate) fn with_message_id(mut self) -> Self {
        self.headers.insert(NATS_MESSAGE_ID, HeaderValue::new());
        self.message_id = true;
        self
    }

    /// The headers of the event `id`.
    pub(crate) fn headers(&self, id: &str) -> HeaderMap {
        let mut headers = self.headers.clone();
        if self.message_id {
            headers.insert(NATS_MESSAGE_ID, id);
        }
        headers
    }

    /// The payload of the event `id`, stamped `time`, carrying `data` and
    /// `trace`.
    pub(crate) fn payload(
        &self,
        id: &str,
        time: SystemTime,
        data: &[u8],
        trace: Option<&TraceContext>,
    ) -> Bytes {
        let time = format_time(time);
        let data_len = if self.json_data {
            data.len()
        } else {
            data.len().div_ceil(3) * 4
        };
        let mut out = Vec::with_capacity(self.head.len() + id.len() + 64 + data_len);
        out.extend_from_slice(&self.head);
        out.extend_from_slice(br#","id":"#);
        write_json_string(&mut out, id);
        if let Some(time) = time {
            out.extend_from_slice(br#","time":""#);
            out.extend_from_slice(time.as_bytes());
            out.push(b'"');
        }
        if let Some(trace) = trace {
            out.extend_from_slice(br#","traceparent":""#);
            out.extend_from_slice(trace.traceparent().as_bytes());
            out.push(b'"');
            if let Some(state) = trace.tracestate() {
                out.extend_from_slice(br#","tracestate":"#);
                write_json_string(&mut out, state);
            }
        }
        if self.json_data {
            out.extend_from_slice(br#","data":"#);
            out.extend_from_slice(data);
        } else {
            out.extend_from_slice(br#","data_base64":""#);
            let start = out.len();
            out.resize(start + data_len, 0);
            let written = base64::engine::general_purpose::STANDARD
                .encode_slice(data, &mut out[start..])
                .expect("room for the base64 text");
            out.truncate(start + written);
            out.push(b'"');
        }
        out.push(b'}');
        Bytes::from(out)
    }
}

/// Whether `content_type` is JSON: `application/json`, or a `+json` type,
/// with or without parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

fn write_json_string(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(out, text).expect("a string serializes");
}

/// Whether a message's headers say it is in structured mode.
pub(crate) fn is_structured(headers: Option<&HeaderMap>) -> bool {
    headers
        .and_then(|headers| headers.get(name::CONTENT_TYPE))
        .is_some_and(|value| {
            let value = value.as_str();
            value.len() >= CONTENT_TYPE.len()
                && value[..CONTENT_TYPE.len()].eq_ignore_ascii_case(CONTENT_TYPE)
                && value[CONTENT_TYPE.len()..]
                    .trim_start()
                    .chars()
                    .next()
                    .is_none_or(|next| next == ';')
        })
}

/// The JSON event format, as much of it as the bridge reads. The strings are
/// borrowed from the payload: an attribute written with JSON escapes is
/// refused (no exporter needs them for ids, sources and types).
#[derive(Deserialize)]
struct Wire<'a> {
    specversion: Option<&'a str>,
    id: Option<&'a str>,
    source: Option<&'a str>,
    #[serde(rename = "type")]
    event_type: Option<&'a str>,
    datacontenttype: Option<&'a str>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    data_base64: Option<&'a str>,
    /// Read raw, so that a value that is not a string (or one with
    /// escapes) is an invalid trace context, ignored and counted, and not
    /// a malformed event.
    #[serde(borrow)]
    traceparent: Option<&'a RawValue>,
    #[serde(borrow)]
    tracestate: Option<&'a RawValue>,
}

/// A JSON string's text, borrowed when it has no escapes; `Err` for any
/// other JSON value.
fn json_text(raw: &RawValue) -> Result<Cow<'_, str>, ()> {
    let text = raw.get();
    match serde_json::from_str::<&str>(text) {
        Ok(borrowed) => Ok(Cow::Borrowed(borrowed)),
        Err(_) => serde_json::from_str::<String>(text)
            .map(Cow::Owned)
            .map_err(|_| ()),
    }
}

fn trace_attributes<'a>(
    traceparent: Option<&'a RawValue>,
    tracestate: Option<&'a RawValue>,
) -> TraceAttributes<'a> {
    let mut not_text = false;
    let mut text = |raw: Option<&'a RawValue>| {
        raw.and_then(|raw| json_text(raw).map_err(|()| not_text = true).ok())
    };
    let (traceparent, tracestate) = (text(traceparent), text(tracestate));
    TraceAttributes {
        traceparent,
        tracestate,
        not_text,
    }
}

/// The metadata and the data of a structured-mode message, or why it is
/// not a CloudEvent the bridge accepts.
pub(crate) fn parse(payload: &[u8]) -> Result<(Incoming<'_>, Cow<'_, [u8]>), String> {
    let wire: Wire<'_> = serde_json::from_slice(payload)
        .map_err(|error| format!("not a structured-mode CloudEvent: {error}"))?;
    fn attribute<'a>(value: Option<&'a str>, name: &str) -> Result<&'a str, String> {
        value
            .filter(|value| !value.is_empty())
            .ok_or_else(|| format!("its attribute {name} is missing or empty"))
    }
    if attribute(wire.specversion, "specversion")? != SPEC_VERSION {
        return Err(format!("its specversion is not {SPEC_VERSION}"));
    }
    let id = attribute(wire.id, "id")?;
    let meta = Incoming {
        sequence: sequence_of(id),
        id,
        event_type: attribute(wire.event_type, "type")?,
        source: attribute(wire.source, "source")?,
        ttl: None,
        trace: trace_attributes(wire.traceparent, wire.tracestate),
    };
    let data = match (wire.data, wire.data_base64) {
        (Some(_), Some(_)) => return Err("it has both data and data_base64".to_owned()),
        (None, Some(text)) => Cow::Owned(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|error| format!("its data_base64 is not base64: {error}"))?,
        ),
        // Data of a content type other than JSON is a JSON string.
        (Some(data), None) if !wire.datacontenttype.is_none_or(is_json) => {
            let text: String = serde_json::from_str(data.get())
                .map_err(|_| "its data is neither JSON nor a string".to_owned())?;
            Cow::Owned(text.into_bytes())
        }
        (Some(data), None) => Cow::Borrowed(data.get().as_bytes()),
        (None, None) => return Err("it has no data".to_owned()),
    };
    Ok((meta, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const ID: &str = "ABCDEFGHIJKLMNOPQRSTUV.7";

    fn time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_500)
    }

    #[test]
    fn a_json_event_round_trips_with_its_data_as_json() {
        let envelope = Envelope::new("route.added", "replica-a", "application/json");
        let payload = envelope.payload(ID, time(), br#"{"n":1}"#, None);
        let value: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(value["specversion"], "1.0");
        assert_eq!(value["type"], "route.added");
        assert_eq!(value["source"], "replica-a");
        assert_eq!(value["id"], ID);
        assert_eq!(value["time"], "1970-01-01T00:00:01.5Z");
        assert_eq!(value["data"]["n"], 1);
        let (meta, data) = parse(&payload).unwrap();
        assert_eq!(
            (meta.id, meta.source, meta.event_type),
            (ID, "replica-a", "route.added")
        );
        assert_eq!(meta.sequence, Some(("ABCDEFGHIJKLMNOPQRSTUV", 7)));
        assert_eq!(&*data, br#"{"n":1}"#);
    }

    #[test]
    fn other_content_types_travel_as_base64() {
        let envelope = Envelope::new("blob.put", "a", "application/octet-stream");
        let payload = envelope.payload(ID, time(), &[0, 159, 146, 150, 255], None);
        let value: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(value["data_base64"], "AJ+Slv8=");
        assert_eq!(&*parse(&payload).unwrap().1, &[0, 159, 146, 150, 255]);
    }

    #[test]
    fn attributes_are_escaped_once_per_type() {
        let envelope = Envelope::new("a\"b", "c\\d", "application/json");
        let value: serde_json::Value =
            serde_json::from_slice(&envelope.payload(ID, time(), b"1", None)).unwrap();
        assert_eq!(value["type"], "a\"b");
        assert_eq!(value["source"], "c\\d");
    }

    #[test]
    fn the_headers_carry_the_content_type_and_the_message_id_on_jetstream() {
        let core = Envelope::new("t", "s", "application/json");
        assert!(is_structured(Some(&core.headers(ID))));
        assert!(core.headers(ID).get(NATS_MESSAGE_ID).is_none());
        let jetstream = core.with_message_id();
        assert_eq!(
            jetstream
                .headers(ID)
                .get(NATS_MESSAGE_ID)
                .map(HeaderValue::as_str),
            Some(ID)
        );
    }

    #[test]
    fn the_mode_is_told_by_the_content_type() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(name::CONTENT_TYPE, value);
            is_structured(Some(&headers))
        };
        assert!(with("application/cloudevents+json"));
        assert!(with("Application/CloudEvents+JSON; charset=utf-8"));
        assert!(!with("application/cloudevents+jsonx"));
        assert!(!with("application/json"));
        assert!(!is_structured(None));
    }

    #[test]
    fn what_is_not_a_structured_event_says_why() {
        for (payload, why) in [
            (&b"not json"[..], "not a structured-mode CloudEvent"),
            (br#"{"specversion":"0.3","id":"1","source":"s","type":"t","data":1}"#, "specversion"),
            (br#"{"specversion":"1.0","source":"s","type":"t","data":1}"#, "id"),
            (br#"{"specversion":"1.0","id":"1","type":"t","data":1}"#, "source"),
            (br#"{"specversion":"1.0","id":"1","source":"s","data":1}"#, "type"),
            (br#"{"specversion":"1.0","id":"1","source":"s","type":"t"}"#, "no data"),
            (
                br#"{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"!"}"#,
                "base64",
            ),
            (
                br#"{"specversion":"1.0","id":"1","source":"s","type":"t","data":1,"data_base64":""}"#,
                "both",
            ),
        ] {
            let error = parse(payload).unwrap_err();
            assert!(error.contains(why), "{error}");
        }
    }

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_trace_context_travels_as_attributes_of_the_envelope() {
        let trace = TraceContext::parse(PARENT)
            .unwrap()
            .with_tracestate("k=\"q\\")
            .unwrap();
        let envelope = Envelope::new("t", "s", "application/json");
        let payload = envelope.payload(ID, time(), b"1", Some(&trace));
        let value: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(value["traceparent"], PARENT);
        assert_eq!(value["tracestate"], "k=\"q\\");
        let (meta, _) = parse(&payload).unwrap();
        assert_eq!(meta.trace.resolve().context, Some(trace));
        let untraced = envelope.payload(ID, time(), b"1", None);
        let value: serde_json::Value = serde_json::from_slice(&untraced).unwrap();
        assert!(value.get("traceparent").is_none());
        assert_eq!(parse(&untraced).unwrap().0.trace.resolve().context, None);
    }

    #[test]
    fn a_trace_context_that_is_not_a_string_is_invalid_not_malformed() {
        let payload =
            br#"{"specversion":"1.0","id":"1","source":"s","type":"t","data":1,"traceparent":7}"#;
        let (meta, _) = parse(payload).unwrap();
        let trace = meta.trace.resolve();
        assert_eq!((trace.context, trace.invalid), (None, true));
        let payload = br#"{"specversion":"1.0","id":"1","source":"s","type":"t","data":1,"traceparent":"00-nope"}"#;
        let trace = parse(payload).unwrap().0.trace.resolve();
        assert_eq!((trace.context, trace.invalid), (None, true));
    }
}
