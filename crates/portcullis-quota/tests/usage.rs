//! GetUsage and UpdateUsage through the Rust API, with traffic sent through
//! the layer.

mod common;

use std::time::Duration;

use common::*;
use http::StatusCode;
use portcullis_core::clock::ManualClock;
use portcullis_core::plan::{QuotaPeriod, UsagePlan};
use portcullis_quota::store::InMemoryQuotaStore;
use portcullis_quota::usage::{DEFAULT_USAGE_PAGE_LIMIT, MAX_USAGE_PAGE_LIMIT, UsagePage};
use portcullis_quota::{QuotaLayer, UsageError, UsageUpdate};
use time::macros::{date, datetime};

async fn send_n(service: &TestService, key: &str, plan: &std::sync::Arc<UsagePlan>, n: u64) {
    for _ in 0..n {
        assert_eq!(status(service, key, plan).await, StatusCode::OK);
    }
}

#[tokio::test]
async fn get_usage_across_a_period_boundary() {
    // A weekly quota of 10 (weeks from Sunday). Saturday 2026-11-28 and
    // Sunday 2026-11-29 are in different periods.
    let plan = plan("weekly", 10, QuotaPeriod::Week, 0);
    let clock = ManualClock::at(datetime!(2026-11-27 09:00 UTC)); // Friday
    let layer = QuotaLayer::new().clock(clock.clone());
    let usage = layer.usage_api();
    let service = service(layer);

    send_n(&service, "a", &plan, 3).await; // Friday
    clock.advance(Duration::from_secs(86_400)); // Saturday
    send_n(&service, "a", &plan, 4).await;
    send_n(&service, "b", &plan, 1).await;
    clock.advance(Duration::from_secs(2 * 86_400)); // Monday, a new week
    send_n(&service, "a", &plan, 2).await;

    let report = usage
        .get_usage(&plan, None, date!(2026 - 11 - 26), date!(2026 - 12 - 01))
        .await
        .unwrap();
    assert_eq!(report.usage_plan_id, "weekly");
    assert_eq!(
        report.items["a"],
        vec![
            [0, 10], // Thursday: nothing used yet
            [3, 7],  // Friday
            [4, 3],  // Saturday
            [0, 10], // Sunday: a new week, untouched
            [2, 8],  // Monday (today)
            [0, 8],  // Tuesday (tomorrow): what remains of the week
        ]
    );
    assert_eq!(
        report.items["b"],
        vec![[0, 10], [0, 10], [1, 9], [0, 10], [0, 10], [0, 10]]
    );

    // One key, one day, and the JSON shape.
    let one = usage
        .get_usage(
            &plan,
            Some("a"),
            date!(2026 - 11 - 28),
            date!(2026 - 11 - 28),
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&one).unwrap(),
        serde_json::json!({
            "usagePlanId": "weekly",
            "startDate": "2026-11-28",
            "endDate": "2026-11-28",
            "items": { "a": [[4, 3]] }
        })
    );
}

#[tokio::test]
async fn update_usage_extends_then_refuses_again() {
    let plan = plan("daily", 5, QuotaPeriod::Day, 0);
    let clock = ManualClock::at(datetime!(2026-11-23 10:00 UTC));
    let layer = QuotaLayer::new().clock(clock.clone());
    let usage = layer.usage_api();
    let service = service(layer);

    assert_eq!(admitted_until_refused(&service, "k", &plan).await, 5);
    let extended = usage
        .update_usage(&plan, "k", UsageUpdate::Extend(3))
        .await
        .unwrap();
    assert_eq!(extended.items["k"], vec![[5, 3]]);
    assert_eq!(admitted_until_refused(&service, "k", &plan).await, 3);

    // The extension was temporary: tomorrow has the plain limit again.
    clock.advance(Duration::from_secs(86_400));
    assert_eq!(admitted_until_refused(&service, "k", &plan).await, 5);
    let report = usage
        .get_usage(
            &plan,
            Some("k"),
            date!(2026 - 11 - 23),
            date!(2026 - 11 - 24),
        )
        .await
        .unwrap();
    assert_eq!(report.items["k"], vec![[8, 0], [5, 0]]);
}

