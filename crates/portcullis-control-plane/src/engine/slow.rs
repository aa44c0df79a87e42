//! The engine's slow path: reporting, giving back and reserving blocks in
//! the store.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use portcullis_quota::store::Decision;

use crate::error::StoreError;
use crate::reservation::{CounterRef, Grant, QuotaReservation, Report};
use crate::store::ControlPlaneStore;

use super::config::EngineConfig;
use super::entry::{
    EngineInner, Entry, Lease, Period, REMAINING, Slow, SlowGuard, ms32, now_ms, pack, sig_of,
    tag_of,
};

/// Reports a block's spent requests since the last report.
pub(super) async fn report_spent<S: QuotaReservation>(
    store: &S,
    entry: &Entry,
    slow: &mut Slow,
) -> Result<(), StoreError> {
    let Some(lease) = slow.lease.as_mut() else {
        return Ok(());
    };
    let remaining = entry.word.load(Ordering::Acquire) & REMAINING;
    let spent = lease.granted.saturating_sub(remaining);
    let delta = spent.saturating_sub(lease.reported);
    if delta == 0 {
        return Ok(());
    }
    store
        .report(
            entry.counter(&lease.period),
            Report {
                generation: lease.generation,
                spent: delta,
                returned: 0,
            },
        )
        .await?;
    lease.reported = spent;
    Ok(())
}

/// Takes the block out of the fast path (clearing an exhausted mark too)
/// and builds its final report.
pub(super) fn close(entry: &Entry, slow: &mut Slow) -> Option<(Lease, Report)> {
    let remaining = entry.take_remaining();
    let lease = slow.lease.take()?;
    let spent = lease.granted.saturating_sub(remaining);
    let report = Report {
        generation: lease.generation,
        spent: spent.saturating_sub(lease.reported),
        returned: remaining,
    };
    Some((lease, report))
}

/// After a final report succeeded: learns the replica's rate from the block.
pub(super) fn closed(slow: &mut SlowGuard<'_>, lease: &Lease, report: &Report) {
    let spent = lease.granted.saturating_sub(report.returned);
    // `since` is still when the block was granted.
    let now = ms32(now_ms());
    let held_for = now.wrapping_sub(slow.since());
    slow.set_since(now);
    let seconds = (f64::from(held_for) / 1000.0).max(0.001);
    #[allow(clippy::cast_precision_loss)] // a rate needs no more than f64's 52 bits
    let sample = spent as f64 / seconds;
    // f32 keeps 24 bits: a block size from it is within 1 in 16 million.
    #[allow(clippy::cast_possible_truncation)]
    let sample = sample as f32;
    let rate = slow.rate();
    slow.set_rate(if rate > 0.0 {
        f32::midpoint(rate, sample)
    } else {
        sample
    });
}

/// After a final report failed: what the store may not have seen.
///
/// When the store says nothing was sent ([`StoreError::Unavailable`]) the
/// block goes back as it was and keeps serving. Otherwise the report may
/// or may not have been applied: the unspent part is forfeited (so it can
/// never be given back twice and over-admitted), and what was spent stays
/// to report later (at worst counted twice in the usage records, capped by
/// what was reserved).
pub(super) fn reopen(
    entry: &Entry,
    slow: &mut Slow,
    mut lease: Lease,
    report: &Report,
    error: &StoreError,
) {
    if matches!(error, StoreError::Unavailable(_)) {
        let tag = tag_of(lease.period.day);
        entry
            .word
            .store(pack(tag, false, report.returned), Ordering::Release);
    } else {
        lease.granted = lease.granted.saturating_sub(report.returned);
    }
    slow.lease = Some(lease);
}

/// Gives the block up: reports what it spent and returns the rest.
pub(super) async fn settle<S: QuotaReservation>(
    store: &S,
    entry: &Entry,
    slow: &mut SlowGuard<'_>,
) -> Result<(), StoreError> {
    let Some((lease, report)) = close(entry, slow) else {
        return Ok(());
    };
    match store.report(entry.counter(&lease.period), report).await {
        Ok(()) => {
            closed(slow, &lease, &report);
            Ok(())
        }
        Err(error) => {
            reopen(entry, slow, lease, &report, &error);
            Err(error)
        }
    }
}

/// The next block's size: the replica's rate for the key times
/// [`EngineConfig::block_duration`], within `initial_block..=max_block`, and
/// never more than a quarter of what the period has left (at least 1), so
/// blocks shrink to 1 as the quota nears 0 and the last requests are never
/// stranded on another replica.
pub(super) fn block_size(config: &EngineConfig, rate: f64, left: u64) -> u64 {
    let by_rate = if rate > 0.0 {
        // Saturating float-to-int: a huge rate is clamped below.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = (rate * config.block_duration.as_secs_f64()).ceil() as u64;
        n
    } else {
        config.initial_block
    };
    by_rate
        .clamp(config.initial_block, config.max_block)
        .min((left / 4).max(1))
}

