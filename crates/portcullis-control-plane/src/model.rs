//! The control-plane model, in the shapes of the botocore `apigateway`
//! service model (`ApiKey`, `UsagePlan`, `UsagePlanKey`, `ApiKeys`, ...).
//!
//! Usage plans reuse `portcullis-core`'s [`UsagePlan`] (throttle, quota,
//! `apiStages` with per-method throttles keyed `{resourcePath}/{httpMethod}`),
//! adding what only the control plane keeps: tags.

use std::collections::BTreeMap;
use std::fmt;

use portcullis_api_key::{ApiKeyValue, KeyDigest};
use portcullis_core::plan::UsagePlan;
use rand::TryRngCore;
use rand::rngs::OsRng;
use time::{Date, OffsetDateTime};

use crate::error::StoreError;

/// The longest id, name, customer id or stage key accepted.
pub const MAX_NAME_LEN: usize = 1024;
/// The longest description accepted.
pub const MAX_DESCRIPTION_LEN: usize = 4096;
/// The most tags on one resource (AWS's limit).
pub const MAX_TAGS: usize = 50;
/// The most stage keys on one API key.
pub const MAX_STAGE_KEYS: usize = 100;
/// The default page size of list operations (API Gateway's).
pub const DEFAULT_PAGE_LIMIT: u32 = 25;
/// The largest page size of list operations (API Gateway's).
pub const MAX_PAGE_LIMIT: u32 = 500;

/// An API key as the control plane keeps it: API Gateway's `ApiKey`.
///
/// The store looks keys up by the SHA-256 [`digest`](Self::digest) of their
/// value. The value itself is kept only when the store retains values
/// ([`StoreOptions::retain_values`](crate::StoreOptions::retain_values), on
/// by default), because GetApiKey with `includeValue` and GetUsagePlanKeys
/// answer it as API Gateway does; a store opened without it keeps digests
/// only, and those operations then answer no value. `Debug` redacts the value.
#[derive(Clone, PartialEq)]
pub struct ApiKey {
    /// The key's id (API Gateway: 10 lower-case alphanumerics when generated).
    pub id: String,
    /// The key's name.
    pub name: Option<String>,
    /// The AWS Marketplace customer id, or any caller-defined customer id.
    pub customer_id: Option<String>,
    /// The key's description.
    pub description: Option<String>,
    /// Whether the key is accepted.
    pub enabled: bool,
    /// When the key was created.
    pub created_date: OffsetDateTime,
    /// When the key was last changed.
    pub last_updated_date: OffsetDateTime,
    /// `{restApiId}/{stageName}` entries.
    pub stage_keys: Vec<String>,
    /// The key's tags.
    pub tags: BTreeMap<String, String>,
    /// The SHA-256 digest of the value.
    pub digest: KeyDigest,
    /// The value, where the store retains values.
    pub value: Option<ApiKeyValue>,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("customer_id", &self.customer_id)
            .field("enabled", &self.enabled)
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// The input of CreateApiKey and ImportApiKeys.
///
/// API Gateway creates keys disabled unless `enabled` is given; so does this.
#[derive(Clone, Debug, Default)]
pub struct NewApiKey {
    /// An id to use; `None` generates one (seeding passes the configured id).
    pub id: Option<String>,
    /// The name.
    pub name: Option<String>,
    /// The customer id.
    pub customer_id: Option<String>,
    /// The description.
    pub description: Option<String>,
    /// Whether the key is accepted (default `false`, as on AWS).
    pub enabled: bool,
    /// The value; `None` generates a 40-character one.
    pub value: Option<ApiKeyValue>,
    /// A digest to keep instead of a value (a key whose value is known only by
    /// its digest, such as one seeded from a configuration file). Ignored when
    /// `value` is given.
    pub digest: Option<KeyDigest>,
    /// `{restApiId}/{stageName}` entries.
    pub stage_keys: Vec<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// The fields UpdateApiKey may change (its patch paths `/name`,
/// `/description`, `/customerId`, `/enabled`). `None` leaves a field as it
/// is; `Some(None)` clears it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiKeyUpdate {
    /// `/name`.
    pub name: Option<Option<String>>,
    /// `/description`.
    pub description: Option<Option<String>>,
    /// `/customerId`.
    pub customer_id: Option<Option<String>>,
    /// `/enabled`.
    pub enabled: Option<bool>,
}

impl ApiKeyUpdate {
    /// An update that changes nothing yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `/enabled`.
    #[must_use]
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = Some(enabled);
        self
    }

    /// Sets `/name`.
    #[must_use]
    pub fn name(mut self, name: Option<String>) -> Self {
        self.name = Some(name);
        self
    }

    /// Sets `/description`.
    #[must_use]
    pub fn description(mut self, description: Option<String>) -> Self {
        self.description = Some(description);
        self
    }

    /// Sets `/customerId`.
    #[must_use]
    pub fn customer_id(mut self, customer_id: Option<String>) -> Self {
        self.customer_id = Some(customer_id);
        self
    }
}

/// A usage plan as the control plane keeps it: API Gateway's `UsagePlan`.
#[derive(Clone, Debug, PartialEq)]
pub struct UsagePlanRecord {
    /// The plan: id, name, description, throttle, quota and `apiStages`.
    pub plan: UsagePlan,
    /// The plan's tags.
    pub tags: BTreeMap<String, String>,
}

