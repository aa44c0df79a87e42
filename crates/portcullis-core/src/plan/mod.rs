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

mod error;
mod quota;
mod selector;
mod throttle;
mod usage_plan;

pub use error::PlanError;
pub use quota::{QuotaPeriod, QuotaSettings};
pub use selector::MethodSelector;
pub use throttle::ThrottleSettings;
pub use usage_plan::{ApiStage, UsagePlan};

#[cfg(test)]
mod tests;
