//! Amazon API Gateway's usage-plan quotas as a Tower layer: at most `limit`
//! requests per API key per UTC day, week or month, with the usage records,
//! GetUsage / UpdateUsage and the admin service operators rely on.
//!
//! [`QuotaLayer`] reads the key and its usage plan from the
//! [`ApiKeyContext`] that the API-key layer leaves in the request extensions,
//! and counts the request against the plan's [`QuotaSettings`]. Past the
//! limit it answers QUOTA_EXCEEDED: `429 {"message":"Limit Exceeded"}` with
//! `x-amzn-ErrorType: LimitExceededException`, `Retry-After` until the reset
//! and the rate-limit headers (a gRPC request gets `RESOURCE_EXHAUSTED`).
//!
//! The rate-limit headers follow the convention shared with the throttle
//! ([`portcullis_core::ratelimit`], chosen with
//! [`QuotaLayer::rate_limit_headers`]): by default the IETF draft's
//! `RateLimit-Policy: "quota";q=10;w=86400` (the limit and the period in
//! seconds) and `RateLimit: "quota";r=0;t=7200` (what remains and the
//! seconds to the reset). After an UpdateUsage extension leaves more than
//! the limit, `r` is capped at `q`. With the throttle outside, one set of
//! headers describes both layers' policies.
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use http::{Request, Response, StatusCode};
//! use portcullis_core::clock::ManualClock;
//! use portcullis_core::context::RequestContextExt;
//! use portcullis_core::context::ApiKeyContext;
//! use portcullis_core::plan::{QuotaPeriod, QuotaSettings, UsagePlan};
//! use portcullis_quota::QuotaLayer;
//! use time::macros::datetime;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // A usage plan of 10 requests a day.
//! let plan = Arc::new(
//!     UsagePlan::new("loyalty-basic").unwrap()
//!         .with_quota(QuotaSettings::new(10, QuotaPeriod::Day).unwrap()),
//! );
//! let clock = ManualClock::at(datetime!(2026-11-23 22:00 UTC));
//! let service = ServiceBuilder::new()
//!     .layer(QuotaLayer::new().clock(clock.clone()))
//!     .service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) });
//!
//! // What the API-key layer would have left on the request.
//! let request = || {
//!     let mut request = Request::new(());
//!     request.request_context_mut().set_api_key(ApiKeyContext::new("key-1").with_usage_plan(plan.clone()));
//!     request
//! };
//! for _ in 0..10 {
//!     let response = service.clone().oneshot(request()).await.unwrap();
//!     assert_eq!(response.status(), StatusCode::OK);
//! }
//! let refused = service.clone().oneshot(request()).await.unwrap();
//! assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(refused.headers()["x-amzn-errortype"], "LimitExceededException");
//! assert_eq!(refused.headers()["retry-after"], "7200"); // until 00:00 UTC
//! assert_eq!(refused.headers()["ratelimit-policy"], r#""quota";q=10;w=86400"#);
//! assert_eq!(refused.headers()["ratelimit"], r#""quota";r=0;t=7200"#);
//!
//! clock.advance(Duration::from_secs(2 * 3600)); // midnight, UTC
//! let response = service.clone().oneshot(request()).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//! # }
//! ```
//!
//! # What is counted, and when periods reset
//!
//! - Periods follow the UTC calendar ([`Calendar`]): a day from 00:00 UTC, a
//!   week from 00:00 UTC on a configurable first day (Sunday by default), a
//!   month from the 1st. AWS does not document its reset times; this is the
//!   reading users expect.
//! - `offset` is "the number of requests subtracted from the given limit in
//!   the initial time period". The initial period is, per key, the period in
//!   which the store first saw the key, unless the plan has a start
//!   configured with [`QuotaLayer::plan_start`], in which case it is the
//!   period containing that start for every key.
//! - Only admitted requests count. A refused request changes nothing, and
//!   the in-memory store admits never more than the limit in a period,
//!   whatever the concurrency (one compare-and-swap per request).
//! - A request without an `ApiKeyContext`, or whose plan has no quota,
//!   passes: the API-key layer decides whether a key is required. Place this
//!   layer inside the API-key and throttle layers (API Gateway checks the
//!   throttle first, so a throttled request consumes no quota).
//! - If the store fails, the request is served and the failure logged, as
//!   API Gateway does; [`OnStoreError::Refuse`] answers 500 instead.
//!
//! # Usage records and the admin service
//!
//! Every store keeps, per key and UTC day, `[used, remaining]` for a
//! retention (90 days by default). [`UsageApi`] answers GetUsage and
//! UpdateUsage (extend the current period, set what remains, reset), and
//! [`admin::UsageAdmin`] serves them as API Gateway's JSON endpoints, to be
//! mounted by the application behind its own authentication.
//!
//! # Stores
//!
//! [`store::QuotaStore`] is async so that a Redis backend
//! (`portcullis-redis`) can implement it. The in-memory
//! [`InMemoryQuotaStore`] answers synchronously, so the layer's
//! future is core's [`ResponseFuture`](portcullis_core::future::ResponseFuture),
//! the inner future stored in place (or the refusal): nothing is boxed on
//! the hot path. [`conformance::check_store`] is the suite every store must pass.
//!
//! [`ApiKeyContext`]: portcullis_core::context::ApiKeyContext
//! [`QuotaSettings`]: portcullis_core::plan::QuotaSettings

pub mod admin;
pub mod calendar;
mod check;
pub mod conformance;
mod future;
mod layer;
mod refusal;
mod service;
mod shared;
pub mod store;
pub mod usage;

pub use calendar::{Calendar, Window};
pub use check::QuotaCheck;
pub use future::ResponseFuture;
pub use layer::{ConfigWeekday, OnStoreError, QuotaConfig, QuotaLayer};
pub use refusal::QuotaRefusal;
pub use service::{Quota, RATELIMIT_LIMIT, RATELIMIT_REMAINING, RATELIMIT_RESET};
pub use store::{InMemoryQuotaStore, QuotaStore, UsageUpdate};
pub use usage::{Usage, UsageApi, UsageError};
