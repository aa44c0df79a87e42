//! The conformance suite every [`ControlPlaneStore`] must pass: the in-memory
//! and embedded stores run it in this crate's tests, and a Redis store will
//! run it in its own. It is plain library code, generic over the store.
//!
//! ```
//! use portcullis_control_plane::{MemoryStore, conformance};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! conformance::run(|| async { MemoryStore::memory() }).await;
//! # }
//! ```
//!
//! Each check asks the factory for a fresh, empty store, so each runs
//! *cold* (first operations on a new store, key and period, concurrently
//! where it matters) and then *warm* (the same again after a first use).
//! It also runs `portcullis-api-key`'s and `portcullis-quota`'s own suites
//! against [`KeyCache`] and [`QuotaEngine`] on the store. The suite panics,
//! naming the check, at the first behaviour that differs.
//!
//! It needs a multi-threaded tokio runtime (it spawns tasks).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use portcullis_api_key::ApiKeyValue;
use portcullis_core::plan::{ApiStage, QuotaPeriod, QuotaSettings, UsagePlan};
use portcullis_quota::Calendar;
use portcullis_quota::store::{QuotaStore, UsageUpdate};
use time::Date;
use time::macros::date;

use crate::engine::{EngineConfig, QuotaEngine};
use crate::error::StoreError;
use crate::keys::KeyCache;
use crate::model::{ApiKeyFilter, ApiKeyUpdate, NewApiKey, PageRequest, UsagePlanRecord};
use crate::reservation::{CounterRef, Report};
use crate::state::NewUsagePlan;
use crate::store::ControlPlaneStore;

const DAY: Date = date!(2026 - 11 - 23);

fn ok<T>(result: Result<T, StoreError>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("conformance: {what}: unexpected error: {error}"),
    }
}

fn expect(ok: bool, what: &str) {
    assert!(ok, "conformance: {what}");
}

fn plan(id: &str, stages: &[(&str, &str)]) -> NewUsagePlan {
    let mut plan = match UsagePlan::new(id) {
        Ok(plan) => plan.with_name(format!("plan {id}")),
        Err(error) => panic!("conformance: {error}"),
    };
    for (api, stage) in stages {
        plan = plan.with_api_stage(ApiStage {
            api_id: (*api).to_owned(),
            stage: (*stage).to_owned(),
            throttle: BTreeMap::new(),
        });
    }
    NewUsagePlan {
        id: Some(id.to_owned()),
        plan,
        tags: BTreeMap::new(),
    }
}

fn key(id: &str, name: &str) -> NewApiKey {
    NewApiKey {
        id: Some(id.to_owned()),
        name: Some(name.to_owned()),
        enabled: true,
        ..NewApiKey::default()
    }
}

fn counter(plan: &str, key: &str, limit: u64) -> CounterRef {
    let quota = match QuotaSettings::new(limit, QuotaPeriod::Day) {
        Ok(quota) => quota,
        Err(error) => panic!("conformance: {error}"),
    };
    CounterRef {
        plan_id: plan.to_owned(),
        key_id: key.to_owned(),
        quota,
        window: Calendar::new().window_of_date(QuotaPeriod::Day, DAY),
        day: DAY,
        initial_window: None,
    }
}

/// Runs every check, each on a fresh store from `new_store`.
pub async fn run<S, F, Fut>(new_store: F)
where
    S: ControlPlaneStore + Clone,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    api_keys(&new_store().await).await;
    bad_input_changes_nothing(&new_store().await).await;
    usage_plans_and_keys(&new_store().await).await;
    pagination(&new_store().await).await;
    reservation_is_exact_cold_and_warm(new_store().await).await;
    engine_is_exact_cold_and_warm(new_store().await).await;
    update_usage_with_an_outstanding_block(new_store().await).await;
    an_idle_replicas_block_is_reclaimed(new_store().await).await;
    outstanding_blocks_count_against_an_update(&new_store().await).await;
    let cache = ok(KeyCache::load(new_store().await).await, "KeyCache::load");
    if let Err(failure) = portcullis_api_key::conformance::run(&cache).await {
        panic!("conformance: KeyCache: {failure}");
    }
    portcullis_quota::conformance::check_store(|| async {
        QuotaEngine::with_config(
            new_store().await,
            EngineConfig {
                max_block: 4,
                initial_block: 2,
                ..EngineConfig::default()
            },
        )
    })
    .await;
}

