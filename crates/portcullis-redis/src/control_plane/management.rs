//! [`ControlPlaneStore`]: the management operations on keys, plans,
//! associations and usage.

use std::collections::BTreeMap;
use std::future::Future;

use portcullis_api_key::KeyDigest;
use portcullis_control_plane::reservation::CounterRef;
use portcullis_control_plane::{
    ApiKey, ApiKeyFilter, ApiKeyUpdate, ControlPlaneStore, NewApiKey, NewUsagePlan, Page,
    PageRequest, Snapshot, StoreError, UsagePlanKey, UsagePlanRecord, UsageRecord, validate,
};
use portcullis_quota::store::{MAX_REMAINING, UsageUpdate};
use redis::AsyncCommands;
use time::Date;
use tokio::sync::watch;

use super::error::{backend, not_found};
use super::records::{decode_key, decode_plan, encode_plan};
use super::reply::{date_of, parse, to_u64};
use super::scripts::{usage_keys_script, usage_script};
use super::store::RedisControlPlane;
use super::write::Tx;

/// `items` (any order) as API Gateway pages them: in id order, after
/// `request.position`, at most the request's limit.
fn page_of<T>(mut items: Vec<(String, T)>, request: &PageRequest) -> Result<Page<T>, StoreError> {
    let limit = validate::page_limit(request)?;
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let after = request.position.as_deref();
    let mut rest = items
        .into_iter()
        .filter(|(id, _)| after.is_none_or(|p| id.as_str() > p));
    let mut out = Vec::new();
    let mut last = None;
    for (id, item) in rest.by_ref().take(limit) {
        last = Some(id);
        out.push(item);
    }
    let position = if rest.next().is_some() { last } else { None };
    Ok(Page {
        items: out,
        position,
    })
}

impl ControlPlaneStore for RedisControlPlane {
    async fn create_api_key(&self, key: NewApiKey) -> Result<ApiKey, StoreError> {
        let mut keys = self.create_keys(vec![key]).await?;
        keys.pop()
            .ok_or_else(|| StoreError::Backend("no key was built".into()))
    }

    fn import_api_keys(
        &self,
        keys: Vec<NewApiKey>,
    ) -> impl Future<Output = Result<Vec<ApiKey>, StoreError>> + Send {
        self.create_keys(keys)
    }

    fn put_api_key(&self, key: ApiKey) -> impl Future<Output = Result<ApiKey, StoreError>> + Send {
        self.transact(move || {
            let mut key = key.clone();
            async move {
                validate::check_api_key(&key)?;
                if let Some(holder) = self.digest_holder(&key.digest).await?
                    && holder != key.id
                {
                    return Err(StoreError::Conflict(
                        "an API key with this value already exists".to_owned(),
                    ));
                }
                let old = self.key(&key.id).await?;
                if old.is_none() && self.key_count().await? >= self.inner.options.max_api_keys {
                    return Err(self.limit_exceeded_keys());
                }
                if !self.inner.options.retain_values {
                    key.value = None;
                }
                let mut tx = Tx::default();
                self.put_key_ops(&mut tx, &key, old.as_ref())?;
                Ok((key, tx))
            }
        })
    }

    fn get_api_key(&self, id: &str) -> impl Future<Output = Result<ApiKey, StoreError>> + Send {
        self.existing_key(id)
    }

    fn find_api_key(
        &self,
        digest: &KeyDigest,
    ) -> impl Future<Output = Result<Option<ApiKey>, StoreError>> + Send {
        let hex = digest.to_hex();
        async move {
            let json: Option<String> = self.read("find", &[&hex]).await?;
            json.as_deref().map(decode_key).transpose()
        }
    }

