//! `JwtLayer`: Amazon Cognito user-pool tokens, and the tokens of any OpenID
//! Connect issuer, verified in front of any `tower::Service` (axum, hyper,
//! tonic), with Cognito's rules, groups and scopes.
//!
//! The layer finds the token (`Authorization: Bearer` by default, or another
//! header, a cookie, a query parameter), refuses it before parsing if it is
//! over the size limit (8 KB), verifies its signature with the issuer's key,
//! checks its claims, and passes the request on with the core
//! [`Caller`](portcullis_core::context::Caller) in the request's
//! [`RequestContext`](portcullis_core::context::RequestContext) (its claims
//! read with [`JwtClaims::from_extensions`]). A refusal is a gateway response, as API Gateway's
//! Cognito authorizer sends it:
//!
//! | case | answer |
//! |---|---|
//! | no token | UNAUTHORIZED 401 `Unauthorized`, `WWW-Authenticate: Bearer` |
//! | expired | UNAUTHORIZED 401 `The incoming token has expired` |
//! | any other invalid token | UNAUTHORIZED 401 `Unauthorized`, `WWW-Authenticate: Bearer error="invalid_token"` |
//! | valid, but lacking a group, a scope or the predicate | ACCESS_DENIED 403, `WWW-Authenticate: Bearer error="insufficient_scope"` |
//! | the same to a gRPC client | `UNAUTHENTICATED` (16) or `PERMISSION_DENIED` (7) |
//!
//! # Example
//!
//! ```
//! use std::time::{SystemTime, UNIX_EPOCH};
//! use http::{Request, StatusCode};
//! use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
//! use portcullis_core::context::Caller;
//! use portcullis_core::context::RequestContextExt;
//! use portcullis_jwt::{HmacSecret, Issuer, JwtLayer, Match};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! const SECRET: &str = "a shared secret of at least 32 bytes";
//! let issuer = Issuer::new("https://issuer.example")
//!     .jwks(r#"{"keys":[]}"#)
//!     .algorithms([Algorithm::HS256])
//!     .hmac_secret(HmacSecret::new(SECRET));
//! let auth = JwtLayer::new(issuer).unwrap();
//!
//! let service = ServiceBuilder::new()
//!     .layer(auth.clone().require_groups(Match::Any, ["admins"]))
//!     .service_fn(|request: Request<()>| async move {
//!         let caller = request.caller().unwrap();
//!         Ok::<_, std::convert::Infallible>(http::Response::new(caller.principal().to_owned()))
//!     });
//!
//! let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
//! let claims = serde_json::json!({
//!     "iss": "https://issuer.example", "sub": "user-1", "exp": now + 60,
//!     "cognito:groups": ["admins"],
//! });
//! let token = encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap();
//!
//! let request = Request::builder().header("authorization", format!("Bearer {token}")).body(()).unwrap();
//! let response = service.clone().oneshot(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! let response = service.oneshot(Request::new(())).await.unwrap();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["www-authenticate"], "Bearer");
//! # }
//! ```
//!
//! A Cognito user pool, with per-route requirements in axum:
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use portcullis_jwt::{Issuer, JwtLayer, Match, TokenUse, UserPoolId};
//!
//! let pool: UserPoolId = "eu-west-1_AbCdEf123".parse().unwrap();
//! let auth = JwtLayer::new(Issuer::user_pool(&pool).client_ids(["app-client-id"])).unwrap();
//! let app: Router = Router::new()
//!     .route("/me", get(|| async { "me" }).route_layer(auth.clone().token_use(TokenUse::Id)))
//!     .route(
//!         "/admin",
//!         get(|| async { "admin" }).route_layer(
//!             auth.clone()
//!                 .token_use(TokenUse::Access)
//!                 .require_scopes(Match::Any, ["loyalty/admin"]),
//!         ),
//!     );
//! ```
//!
//! # Verification
//!
//! - Algorithms: RS256/384/512, PS256/384/512, ES256/384 and EdDSA; HS256/384/512
//!   only with an explicit [`HmacSecret`]. The allow-list is per issuer. `alg:
//!   none`, an algorithm the key's type cannot use (algorithm/key confusion,
//!   such as HS256 "signed" with an RSA public key), and any `crit` header are
//!   refused.
//! - Signatures are checked by [`jsonwebtoken`] 10 on its `aws_lc_rs` backend,
//!   chosen over `rust_crypto` because RS256 verification is about 8× faster on
//!   it (a 2048-bit key on a 2-core machine: 14.5 µs against 117 µs). Parsing
//!   is the layer's own, so that size limits, `alg: none` and `crit` are
//!   settled before any key is touched, and the payload is parsed once.
//! - Claims: `exp` (required), `nbf` and `iat` with a leeway, a maximum
//!   lifetime, `iss` exact, `aud` from a set, required claims, and with the
//!   Cognito preset ([`Issuer::user_pool`]) `token_use` and the app client
//!   (`aud` for ID tokens, `client_id` for access tokens).
//!
//! # Keys
//!
//! A static JWKS (string or file), a JWKS URL, or OpenID Connect discovery. The
//! key set is read lock-free (`arc-swap`); a background task refreshes it; an
//! unknown `kid` starts one single-flight refetch, at most once per 10 s (as
//! awslabs/aws-jwt-verify); when the issuer is down the last good keys keep
//! serving. No request waits on a lock held across network I/O: a request
//! with an unknown `kid` awaits the shared fetch itself.
//!
//! The HTTP client is hyper-util's legacy client with hyper-rustls on rustls'
//! aws-lc-rs provider: the hyper 1 stack the workspace already uses and the
//! crypto library the `jsonwebtoken` backend already links, rather than
//! reqwest, whose cookies, redirects, proxies and decompression a key fetch
//! does not need. `http://` key URLs are accepted on loopback only, unless
//! [`Issuer::allow_insecure_http`] is set.
//!
//! # Verified-token cache
//!
//! On by default: a verified token maps to the verified caller, until the
//! earlier of `exp` and the TTL (300 s), for at most 10,000 tokens. Route
//! requirements are checked on every request, hit or miss.
//! [`TokenCacheConfig::disabled`] turns it off. It is a small sharded map of
//! its own rather than `moka`: a hit has to stay well within a microsecond,
//! and a bound with expiry is all the policy it needs.
//!
//! The map's key is a keyed 64-bit hash of the token (foldhash with a
//! random key drawn per cache), and each entry keeps the **token itself**: a
//! hit compares the request's token with the stored one in full, in constant
//! time for the token's length, so a token that only shares the hash never
//! passes for a verified one. Keeping the token costs memory (at most
//! `max_entries` × (`max_token_bytes` + about 80 bytes): about 80 MiB with
//! the defaults and 8 KiB tokens, 9 MiB with Cognito's 900-byte ones) and
//! means the process holds up to `max_entries` live bearer tokens for at most the TTL; the cache never logs them or shows them
//! in `Debug`. Only tokens that verified are stored. Turn the cache off where
//! holding tokens in memory is not acceptable.
//!
//! # Where it differs from API Gateway
//!
//! - API Gateway's Cognito authorizer reads a bare token from the header; this
//!   layer reads `Bearer <token>` and also takes a bare token.
//! - `iat` in the future is refused (API Gateway does not document it).
//! - Issuer keys that cannot be loaded at all give 401 (reason
//!   `keys_unavailable`), not a 5xx.
//!
//! # Features
//!
//! - `axum`: the [`Claims<T>`](Claims) extractor.

mod cache;
mod claims;
mod config;
mod engine;
mod fetch;
mod file_config;
mod issuer;
mod keys;
mod layer;
mod policy;
mod pool_id;
mod reject;
mod service;
mod source;
mod store;
mod verify;

#[cfg(test)]
mod corpus_tests;

pub use cache::TokenCacheConfig;
#[cfg(feature = "axum")]
pub use claims::Claims;
pub use claims::{JwtClaims, Verified};
pub use config::{DEFAULT_MAX_TOKEN_BYTES, JwtConfig};
pub use file_config::{JwksLocation, JwtFileConfig};
pub use issuer::{HmacSecret, Issuer, JwksSource, TokenUse};
pub use jsonwebtoken::Algorithm;
pub use layer::{JwtLayer, JwtLayerBuilder};
pub use policy::Match;
pub use pool_id::UserPoolId;
pub use portcullis_core::future::ResponseFuture;
pub use reject::JwtRefusal;
pub use service::Jwt;
pub use source::TokenSource;
