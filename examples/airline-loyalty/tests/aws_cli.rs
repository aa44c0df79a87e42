//! The seed's console steps with the real AWS CLI against the demo's
//! `/admin` (signed for `apigateway`): create the plan, create the key, add
//! it, call the API with it, view usage, grant an extension, disable the key.
//! Then `kill -9`, a restart on the same data dir, and the keys and usage
//! are still there. Needs `PORTCULLIS_AWS_CLI`
//! (`source scripts/services.d/30-python-clients.sh`).

mod support;

use http::{Method, StatusCode};
use support::{ADMIN, API_KEY, Answer, CLIENT, Http, admin, aws, aws_cli, start_with, today};

/// The client user's access key id and secret, for the AWS CLI.
const CLIENT_KEYS: (&str, &str) = (CLIENT.access_key_id, CLIENT.secret_access_key);

async fn loyalty(http: &Http, key: &str) -> Answer {
    let mut request = http.request(Method::GET, "/loyalty/C-1001/get", "");
    request
        .headers_mut()
        .insert("x-api-key", key.parse().expect("header value"));
    http.send(http.sign(request, "", &CLIENT)).await
}

#[tokio::test(flavor = "current_thread")]
async fn the_console_steps_with_the_aws_cli_and_a_kill_9_restart() {
    let Some(cli) = aws_cli() else { return };
    let dir = tempfile::tempdir().expect("a temp dir");
    let data_dir = dir.path().to_str().expect("a UTF-8 path").to_owned();
    let server = start_with(&["--data-dir", &data_dir]);
    let base = server.base.clone();
    let http = Http::new(&base);
    let day = today();

    // The client user may do no management operation.
    let (ok, _, stderr) = aws(&cli, &base, CLIENT_KEYS, &["get-usage-plans"]);
    assert!(!ok);
    assert!(stderr.contains("AccessDeniedException"), "{stderr}");

    // 1. Create the usage plan, on the demo's stage.
    let plan = admin(
        &cli,
        &base,
        &[
            "create-usage-plan",
            "--name",
            "Partners",
            "--throttle",
            "burstLimit=10,rateLimit=100",
            "--quota",
            "limit=3,period=DAY",
            "--api-stages",
            "apiId=a1b2c3d4e5,stage=prod",
        ],
    );
    let plan_id = plan["id"].as_str().expect("a plan id").to_owned();
    assert_eq!(plan["quota"]["limit"], 3);

    // 2. Create the key (a generated value) and 3. add it to the plan.
    let key = admin(
        &cli,
        &base,
        &["create-api-key", "--name", "partner-7", "--enabled"],
    );
    let key_id = key["id"].as_str().expect("a key id").to_owned();
    let value = key["value"]
        .as_str()
        .expect("the generated value")
        .to_owned();
    // A key in no usage plan for the stage is refused, as API Gateway does.
    let answer = loyalty(&http, &value).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.json);
    assert_eq!(answer.json["message"], "Forbidden");
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
    // Twice is a ConflictException, as on AWS.
    let (ok, _, stderr) = aws(
        &cli,
        &base,
        ADMIN,
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
    assert!(!ok && stderr.contains("ConflictException"), "{stderr}");

    // 4. Call the API with it: the quota of 3 a day.
    for _ in 0..3 {
        let answer = loyalty(&http, &value).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    }
    let answer = loyalty(&http, &value).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.error_type, "LimitExceededException");

    // 5. View usage.
    let usage_args = [
        "get-usage",
        "--usage-plan-id",
        &plan_id,
        "--key-id",
        &key_id,
        "--start-date",
        &day,
        "--end-date",
        &day,
    ];
    let usage = admin(&cli, &base, &usage_args);
    assert_eq!(usage["items"][&key_id][0], serde_json::json!([3, 0]));

    // 6. Grant an extension: two more today.
    admin(
        &cli,
        &base,
        &[
            "update-usage",
            "--usage-plan-id",
            &plan_id,
            "--key-id",
            &key_id,
            "--patch-operations",
            "op=add,path=/remaining,value=2",
        ],
    );
    let answer = loyalty(&http, &value).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);

    // 7. Disable the key: 403 at once.
    admin(
        &cli,
        &base,
        &[
            "update-api-key",
            "--api-key",
            &key_id,
            "--patch-operations",
            "op=replace,path=/enabled,value=false",
        ],
    );
    let answer = loyalty(&http, &value).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    // The demo key admits two (its burst); then kill -9.
    for _ in 0..2 {
        assert_eq!(loyalty(&http, API_KEY).await.status, StatusCode::OK);
    }
    drop(server); // SIGKILL: no shutdown, no block given back.

    let server = start_with(&["--data-dir", &data_dir]);
    let base = server.base.clone();
    let http = Http::new(&base);
    // The plan, the key (still disabled) and its usage survived.
    let key = admin(&cli, &base, &["get-api-key", "--api-key", &key_id]);
    assert_eq!(key["enabled"], false);
    assert_eq!(loyalty(&http, &value).await.status, StatusCode::FORBIDDEN);
    let usage = admin(&cli, &base, &usage_args);
    assert_eq!(usage["items"][&key_id][0][0], 4, "{usage}");
    // The demo key's two requests are counted; a crash may over-count
    // at most the unspent part of one block (the control-plane crate's
    // bound), so the records hold at least what was admitted.
    let usage = admin(
        &cli,
        &base,
        &[
            "get-usage",
            "--usage-plan-id",
            "loyalty-basic",
            "--key-id",
            "demo-key",
            "--start-date",
            &day,
            "--end-date",
            &day,
        ],
    );
    let used = usage["items"]["demo-key"][0][0].as_u64().expect("used");
    let remaining = usage["items"]["demo-key"][0][1]
        .as_u64()
        .expect("remaining");
    assert!((2..=10).contains(&used), "{usage}");
    assert_eq!(used + remaining, 10, "{usage}");
    // Never over-admitted: what the records leave is what is admitted.
    let mut admitted = 0;
    while loyalty(&http, API_KEY).await.status == StatusCode::OK {
        admitted += 1;
        assert!(admitted <= 10);
        // Stay under the demo plan's throttle (rate 1, burst 2).
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    assert_eq!(admitted, remaining, "{usage}");
    eprintln!(
        "kill -9: 2 admitted before, {used} recorded after the restart, {admitted} admitted after (limit 10)"
    );
}
