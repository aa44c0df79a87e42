//! The facade: configuration errors with paths, relative paths, and the
//! composed stack in API Gateway's order, in an axum `Router` with requests
//! signed by the `aws-sigv4` crate and a manual clock.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use portcullis::Gateway;
use portcullis::config::Config;
use portcullis_core::clock::ManualClock;
use portcullis_test_support::sigv4::{Signing, sign_request};
use serde_json::Value;
use tower::ServiceExt;

const ACCESS_KEY: &str = "AKIALOYALTYCLIENT001";
const SECRET: &str = "loyalty/client/secret/EXAMPLEKEY0000000001";
const API_KEY: &str = "DemoKey0123456789abcdefghij";
const T0: u64 = 1_795_000_000; // 2026-11-18T...Z

fn dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "portcullis-facade-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos()
    ));
    std::fs::create_dir_all(dir.join("policies")).expect("temp dir");
    std::fs::create_dir_all(dir.join("waf")).expect("temp dir");
    dir
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write fixture");
}

const CONFIG: &str = r#"
[gateway]
region = "us-east-1"
account_id = "123456789012"
api_id = "a1b2c3d4e5"
stage = "prod"

[[usage_plans]]
id = "loyalty-basic"
throttle = { rate_limit = 1.0, burst_limit = 2 }
quota = { limit = 10, period = "DAY", offset = 0 }

[[api_keys]]
id = "demo-key"
value_sha256 = "SHA"
enabled = true
usage_plans = ["loyalty-basic"]

[[iam.users]]
arn = "arn:aws:iam::123456789012:user/loyalty-client"
access_key_id = "AKIALOYALTYCLIENT001"
secret_access_key = "loyalty/client/secret/EXAMPLEKEY0000000001"
policies = ["policies/invoke-loyalty.json"]

[waf]
web_acl = "waf/web-acl.json"

[store]
kind = "memory"
"#;

const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"execute-api:Invoke",
  "Resource":"arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/GET/loyalty/*"}]}"#;

const ACL: &str = r#"{"Name":"loyalty-acl","DefaultAction":{"Allow":{}},"Rules":[
  {"Name":"sqli-query","Priority":1,"Action":{"Block":{}},
   "Statement":{"SqliMatchStatement":{"FieldToMatch":{"QueryString":{}},
     "TextTransformations":[{"Priority":0,"Type":"URL_DECODE"}]}},
   "VisibilityConfig":{"SampledRequestsEnabled":true,"CloudWatchMetricsEnabled":true,"MetricName":"sqli"}}]}"#;

fn sha256_hex(value: &str) -> String {
    // The CLI's `keys hash` and the api-key crate agree on this digest.
    portcullis::api_key::KeyDigest::of(value.as_bytes()).to_hex()
}

fn setup() -> PathBuf {
    let dir = dir();
    write(
        &dir,
        "gateway.toml",
        &CONFIG.replace("SHA", &sha256_hex(API_KEY)),
    );
    write(&dir, "policies/invoke-loyalty.json", POLICY);
    write(&dir, "waf/web-acl.json", ACL);
    dir
}

fn signed(uri: &str, key: Option<&str>, at: u64) -> Request<Body> {
    let mut request = Request::get(format!("http://api.example{uri}"))
        .header("host", "api.example")
        .body(Body::empty())
        .expect("request");
    if let Some(key) = key {
        request
            .headers_mut()
            .insert("x-api-key", key.parse().expect("header"));
    }
    let signing =
        Signing::at(UNIX_EPOCH + Duration::from_secs(at)).credentials(ACCESS_KEY, SECRET, None);
    sign_request(&mut request, b"", &signing);
    request
}

