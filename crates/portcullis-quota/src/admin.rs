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
use http::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use percent_encoding::percent_decode_str;
use portcullis_core::path::CanonicalPath;
use portcullis_core::plan::{ThrottleSettings, UsagePlan};
use portcullis_core::response::X_AMZN_ERROR_TYPE;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::Date;
use tower_service::Service;

use crate::store::{InMemoryQuotaStore, QuotaStore, UsageUpdate};
use crate::usage::{MAX_USAGE_PAGE_LIMIT, UsageApi, UsageError, UsagePage};

/// The default limit of a request body, in bytes.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// The most patch operations one UpdateUsage request may carry.
pub const MAX_PATCH_OPERATIONS: usize = 16;

/// A key of a usage plan, as the admin service lists it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlanKey {
    /// The key's id.
    pub id: String,
    /// The key's name, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl PlanKey {
    /// A key known by its id.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: None,
        }
    }

    /// Sets the key's name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// Which API keys belong to which usage plan: the admin service asks this
/// rather than depending on the API-key crate.
///
/// Implemented by [`StaticKeys`], and by any
/// `Fn(&str) -> Vec<PlanKey>` closure (given a plan id).
pub trait KeyDirectory: Send + Sync + 'static {
    /// The keys of the plan `plan_id`.
    fn keys_of_plan(&self, plan_id: &str) -> Vec<PlanKey>;
}

impl<F> KeyDirectory for F
where
    F: Fn(&str) -> Vec<PlanKey> + Send + Sync + 'static,
{
    fn keys_of_plan(&self, plan_id: &str) -> Vec<PlanKey> {
        self(plan_id)
    }
}

/// A fixed list of keys and the plans they belong to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StaticKeys {
    keys: Vec<(String, PlanKey)>,
}

impl StaticKeys {
    /// No keys.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the key `key_id` to the plan `plan_id`.
    #[must_use]
    pub fn key(self, key_id: impl Into<String>, plan_id: impl Into<String>) -> Self {
        self.plan_key(PlanKey::new(key_id), plan_id)
    }

    /// Adds a key, with its name, to the plan `plan_id`.
    #[must_use]
    pub fn plan_key(mut self, key: PlanKey, plan_id: impl Into<String>) -> Self {
        self.keys.push((plan_id.into(), key));
        self
    }
}

impl<K: Into<String>, P: Into<String>> FromIterator<(K, P)> for StaticKeys {
    /// Collects `(key id, plan id)` pairs.
    fn from_iter<I: IntoIterator<Item = (K, P)>>(iter: I) -> Self {
        iter.into_iter()
            .fold(StaticKeys::new(), |keys, (key, plan)| keys.key(key, plan))
    }
}

impl KeyDirectory for StaticKeys {
    fn keys_of_plan(&self, plan_id: &str) -> Vec<PlanKey> {
        self.keys
            .iter()
            .filter(|(plan, _)| plan == plan_id)
            .map(|(_, key)| key.clone())
            .collect()
    }
}

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

/// An admin error, rendered as API Gateway renders its own.
#[derive(Debug)]
struct AdminError {
    status: StatusCode,
    error_type: &'static str,
    message: String,
    allow: Option<&'static str>,
}

impl AdminError {
    fn new(status: StatusCode, error_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_type,
            message: message.into(),
            allow: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequestException", message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFoundException", message)
    }

    fn method_not_allowed(allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowedException",
                "Method Not Allowed",
            )
        }
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response =
            json_response(self.status, &serde_json::json!({ "message": self.message }));
        response
            .headers_mut()
            .insert(X_AMZN_ERROR_TYPE, HeaderValue::from_static(self.error_type));
        if let Some(allow) = self.allow {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

impl From<UsageError> for AdminError {
    fn from(error: UsageError) -> Self {
        match error {
            UsageError::Store(source) => {
                tracing::error!(layer = "quota_admin", error = %source, "quota store error");
                AdminError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerErrorException",
                    "Internal server error",
                )
            }
            other => AdminError::bad_request(other.to_string()),
        }
    }
}

fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    // Serialising our own view types into a Vec cannot fail.
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn ok<T: Serialize>(value: &T) -> Result<Response<Full<Bytes>>, AdminError> {
    Ok(json_response(StatusCode::OK, value))
}

