//! API key and usage plan records as stored in Redis: the JSON of
//! [`StoredKey`] and [`StoredPlan`], the records the embedded store writes
//! too.

use portcullis_control_plane::{ApiKey, StoreError, StoredKey, StoredPlan, UsagePlanRecord};

use super::error::backend;

pub(super) fn encode_key(key: &ApiKey) -> Result<String, StoreError> {
    serde_json::to_string(&StoredKey::from(key)).map_err(backend)
}

pub(super) fn decode_key(json: &str) -> Result<ApiKey, StoreError> {
    let stored: StoredKey = serde_json::from_str(json).map_err(backend)?;
    ApiKey::try_from(stored).map_err(backend)
}

pub(super) fn encode_plan(record: &UsagePlanRecord) -> Result<String, StoreError> {
    serde_json::to_string(&StoredPlan::from(record)).map_err(backend)
}

pub(super) fn decode_plan(json: &str) -> Result<UsagePlanRecord, StoreError> {
    let stored: StoredPlan = serde_json::from_str(json).map_err(backend)?;
    Ok(UsagePlanRecord::from(stored))
}
