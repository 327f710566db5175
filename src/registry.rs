//! The immutable subscriber registry that `publish` reads through a snapshot.
//!
//! A registry is never modified in place: subscribe and unsubscribe build a new
//! one and swap it in, so publishers read it without taking any lock. Its three
//! indexes let a publish visit only the subscribers that match the event.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::Arc;

use crate::event::Event;
use crate::hash::FastHashBuilder;
use crate::options::Filter;
use crate::subscriber::Subscriber;

type Index<K> = HashMap<K, Vec<Arc<Subscriber>>, FastHashBuilder>;

#[derive(Default)]
pub(crate) struct Registry {
    /// Every subscriber, in subscription order.
    all: Vec<Arc<Subscriber>>,
    universal: Vec<Arc<Subscriber>>,
    by_event_type: Index<Box<str>>,
    by_rust_type: Index<TypeId>,
}

/// The subscribers one event goes to, as up to three disjoint slices.
pub(crate) struct Matching<'a> {
    universal: &'a [Arc<Subscriber>],
    by_event_type: &'a [Arc<Subscriber>],
    by_rust_type: &'a [Arc<Subscriber>],
}

impl<'a> Matching<'a> {
    #[inline]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &'a Arc<Subscriber>> {
        self.universal
            .iter()
            .chain(self.by_event_type)
            .chain(self.by_rust_type)
    }
}

impl Registry {
    fn from_subscribers(all: Vec<Arc<Subscriber>>) -> Self {
        let mut registry = Registry {
            all,
            ..Registry::default()
        };
        for subscriber in &registry.all {
            match &subscriber.state().filter {
                Filter::All => registry.universal.push(Arc::clone(subscriber)),
                Filter::EventTypes(names) => {
                    for name in names {
                        registry
                            .by_event_type
                            .entry(name.clone())
                            .or_default()
                            .push(Arc::clone(subscriber));
                    }
                }
                Filter::RustTypes(types) => {
                    for id in types.ids() {
                        registry
                            .by_rust_type
                            .entry(id)
                            .or_default()
                            .push(Arc::clone(subscriber));
                    }
                }
            }
        }
        registry
    }

    /// This registry plus `subscriber`.
    pub(crate) fn with(&self, subscriber: Arc<Subscriber>) -> Self {
        let mut all = Vec::with_capacity(self.all.len() + 1);
        all.extend(self.all.iter().cloned());
        all.push(subscriber);
        Self::from_subscribers(all)
    }

    /// This registry less the subscriber with `id`, or `None` if it has none.
    pub(crate) fn without(&self, id: u64) -> Option<Self> {
        let position = self.all.iter().position(|s| s.state().id == id)?;
        let mut all = self.all.clone();
        all.remove(position);
        Some(Self::from_subscribers(all))
    }

    /// This registry with the subscriber `id` waking its consumer, or `None`
    /// if it has no such subscriber or it already does.
    pub(crate) fn with_wakeups_for(&self, id: u64) -> Option<Self> {
        let position = self.all.iter().position(|s| s.state().id == id)?;
        if self.all[position].wakes_consumer() {
            return None;
        }
        let mut all = self.all.clone();
        all[position] = Arc::new(all[position].with_wakeups());
        Some(Self::from_subscribers(all))
    }

    pub(crate) fn contains(&self, id: u64) -> bool {
        self.all.iter().any(|s| s.state().id == id)
    }

    pub(crate) fn subscribers(&self) -> &[Arc<Subscriber>] {
        &self.all
    }

    /// The subscribers `event` goes to. Costs one hash lookup per non-empty
    /// index, and nothing for an index no subscriber uses.
    #[inline]
    pub(crate) fn matching(&self, event: &dyn Event) -> Matching<'_> {
        let by_event_type = if self.by_event_type.is_empty() {
            &[][..]
        } else {
            self.by_event_type
                .get(event.event_type())
                .map_or(&[][..], Vec::as_slice)
        };
        let by_rust_type = if self.by_rust_type.is_empty() {
            &[][..]
        } else {
            self.by_rust_type
                .get(&event.concrete_type_id())
                .map_or(&[][..], Vec::as_slice)
        };
        Matching {
            universal: &self.universal,
            by_event_type,
            by_rust_type,
        }
    }
}
