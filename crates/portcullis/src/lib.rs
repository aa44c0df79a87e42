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
//! # The composed layer is boxed once
//!
//! [`Gateway::layer`] returns a [`GatewayLayer`] whose service boxes the
//! request and response bodies ([`GatewayBody`]) and erases the whole stack
//! once ([`BoxedStack`]). Inside, the layers are composed with static types
//! (a slot per optional layer), and each layer's response body is unwrapped
//! instead of boxed: per request, one boxed future and the bodies boxed at
//! the edges, nothing per layer. For the last few allocations, take the
//! layers one by one ([`Gateway::waf_layer`], [`Gateway::sigv4_layer`],
//! [`Gateway::api_key_layer`], ...) and stack them with
//! `tower::ServiceBuilder` or axum's `route_layer`; they share state with
//! the composed stack.
//!
//! # Per-route stacks
//!
//! API Gateway configures authorization and API keys per method. With axum,
//! put the WAF in front of the whole router (`Router::layer`) and give each
//! route its own piece with `route_layer`: `gateway.layer().without_waf()`
//! for IAM + key + throttle + quota, `gateway.jwt_layer()` for a route that
//! takes a Cognito token and no key, and so on.
//!
//! Or let the API's OpenAPI export decide: with `[api] openapi = "file"`,
//! [`Gateway::layer`] routes each request to its method and builds that
//! method's chain from the gateway's layers (SigV4, JWT with the method's
//! Cognito scopes, custom authorizers, API key, throttle with per-method
//! limits, quota), with request validation, CORS preflights answered without
//! credentials, and 403 Missing Authentication Token for anything the
//! export does not define; [`Gateway::access_log_layer`] writes API
//! Gateway's access log. The airline-loyalty example runs from its export
//! (`docs/config.md`, section `[api]`).
//!
//! # Configuration
//!
//! [`config::Config`] is the file; `docs/config.md` documents every field.
//! Paths in it are relative to the file. Every error names the bad field by
//! its path (`iam.users[0].policies[1]`, `api_keys[2].value`); TOML syntax
//! and type errors get theirs from `serde_path_to_error`. The `toml` crate is
//! the TOML parser (the ecosystem's standard, maintained with cargo).
//!
//! # Features
//!
//! - `config` (default): the configuration and the composed stack; turns on
//!   every layer.
//! - `waf`, `sigv4`, `jwt`, `api-key`, `throttle`, `quota`: one layer each,
//!   re-exported as [`waf`], [`sigv4`] and [`iam`], [`jwt`], [`api_key`],
//!   [`throttle`], [`quota`].
//! - `axum`: client addresses from axum's `ConnectInfo`, the `Claims<T>`
//!   extractor, and per-method throttles matched on axum's `MatchedPath`.
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
#[cfg(feature = "sigv4")]
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

#[cfg(feature = "config")]
mod api;
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
pub use gateway::{Gateway, GatewayBuilder, GatewayKeyStore, GatewayQuotaStore, GatewayUsageAdmin};
#[cfg(feature = "config")]
pub use reload::{ReloadableGateway, ReloadableLayer, ReloadableService};
#[cfg(feature = "config")]
pub use stack::{
    Auth, BoxError, Boxed, BoxedStack, GatewayBody, GatewayLayer, StackFuture, box_body,
};
#[cfg(feature = "config")]
pub use store::{GatewayStore, GatewayThrottleStore, ThrottleFuture};
