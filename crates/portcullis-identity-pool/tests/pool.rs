//! The identity pool end to end: exchange, sign with aws-sigv4, pass (or
//! not) the SigV4 layer with the role's policies.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::StatusCode;
use portcullis_core::clock::Clock;
use portcullis_identity_pool::{IdentityPool, IdentityPoolConfig};
use portcullis_sigv4::{Credential, StaticCredentialProvider};
use serde_json::json;

const UNRECOGNIZED: &str = "UnrecognizedClientException";

#[tokio::test]
async fn an_id_token_becomes_credentials_that_pass_the_sigv4_layer() {
    let clock = clock();
    let pool = pool(config(), &clock);
    let (status, answer) = sign_in(&pool, &id_token("alice", &[], NOW)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let identity = answer["IdentityId"].as_str().expect("IdentityId");
    assert!(identity.starts_with("us-east-1:"), "{identity}");
    assert_eq!(identity, pool.identity_id_for(ISS, "alice"));
    assert_eq!(answer["Credentials"]["Expiration"], json!(NOW + 3600));
    let creds = TempCreds::from_answer(&answer);
    assert!(creds.access_key.starts_with("ASIA"));

    // The authenticated role may GET /loyalty/*.
    let request = signed_with(&creds, "/loyalty/C123/get", NOW);
    let (status, error, body) = call(pool.provider(), &clock, request).await;
    assert_eq!(status, StatusCode::OK, "{error}: {body}");
    assert_eq!(
        body,
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/LoyaltyUser/{identity}")
    );

    // But not a route its policies do not allow.
    let request = signed_with(&creds, "/admin/report", NOW);
    let (status, error, body) = call(pool.provider(), &clock, request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error, "AccessDeniedException");
    assert!(
        body.contains(&format!(
            "assumed-role/LoyaltyUser/{identity} is not authorized"
        )),
        "{body}"
    );
}

#[tokio::test]
async fn identity_ids_are_stable_per_issuer_and_subject() {
    let clock = clock();
    let pool = pool(config(), &clock);
    let (_, first) = sign_in(&pool, &id_token("alice", &[], NOW)).await;
    clock.advance(Duration::from_secs(60));
    let (_, again) = sign_in(&pool, &id_token("alice", &["Admins"], NOW + 60)).await;
    let (_, bob) = sign_in(&pool, &id_token("bob", &[], NOW + 60)).await;
    assert_eq!(first["IdentityId"], again["IdentityId"]);
    assert_ne!(first["IdentityId"], bob["IdentityId"]);
    // New credentials each time.
    assert_ne!(
        first["Credentials"]["AccessKeyId"],
        again["Credentials"]["AccessKeyId"]
    );
    // The identity id may be given back; another one is refused.
    let (status, _) = exchange(
        &pool,
        json!({"IdentityId": first["IdentityId"], "Logins": {PROVIDER: id_token("alice", &[], NOW + 60)}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = exchange(
        &pool,
        json!({"IdentityId": bob["IdentityId"], "Logins": {PROVIDER: id_token("alice", &[], NOW + 60)}}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
}

#[tokio::test]
async fn a_group_mapped_admin_reaches_a_route_the_normal_role_cannot() {
    let clock = clock();
    let pool = pool(config(), &clock);
    let (_, user) = sign_in(&pool, &id_token("ann", &["Staff"], NOW)).await;
    let (_, admin) = sign_in(&pool, &id_token("root", &["Staff", "Admins"], NOW)).await;
    let user = TempCreds::from_answer(&user);
    let admin_creds = TempCreds::from_answer(&admin);

    let (status, _, _) = call(
        pool.provider(),
        &clock,
        signed_with(&user, "/admin/report", NOW),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, error, body) = call(
        pool.provider(),
        &clock,
        signed_with(&admin_creds, "/admin/report", NOW),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{error}: {body}");
    assert!(body.contains(":assumed-role/LoyaltyAdmin/"), "{body}");
}

#[tokio::test]
async fn a_role_mapping_that_denies_refuses_unmatched_users() {
    let clock = clock();
    let mut config = config();
    config.ambiguous_role_resolution = portcullis_identity_pool::AmbiguousRoleResolution::Deny;
    let pool = pool(config, &clock);
    let (status, answer) = sign_in(&pool, &id_token("ann", &["Staff"], NOW)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, _) = sign_in(&pool, &id_token("root", &["Admins"], NOW)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_guest_gets_the_unauthenticated_role() {
    let clock = clock();
    let pool = pool(config(), &clock);
    let (status, answer) = exchange(&pool, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let identity = answer["IdentityId"].as_str().expect("id").to_owned();
    let creds = TempCreds::from_answer(&answer);
    let (status, _, body) = call(
        pool.provider(),
        &clock,
        signed_with(&creds, "/public/fares", NOW),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/LoyaltyGuest/{identity}")
    );
    let (status, _, _) = call(
        pool.provider(),
        &clock,
        signed_with(&creds, "/loyalty/C1/get", NOW),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // An empty body is a guest too; a guest may come back with its id, but
    // not with one the pool did not issue.
    let (status, _) = exchange_raw(&pool, Bytes::new()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, again) = exchange(&pool, json!({"IdentityId": identity})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["IdentityId"], json!(identity));
    let forged = format!("{}0", &identity[..identity.len() - 1]);
    let forged = if forged == identity {
        format!("{}1", &identity[..identity.len() - 1])
    } else {
        forged
    };
    let (status, _) = exchange(&pool, json!({"IdentityId": forged})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // An authenticated user's id is not a guest's.
    let (status, _) = exchange(
        &pool,
        json!({"IdentityId": pool.identity_id_for(ISS, "alice")}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn guests_are_refused_when_the_pool_takes_none() {
    let clock = clock();
    let mut config = config();
    config.allow_unauthenticated = false;
    let pool = pool(config, &clock);
    let (status, answer) = exchange(&pool, json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer["message"],
        "Unauthenticated access is not supported for this identity pool."
    );
}

#[tokio::test]
async fn bad_and_expired_id_tokens_get_401() {
    let clock = clock();
    let pool = pool(config(), &clock);
    let (status, answer) = sign_in(&pool, "not.a.token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert_eq!(answer["message"], "Unauthorized");
    let (status, answer) = sign_in(&pool, &id_token("alice", &[], NOW - 7200)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer["message"], "The incoming token has expired");
    // A good token under the wrong provider name.
    let (status, _) = exchange(
        &pool,
        json!({"Logins": {"accounts.google.com": id_token("alice", &[], NOW)}}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Two logins, malformed bodies, the wrong pool.
    let token = id_token("alice", &[], NOW);
    let (status, _) = exchange(&pool, json!({"Logins": {PROVIDER: token, "other": token}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = exchange_raw(&pool, Bytes::from_static(b"{\"Logins\":")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = exchange_raw(&pool, Bytes::from(vec![b' '; 20_000])).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _) = exchange(&pool, json!({"IdentityPoolId": "us-east-1:other"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn credentials_expire_on_the_manual_clock() {
    let clock = clock();
    let mut config = config();
    config.credential_lifetime_seconds = 900;
    let pool = pool(config, &clock);
    let (_, answer) = sign_in(&pool, &id_token("alice", &[], NOW)).await;
    assert_eq!(answer["Credentials"]["Expiration"], json!(NOW + 900));
    let creds = TempCreds::from_answer(&answer);

    clock.advance(Duration::from_secs(899));
    let now = clock.now_unix_seconds();
    let (status, _, _) = call(
        pool.provider(),
        &clock,
        signed_with(&creds, "/loyalty/C1/get", now),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    clock.advance(Duration::from_secs(1));
    let now = clock.now_unix_seconds();
    let (status, error, body) = call(
        pool.provider(),
        &clock,
        signed_with(&creds, "/loyalty/C1/get", now),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error, "ExpiredTokenException");
    assert!(
        body.contains("The security token included in the request is expired"),
        "{body}"
    );
}

#[test]
fn lifetimes_outside_15_minutes_to_12_hours_are_refused() {
    for (seconds, ok) in [
        (899, false),
        (900, true),
        (3600, true),
        (43_200, true),
        (43_201, false),
    ] {
        let mut config = config();
        config.credential_lifetime_seconds = seconds;
        let result = IdentityPool::from_config(config);
        assert_eq!(result.is_ok(), ok, "{seconds}");
        if let Err(error) = result {
            assert!(
                error.to_string().contains("credential_lifetime_seconds"),
                "{error}"
            );
        }
    }
    let defaulted: IdentityPoolConfig = IdentityPoolConfig::from_json(
        r#"{"region":"us-east-1","account_id":"123456789012","keys":[],"roles":{},"authenticated_role":"x"}"#,
    )
    .expect("parses");
    assert_eq!(defaulted.credential_lifetime_seconds, 3600);
}

#[tokio::test]
async fn a_tampered_or_forged_session_token_is_unrecognized() {
    let clock = clock();
    let pool = pool(config(), &clock);
    let (_, answer) = sign_in(&pool, &id_token("alice", &[], NOW)).await;
    let creds = TempCreds::from_answer(&answer);
    // Warm the provider's cache, so that the tampered tokens meet a cached
    // credential too.
    let (status, _, _) = call(
        pool.provider(),
        &clock,
        signed_with(&creds, "/loyalty/C1/get", NOW),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let mut tampered = creds.clone();
    let last = tampered.token.pop().expect("char");
    tampered.token.push(if last == 'A' { 'B' } else { 'A' });
    let (status, error, body) = call(
        pool.provider(),
        &clock,
        signed_with(&tampered, "/loyalty/C1/get", NOW),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error, UNRECOGNIZED);
    assert!(
        body.contains("The security token included in the request is invalid."),
        "{body}"
    );

    // A token sealed by another pool (another key under the same id).
    let other = common::pool(config_with_keys(&[("k1", KEY2)], None), &clock);
    let (_, foreign) = sign_in(&other, &id_token("alice", &[], NOW)).await;
    let foreign = TempCreds::from_answer(&foreign);
    let (status, error, _) = call(
        pool.provider(),
        &clock,
        signed_with(&foreign, "/loyalty/C1/get", NOW),
    )
    .await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::FORBIDDEN, UNRECOGNIZED)
    );

    // A real token under another access key id (with a secret guessed as
    // the real one's).
    let mut swapped = creds.clone();
    swapped.access_key = "ASIAAAAAAAAAAAAAAAAA".into();
    let (status, error, _) = call(
        pool.provider(),
        &clock,
        signed_with(&swapped, "/loyalty/C1/get", NOW),
    )
    .await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::FORBIDDEN, UNRECOGNIZED)
    );

    // The right token with a wrong secret: the signature fails.
    let mut wrong_secret = creds.clone();
    wrong_secret.secret = "x".repeat(40);
    let (status, error, _) = call(
        pool.provider(),
        &clock,
        signed_with(&wrong_secret, "/loyalty/C1/get", NOW),
    )
    .await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::FORBIDDEN, "InvalidSignatureException")
    );

    // No token at all.
    let request = signed_get(
        "/loyalty/C1/get",
        &creds.access_key,
        &creds.secret,
        None,
        NOW,
    );
    let (status, error, _) = call(pool.provider(), &clock, request).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::FORBIDDEN, UNRECOGNIZED)
    );
}

#[tokio::test]
async fn rotated_keys_open_old_tokens_until_retired() {
    let clock = clock();
    let old = pool(config_with_keys(&[("k1", KEY1)], None), &clock);
    let (_, answer) = sign_in(&old, &id_token("alice", &[], NOW)).await;
    let before = TempCreds::from_answer(&answer);
    assert!(before.token.starts_with("v1.k1."));

    // Rotation: k2 is added and seals new tokens; k1 still opens old ones.
    let rotated = pool(
        config_with_keys(&[("k1", KEY1), ("k2", KEY2)], None),
        &clock,
    );
    let (_, answer) = sign_in(&rotated, &id_token("alice", &[], NOW)).await;
    let after = TempCreds::from_answer(&answer);
    assert!(after.token.starts_with("v1.k2."));
    for creds in [&before, &after] {
        let (status, error, _) = call(
            rotated.provider(),
            &clock,
            signed_with(creds, "/loyalty/C1/get", NOW),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{error}");
    }

    // k1 retired: its tokens are unrecognized; k2's still pass.
    let retired = pool(config_with_keys(&[("k2", KEY2)], None), &clock);
    let (status, error, _) = call(
        retired.provider(),
        &clock,
        signed_with(&before, "/loyalty/C1/get", NOW),
    )
    .await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::FORBIDDEN, UNRECOGNIZED)
    );
    let (status, _, _) = call(
        retired.provider(),
        &clock,
        signed_with(&after, "/loyalty/C1/get", NOW),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // active_key picks the sealing key explicitly.
    let pinned = pool(
        config_with_keys(&[("k1", KEY1), ("k2", KEY2)], Some("k1")),
        &clock,
    );
    let (_, answer) = sign_in(&pinned, &id_token("alice", &[], NOW)).await;
    assert!(TempCreds::from_answer(&answer).token.starts_with("v1.k1."));
}

#[tokio::test]
async fn two_replicas_sharing_only_the_pool_key_accept_each_others_credentials() {
    let clock = clock();
    let a = pool(config(), &clock);
    let b = pool(config(), &clock);
    let (_, from_a) = sign_in(&a, &id_token("alice", &[], NOW)).await;
    let (_, from_b) = exchange(&b, json!({})).await;
    let (status, _, body) = call(
        b.provider(),
        &clock,
        signed_with(&TempCreds::from_answer(&from_a), "/loyalty/C1/get", NOW),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.ends_with(from_a["IdentityId"].as_str().expect("id")));
    let (status, _, _) = call(
        a.provider(),
        &clock,
        signed_with(&TempCreds::from_answer(&from_b), "/public/x", NOW),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Same identity id on both replicas; the guest id issued by b is known to a.
    assert_eq!(
        a.identity_id_for(ISS, "alice"),
        b.identity_id_for(ISS, "alice")
    );
    let (status, _) = exchange(&a, json!({"IdentityId": from_b["IdentityId"]})).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn long_term_users_pass_through_the_fallback() {
    let clock = clock();
    let pool = pool(config(), &clock);
    let static_provider = StaticCredentialProvider::new().with(
        Credential::new(
            "AKIDSTATIC",
            "static-secret",
            format!("arn:aws:iam::{ACCOUNT}:user/ops"),
        )
        .with_policy(
            serde_json::from_value::<portcullis_iam::PolicyDocument>(json!({
                "Version": "2012-10-17",
                "Statement": {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"}
            }))
            .expect("policy"),
        ),
    );
    let provider = pool.provider().with_fallback(static_provider);
    let request = signed_get("/admin/report", "AKIDSTATIC", "static-secret", None, NOW);
    let (status, _, body) = call(provider.clone(), &clock, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, format!("arn:aws:iam::{ACCOUNT}:user/ops"));
    let (_, answer) = sign_in(&pool, &id_token("alice", &[], NOW)).await;
    let creds = TempCreds::from_answer(&answer);
    let (status, _, _) = call(
        provider,
        &clock,
        signed_with(&creds, "/loyalty/C1/get", NOW),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn invalid_configuration_names_the_field() {
    type Breaker = fn(&mut IdentityPoolConfig);
    let cases: [(Breaker, &str); 7] = [
        (|c| c.keys.clear(), "keys"),
        (|c| c.keys[0].secret = "short".into(), "keys[0].secret"),
        (|c| c.keys[0].id = "a.b".into(), "keys[0].id"),
        (
            |c| c.authenticated_role = "Nobody".into(),
            "authenticated_role",
        ),
        (
            |c| c.role_mappings[0].role = "Nobody".into(),
            "role_mappings[0].role",
        ),
        (|c| c.account_id = "12".into(), "account_id"),
        (|c| c.active_key = Some("k9".into()), "active_key"),
    ];
    for (break_it, field) in cases {
        let mut config = config();
        break_it(&mut config);
        let error = IdentityPool::from_config(config).expect_err(field);
        assert_eq!(error.path(), field, "{error}");
    }
    let error = IdentityPoolConfig::from_json(r#"{"region": 3}"#).expect_err("type");
    assert_eq!(error.path(), "region", "{error}");
}

#[test]
fn debug_output_redacts_secrets() {
    let config = config();
    let debug = format!("{config:?}");
    assert!(!debug.contains(KEY1), "{debug}");
    assert!(!debug.contains("identity-key-identity"), "{debug}");
    let clock = clock();
    let pool = pool(config, &clock);
    assert!(!format!("{pool:?}").contains(KEY1));
}

#[tokio::test]
async fn issued_credentials_debug_is_redacted() {
    let clock = clock();
    let pool = pool(config(), &clock);
    let (_, answer) = exchange(&pool, json!({})).await;
    let creds = TempCreds::from_answer(&answer);
    let credential = pool.open(&creds.access_key, &creds.token).expect("opens");
    let debug = format!("{credential:?}");
    assert!(
        !debug.contains(&creds.secret) && !debug.contains(&creds.token),
        "{debug}"
    );
}

#[test]
fn the_readme_toml_configuration_builds() {
    let readme = include_str!("../README.md");
    let start = readme.find("```toml\n").expect("a TOML block") + "```toml\n".len();
    let end = start + readme[start..].find("```").expect("its end");
    // The README shows the facade's `[identity_pool]` table: read it as a file.
    let text = readme[start..end]
        .replace("[identity_pool]\n", "")
        .replace("identity_pool.", "");
    let config: IdentityPoolConfig = toml::from_str(&text).expect("the README's TOML parses");
    assert_eq!(config.role_mappings.len(), 1);
    assert_eq!(config.roles["LoyaltyUser"].policies.len(), 1);
    assert_eq!(config.token_use, Some(portcullis_jwt::TokenUse::Id));
    let pool = IdentityPool::from_config(config).expect("builds");
    assert_eq!(pool.region(), "us-east-1");
}

#[tokio::test]
async fn a_refused_exchange_carries_its_error_in_the_extensions() {
    use http_body_util::Full;
    use portcullis_identity_pool::ExchangeError;
    use tower::ServiceExt;

    let clock = clock();
    let pool = pool(config(), &clock);
    let cases = [
        (http::Method::GET, "{}", ExchangeError::MethodNotAllowed),
        (http::Method::POST, "not json", ExchangeError::Malformed),
    ];
    for (method, body, error) in cases {
        let request = http::Request::builder()
            .method(method)
            .uri("/credentials")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        let response = pool
            .credentials_service()
            .oneshot(request)
            .await
            .expect("infallible");
        assert!(response.status().is_client_error(), "{error}");
        assert_eq!(response.extensions().get::<ExchangeError>(), Some(&error));
    }
}
