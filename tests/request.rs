//! Scatter-gather requests: quorum, partial results on timeout and
//! cancellation, concurrent requests, option errors, buffering before
//! `start`, the async form on tokio, smol and `futures::executor::block_on`,
//! no response subscription left behind, and `CancelToken::cancelled` on a
//! plain thread and in async code.
//!
//! Responders are threads holding a `TypedSubscription` to the request type
//! that publish `Verdict` responses. Nothing asserts on timing: every wait is
//! bounded (`GUARD`, `WITHIN`), so a lost wake-up or a broken timeout fails a
//! test instead of hanging it. Where a test needs responses to arrive before
//! something else happens (a cancellation), the responders say so on a
//! channel instead of the test sleeping.
//!
//! Requests with a timeout of `GUARD` are expected to succeed (the bound is
//! never reached); a test step that runs one is bounded by `WITHIN`.

#![cfg(feature = "derive")]

mod common;

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use common::{wait_until, within, GUARD, WITHIN};
use switchboard::{
    CancelToken, Event, EventBus, Request, RequestError, RequestOptions, RequestOptionsError,
    RequestResult, Response, SubscriberKind, Timestamp, TypedSubscription,
};

/// The timeout of requests that are expected to time out: long enough for the
/// responders that do answer to have answered by then.
const SHORT: Duration = Duration::from_secs(1);

/// The request: check a configuration, identified by `id`.
#[derive(Debug, Event, Request)]
#[event(type = "config.check")]
struct Check {
    #[request(id)]
    id: String,
    payload: u64,
    timestamp: Timestamp,
}

fn check(id: impl Into<String>, payload: u64) -> Check {
    Check {
        id: id.into(),
        payload,
        timestamp: Timestamp::now(),
    }
}

/// The response: a responder's verdict, echoing the request's payload.
#[derive(Debug, Event, Response)]
#[event(type = "config.verdict")]
struct Verdict {
    request_id: String,
    responder: String,
    payload: u64,
    timestamp: Timestamp,
}

fn verdict(request: &Check, responder: &str) -> Verdict {
    Verdict {
        request_id: request.id.clone(),
        responder: responder.into(),
        payload: request.payload,
        timestamp: Timestamp::now(),
    }
}

/// A responder thread: runs `behaviour` on every request it receives until
/// dropped, which unsubscribes it and joins the thread.
struct Responder {
    requests: Arc<TypedSubscription<Check>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Responder {
    fn spawn(
        bus: &EventBus,
        name: &'static str,
        mut behaviour: impl FnMut(&EventBus, &Arc<Check>) + Send + 'static,
    ) -> Self {
        let requests = Arc::new(bus.subscribe_to::<Check>(name, 64).unwrap());
        let thread = {
            let requests = Arc::clone(&requests);
            let bus = bus.clone();
            thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    for request in requests.iter() {
                        behaviour(&bus, &request);
                    }
                })
                .unwrap()
        };
        Self {
            requests,
            thread: Some(thread),
        }
    }

    /// Answers every request once.
    fn answering(bus: &EventBus, name: &'static str) -> Self {
        Self::spawn(bus, name, move |bus, request| {
            bus.publish(verdict(request, name));
        })
    }

    /// Answers every request once, then sends its name on `answered`.
    fn answering_and_telling(
        bus: &EventBus,
        name: &'static str,
        answered: mpsc::Sender<&'static str>,
    ) -> Self {
        Self::spawn(bus, name, move |bus, request| {
            bus.publish(verdict(request, name));
            let _ = answered.send(name);
        })
    }

    /// Receives requests and never answers.
    fn silent(bus: &EventBus, name: &'static str) -> Self {
        Self::spawn(bus, name, |_, _| {})
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.requests.unsubscribe();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() && !thread::panicking() {
                panic!("a responder thread panicked");
            }
        }
    }
}

/// A started bus with responders `a` and `b` answering and `c` silent.
fn two_of_three() -> (EventBus, [Responder; 3]) {
    let bus = EventBus::new();
    let responders = [
        Responder::answering(&bus, "a"),
        Responder::answering(&bus, "b"),
        Responder::silent(&bus, "c"),
    ];
    bus.start();
    (bus, responders)
}

fn responders_of(result: &RequestResult<Verdict>) -> BTreeSet<&str> {
    result.responses.iter().map(|r| r.responder()).collect()
}

