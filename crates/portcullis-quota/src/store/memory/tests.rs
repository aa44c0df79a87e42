use portcullis_core::plan::{QuotaPeriod, QuotaSettings};
use time::Duration;

use super::*;
use crate::calendar::Calendar;
use time::macros::date;

/// The usage records of key `k` in plan `plan`.
fn records(store: &InMemoryQuotaStore, from: Date, to: Date) -> Vec<DayUsage> {
    let mut future = std::pin::pin!(store.usage("plan", "k", from, to));
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(Ok(records)) => records,
        std::task::Poll::Ready(Err(never)) => match never {},
        std::task::Poll::Pending => panic!("the in-memory store is ready at once"),
    }
}

fn block_on<T>(future: impl Future<Output = Result<T, Infallible>>) -> T {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(Ok(value)) => value,
        std::task::Poll::Ready(Err(never)) => match never {},
        std::task::Poll::Pending => panic!("the in-memory store is ready at once"),
    }
}

fn request<'a>(key: &'a str, quota: QuotaSettings, day: Date) -> QuotaRequest<'a> {
    QuotaRequest {
        plan_id: "plan",
        key_id: key,
        quota,
        window: Calendar::new().window_of_date(quota.period(), day),
        day,
        initial_window: None,
    }
}

#[test]
fn a_new_day_files_a_record_and_keeps_the_period() {
    let store = InMemoryQuotaStore::new();
    let quota = QuotaSettings::new(5, QuotaPeriod::Week).unwrap();
    let monday = date!(2026 - 11 - 23);
    let tuesday = date!(2026 - 11 - 24);
    for _ in 0..2 {
        assert!(store.consume_sync(&request("k", quota, monday)).admitted);
    }
    let d = store.consume_sync(&request("k", quota, tuesday));
    assert_eq!(
        d,
        Decision {
            admitted: true,
            remaining: 2
        }
    );
    let records = records(&store, monday, tuesday);
    assert_eq!(
        records,
        vec![
            DayUsage {
                day: monday,
                used: 2,
                remaining: 3
            },
            DayUsage {
                day: tuesday,
                used: 1,
                remaining: 2
            },
        ]
    );
}

#[test]
fn a_raised_limit_adds_to_what_remains() {
    let store = InMemoryQuotaStore::new();
    let day = date!(2026 - 11 - 23);
    let small = QuotaSettings::new(2, QuotaPeriod::Day).unwrap();
    let big = QuotaSettings::new(4, QuotaPeriod::Day).unwrap();
    assert!(store.consume_sync(&request("k", small, day)).admitted);
    assert!(store.consume_sync(&request("k", small, day)).admitted);
    assert!(!store.consume_sync(&request("k", small, day)).admitted);
    assert_eq!(
        store.consume_sync(&request("k", big, day)),
        Decision {
            admitted: true,
            remaining: 1
        }
    );
}

#[test]
fn records_past_the_retention_are_dropped() {
    let store = InMemoryQuotaStore::with_retention_days(2);
    let quota = QuotaSettings::new(5, QuotaPeriod::Day).unwrap();
    let first = date!(2026 - 11 - 01);
    for offset in 0..6 {
        let day = first + Duration::days(offset);
        store.consume_sync(&request("k", quota, day));
    }
    let days: Vec<Date> = records(&store, Date::MIN, Date::MAX)
        .into_iter()
        .map(|r| r.day)
        .collect();
    assert_eq!(
        days,
        vec![
            date!(2026 - 11 - 04),
            date!(2026 - 11 - 05),
            date!(2026 - 11 - 06)
        ]
    );
}

#[test]
fn ids_that_concatenate_alike_are_distinct_keys() {
    let store = InMemoryQuotaStore::new();
    let quota = QuotaSettings::new(1, QuotaPeriod::Day).unwrap();
    let day = date!(2026 - 11 - 23);
    let pairs = [("ab", "c"), ("a", "bc"), ("abc", ""), ("", "abc")];
    for (plan, key) in pairs {
        let mut r = request(key, quota, day);
        r.plan_id = plan;
        assert!(store.consume_sync(&r).admitted, "{plan:?}/{key:?}");
    }
    assert_eq!(store.tracked_keys(), pairs.len());
}

