//! `GatewayLayer` composes its layers with static types and unwraps each
//! layer's response body instead of boxing it. These tests check that this
//! answers exactly as the layers erased one by one (the facade's previous
//! composition, rebuilt here from the public `BoxedStack`, `Boxed` and
//! `box_body`): in every one of the 48 combinations of WAF, authorizer (none,
//! IAM, JWT), API key, throttle and quota, for a sequence of requests that
//! meets every refusal (WAF block, missing or bad signature or token, no or
//! unknown key, throttled, over quota) and admits others, with and without a
//! request body. Status, headers, body bytes, the body's size hint and end of
//! stream, and what the service behind the stack saw must all be equal
//! (the request's span outermost in both; its `x-amzn-RequestId`, new for
//! each request, only has to be there).

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body as _;
use http_body_util::{BodyExt, Full};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use portcullis::config::Config;
use portcullis::core::client_ip::PeerAddr;
use portcullis::core::clock::ManualClock;
use portcullis::core::context::RequestContextExt;
use portcullis::core::request_span::{RequestSpanLayer, X_AMZN_REQUEST_ID};
use portcullis::{Auth, Boxed, BoxedStack, Gateway, GatewayBody, GatewayLayer};
use portcullis_test_support::sigv4::{Signing, sign_request};
use tower::{Layer, Service, ServiceExt};

const NOW: u64 = 1_800_000_000;
const ACCESS_KEY: &str = "AKIACOMPOSEDTEST0001";
const SECRET: &str = "composed/test/secret/EXAMPLEKEY00000000001";
const API_KEY: &str = "ComposedKey0123456789abcdefgh";
const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example";

fn dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "portcullis-composed-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"execute-api:Invoke",
  "Resource":"arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/*/loyalty/*"}]}"#;

/// SQLi on the query (blocks), XSS on the body (reads the body first, so the
/// WAF's replayed body goes down the stack), and a counting rule that labels
/// every request and inserts a header.
const ACL: &str = r#"{"Name":"composed-acl","DefaultAction":{"Allow":{}},"Rules":[
  {"Name":"sqli-query","Priority":1,"Action":{"Block":{}},
   "Statement":{"SqliMatchStatement":{"FieldToMatch":{"QueryString":{}},
     "TextTransformations":[{"Priority":0,"Type":"URL_DECODE"}]}},
   "VisibilityConfig":{"SampledRequestsEnabled":false,"CloudWatchMetricsEnabled":false,"MetricName":"sqli"}},
  {"Name":"xss-body","Priority":2,"Action":{"Block":{"CustomResponse":{"ResponseCode":406}}},
   "Statement":{"XssMatchStatement":{"FieldToMatch":{"Body":{}},
     "TextTransformations":[{"Priority":0,"Type":"NONE"}]}},
   "VisibilityConfig":{"SampledRequestsEnabled":false,"CloudWatchMetricsEnabled":false,"MetricName":"xss"}},
  {"Name":"label-all","Priority":3,
   "Action":{"Count":{"CustomRequestHandling":{"InsertHeaders":[{"Name":"seen","Value":"yes"}]}}},
   "RuleLabels":[{"Name":"seen"}],
   "Statement":{"SizeConstraintStatement":{"FieldToMatch":{"UriPath":{}},"ComparisonOperator":"GE","Size":0,
     "TextTransformations":[{"Priority":0,"Type":"NONE"}]}},
   "VisibilityConfig":{"SampledRequestsEnabled":false,"CloudWatchMetricsEnabled":false,"MetricName":"label"}}]}"#;

