//! `switchboard::ringbuffer::RingBuffer`: every operation against a reference
//! model at every wrap-around offset, element ownership (each element dropped
//! exactly once), concurrency, poisoning, and the capacity errors.
//!
//! A counting global allocator records the largest single allocation made by
//! each thread, so the capacity tests can check that storage is allocated
//! lazily and never beyond the capacity.

mod common;

use std::cell::Cell;
use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, LazyLock};
use std::thread;

use common::GUARD;
use switchboard::ringbuffer::{RingBuffer, RingBufferError};

// ---------------------------------------------------------------- allocation probe

#[path = "common/alloc_probe.rs"]
mod alloc_probe;

use alloc_probe::largest_allocation_in;

// ---------------------------------------------------------------- helpers

/// The reference model: the newest `capacity` of `0..pushes`, oldest first.
fn model(capacity: usize, pushes: usize) -> Vec<usize> {
    (0..pushes).skip(pushes.saturating_sub(capacity)).collect()
}

fn ring<T>(capacity: usize) -> RingBuffer<T> {
    RingBuffer::new(capacity).expect("valid capacity")
}

// ---------------------------------------------------------------- contents

#[test]
fn every_wrap_around_offset_matches_the_model() {
    for capacity in 1..=5 {
        for pushes in 0..=3 * capacity {
            let buffer = ring(capacity);
            let mut reference = Vec::new();
            for value in 0..pushes {
                let expected_eviction = (reference.len() == capacity).then(|| reference.remove(0));
                reference.push(value);
                assert_eq!(
                    buffer.push(value),
                    expected_eviction,
                    "capacity {capacity}, push #{value}"
                );
            }
            assert_eq!(reference, model(capacity, pushes));

            let case = format!("capacity {capacity}, {pushes} pushes");
            assert_eq!(buffer.all(), reference, "all(), {case}");
            for n in 0..=capacity + 2 {
                let expected = &reference[reference.len().saturating_sub(n)..];
                assert_eq!(buffer.last(n), expected, "last({n}), {case}");
            }
            assert_eq!(buffer.len(), reference.len(), "len(), {case}");
            assert!(buffer.len() <= capacity, "{case}");
            assert_eq!(buffer.is_empty(), pushes == 0, "is_empty(), {case}");
            assert_eq!(buffer.capacity(), capacity, "capacity(), {case}");
            assert_eq!(buffer.into_vec(), reference, "into_vec(), {case}");
        }
    }
}

#[test]
fn last_with_n_larger_than_len_returns_everything() {
    let buffer = ring(10);
    assert!(buffer.last(usize::MAX).is_empty());
    for i in 0..4 {
        buffer.push(i);
    }
    assert_eq!(buffer.last(5), [0, 1, 2, 3]);
    assert_eq!(buffer.last(10), [0, 1, 2, 3]);
    assert_eq!(buffer.last(11), [0, 1, 2, 3]);
    assert_eq!(buffer.last(usize::MAX), [0, 1, 2, 3]);
    assert_eq!(buffer.last(0), [] as [i32; 0]);
    assert_eq!(buffer.last(1), [3]);
}

#[test]
fn push_returns_the_evicted_oldest_element() {
    let buffer = ring(3);
    assert_eq!(buffer.push("a"), None);
    assert_eq!(buffer.push("b"), None);
    assert_eq!(buffer.push("c"), None);
    assert_eq!(buffer.push("d"), Some("a"));
    assert_eq!(buffer.push("e"), Some("b"));
    assert_eq!(buffer.all(), ["c", "d", "e"]);

    let single = ring(1);
    assert_eq!(single.push(1), None);
    assert_eq!(single.push(2), Some(1));
    assert_eq!(single.push(3), Some(2));
    assert_eq!(single.all(), [3]);
}

#[test]
fn clear_then_reuse() {
    let buffer = ring(3);
    for i in 0..7 {
        buffer.push(i); // wrapped: holds 4, 5, 6
    }
    buffer.clear();
    assert!(buffer.is_empty());
    assert_eq!(buffer.len(), 0);
    assert_eq!(buffer.capacity(), 3);
    assert!(buffer.all().is_empty());
    assert!(buffer.last(2).is_empty());

    // Refills and wraps again exactly like a new buffer.
    for i in 10..15 {
        let evicted = buffer.push(i);
        assert_eq!(evicted, (i >= 13).then(|| i - 3));
    }
    assert_eq!(buffer.all(), [12, 13, 14]);

    buffer.clear();
    buffer.clear(); // clearing an empty buffer is fine
    assert_eq!(buffer.push(20), None);
    assert_eq!(buffer.all(), [20]);
}

