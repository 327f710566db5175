//! What an importer remembers about what it already imported: the
//! (source, id) pairs of recent events (to skip redeliveries) and, per
//! exporter run, the next event number it expects and the gaps it counted
//! (to count losses and keep a publisher's order).

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Range;
use std::time::{Duration, Instant};

/// The (source, id) pairs of the last `capacity` events imported into the bus.
///
/// Ids are kept per source (CloudEvents ids are unique per source only), so
/// a lookup borrows both strings: checking a delivery allocates nothing.
pub(crate) struct RecentIds {
    capacity: usize,
    ids: HashMap<String, HashSet<String>>,
    /// (source, id), oldest first.
    order: VecDeque<(String, String)>,
}

impl RecentIds {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            ids: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub(crate) fn contains(&self, source: &str, id: &str) -> bool {
        self.ids.get(source).is_some_and(|ids| ids.contains(id))
    }

    /// Remembers an imported event, forgetting the oldest beyond the capacity.
    pub(crate) fn insert(&mut self, source: &str, id: &str) {
        let fresh = match self.ids.get_mut(source) {
            Some(ids) => ids.insert(id.to_owned()),
            None => {
                self.ids
                    .insert(source.to_owned(), HashSet::from([id.to_owned()]));
                true
            }
        };
        if !fresh {
            return;
        }
        self.order.push_back((source.to_owned(), id.to_owned()));
        if self.order.len() > self.capacity {
            if let Some((source, id)) = self.order.pop_front() {
                self.forget(&source, &id);
            }
        }
    }

    /// Forgets an event, so that its redelivery is imported again (a local
    /// subscriber abandoned it). Searched from the newest: the events still
    /// in the bus are among the last remembered.
    pub(crate) fn remove(&mut self, source: &str, id: &str) {
        if self.forget(source, id) {
            let index = self.order.iter().rposition(|(s, i)| s == source && i == id);
            if let Some(index) = index {
                self.order.remove(index);
            }
        }
    }

    /// Takes (source, id) out of the set, and its source once it has none.
    fn forget(&mut self, source: &str, id: &str) -> bool {
        let Some(ids) = self.ids.get_mut(source) else {
            return false;
        };
        let removed = ids.remove(id);
        if ids.is_empty() {
            self.ids.remove(source);
        }
        removed
    }
}

/// How an event's number compares with what its run's tracker expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// The expected number, or the first seen from the run: import it.
    InOrder,
    /// `missed` events of the run are missing before it; import it.
    AfterGap { missed: u64 },
    /// It fills a gap counted in `missed` before: import it.
    Late,
    /// Below the expected number but in no counted gap: a redelivery after
    /// the importer restarted, an event after a jump, or a republished id.
    /// Import it; nothing was counted missing for it.
    Unordered,
    /// Its number is further ahead than the window allows: not a gap (no
    /// exporter loses that many at once) but a new start, e.g. a forged id.
    /// Import it; the run goes on from it, nothing counted missing.
    Jump,
    /// Events are missing before it and may still come (JetStream
    /// redelivers): turn it back for now.
    HoldBack,
}

/// The most gaps remembered per run; the oldest is forgotten past it (an
/// event that fills it later counts as unordered, not late).
const MAX_GAPS: usize = 64;

struct RunState {
    next: u64,
    /// Since when a gap before `next` holds events back.
    gap_since: Option<Instant>,
    /// The numbers counted as missed that have not arrived since.
    gaps: VecDeque<Range<u64>>,
}

impl RunState {
    /// Takes `seq` out of the counted gaps; whether it was in one.
    fn fill(&mut self, seq: u64) -> bool {
        let Some(index) = self.gaps.iter().position(|gap| gap.contains(&seq)) else {
            return false;
        };
        let gap = self.gaps.remove(index).expect("found above");
        for part in [gap.start..seq, seq + 1..gap.end] {
            if !part.is_empty() {
                self.gaps.push_back(part);
            }
        }
        true
    }

    fn count_gap(&mut self, gap: Range<u64>) {
        if self.gaps.len() >= MAX_GAPS {
            self.gaps.pop_front();
        }
        self.gaps.push_back(gap);
    }
}