async fn api_keys<S: ControlPlaneStore>(store: &S) {
    let created = ok(
        store.create_api_key(NewApiKey::default()).await,
        "create a key with nothing given",
    );
    expect(
        created.id.len() == 10 && !created.enabled,
        "a generated id has 10 characters and a new key is disabled by default",
    );
    expect(
        created.value.as_ref().map(|v| v.digest()) == Some(created.digest)
            || created.value.is_none(),
        "a generated value matches its digest",
    );
    let got = ok(store.get_api_key(&created.id).await, "get the key");
    expect(got == created, "get answers what create answered");
    let found = ok(store.find_api_key(&created.digest).await, "find by digest");
    expect(
        found.as_ref().map(|k| &k.id) == Some(&created.id),
        "the key is found by its digest",
    );

    let value = match ApiKeyValue::new("conformanceValue0123456789") {
        Ok(value) => value,
        Err(error) => panic!("conformance: {error}"),
    };
    let with_value = NewApiKey {
        value: Some(value.clone()),
        ..key("cf-a", "alpha")
    };
    ok(
        store.create_api_key(with_value).await,
        "create with a value",
    );
    let duplicate = NewApiKey {
        value: Some(value),
        ..key("cf-b", "beta")
    };
    expect(
        matches!(
            store.create_api_key(duplicate).await,
            Err(StoreError::Conflict(_))
        ),
        "a duplicate value is a conflict",
    );
    expect(
        matches!(
            store.get_api_key("cf-b").await,
            Err(StoreError::NotFound { .. })
        ),
        "a refused create writes nothing",
    );
    expect(
        matches!(
            store.create_api_key(key("cf-a", "again")).await,
            Err(StoreError::Conflict(_))
        ),
        "a duplicate id is a conflict",
    );

    let updated = ok(
        store
            .update_api_key(
                "cf-a",
                ApiKeyUpdate::new()
                    .enabled(false)
                    .description(Some("d".into())),
            )
            .await,
        "update",
    );
    expect(
        !updated.enabled && updated.description.as_deref() == Some("d"),
        "update changes the fields named",
    );
    let again = ok(
        store
            .update_api_key(
                "cf-a",
                ApiKeyUpdate::new()
                    .enabled(false)
                    .description(Some("d".into())),
            )
            .await,
        "update again",
    );
    expect(
        again.enabled == updated.enabled && again.description == updated.description,
        "the same update twice gives the same key (idempotent)",
    );

    ok(store.delete_api_key("cf-a").await, "delete");
    expect(
        matches!(
            store.delete_api_key("cf-a").await,
            Err(StoreError::NotFound { .. })
        ),
        "deleting twice is not found",
    );
    expect(
        matches!(
            store.update_api_key("cf-a", ApiKeyUpdate::new()).await,
            Err(StoreError::NotFound { .. })
        ),
        "updating a deleted key is not found",
    );

    let imported = store
        .import_api_keys(vec![key("cf-i1", "i1"), key("cf-i1", "i1 twice")])
        .await;
    expect(
        imported.is_err(),
        "an import with a duplicate id is refused",
    );
    expect(
        store.get_api_key("cf-i1").await.is_err(),
        "a refused import writes nothing",
    );
    let imported = ok(
        store
            .import_api_keys(vec![key("cf-i1", "i1"), key("cf-i2", "i2")])
            .await,
        "import",
    );
    expect(imported.len() == 2, "an import creates every key");
}

