//! The usage API: API Gateway's GetUsage and UpdateUsage, in Rust.
//!
//! ```
//! use std::sync::Arc;
//! use portcullis_core::clock::ManualClock;
//! use portcullis_core::plan::{QuotaPeriod, QuotaSettings, UsagePlan};
//! use portcullis_quota::{QuotaLayer, UsageUpdate};
//! use time::macros::{date, datetime};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let clock = ManualClock::at(datetime!(2026-11-23 09:00 UTC));
//! let layer = QuotaLayer::new().clock(clock.clone());
//! let usage = layer.usage_api();
//! let plan = UsagePlan::new("basic").unwrap()
//!     .with_quota(QuotaSettings::new(10, QuotaPeriod::Day).unwrap());
//!
//! // A temporary extension: five more requests today.
//! let today = usage.update_usage(&plan, "key-1", UsageUpdate::Extend(5)).await.unwrap();
//! assert_eq!(today.items["key-1"], vec![[0, 15]]);
//!
//! let report = usage
//!     .get_usage(&plan, Some("key-1"), date!(2026-11-22), date!(2026-11-23))
//!     .await
//!     .unwrap();
//! assert_eq!(report.items["key-1"], vec![[0, 10], [0, 15]]);
//! assert_eq!(
//!     serde_json::to_string(&report).unwrap(),
//!     r#"{"usagePlanId":"basic","startDate":"2026-11-22","endDate":"2026-11-23","items":{"key-1":[[0,10],[0,15]]}}"#
//! );
//! # }
//! ```

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt;
use std::sync::Arc;

use portcullis_core::clock::{Clock, SystemClock};
use portcullis_core::plan::{QuotaSettings, UsagePlan};
use serde::{Deserialize, Serialize};
use time::{Date, Duration};

use crate::calendar::Calendar;
use portcullis_core::store::OnStoreError;

use crate::shared::{Counters, Shared};
use crate::store::{DayUsage, InMemoryQuotaStore, QuotaRequest, QuotaStore, UsageUpdate};

/// The longest date range one GetUsage call may span, in days (a bound on
/// the size of the answer).
pub const MAX_USAGE_DAYS: i64 = 366;

/// The keys one GetUsage page reports when the caller gives no `limit`
/// (API Gateway's default).
pub const DEFAULT_USAGE_PAGE_LIMIT: usize = 25;

/// The most keys one GetUsage page may report (API Gateway's maximum
/// `limit`).
pub const MAX_USAGE_PAGE_LIMIT: usize = 500;

/// Which page of keys a GetUsage call reports, as API Gateway's `position`
/// and `limit` query parameters say.
///
/// Keys are reported in ascending order of their ids. `position` is the
/// opaque token a previous page returned in [`Usage::position`] (`None`: the
/// first page); `limit` is the most keys per page, 1 to
/// [`MAX_USAGE_PAGE_LIMIT`] (`None`: [`DEFAULT_USAGE_PAGE_LIMIT`]).
///
/// ```
/// use portcullis_quota::usage::UsagePage;
///
/// let first = UsagePage::new().limit(2);
/// # let _ = first;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsagePage {
    position: Option<String>,
    limit: Option<usize>,
}

impl UsagePage {
    /// The first page, of [`DEFAULT_USAGE_PAGE_LIMIT`] keys.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The page that starts at `position`, a token from a previous page's
    /// [`Usage::position`].
    #[must_use]
    pub fn position(mut self, position: impl Into<String>) -> Self {
        self.position = Some(position.into());
        self
    }

    /// At most `limit` keys on the page (1 to [`MAX_USAGE_PAGE_LIMIT`]; the
    /// call fails with [`UsageError::InvalidLimit`] otherwise).
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Picks this page out of `keys`; returns the page's keys and the
    /// position of the next page, if any keys remain.
    fn select<'k, K: AsRef<str>>(
        &self,
        keys: &'k [K],
    ) -> Result<(Vec<&'k str>, Option<String>), UsageError> {
        let limit = self.limit.unwrap_or(DEFAULT_USAGE_PAGE_LIMIT);
        if limit == 0 || limit > MAX_USAGE_PAGE_LIMIT {
            return Err(UsageError::InvalidLimit(limit));
        }
        let from = match &self.position {
            Some(position) => Some(decode_position(position)?),
            None => None,
        };
        let mut sorted: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let start = from.map_or(0, |from| sorted.partition_point(|key| *key < from.as_str()));
        let rest = sorted.get(start..).unwrap_or_default();
        let (page, next) = if rest.len() > limit {
            (&rest[..limit], Some(encode_position(rest[limit])))
        } else {
            (rest, None)
        };
        Ok((page.to_vec(), next))
    }
}

