//! `EngineConfig::count_in_place` (issue 21, memory per key): on the
//! in-memory store each request is counted on the store's counter, so the
//! engine holds no entry a key and usage is never stale; on the embedded
//! store the setting changes nothing (a block saves a durable write a
//! request there).

#![allow(clippy::unwrap_used)]

use portcullis_control_plane::reservation::{CounterRef, QuotaReservation};
use portcullis_control_plane::{
    ControlPlaneStore, EmbeddedStore, EngineConfig, MemoryStore, QuotaEngine,
};
use portcullis_core::plan::{QuotaPeriod, QuotaSettings};
use portcullis_quota::Calendar;
use portcullis_quota::store::{Decision, QuotaRequest, QuotaStore, UsageUpdate};
use proptest::prelude::*;
use time::Date;
use time::macros::date;

const MONDAY: Date = date!(2026 - 11 - 23);
const TUESDAY: Date = date!(2026 - 11 - 24);

fn request(key_id: &str, limit: u64, day: Date) -> QuotaRequest<'_> {
    QuotaRequest {
        plan_id: "gold",
        key_id,
        quota: QuotaSettings::new(limit, QuotaPeriod::Day).unwrap(),
        window: Calendar::new().window_of_date(QuotaPeriod::Day, day),
        day,
        initial_window: None,
    }
}

fn in_place<S: ControlPlaneStore + Clone>(store: &S) -> QuotaEngine<S> {
    QuotaEngine::with_config(
        store.clone(),
        EngineConfig {
            count_in_place: true,
            ..EngineConfig::default()
        },
    )
}

async fn consume<S: ControlPlaneStore + Clone>(
    engine: &QuotaEngine<S>,
    request: &QuotaRequest<'_>,
) -> Decision {
    engine.consume(request).resolve().await.unwrap()
}

#[tokio::test]
async fn in_memory_no_entry_is_held_and_usage_is_exact_at_once() {
    let store = MemoryStore::memory();
    let engine = in_place(&store);
    for i in 0..1000 {
        let key = format!("k{i}");
        let decision = consume(&engine, &request(&key, 100, MONDAY)).await;
        assert_eq!(
            decision,
            Decision {
                admitted: true,
                remaining: 99
            }
        );
    }
    assert_eq!(engine.tracked_keys(), 0, "no engine entry for any key");
    assert_eq!(
        store.counter_state("gold", "k7"),
        Some((100, 1, 1)),
        "one reserved, one used: no block is held"
    );
    for _ in 0..4 {
        consume(&engine, &request("k7", 100, MONDAY)).await;
    }
    // No flush: the store's record is the count.
    let usage = store.get_usage("gold", "k7", MONDAY, MONDAY).await.unwrap();
    assert_eq!((usage[0].used, usage[0].remaining), (5, 95));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_admit_exactly_the_quota() {
    let store = MemoryStore::memory();
    let engine = in_place(&store);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let engine = engine.clone();
        tasks.spawn(async move {
            let mut admitted = 0u64;
            for _ in 0..50 {
                let decision = engine
                    .consume(&request("hot", 1000, MONDAY))
                    .resolve()
                    .await
                    .unwrap();
                admitted += u64::from(decision.admitted);
            }
            admitted
        });
    }
    let mut admitted = 0;
    while let Some(done) = tasks.join_next().await {
        admitted += done.unwrap();
    }
    assert_eq!(admitted, 1000, "3,200 requests against a quota of 1,000");
    assert_eq!(store.counter_state("gold", "hot"), Some((1000, 1000, 1000)));
}

#[tokio::test]
async fn updates_limits_and_days_take_effect_on_the_next_request() {
    let store = MemoryStore::memory();
    let engine = in_place(&store);
    for _ in 0..3 {
        assert!(consume(&engine, &request("u", 5, MONDAY)).await.admitted);
    }
    let today = engine
        .update(&request("u", 5, MONDAY), UsageUpdate::SetRemaining(1))
        .await
        .unwrap();
    assert_eq!((today.used, today.remaining), (3, 1));
    assert_eq!(engine.tracked_keys(), 0, "an update makes no entry");
    assert!(consume(&engine, &request("u", 5, MONDAY)).await.admitted);
    assert!(!consume(&engine, &request("u", 5, MONDAY)).await.admitted);

    // A raised limit moves the budget by the difference.
    assert_eq!(
        consume(&engine, &request("u", 8, MONDAY)).await,
        Decision {
            admitted: true,
            remaining: 2
        }
    );
    // A new day is a new DAY period; the old day's record is filed.
    assert_eq!(
        consume(&engine, &request("u", 8, TUESDAY)).await,
        Decision {
            admitted: true,
            remaining: 7
        }
    );
    let usage = store.get_usage("gold", "u", MONDAY, TUESDAY).await.unwrap();
    let used: Vec<u64> = usage.iter().map(|r| r.used).collect();
    assert_eq!(used, [5, 1]);
}

