//! API Gateway's management API for API keys, usage plans, plan keys and
//! usage, in the REST shapes of the botocore `apigateway` model, as a Tower
//! service over a [`ControlPlaneStore`]: the AWS CLI and the SDKs
//! (`boto3.client("apigateway", endpoint_url=...)`) manage a Portcullis
//! gateway as they manage API Gateway.
//!
//! | method and path | operation |
//! |---|---|
//! | `POST /apikeys` | CreateApiKey (a 40-character value is generated when none is given) |
//! | `POST /apikeys?mode=import&format=csv` | ImportApiKeys (API Gateway's CSV file format) |
//! | `GET /apikeys` | GetApiKeys (`name`, `customerId`, `includeValues`, `position`, `limit`) |
//! | `GET /apikeys/{id}` | GetApiKey (`includeValue`) |
//! | `PATCH /apikeys/{id}` | UpdateApiKey (`/name`, `/description`, `/customerId`, `/enabled`) |
//! | `DELETE /apikeys/{id}` | DeleteApiKey |
//! | `POST /usageplans` | CreateUsagePlan |
//! | `GET /usageplans` | GetUsagePlans (`keyId`, `position`, `limit`) |
//! | `GET /usageplans/{id}` | GetUsagePlan |
//! | `PATCH /usageplans/{id}` | UpdateUsagePlan (see below) |
//! | `DELETE /usageplans/{id}` | DeleteUsagePlan |
//! | `POST /usageplans/{id}/keys` | CreateUsagePlanKey |
//! | `GET /usageplans/{id}/keys` | GetUsagePlanKeys (`name`, `position`, `limit`) |
//! | `GET /usageplans/{id}/keys/{keyId}` | GetUsagePlanKey |
//! | `DELETE /usageplans/{id}/keys/{keyId}` | DeleteUsagePlanKey |
//! | `GET /usageplans/{id}/usage` | GetUsage (`startDate`, `endDate`, `keyId`, `position`, `limit`) |
//! | `PATCH /usageplans/{id}/keys/{keyId}/usage` | UpdateUsage (`/remaining`: `replace` sets it, `add` extends it, `remove` resets it) |
//!
//! UpdateUsagePlan's patch paths, as the AWS docs list them: `replace`
//! `/name`, `/description`; `replace` `/throttle/rateLimit`,
//! `/throttle/burstLimit`, `remove` `/throttle`; `replace` `/quota/limit`,
//! `/quota/period`, `/quota/offset`, `remove` `/quota`; `add` and `remove`
//! `/apiStages` with the value `{apiId}:{stage}`; `replace`
//! `/apiStages/{apiId}:{stage}/throttle/{resourcePath}/{httpMethod}/rateLimit`
//! (and `burstLimit`), `remove` `/apiStages/{apiId}:{stage}/throttle/{resourcePath}/{httpMethod}`
//! and `/apiStages/{apiId}:{stage}/throttle` (a `/` inside the resource path
//! is written `~1`, as JSON Pointer escapes it).
//!
//! **Answers** are the model's: `201` for creations, `202` with no body for
//! deletions, lists as `{"item": [...], "position": ...}`, usage as
//! `{"values": {...}}` (and the same map under `items`, as the usage admin
//! service answered). **Errors** are API Gateway's, `{"message": ...}` with
//! `x-amzn-ErrorType`, so the SDKs raise their exceptions:
//! `NotFoundException` 404, `BadRequestException` 400, `ConflictException`
//! 409, `LimitExceededException` 429, and `ServiceUnavailableException` 503
//! with `Retry-After` while the store cannot be reached
//! ([`StoreError::Unavailable`](crate::StoreError::Unavailable) or
//! [`Unreachable`](crate::StoreError::Unreachable)), which the SDKs retry.
//! **Bad input never changes stored
//! data**: every patch is parsed and applied to a copy, and the store
//! validates the result before one write; the body is read up to
//! [`DEFAULT_BODY_LIMIT`] before it is parsed.
//!
//! GetUsage and UpdateUsage go through the quota layer's [`QuotaEngine`], so
//! an extension takes effect at once on this replica.
//!
//! # Authentication and authorization
//!
//! The service expects a SigV4 layer in front of it that verifies the
//! signature with the credential scope's service `apigateway` (what the AWS
//! CLI and SDKs sign with), authentication only, and leaves the caller in
//! the request extensions (`portcullis_core::context::Caller`):
//! `SigV4Layer::new(...).service("apigateway").authentication_only()`. The
//! service then authorizes the caller itself, as AWS does: the principal's
//! IAM policies ([`PrincipalPolicies`]) are evaluated by `portcullis-iam`
//! for the action `apigateway:{GET|POST|PATCH|PUT|DELETE}` on the resource
//! `arn:aws:apigateway:{region}::{path}` (the operation's resource path,
//! such as `/apikeys/abc123` or `/usageplans/p1/keys`).
//!
//! - No caller (nothing authenticated the request): 403
//!   `MissingAuthenticationTokenException`.
//! - A caller its policies do not allow: 403 `AccessDeniedException` with
//!   IAM's message (`User: ... is not authorized to perform: apigateway:GET
//!   on resource: ...`).
//!
//! [`ManagementApi::authorized_in_front`] skips the policy evaluation, for a
//! mount whose layer in front has authorized the request already (such as
//! the SigV4 layer evaluating `execute-api:Invoke` policies).