/// A position token: the hex digits of the next page's first key id (opaque
/// to callers, and safe in a query string without escaping).
fn encode_position(key: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(key.len() * 2);
    for byte in key.bytes() {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The longest position token decoded (a key id of up to 1,024 bytes); a
/// longer one is refused before any decoding.
const MAX_POSITION_LEN: usize = 2 * 1024;

fn decode_position(position: &str) -> Result<String, UsageError> {
    let invalid = || UsageError::InvalidPosition;
    if position.len() > MAX_POSITION_LEN || !position.len().is_multiple_of(2) {
        return Err(invalid());
    }
    let bytes = position
        .as_bytes()
        .chunks_exact(2)
        .map(|pair| {
            let digits = std::str::from_utf8(pair).map_err(|_| invalid())?;
            u8::from_str_radix(digits, 16).map_err(|_| invalid())
        })
        .collect::<Result<Vec<u8>, UsageError>>()?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

time::serde::format_description!(ymd, Date, "[year]-[month]-[day]");

/// API Gateway's `Usage`: `[used, remaining]` per key per day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// The usage plan's id.
    pub usage_plan_id: String,
    /// The first day reported.
    #[serde(with = "ymd")]
    pub start_date: Date,
    /// The last day reported.
    #[serde(with = "ymd")]
    pub end_date: Date,
    /// Per key id, one `[used, remaining]` pair per day from `start_date` to
    /// `end_date`.
    pub items: BTreeMap<String, Vec<[u64; 2]>>,
    /// The token of the next page of keys (pass it in
    /// [`UsagePage::position`]), or `None` on the last page. Absent from the
    /// JSON when `None`, as in API Gateway's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
}

/// Why the usage API could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// The plan has no quota, so nothing is counted for it.
    #[error("usage plan `{0}` has no quota")]
    NoQuota(String),
    /// The start date is after the end date.
    #[error("startDate {start} is after endDate {end}")]
    InvalidRange {
        /// The start date.
        start: Date,
        /// The end date.
        end: Date,
    },
    /// The range spans more than [`MAX_USAGE_DAYS`].
    #[error("the date range spans {days} days; at most {MAX_USAGE_DAYS} are allowed")]
    RangeTooLong {
        /// The days spanned.
        days: i64,
    },
    /// The page `limit` is 0 or above [`MAX_USAGE_PAGE_LIMIT`].
    #[error("limit must be between 1 and {MAX_USAGE_PAGE_LIMIT}, got {0}")]
    InvalidLimit(usize),
    /// The page `position` is not a token a previous page returned.
    #[error("invalid position")]
    InvalidPosition,
    /// The store failed.
    #[error("quota store error: {0}")]
    Store(#[source] Box<dyn Error + Send + Sync>),
}

/// API Gateway's GetUsage and UpdateUsage over a [`QuotaStore`].
///
/// Get one from [`QuotaLayer::usage_api`](crate::QuotaLayer::usage_api) so
/// that it shares the layer's store, clock and calendar.
pub struct UsageApi<St = InMemoryQuotaStore> {
    shared: Arc<Shared<St>>,
}

impl<St> Clone for UsageApi<St> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<St: fmt::Debug> fmt::Debug for UsageApi<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageApi")
            .field("shared", &self.shared)
            .finish()
    }
}

impl<St: QuotaStore> UsageApi<St> {
    /// A usage API over `store`, on the system clock and the default
    /// calendar. Prefer [`QuotaLayer::usage_api`](crate::QuotaLayer::usage_api).
    pub fn new(store: Arc<St>) -> Self {
        Self::from_shared(Arc::new(Shared {
            store,
            clock: Arc::new(SystemClock),
            calendar: Calendar::new(),
            plan_starts: BTreeMap::new(),
            on_store_error: OnStoreError::Allow,
            headers_on_success: false,
            headers: portcullis_core::ratelimit::RateLimitHeaders::default(),
            counters: Arc::new(Counters::new()),
        }))
    }

