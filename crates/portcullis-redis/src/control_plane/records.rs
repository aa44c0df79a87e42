//! API key and usage plan records as stored in Redis (JSON).

use std::collections::BTreeMap;

use portcullis_api_key::{ApiKeyValue, KeyDigest};
use portcullis_control_plane::{ApiKey, StoreError, UsagePlanRecord};
use portcullis_core::plan::UsagePlan;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::error::backend;

#[derive(Serialize, Deserialize)]
struct StoredKey {
    id: String,
    name: Option<String>,
    customer_id: Option<String>,
    description: Option<String>,
    enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    created_date: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    last_updated_date: OffsetDateTime,
    stage_keys: Vec<String>,
    tags: BTreeMap<String, String>,
    digest: KeyDigest,
    value: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredPlan {
    plan: UsagePlan,
    tags: BTreeMap<String, String>,
}

pub(super) fn encode_key(key: &ApiKey) -> Result<String, StoreError> {
    serde_json::to_string(&StoredKey {
        id: key.id.clone(),
        name: key.name.clone(),
        customer_id: key.customer_id.clone(),
        description: key.description.clone(),
        enabled: key.enabled,
        created_date: key.created_date,
        last_updated_date: key.last_updated_date,
        stage_keys: key.stage_keys.clone(),
        tags: key.tags.clone(),
        digest: key.digest,
        value: key.value.as_ref().map(|v| v.expose().to_owned()),
    })
    .map_err(backend)
}

pub(super) fn decode_key(json: &str) -> Result<ApiKey, StoreError> {
    let stored: StoredKey = serde_json::from_str(json).map_err(backend)?;
    let value = match stored.value {
        Some(value) => Some(ApiKeyValue::new(value).map_err(backend)?),
        None => None,
    };
    Ok(ApiKey {
        id: stored.id,
        name: stored.name,
        customer_id: stored.customer_id,
        description: stored.description,
        enabled: stored.enabled,
        created_date: stored.created_date,
        last_updated_date: stored.last_updated_date,
        stage_keys: stored.stage_keys,
        tags: stored.tags,
        digest: stored.digest,
        value,
    })
}

pub(super) fn encode_plan(record: &UsagePlanRecord) -> Result<String, StoreError> {
    serde_json::to_string(&StoredPlan {
        plan: record.plan.clone(),
        tags: record.tags.clone(),
    })
    .map_err(backend)
}

pub(super) fn decode_plan(json: &str) -> Result<UsagePlanRecord, StoreError> {
    let stored: StoredPlan = serde_json::from_str(json).map_err(backend)?;
    Ok(UsagePlanRecord {
        plan: stored.plan,
        tags: stored.tags,
    })
}
