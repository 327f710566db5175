//! OpenTelemetry (feature `opentelemetry`): one trace across processes.
//!
//! With the feature, an importer that receives an event with a trace
//! context decodes and publishes it within a `tracing` span,
//! `switchboard_nats.import` (fields `event_type` and `source`), whose
//! OpenTelemetry parent is the producer's remote span context. A user's
//! `tracing-opentelemetry` layer exports it like any other span: the
//! consumer's span carries the producer's trace id, and its parent is the
//! span the event was published in. An event without a trace context
//! gets no span and costs nothing more.
//!
//! On the producing side, [`current_trace_context`] reads the current
//! span's context for the event being built:
//!
//! ```
//! use std::time::SystemTime;
//! use serde::{Deserialize, Serialize};
//! use switchboard::{Event, TraceContext};
//!
//! #[derive(Event, Serialize, Deserialize)]
//! #[event(type = "order.placed")]
//! struct OrderPlaced {
//!     order: u64,
//!     timestamp: SystemTime,
//!     #[serde(skip)]
//!     trace: Option<TraceContext>,
//! }
//!
//! let event = OrderPlaced {
//!     order: 7,
//!     timestamp: SystemTime::now(),
//!     // `None` outside a span recorded by an OpenTelemetry layer.
//!     trace: switchboard_nats::otel::current_trace_context(),
//! };
//! # let _ = event;
//! ```
//!
//! The imported event keeps the context that came on the wire (its parent
//! is the producer's span); a handler that wants its own spans under the
//! import span reads `tracing::Span::current()` inside the subscriber, or
//! parents them with [`remote_context`].

use std::str::FromStr;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use switchboard::TraceContext;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The trace context of the current `tracing` span, as an OpenTelemetry
/// layer records it: what an event built now should carry. `None` without
/// such a layer, or outside any span.
pub fn current_trace_context() -> Option<TraceContext> {
    trace_context_of(&tracing::Span::current())
}

/// The trace context of `span`, as an OpenTelemetry layer records it.
pub fn trace_context_of(span: &tracing::Span) -> Option<TraceContext> {
    let context = span.context();
    let span_ref = context.span();
    let span_context = span_ref.span_context();
    if !span_context.is_valid() {
        return None;
    }
    let trace = TraceContext::new(
        span_context.trace_id().to_bytes(),
        span_context.span_id().to_bytes(),
        span_context.trace_flags().to_u8(),
    )
    .ok()?;
    let state = span_context.trace_state().header();
    if state.is_empty() {
        return Some(trace);
    }
    // A state the W3C limits refuse is left out; the trace goes on.
    Some(trace.clone().with_tracestate(&state).unwrap_or(trace))
}

/// An OpenTelemetry context whose (remote) parent span is `trace`'s: to
/// parent spans on an imported event's context.
pub fn remote_context(trace: &TraceContext) -> Context {
    let state = trace
        .tracestate()
        .and_then(|state| TraceState::from_str(state).ok())
        .unwrap_or_default();
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from_bytes(trace.trace_id()),
        SpanId::from_bytes(trace.parent_id()),
        TraceFlags::new(trace.flags()),
        true,
        state,
    ))
}

/// The span an event with `trace` is imported in.
pub(crate) fn import_span(event_type: &str, source: &str, trace: &TraceContext) -> tracing::Span {
    let span = tracing::info_span!("switchboard_nats.import", event_type, source);
    // Fails only without an OpenTelemetry layer (nothing to parent then)
    // or for a disabled span: either way there is no OTel span to link.
    let _ = span.set_parent(remote_context(trace));
    span
}
