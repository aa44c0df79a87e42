//! One replica's leases in memory, and the fast path that spends them
//! without calling Redis.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use portcullis_throttle::store::{BucketCheck, Outcome, ThrottleStoreError};

use crate::ScriptClock;
use crate::connection::RedisConnection;
use crate::throttle::write_key;

use super::config::{LeaseConfig, nanos};
use super::entry::Entry;
use crate::throttle::MAX_BUCKETS;

pub(super) struct Inner {
    pub(super) connection: RedisConnection,
    pub(super) prefix: String,
    pub(super) time: ScriptClock,
    pub(super) config: LeaseConfig,
    /// This replica's id in lease fields.
    pub(super) replica: String,
    pub(super) next_lease: AtomicU64,
    /// The lease clock's origin (with [`ScriptClock::Redis`]).
    pub(super) epoch: Instant,
    /// The latest caller time seen (with [`ScriptClock::Caller`]), for the
    /// background task.
    pub(super) last_now: AtomicU64,
    pub(super) entries: RwLock<HashMap<String, Arc<Entry>>>,
}

impl Inner {
    /// The lease clock: Redis's clock is not readable here, so a monotonic
    /// clock of this process times the leases; with a caller's clock, that.
    pub(super) fn clock(&self, now_unix_nanos: u64) -> u64 {
        match self.time {
            ScriptClock::Redis => nanos(self.epoch.elapsed()),
            ScriptClock::Caller => now_unix_nanos,
        }
    }

    pub(super) fn all(&self) -> Vec<(String, Arc<Entry>)> {
        self.entries.read().map_or_else(
            |_| Vec::new(),
            |map| map.iter().map(|(k, e)| (k.clone(), e.clone())).collect(),
        )
    }

    pub(super) fn entry(&self, key: &str) -> Arc<Entry> {
        if let Some(entry) = self.entries.read().ok().and_then(|m| m.get(key).cloned()) {
            return entry;
        }
        let lease_id = self.next_lease.fetch_add(1, Ordering::Relaxed);
        match self.entries.write() {
            Ok(mut map) => map
                .entry(key.to_owned())
                .or_insert_with(|| Arc::new(Entry::new(lease_id)))
                .clone(),
            // A poisoned map (a panic elsewhere): a lease of its own, not
            // shared with other requests.
            Err(_) => Arc::new(Entry::new(lease_id)),
        }
    }

    pub(super) fn field(&self, lease_id: u64) -> String {
        format!("l:{}:{lease_id:x}", self.replica)
    }

    /// The synchronous path: one local token from each bucket's lease.
    /// `None` when a lease must be renewed (nothing is kept then).
    pub(super) fn try_fast(
        &self,
        checks: &[BucketCheck<'_>],
        now: u64,
    ) -> Option<Result<Outcome, ThrottleStoreError>> {
        if self.time == ScriptClock::Caller {
            self.last_now.fetch_max(now, Ordering::Relaxed);
        }
        let clock = self.clock(now);
        let map = self.entries.read().ok()?;
        let mut taken: [(Option<&Entry>, u64); MAX_BUCKETS] = [(None, 0); MAX_BUCKETS];
        let mut key = String::with_capacity(self.prefix.len() + 96);
        let mut best = (0usize, u64::MAX, 0u64);
        let give_back = |taken: &[(Option<&Entry>, u64)]| {
            for (entry, generation) in taken {
                if let Some(entry) = entry {
                    entry.put_back(*generation);
                }
            }
        };
        for (i, check) in checks.iter().enumerate() {
            key.clear();
            write_key(&self.prefix, check, &mut key);
            let t = check.gcra.emission_interval_nanos();
            let cap = check.gcra.capacity_nanos();
            let Some(entry) = map.get(key.as_str()) else {
                give_back(&taken[..i]);
                return None;
            };
            if !entry.matches(t, cap) {
                give_back(&taken[..i]);
                return None;
            }
            let refused_until = entry.refused_until.load(Ordering::Relaxed);
            if clock < refused_until {
                give_back(&taken[..i]);
                let retry_at = entry.retry_at.load(Ordering::Relaxed);
                return Some(Ok(Outcome {
                    admitted: false,
                    bucket: i,
                    remaining: 0,
                    retry_after_nanos: retry_at.saturating_sub(clock),
                    full_after_nanos: cap,
                }));
            }
            if clock >= entry.deadline.load(Ordering::Acquire) {
                give_back(&taken[..i]);
                return None;
            }
            let Some(generation) = entry.take() else {
                give_back(&taken[..i]);
                return None;
            };
            taken[i] = (Some(entry), generation);
            let left = entry
                .tokens()
                .saturating_add(entry.level.load(Ordering::Relaxed));
            if left < best.1 {
                best = (i, left, t);
            }
        }
        Some(Ok(admitted(best, checks)))
    }

    /// Takes one token from each lease, all or none.
    pub(super) fn take_all(&self, entries: &[Arc<Entry>], clock: u64) -> bool {
        let mut taken: Vec<(&Entry, u64)> = Vec::with_capacity(entries.len());
        for entry in entries {
            let live = clock < entry.deadline.load(Ordering::Acquire);
            match live.then(|| entry.take()).flatten() {
                Some(generation) => taken.push((entry, generation)),
                None => {
                    for (entry, generation) in taken {
                        entry.put_back(generation);
                    }
                    return false;
                }
            }
        }
        true
    }
}

/// The admitted outcome of the fast path: the bucket with the fewest tokens
/// left (leased here plus the bucket's level at the last call).
pub(super) fn admitted(best: (usize, u64, u64), checks: &[BucketCheck<'_>]) -> Outcome {
    let (bucket, left, t) = best;
    let remaining = u32::try_from(left).unwrap_or(u32::MAX);
    let cap = checks.get(bucket).map_or(0, |c| c.gcra.capacity_nanos());
    Outcome {
        admitted: true,
        bucket,
        remaining,
        retry_after_nanos: 0,
        full_after_nanos: cap.saturating_sub(t.saturating_mul(u64::from(remaining))),
    }
}
