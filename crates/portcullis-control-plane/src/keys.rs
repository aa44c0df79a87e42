//! [`KeyCache`]: the API-key layer's store on top of a control-plane store.

use std::collections::HashMap;
use std::fmt;
use std::future::{Future, Ready, ready};
use std::sync::Arc;

use arc_swap::ArcSwap;
use portcullis_api_key::{
    ApiKeyLookupResult, ApiKeyRecord, ApiKeyStore, ApiKeyStoreError as KeyStoreError,
    InMemoryApiKeyStore, KeyDigest,
};
use portcullis_core::plan::UsagePlan;

use crate::error::StoreError;
use crate::model::ApiKey;
use crate::store::{ControlPlaneStore, Snapshot};

/// The API-key layer's store ([`ApiKeyStore`]) on a control-plane store: a
/// local snapshot of every key, with its usage plans, that the hot path reads
/// without a lock (one `arc-swap` load more than
/// [`InMemoryApiKeyStore`]'s own lookup).
///
/// - Writes through the cache ([`ApiKeyStore::put`], `delete`) go to the
///   control-plane store, and the cache reloads before they answer: they
///   take effect at once.
/// - Changes made on the store directly (the management API) reach the
///   cache when [`refresh`](Self::refresh) runs; [`spawn_sync`](Self::spawn_sync)
///   runs it after every change the store announces through
///   [`ControlPlaneStore::subscribe`].
/// - A reload rebuilds the whole snapshot: O(keys) per change, fine for the
///   10,000 keys a region holds on AWS.
pub struct KeyCache<S> {
    store: S,
    snapshot: ArcSwap<InMemoryApiKeyStore>,
}

impl<S> fmt::Debug for KeyCache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCache")
            .field("keys", &self.snapshot.load().len())
            .finish_non_exhaustive()
    }
}

fn to_backend(error: StoreError) -> KeyStoreError {
    KeyStoreError::Backend(Box::new(error))
}

/// The API-key layer's record of a control-plane key and its plans.
fn record_of(key: &ApiKey, plans: Vec<Arc<UsagePlan>>) -> ApiKeyRecord {
    let mut record = ApiKeyRecord::new(key.id.as_str(), key.digest, key.created_date)
        .with_enabled(key.enabled)
        .with_tags(key.tags.clone())
        .with_dates(key.created_date, key.last_updated_date);
    if let Some(name) = &key.name {
        record = record.with_name(name.as_str());
    }
    if let Some(customer_id) = &key.customer_id {
        record = record.with_customer_id(customer_id.as_str());
    }
    if let Some(description) = &key.description {
        record = record.with_description(description.clone());
    }
    match record.clone().with_usage_plans(plans) {
        Ok(with_plans) => with_plans,
        Err(conflict) => {
            // The store refuses such associations; a record that has one
            // anyway gets no plan rather than a wrong one.
            tracing::error!(key = %key.id, %conflict, "key cache: conflicting usage plans");
            record
        }
    }
}

fn build(snapshot: Snapshot) -> Result<InMemoryApiKeyStore, StoreError> {
    let plans: HashMap<String, Arc<UsagePlan>> = snapshot
        .usage_plans
        .into_iter()
        .map(|p| (p.id().to_owned(), Arc::new(p.plan)))
        .collect();
    let mut key_plans: HashMap<String, Vec<String>> = snapshot.key_plans.into_iter().collect();
    let records = snapshot.api_keys.iter().map(|key| {
        let ids = key_plans.remove(&key.id).unwrap_or_default();
        let plans = ids.iter().filter_map(|id| plans.get(id).cloned()).collect();
        record_of(key, plans)
    });
    InMemoryApiKeyStore::from_records(records).map_err(|e| StoreError::Backend(Box::new(e)))
}

impl<S: ControlPlaneStore> KeyCache<S> {
    /// A cache of `store`, loaded now.
    ///
    /// # Errors
    ///
    /// The store's failure to answer its snapshot.
    pub async fn load(store: S) -> Result<Self, StoreError> {
        let snapshot = build(store.snapshot().await?)?;
        Ok(Self {
            store,
            snapshot: ArcSwap::from_pointee(snapshot),
        })
    }

    /// A cache of `store` that holds no key yet, for a replica that starts
    /// while its store is unreachable: every key is refused until
    /// [`refresh`](Self::refresh) (or [`spawn_sync`](Self::spawn_sync), on
    /// the store's first announced version) loads the snapshot.
    ///
    /// # Errors
    ///
    /// None in practice; an empty snapshot always builds.
    pub fn empty(store: S) -> Result<Self, StoreError> {
        Ok(Self {
            store,
            snapshot: ArcSwap::from_pointee(build(Snapshot::default())?),
        })
    }

