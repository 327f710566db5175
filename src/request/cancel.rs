//! Cancelling requests from another thread or task (Go's `context`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use atomic_waker::AtomicWaker;
use crossbeam_channel::{Receiver, Sender};

use crate::sync::{lock, Mutex};

/// Cancels the requests it is given to, from any thread: the role Go's
/// `context.Context` plays for `Request(ctx, ...)`.
///
/// Give a clone to a request with
/// [`RequestOptions::cancel_token`](crate::RequestOptions::cancel_token) and
/// keep one; [`cancel`](Self::cancel) then ends the request promptly with
/// [`RequestError::Cancelled`](crate::RequestError::Cancelled), carrying the
/// responses gathered so far. A blocking [`EventBus::request`](crate::EventBus::request)
/// wakes up at once; a [`RequestFuture`](crate::RequestFuture) is woken and
/// completes on its next poll.
///
/// One token may serve many requests, blocking and async, at once: cancelling
/// it cancels all of them, and every request made with it afterwards (which
/// then fails before anything is published). Cancelling is permanent and
/// idempotent. Clones share one token.
///
/// ```
/// use std::thread;
/// use std::time::Duration;
/// use switchboard::{CancelToken, Event, EventBus, Request, RequestOptions, Response, Timestamp};
/// # #[derive(Event, Request)]
/// # struct Ask { request_id: String, timestamp: Timestamp }
/// # #[derive(Event, Response)]
/// # struct Answer { request_id: String, responder: String, timestamp: Timestamp }
///
/// let bus = EventBus::new();
/// bus.start();
/// let token = CancelToken::new();
///
/// let canceller = {
///     let token = token.clone();
///     thread::spawn(move || {
///         thread::sleep(Duration::from_millis(20));
///         token.cancel(); // e.g. on shutdown
///     })
/// };
/// // Nobody answers, but the request ends long before its 60 s timeout.
/// let options = RequestOptions::new(["a"])
///     .timeout(Duration::from_secs(60))
///     .cancel_token(token);
/// let ask = Ask { request_id: "q".into(), timestamp: Timestamp::now() };
/// let error = bus.request::<Answer, _>(ask, options).unwrap_err();
/// assert!(error.is_cancelled());
/// canceller.join().unwrap();
/// ```
#[derive(Clone, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

struct Inner {
    cancelled: AtomicBool,
    /// Dropped by `cancel`, which disconnects `receiver`: a blocking request
    /// selects over that receiver and its response queue, so it wakes at once.
    sender: Mutex<Option<Sender<Infallible>>>,
    receiver: Receiver<Infallible>,
    /// Async requests waiting on this token, woken (and forgotten) by `cancel`.
    waiters: Mutex<Waiters>,
}

#[derive(Default)]
struct Waiters {
    next_id: u64,
    wakers: HashMap<u64, Arc<AtomicWaker>>,
}

impl Default for Inner {
    fn default() -> Self {
        let (sender, receiver) = crossbeam_channel::bounded(0);
        Self {
            cancelled: AtomicBool::new(false),
            sender: Mutex::new(Some(sender)),
            receiver,
            waiters: Mutex::new(Waiters::default()),
        }
    }
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every request using this token, now and from now on.
    /// Idempotent; callable from any thread.
    pub fn cancel(&self) {
        let inner = &*self.inner;
        // AcqRel: a request that sees the flag (Acquire in `is_cancelled`)
        // also sees what the canceller did before cancelling; only the first
        // call goes on to wake the waiters (design, "Memory orders").
        if inner.cancelled.swap(true, Ordering::AcqRel) {
            return;
        }
        drop(lock(&inner.sender).take());
        let waiters = mem::take(&mut lock(&inner.waiters).wakers);
        for waker in waiters.into_values() {
            waker.wake();
        }
    }

    /// Whether [`cancel`](Self::cancel) has been called on this token or a clone.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::Acquire)
    }

    /// Disconnected once the token is cancelled: ready in a `Select`.
    pub(super) fn receiver(&self) -> &Receiver<Infallible> {
        &self.inner.receiver
    }

    /// Has `waker` woken when the token is cancelled, until the returned
    /// registration is dropped. `None` if the token is already cancelled.
    pub(super) fn register(&self, waker: &Arc<AtomicWaker>) -> Option<Registration> {
        let mut waiters = lock(&self.inner.waiters);
        // Checked under the lock: `cancel` sets the flag before it takes the
        // waiters, so either it sees this waker or this sees the flag.
        if self.is_cancelled() {
            return None;
        }
        let id = waiters.next_id;
        waiters.next_id += 1;
        waiters.wakers.insert(id, Arc::clone(waker));
        Some(Registration {
            token: self.clone(),
            id,
        })
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// An async request's place among a token's waiters; leaves on drop.
pub(super) struct Registration {
    token: CancelToken,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.token.inner.waiters).wakers.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::{Wake, Waker};

    struct Flag(AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn cancel_wakes_registered_waiters_and_disconnects_the_receiver() {
        let token = CancelToken::new();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let slot = Arc::new(AtomicWaker::new());
        slot.register(&Waker::from(Arc::clone(&flag)));
        let registration = token.register(&slot).expect("not cancelled yet");
        assert!(token.receiver().try_recv().is_err());

        token.clone().cancel();
        assert!(token.is_cancelled());
        assert!(flag.0.load(Ordering::SeqCst));
        assert_eq!(
            token.receiver().try_recv(),
            Err(crossbeam_channel::TryRecvError::Disconnected)
        );
        drop(registration); // after cancel: nothing left to remove, no panic
        assert!(token.register(&slot).is_none());
        token.cancel(); // idempotent
    }

    #[test]
    fn dropped_registrations_leave() {
        let token = CancelToken::new();
        let slot = Arc::new(AtomicWaker::new());
        let first = token.register(&slot).unwrap();
        let second = token.register(&slot).unwrap();
        assert_eq!(lock(&token.inner.waiters).wakers.len(), 2);
        drop(first);
        drop(second);
        assert!(lock(&token.inner.waiters).wakers.is_empty());
        assert_eq!(format!("{token:?}"), "CancelToken { cancelled: false }");
    }
}
