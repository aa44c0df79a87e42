//! Checks of quota counters: reservations, engines, usage updates and
//! reclaimed blocks.

use std::time::Duration;

use portcullis_quota::store::{QuotaStore, UsageUpdate};

use crate::engine::{EngineConfig, QuotaEngine};
use crate::reservation::{CounterRef, Report};
use crate::store::ControlPlaneStore;

use super::fixtures::{DAY, counter, expect, ok};

async fn reserve_concurrently<S: ControlPlaneStore + Clone>(
    store: &S,
    counter: &CounterRef,
    tasks: usize,
) -> u64 {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let store = store.clone();
        let counter = counter.clone();
        set.spawn(async move { store.reserve(counter, 1).await });
    }
    let mut granted = 0;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(result) => granted += ok(result, "reserve").granted,
            Err(error) => panic!("conformance: a task failed: {error}"),
        }
    }
    granted
}

pub(super) async fn reservation_is_exact_cold_and_warm<S: ControlPlaneStore + Clone>(store: S) {
    let c = counter("cf-plan", "cf-key", 50);
    let cold = reserve_concurrently(&store, &c, 64).await;
    expect(
        cold == 50,
        "cold: 64 concurrent first reservations of 1 on a new counter grant exactly the limit",
    );
    let d = counter("cf-plan", "cf-key2", 100);
    let first = ok(store.reserve(d.clone(), 40).await, "warm up");
    expect(
        first.granted == 40 && first.remaining == 60,
        "a grant answers what is left",
    );
    let warm = reserve_concurrently(&store, &d, 64).await;
    expect(
        warm == 60,
        "warm: 64 concurrent reservations grant exactly what is left",
    );
    let over = ok(store.reserve(d, 5).await, "reserve when spent");
    expect(over.granted == 0, "a spent quota grants nothing");
}

async fn consume_concurrently<S: ControlPlaneStore + Clone>(
    engine: &QuotaEngine<S>,
    counter: &CounterRef,
    tasks: usize,
) -> u64 {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let engine = engine.clone();
        let counter = counter.clone();
        set.spawn(async move {
            let request = counter.as_request();
            engine.consume(&request).resolve().await
        });
    }
    let mut admitted = 0;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(result) => admitted += u64::from(ok(result, "consume").admitted),
            Err(error) => panic!("conformance: a task failed: {error}"),
        }
    }
    admitted
}

pub(super) async fn engine_is_exact_cold_and_warm<S: ControlPlaneStore + Clone>(store: S) {
    let engine = QuotaEngine::with_config(
        store.clone(),
        EngineConfig {
            max_block: 8,
            initial_block: 4,
            ..EngineConfig::default()
        },
    );
    let c = counter("cf-plan", "cf-engine", 40);
    let cold = consume_concurrently(&engine, &c, 64).await;
    expect(
        cold == 40,
        "cold: 64 tasks on one new key admit exactly the quota",
    );
    let d = counter("cf-plan", "cf-engine2", 100);
    let warm_up = consume_concurrently(&engine, &d, 1).await;
    expect(warm_up == 1, "a first request is admitted");
    let mut warm = 0;
    for _ in 0..3 {
        warm += consume_concurrently(&engine, &d, 64).await;
    }
    expect(
        warm == 99,
        "warm: 3 × 64 tasks on a used key admit exactly what remains",
    );
    ok(engine.shutdown().await, "shutdown");
    let usage = ok(
        store.get_usage("cf-plan", "cf-engine2", DAY, DAY).await,
        "usage",
    );
    expect(
        usage.len() == 1 && usage[0].used == 100 && usage[0].remaining == 0,
        "after shutdown the usage record counts every admitted request",
    );
}

pub(super) async fn update_usage_with_an_outstanding_block<S: ControlPlaneStore + Clone>(store: S) {
    let engine = QuotaEngine::with_config(
        store.clone(),
        EngineConfig {
            max_block: 64,
            initial_block: 64,
            ..EngineConfig::default()
        },
    );
    let c = counter("cf-plan", "cf-update", 1000);
    let admitted = consume_concurrently(&engine, &c, 5).await;
    expect(admitted == 5, "five admitted");
    let request = c.as_request();
    let after = ok(
        engine.update(&request, UsageUpdate::SetRemaining(3)).await,
        "UpdateUsage",
    );
    expect(
        after.remaining == 3 && after.used == 5,
        "UpdateUsage answers the new remaining count and today's use",
    );
    let more = consume_concurrently(&engine, &c, 20).await;
    expect(
        more == 3,
        "after setting remaining to 3 with a block outstanding, exactly 3 more are admitted",
    );
    let usage = ok(
        engine.usage("cf-plan", "cf-update", DAY, DAY).await,
        "GetUsage",
    );
    expect(
        usage.len() == 1 && usage[0].used == 8 && usage[0].remaining == 0,
        "GetUsage counts every admitted request, unflushed ones included",
    );
}

/// Two engines on one store stand for two replicas: the first takes a block
/// for one request and goes quiet; the second must still admit everything
/// the first did not spend.
pub(super) async fn an_idle_replicas_block_is_reclaimed<S: ControlPlaneStore + Clone>(store: S) {
    let config = EngineConfig {
        max_block: 16,
        initial_block: 16,
        // Generous, for a loaded machine: the wait ends as soon as the
        // block is back.
        reclaim_wait: Duration::from_secs(5),
        ..EngineConfig::default()
    };
    let quiet = QuotaEngine::with_config(store.clone(), config);
    let busy = QuotaEngine::with_config(store.clone(), config);
    let _quiet_follows = quiet.spawn_flusher(Duration::from_secs(3600));
    let _busy_follows = busy.spawn_flusher(Duration::from_secs(3600));
    let c = counter("cf-plan", "cf-reclaim", 40);
    let first = consume_concurrently(&quiet, &c, 1).await;
    expect(first == 1, "the quiet replica admits its one request");
    let mut rest = 0;
    for _ in 0..4 {
        rest += consume_concurrently(&busy, &c, 16).await;
    }
    expect(
        rest == 39,
        "the busy replica admits all 39 the quiet one did not spend: the quiet \
         replica's block is given back when the quota runs out, not stranded",
    );
}

pub(super) async fn outstanding_blocks_count_against_an_update<S: ControlPlaneStore>(store: &S) {
    let c = counter("cf-plan", "cf-stale", 100);
    let grant = ok(store.reserve(c.clone(), 10).await, "reserve");
    ok(
        store
            .update_usage(c.clone(), UsageUpdate::SetRemaining(20))
            .await,
        "set remaining while a block is out",
    );
    ok(
        store
            .report(
                c.clone(),
                Report {
                    generation: grant.generation,
                    spent: 4,
                    returned: 6,
                },
            )
            .await,
        "report the stale block",
    );
    let next = ok(store.reserve(c.clone(), 1000).await, "reserve the rest");
    expect(
        next.granted == 16,
        "a block outstanding at an update counts against what it set: the period admits \
         exactly the set 20 more than the update's `used` (4 from the block, 16 after)",
    );
    let usage = ok(
        store.get_usage("cf-plan", "cf-stale", DAY, DAY).await,
        "usage",
    );
    expect(
        usage.first().is_some_and(|u| u.used == 4),
        "a stale block's spent requests are counted",
    );
}