/// Tracks the next expected number of each exporter run.
pub(crate) struct Runs {
    /// `None`: never hold back (core NATS loses what it loses; no
    /// redelivery will fill a gap). `Some(wait)`: hold back at most `wait`.
    hold: Option<Duration>,
    /// The largest jump that counts as a gap.
    window: u64,
    runs: HashMap<String, RunState>,
    /// Runs in the order they were first seen, to forget the oldest.
    seen: VecDeque<String>,
    max_runs: usize,
}

impl Runs {
    /// The number of exporter runs tracked at once; the oldest is forgotten
    /// past it (a run is one bridge instance's lifetime).
    pub(crate) const MAX_RUNS: usize = 4096;

    pub(crate) fn new(hold: Option<Duration>, window: u64) -> Self {
        Self {
            hold,
            window: window.max(1),
            runs: HashMap::new(),
            seen: VecDeque::new(),
            max_runs: Self::MAX_RUNS,
        }
    }

    /// Decides about event `seq` of `run` at `now`, and advances the run
    /// unless it holds the event back. `may_hold`: whether the event can
    /// wait (false for one that must go in now).
    pub(crate) fn admit(&mut self, run: &str, seq: u64, now: Instant, may_hold: bool) -> Admit {
        let Some(state) = self.runs.get_mut(run) else {
            self.remember(run, seq);
            return Admit::InOrder;
        };
        if seq < state.next {
            return if state.fill(seq) {
                Admit::Late
            } else {
                Admit::Unordered
            };
        }
        let missed = seq - state.next;
        if missed > self.window {
            state.next = seq + 1;
            state.gap_since = None;
            return Admit::Jump;
        }
        if missed > 0 && may_hold {
            if let Some(wait) = self.hold {
                let since = *state.gap_since.get_or_insert(now);
                if now.duration_since(since) < wait {
                    return Admit::HoldBack;
                }
            }
        }
        state.gap_since = None;
        if missed > 0 {
            state.count_gap(state.next..seq);
        }
        state.next = seq + 1;
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
                gaps: VecDeque::new(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_forget_the_oldest_and_key_on_the_source_too() {
        let mut ids = RecentIds::new(2);
        ids.insert("s", "a");
        ids.insert("s", "b");
        ids.insert("s", "b");
        assert!(ids.contains("s", "a") && ids.contains("s", "b"));
        assert!(!ids.contains("other", "a"), "ids are unique per source");
        ids.insert("s", "c");
        assert!(!ids.contains("s", "a") && ids.contains("s", "b") && ids.contains("s", "c"));
    }

    #[test]
    fn a_forgotten_id_is_new_again_and_frees_its_place() {
        let mut ids = RecentIds::new(2);
        ids.insert("s", "a");
        ids.insert("s", "b");
        ids.remove("s", "a");
        assert!(!ids.contains("s", "a") && ids.contains("s", "b"));
        ids.remove("s", "never");
        // Its place is free: remembering it again evicts nothing.
        ids.insert("s", "a");
        assert!(ids.contains("s", "a") && ids.contains("s", "b"));
        // And the oldest is "b" now.
        ids.insert("s", "c");
        assert!(!ids.contains("s", "b") && ids.contains("s", "a") && ids.contains("s", "c"));
    }

    #[test]
    fn a_source_whose_ids_are_all_forgotten_is_forgotten_too() {
        let mut ids = RecentIds::new(2);
        for source in ["one", "two", "three", "four"] {
            ids.insert(source, "same-id");
        }
        assert!(!ids.contains("one", "same-id") && !ids.contains("two", "same-id"));
        assert!(ids.contains("three", "same-id") && ids.contains("four", "same-id"));
        ids.remove("three", "same-id");
        assert_eq!(
            ids.ids.len(),
            1,
            "only the source with a remembered id is kept"
        );
        assert_eq!(ids.order.len(), 1);
    }

    #[test]
    fn core_counts_gaps_at_once_and_late_only_fills_them() {
        let now = Instant::now();
        let mut runs = Runs::new(None, 1000);
        assert_eq!(runs.admit("r", 5, now, true), Admit::InOrder); // first sight
        assert_eq!(runs.admit("r", 6, now, true), Admit::InOrder);
        assert_eq!(runs.admit("r", 9, now, true), Admit::AfterGap { missed: 2 });
        assert_eq!(runs.admit("r", 8, now, true), Admit::Late);
        assert_eq!(
            runs.admit("r", 8, now, true),
            Admit::Unordered,
            "filled already"
        );
        assert_eq!(runs.admit("r", 7, now, true), Admit::Late);
        assert_eq!(
            runs.admit("r", 4, now, true),
            Admit::Unordered,
            "before first sight"
        );
        assert_eq!(runs.admit("other", 1, now, true), Admit::InOrder);
        assert_eq!(runs.admit("r", 10, now, true), Admit::InOrder);
    }

    #[test]
    fn a_jump_beyond_the_window_is_a_new_start_not_a_gap() {
        let now = Instant::now();
        let mut runs = Runs::new(Some(Duration::from_secs(60)), 100);
        assert_eq!(runs.admit("r", 1, now, true), Admit::InOrder);
        assert_eq!(runs.admit("r", 1_000_000, now, true), Admit::Jump);
        // The genuine events behind the forged one still come in.
        assert_eq!(runs.admit("r", 2, now, true), Admit::Unordered);
        assert_eq!(runs.admit("r", 1_000_001, now, true), Admit::InOrder);
        // Exactly the window is still a gap (held back first on JetStream).
        assert_eq!(runs.admit("r", 1_000_102, now, true), Admit::HoldBack);
        assert_eq!(
            runs.admit("r", 1_000_102, now + Duration::from_secs(60), true),
            Admit::AfterGap { missed: 100 }
        );
    }

    #[test]
    fn jetstream_holds_back_until_the_gap_fills_or_the_wait_ends() {
        let start = Instant::now();
        let wait = Duration::from_secs(3);
        let mut runs = Runs::new(Some(wait), 1000);
        assert_eq!(runs.admit("r", 1, start, true), Admit::InOrder);
        // 2 is missing: 3 and 4 wait for it.
        assert_eq!(runs.admit("r", 3, start, true), Admit::HoldBack);
        assert_eq!(runs.admit("r", 4, start, true), Admit::HoldBack);
        let later = start + Duration::from_secs(1);
        assert_eq!(runs.admit("r", 2, later, true), Admit::InOrder);
        assert_eq!(runs.admit("r", 3, later, true), Admit::InOrder);
        assert_eq!(runs.admit("r", 4, later, true), Admit::InOrder);
        // 5 never comes: 6 goes on once the wait is over.
        assert_eq!(runs.admit("r", 6, later, true), Admit::HoldBack);
        assert_eq!(runs.admit("r", 6, later + wait / 2, true), Admit::HoldBack);
        assert_eq!(
            runs.admit("r", 6, later + wait, true),
            Admit::AfterGap { missed: 1 }
        );
        assert_eq!(runs.admit("r", 5, later + wait, true), Admit::Late);
        // One that must go in now is not held back.
        assert_eq!(
            runs.admit("r", 8, later + wait, false),
            Admit::AfterGap { missed: 1 }
        );
    }

    #[test]
    fn the_oldest_gap_and_run_are_forgotten() {
        let now = Instant::now();
        let mut runs = Runs::new(None, u64::MAX);
        runs.admit("g", 0, now, true);
        for n in 0..=MAX_GAPS as u64 {
            runs.admit("g", 2 * n + 2, now, true);
        }
        assert_eq!(runs.admit("g", 1, now, true), Admit::Unordered, "forgotten");
        assert_eq!(runs.admit("g", 3, now, true), Admit::Late);
        runs.max_runs = 2;
        runs.admit("a", 1, now, true);
        runs.admit("b", 1, now, true);
        runs.admit("c", 1, now, true);
        // "a" was forgotten: its next event counts as a first sight.
        assert_eq!(runs.admit("a", 7, now, true), Admit::InOrder);
        assert_eq!(runs.admit("c", 2, now, true), Admit::InOrder);
    }
}
