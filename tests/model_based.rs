//! Model-based property test: random sequences of subscribe, unsubscribe,
//! publish, start, pause and receive on one thread, checked step by step
//! against a small sequential reference model of the specification.

#![cfg(feature = "derive")]

mod common;

use std::collections::VecDeque;

use common::events::{n_of, numbered, other, Other};
use proptest::prelude::*;
use switchboard::{Event, EventBus, Subscription, TryRecvError};

const MAX_PRE_START: usize = 3;

/// The event kinds published: two string types and one other Rust type.
#[derive(Clone, Copy, Debug)]
enum Kind {
    A,
    B,
    Other,
}

impl Kind {
    fn event_type(self) -> &'static str {
        match self {
            Kind::A => "a",
            Kind::B => "b",
            Kind::Other => "other",
        }
    }
}

#[derive(Clone, Debug)]
enum Filter {
    All,
    Strings(Vec<&'static str>),
    OtherType,
}

impl Filter {
    fn matches(&self, kind: Kind) -> bool {
        match self {
            Filter::All => true,
            Filter::Strings(names) => names.contains(&kind.event_type()),
            Filter::OtherType => matches!(kind, Kind::Other),
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Subscribe {
        filter: Filter,
        lossy: bool,
        capacity: usize,
    },
    Unsubscribe(usize),
    DropSubscription(usize),
    Publish(Kind),
    Start,
    Pause,
    Recv(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![Just(Kind::A), Just(Kind::B), Just(Kind::Other)];
    let filter = prop_oneof![
        Just(Filter::All),
        Just(Filter::Strings(vec!["a"])),
        Just(Filter::Strings(vec!["a", "other"])),
        Just(Filter::Strings(vec!["b", "b"])),
        Just(Filter::OtherType),
    ];
    prop_oneof![
        2 => (filter, any::<bool>(), 0usize..4)
            .prop_map(|(filter, lossy, capacity)| Op::Subscribe { filter, lossy, capacity }),
        1 => (0usize..6).prop_map(Op::Unsubscribe),
        1 => (0usize..6).prop_map(Op::DropSubscription),
        5 => kind.prop_map(Op::Publish),
        1 => Just(Op::Start),
        1 => Just(Op::Pause),
        4 => (0usize..6).prop_map(Op::Recv),
    ]
}

/// One subscriber in the reference model.
struct ModelSub {
    filter: Filter,
    lossy: bool,
    capacity: usize,
    subscribed: bool,
    queue: VecDeque<u64>,
    dropped: u64,
}

/// The specification, sequentially.
#[derive(Default)]
struct Model {
    running: bool,
    pre_start: Vec<(Kind, u64)>,
    subs: Vec<ModelSub>,
    dropped_critical: u64,
    dropped_observability: u64,
    dropped_pre_start: u64,
}

impl Model {
    fn deliver(&mut self, kind: Kind, n: u64) -> usize {
        let mut delivered = 0;
        for sub in self.subs.iter_mut().filter(|s| s.subscribed) {
            if !sub.filter.matches(kind) {
                continue;
            }
            if sub.queue.len() < sub.capacity {
                sub.queue.push_back(n);
                delivered += 1;
            } else {
                sub.dropped += 1;
                if sub.lossy {
                    self.dropped_observability += 1;
                } else {
                    self.dropped_critical += 1;
                }
            }
        }
        delivered
    }

    fn publish(&mut self, kind: Kind, n: u64) -> usize {
        if self.running {
            self.deliver(kind, n)
        } else {
            if self.pre_start.len() < MAX_PRE_START {
                self.pre_start.push((kind, n));
            } else {
                self.dropped_pre_start += 1;
            }
            0
        }
    }

    fn start(&mut self) {
        if !self.running {
            for (kind, n) in std::mem::take(&mut self.pre_start) {
                self.deliver(kind, n);
            }
            self.running = true;
        }
    }
}

fn event(kind: Kind, n: u64) -> Box<dyn FnOnce(&EventBus) -> usize> {
    match kind {
        Kind::Other => Box::new(move |bus| bus.publish(other(n))),
        k => Box::new(move |bus| bus.publish(numbered(k.event_type(), n))),
    }
}

fn number(event: &std::sync::Arc<dyn Event>) -> u64 {
    match event.downcast_ref::<Other>() {
        Some(o) => o.0,
        None => n_of(event),
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let bus = EventBus::builder().pre_start_limit(MAX_PRE_START).build();
    let mut model = Model::default();
    let mut subs: Vec<Option<Subscription>> = Vec::new();
    let mut next = 0u64;

    for op in ops {
        match op {
            Op::Subscribe {
                filter,
                lossy,
                capacity,
            } => {
                let mut options = switchboard::SubscribeOptions::new("s", capacity);
                if lossy {
                    options = options.lossy();
                }
                options = match &filter {
                    Filter::All => options,
                    Filter::Strings(names) => options.event_types(names.iter().copied()),
                    Filter::OtherType => {
                        options.rust_types(switchboard::TypeSet::new().with::<Other>())
                    }
                };
                subs.push(Some(bus.subscribe_with(options).unwrap()));
                model.subs.push(ModelSub {
                    filter,
                    lossy,
                    capacity,
                    subscribed: true,
                    queue: VecDeque::new(),
                    dropped: 0,
                });
            }
            Op::Unsubscribe(i) => {
                if let Some(Some(sub)) = subs.get(i) {
                    let expected = std::mem::replace(&mut model.subs[i].subscribed, false);
                    prop_assert_eq!(bus.unsubscribe(sub), expected);
                }
            }
            Op::DropSubscription(i) => {
                if let Some(slot) = subs.get_mut(i) {
                    if slot.take().is_some() {
                        model.subs[i].subscribed = false;
                        model.subs[i].queue.clear();
                    }
                }
            }
            Op::Publish(kind) => {
                let n = next;
                next += 1;
                let expected = model.publish(kind, n);
                prop_assert_eq!(event(kind, n)(&bus), expected);
            }
            Op::Start => {
                model.start();
                bus.start();
            }
            Op::Pause => {
                model.running = false;
                bus.pause();
            }
            Op::Recv(i) => {
                if let Some(Some(sub)) = subs.get(i) {
                    let m = &mut model.subs[i];
                    match (sub.try_recv(), m.queue.pop_front()) {
                        (Ok(event), Some(n)) => prop_assert_eq!(number(&event), n),
                        (Err(TryRecvError::Empty), None) => prop_assert!(m.subscribed),
                        (Err(TryRecvError::Closed), None) => prop_assert!(!m.subscribed),
                        (got, want) => {
                            return Err(TestCaseError::fail(format!(
                                "subscription {i}: got {got:?}, model says {want:?}"
                            )))
                        }
                    }
                }
            }
        }

        // After every step, every observable counter agrees with the model.
        prop_assert_eq!(bus.is_running(), model.running);
        prop_assert_eq!(bus.stats().pre_start_len, model.pre_start.len());
        prop_assert_eq!(bus.stats().dropped_critical, model.dropped_critical);
        prop_assert_eq!(
            bus.stats().dropped_observability,
            model.dropped_observability
        );
        prop_assert_eq!(bus.stats().dropped_pre_start, model.dropped_pre_start);
        prop_assert_eq!(
            bus.stats().subscriber_count(),
            model.subs.iter().filter(|s| s.subscribed).count()
        );
        for (sub, m) in subs.iter().zip(&model.subs) {
            if let Some(sub) = sub {
                prop_assert_eq!(sub.len(), m.queue.len());
                prop_assert_eq!(sub.dropped(), m.dropped);
                prop_assert_eq!(sub.is_subscribed(), m.subscribed);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_bus_behaves_like_the_sequential_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}
