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
//! 409, `LimitExceededException` 429. **Bad input never changes stored
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

mod csv;
mod views;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use percent_encoding::percent_decode_str;
use portcullis_api_key::ApiKeyValue;
use portcullis_core::context::Caller;
use portcullis_core::path::CanonicalPath;
use portcullis_core::plan::{
    ApiStage, MethodSelector, QuotaPeriod, QuotaSettings, ThrottleSettings, UsagePlan,
};
use portcullis_core::response::X_AMZN_ERROR_TYPE;
use portcullis_iam::{PolicyDocument, RequestContext};
use portcullis_quota::store::UsageUpdate;
use portcullis_quota::usage::UsageApi;
use portcullis_quota::usage::{Usage, UsageError, UsagePage};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::Date;

use crate::engine::QuotaEngine;
use crate::error::StoreError;
use crate::model::{ApiKeyFilter, ApiKeyUpdate, NewApiKey, PageRequest, UsagePlanRecord};
use crate::state::NewUsagePlan;
use crate::store::ControlPlaneStore;
use views::{
    ApiKeyView, ApiStageInput, CreateApiKeyInput, CreateUsagePlanInput, CreateUsagePlanKeyInput,
    PatchInput, PatchOperation, QuotaInput, ThrottleInput, UsagePlanKeyView, UsagePlanView,
};

/// The default limit of a request body, in bytes (an ImportApiKeys file of
/// a thousand keys fits).
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

/// The most patch operations one request may carry.
pub const MAX_PATCH_OPERATIONS: usize = 64;

/// The IAM policies of a principal, for the management API's authorization.
///
/// Implemented by [`PolicyMap`] and by any
/// `Fn(&str) -> Vec<Arc<PolicyDocument>>` closure (given the principal's
/// ARN). A principal with no policies is refused everything.
pub trait PrincipalPolicies: Send + Sync + 'static {
    /// The identity policies of the principal with this ARN.
    fn policies(&self, principal_arn: &str) -> Vec<Arc<PolicyDocument>>;
}

impl<F> PrincipalPolicies for F
where
    F: Fn(&str) -> Vec<Arc<PolicyDocument>> + Send + Sync + 'static,
{
    fn policies(&self, principal_arn: &str) -> Vec<Arc<PolicyDocument>> {
        self(principal_arn)
    }
}

/// Principal ARN → IAM policies: the IAM users of a gateway.
#[derive(Clone, Debug, Default)]
pub struct PolicyMap {
    map: HashMap<String, Vec<Arc<PolicyDocument>>>,
}

impl PolicyMap {
    /// An empty map: every caller is refused.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a policy of the principal with this ARN.
    #[must_use]
    pub fn with_policy(
        mut self,
        principal_arn: impl Into<String>,
        policy: impl Into<Arc<PolicyDocument>>,
    ) -> Self {
        self.insert(principal_arn, policy);
        self
    }

    /// Adds a policy of the principal with this ARN.
    pub fn insert(
        &mut self,
        principal_arn: impl Into<String>,
        policy: impl Into<Arc<PolicyDocument>>,
    ) {
        self.map
            .entry(principal_arn.into())
            .or_default()
            .push(policy.into());
    }
}

impl PrincipalPolicies for PolicyMap {
    fn policies(&self, principal_arn: &str) -> Vec<Arc<PolicyDocument>> {
        self.map.get(principal_arn).cloned().unwrap_or_default()
    }
}

#[derive(Clone)]
enum Authorization {
    /// Evaluate `apigateway:*` policies for the caller.
    Iam(Arc<dyn PrincipalPolicies>),
    /// The layer in front authorized the request.
    InFront,
}

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
///     request.extensions_mut().insert(Caller::new(who.to_owned(), AuthMethod::Iam));
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
            Ok(response)
        })
    }
}

/// An error, rendered as API Gateway renders its own.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    error_type: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, error_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_type,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequestException", message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFoundException", message)
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = json(self.status, &serde_json::json!({ "message": self.message }));
        response
            .headers_mut()
            .insert(X_AMZN_ERROR_TYPE, HeaderValue::from_static(self.error_type));
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        if let StoreError::Backend(source) = &error {
            tracing::error!(layer = "management", error = %source, "control-plane store failed");
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerErrorException",
                "Internal server error",
            );
        }
        let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError::new(status, error.error_type(), error.to_string())
    }
}

impl From<UsageError> for ApiError {
    fn from(error: UsageError) -> Self {
        match error {
            UsageError::Store(source) => {
                // The engine's errors are the store's.
                match source.downcast::<StoreError>() {
                    Ok(store) => ApiError::from(*store),
                    Err(other) => ApiError::from(StoreError::Backend(other)),
                }
            }
            other => ApiError::bad(other.to_string()),
        }
    }
}

fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    // Serialising our own view types into a Vec cannot fail.
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn accepted() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::ACCEPTED;
    response
}

/// A route, from the canonical path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Route {
    ApiKeys,
    ApiKey(String),
    Plans,
    Plan(String),
    PlanKeys(String),
    PlanKey(String, String),
    Usage(String),
    KeyUsage(String, String),
}

