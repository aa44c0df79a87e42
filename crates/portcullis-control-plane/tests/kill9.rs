//! `kill -9` under load: a child process (this test binary, re-invoked in
//! child mode) admits requests against the embedded store until it is
//! SIGKILLed; the test then reopens the store and checks the crash bound.
//!
//! The child writes one byte before each attempt (`TRY`) and one after
//! (`ADMITTED` or `REFUSED`), so the parent knows exactly what was admitted
//! before the kill, up to the attempts in flight (`TRY` without an answer).

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use portcullis_control_plane::{ControlPlaneStore, EmbeddedStore, EngineConfig, QuotaEngine};
use portcullis_core::plan::{QuotaPeriod, QuotaSettings};
use portcullis_quota::Calendar;
use portcullis_quota::store::{QuotaRequest, QuotaStore};
use time::Date;
use time::macros::date;

const CHILD_ENV: &str = "PORTCULLIS_CONTROL_PLANE_KILL9_CHILD";
const QUOTA: u64 = 20_000;
const MAX_BLOCK: u64 = 64;
const TASKS: usize = 4;
const KILL_AFTER: u64 = 3_010;
const TRY: u8 = 1;
const ADMITTED: u8 = 2;
const REFUSED: u8 = 3;
const DAY: Date = date!(2026 - 11 - 23);

fn request() -> QuotaRequest<'static> {
    let quota = QuotaSettings::new(QUOTA, QuotaPeriod::Day).unwrap();
    QuotaRequest {
        plan_id: "gold",
        key_id: "customer-1",
        quota,
        window: Calendar::new().window_of_date(QuotaPeriod::Day, DAY),
        day: DAY,
        initial_window: None,
    }
}

fn engine(path: &str) -> QuotaEngine<EmbeddedStore> {
    let store = EmbeddedStore::open(path).unwrap();
    QuotaEngine::with_config(
        store,
        EngineConfig {
            max_block: MAX_BLOCK,
            initial_block: 8,
            ..EngineConfig::default()
        },
    )
}

async fn admit<S: ControlPlaneStore + Clone>(engine: &QuotaEngine<S>) -> bool {
    let request = request();
    engine.consume(&request).resolve().await.unwrap().admitted
}

/// The child: admits under load until killed. Run only by the test below.
#[test]
#[ignore = "the child half of kill_nine_under_load_never_over_admits, which runs it"]
fn kill9_child() {
    let path = std::env::var(CHILD_ENV).expect("run by kill_nine_under_load_never_over_admits");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let engine = engine(&path);
        let _flusher = engine.spawn_flusher(std::time::Duration::from_millis(20));
        let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
        let mut tasks = Vec::new();
        for _ in 0..TASKS {
            let engine = engine.clone();
            let out = out.clone();
            tasks.push(tokio::spawn(async move {
                let emit = |byte: u8| {
                    let out = out.lock().unwrap();
                    let mut out = out.lock();
                    out.write_all(&[byte]).unwrap();
                    out.flush().unwrap();
                };
                loop {
                    emit(TRY);
                    let admitted = admit(&engine).await;
                    emit(if admitted { ADMITTED } else { REFUSED });
                    if !admitted {
                        return;
                    }
                    // Spend blocks about as slowly as they are reserved, so
                    // the kill lands inside a block as often as between.
                    std::thread::sleep(std::time::Duration::from_micros(100));
                    tokio::task::yield_now().await;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        // Not reached when the parent kills us in time; wait to be killed.
        std::future::pending::<()>().await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_under_load_never_over_admits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control-plane.redb");
    let path = path.to_str().unwrap().to_owned();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill9_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (mut tries, mut admitted, mut refused) = (0u64, 0u64, 0u64);
    let mut buf = [0u8; 4096];
    let mut killed = false;
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        for &byte in &buf[..n] {
            match byte {
                TRY => tries += 1,
                ADMITTED => admitted += 1,
                REFUSED => refused += 1,
                _ => {} // the test harness's own output
            }
        }
        if !killed && admitted >= KILL_AFTER {
            // std's Child::kill is SIGKILL on Unix: no destructor, no
            // shutdown, no flush runs in the child.
            child.kill().unwrap();
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    assert!(killed, "the child stopped before it was killed: {status}");
    assert_eq!(refused, 0, "the child was refused before the kill");
    let in_flight = tries - admitted - refused;
    assert!(in_flight <= TASKS as u64);

    // Restart: reopen the store, and admit until refused.
    let engine = engine(&path);
    let usage = engine
        .store()
        .get_usage("gold", "customer-1", DAY, DAY)
        .await
        .unwrap();
    let recorded = usage.first().map_or(0, |u| u.used);
    let mut after = 0u64;
    while admit(&engine).await {
        after += 1;
        assert!(after <= QUOTA, "runaway admission after restart");
    }
    engine.shutdown().await.unwrap();
    let lost = QUOTA - (admitted + after);
    println!(
        "kill -9 after {admitted} admitted (+{in_flight} in flight): usage recorded {recorded}, \
         {after} admitted after restart, {lost} under-admitted (bound {MAX_BLOCK} + in flight)"
    );
    // Never over-admitted: what the child admitted (at least `admitted`, at
    // most `admitted + in_flight`) plus what the restart admitted.
    assert!(
        admitted + after <= QUOTA,
        "over-admitted: {admitted} (+{in_flight} in flight) before, {after} after, quota {QUOTA}"
    );
    // At most one block (plus the requests in flight) under-admitted.
    assert!(
        lost <= MAX_BLOCK + in_flight,
        "under-admitted {lost}, more than one block of {MAX_BLOCK} (+{in_flight} in flight)"
    );
    // Nothing admitted vanished from the usage records, which over-count by
    // at most the unspent block.
    assert!(
        recorded >= admitted,
        "usage records {recorded} < admitted {admitted}"
    );
    assert!(
        recorded <= admitted + in_flight + MAX_BLOCK,
        "usage records {recorded} over-count by more than a block"
    );
    let final_usage = engine
        .store()
        .get_usage("gold", "customer-1", DAY, DAY)
        .await
        .unwrap();
    assert_eq!(final_usage[0].used, recorded + after);
    assert_eq!(final_usage[0].remaining, 0);
}
