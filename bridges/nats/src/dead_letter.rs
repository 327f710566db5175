//! Dead letters: the at-least-once messages an importer cannot import, kept
//! in a stream of their own instead of being redelivered forever or thrown
//! away.
//!
//! A message ends here when it cannot be parsed, decoded or validated: not
//! a CloudEvent the bridge accepts, a `ce-type` that is not its subject's,
//! larger than `max_import_bytes`, a payload the codec cannot decode, or a
//! header block the NATS client cannot even parse. The last kind never
//! reaches the importer: async-nats drops the connection a message with
//! such headers arrives on (a non-UTF-8 value, a line without a colon, a
//! status line like `NATS/1.0 abc`, a name with a space, all accepted by
//! the server). The importer's consumer reads on a connection of its own,
//! so that costs it a reconnect per delivery; after `max_deliver` deliveries
//! the server gives up and says so in an advisory, and the importer reads
//! the message through the server's JSON message API, which carries the
//! header block as bytes the client does not parse.
//!
//! Each dead letter is a message on `_sb.{prefix}.dead` in the stream
//! `{STREAM}_DEAD`: its headers say where the message came from and why it
//! is there, its payload is the original header block followed by the
//! original payload, byte for byte. [`Bridge::dead_letters`](crate::Bridge::dead_letters) lists them,
//! [`Bridge::replay_dead_letter`](crate::Bridge::replay_dead_letter) publishes one again on its subject, and
//! [`Bridge::discard_dead_letter`](crate::Bridge::discard_dead_letter) deletes one.

use std::error::Error;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_nats::jetstream::stream::{Config as StreamConfig, DiscardPolicy};
use async_nats::jetstream::Context;
use async_nats::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use bytes::{Bytes, BytesMut};

use crate::config::JetStreamOptions;
use crate::jetstream::{is_stream_not_found, StreamSpec};
use crate::stats::ConsumerCounters;
use crate::subject;

/// The most dead letters the stream keeps; past it the oldest is discarded
/// (a flood of bad input cannot fill the server's disk).
pub const MAX_DEAD_LETTERS: i64 = 100_000;

const SUBJECT: &str = "Sb-Dead-Subject";
const STREAM_SEQUENCE: &str = "Sb-Dead-Stream-Sequence";
const DELIVERIES: &str = "Sb-Dead-Deliveries";
const REASON: &str = "Sb-Dead-Reason";
const BRIDGE: &str = "Sb-Dead-Bridge";
const HEADER_LEN: &str = "Sb-Dead-Header-Len";
/// The header by which JetStream deduplicates: two importers sending the
/// same message to the dead letters store it once.
const MSG_ID: &str = "Nats-Msg-Id";

/// A message the importer could not import, as kept in the dead-letter
/// stream; from [`Bridge::dead_letters`](crate::Bridge::dead_letters).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its sequence number in the dead-letter stream (what
    /// [`Bridge::discard_dead_letter`](crate::Bridge::discard_dead_letter) deletes).
    pub sequence: u64,
    /// The subject the message was published on.
    pub subject: String,
    /// Its sequence number in the events stream.
    pub stream_sequence: u64,
    /// How many times the server had delivered it.
    pub deliveries: u64,
    /// Why it could not be imported.
    pub reason: String,
    /// The bridge that gave up on it.
    pub bridge: String,
    /// The original header block (`NATS/1.0\r\n...\r\n\r\n`; empty if the
    /// message had none): byte for byte when the client could not parse it
    /// (read back through the message API), otherwise written anew from the
    /// headers the client parsed (the same names and values; their order
    /// and a status line's text may differ).
    pub headers: Bytes,
    /// The original payload.
    pub payload: Bytes,
}

impl DeadLetter {
    /// The original headers, if the NATS client can parse them.
    ///
    /// # Errors
    ///
    /// What the client would refuse in them.
    pub fn parsed_headers(&self) -> Result<Option<HeaderMap>, String> {
        parse_header_block(&self.headers)
    }
}

