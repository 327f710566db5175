//! The blocking wait: parks the calling thread until the quorum is met, the
//! deadline passes or the cancel token is cancelled, whichever comes first.

use std::time::Instant;

use crossbeam_channel::Select;

use crate::error::{RecvTimeoutError, TryRecvError};
use crate::event::Response;
use crate::subscription::TypedSubscription;

use super::gather::{Gather, Outcome};

/// Waits for responses until the quorum, the deadline or a cancellation.
///
/// Without a cancel token, the thread waits in a plain receive on the
/// response queue with the deadline. With one, it waits on the response queue
/// and the token's channel at once (a crossbeam `Select`). Either way a
/// response, a cancellation and the deadline each wake it directly: there is
/// no polling interval.
pub(super) fn wait<R: Response>(
    subscription: &TypedSubscription<R>,
    gather: &mut Gather<R>,
    deadline: Option<Instant>,
) -> Outcome {
    let token = gather.cancel_token().cloned();
    let mut select = token.as_ref().map(|token| {
        let mut select = Select::new();
        select.recv(subscription.as_untyped().receiver());
        select.recv(token.receiver());
        select
    });
    // The request is ending with `outcome`: take the responses queued until
    // now first. A response that arrived before the cancellation or the
    // deadline was seen still counts, and may even complete the quorum.
    let last_drain = |gather: &mut Gather<R>, outcome| {
        if drain(subscription, gather) {
            Outcome::Met
        } else {
            outcome
        }
    };
    loop {
        if drain(subscription, gather) {
            return Outcome::Met;
        }
        if gather.is_cancelled() {
            return last_drain(gather, Outcome::Cancelled);
        }
        // Checked here too, not only by the waits below: `ready_deadline`
        // reports a ready operation even past the deadline, so a steady stream
        // of responses to other requests could otherwise hold this one open.
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return last_drain(gather, Outcome::TimedOut);
        }
        match (&mut select, deadline) {
            (None, Some(deadline)) => match subscription.recv_deadline(deadline) {
                Ok(response) => {
                    if gather.accept(response) {
                        return Outcome::Met;
                    }
                }
                Err(RecvTimeoutError::Timeout) => return last_drain(gather, Outcome::TimedOut),
                Err(RecvTimeoutError::Closed) => closed(),
            },
            (None, None) => match subscription.recv() {
                Ok(response) => {
                    if gather.accept(response) {
                        return Outcome::Met;
                    }
                }
                Err(_) => closed(),
            },
            // `ready` reports that an operation would not block; the loop
            // then takes what is there. A stale readiness just loops again.
            (Some(select), None) => {
                select.ready();
            }
            (Some(select), Some(deadline)) => {
                if select.ready_deadline(deadline).is_err() {
                    return last_drain(gather, Outcome::TimedOut);
                }
            }
        }
    }
}

fn closed() -> ! {
    unreachable!("a request holds its bus, so its response subscription cannot close")
}

/// Takes the queued responses; returns whether the quorum is met.
///
/// Takes at most a buffer's worth, so that responses published faster than
/// they are taken cannot keep the caller from checking its deadline and
/// cancellation: the loop comes back for the rest at once.
fn drain<R: Response>(subscription: &TypedSubscription<R>, gather: &mut Gather<R>) -> bool {
    for _ in 0..subscription.capacity().max(1) {
        match subscription.try_recv() {
            Ok(response) => {
                if gather.accept(response) {
                    return true;
                }
            }
            Err(TryRecvError::Empty) => return gather.is_met(),
            Err(TryRecvError::Closed) => closed(),
        }
    }
    false
}
