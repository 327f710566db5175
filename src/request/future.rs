//! The async wait: a future that works on any executor.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use atomic_waker::AtomicWaker;

use crate::bus::EventBus;
use crate::event::{Event, Request, Response};
use crate::subscription::TypedSubscription;

use super::cancel::Registration;
use super::gather::{Gather, Outcome};
use super::outcome::{RequestError, RequestOptionsError, RequestResult};
use super::timer::{self, TimerEntry};

/// The future returned by [`EventBus::request_async`]: a scatter-gather
/// request that completes on any executor.
///
/// Like every Rust future it does nothing until polled. Its first poll
/// subscribes to the responses, publishes the request and starts the timeout
/// (so the timeout runs from the first poll, not from `request_async`); it
/// completes with what [`EventBus::request`] would return. It is `Send`,
/// `Sync`, `Unpin` and `'static`, so it can be spawned on any executor.
///
/// # How the timeout is driven
///
/// Without a runtime: the crate runs one timer thread per process
/// (`switchboard-timer`), started by the first async request that has to
/// wait. While a request is pending, its deadline sits in the timer's ordered
/// map with the request's waker; the thread sleeps on a condition variable
/// until the earliest deadline and then wakes that request, which sees on
/// that poll that its deadline has passed and completes with
/// [`RequestError::Timeout`]. A request that ends removes its deadline at
/// once; the thread may still wake at that time, find nothing due, and sleep
/// again, and with no deadline pending it sleeps until one is added. So the
/// timeout holds on tokio, smol, async-std, `futures::executor`, or an
/// executor of your own, and the crate needs no timer from any of them.
///
/// Responses wake the future through the response subscription's waker, and
/// a [`CancelToken`](crate::CancelToken) through its own: neither involves
/// the timer thread.
///
/// # Cancellation
///
/// Dropping the future cancels the request: its response subscription is
/// removed from the bus and its deadline from the timer. Responders that
/// already got the request may still answer; nobody receives those answers.
/// Wrapping it in an executor's own timeout (such as `tokio::time::timeout`)
/// works the same way.
///
/// # Panics
///
/// Polling it again after it completed panics, as futures may. Its first
/// wait for a deadline panics if the timer thread is not running yet and the
/// operating system refuses to start it.
#[must_use = "futures do nothing unless polled: `.await` the request"]
pub struct RequestFuture<R> {
    state: State<R>,
}

enum State<R> {
    /// Not polled yet.
    Ready {
        bus: EventBus,
        request: Arc<dyn Event>,
        gather: Gather<R>,
    },
    /// The options were invalid; reported on the first poll.
    Invalid(RequestOptionsError),
    /// Published; gathering responses.
    Waiting(Box<Waiting<R>>),
    /// The output was returned.
    Done,
}

struct Waiting<R> {
    /// Keeps the bus alive, so the response subscription cannot close.
    _bus: EventBus,
    subscription: TypedSubscription<R>,
    gather: Gather<R>,
    deadline: Option<Instant>,
    /// Where the timer and the cancel token find this request's waker.
    waker: Arc<AtomicWaker>,
    /// Registered on the first `Pending`; unregistered on drop.
    timer: Option<TimerEntry>,
    /// Registered on the first `Pending`; unregistered on drop.
    cancel: Option<Registration>,
}

impl<R: Response> RequestFuture<R> {
    pub(super) fn new<Q: Request>(
        bus: &EventBus,
        request: Q,
        gather: Result<Gather<R>, RequestOptionsError>,
    ) -> Self {
        let state = match gather {
            Ok(gather) => State::Ready {
                bus: bus.clone(),
                request: Arc::new(request),
                gather,
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
            let State::Waiting(waiting) = mem::replace(&mut this.state, State::Done) else {
                unreachable!("matched just above")
            };
            // Dropping the rest of `waiting` removes the subscription, the
            // deadline and the cancel registration.
            return Poll::Ready(waiting.gather.finish(outcome));
        }
        match mem::replace(&mut this.state, State::Done) {
            State::Invalid(error) => Poll::Ready(Err(RequestError::InvalidOptions(error))),
            State::Ready {
                bus,
                request,
                gather,
            } => {
                if gather.is_cancelled() {
                    return Poll::Ready(gather.finish(Outcome::Cancelled));
                }
                let deadline = gather.deadline_from_now();
                let subscription = gather.launch(&bus, request, true);
                this.state = State::Waiting(Box::new(Waiting {
                    _bus: bus,
                    subscription,
                    gather,
                    deadline,
                    waker: Arc::new(AtomicWaker::new()),
                    timer: None,
                    cancel: None,
                }));
                Pin::new(this).poll(cx)
            }
            State::Waiting(_) => unreachable!("handled above"),
            State::Done => panic!("RequestFuture polled after it completed"),
        }
    }
}

/// What one pass over the response queue found.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Drained {
    /// The quorum is met.
    Met,
    /// The queue is empty; the subscription will wake the task.
    Empty,
    /// A buffer's worth was taken and more is queued.
    More,
}

impl<R: Response> Waiting<R> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Outcome> {
        let drained = self.drain(cx);
        if drained == Drained::Met {
            return Poll::Ready(Outcome::Met);
        }
        if let Some(outcome) = self.ended() {
            return Poll::Ready(self.last_drain(cx, outcome));
        }
        // Store the current waker where the timer and the token look for it,
        // register with them on the first wait, then check again: a deadline
        // or cancellation that fired before the waker was stored is seen here.
        self.waker.register(cx.waker());
        if self.timer.is_none() {
            if let Some(deadline) = self.deadline {
                self.timer = Some(timer::register(deadline, Arc::clone(&self.waker)));
            }
        }
        if self.cancel.is_none() {
            if let Some(token) = self.gather.cancel_token() {
                // `None`: cancelled already, which the check below reports.
                self.cancel = token.register(&self.waker);
            }
        }
        match self.ended() {
            Some(outcome) => Poll::Ready(self.last_drain(cx, outcome)),
            None => {
                if drained == Drained::More {
                    // Give the executor back its thread, and come back at
                    // once for the rest.
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
        }
    }

    /// Takes the queued responses, at most a buffer's worth, so that
    /// responses published faster than they are taken cannot keep the task
    /// from checking its deadline or from yielding to its executor.
    fn drain(&mut self, cx: &mut Context<'_>) -> Drained {
        for _ in 0..self.subscription.capacity().max(1) {
            match self.subscription.poll_recv(cx) {
                Poll::Ready(Some(response)) => {
                    if self.gather.accept(response) {
                        return Drained::Met;
                    }
                }
                Poll::Ready(None) => unreachable!(
                    "a request holds its bus, so its response subscription cannot close"
                ),
                Poll::Pending => return Drained::Empty,
            }
        }
        Drained::More
    }

    /// The request is ending with `outcome` (cancelled or timed out); takes
    /// the responses queued until now first. A response that arrived before
    /// the cancellation or the deadline was seen still counts, and may even
    /// complete the quorum.
    fn last_drain(&mut self, cx: &mut Context<'_>, outcome: Outcome) -> Outcome {
        match self.drain(cx) {
            Drained::Met => Outcome::Met,
            Drained::Empty | Drained::More => outcome,
        }
    }

    /// Whether the request was cancelled or timed out.
    fn ended(&self) -> Option<Outcome> {
        if self.gather.is_cancelled() {
            return Some(Outcome::Cancelled);
        }
        match self.deadline {
            Some(deadline) if Instant::now() >= deadline => Some(Outcome::TimedOut),
            _ => None,
        }
    }
}

impl<R> fmt::Debug for RequestFuture<R> {
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
