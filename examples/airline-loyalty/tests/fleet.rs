//! A fleet: two demo processes on one Redis, under one fresh key prefix.
//! A key created and added to a plan through one replica's `/admin` with the
//! AWS CLI works on the other within 1 s; a key disabled through the other
//! is refused on both within 1 s; the usage counted on both adds up in
//! GetUsage. Needs `REDIS_URL` (`source scripts/services.d/10-redis.sh`)
//! and `PORTCULLIS_AWS_CLI` (`source scripts/services.d/30-python-clients.sh`).

mod support;

use std::time::{Duration, Instant, SystemTime};

use http::StatusCode;
use support::{Http, admin, aws_cli, required_env, start_with, try_loyalty, usage_today};

/// How long a change may take to reach the other replica (issue 19).
const PROPAGATION: Duration = Duration::from_secs(1);

/// The plan's daily quota: far more than the test spends.
const QUOTA: u64 = 1_000;

/// Calls `/loyalty/...` with `key` on `http` every 10 ms until it answers
/// `want`, or until [`PROPAGATION`] after `since` has passed. Returns when it
/// answered `want` (measured from `since`), and how many 200s it saw
/// before (each of them counted as usage).
async fn poll_until(
    http: &Http,
    key: &str,
    want: StatusCode,
    since: Instant,
    what: &str,
) -> (Duration, u64) {
    let mut admitted = 0;
    loop {
        let answer = try_loyalty(http, key).await.expect("the replica answers");
        if answer.status == want {
            return (since.elapsed(), admitted);
        }
        if answer.status == StatusCode::OK {
            admitted += 1;
        }
        assert!(
            since.elapsed() <= PROPAGATION,
            "{what}: still {} ({}) {:?} after the change",
            answer.status,
            answer.json,
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Calls `/loyalty/...` with `key` `n` times on `http`; each must be a 200.
async fn call_ok(http: &Http, key: &str, n: u64) {
    for _ in 0..n {
        let answer = try_loyalty(http, key).await.expect("the replica answers");
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn two_replicas_on_redis_share_keys_plans_and_usage() {
    let Some(url) = required_env(
        "REDIS_URL",
        "`source scripts/services.d/10-redis.sh` to run the fleet test",
    ) else {
        return;
    };
    let Some(cli) = aws_cli() else { return };
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let prefix = format!("fleet-{}-{nanos}", std::process::id());
    let args = ["--store", &url, "--store-key-prefix", &prefix];
    let a = start_with(&args);
    let b = start_with(&args);
    let (http_a, http_b) = (Http::new(&a.base), Http::new(&b.base));

    // Through A: a plan on the demo's stage, a key (a generated value).
    let quota = format!("limit={QUOTA},period=DAY");
    let plan = admin(
        &cli,
        &a.base,
        &[
            "create-usage-plan",
            "--name",
            "Fleet",
            "--throttle",
            "burstLimit=100,rateLimit=100",
            "--quota",
            &quota,
            "--api-stages",
            "apiId=a1b2c3d4e5,stage=prod",
        ],
    );
    let plan_id = plan["id"].as_str().expect("a plan id").to_owned();
    // The key's value is chosen here, so that both replicas can be shown
    // not to know it before it is created.
    let value = format!("FleetKey{nanos}");
    for http in [&http_a, &http_b] {
        let answer = try_loyalty(http, &value).await.expect("an answer");
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.json);
        assert_eq!(answer.error_type, "ForbiddenException");
    }

    // Through A: create the key and add it to the plan. The CLI returns
    // after the store holds the change; B must admit the key within 1 s.
    let called = Instant::now();
    let key = admin(
        &cli,
        &a.base,
        &[
            "create-api-key",
            "--name",
            "fleet-partner",
            "--value",
            &value,
            "--enabled",
        ],
    );
    let created = Instant::now();
    let key_id = key["id"].as_str().expect("a key id").to_owned();
    admin(
        &cli,
        &a.base,
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
    let added = Instant::now();
    // At once on A, the replica that made the change.
    let answer = try_loyalty(&http_a, &value).await.expect("an answer");
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let mut admitted_a = 1;
    let (added_delay, _) = poll_until(&http_b, &value, StatusCode::OK, added, "added on A").await;
    let mut admitted_b = 1;

    // Usage on both replicas.
    call_ok(&http_a, &value, 6).await;
    admitted_a += 6;
    call_ok(&http_b, &value, 9).await;
    admitted_b += 9;

    // Through B: disable the key. Refused at once on B, within 1 s on A.
    admin(
        &cli,
        &b.base,
        &[
            "update-api-key",
            "--api-key",
            &key_id,
            "--patch-operations",
            "op=replace,path=/enabled,value=false",
        ],
    );
    let disabled = Instant::now();
    let answer = try_loyalty(&http_b, &value).await.expect("an answer");
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.json);
    let (disabled_delay, late) = poll_until(
        &http_a,
        &value,
        StatusCode::FORBIDDEN,
        disabled,
        "disabled on B",
    )
    .await;
    admitted_a += late;

    // GetUsage (through either replica) adds up both replicas' counts once
    // each has reported them (every second). The deadline allows for the
    // AWS CLI's own start-up, which takes seconds on a loaded machine.
    let admitted = admitted_a + admitted_b;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    for base in [&a.base, &b.base].into_iter().cycle() {
        let usage = usage_today(&cli, base, &plan_id, &key_id);
        if let Some((used, remaining)) = usage {
            assert_eq!(used + remaining, QUOTA, "GetUsage on {base}: {usage:?}");
            assert!(
                used <= admitted,
                "GetUsage on {base} counts {used}, more than the {admitted} admitted"
            );
        }
        seen.push((base.clone(), usage));
        if seen.len() >= 2
            && seen[seen.len() - 2..]
                .iter()
                .all(|(_, u)| u.map(|u| u.0) == Some(admitted))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "GetUsage never showed the {admitted} admitted ({admitted_a} on A, {admitted_b} on B): {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    eprintln!(
        "fleet: key created and added to the plan on A, admitted on B {added_delay:?} after \
         create-usage-plan-key returned ({:?} after create-api-key returned, {:?} after it was \
         started); disabled on B, refused on A {disabled_delay:?} after update-api-key \
         returned ({late} admitted meanwhile); GetUsage {admitted} = {admitted_a} on A + \
         {admitted_b} on B",
        added_delay + (added - created),
        added_delay + (added - called),
    );
    a.assert_output_has_no_secret(&http_a, &[&key_id]);
    b.assert_output_has_no_secret(&http_b, &[&key_id]);
}
