//! A tracked key's counters take a bounded number of bytes, and pruning
//! counters that carry nothing gives the memory back.

#![allow(clippy::unwrap_used)] // Tests may unwrap (clippy.toml allows it in #[test] only).

use portcullis_core::plan::{QuotaPeriod, QuotaSettings};
use portcullis_quota::Calendar;
use portcullis_quota::store::{InMemoryQuotaStore, QuotaRequest, QuotaStore};
use time::macros::date;

#[test]
fn two_hundred_thousand_keys_fit_in_68_bytes_each_and_prune_gives_them_back() {
    const KEYS: usize = 200_000;
    let store = InMemoryQuotaStore::with_retention_days(30);
    let quota = QuotaSettings::new(1_000, QuotaPeriod::Month).unwrap();
    let day = date!(2026 - 01 - 10);
    let window = Calendar::new().window_of_date(QuotaPeriod::Month, day);
    for i in 0..KEYS {
        // Key ids as API Gateway makes them: 10 characters.
        let key_id = format!("k{i:09}");
        let request = QuotaRequest {
            plan_id: "plan",
            key_id: &key_id,
            quota,
            window,
            day,
            initial_window: None,
        };
        let decision = store.consume(&request).ready().copied().unwrap().unwrap();
        assert_eq!(decision.remaining, 999);
    }
    assert_eq!(store.tracked_keys(), KEYS);
    let per_key = store.table_bytes() as f64 / KEYS as f64;
    println!("table bytes per key: {per_key:.1}");
    assert!(per_key <= 68.0, "{per_key} bytes per key");
    // Past the period and the retention, nothing is left to keep.
    store.prune(date!(2026 - 03 - 15));
    assert_eq!(store.tracked_keys(), 0);
    assert!(store.table_bytes() < 64 * 1024, "{}", store.table_bytes());
}
