//! The control plane's state and every operation on it, shared by the local
//! backends (in memory and embedded).
//!
//! An operation reads the state and answers the [`Change`]s it would make,
//! without making them: the store writes the changes to its journal (a no-op
//! in memory, one durable transaction when embedded) and only then applies
//! them. So invalid input, or a failed write, never changes the state.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::ops::Bound;

use portcullis_api_key::{ApiKeyValue, KeyDigest};
use portcullis_core::plan::UsagePlan;
use portcullis_quota::store::{MAX_REMAINING, UsageUpdate};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::error::StoreError;
use crate::model::{
    ApiKey, ApiKeyFilter, ApiKeyUpdate, MAX_DESCRIPTION_LEN, MAX_NAME_LEN, NewApiKey, Page,
    PageRequest, UsagePlanKey, UsagePlanRecord, UsageRecord, check_id, check_optional,
    check_stage_keys, check_tags, check_text, generate_id,
};
use crate::packed::{MAX_COUNTERS, Packed};
use crate::reservation::{CounterRef, Grant, Report};

/// Limits on how much the store holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// The most API keys (AWS's default quota: 10,000 per region).
    pub max_api_keys: usize,
    /// The most usage plans (AWS's default quota: 300 per region).
    pub max_usage_plans: usize,
    /// Days of usage records kept before today (90, as GetUsage covers).
    pub retention_days: u32,
    /// Whether the store keeps key values (for GetApiKey `includeValue`), or
    /// only their digests.
    pub retain_values: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_api_keys: 10_000,
            max_usage_plans: 300,
            retention_days: 90,
            retain_values: true,
        }
    }
}

/// One quota counter's durable state (see [`crate::reservation`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Counter {
    pub(crate) period_start: i64,
    pub(crate) first_period_start: i64,
    pub(crate) limit: u64,
    pub(crate) kind: u8,
    /// The Julian day being counted.
    pub(crate) day: i32,
    pub(crate) budget: u64,
    pub(crate) reserved: u64,
    pub(crate) used: u64,
    pub(crate) day_used_base: u64,
    /// The period's allowance when it began, moved by limit changes (what a
    /// reset restores).
    pub(crate) allowance: u64,
    pub(crate) generation: u64,
}

impl Counter {
    fn today(&self) -> UsageRecord {
        UsageRecord {
            day: date_of(self.day),
            used: self.used.saturating_sub(self.day_used_base),
            remaining: self.budget.saturating_sub(self.used).min(MAX_REMAINING),
        }
    }
}

/// A stored day of usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DayRec {
    pub(crate) used: u64,
    pub(crate) remaining: u64,
}

pub(crate) type Pair = (String, String);

/// One change to the state.
#[derive(Clone, Debug)]
pub(crate) enum Change {
    PutKey(Box<ApiKey>),
    DelKey(String),
    PutPlan(Box<UsagePlanRecord>),
    DelPlan(String),
    /// (plan, key)
    PutAssoc(Pair),
    DelAssoc(Pair),
    PutCounter(Pair, Counter),
    DelCounter(Pair),
    PutDay(Pair, i32, DayRec),
    DelDay(Pair, i32),
}

impl Change {
    /// Whether the change touches keys, plans or associations (what caches
    /// of them must reload), rather than counters.
    pub(crate) fn is_config(&self) -> bool {
        matches!(
            self,
            Change::PutKey(_)
                | Change::DelKey(_)
                | Change::PutPlan(_)
                | Change::DelPlan(_)
                | Change::PutAssoc(_)
                | Change::DelAssoc(_)
        )
    }
}

pub(crate) fn date_of(julian: i32) -> Date {
    Date::from_julian_day(julian).unwrap_or(Date::MIN)
}

/// Bytes of a key id kept in the entry itself: AWS key ids are 10
/// characters, so most never take a heap block of their own.
pub(crate) const INLINE_KEY: usize = 14;

/// A key id in 16 bytes: its bytes inline when they fit, else on the heap
/// behind a thin pointer. Always the bytes of a `str`.
pub(crate) enum KeyId {
    Inline {
        len: u8,
        bytes: [u8; INLINE_KEY],
    },
    // A thin pointer (8 bytes), so the id is 16 bytes, not 24.
    #[allow(clippy::redundant_allocation)]
    Heap(Box<Box<str>>),
}

