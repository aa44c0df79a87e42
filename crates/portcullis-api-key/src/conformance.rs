//! A conformance suite for [`ApiKeyStore`] implementations.
//!
//! Every backend runs the same checks: the in-memory store in this crate's
//! tests, a Redis store in its own. Run it on an empty store:
//!
//! ```
//! use portcullis_api_key::{InMemoryApiKeyStore, conformance};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! conformance::run(&InMemoryApiKeyStore::new()).await.unwrap();
//! # }
//! ```

use std::sync::Arc;

use time::OffsetDateTime;

use crate::key::{ApiKeyRecord, KeyDigest};
use crate::store::{ApiKeyLookupResult, ApiKeyStore, ApiKeyStoreError};

/// A check of the suite that failed, with what was expected.
#[derive(Debug, thiserror::Error)]
#[error("API key store conformance: {0}")]
pub struct ConformanceFailure(String);

fn check(ok: bool, what: &str) -> Result<(), ConformanceFailure> {
    if ok {
        Ok(())
    } else {
        Err(ConformanceFailure(what.to_owned()))
    }
}

fn store_ok<T>(result: Result<T, ApiKeyStoreError>, what: &str) -> Result<T, ConformanceFailure> {
    result.map_err(|e| ConformanceFailure(format!("{what}: {e}")))
}

fn id_of(found: &ApiKeyLookupResult) -> Option<String> {
    match found {
        Ok(Some(record)) => Some(record.id().to_owned()),
        _ => None,
    }
}

async fn found_id<St: ApiKeyStore>(
    store: &St,
    digest: &KeyDigest,
) -> Result<Option<String>, ConformanceFailure> {
    let found = store.lookup(digest).await;
    let id = id_of(&found);
    store_ok(found, "lookup")?;
    if let Some(now) = store.lookup_now(digest, |r| r.ok().flatten().map(|r| r.id().to_owned())) {
        check(now == id, "lookup_now agrees with lookup")?;
    }
    Ok(id)
}

/// Runs the suite against `store`, which must start empty and is left holding
/// records whose ids start with `conformance-`.
///
/// # Errors
///
/// The first check that failed.
pub async fn run<St: ApiKeyStore>(store: &St) -> Result<(), ConformanceFailure> {
    let now = OffsetDateTime::UNIX_EPOCH;
    let digest = |n: u8| KeyDigest::from_bytes([n; 32]);
    let record = |id: &str, n: u8| ApiKeyRecord::new(id, digest(n), now);

    check(
        found_id(store, &digest(1)).await?.is_none(),
        "an empty store finds nothing",
    )?;
    check(
        store_ok(store.get("conformance-a").await, "get")?.is_none(),
        "an empty store has no id",
    )?;

    store_ok(
        store
            .put(record("conformance-a", 1).with_enabled(false))
            .await,
        "put",
    )?;
    check(
        found_id(store, &digest(1)).await?.as_deref() == Some("conformance-a"),
        "a record is found by its digest",
    )?;
    let got = store_ok(store.get("conformance-a").await, "get")?;
    check(
        got.as_deref()
            .is_some_and(|r| !r.enabled() && r.digest() == &digest(1)),
        "a record is found by its id, with its fields",
    )?;

    let duplicate = store.put(record("conformance-b", 1)).await;
    check(
        matches!(duplicate, Err(ApiKeyStoreError::DuplicateValue { .. })),
        "a second key with the same digest is refused with DuplicateValue",
    )?;
    check(
        store_ok(store.get("conformance-b").await, "get")?.is_none(),
        "a refused put writes nothing",
    )?;

    // Rotation: the same id with a new digest.
    store_ok(store.put(record("conformance-a", 2)).await, "put (rotate)")?;
    check(
        found_id(store, &digest(1)).await?.is_none(),
        "after a rotation the old digest is not found",
    )?;
    check(
        found_id(store, &digest(2)).await?.as_deref() == Some("conformance-a"),
        "after a rotation the new digest is found",
    )?;

    store_ok(
        store
            .put_many(vec![record("conformance-c", 3), record("conformance-d", 4)])
            .await,
        "put_many",
    )?;
    check(
        found_id(store, &digest(4)).await?.as_deref() == Some("conformance-d"),
        "put_many writes every record",
    )?;
    let clash = store
        .put_many(vec![record("conformance-e", 5), record("conformance-f", 3)])
        .await;
    check(
        clash.is_err(),
        "put_many refuses a digest another key holds",
    )?;
    check(
        store_ok(store.get("conformance-e").await, "get")?.is_none(),
        "a refused put_many writes nothing",
    )?;

    let deleted = store_ok(store.delete("conformance-c").await, "delete")?;
    check(
        deleted
            .as_deref()
            .is_some_and(|r| r.id() == "conformance-c"),
        "delete answers the deleted record",
    )?;
    check(
        found_id(store, &digest(3)).await?.is_none(),
        "a deleted key is not found",
    )?;
    check(
        store_ok(store.delete("conformance-c").await, "delete")?.is_none(),
        "deleting twice answers nothing",
    )?;

    let mut ids: Vec<String> = store_ok(store.list().await, "list")?
        .iter()
        .map(|r: &Arc<ApiKeyRecord>| r.id().to_owned())
        .collect();
    ids.sort();
    check(
        ids == ["conformance-a", "conformance-d"],
        "list answers exactly the remaining records",
    )?;
    Ok(())
}
