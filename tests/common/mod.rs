//! The integration tests' fixtures, in one place: every test binary declares
//! `mod common;` and takes what it needs.
//!
//! - [`events`]: the event types the tests publish (`#[derive(Event)]`) and
//!   helpers to build and read them.
//! - [`drops`]: [`DropRecorder`](drops::DropRecorder), a drop callback keeping an owned copy of
//!   every report.
//! - [`capture`], with the `tracing` feature: a `tracing` subscriber that
//!   records what the bus logs on the test's thread.
//! - here: [`running_bus`], the guard durations, and the bounded waits
//!   [`within`] and [`wait_until`].
//!
//! `alloc_probe.rs` lives in this folder but is not a module of `common`: it
//! installs a global allocator, which must stay a decision of each test
//! binary (a binary has one global allocator, and the others should run on
//! the system's untouched). The binaries that measure allocations include it
//! themselves with `#[path = "common/alloc_probe.rs"] mod alloc_probe;`.
//!
//! The event types need the `derive` feature (on by default, and in every
//! test run of CI); so do [`events`] and [`drops`], and the test binaries
//! that use them.
#![allow(dead_code)] // each test binary uses a different subset

#[cfg(feature = "tracing")]
pub mod capture;
#[cfg(feature = "derive")]
pub mod drops;
#[cfg(feature = "derive")]
pub mod events;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use switchboard::EventBus;

/// The bound on every wait for something that should happen: far above what
/// any test needs, low enough to fail fast instead of hanging the suite.
pub const GUARD: Duration = Duration::from_secs(10);

/// The bound on a test step that itself waits up to [`GUARD`] (such as a
/// request whose timeout is `GUARD`).
pub const WITHIN: Duration = Duration::from_secs(30);

/// A started bus.
pub fn running_bus() -> EventBus {
    let bus = EventBus::new();
    bus.start();
    bus
}

/// Runs `f` on its own thread and returns its result, failing the test if it
/// is not done within `limit`: a deadlock or a lost wake-up fails instead of
/// hanging. A panic in `f` is resumed here.
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (sender, receiver) = mpsc::channel();
    let thread = thread::spawn(move || {
        let _ = sender.send(f());
    });
    match receiver.recv_timeout(limit) {
        Ok(value) => {
            thread.join().expect("the thread sent its result");
            value
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread exits only after sending"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: not done after {limit:?} (a deadlock or a lost wake-up?)")
        }
    }
}

/// Waits until `condition` holds, checking every millisecond; fails the test
/// if it still does not after [`GUARD`].
#[track_caller]
pub fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + GUARD;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not after {GUARD:?}");
        thread::sleep(Duration::from_millis(1));
    }
}
