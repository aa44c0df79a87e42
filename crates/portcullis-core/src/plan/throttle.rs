//! A token bucket's settings.

use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

use super::error::PlanError;

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
