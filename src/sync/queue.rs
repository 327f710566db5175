//! The bounded per-subscriber queue: `try_send` never blocks, the receiver may.
//!
//! Normally this is crossbeam-channel's bounded channel. Under `switchboard_loom`
//! a loom-visible stand-in with the same API and semantics takes its place, so
//! the bus code above this seam is the code that ships.

#[cfg(not(switchboard_loom))]
pub(crate) use crossbeam_channel::{
    bounded, Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError,
};

#[cfg(switchboard_loom)]
pub(crate) use self::model::{
    bounded, Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError,
};

/// A lock-and-condvar bounded queue with crossbeam-channel's semantics:
/// disconnection when every sender (or the receiver) is gone, a receiver that
/// drains what is queued before reporting disconnection, and a zero-capacity
/// queue that hands a value over only to a receiver already waiting in `recv`.
/// Loom has no clock: `recv_deadline` reports a timeout instead of waiting.
#[cfg(switchboard_loom)]
mod model {
    use std::collections::VecDeque;
    use std::time::Instant;

    use loom::sync::{Arc, Condvar, Mutex};

    pub(crate) enum TrySendError<T> {
        Full(T),
        Disconnected(T),
    }

    #[derive(Debug)]
    pub(crate) enum TryRecvError {
        Empty,
        Disconnected,
    }

    #[derive(Debug)]
    pub(crate) enum RecvTimeoutError {
        Timeout,
        Disconnected,
    }

    #[derive(Debug)]
    pub(crate) struct RecvError;

    struct State<T> {
        items: VecDeque<T>,
        capacity: usize,
        senders: usize,
        receiver_alive: bool,
        waiting_receivers: usize,
    }

    struct Shared<T> {
        state: Mutex<State<T>>,
        changed: Condvar,
    }

    pub(crate) struct Sender<T>(Arc<Shared<T>>);
    pub(crate) struct Receiver<T>(Arc<Shared<T>>);

    pub(crate) fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                items: VecDeque::new(),
                capacity,
                senders: 1,
                receiver_alive: true,
                waiting_receivers: 0,
            }),
            changed: Condvar::new(),
        });
        (Sender(Arc::clone(&shared)), Receiver(shared))
    }

    impl<T> Sender<T> {
        pub(crate) fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
            let mut state = self.0.state.lock().unwrap();
            if !state.receiver_alive {
                return Err(TrySendError::Disconnected(value));
            }
            let room = if state.capacity == 0 {
                state.waiting_receivers > state.items.len()
            } else {
                state.items.len() < state.capacity
            };
            if !room {
                return Err(TrySendError::Full(value));
            }
            state.items.push_back(value);
            drop(state);
            self.0.changed.notify_all();
            Ok(())
        }

        pub(crate) fn len(&self) -> usize {
            self.0.state.lock().unwrap().items.len()
        }

        /// As crossbeam's: true for a zero-capacity queue, and regardless of
        /// whether the receiver is still there.
        pub(crate) fn is_full(&self) -> bool {
            let state = self.0.state.lock().unwrap();
            state.items.len() >= state.capacity
        }
    }

    impl<T> Clone for Sender<T> {
        fn clone(&self) -> Self {
            self.0.state.lock().unwrap().senders += 1;
            Sender(Arc::clone(&self.0))
        }
    }

    impl<T> Drop for Sender<T> {
        fn drop(&mut self) {
            let mut state = self.0.state.lock().unwrap();
            state.senders -= 1;
            let last = state.senders == 0;
            drop(state);
            if last {
                self.0.changed.notify_all();
            }
        }
    }

    impl<T> Receiver<T> {
        pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
            let mut state = self.0.state.lock().unwrap();
            match state.items.pop_front() {
                Some(value) => Ok(value),
                None if state.senders == 0 => Err(TryRecvError::Disconnected),
                None => Err(TryRecvError::Empty),
            }
        }

        pub(crate) fn recv(&self) -> Result<T, RecvError> {
            let mut state = self.0.state.lock().unwrap();
            loop {
                if let Some(value) = state.items.pop_front() {
                    return Ok(value);
                }
                if state.senders == 0 {
                    return Err(RecvError);
                }
                state.waiting_receivers += 1;
                state = self.0.changed.wait(state).unwrap();
                state.waiting_receivers -= 1;
            }
        }

        pub(crate) fn recv_deadline(&self, _deadline: Instant) -> Result<T, RecvTimeoutError> {
            match self.try_recv() {
                Ok(value) => Ok(value),
                Err(TryRecvError::Empty) => Err(RecvTimeoutError::Timeout),
                Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
            }
        }

        pub(crate) fn len(&self) -> usize {
            self.0.state.lock().unwrap().items.len()
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.len() == 0
        }
    }

    impl<T> Drop for Receiver<T> {
        fn drop(&mut self) {
            self.0.state.lock().unwrap().receiver_alive = false;
        }
    }
}
