//! The record the store keeps for one key, and the one-plan-per-stage rule.

use std::collections::BTreeMap;
use std::sync::Arc;

use portcullis_core::plan::UsagePlan;
use time::OffsetDateTime;

use super::digest::KeyDigest;

/// One API key as the store keeps it: API Gateway's `ApiKey` less its value,
/// plus the usage plans it belongs to.
///
/// The record holds the value's SHA-256 [`KeyDigest`], never the value.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiKeyRecord {
    pub(crate) id: Arc<str>,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) customer_id: Option<Arc<str>>,
    pub(crate) description: Option<String>,
    pub(crate) enabled: bool,
    pub(crate) created_date: OffsetDateTime,
    pub(crate) last_updated_date: OffsetDateTime,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) usage_plans: Vec<Arc<UsagePlan>>,
    pub(crate) digest: KeyDigest,
}

impl ApiKeyRecord {
    /// A record for the key with this id and digest: enabled, no plans, both
    /// dates `now`.
    pub fn new(id: impl Into<Arc<str>>, digest: KeyDigest, now: OffsetDateTime) -> Self {
        Self {
            id: id.into(),
            name: None,
            customer_id: None,
            description: None,
            enabled: true,
            created_date: now,
            last_updated_date: now,
            tags: BTreeMap::new(),
            usage_plans: Vec::new(),
            digest,
        }
    }

    /// The key's id (not secret: it appears in logs and in `ApiKeyContext`).
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key's name.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The key's customer id (API Gateway's `customerId`).
    #[must_use]
    pub fn customer_id(&self) -> Option<&str> {
        self.customer_id.as_deref()
    }

    /// The key's description.
    #[must_use]
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Whether the key is accepted. A disabled key is refused.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// When the key was created.
    #[must_use]
    pub fn created_date(&self) -> OffsetDateTime {
        self.created_date
    }

    /// When the key was last changed.
    #[must_use]
    pub fn last_updated_date(&self) -> OffsetDateTime {
        self.last_updated_date
    }

    /// The key's tags.
    #[must_use]
    pub fn tags(&self) -> &BTreeMap<String, String> {
        &self.tags
    }

    /// The usage plans the key belongs to (at most one per stage).
    #[must_use]
    pub fn usage_plans(&self) -> &[Arc<UsagePlan>] {
        &self.usage_plans
    }

    /// The usage plan that applies to the key on this stage, if any.
    #[must_use]
    pub fn usage_plan_for(&self, api_id: &str, stage: &str) -> Option<&Arc<UsagePlan>> {
        self.usage_plans
            .iter()
            .find(|plan| plan.applies_to(api_id, stage))
    }

    /// The SHA-256 digest of the key's value.
    #[must_use]
    pub fn digest(&self) -> &KeyDigest {
        &self.digest
    }

    /// Sets the name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the customer id.
    #[must_use]
    pub fn with_customer_id(mut self, customer_id: impl Into<Arc<str>>) -> Self {
        self.customer_id = Some(customer_id.into());
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Enables or disables the key.
    #[must_use]
    pub fn with_enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Sets the tags.
    #[must_use]
    pub fn with_tags(mut self, tags: BTreeMap<String, String>) -> Self {
        self.tags = tags;
        self
    }

    /// Sets the creation and last-update dates.
    #[must_use]
    pub fn with_dates(mut self, created: OffsetDateTime, last_updated: OffsetDateTime) -> Self {
        self.created_date = created;
        self.last_updated_date = last_updated;
        self
    }

    /// Sets the usage plans.
    ///
    /// # Errors
    ///
    /// [`PlanConflict`] when two plans apply to one stage (API Gateway allows a
    /// key one plan per stage), or a plan is listed twice.
    pub fn with_usage_plans(
        mut self,
        plans: impl IntoIterator<Item = Arc<UsagePlan>>,
    ) -> Result<Self, PlanConflict> {
        let plans: Vec<_> = plans.into_iter().collect();
        check_one_plan_per_stage(&plans)?;
        self.usage_plans = plans;
        Ok(self)
    }
}

/// Two of a key's usage plans apply to the same stage.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "usage plans `{first}` and `{second}` both apply to {stage}; a key may be in one plan per stage"
)]
#[non_exhaustive]
pub struct PlanConflict {
    /// One plan's id.
    pub first: String,
    /// The other plan's id.
    pub second: String,
    /// The stage they share, as `api_id/stage`, or `every stage`.
    pub stage: String,
}

/// Checks that no two plans apply to one stage. A plan with no stages applies
/// to every stage, so it conflicts with any other plan.
pub(crate) fn check_one_plan_per_stage(plans: &[Arc<UsagePlan>]) -> Result<(), PlanConflict> {
    for (i, a) in plans.iter().enumerate() {
        for b in &plans[i + 1..] {
            let conflict = |stage: String| PlanConflict {
                first: a.id().to_owned(),
                second: b.id().to_owned(),
                stage,
            };
            if a.id() == b.id() {
                return Err(conflict(
                    "the same stages (the plan is listed twice)".into(),
                ));
            }
            if a.api_stages().is_empty() || b.api_stages().is_empty() {
                return Err(conflict("every stage".into()));
            }
            if let Some(s) = a
                .api_stages()
                .iter()
                .find(|s| b.applies_to(&s.api_id, &s.stage))
            {
                return Err(conflict(format!("{}/{}", s.api_id, s.stage)));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_must_not_share_a_stage() {
        use portcullis_core::plan::ApiStage;
        let stage = |api: &str, stage: &str| ApiStage {
            api_id: api.into(),
            stage: stage.into(),
            throttle: BTreeMap::new(),
        };
        let prod = Arc::new(
            UsagePlan::new("prod")
                .unwrap()
                .with_api_stage(stage("a", "prod")),
        );
        let dev = Arc::new(
            UsagePlan::new("dev")
                .unwrap()
                .with_api_stage(stage("a", "dev")),
        );
        let prod2 = Arc::new(
            UsagePlan::new("prod2")
                .unwrap()
                .with_api_stage(stage("a", "prod")),
        );
        let all = Arc::new(UsagePlan::new("all").unwrap());
        assert!(check_one_plan_per_stage(&[prod.clone(), dev.clone()]).is_ok());
        let err = check_one_plan_per_stage(&[prod.clone(), prod2]).unwrap_err();
        assert_eq!(err.stage, "a/prod");
        assert!(check_one_plan_per_stage(&[dev.clone(), all]).is_err());
        assert!(check_one_plan_per_stage(&[dev.clone(), dev]).is_err());
    }
}
