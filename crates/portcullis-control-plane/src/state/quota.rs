//! The operations on quota counters and usage records.

use std::ops::Bound;

use portcullis_quota::store::{Decision, MAX_REMAINING, QuotaRequest, UsageUpdate};
use time::Date;

use crate::error::StoreError;
use crate::model::UsageRecord;
use crate::packed::MAX_COUNTERS;
use crate::reservation::{CounterRef, Grant, Report, period_kind};

use super::{Change, Counter, DayRec, Op, Pair, State, date_of};

impl State {
    // ------------------------------------------------------------- counters

    /// The counter moved to the request's period and day, and the day
    /// records that move files.
    fn advance(&self, old: Option<&Counter>, counter: &CounterRef) -> (Counter, Vec<Change>) {
        let pair = (counter.plan_id.clone(), counter.key_id.clone());
        let request = counter.as_request();
        let kind = counter.period_kind();
        let limit = counter.quota.limit();
        let today = counter.day.to_julian_day();
        let start = counter.window.start();
        let mut changes = Vec::new();
        let Some(old) = old else {
            let allowance = request.allowance(request.is_initial(start));
            let c = Counter {
                period_start: start,
                first_period_start: start,
                limit,
                kind,
                day: today,
                budget: allowance,
                reserved: 0,
                used: 0,
                day_used_base: 0,
                allowance,
                generation: 0,
            };
            return (c, changes);
        };
        let mut c = old.clone();
        let new_period = c.kind != kind || start > c.period_start;
        let new_day = new_period || today > c.day;
        if new_day {
            let rec = c.today();
            changes.push(Change::PutDay(
                pair.clone(),
                c.day,
                DayRec {
                    used: rec.used,
                    remaining: rec.remaining,
                },
            ));
            if new_period {
                let allowance = request.allowance(request.is_initial(c.first_period_start));
                c.period_start = start;
                c.budget = allowance;
                c.allowance = allowance;
                c.reserved = 0;
                c.used = 0;
                c.generation += 1;
                c.kind = kind;
                c.limit = limit;
            }
            c.day = today;
            c.day_used_base = c.used;
            let oldest = today.saturating_sub(self.options.retention_days.min(100_000) as i32);
            for (d, _) in self.counters.days(
                &counter.plan_id,
                &counter.key_id,
                Bound::Unbounded,
                Bound::Excluded(oldest),
            ) {
                changes.push(Change::DelDay(pair.clone(), d));
            }
        }
        if c.limit != limit {
            let shift = |n: u64| {
                if limit >= c.limit {
                    n.saturating_add(limit - c.limit)
                } else {
                    n.saturating_sub(c.limit - limit)
                }
            };
            c.budget = shift(c.budget).min(MAX_REMAINING.saturating_add(c.reserved));
            c.allowance = shift(c.allowance).min(MAX_REMAINING);
            c.limit = limit;
        }
        (c, changes)
    }

    pub(crate) fn reserve(&self, counter: &CounterRef, want: u64) -> Op<Grant> {
        self.renew(counter, None, want)
    }

    /// Reports a block (if any) and reserves the next, in one change set.
    pub(crate) fn renew(
        &self,
        counter: &CounterRef,
        report: Option<Report>,
        want: u64,
    ) -> Op<Grant> {
        if want == 0 {
            return Err(StoreError::bad("a reservation asks for at least 1"));
        }
        let pair = (counter.plan_id.clone(), counter.key_id.clone());
        let stored = self.counters.get(&counter.plan_id, &counter.key_id);
        if stored.is_none() && !self.counters.has_room() {
            return Err(counters_full());
        }
        let mut changes = Vec::new();
        let mut base = stored.clone();
        if let Some(report) = report {
            base = self.report_on(base, &pair, counter, report, &mut changes);
        }
        let (mut c, advanced) = self.advance(base.as_ref(), counter);
        changes.extend(advanced);
        let granted = want.min(c.budget.saturating_sub(c.reserved));
        c.reserved += granted;
        let grant = Grant {
            granted,
            generation: c.generation,
            remaining: c.budget.saturating_sub(c.reserved),
            outstanding: c.reserved.saturating_sub(c.used),
        };
        if stored.as_ref() != Some(&c) {
            changes.push(Change::PutCounter(pair, c));
        }
        Ok((grant, changes))
    }

    /// Counts one request on the counter itself, as a block of one
    /// reserved and reported spent at once: for a store that writes its
    /// changes nowhere (the in-memory store), where a block would save
    /// nothing. A counter already in the request's period and day, under
    /// the request's limit, is updated in place (one lookup, no
    /// allocation); any other goes through [`renew`](Self::renew) and
    /// [`report`](Self::report) (a new pair, a new day or period, a changed
    /// limit), whose changes are applied here.
    pub(crate) fn consume_in_place(
        &mut self,
        request: &QuotaRequest<'_>,
    ) -> Result<Decision, StoreError> {
        if let Some((number, mut c)) = self.counters.get_numbered(request.plan_id, request.key_id)
            && c.period_start == request.window.start()
            && c.kind == period_kind(request.quota.period())
            && c.day == request.day.to_julian_day()
            && c.limit == request.quota.limit()
            // Blocks reserved through `renew` and not yet reported: counted
            // in place only once they are (never the case for a store
            // counted in place from the start).
            && c.reserved == c.used
        {
            let admitted = c.budget > c.reserved;
            if admitted {
                c.reserved += 1;
                c.used += 1;
                self.counters.set_counts(number, &c);
            }
            return Ok(Decision {
                admitted,
                remaining: c.budget.saturating_sub(c.reserved).min(MAX_REMAINING),
            });
        }
        let counter = CounterRef::from_request(request);
        let (grant, changes) = self.renew(&counter, None, 1)?;
        self.apply(changes);
        if grant.granted > 0 {
            let report = Report {
                generation: grant.generation,
                spent: grant.granted,
                returned: 0,
            };
            let ((), changes) = self.report(&counter, report)?;
            self.apply(changes);
        }
        Ok(Decision {
            admitted: grant.granted > 0,
            remaining: grant.remaining.min(MAX_REMAINING),
        })
    }