/// A route of the admin service, from a method and a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Plans,
    Plan(String),
    Keys(String),
    Key(String, String),
    Usage(String),
    KeyUsage(String, String),
}

impl Route {
    /// Parses a [`CanonicalPath`] (decoded already) such as
    /// `/usageplans/basic/keys/k1/usage`.
    pub(crate) fn parse(path: &str) -> Option<Route> {
        let path = path.strip_prefix('/').unwrap_or(path);
        let path = path.strip_suffix('/').unwrap_or(path);
        let mut parts = path.split('/');
        if parts.next()? != "usageplans" {
            return None;
        }
        let segments: Vec<String> = parts.map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return None;
        }
        let mut segments = segments.into_iter();
        let route = match (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) {
            (None, ..) => Route::Plans,
            (Some(plan), None, ..) => Route::Plan(plan),
            (Some(plan), Some(k), None, _) if k == "keys" => Route::Keys(plan),
            (Some(plan), Some(u), None, _) if u == "usage" => Route::Usage(plan),
            (Some(plan), Some(k), Some(key), None) if k == "keys" => Route::Key(plan, key),
            (Some(plan), Some(k), Some(key), Some(u)) if k == "keys" && u == "usage" => {
                Route::KeyUsage(plan, key)
            }
            _ => return None,
        };
        segments.next().is_none().then_some(route)
    }

    fn allowed(&self) -> &'static str {
        match self {
            Route::KeyUsage(..) => "PATCH",
            _ => "GET",
        }
    }
}

/// Parses a query string into decoded pairs (`+` is a space). The first
/// occurrence of a name wins.
pub(crate) fn parse_query(query: &str) -> BTreeMap<String, String> {
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

fn parse_date(name: &str, value: Option<&String>) -> Result<Date, AdminError> {
    let value = value.ok_or_else(|| AdminError::bad_request(format!("{name} is required")))?;
    Date::parse(
        value,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| AdminError::bad_request(format!("Invalid {name} `{value}`: expected YYYY-MM-DD")))
}

/// An UpdateUsage request body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PatchRequest {
    pub(crate) patch_operations: Vec<PatchOperation>,
}

/// One patch operation.
#[derive(Debug, Deserialize)]
pub(crate) struct PatchOperation {
    pub(crate) op: String,
    pub(crate) path: String,
    #[serde(default)]
    pub(crate) value: Option<Value>,
}

impl PatchOperation {
    /// The usage update this operation asks for.
    pub(crate) fn to_update(&self) -> Result<UsageUpdate, String> {
        if self.path != "/remaining" {
            return Err(format!(
                "Invalid patch path `{}`: only /remaining is supported",
                self.path
            ));
        }
        let value = || -> Result<u64, String> {
            let parsed = match &self.value {
                Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
                Some(Value::Number(n)) => n.as_u64(),
                _ => None,
            };
            parsed.ok_or_else(|| {
                format!(
                    "Invalid value for `{} /remaining`: expected a non-negative integer",
                    self.op
                )
            })
        };
        match self.op.as_str() {
            "replace" => Ok(UsageUpdate::SetRemaining(value()?)),
            "add" => Ok(UsageUpdate::Extend(value()?)),
            "remove" => Ok(UsageUpdate::Reset),
            other => Err(format!(
                "Invalid patch operation `{other}`: expected replace, add or remove"
            )),
        }
    }
}

/// Parses an UpdateUsage body into updates.
pub(crate) fn parse_patch(body: &[u8]) -> Result<Vec<UsageUpdate>, String> {
    let request: PatchRequest =
        serde_json::from_slice(body).map_err(|e| format!("Invalid request body: {e}"))?;
    if request.patch_operations.is_empty() {
        return Err("patchOperations must not be empty".to_owned());
    }
    if request.patch_operations.len() > MAX_PATCH_OPERATIONS {
        return Err(format!(
            "At most {MAX_PATCH_OPERATIONS} patch operations are allowed"
        ));
    }
    request
        .patch_operations
        .iter()
        .map(PatchOperation::to_update)
        .collect()
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
                let plans: Vec<PlanView<'_>> = self
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
                    .map(|plan| PlanView::of(plan))
                    .collect();
                ok(&serde_json::json!({ "items": plans }))
            }
            Route::Plan(plan) => ok(&PlanView::of(self.plan(&plan)?)),
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