/// Why listing, replaying or discarding dead letters failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum DeadLetterError {
    /// The server refused or did not answer (no JetStream, disconnected...).
    JetStream(async_nats::Error),
    /// The dead letter's original headers cannot be parsed by the NATS
    /// client, so it cannot be published as it was: correct it and publish
    /// it yourself, then discard the dead letter.
    Unparseable {
        /// What the client refuses.
        reason: String,
    },
}

impl fmt::Display for DeadLetterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeadLetterError::JetStream(error) => write!(
                f,
                "the dead-letter stream could not be read or written: {error}; check the \
                 connection and that the server runs JetStream"
            ),
            DeadLetterError::Unparseable { reason } => write!(
                f,
                "the dead letter's headers cannot be published as they are ({reason}): correct \
                 them, publish the message yourself, then discard the dead letter"
            ),
        }
    }
}

impl Error for DeadLetterError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            DeadLetterError::JetStream(error) => Some(&**error),
            DeadLetterError::Unparseable { .. } => None,
        }
    }
}

fn jetstream_error(error: impl Into<async_nats::Error>) -> DeadLetterError {
    DeadLetterError::JetStream(error.into())
}

/// A message to send to the dead letters.
pub(crate) struct Letter<'a> {
    pub stream: &'a str,
    /// When the stream was created: its sequences start again in a new one.
    pub stream_created: time::OffsetDateTime,
    pub subject: &'a str,
    pub stream_sequence: u64,
    pub deliveries: u64,
    pub reason: &'a str,
    pub headers: &'a [u8],
    pub payload: &'a [u8],
}

/// The prefix's dead-letter stream.
#[derive(Clone)]
pub(crate) struct DeadLetters {
    spec: StreamSpec,
    subject: String,
    bridge: String,
}

impl DeadLetters {
    pub(crate) fn new(
        context: Context,
        prefix: &str,
        bridge: &str,
        options: &JetStreamOptions,
        counters: Arc<ConsumerCounters>,
    ) -> Self {
        let stream = options
            .stream
            .clone()
            .unwrap_or_else(|| subject::default_stream_name(prefix));
        let mut spec = StreamSpec::new(context, format!("{stream}_DEAD"), options, counters);
        spec.config = StreamConfig {
            // Kept until handled, however old; bounded in number instead.
            max_age: std::time::Duration::ZERO,
            max_messages: MAX_DEAD_LETTERS,
            discard: DiscardPolicy::Old,
            ..spec.config
        };
        Self {
            spec,
            subject: subject::control(prefix, "dead"),
            bridge: bridge.to_owned(),
        }
    }

    /// Creates the dead-letter stream if it does not exist (bridges that
    /// export at-least-once do at connect, so that importers need not be
    /// allowed to create streams).
    pub(crate) async fn ensure(&self) -> Result<(), async_nats::Error> {
        self.spec
            .ensure(std::slice::from_ref(&self.subject))
            .await?;
        Ok(())
    }

