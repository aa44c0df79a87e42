//! The layer's default clock: the system clock read once, then advanced by
//! the CPU's time-stamp counter.

use std::fmt;

use portcullis_core::clock::{Clock, SharedClock, SystemClock};

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
    /// The counter's raw reading at `origin_unix_nanos`.
    origin_raw: u64,
    origin_unix_nanos: u64,
}

impl MonotonicClock {
    /// A clock that starts at the system's time now.
    #[must_use]
    pub fn new() -> Self {
        let clock = quanta::Clock::new();
        Self {
            origin_raw: clock.raw(),
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
    /// The origin plus the counter's raw delta since, scaled once to
    /// nanoseconds (0 if the counter reads at or before its origin, so the
    /// clock never goes back before its start).
    #[inline]
    fn now_unix_nanos(&self) -> u64 {
        let elapsed = self.clock.delta_as_nanos(self.origin_raw, self.clock.raw());
        self.origin_unix_nanos.saturating_add(elapsed)
    }
}

/// The layer's clock: the default [`MonotonicClock`] called directly (no
/// dynamic call, inlined into the request path), or any other [`Clock`]
/// given to [`ThrottleLayer::clock`](crate::ThrottleLayer::clock), such as a
/// manual clock in tests.
#[derive(Clone)]
pub(crate) enum LayerClock {
    Monotonic(MonotonicClock),
    Shared(SharedClock),
}

impl LayerClock {
    #[inline]
    pub(crate) fn now_unix_nanos(&self) -> u64 {
        match self {
            LayerClock::Monotonic(clock) => clock.now_unix_nanos(),
            LayerClock::Shared(clock) => clock.now_unix_nanos(),
        }
    }
}

impl fmt::Debug for LayerClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerClock::Monotonic(clock) => clock.fmt(f),
            LayerClock::Shared(clock) => clock.fmt(f),
        }
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
