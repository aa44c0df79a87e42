//! The control-plane store on Redis and Redis Cluster: the control plane's
//! conformance suite, change propagation between replicas (measured), and a
//! fleet of two replicas whose keys, plans and quota are shared.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use portcullis_api_key::{ApiKeyStore, KeyDigest};
use portcullis_control_plane::{
    ApiKeyUpdate, ControlPlaneStore, KeyCache, NewApiKey, NewUsagePlan, StoreOptions, conformance,
};
use portcullis_core::clock::SystemClock;
use portcullis_core::plan::{ApiStage, QuotaPeriod, QuotaSettings, UsagePlan};
use portcullis_redis::{RedisConfig, RedisControlPlane};

use support::{Replica, connect_control_plane as connect, fresh};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_conformance_suite_passes_on_redis_and_cluster() {
    for (name, config) in support::backends("cp-conformance") {
        let started = Instant::now();
        // Cold: every check on a fresh prefix, its first operations concurrent
        // where the suite makes them so.
        conformance::run(|| async { connect(&fresh(&config)).await }).await;
        let cold = started.elapsed();
        // Warm: the same again on a server that has run every script.
        let started = Instant::now();
        conformance::run(|| async { connect(&fresh(&config)).await }).await;
        println!(
            "{name}: control-plane conformance passed cold in {cold:?}, warm in {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_conflicts_change_nothing_stored() {
    for (_, config) in support::backends("cp-bad-input") {
        let store = connect(&config).await;
        let key = store
            .create_api_key(NewApiKey {
                id: Some("k1".into()),
                enabled: true,
                ..NewApiKey::default()
            })
            .await
            .unwrap();
        let before = store.snapshot().await.unwrap();
        let refused = [
            store
                .update_api_key("k1", ApiKeyUpdate::new().name(Some(String::new())))
                .await
                .is_err(),
            store
                .create_api_key(NewApiKey {
                    digest: Some(key.digest),
                    ..NewApiKey::default()
                })
                .await
                .is_err(),
            store
                .create_usage_plan_key("none", "k1", "API_KEY")
                .await
                .is_err(),
        ];
        assert_eq!(refused, [true; 3]);
        let after = store.snapshot().await.unwrap();
        assert_eq!(after.version, before.version, "nothing was written");
        assert_eq!(after.api_keys, before.api_keys);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_changes_from_two_replicas_all_land() {
    for (name, config) in support::backends("cp-concurrent") {
        let (a, b) = (connect(&config).await, connect(&config).await);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..40 {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.spawn(async move {
                store
                    .create_api_key(NewApiKey {
                        id: Some(format!("key-{i:02}")),
                        ..NewApiKey::default()
                    })
                    .await
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap().unwrap();
        }
        let snapshot = b.snapshot().await.unwrap();
        assert_eq!(snapshot.api_keys.len(), 40, "{name}");
        assert_eq!(snapshot.version, 40, "{name}: one version per change");
    }
}

/// Waits until `cache` answers `enabled` for `digest` (1 ms steps), and
/// answers how long that took; fails past 1 s.
async fn until<S: ControlPlaneStore>(
    cache: &KeyCache<S>,
    digest: &KeyDigest,
    enabled: Option<bool>,
) -> Duration {
    let start = Instant::now();
    loop {
        let seen = cache
            .lookup_now(digest, |found| found.ok().flatten().map(|r| r.enabled()))
            .unwrap();
        if seen == enabled {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the other replica did not follow within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_reaches_another_replica_within_one_second() {
    for (name, config) in support::backends("cp-propagation") {
        let writer = connect(&config).await;
        let reader = connect(&config).await;
        let mut versions = reader.subscribe();
        let cache = Arc::new(KeyCache::load(reader.clone()).await.unwrap());
        let _sync = cache.spawn_sync();
        let key = writer
            .create_api_key(NewApiKey {
                enabled: true,
                ..NewApiKey::default()
            })
            .await
            .unwrap();
        until(&cache, &key.digest, Some(true)).await;
        let mut notice = Vec::new();
        let mut effect = Vec::new();
        for round in 0..100 {
            let enabled = round % 2 == 1;
            let started = Instant::now();
            writer
                .update_api_key(&key.id, ApiKeyUpdate::new().enabled(enabled))
                .await
                .unwrap();
            let written = *writer.subscribe().borrow();
            // The version reaches the other replica (pub/sub) ...
            while *versions.borrow_and_update() < written {
                tokio::time::timeout(Duration::from_secs(1), versions.changed())
                    .await
                    .expect("the version arrives within 1 s")
                    .unwrap();
            }
            notice.push(started.elapsed());
            // ... and its key cache answers the change.
            until(&cache, &key.digest, Some(enabled)).await;
            effect.push(started.elapsed());
        }
        notice.sort();
        effect.sort();
        println!(
            "{name}: change -> other replica's version: p50 {:?} p99 {:?} max {:?}; \
             -> its KeyCache answers it: p50 {:?} p99 {:?} max {:?} (100 changes)",
            percentile(&notice, 50),
            percentile(&notice, 99),
            notice[notice.len() - 1],
            percentile(&effect, 50),
            percentile(&effect, 99),
            effect[effect.len() - 1],
        );
        assert!(effect[effect.len() - 1] < Duration::from_secs(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_lost_its_subscription_resyncs() {
    let server = support::PrivateServer::start();
    let config =
        RedisConfig::single(format!("redis://127.0.0.1:{}", server.port)).key_prefix("cp-resync");
    let writer = connect(&config).await;
    // A poll slower than the bound, so only the reconnect's resync can meet it.
    let reader = RedisControlPlane::connect_with(
        &config,
        StoreOptions::default(),
        Arc::new(SystemClock),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let mut versions = reader.subscribe();
    // Let the reader's subscription start, then cut it, and change at once,
    // while the reader is (re)subscribing: the message is lost to it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut admin = redis::Client::open(config_url(&server))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(killed >= 2, "both replicas were subscribed ({killed})");
    let started = Instant::now();
    writer.create_api_key(NewApiKey::default()).await.unwrap();
    let written = *writer.subscribe().borrow();
    while *versions.borrow_and_update() < written {
        tokio::time::timeout(Duration::from_secs(1), versions.changed())
            .await
            .expect("the reconnecting replica resyncs within 1 s")
            .unwrap();
    }
    println!(
        "resynced after a lost subscription in {:?}",
        started.elapsed()
    );
}

fn config_url(server: &support::PrivateServer) -> String {
    format!("redis://127.0.0.1:{}", server.port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_of_two_replicas_shares_keys_plans_and_quota() {
    for (name, config) in support::backends("cp-fleet") {
        let one = Replica::start(&config, Duration::from_secs(1)).await;
        let two = Replica::start(&config, Duration::from_secs(1)).await;
        const QUOTA: u64 = 300;
        let plan = UsagePlan::new("gold")
            .unwrap()
            .with_name("gold")
            .with_quota(QuotaSettings::new(QUOTA, QuotaPeriod::Day).unwrap())
            .with_api_stage(ApiStage {
                api_id: "api1".into(),
                stage: "prod".into(),
                throttle: Default::default(),
            });
        one.store
            .create_usage_plan(NewUsagePlan {
                id: Some("gold".into()),
                plan,
                tags: Default::default(),
            })
            .await
            .unwrap();

        // A key created on one replica works on the other within 1 s. It is
        // made in its plan first and enabled last, so the snapshot the other
        // replica loads when it sees the key enabled has the association too.
        let key = one
            .store
            .create_api_key(NewApiKey::default())
            .await
            .unwrap();
        one.store
            .create_usage_plan_key("gold", &key.id, "API_KEY")
            .await
            .unwrap();
        let started = Instant::now();
        one.store
            .update_api_key(&key.id, ApiKeyUpdate::new().enabled(true))
            .await
            .unwrap();
        let value = key.value.clone().unwrap().expose().to_owned();
        until(&two.cache, &key.digest, Some(true)).await;
        assert_eq!(two.call(&value).await, StatusCode::OK, "{name}");
        let works_after = started.elapsed();

        // Usage counted on both replicas adds up exactly.
        let mut calls = tokio::task::JoinSet::new();
        let (one, two) = (Arc::new(one), Arc::new(two));
        for i in 0..400 {
            let replica = if i % 2 == 0 { one.clone() } else { two.clone() };
            let value = value.clone();
            calls.spawn(async move { replica.call(&value).await });
        }
        let mut admitted = 1; // the call above
        let mut refused = 0;
        while let Some(status) = calls.join_next().await {
            match status.unwrap() {
                StatusCode::OK => admitted += 1,
                StatusCode::TOO_MANY_REQUESTS => refused += 1,
                other => panic!("{name}: unexpected {other}"),
            }
        }
        assert_eq!(
            admitted, QUOTA,
            "{name}: the fleet admits exactly the quota"
        );
        assert_eq!(refused, 401 - QUOTA);
        one.engine.shutdown().await.unwrap();
        two.engine.shutdown().await.unwrap();
        let today = time::OffsetDateTime::now_utc().date();
        let usage = one
            .store
            .get_usage("gold", &key.id, today, today)
            .await
            .unwrap();
        assert_eq!(usage.len(), 1);
        assert_eq!(
            (usage[0].used, usage[0].remaining),
            (QUOTA, 0),
            "{name}: GetUsage counts both replicas' requests"
        );

        // A key disabled on one replica is refused on both within 1 s.
        two.store
            .update_api_key(&key.id, ApiKeyUpdate::new().enabled(false))
            .await
            .unwrap();
        let off_two = until(&two.cache, &key.digest, Some(false)).await;
        let off_one = until(&one.cache, &key.digest, Some(false)).await;
        assert_eq!(one.call(&value).await, StatusCode::FORBIDDEN);
        assert_eq!(two.call(&value).await, StatusCode::FORBIDDEN);
        println!(
            "{name}: new key usable on the other replica after {works_after:?}; disabled: \
             refused on the replica that changed it after {off_two:?}, on the other after \
             {off_one:?}; {admitted} admitted of {} for a quota of {QUOTA}",
            admitted + refused
        );
    }
}
