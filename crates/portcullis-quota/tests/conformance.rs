//! The store conformance suite against the in-memory store.

use portcullis_quota::store::InMemoryQuotaStore;

#[tokio::test]
async fn the_memory_store_conforms() {
    portcullis_quota::conformance::check_store(|| async { InMemoryQuotaStore::new() }).await;
}
