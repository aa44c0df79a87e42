//! `[api] openapi`: the per-method stacks built from the gateway's own
//! layers (SigV4 with IAM policies, the JWT layer with Cognito scopes, a
//! custom authorizer over HTTP, the API key from the header or from the
//! authorizer, the throttle with a per-method limit, the quota, the WAF), in
//! an axum app, with requests signed by the `aws-sigv4` crate and tokens
//! signed with the demo key.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use portcullis::Gateway;
use portcullis::config::{Config, ConfigFileError};
use portcullis_core::clock::ManualClock;
use serde_json::{Value, json};
use tower::{Layer, ServiceExt};

#[path = "support/capture.rs"]
mod capture;

const ACCESS_KEY: &str = "AKIAAPITESTCLIENT001";
const SECRET: &str = "api/test/secret/EXAMPLEKEY000000000001";
const API_KEY: &str = "ApiTestKey0123456789abcdefgh";
const NOW: u64 = 1_795_000_000;
const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example";
const APP_ORIGIN: &str = "https://app.example";

const DEFINITION: &str = r##"
openapi: "3.0.1"
info: { title: pets, version: "1" }
x-amazon-apigateway-api-key-source: KEY_SOURCE
x-amazon-apigateway-request-validators:
  body: { validateRequestBody: true, validateRequestParameters: true }
x-amazon-apigateway-gateway-responses:
  DEFAULT_4XX:
    responseParameters:
      gatewayresponse.header.Access-Control-Allow-Origin: "'https://app.example'"
paths:
  /pets/{petId}:
    get:
      security: [ { sigv4: [], api_key: [] } ]
  /pets:
    post:
      security: [ { pool: [ "pets/write" ] } ]
      x-amazon-apigateway-request-validator: body
      requestBody:
        required: true
        content:
          application/json:
            schema: { $ref: "#/components/schemas/Pet" }
  /public:
    get: {}
  /custom:
    get:
      security: [ { tokenAuth: [] }, { api_key: [] } ]
components:
  schemas:
    Pet:
      type: object
      required: [ name ]
      properties: { name: { type: string, minLength: 1 } }
  securitySchemes:
    sigv4: { type: apiKey, name: Authorization, in: header, x-amazon-apigateway-authtype: awsSigv4 }
    api_key: { type: apiKey, name: x-api-key, in: header }
    pool:
      type: apiKey
      name: Authorization
      in: header
      x-amazon-apigateway-authtype: cognito_user_pools
      x-amazon-apigateway-authorizer:
        type: cognito_user_pools
        providerARNs: [ "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_Example" ]
    tokenAuth:
      type: apiKey
      name: Authorization
      in: header
      x-amazon-apigateway-authtype: custom
      x-amazon-apigateway-authorizer:
        type: token
        authorizerUri: "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:auth/invocations"
        authorizerResultTtlInSeconds: 0
        identityValidationExpression: "^Bearer [a-z]+$"
"##;

const CONFIG: &str = r#"
[gateway]
region = "us-east-1"
account_id = "123456789012"
api_id = "a1b2c3d4e5"
stage = "prod"

[[usage_plans]]
id = "pets-basic"
throttle = { rate_limit = 100.0, burst_limit = 100 }
quota = { limit = 100, period = "DAY" }

[[api_keys]]
id = "pets-key"
value = "ApiTestKey0123456789abcdefgh"
usage_plans = ["pets-basic"]

[[iam.users]]
arn = "arn:aws:iam::123456789012:user/pets-client"
access_key_id = "AKIAAPITESTCLIENT001"
secret_access_key = "api/test/secret/EXAMPLEKEY000000000001"
policies = ["policy.json"]

[jwt]
cognito_user_pool = "us-east-1_Example"
jwks = "jwks.json"
client_ids = ["web"]

[waf]
web_acl = "acl.json"

[store]
kind = "memory"

[api]
openapi = "api.yaml"

[api.method_throttles]
"/public/GET" = { rate_limit = 1.0, burst_limit = 1 }

[api.authorizers.tokenAuth]
url = "AUTHORIZER_URL"
timeout_ms = 2000
"#;

const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"execute-api:Invoke",
  "Resource":"arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/GET/pets/*"}]}"#;