mod auth;
mod csv;
mod input;
mod operations;
mod request;
mod response;
mod views;

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Full;
use portcullis_quota::usage::UsageApi;

use crate::engine::QuotaEngine;
use crate::store::ControlPlaneStore;
use auth::Authorization;
pub use auth::{PolicyMap, PrincipalPolicies};

/// The default limit of a request body, in bytes (an ImportApiKeys file of
/// a thousand keys fits).
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

/// The most patch operations one request may carry.
pub const MAX_PATCH_OPERATIONS: usize = 64;

/// API Gateway's management API over a control-plane store. See the
/// [module docs](self).
///
/// Build it from the quota layer's usage API, so GetUsage and UpdateUsage
/// share the layer's engine, clock and calendar. In an application the
/// SigV4 layer in front leaves the `Caller`; here the example puts one in:
///
/// ```
/// use http::{Request, StatusCode};
/// use http_body_util::{BodyExt, Full};
/// use portcullis_control_plane::{LocalStore, ManagementApi, PolicyMap, QuotaEngine};
/// use portcullis_core::context::{AuthMethod, Caller};
/// use portcullis_core::context::RequestContextExt;
/// use portcullis_iam::PolicyDocument;
/// use portcullis_quota::QuotaLayer;
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let admin = "arn:aws:iam::123456789012:user/admin";
/// let policy = PolicyDocument::from_json(r#"{"Version": "2012-10-17", "Statement": [
///     {"Effect": "Allow", "Action": "apigateway:*", "Resource": "arn:aws:apigateway:us-east-1::/usageplans*"}]}"#).unwrap();
/// let quota = QuotaLayer::with_store(QuotaEngine::new(LocalStore::memory()));
/// let api = ManagementApi::new(quota.usage_api())
///     .region("us-east-1")
///     .policies(PolicyMap::new().with_policy(admin, policy));
///
/// let call = |method: &str, path: &str, body: &str, who: &str| {
///     let mut request = Request::builder().method(method).uri(path)
///         .body(Full::new(bytes::Bytes::from(body.to_owned()))).unwrap();
///     request.request_context_mut().set_caller(Caller::new(who.to_owned(), AuthMethod::Iam));
///     api.clone().oneshot(request)
/// };
/// let created = call("POST", "/usageplans",
///     r#"{"name": "Basic", "quota": {"limit": 10, "period": "DAY"}}"#, admin).await.unwrap();
/// assert_eq!(created.status(), StatusCode::CREATED);
/// let plan: serde_json::Value =
///     serde_json::from_slice(&created.into_body().collect().await.unwrap().to_bytes()).unwrap();
/// assert_eq!(plan["quota"]["limit"], 10);
///
/// // A bad patch is refused and changes nothing.
/// let path = format!("/usageplans/{}", plan["id"].as_str().unwrap());
/// let bad = call("PATCH", &path,
///     r#"{"patchOperations": [{"op": "replace", "path": "/quota/period", "value": "YEAR"}]}"#,
///     admin).await.unwrap();
/// assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
/// assert_eq!(bad.headers()["x-amzn-errortype"], "BadRequestException");
///
/// // API keys are outside the admin's policy; another user has none at all.
/// let keys = call("GET", "/apikeys", "", admin).await.unwrap();
/// assert_eq!(keys.headers()["x-amzn-errortype"], "AccessDeniedException");
/// let other = call("GET", &path, "", "arn:aws:iam::123456789012:user/other").await.unwrap();
/// assert_eq!(other.status(), StatusCode::FORBIDDEN);
/// # }
/// ```
pub struct ManagementApi<S> {
    inner: Arc<Inner<S>>,
}

