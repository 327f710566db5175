//! The late-subscription warning: logged through `tracing` with the caller's
//! file and line when a non-leader subscription is made while the bus runs.
//!
//! Each test installs its own capturing `tracing` subscriber for its thread
//! only (`with_default`), so tests running in parallel do not see each other's
//! events. Every "logs nothing" test ends with a control subscription that must
//! warn, so a capture that silently saw nothing would fail it.

#![cfg(all(feature = "tracing", feature = "derive"))]

mod common;

use common::capture::{captured, Captured};
use common::events::{numbered, Numbered};
use common::running_bus;
use switchboard::{EventBus, SubscribeOptions, TypeSet};
use tracing::Level;

/// Runs `f` with a capturing subscriber on this thread; returns the
/// late-subscription warnings it logged.
fn late_warnings(f: impl FnOnce()) -> Vec<Captured> {
    captured(f)
        .into_iter()
        .filter(|e| e.message().contains("subscribed after start()"))
        .collect()
}

/// Checks one late-subscription warning: level, target, subscriber name and a
/// `caller` of `tests/warnings.rs:<line>:<column>`.
fn assert_warning_at(warning: &Captured, subscriber: &str, line: u32) {
    assert_eq!(warning.level, Level::WARN);
    assert!(warning.target.starts_with("switchboard"), "{warning:?}");
    assert_eq!(warning.field("subscriber"), subscriber, "{warning:?}");
    let caller = warning.field("caller");
    let expected = format!("{}:{line}:", file!());
    assert!(
        caller.starts_with(&expected),
        "caller {caller:?} should be this test's subscribe call, {expected}<column>"
    );
    assert!(caller.starts_with("tests/warnings.rs:"), "{caller:?}");
}

#[test]
fn subscribe_after_start_warns_with_the_callers_file_and_line() {
    let bus = running_bus();
    let mut line = 0;
    let warnings = late_warnings(|| {
        // The call and `line!()` on one line (rustfmt keeps a short tuple whole).
        let (sub, at) = (bus.subscribe("late", 4), line!());
        assert!(sub.is_ok());
        line = at;
    });
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_warning_at(&warnings[0], "late", line);
}

#[test]
fn every_non_leader_subscribe_after_start_warns_at_its_call() {
    let bus = running_bus();
    let mut lines = Vec::new();
    let warnings = late_warnings(|| {
        let b = &bus;
        let set = TypeSet::new().with::<Numbered>();
        let lossy = SubscribeOptions::new("lossy", 4).lossy();
        let types = SubscribeOptions::new("types", 4).event_types(["ping"]);
        let types_lossy = SubscribeOptions::new("types-lossy", 4)
            .event_types(["ping"])
            .lossy();
        let multiple = SubscribeOptions::new("multiple", 4).rust_types(set);
        let options = SubscribeOptions::new("with", 4);
        let typed_lossy = SubscribeOptions::of::<Numbered>("typed-lossy", 4).lossy();
        // Each call and its `line!()` on one line.
        let (a, la) = (b.subscribe_with(lossy), line!());
        let (t, lt) = (b.subscribe_with(types), line!());
        let (tl, ltl) = (b.subscribe_with(types_lossy), line!());
        let (m, lm) = (b.subscribe_with(multiple), line!());
        let (w, lw) = (b.subscribe_with(options), line!());
        let (y, ly) = (b.subscribe_with(typed_lossy), line!());
        for sub in [a, t, tl, m, w] {
            assert!(sub.is_ok());
        }
        assert!(y.is_ok());
        lines = vec![
            ("lossy", la),
            ("types", lt),
            ("types-lossy", ltl),
            ("multiple", lm),
            ("with", lw),
            ("typed-lossy", ly),
        ];
    });
    assert_eq!(warnings.len(), lines.len(), "{warnings:?}");
    for (warning, (name, line)) in warnings.iter().zip(lines) {
        assert_warning_at(warning, name, line);
    }
}

#[test]
fn typed_subscribe_to_after_start_warns_naming_the_test_file() {
    let bus = running_bus();
    let mut line = 0;
    let warnings = late_warnings(|| {
        let (sub, at) = (bus.subscribe_to::<Numbered>("typed", 4), line!());
        assert!(sub.is_ok());
        line = at;
    });
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_warning_at(&warnings[0], "typed", line);
}

