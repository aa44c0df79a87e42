//! The RS256 token, its JWKS and the layer that the criterion bench
//! (`benches/jwt.rs`) and the `jwt_hot_path` program share, so that both
//! measure the same token through the same configuration.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, encode};
use portcullis_jwt::{Issuer, JwtLayer, TokenCacheConfig};
use serde_json::json;

pub(crate) const ISS: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Bench";

/// A signed token, the JWKS that verifies it, and its decoding key (for
/// `jsonwebtoken`'s own `decode`).
pub(crate) struct Fixture {
    pub(crate) token: String,
    pub(crate) jwks: String,
    #[allow(dead_code, reason = "read by the criterion bench, not by the example")]
    pub(crate) decoding: DecodingKey,
}

pub(crate) fn fixture() -> Fixture {
    let pem =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/rsa1.pem")).expect("key");
    let encoding = EncodingKey::from_rsa_pem(&pem).expect("RSA PEM");
    let mut jwk =
        serde_json::to_value(Jwk::from_encoding_key(&encoding, Algorithm::RS256).expect("jwk"))
            .expect("json");
    jwk["kid"] = json!("bench");
    let jwk_typed: Jwk = serde_json::from_value(jwk.clone()).expect("jwk");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs();
    // A Cognito-shaped access token (about 900 bytes).
    let claims = json!({
        "sub": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "cognito:groups": ["members", "gold"],
        "iss": ISS, "version": 2, "client_id": "1example23456789", "origin_jti": "f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f",
        "event_id": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "token_use": "access",
        "scope": "loyalty/read loyalty/write openid", "auth_time": now, "exp": now + 3600, "iat": now,
        "jti": "00112233-4455-6677-8899-aabbccddeeff", "username": "jane.doe",
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("bench".into());
    Fixture {
        token: encode(&header, &claims, &encoding).expect("sign"),
        jwks: json!({"keys": [jwk]}).to_string(),
        decoding: DecodingKey::from_jwk(&jwk_typed).expect("decoding key"),
    }
}

pub(crate) fn layer(f: &Fixture, cache: TokenCacheConfig) -> JwtLayer {
    JwtLayer::builder()
        .issuer(
            Issuer::user_pool_at(ISS)
                .jwks(f.jwks.clone())
                .client_ids(["1example23456789"]),
        )
        .cache(cache)
        .build()
        .expect("config")
}