impl Route {
    fn parse(path: &str) -> Option<Route> {
        let path = path.strip_prefix('/').unwrap_or(path);
        let path = path.strip_suffix('/').unwrap_or(path);
        let parts: Vec<&str> = path.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        let own = |s: &str| s.to_owned();
        Some(match parts.as_slice() {
            ["apikeys"] => Route::ApiKeys,
            ["apikeys", id] => Route::ApiKey(own(id)),
            ["usageplans"] => Route::Plans,
            ["usageplans", id] => Route::Plan(own(id)),
            ["usageplans", id, "keys"] => Route::PlanKeys(own(id)),
            ["usageplans", id, "usage"] => Route::Usage(own(id)),
            ["usageplans", id, "keys", key] => Route::PlanKey(own(id), own(key)),
            ["usageplans", id, "keys", key, "usage"] => Route::KeyUsage(own(id), own(key)),
            _ => return None,
        })
    }
}

/// The decoded query: the first occurrence of a name wins.
fn parse_query(query: &str) -> BTreeMap<String, String> {
    let mut pairs = BTreeMap::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        let decode = |s: &str| {
            let s = s.replace('+', " ");
            percent_decode_str(&s).decode_utf8_lossy().into_owned()
        };
        pairs.entry(decode(name)).or_insert_with(|| decode(value));
    }
    pairs
}

struct Query(BTreeMap<String, String>);

impl Query {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") || v.is_empty() => Ok(false),
            Some(v) => Err(ApiError::bad(format!(
                "Invalid {name} {v:?}: expected true or false"
            ))),
        }
    }

    fn page(&self) -> Result<PageRequest, ApiError> {
        let limit = match self.get("limit") {
            None => None,
            Some(v) => {
                let n: i64 = v.parse().map_err(|_| {
                    ApiError::bad(format!("Invalid limit {v:?}: expected an integer"))
                })?;
                let n = u32::try_from(n)
                    .ok()
                    .filter(|n| (1..=crate::model::MAX_PAGE_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad(format!(
                            "limit must be between 1 and {}, got {n}",
                            crate::model::MAX_PAGE_LIMIT
                        ))
                    })?;
                Some(n)
            }
        };
        Ok(PageRequest {
            position: self.get("position").map(str::to_owned),
            limit,
        })
    }
}

fn parse_body<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("Invalid request body: {e}")))
}

fn parse_required<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("Invalid request body: {e}")))
}

fn parse_date(name: &str, value: Option<&str>) -> Result<Date, ApiError> {
    let value = value.ok_or_else(|| ApiError::bad(format!("{name} is required")))?;
    Date::parse(
        value,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| ApiError::bad(format!("Invalid {name} {value:?}: expected YYYY-MM-DD")))
}

fn patch_operations(body: &[u8]) -> Result<Vec<PatchOperation>, ApiError> {
    let input: PatchInput = parse_body(body)?;
    if input.patch_operations.len() > MAX_PATCH_OPERATIONS {
        return Err(ApiError::bad(format!(
            "At most {MAX_PATCH_OPERATIONS} patch operations are allowed"
        )));
    }
    Ok(input.patch_operations)
}

fn invalid_patch(op: &PatchOperation) -> ApiError {
    ApiError::bad(format!(
        "Invalid patch path '{}' for operation '{}'",
        op.path, op.op
    ))
}

fn required_text(op: &PatchOperation) -> Result<String, ApiError> {
    op.text().ok_or_else(|| {
        ApiError::bad(format!(
            "Invalid patch operation: '{}' on '{}' needs a value",
            op.op, op.path
        ))
    })
}

/// Unescapes a JSON Pointer segment (`~1` is `/`, `~0` is `~`).
fn unescape_pointer(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

fn parse_period(value: &str) -> Result<QuotaPeriod, ApiError> {
    match value.to_ascii_uppercase().as_str() {
        "DAY" => Ok(QuotaPeriod::Day),
        "WEEK" => Ok(QuotaPeriod::Week),
        "MONTH" => Ok(QuotaPeriod::Month),
        _ => Err(ApiError::bad(format!(
            "Invalid quota period {value:?}: expected DAY, WEEK or MONTH"
        ))),
    }
}

fn parse_int(field: &str, value: &str) -> Result<i64, ApiError> {
    value
        .trim()
        .parse()
        .map_err(|_| ApiError::bad(format!("Invalid {field} {value:?}: expected an integer")))
}

fn parse_rate(value: &str) -> Result<f64, ApiError> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite())
        .ok_or_else(|| ApiError::bad(format!("Invalid rateLimit {value:?}: expected a number")))
}

/// A throttle being edited: both members optional until built.
#[derive(Clone, Copy, Debug, Default)]
struct ThrottleDraft {
    rate: Option<f64>,
    burst: Option<i64>,
}

impl ThrottleDraft {
    fn of(t: &ThrottleSettings) -> Self {
        Self {
            rate: Some(t.rate_limit()),
            burst: Some(i64::from(t.burst_limit().get())),
        }
    }

    fn from_input(t: &ThrottleInput) -> Self {
        Self {
            rate: t.rate_limit,
            burst: t.burst_limit,
        }
    }

    fn build(self, at: &str) -> Result<ThrottleSettings, ApiError> {
        let rate = self
            .rate
            .ok_or_else(|| ApiError::bad(format!("{at}: rateLimit is required")))?;
        let burst = self
            .burst
            .ok_or_else(|| ApiError::bad(format!("{at}: burstLimit is required")))?;
        let burst = u32::try_from(burst).map_err(|_| {
            ApiError::bad(format!("{at}: burstLimit must be at least 1, got {burst}"))
        })?;
        ThrottleSettings::new(rate, burst).map_err(|e| ApiError::bad(format!("{at}: {e}")))
    }
}

