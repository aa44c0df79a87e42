//! `QuotaEngine` forgets keys that hold nothing (issue 21, memory per key):
//! the flusher gives back expired blocks, then drops the entries that have
//! held no block for a `block_ttl`, and counting goes on exactly when such
//! a key comes back.

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

    // Expired: given back, the entries kept one more block_ttl.
    tokio::time::sleep(TTL + Duration::from_millis(10)).await;
    engine.flush().await.unwrap();
    assert_eq!(store.counter_state("gold", "k0"), Some((1000, 3, 3)));
    assert_eq!(
        engine.tracked_keys(),
        100,
        "the entries outlive their block"
    );

    tokio::time::sleep(TTL + Duration::from_millis(10)).await;
    engine.flush().await.unwrap();
    assert_eq!(engine.tracked_keys(), 0, "idle entries are dropped");

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
