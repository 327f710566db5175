//! [`Timestamp`]: the time an event was built, for events that carry it.

use std::time::SystemTime;

/// When an event happened: a [`SystemTime`] that an event type can carry to
/// be stamped at construction.
///
/// Its [`Default`] is [`Timestamp::now`], so an event struct with a
/// `timestamp: Timestamp` field is stamped when it is built, and
/// `#[derive(Event)]` reads that field for [`Event::timestamp`](crate::Event::timestamp).
///
/// ```
/// use std::time::SystemTime;
/// use switchboard::Timestamp;
///
/// let before = SystemTime::now();
/// let stamped = Timestamp::now();
/// assert!(SystemTime::from(stamped) >= before);
/// assert_eq!(SystemTime::from(Timestamp::UNIX_EPOCH), SystemTime::UNIX_EPOCH);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(SystemTime);

impl Timestamp {
    /// 1970-01-01 00:00:00 UTC: a fixed time, for tests and for events whose
    /// time does not matter.
    pub const UNIX_EPOCH: Timestamp = Timestamp(SystemTime::UNIX_EPOCH);

    /// The current time.
    pub fn now() -> Self {
        Self(SystemTime::now())
    }

    /// The time as a [`SystemTime`].
    pub fn as_system_time(self) -> SystemTime {
        self.0
    }
}

impl Default for Timestamp {
    /// [`Timestamp::now`]: a default-built event is stamped when it is built.
    fn default() -> Self {
        Self::now()
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Self {
        Self(time)
    }
}

impl From<Timestamp> for SystemTime {
    fn from(timestamp: Timestamp) -> Self {
        timestamp.0
    }
}
