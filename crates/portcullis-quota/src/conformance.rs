//! The conformance suite every [`QuotaStore`] must pass: the in-memory store
//! runs it in this crate's tests, and a backend such as Redis runs it against
//! a live server (it is plain library code, so a backend's tests call it).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use portcullis_quota::store::InMemoryQuotaStore;
//! portcullis_quota::conformance::check_store(|| async { InMemoryQuotaStore::new() }).await;
//! # }
//! ```
//!
//! Each check asks the factory for a fresh, empty store. The suite panics,
//! naming the check, at the first behaviour that differs.

use std::future::Future;

use portcullis_core::plan::{QuotaPeriod, QuotaSettings};
use time::Date;
use time::macros::date;

use crate::calendar::Calendar;
use crate::store::{DayUsage, Decision, QuotaRequest, QuotaStore, UsageUpdate};

fn request<'a>(key: &'a str, quota: QuotaSettings, day: Date) -> QuotaRequest<'a> {
    QuotaRequest {
        plan_id: "conformance",
        key_id: key,
        quota,
        window: Calendar::new().window_of_date(quota.period(), day),
        day,
        initial_window: None,
    }
}

fn quota(limit: u64, period: QuotaPeriod, offset: u64) -> QuotaSettings {
    match QuotaSettings::with_offset(limit, period, offset) {
        Ok(quota) => quota,
        Err(error) => panic!("conformance: invalid quota: {error}"),
    }
}

async fn consume<St: QuotaStore>(store: &St, request: &QuotaRequest<'_>) -> Decision {
    match store.consume(request).resolve().await {
        Ok(decision) => decision,
        Err(error) => panic!("conformance: consume failed: {error}"),
    }
}

async fn usage<St: QuotaStore>(store: &St, key: &str, from: Date, to: Date) -> Vec<DayUsage> {
    match store.usage("conformance", key, from, to).await {
        Ok(records) => records,
        Err(error) => panic!("conformance: usage failed: {error}"),
    }
}

async fn update<St: QuotaStore>(
    store: &St,
    request: &QuotaRequest<'_>,
    change: UsageUpdate,
) -> DayUsage {
    match store.update(request, change).await {
        Ok(today) => today,
        Err(error) => panic!("conformance: update failed: {error}"),
    }
}

/// Runs every check against stores made by `new_store`.
///
/// # Panics
///
/// At the first behaviour that differs from the contract of [`QuotaStore`].
pub async fn check_store<St, F, Fut>(new_store: F)
where
    St: QuotaStore,
    F: Fn() -> Fut,
    Fut: Future<Output = St>,
{
    let monday = date!(2026 - 11 - 23);
    let tuesday = date!(2026 - 11 - 24);
    let next_monday = date!(2026 - 11 - 30);

    // Admits up to the limit; a refusal changes nothing.
    let store = new_store().await;
    let daily = quota(3, QuotaPeriod::Day, 0);
    for remaining in [2, 1, 0] {
        let decision = consume(&store, &request("a", daily, monday)).await;
        assert_eq!(
            decision,
            Decision {
                admitted: true,
                remaining
            },
            "admits up to the limit"
        );
    }
    for _ in 0..3 {
        let decision = consume(&store, &request("a", daily, monday)).await;
        assert_eq!(
            decision,
            Decision {
                admitted: false,
                remaining: 0
            },
            "refuses past the limit"
        );
    }
    assert_eq!(
        usage(&store, "a", monday, monday).await,
        vec![DayUsage {
            day: monday,
            used: 3,
            remaining: 0
        }],
        "a refused request does not count"
    );
    // Keys are counted apart, and a new day is a new DAY period.
    assert!(
        consume(&store, &request("b", daily, monday)).await.admitted,
        "keys are apart"
    );
    assert_eq!(
        consume(&store, &request("a", daily, tuesday)).await,
        Decision {
            admitted: true,
            remaining: 2
        },
        "a new day resets a DAY quota"
    );
    assert_eq!(
        usage(&store, "a", monday, tuesday).await,
        vec![
            DayUsage {
                day: monday,
                used: 3,
                remaining: 0
            },
            DayUsage {
                day: tuesday,
                used: 1,
                remaining: 2
            },
        ],
        "one record per day"
    );
    let mut keys = match store.keys("conformance").await {
        Ok(keys) => keys,
        Err(error) => panic!("conformance: keys failed: {error}"),
    };
    keys.sort();
    assert_eq!(
        keys,
        vec!["a".to_owned(), "b".to_owned()],
        "keys lists counted keys"
    );

    // A week keeps counting across days; offset applies in the period the
    // key was first seen, and only there.
    let store = new_store().await;
    let weekly = quota(5, QuotaPeriod::Week, 2);
    for _ in 0..2 {
        assert!(
            consume(&store, &request("w", weekly, monday))
                .await
                .admitted
        );
    }
    assert_eq!(
        consume(&store, &request("w", weekly, tuesday)).await,
        Decision {
            admitted: true,
            remaining: 0
        },
        "offset is subtracted in the initial period, and a day change keeps the week"
    );
    assert!(
        !consume(&store, &request("w", weekly, tuesday))
            .await
            .admitted
    );
    assert_eq!(
        consume(&store, &request("w", weekly, next_monday)).await,
        Decision {
            admitted: true,
            remaining: 4
        },
        "the next week has the full limit"
    );

    // A configured initial period wins over first sight.
    let store = new_store().await;
    let mut late = request("p", weekly, next_monday);
    late.initial_window = Some(Calendar::new().window_of_date(QuotaPeriod::Week, monday));
    assert_eq!(
        consume(&store, &late).await,
        Decision {
            admitted: true,
            remaining: 4
        },
        "no offset outside the configured initial period"
    );

    // Updates: extend, set, reset; they answer today's usage.
    let store = new_store().await;
    let r = request("u", daily, monday);
    for _ in 0..3 {
        consume(&store, &r).await;
    }
    assert_eq!(
        update(&store, &r, UsageUpdate::Extend(2)).await,
        DayUsage {
            day: monday,
            used: 3,
            remaining: 2
        },
        "an extension adds to what remains"
    );
    assert!(consume(&store, &r).await.admitted, "an extension admits");
    assert_eq!(
        update(&store, &r, UsageUpdate::SetRemaining(0)).await,
        DayUsage {
            day: monday,
            used: 4,
            remaining: 0
        },
        "set remaining"
    );
    assert!(
        !consume(&store, &r).await.admitted,
        "zero remaining refuses"
    );
    assert_eq!(
        update(&store, &r, UsageUpdate::Reset).await,
        DayUsage {
            day: monday,
            used: 4,
            remaining: 3
        },
        "a reset restores the period's allowance"
    );
    assert_eq!(
        update(
            &store,
            &request("u", daily, tuesday),
            UsageUpdate::Extend(1)
        )
        .await,
        DayUsage {
            day: tuesday,
            used: 0,
            remaining: 4
        },
        "an update moves the key to the new period first"
    );
    assert_eq!(
        usage(&store, "u", monday, tuesday).await,
        vec![
            DayUsage {
                day: monday,
                used: 4,
                remaining: 3
            },
            DayUsage {
                day: tuesday,
                used: 0,
                remaining: 4
            },
        ],
        "updates show in the usage records"
    );
    assert_eq!(
        usage(&store, "never-seen", monday, tuesday).await,
        Vec::new(),
        "a key never seen has no records"
    );
}
