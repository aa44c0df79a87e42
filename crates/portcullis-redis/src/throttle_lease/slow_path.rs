//! The slow path: renewing and reporting leases in one script call.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use portcullis_throttle::store::{Outcome, ThrottleStoreError};

use crate::{ScriptClock, record_call};

use super::config::nanos;
use super::entry::{Entry, Slow};
use super::state::Inner;
use crate::scripts::lease_script;

/// Tries of the slow path before a request whose fresh tokens were all
/// taken by concurrent requests of the same replica is refused.
const ATTEMPTS: usize = 4;

/// One bucket of a request, owned, for the slow path.
pub(super) struct Wanted {
    pub(super) key: String,
    pub(super) index: usize,
    pub(super) t: u64,
    pub(super) cap: u64,
}

/// What the slow path sends for one lease.
#[derive(Clone, Copy, Default)]
pub(super) struct Op {
    pub(super) spent: u64,
    pub(super) returned: u64,
    pub(super) kept: u64,
    pub(super) want: u64,
}

/// What a lease call answered.
pub(super) struct Answer {
    pub(super) refused: Option<usize>,
    pub(super) retry: u64,
    pub(super) full: u64,
    /// Per bucket: (granted, lost, level).
    pub(super) buckets: Vec<(u64, bool, u64)>,
}

impl Inner {
    pub(super) fn op(
        &self,
        entry: &Entry,
        slow: &mut Slow,
        w: &Wanted,
        clock: u64,
        need: bool,
    ) -> Op {
        let stale = !entry.matches(w.t, w.cap) || clock >= entry.deadline.load(Ordering::Acquire);
        if stale {
            // Taken under other parameters, or past its local deadline:
            // given back whole, and a new one asked for.
            let left = entry.snapshot(true);
            entry.t.store(w.t, Ordering::Relaxed);
            entry.cap.store(w.cap, Ordering::Relaxed);
            return Op {
                spent: slow.held.saturating_sub(left),
                returned: left,
                kept: 0,
                want: self.want(slow, None),
            };
        }
        let left = entry.snapshot(false);
        let spent = slow.held.saturating_sub(left);
        if left == 0 || need {
            let elapsed = slow.granted_at.elapsed();
            Op {
                spent,
                returned: 0,
                kept: left,
                want: self.want(slow, Some((spent, elapsed))),
            }
        } else {
            Op {
                spent,
                returned: 0,
                kept: left,
                want: 0,
            }
        }
    }

    /// The next lease's size, learning the rate from the last one.
    pub(super) fn want(&self, slow: &mut Slow, sample: Option<(u64, Duration)>) -> u64 {
        if let Some((spent, elapsed)) = sample
            && slow.held > 0
        {
            #[allow(clippy::cast_precision_loss)] // a rate needs no more than f64's 52 bits
            let rate = spent as f64 / elapsed.as_secs_f64().max(0.000_1);
            slow.rate = if slow.rate > 0.0 {
                (slow.rate + rate) / 2.0
            } else {
                rate
            };
        }
        let config = &self.config;
        if slow.rate <= 0.0 {
            return config.initial_lease;
        }
        // Saturating float-to-int: a huge rate is clamped below.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = (slow.rate * config.lease_duration.as_secs_f64()).ceil() as u64;
        n.clamp(1, config.max_lease)
    }

    /// Forfeits a lease after a failed call: Redis may or may not have
    /// applied it, so its tokens are left to be counted spent at their
    /// deadline, and the lease gets a new id.
    pub(super) fn forfeit(&self, entry: &Entry, slow: &mut Slow) {
        entry.snapshot(true);
        entry.deadline.store(0, Ordering::Release);
        slow.held = 0;
        slow.lease_id = self.next_lease.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) async fn call(
        &self,
        keys: &[&str],
        params: &[(u64, u64)],
        fields: &[String],
        ops: &[Op],
        now: u64,
    ) -> Result<Answer, ThrottleStoreError> {
        let mut call = lease_script().call();
        for key in keys {
            call.key(*key);
        }
        match self.time {
            ScriptClock::Redis => call.arg("r").arg(0).arg(0),
            ScriptClock::Caller => call
                .arg("c")
                .arg(now / 1_000_000_000)
                .arg(now % 1_000_000_000),
        };
        call.arg(u64::try_from(self.config.lease_ttl.as_millis()).unwrap_or(u64::MAX));
        for (((t, cap), field), op) in params.iter().zip(fields).zip(ops) {
            call.arg(*t)
                .arg(*cap)
                .arg(field.as_str())
                .arg(op.spent)
                .arg(op.returned)
                .arg(op.kept)
                .arg(op.want);
        }
        let mut connection = self.connection.clone();
        let started = Instant::now();
        let reply: Result<Vec<i64>, _> = call.invoke(&mut connection).await;
        record_call("throttle_lease", started, reply.as_ref().err());
        let reply = reply.map_err(ThrottleStoreError::new)?;
        if reply.len() != 3 + 3 * keys.len() {
            return Err(ThrottleStoreError::msg(
                "the lease script answered an unexpected shape",
            ));
        }
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(Answer {
            refused: usize::try_from(reply[0])
                .ok()
                .and_then(|i| i.checked_sub(1)),
            retry: n(reply[1]),
            full: n(reply[2]),
            buckets: reply[3..]
                .chunks_exact(3)
                .map(|c| (n(c[0]), c[1] != 0, n(c[2])))
                .collect(),
        })
    }

