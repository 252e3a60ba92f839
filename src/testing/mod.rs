//! Test support: what crossguard's tests and benchmarks share, kept out of release builds.
//!
//! Compiled only for the crate's own unit tests and with the `testing` feature, which the
//! dev-dependency of the crate on itself turns on for integration tests and benches;
//! `cargo build --release` leaves it out, so nothing here ships in the operator.
//!
//! - [`aws::FakeAws`]: one stateful in-memory fake of the AWS calls crossguard makes.
//! - [`ManualClock`]: a [`Clock`] tests move by hand.
//! - [`synthetic`]: realistic, deterministic clusters for analysis tests and benchmarks.
//! - [`dump`]: typed snapshot <-> `kubectl get -o json` `List`, for tests and benchmarks.

pub mod aws;
pub mod dump;
pub mod synthetic;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;

use crate::clock::Clock;

/// A [`Clock`] that only moves when the test moves it. Share one `Arc` between the test and
/// the code under test (and [`aws::FakeAws`], so session expiry follows the same time).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    /// A clock standing at `seconds` after the Unix epoch.
    ///
    /// # Panics
    /// When `seconds` is outside jiff's range of timestamps (a test bug).
    pub fn at(seconds: i64) -> Arc<Self> {
        let now = Timestamp::from_second(seconds).expect("a test time within jiff's range");
        Arc::new(ManualClock {
            now: Mutex::new(now),
        })
    }

    /// Move the clock forward by `by`.
    ///
    /// # Panics
    /// When that leaves jiff's range of timestamps (a test bug).
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now = now
            .checked_add(by)
            .expect("a test time within jiff's range");
    }

    /// Put the clock at `to` (earlier or later).
    pub fn set(&self, to: Timestamp) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::at(1_800_000_000);
        assert_eq!(clock.now().as_second(), 1_800_000_000);
        clock.advance(Duration::from_millis(2_500));
        assert_eq!(clock.now().as_millisecond(), 1_800_000_002_500);
        clock.set(Timestamp::from_second(100).unwrap());
        assert_eq!(clock.now().as_second(), 100);
    }
}