const ACL: &str = r#"{"Name":"pets-acl","DefaultAction":{"Allow":{}},"Rules":[
  {"Name":"sqli-query","Priority":1,"Action":{"Block":{}},
   "Statement":{"SqliMatchStatement":{"FieldToMatch":{"QueryString":{}},
     "TextTransformations":[{"Priority":0,"Type":"URL_DECODE"}]}},
   "VisibilityConfig":{"SampledRequestsEnabled":false,"CloudWatchMetricsEnabled":false,"MetricName":"sqli"}}]}"#;

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "portcullis-api-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The configuration folder: the definition (with its API-key source), the
/// configuration (with the authorizer's URL), the policy, the JWKS, the ACL.
fn setup(key_source: &str, authorizer_url: &str) -> PathBuf {
    let dir = temp_dir();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::copy(fixtures.join("jwks.json"), dir.join("jwks.json")).expect("the JWKS copies");
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).expect("writes");
    write("api.yaml", &DEFINITION.replace("KEY_SOURCE", key_source));
    write(
        "gateway.toml",
        &CONFIG.replace("AUTHORIZER_URL", authorizer_url),
    );
    write("policy.json", POLICY);
    write("acl.json", ACL);
    dir
}

fn gateway(dir: &Path) -> Result<Gateway, ConfigFileError> {
    Gateway::builder_from_file(dir.join("gateway.toml"))?
        .clock(Arc::new(ManualClock::at_unix(NOW)))
        .build()
}