/// The request left nothing behind: only the responders' subscriptions remain,
/// none of them a request's response subscription, and nothing was dropped.
#[track_caller]
/// The bus has the responders' subscriptions, at most the one route of the
/// response type (requests subscribe to nothing themselves), and dropped
/// nothing.
fn assert_clean(bus: &EventBus, responders: usize) {
    let stats = bus.stats();
    let routes = stats
        .subscribers
        .iter()
        .filter(|s| s.kind == SubscriberKind::Route)
        .count();
    assert!(routes <= 1, "one route per response type: {stats}");
    assert_eq!(
        stats.subscribers.len() - routes,
        responders,
        "subscriptions left behind: {stats}"
    );
    assert_eq!(bus.stats().dropped(), 0, "events were dropped: {stats}");
}

/// Polls `future` once with a waker that does nothing.
fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

// ---------------------------------------------------------------------------
// The blocking request.

#[test]
fn all_expected_responders_answer() {
    let bus = EventBus::new();
    let responders = ["a", "b", "c"].map(|name| Responder::answering(&bus, name));
    bus.start();

    let options = RequestOptions::new(["a", "b", "c"]).timeout(GUARD);
    let result = bus.request::<Verdict, _>(check("r1", 7), options).unwrap();

    assert_eq!(responders_of(&result), BTreeSet::from(["a", "b", "c"]));
    assert_eq!(result.responses.len(), 3);
    assert!(result
        .responses
        .iter()
        .all(|r| r.request_id == "r1" && r.payload == 7));
    assert!(result.errors.is_empty());
    assert!(result.missing.is_empty());
    assert!(result.is_complete());
    assert_eq!(result.response_from("b").unwrap().responder, "b");
    assert_clean(&bus, responders.len());
}

#[test]
fn timeout_returns_the_partial_result() {
    let (bus, responders) = two_of_three();

    let options = RequestOptions::new(["a", "b", "c"]).timeout(2 * SHORT);
    let error = bus
        .request::<Verdict, _>(check("r1", 1), options)
        .unwrap_err();

    let message = error.to_string();
    match error {
        RequestError::Timeout {
            timeout,
            required,
            partial,
        } => {
            assert_eq!(timeout, 2 * SHORT);
            assert_eq!(required, 3);
            assert_eq!(responders_of(&partial), BTreeSet::from(["a", "b"]));
            assert_eq!(partial.errors, ["no response from c"]);
            assert_eq!(partial.missing, ["c"]);
            assert!(!partial.is_complete());
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        message.contains("2 of 3 required responses (no response from c)"),
        "{message}"
    );
    assert_clean(&bus, responders.len());
}

#[test]
fn min_responses_returns_once_the_quorum_answers() {
    let (bus, responders) = two_of_three();

    // `c` never answers: only returning at the quorum makes this succeed
    // (waiting for all three would end in a timeout).
    let options = RequestOptions::new(["a", "b", "c"])
        .min_responses(2)
        .timeout(GUARD);
    let result = bus.request::<Verdict, _>(check("r1", 1), options).unwrap();

    assert_eq!(responders_of(&result), BTreeSet::from(["a", "b"]));
    assert_eq!(result.errors, ["no response from c"]);
    assert_eq!(result.missing, ["c"]);
    assert_clean(&bus, responders.len());
}

#[test]
fn min_responses_below_the_answers_returns_once_the_quorum_is_met() {
    let bus = EventBus::new();
    let responders = ["a", "b", "c"].map(|name| Responder::answering(&bus, name));
    bus.start();

    let options = RequestOptions::new(["a", "b", "c"])
        .min_responses(1)
        .timeout(GUARD);
    let result = bus.request::<Verdict, _>(check("r1", 1), options).unwrap();

    // At least the quorum; answers that arrived before the request ended are
    // in the result too, and the rest are listed as missing.
    assert!(!result.responses.is_empty());
    assert_eq!(result.responses.len() + result.missing.len(), 3);
    assert_eq!(result.errors.len(), result.missing.len());
    for response in &result.responses {
        assert!(!result.missing.contains(&response.responder));
    }
    assert_clean(&bus, responders.len());
}

#[test]
fn twenty_concurrent_requests_each_receive_exactly_their_own_responses() {
    const REQUESTS: usize = 20;
    let bus = EventBus::new();
    // Each responder holds the requests until it has all twenty, then answers
    // them newest first: all twenty are in flight at once, and every response
    // subscription sees all sixty responses, three of them its own.
    let responders = ["a", "b", "c"].map(|name| {
        let mut held = Vec::new();
        Responder::spawn(&bus, name, move |bus, request| {
            held.push(Arc::clone(request));
            if held.len() == REQUESTS {
                for request in held.drain(..).rev() {
                    bus.publish(verdict(&request, name));
                }
            }
        })
    });
    bus.start();

    let start = Arc::new(Barrier::new(REQUESTS));
    let threads: Vec<_> = (0..REQUESTS as u64)
        .map(|i| {
            let bus = bus.clone();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                let id = format!("req-{i}");
                let options = RequestOptions::new(["a", "b", "c"]).timeout(GUARD);
                let result = bus
                    .request::<Verdict, _>(check(id.clone(), 1000 + i), options)
                    .unwrap_or_else(|error| panic!("{id}: {error}"));
                (id, 1000 + i, result)
            })
        })
        .collect();

    for thread in threads {
        let (id, payload, result) = thread.join().unwrap();
        assert_eq!(
            responders_of(&result),
            BTreeSet::from(["a", "b", "c"]),
            "{id}"
        );
        assert_eq!(result.responses.len(), 3, "{id}");
        for response in &result.responses {
            assert_eq!(response.request_id, id);
            assert_eq!(response.payload, payload);
        }
        assert!(result.errors.is_empty(), "{id}: {:?}", result.errors);
    }
    // 60 responses went to 20 response subscriptions at once: none was dropped.
    assert_clean(&bus, responders.len());
}