/// A quota being edited.
#[derive(Clone, Debug, Default)]
struct QuotaDraft {
    limit: Option<i64>,
    offset: Option<i64>,
    period: Option<QuotaPeriod>,
}

impl QuotaDraft {
    fn of(q: &QuotaSettings) -> Self {
        Self {
            limit: Some(i64::try_from(q.limit()).unwrap_or(i64::MAX)),
            offset: Some(i64::try_from(q.offset()).unwrap_or(i64::MAX)),
            period: Some(q.period()),
        }
    }

    fn from_input(q: &QuotaInput) -> Result<Self, ApiError> {
        Ok(Self {
            limit: q.limit,
            offset: q.offset,
            period: q.period.as_deref().map(parse_period).transpose()?,
        })
    }

    fn build(&self) -> Result<QuotaSettings, ApiError> {
        let limit = self
            .limit
            .ok_or_else(|| ApiError::bad("quota: limit is required"))?;
        let period = self
            .period
            .ok_or_else(|| ApiError::bad("quota: period is required"))?;
        let limit = u64::try_from(limit)
            .map_err(|_| ApiError::bad(format!("quota: limit must be at least 1, got {limit}")))?;
        let offset = self.offset.unwrap_or(0);
        let offset = u64::try_from(offset).map_err(|_| {
            ApiError::bad(format!("quota: offset must not be negative, got {offset}"))
        })?;
        QuotaSettings::with_offset(limit, period, offset)
            .map_err(|e| ApiError::bad(format!("quota: {e}")))
    }
}

/// A stage being edited.
#[derive(Clone, Debug)]
struct StageDraft {
    api_id: String,
    stage: String,
    throttle: BTreeMap<String, ThrottleDraft>,
}

/// A usage plan being edited: UpdateUsagePlan applies its patch operations
/// here, then builds the plan.
#[derive(Clone, Debug)]
struct PlanDraft {
    id: String,
    name: Option<String>,
    description: Option<String>,
    throttle: Option<ThrottleDraft>,
    quota: Option<QuotaDraft>,
    stages: Vec<StageDraft>,
}

impl PlanDraft {
    fn of(plan: &UsagePlan) -> Self {
        Self {
            id: plan.id().to_owned(),
            name: plan.name().map(str::to_owned),
            description: plan.description().map(str::to_owned),
            throttle: plan.throttle().map(ThrottleDraft::of),
            quota: plan.quota().map(QuotaDraft::of),
            stages: plan
                .api_stages()
                .iter()
                .map(|s| StageDraft {
                    api_id: s.api_id.clone(),
                    stage: s.stage.clone(),
                    throttle: s
                        .throttle
                        .iter()
                        .map(|(k, t)| (k.to_string(), ThrottleDraft::of(t)))
                        .collect(),
                })
                .collect(),
        }
    }

    fn from_input(id: &str, input: &CreateUsagePlanInput) -> Result<Self, ApiError> {
        Ok(Self {
            id: id.to_owned(),
            name: input.name.clone(),
            description: input.description.clone(),
            throttle: input.throttle.as_ref().map(ThrottleDraft::from_input),
            quota: input
                .quota
                .as_ref()
                .map(QuotaDraft::from_input)
                .transpose()?,
            stages: input
                .api_stages
                .iter()
                .map(stage_of_input)
                .collect::<Result<_, _>>()?,
        })
    }

    fn build(&self) -> Result<UsagePlan, ApiError> {
        let mut plan =
            UsagePlan::new(self.id.as_str()).map_err(|e| ApiError::bad(e.to_string()))?;
        if let Some(name) = &self.name {
            plan = plan.with_name(name.as_str());
        }
        if let Some(description) = &self.description {
            plan = plan.with_description(description.as_str());
        }
        if let Some(throttle) = self.throttle {
            plan = plan.with_throttle(throttle.build("throttle")?);
        }
        if let Some(quota) = &self.quota {
            plan = plan.with_quota(quota.build()?);
        }
        let mut seen = BTreeSet::new();
        for stage in &self.stages {
            if !seen.insert((stage.api_id.clone(), stage.stage.clone())) {
                return Err(ApiError::bad(format!(
                    "apiStages names {}:{} twice",
                    stage.api_id, stage.stage
                )));
            }
            let mut throttle = BTreeMap::new();
            for (key, t) in &stage.throttle {
                let selector: MethodSelector = key.parse().map_err(|e| {
                    ApiError::bad(format!("Invalid method throttle key {key:?}: {e}"))
                })?;
                let at = format!(
                    "apiStages[{}:{}].throttle[{key}]",
                    stage.api_id, stage.stage
                );
                throttle.insert(selector, t.build(&at)?);
            }
            plan = plan.with_api_stage(ApiStage {
                api_id: stage.api_id.clone(),
                stage: stage.stage.clone(),
                throttle,
            });
        }
        Ok(plan)
    }

