//! API keys and usage plans as the durable backends write them: one JSON
//! document each, in the embedded store's file and in Redis alike.
//!
//! A backend serializes a [`StoredKey`] or [`StoredPlan`] with any serde
//! format (both backends use `serde_json`) and converts it from and to the
//! model's [`ApiKey`] and [`UsagePlanRecord`]. The field names are the
//! on-disk encoding: renaming one breaks every stored database.

use std::collections::BTreeMap;
use std::fmt;

use portcullis_api_key::{ApiKeyValue, InvalidKeyValue, KeyDigest};
use portcullis_core::plan::UsagePlan;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::{ApiKey, UsagePlanRecord};

/// An [`ApiKey`] as a backend stores it: its value (where the store retains
/// values) as a plain string, so `Debug` redacts it.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredKey {
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

impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKey")
            .field("id", &self.id)
            .field("enabled", &self.enabled)
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl From<&ApiKey> for StoredKey {
    fn from(key: &ApiKey) -> Self {
        Self {
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
        }
    }
}

impl TryFrom<StoredKey> for ApiKey {
    type Error = InvalidKeyValue;

    /// # Errors
    ///
    /// [`InvalidKeyValue`] when the stored value is not a valid key value.
    fn try_from(stored: StoredKey) -> Result<Self, InvalidKeyValue> {
        let value = stored.value.map(ApiKeyValue::new).transpose()?;
        Ok(Self {
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
}

/// A [`UsagePlanRecord`] as a backend stores it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredPlan {
    plan: UsagePlan,
    tags: BTreeMap<String, String>,
}

impl From<&UsagePlanRecord> for StoredPlan {
    fn from(record: &UsagePlanRecord) -> Self {
        Self {
            plan: record.plan.clone(),
            tags: record.tags.clone(),
        }
    }
}

impl From<StoredPlan> for UsagePlanRecord {
    fn from(stored: StoredPlan) -> Self {
        Self {
            plan: stored.plan,
            tags: stored.tags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON both backends have written since they stored keys: a field
    /// renamed or retyped here would break every stored database.
    #[test]
    fn a_stored_key_keeps_its_encoding() -> Result<(), Box<dyn std::error::Error>> {
        let json = r#"{"id":"k1","name":"n","customer_id":null,"description":null,"enabled":true,"created_date":"2026-12-01T00:00:00Z","last_updated_date":"2026-12-02T00:00:00Z","stage_keys":["a/prod"],"tags":{"t":"v"},"digest":"0000000000000000000000000000000000000000000000000000000000000000","value":"abcdefghijklmnopqrstuvwxyz0123"}"#;
        let stored: StoredKey = serde_json::from_str(json)?;
        let key = ApiKey::try_from(stored)?;
        assert_eq!(key.id, "k1");
        assert_eq!(key.stage_keys, ["a/prod"]);
        assert_eq!(
            key.value.as_ref().map(ApiKeyValue::expose),
            Some("abcdefghijklmnopqrstuvwxyz0123")
        );
        assert_eq!(serde_json::to_string(&StoredKey::from(&key))?, json);
        Ok(())
    }

    #[test]
    fn a_stored_key_with_a_bad_value_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let mut stored: StoredKey = serde_json::from_str(
            r#"{"id":"k1","name":null,"customer_id":null,"description":null,"enabled":false,"created_date":"2026-12-01T00:00:00Z","last_updated_date":"2026-12-01T00:00:00Z","stage_keys":[],"tags":{},"digest":"0000000000000000000000000000000000000000000000000000000000000000","value":null}"#,
        )?;
        stored.value = Some("short".to_owned());
        assert!(ApiKey::try_from(stored).is_err());
        Ok(())
    }

    #[test]
    fn debug_redacts_the_value() -> Result<(), Box<dyn std::error::Error>> {
        let stored: StoredKey = serde_json::from_str(
            r#"{"id":"k1","name":null,"customer_id":null,"description":null,"enabled":true,"created_date":"2026-12-01T00:00:00Z","last_updated_date":"2026-12-01T00:00:00Z","stage_keys":[],"tags":{},"digest":"0000000000000000000000000000000000000000000000000000000000000000","value":"abcdefghijklmnopqrstuvwxyz0123"}"#,
        )?;
        let debug = format!("{stored:?}");
        assert!(!debug.contains("abcdefghij"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        Ok(())
    }
}
