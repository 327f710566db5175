//! The waiting publish: backpressure as the publisher's choice.
//!
//! [`EventBus::publish`] never waits: a critical subscriber whose buffer is
//! full misses the event (counted). [`EventBus::publish_waiting`] waits for
//! room at every matching critical subscriber instead, as an `.await` on any
//! executor or [blocking](WaitingPublish::blocking) a plain thread, with an
//! optional deadline; [`tracked`](WaitingPublish::tracked) also hands back a
//! [`Completion`] that resolves when those subscribers have finished with
//! the event.

use std::error::Error;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::blocking::block_on;
use crate::completion::{Completion, Tracking};
use crate::core::{Blocked, BusCore};
use crate::drops::DropReason;
use crate::event::Event;
#[cfg(not(switchboard_loom))]
use crate::sync::{AtomicWaker, Notify};
#[cfg(not(switchboard_loom))]
use crate::timer::{self, TimerEntry};

/// A publish that waits for room instead of dropping; from
/// [`EventBus::publish_waiting`](crate::EventBus::publish_waiting).
///
/// Configure it, then `.await` it (any executor) or call
/// [`blocking`](Self::blocking) (a plain thread). It resolves to how many
/// subscribers received the event, or, once its deadline passed, to a
/// [`PublishError`] that hands the event back.
#[must_use = "a waiting publish does nothing unless awaited or run with .blocking()"]
pub struct WaitingPublish<'a> {
    core: &'a BusCore,
    event: Arc<dyn Event>,
    deadline: Option<Instant>,
}

impl<'a> WaitingPublish<'a> {
    pub(crate) fn new(core: &'a BusCore, event: Arc<dyn Event>) -> Self {
        Self {
            core,
            event,
            deadline: None,
        }
    }

    /// Gives up once `timeout` has passed (from now); without a timeout or
    /// deadline it waits as long as it takes.
    pub fn timeout(self, timeout: Duration) -> Self {
        let deadline = Instant::now().checked_add(timeout);
        Self { deadline, ..self }
    }

    /// Gives up once `deadline` has passed.
    pub fn deadline(self, deadline: Instant) -> Self {
        Self {
            deadline: Some(deadline),
            ..self
        }
    }

    /// Also tracks the event: the publish then resolves to a [`Completion`],
    /// which resolves when every critical subscriber that received the event
    /// has finished with it. Untracked events carry nothing extra.
    pub fn tracked(self) -> TrackedPublish<'a> {
        TrackedPublish(self)
    }

    /// Runs the publish on this thread, parking it while it waits.
    ///
    /// Before [`start`](crate::EventBus::start) it waits for the bus to
    /// start: do not call it without a deadline on the thread that is to
    /// start the bus.
    ///
    /// # Errors
    ///
    /// [`PublishError`] if the deadline passed first.
    pub fn blocking(self) -> Result<usize, PublishError> {
        let wake_at = self.deadline;
        block_on(Pin::new(&mut self.into_future()), wake_at)
    }
}

impl<'a> IntoFuture for WaitingPublish<'a> {
    type Output = Result<usize, PublishError>;
    type IntoFuture = PublishFuture<'a>;

    fn into_future(self) -> PublishFuture<'a> {
        PublishFuture(Delivering::new(self, None))
    }
}

impl fmt::Debug for WaitingPublish<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitingPublish")
            .field("event_type", &self.event.event_type())
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// A waiting publish that also tracks the event; from
/// [`WaitingPublish::tracked`].
#[must_use = "a waiting publish does nothing unless awaited or run with .blocking()"]
#[derive(Debug)]
pub struct TrackedPublish<'a>(WaitingPublish<'a>);

impl<'a> TrackedPublish<'a> {
    /// As [`WaitingPublish::timeout`].
    pub fn timeout(self, timeout: Duration) -> Self {
        Self(self.0.timeout(timeout))
    }

    /// As [`WaitingPublish::deadline`].
    pub fn deadline(self, deadline: Instant) -> Self {
        Self(self.0.deadline(deadline))
    }

    /// As [`WaitingPublish::blocking`], resolving to the event's
    /// [`Completion`].
    ///
    /// # Errors
    ///
    /// [`PublishError`] if the deadline passed first.
    pub fn blocking(self) -> Result<Completion, PublishError> {
        let wake_at = self.0.deadline;
        block_on(Pin::new(&mut self.into_future()), wake_at)
    }
}

impl<'a> IntoFuture for TrackedPublish<'a> {
    type Output = Result<Completion, PublishError>;
    type IntoFuture = TrackedPublishFuture<'a>;

    fn into_future(self) -> TrackedPublishFuture<'a> {
        TrackedPublishFuture(Delivering::new(self.0, Some(Tracking::new())))
    }
}