#[test]
fn cancel_from_another_thread_returns_the_partial_result() {
    let bus = EventBus::new();
    let (answered, answers) = mpsc::channel();
    let responders = [
        Responder::answering_and_telling(&bus, "a", answered.clone()),
        Responder::answering_and_telling(&bus, "b", answered),
        Responder::silent(&bus, "c"),
    ];
    bus.start();

    let token = CancelToken::new();
    let canceller = {
        let token = token.clone();
        thread::spawn(move || {
            // Cancel once `a` and `b` have answered: their responses are queued
            // for the request by then, so they are in the partial result.
            for _ in 0..2 {
                answers.recv_timeout(GUARD).expect("a and b answer");
            }
            token.cancel();
        })
    };
    // Without the cancellation this would time out after GUARD, and fail below.
    let options = RequestOptions::new(["a", "b", "c"])
        .timeout(GUARD)
        .cancel_token(token.clone());
    let error = bus
        .request::<Verdict, _>(check("r1", 1), options)
        .unwrap_err();
    canceller.join().unwrap();

    assert!(
        error.is_cancelled(),
        "expected a cancellation, got {error:?}"
    );
    assert!(error
        .to_string()
        .starts_with("request cancelled with 2 of 3"));
    let RequestError::Cancelled { required, partial } = error else {
        unreachable!()
    };
    assert_eq!(required, 3);
    assert_eq!(responders_of(&partial), BTreeSet::from(["a", "b"]));
    assert_eq!(partial.errors, ["no response from c"]);
    assert!(token.is_cancelled());
    assert_clean(&bus, responders.len());
}

#[test]
fn a_cancelled_token_fails_the_request_before_it_is_published() {
    let (bus, responders) = two_of_three();
    let token = CancelToken::new();
    token.cancel();

    let options = RequestOptions::new(["a", "b"]).cancel_token(token.clone());
    let error = bus
        .request::<Verdict, _>(check("r1", 1), options)
        .unwrap_err();
    let partial = error
        .partial()
        .expect("a cancellation carries its partial result");
    assert!(partial.responses.is_empty());
    assert_eq!(partial.errors, ["no response from a", "no response from b"]);
    assert_eq!(bus.stats().published, 0, "nothing was published");

    let future = bus.request_async::<Verdict, _>(
        check("r2", 1),
        RequestOptions::new(["a"]).cancel_token(token),
    );
    assert!(futures::executor::block_on(future)
        .unwrap_err()
        .is_cancelled());
    assert_eq!(bus.stats().published, 0, "nothing was published");
    assert_clean(&bus, responders.len());
}

