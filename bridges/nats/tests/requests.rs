//! Scatter-gather requests whose responders live in other processes (other
//! buses and bridges, one real nats-server).

mod common;

use std::time::{Duration, SystemTime};

use async_nats::ConnectOptions;
use common::{init_tracing, LoadSampled, NatsServer, RouteAdded, Validate, Verdict};
use futures_util::StreamExt;
use switchboard::{CancelToken, EventBus, RequestOptions, RequestOptionsError};
use switchboard_nats::{Bridge, Delivery, RemoteRequestError};

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

/// A process serving `Validate` with the given local responders.
async fn serving(
    server: &NatsServer,
    name: &str,
    responders: &[&'static str],
) -> (EventBus, Bridge) {
    let bus = EventBus::new();
    for responder_name in responders {
        responder(&bus, responder_name);
    }
    let bridge = Bridge::builder(&bus)
        .name(name)
        .serve::<Validate, Verdict>("config.validate")
        .connect(server.url(), ConnectOptions::new())
        .await
        .unwrap();
    bus.start();
    (bus, bridge)
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
    let (_bus, _b) = runtime.block_on(serving(&server, "validators", &["schema", "policy"]));
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
