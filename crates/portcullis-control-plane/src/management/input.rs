//! Turning the request inputs into store changes: patch operations applied
//! to drafts (UpdateUsagePlan, UpdateApiKey, UpdateUsage) and CreateApiKey's
//! new key. Every change is built and checked before anything is written.

use std::collections::{BTreeMap, BTreeSet};

use http::StatusCode;
use portcullis_api_key::ApiKeyValue;
use portcullis_core::plan::{
    ApiStage, MethodSelector, QuotaPeriod, QuotaSettings, ThrottleSettings, UsagePlan,
};
use portcullis_quota::store::UsageUpdate;

use super::MAX_PATCH_OPERATIONS;
use super::request::parse_body;
use super::response::ApiError;
use super::views::{
    ApiStageInput, CreateApiKeyInput, CreateUsagePlanInput, PatchInput, PatchOperation, QuotaInput,
    ThrottleInput,
};
use crate::model::{ApiKeyUpdate, NewApiKey};

pub(super) fn patch_operations(body: &[u8]) -> Result<Vec<PatchOperation>, ApiError> {
    let input: PatchInput = parse_body(body)?;
    if input.patch_operations.len() > MAX_PATCH_OPERATIONS {
        return Err(ApiError::bad(format!(
            "At most {MAX_PATCH_OPERATIONS} patch operations are allowed"
        )));
    }
    Ok(input.patch_operations)
}

pub(super) fn invalid_patch(op: &PatchOperation) -> ApiError {
    ApiError::bad(format!(
        "Invalid patch path '{}' for operation '{}'",
        op.path, op.op
    ))
}

pub(super) fn required_text(op: &PatchOperation) -> Result<String, ApiError> {
    op.text().ok_or_else(|| {
        ApiError::bad(format!(
            "Invalid patch operation: '{}' on '{}' needs a value",
            op.op, op.path
        ))
    })
}

/// Unescapes a JSON Pointer segment (`~1` is `/`, `~0` is `~`).
pub(super) fn unescape_pointer(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

pub(super) fn parse_period(value: &str) -> Result<QuotaPeriod, ApiError> {
    match value.to_ascii_uppercase().as_str() {
        "DAY" => Ok(QuotaPeriod::Day),
        "WEEK" => Ok(QuotaPeriod::Week),
        "MONTH" => Ok(QuotaPeriod::Month),
        _ => Err(ApiError::bad(format!(
            "Invalid quota period {value:?}: expected DAY, WEEK or MONTH"
        ))),
    }
}

pub(super) fn parse_int(field: &str, value: &str) -> Result<i64, ApiError> {
    value
        .trim()
        .parse()
        .map_err(|_| ApiError::bad(format!("Invalid {field} {value:?}: expected an integer")))
}

pub(super) fn parse_rate(value: &str) -> Result<f64, ApiError> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite())
        .ok_or_else(|| ApiError::bad(format!("Invalid rateLimit {value:?}: expected a number")))
}

/// A throttle being edited: both members optional until built.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ThrottleDraft {
    rate: Option<f64>,
    burst: Option<i64>,
}

impl ThrottleDraft {
    pub(super) fn of(t: &ThrottleSettings) -> Self {
        Self {
            rate: Some(t.rate_limit()),
            burst: Some(i64::from(t.burst_limit().get())),
        }
    }

    pub(super) fn from_input(t: &ThrottleInput) -> Self {
        Self {
            rate: t.rate_limit,
            burst: t.burst_limit,
        }
    }

    pub(super) fn build(self, at: &str) -> Result<ThrottleSettings, ApiError> {
        let rate = self
            .rate
            .ok_or_else(|| ApiError::bad(format!("{at}: rateLimit is required")))?;
        let burst = self
            .burst
            .ok_or_else(|| ApiError::bad(format!("{at}: burstLimit is required")))?;
        let burst = u32::try_from(burst).map_err(|_| {
            ApiError::bad(format!("{at}: burstLimit must be at least 1, got {burst}"))
        })?;
        ThrottleSettings::new(rate, burst).map_err(|e| ApiError::bad(format!("{at}: {e}")))
    }
}

