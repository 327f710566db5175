//! How responses reach requests: one long-lived route per response type, no
//! subscription per request; no responders fails fast; every response that no
//! request takes is counted (docs/design.md, "Scatter-gather requests").
#![cfg(feature = "derive")]

mod common;

#[path = "common/alloc_probe.rs"]
mod alloc_probe;

use std::thread;
use std::time::Duration;

use std::future::Future;

use common::{running_bus, within, GUARD, WITHIN};
use switchboard::{
    CancelToken, Event, EventBus, Request, RequestError, RequestOptions, Response, SubscriberKind,
    Timestamp, TypedSubscription,
};

#[derive(Debug, Event, Request)]
#[event(type = "ask")]
struct Ask {
    request_id: String,
    timestamp: Timestamp,
}

fn ask(id: impl Into<String>) -> Ask {
    Ask {
        request_id: id.into(),
        timestamp: Timestamp::UNIX_EPOCH,
    }
}

#[derive(Debug, Event, Response)]
#[event(type = "reply")]
struct Reply {
    request_id: String,
    responder: String,
    timestamp: Timestamp,
}

fn reply(request_id: &str, responder: &str) -> Reply {
    Reply {
        request_id: request_id.into(),
        responder: responder.into(),
        timestamp: Timestamp::UNIX_EPOCH,
    }
}

