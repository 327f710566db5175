//! A global allocator that forwards every call to the system allocator and
//! lets a test measure what its own thread allocates while it runs a closure.
//!
//! Not a module of `common` (see `common/mod.rs`): it registers itself as the
//! global allocator of the binary that includes it, so only the binaries that
//! measure allocations do, with
//! `#[path = "common/alloc_probe.rs"] mod alloc_probe;`. Measuring is per
//! thread, so tests of the same binary running in parallel are not counted.
#![allow(dead_code)] // each test binary uses a different subset

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// What one thread allocated during [`measure`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Measured {
    /// Calls to `alloc`, `alloc_zeroed` and `realloc`.
    pub allocations: u64,
    /// Bytes those calls asked for.
    pub bytes: u64,
    /// The largest single request.
    pub largest: usize,
}

thread_local! {
    // Const-initialized: touching them never allocates.
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static MEASURED: Cell<Measured> = const {
        Cell::new(Measured { allocations: 0, bytes: 0, largest: 0 })
    };
}

fn record(size: usize) {
    // `try_with`: the allocator may run while this thread's locals are torn down.
    let _ = MEASURING.try_with(|measuring| {
        if measuring.get() {
            MEASURED.with(|m| {
                let mut now = m.get();
                now.allocations += 1;
                now.bytes += size as u64;
                now.largest = now.largest.max(size);
                m.set(now);
            });
        }
    });
}

struct Probe;

// SAFETY: every call is forwarded unchanged to the system allocator, with the
// caller's guarantees; the bookkeeping touches only const-initialized
// thread-locals. Exercised under miri (tests/ringbuffer.rs in .ci/run).
unsafe impl GlobalAlloc for Probe {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static PROBE: Probe = Probe;

/// Runs `f` and returns what this thread allocated meanwhile.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, Measured) {
    MEASURED.with(|m| m.set(Measured::default()));
    MEASURING.with(|measuring| measuring.set(true));
    let value = f();
    MEASURING.with(|measuring| measuring.set(false));
    (value, MEASURED.with(Cell::get))
}

/// The largest single allocation this thread made while running `f`.
pub fn largest_allocation_in<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let (value, measured) = measure(f);
    (value, measured.largest)
}