/// A quota being edited.
#[derive(Clone, Debug, Default)]
pub(super) struct QuotaDraft {
    limit: Option<i64>,
    offset: Option<i64>,
    period: Option<QuotaPeriod>,
}

impl QuotaDraft {
    pub(super) fn of(q: &QuotaSettings) -> Self {
        Self {
            limit: Some(i64::try_from(q.limit()).unwrap_or(i64::MAX)),
            offset: Some(i64::try_from(q.offset()).unwrap_or(i64::MAX)),
            period: Some(q.period()),
        }
    }

    pub(super) fn from_input(q: &QuotaInput) -> Result<Self, ApiError> {
        Ok(Self {
            limit: q.limit,
            offset: q.offset,
            period: q.period.as_deref().map(parse_period).transpose()?,
        })
    }

    pub(super) fn build(&self) -> Result<QuotaSettings, ApiError> {
        let limit = self
            .limit
            .ok_or_else(|| ApiError::bad("quota: limit is required"))?;
        let period = self
            .period
            .ok_or_else(|| ApiError::bad("quota: period is required"))?;
        let limit = u64::try_from(limit)
            .map_err(|_| ApiError::bad(format!("quota: limit must be at least 1, got {limit}")))?;
        let offset = self.offset.unwrap_or(0);
        let offset = u64::try_from(offset).map_err(|_| {
            ApiError::bad(format!("quota: offset must not be negative, got {offset}"))
        })?;
        QuotaSettings::with_offset(limit, period, offset)
            .map_err(|e| ApiError::bad(format!("quota: {e}")))
    }
}

/// A stage being edited.
#[derive(Clone, Debug)]
pub(super) struct StageDraft {
    api_id: String,
    stage: String,
    throttle: BTreeMap<String, ThrottleDraft>,
}

/// A usage plan being edited: UpdateUsagePlan applies its patch operations
/// here, then builds the plan.
#[derive(Clone, Debug)]
pub(super) struct PlanDraft {
    id: String,
    name: Option<String>,
    description: Option<String>,
    throttle: Option<ThrottleDraft>,
    quota: Option<QuotaDraft>,
    stages: Vec<StageDraft>,
}

impl PlanDraft {
    pub(super) fn of(plan: &UsagePlan) -> Self {
        Self {
            id: plan.id().to_owned(),
            name: plan.name().map(str::to_owned),
            description: plan.description().map(str::to_owned),
            throttle: plan.throttle().map(ThrottleDraft::of),
            quota: plan.quota().map(QuotaDraft::of),
            stages: plan
                .api_stages()
                .iter()
                .map(|s| StageDraft {
                    api_id: s.api_id.clone(),
                    stage: s.stage.clone(),
                    throttle: s
                        .throttle
                        .iter()
                        .map(|(k, t)| (k.to_string(), ThrottleDraft::of(t)))
                        .collect(),
                })
                .collect(),
        }
    }

    pub(super) fn from_input(id: &str, input: &CreateUsagePlanInput) -> Result<Self, ApiError> {
        Ok(Self {
            id: id.to_owned(),
            name: input.name.clone(),
            description: input.description.clone(),
            throttle: input.throttle.as_ref().map(ThrottleDraft::from_input),
            quota: input
                .quota
                .as_ref()
                .map(QuotaDraft::from_input)
                .transpose()?,
            stages: input
                .api_stages
                .iter()
                .map(stage_of_input)
                .collect::<Result<_, _>>()?,
        })
    }