#[test]
fn drain_takes_everything_oldest_first_and_leaves_the_buffer_usable() {
    let buffer = ring(3);
    assert!(buffer.drain().is_empty());
    for i in 0..5 {
        buffer.push(i);
    }
    assert_eq!(buffer.drain(), [2, 3, 4]);
    assert!(buffer.is_empty());
    assert_eq!(buffer.push(9), None);
    assert_eq!(buffer.drain(), [9]);
}

#[test]
fn non_copy_strings() {
    let buffer = ring(2);
    assert_eq!(buffer.push(String::from("route.added /a")), None);
    assert_eq!(buffer.push(String::from("route.added /b")), None);
    assert_eq!(
        buffer.push(String::from("route.removed /a")).as_deref(),
        Some("route.added /a")
    );
    assert_eq!(buffer.all(), ["route.added /b", "route.removed /a"]);
    assert_eq!(buffer.last(1), ["route.removed /a"]);
    // Snapshots are clones: the buffer still holds its own copies.
    assert_eq!(buffer.len(), 2);
    assert_eq!(buffer.drain(), ["route.added /b", "route.removed /a"]);
}

#[test]
fn debug_shows_capacity_and_elements_oldest_first() {
    let buffer = ring(3);
    for i in 0..4 {
        buffer.push(i);
    }
    assert_eq!(
        format!("{buffer:?}"),
        "RingBuffer { capacity: 3, len: 3, elements: [1, 2, 3] }"
    );
}

#[test]
fn is_send_and_sync_when_the_element_is_send() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<RingBuffer<String>>();
    send_sync::<RingBuffer<Arc<str>>>();
    // `Cell` is `Send` but not `Sync`: the lock makes the buffer `Sync` anyway.
    send_sync::<RingBuffer<Cell<u32>>>();
    send_sync::<RingBufferError>();
}

// ---------------------------------------------------------------- ownership

/// Counts how often each payload id is dropped.
struct Payload {
    id: usize,
    drops: Arc<Vec<AtomicUsize>>,
}

impl Drop for Payload {
    fn drop(&mut self) {
        self.drops[self.id].fetch_add(1, Ordering::SeqCst);
    }
}

fn drop_counters(n: usize) -> Arc<Vec<AtomicUsize>> {
    Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect())
}

fn drop_counts(drops: &[AtomicUsize]) -> Vec<usize> {
    drops.iter().map(|d| d.load(Ordering::SeqCst)).collect()
}

#[test]
fn arc_elements_are_each_dropped_exactly_once() {
    const N: usize = 40;
    let drops = drop_counters(N);
    let payload = |id| {
        Arc::new(Payload {
            id,
            drops: Arc::clone(&drops),
        })
    };

    let buffer = ring(4);
    let mut snapshots = Vec::new();
    for id in 0..20 {
        // Evicted elements come back to the caller, who drops them here.
        drop(buffer.push(payload(id)));
        if id % 3 == 0 {
            snapshots.push(buffer.all());
            snapshots.push(buffer.last(2));
        }
    }
    // Payloads 0..16 were evicted; snapshots still hold some of them alive.
    assert!(drop_counts(&drops)[..16].iter().all(|&d| d <= 1));
    assert_eq!(drop_counts(&drops)[16..20], [0, 0, 0, 0]);

    buffer.clear();
    for id in 20..30 {
        drop(buffer.push(payload(id)));
    }
    let drained = buffer.drain();
    assert_eq!(
        drained.iter().map(|p| p.id).collect::<Vec<_>>(),
        [26, 27, 28, 29]
    );
    for id in 30..N {
        drop(buffer.push(payload(id)));
    }
    snapshots.push(buffer.all());

    drop(drained);
    drop(snapshots);
    assert_eq!(drop_counts(&drops)[..30], [1; 30]);
    assert_eq!(drop_counts(&drops)[36..], [0; 4], "still in the buffer");
    drop(buffer);
    assert_eq!(
        drop_counts(&drops),
        [1; N],
        "each payload dropped exactly once"
    );
}

#[test]
fn owned_non_clone_elements_are_each_dropped_exactly_once() {
    // Without `Clone`, the buffer still pushes, evicts, clears, drains, drops.
    const N: usize = 30;
    let drops = drop_counters(N);
    let payload = |id| Payload {
        id,
        drops: Arc::clone(&drops),
    };

    let buffer = ring(3);
    for id in 0..10 {
        let evicted = buffer.push(payload(id));
        assert_eq!(evicted.as_ref().map(|p| p.id), id.checked_sub(3));
    }
    assert_eq!(drop_counts(&drops)[..10], [1, 1, 1, 1, 1, 1, 1, 0, 0, 0]);
    buffer.clear();
    assert_eq!(drop_counts(&drops)[..10], [1; 10]);

    for id in 10..15 {
        drop(buffer.push(payload(id)));
    }
    let drained = buffer.drain();
    assert_eq!(
        drained.iter().map(|p| p.id).collect::<Vec<_>>(),
        [12, 13, 14]
    );
    drop(drained);

    for id in 15..20 {
        drop(buffer.push(payload(id)));
    }
    drop(buffer); // holds 17, 18, 19

    let other = ring(4);
    for id in 20..N {
        drop(other.push(payload(id)));
    }
    let rest = other.into_vec();
    assert_eq!(
        rest.iter().map(|p| p.id).collect::<Vec<_>>(),
        [26, 27, 28, 29]
    );
    drop(rest);
    assert_eq!(
        drop_counts(&drops),
        [1; N],
        "each payload dropped exactly once"
    );
}

