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
use crate::sync::Ordering;

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
}

fn position_of(subscribers: &[Arc<Subscriber>], id: u64) -> Option<usize> {
    subscribers.iter().position(|s| s.state().id == id)
}

/// The two parts of a registry, which change independently.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Universal,
    Typed,
}

/// Whether the subscriber's subscription was dropped: its entry stays until
/// the next registry change (see `BusCore::abandon`). `Relaxed`: marked under
/// the writer lock, which orders it for every writer; other readers only
/// count (design, "Memory orders").
fn is_abandoned(subscriber: &Arc<Subscriber>) -> bool {
    subscriber.state().abandoned.load(Ordering::Relaxed)
}

fn any_abandoned(subscribers: &[Arc<Subscriber>]) -> bool {
    subscribers.iter().any(is_abandoned)
}

/// The entries that are not abandoned, with room for `extra` more.
fn live(subscribers: &[Arc<Subscriber>], extra: usize) -> Vec<Arc<Subscriber>> {
    let mut live = Vec::with_capacity(subscribers.len() + extra);
    live.extend(subscribers.iter().filter(|s| !is_abandoned(s)).cloned());
    live
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

    /// This registry with `edit` applied to one part's subscribers (or to
    /// neither), and without the abandoned entries of either part: every
    /// registry change also compacts. A part that neither changes nor holds
    /// an abandoned entry is shared (typed) or copied as it is (universal).
    fn rebuilt(&self, part: Option<Part>, edit: impl FnOnce(&mut Vec<Arc<Subscriber>>)) -> Self {
        let mut edit = Some(edit);
        let mut apply = |list: &mut Vec<Arc<Subscriber>>| {
            if let Some(edit) = edit.take() {
                edit(list);
            }
        };
        let edits_universal = part == Some(Part::Universal);
        let universal = if edits_universal || any_abandoned(&self.universal) {
            let mut list = live(&self.universal, usize::from(edits_universal));
            if edits_universal {
                apply(&mut list);
            }
            list
        } else {
            self.universal.clone()
        };
        let edits_typed = part == Some(Part::Typed);
        let typed = if edits_typed || any_abandoned(&self.typed.subscribers) {
            let mut list = live(&self.typed.subscribers, usize::from(edits_typed));
            if edits_typed {
                apply(&mut list);
            }
            Arc::new(TypedIndex::from_subscribers(list))
        } else {
            Arc::clone(&self.typed)
        };
        Self::from_parts(universal, typed)
    }

    /// Which part holds the subscriber with `id`, if any.
    fn part_of(&self, id: u64) -> Option<Part> {
        if position_of(&self.universal, id).is_some() {
            Some(Part::Universal)
        } else if position_of(&self.typed.subscribers, id).is_some() {
            Some(Part::Typed)
        } else {
            None
        }
    }

    /// This registry plus `subscriber`.
    pub(crate) fn with(&self, subscriber: Arc<Subscriber>) -> Self {
        let part = match subscriber.state().filter {
            Filter::All => Part::Universal,
            _ => Part::Typed,
        };
        self.rebuilt(Some(part), |all| all.push(subscriber))
    }

    /// This registry less the subscriber with `id`, or `None` if it has none.
    pub(crate) fn without(&self, id: u64) -> Option<Self> {
        let part = self.part_of(id)?;
        Some(self.rebuilt(Some(part), |all| all.retain(|s| s.state().id != id)))
    }

    /// This registry with the subscriber `id` waking its consumer, or `None`
    /// if it has no such subscriber or it already does.
    pub(crate) fn with_wakeups_for(&self, id: u64) -> Option<Self> {
        let part = self.part_of(id)?;
        let list = match part {
            Part::Universal => &self.universal,
            Part::Typed => &self.typed.subscribers,
        };
        if list
            .iter()
            .any(|s| s.state().id == id && s.wakes_consumer())
        {
            return None;
        }
        Some(self.rebuilt(Some(part), |all| {
            for subscriber in all.iter_mut().filter(|s| s.state().id == id) {
                *subscriber = Arc::new(subscriber.with_wakeups());
            }
        }))
    }

    /// This registry without its abandoned entries, or `None` if it has none.
    pub(crate) fn compacted(&self) -> Option<Self> {
        (any_abandoned(&self.universal) || any_abandoned(&self.typed.subscribers))
            .then(|| self.rebuilt(None, |_| {}))
    }

    /// How many entries are abandoned and wait for the next change.
    pub(crate) fn abandoned(&self) -> usize {
        self.all().filter(|s| is_abandoned(s)).count()
    }

    pub(crate) fn contains(&self, id: u64) -> bool {
        self.all().any(|s| s.state().id == id && !is_abandoned(s))
    }

    /// How many user subscriptions are live (not the crate's own routes).
    pub(crate) fn len(&self) -> usize {
        self.all()
            .filter(|s| !is_abandoned(s) && !s.state().routed)
            .count()
    }

    /// How many live user subscribers match an event with this type string
    /// and this Rust type (`None`: that index is not asked). Reads the indexes
    /// only: no allocation.
    pub(crate) fn listeners(&self, event_type: Option<&str>, type_id: Option<TypeId>) -> usize {
        let by_event_type = event_type
            .filter(|_| self.any_by_event_type)
            .and_then(|name| self.typed.by_event_type.get(name))
            .map_or(&[][..], Bucket::as_slice);
        let by_rust_type = type_id
            .filter(|_| self.any_by_rust_type)
            .and_then(|id| self.typed.by_rust_type.get(&id))
            .map_or(&[][..], Bucket::as_slice);
        self.universal
            .iter()
            .chain(by_event_type)
            .chain(by_rust_type)
            .filter(|s| !is_abandoned(s) && !s.state().routed)
            .count()
    }

    fn all(&self) -> impl Iterator<Item = &Arc<Subscriber>> {
        self.universal.iter().chain(&self.typed.subscribers)
    }

    /// Every live subscriber, in subscription order (ids grow with it).
    pub(crate) fn subscribers(&self) -> Vec<&Arc<Subscriber>> {
        let mut all: Vec<_> = self.all().filter(|s| !is_abandoned(s)).collect();
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
