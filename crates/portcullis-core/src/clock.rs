//! Time, injected: the system clock in production, a manual clock in tests.
//!
//! Every layer that reads time takes a [`Clock`]. A [`ManualClock`] is shared
//! by its clones, so a test moves time for the layer it built without sleeping:
//!
//! ```
//! use std::time::Duration;
//! use portcullis_core::clock::{Clock, ManualClock};
//!
//! let clock = ManualClock::at_unix(1_700_000_000);
//! let seen_by_layer = clock.clone();
//! clock.advance(Duration::from_millis(1500));
//! assert_eq!(seen_by_layer.now_unix_nanos(), 1_700_000_001_500_000_000);
//! assert_eq!(seen_by_layer.now().unix_timestamp(), 1_700_000_001);
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

/// A source of wall-clock time.
///
/// Time is nanoseconds since the Unix epoch, UTC: the one scale that a
/// throttle, a quota's calendar, a SigV4 date and a JWT's `exp` can all share,
/// and that Redis's `TIME` also speaks.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Now, in nanoseconds since the Unix epoch.
    fn now_unix_nanos(&self) -> u64;

    /// Now, as a UTC date and time.
    fn now(&self) -> OffsetDateTime {
        let nanos = i128::from(self.now_unix_nanos());
        // Any u64 count of nanoseconds (until the year 2554) is in range.
        OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Now, in whole seconds since the Unix epoch.
    fn now_unix_seconds(&self) -> u64 {
        self.now_unix_nanos() / 1_000_000_000
    }

    /// Now, as a [`SystemTime`].
    fn now_system_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.now_unix_nanos())
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now_unix_nanos(&self) -> u64 {
        (**self).now_unix_nanos()
    }
}

impl<C: Clock + ?Sized> Clock for &'static C {
    fn now_unix_nanos(&self) -> u64 {
        (**self).now_unix_nanos()
    }
}

/// A clock shared behind a trait object, for layers that do not want a type
/// parameter for their clock.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's wall clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_nanos(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// A clock that moves only when told to. Clones share the same time.
#[derive(Clone, Debug)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at this many nanoseconds since the Unix epoch.
    #[must_use]
    pub fn at_unix_nanos(nanos: u64) -> Self {
        Self {
            nanos: Arc::new(AtomicU64::new(nanos)),
        }
    }

    /// A clock at this many seconds since the Unix epoch.
    #[must_use]
    pub fn at_unix(seconds: u64) -> Self {
        Self::at_unix_nanos(seconds.saturating_mul(1_000_000_000))
    }

    /// A clock at this date and time. Times before 1970 start at the epoch.
    #[must_use]
    pub fn at(datetime: OffsetDateTime) -> Self {
        Self::at_unix_nanos(nanos_of(datetime))
    }

    /// A clock at the system's time now, frozen there.
    #[must_use]
    pub fn starting_now() -> Self {
        Self::at_unix_nanos(SystemClock.now_unix_nanos())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(by))
            })
            .ok();
    }

    /// Sets the clock to this date and time (it may go backwards).
    pub fn set(&self, datetime: OffsetDateTime) {
        self.nanos.store(nanos_of(datetime), Ordering::Release);
    }

    /// Sets the clock to this many nanoseconds since the Unix epoch.
    pub fn set_unix_nanos(&self, nanos: u64) {
        self.nanos.store(nanos, Ordering::Release);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::at_unix(0)
    }
}

impl Clock for ManualClock {
    fn now_unix_nanos(&self) -> u64 {
        self.nanos.load(Ordering::Acquire)
    }
}

fn nanos_of(datetime: OffsetDateTime) -> u64 {
    u64::try_from(datetime.unix_timestamp_nanos()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn manual_clock_is_shared_by_clones() {
        let clock = ManualClock::at(datetime!(2028-02-29 23:59:59 UTC));
        let other = clock.clone();
        clock.advance(Duration::from_secs(1));
        assert_eq!(other.now(), datetime!(2028-03-01 00:00:00 UTC));
        other.set(datetime!(2020-01-01 00:00:00 UTC));
        assert_eq!(clock.now_unix_seconds(), 1_577_836_800);
    }

    #[test]
    fn system_clock_is_close_to_system_time() {
        let ours = SystemClock.now_system_time();
        let theirs = SystemTime::now();
        let gap = theirs.duration_since(ours).unwrap_or_else(|e| e.duration());
        assert!(gap < Duration::from_secs(5), "{gap:?}");
    }

    #[test]
    fn shared_clocks_delegate() {
        let manual = ManualClock::at_unix(42);
        let shared: SharedClock = Arc::new(manual.clone());
        manual.advance(Duration::from_secs(1));
        assert_eq!(shared.now_unix_seconds(), 43);
    }
}