#[test]
fn one_token_cancels_blocking_and_async_requests_alike() {
    let bus = EventBus::new();
    let responders = [Responder::silent(&bus, "a")];
    bus.start();
    let token = CancelToken::new();
    let options = RequestOptions::new(["a"])
        .timeout(GUARD)
        .cancel_token(token.clone());

    let blocking: Vec<_> = (0..2)
        .map(|i| {
            let bus = bus.clone();
            let options = options.clone();
            thread::spawn(move || bus.request::<Verdict, _>(check(format!("b{i}"), 1), options))
        })
        .collect();
    let future = bus.request_async::<Verdict, _>(check("async", 1), options);
    let asynchronous = thread::spawn(move || futures::executor::block_on(future));

    // Cancel once all three are waiting (each has published its request);
    // cancelling earlier would cancel them too, but this covers the wake-up.
    wait_until("three requests in flight", || bus.stats().published == 3);
    token.cancel();

    for thread in blocking {
        assert!(thread.join().unwrap().unwrap_err().is_cancelled());
    }
    assert!(asynchronous.join().unwrap().unwrap_err().is_cancelled());
    assert_clean(&bus, responders.len());
}

#[test]
fn duplicate_unknown_and_foreign_responses_are_ignored() {
    let bus = EventBus::new();
    let (a_done, a_finished) = mpsc::channel::<()>();
    let a_finished = Mutex::new(a_finished);
    let responders = [
        // `a` answers twice (the first answer must win), then an unknown
        // responder and an answer to another request follow.
        Responder::spawn(&bus, "a", move |bus, request| {
            bus.publish(verdict(request, "a"));
            bus.publish(Verdict {
                payload: 999,
                ..verdict(request, "a")
            });
            bus.publish(verdict(request, "intruder"));
            bus.publish(Verdict {
                request_id: "another-request".into(),
                ..verdict(request, "b")
            });
            a_done.send(()).unwrap();
        }),
        // `b` answers only after all of that is queued, so the request sees
        // it before its quorum is met.
        Responder::spawn(&bus, "b", move |bus, request| {
            a_finished
                .lock()
                .unwrap()
                .recv_timeout(GUARD)
                .expect("a answers");
            bus.publish(verdict(request, "b"));
        }),
    ];
    bus.start();

    let options = RequestOptions::new(["a", "b"]).timeout(GUARD);
    let result = bus.request::<Verdict, _>(check("r1", 5), options).unwrap();

    assert_eq!(result.responses.len(), 2);
    assert_eq!(responders_of(&result), BTreeSet::from(["a", "b"]));
    assert_eq!(
        result.response_from("a").unwrap().payload,
        5,
        "first answer wins"
    );
    assert!(result.responses.iter().all(|r| r.request_id == "r1"));
    assert_clean(&bus, responders.len());
}

#[test]
fn unknown_responders_do_not_count_towards_the_quorum() {
    let bus = EventBus::new();
    let responders = [
        Responder::answering(&bus, "intruder"),
        Responder::answering(&bus, "a"),
        Responder::silent(&bus, "b"),
    ];
    bus.start();

    // Two answers arrive, but only one from an expected responder.
    let options = RequestOptions::new(["a", "b"])
        .min_responses(2)
        .timeout(SHORT);
    let partial = bus
        .request::<Verdict, _>(check("r1", 1), options)
        .unwrap_err()
        .into_partial()
        .unwrap();
    assert_eq!(responders_of(&partial), BTreeSet::from(["a"]));
    assert_eq!(partial.missing, ["b"]);
    assert_clean(&bus, responders.len());
}

#[test]
fn a_flood_of_other_responses_does_not_hold_a_request_past_its_timeout() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let bus = EventBus::new();
    let responders = [Responder::silent(&bus, "a")];
    bus.start();

    // Responses to other requests, as fast as one thread can publish them,
    // until the request returns (or, if its timeout is broken, for `WITHIN`).
    let done = Arc::new(AtomicBool::new(false));
    let flooder = {
        let bus = bus.clone();
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let started = Instant::now();
            let foreign = check("another-request", 0);
            while !done.load(Ordering::Relaxed) {
                if started.elapsed() > WITHIN {
                    return false;
                }
                bus.publish(verdict(&foreign, "a"));
            }
            true
        })
    };
    let options = RequestOptions::new(["a"]).timeout(SHORT / 4);
    let result = bus.request::<Verdict, _>(check("r1", 1), options);
    done.store(true, Ordering::Relaxed);
    assert!(
        flooder.join().unwrap(),
        "the flood held the request open for {WITHIN:?}"
    );
    assert!(result.unwrap_err().is_timeout());
    // Every foreign response was counted as late, none held the request.
    assert!(bus.stats().requests.late_responses > 0);
    assert_clean(&bus, responders.len());
}

