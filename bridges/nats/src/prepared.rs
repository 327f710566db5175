//! One exported event, encoded and addressed, ready to publish; and how
//! its type's events are written, in binary or structured mode (kept with
//! it, to write its headers again for a retry).

use std::sync::Arc;
use std::time::SystemTime;

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::{HeaderMap, HeaderValue, Subject};
use bytes::Bytes;
use switchboard::TraceContext;

use crate::cloudevents::EventHeaders;
use crate::config::ContentMode;
use crate::structured::Envelope;
use crate::types::ExportType;

/// One event, encoded and addressed, ready to publish.
pub(crate) struct Prepared {
    pub(crate) entry: Arc<ExportType>,
    pub(crate) subject: Subject,
    pub(crate) headers: HeaderMap,
    pub(crate) payload: Bytes,
    /// What its headers were made of, to make them again for a retry.
    pub(crate) format: Arc<Format>,
    pub(crate) time: SystemTime,
    /// The event's trace context, if it has one.
    pub(crate) trace: Option<TraceContext>,
}

impl Prepared {
    /// Its JetStream message id (its `ce-id`), on the at-least-once path.
    pub(crate) fn message_id(&self) -> &str {
        self.headers
            .get(NATS_MESSAGE_ID)
            .map_or("", HeaderValue::as_str)
    }
}

/// How one exported type's events are written, in its content mode.
pub(crate) enum Format {
    Binary(EventHeaders),
    Structured(Envelope),
}

impl Format {
    /// The format of `entry`'s events from the bridge `source`, whose codec
    /// writes `content_type`; `jetstream`: with a message id.
    pub(crate) fn new(
        entry: &ExportType,
        source: &str,
        content_type: &str,
        jetstream: bool,
    ) -> Self {
        let event_type = &entry.event_type;
        match (entry.mode.unwrap_or_default(), jetstream) {
            (ContentMode::Binary, false) => {
                Format::Binary(EventHeaders::new(event_type, source, content_type))
            }
            (ContentMode::Binary, true) => Format::Binary(
                EventHeaders::new(event_type, source, content_type).with_message_id(),
            ),
            (_, false) => Format::Structured(Envelope::new(event_type, source, content_type)),
            (_, true) => Format::Structured(
                Envelope::new(event_type, source, content_type).with_message_id(),
            ),
        }
    }

    /// The headers and payload of the event `id`, stamped `time`, carrying
    /// `trace`, whose codec wrote `data`.
    pub(crate) fn message(
        &self,
        id: String,
        time: SystemTime,
        data: Vec<u8>,
        trace: Option<&TraceContext>,
    ) -> (HeaderMap, Bytes) {
        match self {
            Format::Binary(headers) => (headers.event(id, time, trace), Bytes::from(data)),
            Format::Structured(envelope) => (
                envelope.headers(&id),
                envelope.payload(&id, time, &data, trace),
            ),
        }
    }

    /// The headers of the event `id` again, for a retry.
    pub(crate) fn headers(
        &self,
        id: String,
        time: SystemTime,
        trace: Option<&TraceContext>,
    ) -> HeaderMap {
        match self {
            Format::Binary(headers) => headers.event(id, time, trace),
            Format::Structured(envelope) => envelope.headers(&id),
        }
    }
}
