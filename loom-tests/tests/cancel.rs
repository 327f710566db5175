//! Loom model checks of waiting for a cancel token
//! (`CancelToken::cancelled`, `src/request/cancel.rs`): a `cancel` on another
//! thread, racing the future's polls, always wakes the task that awaits it
//! (design, "Memory orders", "Request cancellation").
//!
//! Run with `RUSTFLAGS="--cfg switchboard_loom" cargo test -p loom-tests --release`.
//! The task's waker records whether it was woken, so a lost wake-up fails an
//! assertion rather than parking a `block_on` for good.
#![cfg(switchboard_loom)]

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use loom::thread;
use switchboard::{CancelToken, CancelledFuture};

use support::model;

/// A task's waker that records whether it was woken. A std atomic is enough:
/// loom runs the model's threads one at a time on one OS thread.
#[derive(Default)]
struct Task(AtomicBool);

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Task {
    fn poll(self: &Arc<Self>, future: &mut CancelledFuture) -> Poll<()> {
        let waker = Waker::from(Arc::clone(self));
        Pin::new(future).poll(&mut Context::from_waker(&waker))
    }

    fn woken(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

fn cancel_on_another_thread(token: &CancelToken) -> thread::JoinHandle<()> {
    let token = token.clone();
    thread::spawn(move || token.cancel())
}

/// A cancel racing the future's first poll: either the poll sees the flag
/// (before or under the waiters' lock) or the cancel finds the future among
/// the waiters and wakes it.
#[test]
fn a_cancel_racing_the_first_poll_wakes_the_task() {
    model("a_cancel_racing_the_first_poll", || {
        let token = CancelToken::new();
        let mut cancelled = token.cancelled();
        let canceller = cancel_on_another_thread(&token);
        let task = Arc::new(Task::default());
        let first = task.poll(&mut cancelled);
        canceller.join().unwrap();
        assert!(
            first.is_ready() || task.woken(),
            "pending, and the cancel did not wake the task"
        );
        assert!(task.poll(&mut cancelled).is_ready());
    });
}

/// A cancel racing a poll with a new waker (the future moved to another
/// task, as in a `select!`): the cancel may wake the waker stored before,
/// so the poll that stores the new one checks the token again.
/// The mutant `switchboard_mutant_no_cancel_recheck` skips that check.
#[test]
fn a_cancel_racing_a_poll_with_a_new_waker_wakes_the_new_task() {
    model("a_cancel_racing_a_poll_with_a_new_waker", || {
        let token = CancelToken::new();
        let mut cancelled = token.cancelled();
        let before = Arc::new(Task::default());
        assert!(
            before.poll(&mut cancelled).is_pending(),
            "nobody has cancelled yet"
        );
        let canceller = cancel_on_another_thread(&token);
        let task = Arc::new(Task::default());
        let second = task.poll(&mut cancelled);
        canceller.join().unwrap();
        assert!(
            second.is_ready() || task.woken(),
            "pending, and the cancel woke only the earlier waker: the task would sleep for good"
        );
        assert!(task.poll(&mut cancelled).is_ready());
    });
}