#[test]
fn invalid_options_are_errors_that_say_what_to_change() {
    let bus = EventBus::new();
    bus.start();
    let request = |options| {
        bus.request::<Verdict, _>(check("r", 1), options)
            .unwrap_err()
    };

    let empty = request(RequestOptions::new(Vec::<String>::new()));
    assert!(matches!(
        empty,
        RequestError::InvalidOptions(RequestOptionsError::NoExpectedResponders)
    ));
    assert!(empty.to_string().contains("name the responders"), "{empty}");

    let too_many = request(RequestOptions::new(["a", "b", "c"]).min_responses(4));
    assert!(matches!(
        too_many,
        RequestError::InvalidOptions(RequestOptionsError::MinResponsesTooHigh {
            min_responses: 4,
            expected: 3
        })
    ));
    assert!(
        too_many
            .to_string()
            .contains("set min_responses to at most 3"),
        "{too_many}"
    );
    assert!(std::error::Error::source(&too_many).is_some());
    assert!(too_many.partial().is_none());

    let duplicate = request(RequestOptions::new(["a", "a"]));
    assert!(matches!(
        duplicate,
        RequestError::InvalidOptions(RequestOptionsError::DuplicateResponder(ref name)) if name == "a"
    ));
    let zero = request(RequestOptions::new(["a"]).timeout(Duration::ZERO));
    assert!(matches!(
        zero,
        RequestError::InvalidOptions(RequestOptionsError::ZeroTimeout)
    ));

    // The async form reports the same error on its first poll.
    let future = bus.request_async::<Verdict, _>(check("r", 1), RequestOptions::default());
    assert!(matches!(
        futures::executor::block_on(future),
        Err(RequestError::InvalidOptions(
            RequestOptionsError::NoExpectedResponders
        ))
    ));

    // Nothing was published for any of them.
    assert_eq!(bus.stats().published, 0);
    assert_clean(&bus, 0);
}

#[test]
fn a_request_before_start_is_buffered_and_answered_after_start() {
    let bus = EventBus::new();
    let responders = ["a", "b"].map(|name| Responder::answering(&bus, name));

    let requester = {
        let bus = bus.clone();
        thread::spawn(move || {
            let options = RequestOptions::new(["a", "b"]).timeout(GUARD);
            bus.request::<Verdict, _>(check("early", 3), options)
        })
    };
    wait_until("the request is buffered", || bus.stats().pre_start_len == 1);
    bus.start();

    let result = requester.join().unwrap().unwrap();
    assert_eq!(responders_of(&result), BTreeSet::from(["a", "b"]));
    assert!(result.responses.iter().all(|r| r.payload == 3));
    assert_clean(&bus, responders.len());
}

#[test]
fn a_request_while_paused_is_answered_after_the_restart() {
    let bus = EventBus::new();
    let responders = ["a", "b"].map(|name| Responder::answering(&bus, name));
    bus.start();
    bus.pause();

    let requester = {
        let bus = bus.clone();
        thread::spawn(move || {
            let options = RequestOptions::new(["a", "b"]).timeout(GUARD);
            bus.request::<Verdict, _>(check("paused", 4), options)
        })
    };
    wait_until("the request is buffered", || bus.stats().pre_start_len == 1);
    bus.start();

    let result = requester.join().unwrap().unwrap();
    assert_eq!(result.responses.len(), 2);
    assert_clean(&bus, responders.len());
}

#[test]
fn a_request_before_a_late_start_times_out_and_its_late_answers_are_counted() {
    let bus = EventBus::new();
    let (answered, answers) = mpsc::channel();
    let responders = [Responder::answering_and_telling(&bus, "a", answered)];

    let options = RequestOptions::new(["a"]).timeout(SHORT / 4);
    let error = bus
        .request::<Verdict, _>(check("r1", 1), options)
        .unwrap_err();
    assert!(error.is_timeout());
    assert_eq!(error.partial().unwrap().errors, ["no response from a"]);
    assert_eq!(bus.stats().pre_start_len, 1, "the request stays buffered");

    bus.start();
    answers.recv_timeout(GUARD).expect("a still answers it");
    wait_until("the answer is counted late", || {
        bus.stats().requests.late_responses == 1
    });
    assert_clean(&bus, responders.len());
}

