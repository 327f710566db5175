//! How responses reach the requests waiting for them, with no subscription
//! per request.
//!
//! Each response type `R` has one long-lived [`ResponseRoute`], made the
//! first time a request for `R` is made and registered once as a subscriber
//! of `R`. A request puts a [`Slot`] (its [`RequestTally`]) into the route's table
//! under its request id *before* it publishes the request, so no response can
//! be missed; a publisher of an `R` then hands it, on the publishing thread,
//! to the slots waiting under its request id. A request makes no registry
//! change.
//!
//! Nothing is lost uncounted: a response either lands in a waiting request's
//! tally, or is counted in the bus's request stats as late (nobody waits
//! under its id, or the request has ended) or ignored (an unexpected
//! responder, or one that had answered already). The table lock is taken
//! before a slot's lock, never the other way round; a request ends by
//! leaving the table, then closing its slot under the slot's lock, so a
//! response offered meanwhile is either in the result or counted late
//! (loom: `loom-tests`, the request models).

use std::collections::HashMap;
use std::mem;
use std::sync::Arc;

use crate::core::RequestCounters;
use crate::core::Route;
use crate::event::{Event, Response};
use crate::hash::FastHashBuilder;
use crate::sync::{lock, AtomicBool, AtomicWaker, Mutex, Notify, Ordering};

use super::gather::RequestTally;

/// The route of one response type: request id to the requests waiting under
/// it.
pub(super) struct ResponseRoute<R> {
    /// Keyed by a fast hash: the table holds only this process's requests in
    /// flight, so a response id chosen to collide costs one lookup, no more.
    waiting: Mutex<HashMap<Arc<str>, Waiting<R>, FastHashBuilder>>,
    counters: Arc<RequestCounters>,
}

/// The requests waiting under one id: almost always one; several when
/// concurrent requests share an id (each gets every response).
enum Waiting<R> {
    One(Arc<Slot<R>>),
    Many(Vec<Arc<Slot<R>>>),
}

impl<R> Waiting<R> {
    fn slots(&self) -> &[Arc<Slot<R>>] {
        match self {
            Waiting::One(slot) => std::slice::from_ref(slot),
            Waiting::Many(slots) => slots,
        }
    }
}

/// One request's tally, shared by the requester and the publishers of its
/// responses.
pub(super) struct Slot<R> {
    /// `None` once the request has ended.
    tally: Mutex<Option<RequestTally<R>>>,
    /// Set once the quorum is met, so the requester can check without the
    /// lock the responders take (a blocking requester spins on it briefly
    /// before it parks).
    met: AtomicBool,
    /// The requester's waker: a task's, or its blocked thread's. Woken when
    /// the quorum is met, by a cancellation and by the timer.
    waker: AtomicWaker,
}

/// What a slot did with a response.
enum Offered {
    /// Counted; `met`: the quorum is met now, and the requester must be woken.
    Counted {
        met: bool,
    },
    Ignored,
    /// The request had ended.
    Late,
}

impl<R: Response> Slot<R> {
    fn new(tally: RequestTally<R>) -> Self {
        Self {
            tally: Mutex::new(Some(tally)),
            met: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        }
    }

    fn offer(&self, response: &Arc<R>) -> Offered {
        let mut tally = lock(&self.tally);
        let Some(open) = tally.as_mut() else {
            return Offered::Late;
        };
        if !open.offer(response) {
            return Offered::Ignored;
        }
        let met = open.is_met();
        if met {
            // Release: whoever sees the flag sees the tally that met it.
            self.met.store(true, Ordering::Release);
        }
        Offered::Counted { met }
    }

    /// Whether the quorum is met.
    pub(super) fn is_met(&self) -> bool {
        self.met.load(Ordering::Acquire)
    }

    /// Registers the requester's waker (the last one registered is woken).
    pub(super) fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    /// Ends the request: from now on every response is late.
    fn close(&self) -> Option<RequestTally<R>> {
        lock(&self.tally).take()
    }
}

impl<R: Send + Sync> Notify for Slot<R> {
    fn notify(&self) {
        self.waker.wake();
    }
}

impl<R: Response> ResponseRoute<R> {
    /// The route for `R` on `bus`, made and registered on first use.
    pub(super) fn of(bus: &crate::EventBus) -> Arc<Self> {
        bus.core().route(
            || format!("responses:{}", std::any::type_name::<R>()),
            || crate::TypeSet::new().with::<R>(),
            |counters| Self {
                waiting: Mutex::new(HashMap::with_hasher(FastHashBuilder)),
                counters,
            },
        )
    }