/// API Gateway's `UsagePlan` representation.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanView<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    api_stages: Vec<StageView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    throttle: Option<ThrottleView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quota: Option<QuotaView>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StageView<'a> {
    api_id: &'a str,
    stage: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    throttle: BTreeMap<String, ThrottleView>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ThrottleView {
    burst_limit: u32,
    rate_limit: f64,
}

impl From<&ThrottleSettings> for ThrottleView {
    fn from(t: &ThrottleSettings) -> Self {
        Self {
            burst_limit: t.burst_limit().get(),
            rate_limit: t.rate_limit(),
        }
    }
}

#[derive(Serialize)]
struct QuotaView {
    limit: u64,
    offset: u64,
    period: String,
}

impl<'a> PlanView<'a> {
    fn of(plan: &'a UsagePlan) -> Self {
        Self {
            id: plan.id(),
            name: plan.name(),
            description: plan.description(),
            api_stages: plan
                .api_stages()
                .iter()
                .map(|stage| StageView {
                    api_id: &stage.api_id,
                    stage: &stage.stage,
                    throttle: stage
                        .throttle
                        .iter()
                        .map(|(selector, t)| (selector.to_string(), t.into()))
                        .collect(),
                })
                .collect(),
            throttle: plan.throttle().map(Into::into),
            quota: plan.quota().map(|q| QuotaView {
                limit: q.limit(),
                offset: q.offset(),
                period: q.period().to_string(),
            }),
        }
    }
}

/// API Gateway's `UsagePlanKey` (without the key's value).
#[derive(Serialize)]
struct KeyView {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

impl KeyView {
    fn of(key: PlanKey) -> Self {
        Self {
            id: key.id,
            kind: "API_KEY",
            name: key.name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse() {
        let route = |path: &str| {
            CanonicalPath::parse(path)
                .ok()
                .and_then(|p| Route::parse(&p))
        };
        assert_eq!(route("/usageplans/p1%2Fx"), None);
        assert_eq!(route("/usageplans/%70%31"), Some(Route::Plan("p1".into())));
        assert_eq!(route("/usageplans"), Some(Route::Plans));
        assert_eq!(route("/usageplans/"), Some(Route::Plans));
        assert_eq!(route("/usageplans/p1"), Some(Route::Plan("p1".into())));
        assert_eq!(
            route("/usageplans/p%201/keys/k1/usage"),
            Some(Route::KeyUsage("p 1".into(), "k1".into()))
        );
        assert_eq!(
            route("/usageplans/p1/usage"),
            Some(Route::Usage("p1".into()))
        );
        assert_eq!(route("/usageplans/p1/keys/k1/usage/x"), None);
        assert_eq!(route("/usageplans//keys"), None);
        assert_eq!(route("/apikeys"), None);
        assert_eq!(route("/usageplans/%FF"), None);
    }

    #[test]
    fn queries_decode() {
        let q = parse_query("keyId=a%2Bb&startDate=2026-11-01&keyId=ignored&x+y=1+2&flag");
        assert_eq!(q["keyId"], "a+b");
        assert_eq!(q["x y"], "1 2");
        assert_eq!(q["flag"], "");
    }

    #[test]
    fn patches_parse() {
        let ops = parse_patch(
            br#"{"patchOperations":[{"op":"replace","path":"/remaining","value":"100"},
                {"op":"add","path":"/remaining","value":5},{"op":"remove","path":"/remaining"}]}"#,
        )
        .unwrap();
        assert_eq!(
            ops,
            vec![
                UsageUpdate::SetRemaining(100),
                UsageUpdate::Extend(5),
                UsageUpdate::Reset
            ]
        );
        for bad in [
            &br#"{"patchOperations":[]}"#[..],
            br#"{"patchOperations":[{"op":"replace","path":"/used","value":"1"}]}"#,
            br#"{"patchOperations":[{"op":"replace","path":"/remaining","value":"-1"}]}"#,
            br#"{"patchOperations":[{"op":"move","path":"/remaining","value":"1"}]}"#,
            b"not json",
        ] {
            assert!(
                parse_patch(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
