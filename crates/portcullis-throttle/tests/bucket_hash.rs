//! `BucketKey`'s `Hash` feeds distinct byte streams for distinct keys (the
//! in-memory store keeps only a keyed digest of that stream, so two keys
//! with one stream would share a bucket whatever the hash key). The common
//! form (a caller's bucket under its plan, one tagged write) and the general
//! form (shape word, strings, caller bytes) must never produce the same
//! stream.

#![allow(clippy::unwrap_used)] // Tests may unwrap (clippy.toml allows it in #[test] only).

use std::hash::{Hash, Hasher};

use portcullis_core::plan::MethodSelector;
use portcullis_throttle::{BucketKey, CallerKey, CallerKeySource, Level, StageId};
use proptest::prelude::*;

/// Records the bytes a `Hash` impl feeds, as one stream (SipHash digests the
/// concatenation, whatever the split into calls).
#[derive(Default)]
struct Stream(Vec<u8>);

impl Hasher for Stream {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

fn stream(key: &BucketKey<'_>) -> Vec<u8> {
    let mut s = Stream::default();
    key.hash(&mut s);
    s.0
}

const SELECTORS: [&str; 3] = ["/pets/GET", "/*/*", "//POST"];
const LEVELS: [Level; 3] = [Level::Key, Level::Stage, Level::Account];
const SOURCES: [CallerKeySource; 6] = [
    CallerKeySource::ApiKey,
    CallerKeySource::Principal,
    CallerKeySource::ClientIp,
    CallerKeySource::Header,
    CallerKeySource::Global,
    CallerKeySource::Custom,
];

/// A key's parts: level, stage (api id, stage), selector index, caller
/// (source index, bytes up to 70, across the 56-byte common-form limit).
type Parts = (
    usize,
    Option<(String, String)>,
    Option<usize>,
    Option<(usize, Vec<u8>)>,
);

fn parts() -> impl Strategy<Value = Parts> {
    (
        0..3usize,
        proptest::option::of(("[a-z0-9]{0,4}", "[a-z]{0,3}")),
        proptest::option::of(0..3usize),
        proptest::option::of((0..6usize, proptest::collection::vec(any::<u8>(), 0..70))),
    )
}

fn with_key<R>(
    parts: &Parts,
    selectors: &[MethodSelector],
    f: impl FnOnce(BucketKey<'_>) -> R,
) -> R {
    let (level, stage, method, caller) = parts;
    f(BucketKey {
        level: LEVELS[*level],
        stage: stage
            .as_ref()
            .map(|(api_id, stage)| StageId { api_id, stage }),
        method: method.map(|i| &selectors[i]),
        caller: caller.as_ref().map(|(source, value)| CallerKey {
            source: SOURCES[*source],
            value,
        }),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4_000))]

    #[test]
    fn distinct_keys_feed_distinct_streams(a in parts(), b in parts()) {
        let selectors: Vec<MethodSelector> = SELECTORS.iter().map(|s| s.parse().unwrap()).collect();
        let (key_a, stream_a) = with_key(&a, &selectors, |k| (format!("{k:?}"), stream(&k)));
        let (key_b, stream_b) = with_key(&b, &selectors, |k| (format!("{k:?}"), stream(&k)));
        prop_assert_eq!(key_a == key_b, stream_a == stream_b, "{} / {}", key_a, key_b);
    }

    /// The first byte tells the forms apart: at least `0x80` (a tag) in the
    /// common form, followed by exactly the caller's bytes; below `0x80` in
    /// the general form. So a stream of one form is never one of the other,
    /// even for caller bytes chosen to mimic the other form.
    #[test]
    fn the_first_byte_tells_the_forms_apart(p in parts()) {
        let selectors: Vec<MethodSelector> = SELECTORS.iter().map(|s| s.parse().unwrap()).collect();
        let bytes = with_key(&p, &selectors, |k| stream(&k));
        match &p {
            (_, None, None, Some((_, value))) if value.len() <= 56 => {
                prop_assert!(bytes[0] >= 0x80);
                prop_assert_eq!(&bytes[1..], value.as_slice());
            }
            _ => prop_assert!(bytes[0] < 0x80),
        }
    }

    /// The same caller bytes under every source and level of the common
    /// form, and the same bytes behind a general-form prefix: all distinct.
    #[test]
    fn the_common_form_never_meets_the_general_form(value in proptest::collection::vec(any::<u8>(), 0..57)) {
        let selectors: Vec<MethodSelector> = SELECTORS.iter().map(|s| s.parse().unwrap()).collect();
        let mut seen = std::collections::HashMap::new();
        for level in 0..3 {
            for source in 0..6 {
                for stage in [None, Some((String::new(), String::new()))] {
                    for method in [None, Some(0)] {
                        let parts: Parts = (level, stage.clone(), method, Some((source, value.clone())));
                        let (key, bytes) = with_key(&parts, &selectors, |k| (format!("{k:?}"), stream(&k)));
                        if let Some(other) = seen.insert(bytes, key.clone()) {
                            // One stream for two keys: they would share a bucket.
                            prop_assert!(false, "{} and {} feed one stream", key, other);
                        }
                    }
                }
            }
        }
    }
}
