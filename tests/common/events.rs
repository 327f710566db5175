//! The event types the tests publish, and helpers to build and read them.
//!
//! Each is `#[derive(Event)]`d with a fixed timestamp (`Timestamp::UNIX_EPOCH`):
//! no test depends on the time, and a fixed one keeps the events equal run to
//! run.

use std::sync::Arc;

use switchboard::{Event, Timestamp};

/// A numbered event whose event type is chosen per instance: the tests'
/// general-purpose event (`numbered("a", 1)`, `numbered("tick", n)`).
#[derive(Debug, Event)]
pub struct Numbered {
    #[event(type)]
    pub kind: &'static str,
    pub n: u64,
    pub timestamp: Timestamp,
}

/// A [`Numbered`] event of type `kind`.
pub fn numbered(kind: &'static str, n: u64) -> Numbered {
    Numbered {
        kind,
        n,
        timestamp: Timestamp::UNIX_EPOCH,
    }
}

/// Another Rust type, of event type `"other"`: for `TypeId` filtering, and for
/// an event that string filters on the [`Numbered`] types do not match.
#[derive(Debug, Event)]
#[event(type = "other")]
pub struct Other(pub u64, #[event(timestamp)] pub Timestamp);

/// An [`Other`] event carrying `n`.
pub fn other(n: u64) -> Other {
    Other(n, Timestamp::UNIX_EPOCH)
}

/// An event tagged with the publishing thread, for per-publisher order checks.
#[derive(Debug, Event)]
#[event(type = "from-thread")]
pub struct FromThread {
    pub thread: usize,
    pub seq: u64,
    pub timestamp: Timestamp,
}

/// The `seq`-th event of publisher `thread`.
pub fn from_thread(thread: usize, seq: u64) -> FromThread {
    FromThread {
        thread,
        seq,
        timestamp: Timestamp::UNIX_EPOCH,
    }
}

/// A status update, coalescible: only the latest per `key` (its event type)
/// matters.
#[derive(Debug, Event)]
#[event(coalescible)]
pub struct Status {
    #[event(type)]
    pub key: &'static str,
    pub value: u32,
    pub timestamp: Timestamp,
}

/// A [`Status`] update of `key`.
pub fn status(key: &'static str, value: u32) -> Status {
    Status {
        key,
        value,
        timestamp: Timestamp::UNIX_EPOCH,
    }
}

/// A command, of event type `"command"`: not coalescible, so never skipped.
#[derive(Debug, Event)]
#[event(type = "command")]
pub struct Command(pub u32, #[event(timestamp)] pub Timestamp);

/// The `n`-th [`Command`].
pub fn command(n: u32) -> Command {
    Command(n, Timestamp::UNIX_EPOCH)
}

/// The number carried by a [`Numbered`] event; panics on any other event.
pub fn n_of(event: &Arc<dyn Event>) -> u64 {
    event
        .downcast_ref::<Numbered>()
        .expect("a Numbered event")
        .n
}

/// The number any of the events above carries: a [`Numbered`]'s `n`, an
/// [`Other`]'s, a [`FromThread`]'s `seq`; `None` for any other event.
pub fn number(event: &dyn Event) -> Option<u64> {
    if let Some(numbered) = event.downcast_ref::<Numbered>() {
        Some(numbered.n)
    } else if let Some(other) = event.downcast_ref::<Other>() {
        Some(other.0)
    } else {
        event.downcast_ref::<FromThread>().map(|e| e.seq)
    }
}
