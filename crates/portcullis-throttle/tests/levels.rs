//! The three levels, and exactly which buckets a refused request takes tokens
//! from: none.

#![allow(clippy::unwrap_used)] // Tests may unwrap (clippy.toml allows it in #[test] only).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use http::Method;
use portcullis_core::plan::{ApiStage, MethodSelector, UsagePlan};
use portcullis_throttle::{
    BucketKey, CallerKey, CallerKeySource, Gcra, InMemoryThrottleStore, Level, StageId,
    ThrottleLayer,
};

fn selector(s: &str) -> MethodSelector {
    s.parse().unwrap()
}

fn with_method_override(plan: UsagePlan, sel: &str, rate: f64, burst: u32) -> UsagePlan {
    let mut throttle = BTreeMap::new();
    throttle.insert(selector(sel), settings(rate, burst));
    plan.with_api_stage(ApiStage {
        api_id: API.into(),
        stage: STAGE.into(),
        throttle,
    })
}

#[tokio::test]
async fn a_per_method_override_beats_the_plan() {
    let clock = clock();
    let plan = Arc::new(with_method_override(
        plan("p", 100.0, 100),
        "/pets/GET",
        1.0,
        1,
    ));
    let svc = service(ThrottleLayer::new(API, STAGE), &clock);
    let get = || keyed(Method::GET, "/pets", "k", &plan);
    let post = || keyed(Method::POST, "/pets", "k", &plan);
    assert_eq!(statuses(&svc, 2, get).await, [200, 429]);
    // Other methods use the plan's bucket, which the GETs did not touch.
    assert_eq!(statuses(&svc, 100, post).await, vec![200; 100]);
    assert_eq!(statuses(&svc, 1, post).await, [429]);
    // Another key has its own per-method bucket.
    assert_eq!(
        statuses(&svc, 2, || keyed(Method::GET, "/pets", "k2", &plan)).await,
        [200, 429]
    );
}

#[tokio::test]
async fn a_root_override_and_templates() {
    let clock = clock();
    let plan = with_method_override(plan("p", 100.0, 100), "//GET", 1.0, 1);
    let plan = Arc::new(with_method_override(plan, "/pets/{petId}/*", 1.0, 2));
    let svc = service(ThrottleLayer::new(API, STAGE), &clock);
    assert_eq!(
        statuses(&svc, 2, || keyed(Method::GET, "/", "k", &plan)).await,
        [200, 429]
    );
    assert_eq!(
        statuses(&svc, 3, || keyed(Method::DELETE, "/pets/7", "k", &plan)).await,
        [200, 200, 429]
    );
    // `/pets/{petId}/*` is one bucket for every pet and method of the key.
    assert_eq!(
        statuses(&svc, 1, || keyed(Method::GET, "/pets/8", "k", &plan)).await,
        [429]
    );
}

#[tokio::test]
async fn the_stage_level_bounds_every_caller() {
    let clock = clock();
    let plan = Arc::new(plan("p", 100.0, 100));
    let layer = ThrottleLayer::new(API, STAGE)
        .stage_limit(selector("/*/*"), settings(1.0, 3))
        .stage_limit(selector("/pets/GET"), settings(1.0, 1));
    let svc = service(layer, &clock);
    // The most specific selector applies: GET /pets has its own bucket of 1.
    assert_eq!(
        statuses(&svc, 2, || keyed(Method::GET, "/pets", "a", &plan)).await,
        [200, 429]
    );
    assert_eq!(
        statuses(&svc, 1, || keyed(Method::GET, "/pets", "b", &plan)).await,
        [429]
    );
    // Everything else shares `/*/*`, whatever the key.
    let mut seen = Vec::new();
    for key in ["a", "b", "c", "d"] {
        seen.push(
            status(&svc, keyed(Method::POST, "/orders", key, &plan))
                .await
                .as_u16(),
        );
    }
    assert_eq!(seen, [200, 200, 200, 429]);
}

#[tokio::test]
async fn the_account_level_bounds_everything() {
    let clock = clock();
    let plan = Arc::new(plan("p", 100.0, 100));
    let layer = ThrottleLayer::new(API, STAGE)
        .stage_limit(selector("/*/*"), settings(100.0, 100))
        .account_limit(settings(1.0, 2));
    let svc = service(layer, &clock);
    let mut seen = Vec::new();
    for (method, key) in [(Method::GET, "a"), (Method::POST, "b"), (Method::PUT, "c")] {
        seen.push(status(&svc, keyed(method, "/x", key, &plan)).await.as_u16());
    }
    assert_eq!(seen, [200, 200, 429]);
    let refused = tower::ServiceExt::oneshot(svc.clone(), keyed(Method::GET, "/x", "d", &plan))
        .await
        .unwrap();
    assert_eq!(
        refused.headers()["ratelimit-policy"],
        r#""account";q=2;w=2"#
    );
}

