//! A failing store is logged once per change of state, not once per
//! request: one WARN when it starts failing, DEBUG for the failures after
//! it, one INFO when it answers again. This binary installs a global
//! `tracing` subscriber that counts the layer's events, so it holds this one
//! test.

#![allow(clippy::unwrap_used)] // Tests may unwrap (clippy.toml allows it in #[test] only).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::*;
use portcullis_throttle::{
    Answer, BucketCheck, InMemoryThrottleStore, Outcome, ThrottleLayer, ThrottleStore,
    ThrottleStoreError,
};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// The throttle layer's events, counted by level.
#[derive(Default)]
struct Counted {
    warn: AtomicUsize,
    info: AtomicUsize,
    debug: AtomicUsize,
}

struct Counting(&'static Counted);

impl Subscriber for Counting {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        if !metadata.target().starts_with("portcullis_throttle") {
            return;
        }
        let counter = match *metadata.level() {
            Level::WARN | Level::ERROR => &self.0.warn,
            Level::INFO => &self.0.info,
            Level::DEBUG => &self.0.debug,
            Level::TRACE => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// The in-memory store, or a failure while `fail` is set (answered through
/// a future, as a networked store answers).
#[derive(Clone)]
struct Switchable {
    inner: InMemoryThrottleStore,
    fail: Arc<AtomicBool>,
}

impl ThrottleStore for Switchable {
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Outcome, ThrottleStoreError>> + Send>,
    >;

    fn acquire(
        &self,
        checks: &[BucketCheck<'_>],
        now: u64,
    ) -> Answer<Result<Outcome, ThrottleStoreError>, Self::Future> {
        let result = if self.fail.load(Ordering::Relaxed) {
            Err(ThrottleStoreError::msg("connection refused"))
        } else {
            self.inner.acquire_now(checks, now)
        };
        Answer::Pending(Box::pin(async move { result }))
    }
}

#[tokio::test]
async fn a_failing_store_logs_once_when_it_fails_and_once_when_it_answers() {
    let counted: &'static Counted = Box::leak(Box::default());
    tracing::subscriber::set_global_default(Counting(counted)).unwrap();
    let clock = clock();
    let plan = Arc::new(plan("p", 10_000.0, 10_000));
    let fail = Arc::new(AtomicBool::new(false));
    let store = Switchable {
        inner: InMemoryThrottleStore::new(),
        fail: fail.clone(),
    };
    let svc = service(ThrottleLayer::new(API, STAGE).with_store(store), &clock);
    let warn = || counted.warn.load(Ordering::Relaxed);
    let info = || counted.info.load(Ordering::Relaxed);

    assert_eq!(statuses(&svc, 3, || get("k", &plan)).await, [200; 3]);
    assert_eq!((warn(), info()), (0, 0));

    fail.store(true, Ordering::Relaxed);
    assert_eq!(statuses(&svc, 50, || get("k", &plan)).await, [200; 50]);
    assert_eq!(warn(), 1, "one WARN for 50 failed decisions");
    assert!(
        counted.debug.load(Ordering::Relaxed) >= 49,
        "the rest at DEBUG"
    );

    fail.store(false, Ordering::Relaxed);
    assert_eq!(statuses(&svc, 5, || get("k", &plan)).await, [200; 5]);
    assert_eq!(info(), 1, "one INFO when the store answers again");

    fail.store(true, Ordering::Relaxed);
    assert_eq!(statuses(&svc, 5, || get("k", &plan)).await, [200; 5]);
    assert_eq!(warn(), 2, "a new outage logs again");
}
