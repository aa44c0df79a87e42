//! The seed's walkthrough, end to end: the `airline-loyalty` binary on an
//! ephemeral port, driven over real HTTP with requests signed by the
//! `aws-sigv4` crate.
//!
//! The binary runs on the real clock (its layers take the system clock), so
//! requests that need a throttle token (rate 1/s, burst 2) are spaced a
//! little over a second apart: the test takes about ten seconds.

mod support;

use std::time::{Duration, SystemTime};

use http::{Method, StatusCode};
use support::{API_KEY, Answer, Http, Server, Signer, mint_token, start, start_with};

const CLIENT: Signer<'static> = Signer {
    access_key_id: "AKIALOYALTYCLIENT001",
    secret_access_key: "loyaltyClientSecretKeyDemo0000000000001",
    session_token: None,
};
const ADMIN: Signer<'static> = Signer {
    access_key_id: "AKIALOYALTYADMIN0001",
    secret_access_key: "loyaltyAdminSecretKeyDemo00000000000001",
    session_token: None,
};
/// A little over the throttle's one token per second.
const TOKEN_INTERVAL: Duration = Duration::from_millis(1050);

impl Http {
    /// `GET /loyalty/C-1001/get` signed by the client user, with `key`.
    async fn loyalty(&self, key: Option<&str>) -> Answer {
        let mut request = self.request(Method::GET, "/loyalty/C-1001/get", "");
        if let Some(key) = key {
            request
                .headers_mut()
                .insert("x-api-key", key.parse().expect("header value"));
        }
        self.send(self.sign(request, "", &CLIENT)).await
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_seed_walkthrough() {
    walk(start()).await;
}

/// The same walkthrough with the throttle and quota on Redis (`REDIS_URL`,
/// which CI sets), under a key prefix of its own so that every run starts
/// with a fresh quota.
#[tokio::test(flavor = "current_thread")]
async fn the_seed_walkthrough_on_redis() {
    let url = match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if std::env::var_os("CI").is_some() => {
            panic!("REDIS_URL is not set: under CI the Redis walkthrough must run")
        }
        _ => {
            eprintln!(
                "skipped: REDIS_URL is not set; run `bash scripts/test.sh` (which starts Redis) to run the walkthrough on Redis"
            );
            return;
        }
    };
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let prefix = format!("walkthrough-{}-{nanos}", std::process::id());
    walk(start_with(&[
        "--store",
        &url,
        "--store-key-prefix",
        &prefix,
    ]))
    .await;
}

async fn walk(server: Server) {
    let http = Http::new(&server.base);

    // 1. Unsigned: 403 Missing Authentication Token.
    let answer = http
        .send(http.request(Method::GET, "/loyalty/C-1001/get", ""))
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.error_type, "MissingAuthenticationTokenException");
    assert_eq!(answer.json["message"], "Missing Authentication Token");