fn config() -> Config {
    Config::from_toml(&format!(
        r#"
        [gateway]
        region = "us-east-1"
        account_id = "123456789012"
        api_id = "a1b2c3d4e5"
        stage = "prod"
        [[usage_plans]]
        id = "small"
        throttle = {{ rate_limit = 1.0, burst_limit = 2 }}
        quota = {{ limit = 5, period = "DAY" }}
        [[api_keys]]
        id = "k1"
        value = "{API_KEY}"
        usage_plans = ["small"]
        [[iam.users]]
        arn = "arn:aws:iam::123456789012:user/composed"
        access_key_id = "{ACCESS_KEY}"
        secret_access_key = "{SECRET}"
        policies = ["policy.json"]
        [jwt]
        cognito_user_pool = "us-east-1_Example"
        jwks = "jwks.json"
        client_ids = ["web"]
        token_use = "id"
        [waf]
        web_acl = "acl.json"
        "#
    ))
    .expect("config")
}

fn gateway(dir: &Path, clock: &ManualClock) -> Gateway {
    Gateway::builder(config())
        .base_dir(dir)
        .clock(Arc::new(clock.clone()))
        .build()
        .expect("gateway")
}

fn token() -> String {
    let pem = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/demo-signing-key.pem"),
    )
    .expect("the demo key");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("airline-loyalty-demo-1".to_owned());
    let claims = serde_json::json!({"iss": ISSUER, "sub": "u-1", "aud": "web", "token_use": "id",
                        "iat": NOW - 10, "exp": NOW + 3600, "cognito:username": "alice"});
    encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(&pem).expect("PEM"),
    )
    .expect("encodes")
}

/// How a request authenticates.
#[derive(Clone, Copy, Debug)]
enum Credential {
    None,
    SigV4,
    BadSigV4,
    Jwt,
    BadJwt,
}

/// One request of the sequence.
#[derive(Clone, Copy, Debug)]
struct Case {
    credential: Credential,
    key: Option<&'static str>,
    query: &'static str,
    body: &'static str,
    /// Seconds the clock moves forward before the request.
    wait: u64,
}

fn request(case: Case, now: u64, jwt: &str) -> Request<Full<Bytes>> {
    let method = if case.body.is_empty() { "GET" } else { "POST" };
    let uri = format!("http://api.example/loyalty/C-1/get{}", case.query);
    let mut builder = Request::builder()
        .method(method)
        .uri(&uri)
        .header("host", "api.example");
    if let Some(key) = case.key {
        builder = builder.header("x-api-key", key);
    }
    match case.credential {
        Credential::Jwt => builder = builder.header("authorization", format!("Bearer {jwt}")),
        Credential::BadJwt => {
            builder = builder.header("authorization", format!("Bearer {jwt}x"));
        }
        Credential::None | Credential::SigV4 | Credential::BadSigV4 => {}
    }
    let mut request = builder
        .body(Full::new(Bytes::from_static(case.body.as_bytes())))
        .expect("request");
    request
        .extensions_mut()
        .insert(PeerAddr("192.0.2.7:4000".parse().expect("address")));
    if let Credential::SigV4 | Credential::BadSigV4 = case.credential {
        let secret = if let Credential::SigV4 = case.credential {
            SECRET
        } else {
            "not-the-secret"
        };
        let signing = Signing::at(UNIX_EPOCH + Duration::from_secs(now))
            .credentials(ACCESS_KEY, secret, None);
        sign_request(&mut request, case.body.as_bytes(), &signing);
    }
    request
}