    pub(crate) fn from_shared(shared: Arc<Shared<St>>) -> Self {
        Self { shared }
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<St> {
        &self.shared.store
    }

    /// Today, UTC, by the API's clock.
    #[must_use]
    pub fn today(&self) -> Date {
        self.shared.clock.now().date()
    }

    /// GetUsage: per-day `[used, remaining]` from `start` to `end` (both
    /// included) for one key, or for every key the store has counted in the
    /// plan when `key_id` is `None`.
    ///
    /// # Errors
    ///
    /// The plan must have a quota, `start` must not be after `end`, the range
    /// must not exceed [`MAX_USAGE_DAYS`], and the store must answer.
    pub async fn get_usage(
        &self,
        plan: &UsagePlan,
        key_id: Option<&str>,
        start: Date,
        end: Date,
    ) -> Result<Usage, UsageError> {
        let keys = match key_id {
            Some(key) => vec![key.to_owned()],
            None => self
                .shared
                .store
                .keys(plan.id())
                .await
                .map_err(|e| UsageError::Store(Box::new(e)))?,
        };
        self.get_usage_of_keys(plan, &keys, start, end).await
    }

    /// GetUsage, one page of keys at a time, as API Gateway pages it: the
    /// keys (one key when `key_id` is given, else every key the store has
    /// counted in the plan) in ascending order of their ids, at most
    /// `page`'s limit of them, and in [`Usage::position`] the token of the
    /// next page when more remain.
    ///
    /// ```
    /// # use portcullis_core::plan::{QuotaPeriod, QuotaSettings, UsagePlan};
    /// # use portcullis_quota::QuotaLayer;
    /// # use portcullis_quota::usage::UsagePage;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let usage = QuotaLayer::new().usage_api();
    /// # let plan = UsagePlan::new("basic").unwrap()
    /// #     .with_quota(QuotaSettings::new(10, QuotaPeriod::Day).unwrap());
    /// # let today = usage.today();
    /// let keys = ["k3", "k1", "k2"];
    /// let first = usage
    ///     .get_usage_page_of_keys(&plan, &keys, today, today, &UsagePage::new().limit(2))
    ///     .await
    ///     .unwrap();
    /// assert_eq!(first.items.keys().collect::<Vec<_>>(), ["k1", "k2"]);
    /// let next = UsagePage::new().limit(2).position(first.position.unwrap());
    /// let second = usage
    ///     .get_usage_page_of_keys(&plan, &keys, today, today, &next)
    ///     .await
    ///     .unwrap();
    /// assert_eq!(second.items.keys().collect::<Vec<_>>(), ["k3"]);
    /// assert_eq!(second.position, None);
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`get_usage`](Self::get_usage), and
    /// [`UsageError::InvalidLimit`] or [`UsageError::InvalidPosition`] for a
    /// bad page.
    pub async fn get_usage_page(
        &self,
        plan: &UsagePlan,
        key_id: Option<&str>,
        start: Date,
        end: Date,
        page: &UsagePage,
    ) -> Result<Usage, UsageError> {
        let keys = match key_id {
            Some(key) => vec![key.to_owned()],
            None => self
                .shared
                .store
                .keys(plan.id())
                .await
                .map_err(|e| UsageError::Store(Box::new(e)))?,
        };
        self.get_usage_page_of_keys(plan, &keys, start, end, page)
            .await
    }

    /// [`get_usage_page`](Self::get_usage_page) over the listed keys (keys
    /// never counted report `[0, limit]`; duplicates count once).
    ///
    /// # Errors
    ///
    /// As [`get_usage_page`](Self::get_usage_page).
    pub async fn get_usage_page_of_keys<K: AsRef<str>>(
        &self,
        plan: &UsagePlan,
        keys: &[K],
        start: Date,
        end: Date,
        page: &UsagePage,
    ) -> Result<Usage, UsageError> {
        let (keys, position) = page.select(keys)?;
        let mut usage = self.get_usage_of_keys(plan, &keys, start, end).await?;
        usage.position = position;
        Ok(usage)
    }

