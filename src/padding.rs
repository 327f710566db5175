//! Keeping hot fields off the cache line of an `Arc`'s reference counts.
//!
//! Registries hold subscribers and typed indexes by `Arc`, and every
//! subscribe or unsubscribe clones and drops those `Arc`s: their reference
//! counts are written by the churning thread while publishers read the
//! fields next to them. `#[repr(align(128))]` would separate the two, but an
//! over-aligned allocation takes the allocator's slow `memalign` path (and
//! fragments its heap), on the very subscribe path it is meant to speed up.
//! A gap does the same without over-aligning.

/// The first field of a `#[repr(C)]` struct kept in an `Arc`: it puts the
/// struct's other fields 128 bytes past the start of the allocation, where
/// `Arc` keeps its two counts (std's `ArcInner` is `#[repr(C)]`: strong,
/// weak, value). The allocation is at least 16-byte aligned, so the counts sit
/// in one 64-byte line and the fields start two lines later: never in the
/// same line, nor in the same 128-byte pair of lines that x86 prefetches
/// together.
pub(crate) struct CountsGap {
    _bytes: [u8; 112],
}

impl CountsGap {
    pub(crate) const fn new() -> Self {
        Self { _bytes: [0; 112] }
    }
}

/// A field of a `#[repr(C)]` struct that separates the fields before it
/// from those after it by 128 bytes: they never share a cache line, nor a
/// 128-byte pair of lines, whatever the allocation's alignment. The same as
/// `CachePadded` for the fields after it, without over-aligning the struct.
pub(crate) struct LineGap {
    _bytes: [u8; 128],
}

impl LineGap {
    pub(crate) const fn new() -> Self {
        Self { _bytes: [0; 128] }
    }
}

impl Default for CountsGap {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::CountsGap;
    use std::sync::Arc;

    #[repr(C)]
    struct Hot {
        _gap: CountsGap,
        field: u64,
    }

    #[test]
    fn fields_start_two_lines_past_the_counts() {
        for _ in 0..64 {
            let hot = Arc::new(Hot {
                _gap: CountsGap::new(),
                field: 7,
            });
            let start = Arc::as_ptr(&hot).addr() - 2 * std::mem::size_of::<usize>();
            let field = std::ptr::from_ref(&hot.field).addr();
            assert_eq!(field - start, 128);
            assert!(field / 64 >= start / 64 + 2);
        }
    }
}
