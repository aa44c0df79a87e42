//! A quota and its period.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::PlanError;

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
