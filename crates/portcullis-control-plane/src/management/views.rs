//! The JSON shapes of the botocore `apigateway` model: what the management
//! API answers and reads. Member names are the model's wire names (for
//! lists, the `locationName` `item`; for usage, `values`).

use std::collections::BTreeMap;

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

/// `UsagePlan`: the quota admin's representation of the plan (the same
/// model shape), with the plan's tags.
#[derive(Serialize)]
pub(crate) struct UsagePlanView<'a> {
    #[serde(flatten)]
    plan: portcullis_quota::admin::UsagePlanView<'a>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tags: &'a BTreeMap<String, String>,
}

impl<'a> UsagePlanView<'a> {
    pub(crate) fn of(record: &'a UsagePlanRecord) -> Self {
        Self {
            plan: portcullis_quota::admin::UsagePlanView::of(&record.plan),
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
/// by [`ThrottleSettings::new`](portcullis_core::plan::ThrottleSettings::new)).
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use portcullis_core::plan::{
        ApiStage, QuotaPeriod, QuotaSettings, ThrottleSettings, UsagePlan,
    };
    use serde_json::json;

    use super::UsagePlanView;
    use crate::model::UsagePlanRecord;

    #[test]
    fn a_usage_plan_is_the_models_usage_plan_with_its_tags() {
        let stage = ApiStage {
            api_id: "a1b2c3".into(),
            stage: "prod".into(),
            throttle: BTreeMap::from([(
                "/pets/GET".parse().expect("a selector"),
                ThrottleSettings::new(5.0, 10).expect("a throttle"),
            )]),
        };
        let plan = UsagePlan::new("gold")
            .expect("an id")
            .with_name("Gold")
            .with_throttle(ThrottleSettings::new(100.0, 200).expect("a throttle"))
            .with_quota(QuotaSettings::new(1000, QuotaPeriod::Week).expect("a quota"))
            .with_api_stage(stage);
        let mut record = UsagePlanRecord::new(plan);
        let view = serde_json::to_value(UsagePlanView::of(&record)).expect("serializes");
        assert_eq!(
            view,
            json!({
                "id": "gold",
                "name": "Gold",
                "apiStages": [{
                    "apiId": "a1b2c3",
                    "stage": "prod",
                    "throttle": {"/pets/GET": {"burstLimit": 10, "rateLimit": 5.0}},
                }],
                "throttle": {"burstLimit": 200, "rateLimit": 100.0},
                "quota": {"limit": 1000, "offset": 0, "period": "WEEK"},
            })
        );
        record.tags.insert("team".into(), "payments".into());
        let view = serde_json::to_value(UsagePlanView::of(&record)).expect("serializes");
        assert_eq!(view["tags"], json!({"team": "payments"}));
        assert_eq!(view["id"], "gold");
    }
}
