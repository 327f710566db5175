//! An atomically replaceable `Arc<T>` that readers load without locking.
//!
//! Normally this is `arc_swap::ArcSwap`. Under `switchboard_loom` it is a
//! lock-guarded `Arc`, which loom can see and which has the same observable
//! semantics: a load returns the value of some completed store, never a torn one.

use std::sync::Arc;

#[cfg(not(switchboard_loom))]
pub(crate) struct Snapshot<T>(arc_swap::ArcSwap<T>);

/// What [`Snapshot::load`] returns: a read guard that derefs to the value.
#[cfg(not(switchboard_loom))]
pub(crate) type Loaded<T> = arc_swap::Guard<Arc<T>>;

/// What [`Snapshot::load`] returns: a read guard that derefs to the value.
#[cfg(switchboard_loom)]
pub(crate) type Loaded<T> = Arc<T>;

#[cfg(not(switchboard_loom))]
impl<T> Snapshot<T> {
    pub(crate) fn new(value: Arc<T>) -> Self {
        Self(arc_swap::ArcSwap::new(value))
    }

    /// A cheap, lock-free read guard; hold it briefly.
    #[inline]
    pub(crate) fn load(&self) -> Loaded<T> {
        self.0.load()
    }

    pub(crate) fn load_full(&self) -> Arc<T> {
        self.0.load_full()
    }

    pub(crate) fn store(&self, value: Arc<T>) {
        self.0.store(value);
    }
}

#[cfg(switchboard_loom)]
pub(crate) struct Snapshot<T>(loom::sync::Mutex<Arc<T>>);

#[cfg(switchboard_loom)]
impl<T> Snapshot<T> {
    pub(crate) fn new(value: Arc<T>) -> Self {
        Self(loom::sync::Mutex::new(value))
    }

    pub(crate) fn load(&self) -> Loaded<T> {
        Arc::clone(&self.0.lock().unwrap())
    }

    pub(crate) fn load_full(&self) -> Arc<T> {
        self.load()
    }

    pub(crate) fn store(&self, value: Arc<T>) {
        *self.0.lock().unwrap() = value;
    }
}