impl UsagePlanRecord {
    /// A record of this plan, without tags.
    #[must_use]
    pub fn new(plan: UsagePlan) -> Self {
        Self {
            plan,
            tags: BTreeMap::new(),
        }
    }

    /// Sets the tags.
    #[must_use]
    pub fn with_tags(mut self, tags: BTreeMap<String, String>) -> Self {
        self.tags = tags;
        self
    }

    /// The plan's id.
    #[must_use]
    pub fn id(&self) -> &str {
        self.plan.id()
    }
}

/// An entry of GetUsagePlanKeys: API Gateway's `UsagePlanKey`.
#[derive(Clone, PartialEq)]
pub struct UsagePlanKey {
    /// The key's id.
    pub id: String,
    /// Always `API_KEY`.
    pub key_type: &'static str,
    /// The key's name.
    pub name: Option<String>,
    /// The key's value, where the store retains values.
    pub value: Option<ApiKeyValue>,
}

impl fmt::Debug for UsagePlanKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsagePlanKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The paging arguments of a list operation: `position` and `limit`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Where to continue: the `position` of the previous page.
    pub position: Option<String>,
    /// The page size, 1 to 500 (default 25).
    pub limit: Option<u32>,
}

impl PageRequest {
    /// The first page, of `limit` items.
    #[must_use]
    pub fn first(limit: u32) -> Self {
        Self {
            position: None,
            limit: Some(limit),
        }
    }

    /// The page after `page`, of the same size. `None` after the last page.
    #[must_use]
    pub fn next<T>(&self, page: &Page<T>) -> Option<Self> {
        page.position.as_ref().map(|position| Self {
            position: Some(position.clone()),
            limit: self.limit,
        })
    }

    pub(crate) fn checked_limit(&self) -> Result<usize, StoreError> {
        match self.limit {
            None => Ok(DEFAULT_PAGE_LIMIT as usize),
            Some(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => Ok(n as usize),
            Some(n) => Err(StoreError::bad(format!(
                "limit must be between 1 and {MAX_PAGE_LIMIT}, got {n}"
            ))),
        }
    }
}

/// One page of a list: API Gateway's `{"items": [...], "position": ...}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// The items, in id order.
    pub items: Vec<T>,
    /// The position of the next page; `None` on the last page.
    pub position: Option<String>,
}

/// Filters of GetApiKeys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiKeyFilter {
    /// `nameQuery`: keys whose name starts with this.
    pub name_query: Option<String>,
    /// `customerId`: keys with exactly this customer id.
    pub customer_id: Option<String>,
}

/// One key's usage on one UTC day: GetUsage's `[used, remaining]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UsageRecord {
    /// The UTC day.
    pub day: Date,
    /// Requests admitted that day.
    pub used: u64,
    /// Requests left in the period at the end of that day (now, for today).
    pub remaining: u64,
}

pub(crate) fn check_text(field: &str, value: &str, max: usize) -> Result<(), StoreError> {
    if value.is_empty() {
        return Err(StoreError::bad(format!("{field} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(StoreError::bad(format!(
            "{field} must be at most {max} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(StoreError::bad(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

pub(crate) fn check_id(what: &str, id: &str) -> Result<(), StoreError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::bad(format!(
            "{what} must be 1 to 128 characters of A-Z, a-z, 0-9, '-' and '_'"
        )))
    }
}

pub(crate) fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), StoreError> {
    if tags.len() > MAX_TAGS {
        return Err(StoreError::bad(format!(
            "at most {MAX_TAGS} tags are allowed, got {}",
            tags.len()
        )));
    }
    for (key, value) in tags {
        check_text("tag key", key, 128)?;
        if key.starts_with("aws:") {
            return Err(StoreError::bad("tag keys must not start with 'aws:'"));
        }
        if value.chars().count() > 256 || value.chars().any(char::is_control) {
            return Err(StoreError::bad(
                "tag values are at most 256 characters, without control characters",
            ));
        }
    }
    Ok(())
}

pub(crate) fn check_stage_keys(stage_keys: &[String]) -> Result<(), StoreError> {
    if stage_keys.len() > MAX_STAGE_KEYS {
        return Err(StoreError::bad(format!(
            "at most {MAX_STAGE_KEYS} stage keys are allowed"
        )));
    }
    for key in stage_keys {
        check_text("stageKey", key, MAX_NAME_LEN)?;
        match key.split_once('/') {
            Some((api, stage)) if !api.is_empty() && !stage.is_empty() && !stage.contains('/') => {}
            _ => {
                return Err(StoreError::bad(
                    "a stage key is {restApiId}/{stageName}".to_owned(),
                ));
            }
        }
    }
    Ok(())
}

pub(crate) fn check_optional(
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Result<(), StoreError> {
    value.map_or(Ok(()), |v| check_text(field, v, max))
}

/// A new id: `len` lower-case alphanumerics from the OS CSPRNG, as API
/// Gateway's ids look.
pub(crate) fn generate_id(len: usize) -> Result<String, StoreError> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        OsRng
            .try_fill_bytes(&mut buf)
            .map_err(|e| StoreError::Backend(e.to_string().into()))?;
        for b in buf {
            // 252 = 7 * 36: rejection sampling keeps the choice uniform.
            if b < 252 && out.len() < len {
                out.push(char::from(ALPHABET[usize::from(b % 36)]));
            }
        }
    }
    Ok(out)
}
