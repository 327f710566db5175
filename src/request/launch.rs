//! The steps both forms of a request share: start waiting, publish, and
//! conclude with the result and its count.

use std::sync::Arc;

use crate::bus::EventBus;
use crate::core::{Published, RequestCounters};
use crate::event::{Event, Response};

use super::gather::{self, Outcome, RequestTally, Terms};
use super::outcome::{RequestError, RequestResult};
use super::route::{ResponseRoute, Ticket};

/// What launching a request did.
pub(super) enum Launched<R: Response> {
    /// It is published and waiting for its responses.
    Waiting(Ticket<R>),
    /// It ended before it had to wait: cancelled already, or no responders.
    Ended(Result<RequestResult<R>, RequestError<R>>),
}

/// Starts waiting under `id`, then publishes `request`: in that order, so no
/// response can be missed. A request cancelled already is not published; one
/// that reaches no subscriber on a running bus ends at once.
pub(super) fn launch<R: Response>(
    bus: &EventBus,
    route: &Arc<ResponseRoute<R>>,
    id: Arc<str>,
    request: Arc<dyn Event>,
    tally: RequestTally<R>,
    terms: &Terms,
) -> Launched<R> {
    // The mutant (a loom-tests self-check) publishes before it waits, so a
    // quick response finds nobody waiting and is counted late.
    #[cfg(switchboard_mutant_publish_before_waiting)]
    let published = bus.core().publish_for_outcome(Arc::clone(&request));
    let mut ticket = route.open(id, tally);
    if terms.is_cancelled() {
        return Launched::Ended(conclude(&mut ticket, Outcome::Cancelled, terms));
    }
    #[cfg(not(switchboard_mutant_publish_before_waiting))]
    let published = bus.core().publish_for_outcome(request);
    match published {
        Published::Delivered(0) => {
            Launched::Ended(conclude(&mut ticket, Outcome::NoResponders, terms))
        }
        Published::Delivered(_) | Published::Buffered => Launched::Waiting(ticket),
    }
}

/// Ends the request with `outcome` (or met, if the quorum was met by then)
/// and counts how it ended.
pub(super) fn conclude<R: Response>(
    ticket: &mut Ticket<R>,
    outcome: Outcome,
    terms: &Terms,
) -> Result<RequestResult<R>, RequestError<R>> {
    let tally = ticket
        .end()
        .unwrap_or_else(|| unreachable!("a request is concluded once"));
    let result = gather::settle(tally, outcome, terms.timeout);
    let counters = ticket.counters();
    RequestCounters::add(match &result {
        Ok(_) => &counters.answered,
        Err(RequestError::Timeout { .. }) => &counters.timed_out,
        Err(RequestError::Cancelled { .. }) => &counters.cancelled,
        Err(RequestError::NoResponders { .. }) => &counters.no_responders,
        Err(RequestError::InvalidOptions(_)) => {
            unreachable!("options are validated before a request starts")
        }
    });
    result
}
