//! The layer's default clock: the system clock read once, then advanced by
//! the CPU's time-stamp counter.

use portcullis_core::clock::{Clock, SystemClock};

/// A [`Clock`] that reads the operating system's wall clock once, when it is
/// created, and from then on adds the time elapsed on a monotonic counter
/// (`quanta`: the CPU's time-stamp counter where it is reliable, else the
/// OS's monotonic clock).
///
/// It is the throttle's default because a token bucket needs only the time
/// between requests: reading the counter costs a few nanoseconds where
/// `clock_gettime` costs tens, and it never goes backwards when NTP steps
/// the wall clock. It drifts from the wall clock as the two clocks disagree
/// (seconds per day at worst), which no bucket notices; where wall-clock time
/// matters (quotas, token expiry) use [`SystemClock`].
#[derive(Clone, Debug)]
pub struct MonotonicClock {
    clock: quanta::Clock,
    origin: quanta::Instant,
    origin_unix_nanos: u64,
}

impl MonotonicClock {
    /// A clock that starts at the system's time now.
    #[must_use]
    pub fn new() -> Self {
        let clock = quanta::Clock::new();
        Self {
            origin: clock.now(),
            origin_unix_nanos: SystemClock.now_unix_nanos(),
            clock,
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_unix_nanos(&self) -> u64 {
        let elapsed = self.clock.now().duration_since(self.origin);
        self.origin_unix_nanos
            .saturating_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_system_clock_and_never_goes_back() {
        let clock = MonotonicClock::new();
        let mut last = clock.now_unix_nanos();
        for _ in 0..1000 {
            let now = clock.now_unix_nanos();
            assert!(now >= last);
            last = now;
        }
        let gap = SystemClock
            .now_unix_nanos()
            .abs_diff(clock.now_unix_nanos());
        assert!(gap < 1_000_000_000, "{gap} ns apart");
    }
}
