//! Scatter-gather requests: publish one [`Request`], gather the [`Response`]s
//! of the expected responders, blocking or as a future on any executor.
//!
//! - `options`: [`RequestOptions`], validated before anything happens.
//! - `outcome`: [`RequestResult`], [`RequestError`], [`RequestOptionsError`].
//! - `cancel`: [`CancelToken`].
//! - `gather`: what both waits share: the response subscription, which
//!   responses count, the quorum, the final result.
//! - `blocking`: the thread-blocking wait of [`EventBus::request`].
//! - `future`: [`RequestFuture`], from [`EventBus::request_async`].
//! - `timer`: the one timer thread that drives async timeouts.

mod blocking;
mod cancel;
mod future;
mod gather;
mod options;
mod outcome;
#[cfg(test)]
mod test_support;
mod timer;

pub use cancel::CancelToken;
pub use future::RequestFuture;
pub use options::RequestOptions;
pub use outcome::{RequestError, RequestOptionsError, RequestResult};

use std::sync::Arc;

use crate::bus::EventBus;
use crate::event::{Request, Response};

use gather::{Gather, Outcome};

impl EventBus {
    /// Publishes `request` and waits for the answers of its expected
    /// responders: a synchronous scatter-gather request (Go's `Request`).
    ///
    /// 1. Subscribes to events of the response type `R` (a typed, critical
    ///    subscription made *before* the request is published, so no response
    ///    can be missed; internal, so it logs no late-subscription warning).
    /// 2. Publishes `request`.
    /// 3. Gathers the `R` events whose [`Response::request_id`] is the
    ///    request's and whose [`Response::responder`] is one of
    ///    [`RequestOptions::expected_responders`]: the first response of each
    ///    responder counts, later ones and everyone else's are ignored, and so
    ///    are responses to other requests.
    /// 4. Returns as soon as the quorum is met: every expected responder, or
    ///    [`RequestOptions::min_responses`] of them.
    ///
    /// The response subscription is removed when the request ends, however it
    /// ends. A responder is any subscriber of the request that publishes an
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
    /// buffer and is still delivered then; its late answers reach nobody. If
    /// the pre-start buffer is full the request is dropped (counted and
    /// reported like any event) and times out.
    ///
    /// # Blocking
    ///
    /// This blocks the calling thread until the request ends; the thread
    /// sleeps, waking only for a response of type `R`, the deadline or a
    /// cancellation. In async code use [`request_async`](Self::request_async).
    /// A thread cannot answer its own blocking request: a responder that
    /// makes a request must not be one of its expected responders.
    ///
    /// # Errors
    ///
    /// - [`RequestError::InvalidOptions`] if `options` fail
    ///   [`RequestOptions::validate`]; nothing is subscribed or published.
    /// - [`RequestError::Timeout`] if the quorum was not met within
    ///   [`RequestOptions::timeout`], with the responses gathered so far and a
    ///   `"no response from X"` line for each missing responder.
    /// - [`RequestError::Cancelled`] if the [`RequestOptions::cancel_token`]
    ///   was cancelled first, with the same partial result (the request is not
    ///   published if the token was cancelled already).
    pub fn request<R: Response, Q: Request>(
        &self,
        request: Q,
        options: RequestOptions,
    ) -> Result<RequestResult<R>, RequestError<R>> {
        let mut gather = Gather::new(request.request_id(), options)?;
        if gather.is_cancelled() {
            return gather.finish(Outcome::Cancelled);
        }
        let deadline = gather.deadline_from_now();
        let subscription = gather.launch(self, Arc::new(request), false);
        let outcome = blocking::wait(&subscription, &mut gather, deadline);
        drop(subscription);
        gather.finish(outcome)
    }

    /// [`request`](Self::request) as a future, for async code on any
    /// executor: tokio, smol, async-std, `futures::executor::block_on`, or
    /// your own.
    ///
    /// The future does nothing until first polled: then it subscribes to the
    /// responses, publishes `request` and starts the timeout. Its output is
    /// what [`request`](Self::request) returns, with the same errors, checked
    /// on the first poll.
    ///
    /// The timeout needs no runtime timer: one thread of the crate drives it,
    /// see [`RequestFuture`]'s "How the timeout is driven". Dropping the
    /// future cancels the request and removes its response subscription.
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
        let gather = Gather::new(request.request_id(), options);
        RequestFuture::new(self, request, gather)
    }
}
