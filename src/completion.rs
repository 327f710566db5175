//! Completion: a publisher learning when the subscribers that received its
//! event have finished with it.
//!
//! A tracked publish ([`WaitingPublish::tracked`](crate::WaitingPublish::tracked))
//! gives each critical subscriber's copy a [`Token`]; the copy travels in the
//! subscriber's queue as an [`Envelope`]. The token ends *finished* when the
//! consumer is done with the event (it took it with a plain receive, or
//! acknowledged or dropped its [`Delivery`](crate::Delivery)), or
//! *abandoned* when the copy is dropped unprocessed (its queue was freed
//! after an unsubscribe, the `Delivery` was rejected or dropped by a
//! panicking consumer). [`Completion`] resolves once every token has ended
//! and the publish itself is over. Events published without tracking carry
//! no token and cost nothing more.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
#[cfg(not(switchboard_loom))]
use std::time::{Duration, Instant};

use crate::event::Event;
use crate::mutants::mutant;
use crate::sync::{AtomicUsize, AtomicWaker, Ordering};

/// The shared count behind one tracked publish.
struct Tracker {
    /// Tokens alive, plus one while the publish is still delivering.
    pending: AtomicUsize,
    /// Tokens handed to subscribers (withdrawn ones taken back out).
    delivered: AtomicUsize,
    /// Tokens that ended finished.
    finished: AtomicUsize,
    /// The [`Completion`]'s task or thread.
    waker: AtomicWaker,
}

impl Tracker {
    /// One token (or the publish's own hold) has ended.
    ///
    /// `AcqRel`: the decrement that reaches zero acquires every earlier
    /// token's counts (a release sequence of read-modify-writes), and
    /// releases them to the `Acquire` load in [`Completion`].
    fn release(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.waker.wake();
        }
    }
}

/// One subscriber's share of a tracked event. Dropped unfinished, it counts
/// as abandoned.
pub(crate) struct Token(Arc<Tracker>);

impl Token {
    /// The subscriber is done with the event.
    pub(crate) fn finish(self) {
        // Relaxed: ordered before the release in `drop` (program order),
        // which the completion acquires.
        mutant!(self.0.finished.fetch_add(1, Ordering::Relaxed); finish_after_release => {
            let tracker = Arc::clone(&self.0);
            drop(self);
            tracker.finished.fetch_add(1, Ordering::Relaxed)
        });
    }

    /// The event never reached the subscriber after all (a waiting publish
    /// gave up on it): neither delivered nor abandoned.
    pub(crate) fn withdraw(self) {
        self.0.delivered.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// What travels in a subscriber's queue: the event, and its token if the
/// publisher tracks it.
///
/// Two words, as the bare `Arc<dyn Event>` the queues carried before
/// completion: an untracked event is the `Arc` itself, a tracked one a box
/// of the event and its token (the enum's tag lives in the `Arc`'s non-null
/// niche). A wider element (`Arc` plus `Option<Token>`, three words) made
/// crossbeam's `try_send` an out-of-line call returning its result through
/// memory, which cost a plain publish to 8 subscribers a third more time.
pub(crate) struct Envelope(Carried);

enum Carried {
    Plain(Arc<dyn Event>),
    Tracked(Box<(Arc<dyn Event>, Token)>),
}

impl Envelope {
    /// An untracked event.
    #[inline(always)]
    pub(crate) fn plain(event: Arc<dyn Event>) -> Self {
        Self(Carried::Plain(event))
    }

    /// The event, with its token if it is tracked.
    pub(crate) fn new(event: Arc<dyn Event>, token: Option<Token>) -> Self {
        match token {
            None => Self::plain(event),
            Some(token) => Self(Carried::Tracked(Box::new((event, token)))),
        }
    }

    /// The event.
    pub(crate) fn event(&self) -> &Arc<dyn Event> {
        match &self.0 {
            Carried::Plain(event) => event,
            Carried::Tracked(tracked) => &tracked.0,
        }
    }

    /// Whether it carries a token.
    pub(crate) fn is_tracked(&self) -> bool {
        matches!(self.0, Carried::Tracked(_))
    }

    /// The event and its token.
    #[inline(always)]
    pub(crate) fn into_parts(self) -> (Arc<dyn Event>, Option<Token>) {
        match self.0 {
            Carried::Plain(event) => (event, None),
            Carried::Tracked(tracked) => {
                let (event, token) = *tracked;
                (event, Some(token))
            }
        }
    }

    /// Takes the event out, the subscriber being done with it.
    #[inline(always)]
    pub(crate) fn finish(self) -> Arc<dyn Event> {
        match self.0 {
            Carried::Plain(event) => event,
            Carried::Tracked(tracked) => {
                let (event, token) = *tracked;
                token.finish();
                event
            }
        }
    }
}

/// The publisher's side of a tracked publish, while it delivers.
///
/// The [`Completion`] is made only once the publish is over, after its last
/// token: until then the count may reach zero and rise again harmlessly,
/// since nobody looks at it.
pub(crate) struct Tracking(Arc<Tracker>);

impl Tracking {
    pub(crate) fn new() -> Self {
        Self(Arc::new(Tracker {
            pending: AtomicUsize::new(0),
            delivered: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            waker: AtomicWaker::new(),
        }))
    }

    /// A token for one more subscriber.
    ///
    /// Relaxed, as an `Arc` clone: the completion's `Acquire` load comes
    /// after this in program order and reads the count's latest value.
    pub(crate) fn token(&self) -> Token {
        self.0.pending.fetch_add(1, Ordering::Relaxed);
        self.0.delivered.fetch_add(1, Ordering::Relaxed);
        Token(Arc::clone(&self.0))
    }

    /// The publish is over: its tokens alone decide when it is complete.
    pub(crate) fn into_completion(self) -> Completion {
        Completion { tracker: self.0 }
    }
}

/// Resolves when every critical subscriber that received a tracked event has
/// finished with it; from [`WaitingPublish::tracked`](crate::WaitingPublish::tracked).
///
/// A [`Future`] on any executor, and blocking from plain threads
/// ([`wait`](Self::wait), [`wait_timeout`](Self::wait_timeout)). What counts
/// as finished: see [`Completed`].
///
/// ```
/// use switchboard::{Event, EventBus, Timestamp};
///
/// #[derive(Event)]
/// struct Job { id: u32, timestamp: Timestamp }
///
/// let bus = EventBus::new();
/// let worker = bus.subscribe_to::<Job>("worker", 8).unwrap().with_acks();
/// bus.start();
///
/// let completion = bus
///     .publish_waiting(Job { id: 7, timestamp: Timestamp::now() })
///     .tracked()
///     .blocking()
///     .unwrap();
/// assert!(!completion.is_complete(), "the worker has not finished yet");
///
/// let job = worker.recv().unwrap();
/// assert_eq!(job.id, 7);
/// job.ack(); // or drop it
///
/// let done = completion.wait();
/// assert_eq!((done.delivered, done.finished), (1, 1));
/// assert!(done.all_finished());
/// ```
#[must_use = "a completion does nothing unless waited for or polled"]
pub struct Completion {
    tracker: Arc<Tracker>,
}

impl Completion {
    /// Whether every subscriber that received the event has finished with
    /// it (or abandoned it).
    pub fn is_complete(&self) -> bool {
        // Acquire: pairs with the last release, so the counts read after
        // this are final.
        self.tracker.pending.load(Ordering::Acquire) == 0
    }

    fn completed(&self) -> Completed {
        Completed {
            delivered: self.tracker.delivered.load(Ordering::Relaxed),
            finished: self.tracker.finished.load(Ordering::Relaxed),
        }
    }

    /// Blocks the thread until the event is complete.
    pub fn wait(mut self) -> Completed {
        crate::blocking::block_on(Pin::new(&mut self), None)
    }

    /// Blocks the thread until the event is complete or `timeout` has
    /// passed.
    ///
    /// # Errors
    ///
    /// The completion back, still pending, if the time ran out.
    #[cfg(not(switchboard_loom))] // loom has no clock
    pub fn wait_timeout(self, timeout: Duration) -> Result<Completed, Completion> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.wait_deadline(deadline),
            None => Ok(self.wait()),
        }
    }

