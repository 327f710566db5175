//! Retained events: the latest retained event of each type, kept for
//! subscribers that join late (MQTT's retained messages, a "stateful"
//! emitter).
//!
//! A type here is the pair of an event's Rust type and its type string, so a
//! subscriber filtering by either finds exactly the events it would have
//! received. The store is guarded by the retained lock ([`RetainedStore`]),
//! which a retained publish holds while it updates the store and delivers, and
//! a subscription that asks for retained events holds while it copies them
//! into its queue and registers: so an event published while such a
//! subscription is made reaches it exactly once, as a retained event or live
//! (design, "Retained events"; loom: `loom-tests`).

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::Arc;

use crate::event::Event;
use crate::hash::FastHashBuilder;
use crate::mutants::mutant;
use crate::options::Filter;
use crate::sync::{lock, Mutex, MutexGuard};

use super::delivery::Delivery;
use super::subscriber::{Offer, Subscriber};
use super::writer::{retire, RegistryWriter};

/// The retained lock and the events it guards. Taken after the mode lock
/// and before the writer lock, never the other way round.
#[derive(Default)]
pub(super) struct RetainedStore {
    events: Mutex<RetainedEvents>,
}

/// The latest retained event of each type, and when it was retained.
#[derive(Default)]
pub(crate) struct RetainedEvents {
    by_type: HashMap<TypeId, HashMap<Box<str>, Retained, FastHashBuilder>, FastHashBuilder>,
    /// Orders retained events by when they were retained.
    next_sequence: u64,
}

struct Retained {
    sequence: u64,
    event: Arc<dyn Event>,
}

/// Which retained events a clear forgets.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Clear<'a> {
    /// Those of one Rust type, whatever their type strings.
    RustType(TypeId),
    /// Those whose type string is this, whatever their Rust types.
    Named(&'a str),
    /// Every one.
    All,
}

impl Clear<'_> {
    /// Whether `event` is one of those it forgets.
    pub(super) fn matches(self, event: &dyn Event) -> bool {
        match self {
            Clear::RustType(id) => event.concrete_type_id() == id,
            Clear::Named(name) => event.event_type() == name,
            Clear::All => true,
        }
    }
}

/// What a retained event is the latest of: its Rust type and type string.
pub(super) fn key_of(event: &Arc<dyn Event>) -> (TypeId, Box<str>) {
    (event.concrete_type_id(), event.event_type().into())
}

impl RetainedEvents {
    /// Keeps `event` as the latest of its type; returns the one it replaces,
    /// for the caller to drop outside the lock (dropping an event may run
    /// user code).
    pub(crate) fn retain(&mut self, event: &Arc<dyn Event>) -> Option<Arc<dyn Event>> {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let of_type = self.by_type.entry(event.concrete_type_id()).or_default();
        let retained = Retained {
            sequence,
            event: Arc::clone(event),
        };
        match of_type.get_mut(event.event_type()) {
            Some(slot) => Some(std::mem::replace(slot, retained).event),
            None => {
                of_type.insert(event.event_type().into(), retained);
                None
            }
        }
    }

    /// The retained events `filter` matches, oldest first.
    pub(crate) fn matching(&self, filter: &Filter) -> Vec<Arc<dyn Event>> {
        let mut matching: Vec<&Retained> = match filter {
            Filter::All => self.by_type.values().flat_map(HashMap::values).collect(),
            Filter::EventTypes(names) => self
                .by_type
                .values()
                .flat_map(|of_type| names.iter().filter_map(|name| of_type.get(&**name)))
                .collect(),
            Filter::RustTypes(types) => types
                .ids()
                .filter_map(|id| self.by_type.get(&id))
                .flat_map(HashMap::values)
                .collect(),
        };
        matching.sort_unstable_by_key(|retained| retained.sequence);
        matching
            .iter()
            .map(|retained| Arc::clone(&retained.event))
            .collect()
    }

    /// The latest retained event of Rust type `id`, whatever its type string.
    pub(crate) fn latest_of(&self, id: TypeId) -> Option<Arc<dyn Event>> {
        self.by_type
            .get(&id)?
            .values()
            .max_by_key(|retained| retained.sequence)
            .map(|retained| Arc::clone(&retained.event))
    }

