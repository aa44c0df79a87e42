//! The operations on API keys, usage plans and their associations.

use std::collections::{BTreeMap, BTreeSet};

use portcullis_api_key::{ApiKeyValue, KeyDigest};
use portcullis_core::plan::UsagePlan;
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::model::{
    ApiKey, ApiKeyFilter, ApiKeyUpdate, MAX_DESCRIPTION_LEN, MAX_NAME_LEN, NewApiKey, Page,
    PageRequest, UsagePlanKey, UsagePlanRecord, check_id, check_optional, check_stage_keys,
    check_tags, check_text, generate_id,
};

use super::{
    Change, NewUsagePlan, Op, Pair, State, not_found, page, rebuild_with_id, stages_overlap,
};

impl State {
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
}
