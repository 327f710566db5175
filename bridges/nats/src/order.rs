//! What an importer remembers about what it already imported: the ids of
//! recent events (to skip redeliveries) and, per exporter run, the next
//! event number it expects (to count losses and keep a publisher's order).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// The ids of the last `capacity` imported events.
pub(crate) struct RecentIds {
    capacity: usize,
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl RecentIds {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            ids: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Remembers `id`, forgetting the oldest id beyond the capacity.
    pub(crate) fn insert(&mut self, id: &str) {
        if !self.ids.insert(id.to_owned()) {
            return;
        }
        self.order.push_back(id.to_owned());
        if self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.ids.remove(&oldest);
            }
        }
    }
}

/// How an event's number compares with what its run's tracker expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// The expected number, or the first seen from the run: import it.
    InOrder,
    /// `missed` events of the run are missing before it; import it.
    AfterGap { missed: u64 },
    /// Its number is below the expected one: its gap was counted already,
    /// or it is a redelivery the recent ids forgot.
    Late,
    /// Events are missing before it and may still come (JetStream
    /// redelivers): turn it back for now.
    HoldBack,
}

struct RunState {
    next: u64,
    /// Since when a gap before `next` holds events back.
    gap_since: Option<Instant>,
}

/// Tracks the next expected number of each exporter run.
pub(crate) struct Runs {
    /// `None`: never hold back (core NATS loses what it loses; no
    /// redelivery will fill a gap). `Some(wait)`: hold back at most `wait`.
    hold: Option<Duration>,
    runs: HashMap<String, RunState>,
    /// Runs in the order they were first seen, to forget the oldest.
    seen: VecDeque<String>,
    max_runs: usize,
}

impl Runs {
    /// The number of exporter runs tracked at once; the oldest is forgotten
    /// past it (a run is one bridge instance's lifetime).
    pub(crate) const MAX_RUNS: usize = 4096;

    pub(crate) fn new(hold: Option<Duration>) -> Self {
        Self {
            hold,
            runs: HashMap::new(),
            seen: VecDeque::new(),
            max_runs: Self::MAX_RUNS,
        }
    }

    /// Decides about event `seq` of `run` at `now`, and advances the run
    /// unless it holds the event back.
    pub(crate) fn admit(&mut self, run: &str, seq: u64, now: Instant) -> Admit {
        let Some(state) = self.runs.get_mut(run) else {
            self.remember(run, seq);
            return Admit::InOrder;
        };
        if seq < state.next {
            return Admit::Late;
        }
        if seq > state.next {
            if let Some(wait) = self.hold {
                let since = *state.gap_since.get_or_insert(now);
                if now.duration_since(since) < wait {
                    return Admit::HoldBack;
                }
            }
        }
        let missed = seq - state.next;
        state.next = seq + 1;
        state.gap_since = None;
        if missed == 0 {
            Admit::InOrder
        } else {
            Admit::AfterGap { missed }
        }
    }

    fn remember(&mut self, run: &str, seq: u64) {
        if self.seen.len() >= self.max_runs {
            if let Some(oldest) = self.seen.pop_front() {
                self.runs.remove(&oldest);
            }
        }
        self.seen.push_back(run.to_owned());
        self.runs.insert(
            run.to_owned(),
            RunState {
                next: seq + 1,
                gap_since: None,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_forget_the_oldest() {
        let mut ids = RecentIds::new(2);
        ids.insert("a");
        ids.insert("b");
        ids.insert("b");
        assert!(ids.contains("a") && ids.contains("b"));
        ids.insert("c");
        assert!(!ids.contains("a") && ids.contains("b") && ids.contains("c"));
    }

    #[test]
    fn core_counts_gaps_at_once() {
        let now = Instant::now();
        let mut runs = Runs::new(None);
        assert_eq!(runs.admit("r", 5, now), Admit::InOrder); // first sight
        assert_eq!(runs.admit("r", 6, now), Admit::InOrder);
        assert_eq!(runs.admit("r", 9, now), Admit::AfterGap { missed: 2 });
        assert_eq!(runs.admit("r", 8, now), Admit::Late);
        assert_eq!(runs.admit("other", 1, now), Admit::InOrder);
        assert_eq!(runs.admit("r", 10, now), Admit::InOrder);
    }

    #[test]
    fn jetstream_holds_back_until_the_gap_fills_or_the_wait_ends() {
        let start = Instant::now();
        let wait = Duration::from_secs(3);
        let mut runs = Runs::new(Some(wait));
        assert_eq!(runs.admit("r", 1, start), Admit::InOrder);
        // 2 is missing: 3 and 4 wait for it.
        assert_eq!(runs.admit("r", 3, start), Admit::HoldBack);
        assert_eq!(runs.admit("r", 4, start), Admit::HoldBack);
        let later = start + Duration::from_secs(1);
        assert_eq!(runs.admit("r", 2, later), Admit::InOrder);
        assert_eq!(runs.admit("r", 3, later), Admit::InOrder);
        assert_eq!(runs.admit("r", 4, later), Admit::InOrder);
        // 5 never comes: 6 goes on once the wait is over.
        assert_eq!(runs.admit("r", 6, later), Admit::HoldBack);
        assert_eq!(runs.admit("r", 6, later + wait / 2), Admit::HoldBack);
        assert_eq!(
            runs.admit("r", 6, later + wait),
            Admit::AfterGap { missed: 1 }
        );
        assert_eq!(runs.admit("r", 5, later + wait), Admit::Late);
    }

    #[test]
    fn the_oldest_run_is_forgotten() {
        let now = Instant::now();
        let mut runs = Runs::new(None);
        runs.max_runs = 2;
        runs.admit("a", 1, now);
        runs.admit("b", 1, now);
        runs.admit("c", 1, now);
        // "a" was forgotten: its next event counts as a first sight.
        assert_eq!(runs.admit("a", 7, now), Admit::InOrder);
        assert_eq!(runs.admit("c", 2, now), Admit::InOrder);
    }
}
