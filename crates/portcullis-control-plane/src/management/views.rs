//! The JSON shapes of the botocore `apigateway` model: what the management
//! API answers and reads. Member names are the model's wire names (for
//! lists, the `locationName` `item`; for usage, `values`).

use std::collections::BTreeMap;

use portcullis_core::plan::{ApiStage, QuotaSettings, ThrottleSettings, UsagePlan};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{ApiKey, UsagePlanKey, UsagePlanRecord};

/// `ApiKey`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApiKeyView<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    enabled: bool,
    /// Epoch seconds: rest-json's default timestamp format.
    created_date: i64,
    last_updated_date: i64,
    stage_keys: &'a [String],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tags: &'a BTreeMap<String, String>,
}

impl<'a> ApiKeyView<'a> {
    pub(crate) fn of(key: &'a ApiKey, include_value: bool) -> Self {
        Self {
            id: &key.id,
            value: if include_value {
                key.value.as_ref().map(|v| v.expose())
            } else {
                None
            },
            name: key.name.as_deref(),
            customer_id: key.customer_id.as_deref(),
            description: key.description.as_deref(),
            enabled: key.enabled,
            created_date: key.created_date.unix_timestamp(),
            last_updated_date: key.last_updated_date.unix_timestamp(),
            stage_keys: &key.stage_keys,
            tags: &key.tags,
        }
    }
}

/// `ThrottleSettings`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ThrottleView {
    burst_limit: u32,
    rate_limit: f64,
}

impl ThrottleView {
    fn of(t: &ThrottleSettings) -> Self {
        Self {
            burst_limit: t.burst_limit().get(),
            rate_limit: t.rate_limit(),
        }
    }
}

/// `QuotaSettings`.
#[derive(Serialize)]
pub(crate) struct QuotaView {
    limit: u64,
    offset: u64,
    period: String,
}

impl QuotaView {
    fn of(q: &QuotaSettings) -> Self {
        Self {
            limit: q.limit(),
            offset: q.offset(),
            period: q.period().to_string(),
        }
    }
}

/// `ApiStage`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApiStageView<'a> {
    api_id: &'a str,
    stage: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    throttle: BTreeMap<String, ThrottleView>,
}

impl<'a> ApiStageView<'a> {
    fn of(stage: &'a ApiStage) -> Self {
        Self {
            api_id: &stage.api_id,
            stage: &stage.stage,
            throttle: stage
                .throttle
                .iter()
                .map(|(selector, t)| (selector.to_string(), ThrottleView::of(t)))
                .collect(),
        }
    }
}

/// `UsagePlan`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsagePlanView<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    api_stages: Vec<ApiStageView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    throttle: Option<ThrottleView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quota: Option<QuotaView>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tags: &'a BTreeMap<String, String>,
}

impl<'a> UsagePlanView<'a> {
    pub(crate) fn of(record: &'a UsagePlanRecord) -> Self {
        let plan: &UsagePlan = &record.plan;
        Self {
            id: plan.id(),
            name: plan.name(),
            description: plan.description(),
            api_stages: plan.api_stages().iter().map(ApiStageView::of).collect(),
            throttle: plan.throttle().map(ThrottleView::of),
            quota: plan.quota().map(QuotaView::of),
            tags: &record.tags,
        }
    }
}

/// `UsagePlanKey`.
#[derive(Serialize)]
pub(crate) struct UsagePlanKeyView<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    key_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

impl<'a> UsagePlanKeyView<'a> {
    pub(crate) fn of(key: &'a UsagePlanKey) -> Self {
        Self {
            id: &key.id,
            key_type: key.key_type,
            value: key.value.as_ref().map(|v| v.expose()),
            name: key.name.as_deref(),
        }
    }
}

/// `StageKey`, as CreateApiKey takes it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StageKeyInput {
    pub(crate) rest_api_id: Option<String>,
    pub(crate) stage_name: Option<String>,
}

/// CreateApiKey's body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateApiKeyInput {
    pub(crate) name: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) enabled: Option<bool>,
    /// Accepted and ignored: ids are always distinct here.
    #[allow(dead_code)]
    pub(crate) generate_distinct_id: Option<bool>,
    pub(crate) value: Option<String>,
    #[serde(default)]
    pub(crate) stage_keys: Vec<StageKeyInput>,
    pub(crate) customer_id: Option<String>,
    #[serde(default)]
    pub(crate) tags: BTreeMap<String, String>,
}

/// `ThrottleSettings` as a request carries it (the model's numbers, checked
/// by [`ThrottleSettings::new`]).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ThrottleInput {
    pub(crate) burst_limit: Option<i64>,
    pub(crate) rate_limit: Option<f64>,
}

/// `QuotaSettings` as a request carries it.
#[derive(Debug, Deserialize)]
pub(crate) struct QuotaInput {
    pub(crate) limit: Option<i64>,
    pub(crate) offset: Option<i64>,
    pub(crate) period: Option<String>,
}

/// `ApiStage` as a request carries it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApiStageInput {
    pub(crate) api_id: Option<String>,
    pub(crate) stage: Option<String>,
    #[serde(default)]
    pub(crate) throttle: BTreeMap<String, ThrottleInput>,
}

/// CreateUsagePlan's body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateUsagePlanInput {
    pub(crate) name: Option<String>,
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) api_stages: Vec<ApiStageInput>,
    pub(crate) throttle: Option<ThrottleInput>,
    pub(crate) quota: Option<QuotaInput>,
    #[serde(default)]
    pub(crate) tags: BTreeMap<String, String>,
}

/// CreateUsagePlanKey's body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateUsagePlanKeyInput {
    pub(crate) key_id: Option<String>,
    pub(crate) key_type: Option<String>,
}

/// A `PATCH` body: `patchOperations`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PatchInput {
    #[serde(default)]
    pub(crate) patch_operations: Vec<PatchOperation>,
}

/// One `PatchOperation`. `value` is a string in the model; a JSON number or
/// boolean is taken as its text.
#[derive(Debug, Deserialize)]
pub(crate) struct PatchOperation {
    pub(crate) op: String,
    pub(crate) path: String,
    #[serde(default)]
    pub(crate) value: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) from: Option<String>,
}

impl PatchOperation {
    /// The value as text, if any.
    pub(crate) fn text(&self) -> Option<String> {
        match &self.value {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            _ => None,
        }
    }
}