#[tokio::test]
async fn update_usage_sets_and_resets_what_remains() {
    let plan = plan("monthly", 100, QuotaPeriod::Month, 20);
    let clock = ManualClock::at(datetime!(2026-11-23 10:00 UTC));
    let layer = QuotaLayer::new().clock(clock.clone());
    let usage = layer.usage_api();
    let service = service(layer);

    send_n(&service, "k", &plan, 10).await; // 80 - 10 = 70 left (offset 20)
    let set = usage
        .update_usage(&plan, "k", UsageUpdate::SetRemaining(2))
        .await
        .unwrap();
    assert_eq!(set.items["k"], vec![[10, 2]]);
    assert_eq!(admitted_until_refused(&service, "k", &plan).await, 2);

    // A reset gives back the period's allowance: the limit less the offset
    // of this initial period.
    let reset = usage
        .update_usage(&plan, "k", UsageUpdate::Reset)
        .await
        .unwrap();
    assert_eq!(reset.items["k"], vec![[12, 80]]);
    // Setting zero refuses at once.
    usage
        .update_usage(&plan, "k", UsageUpdate::SetRemaining(0))
        .await
        .unwrap();
    assert_eq!(
        status(&service, "k", &plan).await,
        StatusCode::TOO_MANY_REQUESTS
    );

    // An update for a key never seen starts its initial period.
    let fresh = usage
        .update_usage(&plan, "new", UsageUpdate::Extend(1))
        .await
        .unwrap();
    assert_eq!(fresh.items["new"], vec![[0, 81]]);
}

#[tokio::test]
async fn get_usage_refuses_bad_ranges_and_plans_without_quota() {
    let usage = QuotaLayer::new().usage_api();
    let plan = plan("p", 1, QuotaPeriod::Day, 0);
    let reversed = usage
        .get_usage(&plan, None, date!(2026 - 11 - 23), date!(2026 - 11 - 22))
        .await
        .unwrap_err();
    assert!(
        matches!(reversed, UsageError::InvalidRange { .. }),
        "{reversed}"
    );
    let long = usage
        .get_usage(&plan, None, date!(2025 - 01 - 01), date!(2026 - 11 - 22))
        .await
        .unwrap_err();
    assert!(
        matches!(long, UsageError::RangeTooLong { days: 691 }),
        "{long}"
    );
    let no_quota = UsagePlan::new("none").unwrap();
    let error = usage
        .update_usage(&no_quota, "k", UsageUpdate::Reset)
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "usage plan `none` has no quota");
}

