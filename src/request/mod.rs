//! Scatter-gather requests: publish one [`Request`], gather the [`Response`]s
//! of the expected responders, blocking or as a future on any executor.
//!
//! - `options`: [`RequestOptions`], validated before anything happens.
//! - `outcome`: [`RequestResult`], [`RequestError`], [`RequestOptionsError`].
//! - `cancel`: [`CancelToken`] and its [`CancelledFuture`].
//! - `gather`: [`RequestTally`] (which responses count, the quorum, the
//!   final result) and how a request ended.
//! - `launch`: the steps both forms share: wait, publish, and conclude.
//! - `route`: how responses reach the waiting requests: one long-lived route
//!   per response type, dispatching by request id.
//! - `blocking`: [`EventBus::request`], waiting on a parked thread.
//! - `future`: [`RequestFuture`], from [`EventBus::request_async`].

#[cfg(not(switchboard_loom))] // it parks with a timeout, which loom does not model
mod blocking;
mod cancel;
mod future;
mod gather;
mod launch;
mod options;
mod outcome;
mod route;
#[cfg(test)]
mod test_support;

pub use cancel::{CancelToken, CancelledFuture};
pub use future::RequestFuture;
pub use gather::RequestTally;
pub use options::RequestOptions;
pub use outcome::{RequestError, RequestOptionsError, RequestResult};

use crate::bus::EventBus;
use crate::event::{Request, Response};

impl EventBus {
    /// Publishes `request` and waits for the answers of its expected
    /// responders: a synchronous scatter-gather request (Go's `Request`).
    ///
    /// 1. Waits for responses to the request's id *before* publishing it, so
    ///    no response can be missed. Responses of type `R` reach waiting
    ///    requests through one long-lived route per response type (the bus's
    ///    own subscriber to `R`, made by the first request for `R`), which
    ///    passes each one to the request waiting under its
    ///    [`Response::request_id`]: a request subscribes to nothing itself.
    /// 2. Publishes `request`. On a running bus, if the request reached no
    ///    subscriber at all, it fails at once with
    ///    [`RequestError::NoResponders`].
    /// 3. Gathers the responses whose [`Response::responder`] is one of
    ///    [`RequestOptions::expected_responders`]: the first response of each
    ///    responder counts; later ones and everyone else's are ignored
    ///    (counted in [`BusStats::requests`](crate::BusStats::requests)).
    /// 4. Returns as soon as the quorum is met: every expected responder, or
    ///    [`RequestOptions::min_responses`] of them. The result holds every
    ///    counted response that had arrived when the request ended.
    ///
    /// A response published after its request ended is discarded and counted
    /// as late; it never reaches another request. Concurrent requests with
    /// the same id each get every response to that id.
    ///
    /// Responses reach the request through one route per response type,
    /// made by the first request for `R` and kept for the bus's lifetime (it
    /// is not counted in [`BusStats::subscriber_count`](crate::BusStats::subscriber_count)); the
    /// request's place in it is freed when the request ends, however it ends.
    /// A responder is any subscriber of the request that publishes an
    /// `R` carrying the request's id and its own name.
    ///
    /// ```
    /// use std::thread;
    /// use std::time::Duration;
    /// use switchboard::{Event, EventBus, Request, RequestOptions, Response, Timestamp};
    ///
    /// #[derive(Event, Request)]
    /// #[event(type = "config.validate")]
    /// struct Validate {
    ///     #[request(id)]
    ///     id: String,
    ///     config: String,
    ///     timestamp: Timestamp,
    /// }
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
    /// let bus = EventBus::new();
    /// for validator in ["schema", "policy"] {
    ///     let requests = bus.subscribe_to::<Validate>(validator, 16).unwrap();
    ///     let bus = bus.clone();
    ///     thread::spawn(move || {
    ///         for request in requests.iter() {
    ///             bus.publish(Verdict {
    ///                 request_id: request.id.clone(),
    ///                 validator,
    ///                 ok: !request.config.is_empty(),
    ///                 timestamp: Timestamp::now(),
    ///             });
    ///         }
    ///     });
    /// }
    /// bus.start();
    ///
    /// let options = RequestOptions::new(["schema", "policy"]).timeout(Duration::from_secs(5));
    /// let request = Validate {
    ///     id: "rev-42".into(),
    ///     config: "listen: 443".into(),
    ///     timestamp: Timestamp::now(),
    /// };
    /// let result = bus.request::<Verdict, _>(request, options).unwrap();
    /// assert_eq!(result.responses.len(), 2);
    /// assert!(result.responses.iter().all(|verdict| verdict.ok));
    /// assert!(result.errors.is_empty());
    /// ```
    ///
    /// # Before `start`, while paused
    ///
    /// A request made while the bus is buffering (before [`start`](Self::start)
    /// or after [`pause`](Self::pause)) is buffered like any event: the
    /// responders receive it when the bus starts, and the request succeeds if
    /// that happens, and the quorum answers, within the timeout — which runs
    /// from the call. A request that timed out before `start` stays in the
    /// buffer and is still delivered then; its answers are counted as late.
    /// If the pre-start buffer is full the request is dropped (counted and
    /// reported like any event) and times out. A buffered request never
    /// fails with [`RequestError::NoResponders`]: its responders may subscribe
    /// before `start`.
    ///
    /// # Blocking
    ///
    /// This blocks the calling thread until the request ends; the thread
    /// sleeps, waking only when the quorum is met, at the deadline or on a
    /// cancellation. In async code use [`request_async`](Self::request_async).
    /// A thread cannot answer its own blocking request: a responder that
    /// makes a request must not be one of its expected responders.
    ///
    /// # Errors
    ///
    /// - [`RequestError::InvalidOptions`] if `options` fail
    ///   [`RequestOptions::validate`]; nothing is published.
    /// - [`RequestError::NoResponders`] if the bus is running and the request
    ///   reached no subscriber.
    /// - [`RequestError::Timeout`] if the quorum was not met within
    ///   [`RequestOptions::timeout`], with the responses gathered so far and a
    ///   `"no response from X"` line for each missing responder.
    /// - [`RequestError::Cancelled`] if the [`RequestOptions::cancel_token`]
    ///   was cancelled first, with the same partial result (the request is not
    ///   published if the token was cancelled already).
    #[cfg(not(switchboard_loom))]
    pub fn request<R: Response, Q: Request>(
        &self,
        request: Q,
        options: RequestOptions,
    ) -> Result<RequestResult<R>, RequestError<R>> {
        blocking::request(self, request, options)
    }

