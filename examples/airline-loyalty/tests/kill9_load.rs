//! `kill -9` under concurrent load on the embedded store: 32 tasks call the
//! API with a key whose plan allows 5,000 a day; the demo is SIGKILLed while
//! they run, restarted on the same data dir, and then driven to the end of
//! the quota. What the control-plane crate's README promises after a crash:
//! never over-admitted, nothing admitted missing from the usage records,
//! and the records over-count (under-admit) by at most one block per key
//! (`max_block`, 1,000 by default, and never more than a quarter of what
//! the period had left). Needs `PORTCULLIS_AWS_CLI`
//! (`source scripts/services.d/30-python-clients.sh`).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::StatusCode;
use support::{Http, admin, aws_cli, start_with, try_loyalty_from, usage_today};

/// The plan's daily quota.
const QUOTA: u64 = 5_000;

/// The most a crash may leave counted in the usage records beyond what the
/// clients saw admitted: the unspent part of one block (`max_block`, 1,000
/// by default, and at most a quarter of what the period had left), plus the
/// requests in flight when the process died (admitted, but their 200 never
/// reached a client).
const CRASH_BOUND: u64 = 1_000 + TASKS as u64;

/// Concurrent callers.
const TASKS: usize = 32;

/// When to kill: after this many 200s reached the clients.
const KILL_AFTER: u64 = 1_200;

/// What the callers saw.
#[derive(Default)]
struct Seen {
    /// Requests sent: each comes from an address of its own, so that the
    /// WAF's rate rule per address never applies.
    sent: AtomicU64,
    ok: AtomicU64,
    /// 429 `LimitExceededException`: the quota is spent.
    quota_spent: AtomicU64,
    /// Anything else answered (a throttle's 429, a 403, a 5xx...).
    other: AtomicU64,
    /// Requests that got no answer (the server was killed).
    unanswered: AtomicU64,
}