#[test]
fn ids_of_every_length_keep_their_own_counters_through_prune() {
    // Lengths up to 126 bytes ride in the signature word; a longer id
    // (of either kind) puts a word of lengths before the bytes. Around
    // the boundary, and with ids whose bytes run alike, each pair keeps
    // its own counter, is found again after a prune rebuilds the shard,
    // and is listed with its own id.
    let store = InMemoryQuotaStore::with_retention_days(0);
    let quota = QuotaSettings::new(3, QuotaPeriod::Month).unwrap();
    let day = date!(2026 - 03 - 10);
    let mut pairs: Vec<(String, String)> = Vec::new();
    for len in [0, 1, 125, 126, 127, 128, 300] {
        pairs.push(("plan".into(), "k".repeat(len)));
        pairs.push(("p".repeat(len), "key".into()));
    }
    pairs.push(("p".repeat(126), "k".repeat(127)));
    pairs.push(("p".repeat(127), "k".repeat(126)));
    pairs.sort();
    pairs.dedup();
    let consume = |store: &InMemoryQuotaStore, plan: &str, key: &str, day| {
        let mut r = request(key, quota, day);
        r.plan_id = plan;
        store.consume_sync(&r)
    };
    for (i, (plan, key)) in pairs.iter().enumerate() {
        // Pair i takes one request, or two when i is odd.
        for _ in 0..=(i % 2) {
            assert!(consume(&store, plan, key, day).admitted, "{i}");
        }
    }
    assert_eq!(store.tracked_keys(), pairs.len());
    // Pairs last used in February are dropped by a prune on March 31
    // (their period has ended, and with a retention of 0 days their last
    // day is past it); the others' period, March, is still running. The
    // dropped pairs land in every shard, so every shard is rebuilt.
    for i in 0..1_000 {
        let key = format!("{i:0>200}");
        assert!(consume(&store, "dropped", &key, date!(2026 - 02 - 10)).admitted);
    }
    store.prune(date!(2026 - 03 - 31));
    assert_eq!(store.tracked_keys(), pairs.len());
    for (i, (plan, key)) in pairs.iter().enumerate() {
        let d = consume(&store, plan, key, day);
        let expected = if i % 2 == 0 { 1 } else { 0 };
        assert_eq!(d.remaining, expected, "{i}: {} / {}", plan.len(), key.len());
    }
    let mut listed = block_on(store.keys("plan"));
    listed.sort_unstable();
    let mut expected: Vec<String> = pairs
        .iter()
        .filter(|(plan, _)| plan == "plan")
        .map(|(_, key)| key.clone())
        .collect();
    expected.sort_unstable();
    assert_eq!(listed, expected);
}

#[test]
fn prune_drops_only_counters_that_carry_nothing_and_keeps_finding_the_rest() {
    let store = InMemoryQuotaStore::with_retention_days(10);
    let quota = QuotaSettings::new(5, QuotaPeriod::Month).unwrap();
    let old_day = date!(2026 - 01 - 05);
    let today = date!(2026 - 03 - 20);
    let keys: Vec<String> = (0..500).map(|i| format!("key-{i}")).collect();
    // Even keys were last used in January, odd ones today (twice).
    for (i, key) in keys.iter().enumerate() {
        let day = if i % 2 == 0 { old_day } else { today };
        for _ in 0..=(i % 2) {
            assert!(store.consume_sync(&request(key, quota, day)).admitted);
        }
    }
    let bytes_before = store.table_bytes();
    store.prune(today);
    assert_eq!(store.tracked_keys(), 250);
    assert!(store.table_bytes() < bytes_before);
    for (i, key) in keys.iter().enumerate() {
        let d = store.consume_sync(&request(key, quota, today));
        // A dropped key starts afresh; a kept one goes on from 3 left.
        let expected = if i % 2 == 0 { 4 } else { 2 };
        assert_eq!(d.remaining, expected, "{key}");
    }
    // A counter in a running period is never dropped, however old its
    // last day.
    let store = InMemoryQuotaStore::with_retention_days(0);
    assert!(
        store
            .consume_sync(&request("k", quota, date!(2026 - 03 - 01)))
            .admitted
    );
    store.prune(date!(2026 - 03 - 31));
    assert_eq!(store.tracked_keys(), 1);
    store.prune(date!(2026 - 04 - 01));
    assert_eq!(store.tracked_keys(), 0);
}

#[test]
fn an_earlier_day_counts_in_the_current_one() {
    let store = InMemoryQuotaStore::new();
    let quota = QuotaSettings::new(3, QuotaPeriod::Day).unwrap();
    store.consume_sync(&request("k", quota, date!(2026 - 11 - 24)));
    let late = store.consume_sync(&request("k", quota, date!(2026 - 11 - 23)));
    assert_eq!(
        late,
        Decision {
            admitted: true,
            remaining: 1
        }
    );
}