#[test]
fn subscribe_before_start_logs_nothing() {
    let bus = EventBus::new();
    let mut control_line = 0;
    let warnings = late_warnings(|| {
        let _a = bus.subscribe("early", 4).unwrap();
        let _b = bus
            .subscribe_with(SubscribeOptions::new("early-lossy", 4).lossy())
            .unwrap();
        let _c = bus
            .subscribe_with(SubscribeOptions::new("early-types", 4).event_types(["ping"]))
            .unwrap();
        let _d = bus.subscribe_to::<Numbered>("early-typed", 4).unwrap();
        bus.start();
        let (control, at) = (bus.subscribe("control", 4), line!());
        assert!(control.is_ok());
        control_line = at;
    });
    assert_eq!(warnings.len(), 1, "only the control warns: {warnings:?}");
    assert_warning_at(&warnings[0], "control", control_line);
}

#[test]
fn leader_only_subscriptions_after_start_log_nothing() {
    let bus = running_bus();
    let mut control_line = 0;
    let warnings = late_warnings(|| {
        let _a = bus
            .subscribe_with(SubscribeOptions::new("leader", 4).leader_only())
            .unwrap();
        let _b = bus
            .subscribe_with(
                SubscribeOptions::new("leader-types", 4)
                    .event_types(["ping"])
                    .leader_only(),
            )
            .unwrap();
        let _c = bus
            .subscribe_with(
                SubscribeOptions::new("leader-with", 4)
                    .lossy()
                    .leader_only(),
            )
            .unwrap();
        let _d = bus
            .subscribe_with(SubscribeOptions::of::<Numbered>("leader-typed", 4).leader_only())
            .unwrap();
        let _e = bus
            .subscribe_with(
                SubscribeOptions::of::<Numbered>("leader-typed-retained", 4)
                    .with_retained()
                    .lossy()
                    .leader_only(),
            )
            .unwrap();
        let (control, at) = (bus.subscribe("control", 4), line!());
        assert!(control.is_ok());
        control_line = at;
    });
    assert_eq!(warnings.len(), 1, "only the control warns: {warnings:?}");
    assert_warning_at(&warnings[0], "control", control_line);
}

#[test]
fn subscribe_after_pause_logs_nothing() {
    let bus = running_bus();
    bus.pause();
    let mut control_line = 0;
    let warnings = late_warnings(|| {
        let _a = bus.subscribe("paused", 4).unwrap();
        let _b = bus.subscribe_to::<Numbered>("paused-typed", 4).unwrap();
        bus.start();
        let (control, at) = (bus.subscribe("control", 4), line!());
        assert!(control.is_ok());
        control_line = at;
    });
    assert_eq!(warnings.len(), 1, "only the control warns: {warnings:?}");
    assert_warning_at(&warnings[0], "control", control_line);
}

#[test]
fn a_rejected_subscription_after_start_logs_no_late_warning() {
    let bus = running_bus();
    let mut control_line = 0;
    let warnings = late_warnings(|| {
        assert!(bus.subscribe("too-big", usize::MAX).is_err());
        let empty: [&str; 0] = [];
        assert!(bus
            .subscribe_with(SubscribeOptions::new("empty", 4).event_types(empty))
            .is_err());
        let (control, at) = (bus.subscribe("control", 4), line!());
        assert!(control.is_ok());
        control_line = at;
    });
    assert_eq!(warnings.len(), 1, "only the control warns: {warnings:?}");
    assert_warning_at(&warnings[0], "control", control_line);
}

#[test]
fn a_panicking_drop_callback_is_logged_once() {
    let bus = running_bus();
    bus.set_drop_callback(Some(Box::new(|_| panic!("callback panics"))));
    let _full = bus
        .subscribe_with(SubscribeOptions::new("full", 0).leader_only())
        .unwrap();
    let events = captured(|| {
        for _ in 0..3 {
            bus.publish(numbered("ping", 0));
        }
    });
    let panics: Vec<_> = events
        .iter()
        .filter(|e| e.message().contains("drop callback panicked"))
        .collect();
    assert_eq!(panics.len(), 1, "{events:?}");
    assert_eq!(panics[0].level, Level::WARN);
    assert_eq!(bus.stats().dropped_critical, 3);
}
