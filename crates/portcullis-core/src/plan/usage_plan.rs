//! A usage plan and the stages it applies to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::PlanError;
use super::quota::QuotaSettings;
use super::selector::MethodSelector;
use super::throttle::ThrottleSettings;

/// A stage a usage plan is associated with, and its per-method throttle
/// overrides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiStage {
    /// The API's id.
    #[serde(alias = "apiId")]
    pub api_id: String,
    /// The stage's name.
    pub stage: String,
    /// Per-method throttles, keyed as API Gateway keys them (`/pets/GET`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub throttle: BTreeMap<MethodSelector, ThrottleSettings>,
}

/// A usage plan: who may call how fast and how much.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawPlan", into = "RawPlan")]
pub struct UsagePlan {
    id: String,
    name: Option<String>,
    description: Option<String>,
    throttle: Option<ThrottleSettings>,
    quota: Option<QuotaSettings>,
    api_stages: Vec<ApiStage>,
}

impl UsagePlan {
    /// A plan with this id and no limits yet.
    ///
    /// # Errors
    ///
    /// The id must not be empty.
    pub fn new(id: impl Into<String>) -> Result<Self, PlanError> {
        let id = id.into();
        if id.is_empty() {
            return Err(PlanError::new("id", "must not be empty"));
        }
        Ok(Self {
            id,
            name: None,
            description: None,
            throttle: None,
            quota: None,
            api_stages: Vec::new(),
        })
    }

    /// Sets the plan's name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the plan's description.
    #[must_use]
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets the plan-wide throttle.
    #[must_use]
    pub fn with_throttle(mut self, throttle: ThrottleSettings) -> Self {
        self.throttle = Some(throttle);
        self
    }

    /// Sets the quota.
    #[must_use]
    pub fn with_quota(mut self, quota: QuotaSettings) -> Self {
        self.quota = Some(quota);
        self
    }

    /// Associates the plan with a stage.
    #[must_use]
    pub fn with_api_stage(mut self, stage: ApiStage) -> Self {
        self.api_stages.push(stage);
        self
    }

    /// The plan's id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The plan's name.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The plan's description.
    #[must_use]
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The plan-wide throttle.
    #[must_use]
    pub fn throttle(&self) -> Option<&ThrottleSettings> {
        self.throttle.as_ref()
    }

    /// The quota.
    #[must_use]
    pub fn quota(&self) -> Option<&QuotaSettings> {
        self.quota.as_ref()
    }

    /// The stages the plan is associated with.
    #[must_use]
    pub fn api_stages(&self) -> &[ApiStage] {
        &self.api_stages
    }

    /// Whether the plan applies to this stage. A plan with no stages listed
    /// applies to every stage (a convenience for single-stage gateways; API
    /// Gateway requires at least one).
    #[must_use]
    pub fn applies_to(&self, api_id: &str, stage: &str) -> bool {
        self.api_stages.is_empty()
            || self
                .api_stages
                .iter()
                .any(|s| s.api_id == api_id && s.stage == stage)
    }

    /// The throttle for `method` on `resource_path` in this stage: the most
    /// specific per-method override of the stage, else the plan-wide throttle.
    #[must_use]
    pub fn throttle_for(
        &self,
        api_id: &str,
        stage: &str,
        method: &str,
        resource_path: &str,
    ) -> Option<&ThrottleSettings> {
        self.method_throttle(api_id, stage, method, resource_path)
            .map(|(_, settings)| settings)
            .or(self.throttle.as_ref())
    }

    /// Whether any stage of the plan has a per-method throttle, so that a
    /// layer reads the request's path only when one may apply.
    #[must_use]
    pub fn has_method_throttles(&self) -> bool {
        self.api_stages
            .iter()
            .any(|stage| !stage.throttle.is_empty())
    }

    /// The most specific per-method override for `method` on the API
    /// resource `resource_path` (a template, from an
    /// [`ApiResource`](crate::resource::ApiResource)) in this stage, with its
    /// selector, matched as [`MethodSelector::matches_resource`] does.
    #[must_use]
    pub fn resource_method_throttle(
        &self,
        api_id: &str,
        stage: &str,
        method: &str,
        resource_path: &str,
    ) -> Option<(&MethodSelector, &ThrottleSettings)> {
        self.most_specific_throttle(api_id, stage, |selector| {
            selector.matches_resource(method, resource_path)
        })
    }

    /// The most specific per-method override for `method` on `resource_path`
    /// in this stage, with its selector. `resource_path` should be the
    /// request's [`CanonicalPath`](crate::path::CanonicalPath).
    #[must_use]
    pub fn method_throttle(
        &self,
        api_id: &str,
        stage: &str,
        method: &str,
        resource_path: &str,
    ) -> Option<(&MethodSelector, &ThrottleSettings)> {
        self.most_specific_throttle(api_id, stage, |selector| {
            selector.matches(method, resource_path)
        })
    }

    /// The most specific per-method override in this stage whose selector
    /// `matches`.
    fn most_specific_throttle(
        &self,
        api_id: &str,
        stage: &str,
        matches: impl Fn(&MethodSelector) -> bool,
    ) -> Option<(&MethodSelector, &ThrottleSettings)> {
        self.api_stages
            .iter()
            .filter(|s| s.api_id == api_id && s.stage == stage)
            .flat_map(|s| s.throttle.iter())
            .filter(|(selector, _)| matches(selector))
            .max_by_key(|(selector, _)| selector.specificity())
    }
}

#[derive(Serialize, Deserialize)]
struct RawPlan {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    throttle: Option<ThrottleSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    quota: Option<QuotaSettings>,
    #[serde(default, alias = "apiStages", skip_serializing_if = "Vec::is_empty")]
    api_stages: Vec<ApiStage>,
}

impl TryFrom<RawPlan> for UsagePlan {
    type Error = PlanError;
    fn try_from(raw: RawPlan) -> Result<Self, PlanError> {
        let mut plan = UsagePlan::new(raw.id)?;
        plan.name = raw.name;
        plan.description = raw.description;
        plan.throttle = raw.throttle;
        plan.quota = raw.quota;
        plan.api_stages = raw.api_stages;
        Ok(plan)
    }
}

impl From<UsagePlan> for RawPlan {
    fn from(p: UsagePlan) -> Self {
        RawPlan {
            id: p.id,
            name: p.name,
            description: p.description,
            throttle: p.throttle,
            quota: p.quota,
            api_stages: p.api_stages,
        }
    }
}
