//! The API Gateway extensions the demo's own export does not use, through
//! the demo binary: two more exports in `config/` run from a copy of the
//! demo's configuration whose `[api] openapi` names them, with the
//! authorizers' endpoints (a small HTTP server here, answering as the Lambda
//! functions would) in `[api.authorizers.NAME]`.
//!
//! - `extensions.openapi.json` (REST): a TOKEN authorizer on the loyalty
//!   methods, the API key taken from the authorizer's `usageIdentifierKey`
//!   (`x-amazon-apigateway-api-key-source: AUTHORIZER`), the redeem body
//!   validated after the key's usage plan, as API Gateway does, so that a
//!   refused body uses quota;
//! - `extensions-proxy.openapi.json` (HTTP API style): `/loyalty/{proxy+}`
//!   with `x-amazon-apigateway-any-method`, and a more specific resource of
//!   its own below it (`GET /loyalty/{customerId}/get`), behind a REQUEST
//!   authorizer that receives the resource and its path parameters,
//!   `x-amazon-apigateway-cors`, and a per-method throttle on the greedy
//!   resource from `[api.method_throttles]` that answers 429 after its burst
//!   and, as API Gateway keys method settings by resource, leaves the other
//!   resource alone.
//!
//! The REST export's OPTIONS-mock CORS is the demo's own `openapi.json`
//! (tests/openapi.rs).

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::post;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};
use support::{API_KEY, Answer, Http, Server, copy_dir, start_with};

const APP_ORIGIN: &str = "https://app.airline.example";

/// A second key, on a plan of three requests a day, that only the
/// authorizer hands out.
const SMALL_KEY: &str = "PartnerSmallKey0123456789abcdef";

/// Bearer tokens the TOKEN authorizer knows (and the principals they stand
/// for, which differ, so that a logged principal is not a logged token).
const GOLD_TOKEN: &str = "Bearer gold-7f3a9c2e41";
const SMALL_TOKEN: &str = "Bearer small-0b5d8e17a6";
const NOKEY_TOKEN: &str = "Bearer nokey-93c1f04b2d";
const DENIED_TOKEN: &str = "Bearer denied-4e2a7b9c01";

/// The authorizers' endpoint: `POST /token` answers TOKEN events and
/// `POST /request` REQUEST events as Lambda functions would. Counts the
/// events it receives, and keeps the REQUEST events.
struct Authorizers {
    base: String,
    calls: Arc<AtomicUsize>,
    request_events: Arc<Mutex<Vec<Value>>>,
}

impl Authorizers {
    async fn start() -> Self {
        let calls = Arc::new(AtomicUsize::new(0));
        let (token_calls, request_calls) = (Arc::clone(&calls), Arc::clone(&calls));
        let request_events = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&request_events);
        let app = Router::new()
            .route(
                "/token",
                post(move |body: axum::body::Bytes| {
                    token_calls.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        assert_eq!(event["type"], "TOKEN", "{event}");
                        let arn = event["methodArn"].clone();
                        let token = event["authorizationToken"].as_str().unwrap_or_default();
                        match token {
                            GOLD_TOKEN => allow("partner-gold", &arn, Some(API_KEY)),
                            SMALL_TOKEN => allow("partner-small", &arn, Some(SMALL_KEY)),
                            NOKEY_TOKEN => allow("partner-nokey", &arn, None),
                            DENIED_TOKEN => answer(json!({
                                "principalId": "partner-denied",
                                "policyDocument": policy("Deny", &arn),
                            })),
                            _ => (StatusCode::UNAUTHORIZED, "\"Unauthorized\"".to_owned()),
                        }
                    }
                }),
            )
            .route(
                "/request",
                post(move |body: axum::body::Bytes| {
                    request_calls.fetch_add(1, Ordering::SeqCst);
                    let recorded = Arc::clone(&recorded);
                    async move {
                        let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        assert_eq!(event["type"], "REQUEST", "{event}");
                        recorded
                            .lock()
                            .expect("no test thread panicked")
                            .push(event.clone());
                        let arn = event["methodArn"].clone();
                        let partner = event["headers"]
                            .as_object()
                            .and_then(|h| {
                                h.iter()
                                    .find(|(name, _)| name.eq_ignore_ascii_case("x-partner-id"))
                            })
                            .and_then(|(_, v)| v.as_str())
                            .unwrap_or_default();
                        let channel = event["queryStringParameters"]["channel"]
                            .as_str()
                            .unwrap_or_default();
                        let effect = if partner == "partner-42" && channel == "web" {
                            "Allow"
                        } else {
                            "Deny"
                        };
                        answer(json!({
                            "principalId": partner,
                            "policyDocument": policy(effect, &arn),
                        }))
                    }
                }),
            );
        let (listener, addr) = portcullis_test_support::serve::listener().await;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base: format!("http://{addr}"),
            calls,
            request_events,
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The REQUEST events received so far.
    fn request_events(&self) -> Vec<Value> {
        self.request_events
            .lock()
            .expect("no test thread panicked")
            .clone()
    }
}

