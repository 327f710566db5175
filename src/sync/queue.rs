//! The bounded per-subscriber queue: `try_send` never blocks, the receiver may.
//!
//! Normally this is crossbeam-channel's bounded channel. Under `switchboard_loom`
//! a loom-visible stand-in with the same API and semantics takes its place
//! (issue: loom models), so the bus code above this seam is the code that ships.

#[cfg(not(switchboard_loom))]
pub(crate) use crossbeam_channel::{
    bounded, Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError,
};
