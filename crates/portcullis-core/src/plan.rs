//! The usage-plan model: throttle and quota settings, and per-method throttle
//! overrides keyed as API Gateway keys them.
//!
//! Every type validates itself when it is built or deserialised, so an
//! invalid plan never reaches a layer. Field names follow this project's
//! configuration (`rate_limit`, `burst_limit`); API Gateway's own camelCase
//! names (`rateLimit`, `burstLimit`, `apiStages`, ...) are accepted as aliases,
//! so a plan exported from AWS loads as it is.
//!
//! ```
//! use portcullis_core::plan::{QuotaPeriod, UsagePlan};
//!
//! let plan: UsagePlan = serde_json::from_str(r#"{
//!     "id": "loyalty-basic",
//!     "throttle": { "rate_limit": 1.0, "burst_limit": 2 },
//!     "quota": { "limit": 10, "period": "DAY" },
//!     "api_stages": [{ "api_id": "a1b2c3d4e5", "stage": "prod",
//!                      "throttle": { "/loyalty/{customerId}/get/GET": { "rate_limit": 0.5, "burst_limit": 1 } } }]
//! }"#).unwrap();
//! assert_eq!(plan.quota().unwrap().period(), QuotaPeriod::Day);
//! let per_method = plan.throttle_for("a1b2c3d4e5", "prod", "GET", "/loyalty/{customerId}/get").unwrap();
//! assert_eq!(per_method.rate_limit(), 0.5);
//! let plan_wide = plan.throttle_for("a1b2c3d4e5", "prod", "POST", "/loyalty/{customerId}/get").unwrap();
//! assert_eq!(plan_wide.burst_limit().get(), 2);
//!
//! let err = serde_json::from_str::<UsagePlan>(r#"{"id":"p","throttle":{"rate_limit":-1,"burst_limit":2}}"#)
//!     .unwrap_err();
//! assert!(err.to_string().contains("rate_limit"));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a usage plan, or a part of one, is invalid. The message names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
#[non_exhaustive]
pub struct PlanError {
    /// The field at fault, such as `burst_limit`.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl PlanError {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// A token bucket's settings: API Gateway's `throttle` of a usage plan or of a
/// method.
///
/// The bucket holds `burst_limit` tokens and refills at `rate_limit` tokens per
/// second; each request takes one.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawThrottle", into = "RawThrottle")]
pub struct ThrottleSettings {
    rate_limit: f64,
    burst_limit: NonZeroU32,
}

impl ThrottleSettings {
    /// Settings with `rate_limit` requests per second (fractions allowed: 0.5
    /// is one request every two seconds) and a bucket of `burst_limit`.
    ///
    /// # Errors
    ///
    /// `rate_limit` must be finite and greater than zero, and `burst_limit` at
    /// least 1.
    pub fn new(rate_limit: f64, burst_limit: u32) -> Result<Self, PlanError> {
        if !rate_limit.is_finite() {
            return Err(PlanError::new("rate_limit", "must be a finite number"));
        }
        if rate_limit <= 0.0 {
            return Err(PlanError::new(
                "rate_limit",
                format!("must be greater than zero, got {rate_limit}"),
            ));
        }
        let burst_limit = NonZeroU32::new(burst_limit)
            .ok_or_else(|| PlanError::new("burst_limit", "must be at least 1"))?;
        Ok(Self {
            rate_limit,
            burst_limit,
        })
    }

    /// The refill rate, in requests per second.
    #[must_use]
    pub fn rate_limit(&self) -> f64 {
        self.rate_limit
    }

    /// The bucket size.
    #[must_use]
    pub fn burst_limit(&self) -> NonZeroU32 {
        self.burst_limit
    }