/// `TASKS` callers on `http` with `key`, each until the server stops
/// answering, an unexpected answer, or (when `until_spent`) the quota is
/// spent.
fn spawn_callers(
    http: &Arc<Http>,
    key: &str,
    seen: &Arc<Seen>,
    until_spent: bool,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..TASKS)
        .map(|_| {
            let (http, seen) = (Arc::clone(http), Arc::clone(seen));
            let key = key.to_owned();
            tokio::spawn(async move {
                loop {
                    let n = seen.sent.fetch_add(1, Ordering::Relaxed);
                    let ip = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
                    let Some(answer) = try_loyalty_from(&http, &key, Some(&ip)).await else {
                        seen.unanswered.fetch_add(1, Ordering::Relaxed);
                        return;
                    };
                    if answer.status == StatusCode::OK {
                        seen.ok.fetch_add(1, Ordering::Relaxed);
                    } else if answer.status == StatusCode::TOO_MANY_REQUESTS
                        && answer.error_type == "LimitExceededException"
                    {
                        seen.quota_spent.fetch_add(1, Ordering::Relaxed);
                        if until_spent {
                            return;
                        }
                    } else {
                        seen.other.fetch_add(1, Ordering::Relaxed);
                        eprintln!("unexpected answer: {} {}", answer.status, answer.json);
                        return;
                    }
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_never_over_admits_nor_loses_usage() {
    let Some(cli) = aws_cli() else { return };
    let dir = tempfile::tempdir().expect("a temp dir");
    let data_dir = dir.path().to_str().expect("a UTF-8 path").to_owned();
    let server = start_with(&["--data-dir", &data_dir]);
    let base = server.base.clone();

    // The plan (a throttle far above what the callers reach), the key, the
    // association: through /admin with the AWS CLI.
    let quota = format!("limit={QUOTA},period=DAY");
    let plan = admin(
        &cli,
        &base,
        &[
            "create-usage-plan",
            "--name",
            "Load",
            "--throttle",
            "burstLimit=5000,rateLimit=10000",
            "--quota",
            &quota,
            "--api-stages",
            "apiId=a1b2c3d4e5,stage=prod",
        ],
    );
    let plan_id = plan["id"].as_str().expect("a plan id").to_owned();
    let key = admin(
        &cli,
        &base,
        &["create-api-key", "--name", "load-partner", "--enabled"],
    );
    let key_id = key["id"].as_str().expect("a key id").to_owned();
    let value = key["value"].as_str().expect("the value").to_owned();
    admin(
        &cli,
        &base,
        &[
            "create-usage-plan-key",
            "--usage-plan-id",
            &plan_id,
            "--key-id",
            &key_id,
            "--key-type",
            "API_KEY",
        ],
    );

    // Load, then SIGKILL (Child::kill) while the callers run.
    let http = Arc::new(Http::new(&base));
    let before = Arc::new(Seen::default());
    let started = Instant::now();
    let callers = spawn_callers(&http, &value, &before, false);
    let deadline = started + Duration::from_secs(120);
    while before.ok.load(Ordering::Relaxed) < KILL_AFTER {
        assert!(
            Instant::now() < deadline,
            "only {} admitted in 120 s",
            before.ok.load(Ordering::Relaxed)
        );
        assert_eq!(
            before.other.load(Ordering::Relaxed),
            0,
            "an answer other than 200 under load"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed_at = before.ok.load(Ordering::Relaxed);
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .expect("the server is killed");
    let load_time = started.elapsed();
    for caller in callers {
        caller.await.expect("a caller ends");
    }
    let admitted_before = before.ok.load(Ordering::Relaxed);
    assert_eq!(before.other.load(Ordering::Relaxed), 0);
    assert_eq!(before.quota_spent.load(Ordering::Relaxed), 0);

    // Restart on the same data dir.
    let server = start_with(&["--data-dir", &data_dir]);
    let base = server.base.clone();
    let (used, remaining) =
        usage_today(&cli, &base, &plan_id, &key_id).expect("the usage survived the kill");
    assert_eq!(
        used + remaining,
        QUOTA,
        "used {used} + remaining {remaining}"
    );
    assert!(
        used >= admitted_before,
        "{admitted_before} admitted before the kill, only {used} in the usage records"
    );
    assert!(
        used - admitted_before <= CRASH_BOUND,
        "{used} recorded for {admitted_before} admitted: more than one block and the \
         requests in flight ({CRASH_BOUND}) lost"
    );

    // Drive the key to the end of its quota.
    let http = Arc::new(Http::new(&base));
    let after = Arc::new(Seen::default());
    let callers = spawn_callers(&http, &value, &after, true);
    for caller in callers {
        caller.await.expect("a caller ends");
    }
    let admitted_after = after.ok.load(Ordering::Relaxed);
    assert_eq!(after.other.load(Ordering::Relaxed), 0);
    assert_eq!(after.unanswered.load(Ordering::Relaxed), 0);
    assert_eq!(
        after.quota_spent.load(Ordering::Relaxed),
        TASKS as u64,
        "every caller ends on LimitExceededException"
    );
    assert!(
        admitted_before + admitted_after <= QUOTA,
        "over-admitted: {admitted_before} before the kill + {admitted_after} after > {QUOTA}"
    );
    assert_eq!(
        admitted_after, remaining,
        "after the restart, exactly what GetUsage said remained is admitted"
    );
    // The records now hold the whole quota as used (once reported).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let usage = usage_today(&cli, &base, &plan_id, &key_id);
        if usage == Some((QUOTA, 0)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "GetUsage after exhaustion: {usage:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "kill -9 under load ({TASKS} tasks, quota {QUOTA}): killed after {killed_at} 200s seen \
         ({load_time:?} of load); {admitted_before} admitted before the kill; after the restart GetUsage said used {used}, remaining {remaining} \
         ({} under-admitted); {admitted_after} admitted after; total {} of {QUOTA}",
        used - admitted_before,
        admitted_before + admitted_after
    );
    drop(server);
}
