//! `QuotaEngine` forgets keys that hold nothing (issue 21, memory per key):
//! a key keeps an entry only while it holds a block. The flusher settles
//! blocks that are spent or older than `block_ttl` and drops their entries
//! in the same pass, and counting goes on exactly when such a key comes
//! back.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use portcullis_control_plane::{EngineConfig, MemoryStore, QuotaEngine};
use portcullis_core::plan::{QuotaPeriod, QuotaSettings};
use portcullis_quota::Calendar;
use portcullis_quota::store::{QuotaRequest, QuotaStore};
use time::Date;
use time::macros::date;

const DAY: Date = date!(2026 - 11 - 23);
const TTL: Duration = Duration::from_millis(200);

fn request(key_id: &str, limit: u64) -> QuotaRequest<'_> {
    QuotaRequest {
        plan_id: "gold",
        key_id,
        quota: QuotaSettings::new(limit, QuotaPeriod::Day).unwrap(),
        window: Calendar::new().window_of_date(QuotaPeriod::Day, DAY),
        day: DAY,
        initial_window: None,
    }
}

async fn admit(engine: &QuotaEngine<MemoryStore>, request: &QuotaRequest<'_>) -> bool {
    engine.consume(request).resolve().await.unwrap().admitted
}

fn engine(store: &MemoryStore, exhausted_recheck: Duration) -> QuotaEngine<MemoryStore> {
    QuotaEngine::with_config(
        store.clone(),
        EngineConfig {
            initial_block: 8,
            block_ttl: TTL,
            exhausted_recheck,
            reclaim_wait: Duration::ZERO,
            ..EngineConfig::default()
        },
    )
}

#[tokio::test]
async fn idle_keys_are_forgotten_and_count_on_when_they_come_back() {
    let store = MemoryStore::memory();
    let engine = engine(&store, Duration::from_millis(100));
    // Keys longer than an entry keeps inline take the heap path.
    let ids: Vec<String> = (0..100)
        .map(|i| {
            if i % 2 == 0 {
                format!("k{i}")
            } else {
                format!("a-key-id-longer-than-twenty-two-bytes-{i}")
            }
        })
        .collect();
    for id in &ids {
        for _ in 0..3 {
            assert!(admit(&engine, &request(id, 1000)).await);
        }
    }
    assert_eq!(engine.tracked_keys(), 100);

    // Blocks not yet expired are kept, and so are their entries.
    engine.flush().await.unwrap();
    assert_eq!(engine.tracked_keys(), 100, "blocks in hand are kept");
    assert_eq!(store.counter_state("gold", "k0"), Some((1000, 8, 3)));

    // Expired: given back, and the entries dropped in the same flush.
    tokio::time::sleep(TTL + Duration::from_millis(10)).await;
    engine.flush().await.unwrap();
    assert_eq!(store.counter_state("gold", "k0"), Some((1000, 3, 3)));
    assert_eq!(engine.tracked_keys(), 0, "an entry goes with its block");

    // A key that comes back counts on from the store, exactly.
    let long = ids[1].as_str();
    let mut admitted = 3;
    while admit(&engine, &request(long, 10)).await {
        admitted += 1;
    }
    assert_eq!(admitted, 10, "exactly the limit, across the eviction");
    assert_eq!(engine.tracked_keys(), 1);
    engine.shutdown().await.unwrap();
    assert_eq!(store.counter_state("gold", long), Some((10, 10, 10)));
}

#[tokio::test]
async fn a_key_marked_spent_is_kept_while_the_mark_is_trusted() {
    let store = MemoryStore::memory();
    let engine = engine(&store, Duration::from_secs(60));
    let spent = request("spent", 2);
    assert!(admit(&engine, &spent).await);
    assert!(admit(&engine, &spent).await);
    assert!(!admit(&engine, &spent).await);
    // Refused on the fast path: the mark is fresh.
    assert!(
        !engine
            .consume(&spent)
            .ready()
            .expect("answered on the fast path")
            .as_ref()
            .unwrap()
            .admitted
    );
    for _ in 0..3 {
        tokio::time::sleep(TTL + Duration::from_millis(10)).await;
        engine.flush().await.unwrap();
    }
    assert_eq!(engine.tracked_keys(), 1, "the spent mark keeps its entry");
    assert!(
        !engine
            .consume(&spent)
            .ready()
            .expect("answered on the fast path")
            .as_ref()
            .unwrap()
            .admitted,
        "and is still answered without the store"
    );
}

#[tokio::test]
async fn a_spent_block_is_settled_and_its_entry_dropped_before_its_ttl() {
    let store = MemoryStore::memory();
    // A TTL the test never reaches: only spending ends these blocks.
    let engine = QuotaEngine::with_config(
        store.clone(),
        EngineConfig {
            initial_block: 4,
            block_ttl: Duration::from_secs(3600),
            reclaim_wait: Duration::ZERO,
            ..EngineConfig::default()
        },
    );
    for _ in 0..4 {
        assert!(admit(&engine, &request("spent-block", 1000)).await);
    }
    assert!(admit(&engine, &request("half-block", 1000)).await);
    assert_eq!(engine.tracked_keys(), 2);
    engine.flush().await.unwrap();
    assert_eq!(
        engine.tracked_keys(),
        1,
        "the spent block's entry is dropped"
    );
    assert_eq!(
        store.counter_state("gold", "spent-block"),
        Some((1000, 4, 4)),
        "its spending reported, nothing left reserved"
    );
    assert_eq!(
        store.counter_state("gold", "half-block"),
        Some((1000, 4, 1)),
        "a block with requests left is kept, its spending reported"
    );
    // Counting goes on from the store, exactly.
    let mut admitted = 4;
    while admit(&engine, &request("spent-block", 10)).await {
        admitted += 1;
    }
    assert_eq!(admitted, 10);
}

/// The flusher's task looks for expired blocks every quarter of a
/// `block_ttl`, not only every flush period: an entry goes soon after its
/// block expires, and the reports of blocks still held wait for the period.
#[tokio::test]
async fn the_flusher_drops_an_expired_block_between_its_reports() {
    let store = MemoryStore::memory();
    let engine = engine(&store, Duration::from_millis(100));
    // A period the test never reaches: only the sweeps run.
    let _task = engine.spawn_flusher(Duration::from_secs(3600));
    let started = std::time::Instant::now();
    for _ in 0..3 {
        assert!(admit(&engine, &request("expires", 1000)).await);
    }
    tokio::time::sleep(TTL / 2).await;
    assert!(admit(&engine, &request("held", 1000)).await);
    assert_eq!(engine.tracked_keys(), 2);
    assert_eq!(
        store.counter_state("gold", "expires"),
        Some((1000, 8, 0)),
        "a block still held is not reported before the period"
    );
    // Generous for a loaded machine; the old flusher (a pass a period)
    // would take an hour.
    let deadline = started + Duration::from_secs(5);
    while store.counter_state("gold", "expires") != Some((1000, 3, 3)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired block was not given back by a sweep"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(started.elapsed() >= TTL, "not before it expired");
    // The sweep that settled it drops its entry.
    while engine.tracked_keys() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired key's entry is gone"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        store.counter_state("gold", "held"),
        Some((1000, 8, 0)),
        "the block not expired is kept, unreported"
    );
    while engine.tracked_keys() != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the held block expires too"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.counter_state("gold", "held"), Some((1000, 1, 1)));
}