/// The future of a [`WaitingPublish`]: how many subscribers received the
/// event.
///
/// Cancel-safe: dropped before it resolved, it counts a drop (reason
/// [`DropReason::WaitCancelled`]) for each critical subscriber it had not
/// reached yet (before the bus started: one pre-start drop); the others keep
/// the event.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct PublishFuture<'a>(Delivering<'a>);

impl Future for PublishFuture<'_> {
    type Output = Result<usize, PublishError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.poll(cx).map_ok(|(delivered, _)| delivered)
    }
}

/// The future of a [`TrackedPublish`]: the event's [`Completion`]. Cancel-safe
/// as [`PublishFuture`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct TrackedPublishFuture<'a>(Delivering<'a>);

impl Future for TrackedPublishFuture<'_> {
    type Output = Result<Completion, PublishError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.poll(cx).map_ok(|(_, tracking)| {
            tracking
                .unwrap_or_else(|| unreachable!("a tracked publish tracks"))
                .into_completion()
        })
    }
}

/// Where a waiting publish is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Not polled yet: nothing happened.
    New,
    /// The bus is buffering: waiting for `start`.
    AwaitingStart,
    /// Delivered where there was room; waiting for room at the rest.
    AwaitingRoom,
    /// Resolved.
    Done,
}

/// The state machine behind both futures. Kept small: what only a publish
/// that waits needs is boxed on its first wait.
struct Delivering<'a> {
    core: &'a BusCore,
    /// The event until it is delivered; afterwards, while some subscribers
    /// are blocked, a copy for the error and the drop reports.
    event: Option<Arc<dyn Event>>,
    deadline: Option<Instant>,
    tracking: Option<Tracking>,
    stage: Stage,
    delivered: usize,
    waiting: Option<Box<Waiting>>,
}

/// What a publish that waits keeps.
struct Waiting {
    /// Its key in the wait lists.
    key: u64,
    /// Critical subscribers whose queue was full, and the copies for them.
    blocked: Vec<Blocked>,
    #[cfg(not(switchboard_loom))]
    timer: Option<(TimerEntry, Arc<WakeAtDeadline>)>,
}

impl<'a> Delivering<'a> {
    fn new(publish: WaitingPublish<'a>, tracking: Option<Tracking>) -> Self {
        let WaitingPublish {
            core,
            event,
            deadline,
        } = publish;
        Self {
            core,
            event: Some(event),
            deadline,
            tracking,
            stage: Stage::New,
            delivered: 0,
            waiting: None,
        }
    }

