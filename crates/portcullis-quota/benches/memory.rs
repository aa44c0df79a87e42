//! Memory per tracked key in the in-memory store, measured as the growth of
//! the process's resident set (Linux `/proc/self/statm`) while 200,000 keys
//! are added, then while each key gathers 90 days of usage records.
//!
//! Run: `cargo bench -p portcullis-quota --bench memory`

use std::hint::black_box;

use portcullis_core::plan::{QuotaPeriod, QuotaSettings};
use portcullis_quota::Calendar;
use portcullis_quota::store::{InMemoryQuotaStore, QuotaRequest, QuotaStore};
use time::{Date, Duration};

const KEYS: usize = 200_000;

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn count(store: &InMemoryQuotaStore, keys: &[String], day: Date) {
    let quota = QuotaSettings::new(1_000_000, QuotaPeriod::Month).expect("valid quota");
    let window = Calendar::new().window_of_date(QuotaPeriod::Month, day);
    for key in keys {
        let request = QuotaRequest {
            plan_id: "plan",
            key_id: key,
            quota,
            window,
            day,
            initial_window: None,
        };
        drop(black_box(store.consume(&request)));
    }
}

fn main() {
    // `cargo test --benches` runs bench targets with `--test`-like flags; a
    // quick pass keeps that cheap.
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    let keys_n = if quick { 1_000 } else { KEYS };
    // Key ids as API Gateway makes them: 10 characters.
    let keys: Vec<String> = (0..keys_n).map(|i| format!("k{i:09}")).collect();
    let store = InMemoryQuotaStore::new();
    let first = time::macros::date!(2026 - 01 - 01);

    let Some(before) = resident_bytes() else {
        println!("memory: /proc/self/statm is not available; skipped");
        return;
    };
    count(&store, &keys, first);
    let after_keys = resident_bytes().unwrap_or(before);
    for day in 1..=90 {
        count(&store, &keys, first + Duration::days(day));
    }
    let after_history = resident_bytes().unwrap_or(after_keys);

    let per_key = (after_keys.saturating_sub(before)) as f64 / keys_n as f64;
    let per_key_history = (after_history.saturating_sub(before)) as f64 / keys_n as f64;
    println!("memory/tracked keys: {}", store.tracked_keys());
    println!("memory/per key, fresh (10-byte key id): {per_key:.0} bytes");
    println!("memory/per key, with 90 days of usage records: {per_key_history:.0} bytes");
}