fn policy(effect: &str, arn: &Value) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{
        "Action": "execute-api:Invoke", "Effect": effect, "Resource": arn}]})
}

fn answer(body: Value) -> (StatusCode, String) {
    (StatusCode::OK, body.to_string())
}

fn allow(principal: &str, arn: &Value, key: Option<&str>) -> (StatusCode, String) {
    let mut body = json!({"principalId": principal, "policyDocument": policy("Allow", arn)});
    if let Some(key) = key {
        body["usageIdentifierKey"] = json!(key);
    }
    answer(body)
}

/// A copy of the demo's configuration folder whose `[api] openapi` is
/// `definition`, with `extra` appended to `gateway.toml`.
fn config(tag: &str, definition: &str, extra: &str) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let target = std::env::temp_dir().join(format!(
        "airline-loyalty-extensions-{tag}-{}",
        std::process::id()
    ));
    copy_dir(&source, &target);
    let file = target.join("gateway.toml");
    let text = std::fs::read_to_string(&file).expect("the configuration reads");
    let changed = text.replace(
        "openapi = \"openapi.json\"",
        &format!("openapi = \"{definition}\""),
    );
    assert_ne!(changed, text, "gateway.toml names openapi.json");
    std::fs::write(&file, format!("{changed}\n{extra}")).expect("the configuration writes");
    file
}

fn header<'a>(answer: &'a Answer, name: &str) -> &'a str {
    answer
        .headers
        .get(name)
        .map_or("", |v| v.to_str().expect("an ASCII header"))
}

fn with_headers(
    mut request: Request<Full<bytes::Bytes>>,
    headers: &[(&'static str, &str)],
) -> Request<Full<bytes::Bytes>> {
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, value.parse().expect("a header value"));
    }
    request
}

fn start(config: &Path) -> Server {
    start_with(&["--config", config.to_str().expect("a UTF-8 path")])
}

