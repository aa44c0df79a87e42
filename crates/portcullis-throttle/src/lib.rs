//! Amazon API Gateway's usage-plan throttling as a Tower layer: token buckets
//! per API key under its usage plan, per method on the stage, and per
//! account, answering `429 {"message":"Too Many Requests"}` (or gRPC
//! `RESOURCE_EXHAUSTED`) with `Retry-After` and rate-limit headers.
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use http::{Request, Response, StatusCode};
//! use portcullis_core::clock::ManualClock;
//! use portcullis_core::context::RequestContextExt;
//! use portcullis_core::context::ApiKeyContext;
//! use portcullis_core::plan::{ThrottleSettings, UsagePlan};
//! use portcullis_throttle::ThrottleLayer;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // A usage plan of one request per second, with bursts of two.
//! let plan = Arc::new(
//!     UsagePlan::new("loyalty-basic").unwrap().with_throttle(ThrottleSettings::new(1.0, 2).unwrap()),
//! );
//! let clock = ManualClock::at_unix(1_700_000_000);
//! let service = ServiceBuilder::new()
//!     .layer(ThrottleLayer::new("a1b2c3d4e5", "prod").clock(Arc::new(clock.clone())))
//!     .service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) });
//!
//! // What the API-key layer leaves for the throttle.
//! let request = || {
//!     let mut request = Request::new(());
//!     request.request_context_mut().set_api_key(ApiKeyContext::new("key-1").with_usage_plan(plan.clone()));
//!     request
//! };
//! let statuses = [
//!     service.clone().oneshot(request()).await.unwrap().status(),
//!     service.clone().oneshot(request()).await.unwrap().status(),
//!     service.clone().oneshot(request()).await.unwrap().status(),
//! ];
//! assert_eq!(statuses, [StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS]);
//!
//! let refused = service.clone().oneshot(request()).await.unwrap();
//! assert_eq!(refused.headers()["retry-after"], "1");
//! assert_eq!(refused.headers()["ratelimit-policy"], r#""key";q=2;w=2"#);
//!
//! clock.advance(std::time::Duration::from_secs(1));
//! assert_eq!(service.oneshot(request()).await.unwrap().status(), StatusCode::OK);
//! # }
//! ```
//!
//! # Levels
//!
//! Each request takes one token from every bucket that applies to it, most
//! specific first, as in API Gateway (a usage plan's per-key and per-method
//! limits, the stage's method settings, the account):
//!
//! 1. **Key** ([`Level::Key`]): the caller's own bucket. By default the
//!    caller is the API key the API-key layer accepted (the
//!    [`ApiKeyContext`](portcullis_core::context::ApiKeyContext) in the request
//!    extensions), and the limit is its usage plan's
//!    [`throttle_for`](portcullis_core::plan::UsagePlan::throttle_for) this
//!    stage, method and resource: the plan's most specific per-method
//!    override (`/pets/GET`), else the plan's throttle. A plan-wide bucket is
//!    the key's across all the plan's stages; a per-method bucket is the
//!    key's on that method of this stage. Other keys ([`KeyBy`]: the caller's
//!    principal, the client IP, a header, one global key, a function) use
//!    [`ThrottleLayer::key_limit`].
//! 2. **Stage** ([`Level::Stage`]): the stage's per-method limits
//!    ([`ThrottleLayer::stage_limit`], API Gateway's `methodSettings` keyed
//!    `/pets/GET` or `/*/*`), one bucket per selector shared by all callers.
//! 3. **Account** ([`Level::Account`]): one bucket shared by everything that
//!    uses the same store ([`ThrottleLayer::account_limit`]).
//!
//! The resource matched against selectors is, first, core's
//! [`ApiResource`](portcullis_core::resource::ApiResource) when a routing
//! layer in front (portcullis-openapi) left one: a selector applies when it
//! names that resource itself (or `/*`), as API Gateway keys method
//! settings, so `/loyalty/{proxy+}/*` does not limit a resource
//! `/loyalty/{id}/get` of its own. Otherwise it is axum's `MatchedPath` (the
//! route template, such as `/pets/{id}`) with the `axum` feature, else the
//! request's canonical path, matched segment by segment.
//!
//! ## What a refused request costs
//!
//! **Nothing.** A request is admitted only if every bucket has a token; then
//! it takes one from each. A refused request keeps no token from any bucket,
//! including the buckets before the one that refused. The store decides all
//! the buckets of a request in one call ([`ThrottleStore::acquire`]); the
//! in-memory store takes tokens in order and gives back exactly what it took
//! when a later bucket refuses (`tests/levels.rs` checks the token counts of
//! every bucket after refusals at each level). A client that keeps retrying
//! while refused therefore does not lengthen its own wait, and a key refused
//! by the account level keeps its own burst.
//!
//! ## Requests with no key
//!
//! A request for which no [`KeyBy`] source finds a key (by default: one with
//! no `ApiKeyContext`) has no key bucket; the stage and account levels still
//! apply. Requiring a key is the API-key layer's business: put `ApiKeyLayer`
//! (with the key required) outside this layer, and a request without a valid
//! key is refused 403 before it gets here, as in API Gateway. For methods that
//! need no key, fall back to another source, for example
//! `KeyBy::api_key().or(KeyBy::client_ip(resolver))` with a
//! [`key_limit`](ThrottleLayer::key_limit).
//!
//! # Token-bucket semantics
//!
//! A bucket holds `burst_limit` tokens and refills at `rate_limit` tokens
//! per second (fractions allowed: 0.5 is one request every two seconds). The
//! store keeps one number per bucket, GCRA's theoretical arrival time
//! ([`Gcra`]); `tests/gcra_model.rs` proves with proptest that it admits
//! exactly the sequences a literal token bucket admits. Rates are quantised to
//! whole nanoseconds per token.
//!
//! # Responses
//!
//! A refusal is the core gateway response `THROTTLED` (429, `{"message":"Too
//! Many Requests"}`, `x-amzn-ErrorType: TooManyRequestsException`, or gRPC
//! status 8 `RESOURCE_EXHAUSTED` for gRPC requests), with `Retry-After` in
//! whole seconds rounded up, and the IETF draft's `RateLimit-Policy` /
//! `RateLimit` headers ([`RateLimitHeaders`]: the older `RateLimit-Limit` /
//! `-Remaining` / `-Reset` trio or `X-RateLimit-*` on request, with
//! [`ThrottleLayer::rate_limit_headers`]). The headers report on the bucket
//! that refused, or on admitted requests (with
//! [`ThrottleLayer::rate_limit_headers_on_success`]) on the bucket with the
//! fewest tokens left, as the policy named after its level (`"key"`,
//! `"stage"`, `"account"`): `q` its burst, `w` the seconds to refill from
//! empty, `r` the tokens left, `t` the seconds until it is full.
//!
//! The convention is shared with the quota layer
//! ([`portcullis_core::ratelimit`]): on an admitted request the throttle
//! merges its policy with the one the quota (inside it) left on the
//! response, so the client gets one set of headers describing both, and
//! `RateLimit` names the policy nearest to refusal. A throttle's 429 lists
//! the throttle's policy only: the quota is not consulted for a throttled
//! request.
//!
//! # Where Portcullis differs from API Gateway
//!
//! - No account-level limit applies unless set ([`aws_account_default`] gives
//!   API Gateway's 10,000 rps, burst 5,000).
//! - API Gateway's buckets are approximate and distributed; these are exact.
//! - A store failure serves the request (fail-open, as API Gateway) unless
//!   [`ThrottleLayer::on_store_error`] says [`OnStoreError::Refuse`].
//!
//! # Why these crates
//!
//! The in-memory store is a sharded `std` `HashMap` of `AtomicU64`, not
//! `dashmap`: its keys are already keyed SipHash digests (so the table must not
//! hash them again), and it sweeps and caps shard by shard, which dashmap
//! keeps behind its unstable raw API. Run-time overrides sit in an
//! `arc-swap`, read without a lock on every request.

mod checks;
mod clock;
mod decision;
mod future;
pub mod gcra;
mod headers;
mod key;
mod layer;
mod memory;
mod refusal;
mod route;
mod service;
pub mod store;

pub use checks::ThrottleChecks;
pub use clock::MonotonicClock;
pub use future::ResponseFuture;
pub use gcra::{Gcra, GcraDecision};
pub use headers::RateLimitHeaders;
pub use key::{KeyBy, RequestHead};
pub use layer::{ThrottleHandle, ThrottleLayer, aws_account_default};
pub use memory::{InMemoryThrottleStore, MAX_CHECKS};
pub use portcullis_core::store::OnStoreError;
pub use refusal::ThrottleRefusal;
pub use service::Throttle;
pub use store::{
    Answer, BucketCheck, BucketKey, CallerKey, CallerKeySource, Level, Outcome, StageId,
    ThrottleStore, ThrottleStoreError,
};