    fn stage_mut(&mut self, reference: &str) -> Result<&mut StageDraft, ApiError> {
        let (api_id, stage) = reference.split_once(':').ok_or_else(|| {
            ApiError::bad(format!(
                "Invalid API stage {reference:?}: expected {{apiId}}:{{stage}}"
            ))
        })?;
        self.stages
            .iter_mut()
            .find(|s| s.api_id == api_id && s.stage == stage)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "Invalid API Stage {api_id}:{stage} specified for the usage plan"
                ))
            })
    }

    /// Applies one UpdateUsagePlan operation.
    fn apply(&mut self, op: &PatchOperation) -> Result<(), ApiError> {
        let segments: Vec<&str> = op.path.split('/').skip(1).collect();
        match (op.op.as_str(), segments.as_slice()) {
            ("replace", ["name"]) => self.name = Some(required_text(op)?),
            ("replace", ["description"]) => self.description = Some(required_text(op)?),
            ("remove", ["description"]) => self.description = None,
            ("remove", ["throttle"]) => self.throttle = None,
            ("replace" | "add", ["throttle", member]) => {
                let value = required_text(op)?;
                let throttle = self.throttle.get_or_insert_with(ThrottleDraft::default);
                match *member {
                    "rateLimit" => throttle.rate = Some(parse_rate(&value)?),
                    "burstLimit" => throttle.burst = Some(parse_int("burstLimit", &value)?),
                    _ => return Err(invalid_patch(op)),
                }
            }
            ("remove", ["quota"]) => self.quota = None,
            ("replace" | "add", ["quota", member]) => {
                let value = required_text(op)?;
                let quota = self.quota.get_or_insert_with(QuotaDraft::default);
                match *member {
                    "limit" => quota.limit = Some(parse_int("limit", &value)?),
                    "offset" => quota.offset = Some(parse_int("offset", &value)?),
                    "period" => quota.period = Some(parse_period(&value)?),
                    _ => return Err(invalid_patch(op)),
                }
            }
            ("add", ["apiStages"]) => {
                let value = required_text(op)?;
                let (api_id, stage) = value.split_once(':').ok_or_else(|| {
                    ApiError::bad(format!(
                        "Invalid API stage {value:?}: expected {{apiId}}:{{stage}}"
                    ))
                })?;
                if api_id.is_empty() || stage.is_empty() {
                    return Err(ApiError::bad(format!("Invalid API stage {value:?}")));
                }
                if self
                    .stages
                    .iter()
                    .any(|s| s.api_id == api_id && s.stage == stage)
                {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "ConflictException",
                        format!("API stage {value} is already in the usage plan"),
                    ));
                }
                self.stages.push(StageDraft {
                    api_id: api_id.to_owned(),
                    stage: stage.to_owned(),
                    throttle: BTreeMap::new(),
                });
            }
            ("remove", ["apiStages"]) => {
                let value = required_text(op)?;
                let before = self.stages.len();
                self.stages
                    .retain(|s| format!("{}:{}", s.api_id, s.stage) != value);
                if self.stages.len() == before {
                    return Err(ApiError::not_found(format!(
                        "Invalid API Stage {value} specified for the usage plan"
                    )));
                }
            }
            ("remove", ["apiStages", stage, "throttle"]) => {
                self.stage_mut(&unescape_pointer(stage))?.throttle.clear();
            }
            (verb, ["apiStages", stage, "throttle", resource, method, rest @ ..]) => {
                let key = method_key(&unescape_pointer(resource), method);
                let stage = self.stage_mut(&unescape_pointer(stage))?;
                match (verb, rest) {
                    ("remove", []) => {
                        if stage.throttle.remove(&key).is_none() {
                            return Err(ApiError::not_found(format!(
                                "No method throttle {key} in the API stage"
                            )));
                        }
                    }
                    ("replace" | "add", [member]) => {
                        let value = required_text(op)?;
                        let draft = stage.throttle.entry(key).or_default();
                        match *member {
                            "rateLimit" => draft.rate = Some(parse_rate(&value)?),
                            "burstLimit" => {
                                draft.burst = Some(parse_int("burstLimit", &value)?);
                            }
                            _ => return Err(invalid_patch(op)),
                        }
                    }
                    _ => return Err(invalid_patch(op)),
                }
            }
            _ => return Err(invalid_patch(op)),
        }
        Ok(())
    }
}

/// `{resourcePath}/{httpMethod}`, as per-method throttles are keyed.
fn method_key(resource: &str, method: &str) -> String {
    if resource.ends_with('/') {
        format!("{resource}{method}")
    } else {
        format!("{resource}/{method}")
    }
}

fn stage_of_input(input: &ApiStageInput) -> Result<StageDraft, ApiError> {
    let api_id = input
        .api_id
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad("apiStages: apiId is required"))?;
    let stage = input
        .stage
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad("apiStages: stage is required"))?;
    Ok(StageDraft {
        api_id,
        stage,
        throttle: input
            .throttle
            .iter()
            .map(|(k, t)| (k.clone(), ThrottleDraft::from_input(t)))
            .collect(),
    })
}