#[tokio::test]
async fn a_block_reserved_before_counts_against_the_quota() {
    let store = MemoryStore::memory();
    // A block of 4 reserved through the store (by an engine counting in
    // blocks) and not yet reported: counting in place must not hand it out
    // again.
    let counter = CounterRef::from_request(&request("b", 10, MONDAY));
    let grant = store.reserve(counter, 4).await.unwrap();
    assert_eq!(grant.granted, 4);
    let engine = in_place(&store);
    let mut admitted = 0;
    for _ in 0..10 {
        admitted += u32::from(consume(&engine, &request("b", 10, MONDAY)).await.admitted);
    }
    assert_eq!(admitted, 6, "10 less the 4 still reserved");
}

#[tokio::test]
async fn the_embedded_store_keeps_its_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("portcullis.redb")).unwrap();
    let engine = in_place(&store);
    assert!(consume(&engine, &request("e", 100, MONDAY)).await.admitted);
    assert_eq!(engine.tracked_keys(), 1, "a block, held by an entry");
    let (_, reserved, used) = store.counter_state("gold", "e").unwrap();
    assert!(
        reserved > used,
        "a block of more than one request is reserved"
    );
}

/// One step of the model test.
#[derive(Clone, Debug)]
enum Step {
    Consume { key: usize },
    NextDay,
    Limit(u64),
    Update(UsageUpdate),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0..3usize).prop_map(|key| Step::Consume { key }),
        1 => Just(Step::NextDay),
        1 => (1..40u64).prop_map(Step::Limit),
        1 => prop_oneof![
            (0..20u64).prop_map(UsageUpdate::SetRemaining),
            (0..20u64).prop_map(UsageUpdate::Extend),
            Just(UsageUpdate::Reset),
        ]
        .prop_map(Step::Update),
    ]
}

/// Counting in place decides every request as the engine's blocks do on
/// one replica: the same admissions, the same remaining counts, and the
/// same usage records, through new days, limit changes and updates.
async fn same_as_blocks(steps: Vec<Step>) {
    let (blocks_store, in_place_store) = (MemoryStore::memory(), MemoryStore::memory());
    let blocks = QuotaEngine::with_config(
        blocks_store.clone(),
        EngineConfig {
            // One replica: nobody else to give a block back.
            reclaim_wait: std::time::Duration::ZERO,
            ..EngineConfig::default()
        },
    );
    let counted = in_place(&in_place_store);
    let keys = ["a", "b", "c"];
    let (mut day, mut limit) = (MONDAY, 10);
    for (i, step) in steps.into_iter().enumerate() {
        match step {
            Step::Consume { key } => {
                let request = request(keys[key], limit, day);
                let expected = consume(&blocks, &request).await;
                let got = consume(&counted, &request).await;
                assert_eq!(got, expected, "step {i}: {request:?}");
            }
            Step::NextDay => day = day.next_day().unwrap(),
            Step::Limit(new) => limit = new,
            Step::Update(update) => {
                let request = request(keys[0], limit, day);
                let expected = blocks.update(&request, update).await.unwrap();
                let got = counted.update(&request, update).await.unwrap();
                assert_eq!(got, expected, "step {i}: {update:?}");
            }
        }
    }
    blocks.shutdown().await.unwrap();
    for key in keys {
        let expected = blocks_store
            .get_usage("gold", key, MONDAY, day)
            .await
            .unwrap();
        let got = in_place_store
            .get_usage("gold", key, MONDAY, day)
            .await
            .unwrap();
        assert_eq!(got, expected, "usage of {key}");
    }
    assert_eq!(counted.tracked_keys(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn counting_in_place_decides_as_blocks_do(steps in proptest::collection::vec(step(), 1..80)) {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(same_as_blocks(steps));
    }
}
