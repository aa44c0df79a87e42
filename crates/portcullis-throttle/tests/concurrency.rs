//! 64 tasks on the multi-threaded runtime, 10,000 requests each, a frozen
//! clock: exactly the burst is admitted, and refused requests leave no token
//! taken.

#![allow(clippy::unwrap_used)] // Tests may unwrap (clippy.toml allows it in #[test] only).

mod common;

use std::sync::Arc;

use common::*;
use portcullis_core::clock::Clock;
use portcullis_throttle::{
    BucketKey, CallerKey, CallerKeySource, Gcra, InMemoryThrottleStore, Level, ThrottleLayer,
};

const TASKS: usize = 64;
const PER_TASK: usize = 10_000;

async fn hammer(
    svc: &Svc,
    per_task: usize,
    key_of: impl Fn(usize) -> String,
    plan: &Arc<portcullis_core::plan::UsagePlan>,
) -> Vec<usize> {
    let mut tasks = Vec::with_capacity(TASKS);
    for task in 0..TASKS {
        let svc = svc.clone();
        let plan = Arc::clone(plan);
        let key = key_of(task);
        tasks.push(tokio::spawn(async move {
            let mut admitted = 0;
            for _ in 0..per_task {
                if status(&svc, get(&key, &plan)).await == 200 {
                    admitted += 1;
                }
            }
            admitted
        }));
    }
    let mut out = Vec::with_capacity(TASKS);
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_the_burst_is_admitted_from_one_bucket() {
    const BURST: u32 = 1_000;
    let clock = clock();
    let plan = Arc::new(plan("p", 1.0, BURST));
    let svc = service(ThrottleLayer::new(API, STAGE), &clock);
    let admitted: usize = hammer(&svc, PER_TASK, |_| "shared".to_owned(), &plan)
        .await
        .iter()
        .sum();
    assert_eq!(admitted, BURST as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_the_account_burst_is_admitted_across_keys() {
    const KEY_BURST: u32 = 100;
    const ACCOUNT_BURST: u32 = 1_000;
    let clock = clock();
    let store = InMemoryThrottleStore::new();
    let plan = Arc::new(plan("p", 1.0, KEY_BURST));
    let layer = ThrottleLayer::new(API, STAGE)
        .with_store(store.clone())
        .account_limit(settings(1.0, ACCOUNT_BURST));
    let svc = service(layer, &clock);
    let per_task = hammer(&svc, PER_TASK / 10, |task| format!("key-{task}"), &plan).await;
    let admitted: usize = per_task.iter().sum();
    assert_eq!(admitted, ACCOUNT_BURST as usize);
    // Every key bucket lost exactly as many tokens as its requests were
    // admitted: the account's refusals gave back every token they took.
    let now = clock.now_unix_nanos();
    let key_gcra = Gcra::new(&settings(1.0, KEY_BURST));
    for (task, admitted) in per_task.iter().enumerate() {
        assert!(*admitted <= KEY_BURST as usize);
        let name = format!("key-{task}");
        let bucket = BucketKey {
            level: Level::Key,
            stage: None,
            method: None,
            caller: Some(CallerKey {
                source: CallerKeySource::ApiKey,
                value: name.as_bytes(),
            }),
        };
        let left = store.tokens(&bucket, &key_gcra, now) as usize;
        assert_eq!(left, KEY_BURST as usize - admitted, "{name}");
    }
}
