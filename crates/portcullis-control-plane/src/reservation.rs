//! Quota block reservation: the small abstraction that makes quota counting
//! crash-safe without a durable write per request.
//!
//! A counter is one key's quota in one usage plan, in the current period.
//! Its durable state is:
//!
//! - `budget`: what the period allows (the limit, less `offset` in the
//!   initial period, moved by UpdateUsage and by limit changes);
//! - `reserved`: the high-water mark of what has been handed out in blocks;
//! - `used`: what was admitted, as last reported (`used ≤ reserved`).
//!
//! A replica calls [`QuotaReservation::reserve`] for a block *before* it
//! admits any request counted against it; the store grants at most
//! `budget - reserved` and raises `reserved` durably before answering. The
//! replica spends the block in memory and reports what it spent (periodically,
//! on shutdown, and when it gives the rest of a block back) with
//! [`QuotaReservation::report`]. Because `reserved` never falls below what was
//! admitted, a replica that restarts after `kill -9` resumes from `reserved`:
//! the quota is never over-admitted, and a crash costs at most the unspent
//! part of each block in hand. When a store opens after a crash it counts
//! every reserved request as used (`used := reserved`), so nothing admitted
//! is missing from the usage records; they may over-count by that same
//! unspent part.
//!
//! # UpdateUsage and plan changes
//!
//! UpdateUsage's "set remaining to n" (and "reset", which sets it to the
//! period's allowance) makes the budget `used + n`: blocks outstanding at
//! that moment count against the `n`, and what they give back returns to
//! it. So after the update the period admits exactly `n` more than the
//! `used` the update answered, however many blocks were out, provided the
//! replicas holding them stop spending them when they hear of the change
//! ([`QuotaReservation::counter_changes`]; a replica that admits from its
//! block before it hears can exceed `n` by at most what it had not yet
//! reported of that block). "Extend by n" adds `n` to the budget. A raised
//! or lowered limit in the same period moves the budget by the difference
//! and leaves outstanding blocks valid; replicas see the new limit in the
//! requests' quota and give their blocks back at once.
//!
//! Each counter has a generation, raised when the period rolls over and by
//! "set remaining" and "reset", answered with each grant (for diagnostics).
//!
//! A Redis store implements the same calls with one script each (the quota
//! leases of `portcullis-redis`): `reserve` is `HINCRBY reserved` bounded by `budget`, `report` is
//! `HINCRBY used` and the give-back, and [`QuotaReservation::renew`] does
//! both in one round trip.

use std::future::Future;

use portcullis_core::plan::{QuotaPeriod, QuotaSettings};
use portcullis_quota::Window;
use portcullis_quota::store::{Decision, QuotaRequest};
use time::Date;
use tokio::sync::broadcast;

use crate::error::StoreError;

/// A change to quota counters made outside a replica's own blocks: the
/// replica gives back the blocks it holds for them, so the change takes
/// effect on it at once (see [`QuotaReservation::counter_changes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CounterChange {
    /// UpdateUsage changed one key's counter in one plan.
    Counter {
        /// The usage plan's id.
        plan_id: String,
        /// The API key's id.
        key_id: String,
    },
    /// Changes may have been missed (a lost subscription): every block is
    /// given back.
    All,
}

/// Which counter a reservation is for, and the period it is made in: the
/// owned form of the quota layer's [`QuotaRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterRef {
    /// The usage plan's id.
    pub plan_id: String,
    /// The API key's id.
    pub key_id: String,
    /// The plan's quota.
    pub quota: QuotaSettings,
    /// The current period.
    pub window: Window,
    /// The current UTC day.
    pub day: Date,
    /// The plan's configured initial period, if any (see
    /// [`QuotaRequest::initial_window`]).
    pub initial_window: Option<Window>,
}

impl CounterRef {
    /// The owned form of a quota layer request.
    #[must_use]
    pub fn from_request(request: &QuotaRequest<'_>) -> Self {
        Self {
            plan_id: request.plan_id.to_owned(),
            key_id: request.key_id.to_owned(),
            quota: request.quota,
            window: request.window,
            day: request.day,
            initial_window: request.initial_window,
        }
    }

    /// The borrowed form, for the quota crate's arithmetic.
    #[must_use]
    pub fn as_request(&self) -> QuotaRequest<'_> {
        QuotaRequest {
            plan_id: &self.plan_id,
            key_id: &self.key_id,
            quota: self.quota,
            window: self.window,
            day: self.day,
            initial_window: self.initial_window,
        }
    }

    pub(crate) fn period_kind(&self) -> u8 {
        period_kind(self.quota.period())
    }
}

