//! [`QuotaLayer`]: the layer and its configuration (the state it shares is
//! in `shared`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use portcullis_core::clock::{Clock, SharedClock, SystemClock};
use portcullis_core::ratelimit::RateLimitHeaders;
use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, Weekday};
use tower_layer::Layer;

use crate::calendar::Calendar;
use crate::service::Quota;
use crate::shared::{Counters, Shared};
use crate::store::{DEFAULT_RETENTION_DAYS, InMemoryQuotaStore, QuotaStore};
use crate::usage::UsageApi;

pub use portcullis_core::store::OnStoreError;

/// Enforces usage-plan quotas: at most `limit` requests per API key per UTC
/// day, week or month.
///
/// The key and its plan come from the [`ApiKeyContext`] that the API-key
/// layer leaves in the request extensions. A request with no
/// `ApiKeyContext`, or whose plan has no quota, passes untouched: whether a
/// key is required is the API-key layer's decision, not this one's.
///
/// The store is created once, when the layer is built: every clone of the
/// layer and of its services counts against the same quotas. See the
/// [crate docs](crate) for an example.
///
/// [`ApiKeyContext`]: portcullis_core::context::ApiKeyContext
#[must_use]
pub struct QuotaLayer<St = InMemoryQuotaStore> {
    pub(crate) shared: Arc<Shared<St>>,
}

impl<St> Clone for QuotaLayer<St> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<St: fmt::Debug> fmt::Debug for QuotaLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuotaLayer")
            .field("shared", &self.shared)
            .finish()
    }
}

impl Default for QuotaLayer<InMemoryQuotaStore> {
    fn default() -> Self {
        Self::new()
    }
}

impl QuotaLayer<InMemoryQuotaStore> {
    /// A layer counting in a new [`InMemoryQuotaStore`], on the system clock, with
    /// weeks starting on Sunday.
    pub fn new() -> Self {
        Self::with_store(InMemoryQuotaStore::new())
    }

    /// A layer configured from `config`, counting in a new [`InMemoryQuotaStore`]
    /// with the configured retention.
    pub fn from_config(config: &QuotaConfig) -> Self {
        let mut layer = Self::with_store(InMemoryQuotaStore::with_retention_days(
            config.retention_days,
        ))
        .week_start(config.week_start.0)
        .on_store_error(config.on_store_error)
        .rate_limit_headers_on_success(config.rate_limit_headers_on_success);
        for (plan, start) in &config.plan_starts {
            layer = layer.plan_start(plan.clone(), *start);
        }
        layer
    }
}

impl<St: QuotaStore> QuotaLayer<St> {
    /// A layer counting in `store`.
    pub fn with_store(store: St) -> Self {
        Self::with_shared_store(Arc::new(store))
    }