    async fn get_api_keys(
        &self,
        filter: ApiKeyFilter,
        page: PageRequest,
    ) -> Result<Page<ApiKey>, StoreError> {
        let limit = validate::page_limit(&page)?;
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
        let chunk = (limit + 1).max(100);
        let mut after = page.position.clone().unwrap_or_default();
        let mut found: Vec<ApiKey> = Vec::new();
        while found.len() <= limit {
            let records: Vec<Option<String>> = self
                .read("keys_after", &[&after, &chunk.to_string()])
                .await?;
            let fetched = records.len();
            for json in records.into_iter().flatten() {
                let key = decode_key(&json)?;
                after.clone_from(&key.id);
                if matches(&key) {
                    found.push(key);
                }
            }
            if fetched < chunk {
                break;
            }
        }
        let more = found.len() > limit;
        found.truncate(limit);
        let position = if more {
            found.last().map(|k| k.id.clone())
        } else {
            None
        };
        Ok(Page {
            items: found,
            position,
        })
    }

    fn update_api_key(
        &self,
        id: &str,
        update: ApiKeyUpdate,
    ) -> impl Future<Output = Result<ApiKey, StoreError>> + Send {
        self.transact(move || {
            let update = update.clone();
            async move {
                let old = self.existing_key(id).await?;
                let key =
                    validate::apply_api_key_update(old.clone(), update, self.inner.clock.now())?;
                let mut tx = Tx::default();
                self.put_key_ops(&mut tx, &key, Some(&old))?;
                Ok((key, tx))
            }
        })
    }

    fn delete_api_key(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.transact(move || async move {
            let key = self.existing_key(id).await?;
            let names = &self.inner.names;
            let mut tx = Tx::default();
            tx.op("hdel", names.keys(), id, "");
            tx.op("zrem", names.ids(), id, "");
            tx.op("hdel", names.digests(), &key.digest.to_hex(), "");
            for plan in self.members(names.key_plans(id)).await? {
                self.del_assoc_ops(&mut tx, &plan, id);
            }
            tx.op("del", names.key_plans(id), "", "");
            Ok(((), tx))
        })
    }

    fn create_usage_plan(
        &self,
        plan: NewUsagePlan,
    ) -> impl Future<Output = Result<UsagePlanRecord, StoreError>> + Send {
        self.transact(move || {
            let plan = plan.clone();
            async move {
                let count: usize = self
                    .conn()
                    .hlen(self.inner.names.plans())
                    .await
                    .map_err(backend)?;
                if count >= self.inner.options.max_usage_plans {
                    return Err(StoreError::LimitExceeded(format!(
                        "the store holds at most {} usage plans",
                        self.inner.options.max_usage_plans
                    )));
                }
                let record = validate::build_usage_plan(plan)?;
                if self.plan(record.id()).await?.is_some() {
                    return Err(StoreError::Conflict(format!(
                        "a usage plan with id {} already exists",
                        record.id()
                    )));
                }
                let mut tx = Tx::default();
                tx.op(
                    "hset",
                    self.inner.names.plans(),
                    record.id(),
                    &encode_plan(&record)?,
                );
                Ok((record, tx))
            }
        })
    }