async fn bad_input_changes_nothing<S: ControlPlaneStore>(store: &S) {
    ok(store.create_api_key(key("cf-k", "kept")).await, "create");
    let before = ok(store.get_api_key("cf-k").await, "get");
    let long = "x".repeat(2000);
    let bad_updates = [
        ApiKeyUpdate::new().name(Some(String::new())),
        ApiKeyUpdate::new().enabled(false).name(Some(long.clone())),
        ApiKeyUpdate::new()
            .enabled(false)
            .customer_id(Some("bad\u{0}".into())),
    ];
    for update in bad_updates {
        expect(
            matches!(
                store.update_api_key("cf-k", update).await,
                Err(StoreError::BadRequest(_))
            ),
            "an invalid update is a bad request",
        );
    }
    expect(
        ok(store.get_api_key("cf-k").await, "get") == before,
        "an invalid update changes nothing",
    );
    let mut tags = BTreeMap::new();
    tags.insert("aws:reserved".to_owned(), "v".to_owned());
    let bad_keys = [
        NewApiKey {
            tags,
            ..key("cf-t", "t")
        },
        NewApiKey {
            stage_keys: vec!["no-slash".into()],
            ..key("cf-t", "t")
        },
        key("bad id!", "t"),
    ];
    for bad in bad_keys {
        expect(
            matches!(
                store.create_api_key(bad).await,
                Err(StoreError::BadRequest(_))
            ),
            "an invalid key is a bad request",
        );
    }
    let page = ok(
        store
            .get_api_keys(ApiKeyFilter::default(), PageRequest::default())
            .await,
        "list",
    );
    expect(page.items.len() == 1, "invalid creates write nothing");

    let nameless = NewUsagePlan {
        plan: match UsagePlan::new("p") {
            Ok(plan) => plan,
            Err(error) => panic!("conformance: {error}"),
        },
        id: Some("cf-p".into()),
        tags: BTreeMap::new(),
    };
    expect(
        matches!(
            store.create_usage_plan(nameless).await,
            Err(StoreError::BadRequest(_))
        ),
        "a plan without a name is a bad request",
    );
    expect(
        store.get_usage_plan("cf-p").await.is_err(),
        "a refused plan is not stored",
    );
    expect(
        matches!(
            store.reserve(counter("p", "k", 10), 0).await,
            Err(StoreError::BadRequest(_))
        ),
        "reserving 0 is a bad request",
    );
    expect(
        matches!(
            store.get_usage("p", "k", DAY, date!(2026 - 11 - 01)).await,
            Err(StoreError::BadRequest(_))
        ),
        "GetUsage with the start after the end is a bad request",
    );
}

async fn usage_plans_and_keys<S: ControlPlaneStore>(store: &S) {
    ok(
        store
            .create_usage_plan(plan("cf-gold", &[("api1", "prod")]))
            .await,
        "create plan gold",
    );
    ok(
        store
            .create_usage_plan(plan("cf-silver", &[("api1", "prod")]))
            .await,
        "create plan silver",
    );
    ok(
        store
            .create_usage_plan(plan("cf-beta", &[("api1", "beta")]))
            .await,
        "create plan beta",
    );
    expect(
        matches!(
            store
                .create_usage_plan(plan("cf-gold", &[("api1", "x")]))
                .await,
            Err(StoreError::Conflict(_))
        ),
        "a duplicate plan id is a conflict",
    );
    ok(
        store.create_api_key(key("cf-k1", "one")).await,
        "create key",
    );

    let added = ok(
        store
            .create_usage_plan_key("cf-gold", "cf-k1", "API_KEY")
            .await,
        "add the key to a plan",
    );
    expect(
        added.id == "cf-k1" && added.key_type == "API_KEY",
        "CreateUsagePlanKey answers the key",
    );
    expect(
        matches!(
            store
                .create_usage_plan_key("cf-gold", "cf-k1", "API_KEY")
                .await,
            Err(StoreError::Conflict(_))
        ),
        "adding a key to a plan twice is a conflict",
    );
    expect(
        matches!(
            store
                .create_usage_plan_key("cf-silver", "cf-k1", "API_KEY")
                .await,
            Err(StoreError::Conflict(_))
        ),
        "a key in two plans on one stage is a conflict",
    );
    expect(
        matches!(
            store
                .create_usage_plan_key("cf-beta", "cf-k1", "SECRET")
                .await,
            Err(StoreError::BadRequest(_))
        ),
        "a keyType other than API_KEY is a bad request",
    );
    ok(
        store
            .create_usage_plan_key("cf-beta", "cf-k1", "API_KEY")
            .await,
        "a key may be in plans on different stages",
    );

    // A stage change that would clash is refused and changes nothing.
    let mut beta = ok(store.get_usage_plan("cf-beta").await, "get beta");
    let before = beta.clone();
    beta.plan = beta.plan.clone().with_api_stage(ApiStage {
        api_id: "api1".into(),
        stage: "prod".into(),
        throttle: BTreeMap::new(),
    });
    expect(
        matches!(
            store.update_usage_plan(beta).await,
            Err(StoreError::Conflict(_))
        ),
        "a stage change that puts a key in two plans on a stage is a conflict",
    );
    expect(
        ok(store.get_usage_plan("cf-beta").await, "get beta") == before,
        "a refused plan update changes nothing",
    );
    let renamed = UsagePlanRecord {
        plan: before.plan.clone().with_description("renamed"),
        tags: before.tags.clone(),
    };
    ok(store.update_usage_plan(renamed).await, "update beta");
    expect(
        ok(store.get_usage_plan("cf-beta").await, "get")
            .plan
            .description()
            == Some("renamed"),
        "a valid plan update is stored",
    );

    let of_key = ok(
        store
            .get_usage_plans(Some("cf-k1"), PageRequest::default())
            .await,
        "plans of the key",
    );
    let ids: Vec<&str> = of_key.items.iter().map(UsagePlanRecord::id).collect();
    expect(
        ids == ["cf-beta", "cf-gold"],
        "GetUsagePlans with keyId answers the key's plans",
    );
    ok(
        store.get_usage_plan_key("cf-gold", "cf-k1").await,
        "GetUsagePlanKey",
    );
    let keys = ok(
        store
            .get_usage_plan_keys("cf-gold", None, PageRequest::default())
            .await,
        "GetUsagePlanKeys",
    );
    expect(keys.items.len() == 1, "the plan lists its key");
    let none = ok(
        store
            .get_usage_plan_keys("cf-gold", Some("zzz"), PageRequest::default())
            .await,
        "GetUsagePlanKeys with a name query",
    );
    expect(none.items.is_empty(), "nameQuery filters by name prefix");

    ok(
        store.delete_usage_plan_key("cf-gold", "cf-k1").await,
        "DeleteUsagePlanKey",
    );
    expect(
        matches!(
            store.delete_usage_plan_key("cf-gold", "cf-k1").await,
            Err(StoreError::NotFound { .. })
        ),
        "deleting an association twice is not found",
    );
    ok(
        store
            .create_usage_plan_key("cf-silver", "cf-k1", "API_KEY")
            .await,
        "after leaving gold the key may join silver",
    );
    ok(store.delete_usage_plan("cf-silver").await, "delete plan");
    expect(
        ok(
            store
                .get_usage_plans(Some("cf-k1"), PageRequest::default())
                .await,
            "plans",
        )
        .items
        .len()
            == 1,
        "deleting a plan removes its associations",
    );
    ok(store.delete_api_key("cf-k1").await, "delete key");
    expect(
        ok(
            store
                .get_usage_plan_keys("cf-beta", None, PageRequest::default())
                .await,
            "keys",
        )
        .items
        .is_empty(),
        "deleting a key removes it from its plans",
    );
}

