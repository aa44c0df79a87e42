//! The usage admin service: API Gateway's usage-plan endpoints as a Tower
//! service that an application mounts.
//!
//! | method and path | API Gateway operation | answer |
//! |---|---|---|
//! | `GET /usageplans[?keyId=]` | GetUsagePlans | `{"items":[UsagePlan...]}` |
//! | `GET /usageplans/{planId}` | GetUsagePlan | `UsagePlan` |
//! | `GET /usageplans/{planId}/keys` | GetUsagePlanKeys | `{"items":[{"id","type":"API_KEY","name"}...]}` |
//! | `GET /usageplans/{planId}/keys/{keyId}` | GetUsagePlanKey | `{"id","type":"API_KEY","name"}` |
//! | `GET /usageplans/{planId}/usage?startDate=&endDate=[&keyId=][&position=][&limit=]` | GetUsage | `Usage`, one page of keys (25 by default, at most 500), with `position` when more remain |
//! | `PATCH /usageplans/{planId}/keys/{keyId}/usage` | UpdateUsage | `Usage` of the key today |
//!
//! UpdateUsage takes API Gateway's patch operations on `/remaining`:
//! `replace` sets what remains of the current period (API Gateway's form),
//! `add` extends it by `value` (a temporary extension that ends with the
//! period), and `remove` resets it to the period's full allowance.
//! `value` is a string, as in API Gateway, or a number.
//!
//! Errors are API Gateway's: `{"message": ...}` with `x-amzn-ErrorType`
//! (`NotFoundException`, `BadRequestException`, ...). API key values are
//! never shown: keys are listed by id and name only.
//!
//! # Security
//!
//! **The service has no authentication of its own.** Anyone who can reach it
//! can read every key's usage and grant any key more quota. Mount it behind
//! the application's authentication and authorization, such as the SigV4
//! layer with an IAM policy allowing only administrators, or the JWT layer
//! requiring an admin group, as the example below does with a stand-in
//! check. Request bodies are read up to a limit (64 KiB by default) before
//! they are parsed.
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, body::Body, http::{Request, StatusCode}, middleware::{self, Next}, response::Response};
//! use portcullis_core::plan::{QuotaPeriod, QuotaSettings, UsagePlan};
//! use portcullis_quota::QuotaLayer;
//! use portcullis_quota::admin::{StaticKeys, UsageAdmin};
//! use tower::ServiceExt;
//!
//! // Stands in for the JWT or SigV4 layer with an admin policy.
//! async fn admins_only(request: Request<Body>, next: Next) -> Result<Response, StatusCode> {
//!     match request.headers().get("x-admin-token") {
//!         Some(token) if token == "let-me-in" => Ok(next.run(request).await),
//!         _ => Err(StatusCode::FORBIDDEN),
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let plan = Arc::new(UsagePlan::new("basic").unwrap()
//!     .with_quota(QuotaSettings::new(10, QuotaPeriod::Day).unwrap()));
//! let quota = QuotaLayer::new();
//! let admin = UsageAdmin::new(quota.usage_api(), [plan], StaticKeys::new().key("key-1", "basic"));
//! let app: Router = Router::new()
//!     .nest_service("/admin", admin)
//!     .layer(middleware::from_fn(admins_only));
//!
//! let request = |token: &str| Request::get("/admin/usageplans/basic/keys")
//!     .header("x-admin-token", token).body(Body::empty()).unwrap();
//! let refused = app.clone().oneshot(request("guess")).await.unwrap();
//! assert_eq!(refused.status(), StatusCode::FORBIDDEN);
//! let keys = app.oneshot(request("let-me-in")).await.unwrap();
//! assert_eq!(keys.status(), StatusCode::OK);
//! # }
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use portcullis_core::path::CanonicalPath;
use portcullis_core::plan::UsagePlan;
use tower_service::Service;

use crate::store::{InMemoryQuotaStore, QuotaStore};

mod directory;
mod request;
mod response;

use crate::usage::{MAX_USAGE_PAGE_LIMIT, UsageApi, UsagePage};
pub use directory::{KeyDirectory, PlanKey, StaticKeys};
pub use request::MAX_PATCH_OPERATIONS;
use request::{Route, parse_date, parse_patch, parse_query};
pub use response::UsagePlanView;
use response::{AdminError, KeyView, ok};

/// The default limit of a request body, in bytes.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// The usage admin service. See the [module docs](self).
pub struct UsageAdmin<St = InMemoryQuotaStore, D = StaticKeys> {
    inner: Arc<AdminInner<St, D>>,
    body_limit: usize,
}

struct AdminInner<St, D> {
    usage: UsageApi<St>,
    plans: BTreeMap<String, Arc<UsagePlan>>,
    directory: D,
}

impl<St, D> Clone for UsageAdmin<St, D> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            body_limit: self.body_limit,
        }
    }
}

impl<St: fmt::Debug, D: fmt::Debug> fmt::Debug for UsageAdmin<St, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageAdmin")
            .field("usage", &self.inner.usage)
            .field("plans", &self.inner.plans.keys().collect::<Vec<_>>())
            .field("directory", &self.inner.directory)
            .field("body_limit", &self.body_limit)
            .finish()
    }
}