    pub(crate) fn report(&self, counter: &CounterRef, report: Report) -> Op<()> {
        let pair = (counter.plan_id.clone(), counter.key_id.clone());
        let stored = self.counters.get(&counter.plan_id, &counter.key_id);
        let mut changes = Vec::new();
        let after = self.report_on(stored.clone(), &pair, counter, report, &mut changes);
        if let Some(c) = after
            && stored.as_ref() != Some(&c)
        {
            changes.push(Change::PutCounter(pair, c));
        }
        Ok(((), changes))
    }

    /// Applies a report to the counter `old` (the stored one, or one a
    /// change set already moved), pushing the day records it writes, and
    /// answers the counter after it.
    fn report_on(
        &self,
        old: Option<Counter>,
        pair: &Pair,
        counter: &CounterRef,
        report: Report,
        changes: &mut Vec<Change>,
    ) -> Option<Counter> {
        // No counter: nothing was reserved (the counter was deleted with its
        // key or plan), nothing to count against.
        let mut c = old?;
        let day = counter.day.to_julian_day();
        let add_to_day = |spent: u64, changes: &mut Vec<Change>| {
            let mut rec = self.counters.day(&pair.0, &pair.1, day).unwrap_or(DayRec {
                used: 0,
                remaining: 0,
            });
            rec.used += spent;
            changes.push(Change::PutDay(pair.clone(), day, rec));
        };
        if c.period_start == counter.window.start() && c.kind == counter.period_kind() {
            let spent = report.spent.min(c.reserved.saturating_sub(c.used));
            c.used += spent;
            if day < c.day {
                // Spent on a day the counter has left: that day's record.
                c.day_used_base += spent;
                add_to_day(spent, changes);
            }
            // What comes back returns to the budget, whatever generation
            // the block had: an update counted outstanding blocks against
            // what it set (see the reservation module's docs).
            let returned = report.returned.min(c.reserved.saturating_sub(c.used));
            c.reserved -= returned;
        } else if report.spent > 0 {
            add_to_day(report.spent, changes);
        }
        Some(c)
    }

    pub(crate) fn update_usage(
        &self,
        counter: &CounterRef,
        update: UsageUpdate,
    ) -> Op<UsageRecord> {
        let pair = (counter.plan_id.clone(), counter.key_id.clone());
        let stored = self.counters.get(&counter.plan_id, &counter.key_id);
        if stored.is_none() && !self.counters.has_room() {
            return Err(counters_full());
        }
        let (mut c, mut changes) = self.advance(stored.as_ref(), counter);
        match update {
            UsageUpdate::Extend(more) => {
                c.budget = c
                    .budget
                    .saturating_add(more)
                    .min(c.used.saturating_add(MAX_REMAINING));
            }
            // Outstanding blocks count against what is set: the period
            // admits exactly `n` more than `used` (see the reservation
            // module's docs).
            UsageUpdate::SetRemaining(n) => {
                c.budget = c.used.saturating_add(n.min(MAX_REMAINING));
                c.generation += 1;
            }
            UsageUpdate::Reset => {
                c.budget = c.used.saturating_add(c.allowance);
                c.generation += 1;
            }
            _ => return Err(StoreError::bad("unsupported usage update")),
        }
        let today = c.today();
        changes.push(Change::PutCounter(pair, c));
        Ok((today, changes))
    }

    pub(crate) fn usage(
        &self,
        plan_id: &str,
        key_id: &str,
        from: Date,
        to: Date,
    ) -> Result<Vec<UsageRecord>, StoreError> {
        if from > to {
            return Err(StoreError::bad("the start date is after the end date"));
        }
        let (f, t) = (from.to_julian_day(), to.to_julian_day());
        let mut out: Vec<UsageRecord> = self
            .counters
            .days(plan_id, key_id, Bound::Included(f), Bound::Included(t))
            .map(|(d, rec)| UsageRecord {
                day: date_of(d),
                used: rec.used,
                remaining: rec.remaining,
            })
            .collect();
        if let Some(c) = self.counters.get(plan_id, key_id)
            && (f..=t).contains(&c.day)
        {
            out.retain(|r| r.day.to_julian_day() != c.day);
            out.push(c.today());
        }
        out.sort_by_key(|r| r.day);
        Ok(out)
    }

    pub(crate) fn usage_keys(&self, plan_id: &str) -> Vec<String> {
        self.counters.plan_key_ids(plan_id)
    }

    /// After a crash: counts every reserved request as used, so nothing
    /// admitted is missing from the usage records.
    pub(crate) fn recover(&self) -> Vec<Change> {
        self.counters
            .counters()
            .filter(|(_, _, c)| c.reserved > c.used)
            .map(|(plan, key, mut c)| {
                c.used = c.reserved;
                let key = String::from_utf8_lossy(key).into_owned();
                Change::PutCounter((plan.to_owned(), key), c)
            })
            .collect()
    }

    pub(crate) fn quota_counters(&self) -> usize {
        self.counters.len()
    }

    pub(crate) fn counter(&self, plan_id: &str, key_id: &str) -> Option<Counter> {
        self.counters.get(plan_id, key_id)
    }
}

fn counters_full() -> StoreError {
    StoreError::LimitExceeded(format!(
        "the store holds at most {MAX_COUNTERS} quota counters"
    ))
}