/// Uses `SHARED` while being dropped: if `clear` dropped elements while
/// holding the lock, this would deadlock (or panic).
struct UsesBufferOnDrop;

impl Drop for UsesBufferOnDrop {
    fn drop(&mut self) {
        let _ = SHARED.len();
    }
}

static SHARED: LazyLock<RingBuffer<UsesBufferOnDrop>> = LazyLock::new(|| ring(4));

#[test]
fn clear_drops_elements_after_releasing_the_lock() {
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || {
        SHARED.push(UsesBufferOnDrop);
        SHARED.push(UsesBufferOnDrop);
        SHARED.clear();
        SHARED.push(UsesBufferOnDrop);
        done_tx.send(SHARED.len()).unwrap();
    });
    // A regression would hang the thread: fail instead of hanging the suite.
    let len = done_rx
        .recv_timeout(GUARD)
        .expect("clear() deadlocked: elements dropped under the lock");
    assert_eq!(len, 1);
}

// ---------------------------------------------------------------- panics

/// Panics when cloned while `ARMED` is set.
#[derive(Debug, PartialEq)]
struct PanicsOnClone(u32);

static ARMED: AtomicBool = AtomicBool::new(false);

impl Clone for PanicsOnClone {
    fn clone(&self) -> Self {
        assert!(!ARMED.load(Ordering::SeqCst), "clone of {} refused", self.0);
        PanicsOnClone(self.0)
    }
}

#[test]
fn a_panicking_clone_does_not_make_the_buffer_unusable() {
    let buffer = ring(3);
    for i in 0..4 {
        buffer.push(PanicsOnClone(i));
    }

    ARMED.store(true, Ordering::SeqCst);
    let snapshot = panic::catch_unwind(AssertUnwindSafe(|| buffer.all()));
    ARMED.store(false, Ordering::SeqCst);
    assert!(snapshot.is_err(), "the clone panicked inside the lock");

    // The lock is poisoned now; every operation still works.
    assert_eq!(buffer.len(), 3);
    assert_eq!(buffer.push(PanicsOnClone(4)), Some(PanicsOnClone(1)));
    assert_eq!(
        buffer.all(),
        [PanicsOnClone(2), PanicsOnClone(3), PanicsOnClone(4)]
    );
    assert_eq!(buffer.last(1), [PanicsOnClone(4)]);
    buffer.clear();
    assert!(buffer.is_empty());
    buffer.push(PanicsOnClone(5));
    assert_eq!(buffer.into_vec(), [PanicsOnClone(5)]);
}

// ---------------------------------------------------------------- capacity errors

#[test]
fn zero_capacity_is_an_error_that_says_what_to_do() {
    let err = RingBuffer::<u64>::new(0).unwrap_err();
    assert_eq!(err, RingBufferError::ZeroCapacity);
    let message = err.to_string();
    assert!(message.contains("capacity is 0"), "{message}");
    assert!(message.contains("at least 1"), "{message}");

    // Also for zero-sized elements, whose maximum is `usize::MAX`.
    assert_eq!(
        RingBuffer::<()>::new(0).unwrap_err(),
        RingBufferError::ZeroCapacity
    );
    // Usable as a boxed error.
    let boxed: Box<dyn std::error::Error + Send + Sync> = err.into();
    assert_eq!(boxed.to_string(), message);
}

#[test]
fn huge_capacity_is_an_error_not_an_abort() {
    let max = RingBuffer::<u64>::MAX_CAPACITY;
    assert_eq!(max, isize::MAX as usize / 8);

    let (result, largest) = largest_allocation_in(|| RingBuffer::<u64>::new(usize::MAX));
    let err = result.unwrap_err();
    assert_eq!(
        err,
        RingBufferError::CapacityTooLarge {
            requested: usize::MAX,
            max
        }
    );
    let message = err.to_string();
    assert!(message.contains(&usize::MAX.to_string()), "{message}");
    assert!(message.contains(&max.to_string()), "{message}");
    assert!(message.contains("smaller capacity"), "{message}");
    assert!(largest < 1024, "allocated {largest} bytes before failing");

    assert!(matches!(
        RingBuffer::<u64>::new(max + 1),
        Err(RingBufferError::CapacityTooLarge { requested, .. }) if requested == max + 1
    ));
    assert!(matches!(
        RingBuffer::<[u8; 4096]>::new(usize::MAX / 2),
        Err(RingBufferError::CapacityTooLarge { .. })
    ));
}

