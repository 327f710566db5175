//! Counting published events without a read-modify-write shared by every
//! publisher.
//!
//! Every publish counts itself. One shared atomic counter would cost each
//! publish a locked read-modify-write, and with publishers on several cores
//! the counter's cache line would bounce between them on every publish.
//! Instead each publishing thread gets its own slot (on its own cache line)
//! the first time it publishes on a bus, and increments it with a plain load
//! and store: only that thread writes it, so nothing is lost. Reading the
//! total sums the slots; each slot is exact, so the sum of what happened
//! before the read is exact too.
//!
//! Under loom (which models the crate's atomics, but not thread-locals) it is
//! one shared counter: the count is the same, only the cost differs.

#[cfg(not(switchboard_loom))]
pub(crate) use self::sharded::PublishedCounter;

#[cfg(switchboard_loom)]
pub(crate) use self::shared::PublishedCounter;

#[cfg(not(switchboard_loom))]
mod sharded {
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use crossbeam_utils::CachePadded;

    use crate::sync::lock;

    /// One thread's count for one bus.
    type Slot = CachePadded<AtomicU64>;

    /// Makes bus ids: a thread's slots are looked up by them.
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);

    thread_local! {
        /// This thread's slots, by bus id: almost always one or two.
        static SLOTS: RefCell<Vec<(u64, Arc<Slot>)>> = const { RefCell::new(Vec::new()) };
    }

    pub(crate) struct PublishedCounter {
        id: u64,
        /// Every live thread's slot for this bus, and what ended threads
        /// counted: for reading the total.
        slots: Mutex<Slots>,
        /// Publishes made where this thread's slots are gone (from a
        /// thread-local's destructor at thread exit): rare, so shared.
        unslotted: AtomicU64,
    }

    #[derive(Default)]
    struct Slots {
        live: Vec<Arc<Slot>>,
        /// The counts of slots whose thread has ended, folded in when the
        /// next slot is made: the list does not grow with threads that come
        /// and go.
        ended: u64,
    }

    impl PublishedCounter {
        pub(crate) fn new() -> Self {
            Self {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                slots: Mutex::new(Slots::default()),
                unslotted: AtomicU64::new(0),
            }
        }

        /// Counts one publish on this thread.
        #[inline]
        pub(crate) fn add_one(&self) {
            // `try_with`: a publish from a thread-local's destructor, after
            // this one is gone, is counted in a shared slot instead.
            let counted = SLOTS.try_with(|slots| {
                let mut slots = slots.borrow_mut();
                if let Some((_, slot)) = slots.iter().find(|(id, _)| *id == self.id) {
                    // Only this thread writes this slot: no read-modify-write.
                    slot.store(slot.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                } else {
                    slots.push((self.id, self.new_slot(1)));
                    // Slots of buses that are gone are only held here now.
                    slots.retain(|(_, slot)| Arc::strong_count(slot) > 1);
                }
            });
            if counted.is_err() {
                self.unslotted.fetch_add(1, Ordering::Relaxed);
            }
        }

        /// A new slot starting at `count`, registered with this bus (a
        /// thread's first publish on it takes the slot list's lock once).
        #[cold]
        fn new_slot(&self, count: u64) -> Arc<Slot> {
            let slot = Arc::new(CachePadded::new(AtomicU64::new(count)));
            let mut slots = lock(&self.slots);
            // A slot only the list holds belongs to an ended thread: it will
            // not count again.
            let Slots { live, ended } = &mut *slots;
            live.retain(|slot| {
                let alive = Arc::strong_count(slot) > 1;
                if !alive {
                    *ended += slot.load(Ordering::Relaxed);
                }
                alive
            });
            live.push(Arc::clone(&slot));
            slot
        }

        #[cfg(test)]
        pub(super) fn slot_count(&self) -> usize {
            lock(&self.slots).live.len()
        }

        /// How many buses' slots this thread holds (for the tests).
        #[cfg(test)]
        pub(super) fn this_threads_slots() -> usize {
            SLOTS.with(|slots| slots.borrow().len())
        }

        /// Events published so far, on every thread.
        pub(crate) fn total(&self) -> u64 {
            let slots = lock(&self.slots);
            let live: u64 = slots
                .live
                .iter()
                .map(|slot| slot.load(Ordering::Relaxed))
                .sum();
            slots.ended + live + self.unslotted.load(Ordering::Relaxed)
        }
    }
}

