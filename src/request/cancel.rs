//! Cancelling requests from another thread or task (Go's `context`).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::mutants::mutant;
use crate::sync::{lock, AtomicBool, AtomicWaker, Mutex, Notify, Ordering};

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
/// idempotent. Clones share one token. Code of your own can wait for it too:
/// [`cancelled`](Self::cancelled) is a future, on any executor.
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

    /// A future that completes once the token is cancelled (at once if it
    /// is already): to stop async work of your own with the requests that
    /// share the token, e.g. in a `select!`.
    ///
    /// It needs no runtime: [`cancel`](Self::cancel) wakes it, from any
    /// thread, so it works on any executor and no timer polls the token.
    ///
    /// ```
    /// use std::thread;
    /// use switchboard::CancelToken;
    ///
    /// let token = CancelToken::new();
    /// let waiting = token.cancelled();
    /// let canceller = {
    ///     let token = token.clone();
    ///     thread::spawn(move || token.cancel())
    /// };
    /// // Runtime-free: `futures::executor` parks this thread until `cancel` wakes it.
    /// futures::executor::block_on(waiting);
    /// assert!(token.is_cancelled());
    /// canceller.join().unwrap();
    /// ```
    pub fn cancelled(&self) -> CancelledFuture {
        CancelledFuture {
            token: self.clone(),
            waker: Arc::new(TaskWaker(AtomicWaker::new())),
            registration: None,
        }
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

/// The future returned by [`CancelToken::cancelled`]: completes once the
/// token is cancelled.
///
/// It is `Send`, `Sync`, `Unpin` and `'static` (it holds a clone of the
/// token). While pending it is one of the token's waiters, which
/// [`cancel`](CancelToken::cancel) wakes; dropping it leaves their set.
#[must_use = "futures do nothing unless polled: `.await` it"]
pub struct CancelledFuture {
    token: CancelToken,
    waker: Arc<TaskWaker>,
    /// Made on the first poll that has to wait; left on drop.
    registration: Option<Registration>,
}

/// The waker of the task awaiting a [`CancelledFuture`], as the token's
/// waiters hold it.
struct TaskWaker(AtomicWaker);

impl Notify for TaskWaker {
    fn notify(&self) {
        self.0.wake();
    }
}

impl Future for CancelledFuture {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.token.is_cancelled() {
            return Poll::Ready(());
        }
        // The handshake of a request's slot (design, "Request cancellation"):
        // store this poll's waker, join the waiters once (`register` checks
        // the flag under their lock), then check the flag again, since a
        // `cancel` since the first check may have woken an earlier waker.
        this.waker.0.register(cx.waker());
        if this.registration.is_none() {
            match this
                .token
                .register(Arc::clone(&this.waker) as Arc<dyn Notify>)
            {
                Some(registration) => this.registration = Some(registration),
                None => return Poll::Ready(()),
            }
        }
        if mutant!(this.token.is_cancelled(); no_cancel_recheck => false) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl fmt::Debug for CancelledFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelledFuture")
            .field("cancelled", &self.token.is_cancelled())
            .finish()
    }
}

/// A waiter's place among a token's waiters; leaves on drop.
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

    /// Wakes counted, as a task's waker.
    #[derive(Default)]
    struct Wakes(AtomicUsize);
    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_cancelled_future_joins_the_waiters_once_and_leaves_on_drop() {
        let token = CancelToken::new();
        let wakes = Arc::new(Wakes::default());
        let waker = std::task::Waker::from(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);
        let mut first = token.cancelled();
        let mut second = token.cancelled();
        assert!(Pin::new(&mut first).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut first).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut second).poll(&mut cx).is_pending());
        assert_eq!(lock(&token.inner.waiters).waiting.len(), 2);
        drop(second);
        assert_eq!(lock(&token.inner.waiters).waiting.len(), 1);

        token.cancel();
        assert_eq!(wakes.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(Pin::new(&mut first).poll(&mut cx).is_ready());
        assert!(Pin::new(&mut token.cancelled()).poll(&mut cx).is_ready());
        assert_eq!(wakes.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
