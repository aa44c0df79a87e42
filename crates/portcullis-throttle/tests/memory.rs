//! A million tracked keys cost at most 36 bytes each in the store's tables.

#![allow(clippy::unwrap_used)] // Tests may unwrap (clippy.toml allows it in #[test] only).

use std::num::NonZeroU32;

use portcullis_throttle::{
    BucketCheck, BucketKey, CallerKey, CallerKeySource, Gcra, InMemoryThrottleStore, Level,
};

#[test]
fn a_million_keys_fit_in_36_bytes_each() {
    const KEYS: u64 = 1_000_000;
    let store = InMemoryThrottleStore::with_max_keys(4 * KEYS as usize);
    let gcra = Gcra::from_parts(1_000_000_000_000, NonZeroU32::new(10).unwrap());
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
        assert!(store.acquire_now(&[check], 1).unwrap().admitted);
    }
    assert_eq!(store.len() as u64, KEYS);
    let per_key = store.table_bytes() as f64 / KEYS as f64;
    assert!(per_key <= 36.0, "{per_key} bytes per key");
    // Once every bucket has refilled, a sweep drops them all and gives the
    // memory back.
    assert_eq!(store.sweep(u64::MAX) as u64, KEYS);
    assert!(store.table_bytes() < 64 * 1024, "{}", store.table_bytes());
}
