//! Where quota counters and usage records live.
//!
//! [`QuotaStore`] is the async trait every backend implements: the in-memory
//! [`InMemoryQuotaStore`] here, and Redis in `portcullis-redis`. The layer and the
//! usage API do the calendar maths and hand the store a [`QuotaRequest`] that
//! names the period; the store keeps, per usage plan and API key:
//!
//! - the count of requests still allowed in the current period (`remaining`),
//!   taken from atomically so that never more than the allowance is admitted
//!   and a refused request does not count;
//! - the period in which it first saw the key (for `offset`, see
//!   [`QuotaRequest::is_initial`]);
//! - one [`DayUsage`] record per UTC day, `[used, remaining]`, kept for a
//!   retention that the backend configures (90 days by default).

mod memory;

use std::error::Error;
use std::future::Future;

use portcullis_core::plan::QuotaSettings;
pub use portcullis_core::store::Answer;
use time::Date;

use crate::calendar::Window;

pub use memory::{InMemoryQuotaStore, InMemoryQuotaStoreError};

/// The default retention of usage records, in days.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;

/// The largest `remaining` count a store must represent: 2^48 - 1. Larger
/// limits and extensions are clamped to it (it is 2.8 × 10^14 requests).
pub const MAX_REMAINING: u64 = (1 << 48) - 1;

/// One key's quota in one period: what the store needs to count a request or
/// to change the remaining count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaRequest<'a> {
    /// The usage plan's id.
    pub plan_id: &'a str,
    /// The API key's id (never its value).
    pub key_id: &'a str,
    /// The plan's quota.
    pub quota: QuotaSettings,
    /// The current period.
    pub window: Window,
    /// The current UTC day (inside `window`).
    pub day: Date,
    /// The initial period of the plan when it was configured (a plan start):
    /// `offset` applies in the period that starts at this window's start.
    /// `None`: the initial period is the one in which the store first saw
    /// the key.
    pub initial_window: Option<Window>,
}

impl QuotaRequest<'_> {
    /// Whether the current period is the key's initial period, given the
    /// start of the period in which the store first saw the key.
    #[must_use]
    pub fn is_initial(&self, first_seen_period_start: i64) -> bool {
        match self.initial_window {
            Some(initial) => initial.start() == self.window.start(),
            None => first_seen_period_start == self.window.start(),
        }
    }

    /// The requests allowed in the current period before any update: the
    /// limit, less `offset` in the initial period, clamped to
    /// [`MAX_REMAINING`].
    #[must_use]
    pub fn allowance(&self, initial: bool) -> u64 {
        let offset = if initial { self.quota.offset() } else { 0 };
        self.quota.limit().saturating_sub(offset).min(MAX_REMAINING)
    }
}

/// What the store decided for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request was admitted (and counted).
    pub admitted: bool,
    /// What remains in the period after this request.
    pub remaining: u64,
}

/// The usage of one key on one UTC day, as API Gateway's GetUsage reports
/// it: `[used, remaining]`, where `remaining` is what was left of the
/// period's quota at the end of the day (or now, for today).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DayUsage {
    /// The UTC day.
    pub day: Date,
    /// The requests admitted that day.
    pub used: u64,
    /// The requests left in the period at the end of that day.
    pub remaining: u64,
}

/// A change to the remaining quota of the current period (API Gateway's
/// UpdateUsage).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UsageUpdate {
    /// A temporary extension: adds this many requests to what remains of the
    /// current period. It ends with the period.
    Extend(u64),
    /// Sets what remains of the current period.
    SetRemaining(u64),
    /// Gives the current period its full allowance again (what remained
    /// when the period began, before any use or update).
    Reset,
}

/// The storage of quota counters and usage records.
///
/// Implementations must be exact under concurrency: for one plan and key,
/// [`consume`](Self::consume) admits a request only if `remaining > 0` and
/// decrements it in the same atomic step (a compare-and-swap in memory, a
/// script in Redis). A refused request changes nothing.
///
/// [`consume`](Self::consume) is the hot path and answers the workspace's
/// one store answer, [`Answer`]: a store that can decide synchronously (in
/// memory) answers [`Answer::Ready`], and the layer calls the inner service
/// without boxing or awaiting anything. A store that must do I/O answers
/// [`Answer::Pending`] with its [`Future`](Self::Future), a named associated
/// type so the layer's future stays nameable (a Redis store may box it).
///
/// The other operations are for the usage API and admin service and return
/// `impl Future + Send`: an implementation may write them as `async fn`.
pub trait QuotaStore: Send + Sync + 'static {
    /// The store's error.
    type Error: Error + Send + Sync + 'static;

    /// The future of a decision that could not be made synchronously.
    type Future: Future<Output = Result<Decision, Self::Error>> + Send + 'static;

    /// Counts one request: admits it and decrements the remaining count if
    /// anything remains, else refuses it and changes nothing.
    ///
    /// The first request of a new period (or day) moves the key to it: the
    /// previous day's `[used, remaining]` becomes a usage record, and a new
    /// period starts with [`QuotaRequest::allowance`].
    ///
    /// The store copies what it needs from `request` before returning: the
    /// future must not borrow it.
    fn consume(
        &self,
        request: &QuotaRequest<'_>,
    ) -> Answer<Result<Decision, Self::Error>, Self::Future>;

    /// Changes what remains of the key's current period, first moving the
    /// key to the request's period as [`consume`](Self::consume) would, and
    /// answers the key's usage today after the change.
    fn update(
        &self,
        request: &QuotaRequest<'_>,
        update: UsageUpdate,
    ) -> impl Future<Output = Result<DayUsage, Self::Error>> + Send;

    /// The key's usage records for the days from `from` to `to` (both
    /// included) that the store holds, in day order. Days without a record
    /// had no activity. The latest record may be today's, still counting.
    fn usage(
        &self,
        plan_id: &str,
        key_id: &str,
        from: Date,
        to: Date,
    ) -> impl Future<Output = Result<Vec<DayUsage>, Self::Error>> + Send;

    /// The ids of the keys of this plan the store has counted or updated.
    fn keys(&self, plan_id: &str) -> impl Future<Output = Result<Vec<String>, Self::Error>> + Send;
}
