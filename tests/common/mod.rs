//! Event types and a watchdog shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, SystemTime};

use switchboard::Event;

/// A numbered event whose `event_type()` is chosen per instance.
#[derive(Debug)]
pub struct Numbered {
    pub kind: &'static str,
    pub n: u64,
}

impl Event for Numbered {
    fn event_type(&self) -> &str {
        self.kind
    }
    fn timestamp(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH
    }
}

pub fn numbered(kind: &'static str, n: u64) -> Numbered {
    Numbered { kind, n }
}

/// The number carried by a `Numbered` event.
pub fn n_of(event: &Arc<dyn Event>) -> u64 {
    event
        .downcast_ref::<Numbered>()
        .expect("a Numbered event")
        .n
}

/// Another Rust type, for `TypeId` filtering.
#[derive(Debug)]
pub struct Other(pub u64);

impl Event for Other {
    fn event_type(&self) -> &str {
        "other"
    }
    fn timestamp(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH
    }
}

/// An event tagged with the publishing thread, for per-publisher order checks.
#[derive(Debug)]
pub struct FromThread {
    pub thread: usize,
    pub seq: u64,
}

impl Event for FromThread {
    fn event_type(&self) -> &str {
        "from-thread"
    }
    fn timestamp(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH
    }
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
