//! A thread-safe, fixed-capacity ring buffer for "recent events" views.
//!
//! [`RingBuffer`] keeps the newest `capacity` elements pushed to it: once it is
//! full, each [`push`](RingBuffer::push) evicts the oldest element and hands it
//! back, so nothing disappears without the caller seeing it. Snapshots
//! ([`all`](RingBuffer::all), [`last`](RingBuffer::last)) are oldest-first.
//!
//! ```
//! use switchboard::ringbuffer::RingBuffer;
//!
//! let recent = RingBuffer::new(3)?;
//! for event in ["started", "route.added", "route.removed"] {
//!     recent.push(event);
//! }
//! // Full: the next push evicts the oldest element and returns it.
//! assert_eq!(recent.push("stopped"), Some("started"));
//!
//! assert_eq!(recent.all(), ["route.added", "route.removed", "stopped"]);
//! assert_eq!(recent.last(2), ["route.removed", "stopped"]);
//! # Ok::<(), switchboard::ringbuffer::RingBufferError>(())
//! ```
//!
//! A buffer is shared by reference (every method takes `&self`), typically
//! behind an [`Arc`](std::sync::Arc):
//!
//! ```
//! use std::sync::Arc;
//! use std::thread;
//! use switchboard::ringbuffer::RingBuffer;
//!
//! let recent = Arc::new(RingBuffer::new(100)?);
//! let writer = {
//!     let recent = Arc::clone(&recent);
//!     thread::spawn(move || {
//!         for i in 0..1_000 {
//!             recent.push(i);
//!         }
//!     })
//! };
//! writer.join().unwrap();
//! assert_eq!(recent.len(), 100);
//! assert_eq!(recent.last(1), [999]);
//! # Ok::<(), switchboard::ringbuffer::RingBufferError>(())
//! ```

use std::collections::VecDeque;
use std::error::Error;
use std::fmt;
use std::mem;
use std::sync::PoisonError;

use crate::sync::{lock, Mutex, MutexGuard};

/// The smallest step by which the storage grows (see [`RingBuffer::new`]).
const MIN_GROWTH: usize = 4;

/// A thread-safe ring buffer holding the newest `capacity` elements pushed to it.
///
/// Every method takes `&self`; the buffer is `Send + Sync` when `T: Send`.
/// See the [module documentation](self) for examples.
///
/// # Locking
///
/// This is not one of the crate's lock-free paths: each method holds an
/// internal [`Mutex`] for a short, bounded critical section. `push`, `len`,
/// `clear` and `drain` only move elements; `all` and `last` clone the elements
/// they return while holding the lock, so a [`Clone`] implementation must not
/// use the same buffer (it would deadlock). Elements are never dropped while
/// the lock is held: `push` returns the evicted element, and `clear` drops the
/// old contents after releasing the lock.
///
/// A panic inside the lock (a panicking `Clone` or `Debug` of an element) does
/// not make the buffer unusable: the panic cannot leave it half-updated, so the
/// lock's poisoning is ignored.
pub struct RingBuffer<T> {
    capacity: usize,
    // A `Mutex` around a `VecDeque` (oldest at the front) rather than a
    // lock-free ring: snapshots of non-`Copy` elements need a consistent view,
    // which a lock-free ring can only give with unsafe code (the crate forbids
    // it) or per-slot versioning that costs more than this uncontended lock.
    // The deque grows on demand, never beyond `capacity`, so a large capacity
    // costs nothing until it is used.
    slots: Mutex<VecDeque<T>>,
}

impl<T> RingBuffer<T> {
    /// The largest capacity accepted for elements of type `T`: `isize::MAX`
    /// bytes' worth of elements (the most any Rust allocation can hold), and
    /// `usize::MAX` for zero-sized types.
    ///
    /// ```
    /// use switchboard::ringbuffer::RingBuffer;
    ///
    /// assert_eq!(RingBuffer::<u64>::MAX_CAPACITY, isize::MAX as usize / 8);
    /// assert_eq!(RingBuffer::<()>::MAX_CAPACITY, usize::MAX);
    /// ```
    pub const MAX_CAPACITY: usize = match mem::size_of::<T>() {
        0 => usize::MAX,
        size => isize::MAX as usize / size,
    };

