//! Time as crossguard sees it: an injectable source of "now", so expiry, refresh, retention
//! and the access-key ladder are tested without waiting.

use jiff::Timestamp;

/// A source of the current time (UTC, second precision is enough for every caller).
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The real clock: the system's wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}
