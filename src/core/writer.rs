//! The writer side of the registry: copy-and-swap under one lock, and
//! freeing the registries it replaces.

use std::mem;
use std::sync::Arc;

use crate::sync::snapshot::Snapshot;
use crate::sync::{lock, AtomicU64, Mutex, Ordering};

use super::registry::Registry;

/// Serializes registry changes and numbers subscribers.
pub(super) struct RegistryWriter {
    /// Holds the current registry, so a writer never has to load (and touch
    /// the reference count of) the one publishers are reading.
    current: Mutex<Arc<Registry>>,
    next_id: AtomicU64,
}

impl RegistryWriter {
    /// A writer whose current registry is `initial`, the one publishers
    /// start with.
    pub(super) fn new(initial: Arc<Registry>) -> Self {
        Self {
            current: Mutex::new(initial),
            next_id: AtomicU64::new(0),
        }
    }

    /// A new subscriber id: ids grow with subscription order.
    pub(super) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Swaps the registry `change` makes of the current one, if it makes
    /// one, into `published`; returns whether it did.
    pub(super) fn update(
        &self,
        published: &Snapshot<Registry>,
        change: impl FnOnce(&Registry) -> Option<Registry>,
    ) -> bool {
        match self.swap(published, change) {
            Some(replaced) => {
                retire(replaced);
                true
            }
            None => false,
        }
    }

    /// As [`update`](Self::update), leaving the replaced registry to the
    /// caller, to [`retire`] once it holds no lock of the bus (dropping it
    /// may wake a consumer, which runs executor code).
    pub(super) fn swap(
        &self,
        published: &Snapshot<Registry>,
        change: impl FnOnce(&Registry) -> Option<Registry>,
    ) -> Option<Arc<Registry>> {
        let mut current = lock(&self.current);
        let next = Arc::new(change(&current)?);
        published.store(Arc::clone(&next));
        Some(mem::replace(&mut *current, next))
    }
}

/// Drops a replaced registry, outside the writer lock: it may be the last
/// owner of a removed subscriber, whose drop closes its queue and wakes its
/// consumer.
///
/// Publishers that loaded it may still hold it; the writer waits a moment for
/// them to finish so that it frees the registry itself. Otherwise the
/// publisher that lets go last would free it on its hot path, and freeing
/// memory another thread allocated is slow (the allocator's arena lock). The
/// wait is bounded: a descheduled publisher is left to free it, and so is a
/// publisher that holds the registry while its drop callback subscribes or
/// unsubscribes on the same thread (an unbounded wait would deadlock it). The
/// count it watches is only a heuristic; the `Arc` alone decides who frees
/// (design, "Memory orders").
pub(super) fn retire(replaced: Arc<Registry>) {
    if cfg!(not(switchboard_loom)) {
        let backoff = crossbeam_utils::Backoff::new();
        while Arc::strong_count(&replaced) > 1 && !backoff.is_completed() {
            backoff.snooze();
        }
    }
    drop(replaced);
}