#[test]
fn responses_reach_requests_through_one_internal_route_per_response_type() {
    let bus = EventBus::new();
    let (seen, stats) = mpsc::channel();
    let responders = [Responder::spawn(&bus, "inspector", move |bus, request| {
        let _ = seen.send(bus.stats());
        bus.publish(verdict(request, "inspector"));
    })];
    bus.start();

    let options = RequestOptions::new(["inspector"]).timeout(GUARD);
    for id in ["r1", "r2"] {
        bus.request::<Verdict, _>(check(id, 1), options.clone())
            .unwrap();
    }

    // While the first request is in flight, the route exists: typed to the
    // response type, critical, and the only subscriber the requests added.
    let stats = stats.recv_timeout(GUARD).unwrap();
    let routes: Vec<_> = stats
        .subscribers
        .iter()
        .filter(|s| s.kind == SubscriberKind::Route)
        .collect();
    assert_eq!(routes.len(), 1, "{stats}");
    assert!(routes[0].event_types.ends_with("Verdict"));
    assert!(!routes[0].lossy, "responses are critical");
    assert!(!routes[0].leader_only);
    assert_eq!(
        stats.subscribers.len(),
        2,
        "the responder and the route: {stats}"
    );
    assert_eq!(bus.stats().requests.answered, 2);
    assert_clean(&bus, responders.len());
}

#[test]
fn the_request_waits_for_its_responses_before_it_is_published() {
    // With no room to buffer, the request is dropped as it is published, and
    // the drop callback runs right there, on the requesting thread: the
    // route exists by then, and the request times out (a buffering bus never
    // fails a request for want of responders).
    let bus = EventBus::builder().pre_start_limit(0).build();
    let (seen, kinds) = mpsc::channel();
    let observer = bus.downgrade();
    bus.set_drop_callback(Some(Box::new(move |info| {
        if let (true, Some(bus)) = (info.event.is::<Check>(), observer.upgrade()) {
            let kinds: Vec<SubscriberKind> = bus
                .stats()
                .subscribers
                .into_iter()
                .map(|s| s.kind)
                .collect();
            let _ = seen.send(kinds);
        }
    })));

    let options = RequestOptions::new(["a"]).timeout(SHORT / 10);
    let error = bus
        .request::<Verdict, _>(check("r1", 1), options)
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(
        kinds.recv_timeout(GUARD).unwrap(),
        [SubscriberKind::Route],
        "the route existed when the request was published"
    );
    assert_eq!(bus.stats().dropped_pre_start, 1);
}

#[test]
fn a_timeout_too_long_to_represent_means_no_timeout() {
    let bus = EventBus::new();
    let responders = [Responder::answering(&bus, "a")];
    bus.start();

    let options = RequestOptions::new(["a"]).timeout(Duration::MAX);
    assert_eq!(
        bus.request::<Verdict, _>(check("r1", 1), options.clone())
            .unwrap()
            .responses
            .len(),
        1
    );
    let bus2 = bus.clone();
    let result = within(WITHIN, "async request without a deadline", move || {
        futures::executor::block_on(bus2.request_async::<Verdict, _>(check("r2", 1), options))
    });
    assert_eq!(result.unwrap().responses.len(), 1);
    assert_clean(&bus, responders.len());
}