    pub(super) fn build(&self) -> Result<UsagePlan, ApiError> {
        let mut plan =
            UsagePlan::new(self.id.as_str()).map_err(|e| ApiError::bad(e.to_string()))?;
        if let Some(name) = &self.name {
            plan = plan.with_name(name.as_str());
        }
        if let Some(description) = &self.description {
            plan = plan.with_description(description.as_str());
        }
        if let Some(throttle) = self.throttle {
            plan = plan.with_throttle(throttle.build("throttle")?);
        }
        if let Some(quota) = &self.quota {
            plan = plan.with_quota(quota.build()?);
        }
        let mut seen = BTreeSet::new();
        for stage in &self.stages {
            if !seen.insert((stage.api_id.clone(), stage.stage.clone())) {
                return Err(ApiError::bad(format!(
                    "apiStages names {}:{} twice",
                    stage.api_id, stage.stage
                )));
            }
            let mut throttle = BTreeMap::new();
            for (key, t) in &stage.throttle {
                let selector: MethodSelector = key.parse().map_err(|e| {
                    ApiError::bad(format!("Invalid method throttle key {key:?}: {e}"))
                })?;
                let at = format!(
                    "apiStages[{}:{}].throttle[{key}]",
                    stage.api_id, stage.stage
                );
                throttle.insert(selector, t.build(&at)?);
            }
            plan = plan.with_api_stage(ApiStage {
                api_id: stage.api_id.clone(),
                stage: stage.stage.clone(),
                throttle,
            });
        }
        Ok(plan)
    }

    pub(super) fn stage_mut(&mut self, reference: &str) -> Result<&mut StageDraft, ApiError> {
        let (api_id, stage) = reference.split_once(':').ok_or_else(|| {
            ApiError::bad(format!(
                "Invalid API stage {reference:?}: expected {{apiId}}:{{stage}}"
            ))
        })?;
        self.stages
            .iter_mut()
            .find(|s| s.api_id == api_id && s.stage == stage)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "Invalid API Stage {api_id}:{stage} specified for the usage plan"
                ))
            })
    }

    /// Applies one UpdateUsagePlan operation.
    pub(super) fn apply(&mut self, op: &PatchOperation) -> Result<(), ApiError> {
        let segments: Vec<&str> = op.path.split('/').skip(1).collect();
        match (op.op.as_str(), segments.as_slice()) {
            ("replace", ["name"]) => self.name = Some(required_text(op)?),
            ("replace", ["description"]) => self.description = Some(required_text(op)?),
            ("remove", ["description"]) => self.description = None,
            ("remove", ["throttle"]) => self.throttle = None,
            ("replace" | "add", ["throttle", member]) => {
                let value = required_text(op)?;
                let throttle = self.throttle.get_or_insert_with(ThrottleDraft::default);
                match *member {
                    "rateLimit" => throttle.rate = Some(parse_rate(&value)?),
                    "burstLimit" => throttle.burst = Some(parse_int("burstLimit", &value)?),
                    _ => return Err(invalid_patch(op)),
                }
            }
            ("remove", ["quota"]) => self.quota = None,
            ("replace" | "add", ["quota", member]) => {
                let value = required_text(op)?;
                let quota = self.quota.get_or_insert_with(QuotaDraft::default);
                match *member {
                    "limit" => quota.limit = Some(parse_int("limit", &value)?),
                    "offset" => quota.offset = Some(parse_int("offset", &value)?),
                    "period" => quota.period = Some(parse_period(&value)?),
                    _ => return Err(invalid_patch(op)),
                }
            }
            ("add", ["apiStages"]) => {
                let value = required_text(op)?;
                let (api_id, stage) = value.split_once(':').ok_or_else(|| {
                    ApiError::bad(format!(
                        "Invalid API stage {value:?}: expected {{apiId}}:{{stage}}"
                    ))
                })?;
                if api_id.is_empty() || stage.is_empty() {
                    return Err(ApiError::bad(format!("Invalid API stage {value:?}")));
                }
                if self
                    .stages
                    .iter()
                    .any(|s| s.api_id == api_id && s.stage == stage)
                {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "ConflictException",
                        format!("API stage {value} is already in the usage plan"),
                    ));
                }
                self.stages.push(StageDraft {
                    api_id: api_id.to_owned(),
                    stage: stage.to_owned(),
                    throttle: BTreeMap::new(),
                });
            }
            ("remove", ["apiStages"]) => {
                let value = required_text(op)?;
                let before = self.stages.len();
                self.stages
                    .retain(|s| format!("{}:{}", s.api_id, s.stage) != value);
                if self.stages.len() == before {
                    return Err(ApiError::not_found(format!(
                        "Invalid API Stage {value} specified for the usage plan"
                    )));
                }
            }
            ("remove", ["apiStages", stage, "throttle"]) => {
                self.stage_mut(&unescape_pointer(stage))?.throttle.clear();
            }
            (verb, ["apiStages", stage, "throttle", resource, method, rest @ ..]) => {
                let key = method_key(&unescape_pointer(resource), method);
                let stage = self.stage_mut(&unescape_pointer(stage))?;
                match (verb, rest) {
                    ("remove", []) => {
                        if stage.throttle.remove(&key).is_none() {
                            return Err(ApiError::not_found(format!(
                                "No method throttle {key} in the API stage"
                            )));
                        }
                    }
                    ("replace" | "add", [member]) => {
                        let value = required_text(op)?;
                        let draft = stage.throttle.entry(key).or_default();
                        match *member {
                            "rateLimit" => draft.rate = Some(parse_rate(&value)?),
                            "burstLimit" => {
                                draft.burst = Some(parse_int("burstLimit", &value)?);
                            }
                            _ => return Err(invalid_patch(op)),
                        }
                    }
                    _ => return Err(invalid_patch(op)),
                }
            }
            _ => return Err(invalid_patch(op)),
        }
        Ok(())
    }
}