#[cfg(switchboard_loom)]
mod shared {
    use crate::sync::{AtomicU64, Ordering};

    pub(crate) struct PublishedCounter(AtomicU64);

    impl PublishedCounter {
        pub(crate) fn new() -> Self {
            Self(AtomicU64::new(0))
        }

        pub(crate) fn add_one(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }

        pub(crate) fn total(&self) -> u64 {
            self.0.load(Ordering::Relaxed)
        }
    }
}

/// How many slots a counter keeps (for the tests).
#[cfg(all(test, not(switchboard_loom)))]
fn sharded_slots(counter: &PublishedCounter) -> usize {
    counter.slot_count()
}

#[cfg(all(test, not(switchboard_loom)))]
mod tests {
    use super::PublishedCounter;

    #[test]
    fn counts_every_thread_exactly_and_keeps_ended_threads_counts() {
        let counter = std::sync::Arc::new(PublishedCounter::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counter = std::sync::Arc::clone(&counter);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        counter.add_one();
                    }
                })
            })
            .collect();
        for _ in 0..500 {
            counter.add_one();
        }
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(counter.total(), 4500);
    }

    #[test]
    fn slots_of_ended_threads_are_folded_into_one_count() {
        let counter = std::sync::Arc::new(PublishedCounter::new());
        for _ in 0..50 {
            let counter = std::sync::Arc::clone(&counter);
            std::thread::spawn(move || {
                counter.add_one();
                counter.add_one();
            })
            .join()
            .unwrap();
        }
        // A thread that has published and is still running keeps its slot.
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (published, has_published) = std::sync::mpsc::channel();
        let running = {
            let counter = std::sync::Arc::clone(&counter);
            std::thread::spawn(move || {
                counter.add_one();
                published.send(()).unwrap();
                stopped.recv().unwrap();
            })
        };
        has_published.recv().unwrap();
        counter.add_one();
        assert_eq!(counter.total(), 102);
        let slots = super::sharded_slots(&counter);
        assert_eq!(
            slots, 2,
            "the running thread's and this one's, of 52 threads"
        );
        stop.send(()).unwrap();
        running.join().unwrap();
    }

    /// A publish made while a thread ends, after its slots are gone (from a
    /// thread-local's destructor), is counted too.
    #[test]
    fn a_publish_from_a_thread_local_destructor_is_counted() {
        struct PublishOnExit(std::sync::Arc<PublishedCounter>);
        impl Drop for PublishOnExit {
            fn drop(&mut self) {
                self.0.add_one();
            }
        }
        thread_local! {
            static ON_EXIT: std::cell::RefCell<Option<PublishOnExit>> =
                const { std::cell::RefCell::new(None) };
        }
        let counter = std::sync::Arc::new(PublishedCounter::new());
        let in_thread = std::sync::Arc::clone(&counter);
        std::thread::spawn(move || {
            // Set up before this thread's slots exist, so (destructors
            // running in reverse order on Linux) it is dropped after them.
            ON_EXIT.with(|on_exit| {
                *on_exit.borrow_mut() = Some(PublishOnExit(std::sync::Arc::clone(&in_thread)))
            });
            in_thread.add_one();
        })
        .join()
        .unwrap();
        assert_eq!(counter.total(), 2);
    }

    #[test]
    fn two_counters_on_one_thread_stay_apart_and_a_dropped_one_is_forgotten() {
        let first = PublishedCounter::new();
        let second = PublishedCounter::new();
        first.add_one();
        second.add_one();
        second.add_one();
        assert_eq!((first.total(), second.total()), (1, 2));
        drop(first);
        let third = PublishedCounter::new();
        third.add_one(); // prunes the slot of `first`, whose bus is gone
        assert_eq!((second.total(), third.total()), (2, 1));
        assert_eq!(PublishedCounter::this_threads_slots(), 2);
    }
}
