//! The immutable subscriber registry that `publish` reads through a snapshot.
//!
//! A registry is never modified in place: subscribe and unsubscribe build a new
//! one and swap it in, so publishers read it without taking any lock. Its three
//! indexes let a publish visit only the subscribers that match the event.
//!
//! Building the next registry copies only what changes: the list of universal
//! subscribers, or the typed indexes (shared by `Arc` between registries while
//! no typed subscriber comes or goes).

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::Arc;

use super::subscriber::Subscriber;
use crate::event::Event;
use crate::hash::FastHashBuilder;
use crate::options::Filter;
use crate::padding::CountsGap;

#[derive(Default)]
pub(crate) struct Registry {
    /// Subscribers without a type filter, in subscription order.
    universal: Vec<Arc<Subscriber>>,
    typed: Arc<TypedIndex>,
    /// Copies of "the typed index has entries", so that a publish on a bus
    /// without typed subscribers never reads the typed index.
    any_by_event_type: bool,
    any_by_rust_type: bool,
}

/// The subscribers with a type filter and the indexes over them.
///
/// Shared between registries by `Arc`, whose reference counts every registry
/// change writes; the leading gap keeps them off the cache lines of the maps
/// publishers read (see `padding`).
#[derive(Default)]
#[repr(C)]
struct TypedIndex {
    _gap: CountsGap,
    /// In subscription order.
    subscribers: Vec<Arc<Subscriber>>,
    by_event_type: HashMap<Box<str>, Bucket, FastHashBuilder>,
    by_rust_type: HashMap<TypeId, Bucket, FastHashBuilder>,
}

/// The subscribers of one type. Most types have one, kept inline so a typed
/// publish follows one pointer less.
enum Bucket {
    One(Arc<Subscriber>),
    Many(Vec<Arc<Subscriber>>),
}

impl Bucket {
    fn push(&mut self, subscriber: &Arc<Subscriber>) {
        match self {
            Bucket::One(first) => {
                *self = Bucket::Many(vec![Arc::clone(first), Arc::clone(subscriber)]);
            }
            Bucket::Many(all) => all.push(Arc::clone(subscriber)),
        }
    }

    #[inline]
    fn as_slice(&self) -> &[Arc<Subscriber>] {
        match self {
            Bucket::One(subscriber) => std::slice::from_ref(subscriber),
            Bucket::Many(all) => all,
        }
    }
}

/// The subscribers one event goes to, as three disjoint slices: universal,
/// by event-type string, by Rust type.
pub(crate) struct Matching<'a>([&'a [Arc<Subscriber>]; 3]);

impl<'a> Matching<'a> {
    /// The last subscriber and the others, or `None` if there are none; the
    /// last one gets the caller's event instead of a clone.
    ///
    /// Written slice by slice rather than as a loop over the array: writing
    /// one length back into the array and then copying the array out is
    /// another store-forwarding stall.
    #[inline(always)]
    pub(crate) fn split_last(self) -> Option<(&'a Arc<Subscriber>, Self)> {
        let Matching([universal, by_event_type, by_rust_type]) = self;
        if let Some((last, rest)) = by_rust_type.split_last() {
            return Some((last, Matching([universal, by_event_type, rest])));
        }
        if let Some((last, rest)) = by_event_type.split_last() {
            return Some((last, Matching([universal, rest, &[]])));
        }
        let (last, rest) = universal.split_last()?;
        Some((last, Matching([rest, &[], &[]])))
    }

    #[inline(always)]
    pub(crate) fn parts(&self) -> [&'a [Arc<Subscriber>]; 3] {
        self.0
    }
}

impl TypedIndex {
    fn from_subscribers(subscribers: Vec<Arc<Subscriber>>) -> Self {
        // Sized up front: one allocation per map instead of one per doubling.
        let (mut names, mut types) = (0, 0);
        for subscriber in &subscribers {
            match &subscriber.state().filter {
                Filter::All => {}
                Filter::EventTypes(list) => names += list.len(),
                Filter::RustTypes(set) => types += set.ids().count(),
            }
        }
        let mut index = TypedIndex {
            _gap: CountsGap::new(),
            subscribers,
            by_event_type: HashMap::with_capacity_and_hasher(names, FastHashBuilder),
            by_rust_type: HashMap::with_capacity_and_hasher(types, FastHashBuilder),
        };
        for subscriber in &index.subscribers {
            match &subscriber.state().filter {
                Filter::All => unreachable!("universal subscribers are not indexed by type"),
                Filter::EventTypes(names) => {
                    for name in names {
                        // Look up first: the key is copied only for a new name.
                        match index.by_event_type.get_mut(&**name) {
                            Some(bucket) => bucket.push(subscriber),
                            None => {
                                index
                                    .by_event_type
                                    .insert(name.clone(), Bucket::One(Arc::clone(subscriber)));
                            }
                        }
                    }
                }
                Filter::RustTypes(types) => {
                    for id in types.ids() {
                        index
                            .by_rust_type
                            .entry(id)
                            .and_modify(|bucket| bucket.push(subscriber))
                            .or_insert_with(|| Bucket::One(Arc::clone(subscriber)));
                    }
                }
            }
        }
        index
    }