#[test]
fn the_maximum_capacity_is_accepted_and_allocated_lazily() {
    let (buffer, largest) = largest_allocation_in(|| ring::<u64>(RingBuffer::<u64>::MAX_CAPACITY));
    assert_eq!(largest, 0, "new() allocates nothing");
    assert_eq!(buffer.capacity(), RingBuffer::<u64>::MAX_CAPACITY);
    let ((), largest) = largest_allocation_in(|| {
        for i in 0..100 {
            assert_eq!(buffer.push(i), None);
        }
    });
    assert!(largest <= 1024, "100 pushes allocated {largest} bytes");
    assert_eq!(buffer.last(2), [98, 99]);

    // Zero-sized elements: any non-zero capacity, and nothing to allocate.
    let units = ring::<()>(usize::MAX);
    let ((), largest) = largest_allocation_in(|| {
        for _ in 0..1_000 {
            assert_eq!(units.push(()), None);
        }
    });
    assert_eq!(largest, 0);
    assert_eq!(units.len(), 1_000);
}

#[test]
fn storage_never_grows_beyond_the_capacity() {
    for capacity in [1, 3, 5, 10, 100, 1000] {
        let buffer = ring::<u64>(capacity);
        let ((), largest) = largest_allocation_in(|| {
            for i in 0..3 * capacity as u64 {
                buffer.push(i);
            }
        });
        assert_eq!(
            largest,
            capacity * 8,
            "capacity {capacity}: storage is exactly full, never more"
        );
        assert_eq!(buffer.len(), capacity);
    }
}

// ---------------------------------------------------------------- concurrency

#[test]
fn concurrent_writers_and_readers_see_consistent_oldest_first_snapshots() {
    const WRITERS: usize = 4;
    // Miri interprets every instruction: keep its runs short.
    const PUSHES: usize = if cfg!(miri) { 50 } else { 5_000 };
    const READERS: usize = 3;
    const READS: usize = if cfg!(miri) { 20 } else { 2_000 };
    const CAPACITY: usize = 64;

    let buffer = Arc::new(ring::<(usize, usize)>(CAPACITY));
    let start = Arc::new(Barrier::new(WRITERS + READERS));

    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let buffer = Arc::clone(&buffer);
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                let mut evicted = Vec::new();
                for seq in 0..PUSHES {
                    evicted.extend(buffer.push((writer, seq)));
                }
                evicted
            })
        })
        .collect();

    let readers: Vec<_> = (0..READERS)
        .map(|reader| {
            let buffer = Arc::clone(&buffer);
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                // The newest sequence number seen per writer: a later snapshot
                // never shows an older newest element (eviction is FIFO).
                let mut newest_seen = [None::<usize>; WRITERS];
                for read in 0..READS {
                    let n = (read + reader) % (CAPACITY + 8);
                    let snapshot = if read % 2 == 0 {
                        buffer.all()
                    } else {
                        buffer.last(n)
                    };
                    assert!(snapshot.len() <= CAPACITY, "snapshot of {}", snapshot.len());
                    if read % 2 == 1 {
                        assert!(snapshot.len() <= n, "last({n}) gave {}", snapshot.len());
                    }
                    assert!(buffer.len() <= CAPACITY);

                    let mut newest = [None::<usize>; WRITERS];
                    for &(writer, seq) in &snapshot {
                        if let Some(previous) = newest[writer] {
                            assert!(
                                seq > previous,
                                "writer {writer}: {seq} after {previous} in {snapshot:?}"
                            );
                        }
                        newest[writer] = Some(seq);
                    }
                    for writer in 0..WRITERS {
                        if let (Some(now), Some(before)) = (newest[writer], newest_seen[writer]) {
                            assert!(now >= before, "writer {writer}: saw {before}, then {now}");
                        }
                        if newest[writer].is_some() {
                            newest_seen[writer] = newest[writer];
                        }
                    }
                }
            })
        })
        .collect();

    let mut seen = HashSet::new();
    for writer in writers {
        for value in writer.join().unwrap() {
            assert!(seen.insert(value), "{value:?} evicted twice");
        }
    }
    for reader in readers {
        reader.join().unwrap();
    }

    // Nothing vanished: every value was either evicted (and returned to its
    // pusher) or is still in the buffer, exactly once.
    let remaining = buffer.drain();
    assert_eq!(remaining.len(), CAPACITY);
    for value in remaining {
        assert!(seen.insert(value), "{value:?} both evicted and kept");
    }
    assert_eq!(seen.len(), WRITERS * PUSHES);
}
