//! The conformance suite every [`ControlPlaneStore`] must pass: the in-memory
//! and embedded stores run it in this crate's tests, and a Redis store will
//! run it in its own. It is plain library code, generic over the store.
//!
//! ```
//! use portcullis_control_plane::{MemoryStore, conformance};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! conformance::run(|| async { MemoryStore::memory() }).await;
//! # }
//! ```
//!
//! Each check asks the factory for a fresh, empty store, so each runs
//! *cold* (first operations on a new store, key and period, concurrently
//! where it matters) and then *warm* (the same again after a first use).
//! It also runs `portcullis-api-key`'s and `portcullis-quota`'s own suites
//! against [`KeyCache`] and [`QuotaEngine`] on the store (the quota's
//! twice: with blocks, and with
//! [`EngineConfig::count_in_place`](crate::EngineConfig::count_in_place)). The suite panics,
//! naming the check, at the first behaviour that differs.
//!
//! It needs a multi-threaded tokio runtime (it spawns tasks).

mod fixtures;
mod keys;
mod plans;
mod quota;

use std::future::Future;

use crate::engine::{EngineConfig, QuotaEngine};
use crate::keys::KeyCache;
use crate::store::ControlPlaneStore;

use self::fixtures::ok;
use self::keys::{api_keys, bad_input_changes_nothing};
use self::plans::{pagination, usage_plans_and_keys};
use self::quota::{
    an_idle_replicas_block_is_reclaimed, engine_is_exact_cold_and_warm,
    outstanding_blocks_count_against_an_update, reservation_is_exact_cold_and_warm,
    update_usage_with_an_outstanding_block,
};

/// Runs every check, each on a fresh store from `new_store`.
pub async fn run<S, F, Fut>(new_store: F)
where
    S: ControlPlaneStore + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    api_keys(&new_store().await).await;
    bad_input_changes_nothing(&new_store().await).await;
    usage_plans_and_keys(&new_store().await).await;
    pagination(&new_store().await).await;
    reservation_is_exact_cold_and_warm(new_store().await).await;
    engine_is_exact_cold_and_warm(new_store().await).await;
    update_usage_with_an_outstanding_block(new_store().await).await;
    an_idle_replicas_block_is_reclaimed(new_store().await).await;
    outstanding_blocks_count_against_an_update(&new_store().await).await;
    let cache = ok(KeyCache::load(new_store().await).await, "KeyCache::load");
    if let Err(failure) = portcullis_api_key::conformance::run(&cache).await {
        panic!("conformance: KeyCache: {failure}");
    }
    for count_in_place in [false, true] {
        // Counting in place changes the in-memory store only; the others
        // keep their blocks and are checked twice the same way.
        portcullis_quota::conformance::check_store(|| async {
            QuotaEngine::with_config(
                new_store().await,
                EngineConfig {
                    max_block: 4,
                    initial_block: 2,
                    count_in_place,
                    ..EngineConfig::default()
                },
            )
        })
        .await;
    }
}