    /// The time one token takes to refill, in nanoseconds (at least 1).
    #[must_use]
    pub fn emission_interval_nanos(&self) -> u64 {
        let nanos = (1e9 / self.rate_limit).round();
        if nanos >= u64::MAX as f64 {
            u64::MAX
        } else {
            (nanos as u64).max(1)
        }
    }
}

#[derive(Serialize, Deserialize)]
struct RawThrottle {
    #[serde(alias = "rateLimit")]
    rate_limit: f64,
    #[serde(alias = "burstLimit")]
    burst_limit: i64,
}

impl TryFrom<RawThrottle> for ThrottleSettings {
    type Error = PlanError;
    fn try_from(raw: RawThrottle) -> Result<Self, PlanError> {
        let burst = u32::try_from(raw.burst_limit).map_err(|_| {
            PlanError::new(
                "burst_limit",
                format!(
                    "must be between 1 and {}, got {}",
                    u32::MAX,
                    raw.burst_limit
                ),
            )
        })?;
        ThrottleSettings::new(raw.rate_limit, burst)
    }
}

impl From<ThrottleSettings> for RawThrottle {
    fn from(t: ThrottleSettings) -> Self {
        RawThrottle {
            rate_limit: t.rate_limit,
            burst_limit: i64::from(t.burst_limit.get()),
        }
    }
}

/// The period of a quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum QuotaPeriod {
    /// A UTC calendar day.
    Day,
    /// A calendar week (the quota layer sets the day it starts on).
    Week,
    /// A UTC calendar month.
    Month,
}

impl fmt::Display for QuotaPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QuotaPeriod::Day => "DAY",
            QuotaPeriod::Week => "WEEK",
            QuotaPeriod::Month => "MONTH",
        })
    }
}

/// A quota: at most `limit` requests per period, less `offset` in the first
/// period (API Gateway: "the number of requests subtracted from the given
/// limit in the initial time period").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawQuota", into = "RawQuota")]
pub struct QuotaSettings {
    limit: u64,
    period: QuotaPeriod,
    offset: u64,
}

impl QuotaSettings {
    /// `limit` requests per `period`.
    ///
    /// # Errors
    ///
    /// `limit` must be at least 1.
    pub fn new(limit: u64, period: QuotaPeriod) -> Result<Self, PlanError> {
        Self::with_offset(limit, period, 0)
    }

    /// `limit` requests per `period`, less `offset` in the first period.
    ///
    /// # Errors
    ///
    /// `limit` must be at least 1, and `offset` at most `limit`.
    pub fn with_offset(limit: u64, period: QuotaPeriod, offset: u64) -> Result<Self, PlanError> {
        if limit == 0 {
            return Err(PlanError::new("limit", "must be at least 1"));
        }
        if offset > limit {
            return Err(PlanError::new(
                "offset",
                format!("must not exceed limit ({limit}), got {offset}"),
            ));
        }
        Ok(Self {
            limit,
            period,
            offset,
        })
    }

    /// The most requests admitted in one period.
    #[must_use]
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The period.
    #[must_use]
    pub fn period(&self) -> QuotaPeriod {
        self.period
    }

    /// The requests subtracted from the limit in the first period.
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

#[derive(Serialize, Deserialize)]
struct RawQuota {
    limit: i64,
    period: QuotaPeriod,
    #[serde(default)]
    offset: i64,
}

impl TryFrom<RawQuota> for QuotaSettings {
    type Error = PlanError;
    fn try_from(raw: RawQuota) -> Result<Self, PlanError> {
        let limit = u64::try_from(raw.limit).map_err(|_| {
            PlanError::new("limit", format!("must be at least 1, got {}", raw.limit))
        })?;
        let offset = u64::try_from(raw.offset).map_err(|_| {
            PlanError::new(
                "offset",
                format!("must not be negative, got {}", raw.offset),
            )
        })?;
        QuotaSettings::with_offset(limit, raw.period, offset)
    }
}

impl From<QuotaSettings> for RawQuota {
    fn from(q: QuotaSettings) -> Self {
        RawQuota {
            limit: i64::try_from(q.limit).unwrap_or(i64::MAX),
            period: q.period,
            offset: i64::try_from(q.offset).unwrap_or(i64::MAX),
        }
    }
}

/// A method selector as API Gateway keys per-method settings:
/// `{resource_path}/{HTTP_METHOD}`.
///
/// - `/pets/GET`: GET on `/pets`;
/// - `//GET`: GET on the root resource `/`;
/// - `/pets/{petId}/*`: any method on `/pets/{petId}`;
/// - `/*/*`: any method on any resource.
///
/// When a routing layer left the request's
/// [`ApiResource`](crate::resource::ApiResource), a selector applies to that
/// resource only when it names it ([`matches_resource`](Self::matches_resource)),
/// as API Gateway keys method settings. Otherwise a resource path is matched
/// segment by segment against the request's resource (the route template
/// when the framework knows it, such as axum's `MatchedPath`, otherwise the
/// concrete path): a `{name}` segment matches any one segment, `{name+}`
/// matches the rest of the path, and `/*` as the whole resource matches
/// every path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MethodSelector {
    resource: String,
    method: String,
}

