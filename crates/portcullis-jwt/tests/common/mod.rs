//! Test keys, token minting and a tiny service behind the layer.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use portcullis_core::clock::ManualClock;
use portcullis_core::context::RequestContextExt;
use portcullis_jwt::{JwtClaims, JwtLayer};
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt};

pub const ISS: &str = "https://issuer.test";
/// The tests' "now": 2027-01-15.
pub const NOW: u64 = 1_800_000_000;

pub fn key_file(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The signing key and public JWK of a test key.
pub struct TestKey {
    pub kid: &'static str,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

pub fn rsa(kid: &'static str, file: &str, alg: Algorithm) -> TestKey {
    let encoding = EncodingKey::from_rsa_pem(&key_file(file)).expect("RSA PEM");
    let mut jwk =
        serde_json::to_value(Jwk::from_encoding_key(&encoding, alg).expect("jwk")).expect("json");
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    TestKey {
        kid,
        alg,
        encoding,
        jwk,
    }
}

pub fn ec(kid: &'static str, file: &str, alg: Algorithm) -> TestKey {
    let encoding = EncodingKey::from_ec_pem(&key_file(file)).expect("EC PEM");
    let mut jwk =
        serde_json::to_value(Jwk::from_encoding_key(&encoding, alg).expect("jwk")).expect("json");
    jwk["kid"] = json!(kid);
    TestKey {
        kid,
        alg,
        encoding,
        jwk,
    }
}

pub fn ed(kid: &'static str) -> TestKey {
    let encoding = EncodingKey::from_ed_pem(&key_file("ed25519.pem")).expect("Ed PEM");
    let x = String::from_utf8(key_file("ed25519.x")).expect("utf-8");
    let jwk = json!({"kty":"OKP","crv":"Ed25519","x":x.trim(),"kid":kid,"alg":"EdDSA"});
    TestKey {
        kid,
        alg: Algorithm::EdDSA,
        encoding,
        jwk,
    }
}

pub fn rsa1() -> TestKey {
    rsa("rsa1", "rsa1.pem", Algorithm::RS256)
}

pub fn rsa2() -> TestKey {
    rsa("rsa2", "rsa2.pem", Algorithm::RS256)
}

pub fn jwks(keys: &[&TestKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

/// Claims valid at [`NOW`], with `extra` merged in (a `null` removes a claim).
pub fn claims(extra: Value) -> Value {
    let mut claims = json!({
        "iss": ISS, "sub": "user-1", "exp": NOW + 600, "iat": NOW - 60,
        "cognito:groups": ["members"], "scope": "loyalty/read openid",
    });
    for (k, v) in extra.as_object().expect("object") {
        if v.is_null() {
            claims.as_object_mut().expect("object").remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

pub fn sign(key: &TestKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.to_owned());
    encode(&header, claims, &key.encoding).expect("sign")
}

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at_unix(NOW))
}

pub fn bearer(token: &str) -> Request<String> {
    Request::builder()
        .uri("/")
        .header("authorization", format!("Bearer {token}"))
        .body(String::new())
        .expect("request")
}

/// Sends `request` through `layer` to a handler that echoes the caller.
pub async fn send(
    layer: &JwtLayer,
    request: Request<String>,
) -> (StatusCode, http::HeaderMap, String) {
    let service = ServiceBuilder::new().layer(layer.clone()).service_fn(
        |request: Request<String>| async move {
            let caller = request.caller().expect("caller");
            let claims = JwtClaims::from_extensions(request.extensions()).expect("claims");
            assert_eq!(claims.subject(), Some(caller.principal()));
            let body = format!(
                "{}|{}|{}",
                caller.principal(),
                caller.groups().join(","),
                caller.scopes().join(",")
            );
            Ok::<_, Infallible>(Response::new(body))
        },
    );
    let response = service.oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = http_body_util::BodyExt::collect(body)
        .await
        .expect("body")
        .to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(bytes.to_vec()).expect("utf-8"),
    )
}