/// The UpdateApiKey operations, as one update.
fn api_key_update(ops: &[PatchOperation]) -> Result<ApiKeyUpdate, ApiError> {
    let mut update = ApiKeyUpdate::new();
    for op in ops {
        match (op.op.as_str(), op.path.as_str()) {
            ("replace", "/name") => update = update.name(Some(required_text(op)?)),
            ("replace", "/description") => {
                update = update.description(Some(required_text(op)?));
            }
            ("remove", "/description") => update = update.description(None),
            ("replace", "/customerId") => {
                update = update.customer_id(Some(required_text(op)?));
            }
            ("remove", "/customerId") => update = update.customer_id(None),
            ("replace", "/enabled") => {
                let value = required_text(op)?;
                let enabled = match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(ApiError::bad(format!(
                            "Invalid value {value:?} for /enabled: expected true or false"
                        )));
                    }
                };
                update = update.enabled(enabled);
            }
            _ => return Err(invalid_patch(op)),
        }
    }
    Ok(update)
}

/// The UpdateUsage operations, as usage updates.
fn usage_updates(ops: &[PatchOperation]) -> Result<Vec<UsageUpdate>, ApiError> {
    if ops.is_empty() {
        return Err(ApiError::bad("patchOperations must not be empty"));
    }
    ops.iter()
        .map(|op| {
            if op.path != "/remaining" {
                return Err(invalid_patch(op));
            }
            let value = || -> Result<u64, ApiError> {
                let text = required_text(op)?;
                text.trim().parse::<u64>().map_err(|_| {
                    ApiError::bad(format!(
                        "Invalid value {text:?} for /remaining: expected a non-negative integer"
                    ))
                })
            };
            match op.op.as_str() {
                "replace" => Ok(UsageUpdate::SetRemaining(value()?)),
                "add" => Ok(UsageUpdate::Extend(value()?)),
                "remove" => Ok(UsageUpdate::Reset),
                _ => Err(invalid_patch(op)),
            }
        })
        .collect()
}

/// A usage answer with the model's `values` and the usage admin's `items`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageView<'a> {
    usage_plan_id: &'a str,
    start_date: String,
    end_date: String,
    values: &'a BTreeMap<String, Vec<[u64; 2]>>,
    items: &'a BTreeMap<String, Vec<[u64; 2]>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<&'a str>,
}

fn usage_response(usage: &Usage) -> Response<Full<Bytes>> {
    json(
        StatusCode::OK,
        &UsageView {
            usage_plan_id: &usage.usage_plan_id,
            start_date: usage.start_date.to_string(),
            end_date: usage.end_date.to_string(),
            values: &usage.items,
            items: &usage.items,
            position: usage.position.as_deref(),
        },
    )
}