/// A Lambda authorizer's answer, over HTTP: `Bearer allow` is allowed (with
/// the API key as its usage identifier), `Bearer nokey` is allowed without
/// one, `Bearer deny` is denied, anything else is unauthorized.
async fn authorizer() -> String {
    let app = Router::new().route(
        "/authorize",
        post(|body: axum::body::Bytes| async move {
            let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let token = event["authorizationToken"].as_str().unwrap_or_default();
            let policy = |effect: &str| {
                json!({"Version": "2012-10-17", "Statement": [{
                    "Action": "execute-api:Invoke", "Effect": effect,
                    "Resource": event["methodArn"].clone()}]})
            };
            match token {
                "Bearer allow" => (
                    StatusCode::OK,
                    json!({"principalId": "user-7", "policyDocument": policy("Allow"),
                           "usageIdentifierKey": API_KEY})
                    .to_string(),
                ),
                "Bearer nokey" => (
                    StatusCode::OK,
                    json!({"principalId": "user-8", "policyDocument": policy("Allow")}).to_string(),
                ),
                "Bearer deny" => (
                    StatusCode::OK,
                    json!({"principalId": "user-9", "policyDocument": policy("Deny")}).to_string(),
                ),
                _ => (StatusCode::UNAUTHORIZED, "\"Unauthorized\"".to_owned()),
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/authorize")
}

/// The application: each route says who reached it.
fn app(gateway: &Gateway) -> Router {
    let routes = Router::new()
        .route(
            "/pets/{petId}",
            get(
                |axum::extract::Path(id): axum::extract::Path<String>| async move {
                    format!("pet {id}")
                },
            ),
        )
        .route("/pets", post(|body: String| async move { body }))
        .route("/public", get(|| async { "public" }))
        .route("/custom", get(|| async { "custom" }));
    let stack = gateway.layer();
    assert!(stack.has_api(), "[api] gives per-method stacks");
    Router::new().fallback_service(stack.layer(routes))
}

fn token(claims: &Value) -> String {
    let pem = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/demo-signing-key.pem"),
    )
    .expect("the demo key");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("airline-loyalty-demo-1".to_owned());
    encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(&pem).expect("PEM"),
    )
    .expect("encodes")
}

fn id_token() -> String {
    token(
        &json!({"iss": ISSUER, "sub": "u-1", "aud": "web", "token_use": "id",
                  "iat": NOW - 10, "exp": NOW + 3600, "cognito:username": "alice"}),
    )
}

fn access_token(scope: &str) -> String {
    token(
        &json!({"iss": ISSUER, "sub": "u-1", "client_id": "web", "token_use": "access",
                  "scope": scope, "iat": NOW - 10, "exp": NOW + 3600}),
    )
}

fn request(method: &str, uri: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(format!("http://api.example{uri}"))
        .header("host", "api.example")
}

fn signed(uri: &str, key: Option<&str>) -> Request<Body> {
    let mut request = request("GET", uri).body(Body::empty()).expect("request");
    if let Some(key) = key {
        request
            .headers_mut()
            .insert("x-api-key", key.parse().expect("header"));
    }
    let identity = Credentials::new(ACCESS_KEY, SECRET, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("execute-api")
        .time(UNIX_EPOCH + Duration::from_secs(NOW))
        .settings(SigningSettings::default())
        .build()
        .expect("params")
        .into();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().expect("ascii").to_owned()))
        .collect();
    let signable = SignableRequest::new(
        "GET",
        request.uri().to_string(),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(&[]),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("signed").into_parts();
    instructions.apply_to_request_http1x(&mut request);
    request
}

struct Answer {
    status: StatusCode,
    error_type: String,
    allow_origin: String,
    body: String,
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().expect("ascii").to_owned())
            .unwrap_or_default()
    };
    let (status, error_type, allow_origin) = (
        response.status(),
        header("x-amzn-errortype"),
        header("access-control-allow-origin"),
    );
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Answer {
        status,
        error_type,
        allow_origin,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn bearer(method: &str, uri: &str, token: &str, body: &str) -> Request<Body> {
    request(method, uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .expect("request")
}

#[tokio::test]
async fn each_method_gets_the_chain_its_definition_names() {
    let dir = setup("HEADER", &authorizer().await);
    let gateway = gateway(&dir).expect("the gateway builds");
    let app = app(&gateway);

    // SigV4 + API key, with the IAM policy.
    let answer = send(
        &app,
        request("GET", "/pets/1")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.error_type, "MissingAuthenticationTokenException");
    // The definition's DEFAULT_4XX gateway response, on a refusal of the
    // SigV4 layer.
    assert_eq!(answer.allow_origin, APP_ORIGIN);
    let answer = send(&app, signed("/pets/1", None)).await;
    assert_eq!(
        (answer.status, answer.error_type.as_str()),
        (StatusCode::FORBIDDEN, "ForbiddenException")
    );
    let answer = send(&app, signed("/pets/1", Some(API_KEY))).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "pet 1")
    );
    let answer = send(&app, signed("/pets/1", Some("NotTheKey0123456789abcdefgh"))).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    // A Cognito user pool with a scope: the ID token holds no scope.
    let answer = send(
        &app,
        request("POST", "/pets")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = send(
        &app,
        bearer("POST", "/pets", &id_token(), r#"{"name":"Rex"}"#),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    let wrong_scope = access_token("pets/read");
    let answer = send(
        &app,
        bearer("POST", "/pets", &wrong_scope, r#"{"name":"Rex"}"#),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
    // The scope, then the body's model.
    let writer = access_token("openid pets/write");
    let answer = send(&app, bearer("POST", "/pets", &writer, r#"{"name":""}"#)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.error_type, "BadRequestException");
    assert_eq!(
        serde_json::from_str::<Value>(&answer.body).expect("JSON"),
        json!({"message": "Invalid request body"})
    );
    let answer = send(&app, bearer("POST", "/pets", &writer, r#"{"name":"Rex"}"#)).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, r#"{"name":"Rex"}"#)
    );

    // No authorizer, no key: the stage's per-method throttle (burst 1).
    let public = || {
        request("GET", "/public")
            .body(Body::empty())
            .expect("request")
    };
    assert_eq!(send(&app, public()).await.status, StatusCode::OK);
    let answer = send(&app, public()).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.error_type, "TooManyRequestsException");

    // The custom authorizer, called over HTTP, and the API key from the
    // header.
    let custom = |token: Option<&str>, key: Option<&str>| {
        let mut builder = request("GET", "/custom");
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        if let Some(key) = key {
            builder = builder.header("x-api-key", key);
        }
        builder.body(Body::empty()).expect("request")
    };
    let answer = send(&app, custom(Some("allow"), Some(API_KEY))).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "custom")
    );
    assert_eq!(
        send(&app, custom(Some("allow"), None)).await.status,
        StatusCode::FORBIDDEN
    );
    let answer = send(&app, custom(Some("deny"), Some(API_KEY))).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.error_type, "AccessDeniedException");
    assert_eq!(
        send(&app, custom(Some("who"), Some(API_KEY))).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Refused by the identity validation expression, before any call.
    assert_eq!(
        send(&app, custom(Some("A1"), Some(API_KEY))).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, custom(None, Some(API_KEY))).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Undefined methods and paths.
    for (method, uri) in [("DELETE", "/pets/1"), ("GET", "/nowhere"), ("GET", "/pets")] {
        let answer = send(
            &app,
            request(method, uri).body(Body::empty()).expect("request"),
        )
        .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{method} {uri}");
        assert_eq!(answer.error_type, "MissingAuthenticationTokenException");
    }

    // The WAF sees the request before the route.
    let answer = send(
        &app,
        request("GET", "/nowhere?id=1%27%20OR%20%271%27%3D%271")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.error_type, "WAFFilteredException");
}

#[tokio::test]
async fn a_stack_missing_a_layer_the_definition_needs_fails_closed() {
    let dir = setup("HEADER", "http://127.0.0.1:9/authorize");
    let gateway = gateway(&dir).expect("the gateway builds");
    // The definition's methods need an API key; this stack has none.
    let app = Router::new().fallback_service(
        gateway
            .layer()
            .without_api_key()
            .layer(Router::new().route("/public", get(|| async { "public" }))),
    );
    let answer = send(
        &app,
        request("GET", "/public")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.error_type, "InternalServerErrorException");
}

#[tokio::test]
async fn the_api_key_can_come_from_the_authorizer() {
    let dir = setup("AUTHORIZER", &authorizer().await);
    let gateway = gateway(&dir).expect("the gateway builds");
    let app = app(&gateway);
    let custom = |token: &str| {
        request("GET", "/custom")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request")
    };
    // The authorizer's usageIdentifierKey is the key; no x-api-key header.
    let answer = send(&app, custom("allow")).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "custom")
    );
    let answer = send(&app, custom("nokey")).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.error_type, "ForbiddenException");
}

#[tokio::test]
async fn without_api_the_stack_is_one_for_every_route() {
    let dir = setup("HEADER", "http://127.0.0.1:9/authorize");
    let text = std::fs::read_to_string(dir.join("gateway.toml")).expect("reads");
    let without = text
        .split("[api]")
        .next()
        .expect("the part before [api]")
        .to_owned();
    let config = Config::from_toml(&without).expect("parses");
    let gateway = Gateway::builder(config)
        .base_dir(&dir)
        .clock(Arc::new(ManualClock::at_unix(NOW)))
        .build()
        .expect("builds");
    assert!(gateway.api_definition().is_none());
    assert!(gateway.access_log_layer().is_none());
    assert!(!gateway.layer().has_api());
    // Any path goes through the one stack: signed + key passes on a route
    // the definition never named.
    let app = Router::new()
        .route("/anything/{x}", get(|| async { "one stack" }))
        .layer(gateway.layer().without_waf());
    let answer = send(&app, signed("/anything/1", Some(API_KEY))).await;
    assert_eq!(
        answer.status,
        StatusCode::FORBIDDEN,
        "the policy covers /pets only"
    );
    assert_eq!(answer.error_type, "AccessDeniedException");
}

#[test]
fn configuration_errors_name_the_field() {
    let dir = setup("HEADER", "http://127.0.0.1:9/authorize");
    let toml = std::fs::read_to_string(dir.join("gateway.toml")).expect("reads");
    let error = |text: &str| {
        std::fs::write(dir.join("gateway.toml"), text).expect("writes");
        gateway(&dir).expect_err("refused")
    };

    // A cognito method and no [jwt]: the method would go unprotected.
    let start = toml.find("[jwt]").expect("a [jwt] section");
    let end = toml.find("[waf]").expect("a [waf] section");
    let no_jwt = format!("{}{}", &toml[..start], &toml[end..]);
    let e = error(&no_jwt);
    assert_eq!(e.path(), "api.openapi");
    assert!(e.message().contains("pool"), "{e}");

    // A custom authorizer with no endpoint.
    let e = error(&toml.replace("[api.authorizers.tokenAuth]", "[api.authorizers.other]"));
    assert_eq!(e.path(), "api.authorizers.other", "{e}");
    let start = toml
        .find("[api.authorizers.tokenAuth]")
        .expect("the section");
    let e = error(&toml[..start]);
    assert_eq!(e.path(), "api.openapi");
    assert!(e.message().contains("tokenAuth"), "{e}");

    // A per-method throttle on a method the definition lacks.
    let e = error(&toml.replace("\"/public/GET\"", "\"/public/POST\""));
    assert_eq!(e.path(), "api.method_throttles.\"/public/POST\"", "{e}");

    // A definition that does not load, and one that is not there.
    std::fs::write(
        dir.join("api.yaml"),
        "openapi: \"3.0.1\"\nx-amazon-apigateway-policy: {}\n",
    )
    .expect("writes");
    let e = error(&toml);
    assert_eq!(e.path(), "api.openapi");
    assert!(e.message().contains("x-amazon-apigateway-policy"), "{e}");
    let e = error(&toml.replace("api.yaml", "missing.yaml"));
    assert_eq!(e.path(), "api.openapi");
    assert!(e.message().contains("cannot read"), "{e}");
}

/// The lines of `output` under the request `id`'s span (its layers' events
/// and the span's own line when it closes).
fn lines_of<'o>(output: &'o str, id: &str) -> Vec<&'o str> {
    output.lines().filter(|line| line.contains(id)).collect()
}

/// The fields of `layer`'s span (`portcullis.<layer>`) as it closed, in
/// the request's span and directly under it (no other span between them):
/// one string per such span.
fn layer_spans<'o>(lines: &[&'o str], layer: &str) -> Vec<&'o str> {
    let open = format!("}}:portcullis.{layer}{{");
    lines
        .iter()
        .filter(|line| line.contains(": close time."))
        .filter_map(|line| {
            let (context, rest) = line.split_once(&open)?;
            // The innermost span before this one is the request's.
            let parent = &context[context.rfind("portcullis.")?..];
            if !parent.starts_with("portcullis.request{") {
                return None;
            }
            // Its own fields, up to the end of the span context.
            rest.split_once("}:").map(|(fields, _)| fields)
        })
        .collect()
}