fn key_bucket<'a>(key: &'a str) -> BucketKey<'a> {
    BucketKey {
        level: Level::Key,
        stage: None,
        method: None,
        caller: Some(CallerKey {
            source: CallerKeySource::ApiKey,
            value: key.as_bytes(),
        }),
    }
}

struct Scenario {
    clock: portcullis_core::clock::ManualClock,
    store: InMemoryThrottleStore,
    svc: Svc,
    stage_sel: MethodSelector,
    key: Gcra,
    stage: Gcra,
    account: Gcra,
    plan: Arc<UsagePlan>,
}

impl Scenario {
    /// Buckets of these sizes, all refilling one token per second.
    fn new(key_burst: u32, stage_burst: u32, account_burst: u32) -> Self {
        let clock = clock();
        let store = InMemoryThrottleStore::new();
        let stage_sel = selector("/*/*");
        let layer = ThrottleLayer::new(API, STAGE)
            .with_store(store.clone())
            .stage_limit(stage_sel.clone(), settings(1.0, stage_burst))
            .account_limit(settings(1.0, account_burst));
        let svc = service(layer, &clock);
        Self {
            clock,
            store,
            svc,
            stage_sel,
            key: Gcra::new(&settings(1.0, key_burst)),
            stage: Gcra::new(&settings(1.0, stage_burst)),
            account: Gcra::new(&settings(1.0, account_burst)),
            plan: Arc::new(plan("p", 1.0, key_burst)),
        }
    }

    /// Tokens left in (key `k`, stage, account).
    fn tokens(&self, k: &str) -> (u32, u32, u32) {
        let now = portcullis_core::clock::Clock::now_unix_nanos(&self.clock);
        let stage = BucketKey {
            level: Level::Stage,
            stage: Some(StageId {
                api_id: API,
                stage: STAGE,
            }),
            method: Some(&self.stage_sel),
            caller: None,
        };
        let account = BucketKey {
            level: Level::Account,
            stage: None,
            method: None,
            caller: None,
        };
        (
            self.store.tokens(&key_bucket(k), &self.key, now),
            self.store.tokens(&stage, &self.stage, now),
            self.store.tokens(&account, &self.account, now),
        )
    }

    async fn send(&self, k: &str, n: usize) -> Vec<u16> {
        statuses(&self.svc, n, || get(k, &self.plan)).await
    }
}

#[tokio::test]
async fn refused_by_the_account_level_costs_nothing() {
    let s = Scenario::new(5, 4, 3);
    assert_eq!(s.send("a", 3).await, [200; 3]);
    assert_eq!(s.tokens("a"), (2, 1, 0));
    // Ten refusals by the account: the key and stage buckets before it give
    // back what they took.
    assert_eq!(s.send("a", 10).await, vec![429; 10]);
    assert_eq!(s.tokens("a"), (2, 1, 0));
    // So after one second exactly one more request passes.
    s.clock.advance(std::time::Duration::from_secs(1));
    assert_eq!(s.send("a", 2).await, [200, 429]);
    assert_eq!(s.tokens("a"), (2, 1, 0));
}

#[tokio::test]
async fn refused_by_the_stage_level_costs_nothing() {
    let s = Scenario::new(5, 2, 3);
    assert_eq!(s.send("a", 2).await, [200; 2]);
    assert_eq!(s.send("a", 10).await, vec![429; 10]);
    assert_eq!(s.tokens("a"), (3, 0, 1));
    let refused = tower::ServiceExt::oneshot(s.svc.clone(), get("b", &s.plan))
        .await
        .unwrap();
    assert_eq!(refused.headers()["ratelimit-policy"], r#""stage";q=2;w=2"#);
    assert_eq!(s.tokens("b"), (5, 0, 1));
}

#[tokio::test]
async fn refused_by_the_key_level_costs_nothing() {
    let s = Scenario::new(1, 4, 3);
    assert_eq!(s.send("a", 1).await, [200]);
    assert_eq!(s.send("a", 10).await, vec![429; 10]);
    assert_eq!(s.tokens("a"), (0, 3, 2));
    let refused = tower::ServiceExt::oneshot(s.svc.clone(), get("a", &s.plan))
        .await
        .unwrap();
    assert_eq!(refused.headers()["ratelimit-policy"], r#""key";q=1;w=1"#);
    // Another key is not held back by a's refusals.
    assert_eq!(s.send("b", 1).await, [200]);
    assert_eq!(s.tokens("b"), (0, 2, 1));
}