    /// An empty buffer holding at most `capacity` elements.
    ///
    /// Nothing is allocated here: storage grows as elements are pushed, and
    /// never beyond `capacity` elements. So any capacity up to
    /// [`MAX_CAPACITY`](Self::MAX_CAPACITY) is accepted without reserving its
    /// memory up front.
    ///
    /// # Errors
    ///
    /// [`RingBufferError::ZeroCapacity`] if `capacity` is 0, and
    /// [`RingBufferError::CapacityTooLarge`] if it is above
    /// [`MAX_CAPACITY`](Self::MAX_CAPACITY).
    ///
    /// ```
    /// use switchboard::ringbuffer::{RingBuffer, RingBufferError};
    ///
    /// let buffer = RingBuffer::<String>::new(16)?;
    /// assert_eq!(buffer.capacity(), 16);
    /// assert!(buffer.is_empty());
    ///
    /// assert_eq!(RingBuffer::<String>::new(0).unwrap_err(), RingBufferError::ZeroCapacity);
    /// # Ok::<(), RingBufferError>(())
    /// ```
    pub fn new(capacity: usize) -> Result<Self, RingBufferError> {
        if capacity == 0 {
            return Err(RingBufferError::ZeroCapacity);
        }
        if capacity > Self::MAX_CAPACITY {
            return Err(RingBufferError::CapacityTooLarge {
                requested: capacity,
                max: Self::MAX_CAPACITY,
            });
        }
        Ok(Self {
            capacity,
            slots: Mutex::new(VecDeque::new()),
        })
    }

    /// Appends `value` as the newest element.
    ///
    /// If the buffer was full, the oldest element is removed to make room and
    /// returned; otherwise `None`.
    ///
    /// ```
    /// use switchboard::ringbuffer::RingBuffer;
    ///
    /// let buffer = RingBuffer::new(2)?;
    /// assert_eq!(buffer.push('a'), None);
    /// assert_eq!(buffer.push('b'), None);
    /// assert_eq!(buffer.push('c'), Some('a'));
    /// assert_eq!(buffer.all(), ['b', 'c']);
    /// # Ok::<(), switchboard::ringbuffer::RingBufferError>(())
    /// ```
    pub fn push(&self, value: T) -> Option<T> {
        let mut slots = self.lock();
        let evicted = if slots.len() == self.capacity {
            slots.pop_front()
        } else {
            if slots.len() == slots.capacity() {
                // Grow geometrically (amortized O(1) pushes), clamped so the
                // storage never exceeds `capacity` elements.
                let additional = slots.len().max(MIN_GROWTH).min(self.capacity - slots.len());
                slots.reserve_exact(additional);
            }
            None
        };
        slots.push_back(value);
        evicted
    }

    /// How many elements the buffer holds now (at most [`capacity`](Self::capacity)).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the buffer holds no element.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The most elements the buffer holds, as given to [`new`](Self::new).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Removes and drops every element, and releases the storage.
    ///
    /// The elements are dropped after the internal lock is released, so their
    /// `Drop` implementations may use the buffer. The buffer stays usable.
    ///
    /// ```
    /// use switchboard::ringbuffer::RingBuffer;
    ///
    /// let buffer = RingBuffer::new(4)?;
    /// buffer.push(1);
    /// buffer.clear();
    /// assert!(buffer.is_empty());
    /// buffer.push(2);
    /// assert_eq!(buffer.all(), [2]);
    /// # Ok::<(), switchboard::ringbuffer::RingBufferError>(())
    /// ```
    pub fn clear(&self) {
        // Bound first, so the guard (a temporary of this statement) is
        // released before the elements are dropped.
        let old = mem::take(&mut *self.lock());
        drop(old);
    }

