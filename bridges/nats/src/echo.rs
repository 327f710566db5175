//! Loop prevention for re-exports: the events this bridge imported must not
//! leave through its exporter.
//!
//! The importer checks `ce-source` to skip its own exports, but bus B
//! re-exporting what it imported from bus A would send it back and forth
//! (A skips it as its echo, yet a third bus C would receive it twice). So the
//! importer remembers each event it publishes into the bus, by the address
//! of its allocation, and the exporter skips those.
//!
//! The set holds a [`Weak`] to each event: a `Weak` keeps the allocation
//! (not the value) alive, so the address cannot be reused by another event
//! while the entry exists. Entries whose events are gone (the exporter's
//! queue dropped them, or nobody exported them) are pruned as the set grows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use switchboard::Event;

/// Below this many entries the set is never pruned.
const PRUNE_FLOOR: usize = 1024;

#[derive(Default)]
pub(crate) struct Imported {
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_address: HashMap<usize, Weak<dyn Event>>,
    /// Prune when the set grows past this.
    prune_at: usize,
}

/// The address of the event's allocation (its data pointer, without the vtable).
fn address(event: &Arc<dyn Event>) -> usize {
    Arc::as_ptr(event).cast::<()>() as usize
}

impl Imported {
    /// Remembers an event about to be published into the bus.
    pub(crate) fn insert(&self, event: &Arc<dyn Event>) {
        let mut entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .by_address
            .insert(address(event), Arc::downgrade(event));
        if entries.by_address.len() > entries.prune_at.max(PRUNE_FLOOR) {
            entries.by_address.retain(|_, weak| weak.strong_count() > 0);
            // Doubling keeps pruning amortised O(1) per insert.
            entries.prune_at = entries.by_address.len() * 2;
        }
    }

    /// Whether `event` is one this bridge imported; forgets it (each event
    /// reaches the exporter once).
    pub(crate) fn take(&self, event: &Arc<dyn Event>) -> bool {
        let mut entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        entries.by_address.remove(&address(event)).is_some()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap().by_address.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    /// A unit event: every `Arc` of it is still its own allocation.
    struct Ping;
    impl Event for Ping {
        fn event_type(&self) -> &str {
            "ping"
        }
        fn timestamp(&self) -> SystemTime {
            SystemTime::UNIX_EPOCH
        }
    }

    #[test]
    fn recognises_imported_events_once() {
        let set = Imported::default();
        let imported: Arc<dyn Event> = Arc::new(Ping);
        let local: Arc<dyn Event> = Arc::new(Ping);
        set.insert(&imported);
        assert!(!set.take(&local));
        assert!(set.take(&Arc::clone(&imported)));
        assert!(!set.take(&imported));
    }

    #[test]
    fn an_address_is_not_reused_while_remembered() {
        let set = Imported::default();
        let imported: Arc<dyn Event> = Arc::new(Ping);
        set.insert(&imported);
        let address_of_imported = address(&imported);
        drop(imported);
        // The Weak keeps the allocation: new events land elsewhere.
        for _ in 0..100 {
            let fresh: Arc<dyn Event> = Arc::new(Ping);
            assert_ne!(address(&fresh), address_of_imported);
            assert!(!set.take(&fresh));
        }
    }

    #[test]
    fn dead_entries_are_pruned() {
        let set = Imported::default();
        for _ in 0..10 * PRUNE_FLOOR {
            set.insert(&(Arc::new(Ping) as Arc<dyn Event>));
        }
        assert!(set.len() <= PRUNE_FLOOR + 1, "{}", set.len());
        let alive: Vec<Arc<dyn Event>> = (0..3 * PRUNE_FLOOR)
            .map(|_| Arc::new(Ping) as Arc<dyn Event>)
            .collect();
        for event in &alive {
            set.insert(event);
        }
        assert!(alive.iter().all(|event| set.take(event)));
    }
}
