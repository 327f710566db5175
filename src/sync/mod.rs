//! The one place the crate takes its synchronization primitives from.
//!
//! Under the crate's own `switchboard_loom` cfg (set only by the model checks in
//! `loom-tests/`), every primitive whose interleavings matter is swapped for a
//! loom-visible equivalent with the same semantics, so loom checks the code that
//! ships rather than a copy of it. Reference counts (`Arc`, `Weak`) stay `std`
//! and are used directly:
//! loom's `Arc` cannot hold the `dyn Event` trait objects, and ownership is not
//! where the races are.

pub(crate) mod queue;
pub(crate) mod snapshot;
pub(crate) mod wait_list;

#[cfg(not(switchboard_loom))]
pub(crate) use atomic_waker::AtomicWaker;
#[cfg(not(switchboard_loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
#[cfg(not(switchboard_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(switchboard_loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
#[cfg(switchboard_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

/// Wakes whoever waits: what the timer and a request's cancel token hold.
pub(crate) trait Notify: Send + Sync {
    fn notify(&self);
}

/// Locks `mutex`, ignoring poisoning.
///
/// The crate never runs user code while holding one of its locks, so a poisoned
/// lock can only come from a panic inside the crate's own short critical
/// sections, none of which leaves the protected data half-updated.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(not(switchboard_loom))]
    {
        mutex
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    #[cfg(switchboard_loom)]
    {
        mutex.lock().unwrap()
    }
}

/// loom's `AtomicWaker`, with the `register(&Waker)` signature of the
/// `atomic-waker` crate that the crate uses otherwise.
#[cfg(switchboard_loom)]
pub(crate) struct AtomicWaker(loom::future::AtomicWaker);

#[cfg(switchboard_loom)]
impl AtomicWaker {
    pub(crate) fn new() -> Self {
        Self(loom::future::AtomicWaker::new())
    }

    pub(crate) fn register(&self, waker: &std::task::Waker) {
        self.0.register_by_ref(waker);
    }

    pub(crate) fn wake(&self) {
        self.0.wake();
    }
}