    fn waiting(&mut self) -> &mut Waiting {
        let core = self.core;
        self.waiting.get_or_insert_with(|| {
            Box::new(Waiting {
                key: core.next_waiter_key(),
                blocked: Vec::new(),
                #[cfg(not(switchboard_loom))]
                timer: None,
            })
        })
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(usize, Option<Tracking>), PublishError>> {
        loop {
            match self.stage {
                Stage::New => {
                    self.core.count_published();
                    self.stage = Stage::AwaitingStart;
                }
                Stage::AwaitingStart => {
                    if !self.core.is_running() {
                        let key = self.waiting().key;
                        if !self.core.wait_for_start(key, cx.waker()) {
                            return self.pending_or_give_up(cx);
                        }
                    }
                    let event = self.event.take().expect("not delivered yet");
                    let mut blocked = Vec::new();
                    self.delivered =
                        self.core
                            .deliver_waiting(event, self.tracking.as_ref(), &mut blocked);
                    self.stage = Stage::AwaitingRoom;
                    if blocked.is_empty() {
                        return Poll::Ready(Ok(self.finish()));
                    }
                    self.event = Some(Arc::clone(blocked[0].event()));
                    self.waiting().blocked = blocked;
                }
                Stage::AwaitingRoom => {
                    let core = self.core;
                    let waiting = self.waiting();
                    let delivered =
                        core.retry_waiting(&mut waiting.blocked, waiting.key, cx.waker());
                    let done = waiting.blocked.is_empty();
                    self.delivered += delivered;
                    if done {
                        return Poll::Ready(Ok(self.finish()));
                    }
                    return self.pending_or_give_up(cx);
                }
                Stage::Done => panic!("a waiting publish polled after it resolved"),
            }
        }
    }

    fn finish(&mut self) -> (usize, Option<Tracking>) {
        self.stage = Stage::Done;
        self.event = None;
        self.waiting = None;
        (self.delivered, self.tracking.take())
    }

    /// Still waiting: pending, with a timer for the deadline, or given up if
    /// it has passed.
    fn pending_or_give_up<T>(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, PublishError>> {
        let Some(deadline) = self.deadline else {
            return Poll::Pending;
        };
        if Instant::now() >= deadline {
            return Poll::Ready(Err(self.give_up(DropReason::WaitTimedOut)));
        }
        self.wake_at_deadline(deadline, cx);
        Poll::Pending
    }

    /// The timer wakes the task at the deadline (a blocking caller parks
    /// until then instead). Loom has no clock: the deadline is checked
    /// when polled only.
    #[cfg(not(switchboard_loom))]
    fn wake_at_deadline(&mut self, deadline: Instant, cx: &mut Context<'_>) {
        let (_, wake) = self.waiting().timer.get_or_insert_with(|| {
            let wake = Arc::new(WakeAtDeadline(AtomicWaker::new()));
            let entry = timer::register(deadline, Arc::clone(&wake) as Arc<dyn Notify>);
            (entry, wake)
        });
        wake.0.register(cx.waker());
    }

    #[cfg(switchboard_loom)]
    fn wake_at_deadline(&mut self, _deadline: Instant, _cx: &mut Context<'_>) {}

    /// Ends unfinished: what was not delivered is counted as dropped.
    fn give_up(&mut self, reason: DropReason) -> PublishError {
        let stage = std::mem::replace(&mut self.stage, Stage::Done);
        let event = self
            .event
            .take()
            .expect("an unfinished publish keeps its event");
        let waiting = self.waiting.take();
        let key = waiting.as_ref().map_or(u64::MAX, |waiting| waiting.key);
        let missed_by = match stage {
            Stage::AwaitingStart => {
                self.core.give_up_before_start(key, &*event, reason);
                None
            }
            _ => {
                let blocked = waiting.map(|waiting| waiting.blocked).unwrap_or_default();
                Some(self.core.give_up_waiting(blocked, key, &event, reason))
            }
        };
        PublishError {
            event,
            delivered: self.delivered,
            missed_by,
        }
    }
}

impl Drop for Delivering<'_> {
    fn drop(&mut self) {
        if matches!(self.stage, Stage::AwaitingStart | Stage::AwaitingRoom) {
            self.give_up(DropReason::WaitCancelled);
        }
    }
}

impl fmt::Debug for Delivering<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivering")
            .field(
                "event_type",
                &self.event.as_ref().map(|event| event.event_type()),
            )
            .field("stage", &self.stage)
            .field("delivered", &self.delivered)
            .field(
                "blocked",
                &self
                    .waiting
                    .as_ref()
                    .map_or(0, |waiting| waiting.blocked.len()),
            )
            .finish_non_exhaustive()
    }
}

/// Wakes a waiting publish's task at its deadline.
#[cfg(not(switchboard_loom))]
struct WakeAtDeadline(AtomicWaker);

#[cfg(not(switchboard_loom))]
impl Notify for WakeAtDeadline {
    fn notify(&self) {
        self.0.wake();
    }
}

/// A waiting publish reached its deadline before every critical subscriber
/// had room. The subscribers that had room keep the event; each of the
/// others counts it as dropped ([`DropReason::WaitTimedOut`], reported to the
/// drop callback), and their names are here. The event comes back, to
/// publish again or to log.
#[derive(Clone)]
pub struct PublishError {
    event: Arc<dyn Event>,
    delivered: usize,
    /// `None`: the bus had not started.
    missed_by: Option<Vec<String>>,
}

impl PublishError {
    /// The event.
    pub fn event(&self) -> &Arc<dyn Event> {
        &self.event
    }

    /// Takes the event back.
    pub fn into_event(self) -> Arc<dyn Event> {
        self.event
    }

    /// How many subscribers received it.
    pub fn delivered(&self) -> usize {
        self.delivered
    }

    /// The critical subscribers that did not (their buffers stayed full).
    pub fn missed_by(&self) -> &[String] {
        self.missed_by.as_deref().unwrap_or_default()
    }

    /// Whether it gave up before the bus started: nobody received it.
    pub fn before_start(&self) -> bool {
        self.missed_by.is_none()
    }
}

impl fmt::Debug for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishError")
            .field("event_type", &self.event.event_type())
            .field("delivered", &self.delivered)
            .field("missed_by", &self.missed_by)
            .finish()
    }
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let event_type = self.event.event_type();
        match &self.missed_by {
            None => write!(
                f,
                "waiting publish of `{event_type}` timed out before the bus started: \
                 call EventBus::start(), or give the publish a longer timeout"
            ),
            Some(missed_by) => write!(
                f,
                "waiting publish of `{event_type}` timed out: {} subscriber(s) received it, \
                 {} still had full buffers ({}) and count it as dropped; give them larger \
                 buffers or faster consumers, or the publish a longer timeout",
                self.delivered,
                missed_by.len(),
                missed_by.join(", ")
            ),
        }
    }
}

impl Error for PublishError {}
