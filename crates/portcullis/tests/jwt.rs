//! With `[jwt]` and no `[iam]`, the composed stack authenticates with the
//! JWT layer (API Gateway's Cognito authorizer), before the API key.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use portcullis::Gateway;
use portcullis::config::{Config, JwksLocation};
use portcullis_core::clock::ManualClock;
use serde_json::json;
use tower::ServiceExt;

const NOW: u64 = 1_800_000_000;
const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example";
const KEY: &str = "JwtStackKey0123456789abcdefgh";

fn token(token_use: &str, aud: &str, exp: u64) -> String {
    let pem = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/demo-signing-key.pem"),
    )
    .expect("the demo key");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("airline-loyalty-demo-1".to_owned());
    let claims = json!({"iss": ISSUER, "sub": "u-1", "aud": aud, "token_use": token_use,
                        "iat": NOW - 10, "exp": exp, "cognito:username": "alice"});
    let key = EncodingKey::from_rsa_pem(&pem).expect("PEM");
    encode(&header, &claims, &key).expect("encodes")
}

fn gateway(api_key_required: bool) -> Gateway {
    let config = Config::from_toml(&format!(
        r#"
        [gateway]
        region = "us-east-1"
        account_id = "123456789012"
        api_id = "a1b2c3d4e5"
        stage = "prod"
        api_key_required = {api_key_required}
        [[usage_plans]]
        id = "p"
        [[api_keys]]
        id = "k"
        value = "{KEY}"
        usage_plans = ["p"]
        [jwt]
        cognito_user_pool = "us-east-1_Example"
        jwks = "fixtures/jwks.json"
        client_ids = ["web"]
        token_use = "id"
        "#
    ))
    .expect("config");
    Gateway::builder(config)
        .base_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests"))
        .clock(Arc::new(ManualClock::at_unix(NOW)))
        .build()
        .expect("gateway")
}

async fn status(app: &Router, token: Option<&str>, key: Option<&str>) -> StatusCode {
    let mut request = Request::get("/me");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    app.clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("infallible")
        .status()
}

#[tokio::test]
async fn jwt_then_api_key() {
    let gateway = gateway(true);
    let app = Router::new()
        .route("/me", get(|| async { "me" }))
        .layer(gateway.layer());
    let id = token("id", "web", NOW + 600);
    assert_eq!(
        status(&app, None, Some(KEY)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status(&app, Some(&id), None).await, StatusCode::FORBIDDEN);
    assert_eq!(status(&app, Some(&id), Some(KEY)).await, StatusCode::OK);
    // An access token where the configuration takes ID tokens; an expired one;
    // another app client.
    let access = token("access", "web", NOW + 600);
    assert_eq!(
        status(&app, Some(&access), Some(KEY)).await,
        StatusCode::UNAUTHORIZED
    );
    let expired = token("id", "web", NOW - 1);
    assert_eq!(
        status(&app, Some(&expired), Some(KEY)).await,
        StatusCode::UNAUTHORIZED
    );
    let other = token("id", "other-app", NOW + 600);
    assert_eq!(
        status(&app, Some(&other), Some(KEY)).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn no_key_required() {
    let gateway = gateway(false);
    let app = Router::new()
        .route("/me", get(|| async { "me" }))
        .layer(gateway.layer());
    let id = token("id", "web", NOW + 600);
    assert_eq!(status(&app, Some(&id), None).await, StatusCode::OK);
    assert_eq!(status(&app, None, None).await, StatusCode::UNAUTHORIZED);
}

const GATEWAY: &str = r#"
    [gateway]
    region = "us-east-1"
    account_id = "123456789012"
    api_id = "a1b2c3d4e5"
    stage = "prod"
"#;

#[test]
fn a_malformed_user_pool_id_is_refused_when_the_file_is_read() {
    for bad in ["us-east-1", "us-east-1_", "us east 1_Example"] {
        let error = Config::from_toml(&format!(
            "{GATEWAY}\n[jwt]\ncognito_user_pool = \"{bad}\"\n"
        ))
        .expect_err(bad);
        assert_eq!(error.path(), "jwt.cognito_user_pool", "{bad}: {error}");
        assert!(
            error.message().contains("us-east-1_AbCdEf123"),
            "{bad}: {error}"
        );
    }
    let config = Config::from_toml(&format!(
        "{GATEWAY}\n[jwt]\ncognito_user_pool = \"eu-central-1_Example\"\n"
    ))
    .expect("a pool id");
    let pool = config
        .jwt
        .and_then(|jwt| jwt.cognito_user_pool)
        .expect("[jwt] has its pool");
    assert_eq!(pool.region(), "eu-central-1");
}

#[test]
fn jwks_is_a_url_by_its_scheme_a_file_otherwise_or_what_its_table_says() {
    let jwks = |value: &str| {
        Config::from_toml(&format!(
            "{GATEWAY}\n[jwt]\nissuer = \"https://idp.example\"\njwks = {value}\n"
        ))
        .map(|config| config.jwt.and_then(|jwt| jwt.jwks))
    };
    assert_eq!(
        jwks(r#""https://idp.example/jwks.json""#).expect("a URL"),
        Some(JwksLocation::Url(
            "https://idp.example/jwks.json".to_owned()
        ))
    );
    assert_eq!(
        jwks(r#""keys/jwks.json""#).expect("a file"),
        Some(JwksLocation::File("keys/jwks.json".into()))
    );
    assert_eq!(
        jwks(r#"{ file = "keys/jwks.json" }"#).expect("a file"),
        Some(JwksLocation::File("keys/jwks.json".into()))
    );
    assert_eq!(
        jwks(r#"{ url = "http://127.0.0.1:9000/jwks" }"#).expect("a URL"),
        Some(JwksLocation::Url("http://127.0.0.1:9000/jwks".to_owned()))
    );
    let error = jwks(r#"{ url = "keys/jwks.json" }"#).expect_err("not a URL");
    assert_eq!(error.path(), "jwt.jwks", "{error}");
}

#[tokio::test]
async fn a_jwks_file_in_table_form_builds_as_the_string_form_does() {
    let config = Config::from_toml(&format!(
        "{GATEWAY}\n[jwt]\ncognito_user_pool = \"us-east-1_Example\"\njwks = {{ file = \"fixtures/jwks.json\" }}\n\
         client_ids = [\"web\"]\n"
    ))
    .expect("config");
    let gateway = Gateway::builder(config)
        .base_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests"))
        .clock(Arc::new(ManualClock::at_unix(NOW)))
        .build()
        .expect("builds");
    let app = Router::new()
        .route("/me", get(|| async { "me" }))
        .layer(gateway.layer().without_api_key());
    assert_eq!(status(&app, None, None).await, StatusCode::UNAUTHORIZED);
    let good = token("id", "web", NOW + 600);
    assert_eq!(status(&app, Some(&good), None).await, StatusCode::OK);
}
