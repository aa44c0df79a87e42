//! `redis-fleet` with three replicas on a private `redis-server`: the hot
//! key costs at most 0.05 Redis round trips per decision, and the fleet
//! admits exactly its quota.
//!
//! Like the Redis tests of portcullis-redis, it runs when `REDIS_URL` is set
//! (`scripts/test.sh` sets it and installs `redis-server`) and otherwise
//! says so in one line; the harness starts its own server on a free port.

use std::process::Command;

/// The quota the fleet must admit exactly.
const LIMIT: u64 = 2_000;

#[test]
fn three_replicas_hot_key_and_exact_quota() {
    if std::env::var_os("REDIS_URL").is_none() {
        eprintln!(
            "skipped: REDIS_URL is not set; run `bash scripts/test.sh` (which starts Redis) to run the Redis tests"
        );
        return;
    }
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis-loadtest"))
        .args([
            "redis-fleet",
            "--replicas",
            "3",
            "--clients",
            "24",
            "--seconds",
            "1",
        ])
        .args(["--keys", "200", "--quota-seconds", "8"])
        .args(["--quota-limit", &LIMIT.to_string()])
        .output()
        .expect("the harness runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "redis-fleet failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{stdout}");
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .skip(1)
        .map(|line| line.split('|').collect())
        .collect();
    let row = |workload: &str| {
        rows.iter()
            .find(|r| r.get(1) == Some(&workload))
            .unwrap_or_else(|| panic!("a {workload} row in {stdout}"))
    };
    let hot = row("hot");
    let decisions: u64 = hot[5].parse().expect("decisions");
    assert!(decisions > 1_000, "the hot key was driven: {hot:?}");
    let round_trips: f64 = hot[3].parse().expect("round trips per decision");
    assert!(
        round_trips <= 0.05,
        "{round_trips} Redis round trips per decision on the hot key (at most 0.05)"
    );
    let quota = row("quota");
    assert_eq!(
        quota[6],
        format!("{LIMIT} of {LIMIT}"),
        "three replicas admit exactly the quota: {quota:?}"
    );
}