    /// Removes every element and returns them, oldest first.
    ///
    /// Unlike [`all`](Self::all) followed by [`clear`](Self::clear), this is
    /// one atomic step: an element pushed concurrently is either returned or
    /// left in the buffer, never lost. It needs no `T: Clone`.
    ///
    /// ```
    /// use switchboard::ringbuffer::RingBuffer;
    ///
    /// let buffer = RingBuffer::new(2)?;
    /// buffer.push(String::from("a"));
    /// buffer.push(String::from("b"));
    /// assert_eq!(buffer.drain(), ["a", "b"]);
    /// assert!(buffer.is_empty());
    /// # Ok::<(), switchboard::ringbuffer::RingBufferError>(())
    /// ```
    pub fn drain(&self) -> Vec<T> {
        Vec::from(mem::take(&mut *self.lock()))
    }

    /// Consumes the buffer and returns its elements, oldest first.
    ///
    /// ```
    /// use switchboard::ringbuffer::RingBuffer;
    ///
    /// let buffer = RingBuffer::new(2)?;
    /// for i in 0..5 {
    ///     buffer.push(i);
    /// }
    /// assert_eq!(buffer.into_vec(), [3, 4]);
    /// # Ok::<(), switchboard::ringbuffer::RingBufferError>(())
    /// ```
    pub fn into_vec(self) -> Vec<T> {
        let slots = self
            .slots
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        Vec::from(slots)
    }

    /// Locks the storage. Poisoning is ignored: no critical section can panic
    /// halfway through a change (the only user code run under the lock is
    /// `Clone` and `Debug`, on a storage that is only read).
    fn lock(&self) -> MutexGuard<'_, VecDeque<T>> {
        lock(&self.slots)
    }
}

impl<T: Clone> RingBuffer<T> {
    /// Clones of the newest `n` elements, oldest first.
    ///
    /// If fewer than `n` elements are held, all of them are returned; `last(0)`
    /// is empty.
    ///
    /// ```
    /// use switchboard::ringbuffer::RingBuffer;
    ///
    /// let buffer = RingBuffer::new(5)?;
    /// for i in 1..=3 {
    ///     buffer.push(i);
    /// }
    /// assert_eq!(buffer.last(2), [2, 3]);
    /// assert_eq!(buffer.last(10), [1, 2, 3]);
    /// assert!(buffer.last(0).is_empty());
    /// # Ok::<(), switchboard::ringbuffer::RingBufferError>(())
    /// ```
    pub fn last(&self, n: usize) -> Vec<T> {
        let slots = self.lock();
        let skip = slots.len().saturating_sub(n);
        slots.range(skip..).cloned().collect()
    }

    /// Clones of every element, oldest first.
    ///
    /// ```
    /// use switchboard::ringbuffer::RingBuffer;
    ///
    /// let buffer = RingBuffer::new(3)?;
    /// for i in 0..4 {
    ///     buffer.push(i);
    /// }
    /// assert_eq!(buffer.all(), [1, 2, 3]);
    /// # Ok::<(), switchboard::ringbuffer::RingBufferError>(())
    /// ```
    pub fn all(&self) -> Vec<T> {
        self.lock().iter().cloned().collect()
    }
}

impl<T: fmt::Debug> fmt::Debug for RingBuffer<T> {
    /// Shows the capacity and the elements, oldest first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slots = self.lock();
        f.debug_struct("RingBuffer")
            .field("capacity", &self.capacity)
            .field("len", &slots.len())
            .field("elements", &*slots)
            .finish()
    }
}

/// Why a [`RingBuffer`] could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RingBufferError {
    /// The capacity asked for is 0.
    ZeroCapacity,
    /// The capacity asked for is above [`RingBuffer::MAX_CAPACITY`] for the
    /// element type.
    CapacityTooLarge {
        /// The capacity asked for.
        requested: usize,
        /// The largest accepted capacity for that element type.
        max: usize,
    },
}

impl fmt::Display for RingBufferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingBufferError::ZeroCapacity => f.write_str(
                "ring buffer capacity is 0, so it could never hold an element: \
                 pass a capacity of at least 1",
            ),
            RingBufferError::CapacityTooLarge { requested, max } => write!(
                f,
                "ring buffer capacity of {requested} elements exceeds the maximum of {max} \
                 for this element type (isize::MAX bytes): pass a smaller capacity"
            ),
        }
    }
}

impl Error for RingBufferError {}
