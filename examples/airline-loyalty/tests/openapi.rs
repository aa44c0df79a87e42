//! The demo runs from its own OpenAPI export (`config/openapi.json`, named
//! by `[api] openapi` in `config/gateway.toml`): the redeem route with its
//! body model, CORS for the web app, `x-amzn-RequestId` on every response,
//! 403 Missing Authentication Token for what the export does not define, and
//! the access log once `[api.access_log]` is on. The binary on an ephemeral
//! port, over real HTTP, with requests signed by the `aws-sigv4` crate.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use support::{API_KEY, Answer, Http, Signer, copy_dir, start, start_with};

const CLIENT: Signer<'static> = Signer {
    access_key_id: "AKIALOYALTYCLIENT001",
    secret_access_key: "loyaltyClientSecretKeyDemo0000000000001",
    session_token: None,
};
const APP_ORIGIN: &str = "https://app.airline.example";
/// A little over the throttle's one token per second.
const TOKEN_INTERVAL: Duration = Duration::from_millis(1050);

fn header<'a>(answer: &'a Answer, name: &str) -> &'a str {
    answer
        .headers
        .get(name)
        .map_or("", |v| v.to_str().expect("an ASCII header"))
}

/// `POST /loyalty/C-1001/redeem` with `body`, signed by the client, with the
/// demo key.
async fn redeem(http: &Http, body: &str) -> Answer {
    let mut request = http.request(Method::POST, "/loyalty/C-1001/redeem", body);
    request
        .headers_mut()
        .insert("x-api-key", API_KEY.parse().expect("a header value"));
    request.headers_mut().insert(
        "content-type",
        "application/json".parse().expect("a header value"),
    );
    request
        .headers_mut()
        .insert("origin", APP_ORIGIN.parse().expect("a header value"));
    http.send(http.sign(request, body, &CLIENT)).await
}

#[tokio::test(flavor = "current_thread")]
async fn redeem_is_protected_like_the_get_and_validated_by_the_model() {
    let server = start();
    let http = Http::new(&server.base);
    let body = r#"{"points": 500, "reward": "lounge pass"}"#;

    // No signature: 403 Missing Authentication Token, with the CORS headers
    // of the export's gateway responses.
    let answer = http
        .send(http.request(Method::POST, "/loyalty/C-1001/redeem", body))
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.error_type, "MissingAuthenticationTokenException");
    assert_eq!(header(&answer, "access-control-allow-origin"), APP_ORIGIN);
    // Signed, no key: 403 Forbidden.
    let request = http.request(Method::POST, "/loyalty/C-1001/redeem", body);
    let answer = http.send(http.sign(request, body, &CLIENT)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.error_type, "ForbiddenException");

    // Signed with the key: bodies the Redemption model refuses get API
    // Gateway's 400, and the handler never runs (the balance is untouched).
    let too_long = format!(r#"{{"points": 1, "reward": "{}"}}"#, "x".repeat(65));
    let invalid = [
        r#"{"points": 500}"#,
        r#"{"reward": "lounge pass"}"#,
        r#"{"points": 0, "reward": "lounge pass"}"#,
        r#"{"points": 2.5, "reward": "lounge pass"}"#,
        r#"{"points": 500, "reward": ""}"#,
        too_long.as_str(),
    ];
    for (i, bad) in invalid.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(TOKEN_INTERVAL).await;
        }
        let answer = redeem(&http, bad).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            answer.json
        );
        assert_eq!(answer.error_type, "BadRequestException");
        assert_eq!(answer.json, json!({"message": "Invalid request body"}));
        assert_eq!(header(&answer, "access-control-allow-origin"), APP_ORIGIN);
    }

    // A valid body: 200 with the new balance (12,400 - 500), and the web
    // app's origin on the answer.
    tokio::time::sleep(TOKEN_INTERVAL).await;
    let answer = redeem(&http, body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["customerId"], "C-1001");
    assert_eq!(answer.json["points"], 11_900);
    assert_eq!(answer.json["redeemed"], 500);
    assert_eq!(answer.json["reward"], "lounge pass");
    assert_eq!(header(&answer, "access-control-allow-origin"), APP_ORIGIN);
    assert!(!header(&answer, "x-amzn-requestid").is_empty());

    // The GET sees the new balance: the same IAM user, key and plan.
    tokio::time::sleep(TOKEN_INTERVAL).await;
    let mut request = http.request(Method::GET, "/loyalty/C-1001/get", "");
    request
        .headers_mut()
        .insert("x-api-key", API_KEY.parse().expect("a header value"));
    let answer = http.send(http.sign(request, "", &CLIENT)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["points"], 11_900);
}