/// `{resourcePath}/{httpMethod}`, as per-method throttles are keyed.
pub(super) fn method_key(resource: &str, method: &str) -> String {
    if resource.ends_with('/') {
        format!("{resource}{method}")
    } else {
        format!("{resource}/{method}")
    }
}

pub(super) fn stage_of_input(input: &ApiStageInput) -> Result<StageDraft, ApiError> {
    let api_id = input
        .api_id
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad("apiStages: apiId is required"))?;
    let stage = input
        .stage
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad("apiStages: stage is required"))?;
    Ok(StageDraft {
        api_id,
        stage,
        throttle: input
            .throttle
            .iter()
            .map(|(k, t)| (k.clone(), ThrottleDraft::from_input(t)))
            .collect(),
    })
}

/// The UpdateApiKey operations, as one update.
pub(super) fn api_key_update(ops: &[PatchOperation]) -> Result<ApiKeyUpdate, ApiError> {
    let mut update = ApiKeyUpdate::new();
    for op in ops {
        match (op.op.as_str(), op.path.as_str()) {
            ("replace", "/name") => update = update.name(Some(required_text(op)?)),
            ("replace", "/description") => {
                update = update.description(Some(required_text(op)?));
            }
            ("remove", "/description") => update = update.description(None),
            ("replace", "/customerId") => {
                update = update.customer_id(Some(required_text(op)?));
            }
            ("remove", "/customerId") => update = update.customer_id(None),
            ("replace", "/enabled") => {
                let value = required_text(op)?;
                let enabled = match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(ApiError::bad(format!(
                            "Invalid value {value:?} for /enabled: expected true or false"
                        )));
                    }
                };
                update = update.enabled(enabled);
            }
            _ => return Err(invalid_patch(op)),
        }
    }
    Ok(update)
}

/// The UpdateUsage operations, as usage updates.
pub(super) fn usage_updates(ops: &[PatchOperation]) -> Result<Vec<UsageUpdate>, ApiError> {
    if ops.is_empty() {
        return Err(ApiError::bad("patchOperations must not be empty"));
    }
    ops.iter()
        .map(|op| {
            if op.path != "/remaining" {
                return Err(invalid_patch(op));
            }
            let value = || -> Result<u64, ApiError> {
                let text = required_text(op)?;
                text.trim().parse::<u64>().map_err(|_| {
                    ApiError::bad(format!(
                        "Invalid value {text:?} for /remaining: expected a non-negative integer"
                    ))
                })
            };
            match op.op.as_str() {
                "replace" => Ok(UsageUpdate::SetRemaining(value()?)),
                "add" => Ok(UsageUpdate::Extend(value()?)),
                "remove" => Ok(UsageUpdate::Reset),
                _ => Err(invalid_patch(op)),
            }
        })
        .collect()
}

