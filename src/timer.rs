//! The runtime-independent clock behind async timeouts (requests, waiting
//! publishes).
//!
//! One thread per process, named `switchboard-timer`, started the first time
//! a future has to wait for a deadline. It keeps the pending deadlines
//! in an ordered map and sleeps on a condition variable until the earliest one
//! (or until an earlier deadline is added), then wakes the waker registered
//! for every deadline that has passed. With no deadline pending it sleeps
//! without a timeout: an idle timer costs nothing.
//!
//! A deadline is removed as soon as its request ends (its [`TimerEntry`] is
//! dropped), so the map holds only requests still in flight, and a finished
//! request's waker is never kept alive. An ordered map rather than a binary
//! heap for that reason: removing an arbitrary entry is `O(log n)`.
//!
//! The timer only wakes: a request decides it has timed out by comparing
//! `Instant::now()` with its deadline when polled, so an early, late or
//! spurious wake-up cannot end a request at the wrong time.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Once, PoisonError};
use std::thread;
use std::time::Instant;

use crate::sync::{self, Mutex, MutexGuard, Notify};

/// A pending deadline: when, plus a unique id so equal instants stay distinct.
type Key = (Instant, u64);

struct Timer {
    state: Mutex<State>,
    /// Signalled when a deadline earlier than `State::wakes_at` is added.
    changed: Condvar,
    next_id: AtomicU64,
}

struct State {
    entries: BTreeMap<Key, Arc<dyn Notify>>,
    /// When the timer thread wakes up by itself; `None` while it waits to be
    /// signalled. A deadline at or after this needs no signal: the thread
    /// will look at the map by then anyway. So in the steady state of
    /// requests that end before their timeout, adding a deadline costs no
    /// wake-up of the timer thread.
    wakes_at: Option<Instant>,
}

static TIMER: Timer = Timer {
    state: Mutex::new(State {
        entries: BTreeMap::new(),
        wakes_at: None,
    }),
    changed: Condvar::new(),
    next_id: AtomicU64::new(0),
};

static START: Once = Once::new();

/// Locks the timer's state (no critical section below can leave it
/// half-updated, so poisoning is ignored).
fn lock() -> MutexGuard<'static, State> {
    sync::lock(&TIMER.state)
}

/// A registered deadline; dropping it unregisters it.
#[derive(Debug)]
pub(crate) struct TimerEntry {
    key: Key,
}

/// Notifies `waiter` once `deadline` has passed, until the entry is dropped.
///
/// # Panics
///
/// If the timer thread has to be started and the OS refuses to spawn it.
pub(crate) fn register(deadline: Instant, waiter: Arc<dyn Notify>) -> TimerEntry {
    START.call_once(|| {
        thread::Builder::new()
            .name("switchboard-timer".into())
            .spawn(run)
            .expect("switchboard: failed to spawn the timer thread");
    });
    let key = (deadline, TIMER.next_id.fetch_add(1, Ordering::Relaxed));
    let mut state = lock();
    state.entries.insert(key, waiter);
    let signal = state.wakes_at.is_none_or(|wakes_at| deadline < wakes_at);
    if signal {
        // Set here, so registrations until the thread runs signal only if
        // they are earlier still.
        state.wakes_at = Some(deadline);
    }
    drop(state);
    if signal {
        TIMER.changed.notify_one();
    }
    TimerEntry { key }
}

impl Drop for TimerEntry {
    fn drop(&mut self) {
        // The thread may still wake at this entry's deadline, find nothing
        // due and sleep again: cheaper than signalling it now. The waiter is
        // dropped after the lock is released: it may be the last reference to
        // a request's state and its executor's waker.
        let removed = lock().entries.remove(&self.key);
        drop(removed);
    }
}

/// The timer thread.
fn run() {
    let mut due = Vec::new();
    let mut state = lock();
    loop {
        let now = Instant::now();
        while let Some(entry) = state.entries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        if !due.is_empty() {
            // Notify outside the lock: a waker runs executor code, which may
            // drop a request and so unregister its entry.
            drop(state);
            for waiter in due.drain(..) {
                // An executor's waker should not panic; if one does, the
                // timer must survive it for every other request's sake.
                let _ = catch_unwind(AssertUnwindSafe(|| waiter.notify()));
            }
            state = lock();
            continue;
        }
        let next = state
            .entries
            .first_key_value()
            .map(|((deadline, _), _)| *deadline);
        state.wakes_at = next;
        state = match next {
            None => TIMER
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner),
            Some(deadline) => {
                TIMER
                    .changed
                    .wait_timeout(state, deadline.saturating_duration_since(now))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Sends the time it was notified.
    struct Stamp(std::sync::Mutex<mpsc::Sender<Instant>>);
    impl Notify for Stamp {
        fn notify(&self) {
            let _ = self.0.lock().unwrap().send(Instant::now());
        }
    }

    fn stamp() -> (Arc<dyn Notify>, mpsc::Receiver<Instant>) {
        let (sender, receiver) = mpsc::channel();
        (Arc::new(Stamp(std::sync::Mutex::new(sender))), receiver)
    }

    #[test]
    fn notifies_after_the_deadline_in_deadline_order() {
        let start = Instant::now();
        let (late, late_rx) = stamp();
        let (early, early_rx) = stamp();
        let _late = register(start + Duration::from_millis(60), late);
        let _early = register(start + Duration::from_millis(20), early);
        let early_at = early_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let late_at = late_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(early_at >= start + Duration::from_millis(20));
        assert!(late_at >= start + Duration::from_millis(60));
    }

    #[test]
    fn a_dropped_entry_never_fires() {
        struct Flag(AtomicBool);
        impl Notify for Flag {
            fn notify(&self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let dropped: Arc<dyn Notify> = flag.clone();
        let deadline = Instant::now() + Duration::from_millis(30);
        let entry = register(deadline, Arc::clone(&dropped));
        assert!(lock().entries.contains_key(&entry.key));
        drop(entry);
        assert!(!lock().entries.values().any(|w| Arc::ptr_eq(w, &dropped)));
        // A later deadline that does fire proves the timer ran past ours.
        let (after, after_rx) = stamp();
        let _after = register(deadline + Duration::from_millis(20), after);
        after_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(!flag.0.load(Ordering::SeqCst));
    }

    #[test]
    fn a_past_deadline_fires_at_once() {
        let (past, past_rx) = stamp();
        let _entry = register(Instant::now(), past);
        past_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    }
}
