//! What the derives generate, checked through the traits and on a real bus.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use switchboard::{Event, EventBus, Request, RequestOptions, Response, Timestamp};

#[derive(Event)]
#[event(type = "route.added")]
struct RouteAdded {
    path: String,
    timestamp: Timestamp,
}

#[derive(Event)]
struct Unnamed {
    timestamp: Timestamp,
}

#[derive(Event)]
#[event(type = "load", coalescible)]
struct Load(u8, #[event(timestamp)] SystemTime);

#[derive(Event)]
#[event(type = "tagged")]
struct Tagged<T> {
    tag: T,
    #[event(timestamp)]
    at: Timestamp,
    /// A field named `timestamp` loses to the marked one.
    timestamp: SystemTime,
}

#[derive(Event)]
#[event(coalescible)]
struct Status {
    #[event(type)]
    key: &'static str,
    value: u32,
    timestamp: Timestamp,
}

mod renamed {
    pub use switchboard as bus_crate;
}

#[derive(Event)]
#[event(crate = "renamed::bus_crate", type = "via-path")]
struct ViaPath {
    timestamp: Timestamp,
}

#[test]
fn event_type_timestamp_and_coalescible_come_from_the_attributes() {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(42);
    let route = RouteAdded {
        path: "/api".into(),
        timestamp: at.into(),
    };
    assert_eq!(route.event_type(), "route.added");
    assert_eq!(route.timestamp(), at);
    assert!(!route.coalescible());
    assert_eq!(route.path, "/api");

    let load = Load(80, at);
    assert_eq!(
        (load.event_type(), load.timestamp(), load.0),
        ("load", at, 80)
    );
    assert!(load.coalescible());

    assert_eq!(
        ViaPath {
            timestamp: at.into()
        }
        .event_type(),
        "via-path"
    );
}

#[test]
fn a_field_can_carry_each_event_s_own_type() {
    let cpu = Status {
        key: "cpu",
        value: 3,
        timestamp: Timestamp::UNIX_EPOCH,
    };
    assert_eq!((cpu.event_type(), cpu.value), ("cpu", 3));
    assert!(cpu.coalescible());
    let bus = EventBus::new();
    let only_mem = bus.subscribe_types("mem", 4, ["mem"]).unwrap();
    bus.start();
    bus.publish(cpu);
    bus.publish(Status {
        key: "mem",
        value: 1,
        timestamp: Timestamp::UNIX_EPOCH,
    });
    assert_eq!(only_mem.try_iter().count(), 1);
}

#[test]
fn the_event_type_defaults_to_the_struct_name() {
    let event = Unnamed {
        timestamp: Timestamp::UNIX_EPOCH,
    };
    assert_eq!(event.event_type(), "Unnamed");
    assert_eq!(event.timestamp(), SystemTime::UNIX_EPOCH);
}

#[test]
fn a_marked_field_wins_over_one_named_timestamp_and_generics_work() {
    let marked = SystemTime::UNIX_EPOCH + Duration::from_secs(7);
    let event = Tagged {
        tag: 5u32,
        at: marked.into(),
        timestamp: SystemTime::UNIX_EPOCH,
    };
    assert_eq!(event.timestamp(), marked);
    assert_eq!(event.timestamp, SystemTime::UNIX_EPOCH);
    assert_eq!(event.tag, 5);
    let other = Tagged {
        tag: "text",
        at: marked.into(),
        timestamp: SystemTime::UNIX_EPOCH,
    };
    assert_eq!(other.event_type(), "tagged");
}

#[test]
fn a_timestamp_field_stamps_the_event_when_it_is_built() {
    let before = SystemTime::now();
    let event = RouteAdded {
        path: String::new(),
        timestamp: Timestamp::default(),
    };
    assert!(event.timestamp() >= before && event.timestamp() <= SystemTime::now());
}

#[derive(Event, Request)]
#[event(type = "check")]
struct Check {
    #[request(id)]
    revision: Arc<str>,
    timestamp: Timestamp,
}

#[derive(Event, Request)]
#[event(type = "ping")]
struct Ping {
    request_id: &'static str,
    timestamp: Timestamp,
}

#[derive(Event, Response)]
#[event(type = "verdict")]
struct Verdict {
    #[response(request_id)]
    revision: String,
    #[response(responder)]
    validator: Box<str>,
    ok: bool,
    timestamp: Timestamp,
}

#[derive(Event, Response)]
#[event(type = "pong")]
struct Pong {
    request_id: String,
    responder: String,
    timestamp: Timestamp,
}

#[derive(Event, Response)]
#[response(responder = "schema")]
struct SchemaVerdict(
    #[response(request_id)] String,
    #[event(timestamp)] Timestamp,
);

#[test]
fn request_and_response_fields_by_marker_by_name_or_fixed() {
    let check = Check {
        revision: "r1".into(),
        timestamp: Timestamp::now(),
    };
    assert_eq!(check.request_id(), "r1");
    let ping = Ping {
        request_id: "p1",
        timestamp: Timestamp::now(),
    };
    assert_eq!(Request::request_id(&ping), "p1");

    let verdict = Verdict {
        revision: "r1".into(),
        validator: "policy".into(),
        ok: true,
        timestamp: Timestamp::now(),
    };
    assert_eq!(Response::request_id(&verdict), "r1");
    assert_eq!(verdict.responder(), "policy");
    assert!(verdict.ok);

    let pong = Pong {
        request_id: "p1".into(),
        responder: "echo".into(),
        timestamp: Timestamp::now(),
    };
    assert_eq!(
        (Response::request_id(&pong), pong.responder()),
        ("p1", "echo")
    );

    let schema = SchemaVerdict("r2".into(), Timestamp::now());
    assert_eq!(
        (Response::request_id(&schema), schema.responder()),
        ("r2", "schema")
    );
    assert_eq!(schema.event_type(), "SchemaVerdict");
}

#[test]
fn derived_types_work_as_events_subscriptions_and_requests_on_a_bus() {
    let bus = EventBus::new();
    let by_type = bus.subscribe_to::<RouteAdded>("typed", 4).unwrap();
    let by_name = bus.subscribe_types("named", 4, ["route.added"]).unwrap();
    let checks = bus.subscribe_to::<Check>("policy", 4).unwrap();
    bus.start();
    bus.publish(RouteAdded {
        path: "/web".into(),
        timestamp: Timestamp::now(),
    });
    assert_eq!(by_type.recv().unwrap().path, "/web");
    assert_eq!(by_name.recv().unwrap().event_type(), "route.added");

    let responder = {
        let bus = bus.clone();
        std::thread::spawn(move || {
            let check = checks.recv().unwrap();
            bus.publish(Verdict {
                revision: check.request_id().to_owned(),
                validator: "policy".into(),
                ok: true,
                timestamp: Timestamp::now(),
            });
        })
    };
    let result = bus
        .request::<Verdict, _>(
            Check {
                revision: "r9".into(),
                timestamp: Timestamp::now(),
            },
            RequestOptions::new(["policy"]).timeout(Duration::from_secs(30)),
        )
        .unwrap();
    responder.join().unwrap();
    assert_eq!(result.responses.len(), 1);
    assert!(result.responses[0].ok);
}