    /// Reloads the snapshot from the store.
    ///
    /// # Errors
    ///
    /// The store's failure; the old snapshot stays in use.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let snapshot = build(self.store.snapshot().await?)?;
        self.snapshot.store(Arc::new(snapshot));
        Ok(())
    }

    /// The store behind the cache.
    #[must_use]
    pub fn store(&self) -> &S {
        &self.store
    }

    /// How many keys the cache holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.snapshot.load().len()
    }

    /// Whether the cache holds no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Spawns a task that refreshes the cache after every change the store
    /// announces. It ends when the cache is dropped.
    pub fn spawn_sync(self: &Arc<Self>) -> tokio::task::JoinHandle<()>
    where
        S: 'static,
    {
        let mut changes = self.store.subscribe();
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let Some(cache) = weak.upgrade() else { return };
                if let Err(error) = cache.refresh().await {
                    tracing::warn!(%error, "key cache: refresh failed");
                }
            }
        })
    }

    /// Checks what [`put_one`](Self::put_one) would refuse.
    async fn check(&self, record: &ApiKeyRecord) -> Result<(), KeyStoreError> {
        if let Some(holder) = self
            .store
            .find_api_key(record.digest())
            .await
            .map_err(to_backend)?
            && holder.id != record.id()
        {
            return Err(KeyStoreError::DuplicateValue {
                id: record.id().to_owned(),
                holder: holder.id,
            });
        }
        for plan in record.usage_plans() {
            self.store
                .get_usage_plan(plan.id())
                .await
                .map_err(to_backend)?;
        }
        Ok(())
    }

    async fn put_one(&self, record: ApiKeyRecord) -> Result<(), KeyStoreError> {
        self.check(&record).await?;
        if let Some(holder) = self
            .store
            .find_api_key(record.digest())
            .await
            .map_err(to_backend)?
            && holder.id != record.id()
        {
            return Err(KeyStoreError::DuplicateValue {
                id: record.id().to_owned(),
                holder: holder.id,
            });
        }
        let existing = self.store.get_api_key(record.id()).await.ok();
        let key = ApiKey {
            id: record.id().to_owned(),
            name: record.name().map(str::to_owned),
            customer_id: record.customer_id().map(str::to_owned),
            description: record.description().map(str::to_owned),
            enabled: record.enabled(),
            created_date: record.created_date(),
            last_updated_date: record.last_updated_date(),
            stage_keys: existing
                .as_ref()
                .map(|k| k.stage_keys.clone())
                .unwrap_or_default(),
            tags: record.tags().clone(),
            digest: *record.digest(),
            // A rotated digest drops the old value; the same digest keeps it.
            value: existing
                .filter(|k| k.digest == *record.digest())
                .and_then(|k| k.value),
        };
        // Every plan must be in the store before anything is written.
        for plan in record.usage_plans() {
            self.store
                .get_usage_plan(plan.id())
                .await
                .map_err(to_backend)?;
        }
        self.store.put_api_key(key).await.map_err(to_backend)?;
        let wanted: Vec<&str> = record.usage_plans().iter().map(|p| p.id()).collect();
        let current = self
            .store
            .snapshot()
            .await
            .map_err(to_backend)?
            .key_plans
            .into_iter()
            .find(|(k, _)| k == record.id())
            .map(|(_, plans)| plans)
            .unwrap_or_default();
        for plan in &current {
            if !wanted.contains(&plan.as_str()) {
                self.store
                    .delete_usage_plan_key(plan, record.id())
                    .await
                    .map_err(to_backend)?;
            }
        }
        for plan in wanted {
            if !current.iter().any(|p| p == plan) {
                self.store
                    .create_usage_plan_key(plan, record.id(), "API_KEY")
                    .await
                    .map_err(to_backend)?;
            }
        }
        Ok(())
    }
}

impl<S: ControlPlaneStore> ApiKeyStore for KeyCache<S> {
    type Lookup = Ready<ApiKeyLookupResult>;

    fn lookup(&self, digest: &KeyDigest) -> Self::Lookup {
        ready(Ok(self.snapshot.load().find(digest)))
    }

    #[inline]
    fn lookup_now<R>(
        &self,
        digest: &KeyDigest,
        decide: impl FnOnce(Result<Option<&ApiKeyRecord>, KeyStoreError>) -> R,
    ) -> Option<R> {
        self.snapshot.load().lookup_now(digest, decide)
    }

    fn get(&self, id: &str) -> impl Future<Output = ApiKeyLookupResult> + Send {
        ready(Ok(self.snapshot.load().find_by_id(id)))
    }

    fn list(&self) -> impl Future<Output = Result<Vec<Arc<ApiKeyRecord>>, KeyStoreError>> + Send {
        let snapshot = self.snapshot.load_full();
        async move { snapshot.list().await }
    }

    /// Writes the record's key to the control-plane store, and sets its
    /// plan associations to the record's plans (which must exist in the
    /// store). The key is written before its associations, in separate
    /// operations.
    async fn put(&self, record: ApiKeyRecord) -> Result<(), KeyStoreError> {
        let result = self.put_one(record).await;
        self.refresh().await.map_err(to_backend)?;
        result
    }

    async fn put_many(&self, records: Vec<ApiKeyRecord>) -> Result<(), KeyStoreError> {
        {
            // Check every record first, so a refused batch writes nothing.
            let mut digests: HashMap<KeyDigest, &str> = HashMap::new();
            for record in &records {
                if let Some(other) = digests.insert(*record.digest(), record.id())
                    && other != record.id()
                {
                    return Err(KeyStoreError::DuplicateValue {
                        id: record.id().to_owned(),
                        holder: other.to_owned(),
                    });
                }
                self.check(record).await?;
            }
            let mut result = Ok(());
            for record in records {
                result = self.put_one(record).await;
                if result.is_err() {
                    break;
                }
            }
            self.refresh().await.map_err(to_backend)?;
            result
        }
    }

    fn delete(&self, id: &str) -> impl Future<Output = ApiKeyLookupResult> + Send {
        let id = id.to_owned();
        async move {
            let old = self.snapshot.load().find_by_id(&id);
            match self.store.delete_api_key(&id).await {
                Ok(()) => {}
                Err(StoreError::NotFound { .. }) => return Ok(None),
                Err(error) => return Err(to_backend(error)),
            }
            self.refresh().await.map_err(to_backend)?;
            Ok(old)
        }
    }
}