/// The sequence: every refusal, and enough admitted requests with a key to
/// run into the throttle (burst 2, 1 a second) and the quota (5 a day).
fn cases() -> Vec<Case> {
    let case = |credential, key, query, body, wait| Case {
        credential,
        key,
        query,
        body,
        wait,
    };
    let mut cases = Vec::new();
    for credential in [Credential::None, Credential::SigV4, Credential::Jwt] {
        cases.extend([
            case(
                credential,
                Some(API_KEY),
                "?id=1%27%20OR%20%271%27%3D%271",
                "",
                0,
            ),
            case(
                credential,
                Some(API_KEY),
                "",
                "<script>alert(1)</script>",
                0,
            ),
            case(credential, None, "?fields=points", "", 0),
            case(credential, Some("NotAKey0123456789abcdefghijk"), "", "", 0),
            case(credential, Some(API_KEY), "?fields=points", "", 1),
            case(credential, Some(API_KEY), "", "{\"points\":1}", 0),
            case(credential, Some(API_KEY), "", "", 0),
            case(credential, Some(API_KEY), "", "", 0),
            case(credential, Some(API_KEY), "?a=b", "", 2),
        ]);
    }
    cases.extend([
        case(Credential::BadSigV4, Some(API_KEY), "", "", 1),
        case(Credential::BadJwt, Some(API_KEY), "", "", 0),
        case(Credential::Jwt, Some(API_KEY), "", "body", 1),
        case(Credential::SigV4, Some(API_KEY), "", "", 1),
        case(Credential::SigV4, Some(API_KEY), "", "", 1),
    ]);
    cases
}

/// The service behind the stack: it answers what it saw (method, path, the
/// request body, the key, the caller, the WAF's labels and header), with a
/// header of its own.
async fn echo(request: Request<GatewayBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    let key = request.api_key().map(|key| key.key_id().to_owned());
    let caller = request.caller().map(|caller| caller.principal().to_owned());
    let labels = request.waf_labels().map(|labels| format!("{labels:?}"));
    let headers: Vec<String> = request
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-amzn-waf"))
        .map(|(name, value)| format!("{name}: {value:?}"))
        .collect();
    let method = request.method().to_string();
    let path = request.uri().to_string();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|body| String::from_utf8_lossy(&body.to_bytes()).into_owned())
        .unwrap_or_else(|e| format!("error: {e}"));
    let seen = serde_json::json!({
        "method": method, "path": path, "body": body, "key": key,
        "caller": caller, "labels": labels, "headers": headers,
    });
    let mut response = Response::new(Full::new(Bytes::from(seen.to_string())));
    response
        .headers_mut()
        .insert("x-inner", http::HeaderValue::from_static("yes"));
    Ok(response)
}

/// The layers of `layer`, erased one by one as the facade used to: each
/// layer's service behind a `BoxedStack`, its response body boxed.
fn erased_one_by_one<S>(parts: &Parts, inner: S) -> Boxed<BoxedStack<Infallible>>
where
    S: Service<Request<GatewayBody>, Response = Response<Full<Bytes>>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let mut stack = BoxedStack::new(inner);
    if let Some(quota) = &parts.quota {
        stack = BoxedStack::new(quota.layer(Boxed::new(stack)));
    }
    if let Some(throttle) = &parts.throttle {
        stack = BoxedStack::new(throttle.layer(Boxed::new(stack)));
    }
    if let Some(api_key) = &parts.api_key {
        stack = BoxedStack::new(api_key.layer(Boxed::new(stack)));
    }
    match &parts.auth {
        Some(Auth::Iam(sigv4)) => stack = BoxedStack::new(sigv4.layer(Boxed::new(stack))),
        Some(Auth::Jwt(jwt)) => stack = BoxedStack::new(jwt.layer(Boxed::new(stack))),
        _ => {}
    }
    if let Some(waf) = &parts.waf {
        stack = BoxedStack::new(waf.layer(Boxed::new(stack)));
    }
    stack = BoxedStack::new(RequestSpanLayer::new().layer(Boxed::new(stack)));
    Boxed::new(stack)
}

/// Which layers a combination has, taken from one gateway.
struct Parts {
    waf: Option<portcullis::waf::WafLayer>,
    auth: Option<Auth>,
    api_key: Option<portcullis::api_key::ApiKeyLayer<portcullis::GatewayKeyStore>>,
    throttle: Option<portcullis::throttle::ThrottleLayer<portcullis::GatewayThrottleStore>>,
    quota: Option<portcullis::quota::QuotaLayer<portcullis::GatewayQuotaStore>>,
}