    /// The slow path: renews the empty leases (reporting the others) in one
    /// call per slot group, then takes one token from each.
    pub(super) async fn acquire_slow(
        &self,
        wanted: Vec<Wanted>,
        now: u64,
    ) -> Result<Outcome, ThrottleStoreError> {
        // With a caller's clock, the latest time this replica has seen: the
        // tokens a report counts were spent at or before it.
        let now = match self.time {
            ScriptClock::Redis => now,
            ScriptClock::Caller => now.max(self.last_now.load(Ordering::Relaxed)),
        };
        let entries: Vec<Arc<Entry>> = wanted.iter().map(|w| self.entry(&w.key)).collect();
        // Locks in key order, once per distinct bucket.
        let mut order: Vec<usize> = (0..wanted.len()).collect();
        order.sort_by(|a, b| wanted[*a].key.cmp(&wanted[*b].key));
        order.dedup_by(|a, b| wanted[*a].key == wanted[*b].key);
        let mut guards = Vec::with_capacity(order.len());
        for &i in &order {
            guards.push((i, entries[i].slow.lock().await));
        }
        let cluster = self.connection.is_cluster();
        for _ in 0..ATTEMPTS {
            let clock = self.clock(now);
            if wanted
                .iter()
                .zip(&entries)
                .all(|(w, e)| e.matches(w.t, w.cap))
                && self.take_all(&entries, clock)
            {
                return Ok(self.outcome_admitted(&wanted, &entries));
            }
            // Cluster: the caller's buckets, then the shared ones.
            let groups: Vec<Vec<usize>> = if cluster {
                let (own, shared): (Vec<usize>, Vec<usize>) = guards
                    .iter()
                    .map(|(i, _)| *i)
                    .partition(|i| !wanted[*i].key.contains(":shared}:"));
                [own, shared]
                    .into_iter()
                    .filter(|g| !g.is_empty())
                    .collect()
            } else {
                vec![guards.iter().map(|(i, _)| *i).collect()]
            };
            for group in groups {
                let sent_at = self.clock(now);
                let mut ops = Vec::with_capacity(group.len());
                let mut fields = Vec::with_capacity(group.len());
                for &i in &group {
                    let slow = guards
                        .iter_mut()
                        .find(|(j, _)| *j == i)
                        .map(|(_, g)| &mut **g)
                        .ok_or_else(|| ThrottleStoreError::msg("a bucket's lock went missing"))?;
                    let empty = entries[i].tokens() == 0;
                    ops.push(self.op(&entries[i], slow, &wanted[i], sent_at, empty));
                    fields.push(self.field(slow.lease_id));
                }
                let keys: Vec<&str> = group.iter().map(|&i| wanted[i].key.as_str()).collect();
                let params: Vec<(u64, u64)> = group
                    .iter()
                    .map(|&i| (wanted[i].t, wanted[i].cap))
                    .collect();
                let answer = self.call(&keys, &params, &fields, &ops, now).await;
                let deadline = sent_at.saturating_add(
                    nanos(self.config.lease_ttl) - nanos(self.config.lease_ttl) / 8,
                );
                let answer = match answer {
                    Ok(answer) => answer,
                    Err(error) => {
                        for &i in &group {
                            if let Some((_, slow)) = guards.iter_mut().find(|(j, _)| *j == i) {
                                self.forfeit(&entries[i], slow);
                            }
                        }
                        return Err(error);
                    }
                };
                for (k, &i) in group.iter().enumerate() {
                    let Some((_, slow)) = guards.iter_mut().find(|(j, _)| *j == i) else {
                        continue;
                    };
                    let (granted, lost, level) = answer.buckets[k];
                    let entry = &entries[i];
                    let op = ops[k];
                    if lost {
                        entry.snapshot(true);
                        slow.held = granted;
                    } else {
                        slow.held = op.kept + granted;
                    }
                    entry.level.store(level, Ordering::Relaxed);
                    if slow.held > 0 {
                        entry.deadline.store(deadline, Ordering::Release);
                    }
                    if op.want > 0 && granted > 0 {
                        slow.granted_at = Instant::now();
                    }
                    entry.add(granted);
                }
                if let Some(k) = answer.refused {
                    let i = group[k];
                    let cache = nanos(self.config.refusal_cache).min(answer.retry);
                    entries[i]
                        .retry_at
                        .store(sent_at.saturating_add(answer.retry), Ordering::Relaxed);
                    entries[i]
                        .refused_until
                        .store(sent_at.saturating_add(cache), Ordering::Relaxed);
                    return Ok(Outcome {
                        admitted: false,
                        bucket: wanted[i].index,
                        remaining: 0,
                        retry_after_nanos: answer.retry,
                        full_after_nanos: answer.full,
                    });
                }
            }
        }
        // Every try's tokens were taken by this replica's other requests
        // (which were admitted with them): refused, to try again at once.
        Ok(Outcome {
            admitted: false,
            bucket: wanted.first().map_or(0, |w| w.index),
            remaining: 0,
            retry_after_nanos: 0,
            full_after_nanos: 0,
        })
    }

    pub(super) fn outcome_admitted(&self, wanted: &[Wanted], entries: &[Arc<Entry>]) -> Outcome {
        let mut best = (0usize, u64::MAX, 1u64, 0u64);
        for (w, entry) in wanted.iter().zip(entries) {
            let left = entry
                .tokens()
                .saturating_add(entry.level.load(Ordering::Relaxed));
            if left < best.1 {
                best = (w.index, left, w.t, w.cap);
            }
        }
        let remaining = u32::try_from(best.1).unwrap_or(u32::MAX);
        Outcome {
            admitted: true,
            bucket: best.0,
            remaining,
            retry_after_nanos: 0,
            full_after_nanos: best
                .3
                .saturating_sub(best.2.saturating_mul(u64::from(remaining))),
        }
    }
}
