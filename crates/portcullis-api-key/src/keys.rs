//! [`ApiKeys`]: the handle the application keeps to manage keys at run time.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use portcullis_core::clock::{Clock, SharedClock, SystemClock};
use portcullis_core::plan::UsagePlan;
use tokio::sync::Mutex;

use crate::config::{ApiKeysConfig, ConfigError};
use crate::key::{
    ApiKeyRecord, ApiKeyValue, GenerateError, PlanConflict, check_one_plan_per_stage,
    random_alphanumeric,
};
use crate::layer::ApiKeyLayer;
use crate::store::{ApiKeyStore, ApiKeyStoreError, InMemoryApiKeyStore};

/// Why a key operation failed. No variant carries a key value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiKeyError {
    /// No key has this id.
    #[error("no API key has id `{0}`")]
    NotFound(String),
    /// A key with this id exists already.
    #[error("an API key with id `{0}` exists already")]
    DuplicateId(String),
    /// The id is empty or too long (at most 128 characters).
    #[error("an API key id has 1 to 128 characters")]
    InvalidId,
    /// No usage plan has this id.
    #[error("no usage plan has id `{0}`")]
    UnknownUsagePlan(String),
    /// The key would be in two plans for one stage.
    #[error(transparent)]
    PlanConflict(#[from] PlanConflict),
    /// No value could be generated.
    #[error(transparent)]
    Generate(#[from] GenerateError),
    /// The store failed, or refused the write.
    #[error(transparent)]
    Store(#[from] ApiKeyStoreError),
}

/// A key to create with [`ApiKeys::create`]. Without a value, one is generated
/// (40 characters from the OS CSPRNG); without an id, a random 10-character
/// id is chosen, as API Gateway does.
#[derive(Clone, Debug)]
#[must_use]
pub struct NewApiKey {
    id: Option<String>,
    name: Option<String>,
    customer_id: Option<String>,
    description: Option<String>,
    enabled: bool,
    value: Option<ApiKeyValue>,
    tags: BTreeMap<String, String>,
    usage_plans: Vec<String>,
}

impl NewApiKey {
    /// An enabled key with a generated id and value, in no usage plan.
    pub fn new() -> Self {
        Self {
            id: None,
            name: None,
            customer_id: None,
            description: None,
            enabled: true,
            value: None,
            tags: BTreeMap::new(),
            usage_plans: Vec::new(),
        }
    }

    /// Sets the id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the customer id (API Gateway's `customerId`).
    pub fn customer_id(mut self, customer_id: impl Into<String>) -> Self {
        self.customer_id = Some(customer_id.into());
        self
    }

    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Creates the key enabled (the default) or disabled.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Uses this value rather than a generated one (to import a key issued
    /// elsewhere).
    pub fn value(mut self, value: ApiKeyValue) -> Self {
        self.value = Some(value);
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Adds the key to the usage plan with this id.
    pub fn usage_plan(mut self, plan_id: impl Into<String>) -> Self {
        self.usage_plans.push(plan_id.into());
        self
    }
}

impl Default for NewApiKey {
    fn default() -> Self {
        Self::new()
    }
}

/// A key just created: its record, and its value, which is shown this once
/// (the store keeps only its digest).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CreatedApiKey {
    /// The stored record.
    pub record: Arc<ApiKeyRecord>,
    /// The value to hand to the customer.
    pub value: ApiKeyValue,
}

struct Inner<St> {
    store: Arc<St>,
    plans: RwLock<HashMap<String, Arc<UsagePlan>>>,
    writes: Mutex<()>,
    clock: SharedClock,
}

/// The handle the application keeps to create, disable, enable, rotate and
/// delete keys, and to manage usage plans, while the layer runs.
///
/// Every layer built from it ([`ApiKeys::layer`]) reads the same store, so a
/// change is seen by the next request, with no rebuild. Clones share
/// everything. Operations on one handle are serialised; several processes
/// writing one networked store need that store to serialise them.
///
/// ```
/// use portcullis_api_key::{ApiKeys, NewApiKey};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let keys = ApiKeys::new();
/// let created = keys.create(NewApiKey::new().name("mobile app")).await.unwrap();
/// let id = created.record.id().to_owned();
///
/// keys.disable(&id).await.unwrap();
/// assert!(!keys.get(&id).await.unwrap().unwrap().enabled());
///
/// let new_value = keys.rotate(&id).await.unwrap();
/// assert_ne!(new_value, created.value);
/// keys.delete(&id).await.unwrap();
/// # }
/// ```
pub struct ApiKeys<St = InMemoryApiKeyStore> {
    inner: Arc<Inner<St>>,
}

impl<St> Clone for ApiKeys<St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<St: fmt::Debug> fmt::Debug for ApiKeys<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plans = self
            .inner
            .plans
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("ApiKeys")
            .field("store", &self.inner.store)
            .field("usage_plans", &plans)
            .finish_non_exhaustive()
    }
}

impl ApiKeys<InMemoryApiKeyStore> {
    /// An empty in-memory key set, on the system clock.
    #[must_use]
    pub fn new() -> Self {
        Self::with_store(InMemoryApiKeyStore::new())
    }

    /// The in-memory key set a configuration declares.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] names the bad field: an invalid value or digest, an
    /// unknown plan, two plans on one stage, a duplicate id or value.
    pub fn from_config(config: ApiKeysConfig) -> Result<Self, ConfigError> {
        Self::from_config_with_clock(config, Arc::new(SystemClock))
    }

    /// [`from_config`](Self::from_config), with dates from `clock`.
    ///
    /// # Errors
    ///
    /// As [`from_config`](Self::from_config).
    pub fn from_config_with_clock(
        config: ApiKeysConfig,
        clock: SharedClock,
    ) -> Result<Self, ConfigError> {
        let (plans, records) = config.into_parts(clock.now())?;
        let store = InMemoryApiKeyStore::from_records(records)
            .map_err(|e| ConfigError::new("api_keys", e.to_string()))?;
        let keys = Self::with_store(store).with_clock(clock);
        keys.write_plans()
            .extend(plans.into_iter().map(|p| (p.id().to_owned(), p)));
        Ok(keys)
    }
}

impl Default for ApiKeys<InMemoryApiKeyStore> {
    fn default() -> Self {
        Self::new()
    }
}

impl<St: ApiKeyStore> ApiKeys<St> {
    /// A handle over `store`, on the system clock.
    pub fn with_store(store: St) -> Self {
        Self {
            inner: Arc::new(Inner {
                store: Arc::new(store),
                plans: RwLock::new(HashMap::new()),
                writes: Mutex::new(()),
                clock: Arc::new(SystemClock),
            }),
        }
    }

    /// Takes the creation and update dates from `clock`. Call it before
    /// cloning the handle: clones made earlier keep the old clock and do not
    /// share later plan changes.
    #[must_use]
    pub fn with_clock(self, clock: SharedClock) -> Self {
        let plans = self.read_plans().clone();
        Self {
            inner: Arc::new(Inner {
                store: self.inner.store.clone(),
                plans: RwLock::new(plans),
                writes: Mutex::new(()),
                clock,
            }),
        }
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<St> {
        &self.inner.store
    }

    /// A layer that checks keys against this store, for the stage `stage` of
    /// the API `api_id` (which picks each key's usage plan).
    pub fn layer(&self, api_id: impl Into<String>, stage: impl Into<String>) -> ApiKeyLayer<St> {
        ApiKeyLayer::with_store(self.inner.store.clone(), api_id, stage)
    }

    fn read_plans(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<UsagePlan>>> {
        self.inner
            .plans
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write_plans(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<UsagePlan>>> {
        self.inner
            .plans
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The usage plan with this id.
    #[must_use]
    pub fn usage_plan(&self, id: &str) -> Option<Arc<UsagePlan>> {
        self.read_plans().get(id).cloned()
    }

    /// Every usage plan.
    #[must_use]
    pub fn usage_plans(&self) -> Vec<Arc<UsagePlan>> {
        self.read_plans().values().cloned().collect()
    }

    /// Adds a usage plan, or replaces the plan with the same id. The keys in a
    /// replaced plan take the new settings at once.
    ///
    /// # Errors
    ///
    /// [`ApiKeyError::PlanConflict`] when the new stages would put a key in
    /// two plans for one stage (nothing is changed); store failures.
    pub async fn put_usage_plan(&self, plan: UsagePlan) -> Result<Arc<UsagePlan>, ApiKeyError> {
        let _write = self.inner.writes.lock().await;
        let plan = Arc::new(plan);
        let mut updated = Vec::new();
        for record in self.inner.store.list().await? {
            if record.usage_plans.iter().any(|p| p.id() == plan.id()) {
                let mut record = (*record).clone();
                for p in &mut record.usage_plans {
                    if p.id() == plan.id() {
                        *p = plan.clone();
                    }
                }
                check_one_plan_per_stage(&record.usage_plans)?;
                updated.push(record);
            }
        }
        if !updated.is_empty() {
            self.inner.store.put_many(updated).await?;
        }
        self.write_plans()
            .insert(plan.id().to_owned(), plan.clone());
        Ok(plan)
    }

    /// Creates a key. The answer holds the value: hand it to the customer, as
    /// the store keeps only its digest.
    ///
    /// # Errors
    ///
    /// A duplicate id or value, an unknown plan, two plans on one stage, a
    /// failure of the OS random number generator or of the store.
    pub async fn create(&self, new: NewApiKey) -> Result<CreatedApiKey, ApiKeyError> {
        let _write = self.inner.writes.lock().await;
        let plans = self.resolve_plans(&new.usage_plans)?;
        check_one_plan_per_stage(&plans)?;
        let id = match new.id {
            Some(id) => {
                if id.is_empty() || id.len() > 128 {
                    return Err(ApiKeyError::InvalidId);
                }
                if self.inner.store.get(&id).await?.is_some() {
                    return Err(ApiKeyError::DuplicateId(id));
                }
                id
            }
            None => self.fresh_id().await?,
        };
        let value = match new.value {
            Some(value) => value,
            None => ApiKeyValue::generate()?,
        };
        let mut record = ApiKeyRecord::new(id, value.digest(), self.inner.clock.now())
            .with_enabled(new.enabled)
            .with_tags(new.tags);
        record.name = new.name.map(Into::into);
        record.customer_id = new.customer_id.map(Into::into);
        record.description = new.description;
        record.usage_plans = plans;
        let record = Arc::new(record);
        self.inner.store.put((*record).clone()).await?;
        tracing::info!(layer = "api_key", action = "create", key_id = %record.id, "API key created");
        Ok(CreatedApiKey { record, value })
    }

    async fn fresh_id(&self) -> Result<String, ApiKeyError> {
        loop {
            let id = random_alphanumeric(10)?.to_ascii_lowercase();
            if self.inner.store.get(&id).await?.is_none() {
                return Ok(id);
            }
        }
    }

    fn resolve_plans(&self, ids: &[String]) -> Result<Vec<Arc<UsagePlan>>, ApiKeyError> {
        let plans = self.read_plans();
        ids.iter()
            .map(|id| {
                plans
                    .get(id)
                    .cloned()
                    .ok_or_else(|| ApiKeyError::UnknownUsagePlan(id.clone()))
            })
            .collect()
    }

    /// The key with this id.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn get(&self, id: &str) -> Result<Option<Arc<ApiKeyRecord>>, ApiKeyError> {
        Ok(self.inner.store.get(id).await?)
    }

    /// Every key.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn list(&self) -> Result<Vec<Arc<ApiKeyRecord>>, ApiKeyError> {
        Ok(self.inner.store.list().await?)
    }

    async fn update(
        &self,
        id: &str,
        action: &'static str,
        f: impl FnOnce(&mut ApiKeyRecord) -> Result<(), ApiKeyError>,
    ) -> Result<Arc<ApiKeyRecord>, ApiKeyError> {
        let _write = self.inner.writes.lock().await;
        let current = self
            .inner
            .store
            .get(id)
            .await?
            .ok_or_else(|| ApiKeyError::NotFound(id.to_owned()))?;
        let mut record = (*current).clone();
        f(&mut record)?;
        record.last_updated_date = self.inner.clock.now();
        let record = Arc::new(record);
        self.inner.store.put((*record).clone()).await?;
        tracing::info!(layer = "api_key", action, key_id = %record.id, "API key updated");
        Ok(record)
    }

    /// Enables the key: it is accepted from the next request on.
    ///
    /// # Errors
    ///
    /// [`ApiKeyError::NotFound`]; store failures.
    pub async fn enable(&self, id: &str) -> Result<Arc<ApiKeyRecord>, ApiKeyError> {
        self.update(id, "enable", |r| {
            r.enabled = true;
            Ok(())
        })
        .await
    }

    /// Disables the key: it is refused from the next request on.
    ///
    /// # Errors
    ///
    /// [`ApiKeyError::NotFound`]; store failures.
    pub async fn disable(&self, id: &str) -> Result<Arc<ApiKeyRecord>, ApiKeyError> {
        self.update(id, "disable", |r| {
            r.enabled = false;
            Ok(())
        })
        .await
    }

    /// Gives the key a new generated value and answers it. From the next
    /// request on, the old value is refused and the new one accepted.
    ///
    /// # Errors
    ///
    /// [`ApiKeyError::NotFound`]; generator or store failures.
    pub async fn rotate(&self, id: &str) -> Result<ApiKeyValue, ApiKeyError> {
        let value = ApiKeyValue::generate()?;
        self.rotate_to(id, value.clone()).await?;
        Ok(value)
    }

    /// Gives the key this value (see [`rotate`](Self::rotate)).
    ///
    /// # Errors
    ///
    /// [`ApiKeyError::NotFound`]; [`ApiKeyStoreError::DuplicateValue`] when another
    /// key has the value; store failures.
    pub async fn rotate_to(
        &self,
        id: &str,
        value: ApiKeyValue,
    ) -> Result<Arc<ApiKeyRecord>, ApiKeyError> {
        self.update(id, "rotate", |r| {
            r.digest = value.digest();
            Ok(())
        })
        .await
    }

    /// Deletes the key and answers its record.
    ///
    /// # Errors
    ///
    /// [`ApiKeyError::NotFound`]; store failures.
    pub async fn delete(&self, id: &str) -> Result<Arc<ApiKeyRecord>, ApiKeyError> {
        let _write = self.inner.writes.lock().await;
        let record = self
            .inner
            .store
            .delete(id)
            .await?
            .ok_or_else(|| ApiKeyError::NotFound(id.to_owned()))?;
        tracing::info!(layer = "api_key", action = "delete", key_id = %record.id, "API key deleted");
        Ok(record)
    }

    /// Adds the key to a usage plan.
    ///
    /// # Errors
    ///
    /// [`ApiKeyError::NotFound`], [`ApiKeyError::UnknownUsagePlan`],
    /// [`ApiKeyError::PlanConflict`]; store failures.
    pub async fn add_to_usage_plan(
        &self,
        key_id: &str,
        plan_id: &str,
    ) -> Result<Arc<ApiKeyRecord>, ApiKeyError> {
        let plan = self
            .usage_plan(plan_id)
            .ok_or_else(|| ApiKeyError::UnknownUsagePlan(plan_id.to_owned()))?;
        self.update(key_id, "add_to_usage_plan", |r| {
            r.usage_plans.push(plan);
            check_one_plan_per_stage(&r.usage_plans)?;
            Ok(())
        })
        .await
    }

    /// Removes the key from a usage plan (nothing happens when it is not in it).
    ///
    /// # Errors
    ///
    /// [`ApiKeyError::NotFound`]; store failures.
    pub async fn remove_from_usage_plan(
        &self,
        key_id: &str,
        plan_id: &str,
    ) -> Result<Arc<ApiKeyRecord>, ApiKeyError> {
        self.update(key_id, "remove_from_usage_plan", |r| {
            r.usage_plans.retain(|p| p.id() != plan_id);
            Ok(())
        })
        .await
    }

    /// Adds the plans and keys a configuration declares, in one store write.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] names the bad field; a key id or value already in the
    /// store is refused too. Nothing is written then.
    pub async fn import(&self, config: ApiKeysConfig) -> Result<(), ConfigError> {
        let _write = self.inner.writes.lock().await;
        let (plans, records) = config.into_parts(self.inner.clock.now())?;
        for (i, record) in records.iter().enumerate() {
            let existing = self
                .inner
                .store
                .get(&record.id)
                .await
                .map_err(|e| ConfigError::new(format!("api_keys[{i}]"), e.to_string()))?;
            if existing.is_some() {
                return Err(ConfigError::new(
                    format!("api_keys[{i}].id"),
                    format!("an API key with id `{}` exists already", record.id),
                ));
            }
        }
        self.inner
            .store
            .put_many(records)
            .await
            .map_err(|e| ConfigError::new("api_keys", e.to_string()))?;
        self.write_plans()
            .extend(plans.into_iter().map(|p| (p.id().to_owned(), p)));
        Ok(())
    }
}
