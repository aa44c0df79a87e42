//! Bytes per tracked key in the in-memory store at 1,000,000 keys.
//!
//! `cargo bench -p portcullis-throttle --bench memory`
//!
//! Reports two figures: the hash tables' own size (capacity times entry and
//! control byte, from `InMemoryThrottleStore::table_bytes`) and the growth of the
//! process's resident memory (`/proc/self/statm`) while the keys were added,
//! which includes the allocator's overhead and the tables the store outgrew.

#![allow(clippy::unwrap_used)] // Tests may unwrap (clippy.toml allows it in #[test] only).
#![allow(missing_docs)]

use std::num::NonZeroU32;

use portcullis_throttle::{
    BucketCheck, BucketKey, CallerKey, CallerKeySource, Gcra, InMemoryThrottleStore, Level,
};

const KEYS: u64 = 1_000_000;

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that does not match this
    // bench's name skips it, as criterion benches do.
    if let Some(filter) = std::env::args().skip(1).find(|a| !a.starts_with('-'))
        && !"memory".contains(filter.as_str())
    {
        return;
    }
    let store = InMemoryThrottleStore::with_max_keys(4 * KEYS as usize);
    // One token per 1,000 s: no bucket is full again during the run, so
    // every key stays tracked.
    let gcra = Gcra::from_parts(1_000_000_000_000, NonZeroU32::new(10).unwrap());
    let now = 1_700_000_000_000_000_000u64;
    let before = resident_bytes();
    for i in 0..KEYS {
        let value = i.to_be_bytes();
        let check = BucketCheck {
            key: BucketKey {
                level: Level::Key,
                stage: None,
                method: None,
                caller: Some(CallerKey {
                    source: CallerKeySource::ApiKey,
                    value: &value,
                }),
            },
            gcra,
        };
        let outcome = store.acquire_now(&[check], now).expect("one check");
        assert!(outcome.admitted);
    }
    let after = resident_bytes();
    assert_eq!(store.len() as u64, KEYS);
    let table = store.table_bytes() as f64 / KEYS as f64;
    println!("keys tracked:                 {}", store.len());
    println!("table bytes per key:          {table:.1}");
    if let (Some(before), Some(after)) = (before, after) {
        let rss = after.saturating_sub(before) as f64 / KEYS as f64;
        println!("resident-memory growth per key: {rss:.1}");
    }
}
