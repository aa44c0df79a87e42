//! Test fixtures: an issuer with a local RSA key, a pool, SigV4 signing with
//! the aws-sigv4 crate, and a SigV4-protected service.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use portcullis_core::clock::{ManualClock, SharedClock};
use portcullis_core::context::RequestContextExt;
use portcullis_iam::ExecuteApiArn;
use portcullis_identity_pool::{IdentityPool, IdentityPoolConfig};
use portcullis_sigv4::{CredentialProvider, SigV4Layer};
use portcullis_test_support::sigv4::{Signing, sign_request};
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt};

pub const ISS: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Test";
pub const PROVIDER: &str = "cognito-idp.us-east-1.amazonaws.com/us-east-1_Test";
pub const CLIENT_ID: &str = "app-client";
/// The tests' "now": 2027-01-15.
pub const NOW: u64 = 1_800_000_000;
pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";

fn key_file(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn signing_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(&key_file("rsa1.pem")).expect("RSA PEM")
}

pub fn jwks() -> String {
    let mut jwk = serde_json::to_value(
        Jwk::from_encoding_key(&signing_key(), Algorithm::RS256).expect("jwk"),
    )
    .expect("json");
    jwk["kid"] = json!("user-pool-key");
    jwk["use"] = json!("sig");
    json!({ "keys": [jwk] }).to_string()
}

/// A Cognito ID token for `sub`, in `groups`, issued at `now`.
pub fn id_token(sub: &str, groups: &[&str], now: u64) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("user-pool-key".into());
    let claims = json!({
        "iss": ISS, "sub": sub, "aud": CLIENT_ID, "token_use": "id",
        "cognito:username": sub, "cognito:groups": groups,
        "iat": now, "exp": now + 3600, "auth_time": now,
    });
    encode(&header, &claims, &signing_key()).expect("token")
}

/// A Cognito ID token for `sub` with `extra` claims added (or replacing the
/// defaults; a `null` removes one), issued at `now`.
pub fn id_token_with(sub: &str, extra: &Value, now: u64) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("user-pool-key".into());
    let mut claims = json!({
        "iss": ISS, "sub": sub, "aud": CLIENT_ID, "token_use": "id",
        "cognito:username": sub, "iat": now, "exp": now + 3600, "auth_time": now,
    });
    if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
        for (name, value) in extra {
            if value.is_null() {
                claims.remove(name);
            } else {
                claims.insert(name.clone(), value.clone());
            }
        }
    }
    encode(&header, &claims, &signing_key()).expect("token")
}

fn allow(path: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "execute-api:Invoke",
        "Resource": format!("arn:aws:execute-api:{REGION}:{ACCOUNT}:api/prod/{path}")
    }]})
}

/// The test pool's configuration, with the pool keys given.
pub fn config_with_keys(keys: &[(&str, &str)], active: Option<&str>) -> IdentityPoolConfig {
    let keys: Vec<Value> = keys
        .iter()
        .map(|(id, secret)| json!({"id": id, "secret": secret}))
        .collect();
    let mut config = json!({
        "pool_id": "us-east-1:11111111-2222-3333-4444-555555555555",
        "region": REGION,
        "account_id": ACCOUNT,
        "keys": keys,
        "identity_key": "identity-key-identity-key-identity-key",
        "allow_unauthenticated": true,
        "roles": {
            "LoyaltyUser": {"policies": [allow("GET/loyalty/*")]},
            "LoyaltyAdmin": {"policies": [allow("*/*")]},
            "LoyaltyGuest": {"policies": [allow("GET/public/*")]}
        },
        "authenticated_role": "LoyaltyUser",
        "unauthenticated_role": "LoyaltyGuest",
        "role_mappings": [
            {"claim": "cognito:groups", "match_type": "Contains", "value": "Admins", "role": "LoyaltyAdmin"}
        ],
        "token_use": "id",
        "jwt": {"issuers": [{
            "issuer": ISS, "cognito": true, "client_ids": [CLIENT_ID],
            "keys": {"jwks": jwks()}
        }]}
    });
    if let Some(active) = active {
        config["active_key"] = json!(active);
    }
    IdentityPoolConfig::from_json(&config.to_string()).expect("config")
}