impl<S: ControlPlaneStore + Clone + Send + Sync + 'static> Inner<S> {
    /// A list answer: `item` (the model's name), or `items` for the usage
    /// admin mount.
    fn list<T: Serialize>(&self, items: &[T], position: Option<&str>) -> Response<Full<Bytes>> {
        let name = if self.usage_admin_only {
            "items"
        } else {
            "item"
        };
        let mut body = serde_json::Map::new();
        body.insert(
            name.to_owned(),
            serde_json::to_value(items).unwrap_or_default(),
        );
        if let Some(position) = position {
            body.insert("position".to_owned(), position.into());
        }
        json(StatusCode::OK, &body)
    }

    fn authorize(&self, caller: &Caller, method: &Method, path: &str) -> Result<(), ApiError> {
        let Authorization::Iam(policies) = &self.authorization else {
            return Ok(());
        };
        let principal = caller.principal();
        let action = format!("apigateway:{method}");
        let resource = format!("arn:aws:apigateway:{}::{path}", self.region);
        let ctx = RequestContext::new(principal, resource.as_str()).with_action(action.as_str());
        let decision = portcullis_iam::evaluate(&policies.policies(principal), None, &ctx);
        if decision.is_allowed() {
            return Ok(());
        }
        tracing::info!(
            layer = "management",
            outcome = "deny",
            reason = decision.as_str(),
            principal,
            action = %action,
            resource = %resource,
        );
        let mut message = format!(
            "User: {principal} is not authorized to perform: {action} on resource: {resource}"
        );
        if decision.is_explicit_deny() {
            message.push_str(" with an explicit deny");
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            message,
        ))
    }

    async fn read_body<B>(&self, body: B) -> Result<Bytes, ApiError>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        match Limited::new(body, self.body_limit).collect().await {
            Ok(collected) => {
                let mut buf = collected.aggregate();
                Ok(buf.copy_to_bytes(buf.remaining()))
            }
            Err(error) if error.is::<LengthLimitError>() => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BadRequestException",
                format!("Request body exceeds {} bytes", self.body_limit),
            )),
            Err(_) => Err(ApiError::bad("Could not read the request body")),
        }
    }

    async fn handle<B>(
        &self,
        request: Request<B>,
    ) -> Result<(Response<Full<Bytes>>, &'static str), ApiError>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        let caller = parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            )
        })?;
        // Every decision that names a resource reads the one canonical path.
        let path = CanonicalPath::of_uri(&parts.uri).map_err(|refusal| {
            let kind = refusal.gateway_response().kind();
            ApiError::new(
                kind.default_status(),
                kind.error_type(),
                kind.default_message(),
            )
        })?;
        let path = path.as_str().to_owned();
        let route =
            Route::parse(&path).ok_or_else(|| ApiError::not_found("Invalid resource path"))?;
        let query = Query(parse_query(parts.uri.query().unwrap_or("")));
        let method = parts.method.clone();
        let operation = operation_name(&method, &route, &query).ok_or_else(|| {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowedException",
                format!("{method} is not allowed on {path}"),
            )
        })?;
        if self.usage_admin_only && !USAGE_ADMIN_OPERATIONS.contains(&operation) {
            return Err(ApiError::not_found("Invalid resource path"));
        }
        self.authorize(&caller, &method, &path)?;
        let body = if matches!(method, Method::POST | Method::PATCH | Method::PUT) {
            self.read_body(body).await?
        } else {
            Bytes::new()
        };
        let response = self.dispatch(operation, route, &query, &body).await?;
        Ok((response, operation))
    }

    async fn dispatch(
        &self,
        operation: &'static str,
        route: Route,
        query: &Query,
        body: &[u8],
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        let store = &self.store;
        match (operation, route) {
            ("CreateApiKey", Route::ApiKeys) => {
                let input: CreateApiKeyInput = parse_body(body)?;
                let new = new_api_key(input)?;
                let key = store.create_api_key(new).await?;
                Ok(json(StatusCode::CREATED, &ApiKeyView::of(&key, true)))
            }
            ("ImportApiKeys", Route::ApiKeys) => self.import_api_keys(query, body).await,
            ("GetApiKeys", Route::ApiKeys) => {
                let filter = ApiKeyFilter {
                    name_query: query.get("name").map(str::to_owned),
                    customer_id: query.get("customerId").map(str::to_owned),
                };
                let include = query.flag("includeValues")?;
                let page = store.get_api_keys(filter, query.page()?).await?;
                let items: Vec<ApiKeyView<'_>> = page
                    .items
                    .iter()
                    .map(|k| ApiKeyView::of(k, include))
                    .collect();
                Ok(self.list(&items, page.position.as_deref()))
            }
            ("GetApiKey", Route::ApiKey(id)) => {
                let include = query.flag("includeValue")?;
                let key = store.get_api_key(&id).await?;
                Ok(json(StatusCode::OK, &ApiKeyView::of(&key, include)))
            }
            ("UpdateApiKey", Route::ApiKey(id)) => {
                let update = api_key_update(&patch_operations(body)?)?;
                let key = store.update_api_key(&id, update).await?;
                Ok(json(StatusCode::OK, &ApiKeyView::of(&key, false)))
            }
            ("DeleteApiKey", Route::ApiKey(id)) => {
                store.delete_api_key(&id).await?;
                Ok(accepted())
            }
            ("CreateUsagePlan", Route::Plans) => {
                let input: CreateUsagePlanInput = parse_required(body)?;
                if input.name.as_deref().is_none_or(str::is_empty) {
                    return Err(ApiError::bad("name is required"));
                }
                // The store chooses the id; the draft's is a placeholder.
                let plan = PlanDraft::from_input("new", &input)?.build()?;
                let record = store
                    .create_usage_plan(NewUsagePlan {
                        id: None,
                        plan,
                        tags: input.tags,
                    })
                    .await?;
                Ok(json(StatusCode::CREATED, &UsagePlanView::of(&record)))
            }
            ("GetUsagePlans", Route::Plans) => {
                let page = store
                    .get_usage_plans(query.get("keyId"), query.page()?)
                    .await?;
                let items: Vec<UsagePlanView<'_>> =
                    page.items.iter().map(UsagePlanView::of).collect();
                Ok(self.list(&items, page.position.as_deref()))
            }
            ("GetUsagePlan", Route::Plan(id)) => {
                let record = store.get_usage_plan(&id).await?;
                Ok(json(StatusCode::OK, &UsagePlanView::of(&record)))
            }
            ("UpdateUsagePlan", Route::Plan(id)) => {
                let ops = patch_operations(body)?;
                let current = store.get_usage_plan(&id).await?;
                let mut draft = PlanDraft::of(&current.plan);
                for op in &ops {
                    draft.apply(op)?;
                }
                let plan = draft.build()?;
                let record = store
                    .update_usage_plan(UsagePlanRecord {
                        plan,
                        tags: current.tags,
                    })
                    .await?;
                Ok(json(StatusCode::OK, &UsagePlanView::of(&record)))
            }
            ("DeleteUsagePlan", Route::Plan(id)) => {
                store.delete_usage_plan(&id).await?;
                Ok(accepted())
            }
            ("CreateUsagePlanKey", Route::PlanKeys(plan)) => {
                let input: CreateUsagePlanKeyInput = parse_required(body)?;
                let key_id = input
                    .key_id
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| ApiError::bad("keyId is required"))?;
                let key_type = input
                    .key_type
                    .ok_or_else(|| ApiError::bad("keyType is required"))?;
                let key = store
                    .create_usage_plan_key(&plan, &key_id, &key_type)
                    .await?;
                Ok(json(StatusCode::CREATED, &UsagePlanKeyView::of(&key)))
            }
            ("GetUsagePlanKeys", Route::PlanKeys(plan)) => {
                let page = store
                    .get_usage_plan_keys(&plan, query.get("name"), query.page()?)
                    .await?;
                let items: Vec<UsagePlanKeyView<'_>> =
                    page.items.iter().map(UsagePlanKeyView::of).collect();
                Ok(self.list(&items, page.position.as_deref()))
            }
            ("GetUsagePlanKey", Route::PlanKey(plan, key)) => {
                let key = store.get_usage_plan_key(&plan, &key).await?;
                Ok(json(StatusCode::OK, &UsagePlanKeyView::of(&key)))
            }
            ("DeleteUsagePlanKey", Route::PlanKey(plan, key)) => {
                store.delete_usage_plan_key(&plan, &key).await?;
                Ok(accepted())
            }
            ("GetUsage", Route::Usage(plan)) => self.get_usage(&plan, query).await,
            ("UpdateUsage", Route::KeyUsage(plan, key)) => {
                let updates = usage_updates(&patch_operations(body)?)?;
                let record = store.get_usage_plan(&plan).await?;
                store.get_usage_plan_key(&plan, &key).await?;
                let mut last = None;
                for update in updates {
                    last = Some(self.usage.update_usage(&record.plan, &key, update).await?);
                }
                let usage =
                    last.ok_or_else(|| ApiError::bad("patchOperations must not be empty"))?;
                Ok(usage_response(&usage))
            }
            _ => Err(ApiError::not_found("Invalid resource path")),
        }
    }

    async fn get_usage(
        &self,
        plan_id: &str,
        query: &Query,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        let start = parse_date("startDate", query.get("startDate"))?;
        let end = parse_date("endDate", query.get("endDate"))?;
        let record = self.store.get_usage_plan(plan_id).await?;
        let counted = self.store.usage_keys(plan_id).await?;
        let keys: Vec<String> = match query.get("keyId") {
            Some(key) => {
                let known = counted.iter().any(|k| k == key)
                    || self.store.get_usage_plan_key(plan_id, key).await.is_ok();
                if !known {
                    return Err(ApiError::not_found(format!(
                        "Invalid API Key identifier specified: {key} is not in usage plan {plan_id}"
                    )));
                }
                vec![key.to_owned()]
            }
            None => {
                let mut keys: BTreeSet<String> = counted.into_iter().collect();
                let mut page = PageRequest::first(crate::model::MAX_PAGE_LIMIT);
                loop {
                    let listed = self
                        .store
                        .get_usage_plan_keys(plan_id, None, page.clone())
                        .await?;
                    keys.extend(listed.items.iter().map(|k| k.id.clone()));
                    match page.next(&listed) {
                        Some(next) => page = next,
                        None => break,
                    }
                }
                keys.into_iter().collect()
            }
        };
        let page = query.page()?;
        let mut usage_page = UsagePage::new();
        if let Some(limit) = page.limit {
            usage_page = usage_page.limit(limit as usize);
        }
        if let Some(position) = page.position {
            usage_page = usage_page.position(position);
        }
        let usage = self
            .usage
            .get_usage_page_of_keys(&record.plan, &keys, start, end, &usage_page)
            .await?;
        Ok(usage_response(&usage))
    }

    async fn import_api_keys(
        &self,
        query: &Query,
        body: &[u8],
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        match query.get("format") {
            Some(f) if f.eq_ignore_ascii_case("csv") => {}
            Some(other) => {
                return Err(ApiError::bad(format!(
                    "Invalid format {other:?}: only csv is supported"
                )));
            }
            None => return Err(ApiError::bad("format is required")),
        }
        let fail_on_warnings = query.flag("failonwarnings")?;
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad("The API key file is not UTF-8"))?;
        let rows = csv::parse(text).map_err(ApiError::bad)?;
        // Every plan named must exist before anything is written.
        let mut plans = BTreeSet::new();
        for row in &rows {
            for plan in &row.usage_plan_ids {
                if plans.insert(plan.clone()) {
                    self.store.get_usage_plan(plan).await.map_err(|_| {
                        ApiError::bad(format!("Invalid usage plan identifier {plan} in the file"))
                    })?;
                }
            }
        }
        let mut inputs = Vec::with_capacity(rows.len());
        for row in &rows {
            let value = ApiKeyValue::new(row.key.clone())
                .map_err(|e| ApiError::bad(format!("Invalid key value for {}: {e}", row.name)))?;
            inputs.push(NewApiKey {
                name: Some(row.name.clone()),
                description: row.description.clone(),
                customer_id: row.customer_id.clone(),
                enabled: row.enabled,
                value: Some(value),
                ..NewApiKey::default()
            });
        }
        let keys = self.store.import_api_keys(inputs).await?;
        let mut warnings = Vec::new();
        for (key, row) in keys.iter().zip(&rows) {
            for plan in &row.usage_plan_ids {
                if let Err(error) = self
                    .store
                    .create_usage_plan_key(plan, &key.id, "API_KEY")
                    .await
                {
                    warnings.push(format!(
                        "{}: not added to usage plan {plan}: {error}",
                        key.id
                    ));
                }
            }
        }
        if fail_on_warnings && !warnings.is_empty() {
            return Err(ApiError::bad(warnings.join("; ")));
        }
        let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        Ok(json(
            StatusCode::CREATED,
            &serde_json::json!({ "ids": ids, "warnings": warnings }),
        ))
    }
}