    /// A layer counting in a store already shared with something else (such
    /// as another layer, or a usage API).
    pub fn with_shared_store(store: Arc<St>) -> Self {
        Self {
            shared: Arc::new(Shared {
                store,
                clock: Arc::new(SystemClock),
                calendar: Calendar::new(),
                plan_starts: BTreeMap::new(),
                on_store_error: OnStoreError::Allow,
                headers_on_success: false,
                headers: RateLimitHeaders::default(),
                counters: Arc::new(Counters::new()),
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Shared<St>)) -> Self {
        f(Arc::make_mut(&mut self.shared));
        self
    }

    /// Reads time from `clock` (a [`ManualClock`] in tests).
    ///
    /// [`ManualClock`]: portcullis_core::clock::ManualClock
    pub fn clock(self, clock: impl Clock) -> Self {
        let clock: SharedClock = Arc::new(clock);
        self.edit(|s| s.clock = clock)
    }

    /// Sets the first day of a `WEEK` period (Sunday by default).
    pub fn week_start(self, day: Weekday) -> Self {
        self.edit(|s| s.calendar = s.calendar.with_week_start(day))
    }

    /// Declares when a usage plan started: `offset` then applies in the
    /// period containing `start`, for every key of the plan.
    ///
    /// Without a start, a plan's initial period is, for each key, the period
    /// in which the store first counted (or updated) that key.
    pub fn plan_start(self, plan_id: impl Into<String>, start: OffsetDateTime) -> Self {
        let plan_id = plan_id.into();
        self.edit(|s| {
            s.plan_starts.insert(plan_id, start);
        })
    }

    /// Sets what happens when the store fails (serve anyway by default).
    pub fn on_store_error(self, on_error: OnStoreError) -> Self {
        self.edit(|s| s.on_store_error = on_error)
    }

    /// Which rate-limit headers to write (default
    /// [`RateLimitHeaders::Ietf`]: `RateLimit-Policy` and `RateLimit`, the
    /// policy named `"quota"`): the same option as the throttle's, so that a
    /// stack of both writes one convention. `Retry-After` is on every
    /// refusal whatever this says.
    pub fn rate_limit_headers(self, headers: RateLimitHeaders) -> Self {
        self.edit(|s| s.headers = headers)
    }

    /// Adds the rate-limit headers to admitted responses too, not only to
    /// refusals. Off by default, as in API Gateway.
    pub fn rate_limit_headers_on_success(self, enabled: bool) -> Self {
        self.edit(|s| s.headers_on_success = enabled)
    }

    /// The store the layer counts in.
    #[must_use]
    pub fn store(&self) -> &Arc<St> {
        &self.shared.store
    }

    /// The calendar of the layer's periods.
    #[must_use]
    pub fn calendar(&self) -> Calendar {
        self.shared.calendar
    }

    /// The usage API (GetUsage, UpdateUsage) over the same store, clock and
    /// calendar as this layer.
    #[must_use]
    pub fn usage_api(&self) -> UsageApi<St> {
        UsageApi::from_shared(Arc::clone(&self.shared))
    }
}

impl<S> Quota<S, InMemoryQuotaStore> {
    /// A [`QuotaLayer`] with the in-memory store: the same as
    /// [`QuotaLayer::new`].
    pub fn layer() -> QuotaLayer<InMemoryQuotaStore> {
        QuotaLayer::new()
    }
}

impl<S, St> Layer<S> for QuotaLayer<St> {
    type Service = Quota<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        Quota::from_shared(inner, Arc::clone(&self.shared))
    }
}

/// A weekday in configuration: `SUNDAY` ... `SATURDAY`, any case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigWeekday(pub Weekday);

impl Default for ConfigWeekday {
    fn default() -> Self {
        Self(Weekday::Sunday)
    }
}

impl Serialize for ConfigWeekday {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string().to_ascii_uppercase())
    }
}

impl<'de> Deserialize<'de> for ConfigWeekday {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        crate::calendar::parse_weekday(&name)
            .map(Self)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown weekday `{name}`, expected one of SUNDAY, MONDAY, ..., SATURDAY"
                ))
            })
    }
}

/// The layer's configuration, as data (for the facade's TOML file).
///
/// ```
/// use portcullis_quota::QuotaConfig;
///
/// let config: QuotaConfig = serde_json::from_str(r#"{
///     "week_start": "MONDAY",
///     "retention_days": 30,
///     "plan_starts": { "loyalty-basic": "2026-11-01T00:00:00Z" }
/// }"#).unwrap();
/// assert_eq!(config.retention_days, 30);
///
/// let err = serde_json::from_str::<QuotaConfig>(r#"{"week_start":"Someday"}"#).unwrap_err();
/// assert!(err.to_string().contains("Someday"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct QuotaConfig {
    /// The first day of a `WEEK` period. Default `SUNDAY`.
    pub week_start: ConfigWeekday,
    /// Days of usage records kept by the in-memory store. Default 90.
    pub retention_days: u32,
    /// What to do when the store fails. Default `allow`.
    pub on_store_error: OnStoreError,
    /// Whether admitted responses carry the rate-limit headers too.
    pub rate_limit_headers_on_success: bool,
    /// Plan starts (RFC 3339), by plan id: `offset` applies in the period
    /// containing the start.
    #[serde(with = "plan_starts_serde")]
    pub plan_starts: BTreeMap<String, OffsetDateTime>,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self {
            week_start: ConfigWeekday::default(),
            retention_days: DEFAULT_RETENTION_DAYS,
            on_store_error: OnStoreError::Allow,
            rate_limit_headers_on_success: false,
            plan_starts: BTreeMap::new(),
        }
    }
}

mod plan_starts_serde {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use time::OffsetDateTime;

    #[derive(Serialize, Deserialize)]
    #[serde(transparent)]
    struct Rfc3339(#[serde(with = "time::serde::rfc3339")] OffsetDateTime);

    pub(super) fn serialize<S: Serializer>(
        starts: &BTreeMap<String, OffsetDateTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        starts
            .iter()
            .map(|(k, v)| (k, Rfc3339(*v)))
            .collect::<BTreeMap<_, _>>()
            .serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, OffsetDateTime>, D::Error> {
        let raw = BTreeMap::<String, Rfc3339>::deserialize(d)?;
        Ok(raw.into_iter().map(|(k, v)| (k, v.0)).collect())
    }
}