impl<St: QuotaStore, D: KeyDirectory> UsageAdmin<St, D> {
    /// An admin service over `usage` (from
    /// [`QuotaLayer::usage_api`](crate::QuotaLayer::usage_api)), for these
    /// plans, with keys listed by `directory`.
    pub fn new(
        usage: UsageApi<St>,
        plans: impl IntoIterator<Item = Arc<UsagePlan>>,
        directory: D,
    ) -> Self {
        Self {
            inner: Arc::new(AdminInner {
                usage,
                plans: plans
                    .into_iter()
                    .map(|plan| (plan.id().to_owned(), plan))
                    .collect(),
                directory,
            }),
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }

    /// Sets the largest request body read, in bytes (64 KiB by default).
    /// A larger body is refused with 413 before it is parsed.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The admin service's future (boxed: the admin path is not hot).
pub type AdminFuture =
    Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

impl<St, D, B> Service<Request<B>> for UsageAdmin<St, D>
where
    St: QuotaStore,
    D: KeyDirectory,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = AdminFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        let body_limit = self.body_limit;
        Box::pin(async move {
            let method = request.method().clone();
            let path = request.uri().path().to_owned();
            let response = match inner.route(request, body_limit).await {
                Ok(response) => response,
                Err(error) => error.into_response(),
            };
            tracing::debug!(
                layer = "quota_admin",
                outcome = if response.status().is_success() { "served" } else { "refused" },
                method = %method,
                path = %path,
                status = response.status().as_u16(),
            );
            Ok(response)
        })
    }
}

impl<St: QuotaStore, D: KeyDirectory> AdminInner<St, D> {
    async fn route<B>(
        &self,
        request: Request<B>,
        body_limit: usize,
    ) -> Result<Response<Full<Bytes>>, AdminError>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        // Routes read the one canonical path, as every decision that names a
        // resource does (the IAM policy in front of this service too).
        let path = CanonicalPath::of_uri(request.uri()).map_err(|refusal| {
            let kind = refusal.gateway_response().kind();
            AdminError::new(
                kind.default_status(),
                kind.error_type(),
                kind.default_message(),
            )
        })?;
        let route =
            Route::parse(&path).ok_or_else(|| AdminError::not_found("Invalid resource path"))?;
        let method = request.method();
        let expected = if matches!(route, Route::KeyUsage(..)) {
            Method::PATCH
        } else {
            Method::GET
        };
        if *method != expected {
            return Err(AdminError::method_not_allowed(route.allowed()));
        }
        let query = parse_query(request.uri().query().unwrap_or(""));
        match route {
            Route::Plans => {
                let plans: Vec<UsagePlanView<'_>> = self
                    .plans
                    .values()
                    .filter(|plan| match query.get("keyId") {
                        Some(key) => self
                            .directory
                            .keys_of_plan(plan.id())
                            .iter()
                            .any(|k| &k.id == key),
                        None => true,
                    })
                    .map(|plan| UsagePlanView::of(plan))
                    .collect();
                ok(&serde_json::json!({ "items": plans }))
            }
            Route::Plan(plan) => ok(&UsagePlanView::of(self.plan(&plan)?)),
            Route::Keys(plan) => {
                self.plan(&plan)?;
                let keys: Vec<KeyView> = self
                    .directory
                    .keys_of_plan(&plan)
                    .into_iter()
                    .map(KeyView::of)
                    .collect();
                ok(&serde_json::json!({ "items": keys }))
            }
            Route::Key(plan, key) => {
                self.plan(&plan)?;
                ok(&KeyView::of(self.key(&plan, &key)?))
            }
            Route::Usage(plan_id) => {
                let plan = self.plan(&plan_id)?;
                let start = parse_date("startDate", query.get("startDate"))?;
                let end = parse_date("endDate", query.get("endDate"))?;
                let keys: Vec<String> = match query.get("keyId") {
                    Some(key) => vec![self.key(&plan_id, key)?.id],
                    None => self
                        .directory
                        .keys_of_plan(&plan_id)
                        .into_iter()
                        .map(|k| k.id)
                        .collect(),
                };
                let mut page = UsagePage::new();
                if let Some(position) = query.get("position") {
                    page = page.position(position.as_str());
                }
                if let Some(limit) = query.get("limit") {
                    let limit = limit.parse().map_err(|_| {
                        AdminError::bad_request(format!(
                            "Invalid limit `{limit}`: expected 1 to {MAX_USAGE_PAGE_LIMIT}"
                        ))
                    })?;
                    page = page.limit(limit);
                }
                let usage = self
                    .usage
                    .get_usage_page_of_keys(plan, &keys, start, end, &page)
                    .await?;
                ok(&usage)
            }
            Route::KeyUsage(plan_id, key_id) => {
                let plan = self.plan(&plan_id)?;
                self.key(&plan_id, &key_id)?;
                let body = read_body(request.into_body(), body_limit).await?;
                let updates = parse_patch(&body).map_err(AdminError::bad_request)?;
                let mut last = None;
                for update in updates {
                    last = Some(self.usage.update_usage(plan, &key_id, update).await?);
                }
                match last {
                    Some(usage) => ok(&usage),
                    None => Err(AdminError::bad_request("patchOperations must not be empty")),
                }
            }
        }
    }

    fn plan(&self, plan_id: &str) -> Result<&Arc<UsagePlan>, AdminError> {
        self.plans
            .get(plan_id)
            .ok_or_else(|| AdminError::not_found("Invalid Usage Plan ID specified"))
    }

    fn key(&self, plan_id: &str, key_id: &str) -> Result<PlanKey, AdminError> {
        self.directory
            .keys_of_plan(plan_id)
            .into_iter()
            .find(|k| k.id == key_id)
            .ok_or_else(|| AdminError::not_found("Invalid API Key identifier specified"))
    }
}

async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, AdminError>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let too_large = || {
        AdminError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            "Request Too Long",
        )
    };
    if body.size_hint().lower() > limit as u64 {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => {
            let mut buf = collected.aggregate();
            Ok(buf.copy_to_bytes(buf.remaining()))
        }
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(_) => Err(AdminError::bad_request("Could not read the request body")),
    }
}