// ---------------------------------------------------------------------------
// The async request, on three executors.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_request_on_tokio() {
    let bus = EventBus::new();
    let responders = ["a", "b", "c"].map(|name| Responder::answering(&bus, name));
    bus.start();

    // Spawned, so the future is `Send + 'static`; several at once.
    let tasks: Vec<_> = (0..5u64)
        .map(|i| {
            let future = bus.request_async::<Verdict, _>(
                check(format!("t{i}"), i),
                RequestOptions::new(["a", "b", "c"]).timeout(GUARD),
            );
            tokio::spawn(future)
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let result = tokio::time::timeout(WITHIN, task)
            .await
            .expect("the request completes")
            .unwrap()
            .unwrap();
        assert_eq!(responders_of(&result), BTreeSet::from(["a", "b", "c"]));
        assert!(result.responses.iter().all(|r| r.payload == i as u64));
    }
    assert_clean(&bus, responders.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_timeout_on_tokio_returns_the_partial_result() {
    let (bus, responders) = two_of_three();
    let future = bus.request_async::<Verdict, _>(
        check("r1", 1),
        RequestOptions::new(["a", "b", "c"]).timeout(SHORT),
    );
    let error = tokio::time::timeout(WITHIN, future)
        .await
        .expect("the request's own timeout fires")
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    let partial = error.into_partial().unwrap();
    assert_eq!(responders_of(&partial), BTreeSet::from(["a", "b"]));
    assert_eq!(partial.errors, ["no response from c"]);
    assert_clean(&bus, responders.len());
}

#[tokio::test(flavor = "current_thread")]
async fn async_min_responses_on_a_single_threaded_tokio() {
    let (bus, responders) = two_of_three();
    let future = bus.request_async::<Verdict, _>(
        check("r1", 1),
        RequestOptions::new(["a", "b", "c"])
            .min_responses(2)
            .timeout(GUARD),
    );
    let result = tokio::time::timeout(WITHIN, future).await.unwrap().unwrap();
    assert_eq!(responders_of(&result), BTreeSet::from(["a", "b"]));
    assert_eq!(result.errors, ["no response from c"]);
    assert_clean(&bus, responders.len());
}

#[test]
fn async_request_on_smol() {
    let bus = EventBus::new();
    let responders = ["a", "b", "c"].map(|name| Responder::answering(&bus, name));
    bus.start();

    let tasks_bus = bus.clone();
    let results = within(WITHIN, "requests on smol", move || {
        smol::block_on(async move {
            let tasks: Vec<_> = (0..5u64)
                .map(|i| {
                    smol::spawn(tasks_bus.request_async::<Verdict, _>(
                        check(format!("s{i}"), i),
                        RequestOptions::new(["a", "b", "c"]).timeout(GUARD),
                    ))
                })
                .collect();
            let mut results = Vec::new();
            for task in tasks {
                results.push(task.await);
            }
            results
        })
    });
    for (i, result) in results.into_iter().enumerate() {
        let result = result.unwrap();
        assert_eq!(result.responses.len(), 3);
        assert!(result.responses.iter().all(|r| r.payload == i as u64));
    }
    assert_clean(&bus, responders.len());
}

#[test]
fn async_timeout_on_smol_returns_the_partial_result() {
    let (bus, responders) = two_of_three();
    let future = bus.request_async::<Verdict, _>(
        check("r1", 1),
        RequestOptions::new(["a", "b", "c"]).timeout(SHORT),
    );
    // smol's own timer is not involved: the crate's timer thread wakes it.
    let error = within(WITHIN, "a timing-out request on smol", move || {
        smol::block_on(future)
    })
    .unwrap_err();
    let partial = error.partial().expect("a timeout");
    assert!(error.is_timeout());
    assert_eq!(responders_of(partial), BTreeSet::from(["a", "b"]));
    assert_clean(&bus, responders.len());
}

#[test]
fn async_request_under_futures_block_on() {
    let bus = EventBus::new();
    let responders = ["a", "b", "c"].map(|name| Responder::answering(&bus, name));
    bus.start();

    let future = bus.request_async::<Verdict, _>(
        check("r1", 9),
        RequestOptions::new(["a", "b", "c"]).timeout(GUARD),
    );
    let result = within(WITHIN, "a request under block_on", move || {
        futures::executor::block_on(future)
    })
    .unwrap();
    assert_eq!(result.responses.len(), 3);
    assert!(result.responses.iter().all(|r| r.payload == 9));
    assert_clean(&bus, responders.len());
}

#[test]
fn async_timeout_under_futures_block_on() {
    let (bus, responders) = two_of_three();
    let future = bus.request_async::<Verdict, _>(
        check("r1", 1),
        RequestOptions::new(["a", "b", "c"]).timeout(SHORT),
    );
    let error = within(WITHIN, "a timing-out request under block_on", move || {
        futures::executor::block_on(future)
    })
    .unwrap_err();
    let RequestError::Timeout { partial, .. } = error else {
        panic!("expected a timeout, got {error:?}");
    };
    assert_eq!(responders_of(&partial), BTreeSet::from(["a", "b"]));
    assert_eq!(partial.missing, ["c"]);
    assert_clean(&bus, responders.len());
}

#[test]
fn async_cancel_from_another_thread_returns_the_partial_result() {
    let bus = EventBus::new();
    let (answered, answers) = mpsc::channel();
    let responders = [
        Responder::answering_and_telling(&bus, "a", answered),
        Responder::silent(&bus, "b"),
    ];
    bus.start();

    let token = CancelToken::new();
    let future = bus.request_async::<Verdict, _>(
        check("r1", 1),
        RequestOptions::new(["a", "b"])
            .timeout(GUARD)
            .cancel_token(token.clone()),
    );
    let waiting = thread::spawn(move || futures::executor::block_on(future));
    answers.recv_timeout(GUARD).expect("a answers");
    token.cancel();

    let error = waiting.join().unwrap().unwrap_err();
    assert!(error.is_cancelled(), "{error:?}");
    let partial = error.into_partial().unwrap();
    assert_eq!(responders_of(&partial), BTreeSet::from(["a"]));
    assert_eq!(partial.errors, ["no response from b"]);
    assert_clean(&bus, responders.len());
}

#[test]
fn dropping_the_future_cancels_the_request() {
    // Silent responders: the request is the only event published.
    let bus = EventBus::new();
    let responders = ["a", "b", "c"].map(|name| Responder::silent(&bus, name));
    bus.start();

    let mut future = bus.request_async::<Verdict, _>(
        check("r1", 1),
        RequestOptions::new(["a", "b", "c"]).timeout(GUARD),
    );
    assert_eq!(
        bus.stats().published,
        0,
        "a future does nothing until polled"
    );
    assert_eq!(bus.stats().subscriber_count(), 3);

    // The first poll publishes; nobody answers, so it waits.
    assert!(poll_once(&mut future).is_pending());
    assert_eq!(bus.stats().published, 1);

    drop(future);
    assert_eq!(bus.stats().requests.cancelled, 1);
    assert_clean(&bus, responders.len());
}

#[test]
fn an_executor_timeout_around_the_future_cleans_up_too() {
    let (bus, responders) = two_of_three();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let future = bus.request_async::<Verdict, _>(
        check("r1", 1),
        RequestOptions::new(["a", "b", "c"]).timeout(GUARD),
    );
    let outer = runtime.block_on(async { tokio::time::timeout(SHORT / 4, future).await });
    assert!(
        outer.is_err(),
        "tokio's timeout fires first and drops the request"
    );
    assert_clean(&bus, responders.len());
}

// ---------------------------------------------------------------------------
// Waiting for a cancel token: `CancelToken::cancelled`.

#[test]
fn the_cancel_future_wakes_a_plain_thread_blocked_on_it() {
    let token = CancelToken::new();
    let waiting = token.cancelled();
    let blocked = thread::spawn(move || futures::executor::block_on(waiting));
    thread::sleep(SHORT / 10);
    assert!(!blocked.is_finished(), "completed before the cancel");
    token.cancel();
    within(WITHIN, "the woken thread", move || blocked.join().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cancel_future_ends_a_tokio_select_when_a_plain_thread_cancels() {
    fn send_sync_unpin<T: Send + Sync + Unpin + 'static>(_: &T) {}
    let token = CancelToken::new();
    let mut cancelled = token.cancelled();
    send_sync_unpin(&cancelled);
    // Pending until the cancel: the first poll registers a waker, which
    // the select's task replaces.
    assert!(poll_once(&mut cancelled).is_pending());
    let canceller = {
        let token = token.clone();
        thread::spawn(move || {
            thread::sleep(SHORT / 10);
            token.cancel();
        })
    };
    tokio::select! {
        () = cancelled => {}
        () = tokio::time::sleep(GUARD) => panic!("the cancel did not wake the task"),
    }
    canceller.join().unwrap();
    // Once cancelled, every new future is ready at once, on any executor.
    assert!(poll_once(&mut token.cancelled()).is_ready());
    smol::block_on(token.cancelled());
    assert_eq!(
        format!("{:?}", token.cancelled()),
        "CancelledFuture { cancelled: true }"
    );
}

// ---------------------------------------------------------------------------
// No late-subscription warning.

/// A request's response route is made while the bus runs, but it is
/// internal: it must not log the late-subscription warning.
#[cfg(feature = "tracing")]
#[test]
fn a_request_on_a_running_bus_logs_no_late_subscription_warning() {
    use common::capture::{captured, warnings};

    let bus = EventBus::new();
    let responders = [Responder::answering(&bus, "a")];
    bus.start();
    let events = captured(|| {
        let options = RequestOptions::new(["a"]).timeout(GUARD);
        bus.request::<Verdict, _>(check("r1", 1), options.clone())
            .unwrap();
        let future = bus.request_async::<Verdict, _>(check("r2", 1), options);
        futures::executor::block_on(future).unwrap();

        // Control: a user's late subscription does warn, so the capture works.
        let _late = bus.subscribe("late", 1).unwrap();
    });
    let warnings = warnings(&events);
    assert_eq!(warnings.len(), 1, "a request warned: {warnings:?}");
    assert_eq!(warnings[0].field("subscriber"), "late", "{warnings:?}");
    drop(responders);
}
