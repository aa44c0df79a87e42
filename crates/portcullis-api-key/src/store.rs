//! Where key records live: the [`ApiKeyStore`] trait and the in-memory store.

use std::collections::HashMap;
use std::fmt;
use std::future::{Future, Ready, ready};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use crate::key::{ApiKeyRecord, DigestKey, KeyDigest};
use portcullis_core::hash::BuildPrehashed;

/// What a lookup answers: the record, `None` for an unknown key, or the
/// store's failure.
pub type ApiKeyLookupResult = Result<Option<Arc<ApiKeyRecord>>, ApiKeyStoreError>;

/// Why a store operation failed. No variant carries a key value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiKeyStoreError {
    /// Another key already has this value.
    #[error("key `{id}` cannot take this value: key `{holder}` already has it")]
    DuplicateValue {
        /// The key being written.
        id: String,
        /// The key that holds the value.
        holder: String,
    },
    /// The backend failed (a network error, a timeout, ...).
    #[error("API key store failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A store of API key records, looked up by the SHA-256 digest of the value.
///
/// The trait is async so that a networked store (Redis) fits. A store that can
/// answer at once, such as [`InMemoryApiKeyStore`], also implements
/// [`lookup_now`](Self::lookup_now): the layer then decides inside `call`,
/// with no future of its own to drive and no clone of the inner service.
///
/// Writes replace whole records; [`ApiKeys`](crate::ApiKeys) builds them.
pub trait ApiKeyStore: Send + Sync + 'static {
    /// The future of [`lookup`](Self::lookup). A store without a nameable
    /// future may use `Pin<Box<dyn Future<Output = ApiKeyLookupResult> + Send>>`.
    type Lookup: Future<Output = ApiKeyLookupResult> + Send + 'static;

    /// The record whose value has this digest.
    fn lookup(&self, digest: &KeyDigest) -> Self::Lookup;

    /// Decides on the record whose value has this digest, when the store can
    /// tell at once without blocking: `decide` sees the record borrowed (no
    /// reference count is touched on the hot path) and its answer is
    /// returned. `None` when the store must go through
    /// [`lookup`](Self::lookup); the default is `None`.
    ///
    /// This is the store's fast path, and it is a borrowing closure rather
    /// than core's [`Answer`](portcullis_core::store::Answer) on purpose: an
    /// `Answer` would have to hand the record out by value, an
    /// `Arc<ApiKeyRecord>` clone and drop (two atomic operations on a cache
    /// line every request for that key shares) that the closure avoids.
    fn lookup_now<R>(
        &self,
        digest: &KeyDigest,
        decide: impl FnOnce(Result<Option<&ApiKeyRecord>, ApiKeyStoreError>) -> R,
    ) -> Option<R> {
        let _ = (digest, decide);
        None
    }

    /// The record with this id.
    fn get(&self, id: &str) -> impl Future<Output = ApiKeyLookupResult> + Send;

    /// Every record, in no particular order.
    fn list(&self)
    -> impl Future<Output = Result<Vec<Arc<ApiKeyRecord>>, ApiKeyStoreError>> + Send;

    /// Inserts the record, or replaces the record with the same id (whose old
    /// digest then stops matching: this is how a rotation takes effect).
    ///
    /// Fails with [`ApiKeyStoreError::DuplicateValue`] when another key has the
    /// same digest.
    fn put(
        &self,
        record: ApiKeyRecord,
    ) -> impl Future<Output = Result<(), ApiKeyStoreError>> + Send;

    /// [`put`](Self::put) for many records at once, all or none. The
    /// in-memory store makes this one write, where `put` in a loop would copy
    /// its map once per record.
    fn put_many(
        &self,
        records: Vec<ApiKeyRecord>,
    ) -> impl Future<Output = Result<(), ApiKeyStoreError>> + Send;

    /// Removes the record with this id, and answers it.
    fn delete(&self, id: &str) -> impl Future<Output = ApiKeyLookupResult> + Send;
}

#[derive(Default)]
struct Snapshot {
    by_digest: HashMap<DigestKey, Arc<ApiKeyRecord>, BuildPrehashed>,
    by_id: HashMap<Arc<str>, Arc<ApiKeyRecord>>,
}

impl Snapshot {
    fn insert(&mut self, record: ApiKeyRecord) -> Result<(), ApiKeyStoreError> {
        if let Some(holder) = self.by_digest.get(&DigestKey::from(&record.digest))
            && holder.id != record.id
        {
            return Err(ApiKeyStoreError::DuplicateValue {
                id: record.id.to_string(),
                holder: holder.id.to_string(),
            });
        }
        let record = Arc::new(record);
        if let Some(old) = self.by_id.insert(record.id.clone(), record.clone()) {
            self.by_digest.remove(&DigestKey::from(&old.digest));
        }
        self.by_digest
            .insert(DigestKey::from(&record.digest), record);
        Ok(())
    }

    fn clone_shallow(&self) -> Self {
        Self {
            by_digest: self.by_digest.clone(),
            by_id: self.by_id.clone(),
        }
    }
}