    /// The latest retained event whose type string is `name`, whatever its
    /// Rust type.
    pub(crate) fn latest_named(&self, name: &str) -> Option<Arc<dyn Event>> {
        self.by_type
            .values()
            .filter_map(|of_type| of_type.get(name))
            .max_by_key(|retained| retained.sequence)
            .map(|retained| Arc::clone(&retained.event))
    }

    /// Forgets the retained events `clear` says; returns them, for the
    /// caller to drop outside the lock.
    pub(super) fn clear(&mut self, clear: Clear<'_>) -> Vec<Arc<dyn Event>> {
        match clear {
            Clear::RustType(id) => self.clear_of(id),
            Clear::Named(name) => self.clear_named(name),
            Clear::All => self.clear_all(),
        }
    }

    /// Forgets the retained events of Rust type `id`.
    fn clear_of(&mut self, id: TypeId) -> Vec<Arc<dyn Event>> {
        self.by_type
            .remove(&id)
            .into_iter()
            .flat_map(HashMap::into_values)
            .map(|retained| retained.event)
            .collect()
    }

    /// Forgets the retained events whose type string is `name`.
    fn clear_named(&mut self, name: &str) -> Vec<Arc<dyn Event>> {
        let cleared = self
            .by_type
            .values_mut()
            .filter_map(|of_type| of_type.remove(name))
            .map(|retained| retained.event)
            .collect();
        self.by_type.retain(|_, of_type| !of_type.is_empty());
        cleared
    }

    /// Forgets every retained event.
    fn clear_all(&mut self) -> Vec<Arc<dyn Event>> {
        std::mem::take(&mut self.by_type)
            .into_values()
            .flat_map(HashMap::into_values)
            .map(|retained| retained.event)
            .collect()
    }

    /// How many events are retained.
    pub(crate) fn len(&self) -> usize {
        self.by_type.values().map(HashMap::len).sum()
    }
}

impl RetainedStore {
    /// The retained lock, for the replay (under the mode lock) to retain
    /// events as it delivers them.
    pub(super) fn lock(&self) -> MutexGuard<'_, RetainedEvents> {
        lock(&self.events)
    }

    /// Retains `event` and delivers it, both under the retained lock, so a
    /// subscription taking the retained events meanwhile gets it exactly
    /// once. Drops are reported, and the replaced event dropped, after the
    /// lock is released.
    pub(super) fn deliver_now(&self, delivery: &Delivery, event: Arc<dyn Event>) -> usize {
        let mut missed = Vec::new();
        let (delivered, replaced) = {
            let mut store = self.lock();
            let replaced = store.retain(&event);
            let delivered = delivery.deliver(event, |subscriber, event| {
                missed.push((Arc::clone(subscriber), Arc::clone(event)));
            });
            (delivered, replaced)
        };
        drop(replaced);
        delivery.report_missed(&missed);
        delivered
    }

    /// Registers `subscriber` after queueing the retained events its filter
    /// matches, all under the retained lock: a retained publish is either
    /// entirely before (its event is among those queued) or entirely after
    /// (it is delivered live), never half.
    pub(super) fn register(
        &self,
        delivery: &Delivery,
        writer: &RegistryWriter,
        subscriber: Arc<Subscriber>,
    ) {
        let mut missed = Vec::new();
        let (events, replaced) = {
            let store = self.lock();
            let events = store.matching(&subscriber.state().filter);
            for event in &events {
                if let Offer::Full = subscriber.offer(event) {
                    missed.push((Arc::clone(&subscriber), Arc::clone(event)));
                }
            }
            mutant!((); retained_gap => drop(store));
            let replaced = writer.swap(delivery.registry(), |current| {
                Some(current.with(subscriber))
            });
            (events, replaced)
        };
        if let Some(replaced) = replaced {
            retire(replaced);
        }
        drop(events);
        delivery.count_missed(&missed);
        delivery.report_missed(&missed);
    }

    /// The latest retained event of Rust type `id`.
    pub(super) fn latest_of(&self, id: TypeId) -> Option<Arc<dyn Event>> {
        self.lock().latest_of(id)
    }

    /// The latest retained event whose type string is `name`.
    pub(super) fn latest_named(&self, name: &str) -> Option<Arc<dyn Event>> {
        self.lock().latest_named(name)
    }

    /// Forgets the retained events `clear` says; returns them, for the
    /// caller to drop outside the locks.
    pub(super) fn clear(&self, clear: Clear<'_>) -> Vec<Arc<dyn Event>> {
        self.lock().clear(clear)
    }

    /// How many events are retained.
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }
}