impl MethodSelector {
    /// The resource path part, such as `/pets` or `/`.
    #[must_use]
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The method part, such as `GET` or `*`.
    #[must_use]
    pub fn method(&self) -> &str {
        &self.method
    }

    /// Whether this selector applies to `method` on `resource_path`.
    #[must_use]
    pub fn matches(&self, method: &str, resource_path: &str) -> bool {
        if self.method != "*" && !self.method.eq_ignore_ascii_case(method) {
            return false;
        }
        if self.resource == "/*" {
            return true;
        }
        let mut pattern = self.resource.split('/').skip(1);
        let mut path = resource_path.split('/').skip(1);
        if self.resource == "/" {
            return resource_path == "/" || resource_path.is_empty();
        }
        loop {
            match (pattern.next(), path.next()) {
                (None, None) => return true,
                (Some(p), Some(_)) if p.starts_with('{') && p.ends_with("+}") => return true,
                (Some(p), Some(s)) if (p.starts_with('{') && p.ends_with('}')) || p == s => {}
                _ => return false,
            }
        }
    }

    /// Whether this selector applies to `method` on the API resource
    /// `resource_path` (a template such as `/loyalty/{proxy+}`, from an
    /// [`ApiResource`](crate::resource::ApiResource)), as API Gateway keys
    /// method settings: the selector's resource is that resource itself, or
    /// `/*`. Unlike [`matches`](Self::matches), `{proxy+}` here names one
    /// resource, not the paths below it, so `/loyalty/{proxy+}/*` does not
    /// apply to a resource `/loyalty/{id}/get` of its own.
    #[must_use]
    pub fn matches_resource(&self, method: &str, resource_path: &str) -> bool {
        (self.method == "*" || self.method.eq_ignore_ascii_case(method))
            && (self.resource == "/*" || self.resource == resource_path)
    }

    /// How specific the selector is; a higher value is more specific. An exact
    /// resource beats a templated one, which beats `/*`; then an exact method
    /// beats `*`.
    #[must_use]
    pub fn specificity(&self) -> (u8, usize, u8) {
        let resource_rank = if self.resource == "/*" {
            0
        } else if self.resource.contains('{') {
            1
        } else {
            2
        };
        let literal_segments = self
            .resource
            .split('/')
            .filter(|s| !s.is_empty() && !s.starts_with('{') && *s != "*")
            .count();
        (
            resource_rank,
            literal_segments,
            u8::from(self.method != "*"),
        )
    }
}

impl FromStr for MethodSelector {
    type Err = PlanError;

    fn from_str(key: &str) -> Result<Self, PlanError> {
        let bad = |why: &str| PlanError::new(format!("\"{key}\""), why.to_owned());
        if !key.starts_with('/') {
            return Err(bad("a method key starts with `/`, as in `/pets/GET`"));
        }
        let (resource, method) = key
            .rsplit_once('/')
            .ok_or_else(|| bad("a method key ends in `/{METHOD}`"))?;
        let resource = if resource.is_empty() { "/" } else { resource };
        let method_ok =
            method == "*" || (!method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase()));
        if !method_ok {
            return Err(bad("the method must be an upper-case HTTP method or `*`"));
        }
        if resource.len() > 1 && resource.ends_with('/') {
            return Err(bad("the resource path must not end in `/`"));
        }
        Ok(Self {
            resource: resource.to_owned(),
            method: method.to_owned(),
        })
    }
}

impl fmt::Display for MethodSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.resource == "/" {
            write!(f, "//{}", self.method)
        } else {
            write!(f, "{}/{}", self.resource, self.method)
        }
    }
}

impl Serialize for MethodSelector {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MethodSelector {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

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
        self.api_stages
            .iter()
            .filter(|s| s.api_id == api_id && s.stage == stage)
            .flat_map(|s| s.throttle.iter())
            .filter(|(selector, _)| selector.matches_resource(method, resource_path))
            .max_by_key(|(selector, _)| selector.specificity())
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
        self.api_stages
            .iter()
            .filter(|s| s.api_id == api_id && s.stage == stage)
            .flat_map(|s| s.throttle.iter())
            .filter(|(selector, _)| selector.matches(method, resource_path))
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

#[cfg(test)]
mod tests;