pub(super) fn new_api_key(input: CreateApiKeyInput) -> Result<NewApiKey, ApiError> {
    let value = input
        .value
        .map(|v| {
            ApiKeyValue::new(v).map_err(|e| ApiError::bad(format!("Invalid API key value: {e}")))
        })
        .transpose()?;
    let stage_keys = input
        .stage_keys
        .into_iter()
        .map(|s| match (s.rest_api_id, s.stage_name) {
            (Some(api), Some(stage)) => Ok(format!("{api}/{stage}")),
            _ => Err(ApiError::bad(
                "stageKeys: each needs restApiId and stageName",
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NewApiKey {
        id: None,
        name: input.name,
        customer_id: input.customer_id,
        description: input.description,
        enabled: input.enabled.unwrap_or(false),
        value,
        digest: None,
        stage_keys,
        tags: input.tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::plan::{QuotaPeriod, QuotaSettings, UsagePlan};

    fn op(op: &str, path: &str, value: Option<&str>) -> PatchOperation {
        PatchOperation {
            op: op.to_owned(),
            path: path.to_owned(),
            value: value.map(|v| serde_json::Value::String(v.to_owned())),
            from: None,
        }
    }

    #[test]
    fn plan_patches_apply_to_a_draft() {
        let plan = UsagePlan::new("p")
            .unwrap()
            .with_name("n")
            .with_quota(QuotaSettings::new(10, QuotaPeriod::Day).unwrap());
        let mut draft = PlanDraft::of(&plan);
        draft
            .apply(&op("replace", "/quota/limit", Some("500")))
            .unwrap();
        draft
            .apply(&op("replace", "/quota/period", Some("MONTH")))
            .unwrap();
        draft
            .apply(&op("add", "/apiStages", Some("api1:prod")))
            .unwrap();
        draft
            .apply(&op(
                "replace",
                "/apiStages/api1:prod/throttle/~1pets/GET/rateLimit",
                Some("5"),
            ))
            .unwrap();
        draft
            .apply(&op(
                "replace",
                "/apiStages/api1:prod/throttle/~1pets/GET/burstLimit",
                Some("10"),
            ))
            .unwrap();
        draft
            .apply(&op("replace", "/throttle/rateLimit", Some("2")))
            .unwrap();
        draft
            .apply(&op("replace", "/throttle/burstLimit", Some("4")))
            .unwrap();
        let built = draft.build().unwrap();
        assert_eq!(built.quota().unwrap().limit(), 500);
        assert_eq!(built.quota().unwrap().period(), QuotaPeriod::Month);
        assert_eq!(built.api_stages()[0].throttle.len(), 1);
        assert_eq!(built.throttle().unwrap().burst_limit().get(), 4);

        let mut bad = PlanDraft::of(&plan);
        assert!(
            bad.apply(&op("replace", "/quota/period", Some("YEAR")))
                .is_err()
        );
        assert!(bad.apply(&op("replace", "/nope", Some("1"))).is_err());
        bad.apply(&op("replace", "/quota/limit", Some("-1")))
            .unwrap();
        assert!(
            bad.build().is_err(),
            "a negative limit is refused when built"
        );
        let mut half = PlanDraft::of(&plan);
        half.apply(&op("replace", "/throttle/rateLimit", Some("2")))
            .unwrap();
        assert!(half.build().is_err(), "a throttle needs both members");
    }

    #[test]
    fn key_patches() {
        let update = api_key_update(&[
            op("replace", "/enabled", Some("false")),
            op("replace", "/name", Some("x")),
        ])
        .unwrap();
        assert_eq!(update.enabled, Some(false));
        assert!(api_key_update(&[op("replace", "/enabled", Some("maybe"))]).is_err());
        assert!(api_key_update(&[op("replace", "/value", Some("x"))]).is_err());
    }
}