    /// Puts a request with `tally` under `id`: from now on responses to `id`
    /// reach it. The ticket takes it out again.
    pub(super) fn open(self: &Arc<Self>, id: Arc<str>, tally: RequestTally<R>) -> Ticket<R> {
        let slot = Arc::new(Slot::new(tally));
        let mut waiting = lock(&self.waiting);
        match waiting.get_mut(&id) {
            None => {
                waiting.insert(Arc::clone(&id), Waiting::One(Arc::clone(&slot)));
            }
            Some(entry) => {
                let mut all = mem::replace(entry, Waiting::Many(Vec::new()))
                    .slots()
                    .to_vec();
                all.push(Arc::clone(&slot));
                *entry = Waiting::Many(all);
            }
        }
        drop(waiting);
        Ticket {
            route: Arc::clone(self),
            id,
            slot,
        }
    }

    /// Takes `slot` out of the table.
    fn leave(&self, id: &str, slot: &Arc<Slot<R>>) {
        let mut waiting = lock(&self.waiting);
        let emptied = match waiting.get_mut(id) {
            Some(Waiting::One(only)) => Arc::ptr_eq(only, slot),
            Some(Waiting::Many(slots)) => {
                slots.retain(|other| !Arc::ptr_eq(other, slot));
                slots.is_empty()
            }
            None => false,
        };
        if emptied {
            waiting.remove(id);
        }
    }
}

impl<R: Response> Route for ResponseRoute<R> {
    fn dispatch(&self, event: &Arc<dyn Event>) -> bool {
        let response = Arc::clone(event)
            .downcast_arc::<R>()
            .unwrap_or_else(|_| unreachable!("the bus routes only responses of this type here"));
        let waiting = lock(&self.waiting);
        let Some(entry) = waiting.get(Response::request_id(&*response)) else {
            drop(waiting);
            RequestCounters::add(&self.counters.late_responses);
            return false;
        };
        let mut counted = false;
        // The requests whose quorum this response met, woken once the table
        // lock is released: a waker may run executor code.
        let mut met = Met::None;
        for slot in entry.slots() {
            match slot.offer(&response) {
                Offered::Counted { met: now_met } => {
                    counted = true;
                    if now_met {
                        met.push(slot);
                    }
                }
                Offered::Ignored => RequestCounters::add(&self.counters.ignored_responses),
                Offered::Late => RequestCounters::add(&self.counters.late_responses),
            }
        }
        drop(waiting);
        met.wake();
        counted
    }
}

/// The slots to wake after a dispatch: almost always none or one, kept
/// without allocating.
enum Met<R> {
    None,
    One(Arc<Slot<R>>),
    Many(Vec<Arc<Slot<R>>>),
}

impl<R> Met<R> {
    fn push(&mut self, slot: &Arc<Slot<R>>) {
        *self = match std::mem::replace(self, Met::None) {
            Met::None => Met::One(Arc::clone(slot)),
            Met::One(first) => Met::Many(vec![first, Arc::clone(slot)]),
            Met::Many(mut all) => {
                all.push(Arc::clone(slot));
                Met::Many(all)
            }
        };
    }

    fn wake(self) {
        match self {
            Met::None => {}
            Met::One(slot) => slot.waker.wake(),
            Met::Many(all) => all.iter().for_each(|slot| slot.waker.wake()),
        }
    }
}

/// A request's place in its route; leaving it (by [`Ticket::end`] or on
/// drop) ends the request.
pub(super) struct Ticket<R: Response> {
    route: Arc<ResponseRoute<R>>,
    id: Arc<str>,
    slot: Arc<Slot<R>>,
}

impl<R: Response> Ticket<R> {
    pub(super) fn slot(&self) -> &Arc<Slot<R>> {
        &self.slot
    }

    /// Leaves the route and closes the slot; returns the tally, or `None` if
    /// the request had ended already.
    pub(super) fn end(&mut self) -> Option<RequestTally<R>> {
        self.route.leave(&self.id, &self.slot);
        self.slot.close()
    }

    /// The bus's request counters, to count how the request ended.
    pub(super) fn counters(&self) -> &RequestCounters {
        &self.route.counters
    }
}

impl<R: Response> Drop for Ticket<R> {
    /// A request dropped before it ended (its future dropped): cancelled.
    fn drop(&mut self) {
        if self.end().is_some() {
            RequestCounters::add(&self.route.counters.cancelled);
        }
    }
}
