//! Event types shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::Arc;
use std::time::SystemTime;

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
