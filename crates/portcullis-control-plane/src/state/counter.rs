//! A quota counter's durable state and its stored days of usage: what the
//! local stores journal, and what [`crate::packed`] packs once loaded.

use portcullis_quota::store::MAX_REMAINING;
use serde::{Deserialize, Serialize};
use time::Date;

use crate::model::UsageRecord;

/// One quota counter's durable state (see [`crate::reservation`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Counter {
    pub(crate) period_start: i64,
    pub(crate) first_period_start: i64,
    pub(crate) limit: u64,
    pub(crate) kind: u8,
    /// The Julian day being counted.
    pub(crate) day: i32,
    pub(crate) budget: u64,
    pub(crate) reserved: u64,
    pub(crate) used: u64,
    pub(crate) day_used_base: u64,
    /// The period's allowance when it began, moved by limit changes (what a
    /// reset restores).
    pub(crate) allowance: u64,
    pub(crate) generation: u64,
}

impl Counter {
    pub(super) fn today(&self) -> UsageRecord {
        UsageRecord {
            day: date_of(self.day),
            used: self.used.saturating_sub(self.day_used_base),
            remaining: self.budget.saturating_sub(self.used).min(MAX_REMAINING),
        }
    }
}

/// A stored day of usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DayRec {
    pub(crate) used: u64,
    pub(crate) remaining: u64,
}

pub(crate) fn date_of(julian: i32) -> Date {
    Date::from_julian_day(julian).unwrap_or(Date::MIN)
}
