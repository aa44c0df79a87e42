//! How leases are sized and kept.

use std::time::Duration;

use super::entry::TOKENS;

/// How [`LeasedThrottleStore`](crate::LeasedThrottleStore) sizes its leases
/// and how long it keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseConfig {
    /// How much of this replica's traffic for a bucket one lease should
    /// serve: a lease asks for the replica's measured rate for the bucket
    /// times this (50 ms by default). Redis grants at most a quarter of the
    /// bucket's level (at least 1).
    pub lease_duration: Duration,
    /// How long a lease lives in Redis (250 ms by default). The replica
    /// stops spending it an eighth of this earlier, counted from when it
    /// sent the call; Redis counts whatever is still out at the deadline as
    /// spent then.
    pub lease_ttl: Duration,
    /// A lease not renewed within this is given back by the background task
    /// ([`LeasedThrottleStore::spawn_flusher`]; 100 ms by default), well
    /// before its ttl.
    ///
    /// [`LeasedThrottleStore::spawn_flusher`]: crate::LeasedThrottleStore::spawn_flusher
    pub give_back_after: Duration,
    /// The first lease of a bucket, before the replica's rate is known (4).
    pub initial_lease: u64,
    /// The largest lease asked for at once (1,000).
    pub max_lease: u64,
    /// How long a bucket that Redis refused is refused locally without
    /// asking again (at most its retry-after; 10 ms by default; zero asks
    /// Redis for every refused request).
    pub refusal_cache: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_millis(50),
            lease_ttl: Duration::from_millis(250),
            give_back_after: Duration::from_millis(100),
            initial_lease: 4,
            max_lease: 1000,
            refusal_cache: Duration::from_millis(10),
        }
    }
}

impl LeaseConfig {
    /// Sets [`lease_duration`](Self::lease_duration).
    #[must_use]
    pub fn lease_duration(mut self, duration: Duration) -> Self {
        self.lease_duration = duration;
        self
    }

    /// Sets [`lease_ttl`](Self::lease_ttl) (at least 8 ms).
    #[must_use]
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(8));
        self
    }

    /// Sets [`give_back_after`](Self::give_back_after).
    #[must_use]
    pub fn give_back_after(mut self, after: Duration) -> Self {
        self.give_back_after = after;
        self
    }

    /// Sets [`initial_lease`](Self::initial_lease) and
    /// [`max_lease`](Self::max_lease) (both at least 1).
    #[must_use]
    pub fn lease_sizes(mut self, initial: u64, max: u64) -> Self {
        self.max_lease = max.clamp(1, TOKENS);
        self.initial_lease = initial.clamp(1, self.max_lease);
        self
    }

    /// Sets [`refusal_cache`](Self::refusal_cache).
    #[must_use]
    pub fn refusal_cache(mut self, cache: Duration) -> Self {
        self.refusal_cache = cache;
        self
    }
}

pub(super) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