    /// Blocks the thread until the event is complete or `deadline` has
    /// passed.
    ///
    /// # Errors
    ///
    /// The completion back, still pending, if the time ran out.
    #[cfg(not(switchboard_loom))] // loom has no clock
    pub fn wait_deadline(mut self, deadline: Instant) -> Result<Completed, Completion> {
        let until_deadline = std::future::poll_fn(|cx| match Pin::new(&mut self).poll(cx) {
            Poll::Ready(completed) => Poll::Ready(Some(completed)),
            Poll::Pending if Instant::now() >= deadline => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        });
        let completed = crate::blocking::block_on(std::pin::pin!(until_deadline), Some(deadline));
        completed.ok_or(self)
    }
}

impl Future for Completion {
    type Output = Completed;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Completed> {
        if self.is_complete() {
            return Poll::Ready(self.completed());
        }
        self.tracker.waker.register(cx.waker());
        // Re-check after registering: the last release may have come first
        // and woken nobody (the subscription's handshake, design "Memory
        // orders").
        if self.is_complete() {
            Poll::Ready(self.completed())
        } else {
            Poll::Pending
        }
    }
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion")
            .field("complete", &self.is_complete())
            .finish_non_exhaustive()
    }
}

/// What became of a tracked event: how many critical subscribers received
/// it, and how many of them finished with it.
///
/// A subscriber *finishes* with an event when it takes it with a plain
/// receive (`recv`, `try_recv`, iterators, `Stream`, `drain_coalesced`), or,
/// receiving [`with_acks`](crate::Subscription::with_acks), when it
/// acknowledges or drops the [`Delivery`](crate::Delivery). The others
/// *abandoned* it: the delivery was [rejected](crate::Delivery::reject) or
/// dropped while its thread panicked, or the event was still queued when the
/// subscription went away. Lossy subscribers and the bus's own request
/// routes are not counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Completed {
    /// Critical subscribers that received the event.
    pub delivered: usize,
    /// Those of them that finished with it.
    pub finished: usize,
}

impl Completed {
    /// Whether every subscriber that received the event finished with it.
    pub fn all_finished(&self) -> bool {
        self.finished == self.delivered
    }

    /// How many abandoned it.
    pub fn abandoned(&self) -> usize {
        self.delivered - self.finished
    }
}

#[cfg(all(test, not(switchboard_loom)))]
mod envelope_tests {
    use super::*;

    #[test]
    fn an_envelope_is_as_wide_as_the_bare_event() {
        // Wider queue elements slowed every plain publish (see `Envelope`).
        assert_eq!(
            std::mem::size_of::<Envelope>(),
            std::mem::size_of::<Arc<dyn Event>>()
        );
    }
}
