//! Derive macros for the [switchboard](https://docs.rs/switchboard) event bus:
//! `#[derive(Event)]`, `#[derive(Request)]` and `#[derive(Response)]`.
//!
//! Use them through switchboard, which re-exports them behind its default
//! `derive` feature: `use switchboard::{Event, Request, Response};` brings
//! each trait and its derive into scope at once.
//!
//! Every misuse is a compile error that says what to write instead.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod attrs;
mod event;
mod fields;
mod reply;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Implements `switchboard::Event` for a struct.
///
/// On the struct, `#[event(...)]` takes:
///
/// - `type = "route.added"`: the [`event_type`] string that string-filtered
///   subscriptions match. Default: the struct's name; or, for a type whose
///   events each carry their own type string, the value of the field marked
///   `#[event(type)]` (any `AsRef<str>`).
/// - `coalescible`: a later queued event of the same type supersedes this one
///   ([`coalescible`] returns `true`).
/// - `crate = "path::to::switchboard"`: where the traits live, for crates
///   that re-export switchboard under another name. Default: `::switchboard`.
///
/// The [`timestamp`] is read from a field: the one marked `#[event(timestamp)]`,
/// or else the field named `timestamp`. Its type is `std::time::SystemTime`,
/// or `switchboard::Timestamp` to stamp the event with the time it was built
/// (`Timestamp::now()`, also its `Default`), or any type that
/// `SystemTime: From<_>` converts.
///
/// ```
/// use std::time::SystemTime;
/// use switchboard::{Event, EventBus, SubscribeOptions, Timestamp};
///
/// #[derive(Event)]
/// #[event(type = "route.added")]
/// struct RouteAdded {
///     path: String,
///     timestamp: Timestamp, // when it was built
/// }
///
/// #[derive(Event)]
/// #[event(type = "load", coalescible)]
/// struct Load {
///     percent: u8,
///     #[event(timestamp)]
///     measured_at: SystemTime,
/// }
///
/// let bus = EventBus::new();
/// let routes = bus
///     .subscribe_with(SubscribeOptions::new("router", 8).event_types(["route.added"]))
///     .unwrap();
/// bus.start();
/// bus.publish(RouteAdded { path: "/api".into(), timestamp: Timestamp::now() });
/// bus.publish(Load { percent: 80, measured_at: SystemTime::now() });
/// assert_eq!(routes.len(), 1);
/// assert!(Load { percent: 1, measured_at: SystemTime::UNIX_EPOCH }.coalescible());
/// ```
///
/// The event's [W3C trace context] (opt-in) is the field of type
/// `Option<TraceContext>` (written so: `Option<switchboard::TraceContext>`
/// works too), or the field marked `#[event(trace)]` (needed when the type
/// is spelled through an alias, or when two fields have that type). The
/// derive then writes [`trace_context`] and [`set_trace_context`]; without
/// such a field they keep their defaults (`None`, and a setter that ignores
/// its argument), and the event costs nothing more. An event type that is
/// also serialized marks the field `#[serde(skip)]`: the context travels
/// beside the data, not in it.
///
/// ```
/// use switchboard::{Event, Timestamp, TraceContext};
///
/// #[derive(Event)]
/// #[event(type = "order.placed")]
/// struct OrderPlaced {
///     order: u64,
///     timestamp: Timestamp,
///     trace: Option<TraceContext>, // found by its type
/// }
///
/// let parent = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
/// let event = OrderPlaced { order: 1, timestamp: Timestamp::now(), trace: Some(parent.clone()) };
/// assert_eq!(event.trace_context(), Some(&parent));
/// ```
///
/// Structs may be generic; every type parameter must then be
/// `Send + Sync + 'static`, as every event is. Enums, unions and structs that
/// borrow (lifetime parameters) are rejected.
///
/// [`event_type`]: https://docs.rs/switchboard/latest/switchboard/trait.Event.html#tymethod.event_type
/// [`timestamp`]: https://docs.rs/switchboard/latest/switchboard/trait.Event.html#tymethod.timestamp
/// [`coalescible`]: https://docs.rs/switchboard/latest/switchboard/trait.Event.html#method.coalescible
/// [W3C trace context]: https://docs.rs/switchboard/latest/switchboard/struct.TraceContext.html
/// [`trace_context`]: https://docs.rs/switchboard/latest/switchboard/trait.Event.html#method.trace_context
/// [`set_trace_context`]: https://docs.rs/switchboard/latest/switchboard/trait.Event.html#method.set_trace_context
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    event::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Implements `switchboard::Request` for a struct that also implements
/// `Event` (usually by `#[derive(Event)]`).
///
/// The [`request_id`] is read from the field marked `#[request(id)]`, or else
/// the field named `request_id`; its type is anything that is `AsRef<str>`
/// (`String`, `&'static str`, `Box<str>`, `Arc<str>`). On the struct,
/// `#[request(crate = "...")]` works as for `Event`.
///
/// ```
/// use switchboard::{Event, Request, Timestamp};
///
/// #[derive(Event, Request)]
/// #[event(type = "config.validate")]
/// struct Validate {
///     #[request(id)]
///     revision: String,
///     config: String,
///     timestamp: Timestamp,
/// }
///
/// let request = Validate { revision: "rev-7".into(), config: String::new(), timestamp: Timestamp::now() };
/// assert_eq!(request.request_id(), "rev-7");
/// ```
///
/// [`request_id`]: https://docs.rs/switchboard/latest/switchboard/trait.Request.html#tymethod.request_id
#[proc_macro_derive(Request, attributes(request))]
pub fn derive_request(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    reply::derive_request(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Implements `switchboard::Response` for a struct that also implements
/// `Event` (usually by `#[derive(Event)]`).
///
/// - The [`request_id`] comes from the field marked `#[response(request_id)]`,
///   or else the field named `request_id`.
/// - The [`responder`] comes from the field marked `#[response(responder)]`,
///   or else the field named `responder`, or from the struct attribute
///   `#[response(responder = "name")]` for a type only one responder sends.
///
/// Both fields are anything that is `AsRef<str>`. `#[response(crate = "...")]`
/// works as for `Event`.
///
/// ```
/// use switchboard::{Event, Response, Timestamp};
///
/// #[derive(Event, Response)]
/// #[event(type = "config.verdict")]
/// struct Verdict {
///     request_id: String,
///     #[response(responder)]
///     validator: &'static str,
///     ok: bool,
///     timestamp: Timestamp,
/// }
///
/// #[derive(Event, Response)]
/// #[response(responder = "schema")]
/// struct SchemaVerdict {
///     request_id: String,
///     timestamp: Timestamp,
/// }
///
/// let verdict = Verdict { request_id: "rev-7".into(), validator: "policy", ok: true, timestamp: Timestamp::now() };
/// assert_eq!((verdict.request_id(), verdict.responder()), ("rev-7", "policy"));
/// let schema = SchemaVerdict { request_id: "rev-7".into(), timestamp: Timestamp::now() };
/// assert_eq!(schema.responder(), "schema");
/// ```
///
/// [`request_id`]: https://docs.rs/switchboard/latest/switchboard/trait.Response.html#tymethod.request_id
/// [`responder`]: https://docs.rs/switchboard/latest/switchboard/trait.Response.html#tymethod.responder
#[proc_macro_derive(Response, attributes(response))]
pub fn derive_response(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    reply::derive_response(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
