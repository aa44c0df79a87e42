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
    /// Count each request on the store's own counter, holding no block,
    /// when the store can do that at memory cost
    /// ([`QuotaReservation::consume_in_place`](crate::reservation::QuotaReservation::consume_in_place):
    /// the in-memory [`LocalStore`](crate::LocalStore), one process with
    /// nothing written anywhere, where a block saves nothing and shares
    /// nothing). Off by default; no effect on a store that cannot.
    ///
    /// - **Saves** the engine's entry (about 130 bytes with its share of
    ///   the map) for every key holding a block, for the block's life: at
    ///   a million keys seen within a `block_ttl`, most of the memory a key
    ///   costs. Usage is exact at once, never stale.
    /// - **Costs** the store's lock on every request, where a block costs
    ///   a compare-and-swap: with many cores and one hot key, blocks scale
    ///   further.
    ///
    /// The facade (`portcullis`) turns it on: for `[store] kind =
    /// "memory"` it takes effect, and for the embedded store and Redis it
    /// does nothing.
    pub count_in_place: bool,
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
            count_in_place: false,
        }
    }
}
