//! Serde types that let a configuration file declare keys and usage plans.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use portcullis_core::context::ApiKeySource;
use portcullis_core::plan::UsagePlan;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::key::{ApiKeyRecord, ApiKeyValue, KeyDigest, check_one_plan_per_stage};

// The configuration error of every crate: its path names the bad field,
// such as `api_keys[2].usage_plans[0]`; this crate never quotes a key value
// in its message.
pub use portcullis_core::config::ConfigError;

/// One API key in a configuration file.
///
/// Give the key's `value` (20 to 128 alphanumeric characters) or, to keep the
/// secret out of the file, its `value_sha256` (64 hex digits, as
/// `printf %s "$KEY" | sha256sum` prints it): exactly one of the two.
/// API Gateway's camelCase names (`customerId`, `usagePlans`, ...) are
/// accepted as aliases.
///
/// `Debug` redacts the value.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ApiKeyConfig {
    /// The key's id.
    pub id: String,
    /// The key's name.
    #[serde(default)]
    pub name: Option<String>,
    /// The customer the key belongs to.
    #[serde(default, alias = "customerId")]
    pub customer_id: Option<String>,
    /// A description.
    #[serde(default)]
    pub description: Option<String>,
    /// Whether the key is accepted (default `true`).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// The key's value.
    #[serde(default)]
    pub value: Option<ApiKeyValue>,
    /// The SHA-256 digest of the key's value, in hex.
    #[serde(default, alias = "valueSha256")]
    pub value_sha256: Option<KeyDigest>,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The ids of the usage plans the key is in (at most one per stage).
    #[serde(default, alias = "usagePlans")]
    pub usage_plans: Vec<String>,
    /// When the key was created (RFC 3339); default: load time.
    #[serde(default, alias = "createdDate", with = "time::serde::rfc3339::option")]
    pub created_date: Option<OffsetDateTime>,
    /// When the key was last changed (RFC 3339); default: `created_date`.
    #[serde(
        default,
        alias = "lastUpdatedDate",
        with = "time::serde::rfc3339::option"
    )]
    pub last_updated_date: Option<OffsetDateTime>,
}

fn enabled_by_default() -> bool {
    true
}

/// The usage plans and API keys of a configuration file.
///
/// ```
/// use portcullis_api_key::ApiKeysConfig;
///
/// let config = ApiKeysConfig::from_json(r#"{
///   "usage_plans": [{ "id": "basic", "quota": { "limit": 1000, "period": "DAY" },
///                     "api_stages": [{ "api_id": "a1b2c3d4e5", "stage": "prod" }] }],
///   "api_keys": [{ "id": "k1", "customer_id": "acme",
///                  "value_sha256": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
///                  "usage_plans": ["basic"] }]
/// }"#).unwrap();
/// assert_eq!(config.api_keys.len(), 1);
///
/// let err = ApiKeysConfig::from_json(r#"{ "api_keys": [{ "id": "k1", "value": "short" }] }"#)
///     .unwrap_err();
/// assert!(err.to_string().starts_with("api_keys[0].value"), "{err}");
/// assert!(!err.to_string().contains("short"));
/// ```
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ApiKeysConfig {
    /// Usage plans.
    #[serde(default, alias = "usagePlans")]
    pub usage_plans: Vec<UsagePlan>,
    /// API keys.
    #[serde(default, alias = "apiKeys")]
    pub api_keys: Vec<ApiKeyConfig>,
}