struct Inner<S> {
    store: S,
    usage: UsageApi<QuotaEngine<S>>,
    authorization: Authorization,
    region: String,
    body_limit: usize,
    usage_admin_only: bool,
}

impl<S> Clone for ManagementApi<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> fmt::Debug for ManagementApi<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagementApi")
            .field("region", &self.inner.region)
            .field("body_limit", &self.inner.body_limit)
            .field(
                "authorization",
                &match self.inner.authorization {
                    Authorization::Iam(_) => "iam",
                    Authorization::InFront => "in_front",
                },
            )
            .field("usage_admin_only", &self.inner.usage_admin_only)
            .finish_non_exhaustive()
    }
}

impl<S: ControlPlaneStore + Clone + Send + Sync + 'static> ManagementApi<S> {
    /// The management API over the store of `usage`'s engine (from
    /// `QuotaLayer::with_store(engine).usage_api()`), in region
    /// `us-east-1`, refusing every caller until [`policies`](Self::policies)
    /// says who may do what.
    #[must_use]
    pub fn new(usage: UsageApi<QuotaEngine<S>>) -> Self {
        let store = usage.store().store().clone();
        Self {
            inner: Arc::new(Inner {
                store,
                usage,
                authorization: Authorization::Iam(Arc::new(PolicyMap::new())),
                region: "us-east-1".to_owned(),
                body_limit: DEFAULT_BODY_LIMIT,
                usage_admin_only: false,
            }),
        }
    }

    fn update(self, f: impl FnOnce(&mut Inner<S>)) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            store: shared.store.clone(),
            usage: shared.usage.clone(),
            authorization: shared.authorization.clone(),
            region: shared.region.clone(),
            body_limit: shared.body_limit,
            usage_admin_only: shared.usage_admin_only,
        });
        let mut inner = inner;
        f(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Authorizes callers by these IAM policies, for `apigateway:*` actions.
    #[must_use]
    pub fn policies(self, policies: impl PrincipalPolicies) -> Self {
        let policies: Arc<dyn PrincipalPolicies> = Arc::new(policies);
        self.update(|i| i.authorization = Authorization::Iam(policies))
    }

    /// Evaluates no policy: the layer in front authorized the request (it
    /// must still leave a `Caller`). For a mount behind the SigV4 layer with
    /// its `execute-api:Invoke` policies.
    #[must_use]
    pub fn authorized_in_front(self) -> Self {
        self.update(|i| i.authorization = Authorization::InFront)
    }

    /// Serves only what the usage admin service served (GetUsagePlans,
    /// GetUsagePlan, GetUsagePlanKeys, GetUsagePlanKey, GetUsage,
    /// UpdateUsage), with lists under `items` as it answered them; other
    /// operations are 404. For the mount existing `execute-api` scripts
    /// call.
    #[must_use]
    pub fn usage_admin_only(self) -> Self {
        self.update(|i| i.usage_admin_only = true)
    }

    /// The region of the resource ARNs (`arn:aws:apigateway:{region}::...`).
    #[must_use]
    pub fn region(self, region: impl Into<String>) -> Self {
        let region = region.into();
        self.update(|i| i.region = region)
    }

    /// The largest request body read, in bytes (default
    /// [`DEFAULT_BODY_LIMIT`]); a larger one is refused with 413 before it
    /// is parsed.
    #[must_use]
    pub fn body_limit(self, bytes: usize) -> Self {
        self.update(|i| i.body_limit = bytes)
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &S {
        &self.inner.store
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The management API's future (boxed: the management path is not hot).
pub type ManagementFuture =
    Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

impl<S, B> tower_service::Service<Request<B>> for ManagementApi<S>
where
    S: ControlPlaneStore + Clone + Send + Sync + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = ManagementFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let method = request.method().clone();
            let (response, operation) = match inner.handle(request).await {
                Ok((response, operation)) => (response, operation),
                Err(error) => (error.into_response(), "refused"),
            };
            tracing::info!(
                layer = "management",
                operation,
                method = %method,
                status = response.status().as_u16(),
                outcome = if response.status().is_success() { "served" } else { "refused" },
            );
            metrics::counter!(
                "portcullis_management_requests_total",
                "operation" => operation,
                "outcome" => if response.status().is_success() { "served" } else { "refused" }
            )
            .increment(1);
            Ok(response)
        })
    }
}
