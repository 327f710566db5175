//! Loom model checks of the request route: responses reach waiting requests
//! through one long-lived route per response type (`src/request/route.rs`).
//!
//! Run with `RUSTFLAGS="--cfg switchboard_loom" cargo test -p loom-tests --release`.
//! Under the cfg, `request_async` runs on loom's primitives; loom has no
//! clock, so these requests end by cancellation or by being dropped, not by
//! a timeout. What they check is design invariant 1 for responses: a
//! response is either in its request's result or counted in the bus's
//! request stats as late, never lost and never counted twice.
#![cfg(switchboard_loom)]

mod support;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use loom::thread;
use switchboard::{
    CancelToken, Event, EventBus, Request, RequestError, RequestOptions, Response, Timestamp,
};

use support::model;

#[derive(Event, Request)]
#[event(type = "ask")]
struct Ask {
    request_id: &'static str,
    timestamp: Timestamp,
}

#[derive(Event, Response)]
#[event(type = "reply")]
#[response(responder = "a")]
struct Reply {
    request_id: &'static str,
    timestamp: Timestamp,
}

struct Noop;
impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

/// A bus whose responder "a" answers the first `Ask` it receives, on its own
/// thread; returns the thread, which yields what `publish` said of its reply.
fn responder(bus: &EventBus) -> thread::JoinHandle<usize> {
    let asks = bus.subscribe_to::<Ask>("a", 1).unwrap();
    let bus = bus.clone();
    thread::spawn(move || {
        let ask = asks.recv().unwrap();
        bus.publish(Reply {
            request_id: ask.request_id,
            timestamp: Timestamp::UNIX_EPOCH,
        })
    })
}

/// A request with a responder is answered: the request waits for responses
/// before it publishes, so even a response published at once reaches it.
/// Once the responder has published, the next poll has the answer.
#[test]
fn a_quick_response_is_never_missed() {
    model("a_quick_response_is_never_missed", || {
        let bus = EventBus::new();
        let answering = responder(&bus);
        bus.start();
        let options = RequestOptions::new(["a"]).timeout(Duration::MAX);
        let mut request = pin!(bus.request_async::<Reply, _>(
            Ask {
                request_id: "r1",
                timestamp: Timestamp::UNIX_EPOCH,
            },
            options,
        ));
        let waker = Waker::from(Arc::new(Noop));
        let mut cx = Context::from_waker(&waker);
        let first = request.as_mut().poll(&mut cx); // publishes the request
        let delivered = answering.join().unwrap();
        let result = match first {
            Poll::Ready(result) => result,
            Poll::Pending => match request.as_mut().poll(&mut cx) {
                Poll::Ready(result) => result,
                Poll::Pending => panic!("the response was missed (publish said {delivered})"),
            },
        };
        assert_eq!(result.expect("answered").responses.len(), 1);
        assert_eq!(delivered, 1);
        let requests = bus.stats().requests;
        assert_eq!((requests.answered, requests.late_responses), (1, 0));
    });
}

/// A response racing its request's cancellation: the request ends with the
/// response in its result exactly when the publish delivered it, and
/// otherwise the response is counted late; it is never lost or counted twice.
#[test]
fn a_response_racing_its_request_s_cancellation_is_in_the_result_or_late() {
    model("a_response_racing_its_request_s_cancellation", || {
        let bus = EventBus::new();
        let answering = responder(&bus);
        bus.start();
        let token = CancelToken::new();
        let options = RequestOptions::new(["a"])
            .timeout(Duration::MAX)
            .cancel_token(token.clone());
        let mut request = pin!(bus.request_async::<Reply, _>(
            Ask {
                request_id: "r1",
                timestamp: Timestamp::UNIX_EPOCH,
            },
            options,
        ));
        // The first poll publishes the request (the responder is subscribed,
        // so it cannot fail for want of responders).
        let waker = Waker::from(Arc::new(Noop));
        let first = request.as_mut().poll(&mut Context::from_waker(&waker));
        let canceller = thread::spawn(move || token.cancel());
        let result = match first {
            Poll::Ready(result) => result,
            Poll::Pending => loom::future::block_on(request),
        };
        let delivered = answering.join().unwrap();
        canceller.join().unwrap();

        let in_result = match &result {
            Ok(result) => result.responses.len(),
            Err(RequestError::Cancelled { partial, .. }) => partial.responses.len(),
            Err(other) => panic!("unexpected {other:?}"),
        };
        let requests = bus.stats().requests;
        assert_eq!(
            in_result, delivered,
            "publish said {delivered}, the result holds {in_result}"
        );
        assert_eq!(
            in_result as u64 + requests.late_responses,
            1,
            "the response is in the result or late, once: {requests:?}"
        );
        assert_eq!(requests.answered + requests.cancelled, 1, "{requests:?}");
    });
}

/// A request dropped (so ended) while its response is being dispatched: the
/// response is taken by the request (publish returns 1) or counted late,
/// exactly one of the two, and the request is counted as cancelled.
#[test]
fn a_request_dropped_while_its_response_is_dispatched_counts_it_once() {
    model("a_request_dropped_while_its_response_is_dispatched", || {
        let bus = EventBus::new();
        let answering = responder(&bus);
        bus.start();
        let options = RequestOptions::new(["a"]).timeout(Duration::MAX);
        let mut request = Box::pin(bus.request_async::<Reply, _>(
            Ask {
                request_id: "r1",
                timestamp: Timestamp::UNIX_EPOCH,
            },
            options,
        ));
        let waker = Waker::from(Arc::new(Noop));
        let first = request.as_mut().poll(&mut Context::from_waker(&waker));
        drop(request);
        let delivered = answering.join().unwrap() as u64;

        let requests = bus.stats().requests;
        assert_eq!(
            delivered + requests.late_responses,
            1,
            "taken or late, once: delivered {delivered}, {requests:?}"
        );
        let ended = requests.answered + requests.cancelled;
        assert_eq!(ended, 1, "{first:?} {requests:?}");
    });
}
