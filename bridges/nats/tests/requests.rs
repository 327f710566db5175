//! Scatter-gather requests whose responders live in other processes (other
//! buses and bridges, one real nats-server).

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::{ConnectOptions, HeaderMap};
use common::{eventually, init_tracing, LoadSampled, NatsServer, RouteAdded, Validate, Verdict};
use futures_util::StreamExt;
use switchboard::{CancelToken, EventBus, RequestOptions, RequestOptionsError};
use switchboard_nats::cloudevents::{ID, SOURCE, SPECVERSION, SPEC_VERSION, TYPE};
use switchboard_nats::{
    Bridge, ConfigError, Delivery, RemoteRequestError, DEFAULT_MAX_PENDING_REQUESTS,
};

/// Long enough never to be reached by a request that should end otherwise.
const LONG: Duration = Duration::from_secs(30);

fn validate(id: &str) -> Validate {
    Validate {
        request_id: id.into(),
        config: "listen: 443".into(),
        timestamp: SystemTime::now(),
    }
}

/// A local responder on `bus`, answering every `Validate` as `name`.
fn responder(bus: &EventBus, name: &'static str) {
    let mut requests = bus.subscribe_to::<Validate>(name, 16).unwrap();
    let bus = bus.clone();
    tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            bus.publish(Verdict {
                request_id: request.request_id.clone(),
                responder: name.into(),
                ok: !request.config.is_empty(),
                timestamp: SystemTime::now(),
            });
        }
    });
}

/// A local responder on `bus` that answers every `Validate` as `name`,
/// but only once `gate` is sent.
fn gated_responder(bus: &EventBus, name: &'static str, gate: tokio::sync::oneshot::Receiver<()>) {
    let mut requests = bus.subscribe_to::<Validate>(name, 16).unwrap();
    let bus = bus.clone();
    tokio::spawn(async move {
        if gate.await.is_err() {
            return;
        }
        while let Some(request) = requests.next().await {
            bus.publish(Verdict {
                request_id: request.request_id.clone(),
                responder: name.into(),
                ok: true,
                timestamp: SystemTime::now(),
            });
        }
    });
}