async fn pagination<S: ControlPlaneStore>(store: &S) {
    let keys: Vec<NewApiKey> = (0..7)
        .map(|i| key(&format!("cf-page-{i}"), &format!("n{i}")))
        .collect();
    ok(store.import_api_keys(keys).await, "import");
    let mut request = PageRequest::first(3);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = ok(
            store
                .get_api_keys(ApiKeyFilter::default(), request.clone())
                .await,
            "page",
        );
        pages += 1;
        expect(page.items.len() <= 3, "a page holds at most `limit` items");
        seen.extend(page.items.iter().map(|k| k.id.clone()));
        match request.next(&page) {
            Some(next) => request = next,
            None => break,
        }
        expect(pages < 10, "pagination ends");
    }
    let expected: Vec<String> = (0..7).map(|i| format!("cf-page-{i}")).collect();
    expect(
        seen == expected && pages == 3,
        "pages of 3 list 7 keys once each, in id order, in 3 pages",
    );
    for limit in [0, 501] {
        expect(
            matches!(
                store
                    .get_api_keys(ApiKeyFilter::default(), PageRequest::first(limit))
                    .await,
                Err(StoreError::BadRequest(_))
            ),
            "a limit outside 1..=500 is a bad request",
        );
    }
    let filtered = ok(
        store
            .get_api_keys(
                ApiKeyFilter {
                    name_query: Some("n3".into()),
                    customer_id: None,
                },
                PageRequest::default(),
            )
            .await,
        "nameQuery",
    );
    expect(
        filtered.items.len() == 1 && filtered.position.is_none(),
        "nameQuery filters",
    );
}

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

async fn reservation_is_exact_cold_and_warm<S: ControlPlaneStore + Clone>(store: S) {
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
            match engine.try_consume_now(&request) {
                Some(decision) => decision,
                None => engine.consume(&request).await,
            }
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

async fn engine_is_exact_cold_and_warm<S: ControlPlaneStore + Clone>(store: S) {
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

async fn update_usage_with_an_outstanding_block<S: ControlPlaneStore + Clone>(store: S) {
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
async fn an_idle_replicas_block_is_reclaimed<S: ControlPlaneStore + Clone>(store: S) {
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

async fn outstanding_blocks_count_against_an_update<S: ControlPlaneStore>(store: &S) {
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