    /// [`request`](Self::request) as a future, for async code on any
    /// executor: tokio, smol, async-std, `futures::executor::block_on`, or
    /// your own.
    ///
    /// The future does nothing until first polled: then it starts waiting
    /// for the responses, publishes `request` and starts the timeout. Its output is
    /// what [`request`](Self::request) returns, with the same errors, checked
    /// on the first poll.
    ///
    /// The timeout needs no runtime timer: one thread of the crate drives it,
    /// see [`RequestFuture`]'s "How the timeout is driven". Dropping the
    /// future cancels the request and frees its place in the response route.
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// use switchboard::{Event, EventBus, Request, RequestOptions, Response, Timestamp};
    ///
    /// #[derive(Event, Request)]
    /// #[event(type = "ping")]
    /// struct Ping(#[request(id)] String, #[event(timestamp)] Timestamp);
    ///
    /// #[derive(Event, Response)]
    /// #[event(type = "pong")]
    /// #[response(responder = "echo")]
    /// struct Pong(#[response(request_id)] String, #[event(timestamp)] Timestamp);
    ///
    /// let bus = EventBus::new();
    /// let mut pings = bus.subscribe_to::<Ping>("echo", 16).unwrap();
    /// bus.start();
    ///
    /// let responder = {
    ///     let bus = bus.clone();
    ///     async move {
    ///         let ping = pings.next().await.unwrap();
    ///         bus.publish(Pong(ping.0.clone(), Timestamp::now()));
    ///     }
    /// };
    /// let request = bus.request_async::<Pong, _>(
    ///     Ping("p-1".into(), Timestamp::now()),
    ///     RequestOptions::new(["echo"]).timeout(Duration::from_secs(5)),
    /// );
    /// // Both on one thread, under the runtime-free `block_on`.
    /// let (result, ()) = futures::executor::block_on(futures::future::join(request, responder));
    /// assert_eq!(result.unwrap().responses[0].0, "p-1");
    /// ```
    pub fn request_async<R: Response, Q: Request>(
        &self,
        request: Q,
        options: RequestOptions,
    ) -> RequestFuture<R> {
        RequestFuture::new(self, request, options)
    }
}