const USAGE_ADMIN_OPERATIONS: &[&str] = &[
    "GetUsagePlans",
    "GetUsagePlan",
    "GetUsagePlanKeys",
    "GetUsagePlanKey",
    "GetUsage",
    "UpdateUsage",
];

fn operation_name(method: &Method, route: &Route, query: &Query) -> Option<&'static str> {
    let m = method.as_str();
    Some(match (route, m) {
        (Route::ApiKeys, "POST") if query.get("mode") == Some("import") => "ImportApiKeys",
        (Route::ApiKeys, "POST") => "CreateApiKey",
        (Route::ApiKeys, "GET") => "GetApiKeys",
        (Route::ApiKey(_), "GET") => "GetApiKey",
        (Route::ApiKey(_), "PATCH") => "UpdateApiKey",
        (Route::ApiKey(_), "DELETE") => "DeleteApiKey",
        (Route::Plans, "POST") => "CreateUsagePlan",
        (Route::Plans, "GET") => "GetUsagePlans",
        (Route::Plan(_), "GET") => "GetUsagePlan",
        (Route::Plan(_), "PATCH") => "UpdateUsagePlan",
        (Route::Plan(_), "DELETE") => "DeleteUsagePlan",
        (Route::PlanKeys(_), "POST") => "CreateUsagePlanKey",
        (Route::PlanKeys(_), "GET") => "GetUsagePlanKeys",
        (Route::PlanKey(..), "GET") => "GetUsagePlanKey",
        (Route::PlanKey(..), "DELETE") => "DeleteUsagePlanKey",
        (Route::Usage(_), "GET") => "GetUsage",
        (Route::KeyUsage(..), "PATCH") => "UpdateUsage",
        _ => return None,
    })
}

