//! What the derives generate, checked through the traits and on a real bus.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use switchboard::{
    Event, EventBus, Request, RequestOptions, Response, SubscribeOptions, Timestamp,
};

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
    let only_mem = bus
        .subscribe_with(SubscribeOptions::new("mem", 4).event_types(["mem"]))
        .unwrap();
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
    let by_name = bus
        .subscribe_with(SubscribeOptions::new("named", 4).event_types(["route.added"]))
        .unwrap();
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

mod trace {
    use switchboard::{Event, Timestamp, TraceContext};

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// Found by its type.
    #[derive(Event)]
    pub(super) struct Traced {
        pub(super) timestamp: Timestamp,
        pub(super) trace: Option<TraceContext>,
    }

    type Context = Option<TraceContext>;

    /// Marked: an alias the derive cannot see through, in a tuple struct.
    #[derive(Event)]
    struct Marked(#[event(trace)] Context, #[event(timestamp)] Timestamp);

    /// Two of the type: the marked one is the event's.
    #[derive(Event)]
    struct Two {
        timestamp: Timestamp,
        cause: Option<switchboard::TraceContext>,
        #[event(trace)]
        own: Option<TraceContext>,
    }

    #[test]
    fn a_field_of_type_option_trace_context_or_a_marked_one_is_the_trace_context() {
        let parent = TraceContext::parse(PARENT).unwrap();
        let mut traced = Traced {
            timestamp: Timestamp::now(),
            trace: None,
        };
        assert_eq!(traced.trace_context(), None);
        traced.set_trace_context(Some(parent.clone()));
        assert_eq!(traced.trace.as_ref(), Some(&parent));
        assert_eq!(traced.trace_context(), Some(&parent));
        traced.set_trace_context(None);
        assert_eq!(traced.trace, None);

        let mut marked = Marked(Some(parent.clone()), Timestamp::now());
        assert_eq!(marked.trace_context(), Some(&parent));
        marked.set_trace_context(None);
        assert_eq!(marked.0, None);

        let mut two = Two {
            timestamp: Timestamp::now(),
            cause: Some(parent.clone()),
            own: None,
        };
        assert_eq!(two.trace_context(), None);
        two.set_trace_context(Some(parent.clone()));
        assert_eq!(two.own, Some(parent));
        assert!(two.cause.is_some());
    }

    #[test]
    fn an_event_without_one_has_none_and_ignores_the_setter() {
        let mut plain = super::Unnamed {
            timestamp: Timestamp::now(),
        };
        plain.set_trace_context(Some(TraceContext::parse(PARENT).unwrap()));
        assert_eq!(plain.trace_context(), None);
    }

    #[test]
    fn the_context_travels_with_the_event_on_the_bus() {
        let bus = switchboard::EventBus::new();
        let subscription = bus.subscribe_to::<Traced>("t", 4).unwrap();
        bus.start();
        let parent = TraceContext::parse(PARENT).unwrap();
        bus.publish(Traced {
            timestamp: Timestamp::now(),
            trace: Some(parent.clone()),
        });
        let received = subscription.recv().unwrap();
        assert_eq!(received.trace_context(), Some(&parent));
        let as_dyn: &dyn Event = &*received;
        assert_eq!(as_dyn.trace_context(), Some(&parent));
    }
}
