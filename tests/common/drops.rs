//! [`DropRecorder`]: a drop callback that keeps an owned copy of every report.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use switchboard::{DropCallback, DropInfo, DropReason, EventBus};

use super::events::number;

/// One drop report, owned: the fields of the [`DropInfo`] the callback was
/// given. The dropped event itself is only borrowed by the callback, so what
/// is kept of it is its [`number`] (the tests' events each carry one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    pub reason: DropReason,
    /// [`number`] of the dropped event: `None` if it is none of the tests'
    /// numbered events.
    pub n: Option<u64>,
    pub event_type: String,
    pub subscriber_name: String,
    pub capacity: usize,
    pub event_types: String,
}

/// Records every drop report it is given, in order. Clones share one record.
///
/// Holds no bus handle, so installing it creates no reference cycle.
/// [`install`](Self::install) makes it a bus's whole drop callback; a
/// callback that does more (publishes, replaces itself, panics) calls
/// [`record`](Self::record) first.
#[derive(Clone, Default)]
pub struct DropRecorder {
    drops: Arc<Mutex<Vec<Dropped>>>,
}

impl DropRecorder {
    /// A recorder installed as `bus`'s drop callback.
    pub fn install(bus: &EventBus) -> Self {
        let recorder = Self::default();
        bus.set_drop_callback(Some(recorder.callback()));
        recorder
    }

    /// A drop callback recording into this recorder.
    pub fn callback(&self) -> DropCallback {
        let recorder = self.clone();
        Box::new(move |info| recorder.record(info))
    }

    /// Records one report.
    pub fn record(&self, info: &DropInfo<'_>) {
        self.lock().push(Dropped {
            reason: info.reason,
            n: number(info.event),
            event_type: info.event_type.to_owned(),
            subscriber_name: info.subscriber_name.to_owned(),
            capacity: info.capacity,
            event_types: info.event_types.to_owned(),
        });
    }

    /// Every report so far, in order.
    pub fn drops(&self) -> Vec<Dropped> {
        self.lock().clone()
    }

    /// How many reports so far.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// The reason of each report, in order.
    pub fn reasons(&self) -> Vec<DropReason> {
        self.lock().iter().map(|d| d.reason).collect()
    }

    /// The number of each dropped event, in order; panics if one carries none.
    pub fn numbers(&self) -> Vec<u64> {
        self.lock()
            .iter()
            .map(|d| d.n.expect("a numbered event"))
            .collect()
    }

    /// The subscriber named in each report, in order (empty for a pre-start
    /// overflow).
    pub fn subscribers(&self) -> Vec<String> {
        self.lock()
            .iter()
            .map(|d| d.subscriber_name.clone())
            .collect()
    }

    /// A callback that panicked after recording (some tests' do) poisons the
    /// lock; the record is complete all the same.
    fn lock(&self) -> MutexGuard<'_, Vec<Dropped>> {
        self.drops.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
