//! The blocking request: launched, then the calling thread parks until the
//! quorum is met, the deadline passes or the cancel token is cancelled,
//! whichever comes first.

use std::sync::Arc;
use std::thread;
use std::time::Instant;

use crossbeam_utils::Backoff;

use crate::bus::EventBus;
use crate::event::{Request, Response};
use crate::sync::Notify;

use super::gather::{self, Outcome, Terms};
use super::launch::{conclude, launch, Launched};
use super::options::RequestOptions;
use super::outcome::{RequestError, RequestResult};
use super::route::{ResponseRoute, Slot};

/// [`EventBus::request`]: launches `request`, then waits on this thread.
pub(super) fn request<R: Response, Q: Request>(
    bus: &EventBus,
    request: Q,
    options: RequestOptions,
) -> Result<RequestResult<R>, RequestError<R>> {
    let (tally, terms) = gather::prepare::<R>(options)?;
    let route = ResponseRoute::<R>::of(bus);
    let id = request.request_id().into();
    let deadline = terms.deadline_from_now();
    match launch(bus, &route, id, Arc::new(request), tally, &terms) {
        Launched::Ended(result) => result,
        Launched::Waiting(mut ticket) => {
            let outcome = wait(ticket.slot(), &terms, deadline);
            conclude(&mut ticket, outcome, &terms)
        }
    }
}

/// Waits until the quorum, the deadline or a cancellation.
///
/// The thread waits briefly in user space, then parks; the slot's waker
/// unparks it when the quorum is met, and
/// a cancellation reaches it the same way (the token notifies the slot). The
/// deadline is the park's timeout. There is no polling interval; a spurious
/// unpark just loops.
fn wait<R: Response>(slot: &Arc<Slot<R>>, terms: &Terms, deadline: Option<Instant>) -> Outcome {
    let _cancel = terms
        .cancel
        .as_ref()
        .and_then(|token| token.register(Arc::clone(slot) as Arc<dyn Notify>));
    let waker = crate::blocking::thread_waker();
    let backoff = Backoff::new();
    loop {
        if slot.is_met() {
            return Outcome::Met;
        }
        if terms.is_cancelled() {
            return Outcome::Cancelled;
        }
        let now = Instant::now();
        if deadline.is_some_and(|deadline| now >= deadline) {
            return Outcome::TimedOut;
        }
        // On a busy machine a park and its unpark cost tens of microseconds
        // each: wait a little in user space first (spins, then yields: the
        // backoff crossbeam's channels use), since responders often answer
        // within that time.
        if !backoff.is_completed() {
            backoff.snooze();
            continue;
        }
        slot.register(&waker);
        // Re-check after registering: a quorum met or a cancellation made
        // before the registration woke nobody, but is visible now.
        if slot.is_met() || terms.is_cancelled() {
            continue;
        }
        match deadline {
            Some(deadline) => thread::park_timeout(deadline - now),
            None => thread::park(),
        }
    }
}