/// The in-memory [`ApiKeyStore`]: an immutable map from digest to record,
/// published through [`arc_swap::ArcSwap`].
///
/// # Why `arc-swap` and not `dashmap`
///
/// A lookup here is one `ArcSwap::load` (a few atomic operations on a
/// thread-local debt slot: no lock, no writer can block it, no cache line
/// shared by every reader) and one probe of a `HashMap` whose hash is the
/// digest's first eight bytes. `dashmap` takes a shard's `RwLock` in read mode
/// on every lookup: every reader writes to the shard's lock word, so readers
/// on different cores contend on it, and a writer holding the shard stalls
/// them.
///
/// The cost falls on writes: each one copies the maps (O(n): a few
/// milliseconds at 100,000 keys) and swaps the copy in. Writers are serialised
/// by a mutex that readers never touch. Use [`put_many`](ApiKeyStore::put_many)
/// (or [`InMemoryApiKeyStore::from_records`]) to load many keys in one copy.
pub struct InMemoryApiKeyStore {
    snapshot: ArcSwap<Snapshot>,
    writer: Mutex<()>,
}

impl InMemoryApiKeyStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            writer: Mutex::new(()),
        }
    }

    /// A store holding these records.
    ///
    /// # Errors
    ///
    /// [`ApiKeyStoreError::DuplicateValue`] when two records share a digest.
    pub fn from_records(
        records: impl IntoIterator<Item = ApiKeyRecord>,
    ) -> Result<Self, ApiKeyStoreError> {
        let mut snapshot = Snapshot::default();
        for record in records {
            snapshot.insert(record)?;
        }
        Ok(Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            writer: Mutex::new(()),
        })
    }

    /// The record whose value has this digest: the hot path. It takes no lock.
    #[must_use]
    pub fn find(&self, digest: &KeyDigest) -> Option<Arc<ApiKeyRecord>> {
        self.snapshot
            .load()
            .by_digest
            .get(&DigestKey::from(digest))
            .cloned()
    }

    /// The record with this id.
    #[must_use]
    pub fn find_by_id(&self, id: &str) -> Option<Arc<ApiKeyRecord>> {
        self.snapshot.load().by_id.get(id).cloned()
    }

    /// How many keys the store holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.snapshot.load().by_id.len()
    }

    /// Whether the store is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&mut Snapshot) -> Result<T, ApiKeyStoreError>,
    ) -> Result<T, ApiKeyStoreError> {
        // A panic while holding the lock leaves no half-written state behind
        // (the snapshot is swapped whole), so a poisoned lock is safe to reuse.
        let _guard = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = self.snapshot.load().clone_shallow();
        let out = f(&mut next)?;
        self.snapshot.store(Arc::new(next));
        Ok(out)
    }

    /// [`ApiKeyStore::put`], synchronously.
    ///
    /// # Errors
    ///
    /// [`ApiKeyStoreError::DuplicateValue`] when another key has the same digest.
    pub fn put_now(&self, record: ApiKeyRecord) -> Result<(), ApiKeyStoreError> {
        self.write(|s| s.insert(record))
    }

    /// [`ApiKeyStore::put_many`], synchronously.
    ///
    /// # Errors
    ///
    /// [`ApiKeyStoreError::DuplicateValue`] when two keys would share a digest; then
    /// nothing is written.
    pub fn put_many_now(&self, records: Vec<ApiKeyRecord>) -> Result<(), ApiKeyStoreError> {
        self.write(|s| records.into_iter().try_for_each(|r| s.insert(r)))
    }

    /// [`ApiKeyStore::delete`], synchronously.
    pub fn delete_now(&self, id: &str) -> Option<Arc<ApiKeyRecord>> {
        // Most deletes of an unknown id then cost no copy.
        self.find_by_id(id)?;
        self.write(|s| {
            let old = s.by_id.remove(id);
            if let Some(old) = &old {
                s.by_digest.remove(&DigestKey::from(&old.digest));
            }
            Ok(old)
        })
        .ok()
        .flatten()
    }
}

impl Default for InMemoryApiKeyStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for InMemoryApiKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryApiKeyStore")
            .field("keys", &self.len())
            .finish_non_exhaustive()
    }
}

impl ApiKeyStore for InMemoryApiKeyStore {
    type Lookup = Ready<ApiKeyLookupResult>;

    fn lookup(&self, digest: &KeyDigest) -> Self::Lookup {
        ready(Ok(self.find(digest)))
    }

    fn lookup_now<R>(
        &self,
        digest: &KeyDigest,
        decide: impl FnOnce(Result<Option<&ApiKeyRecord>, ApiKeyStoreError>) -> R,
    ) -> Option<R> {
        let snapshot = self.snapshot.load();
        let found = snapshot.by_digest.get(&DigestKey::from(digest));
        Some(decide(Ok(found.map(|record| &**record))))
    }

    fn get(&self, id: &str) -> impl Future<Output = ApiKeyLookupResult> + Send {
        ready(Ok(self.find_by_id(id)))
    }

    fn list(
        &self,
    ) -> impl Future<Output = Result<Vec<Arc<ApiKeyRecord>>, ApiKeyStoreError>> + Send {
        ready(Ok(self.snapshot.load().by_id.values().cloned().collect()))
    }

    fn put(
        &self,
        record: ApiKeyRecord,
    ) -> impl Future<Output = Result<(), ApiKeyStoreError>> + Send {
        ready(self.put_now(record))
    }

    fn put_many(
        &self,
        records: Vec<ApiKeyRecord>,
    ) -> impl Future<Output = Result<(), ApiKeyStoreError>> + Send {
        ready(self.put_many_now(records))
    }

    fn delete(&self, id: &str) -> impl Future<Output = ApiKeyLookupResult> + Send {
        ready(Ok(self.delete_now(id)))
    }
}