/// Responders that answer every `Ask` they get, on their own threads; they
/// stop when the bus is dropped.
fn answering(bus: &EventBus, names: &[&'static str]) -> Vec<thread::JoinHandle<()>> {
    names
        .iter()
        .map(|&name| {
            let asks: TypedSubscription<Ask> = bus.subscribe_to(name, 64).unwrap();
            let bus = bus.downgrade();
            thread::spawn(move || {
                for ask in asks.iter() {
                    let Some(bus) = bus.upgrade() else { return };
                    bus.publish(reply(&ask.request_id, name));
                }
            })
        })
        .collect()
}

fn options(responders: &[&str]) -> RequestOptions {
    RequestOptions::new(responders.iter().copied()).timeout(GUARD)
}

#[test]
fn a_request_nobody_subscribes_to_fails_at_once_with_no_responders() {
    let bus = running_bus();
    let result = within(GUARD, "a request with no responders", move || {
        let error = bus
            .request::<Reply, _>(
                ask("r1"),
                RequestOptions::new(["a", "b"]).timeout(WITHIN * 10),
            )
            .unwrap_err();
        (error, bus.stats().requests)
    });
    let (error, requests) = result;
    assert!(error.is_no_responders(), "{error:?}");
    let partial = error.partial().unwrap();
    assert_eq!(partial.missing, ["a", "b"]);
    assert!(error.to_string().starts_with("no responders"), "{error}");
    assert_eq!(requests.no_responders, 1);
}

#[test]
fn an_async_request_nobody_subscribes_to_fails_at_once_too() {
    let bus = running_bus();
    let error = futures::executor::block_on(
        bus.request_async::<Reply, _>(ask("r1"), RequestOptions::new(["a"]).timeout(WITHIN * 10)),
    )
    .unwrap_err();
    assert!(matches!(
        error,
        RequestError::NoResponders { required: 1, .. }
    ));
}

#[test]
fn a_request_made_while_buffering_waits_for_start_instead() {
    let bus = EventBus::new();
    let responders = answering(&bus, &["a"]);
    let requester = {
        let bus = bus.clone();
        thread::spawn(move || bus.request::<Reply, _>(ask("early"), options(&["a"])))
    };
    common::wait_until("the request is buffered", || bus.stats().pre_start_len == 1);
    bus.start();
    let result = within(WITHIN, "the buffered request", move || {
        requester.join().unwrap()
    });
    assert_eq!(result.unwrap().responses.len(), 1);
    drop(bus);
    for responder in responders {
        responder.join().unwrap();
    }
}

#[test]
fn one_route_per_response_type_however_many_requests() {
    let bus = running_bus();
    let responders = answering(&bus, &["a", "b"]);
    let before = bus.stats().subscriber_count();
    for n in 0..20 {
        let result = bus
            .request::<Reply, _>(ask(format!("r{n}")), options(&["a", "b"]))
            .unwrap();
        assert_eq!(result.responses.len(), 2);
    }
    let stats = bus.stats();
    let routes: Vec<_> = stats
        .subscribers
        .iter()
        .filter(|s| s.kind == SubscriberKind::Route)
        .collect();
    assert_eq!(routes.len(), 1, "{stats}");
    assert!(routes[0].event_types.ends_with("Reply"));
    assert!(routes[0].name.starts_with("responses:"));
    assert_eq!(
        bus.stats().subscriber_count(),
        before,
        "the route is the bus's own, not a subscription of the user's"
    );
    assert_eq!(stats.requests.answered, 20);
    drop(bus);
    for responder in responders {
        responder.join().unwrap();
    }
}

#[test]
fn late_and_ignored_responses_are_counted_never_delivered_elsewhere() {
    let bus = running_bus();
    let asks = bus.subscribe_to::<Ask>("silent", 8).unwrap();
    let error = bus
        .request::<Reply, _>(
            ask("r1"),
            RequestOptions::new(["a"]).timeout(Duration::from_millis(10)),
        )
        .unwrap_err();
    assert!(error.is_timeout());
    // An answer after the end, and one to an id nobody ever waited for.
    assert_eq!(bus.publish(reply("r1", "a")), 0);
    assert_eq!(bus.publish(reply("unknown", "a")), 0);
    assert_eq!(bus.stats().requests.late_responses, 2);

    // A waiting request ignores unexpected and repeated responders.
    let token = CancelToken::new();
    let waiting = {
        let bus = bus.clone();
        let token = token.clone();
        thread::spawn(move || {
            bus.request::<Reply, _>(
                ask("r2"),
                RequestOptions::new(["a", "b"])
                    .timeout(WITHIN)
                    .cancel_token(token),
            )
        })
    };
    common::wait_until("the request is published", || asks.len() == 2);
    assert_eq!(bus.publish(reply("r2", "a")), 1);
    assert_eq!(bus.publish(reply("r2", "a")), 0, "a repeat is ignored");
    assert_eq!(bus.publish(reply("r2", "stranger")), 0, "so is a stranger");
    token.cancel();
    let partial = within(WITHIN, "the cancelled request", move || {
        waiting.join().unwrap()
    })
    .unwrap_err()
    .into_partial()
    .unwrap();
    assert_eq!(partial.responses.len(), 1);
    let requests = bus.stats().requests;
    assert_eq!(requests.ignored_responses, 2);
    assert_eq!((requests.timed_out, requests.cancelled), (1, 1));
}

#[test]
fn concurrent_requests_sharing_an_id_each_get_every_response() {
    let bus = running_bus();
    let responders = answering(&bus, &["a"]);
    let requests: Vec<_> = (0..2)
        .map(|_| {
            let bus = bus.clone();
            thread::spawn(move || bus.request::<Reply, _>(ask("same"), options(&["a"])))
        })
        .collect();
    for request in requests {
        let result = within(WITHIN, "a request sharing its id", move || {
            request.join().unwrap()
        });
        assert_eq!(result.unwrap().responses.len(), 1);
    }
    drop(bus);
    for responder in responders {
        responder.join().unwrap();
    }
}

#[test]
fn a_dropped_request_future_counts_as_cancelled_and_its_answers_as_late() {
    let bus = running_bus();
    let asks = bus.subscribe_to::<Ask>("a", 8).unwrap();
    let mut future = Box::pin(bus.request_async::<Reply, _>(ask("r1"), options(&["a"])));
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(
        future.as_mut().poll(&mut cx).is_pending(),
        "published, waiting"
    );
    drop(future);
    let request = asks.try_recv().unwrap();
    assert_eq!(bus.publish(reply(&request.request_id, "a")), 0);
    let requests = bus.stats().requests;
    assert_eq!((requests.cancelled, requests.late_responses), (1, 1));
}

#[test]
fn a_round_trip_allocates_a_handful_beyond_the_request_and_its_responses() {
    // Responders on this thread, so every allocation of the round trip is
    // measured: a request, three responses (each an `Arc` and a `String`), and
    // the request's own bookkeeping (the id shared with the route, its slot,
    // the responder flags and the result's responses).
    let bus = running_bus();
    let asks: Vec<TypedSubscription<Ask>> = ["a", "b", "c"]
        .iter()
        .map(|name| bus.subscribe_to(name, 8).unwrap())
        .collect();
    let answer = |bus: &EventBus| {
        for (sub, name) in asks.iter().zip(["a", "b", "c"]) {
            while let Ok(ask) = sub.try_recv() {
                bus.publish(reply(&ask.request_id, name));
            }
        }
    };
    let options = options(&["a", "b", "c"]);
    let round_trip = |id: &str, options: RequestOptions| {
        let future = bus.request_async::<Reply, _>(ask(id), options);
        let mut future = Box::pin(future);
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(future.as_mut().poll(&mut cx).is_pending());
        answer(&bus);
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(result) => result.unwrap(),
            std::task::Poll::Pending => panic!("every responder answered"),
        }
    };
    round_trip("warm-up", options.clone()); // the route, and thread-local setup
    let id = String::from("measured");
    let opts = options.clone();
    let (result, measured) = alloc_probe::measure(|| round_trip(&id, opts));
    assert_eq!(result.responses.len(), 3);
    // The request's Arc, its `Box::pin` here and its id String; for each
    // response its Arc and its two Strings.
    let workload = 3 + 3 * 3;
    let own = measured.allocations - workload;
    println!("a request round trip: {own} allocations of its own ({measured:?})");
    assert!(
        own <= 6,
        "{own} allocations beyond the request and its responses"
    );
}
