//! The async wait: a future that works on any executor.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::bus::EventBus;
use crate::event::{Event, Request, Response};

use super::cancel::Registration;
use super::gather::{self, Outcome, RequestTally, Terms};
use super::launch::{conclude, launch, Launched};
use super::outcome::{RequestError, RequestOptionsError, RequestResult};
use super::route::{ResponseRoute, Ticket};
use crate::sync::Notify;
#[cfg(not(switchboard_loom))]
use crate::timer::{self, TimerEntry};

/// The future returned by [`EventBus::request_async`]: a scatter-gather
/// request that completes on any executor.
///
/// Like every Rust future it does nothing until polled. Its first poll
/// publishes the request and starts the timeout (so the timeout runs from
/// the first poll, not from `request_async`); it completes with what
/// [`EventBus::request`] would return. It is `Send`, `Sync`, `Unpin` and
/// `'static`, so it can be spawned on any executor.
///
/// # How the timeout is driven
///
/// Without a runtime: the crate runs one timer thread per process
/// (`switchboard-timer`), started by the first async request that has to
/// wait. While a request is pending, its deadline sits in the timer's ordered
/// map; the thread sleeps on a condition variable until the earliest deadline
/// and then wakes that request, which sees on that poll that its deadline has
/// passed and completes with [`RequestError::Timeout`]. A request that ends
/// removes its deadline at once; the thread may still wake at that time, find
/// nothing due, and sleep again, and with no deadline pending it sleeps until
/// one is added. So the timeout holds on tokio, smol, async-std,
/// `futures::executor`, or an executor of your own, and the crate needs no
/// timer from any of them.
///
/// The request is woken when its quorum is met (by the publisher of the
/// response that met it), and a [`CancelToken`](crate::CancelToken) wakes it
/// too: neither involves the timer thread.
///
/// # Cancellation
///
/// Dropping the future cancels the request (it is counted as cancelled in
/// [`BusStats::requests`](crate::BusStats::requests)) and removes its
/// deadline from the timer. Responders that already got the request may still
/// answer; those answers are counted as late responses. Wrapping it in an
/// executor's own timeout (such as `tokio::time::timeout`) works the same way.
///
/// # Panics
///
/// Polling it again after it completed panics, as futures may. Its first
/// wait for a deadline panics if the timer thread is not running yet and the
/// operating system refuses to start it.
#[must_use = "futures do nothing unless polled: `.await` the request"]
pub struct RequestFuture<R: Response> {
    state: State<R>,
}

enum State<R: Response> {
    /// Not polled yet.
    Ready {
        bus: EventBus,
        request: Arc<dyn Event>,
        id: Arc<str>,
        tally: RequestTally<R>,
        terms: Terms,
    },
    /// The options were invalid; reported on the first poll.
    Invalid(RequestOptionsError),
    /// Published; gathering responses.
    Waiting(Waiting<R>),
    /// The output was returned.
    Done,
}

// Field order matters: the timer entry and the cancel registration drop (and
// let go of the request's slot) before the ticket ends the request.
struct Waiting<R: Response> {
    terms: Terms,
    deadline: Option<Instant>,
    /// Registered on the first `Pending`; unregistered on drop.
    #[cfg(not(switchboard_loom))]
    timer: Option<TimerEntry>,
    /// Registered on the first `Pending`; unregistered on drop.
    cancel: Option<Registration>,
    ticket: Ticket<R>,
}

impl<R: Response> RequestFuture<R> {
    pub(super) fn new<Q: Request>(
        bus: &EventBus,
        request: Q,
        options: super::RequestOptions,
    ) -> Self {
        let state = match gather::prepare(options) {
            Ok((tally, terms)) => State::Ready {
                bus: bus.clone(),
                id: request.request_id().into(),
                request: Arc::new(request),
                tally,
                terms,
            },
            Err(error) => State::Invalid(error),
        };
        Self { state }
    }
}

impl<R: Response> Future for RequestFuture<R> {
    type Output = Result<RequestResult<R>, RequestError<R>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let State::Waiting(waiting) = &mut this.state {
            let outcome = match waiting.poll(cx) {
                Poll::Ready(outcome) => outcome,
                Poll::Pending => return Poll::Pending,
            };
            let State::Waiting(mut waiting) = mem::replace(&mut this.state, State::Done) else {
                unreachable!("matched just above")
            };
            // Dropping the rest of `waiting` removes the deadline and the
            // cancel registration.
            return Poll::Ready(conclude(&mut waiting.ticket, outcome, &waiting.terms));
        }
        match mem::replace(&mut this.state, State::Done) {
            State::Invalid(error) => Poll::Ready(Err(RequestError::InvalidOptions(error))),
            State::Ready {
                bus,
                request,
                id,
                tally,
                terms,
            } => {
                let route = ResponseRoute::<R>::of(&bus);
                match launch(&bus, &route, id, request, tally, &terms) {
                    Launched::Ended(result) => Poll::Ready(result),
                    Launched::Waiting(ticket) => {
                        this.state = State::Waiting(Waiting {
                            ticket,
                            deadline: terms.deadline_from_now(),
                            terms,
                            #[cfg(not(switchboard_loom))]
                            timer: None,
                            cancel: None,
                        });
                        Pin::new(this).poll(cx)
                    }
                }
            }
            State::Waiting(_) => unreachable!("handled above"),
            State::Done => panic!("RequestFuture polled after it completed"),
        }
    }
}

impl<R: Response> Waiting<R> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Outcome> {
        let slot = self.ticket.slot();
        if slot.is_met() {
            return Poll::Ready(Outcome::Met);
        }
        if let Some(outcome) = self.ended() {
            return Poll::Ready(outcome);
        }
        // Store the current waker where responses, the timer and the token
        // look for it, register with the timer and the token on the first
        // wait, then check again: a quorum, a deadline or a cancellation
        // reached before the waker was stored is seen here.
        slot.register(cx.waker());
        // Loom has no clock: under the cfg the deadline is checked on each
        // poll but no timer wakes the task (design, "Loom for users").
        #[cfg(not(switchboard_loom))]
        if self.timer.is_none() {
            if let Some(deadline) = self.deadline {
                self.timer = Some(timer::register(
                    deadline,
                    Arc::clone(slot) as Arc<dyn Notify>,
                ));
            }
        }
        if self.cancel.is_none() {
            if let Some(token) = &self.terms.cancel {
                // `None`: cancelled already, which the check below reports.
                self.cancel = token.register(Arc::clone(slot) as Arc<dyn Notify>);
            }
        }
        if slot.is_met() {
            return Poll::Ready(Outcome::Met);
        }
        match self.ended() {
            Some(outcome) => Poll::Ready(outcome),
            None => Poll::Pending,
        }
    }

    /// Whether the request was cancelled or timed out.
    fn ended(&self) -> Option<Outcome> {
        if self.terms.is_cancelled() {
            return Some(Outcome::Cancelled);
        }
        match self.deadline {
            Some(deadline) if Instant::now() >= deadline => Some(Outcome::TimedOut),
            _ => None,
        }
    }
}

impl<R: Response> fmt::Debug for RequestFuture<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Ready { .. } => "not polled yet",
            State::Invalid(_) => "invalid options",
            State::Waiting(_) => "waiting for responses",
            State::Done => "done",
        };
        f.debug_struct("RequestFuture")
            .field("response_type", &std::any::type_name::<R>())
            .field("state", &state)
            .finish()
    }
}