fn new_api_key(input: CreateApiKeyInput) -> Result<NewApiKey, ApiError> {
    let value = input
        .value
        .map(|v| {
            ApiKeyValue::new(v).map_err(|e| ApiError::bad(format!("Invalid API key value: {e}")))
        })
        .transpose()?;
    let stage_keys = input
        .stage_keys
        .into_iter()
        .map(|s| match (s.rest_api_id, s.stage_name) {
            (Some(api), Some(stage)) => Ok(format!("{api}/{stage}")),
            _ => Err(ApiError::bad(
                "stageKeys: each needs restApiId and stageName",
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NewApiKey {
        id: None,
        name: input.name,
        customer_id: input.customer_id,
        description: input.description,
        enabled: input.enabled.unwrap_or(false),
        value,
        digest: None,
        stage_keys,
        tags: input.tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(op: &str, path: &str, value: Option<&str>) -> PatchOperation {
        PatchOperation {
            op: op.to_owned(),
            path: path.to_owned(),
            value: value.map(|v| serde_json::Value::String(v.to_owned())),
            from: None,
        }
    }

    #[test]
    fn routes_parse() {
        assert_eq!(Route::parse("/apikeys"), Some(Route::ApiKeys));
        assert_eq!(
            Route::parse("/usageplans/p/keys/k/usage"),
            Some(Route::KeyUsage("p".into(), "k".into()))
        );
        assert_eq!(Route::parse("/usageplans//keys"), None);
        assert_eq!(Route::parse("/other"), None);
    }

    #[test]
    fn plan_patches_apply_to_a_draft() {
        let plan = UsagePlan::new("p")
            .unwrap()
            .with_name("n")
            .with_quota(QuotaSettings::new(10, QuotaPeriod::Day).unwrap());
        let mut draft = PlanDraft::of(&plan);
        draft
            .apply(&op("replace", "/quota/limit", Some("500")))
            .unwrap();
        draft
            .apply(&op("replace", "/quota/period", Some("MONTH")))
            .unwrap();
        draft
            .apply(&op("add", "/apiStages", Some("api1:prod")))
            .unwrap();
        draft
            .apply(&op(
                "replace",
                "/apiStages/api1:prod/throttle/~1pets/GET/rateLimit",
                Some("5"),
            ))
            .unwrap();
        draft
            .apply(&op(
                "replace",
                "/apiStages/api1:prod/throttle/~1pets/GET/burstLimit",
                Some("10"),
            ))
            .unwrap();
        draft
            .apply(&op("replace", "/throttle/rateLimit", Some("2")))
            .unwrap();
        draft
            .apply(&op("replace", "/throttle/burstLimit", Some("4")))
            .unwrap();
        let built = draft.build().unwrap();
        assert_eq!(built.quota().unwrap().limit(), 500);
        assert_eq!(built.quota().unwrap().period(), QuotaPeriod::Month);
        assert_eq!(built.api_stages()[0].throttle.len(), 1);
        assert_eq!(built.throttle().unwrap().burst_limit().get(), 4);

        let mut bad = PlanDraft::of(&plan);
        assert!(
            bad.apply(&op("replace", "/quota/period", Some("YEAR")))
                .is_err()
        );
        assert!(bad.apply(&op("replace", "/nope", Some("1"))).is_err());
        bad.apply(&op("replace", "/quota/limit", Some("-1")))
            .unwrap();
        assert!(
            bad.build().is_err(),
            "a negative limit is refused when built"
        );
        let mut half = PlanDraft::of(&plan);
        half.apply(&op("replace", "/throttle/rateLimit", Some("2")))
            .unwrap();
        assert!(half.build().is_err(), "a throttle needs both members");
    }

    #[test]
    fn key_patches() {
        let update = api_key_update(&[
            op("replace", "/enabled", Some("false")),
            op("replace", "/name", Some("x")),
        ])
        .unwrap();
        assert_eq!(update.enabled, Some(false));
        assert!(api_key_update(&[op("replace", "/enabled", Some("maybe"))]).is_err());
        assert!(api_key_update(&[op("replace", "/value", Some("x"))]).is_err());
    }
}