#[tokio::test(flavor = "current_thread")]
async fn cors_request_ids_and_undefined_routes() {
    let server = start();
    let http = Http::new(&server.base);

    // A preflight needs no signature and no key: the export's OPTIONS mock.
    for (path, methods) in [
        ("/loyalty/C-1001/redeem", "POST,OPTIONS"),
        ("/loyalty/C-1001/get", "GET,OPTIONS"),
        ("/profile", "GET,OPTIONS"),
    ] {
        let mut request = http.request(Method::OPTIONS, path, "");
        let headers = request.headers_mut();
        headers.insert("origin", APP_ORIGIN.parse().expect("a header value"));
        headers.insert(
            "access-control-request-method",
            "POST".parse().expect("a header value"),
        );
        headers.insert(
            "access-control-request-headers",
            "content-type,x-api-key,authorization,x-amz-date"
                .parse()
                .expect("a header value"),
        );
        let answer = http.send(request).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert_eq!(header(&answer, "access-control-allow-origin"), APP_ORIGIN);
        assert_eq!(header(&answer, "access-control-allow-methods"), methods);
        assert!(
            header(&answer, "access-control-allow-headers").contains("Authorization"),
            "{path}"
        );
        assert!(!header(&answer, "x-amzn-requestid").is_empty());
    }

    // Undefined methods and paths: 403 Missing Authentication Token, with a
    // request id and the CORS headers.
    for (method, path) in [
        (Method::DELETE, "/loyalty/C-1001/get"),
        (Method::PUT, "/profile"),
        (Method::GET, "/loyalty/C-1001"),
        (Method::GET, "/loyalty/C-1001/redeem"),
        (Method::GET, "/nowhere"),
    ] {
        let answer = http.send(http.request(method.clone(), path, "")).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(answer.error_type, "MissingAuthenticationTokenException");
        assert_eq!(
            answer.json,
            json!({"message": "Missing Authentication Token"})
        );
        assert_eq!(header(&answer, "access-control-allow-origin"), APP_ORIGIN);
        assert!(!header(&answer, "x-amzn-requestid").is_empty());
    }

    // Every response has its own request id: the WAF's refusals, the
    // Cognito route's, the management API's, and successes.
    let mut ids = Vec::new();
    let waf = http
        .send(http.request(
            Method::GET,
            "/loyalty/C-1001/get?id=1%27%20OR%20%271%27%3D%271",
            "",
        ))
        .await;
    assert_eq!(waf.error_type, "WAFFilteredException");
    assert_eq!(header(&waf, "access-control-allow-origin"), APP_ORIGIN);
    let profile = http.send(http.request(Method::GET, "/profile", "")).await;
    assert_eq!(profile.status, StatusCode::UNAUTHORIZED);
    let admin = http
        .send(http.request(Method::GET, "/admin/usageplans", ""))
        .await;
    assert_eq!(admin.status, StatusCode::FORBIDDEN);
    let mut request = http.request(Method::GET, "/loyalty/C-1002/get", "");
    request
        .headers_mut()
        .insert("x-api-key", API_KEY.parse().expect("a header value"));
    let ok = http.send(http.sign(request, "", &CLIENT)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json);
    for answer in [&waf, &profile, &admin, &ok] {
        let id = header(answer, "x-amzn-requestid");
        assert_eq!(id.len(), 36, "a UUID: {id}");
        ids.push(id.to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "one id per response");
}

/// The demo's configuration folder, copied, with `[api.access_log]` on
/// (the lines the shipped `gateway.toml` has commented out).
fn config_with_access_log() -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let target =
        std::env::temp_dir().join(format!("airline-loyalty-access-log-{}", std::process::id()));
    copy_dir(&source, &target);
    let file = target.join("gateway.toml");
    let text = std::fs::read_to_string(&file).expect("the configuration reads");
    let on = text
        .replace("# [api.access_log]", "[api.access_log]")
        .replace("# format = ", "format = ")
        .replace("# destination = ", "destination = ");
    assert_ne!(on, text, "gateway.toml has the access log commented out");
    std::fs::write(&file, on).expect("the configuration writes");
    file
}

/// The access-log line whose `requestId` is `id`, once the server wrote it.
fn log_line(server: &support::Server, id: &str) -> Value {
    let needle = format!(r#""requestId":"{id}""#);
    server.wait_for_output(&needle, 0);
    let output = server.output_text();
    let line = output
        .lines()
        .find(|line| line.contains(&needle))
        .expect("the line is there");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[tokio::test(flavor = "current_thread")]
async fn the_access_log_prints_in_the_configured_format() {
    let config = config_with_access_log();
    let server = start_with(&["--config", config.to_str().expect("a UTF-8 path")]);
    let http = Http::new(&server.base);

    let unsigned = http
        .send(http.request(Method::GET, "/loyalty/C-1001/get", ""))
        .await;
    let line = log_line(&server, header(&unsigned, "x-amzn-requestid"));
    assert_eq!(line["status"], "403");
    assert_eq!(line["httpMethod"], "GET");
    assert_eq!(line["resourcePath"], "/loyalty/{customerId}/get");
    assert_eq!(line["error"], "MISSING_AUTHENTICATION_TOKEN");
    assert_eq!(line["apiKeyId"], "-");
    assert_eq!(line["ip"], "127.0.0.1");

    let mut request = http.request(Method::GET, "/loyalty/C-1001/get", "");
    request
        .headers_mut()
        .insert("x-api-key", API_KEY.parse().expect("a header value"));
    let ok = http.send(http.sign(request, "", &CLIENT)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json);
    let line = log_line(&server, header(&ok, "x-amzn-requestid"));
    assert_eq!(line["status"], "200");
    assert_eq!(line["apiKeyId"], "demo-key");
    assert_eq!(
        line["principalId"],
        "arn:aws:iam::123456789012:user/loyalty-client"
    );
    assert_eq!(line["error"], "-");

    let blocked = http
        .send(http.request(Method::GET, "/nowhere?id=1%27%20OR%20%271%27%3D%271", ""))
        .await;
    let line = log_line(&server, header(&blocked, "x-amzn-requestid"));
    assert_eq!(line["status"], "403");
    assert_eq!(line["error"], "WAF_FILTERED");
    assert_eq!(line["waf"], "403");
    assert_eq!(line["resourcePath"], "-");
}