#[tokio::test]
async fn get_usage_pages_through_the_keys_in_order() {
    let plan = plan("p", 10, QuotaPeriod::Day, 0);
    let clock = ManualClock::at(datetime!(2026-11-23 09:00 UTC));
    let layer = QuotaLayer::new().clock(clock.clone());
    let usage = layer.usage_api();
    let service = service(layer);
    // Five keys counted, in an order unlike their ids' order; key "k3" has
    // used 3 requests.
    for (key, n) in [("k4", 1), ("k1", 1), ("k3", 3), ("k0", 1), ("k2", 1)] {
        send_n(&service, key, &plan, n).await;
    }
    let today = date!(2026 - 11 - 23);
    let mut page = UsagePage::new().limit(2);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let report = usage
            .get_usage_page(&plan, None, today, today, &page)
            .await
            .unwrap();
        pages += 1;
        assert!(report.items.len() <= 2, "{report:?}");
        seen.extend(report.items.clone());
        match report.position {
            Some(position) => page = UsagePage::new().limit(2).position(position),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let ids: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(ids, ["k0", "k1", "k2", "k3", "k4"]);
    assert_eq!(seen[3].1, vec![[3, 7]]);

    // Without a limit, a page is 25 keys; the unpaged call reports them all.
    let many: Vec<String> = (0..60).map(|i| format!("key-{i:02}")).collect();
    let first = usage
        .get_usage_page_of_keys(&plan, &many, today, today, &UsagePage::new())
        .await
        .unwrap();
    assert_eq!(first.items.len(), DEFAULT_USAGE_PAGE_LIMIT);
    assert_eq!(
        first.items.keys().last().map(String::as_str),
        Some("key-24")
    );
    let next = UsagePage::new().position(first.position.clone().unwrap());
    let second = usage
        .get_usage_page_of_keys(&plan, &many, today, today, &next)
        .await
        .unwrap();
    assert_eq!(
        second.items.keys().next().map(String::as_str),
        Some("key-25")
    );
    let all = usage
        .get_usage_of_keys(&plan, &many, today, today)
        .await
        .unwrap();
    assert_eq!((all.items.len(), &all.position), (60, &None));
    // The JSON carries the position only while more keys remain.
    let json = serde_json::to_value(&first).unwrap();
    assert_eq!(json["position"], serde_json::json!(first.position.unwrap()));
    assert!(
        serde_json::to_value(&all)
            .unwrap()
            .get("position")
            .is_none()
    );

    // One key by id: one page, no position.
    let one = usage
        .get_usage_page(&plan, Some("k3"), today, today, &UsagePage::new().limit(1))
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
    assert_eq!(one.position, None);
}

#[tokio::test]
async fn get_usage_refuses_bad_pages() {
    let usage = QuotaLayer::new().usage_api();
    let plan = plan("p", 1, QuotaPeriod::Day, 0);
    let today = date!(2026 - 11 - 23);
    let keys = ["a", "b"];
    for limit in [0, MAX_USAGE_PAGE_LIMIT + 1] {
        let error = usage
            .get_usage_page_of_keys(&plan, &keys, today, today, &UsagePage::new().limit(limit))
            .await
            .unwrap_err();
        assert!(
            matches!(error, UsageError::InvalidLimit(l) if l == limit),
            "{error}"
        );
    }
    let max = usage
        .get_usage_page_of_keys(
            &plan,
            &keys,
            today,
            today,
            &UsagePage::new().limit(MAX_USAGE_PAGE_LIMIT),
        )
        .await
        .unwrap();
    assert_eq!(max.items.len(), 2);
    for position in ["zz", "abc", "ff", &"61".repeat(1025)] {
        let error = usage
            .get_usage_page_of_keys(
                &plan,
                &keys,
                today,
                today,
                &UsagePage::new().position(position),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(error, UsageError::InvalidPosition),
            "{position}: {error}"
        );
    }
    // A position past every key: an empty last page.
    let past = usage
        .get_usage_page_of_keys(&plan, &keys, today, today, &UsagePage::new().position("7a"))
        .await
        .unwrap();
    assert!(past.items.is_empty());
    assert_eq!(past.position, None);
}

#[tokio::test]
async fn usage_records_older_than_the_retention_are_gone() {
    let plan = plan("p", 5, QuotaPeriod::Day, 0);
    let clock = ManualClock::at(datetime!(2026-11-01 10:00 UTC));
    let layer =
        QuotaLayer::with_store(InMemoryQuotaStore::with_retention_days(3)).clock(clock.clone());
    let usage = layer.usage_api();
    let service = service(layer);
    for _ in 0..6 {
        send_n(&service, "k", &plan, 1).await;
        clock.advance(Duration::from_secs(86_400));
    }
    // Records are dropped as the key moves to a new day (the request of
    // 11-06 dropped 11-01 and 11-02); a sweep drops the rest for keys gone
    // quiet. Today is 2026-11-07: records from 11-04 on are kept.
    usage.store().prune(usage.today());
    let report = usage
        .get_usage(
            &plan,
            Some("k"),
            date!(2026 - 11 - 01),
            date!(2026 - 11 - 06),
        )
        .await
        .unwrap();
    assert_eq!(
        report.items["k"],
        vec![[0, 5], [0, 5], [0, 5], [1, 4], [1, 4], [1, 4]]
    );
}
