//! The reply inboxes of the requests a serving bridge has in flight: each
//! kept until its requester says it is done or its TTL ends, at most
//! `max_pending_requests` at once.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Below this many pending requests, expired ones are not swept; above it,
/// they are swept each time the count doubles since the last sweep.
const SWEEP_FLOOR: usize = 256;

struct Pending {
    reply: String,
    until: Instant,
}

/// The reply inboxes of the requests in flight, by request id (several
/// requesters may use one id), at most `max` of them.
pub(crate) struct PendingReplies {
    pub(crate) max: usize,
    inner: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    by_id: HashMap<String, Vec<Pending>>,
    /// The request id of each inbox in `by_id`: a done notice names the inbox.
    by_reply: HashMap<String, String>,
    /// Sweep expired entries once there are this many (amortized: each
    /// sweep is paid for by as many inserts as it scans).
    sweep_at: usize,
    /// When the last sweep ran: while full, sweeps run at most once a
    /// second, so a flood of rejected requests costs no scan each.
    swept: Option<Instant>,
}

impl Waiting {
    /// Forgets `reply`; whether it was waiting.
    fn remove(&mut self, reply: &str) -> bool {
        let Some(request_id) = self.by_reply.remove(reply) else {
            return false;
        };
        if let Some(pending) = self.by_id.get_mut(&request_id) {
            pending.retain(|p| p.reply != reply);
            if pending.is_empty() {
                self.by_id.remove(&request_id);
            }
        }
        true
    }

    fn sweep(&mut self, now: Instant) {
        let Waiting {
            by_id, by_reply, ..
        } = self;
        by_id.retain(|_, pending| {
            pending.retain(|p| p.until > now || forget(by_reply, &p.reply));
            !pending.is_empty()
        });
        self.sweep_at = 2 * self.by_reply.len();
        self.swept = Some(now);
    }
}

/// Drops an expired entry's inbox from the index; `false`: drop the entry too.
fn forget(by_reply: &mut HashMap<String, String>, reply: &str) -> bool {
    by_reply.remove(reply);
    false
}

impl PendingReplies {
    /// Room for `max` requests in flight.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers `reply` for `request_id` until `until` (an inbox used
    /// again waits for its latest request only); `false` if `max` requests
    /// are waiting already.
    pub(crate) fn insert(&self, request_id: String, reply: String, until: Instant) -> bool {
        let mut waiting = self.lock();
        waiting.remove(&reply);
        let now = Instant::now();
        let count = waiting.by_reply.len();
        let full = count >= self.max
            && waiting
                .swept
                .is_none_or(|swept| now.duration_since(swept) >= Duration::from_secs(1));
        if count >= waiting.sweep_at.max(SWEEP_FLOOR) || full {
            waiting.sweep(now);
        }
        if waiting.by_reply.len() >= self.max {
            return false;
        }
        waiting.by_reply.insert(reply.clone(), request_id.clone());
        waiting
            .by_id
            .entry(request_id)
            .or_default()
            .push(Pending { reply, until });
        true
    }

    /// The inboxes still waiting for answers to `request_id`.
    pub(crate) fn replies(&self, request_id: &str) -> Vec<String> {
        let mut waiting = self.lock();
        let Waiting {
            by_id, by_reply, ..
        } = &mut *waiting;
        let Some(pending) = by_id.get_mut(request_id) else {
            return Vec::new();
        };
        let now = Instant::now();
        pending.retain(|p| p.until > now || forget(by_reply, &p.reply));
        let replies = pending.iter().map(|p| p.reply.clone()).collect();
        if pending.is_empty() {
            by_id.remove(request_id);
        }
        replies
    }

    /// Forgets the request waiting on `reply`, its requester being done;
    /// whether one was. Only the exact inbox matches: a notice frees at most
    /// the one request whose inbox it names.
    pub(crate) fn done(&self, reply: &str) -> bool {
        self.lock().remove(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[test]
    fn pending_replies_expire() {
        let pending = PendingReplies::new(16);
        let now = Instant::now();
        pending.insert("r1".into(), "inbox.a".into(), now + Duration::from_secs(60));
        pending.insert("r1".into(), "inbox.b".into(), now + Duration::from_secs(60));
        pending.insert("r2".into(), "inbox.c".into(), now);
        assert_eq!(pending.replies("r1"), ["inbox.a", "inbox.b"]);
        assert!(pending.replies("r2").is_empty());
        assert!(pending.replies("r3").is_empty());
        // Expired and dropped: nothing left for a done notice either.
        assert!(!pending.done("inbox.c"));
    }

    #[test]
    fn pending_replies_are_capped_and_done_frees_room() {
        let pending = PendingReplies::new(4);
        for n in 0..4 {
            assert!(pending.insert(n.to_string(), format!("inbox.{n}"), later()));
        }
        assert!(!pending.insert("4".into(), "inbox.4".into(), later()));
        // Another inbox for an id in flight is another request: no room either.
        assert!(!pending.insert("0".into(), "inbox.0b".into(), later()));
        assert!(pending.done("inbox.2"));
        assert!(pending.insert("4".into(), "inbox.4".into(), later()));
        assert!(pending.replies("2").is_empty());
        assert_eq!(pending.replies("4"), ["inbox.4"]);
    }

    #[test]
    fn a_done_notice_frees_only_the_inbox_it_names() {
        let pending = PendingReplies::new(16);
        pending.insert("r1".into(), "_INBOX.a".into(), later());
        pending.insert("r1".into(), "_INBOX.b".into(), later());
        pending.insert("r2".into(), "_INBOX.c".into(), later());
        for hostile in [
            "",
            "_INBOX.",
            "_INBOX.*",
            "_INBOX.>",
            "r1",
            "_INBOX.a ",
            "_INBOX.z",
        ] {
            assert!(!pending.done(hostile), "{hostile:?}");
        }
        assert!(pending.done("_INBOX.a"));
        assert!(!pending.done("_INBOX.a"), "freed once");
        assert_eq!(pending.replies("r1"), ["_INBOX.b"]);
        assert_eq!(pending.replies("r2"), ["_INBOX.c"]);
        assert!(pending.done("_INBOX.b"));
        assert!(pending.replies("r1").is_empty());
    }

    #[test]
    fn an_inbox_used_again_waits_for_its_latest_request() {
        let pending = PendingReplies::new(1);
        assert!(pending.insert("r1".into(), "inbox".into(), later()));
        assert!(pending.insert("r2".into(), "inbox".into(), later()));
        assert!(pending.replies("r1").is_empty());
        assert_eq!(pending.replies("r2"), ["inbox"]);
    }

    #[test]
    fn a_full_table_sweeps_the_expired_entries_and_their_index() {
        let pending = PendingReplies::new(2);
        let now = Instant::now();
        pending.insert("r1".into(), "inbox.1".into(), now);
        pending.insert("r2".into(), "inbox.2".into(), now);
        assert!(pending.insert("r3".into(), "inbox.3".into(), later()));
        assert!(!pending.done("inbox.1"));
        assert!(pending.insert("r4".into(), "inbox.4".into(), later()));
        assert!(!pending.insert("r5".into(), "inbox.5".into(), later()));
    }
}