    /// The typed subscribers with `change` applied, re-indexed.
    fn rebuilt(&self, change: impl FnOnce(&mut Vec<Arc<Subscriber>>)) -> Self {
        let mut subscribers = self.subscribers.clone();
        change(&mut subscribers);
        Self::from_subscribers(subscribers)
    }
}

fn position_of(subscribers: &[Arc<Subscriber>], id: u64) -> Option<usize> {
    subscribers.iter().position(|s| s.state().id == id)
}

impl Registry {
    fn from_parts(universal: Vec<Arc<Subscriber>>, typed: Arc<TypedIndex>) -> Self {
        Registry {
            universal,
            any_by_event_type: !typed.by_event_type.is_empty(),
            any_by_rust_type: !typed.by_rust_type.is_empty(),
            typed,
        }
    }

    fn with_universal(&self, universal: Vec<Arc<Subscriber>>) -> Self {
        Self::from_parts(universal, Arc::clone(&self.typed))
    }

    fn with_typed(&self, typed: TypedIndex) -> Self {
        Self::from_parts(self.universal.clone(), Arc::new(typed))
    }

    /// This registry plus `subscriber`.
    pub(crate) fn with(&self, subscriber: Arc<Subscriber>) -> Self {
        if matches!(subscriber.state().filter, Filter::All) {
            let mut universal = Vec::with_capacity(self.universal.len() + 1);
            universal.extend(self.universal.iter().cloned());
            universal.push(subscriber);
            self.with_universal(universal)
        } else {
            self.with_typed(self.typed.rebuilt(|all| all.push(subscriber)))
        }
    }

    /// This registry less the subscriber with `id`, or `None` if it has none.
    pub(crate) fn without(&self, id: u64) -> Option<Self> {
        if let Some(position) = position_of(&self.universal, id) {
            let mut universal = self.universal.clone();
            universal.remove(position);
            return Some(self.with_universal(universal));
        }
        let position = position_of(&self.typed.subscribers, id)?;
        Some(self.with_typed(self.typed.rebuilt(|all| {
            all.remove(position);
        })))
    }

    /// This registry with the subscriber `id` waking its consumer, or `None`
    /// if it has no such subscriber or it already does.
    pub(crate) fn with_wakeups_for(&self, id: u64) -> Option<Self> {
        let waking = |all: &mut Vec<Arc<Subscriber>>, position: usize| {
            all[position] = Arc::new(all[position].with_wakeups());
        };
        if let Some(position) = position_of(&self.universal, id) {
            if self.universal[position].wakes_consumer() {
                return None;
            }
            let mut universal = self.universal.clone();
            waking(&mut universal, position);
            return Some(self.with_universal(universal));
        }
        let position = position_of(&self.typed.subscribers, id)?;
        if self.typed.subscribers[position].wakes_consumer() {
            return None;
        }
        Some(self.with_typed(self.typed.rebuilt(|all| waking(all, position))))
    }

    pub(crate) fn contains(&self, id: u64) -> bool {
        position_of(&self.universal, id).is_some()
            || position_of(&self.typed.subscribers, id).is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.universal.len() + self.typed.subscribers.len()
    }

    /// Every subscriber, in subscription order (ids grow with it).
    pub(crate) fn subscribers(&self) -> Vec<&Arc<Subscriber>> {
        let mut all: Vec<_> = self
            .universal
            .iter()
            .chain(&self.typed.subscribers)
            .collect();
        all.sort_unstable_by_key(|s| s.state().id);
        all
    }

    /// The subscribers `event` goes to. Costs one hash lookup per non-empty
    /// index, and nothing for an index no subscriber uses.
    ///
    /// Inlined into the publish: as a call, its result goes through the stack
    /// and is read back with wider loads than it was written with, which
    /// stalls the publish on store forwarding.
    #[inline(always)]
    pub(crate) fn matching(&self, event: &dyn Event) -> Matching<'_> {
        let by_event_type = if self.any_by_event_type {
            self.typed
                .by_event_type
                .get(event.event_type())
                .map_or(&[][..], Bucket::as_slice)
        } else {
            &[]
        };
        let by_rust_type = if self.any_by_rust_type {
            self.typed
                .by_rust_type
                .get(&event.concrete_type_id())
                .map_or(&[][..], Bucket::as_slice)
        } else {
            &[]
        };
        Matching([&self.universal, by_event_type, by_rust_type])
    }
}