/// The quota is spent but blocks of it are out on other replicas: asks
/// their holders to give back what they have not spent, and reserves again
/// (one request at a time) until something is granted, nothing is out any
/// more, or `wait` has passed; the request is repeated while waiting, in
/// case an announcement was lost. Answers the last grant; a store failure ends
/// the wait (the request is refused as the first grant said).
pub(super) async fn reclaim<S: ControlPlaneStore>(
    store: &S,
    wait: Duration,
    counter: &CounterRef,
    mut grant: Grant,
) -> Grant {
    if wait.is_zero() {
        return grant;
    }
    // An announcement can be lost (a holder's subscription being
    // re-established): it is repeated every `REANNOUNCE` while waiting.
    const REANNOUNCE: Duration = Duration::from_millis(50);
    let deadline = Instant::now() + wait;
    let mut announced: Option<Instant> = None;
    let mut pause = Duration::from_millis(2);
    while grant.granted == 0 && grant.outstanding > 0 {
        let now = Instant::now();
        if announced.is_none_or(|at| now.duration_since(at) >= REANNOUNCE) {
            if let Err(error) = store.reclaim(counter).await {
                tracing::debug!(%error, "quota engine: asking for unspent blocks back failed");
                break;
            }
            announced = Some(now);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 2).min(Duration::from_millis(25));
        match store.reserve(counter.clone(), 1).await {
            Ok(next) => grant = next,
            Err(error) => {
                tracing::debug!(%error, "quota engine: reserving after a reclaim failed");
                break;
            }
        }
    }
    grant
}

pub(super) async fn consume_slow<S: ControlPlaneStore>(
    inner: &EngineInner<S>,
    entry: &Entry,
    period: Period,
) -> Result<Decision, StoreError> {
    let (store, config) = (&inner.store, inner.config);
    let mut slow = entry.lock().await;
    let counter = entry.counter(&period);
    if let Some(decision) = entry.consume_fast(&counter.as_request()) {
        return Ok(decision);
    }
    // The spent (or stale) block is reported in the same call that reserves
    // the next when both are for the same counter and period.
    let mut previous = None;
    if let Some((lease, report)) = close(entry, &mut slow) {
        if *lease.period == period {
            previous = Some((lease, report));
        } else {
            match store.report(entry.counter(&lease.period), report).await {
                Ok(()) => closed(&mut slow, &lease, &report),
                Err(error) => {
                    reopen(entry, &mut slow, lease, &report, &error);
                    return Err(error);
                }
            }
        }
    }
    let left = if entry.sig.load(Ordering::Acquire) == sig_of(&counter.quota) {
        entry.pool.load(Ordering::Acquire)
    } else {
        counter.quota.limit()
    };
    let want = block_size(&config, f64::from(slow.rate()), left);
    let report = previous
        .as_ref()
        .map(|(_, report)| *report)
        .filter(|r| r.spent > 0 || r.returned > 0);
    let mut grant = match store.renew(counter.clone(), report, want).await {
        Ok(grant) => grant,
        Err(error) => {
            if let Some((lease, report)) = previous {
                reopen(entry, &mut slow, lease, &report, &error);
            }
            return Err(error);
        }
    };
    if let Some((lease, report)) = &previous {
        closed(&mut slow, lease, report);
    }
    if grant.granted == 0 && grant.outstanding > 0 {
        grant = reclaim(store, config.reclaim_wait, &counter, grant).await;
    }
    let tag = tag_of(counter.day);
    entry.pool.store(grant.remaining, Ordering::Release);
    entry.sig.store(sig_of(&counter.quota), Ordering::Release);
    if grant.granted == 0 {
        entry.mark_spent(config.exhausted_recheck);
        entry.word.store(pack(tag, true, 0), Ordering::Release);
        return Ok(Decision {
            admitted: false,
            remaining: 0,
        });
    }
    // The previous block's period when it is the same, else the one the
    // entries share.
    let period = match previous {
        Some((lease, _)) => lease.period,
        None => inner.shared().period(period),
    };
    entry
        .word
        .store(pack(tag, false, grant.granted - 1), Ordering::Release);
    slow.lease = Some(Lease {
        period,
        generation: grant.generation,
        granted: grant.granted,
        reported: 0,
    });
    slow.set_since(ms32(now_ms()));
    Ok(Decision {
        admitted: true,
        remaining: (grant.granted - 1).saturating_add(grant.remaining),
    })
}