impl ApiKeysConfig {
    /// Parses and validates a JSON configuration.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] with the path of the bad field.
    pub fn from_json(json: &str) -> Result<Self, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(json);
        let config: Self = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::new(path, e.into_inner().to_string())
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: each key has exactly one of `value` and
    /// `value_sha256`; ids and values are unique; every plan a key names
    /// exists; no key is in two plans for one stage.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] with the path of the bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.build_parts(OffsetDateTime::UNIX_EPOCH).map(|_| ())
    }

    /// The plans and the key records, validated (see
    /// [`validate`](Self::validate)); `now` dates keys that give no dates.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] with the path of the bad field.
    pub fn into_parts(
        self,
        now: OffsetDateTime,
    ) -> Result<(Vec<Arc<UsagePlan>>, Vec<ApiKeyRecord>), ConfigError> {
        self.build_parts(now)
    }

    fn build_parts(
        &self,
        now: OffsetDateTime,
    ) -> Result<(Vec<Arc<UsagePlan>>, Vec<ApiKeyRecord>), ConfigError> {
        let mut plans: HashMap<&str, Arc<UsagePlan>> = HashMap::new();
        for (i, plan) in self.usage_plans.iter().enumerate() {
            if plans.insert(plan.id(), Arc::new(plan.clone())).is_some() {
                return Err(ConfigError::new(
                    format!("usage_plans[{i}].id"),
                    format!("usage plan id `{}` is declared twice", plan.id()),
                ));
            }
        }
        let mut ids: HashMap<&str, usize> = HashMap::new();
        let mut digests: HashMap<KeyDigest, usize> = HashMap::new();
        let mut records = Vec::with_capacity(self.api_keys.len());
        for (i, key) in self.api_keys.iter().enumerate() {
            let at = |field: &str| format!("api_keys[{i}].{field}");
            if key.id.is_empty() || key.id.len() > 128 {
                return Err(ConfigError::new(at("id"), "an id has 1 to 128 characters"));
            }
            if let Some(first) = ids.insert(&key.id, i) {
                return Err(ConfigError::new(
                    at("id"),
                    format!("id `{}` is also the id of api_keys[{first}]", key.id),
                ));
            }
            let digest = match (&key.value, &key.value_sha256) {
                (Some(value), None) => value.digest(),
                (None, Some(digest)) => *digest,
                (Some(_), Some(_)) => {
                    return Err(ConfigError::new(
                        at("value"),
                        "give `value` or `value_sha256`, not both",
                    ));
                }
                (None, None) => {
                    return Err(ConfigError::new(
                        at("value"),
                        "missing: give `value` or `value_sha256`",
                    ));
                }
            };
            if let Some(first) = digests.insert(digest, i) {
                return Err(ConfigError::new(
                    at(if key.value.is_some() {
                        "value"
                    } else {
                        "value_sha256"
                    }),
                    format!("api_keys[{first}] has the same value"),
                ));
            }
            let mut key_plans = Vec::with_capacity(key.usage_plans.len());
            for (j, plan_id) in key.usage_plans.iter().enumerate() {
                let plan = plans.get(plan_id.as_str()).ok_or_else(|| {
                    ConfigError::new(
                        at(&format!("usage_plans[{j}]")),
                        format!("no usage plan has id `{plan_id}`"),
                    )
                })?;
                key_plans.push(plan.clone());
            }
            check_one_plan_per_stage(&key_plans)
                .map_err(|e| ConfigError::new(at("usage_plans"), e.to_string()))?;
            let created = key.created_date.unwrap_or(now);
            let mut record = ApiKeyRecord::new(key.id.as_str(), digest, now)
                .with_enabled(key.enabled)
                .with_tags(key.tags.clone())
                .with_dates(created, key.last_updated_date.unwrap_or(created));
            record.name = key.name.as_deref().map(Into::into);
            record.customer_id = key.customer_id.as_deref().map(Into::into);
            record.description = key.description.clone();
            record.usage_plans = key_plans;
            records.push(record);
        }
        let mut plans: Vec<_> = plans.into_values().collect();
        plans.sort_by(|a, b| a.id().cmp(b.id()));
        Ok((plans, records))
    }
}

/// The layer's own settings, for a configuration file: which stage it guards
/// and where it reads keys.
///
/// ```
/// use portcullis_api_key::{ApiKeyLayerConfig, ApiKeySource};
///
/// let config: ApiKeyLayerConfig = serde_json::from_str(
///     r#"{ "api_id": "a1b2c3d4e5", "stage": "prod", "source": "AUTHORIZER" }"#,
/// ).unwrap();
/// assert_eq!(config.source, ApiKeySource::Authorizer);
/// assert_eq!(config.header, "x-api-key");
/// assert!(config.require_usage_plan);
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ApiKeyLayerConfig {
    /// The API's id, to pick each key's usage plan.
    #[serde(alias = "apiId")]
    pub api_id: String,
    /// The stage's name, to pick each key's usage plan.
    pub stage: String,
    /// Where the key comes from: `HEADER` (the default) or `AUTHORIZER`.
    #[serde(default, alias = "apiKeySource")]
    pub source: ApiKeySource,
    /// The header that carries the key (default `x-api-key`).
    #[serde(default = "default_header", with = "header_name")]
    pub header: http::HeaderName,
    /// Whether a key must be in a usage plan for the stage (default `true`,
    /// as API Gateway); see
    /// [`ApiKeyLayer::require_usage_plan`](crate::ApiKeyLayer::require_usage_plan).
    #[serde(default = "default_true")]
    pub require_usage_plan: bool,
}

/// The header API Gateway reads keys from: `x-api-key`.
pub const X_API_KEY: http::HeaderName = http::HeaderName::from_static("x-api-key");

fn default_true() -> bool {
    true
}

fn default_header() -> http::HeaderName {
    X_API_KEY
}

mod header_name {
    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<http::HeaderName, D::Error> {
        let name = String::deserialize(deserializer)?;
        http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| serde::de::Error::custom(format!("`{name}` is not a valid header name")))
    }
}