    fn get_usage_plan(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<UsagePlanRecord, StoreError>> + Send {
        self.existing_plan(id)
    }

    async fn get_usage_plans(
        &self,
        key_id: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<UsagePlanRecord>, StoreError> {
        let (exists, records): (i64, Vec<Option<String>>) =
            self.read("plans", &[key_id.unwrap_or("")]).await?;
        if exists == 0 {
            return Err(not_found("API Key", key_id.unwrap_or("")));
        }
        let mut items = Vec::with_capacity(records.len());
        for json in records.into_iter().flatten() {
            let record = decode_plan(&json)?;
            items.push((record.id().to_owned(), record));
        }
        page_of(items, &page)
    }

    fn update_usage_plan(
        &self,
        plan: UsagePlanRecord,
    ) -> impl Future<Output = Result<UsagePlanRecord, StoreError>> + Send {
        self.transact(move || {
            let record = plan.clone();
            async move {
                let id = record.id().to_owned();
                self.existing_plan(&id).await?;
                validate::check_usage_plan(&record)?;
                for key in self.members(self.inner.names.plan_keys(&id)).await? {
                    self.check_stages(&record, &key, |other, stage| {
                        format!(
                            "API key {key} is also in usage plan {other}, which applies to {stage}"
                        )
                    })
                    .await?;
                }
                let mut tx = Tx::default();
                tx.op(
                    "hset",
                    self.inner.names.plans(),
                    &id,
                    &encode_plan(&record)?,
                );
                Ok((record, tx))
            }
        })
    }

    fn delete_usage_plan(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.transact(move || async move {
            self.existing_plan(id).await?;
            let names = &self.inner.names;
            let mut tx = Tx::default();
            tx.op("hdel", names.plans(), id, "");
            for key in self.members(names.plan_keys(id)).await? {
                self.del_assoc_ops(&mut tx, id, &key);
            }
            tx.op("del", names.plan_keys(id), "", "");
            Ok(((), tx))
        })
    }

    fn create_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
        key_type: &str,
    ) -> impl Future<Output = Result<UsagePlanKey, StoreError>> + Send {
        self.transact(move || async move {
            if key_type != "API_KEY" {
                return Err(StoreError::BadRequest(format!(
                    "keyType must be API_KEY, got {key_type:?}"
                )));
            }
            let plan = self.existing_plan(plan_id).await?;
            let key = self.existing_key(key_id).await?;
            let names = &self.inner.names;
            let member: bool = self
                .conn()
                .sismember(names.plan_keys(plan_id), key_id)
                .await
                .map_err(backend)?;
            if member {
                return Err(StoreError::Conflict(format!(
                    "API key {key_id} is already in usage plan {plan_id}"
                )));
            }
            self.check_stages(&plan, key_id, |other, stage| {
                format!(
                    "API key {key_id} is already in usage plan {other}, which also applies to {stage}"
                )
            })
            .await?;
            let mut tx = Tx::default();
            tx.op("sadd", names.plan_keys(plan_id), key_id, "");
            tx.op("sadd", names.key_plans(key_id), plan_id, "");
            Ok((Self::plan_key(&key), tx))
        })
    }

    async fn get_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
    ) -> Result<UsagePlanKey, StoreError> {
        let (exists, records): (i64, Vec<Option<String>>) =
            self.read("plan_keys", &[plan_id]).await?;
        if exists == 0 {
            return Err(not_found("Usage Plan", plan_id));
        }
        for json in records.into_iter().flatten() {
            let key = decode_key(&json)?;
            if key.id == key_id {
                return Ok(Self::plan_key(&key));
            }
        }
        Err(not_found("Usage Plan Key", key_id))
    }

    async fn get_usage_plan_keys(
        &self,
        plan_id: &str,
        name_query: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<UsagePlanKey>, StoreError> {
        let (exists, records): (i64, Vec<Option<String>>) =
            self.read("plan_keys", &[plan_id]).await?;
        if exists == 0 {
            return Err(not_found("Usage Plan", plan_id));
        }
        let mut items = Vec::with_capacity(records.len());
        for json in records.into_iter().flatten() {
            let key = decode_key(&json)?;
            if name_query.is_none_or(|q| key.name.as_deref().is_some_and(|n| n.starts_with(q))) {
                items.push((key.id.clone(), Self::plan_key(&key)));
            }
        }
        page_of(items, &page)
    }

    fn delete_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.transact(move || async move {
            self.get_usage_plan_key(plan_id, key_id).await?;
            let mut tx = Tx::default();
            self.del_assoc_ops(&mut tx, plan_id, key_id);
            Ok(((), tx))
        })
    }