    // 2. Signed, no key: 403 Forbidden.
    let answer = http.loyalty(None).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.error_type, "ForbiddenException");
    assert_eq!(answer.json["message"], "Forbidden");

    // 3. Signed + key: 200 with points.
    let answer = http.loyalty(Some(API_KEY)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["points"], 12_400);
    assert_eq!(answer.json["tier"], "SILVER");
    assert_eq!(answer.json["nextTier"], "GOLD");
    let mut used = 1;

    // 4. Quick repeats: 429 Too Many Requests within the burst of 2 (+1 if a
    //    second went by).
    let mut throttled = None;
    for _ in 0..4 {
        let answer = http.loyalty(Some(API_KEY)).await;
        if answer.status == StatusCode::OK {
            used += 1;
        } else {
            throttled = Some(answer);
            break;
        }
    }
    let answer = throttled.expect("a quick repeat is throttled");
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.error_type, "TooManyRequestsException");
    assert_eq!(answer.json["message"], "Too Many Requests");
    assert!(used <= 3, "burst 2 let {used} through");

    // 5. Up to 10 a day, then 429 Limit Exceeded.
    while used < 10 {
        tokio::time::sleep(TOKEN_INTERVAL).await;
        let answer = http.loyalty(Some(API_KEY)).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "request {}: {}",
            used + 1,
            answer.json
        );
        used += 1;
    }
    tokio::time::sleep(TOKEN_INTERVAL).await;
    let answer = http.loyalty(Some(API_KEY)).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.error_type, "LimitExceededException");
    assert_eq!(answer.json["message"], "Limit Exceeded");

    // 6. The usage report: admins only.
    let today = time::OffsetDateTime::now_utc().date();
    let path = format!(
        "/admin/usageplans/loyalty-basic/usage?keyId=demo-key&startDate={today}&endDate={today}"
    );
    let answer = http
        .send(http.sign(http.request(Method::GET, &path, ""), "", &CLIENT))
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.error_type, "AccessDeniedException");
    assert!(
        answer.json["message"]
            .as_str()
            .expect("a message")
            .starts_with("User: arn:aws:iam::123456789012:user/loyalty-client is not authorized"),
        "{}",
        answer.json
    );
    let answer = http
        .send(http.sign(http.request(Method::GET, &path, ""), "", &ADMIN))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["usagePlanId"], "loyalty-basic");
    assert_eq!(
        answer.json["items"]["demo-key"],
        serde_json::json!([[10, 0]])
    );

    // 7. A temporary extension lets the key through again.
    let patch = r#"{"patchOperations":[{"op":"replace","path":"/remaining","value":"5"}]}"#;
    let mut request = http.request(
        Method::PATCH,
        "/admin/usageplans/loyalty-basic/keys/demo-key/usage",
        patch,
    );
    request
        .headers_mut()
        .insert("content-type", "application/json".parse().expect("header"));
    let answer = http.send(http.sign(request, patch, &ADMIN)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    tokio::time::sleep(TOKEN_INTERVAL).await;
    let answer = http.loyalty(Some(API_KEY)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["customerId"], "C-1001");

    // No key, secret key or signature in the demo's output (its logs at
    // debug and trace), which names the key and the callers.
    server.assert_output_has_no_secret(
        &http,
        &[
            "key_id=demo-key",
            "arn:aws:iam::123456789012:user/loyalty-client",
            "arn:aws:iam::123456789012:user/loyalty-admin",
        ],
    );
}

#[tokio::test(flavor = "current_thread")]
async fn profile_waf_and_unknown_routes() {
    let server = start();
    let http = Http::new(&server.base);

    // The profile route takes a Cognito ID token.
    let token = mint_token("alice", &["frequent-flyers"]);
    let mut request = http.request(Method::GET, "/profile", "");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let answer = http.send(request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["cognito:username"], "alice");
    assert_eq!(answer.json["email"], "alice@example.com");
    assert_eq!(
        answer.json["cognito:groups"],
        serde_json::json!(["frequent-flyers"])
    );
    assert_eq!(answer.json["token_use"], "id");

    let answer = http.send(http.request(Method::GET, "/profile", "")).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.json["message"], "Unauthorized");

    // A tampered token.
    let mut request = http.request(Method::GET, "/profile", "");
    let tampered = format!("{}x", &token[..token.len() - 1]);
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {tampered}").parse().expect("header"),
    );
    assert_eq!(http.send(request).await.status, StatusCode::UNAUTHORIZED);

    // The WAF: SQL injection in the query, before any authentication.
    let answer = http
        .send(http.request(
            Method::GET,
            "/loyalty/C-1001/get?id=1%27%20OR%20%271%27%3D%271",
            "",
        ))
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.error_type, "WAFFilteredException");

    // XSS in the body.
    let answer = http
        .send(http.request(
            Method::POST,
            "/loyalty/C-1001/get",
            "q=<script>alert(1)</script>",
        ))
        .await;
    assert_eq!(answer.error_type, "WAFFilteredException");

    // The IP set: 127.0.0.1 is a trusted proxy in the demo configuration.
    let mut request = http.request(Method::GET, "/profile", "");
    request
        .headers_mut()
        .insert("x-forwarded-for", "192.0.2.10".parse().expect("header"));
    let answer = http.send(request).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.error_type, "WAFFilteredException");

    // An unknown route: API Gateway's 403 Missing Authentication Token.
    let answer = http.send(http.request(Method::GET, "/nowhere", "")).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.error_type, "MissingAuthenticationTokenException");

    // Neither the token nor the tampered one in the demo's output.
    server.assert_output_has_no_secret(&http, &["rule=sqli-query-and-body"]);
}