/// That `layer`'s span closed in the request's span, with all of `fields`.
fn assert_layer_span(lines: &[&str], layer: &str, fields: &[&str]) {
    let spans = layer_spans(lines, layer);
    assert!(
        spans
            .iter()
            .any(|span| fields.iter().all(|field| span.contains(field))),
        "no portcullis.{layer} span under portcullis.request with all of {fields:?}; \
         its spans: {spans:?}\nin:\n{}",
        lines.join("\n")
    );
}

fn assert_has(lines: &[&str], needles: &[&str]) {
    assert!(
        lines
            .iter()
            .any(|line| needles.iter().all(|needle| line.contains(needle))),
        "no line with all of {needles:?} in:\n{}",
        lines.join("\n")
    );
}

#[test]
fn spans_carry_request_id_key_id_principal_and_outcome_never_a_secret() {
    // The process-wide subscriber: this test's lines are told apart from
    // the other tests' by request id.
    let captured = capture::captured();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let token = access_token("pets/write");
    // Signed before the capture starts: the aws-sigv4 crate (the client's
    // side) traces the requests it signs, headers and all.
    let signed_ok = signed("/pets/1", Some(API_KEY));
    let signed_bad = signed("/pets/1", Some("NotTheKey0123456789abcdefgh"));
    let signature = signed_ok.headers()["authorization"]
        .to_str()
        .expect("ascii")
        .rsplit("Signature=")
        .next()
        .expect("a signature")
        .to_owned();
    let (signed_id, refused_id, cognito_id, custom_id, throttled_id) = runtime.block_on(async {
        let dir = setup("HEADER", &authorizer().await);
        let gateway = gateway(&dir).expect("the gateway builds");
        // Outermost, as an application adds it: the request's span.
        let app = app(&gateway).layer(
            gateway
                .access_log_layer()
                .expect("[api] gives the access log layer"),
        );
        let id = |response: &http::Response<Body>| {
            response
                .headers()
                .get("x-amzn-requestid")
                .and_then(|v| v.to_str().ok())
                .expect("every response has a request id")
                .to_owned()
        };
        // SigV4, API key, throttle, quota: allowed.
        let response = app.clone().oneshot(signed_ok).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        let signed_id = id(&response);
        // Signed, with a key that is no key: refused by the API key.
        let response = app.clone().oneshot(signed_bad).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let refused_id = id(&response);
        // A Cognito access token with the method's scope.
        let sent = bearer("POST", "/pets", &token, r#"{"name":"Rex"}"#);
        let response = app.clone().oneshot(sent).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        let cognito_id = id(&response);
        // A custom authorizer, and the API key.
        let sent = request("GET", "/custom")
            .header("authorization", "Bearer allow")
            .header("x-api-key", API_KEY)
            .body(Body::empty())
            .expect("request");
        let response = app.clone().oneshot(sent).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        let custom_id = id(&response);
        // `/public/GET` has a limit of one request: the second is throttled.
        let public = || {
            request("GET", "/public")
                .body(Body::empty())
                .expect("request")
        };
        let response = app.clone().oneshot(public()).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        let response = app.clone().oneshot(public()).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let throttled_id = id(&response);
        std::fs::remove_dir_all(dir).ok();
        (signed_id, refused_id, cognito_id, custom_id, throttled_id)
    });
    let output = captured.text();

    // One request span per request: the access log opened it, and the
    // stack inside it (which opens one when alone) did not open another.
    for line in output.lines() {
        assert!(
            line.matches("portcullis.request{").count() <= 1,
            "two nested request spans: {line}"
        );
    }

    let principal = "arn:aws:iam::123456789012:user/pets-client";
    let signed = lines_of(&output, &signed_id);
    // The request's span, closed: every field the layers decided.
    assert_has(
        &signed,
        &[
            "portcullis.request",
            "close",
            "key_id=\"pets-key\"",
            &format!("principal=\"{principal}\""),
            "outcome=\"allowed\"",
            "status=200",
        ],
    );
    // Each layer's own decision, inside that span.
    assert_has(&signed, &["layer=\"waf\"", "outcome=\"allowed\""]);
    assert_has(
        &signed,
        &["layer=\"sigv4\"", "outcome=\"allowed\"", principal],
    );
    assert_has(
        &signed,
        &[
            "layer=\"api_key\"",
            "outcome=\"allowed\"",
            "key_id=pets-key",
        ],
    );
    // Each layer's span, a child of the request's, with what it decided.
    let allowed = ["outcome=\"allowed\"", "reason=\"OK\""];
    assert_layer_span(&signed, "waf", &allowed);
    let principal_field = format!("principal=\"{principal}\"");
    assert_layer_span(
        &signed,
        "sigv4",
        &[allowed[0], allowed[1], &principal_field],
    );
    for layer in ["api_key", "throttle", "quota"] {
        assert_layer_span(
            &signed,
            layer,
            &[
                allowed[0],
                allowed[1],
                "key_id=\"pets-key\"",
                "plan_id=\"pets-basic\"",
            ],
        );
    }
    assert_layer_span(&signed, "openapi", &["step=\"route\"", allowed[0]]);

    let refused = lines_of(&output, &refused_id);
    assert_has(
        &refused,
        &[
            "portcullis.request",
            "close",
            "outcome=\"refused\"",
            "reason=\"INVALID_API_KEY\"",
            "status=403",
        ],
    );
    assert_has(
        &refused,
        &[
            "layer=\"api_key\"",
            "outcome=\"refused\"",
            "reason=\"INVALID_API_KEY\"",
            "detail=\"unknown\"",
        ],
    );
    assert_has(&refused, &["request refused", "reason=\"INVALID_API_KEY\""]);
    assert_layer_span(
        &refused,
        "api_key",
        &[
            "outcome=\"refused\"",
            "reason=\"INVALID_API_KEY\"",
            "detail=\"unknown\"",
        ],
    );
    assert_layer_span(&refused, "sigv4", &allowed);
    // Refused before them: no throttle, no quota.
    assert!(layer_spans(&refused, "throttle").is_empty());
    assert!(layer_spans(&refused, "quota").is_empty());

    let cognito = lines_of(&output, &cognito_id);
    assert_has(
        &cognito,
        &[
            "portcullis.request",
            "close",
            "principal=\"u-1\"",
            "outcome=\"allowed\"",
        ],
    );

    assert_layer_span(
        &cognito,
        "jwt",
        &[allowed[0], allowed[1], "principal=\"u-1\""],
    );

    let custom = lines_of(&output, &custom_id);
    assert_has(
        &custom,
        &[
            "layer=\"authorizer\"",
            "outcome=\"allowed\"",
            "principal=\"user-7\"",
        ],
    );
    assert_has(
        &custom,
        &[
            "portcullis.request",
            "close",
            "key_id=\"pets-key\"",
            "principal=\"user-7\"",
            "outcome=\"allowed\"",
        ],
    );
    assert_layer_span(
        &custom,
        "authorizer",
        &[allowed[0], allowed[1], "principal=\"user-7\""],
    );
    assert_layer_span(&custom, "api_key", &[allowed[0], "key_id=\"pets-key\""]);

    let throttled = lines_of(&output, &throttled_id);
    assert_layer_span(
        &throttled,
        "throttle",
        &[
            "outcome=\"refused\"",
            "reason=\"THROTTLED\"",
            "detail=\"bucket_empty\"",
        ],
    );
    assert_layer_span(&throttled, "waf", &allowed);

    // No secret anywhere: not the key's value, not the IAM secret, not the
    // request's signature, not the token (nor its signature part).
    let token_signature = token.rsplit('.').next().expect("a JWT");
    for secret in [
        API_KEY,
        "NotTheKey0123456789abcdefgh",
        SECRET,
        signature.as_str(),
        token.as_str(),
        token_signature,
    ] {
        assert!(
            !output.contains(secret),
            "the logs hold a secret ({secret}):\n{output}"
        );
    }
}
