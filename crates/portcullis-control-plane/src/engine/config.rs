//! [`EngineConfig`]: how the quota engine sizes its blocks and how long it
//! keeps them.

use std::time::Duration;

/// How the engine sizes its blocks (leases) and how long it keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// The largest block reserved at once: the most a crash can cost one
    /// key in under-admission (and over-counting in its usage records).
    pub max_block: u64,
    /// The first block of a counter, and the smallest the request rate
    /// sizes (the remaining quota can make blocks smaller, down to 1).
    pub initial_block: u64,
    /// How much of this replica's traffic for a key one block should serve:
    /// a block is the key's observed request rate on this replica times
    /// this (100 ms by default), within `initial_block..=max_block`.
    pub block_duration: Duration,
    /// A block not spent within this is given back by the background task
    /// ([`QuotaEngine::spawn_flusher`](super::QuotaEngine::spawn_flusher)), so an idle replica does not sit on
    /// quota another replica could use (1 s by default).
    pub block_ttl: Duration,
    /// How long the engine trusts "this key's quota is spent" before it
    /// asks the store again, so quota given back by another replica (or
    /// added by UpdateUsage) is found (100 ms by default).
    pub exhausted_recheck: Duration,
    /// How long a request that finds the quota spent while other replicas
    /// hold blocks of it ([`Grant::outstanding`](crate::reservation::Grant::outstanding))
    /// waits for them to give back what they have not spent
    /// ([`QuotaReservation::reclaim`](crate::reservation::QuotaReservation::reclaim)) before it is refused (200 ms by
    /// default; zero refuses at once and leaves the blocks to expire).
    pub reclaim_wait: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_block: 1000,
            initial_block: 16,
            block_duration: Duration::from_millis(100),
            block_ttl: Duration::from_secs(1),
            exhausted_recheck: Duration::from_millis(100),
            reclaim_wait: Duration::from_millis(200),
        }
    }
}