    /// Stores `letter`, creating the stream when it is missing; returns
    /// once the server has stored it.
    pub(crate) async fn store(&self, letter: &Letter<'_>) -> Result<(), async_nats::Error> {
        let mut headers = HeaderMap::new();
        headers.insert(SUBJECT, header_safe(letter.subject).as_str());
        headers.insert(STREAM_SEQUENCE, letter.stream_sequence.to_string().as_str());
        headers.insert(DELIVERIES, letter.deliveries.to_string().as_str());
        headers.insert(REASON, header_safe(letter.reason).as_str());
        headers.insert(BRIDGE, self.bridge.as_str());
        headers.insert(HEADER_LEN, letter.headers.len().to_string().as_str());
        headers.insert(
            MSG_ID,
            format!(
                "{}.{}.{}",
                letter.stream,
                letter.stream_created.unix_timestamp_nanos(),
                letter.stream_sequence
            )
            .as_str(),
        );
        let mut payload = BytesMut::with_capacity(letter.headers.len() + letter.payload.len());
        payload.extend_from_slice(letter.headers);
        payload.extend_from_slice(letter.payload);
        let payload = payload.freeze();
        let publish = || {
            self.spec.context.publish_with_headers(
                self.subject.clone(),
                headers.clone(),
                payload.clone(),
            )
        };
        match publish().await?.await {
            Ok(_) => Ok(()),
            Err(error)
                if error.kind()
                    == async_nats::jetstream::context::PublishErrorKind::StreamNotFound =>
            {
                // Created on first use by an importer-only bridge: no
                // waiting, as `restore` would, for a deletion to settle.
                self.spec
                    .ensure(std::slice::from_ref(&self.subject))
                    .await?;
                publish().await?.await?;
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Every dead letter, oldest first.
    pub(crate) async fn list(&self) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let mut stream = match self.spec.context.get_stream(self.spec.name()).await {
            Ok(stream) => stream,
            Err(error) if is_stream_not_found(&error.kind()) => return Ok(Vec::new()),
            Err(error) => return Err(jetstream_error(error)),
        };
        let state = stream.info().await.map_err(jetstream_error)?.state.clone();
        let mut letters = Vec::new();
        if state.messages == 0 {
            return Ok(letters);
        }
        for sequence in state.first_sequence..=state.last_sequence {
            match stream.get_raw_message(sequence).await {
                Ok(message) => {
                    letters.push(read_letter(sequence, &message.headers, message.payload))
                }
                // Deleted (discarded or replayed) in the meantime.
                Err(error)
                    if error.kind()
                        == async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound => {}
                Err(error) => return Err(jetstream_error(error)),
            }
        }
        Ok(letters)
    }

    /// Publishes `letter` again on its original subject and deletes it
    /// (see [`Bridge::replay_dead_letter`](crate::Bridge::replay_dead_letter)).
    pub(crate) async fn replay(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let original = letter
            .parsed_headers()
            .map_err(|reason| DeadLetterError::Unparseable { reason })?;
        let mut headers = HeaderMap::new();
        for (name, values) in original.iter().flat_map(HeaderMap::iter) {
            if !AsRef::<str>::as_ref(name).eq_ignore_ascii_case(MSG_ID) {
                for value in values {
                    headers.append(name.clone(), value.as_str());
                }
            }
        }
        self.spec
            .context
            .publish_with_headers(letter.subject.clone(), headers, letter.payload.clone())
            .await
            .map_err(jetstream_error)?
            .await
            .map_err(jetstream_error)?;
        self.discard(letter.sequence).await
    }

    /// Deletes the dead letter `sequence`.
    pub(crate) async fn discard(&self, sequence: u64) -> Result<(), DeadLetterError> {
        let stream = self
            .spec
            .context
            .get_stream(self.spec.name())
            .await
            .map_err(jetstream_error)?;
        stream
            .delete_message(sequence)
            .await
            .map_err(jetstream_error)?;
        Ok(())
    }
}

fn read_letter(sequence: u64, headers: &HeaderMap, body: Bytes) -> DeadLetter {
    let text = |name: &str| {
        headers
            .get(name)
            .map(|value| value.as_str().to_owned())
            .unwrap_or_default()
    };
    let number = |name: &str| text(name).parse::<u64>().unwrap_or(0);
    let header_len = usize::try_from(number(HEADER_LEN))
        .unwrap_or(usize::MAX)
        .min(body.len());
    DeadLetter {
        sequence,
        subject: text(SUBJECT),
        stream_sequence: number(STREAM_SEQUENCE),
        deliveries: number(DELIVERIES),
        reason: text(REASON),
        bridge: text(BRIDGE),
        headers: body.slice(..header_len),
        payload: body.slice(header_len..),
    }
}

/// `text` as a header value: printable ASCII only, at most 1 KiB.
fn header_safe(text: &str) -> String {
    text.chars()
        .take(1024)
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// A header map as the header block NATS carries it.
pub(crate) fn header_block(headers: Option<&HeaderMap>) -> Vec<u8> {
    let Some(headers) = headers else {
        return Vec::new();
    };
    let mut block = String::from("NATS/1.0\r\n");
    for (name, values) in headers.iter() {
        for value in values {
            block.push_str(name.as_ref());
            block.push_str(": ");
            block.push_str(value.as_str());
            block.push_str("\r\n");
        }
    }
    block.push_str("\r\n");
    block.into_bytes()
}

/// Parses a header block by the rules of the async-nats client, which
/// drops the connection of any message that breaks them: `Err` says which.
/// An empty block is no headers.
pub(crate) fn parse_header_block(raw: &[u8]) -> Result<Option<HeaderMap>, String> {
    if raw.is_empty() {
        return Ok(None);
    }
    let text = std::str::from_utf8(raw).map_err(|_| "the header block is not UTF-8".to_owned())?;
    let mut lines = text.lines().peekable();
    let version = lines
        .next()
        .and_then(|line| line.strip_prefix("NATS/1.0"))
        .ok_or_else(|| "the header block does not begin with NATS/1.0".to_owned())?
        .trim();
    let status = version
        .split_once(' ')
        .map_or(version, |(status, _)| status.trim());
    if !status.is_empty() && StatusCode::from_str(status).is_err() {
        return Err(format!("the status {status:?} is not a number"));
    }
    let mut headers = HeaderMap::new();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("the header line {:?} has no colon", header_safe(line)))?;
        let name = HeaderName::from_str(name)
            .map_err(|_| format!("{:?} is not a valid header name", header_safe(name)))?;
        let mut value = value.trim_start().to_owned();
        while let Some(more) = lines.next_if(|s| s.starts_with(char::is_whitespace)) {
            value.push_str(more);
        }
        // The client panics (its connection task ends) on such a value.
        let value = HeaderValue::from_str(value.trim_end()).map_err(|_| {
            format!(
                "the value of header {:?} holds a lone carriage return",
                header_safe(name.as_ref())
            )
        })?;
        headers.append(name, value);
    }
    Ok(Some(headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_blocks_round_trip() {
        let mut headers = HeaderMap::new();
        headers.insert("ce-id", "a.1");
        headers.append("x", "1");
        headers.append("x", "2");
        let block = header_block(Some(&headers));
        let parsed = parse_header_block(&block).unwrap().unwrap();
        assert_eq!(parsed.get("ce-id").unwrap().as_str(), "a.1");
        assert_eq!(parsed.get_all("x").count(), 2);
        assert_eq!(parse_header_block(&header_block(None)), Ok(None));
    }

    #[test]
    fn what_the_client_refuses_is_named() {
        for (raw, why) in [
            (&b"NATS/1.0\r\nce-id: \xff\r\n\r\n"[..], "not UTF-8"),
            (b"NATS/1.0\r\nno colon here\r\n\r\n", "no colon"),
            (b"NATS/1.0 abc\r\n\r\n", "not a number"),
            (
                b"NATS/1.0\r\nbad name: v\r\n\r\n",
                "not a valid header name",
            ),
            (b"HTTP/1.1\r\n\r\n", "NATS/1.0"),
            (b"NATS/1.0\r\nx: a\rb\r\n\r\n", "carriage return"),
        ] {
            let error = parse_header_block(raw).unwrap_err();
            assert!(error.contains(why), "{error}");
        }
        assert!(parse_header_block(b"NATS/1.0 503\r\n\r\n").is_ok());
    }

    #[test]
    fn unsafe_text_is_made_a_header_value() {
        assert_eq!(header_safe("a\r\nb\u{e9}"), "a??b?");
        assert_eq!(header_safe(&"x".repeat(5000)).len(), 1024);
    }
}
