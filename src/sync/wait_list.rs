//! A list of tasks or threads waiting for something that another thread will
//! announce: room in a subscriber's queue, the bus starting.
//!
//! The announcer pays one `SeqCst` fence and a load when nobody waits. The
//! handshake is the store-buffering pattern closed by two fences (design,
//! "Memory orders": waiting publishers): a waiter registers, fences, then
//! re-checks the condition; the announcer changes the condition, fences,
//! then looks for waiters. Whichever fence comes second sees the other
//! side's write, so either the waiter's re-check sees the change or the
//! announcer finds the waiter.

use std::task::Waker;

use super::{fence, lock, AtomicUsize, Mutex, Ordering};

/// Wakers keyed by their waiter, woken all at once.
pub(crate) struct WaitList {
    /// How many wakers are registered; read by the announcer without the lock.
    waiting: AtomicUsize,
    wakers: Mutex<Vec<(u64, Waker)>>,
}

impl WaitList {
    pub(crate) fn new() -> Self {
        Self {
            waiting: AtomicUsize::new(0),
            wakers: Mutex::new(Vec::new()),
        }
    }

    /// Registers `waker` for waiter `key` (replacing the one it registered
    /// before), then fences: re-check the condition after this returns.
    pub(crate) fn register(&self, key: u64, waker: &Waker) {
        {
            let mut wakers = lock(&self.wakers);
            match wakers.iter_mut().find(|(k, _)| *k == key) {
                Some((_, registered)) => registered.clone_from(waker),
                None => wakers.push((key, waker.clone())),
            }
            self.waiting.store(wakers.len(), Ordering::Relaxed);
        }
        fence(Ordering::SeqCst);
    }

    /// Forgets waiter `key`'s waker, if it has one.
    pub(crate) fn deregister(&self, key: u64) {
        if self.waiting.load(Ordering::Relaxed) == 0 {
            return;
        }
        let removed = {
            let mut wakers = lock(&self.wakers);
            let removed = wakers
                .iter()
                .position(|(k, _)| *k == key)
                .map(|at| wakers.swap_remove(at));
            self.waiting.store(wakers.len(), Ordering::Relaxed);
            removed
        };
        // A waker may be the last reference to a task: dropped unlocked.
        drop(removed);
    }

    /// Wakes every registered waiter, once; call it after changing what
    /// they wait for. Each woken waiter re-checks and registers again if it
    /// still has to wait.
    pub(crate) fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) == 0 {
            return;
        }
        self.wake_all();
    }

    /// Wakes the waiters registered now, one by one: the lock is not held
    /// while a waker runs (executor code), and the list keeps its
    /// allocation. A waiter that registers again meanwhile is left for the
    /// next notification.
    #[cold]
    fn wake_all(&self) {
        let mut left = lock(&self.wakers).len();
        while left > 0 {
            left -= 1;
            let next = {
                let mut wakers = lock(&self.wakers);
                let next = wakers.pop();
                self.waiting.store(wakers.len(), Ordering::Relaxed);
                next
            };
            match next {
                Some((_, waker)) => waker.wake(),
                None => break,
            }
        }
    }
}
