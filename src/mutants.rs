//! The deliberate bugs that `.ci/run` plants one at a time, each of which the
//! loom models must catch (design, "Loom: the crate's own code,
//! model-checked").
//!
//! A site reads `mutant!(correct; name => planted)`: the correct code, and
//! the bug that replaces it when the cfg `switchboard_mutant_{name}` is set.
//! Without the cfg the condition is the constant `false` and the bug is
//! compiled away. One mutant moves a statement rather than replacing an
//! expression, and is planted with `#[cfg]` where it moves it:
//! `switchboard_mutant_publish_before_waiting` (`request/launch.rs`, off the
//! publish path), which publishes a request before it waits for responses.

/// `correct`, or `planted` in the build that plants mutant `name`.
macro_rules! mutant {
    ($correct:expr; $name:ident => $planted:expr) => {
        if $crate::mutants::planted!($name) {
            $planted
        } else {
            $correct
        }
    };
}

/// Whether mutant `name` is planted in this build. One arm per mutant, so a
/// misspelt name does not compile.
macro_rules! planted {
    // A publisher that sees "buffering" does not re-check under the mode lock.
    (skip_recheck) => {
        cfg!(switchboard_mutant_skip_recheck)
    };
    // `start` switches to direct delivery before its replay.
    (early_running) => {
        cfg!(switchboard_mutant_early_running)
    };
    // A send does not wake the async consumer.
    (no_wake) => {
        cfg!(switchboard_mutant_no_wake)
    };
    // A full queue of a dropped subscription counts drops.
    (abandoned_drops) => {
        cfg!(switchboard_mutant_abandoned_drops)
    };
    // A subscription with retained events lets go of the retained lock
    // before it registers.
    (retained_gap) => {
        cfg!(switchboard_mutant_retained_gap)
    };
    // A waiting publisher registers for room without trying again.
    (no_room_recheck) => {
        cfg!(switchboard_mutant_no_room_recheck)
    };
    // A clear before `start` leaves buffered events to be retained at the
    // replay.
    (clear_skips_buffer) => {
        cfg!(switchboard_mutant_clear_skips_buffer)
    };
    // A token counts its finish after its release.
    (finish_after_release) => {
        cfg!(switchboard_mutant_finish_after_release)
    };
    // A cancel future that stores a new waker does not check the token again.
    (no_cancel_recheck) => {
        cfg!(switchboard_mutant_no_cancel_recheck)
    };
}

pub(crate) use {mutant, planted};
