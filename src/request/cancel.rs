//! Cancelling requests from another thread or task (Go's `context`).

use std::collections::HashMap;
use std::fmt;
use std::mem;
use std::sync::Arc;

use crate::sync::{lock, AtomicBool, Mutex, Ordering};

use crate::sync::Notify;

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
/// let _asks = bus.subscribe_to::<Ask>("a", 4).unwrap(); // receives, never answers
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
    /// Requests waiting on this token, notified (and forgotten) by `cancel`.
    waiters: Mutex<Waiters>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            cancelled: AtomicBool::new(false),
            waiters: Mutex::new(Waiters::default()),
        }
    }
}

#[derive(Default)]
struct Waiters {
    next_id: u64,
    waiting: HashMap<u64, Arc<dyn Notify>>,
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
        let waiters = mem::take(&mut lock(&inner.waiters).waiting);
        for waiter in waiters.into_values() {
            waiter.notify();
        }
    }

    /// Whether [`cancel`](Self::cancel) has been called on this token or a clone.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::Acquire)
    }

    /// Has `waiter` notified when the token is cancelled, until the returned
    /// registration is dropped. `None` if the token is already cancelled.
    pub(super) fn register(&self, waiter: Arc<dyn Notify>) -> Option<Registration> {
        let mut waiters = lock(&self.inner.waiters);
        // Checked under the lock: `cancel` sets the flag before it takes the
        // waiters, so either it sees this waker or this sees the flag.
        if self.is_cancelled() {
            return None;
        }
        let id = waiters.next_id;
        waiters.next_id += 1;
        waiters.waiting.insert(id, waiter);
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
        // Dropped after the lock is released (see `TimerEntry`'s drop).
        let removed = lock(&self.token.inner.waiters).waiting.remove(&self.id);
        drop(removed);
    }
}

#[cfg(all(test, not(switchboard_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Notify for Count {
        fn notify(&self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn cancel_notifies_registered_waiters_once() {
        let token = CancelToken::new();
        let count = Arc::new(Count::default());
        let registration = token.register(Arc::clone(&count) as Arc<dyn Notify>);
        assert!(registration.is_some(), "not cancelled yet");

        token.clone().cancel();
        assert!(token.is_cancelled());
        assert_eq!(count.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        drop(registration); // after cancel: nothing left to remove, no panic
        assert!(token
            .register(Arc::clone(&count) as Arc<dyn Notify>)
            .is_none());
        token.cancel(); // idempotent: no second notification
        assert_eq!(count.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn dropped_registrations_leave() {
        let token = CancelToken::new();
        let count = Arc::new(Count::default());
        let first = token
            .register(Arc::clone(&count) as Arc<dyn Notify>)
            .unwrap();
        let second = token
            .register(Arc::clone(&count) as Arc<dyn Notify>)
            .unwrap();
        assert_eq!(lock(&token.inner.waiters).waiting.len(), 2);
        drop(first);
        drop(second);
        assert!(lock(&token.inner.waiters).waiting.is_empty());
        token.cancel();
        assert_eq!(count.0.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert_eq!(format!("{token:?}"), "CancelToken { cancelled: true }");
    }
}