impl KeyId {
    pub(crate) fn new(key: &str) -> Self {
        match u8::try_from(key.len()) {
            Ok(len) if key.len() <= INLINE_KEY => {
                let mut bytes = [0; INLINE_KEY];
                bytes[..key.len()].copy_from_slice(key.as_bytes());
                Self::Inline { len, bytes }
            }
            _ => Self::Heap(Box::new(key.into())),
        }
    }

    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Heap(key) => key.as_bytes(),
        }
    }

    pub(crate) fn to_owned_string(&self) -> String {
        // The bytes were a `str`'s: the lossy path never replaces anything.
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }
}

/// A (plan id, key id) pair, owned or borrowed: the borrowed key type of
/// the maps keyed by one, so a lookup by `&str`s allocates nothing.
pub(crate) trait PairRef {
    fn pair(&self) -> (&str, &[u8]);
}

impl PairRef for (&str, &[u8]) {
    #[inline]
    fn pair(&self) -> (&str, &[u8]) {
        (self.0, self.1)
    }
}

impl Hash for dyn PairRef + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (plan, key) = self.pair();
        plan.hash(state);
        key.hash(state);
    }
}

impl PartialEq for dyn PairRef + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.pair() == other.pair()
    }
}

impl Eq for dyn PairRef + '_ {}

/// Everything a local store holds.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) options: StoreOptions,
    keys: BTreeMap<String, ApiKey>,
    by_digest: HashMap<[u8; 32], String>,
    plans: BTreeMap<String, UsagePlanRecord>,
    /// (plan, key)
    plan_keys: BTreeSet<Pair>,
    /// (key, plan)
    key_plans: BTreeSet<Pair>,
    /// Quota counters and usage records.
    counters: Packed,
}

type Op<T> = Result<(T, Vec<Change>), StoreError>;

fn not_found(what: &'static str, id: &str) -> StoreError {
    StoreError::NotFound {
        what,
        id: id.to_owned(),
    }
}

