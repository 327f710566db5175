//! Delivery: the registry snapshot publishers read, offering one event to
//! every matching subscriber, and counting and reporting what they missed.

use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::drops::{DropCallback, DropInfo, DropReason, DropReporter, DropSession};
use crate::event::Event;
use crate::log;
use crate::sync::snapshot::Snapshot;
use crate::sync::{AtomicU64, Ordering};

use super::registry::Registry;
use super::subscriber::{Handover, Offer, Subscriber, SubscriberState};

/// What publishers read and write: the current subscribers, the drop
/// callback, and the bus's drop totals (each on its own cache line).
pub(super) struct Delivery {
    /// The current subscribers, read lock-free; stored by the registry
    /// writer (`writer.rs`).
    registry: Snapshot<Registry>,
    drops: DropReporter,
    dropped_critical: CachePadded<AtomicU64>,
    dropped_observability: CachePadded<AtomicU64>,
}

/// What one publish did, counted locally.
#[derive(Default)]
struct Tally {
    delivered: usize,
    dropped_critical: u64,
    dropped_observability: u64,
}

impl Tally {
    #[inline(always)]
    fn dropped(
        &mut self,
        subscriber: &Arc<Subscriber>,
        event: &Arc<dyn Event>,
        on_critical_drop: &mut impl FnMut(&Arc<Subscriber>, &Arc<dyn Event>),
    ) {
        if subscriber.state().lossy {
            self.dropped_observability += 1;
        } else {
            self.dropped_critical += 1;
            on_critical_drop(subscriber, event);
        }
    }
}

impl Delivery {
    /// Delivery to the subscribers of `registry`, with no drop callback.
    pub(super) fn new(registry: Arc<Registry>) -> Self {
        Self {
            registry: Snapshot::new(registry),
            drops: DropReporter::new(),
            dropped_critical: CachePadded::new(AtomicU64::new(0)),
            dropped_observability: CachePadded::new(AtomicU64::new(0)),
        }
    }

    /// The snapshot of the current subscribers.
    pub(super) fn registry(&self) -> &Snapshot<Registry> {
        &self.registry
    }

    pub(super) fn set_drop_callback(&self, callback: Option<DropCallback>) {
        self.drops.set(callback);
    }

    pub(super) fn dropped_critical(&self) -> u64 {
        self.dropped_critical.load(Ordering::Relaxed)
    }

    pub(super) fn dropped_observability(&self) -> u64 {
        self.dropped_observability.load(Ordering::Relaxed)
    }

    /// Delivers `event` now, reporting critical drops to the drop callback
    /// as they happen.
    #[inline(always)]
    pub(super) fn deliver_now(&self, event: Arc<dyn Event>) -> usize {
        let mut drops = self.drops.session();
        self.deliver(event, |subscriber, event| {
            self.report_critical_drop(
                &mut drops,
                subscriber.state(),
                &**event,
                DropReason::BufferFull,
            )
        })
    }

    /// Offers `event` to every matching subscriber, the last one getting the
    /// caller's `Arc`. `on_critical_drop` is told about each critical
    /// subscriber that missed it.
    ///
    /// The bus's drop totals are added once, after the loop: one atomic
    /// read-modify-write per publish rather than one per full subscriber.
    /// Each subscriber's own count is raised before its drop is reported.
    #[inline]
    pub(super) fn deliver(
        &self,
        event: Arc<dyn Event>,
        mut on_critical_drop: impl FnMut(&Arc<Subscriber>, &Arc<dyn Event>),
    ) -> usize {
        let registry = self.registry.load();
        let Some((last, others)) = registry.matching(&*event).split_last() else {
            return 0;
        };
        let mut tally = Tally::default();
        for part in others.parts() {
            for subscriber in part {
                match subscriber.offer(&event) {
                    Offer::Delivered => tally.delivered += 1,
                    Offer::Full => tally.dropped(subscriber, &event, &mut on_critical_drop),
                    Offer::Closed => {}
                }
            }
        }
        match last.hand_over(event) {
            Handover::Delivered => tally.delivered += 1,
            Handover::Full(event) => tally.dropped(last, &event, &mut on_critical_drop),
            Handover::Closed => {}
        }
        if tally.dropped_critical > 0 {
            self.dropped_critical
                .fetch_add(tally.dropped_critical, Ordering::Relaxed);
        }
        if tally.dropped_observability > 0 {
            self.dropped_observability
                .fetch_add(tally.dropped_observability, Ordering::Relaxed);
        }
        tally.delivered
    }

    /// Adds `missed` (events that found a subscriber's buffer full outside a
    /// publish, already counted on the subscriber) to the bus totals.
    pub(super) fn count_missed(&self, missed: &[(Arc<Subscriber>, Arc<dyn Event>)]) {
        for (subscriber, _) in missed {
            let total = if subscriber.state().lossy {
                &self.dropped_observability
            } else {
                &self.dropped_critical
            };
            total.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Reports the critical ones of `missed` to the drop callback, in order;
    /// called with no lock of the bus held.
    pub(super) fn report_missed(&self, missed: &[(Arc<Subscriber>, Arc<dyn Event>)]) {
        let mut drops = self.drops.session();
        for (subscriber, event) in missed {
            if !subscriber.state().lossy {
                self.report_critical_drop(
                    &mut drops,
                    subscriber.state(),
                    &**event,
                    DropReason::BufferFull,
                );
            }
        }
    }

    /// Counts a critical drop at each of `missed` (subscribers a waiting
    /// publish gave up on, already counted on the subscriber) and reports
    /// them for `reason`.
    pub(super) fn report_given_up(
        &self,
        missed: &[&SubscriberState],
        event: &dyn Event,
        reason: DropReason,
    ) {
        if missed.is_empty() {
            return;
        }
        self.dropped_critical
            .fetch_add(missed.len() as u64, Ordering::Relaxed);
        let mut drops = self.drops.session();
        for state in missed {
            self.report_critical_drop(&mut drops, state, event, reason);
        }
    }

    /// Tells the drop callback about a drop that no subscriber counts (the
    /// pre-start buffer's).
    pub(super) fn report(&self, info: &DropInfo<'_>) {
        self.drops.session().report(info);
    }

    /// Logs a critical subscriber's drop and tells the drop callback.
    fn report_critical_drop(
        &self,
        drops: &mut DropSession<'_>,
        state: &SubscriberState,
        event: &dyn Event,
        reason: DropReason,
    ) {
        let event_type = event.event_type();
        log::warning!(
            subscriber = &*state.name,
            event_type,
            capacity = state.capacity,
            ?reason,
            "switchboard: critical subscriber missed an event"
        );
        drops.report(&DropInfo {
            reason,
            event,
            event_type,
            subscriber_name: &state.name,
            capacity: state.capacity,
            event_types: &state.filter_label,
        });
    }
}