    /// GetUsage for the listed keys (keys never counted report `[0, limit]`),
    /// all on one page.
    ///
    /// # Errors
    ///
    /// As [`get_usage`](Self::get_usage).
    pub async fn get_usage_of_keys<K: AsRef<str>>(
        &self,
        plan: &UsagePlan,
        keys: &[K],
        start: Date,
        end: Date,
    ) -> Result<Usage, UsageError> {
        let quota = quota_of(plan)?;
        if start > end {
            return Err(UsageError::InvalidRange { start, end });
        }
        let days = (end - start).whole_days() + 1;
        if days > MAX_USAGE_DAYS {
            return Err(UsageError::RangeTooLong { days });
        }
        let calendar = self.shared.calendar;
        // Read from the start of the period containing `start`, so that a
        // quiet first day still shows what remained of its period.
        let from = calendar.window_of_date(quota.period(), start).first_day();
        let mut items = BTreeMap::new();
        for key in keys {
            let key = key.as_ref();
            let records = self
                .shared
                .store
                .usage(plan.id(), key, from, end)
                .await
                .map_err(|e| UsageError::Store(Box::new(e)))?;
            items.insert(
                key.to_owned(),
                fill_days(&calendar, &quota, &records, from, start, end),
            );
        }
        Ok(Usage {
            usage_plan_id: plan.id().to_owned(),
            start_date: start,
            end_date: end,
            items,
            position: None,
        })
    }

    /// UpdateUsage: changes what remains of the key's current period, and
    /// answers the key's usage today.
    ///
    /// # Errors
    ///
    /// The plan must have a quota, and the store must answer.
    pub async fn update_usage(
        &self,
        plan: &UsagePlan,
        key_id: &str,
        update: UsageUpdate,
    ) -> Result<Usage, UsageError> {
        let quota = quota_of(plan)?;
        let now = self.shared.clock.now_unix_seconds();
        let (window, day) = self
            .shared
            .calendar
            .window_at_unix(quota.period(), i64::try_from(now).unwrap_or(i64::MAX));
        let request = QuotaRequest {
            plan_id: plan.id(),
            key_id,
            quota,
            window,
            day,
            initial_window: self.shared.initial_window(plan.id(), quota.period()),
        };
        let today = self
            .shared
            .store
            .update(&request, update)
            .await
            .map_err(|e| UsageError::Store(Box::new(e)))?;
        tracing::info!(
            layer = "quota",
            outcome = "usage_updated",
            plan = plan.id(),
            key = key_id,
            update = ?update,
            remaining = today.remaining,
        );
        self.shared.counters.usage_updated.increment(1);
        Ok(Usage {
            usage_plan_id: plan.id().to_owned(),
            start_date: today.day,
            end_date: today.day,
            items: BTreeMap::from([(key_id.to_owned(), vec![[today.used, today.remaining]])]),
            position: None,
        })
    }
}

fn quota_of(plan: &UsagePlan) -> Result<QuotaSettings, UsageError> {
    plan.quota()
        .copied()
        .ok_or_else(|| UsageError::NoQuota(plan.id().to_owned()))
}

/// One `[used, remaining]` per day from `start` to `end`. A day without a
/// record used nothing, and shows what remained of its period: the last
/// recorded remaining count in the same period, or the full limit.
fn fill_days(
    calendar: &Calendar,
    quota: &QuotaSettings,
    records: &[DayUsage],
    from: Date,
    start: Date,
    end: Date,
) -> Vec<[u64; 2]> {
    let mut out = Vec::new();
    let mut records = records.iter().peekable();
    let mut carry: Option<(i64, u64)> = None;
    let mut day = from;
    while day <= end {
        let window = calendar.window_of_date(quota.period(), day);
        while records.peek().is_some_and(|r| r.day < day) {
            records.next();
        }
        let pair = match records.peek() {
            Some(record) if record.day == day => {
                carry = Some((window.start(), record.remaining));
                [record.used, record.remaining]
            }
            _ => match carry {
                Some((period, remaining)) if period == window.start() => [0, remaining],
                _ => [0, quota.limit()],
            },
        };
        if day >= start {
            out.push(pair);
        }
        match day.checked_add(Duration::DAY) {
            Some(next) => day = next,
            None => break,
        }
    }
    out
}