/// A process serving `Validate` with the given local responders.
async fn serving(
    server: &NatsServer,
    name: &str,
    responders: &[&'static str],
) -> (EventBus, Bridge) {
    serving_at_most(server, name, responders, DEFAULT_MAX_PENDING_REQUESTS).await
}

/// [`serving`], with at most `max_pending` requests in flight.
async fn serving_at_most(
    server: &NatsServer,
    name: &str,
    responders: &[&'static str],
    max_pending: usize,
) -> (EventBus, Bridge) {
    let bus = EventBus::new();
    for responder_name in responders {
        responder(&bus, responder_name);
    }
    let bridge = serve_on(server, &bus, name, max_pending).await;
    bus.start();
    (bus, bridge)
}

async fn serve_on(server: &NatsServer, bus: &EventBus, name: &str, max_pending: usize) -> Bridge {
    Bridge::builder(bus)
        .name(name)
        .serve::<Validate, Verdict>("config.validate")
        .max_pending_requests(max_pending)
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap()
}

async fn requester(server: &NatsServer, name: &str) -> Bridge {
    Bridge::builder(&EventBus::new())
        .name(name)
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_gather_responders_across_processes_with_quorum_and_partial_results() {
    init_tracing();
    let server = NatsServer::start();
    let (_bus_b, b) = serving(&server, "validators-b", &["schema", "policy"]).await;
    let (_bus_c, c) = serving(&server, "validators-c", &["quota"]).await;
    let asker = requester(&server, "asker").await;

    // Everyone answers.
    let result = asker
        .request::<Verdict, _>(
            validate("r1"),
            RequestOptions::new(["schema", "policy", "quota"]).timeout(LONG),
        )
        .await
        .unwrap();
    assert!(result.is_complete(), "{result:?}");
    assert_eq!(result.responses.len(), 3);
    assert!(result
        .responses
        .iter()
        .all(|v| v.ok && v.request_id == "r1"));
    assert!(result.response_from("quota").is_some());

    // A quorum of three out of four: returns without the absent one.
    let result = asker
        .request::<Verdict, _>(
            validate("r2"),
            RequestOptions::new(["schema", "absent", "policy", "quota"])
                .min_responses(3)
                .timeout(LONG),
        )
        .await
        .unwrap();
    assert_eq!(result.responses.len(), 3);
    assert_eq!(result.missing, ["absent"]);
    assert_eq!(result.errors, ["no response from absent"]);

    // Only "schema" and "absent" count: "policy" and "quota" answer but are ignored.
    let error = asker
        .request::<Verdict, _>(
            validate("r3"),
            RequestOptions::new(["schema", "absent"]).timeout(Duration::from_millis(800)),
        )
        .await
        .unwrap_err();
    let RemoteRequestError::Timeout {
        required, partial, ..
    } = &error
    else {
        panic!("expected a timeout, got {error:?}");
    };
    assert_eq!(*required, 2);
    assert_eq!(partial.responses.len(), 1);
    assert_eq!(partial.responses[0].responder, "schema");
    assert_eq!(partial.missing, ["absent"]);
    assert!(
        error.to_string().contains("1 of 2 required responses"),
        "{error}"
    );

    let stats = asker.stats();
    assert_eq!(stats.requests.sent, 3, "{stats}");
    assert_eq!(stats.requests.completed, 2, "{stats}");
    assert_eq!(stats.requests.timed_out, 1, "{stats}");
    assert_eq!(stats.requests.responses, 3 + 3 + 1, "{stats}");
    assert_eq!(stats.requests.responses_ignored, 2, "{stats}");
    let (sb, sc) = (b.stats(), c.stats());
    assert_eq!(
        (sb.requests.served, sb.requests.replies_sent),
        (3, 6),
        "{sb}"
    );
    assert_eq!(
        (sc.requests.served, sc.requests.replies_sent),
        (3, 3),
        "{sc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_nobody_serves_fails_fast_with_no_responders() {
    let server = NatsServer::start();
    // At-least-once traffic under the same prefix: its stream must capture
    // only its types, not the request subject (JetStream would acknowledge
    // the request, so NATS would never report "no responders").
    let bus = EventBus::new();
    let _durable_routes = Bridge::builder(&bus)
        .name("durable-routes")
        .export::<RouteAdded>("route.added", Delivery::AtLeastOnce)
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    let _durable_loads = Bridge::builder(&bus)
        .name("durable-loads")
        .import::<LoadSampled>("load.sampled", Delivery::AtLeastOnce)
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let mut stream = js.get_stream("SB").await.unwrap();
    let mut subjects = stream.info().await.unwrap().config.subjects.clone();
    subjects.sort();
    assert_eq!(subjects, ["sb.load.sampled", "sb.route.added"]);

    let asker = requester(&server, "lonely").await;
    let error = asker
        .request::<Verdict, _>(
            validate("r1"),
            RequestOptions::new(["schema"]).timeout(LONG),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RemoteRequestError::NoResponders { subject } if subject == "sb.config.validate"),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("BridgeBuilder::serve"),
        "{error}"
    );
    assert_eq!(asker.stats().requests.no_responders, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_and_invalid_options_end_a_request_with_what_was_gathered() {
    let server = NatsServer::start();
    let (_bus, _b) = serving(&server, "validators", &["schema"]).await;
    let asker = requester(&server, "impatient").await;

    let invalid = asker
        .request::<Verdict, _>(validate("r0"), RequestOptions::new(["a"]).min_responses(2))
        .await
        .unwrap_err();
    assert!(matches!(
        invalid,
        RemoteRequestError::InvalidOptions(RequestOptionsError::MinResponsesTooHigh { .. })
    ));
    assert_eq!(asker.stats().requests.sent, 0);

    let token = CancelToken::new();
    let cancel = token.clone();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
    });
    let error = asker
        .request::<Verdict, _>(
            validate("r1"),
            RequestOptions::new(["schema", "never"])
                .timeout(LONG)
                .cancel_token(token.clone()),
        )
        .await
        .unwrap_err();
    canceller.await.unwrap();
    let RemoteRequestError::Cancelled { partial, .. } = &error else {
        panic!("expected a cancellation, got {error:?}");
    };
    assert_eq!(partial.responses.len(), 1);
    assert_eq!(partial.missing, ["never"]);

    // A token cancelled before the request: nothing is sent.
    let sent = asker.stats().requests.sent;
    let error = asker
        .request::<Verdict, _>(
            validate("r2"),
            RequestOptions::new(["schema"]).cancel_token(token),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, RemoteRequestError::Cancelled { .. }));
    assert_eq!(asker.stats().requests.sent, sent);
}

#[test]
fn a_blocking_request_from_a_plain_thread() {
    let server = NatsServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (_bus, _b) = runtime.block_on(serving(
        &server,
        "blocking-validators",
        &["schema", "policy"],
    ));
    let asker = Bridge::builder(&EventBus::new())
        .name("blocking-asker")
        .connect_blocking(server.url(), ConnectOptions::new())
        .unwrap();
    let result = asker
        .request_blocking::<Verdict, _>(
            validate("r1"),
            RequestOptions::new(["schema", "policy"]).timeout(LONG),
        )
        .unwrap();
    assert_eq!(result.responses.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_notices_free_served_requests_so_a_small_limit_serves_requests_in_turn() {
    const REQUESTS: u64 = 40;
    init_tracing();
    let server = NatsServer::start();
    let (_bus, b) = serving_at_most(&server, "few-validators", &["schema"], 4).await;
    let asker = requester(&server, "sequential").await;

    // Each request would be kept for its 30 s timeout without the done
    // notices: the fifth would be rejected.
    for n in 0..REQUESTS {
        let result = asker
            .request::<Verdict, _>(
                validate(&format!("r{n}")),
                RequestOptions::new(["schema"]).timeout(LONG),
            )
            .await;
        if let Err(error) = result {
            panic!("request {n} failed: {error:?}\n{}", b.stats());
        }
    }
    assert!(
        eventually(LONG, || b.stats().requests.served_done == REQUESTS).await,
        "{}",
        b.stats()
    );
    let served = b.stats().requests;
    assert_eq!(
        (served.served, served.served_rejected),
        (REQUESTS, 0),
        "{served:?}"
    );
    assert_eq!(asker.stats().requests.completed, REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_limit_a_serving_bridge_rejects_a_request_and_its_requester_fails_at_once() {
    init_tracing();
    let server = NatsServer::start();
    let (_bus, b) = serving_at_most(&server, "full-validators", &["schema"], 1).await;
    let patient = Arc::new(requester(&server, "patient").await);
    let turned_away = requester(&server, "turned-away").await;

    // Nobody answers as "never": this request stays in flight.
    let open = tokio::spawn({
        let patient = Arc::clone(&patient);
        async move {
            patient
                .request::<Verdict, _>(
                    validate("open"),
                    RequestOptions::new(["schema", "never"]).timeout(LONG),
                )
                .await
        }
    });
    assert!(
        eventually(LONG, || b.stats().requests.served == 1).await,
        "{}",
        b.stats()
    );

    // A timeout would take 20 s and be a Timeout: the rejection is a reply.
    let error = turned_away
        .request::<Verdict, _>(
            validate("turned"),
            RequestOptions::new(["schema"]).timeout(Duration::from_secs(20)),
        )
        .await
        .unwrap_err();
    let RemoteRequestError::Rejected {
        by,
        reason,
        required,
        partial,
    } = &error
    else {
        panic!("expected a rejection, got {error:?}");
    };
    assert_eq!(by, "full-validators");
    assert_eq!(*required, 1);
    assert!(reason.contains("max_pending_requests"), "{reason}");
    assert!(partial.responses.is_empty(), "{partial:?}");
    assert_eq!(partial.missing, ["schema"]);
    assert!(
        error
            .to_string()
            .contains("raise its BridgeBuilder::max_pending_requests"),
        "{error}"
    );
    let asked = turned_away.stats().requests;
    assert_eq!((asked.rejected, asked.timed_out), (1, 0), "{asked:?}");
    let served = b.stats().requests;
    assert_eq!(
        (
            served.served,
            served.served_rejected,
            served.rejections_sent
        ),
        (1, 1, 1),
        "{served:?}"
    );

    // Dropping the open request's future frees its place.
    open.abort();
    assert!(open.await.unwrap_err().is_cancelled());
    assert!(
        eventually(LONG, || b.stats().requests.served_done == 1).await,
        "{}",
        b.stats()
    );
    let result = turned_away
        .request::<Verdict, _>(
            validate("after"),
            RequestOptions::new(["schema"]).timeout(LONG),
        )
        .await
        .unwrap();
    assert_eq!(result.responses[0].responder, "schema");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_done_notices_free_nothing_and_leave_a_request_in_flight_alone() {
    init_tracing();
    let server = NatsServer::start();
    let bus = EventBus::new();
    responder(&bus, "schema");
    let (open_gate, gate) = tokio::sync::oneshot::channel();
    gated_responder(&bus, "gated", gate);
    let b = serve_on(&server, &bus, "calm-validators", 4).await;
    bus.start();
    let asker = Arc::new(requester(&server, "asker-c").await);

    let in_flight = tokio::spawn({
        let asker = Arc::clone(&asker);
        async move {
            asker
                .request::<Verdict, _>(validate("r1"), RequestOptions::new(["gated"]).timeout(LONG))
                .await
        }
    });
    assert!(eventually(LONG, || b.stats().requests.served == 1).await);

    // A raw client's request, answered by "schema": its done notice, sent
    // after the hostile ones on the same connection, is read after them.
    let raw = async_nats::connect(server.url()).await.unwrap();
    let inbox = raw.new_inbox();
    let mut replies = raw.subscribe(inbox.clone()).await.unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(SPECVERSION, SPEC_VERSION);
    headers.insert(ID, "raw-1");
    headers.insert(TYPE, "config.validate");
    headers.insert(SOURCE, "raw");
    let payload = serde_json::to_vec(&validate("r2")).unwrap();
    raw.publish_with_reply_and_headers(
        "sb.config.validate",
        inbox.clone(),
        headers.clone(),
        payload.into(),
    )
    .await
    .unwrap();
    let reply = tokio::time::timeout(LONG, replies.next())
        .await
        .unwrap()
        .unwrap();
    let verdict: Verdict = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(verdict.responder, "schema");

    let hostile: Vec<Vec<u8>> = vec![
        raw.new_inbox().into_bytes(),
        Vec::new(),
        vec![0xff, 0xfe, 0x00],
        b"_INBOX.>".to_vec(),
        b"_INBOX.*".to_vec(),
        inbox.as_bytes()[..inbox.len() - 1].to_vec(),
        format!("{inbox} ").into_bytes(),
        b"r1".to_vec(),
        "garbage ".repeat(10_000).into_bytes(),
    ];
    for payload in hostile {
        raw.publish("_sb.sb.done", payload.clone().into())
            .await
            .unwrap();
        raw.publish_with_headers("_sb.sb.done", headers.clone(), payload.into())
            .await
            .unwrap();
    }
    raw.publish("_sb.sb.done", inbox.clone().into())
        .await
        .unwrap();
    raw.flush().await.unwrap();
    assert!(
        eventually(LONG, || b.stats().requests.served_done == 1).await,
        "{}",
        b.stats()
    );
    assert!(!in_flight.is_finished(), "\"gated\" has not answered yet");

    open_gate.send(()).unwrap();
    let result = in_flight.await.unwrap().unwrap();
    assert_eq!(result.responses[0].responder, "gated");
    assert!(
        eventually(LONG, || b.stats().requests.served_done == 2).await,
        "{}",
        b.stats()
    );
    let served = b.stats().requests;
    assert_eq!(
        (served.served, served.served_rejected),
        (2, 0),
        "{served:?}"
    );
}

#[test]
fn a_limit_of_zero_pending_requests_is_a_configuration_error() {
    let error = Bridge::builder(&EventBus::new())
        .serve::<Validate, Verdict>("config.validate")
        .max_pending_requests(0)
        .validate()
        .unwrap_err();
    assert_eq!(error, ConfigError::InvalidMaxPendingRequests);
    assert!(error.to_string().contains("at least 1"), "{error}");
}
