//! The in-memory store against a small reference model (proptest): random
//! sequences of requests, updates and days passing, for each period kind,
//! limit and offset. Every decision and every usage record must agree.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::task::{Context, Poll, Waker};

use portcullis_core::plan::{QuotaPeriod, QuotaSettings};
use portcullis_quota::Calendar;
use portcullis_quota::store::{
    DayUsage, InMemoryQuotaStore, QuotaRequest, QuotaStore, UsageUpdate,
};
use proptest::prelude::*;
use time::{Date, Duration, Weekday};

#[derive(Clone, Debug)]
enum Op {
    Request,
    Days(u8),
    Extend(u64),
    Set(u64),
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Request),
        2 => (1u8..12).prop_map(Op::Days),
        1 => (0u64..4).prop_map(Op::Extend),
        1 => (0u64..4).prop_map(Op::Set),
        1 => Just(Op::Reset),
    ]
}

fn period() -> impl Strategy<Value = QuotaPeriod> {
    prop_oneof![
        Just(QuotaPeriod::Day),
        Just(QuotaPeriod::Week),
        Just(QuotaPeriod::Month)
    ]
}

/// What the store should do, written as plainly as possible.
#[derive(Default)]
struct Model {
    first_period: Option<i64>,
    period: i64,
    allowance: u64,
    remaining: u64,
    days: BTreeMap<Date, (u64, u64)>,
}

impl Model {
    fn enter(&mut self, window_start: i64, quota: &QuotaSettings) {
        let first = *self.first_period.get_or_insert(window_start);
        if self.days.is_empty() || window_start != self.period {
            self.period = window_start;
            let offset = if window_start == first {
                quota.offset()
            } else {
                0
            };
            self.allowance = quota.limit() - offset;
            self.remaining = self.allowance;
        }
    }

    fn touch(&mut self, day: Date) -> &mut (u64, u64) {
        self.days.entry(day).or_insert((0, 0))
    }
}

fn ready_now<T>(future: impl Future<Output = Result<T, Infallible>>) -> T {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(Ok(value)) => value,
        Poll::Ready(Err(never)) => match never {},
        Poll::Pending => unreachable!("the memory store never waits"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_store_follows_the_model(
        period in period(),
        limit in 1u64..6,
        offset_share in 0u64..=100,
        week_start in 0u8..7,
        start_day in 0i64..800,
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let offset = limit * offset_share / 100;
        let quota = QuotaSettings::with_offset(limit, period, offset).unwrap();
        let calendar = Calendar::new().with_week_start(
            [Weekday::Sunday, Weekday::Monday, Weekday::Tuesday, Weekday::Wednesday,
             Weekday::Thursday, Weekday::Friday, Weekday::Saturday][usize::from(week_start)],
        );
        // Retention is tested on its own; here every record is kept.
        let store = InMemoryQuotaStore::with_retention_days(100_000);
        let mut model = Model::default();
        let mut day = time::macros::date!(2026 - 01 - 01) + Duration::days(start_day);
        let first_day = day;

        for op in ops {
            let window = calendar.window_of_date(period, day);
            let request = QuotaRequest {
                plan_id: "p", key_id: "k", quota, window, day, initial_window: None,
            };
            match op {
                Op::Days(n) => day += Duration::days(i64::from(n)),
                Op::Request => {
                    model.enter(window.start(), &quota);
                    let expected = model.remaining > 0;
                    if expected {
                        model.remaining -= 1;
                    }
                    let remaining = model.remaining;
                    let entry = model.touch(day);
                    entry.0 += u64::from(expected);
                    entry.1 = remaining;
                    let decision = store.consume(&request).ready().copied().unwrap().unwrap();
                    prop_assert_eq!(decision.admitted, expected, "on {}", day);
                    prop_assert_eq!(decision.remaining, remaining);
                }
                Op::Extend(_) | Op::Set(_) | Op::Reset => {
                    model.enter(window.start(), &quota);
                    let update = match op {
                        Op::Extend(n) => { model.remaining += n; UsageUpdate::Extend(n) }
                        Op::Set(n) => { model.remaining = n; UsageUpdate::SetRemaining(n) }
                        _ => { model.remaining = model.allowance; UsageUpdate::Reset }
                    };
                    let remaining = model.remaining;
                    let used_today = {
                        let entry = model.touch(day);
                        entry.1 = remaining;
                        entry.0
                    };
                    let today = ready_now(store.update(&request, update));
                    prop_assert_eq!(today, DayUsage { day, used: used_today, remaining });
                }
            }
        }

        let records = ready_now(store.usage("p", "k", first_day, day));
        let expected: Vec<DayUsage> = model
            .days
            .iter()
            .map(|(&day, &(used, remaining))| DayUsage { day, used, remaining })
            .collect();
        prop_assert_eq!(records, expected);
    }
}