    async fn update_usage(
        &self,
        counter: CounterRef,
        update: UsageUpdate,
    ) -> Result<UsageRecord, StoreError> {
        let (op, n) = match update {
            UsageUpdate::Extend(more) => (1, more.min(MAX_REMAINING * 16)),
            UsageUpdate::SetRemaining(n) => (2, n.min(MAX_REMAINING)),
            UsageUpdate::Reset => (3, 0),
            _ => {
                return Err(StoreError::BadRequest(
                    "unsupported usage update".to_owned(),
                ));
            }
        };
        let names = &self.inner.names;
        let reply = self
            .counter_call(
                &counter,
                "update",
                &[op, n],
                &[counter.plan_id.as_str(), names.counters_channel.as_str()],
            )
            .await?;
        let (day, used, remaining): (i64, i64, i64) = parse(reply)?;
        Ok(UsageRecord {
            day: date_of(day),
            used: to_u64(used),
            remaining: to_u64(remaining),
        })
    }

    async fn get_usage(
        &self,
        plan_id: &str,
        key_id: &str,
        from: Date,
        to: Date,
    ) -> Result<Vec<UsageRecord>, StoreError> {
        if from > to {
            return Err(StoreError::BadRequest(
                "the start date is after the end date".to_owned(),
            ));
        }
        let names = &self.inner.names;
        let mut call = usage_script().call();
        call.key(names.counter(plan_id, key_id))
            .key(names.days(plan_id, key_id));
        let (counter, days): (BTreeMap<String, i64>, BTreeMap<i64, String>) =
            call.invoke(&mut self.conn()).await.map_err(backend)?;
        let (f, t) = (
            i64::from(from.to_julian_day()),
            i64::from(to.to_julian_day()),
        );
        let mut out: BTreeMap<i64, UsageRecord> = BTreeMap::new();
        for (day, record) in days.range(f..=t) {
            let (used, remaining) = record
                .split_once(':')
                .and_then(|(u, r)| Some((u.parse().ok()?, r.parse().ok()?)))
                .ok_or_else(|| StoreError::Backend("a malformed usage record".into()))?;
            out.insert(
                *day,
                UsageRecord {
                    day: date_of(*day),
                    used,
                    remaining,
                },
            );
        }
        let field = |name: &str| counter.get(name).copied().unwrap_or(0);
        if !counter.is_empty() && (f..=t).contains(&field("day")) {
            let (used, base, budget) = (field("used"), field("base"), field("bud"));
            out.insert(
                field("day"),
                UsageRecord {
                    day: date_of(field("day")),
                    used: to_u64(used - base),
                    remaining: to_u64(budget - used).min(MAX_REMAINING),
                },
            );
        }
        Ok(out.into_values().collect())
    }

    async fn usage_keys(&self, plan_id: &str) -> Result<Vec<String>, StoreError> {
        let names = &self.inner.names;
        let mut call = usage_keys_script().call();
        call.key(names.usage(plan_id))
            .arg(names.counter_prefix(plan_id))
            .arg(names.days_prefix(plan_id));
        let mut keys: Vec<String> = call.invoke(&mut self.conn()).await.map_err(backend)?;
        keys.sort();
        Ok(keys)
    }

    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let (version, keys, plans, assoc): (u64, Vec<String>, Vec<String>, Vec<String>) =
            self.read("snapshot", &[]).await?;
        let mut api_keys = keys
            .iter()
            .map(|json| decode_key(json))
            .collect::<Result<Vec<_>, _>>()?;
        api_keys.sort_by(|a, b| a.id.cmp(&b.id));
        let mut usage_plans = plans
            .chunks_exact(2)
            .map(|pair| decode_plan(&pair[1]))
            .collect::<Result<Vec<_>, _>>()?;
        usage_plans.sort_by(|a, b| a.id().cmp(b.id()));
        let mut key_plans: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for pair in assoc.chunks_exact(2) {
            key_plans
                .entry(pair[1].clone())
                .or_default()
                .push(pair[0].clone());
        }
        for plans in key_plans.values_mut() {
            plans.sort();
        }
        Ok(Snapshot {
            api_keys,
            usage_plans,
            key_plans: key_plans.into_iter().collect(),
            version,
        })
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.version.subscribe()
    }

    fn is_available(&self) -> bool {
        self.inner.connection.is_available()
    }
}