impl Parts {
    fn of(gateway: &Gateway, combination: usize) -> Self {
        let on = |bit: usize| combination & (1 << bit) != 0;
        Self {
            waf: gateway.waf_layer().filter(|_| on(0)),
            auth: match combination >> 4 {
                0 => None,
                1 => gateway.sigv4_layer().map(Auth::Iam),
                _ => gateway.jwt_layer().map(Auth::Jwt),
            },
            api_key: Some(gateway.api_key_layer()).filter(|_| on(1)),
            throttle: Some(gateway.throttle_layer()).filter(|_| on(2)),
            quota: Some(gateway.quota_layer()).filter(|_| on(3)),
        }
    }

    fn layer(&self) -> GatewayLayer {
        GatewayLayer::new()
            .waf(self.waf.clone())
            .auth(self.auth.clone())
            .api_key(self.api_key.clone())
            .throttle(self.throttle.clone())
            .quota(self.quota.clone())
    }
}

/// Everything a client can see of a response.
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    /// The headers but `x-amzn-RequestId`, whose value is new each time.
    headers: Vec<(String, Vec<u8>)>,
    /// The length of the `x-amzn-RequestId`, a UUID's.
    request_id_len: Option<usize>,
    size_hint: (u64, Option<u64>),
    end_of_stream: bool,
    body: Bytes,
}

async fn seen(response: Response<GatewayBody>) -> Seen {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter(|(name, _)| *name != X_AMZN_REQUEST_ID)
        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
        .collect();
    let request_id_len = response
        .headers()
        .get(X_AMZN_REQUEST_ID)
        .map(|v| v.as_bytes().len());
    let body = response.into_body();
    let hint = body.size_hint();
    let end_of_stream = body.is_end_stream();
    Seen {
        status,
        headers,
        request_id_len,
        size_hint: (hint.lower(), hint.upper()),
        end_of_stream,
        body: body.collect().await.expect("a full body").to_bytes(),
    }
}

#[tokio::test]
async fn the_composed_stack_answers_as_the_layers_erased_one_by_one() {
    let dir = dir();
    std::fs::write(dir.join("policy.json"), POLICY).expect("policy");
    std::fs::write(dir.join("acl.json"), ACL).expect("acl");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwks.json"),
        dir.join("jwks.json"),
    )
    .expect("jwks");
    let jwt = token();
    let cases = cases();
    let mut statuses = std::collections::BTreeSet::new();
    // Bits 0-3: WAF, API key, throttle, quota; bits 4-5: no authorizer, IAM, JWT.
    for combination in 0..48 {
        // Two gateways, so that each stack has its own buckets and counters,
        // on one clock.
        let clock = ManualClock::at_unix(NOW);
        let (ours, theirs) = (gateway(&dir, &clock), gateway(&dir, &clock));
        let composed = Parts::of(&ours, combination)
            .layer()
            .layer(tower::service_fn(echo));
        let reference =
            erased_one_by_one(&Parts::of(&theirs, combination), tower::service_fn(echo));
        for (i, &case) in cases.iter().enumerate() {
            clock.advance(Duration::from_secs(case.wait));
            let now = NOW + cases[..=i].iter().map(|c| c.wait).sum::<u64>();
            let a = composed
                .clone()
                .oneshot(request(case, now, &jwt))
                .await
                .expect("infallible");
            let b = reference
                .clone()
                .oneshot(request(case, now, &jwt))
                .await
                .expect("infallible");
            let (a, b) = (seen(a).await, seen(b).await);
            assert_eq!(a, b, "combination {combination:06b}, request {i}: {case:?}");
            assert_eq!(a.request_id_len, Some(36), "{a:?}");
            statuses.insert(a.status);
        }
    }
    // The sequence met the refusals it is meant to.
    for status in [200, 401, 403, 406, 429] {
        assert!(statuses.contains(&status), "no {status} in {statuses:?}");
    }
    std::fs::remove_dir_all(dir).ok();
}
