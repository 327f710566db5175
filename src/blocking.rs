//! Waiting for a future from a plain thread: the blocking forms of the
//! waiting publish and of a completion are their futures, polled here with a
//! waker that unparks the thread. One implementation for both worlds.

#[cfg(not(switchboard_loom))]
use crossbeam_utils::Backoff;
use std::future::Future;
use std::pin::Pin;
#[cfg(not(switchboard_loom))]
use std::sync::Arc;
#[cfg(not(switchboard_loom))]
use std::task::{Context, Poll, Wake, Waker};
#[cfg(not(switchboard_loom))]
use std::thread::{self, Thread};
use std::time::Instant;

/// Polls `future` on this thread until it is ready, parking in between, and
/// polling again at `wake_at` at the latest: a future with a deadline of its
/// own passes it here and decides itself, when polled, that it has passed.
///
/// There is no polling interval: the future's waker unparks the thread, and
/// a spurious unpark just polls again.
#[cfg(not(switchboard_loom))]
pub(crate) fn block_on<F: Future + ?Sized>(
    mut future: Pin<&mut F>,
    wake_at: Option<Instant>,
) -> F::Output {
    let waker = thread_waker();
    let mut cx = Context::from_waker(&waker);
    let backoff = Backoff::new();
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        // A park and its unpark cost tens of microseconds each on a busy
        // machine: spin, then yield, a little first (the backoff crossbeam's
        // blocking send uses), since a consumer often makes room by then.
        if !backoff.is_completed() {
            backoff.snooze();
            continue;
        }
        match wake_at {
            None => thread::park(),
            Some(wake_at) => {
                thread::park_timeout(wake_at.saturating_duration_since(Instant::now()))
            }
        }
    }
}

/// Under loom: loom's `block_on`, which knows the model's threads. Loom has
/// no clock, so nothing wakes the future at `wake_at`.
#[cfg(switchboard_loom)]
pub(crate) fn block_on<F: Future + ?Sized>(
    future: Pin<&mut F>,
    _wake_at: Option<Instant>,
) -> F::Output {
    loom::future::block_on(future)
}

/// A waker that unparks the calling thread; made once per thread.
#[cfg(not(switchboard_loom))]
pub(crate) fn thread_waker() -> Waker {
    THREAD_WAKER.with(Waker::clone)
}

/// Unparks the thread it was made on.
#[cfg(not(switchboard_loom))]
struct Unpark(Thread);

#[cfg(not(switchboard_loom))]
impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

#[cfg(not(switchboard_loom))]
thread_local! {
    static THREAD_WAKER: Waker = Waker::from(Arc::new(Unpark(thread::current())));
}