pub(crate) fn period_kind(period: QuotaPeriod) -> u8 {
    match period {
        QuotaPeriod::Day => 0,
        QuotaPeriod::Week => 1,
        QuotaPeriod::Month => 2,
    }
}

/// What [`QuotaReservation::reserve`] granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Requests granted: at most what was asked, 0 when the period's quota
    /// is spent.
    pub granted: u64,
    /// The counter's generation the block belongs to.
    pub generation: u64,
    /// What is left to reserve in the period after this grant.
    pub remaining: u64,
    /// Requests reserved in blocks and not yet reported spent, after this
    /// grant and the report it carried: the blocks replicas hold. When a
    /// spent counter still has some, [`QuotaReservation::reclaim`] asks
    /// their holders to give back what they have not spent.
    pub outstanding: u64,
}

/// What a replica reports about a block it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    /// The generation of the block ([`Grant::generation`]).
    pub generation: u64,
    /// Requests admitted from the block since the last report.
    pub spent: u64,
    /// Unspent requests handed back (the block is then given up); 0 to keep
    /// the block.
    pub returned: u64,
}

/// Durable reservation of quota blocks (see the [module docs](self)).
///
/// Both calls are atomic per counter and durable when they return.
pub trait QuotaReservation: Send + Sync + 'static {
    /// Reserves up to `want` requests of the counter's current period,
    /// moving the counter to the request's period and day first (filing the
    /// previous day's usage record). `want` of 0 is a bad request.
    fn reserve(
        &self,
        counter: CounterRef,
        want: u64,
    ) -> impl Future<Output = Result<Grant, StoreError>> + Send;

    /// Counts requests admitted from a block, and gives back its unspent
    /// part. A report for a period the counter has left adds its `spent` to
    /// that day's usage record and returns nothing.
    fn report(
        &self,
        counter: CounterRef,
        report: Report,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Reports a block (when `report` is given) and reserves the next one
    /// for the same counter and period, atomically: what a replica does
    /// when its block is spent. The default makes the two calls; stores
    /// override it to make one (one durable write, one round trip).
    fn renew(
        &self,
        counter: CounterRef,
        report: Option<Report>,
        want: u64,
    ) -> impl Future<Output = Result<Grant, StoreError>> + Send {
        async move {
            if let Some(report) = report {
                self.report(counter.clone(), report).await?;
            }
            self.reserve(counter, want).await
        }
    }

    /// Counts one request on the counter itself, holding no block: what a
    /// store does when a block would save it nothing, because it writes
    /// nothing anywhere and no other process shares it (the in-memory
    /// [`LocalStore`](crate::LocalStore)). It answers at once, as a block
    /// of one reserved and reported spent in the same call would, and
    /// GetUsage is never stale.
    /// [`QuotaEngine`](crate::QuotaEngine) calls it on every request when
    /// [`EngineConfig::count_in_place`](crate::EngineConfig::count_in_place)
    /// is on. `None` (the default): the store cannot, and the engine
    /// reserves blocks.
    fn consume_in_place(&self, request: &QuotaRequest<'_>) -> Option<Result<Decision, StoreError>> {
        let _ = request;
        None
    }

    /// Asks every replica holding a block of the counter to report it and
    /// give back its unspent part: what a replica does when it finds the
    /// quota spent while blocks are out ([`Grant::outstanding`]), so the
    /// last requests of a quota are not stranded in a block on a replica
    /// whose traffic for the key has stopped. It announces a
    /// [`CounterChange::Counter`] to [`counter_changes`](Self::counter_changes);
    /// the default does nothing (a store no other process shares).
    fn reclaim(&self, counter: &CounterRef) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = counter;
        async { Ok(()) }
    }

    /// Changes to counters made by anyone sharing the store (UpdateUsage on
    /// any replica): a `QuotaEngine` that follows them gives back its
    /// blocks for the changed counters. A receiver that lags behind should
    /// treat it as [`CounterChange::All`]. The default never announces
    /// anything (a store no other process shares, changed only through its
    /// engine).
    fn counter_changes(&self) -> broadcast::Receiver<CounterChange> {
        broadcast::channel(1).1
    }
}