#[tokio::test(flavor = "current_thread")]
async fn token_authorizer_supplies_the_api_key_and_validation_follows_the_usage_plan() {
    let authorizers = Authorizers::start().await;
    let file = config(
        "token",
        "extensions.openapi.json",
        &format!(
            r#"
[[usage_plans]]
id = "partner-small"
name = "Partner trial"
throttle = {{ rate_limit = 100.0, burst_limit = 100 }}
quota = {{ limit = 3, period = "DAY", offset = 0 }}

[[api_keys]]
id = "partner-small-key"
name = "Partner trial key"
value = "{SMALL_KEY}"
enabled = true
usage_plans = ["partner-small"]

[api.authorizers.partner-token]
url = "{}/token"
timeout_ms = 5000
"#,
            authorizers.base
        ),
    );
    let server = start(&file);
    let http = Http::new(&server.base);
    let get = |headers: &[(&'static str, &str)]| {
        with_headers(
            http.request(Method::GET, "/loyalty/C-1001/get", ""),
            headers,
        )
    };

    // No token: 401 before the authorizer is called; a token the
    // identityValidationExpression refuses, the same.
    let answer = http.send(get(&[])).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.json);
    let answer = http
        .send(get(&[("authorization", "Bearer NOT/VALID")]))
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.json);
    assert_eq!(authorizers.calls(), 0, "refused before the authorizer");
    assert!(!header(&answer, "x-amzn-requestid").is_empty());

    // The gold partner's token: the authorizer allows it and names the
    // demo key, whose plan admits the request.
    let answer = http.send(get(&[("authorization", GOLD_TOKEN)])).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["customerId"], "C-1001");
    assert_eq!(answer.json["points"], 12_400);
    assert_eq!(authorizers.calls(), 1);

    // AUTHORIZER key source: an allowed token without a usageIdentifierKey
    // is refused even with the demo key in x-api-key (the header is not
    // read).
    let answer = http
        .send(get(&[
            ("authorization", NOKEY_TOKEN),
            ("x-api-key", API_KEY),
        ]))
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.json);
    assert_eq!(answer.json["message"], "Forbidden");

    // A Deny policy: 403, as API Gateway words it.
    let answer = http.send(get(&[("authorization", DENIED_TOKEN)])).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.json);
    assert_eq!(
        answer.json["message"],
        "User is not authorized to access this resource with an explicit deny"
    );
    // An unknown token: the endpoint answers Unauthorized, 401.
    let answer = http
        .send(get(&[("authorization", "Bearer stranger-000000")]))
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.json);
    assert_eq!(authorizers.calls(), 4);

    // What this export does not define: 403 Missing Authentication Token,
    // without calling the authorizer.
    let answer = http
        .send(with_headers(
            http.request(Method::DELETE, "/loyalty/C-1001/get", ""),
            &[("authorization", GOLD_TOKEN)],
        ))
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.json["message"], "Missing Authentication Token");
    assert_eq!(authorizers.calls(), 4);

    // The trial key (three requests a day), picked by the authorizer:
    // API Gateway checks the key's usage plan before request validation,
    // so the two bodies the Redemption model refuses (400) use two of the
    // three requests, the valid one the third, and after it even an invalid
    // body gets the quota's 429.
    let redeem = |body: &str| {
        with_headers(
            http.request(Method::POST, "/loyalty/C-1002/redeem", body),
            &[
                ("authorization", SMALL_TOKEN),
                ("content-type", "application/json"),
            ],
        )
    };
    for bad in [
        r#"{"points": 0, "reward": "upgrade"}"#,
        r#"{"points": 100}"#,
    ] {
        let answer = http.send(redeem(bad)).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            answer.json
        );
        assert_eq!(answer.json, json!({"message": "Invalid request body"}));
    }
    let answer = http
        .send(redeem(r#"{"points": 250, "reward": "upgrade"}"#))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["points"], 58_000);
    let answer = http.send(redeem(r#"{"points": 0}"#)).await;
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        answer.json
    );
    assert_eq!(answer.json["message"], "Limit Exceeded");
    assert!(!header(&answer, "x-amzn-requestid").is_empty());

    // The gold partner's key is another plan: still served.
    tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
    let answer = http.send(get(&[("authorization", GOLD_TOKEN)])).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);

    // Neither the tokens nor the keys the authorizer handed out are in the
    // server's logs; the key ids are.
    server.assert_output_has_no_secret(&http, &["demo-key", "partner-small-key"]);
    std::fs::remove_dir_all(file.parent().expect("a folder")).ok();
}

#[tokio::test(flavor = "current_thread")]
async fn greedy_any_method_behind_a_request_authorizer_with_http_api_cors_and_a_method_throttle() {
    let authorizers = Authorizers::start().await;
    let file = config(
        "proxy",
        "extensions-proxy.openapi.json",
        &format!(
            r#"
[api.method_throttles]
"/loyalty/{{proxy+}}/*" = {{ rate_limit = 0.01, burst_limit = 5 }}

[api.authorizers.partner-request]
url = "{}/request"
timeout_ms = 5000
"#,
            authorizers.base
        ),
    );
    let server = start(&file);
    let http = Http::new(&server.base);
    let partner = [("x-partner-id", "partner-42"), ("origin", APP_ORIGIN)];

    // A preflight is answered from x-amazon-apigateway-cors, before the
    // authorizer and without credentials.
    let preflight = with_headers(
        http.request(Method::OPTIONS, "/loyalty/C-1002/redeem", ""),
        &[
            ("origin", APP_ORIGIN),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "content-type,x-partner-id",
            ),
        ],
    );
    let answer = http.send(preflight).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(header(&answer, "access-control-allow-origin"), APP_ORIGIN);
    assert_eq!(
        header(&answer, "access-control-allow-methods"),
        "GET,POST,DELETE,OPTIONS"
    );
    assert_eq!(
        header(&answer, "access-control-allow-headers"),
        "content-type,x-partner-id"
    );
    assert_eq!(header(&answer, "access-control-max-age"), "600");
    assert!(!header(&answer, "x-amzn-requestid").is_empty());
    // Another origin gets no CORS headers.
    let answer = http
        .send(with_headers(
            http.request(Method::OPTIONS, "/loyalty/C-1002/redeem", ""),
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "POST"),
            ],
        ))
        .await;
    assert_eq!(header(&answer, "access-control-allow-origin"), "");
    assert_eq!(authorizers.calls(), 0);

    // Identity sources missing (no channel): 401 before the authorizer,
    // with the CORS headers on the refusal.
    let answer = http
        .send(with_headers(
            http.request(Method::GET, "/loyalty/C-1001/get", ""),
            &partner,
        ))
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.json);
    assert_eq!(header(&answer, "access-control-allow-origin"), APP_ORIGIN);
    assert_eq!(authorizers.calls(), 0);
    // Another partner: the authorizer denies, 403.
    let answer = http
        .send(with_headers(
            http.request(Method::GET, "/loyalty/C-1001/get?channel=web", ""),
            &[("x-partner-id", "partner-13"), ("origin", APP_ORIGIN)],
        ))
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.json);
    assert_eq!(header(&answer, "access-control-allow-origin"), APP_ORIGIN);
    assert_eq!(authorizers.calls(), 1);

    // Allowed: GET /loyalty/{customerId}/get is a resource of its own; the
    // greedy resource takes every other method and path below /loyalty to
    // the demo's handlers. The CORS headers are on the answers.
    let answer = http
        .send(with_headers(
            http.request(Method::GET, "/loyalty/C-1001/get?channel=web", ""),
            &partner,
        ))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["points"], 12_400);
    assert_eq!(header(&answer, "access-control-allow-origin"), APP_ORIGIN);
    assert_eq!(
        header(&answer, "access-control-expose-headers"),
        "x-amzn-requestid"
    );
    let redeem = |amount: u32| {
        let body = format!(r#"{{"points": {amount}, "reward": "lounge pass"}}"#);
        with_headers(
            http.request(Method::POST, "/loyalty/C-1002/redeem?channel=web", &body),
            &[
                ("x-partner-id", "partner-42"),
                ("content-type", "application/json"),
            ],
        )
    };
    let answer = http.send(redeem(1000)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["points"], 57_250);
    // Any method passes the gateway on the greedy resource: the demo's
    // router itself answers 405 for a DELETE it has no handler for.
    let answer = http
        .send(with_headers(
            http.request(Method::DELETE, "/loyalty/C-1002/redeem?channel=web", ""),
            &partner,
        ))
        .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.error_type, "", "not a gateway refusal");
    assert_eq!(authorizers.calls(), 4);

    // The REQUEST events name the resource each request was routed to, with
    // its path parameters, as API Gateway sends them; `path` stays the
    // request's.
    // (The first is partner-13's, denied.)
    let events = authorizers.request_events();
    assert_eq!(events.len(), 4);
    let get = &events[1];
    assert_eq!(get["resource"], "/loyalty/{customerId}/get", "{get}");
    assert_eq!(
        get["requestContext"]["resourcePath"],
        "/loyalty/{customerId}/get"
    );
    assert_eq!(get["pathParameters"], json!({"customerId": "C-1001"}));
    assert_eq!(get["path"], "/loyalty/C-1001/get");
    let post = &events[2];
    assert_eq!(post["resource"], "/loyalty/{proxy+}", "{post}");
    assert_eq!(post["requestContext"]["resourcePath"], "/loyalty/{proxy+}");
    assert_eq!(post["pathParameters"], json!({"proxy": "C-1002/redeem"}));
    assert_eq!(post["path"], "/loyalty/C-1002/redeem");
    assert_eq!(events[3]["httpMethod"], "DELETE");
    assert_eq!(events[3]["resource"], "/loyalty/{proxy+}");

    // Outside the greedy resource: 403 Missing Authentication Token.
    for path in ["/profile", "/loyalty", "/"] {
        let answer = http.send(http.request(Method::GET, path, "")).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(answer.json["message"], "Missing Authentication Token");
    }

    // The method throttle `/loyalty/{proxy+}/*` (burst 5, one request per
    // 100 s) is the greedy resource's, as API Gateway keys method settings
    // by resource: the resource of its own below it is not limited by it,
    // however many requests it takes.
    for _ in 0..8 {
        let answer = http
            .send(with_headers(
                http.request(Method::GET, "/loyalty/C-1003/get?channel=web", ""),
                &partner,
            ))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    }
    // On the greedy resource two requests went through it above; three more
    // are admitted, then 429 for every caller of the method. The
    // authorizer's refusals above did not count: the throttle comes after
    // the authorizer.
    let mut admitted = 0;
    let answer = loop {
        let answer = http.send(redeem(10)).await;
        if answer.status != StatusCode::OK {
            break answer;
        }
        admitted += 1;
        assert!(admitted <= 5, "the method throttle never refused");
    };
    assert_eq!(admitted, 3, "burst 5, 2 used before");
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        answer.json
    );
    assert_eq!(answer.json["message"], "Too Many Requests");
    assert!(!header(&answer, "x-amzn-requestid").is_empty());
    // With an origin, the refusal carries the CORS headers.
    let answer = http
        .send(with_headers(
            http.request(Method::DELETE, "/loyalty/C-1002/redeem?channel=web", ""),
            &partner,
        ))
        .await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&answer, "access-control-allow-origin"), APP_ORIGIN);
    // The other resource still answers.
    let answer = http
        .send(with_headers(
            http.request(Method::GET, "/loyalty/C-1001/get?channel=web", ""),
            &partner,
        ))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    std::fs::remove_dir_all(file.parent().expect("a folder")).ok();
}