async fn answer(app: &Router, request: Request<Body>) -> (StatusCode, String, Value) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let error_type = response
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        error_type,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_whole_stack_in_api_gateway_order() {
    let dir = setup();
    let clock = ManualClock::at_unix(T0);
    let gateway = Gateway::builder_from_file(dir.join("gateway.toml"))
        .unwrap()
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/loyalty/{id}/get",
            get(|| async { axum::Json(serde_json::json!({"points": 1200})) }),
        )
        .layer(gateway.layer());

    // The WAF comes first: an SQL injection is blocked before any
    // authentication is asked for.
    let sqli = Request::get("/loyalty/C-1/get?id=1%27%20OR%20%271%27%3D%271")
        .body(Body::empty())
        .unwrap();
    let (status, kind, _) = answer(&app, sqli).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::FORBIDDEN, "WAFFilteredException")
    );

    // Then IAM.
    let unsigned = Request::get("/loyalty/C-1/get")
        .body(Body::empty())
        .unwrap();
    let (status, kind, body) = answer(&app, unsigned).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(kind, "MissingAuthenticationTokenException");
    assert_eq!(body["message"], "Missing Authentication Token");

    // Then the key.
    let (status, kind, body) = answer(&app, signed("/loyalty/C-1/get", None, T0)).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::FORBIDDEN, "ForbiddenException")
    );
    assert_eq!(body["message"], "Forbidden");

    // Then the throttle: burst 2.
    for _ in 0..2 {
        let (status, _, body) = answer(&app, signed("/loyalty/C-1/get", Some(API_KEY), T0)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["points"], 1200);
    }
    let (status, _, body) = answer(&app, signed("/loyalty/C-1/get", Some(API_KEY), T0)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["message"], "Too Many Requests");

    // Then the quota: 10 a day. 2 used; 8 more, a second apart.
    for i in 1..=8 {
        clock.advance(Duration::from_secs(1));
        let (status, _, _) = answer(&app, signed("/loyalty/C-1/get", Some(API_KEY), T0 + i)).await;
        assert_eq!(status, StatusCode::OK, "request {i}");
    }
    clock.advance(Duration::from_secs(1));
    let (status, kind, body) =
        answer(&app, signed("/loyalty/C-1/get", Some(API_KEY), T0 + 9)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(kind, "LimitExceededException");
    assert_eq!(body["message"], "Limit Exceeded");

    // A route the policy does not allow.
    let app = Router::new()
        .route("/other", get(|| async { "x" }))
        .layer(gateway.layer());
    let (status, kind, body) = answer(&app, signed("/other", Some(API_KEY), T0 + 9)).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::FORBIDDEN, "AccessDeniedException")
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("loyalty-client is not authorized")
    );
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn the_usage_admin_reports_and_extends() {
    let dir = setup();
    let clock = ManualClock::at_unix(T0);
    let gateway = Gateway::builder_from_file(dir.join("gateway.toml"))
        .unwrap()
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let api = Router::new()
        .route("/loyalty/{id}/get", get(|| async { "ok" }))
        .route_layer(gateway.layer().without_waf());
    for i in 0..10 {
        clock.advance(Duration::from_secs(1));
        let (status, _, _) =
            answer(&api, signed("/loyalty/C-1/get", Some(API_KEY), T0 + 1 + i)).await;
        assert_eq!(status, StatusCode::OK);
    }
    clock.advance(Duration::from_secs(1));
    let (status, _, _) = answer(&api, signed("/loyalty/C-1/get", Some(API_KEY), T0 + 11)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    // The usage admin authorizes nothing itself: the SigV4 layer in front
    // leaves the caller it needs; here the test does.
    let admin = Router::new().nest_service("/admin", gateway.usage_admin());
    let admin_caller = || {
        portcullis::core::context::RequestContext::new().with_caller(
            portcullis::core::context::Caller::new(
                "arn:aws:iam::123456789012:user/loyalty-admin",
                portcullis::core::context::AuthMethod::Iam,
            ),
        )
    };
    let today = time::OffsetDateTime::from_unix_timestamp(T0 as i64)
        .unwrap()
        .date();
    let report = Request::get(format!(
        "/admin/usageplans/loyalty-basic/usage?keyId=demo-key&startDate={today}&endDate={today}"
    ))
    .extension(admin_caller())
    .body(Body::empty())
    .unwrap();
    let (status, _, body) = answer(&admin, report).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["items"]["demo-key"][0], serde_json::json!([10, 0]));

    let extend = Request::patch("/admin/usageplans/loyalty-basic/keys/demo-key/usage")
        .header("content-type", "application/json")
        .extension(admin_caller())
        .body(Body::from(
            r#"{"patchOperations":[{"op":"replace","path":"/remaining","value":"5"}]}"#,
        ))
        .unwrap();
    let (status, _, body) = answer(&admin, extend).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    clock.advance(Duration::from_secs(1));
    let (status, _, _) = answer(&api, signed("/loyalty/C-1/get", Some(API_KEY), T0 + 12)).await;
    assert_eq!(status, StatusCode::OK);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn errors_name_the_bad_field() {
    let base = r#"
        [gateway]
        region = "us-east-1"
        account_id = "123456789012"
        api_id = "a1b2c3d4e5"
        stage = "prod"
    "#;
    let error = Config::from_toml(&format!(
        "{base}\n[[usage_plans]]\nid = \"p\"\nquota = {{ limit = 10, period = \"FORTNIGHT\" }}\n"
    ))
    .unwrap_err();
    assert_eq!(error.path(), "usage_plans[0].quota.period", "{error}");

    let error = Config::from_toml(&format!("{base}\n[store]\nkind = \"sqlite\"\n")).unwrap_err();
    assert_eq!(error.path(), "store.kind", "{error}");

    let error = Config::from_toml(&base.replace("region", "regoin")).unwrap_err();
    assert!(error.path().starts_with("gateway"), "{error}");
    assert!(error.message().contains("regoin"), "{error}");

    // A key in a plan that does not exist: found when the gateway is built.
    let config = Config::from_toml(&format!(
        "{base}\n[[api_keys]]\nid = \"k\"\nvalue = \"{API_KEY}\"\nusage_plans = [\"nope\"]\n"
    ))
    .unwrap();
    let error = Gateway::builder(config).build().unwrap_err();
    assert_eq!(error.path(), "api_keys[0].usage_plans[0]", "{error}");
    assert!(!error.to_string().contains(API_KEY));

    // A policy file that is missing, relative to the configuration file.
    let dir = dir();
    write(
        &dir,
        "gateway.toml",
        &format!(
            "{base}\n[[iam.users]]\narn = \"arn:aws:iam::123456789012:user/a\"\naccess_key_id = \"AKIA1\"\nsecret_access_key = \"s\"\npolicies = [\"policies/missing.json\"]\n"
        ),
    );
    let error = Gateway::from_file(dir.join("gateway.toml")).unwrap_err();
    assert_eq!(error.path(), "iam.users[0].policies[0]", "{error}");
    assert_eq!(
        error.file.as_deref(),
        Some(dir.join("gateway.toml").as_path())
    );
    assert!(error.message().contains("missing.json"));

    // The identity pool's own error, put under its section.
    #[cfg(feature = "identity-pool")]
    {
        let config = Config::from_toml(&format!(
            "{base}\n[[iam.users]]\narn = \"arn:aws:iam::123456789012:user/a\"\naccess_key_id = \"AKIA1\"\nsecret_access_key = \"s\"\n\n[identity_pool]\nregion = \"us-east-1\"\naccount_id = \"123456789012\"\ncredential_lifetime_seconds = 60\nkeys = [{{ id = \"k1\", secret = \"test-pool-key-0000000000000000000000000000\" }}]\nauthenticated_role = \"Member\"\nroles = {{ Member = {{ policies = [] }} }}\n"
        ))
        .unwrap();
        let error = Gateway::builder(config).build().unwrap_err();
        assert_eq!(
            error.path(),
            "identity_pool.credential_lifetime_seconds",
            "{error}"
        );
    }

    // A web ACL with a bad field: the WAF's JSON path comes along.
    write(
        &dir,
        "waf/web-acl.json",
        r#"{"Name":"a","DefaultAction":{"Allow":{}},"Rules":[{"Name":"r","Priority":"x","Statement":{}}]}"#,
    );
    write(
        &dir,
        "gateway.toml",
        &format!("{base}\n[waf]\nweb_acl = \"waf/web-acl.json\"\n"),
    );
    let error = Gateway::from_file(dir.join("gateway.toml")).unwrap_err();
    assert_eq!(error.path(), "waf.web_acl");
    assert!(error.message().contains("Rules[0].Priority"), "{error}");

    // Redis is not wired in yet: said so at load.
    write(
        &dir,
        "gateway.toml",
        &format!("{base}\n[store]\nkind = \"redis\"\nurl = \"redis://127.0.0.1\"\n"),
    );
    let error = Gateway::from_file(dir.join("gateway.toml")).unwrap_err();
    assert_eq!(error.path(), "store.kind");
    std::fs::remove_dir_all(dir).ok();
}
