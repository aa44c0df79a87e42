//! The layer at its public surface: accepted tokens, every refusal, Cognito
//! rules, groups and scopes, the cache, gRPC statuses.

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use http::{Request, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use portcullis_core::response::messages::EXPIRED_USER_POOL_TOKEN;
use portcullis_jwt::{
    HmacSecret, Issuer, JwtLayer, JwtRefusal, Match, TokenCacheConfig, TokenSource, TokenUse,
    UserPoolId,
};
use serde_json::json;

fn layer(issuer: Issuer) -> JwtLayer {
    JwtLayer::builder()
        .issuer(issuer)
        .clock(clock())
        .build()
        .expect("valid config")
}

fn rsa_layer() -> JwtLayer {
    layer(Issuer::new(ISS).jwks(jwks(&[&rsa1(), &rsa2()])))
}

#[tokio::test]
async fn a_valid_token_passes_with_the_caller_in_the_extensions() {
    let token = sign(
        &rsa1(),
        &claims(json!({"cognito:groups": ["admins", "members"]})),
    );
    let (status, _, body) = send(&rsa_layer(), bearer(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "user-1|admins,members|loyalty/read,openid");
}

#[tokio::test]
async fn every_asymmetric_algorithm_verifies() {
    let keys = [
        rsa("r256", "rsa1.pem", Algorithm::RS256),
        rsa("r384", "rsa1.pem", Algorithm::RS384),
        rsa("r512", "rsa1.pem", Algorithm::RS512),
        rsa("p256", "rsa2.pem", Algorithm::PS256),
        rsa("p384", "rsa2.pem", Algorithm::PS384),
        rsa("p512", "rsa2.pem", Algorithm::PS512),
        ec("e256", "ec256.pem", Algorithm::ES256),
        ec("e384", "ec384.pem", Algorithm::ES384),
        ed("ed"),
    ];
    let layer = layer(Issuer::new(ISS).jwks(jwks(&keys.iter().collect::<Vec<_>>())));
    for key in &keys {
        let verified = layer.verify(&sign(key, &claims(json!({})))).await;
        assert!(verified.is_ok(), "{:?}: {verified:?}", key.alg);
    }
}

#[tokio::test]
async fn hmac_needs_an_explicit_secret() {
    let secret = "0123456789abcdef0123456789abcdef-secret";
    let layer = layer(
        Issuer::new(ISS)
            .jwks(r#"{"keys":[]}"#)
            .hmac_secret(HmacSecret::new(secret)),
    );
    let token = encode(
        &Header::new(Algorithm::HS256),
        &claims(json!({})),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign");
    assert!(layer.verify(&token).await.is_ok());
    let wrong = encode(
        &Header::new(Algorithm::HS256),
        &claims(json!({})),
        &EncodingKey::from_secret(b"another secret of 32 bytes or more!!"),
    )
    .expect("sign");
    assert_eq!(
        layer.verify(&wrong).await.unwrap_err(),
        JwtRefusal::BadSignature
    );

    // Without a secret, HS256 is not allowed at all, even if listed.
    let error = JwtLayer::new(
        Issuer::new(ISS)
            .jwks(jwks(&[&rsa1()]))
            .algorithms([Algorithm::HS256]),
    )
    .unwrap_err();
    assert_eq!(error.path(), "issuers[0].algorithms");
    let short = JwtLayer::new(
        Issuer::new(ISS)
            .jwks(jwks(&[&rsa1()]))
            .hmac_secret(HmacSecret::new("short")),
    )
    .unwrap_err();
    assert_eq!(short.path(), "issuers[0].hmac_secrets[0].secret");
    assert!(!format!("{:?}", HmacSecret::new(secret)).contains("0123456789"));
}

#[tokio::test]
async fn a_missing_token_is_401_with_a_bearer_challenge() {
    let request = Request::builder()
        .uri("/")
        .body(String::new())
        .expect("request");
    let (status, headers, body) = send(&rsa_layer(), request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_eq!(headers["x-amzn-errortype"], "UnauthorizedException");
    assert_eq!(body, r#"{"message":"Unauthorized"}"#);

    let basic = Request::builder()
        .header("authorization", "Basic dTpw")
        .body(String::new())
        .expect("request");
    assert_eq!(send(&rsa_layer(), basic).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_refused_response_carries_its_reason_in_the_extensions() {
    use tower::{ServiceBuilder, ServiceExt};
    let service = ServiceBuilder::new()
        .layer(rsa_layer().require_groups(Match::Any, ["admins"]))
        .service_fn(|_: Request<String>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
        });
    let expired = sign(&rsa1(), &claims(json!({"exp": NOW - 1, "iat": NOW - 3600})));
    let not_admin = sign(&rsa1(), &claims(json!({"cognito:groups": ["members"]})));
    let cases = [
        (Request::new(String::new()), JwtRefusal::MissingToken, 401),
        (bearer(&expired), JwtRefusal::Expired, 401),
        (bearer(&not_admin), JwtRefusal::MissingGroup, 403),
    ];
    for (request, reason, status) in cases {
        let response = service.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status().as_u16(), status, "{reason}");
        assert_eq!(response.extensions().get::<JwtRefusal>(), Some(&reason));
    }
}

#[tokio::test]
async fn an_expired_token_gets_cognitos_message() {
    let token = sign(&rsa1(), &claims(json!({"exp": NOW - 1, "iat": NOW - 3600})));
    let (status, headers, body) = send(&rsa_layer(), bearer(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        format!(r#"{{"message":"{EXPIRED_USER_POOL_TOKEN}"}}"#)
    );
    assert!(
        headers["www-authenticate"]
            .to_str()
            .expect("ascii")
            .contains("invalid_token")
    );
}

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

/// Every generated negative case, with the reason the layer must give; each
/// is also checked to be a 401 through the service.
#[tokio::test]
async fn negative_cases_are_refused_for_the_right_reason() {
    let key = rsa1();
    let good = sign(&key, &claims(json!({})));
    let (head, rest) = good.split_once('.').expect("jwt");
    let (payload, signature) = rest.split_once('.').expect("jwt");

    // alg none, with and without a signature part.
    let none_header = b64(r#"{"alg":"none","kid":"rsa1"}"#);
    let alg_none = format!("{none_header}.{payload}.");
    // Key confusion: HS256 "signed" with the RSA public key's PEM as secret.
    let pem = key_file("rsa1.pub.pem");
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("rsa1".into());
    let confusion = encode(
        &hs_header,
        &claims(json!({})),
        &EncodingKey::from_secret(&pem),
    )
    .expect("sign");
    // Tampered payload: the signature no longer matches.
    let tampered_claims = b64(&claims(json!({"cognito:groups": ["admins"]})).to_string());
    let tampered = format!("{head}.{tampered_claims}.{signature}");
    let truncated = format!("{head}.{payload}.{}", &signature[..signature.len() / 2]);
    let oversized = sign(&key, &claims(json!({"pad": "x".repeat(9000)})));
    let bomb_header = b64(&format!(
        r#"{{"alg":"RS256","kid":"rsa1","x":{}{}}}"#,
        "[".repeat(1500),
        "]".repeat(1500)
    ));
    let json_bomb = format!("{bomb_header}.{payload}.{signature}");
    let crit = format!(
        "{}.{payload}.{signature}",
        b64(r#"{"alg":"RS256","kid":"rsa1","crit":["b64"],"b64":false}"#)
    );

    let cases: Vec<(&str, String, JwtRefusal)> = vec![
        ("alg none", alg_none, JwtRefusal::AlgorithmNone),
        ("key confusion", confusion, JwtRefusal::AlgorithmNotAllowed),
        (
            "expired",
            sign(&key, &claims(json!({"exp": NOW - 10}))),
            JwtRefusal::Expired,
        ),
        (
            "nbf in the future",
            sign(&key, &claims(json!({"nbf": NOW + 60}))),
            JwtRefusal::NotYetValid,
        ),
        (
            "iat in the future",
            sign(&key, &claims(json!({"iat": NOW + 60}))),
            JwtRefusal::IssuedInFuture,
        ),
        (
            "no exp",
            sign(&key, &claims(json!({"exp": null}))),
            JwtRefusal::MissingClaim,
        ),
        (
            "wrong iss",
            sign(&key, &claims(json!({"iss": "https://evil.test"}))),
            JwtRefusal::UnknownIssuer,
        ),
        (
            "unknown kid",
            sign(
                &rsa("nope", "rsa1.pem", Algorithm::RS256),
                &claims(json!({})),
            ),
            JwtRefusal::UnknownKeyId,
        ),
        (
            "other key, known kid",
            sign(
                &rsa("rsa1", "rsa2.pem", Algorithm::RS256),
                &claims(json!({})),
            ),
            JwtRefusal::BadSignature,
        ),
        ("tampered payload", tampered, JwtRefusal::BadSignature),
        ("truncated signature", truncated, JwtRefusal::BadSignature),
        ("oversized", oversized, JwtRefusal::TokenTooLarge),
        ("json bomb header", json_bomb, JwtRefusal::Malformed),
        ("crit header", crit, JwtRefusal::CriticalHeader),
        ("garbage", "not-a-jwt".to_owned(), JwtRefusal::Malformed),
    ];
    let layer = rsa_layer();
    for (name, token, reason) in cases {
        assert_eq!(layer.verify(&token).await.unwrap_err(), reason, "{name}");
        let (status, _, _) = send(&layer, bearer(&token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}");
    }

    // Key confusion when HMAC is allowed: the RSA key's kid cannot do HS256.
    let with_hmac = layer_with_hmac();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("rsa1".into());
    let confusion = encode(
        &hs_header,
        &claims(json!({})),
        &EncodingKey::from_secret(&pem),
    )
    .expect("sign");
    assert_eq!(
        with_hmac.verify(&confusion).await.unwrap_err(),
        JwtRefusal::KeyAlgorithmMismatch
    );
}

fn layer_with_hmac() -> JwtLayer {
    layer(
        Issuer::new(ISS)
            .jwks(jwks(&[&rsa1()]))
            .hmac_secret(HmacSecret::new("0123456789abcdef0123456789abcdef-secret").with_kid("hs")),
    )
}

#[tokio::test]
async fn audience_leeway_lifetime_and_required_claims() {
    let key = rsa1();
    let layer = layer(
        Issuer::new(ISS)
            .jwks(jwks(&[&key]))
            .audiences(["api-a", "api-b"])
            .leeway(Duration::from_secs(30))
            .max_lifetime(Duration::from_secs(3600))
            .required_claims(["email"]),
    );
    let ok = claims(json!({"aud": ["x", "api-b"], "email": "a@b.c", "exp": NOW - 10}));
    assert!(
        layer.verify(&sign(&key, &ok)).await.is_ok(),
        "inside the leeway"
    );
    let cases = [
        (
            json!({"aud": "api-c", "email": "a@b.c"}),
            JwtRefusal::WrongAudience,
        ),
        (
            json!({"email": "a@b.c", "aud": null}),
            JwtRefusal::WrongAudience,
        ),
        (json!({"aud": "api-a"}), JwtRefusal::MissingClaim),
        (
            json!({"aud": "api-a", "email": "e", "exp": NOW + 7200}),
            JwtRefusal::LifetimeTooLong,
        ),
    ];
    for (extra, reason) in cases {
        assert_eq!(
            layer
                .verify(&sign(&key, &claims(extra.clone())))
                .await
                .unwrap_err(),
            reason,
            "{extra}"
        );
    }
}

fn cognito_layer() -> JwtLayer {
    let pool_id: UserPoolId = "eu-west-1_Test".parse().expect("a pool id");
    let pool = Issuer::user_pool(&pool_id)
        .jwks(jwks(&[&rsa1()]))
        .client_ids(["client-a"]);
    layer(pool)
}

fn cognito(extra: serde_json::Value) -> serde_json::Value {
    let mut c = claims(extra);
    c["iss"] = json!("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Test");
    c
}

#[tokio::test]
async fn cognito_preset_checks_token_use_and_app_client() {
    let key = rsa1();
    let layer = cognito_layer();
    let id = sign(
        &key,
        &cognito(json!({"token_use": "id", "aud": "client-a"})),
    );
    let access = sign(
        &key,
        &cognito(json!({"token_use": "access", "client_id": "client-a"})),
    );
    assert!(layer.verify(&id).await.is_ok());
    assert!(layer.verify(&access).await.is_ok());

    let cases = [
        (
            json!({"token_use": "id", "aud": "client-b"}),
            JwtRefusal::WrongAudience,
        ),
        (
            json!({"token_use": "access", "client_id": "client-b"}),
            JwtRefusal::WrongClientId,
        ),
        (json!({"token_use": "access"}), JwtRefusal::WrongClientId),
        (
            json!({"token_use": "refresh", "aud": "client-a"}),
            JwtRefusal::WrongTokenUse,
        ),
        (json!({"aud": "client-a"}), JwtRefusal::WrongTokenUse),
        (
            json!({"token_use": "id", "aud": "client-a", "exp": NOW + 2 * 86_400}),
            JwtRefusal::LifetimeTooLong,
        ),
    ];
    for (extra, reason) in cases {
        assert_eq!(
            layer
                .verify(&sign(&key, &cognito(extra.clone())))
                .await
                .unwrap_err(),
            reason,
            "{extra}"
        );
    }
    // RS256 only.
    let ps = sign(
        &rsa("rsa1", "rsa1.pem", Algorithm::PS256),
        &cognito(json!({"token_use": "id", "aud": "client-a"})),
    );
    assert_eq!(
        layer.verify(&ps).await.unwrap_err(),
        JwtRefusal::AlgorithmNotAllowed
    );

    // Per route: an ID-token route refuses access tokens, and the other way.
    assert_eq!(
        layer
            .clone()
            .token_use(TokenUse::Id)
            .verify(&access)
            .await
            .unwrap_err(),
        JwtRefusal::WrongTokenUse
    );
    assert!(
        layer
            .clone()
            .token_use(TokenUse::Access)
            .verify(&access)
            .await
            .is_ok()
    );
    let (status, _, _) = send(&layer.clone().token_use(TokenUse::Access), bearer(&id)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn groups_scopes_and_predicates_give_403() {
    let key = rsa1();
    let auth = rsa_layer();
    let token = sign(
        &key,
        &claims(json!({"cognito:groups": ["members", "gold"], "scope": "loyalty/read"})),
    );

    let allowed = [
        auth.clone().require_groups(Match::Any, ["admins", "gold"]),
        auth.clone().require_groups(Match::All, ["members", "gold"]),
        auth.clone()
            .require_scopes(Match::Any, ["loyalty/read", "loyalty/write"]),
        auth.clone().require(|caller, claims| {
            caller.principal() == "user-1" && claims.issuer() == Some(ISS)
        }),
    ];
    for layer in &allowed {
        assert_eq!(send(layer, bearer(&token)).await.0, StatusCode::OK);
    }
    let denied = [
        (
            auth.clone().require_groups(Match::Any, ["admins"]),
            JwtRefusal::MissingGroup,
        ),
        (
            auth.clone()
                .require_groups(Match::All, ["members", "admins"]),
            JwtRefusal::MissingGroup,
        ),
        (
            auth.clone()
                .require_scopes(Match::All, ["loyalty/read", "loyalty/write"]),
            JwtRefusal::MissingScope,
        ),
        (
            auth.clone()
                .require(|caller, _| caller.principal() == "someone-else"),
            JwtRefusal::PredicateFailed,
        ),
    ];
    for (layer, reason) in &denied {
        assert_eq!(layer.verify(&token).await.unwrap_err(), *reason);
        let (status, headers, body) = send(layer, bearer(&token)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(
            headers["www-authenticate"],
            r#"Bearer error="insufficient_scope""#
        );
        assert_eq!(headers["x-amzn-errortype"], "AccessDeniedException");
        assert!(body.contains("not authorized"), "{body}");
    }
}

#[tokio::test]
async fn scp_arrays_count_as_scopes() {
    let token = sign(
        &rsa1(),
        &claims(json!({"scope": null, "scp": ["a/b", "c/d"]})),
    );
    let layer = rsa_layer().require_scopes(Match::Any, ["c/d"]);
    let (status, _, body) = send(&layer, bearer(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.ends_with("|a/b,c/d"), "{body}");
}

#[tokio::test]
async fn tokens_from_a_cookie_a_query_or_another_header() {
    let token = sign(&rsa1(), &claims(json!({})));
    let base = || {
        JwtLayer::builder()
            .issuer(Issuer::new(ISS).jwks(jwks(&[&rsa1()])))
            .clock(clock())
    };
    let cookie = base()
        .token_source(TokenSource::Cookie("id_token".into()))
        .build()
        .expect("config");
    let request = Request::builder()
        .header("cookie", format!("a=b; id_token={token}"))
        .body(String::new())
        .expect("request");
    assert_eq!(send(&cookie, request).await.0, StatusCode::OK);

    let query = base()
        .token_source(TokenSource::Query("access_token".into()))
        .build()
        .expect("config");
    let request = Request::builder()
        .uri(format!("/x?access_token={token}"))
        .body(String::new())
        .expect("request");
    assert_eq!(send(&query, request).await.0, StatusCode::OK);

    let header = base()
        .token_source(TokenSource::Header {
            name: "x-token".into(),
            scheme: None,
        })
        .build()
        .expect("config");
    let request = Request::builder()
        .header("x-token", &token)
        .body(String::new())
        .expect("request");
    assert_eq!(send(&header, request).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_cache_serves_until_exp_and_is_bounded() {
    let clock = clock();
    let key = rsa1();
    let layer = JwtLayer::builder()
        .issuer(Issuer::new(ISS).jwks(jwks(&[&key])))
        .clock(clock.clone())
        .cache(
            TokenCacheConfig::default()
                .max_entries(32)
                .ttl(Duration::from_secs(300)),
        )
        .build()
        .expect("config");
    let token = sign(&key, &claims(json!({"exp": NOW + 60})));
    assert!(layer.verify(&token).await.is_ok());
    assert_eq!(layer.cached_tokens(), 1);
    assert!(layer.verify(&token).await.is_ok());
    clock.advance(Duration::from_secs(61));
    assert_eq!(layer.verify(&token).await.unwrap_err(), JwtRefusal::Expired);

    for i in 0..200 {
        let token = sign(&key, &claims(json!({"jti": i})));
        assert!(layer.verify(&token).await.is_ok());
    }
    assert!(layer.cached_tokens() <= 32, "{}", layer.cached_tokens());

    let off = JwtLayer::builder()
        .issuer(Issuer::new(ISS).jwks(jwks(&[&key])))
        .clock(clock)
        .cache(TokenCacheConfig::disabled())
        .build()
        .expect("config");
    assert!(
        off.verify(&sign(&key, &claims(json!({"exp": NOW + 600}))))
            .await
            .is_ok()
    );
    assert_eq!(off.cached_tokens(), 0);
}

#[tokio::test]
async fn grpc_clients_get_grpc_statuses() {
    let grpc = |token: Option<&str>| {
        let mut builder = Request::builder()
            .uri("/grpc.health.v1.Health/Check")
            .header("content-type", "application/grpc");
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        builder.body(String::new()).expect("request")
    };
    let (status, headers, _) = send(&rsa_layer(), grpc(None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["grpc-status"], "16");
    let token = sign(&rsa1(), &claims(json!({})));
    let (_, headers, _) = send(
        &rsa_layer().require_groups(Match::Any, ["admins"]),
        grpc(Some(&token)),
    )
    .await;
    assert_eq!(headers["grpc-status"], "7");
}

#[test]
fn invalid_configuration_names_the_field() {
    assert_eq!(JwtLayer::builder().build().unwrap_err().path(), "issuers");
    let bad_url = JwtLayer::new(Issuer::new(ISS).jwks_url("http://example.com/jwks")).unwrap_err();
    assert_eq!(bad_url.path(), "issuers[0].keys.jwks_url");
    let bad_jwks = JwtLayer::new(Issuer::new(ISS).jwks("{}")).unwrap_err();
    assert_eq!(bad_jwks.path(), "issuers[0].keys.jwks");
    let dup = JwtLayer::builder()
        .issuer(Issuer::new(ISS).jwks(jwks(&[&rsa1()])))
        .issuer(Issuer::new(ISS).jwks(jwks(&[&rsa1()])))
        .build()
        .unwrap_err();
    assert_eq!(dup.path(), "issuers[1].issuer");
    let parse = portcullis_jwt::JwtConfig::from_json(r#"{"issuers":[{"issuer":"i","leeway":5}]}"#)
        .unwrap_err();
    assert_eq!(parse.path(), "issuers[0].leeway");
}

#[tokio::test]
async fn a_static_jwks_file_is_read_at_build() {
    let path = std::env::temp_dir().join(format!("portcullis-jwt-{}.json", std::process::id()));
    std::fs::write(&path, jwks(&[&rsa1()])).expect("write");
    let layer = layer(Issuer::new(ISS).keys(portcullis_jwt::JwksSource::JwksFile(path.clone())));
    assert!(
        layer
            .verify(&sign(&rsa1(), &claims(json!({}))))
            .await
            .is_ok()
    );
    std::fs::remove_file(&path).expect("remove");
    let missing = JwtLayer::new(Issuer::new(ISS).keys(portcullis_jwt::JwksSource::JwksFile(path)))
        .unwrap_err();
    assert_eq!(missing.path(), "issuers[0].keys.jwks_file");
}
