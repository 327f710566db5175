//! Drop reporting: what a dropped event tells the application, and the callback slot.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::event::Event;
use crate::log;
use crate::sync::snapshot::{Loaded, Snapshot};
use crate::sync::{AtomicBool, AtomicU64, Ordering};

/// Why an event was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// A critical subscriber's buffer was full.
    BufferFull,
    /// The bus was buffering (before `start()` or after `pause()`) and its
    /// pre-start buffer was full.
    PreStartOverflow,
    /// A [waiting publish](crate::EventBus::publish_waiting) reached its
    /// deadline while this critical subscriber's buffer was still full (or,
    /// with an empty `subscriber_name`, before the bus started).
    WaitTimedOut,
    /// A waiting publish was cancelled (its future dropped) while this
    /// critical subscriber's buffer was still full (or, with an empty
    /// `subscriber_name`, before the bus started).
    WaitCancelled,
}

/// What the drop callback learns about a dropped event.
///
/// Borrowed, so reporting a drop allocates nothing; copy what you keep.
#[derive(Clone, Copy)]
pub struct DropInfo<'a> {
    /// Why the event was dropped.
    pub reason: DropReason,
    /// The dropped event.
    pub event: &'a dyn Event,
    /// `event.event_type()`.
    pub event_type: &'a str,
    /// The subscriber that missed it; empty for [`DropReason::PreStartOverflow`]
    /// and for a waiting publish that ended before the bus started.
    pub subscriber_name: &'a str,
    /// The capacity of the buffer that was full: the subscriber's, or the
    /// bus's pre-start limit for [`DropReason::PreStartOverflow`] (0 for a
    /// waiting publish that ended before the bus started).
    pub capacity: usize,
    /// The subscriber's type filter joined by commas; empty for a universal
    /// subscriber and for [`DropReason::PreStartOverflow`].
    pub event_types: &'a str,
}

impl fmt::Debug for DropInfo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DropInfo")
            .field("reason", &self.reason)
            .field("event_type", &self.event_type)
            .field("subscriber_name", &self.subscriber_name)
            .field("capacity", &self.capacity)
            .field("event_types", &self.event_types)
            .finish()
    }
}

/// The drop callback: called for every event a critical subscriber misses and
/// for every event the pre-start buffer cannot hold.
///
/// It runs on the publishing thread (or on the thread calling `start()`, after
/// the replay), never while the bus holds a lock, so it may publish, subscribe
/// or unsubscribe. Keep it short: the publisher waits for it.
pub type DropCallback = Box<dyn Fn(&DropInfo<'_>) + Send + Sync + 'static>;

/// The bus's callback slot: read lock-free on every drop, replaced at any time.
pub(crate) struct DropReporter {
    callback: Snapshot<Option<DropCallback>>,
    /// Bumped after each replacement of the callback, so that a publish can
    /// keep the callback it loaded for all its drops and still notice a
    /// replacement that completed meanwhile.
    generation: AtomicU64,
    panicked: AtomicBool,
}

/// One publish's (or one replay's) view of the callback: loaded at the first
/// drop, reloaded only if the callback has been replaced since.
pub(crate) struct DropSession<'a> {
    reporter: &'a DropReporter,
    loaded: Option<(u64, Loaded<Option<DropCallback>>)>,
}

impl DropReporter {
    pub(crate) fn new() -> Self {
        Self {
            callback: Snapshot::new(Arc::new(None)),
            generation: AtomicU64::new(0),
            panicked: AtomicBool::new(false),
        }
    }

    pub(crate) fn set(&self, callback: Option<DropCallback>) {
        self.callback.store(Arc::new(callback));
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn session(&self) -> DropSession<'_> {
        DropSession {
            reporter: self,
            loaded: None,
        }
    }
}

impl DropSession<'_> {
    /// Calls the callback, if any. A panic in it is caught and logged once; it
    /// never reaches the publisher.
    ///
    /// A drop that happens after `set` returns sees the bumped generation
    /// (release/acquire), so it reloads and gets the new callback (design,
    /// "Memory orders": the drop callback slot).
    pub(crate) fn report(&mut self, info: &DropInfo<'_>) {
        let reporter = self.reporter;
        let generation = reporter.generation.load(Ordering::Acquire);
        let loaded = match &mut self.loaded {
            Some((seen, loaded)) if *seen == generation => loaded,
            stale => &mut stale.insert((generation, reporter.callback.load())).1,
        };
        let Some(callback) = Option::as_ref(loaded) else {
            return;
        };
        if catch_unwind(AssertUnwindSafe(|| callback(info))).is_err()
            && !reporter.panicked.swap(true, Ordering::Relaxed)
        {
            log::warning!(
                event_type = info.event_type,
                subscriber = info.subscriber_name,
                "switchboard: the drop callback panicked; the panic was caught and the \
                 event stays counted as dropped (reported once per bus)"
            );
        }
    }
}
