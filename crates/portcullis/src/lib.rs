//! Portcullis gives any `tower::Service` (axum, hyper, tonic) the access
//! controls of Amazon API Gateway, Cognito and AWS WAF. This facade crate
//! re-exports the layers behind features, and builds the whole stack from one
//! TOML file, composed in API Gateway's order: WAF, then IAM (SigV4) or JWT,
//! then API key, then throttle, then quota.
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use portcullis::{Gateway, GatewayBody, config::Config};
//! use tower::{Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let config = Config::from_toml(r#"
//!     [gateway]
//!     region = "us-east-1"
//!     account_id = "123456789012"
//!     api_id = "a1b2c3d4e5"
//!     stage = "prod"
//!
//!     [[usage_plans]]
//!     id = "loyalty-basic"
//!     throttle = { rate_limit = 1.0, burst_limit = 2 }
//!     quota = { limit = 10, period = "DAY", offset = 0 }
//!
//!     [[api_keys]]
//!     id = "demo-key"
//!     value = "DemoKey0123456789abcdefghij"
//!     usage_plans = ["loyalty-basic"]
//! "#).unwrap();
//! let gateway = Gateway::builder(config).build().unwrap();
//!
//! let app = gateway.layer().layer(tower::service_fn(|_: Request<GatewayBody>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(String::from("points: 1200")))
//! }));
//! let call = |key: Option<&str>| {
//!     let mut request = Request::get("/loyalty/C-1/get");
//!     if let Some(key) = key {
//!         request = request.header("x-api-key", key);
//!     }
//!     app.clone().oneshot(request.body(String::new()).unwrap())
//! };
//!
//! // No key: API Gateway's 403 Forbidden.
//! assert_eq!(call(None).await.unwrap().status(), StatusCode::FORBIDDEN);
//! // The key: through twice (burst 2), then throttled.
//! assert_eq!(call(Some("DemoKey0123456789abcdefghij")).await.unwrap().status(), StatusCode::OK);
//! assert_eq!(call(Some("DemoKey0123456789abcdefghij")).await.unwrap().status(), StatusCode::OK);
//! let throttled = call(Some("DemoKey0123456789abcdefghij")).await.unwrap();
//! assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(throttled.headers()["x-amzn-errortype"], "TooManyRequestsException");
//! # }
//! ```
//!
//! # Features
//!
//! The default features build a gateway of API keys and usage plans: the
//! TOML file (`config`) with the API-key, throttle and quota layers and the
//! store they share. That is what API Gateway's usage plans are, and what
//! most first gateways need; each other layer is one feature away, so that
//! an application compiles only the layers it runs.
//!
//! | feature | what it brings | sections of the file |
//! |---|---|---|
//! | `config` (default) | `config::Config`, `Gateway`, `GatewayLayer`, `portcullis::control_plane`; turns on `api-key`, `throttle`, `quota` | `[gateway]`, `[[usage_plans]]`, `[[api_keys]]`, `[store]`, `[quota]`, `[client_ip]` |
//! | `api-key` | `portcullis::api_key`: API keys | |
//! | `throttle` | `portcullis::throttle`: usage-plan and stage throttles | |
//! | `quota` | `portcullis::quota`: quotas and usage records | |
//! | `waf` | `portcullis::waf`: AWS WAFv2 web ACLs | `[waf]` |
//! | `sigv4` | `portcullis::sigv4` and `portcullis::iam`: SigV4 signatures and IAM policies | `[iam]` |
//! | `jwt` | `portcullis::jwt`: Cognito user pools and OIDC issuers | `[jwt]` |
//! | `identity-pool` | `portcullis::identity_pool`: tokens exchanged for temporary credentials (turns on `sigv4`, `jwt`) | `[identity_pool]` |
//! | `openapi` | `portcullis::openapi`: per-method settings from an OpenAPI export, access logs | `[api]` |
//! | `authorizer` | `portcullis::authorizer`: custom (Lambda-style) authorizers | `[api.authorizers]` |
//! | `redis` | the Redis store (turns on `config`) | `[store] kind = "redis"` |
//! | `full` | all of the above | every section |
//! | `axum` | client addresses from axum's `ConnectInfo`, `Claims<T>`, per-method throttles on `MatchedPath` | |
//!
//! A file with a section whose feature is off is refused when it is read,
//! with an error that names the file, the section and the feature to turn
//! on (`gateway.toml: waf: [waf] needs portcullis's `waf` feature, ...`);
//! it is never read as if the section were not there. `control-plane` is
//! another name for `config`. Items that need a feature say so in their
//! documentation.
//!
//! # Per-route stacks
//!
//! API Gateway configures authorization and API keys per method. With axum,
//! give each group of routes its own piece of the gateway with
//! `route_layer`, and leave the rest alone: here `/health` is public and
//! the loyalty routes need a key.
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, StatusCode};
//! use portcullis::{Gateway, config::Config};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let config = Config::from_toml(r#"
//!     [gateway]
//!     region = "us-east-1"
//!     account_id = "123456789012"
//!     api_id = "a1b2c3d4e5"
//!     stage = "prod"
//!
//!     [[usage_plans]]
//!     id = "basic"
//!     throttle = { rate_limit = 100.0, burst_limit = 200 }
//!
//!     [[api_keys]]
//!     id = "demo-key"
//!     value = "DemoKey0123456789abcdefghij"
//!     usage_plans = ["basic"]
//! "#).unwrap();
//! let gateway = Gateway::builder(config).build().unwrap();
//!
//! let loyalty = Router::new()
//!     .route("/loyalty/{id}", get(|| async { "points: 1200" }))
//!     .route_layer(gateway.layer()); // only the routes above it
//! let app = Router::new()
//!     .route("/health", get(|| async { "ok" })) // outside the gateway
//!     .merge(loyalty);
//!
//! let status = |uri: &str, key: Option<&str>| {
//!     let mut request = Request::get(uri);
//!     if let Some(key) = key {
//!         request = request.header("x-api-key", key);
//!     }
//!     let call = app.clone().oneshot(request.body(Body::empty()).unwrap());
//!     async { call.await.unwrap().status() }
//! };
//! assert_eq!(status("/health", None).await, StatusCode::OK);
//! assert_eq!(status("/loyalty/C-1", None).await, StatusCode::FORBIDDEN);
//! assert_eq!(status("/loyalty/C-1", Some("DemoKey0123456789abcdefghij")).await, StatusCode::OK);
//! // `route_layer` runs the gateway only on routes that match: an unknown
//! // path is axum's 404, not API Gateway's 403.
//! assert_eq!(status("/nowhere", None).await, StatusCode::NOT_FOUND);
//! # }
//! ```
//!
//! [`Gateway::layer`] is the whole stack: WAF, then the authorizer (IAM if
//! `[iam]` is configured, else JWT if `[jwt]` is), then API key, throttle
//! and quota. [`GatewayLayer`]'s methods take pieces out:
//!
//! - [`without_waf`](GatewayLayer::without_waf) drops the WAF and nothing
//!   else, for routes under an app-wide WAF (`Router::layer` with
//!   `Gateway::waf_layer`): the authorizer stays, so with `[jwt]`
//!   configured those routes still demand a token;
//! - [`auth(None)`](GatewayLayer::auth) drops the authorizer: a route that
//!   takes an API key and no credential;
//! - [`without_api_key`](GatewayLayer::without_api_key) drops the API key
//!   and the quota: a route that needs no key.
//!
//! ```
//! # #[cfg(feature = "jwt")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, StatusCode};
//! use portcullis::{Gateway, config::Config};
//! use tower::ServiceExt;
//!
//! // A gateway with `[jwt]` (a Cognito user pool) and the API key of the
//! // example above.
//! # let config = Config::from_toml(r#"
//! #     [gateway]
//! #     region = "us-east-1"
//! #     account_id = "123456789012"
//! #     api_id = "a1b2c3d4e5"
//! #     stage = "prod"
//! #     [[usage_plans]]
//! #     id = "basic"
//! #     [[api_keys]]
//! #     id = "demo-key"
//! #     value = "DemoKey0123456789abcdefghij"
//! #     usage_plans = ["basic"]
//! #     [jwt]
//! #     cognito_user_pool = "us-east-1_AbCdEf123"
//! #     jwks = "http://127.0.0.1:9/jwks.json"
//! # "#).unwrap();
//! let gateway = Gateway::builder(config).build().unwrap();
//!
//! let app = Router::new()
//!     // A token and a key.
//!     .route("/loyalty/{id}", get(|| async { "points: 1200" }))
//!     .route_layer(gateway.layer().without_waf())
//!     // A key alone: `auth(None)` takes the JWT layer out.
//!     .merge(
//!         Router::new()
//!             .route("/offers", get(|| async { "offers" }))
//!             .route_layer(gateway.layer().without_waf().auth(None)),
//!     );
//!
//! let status = |uri: &str| {
//!     let request = Request::get(uri)
//!         .header("x-api-key", "DemoKey0123456789abcdefghij")
//!         .body(Body::empty())
//!         .unwrap();
//!     let call = app.clone().oneshot(request);
//!     async { call.await.unwrap().status() }
//! };
//! // `without_waf()` kept the JWT layer: no token, 401.
//! assert_eq!(status("/loyalty/C-1").await, StatusCode::UNAUTHORIZED);
//! // `auth(None)`: the key is enough.
//! assert_eq!(status("/offers").await, StatusCode::OK);
//! # }
//! # #[cfg(not(feature = "jwt"))]
//! # fn main() {}
//! ```
//!
//! Or let the API's OpenAPI export decide (the `openapi` feature): with
//! `[api] openapi = "file"`, [`Gateway::layer`] routes each request to its
//! method and builds that method's chain from the gateway's layers (SigV4,
//! JWT with the method's Cognito scopes, custom authorizers, API key,
//! throttle with per-method limits, quota), with request validation, CORS
//! preflights answered without credentials, and 403 Missing Authentication
//! Token for anything the export does not define; `Gateway::access_log_layer`
//! writes API Gateway's access log (`docs/config.md`, section `[api]`).
//!
//! # The composed layer is boxed once
//!
//! [`Gateway::layer`] returns a [`GatewayLayer`] whose service boxes the
//! request and response bodies ([`GatewayBody`]) and erases the whole stack
//! once ([`BoxedStack`]). Inside, the layers are composed with static types
//! (a slot per optional layer), and each layer's response body is unwrapped
//! instead of boxed: per request, one boxed future and the bodies boxed at
//! the edges, nothing per layer. For the last few allocations, take the
//! layers one by one ([`Gateway::api_key_layer`],
//! [`Gateway::throttle_layer`], [`Gateway::quota_layer`], and the WAF,
//! SigV4 and JWT layers with their features) and stack them with
//! `tower::ServiceBuilder` or axum's `route_layer`; they share state with
//! the composed stack.
//!
//! # Configuration
//!
//! [`config::Config`] is the file; `docs/config.md` documents every field.
//! Paths in it are relative to the file. Every error names the bad field by
//! its path (`iam.users[0].policies[1]`, `api_keys[2].value`); TOML syntax
//! and type errors get theirs from `serde_path_to_error`. The `toml` crate is
//! the TOML parser (the ecosystem's standard, maintained with cargo).
//!
//! # Where the state lives
//!
//! Keys, plans, usage and quota counters live in the control-plane store
//! ([`control_plane`]): `[store] kind = "embedded"` (the default, durable, in
//! `data_dir`), `"memory"`, or `"redis"` (with the `redis` feature: shared by
//! a fleet, the throttle's buckets too). The layers read it through a key
//! cache and a quota engine, so the hot path stays in memory. Opening the
//! embedded store or Redis is asynchronous: build with
//! `GatewayBuilder::build_async` or `Gateway::connect`; the synchronous
//! `build` builds the memory store (see `docs/config.md`).