fn page<'a, T: 'a, U>(
    items: impl Iterator<Item = (&'a String, T)>,
    request: &PageRequest,
    map: impl Fn(T) -> U,
) -> Result<Page<U>, StoreError> {
    let limit = request.checked_limit()?;
    let mut out = Vec::new();
    let mut position = None;
    let mut last: Option<&String> = None;
    let after = request.position.as_deref();
    for (id, item) in items.filter(|(id, _)| after.is_none_or(|p| id.as_str() > p)) {
        if out.len() == limit {
            // More follow: the next page starts after the last one returned.
            position = last.cloned();
            break;
        }
        last = Some(id);
        out.push(map(item));
    }
    Ok(Page {
        items: out,
        position,
    })
}

/// Whether two plans apply to a common stage (a plan with no stages applies
/// to every stage).
pub(crate) fn stages_overlap(a: &UsagePlan, b: &UsagePlan) -> Option<String> {
    if a.api_stages().is_empty() || b.api_stages().is_empty() {
        return Some("every stage".to_owned());
    }
    a.api_stages()
        .iter()
        .find(|s| b.applies_to(&s.api_id, &s.stage))
        .map(|s| format!("{}/{}", s.api_id, s.stage))
}

/// Input of CreateUsagePlan.
#[derive(Clone, Debug)]
pub struct NewUsagePlan {
    /// An id to use; `None` generates one.
    pub id: Option<String>,
    /// The plan, whose id is replaced by the chosen one. Its name is required.
    pub plan: UsagePlan,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

impl State {
    pub(crate) fn new(options: StoreOptions) -> Self {
        Self {
            options,
            ..Self::default()
        }
    }

    // ---------------------------------------------------------------- apply

    pub(crate) fn apply(&mut self, changes: Vec<Change>) {
        for change in changes {
            match change {
                Change::PutKey(key) => {
                    if let Some(old) = self.keys.get(&key.id) {
                        self.by_digest.remove(old.digest.as_bytes());
                    }
                    self.by_digest
                        .insert(*key.digest.as_bytes(), key.id.clone());
                    self.keys.insert(key.id.clone(), *key);
                }
                Change::DelKey(id) => {
                    if let Some(old) = self.keys.remove(&id) {
                        self.by_digest.remove(old.digest.as_bytes());
                    }
                }
                Change::PutPlan(plan) => {
                    self.plans.insert(plan.id().to_owned(), *plan);
                }
                Change::DelPlan(id) => {
                    self.plans.remove(&id);
                }
                Change::PutAssoc((plan, key)) => {
                    self.key_plans.insert((key.clone(), plan.clone()));
                    self.plan_keys.insert((plan, key));
                }
                Change::DelAssoc((plan, key)) => {
                    self.key_plans.remove(&(key.clone(), plan.clone()));
                    self.plan_keys.remove(&(plan, key));
                }
                Change::PutCounter((plan, key), counter) => {
                    self.counters.insert(&plan, &key, &counter);
                }
                Change::DelCounter((plan, key)) => {
                    self.counters.remove(&plan, &key);
                }
                Change::PutDay((plan, key), day, rec) => {
                    self.counters.put_day(&plan, &key, day, rec);
                }
                Change::DelDay((plan, key), day) => {
                    self.counters.remove_day(&plan, &key, day);
                }
            }
        }
    }

    // ------------------------------------------------------------- API keys

    fn check_new_key(&self, input: &NewApiKey) -> Result<(), StoreError> {
        if let Some(id) = &input.id {
            check_id("id", id)?;
        }
        check_optional("name", input.name.as_deref(), MAX_NAME_LEN)?;
        check_optional("customerId", input.customer_id.as_deref(), MAX_NAME_LEN)?;
        check_optional(
            "description",
            input.description.as_deref(),
            MAX_DESCRIPTION_LEN,
        )?;
        check_stage_keys(&input.stage_keys)?;
        check_tags(&input.tags)
    }

    pub(crate) fn build_key(
        &self,
        input: NewApiKey,
        now: OffsetDateTime,
    ) -> Result<ApiKey, StoreError> {
        self.check_new_key(&input)?;
        let id = match input.id {
            Some(id) => id,
            None => generate_id(10)?,
        };
        let (digest, value) = match (input.value, input.digest) {
            (Some(value), _) => (value.digest(), Some(value)),
            (None, Some(digest)) => (digest, None),
            (None, None) => {
                let value = ApiKeyValue::generate()
                    .map_err(|e| StoreError::Backend(e.to_string().into()))?;
                (value.digest(), Some(value))
            }
        };
        Ok(ApiKey {
            id,
            name: input.name,
            customer_id: input.customer_id,
            description: input.description,
            enabled: input.enabled,
            created_date: now,
            last_updated_date: now,
            stage_keys: input.stage_keys,
            tags: input.tags,
            digest,
            value: if self.options.retain_values {
                value
            } else {
                None
            },
        })
    }

    pub(crate) fn create_api_keys(
        &self,
        inputs: Vec<NewApiKey>,
        now: OffsetDateTime,
    ) -> Op<Vec<ApiKey>> {
        if self.keys.len().saturating_add(inputs.len()) > self.options.max_api_keys {
            return Err(StoreError::LimitExceeded(format!(
                "the store holds at most {} API keys",
                self.options.max_api_keys
            )));
        }
        let mut built: Vec<ApiKey> = Vec::with_capacity(inputs.len());
        let mut ids = BTreeSet::new();
        let mut digests = BTreeSet::new();
        for input in inputs {
            let key = self.build_key(input, now)?;
            if self.keys.contains_key(&key.id) || !ids.insert(key.id.clone()) {
                return Err(StoreError::Conflict(format!(
                    "an API key with id {} already exists",
                    key.id
                )));
            }
            if self.by_digest.contains_key(key.digest.as_bytes())
                || !digests.insert(*key.digest.as_bytes())
            {
                return Err(StoreError::Conflict(
                    "an API key with this value already exists".to_owned(),
                ));
            }
            built.push(key);
        }
        let changes = built
            .iter()
            .map(|k| Change::PutKey(Box::new(k.clone())))
            .collect();
        Ok((built, changes))
    }

    /// Inserts or replaces a whole key record (seeding, adapters).
    pub(crate) fn put_api_key(&self, mut key: ApiKey) -> Op<ApiKey> {
        crate::validate::check_api_key(&key)?;
        if let Some(holder) = self.by_digest.get(key.digest.as_bytes())
            && *holder != key.id
        {
            return Err(StoreError::Conflict(
                "an API key with this value already exists".to_owned(),
            ));
        }
        if !self.keys.contains_key(&key.id) && self.keys.len() >= self.options.max_api_keys {
            return Err(StoreError::LimitExceeded(format!(
                "the store holds at most {} API keys",
                self.options.max_api_keys
            )));
        }
        if !self.options.retain_values {
            key.value = None;
        }
        Ok((key.clone(), vec![Change::PutKey(Box::new(key))]))
    }

    pub(crate) fn api_key(&self, id: &str) -> Result<ApiKey, StoreError> {
        self.keys
            .get(id)
            .cloned()
            .ok_or_else(|| not_found("API Key", id))
    }

    pub(crate) fn api_key_by_digest(&self, digest: &KeyDigest) -> Option<ApiKey> {
        self.by_digest
            .get(digest.as_bytes())
            .and_then(|id| self.keys.get(id))
            .cloned()
    }

    pub(crate) fn api_keys(
        &self,
        filter: &ApiKeyFilter,
        request: &PageRequest,
    ) -> Result<Page<ApiKey>, StoreError> {
        let matches = |k: &ApiKey| {
            filter
                .name_query
                .as_deref()
                .is_none_or(|q| k.name.as_deref().is_some_and(|n| n.starts_with(q)))
                && filter
                    .customer_id
                    .as_deref()
                    .is_none_or(|c| k.customer_id.as_deref() == Some(c))
        };
        page(
            self.keys.iter().filter(|(_, k)| matches(k)),
            request,
            Clone::clone,
        )
    }

    pub(crate) fn all_api_keys(&self) -> Vec<ApiKey> {
        self.keys.values().cloned().collect()
    }

    pub(crate) fn update_api_key(
        &self,
        id: &str,
        update: ApiKeyUpdate,
        now: OffsetDateTime,
    ) -> Op<ApiKey> {
        let key = crate::validate::apply_api_key_update(self.api_key(id)?, update, now)?;
        Ok((key.clone(), vec![Change::PutKey(Box::new(key))]))
    }

    pub(crate) fn delete_api_key(&self, id: &str) -> Op<()> {
        self.api_key(id)?;
        let mut changes = vec![Change::DelKey(id.to_owned())];
        for (_, plan) in self.plans_of_key(id) {
            changes.push(Change::DelAssoc((plan.clone(), id.to_owned())));
            if self.counters.contains(&plan, id) {
                changes.push(Change::DelCounter((plan, id.to_owned())));
            }
        }
        Ok(((), changes))
    }

    fn plans_of_key(&self, key: &str) -> Vec<Pair> {
        self.key_plans
            .range((key.to_owned(), String::new())..)
            .take_while(|(k, _)| k == key)
            .cloned()
            .collect()
    }

    fn keys_of_plan(&self, plan: &str) -> Vec<String> {
        self.plan_keys
            .range((plan.to_owned(), String::new())..)
            .take_while(|(p, _)| p == plan)
            .map(|(_, k)| k.clone())
            .collect()
    }

    // ---------------------------------------------------------- usage plans

    pub(crate) fn check_plan(
        plan: &UsagePlan,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        check_id("id", plan.id())?;
        match plan.name() {
            Some(name) => check_text("name", name, MAX_NAME_LEN)?,
            None => return Err(StoreError::bad("a usage plan needs a name")),
        }
        check_optional("description", plan.description(), MAX_DESCRIPTION_LEN)?;
        for stage in plan.api_stages() {
            check_text("apiStages.apiId", &stage.api_id, MAX_NAME_LEN)?;
            check_text("apiStages.stage", &stage.stage, MAX_NAME_LEN)?;
        }
        let mut seen = BTreeSet::new();
        for stage in plan.api_stages() {
            if !seen.insert((&stage.api_id, &stage.stage)) {
                return Err(StoreError::bad(format!(
                    "the stage {}/{} is listed twice",
                    stage.api_id, stage.stage
                )));
            }
        }
        check_tags(tags)
    }

    pub(crate) fn create_usage_plan(&self, input: NewUsagePlan) -> Op<UsagePlanRecord> {
        if self.plans.len() >= self.options.max_usage_plans {
            return Err(StoreError::LimitExceeded(format!(
                "the store holds at most {} usage plans",
                self.options.max_usage_plans
            )));
        }
        let id = match input.id {
            Some(id) => id,
            None => generate_id(6)?,
        };
        check_id("id", &id)?;
        let plan = rebuild_with_id(&input.plan, &id)?;
        Self::check_plan(&plan, &input.tags)?;
        if self.plans.contains_key(&id) {
            return Err(StoreError::Conflict(format!(
                "a usage plan with id {id} already exists"
            )));
        }
        let record = UsagePlanRecord {
            plan,
            tags: input.tags,
        };
        Ok((record.clone(), vec![Change::PutPlan(Box::new(record))]))
    }

    pub(crate) fn usage_plan(&self, id: &str) -> Result<UsagePlanRecord, StoreError> {
        self.plans
            .get(id)
            .cloned()
            .ok_or_else(|| not_found("Usage Plan", id))
    }

    pub(crate) fn usage_plans(
        &self,
        key_id: Option<&str>,
        request: &PageRequest,
    ) -> Result<Page<UsagePlanRecord>, StoreError> {
        if let Some(key) = key_id {
            self.api_key(key)?;
        }
        page(
            self.plans.iter().filter(|(id, _)| {
                key_id.is_none_or(|k| self.key_plans.contains(&(k.to_owned(), (*id).clone())))
            }),
            request,
            Clone::clone,
        )
    }

    pub(crate) fn all_usage_plans(&self) -> Vec<UsagePlanRecord> {
        self.plans.values().cloned().collect()
    }

    pub(crate) fn replace_usage_plan(&self, record: UsagePlanRecord) -> Op<UsagePlanRecord> {
        let id = record.id().to_owned();
        self.usage_plan(&id)?;
        Self::check_plan(&record.plan, &record.tags)?;
        // A changed set of stages must not put any of the plan's keys in two
        // plans on one stage.
        for key in self.keys_of_plan(&id) {
            for (_, other) in self.plans_of_key(&key) {
                if other == id {
                    continue;
                }
                if let Some(other_plan) = self.plans.get(&other)
                    && let Some(stage) = stages_overlap(&record.plan, &other_plan.plan)
                {
                    return Err(StoreError::Conflict(format!(
                        "API key {key} is also in usage plan {other}, which applies to {stage}"
                    )));
                }
            }
        }
        Ok((record.clone(), vec![Change::PutPlan(Box::new(record))]))
    }

    pub(crate) fn delete_usage_plan(&self, id: &str) -> Op<()> {
        self.usage_plan(id)?;
        let mut changes = vec![Change::DelPlan(id.to_owned())];
        for key in self.keys_of_plan(id) {
            changes.push(Change::DelAssoc((id.to_owned(), key.clone())));
            if self.counters.contains(id, &key) {
                changes.push(Change::DelCounter((id.to_owned(), key)));
            }
        }
        Ok(((), changes))
    }

    // ------------------------------------------------------ usage plan keys

    fn plan_key(&self, key: &ApiKey) -> UsagePlanKey {
        UsagePlanKey {
            id: key.id.clone(),
            key_type: "API_KEY",
            name: key.name.clone(),
            value: key.value.clone(),
        }
    }

    pub(crate) fn create_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
        key_type: &str,
    ) -> Op<UsagePlanKey> {
        if key_type != "API_KEY" {
            return Err(StoreError::bad(format!(
                "keyType must be API_KEY, got {key_type:?}"
            )));
        }
        let plan = self.usage_plan(plan_id)?;
        let key = self.api_key(key_id)?;
        if self
            .plan_keys
            .contains(&(plan_id.to_owned(), key_id.to_owned()))
        {
            return Err(StoreError::Conflict(format!(
                "API key {key_id} is already in usage plan {plan_id}"
            )));
        }
        for (_, other) in self.plans_of_key(key_id) {
            if let Some(other_plan) = self.plans.get(&other)
                && let Some(stage) = stages_overlap(&plan.plan, &other_plan.plan)
            {
                return Err(StoreError::Conflict(format!(
                    "API key {key_id} is already in usage plan {other}, which also applies to {stage}"
                )));
            }
        }
        Ok((
            self.plan_key(&key),
            vec![Change::PutAssoc((plan_id.to_owned(), key_id.to_owned()))],
        ))
    }

    pub(crate) fn usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
    ) -> Result<UsagePlanKey, StoreError> {
        self.usage_plan(plan_id)?;
        if !self
            .plan_keys
            .contains(&(plan_id.to_owned(), key_id.to_owned()))
        {
            return Err(not_found("Usage Plan Key", key_id));
        }
        self.api_key(key_id).map(|k| self.plan_key(&k))
    }

    pub(crate) fn usage_plan_keys(
        &self,
        plan_id: &str,
        name_query: Option<&str>,
        request: &PageRequest,
    ) -> Result<Page<UsagePlanKey>, StoreError> {
        self.usage_plan(plan_id)?;
        let keys: Vec<(&String, &ApiKey)> = self
            .keys_of_plan(plan_id)
            .iter()
            .filter_map(|k| self.keys.get_key_value(k))
            .filter(|(_, k)| {
                name_query.is_none_or(|q| k.name.as_deref().is_some_and(|n| n.starts_with(q)))
            })
            .collect();
        page(keys.into_iter(), request, |k| self.plan_key(k))
    }

    pub(crate) fn delete_usage_plan_key(&self, plan_id: &str, key_id: &str) -> Op<()> {
        self.usage_plan_key(plan_id, key_id)?;
        let pair = (plan_id.to_owned(), key_id.to_owned());
        let mut changes = vec![Change::DelAssoc(pair.clone())];
        if self.counters.contains(plan_id, key_id) {
            changes.push(Change::DelCounter(pair));
        }
        Ok(((), changes))
    }

    /// Each key's usage plans, for caches: `(key, [plan records])`.
    pub(crate) fn key_plan_ids(&self, key: &str) -> Vec<String> {
        self.plans_of_key(key).into_iter().map(|(_, p)| p).collect()
    }

    // ------------------------------------------------------------- counters

    /// The counter moved to the request's period and day, and the day
    /// records that move files.
    fn advance(&self, old: Option<&Counter>, counter: &CounterRef) -> (Counter, Vec<Change>) {
        let pair = (counter.plan_id.clone(), counter.key_id.clone());
        let request = counter.as_request();
        let kind = counter.period_kind();
        let limit = counter.quota.limit();
        let today = counter.day.to_julian_day();
        let start = counter.window.start();
        let mut changes = Vec::new();
        let Some(old) = old else {
            let allowance = request.allowance(request.is_initial(start));
            let c = Counter {
                period_start: start,
                first_period_start: start,
                limit,
                kind,
                day: today,
                budget: allowance,
                reserved: 0,
                used: 0,
                day_used_base: 0,
                allowance,
                generation: 0,
            };
            return (c, changes);
        };
        let mut c = old.clone();
        let new_period = c.kind != kind || start > c.period_start;
        let new_day = new_period || today > c.day;
        if new_day {
            let rec = c.today();
            changes.push(Change::PutDay(
                pair.clone(),
                c.day,
                DayRec {
                    used: rec.used,
                    remaining: rec.remaining,
                },
            ));
            if new_period {
                let allowance = request.allowance(request.is_initial(c.first_period_start));
                c.period_start = start;
                c.budget = allowance;
                c.allowance = allowance;
                c.reserved = 0;
                c.used = 0;
                c.generation += 1;
                c.kind = kind;
                c.limit = limit;
            }
            c.day = today;
            c.day_used_base = c.used;
            let oldest = today.saturating_sub(self.options.retention_days.min(100_000) as i32);
            for (d, _) in self.counters.days(
                &counter.plan_id,
                &counter.key_id,
                Bound::Unbounded,
                Bound::Excluded(oldest),
            ) {
                changes.push(Change::DelDay(pair.clone(), d));
            }
        }
        if c.limit != limit {
            let shift = |n: u64| {
                if limit >= c.limit {
                    n.saturating_add(limit - c.limit)
                } else {
                    n.saturating_sub(c.limit - limit)
                }
            };
            c.budget = shift(c.budget).min(MAX_REMAINING.saturating_add(c.reserved));
            c.allowance = shift(c.allowance).min(MAX_REMAINING);
            c.limit = limit;
        }
        (c, changes)
    }

    pub(crate) fn reserve(&self, counter: &CounterRef, want: u64) -> Op<Grant> {
        self.renew(counter, None, want)
    }

    /// Reports a block (if any) and reserves the next, in one change set.
    pub(crate) fn renew(
        &self,
        counter: &CounterRef,
        report: Option<Report>,
        want: u64,
    ) -> Op<Grant> {
        if want == 0 {
            return Err(StoreError::bad("a reservation asks for at least 1"));
        }
        let pair = (counter.plan_id.clone(), counter.key_id.clone());
        let stored = self.counters.get(&counter.plan_id, &counter.key_id);
        if stored.is_none() && !self.counters.has_room() {
            return Err(counters_full());
        }
        let mut changes = Vec::new();
        let mut base = stored.clone();
        if let Some(report) = report {
            base = self.report_on(base, &pair, counter, report, &mut changes);
        }
        let (mut c, advanced) = self.advance(base.as_ref(), counter);
        changes.extend(advanced);
        let granted = want.min(c.budget.saturating_sub(c.reserved));
        c.reserved += granted;
        let grant = Grant {
            granted,
            generation: c.generation,
            remaining: c.budget.saturating_sub(c.reserved),
            outstanding: c.reserved.saturating_sub(c.used),
        };
        if stored.as_ref() != Some(&c) {
            changes.push(Change::PutCounter(pair, c));
        }
        Ok((grant, changes))
    }

    pub(crate) fn report(&self, counter: &CounterRef, report: Report) -> Op<()> {
        let pair = (counter.plan_id.clone(), counter.key_id.clone());
        let stored = self.counters.get(&counter.plan_id, &counter.key_id);
        let mut changes = Vec::new();
        let after = self.report_on(stored.clone(), &pair, counter, report, &mut changes);
        if let Some(c) = after
            && stored.as_ref() != Some(&c)
        {
            changes.push(Change::PutCounter(pair, c));
        }
        Ok(((), changes))
    }

    /// Applies a report to the counter `old` (the stored one, or one a
    /// change set already moved), pushing the day records it writes, and
    /// answers the counter after it.
    fn report_on(
        &self,
        old: Option<Counter>,
        pair: &Pair,
        counter: &CounterRef,
        report: Report,
        changes: &mut Vec<Change>,
    ) -> Option<Counter> {
        // No counter: nothing was reserved (the counter was deleted with its
        // key or plan), nothing to count against.
        let mut c = old?;
        let day = counter.day.to_julian_day();
        let add_to_day = |spent: u64, changes: &mut Vec<Change>| {
            let mut rec = self.counters.day(&pair.0, &pair.1, day).unwrap_or(DayRec {
                used: 0,
                remaining: 0,
            });
            rec.used += spent;
            changes.push(Change::PutDay(pair.clone(), day, rec));
        };
        if c.period_start == counter.window.start() && c.kind == counter.period_kind() {
            let spent = report.spent.min(c.reserved.saturating_sub(c.used));
            c.used += spent;
            if day < c.day {
                // Spent on a day the counter has left: that day's record.
                c.day_used_base += spent;
                add_to_day(spent, changes);
            }
            // What comes back returns to the budget, whatever generation
            // the block had: an update counted outstanding blocks against
            // what it set (see the reservation module's docs).
            let returned = report.returned.min(c.reserved.saturating_sub(c.used));
            c.reserved -= returned;
        } else if report.spent > 0 {
            add_to_day(report.spent, changes);
        }
        Some(c)
    }

    pub(crate) fn update_usage(
        &self,
        counter: &CounterRef,
        update: UsageUpdate,
    ) -> Op<UsageRecord> {
        let pair = (counter.plan_id.clone(), counter.key_id.clone());
        let stored = self.counters.get(&counter.plan_id, &counter.key_id);
        if stored.is_none() && !self.counters.has_room() {
            return Err(counters_full());
        }
        let (mut c, mut changes) = self.advance(stored.as_ref(), counter);
        match update {
            UsageUpdate::Extend(more) => {
                c.budget = c
                    .budget
                    .saturating_add(more)
                    .min(c.used.saturating_add(MAX_REMAINING));
            }
            // Outstanding blocks count against what is set: the period
            // admits exactly `n` more than `used` (see the reservation
            // module's docs).
            UsageUpdate::SetRemaining(n) => {
                c.budget = c.used.saturating_add(n.min(MAX_REMAINING));
                c.generation += 1;
            }
            UsageUpdate::Reset => {
                c.budget = c.used.saturating_add(c.allowance);
                c.generation += 1;
            }
            _ => return Err(StoreError::bad("unsupported usage update")),
        }
        let today = c.today();
        changes.push(Change::PutCounter(pair, c));
        Ok((today, changes))
    }

    pub(crate) fn usage(
        &self,
        plan_id: &str,
        key_id: &str,
        from: Date,
        to: Date,
    ) -> Result<Vec<UsageRecord>, StoreError> {
        if from > to {
            return Err(StoreError::bad("the start date is after the end date"));
        }
        let (f, t) = (from.to_julian_day(), to.to_julian_day());
        let mut out: Vec<UsageRecord> = self
            .counters
            .days(plan_id, key_id, Bound::Included(f), Bound::Included(t))
            .map(|(d, rec)| UsageRecord {
                day: date_of(d),
                used: rec.used,
                remaining: rec.remaining,
            })
            .collect();
        if let Some(c) = self.counters.get(plan_id, key_id)
            && (f..=t).contains(&c.day)
        {
            out.retain(|r| r.day.to_julian_day() != c.day);
            out.push(c.today());
        }
        out.sort_by_key(|r| r.day);
        Ok(out)
    }

    pub(crate) fn usage_keys(&self, plan_id: &str) -> Vec<String> {
        self.counters.plan_key_ids(plan_id)
    }

    /// After a crash: counts every reserved request as used, so nothing
    /// admitted is missing from the usage records.
    pub(crate) fn recover(&self) -> Vec<Change> {
        self.counters
            .counters()
            .filter(|(_, _, c)| c.reserved > c.used)
            .map(|(plan, key, mut c)| {
                c.used = c.reserved;
                let key = String::from_utf8_lossy(key).into_owned();
                Change::PutCounter((plan.to_owned(), key), c)
            })
            .collect()
    }

    pub(crate) fn counter(&self, plan_id: &str, key_id: &str) -> Option<Counter> {
        self.counters.get(plan_id, key_id)
    }
}

fn counters_full() -> StoreError {
    StoreError::LimitExceeded(format!(
        "the store holds at most {MAX_COUNTERS} quota counters"
    ))
}

/// `plan` with its id replaced.
pub(crate) fn rebuild_with_id(plan: &UsagePlan, id: &str) -> Result<UsagePlan, StoreError> {
    let mut rebuilt = UsagePlan::new(id).map_err(|e| StoreError::bad(e.to_string()))?;
    if let Some(name) = plan.name() {
        rebuilt = rebuilt.with_name(name);
    }
    if let Some(description) = plan.description() {
        rebuilt = rebuilt.with_description(description);
    }
    if let Some(throttle) = plan.throttle() {
        rebuilt = rebuilt.with_throttle(*throttle);
    }
    if let Some(quota) = plan.quota() {
        rebuilt = rebuilt.with_quota(*quota);
    }
    for stage in plan.api_stages() {
        rebuilt = rebuilt.with_api_stage(stage.clone());
    }
    Ok(rebuilt)
}