pub const KEY1: &str = "pool-key-one-pool-key-one-pool-key-one";
pub const KEY2: &str = "pool-key-two-pool-key-two-pool-key-two";

pub fn config() -> IdentityPoolConfig {
    config_with_keys(&[("k1", KEY1)], None)
}

pub fn clock() -> ManualClock {
    ManualClock::at_unix(NOW)
}

pub fn pool(config: IdentityPoolConfig, clock: &ManualClock) -> IdentityPool {
    IdentityPool::builder(config)
        .clock(Arc::new(clock.clone()) as SharedClock)
        .build()
        .expect("pool")
}

/// Posts `body` to the pool's credentials service.
pub async fn exchange(pool: &IdentityPool, body: Value) -> (StatusCode, Value) {
    exchange_raw(pool, Bytes::from(body.to_string())).await
}

pub async fn exchange_raw(pool: &IdentityPool, body: Bytes) -> (StatusCode, Value) {
    let request = Request::post("/credentials")
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(body))
        .expect("request");
    let response = pool
        .credentials_service()
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

pub async fn sign_in(pool: &IdentityPool, token: &str) -> (StatusCode, Value) {
    exchange(pool, json!({"Logins": {PROVIDER: token}})).await
}

/// Temporary credentials from an exchange's answer.
#[derive(Clone, Debug)]
pub struct TempCreds {
    pub access_key: String,
    pub secret: String,
    pub token: String,
}

impl TempCreds {
    pub fn from_answer(answer: &Value) -> Self {
        let c = &answer["Credentials"];
        Self {
            access_key: c["AccessKeyId"].as_str().expect("AccessKeyId").into(),
            secret: c["SecretKey"].as_str().expect("SecretKey").into(),
            token: c["SessionToken"].as_str().expect("SessionToken").into(),
        }
    }
}

/// Signs a GET of `path` with aws-sigv4 at `unix` seconds.
pub fn signed_get(
    path: &str,
    access_key: &str,
    secret: &str,
    token: Option<&str>,
    unix: u64,
) -> Request<Full<Bytes>> {
    let mut request = Request::get(format!("https://api.example.com{path}"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let signing = Signing::at(UNIX_EPOCH + Duration::from_secs(unix))
        .credentials(access_key, secret, token)
        .scope(REGION, "execute-api");
    sign_request(&mut request, b"", &signing);
    request
}

pub fn signed_with(creds: &TempCreds, path: &str, unix: u64) -> Request<Full<Bytes>> {
    signed_get(
        path,
        &creds.access_key,
        &creds.secret,
        Some(&creds.token),
        unix,
    )
}

/// Sends `request` through a SigV4 layer with `provider` and the clock;
/// returns the status, the `x-amzn-ErrorType`, the message and the principal
/// the inner service saw.
pub async fn call(
    provider: impl CredentialProvider,
    clock: &ManualClock,
    request: Request<Full<Bytes>>,
) -> (StatusCode, String, String) {
    let api = ExecuteApiArn::new(REGION, ACCOUNT, "api", "prod").expect("arn");
    let layer = SigV4Layer::new(api, provider).clock(Arc::new(clock.clone()));
    let service = ServiceBuilder::new().layer(layer).service_fn(
        |request: Request<portcullis_sigv4::SigV4Body<Full<Bytes>>>| async move {
            let caller = request
                .caller()
                .map(|c| c.principal().to_owned())
                .unwrap_or_default();
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(caller))))
        },
    );
    let response = service.oneshot(request).await.expect("infallible");
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
        String::from_utf8_lossy(&body).into_owned(),
    )
}

pub fn now_system(clock: &ManualClock) -> SystemTime {
    use portcullis_core::clock::Clock;
    clock.now_system_time()
}
