//! The configured event types, with their codecs bound in: what the
//! exporter, the importer and the request server look up at run time.

use std::any::{type_name, Any, TypeId};
use std::sync::Arc;

use async_nats::Subject;
use serde::de::DeserializeOwned;
use serde::Serialize;
use switchboard::{Event, Request, Response, TraceContext};

use crate::codec::{Codec, CodecError, Json};
use crate::config::{ContentMode, Delivery};
use crate::stats::{ExportCounters, ImportCounters};

/// Encodes an event of the entry's Rust type (the caller checked the type).
pub(crate) type EncodeFn = Box<dyn Fn(&dyn Event) -> Result<Vec<u8>, CodecError> + Send + Sync>;
/// Decodes a payload into an event of the entry's Rust type, giving it the
/// message's trace context ([`Event::set_trace_context`]).
pub(crate) type DecodeFn =
    Box<dyn Fn(&[u8], Option<TraceContext>) -> Result<Arc<dyn Event>, CodecError> + Send + Sync>;

/// Decodes a request, with its trace context, and returns it with its
/// request id.
pub(crate) type DecodeRequestFn = Box<
    dyn Fn(&[u8], Option<TraceContext>) -> Result<(Arc<dyn Event>, String), CodecError>
        + Send
        + Sync,
>;

/// The concrete type of an event behind `dyn Event`.
pub(crate) fn type_id_of(event: &dyn Event) -> TypeId {
    let any: &dyn Any = event;
    any.type_id()
}

fn encoder<T: Event + Serialize, C: Codec>(codec: Arc<C>) -> EncodeFn {
    Box::new(move |event| match event.downcast_ref::<T>() {
        Some(event) => codec.encode(event),
        None => Err(CodecError::new(format!(
            "expected a {}, got an event of type {:?}",
            type_name::<T>(),
            event.event_type()
        ))),
    })
}

/// Decodes a `T` with `codec` and gives it `trace`, before it is shared.
pub(crate) fn decode_traced<T: Event + DeserializeOwned, C: Codec>(
    codec: &C,
    bytes: &[u8],
    trace: Option<TraceContext>,
) -> Result<T, CodecError> {
    let mut event = codec.decode::<T>(bytes)?;
    if trace.is_some() {
        event.set_trace_context(trace);
    }
    Ok(event)
}

fn decoder<T: Event + DeserializeOwned, C: Codec>(codec: Arc<C>) -> DecodeFn {
    Box::new(move |bytes, trace| Ok(Arc::new(decode_traced::<T, C>(&*codec, bytes, trace)?)))
}

/// An exported Rust type.
pub(crate) struct ExportType {
    pub event_type: String,
    pub rust_type: &'static str,
    pub type_id: TypeId,
    /// `{prefix}.{event_type}`, set by the bridge's plan: the clone each
    /// event takes shares it.
    pub subject: Subject,
    pub delivery: Delivery,
    /// `None`: the bridge's [`content_mode`](crate::BridgeBuilder::content_mode),
    /// until the plan sets it.
    pub mode: Option<ContentMode>,
    pub encode: EncodeFn,
    pub counters: ExportCounters,
}

impl ExportType {
    pub(crate) fn new<T: Event + Serialize, C: Codec>(
        event_type: String,
        delivery: Delivery,
        codec: &Arc<C>,
    ) -> Self {
        Self {
            event_type,
            rust_type: type_name::<T>(),
            type_id: TypeId::of::<T>(),
            subject: Subject::from_static(""),
            delivery,
            mode: None,
            encode: encoder::<T, C>(Arc::clone(codec)),
            counters: ExportCounters::default(),
        }
    }
}

/// An imported Rust type.
pub(crate) struct ImportType {
    pub event_type: String,
    /// `{prefix}.{event_type}`, set by the bridge's plan.
    pub subject: String,
    pub rust_type: &'static str,
    pub type_id: TypeId,
    pub delivery: Delivery,
    pub decode: DecodeFn,
    pub counters: ImportCounters,
}

impl ImportType {
    pub(crate) fn new<T: Event + DeserializeOwned, C: Codec>(
        event_type: String,
        delivery: Delivery,
        codec: &Arc<C>,
    ) -> Self {
        Self {
            event_type,
            subject: String::new(),
            rust_type: type_name::<T>(),
            type_id: TypeId::of::<T>(),
            delivery,
            decode: decoder::<T, C>(Arc::clone(codec)),
            counters: ImportCounters::default(),
        }
    }
}

/// A request type this bridge serves to other processes: requests are
/// imported into the bus, and local responses of the response type go back
/// to the requester.
pub(crate) struct ServedType {
    pub request_type: String,
    pub request_rust_type: &'static str,
    /// Decodes a request and returns it with its request id.
    pub decode_request: DecodeRequestFn,
    pub response_type_id: TypeId,
    pub response_rust_type: &'static str,
    /// The request id a local response answers, if the event is a response
    /// of this type.
    pub response_request_id: fn(&dyn Event) -> Option<&str>,
    pub encode_response: EncodeFn,
}

fn request_id_of<R: Response>(event: &dyn Event) -> Option<&str> {
    event.downcast_ref::<R>().map(Response::request_id)
}

impl ServedType {
    /// Requests and responses are JSON whatever the bridge's codec (the
    /// requester, `Bridge::request`, is not generic over codecs).
    pub(crate) fn new<Q, R>(request_type: String) -> Self
    where
        Q: Request + DeserializeOwned,
        R: Response + Serialize,
    {
        Self {
            request_type,
            request_rust_type: type_name::<Q>(),
            decode_request: Box::new(move |bytes, trace| {
                let request: Q = decode_traced(&Json, bytes, trace)?;
                let id = request.request_id().to_owned();
                Ok((Arc::new(request), id))
            }),
            response_type_id: TypeId::of::<R>(),
            response_rust_type: type_name::<R>(),
            response_request_id: request_id_of::<R>,
            encode_response: encoder::<R, Json>(Arc::new(Json)),
        }
    }
}
