//! GCRA admits exactly the sequences a token bucket admits.
//!
//! The reference is a literal token bucket: `burst` tokens, refilled
//! continuously at `rate` tokens per second, each request taking one. Both
//! sides use integer nanoseconds: the bucket's level is kept in
//! "token-nanoseconds" (one token is `t = emission_interval_nanos` of them),
//! so there is no floating-point drift to excuse a difference.

#![allow(clippy::unwrap_used)] // Tests may unwrap (clippy.toml allows it in #[test] only).

use std::num::NonZeroU32;

use portcullis_core::plan::ThrottleSettings;
use portcullis_throttle::{
    BucketCheck, BucketKey, CallerKey, CallerKeySource, Gcra, GcraDecision, InMemoryThrottleStore,
    Level,
};
use proptest::prelude::*;

/// The reference token bucket.
struct TokenBucket {
    /// Nanoseconds to refill one token.
    t: u64,
    /// Capacity in token-nanoseconds: burst * t.
    capacity: u64,
    /// Level in token-nanoseconds.
    level: u64,
    last: u64,
}

impl TokenBucket {
    fn new(settings: &ThrottleSettings, start: u64) -> Self {
        let t = settings.emission_interval_nanos();
        let capacity = t * u64::from(settings.burst_limit().get());
        Self {
            t,
            capacity,
            level: capacity,
            last: start,
        }
    }

    fn request(&mut self, now: u64) -> bool {
        self.level = (self.level + (now - self.last)).min(self.capacity);
        self.last = now;
        if self.level >= self.t {
            self.level -= self.t;
            true
        } else {
            false
        }
    }
}

fn settings() -> impl Strategy<Value = ThrottleSettings> {
    // Rates from one request per 100 s to a million per second, including
    // fractions, and bursts from 1 to 50.
    (
        prop_oneof![0.01f64..1.0, 1.0f64..100.0, 100.0f64..1e6],
        1u32..50,
    )
        .prop_map(|(rate, burst)| ThrottleSettings::new(rate, burst).unwrap())
}

/// Gaps between requests, in multiples of the emission interval scaled by a
/// random fraction, so that requests land just before, on and after refills.
fn gaps() -> impl Strategy<Value = Vec<(u8, u32)>> {
    prop::collection::vec((0u8..4, 0u32..1_000), 1..200)
}

fn gap_nanos(t: u64, (whole, thousandths): (u8, u32)) -> u64 {
    u64::from(whole) * t + t / 1000 * u64::from(thousandths)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn gcra_matches_the_token_bucket(settings in settings(), gaps in gaps()) {
        let start = 1_700_000_000_000_000_000u64;
        let gcra = Gcra::new(&settings);
        let mut bucket = TokenBucket::new(&settings, start);
        let mut tat = 0u64;
        let mut now = start;
        for gap in gaps {
            now += gap_nanos(bucket.t, gap);
            let expected = bucket.request(now);
            let decision = gcra.decide(tat, now);
            prop_assert_eq!(decision.is_admit(), expected, "at {} ns", now - start);
            match decision {
                GcraDecision::Admit { tat: next, remaining, .. } => {
                    tat = next;
                    prop_assert_eq!(u64::from(remaining), bucket.level / bucket.t);
                }
                GcraDecision::Refuse { retry_after_nanos, .. } => {
                    // The wait is exactly what the bucket needs for a token.
                    prop_assert_eq!(retry_after_nanos, bucket.t - bucket.level);
                }
            }
        }
    }

    #[test]
    fn the_in_memory_store_matches_the_token_bucket(settings in settings(), gaps in gaps()) {
        // A small store, so that sweeps run between requests.
        let store = InMemoryThrottleStore::with_max_keys(64);
        let start = 1_700_000_000_000_000_000u64;
        let gcra = Gcra::new(&settings);
        let mut bucket = TokenBucket::new(&settings, start);
        let mut now = start;
        for (i, gap) in gaps.into_iter().enumerate() {
            now += gap_nanos(bucket.t, gap);
            let expected = bucket.request(now);
            let check = BucketCheck {
                key: BucketKey {
                    level: Level::Key,
                    stage: None,
                    method: None,
                    caller: Some(CallerKey { source: CallerKeySource::Custom, value: b"k" }),
                },
                gcra,
            };
            // Other keys come and go, filling shards and forcing sweeps.
            let other = (i as u64).to_be_bytes();
            let noise = BucketCheck {
                key: BucketKey {
                    caller: Some(CallerKey { source: CallerKeySource::Custom, value: &other }),
                    ..check.key
                },
                gcra: Gcra::from_parts(1, NonZeroU32::MIN),
            };
            store.acquire_now(&[noise], now).unwrap();
            let outcome = store.acquire_now(&[check], now).unwrap();
            prop_assert_eq!(outcome.admitted, expected, "at {} ns", now - start);
        }
    }
}