pub use portcullis_core as core;
pub use portcullis_core::{
    GatewayResponse, GatewayResponseType, GatewayResponses, GatewayResponsesLayer,
};

#[cfg(feature = "api-key")]
pub use portcullis_api_key as api_key;
#[cfg(feature = "authorizer")]
pub use portcullis_authorizer as authorizer;
#[cfg(feature = "config")]
pub use portcullis_control_plane as control_plane;
#[cfg(any(feature = "sigv4", feature = "config"))]
pub use portcullis_iam as iam;
#[cfg(feature = "identity-pool")]
pub use portcullis_identity_pool as identity_pool;
#[cfg(feature = "jwt")]
pub use portcullis_jwt as jwt;
#[cfg(feature = "openapi")]
pub use portcullis_openapi as openapi;
#[cfg(feature = "quota")]
pub use portcullis_quota as quota;
#[cfg(feature = "sigv4")]
pub use portcullis_sigv4 as sigv4;
#[cfg(feature = "throttle")]
pub use portcullis_throttle as throttle;
#[cfg(feature = "waf")]
pub use portcullis_waf as waf;

#[cfg(all(feature = "config", feature = "openapi"))]
mod api;
#[cfg(feature = "config")]
mod boxed;
#[cfg(feature = "config")]
mod chain;
#[cfg(feature = "config")]
pub mod config;
#[cfg(feature = "config")]
mod gateway;
#[cfg(feature = "config")]
mod reload;
#[cfg(feature = "config")]
mod stack;
#[cfg(feature = "config")]
mod store;

#[cfg(feature = "config")]
pub use boxed::{
    BoxError, Boxed, BoxedStack, GatewayBody, GatewayResponseBody, GatewayService, StackFuture,
    box_body,
};
#[cfg(feature = "config")]
pub use chain::Auth;
#[cfg(feature = "config")]
pub use gateway::{Gateway, GatewayBuilder, GatewayKeyStore, GatewayQuotaStore, GatewayUsageAdmin};
#[cfg(feature = "config")]
pub use reload::{ReloadableGateway, ReloadableLayer, ReloadableService};
#[cfg(feature = "config")]
pub use stack::GatewayLayer;
#[cfg(feature = "config")]
pub use store::{GatewayStore, GatewayThrottleStore, ThrottleFuture};
