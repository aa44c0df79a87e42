//! The request's own span, `portcullis.request`, and its id, sent back as
//! `x-amzn-RequestId` (as API Gateway sends it on every response).
//!
//! [`RequestSpanLayer`] goes outermost. For each request it makes an id (a
//! version-4 UUID, as API Gateway's), puts it in the request's
//! [`RequestContext`](crate::context::RequestContext), opens the INFO span `portcullis.request` with
//! `request_id`, `method` and `path`, and calls the inner service inside
//! it, so that every layer's span (`portcullis.<layer>`) is the request
//! span's child. When the response is known, it records on the span the
//! API key's id (never its value), the principal, the `outcome`
//! (`allowed` or `refused`), the `reason` (the refusal's gateway response
//! type) and the `status`, logs one INFO event `request refused` for a
//! refusal, and sets `x-amzn-RequestId` on the response.
//!
//! What the layers inside learned (the caller, the API key) lives in the
//! request's [`RequestContext`](crate::context::RequestContext), which the outer layer never sees again: the
//! layer puts a [`RequestRecord`] into it, and [`record_context`] (or the
//! [`RecordContext`] service, placed under a layer that authenticates)
//! copies what is known into it.
//!
//! A request that already has an id (an outer request span, or an
//! access-log layer, opened the span) passes through untouched: one request
//! gets one span, whichever layer opened it.
//!
//! # Example
//!
//! ```
//! use http::{Request, Response};
//! use portcullis_core::context::RequestContextExt;
//! use portcullis_core::request_span::{RequestSpanLayer, X_AMZN_REQUEST_ID};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let service = ServiceBuilder::new()
//!     .layer(RequestSpanLayer::new())
//!     .service_fn(|request: Request<()>| async move {
//!         // The application sees the id the response will carry.
//!         let id = request.request_id().map(str::to_owned);
//!         Ok::<_, std::convert::Infallible>(Response::new(id))
//!     });
//!
//! let response = service.oneshot(Request::new(())).await.unwrap();
//! let id = response.body().clone().expect("the request had an id");
//! assert_eq!(response.headers()[X_AMZN_REQUEST_ID], id.as_str());
//! assert_eq!(id.len(), 36);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{HeaderName, HeaderValue};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Span;

use crate::GatewayResponseType;
use crate::context::RequestContextExt;
pub use crate::context::record::RequestRecord;
use crate::response::X_AMZN_ERROR_TYPE;
use crate::trace::{ALLOWED, REFUSED};

/// The request-id header API Gateway sets on every response.
pub const X_AMZN_REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");

/// A new request id, and API Gateway's extended request id.
///
/// The id is an RFC 4122 version-4 UUID in lower-case hex
/// (`3b18b536-b7f4-46c7-a496-1676b4b1c46c`); the extended id is twelve
/// alphanumeric characters and `=` (`$context.extendedRequestId`).
#[must_use]
pub fn new_request_id() -> (String, String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes: [u8; 16] = rand::random();
    // Version 4 (the high nibble of byte 6) and the variant `10` (the high
    // bits of byte 8).
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut uuid = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            uuid.push('-');
        }
        uuid.push(char::from(HEX[usize::from(byte >> 4)]));
        uuid.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    let mut extended = String::with_capacity(13);
    for byte in &bytes[..12] {
        extended.push(char::from(ALNUM[usize::from(*byte) % ALNUM.len()]));
    }
    extended.push('=');
    (uuid, extended)
}

/// Copies the caller, API key and WAF labels found in the request's
/// [`RequestContext`](crate::context::RequestContext) into its [`RequestRecord`], if it has one.
pub fn record_context<B>(request: &Request<B>) {
    let Some(context) = request.request_context() else {
        return;
    };
    let Some(record) = context.record() else {
        return;
    };
    if let Ok(mut recorded) = record.0.lock() {
        if let Some(caller) = context.caller() {
            recorded.caller = Some(caller.clone());
        }
        if let Some(key) = context.api_key() {
            recorded.api_key = Some(key.clone());
        }
        recorded.waf_seen |= !context.waf_labels().is_empty();
    }
}

/// The gateway response a response is, known by its `x-amzn-ErrorType`
/// (and its status, where two types share an error type); `None` for a
/// response that is not a gateway response.
#[must_use]
pub fn refusal_type<B>(response: &Response<B>) -> Option<GatewayResponseType> {
    let error_type = response
        .headers()
        .get(X_AMZN_ERROR_TYPE)
        .and_then(|v| v.to_str().ok())?;
    let all = GatewayResponseType::ALL;
    all.iter()
        .find(|k| k.error_type() == error_type && k.default_status() == response.status())
        .or_else(|| all.iter().find(|k| k.error_type() == error_type))
        .copied()
}

/// A request's span, opened by [`open`]: its id, its extended id, the
/// span and the [`RequestRecord`] the layers inside fill.
#[derive(Debug)]
pub struct OpenedRequest {
    id: Arc<str>,
    extended_id: String,
    span: Span,
    record: RequestRecord,
}

/// Opens `request`'s span: makes its id, opens `portcullis.request`, and
/// puts its id and a [`RequestRecord`] into its [`RequestContext`](crate::context::RequestContext).
/// Call the inner service inside [`OpenedRequest::span`], then
/// [`OpenedRequest::finish`] with the response.
pub fn open<B>(request: &mut Request<B>) -> OpenedRequest {
    let (id, extended_id) = new_request_id();
    let id: Arc<str> = Arc::from(id);
    let span = new_span(&id, request);
    request
        .request_context_mut()
        .set_request_id(Arc::clone(&id));
    opened(request, id, extended_id, span)
}

/// The request's span, `portcullis.request`, with its fields: key ids and
/// principals only, never a secret.
fn new_span<B>(id: &str, request: &Request<B>) -> Span {
    tracing::info_span!(
        "portcullis.request",
        request_id = id,
        method = %request.method(),
        path = request.uri().path(),
        key_id = tracing::field::Empty,
        principal = tracing::field::Empty,
        outcome = tracing::field::Empty,
        reason = tracing::field::Empty,
        status = tracing::field::Empty,
    )
}

/// Puts a [`RequestRecord`] into `request`'s context for the span.
fn opened<B>(
    request: &mut Request<B>,
    id: Arc<str>,
    extended_id: String,
    span: Span,
) -> OpenedRequest {
    let record = RequestRecord::default();
    request.request_context_mut().set_record(record.clone());
    OpenedRequest {
        id,
        extended_id,
        span,
        record,
    }
}

impl OpenedRequest {
    /// The request id, also in the request's [`RequestContext`](crate::context::RequestContext).
    #[must_use]
    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    /// API Gateway's extended request id.
    #[must_use]
    pub fn extended_id(&self) -> &str {
        &self.extended_id
    }

    /// The request's span, `portcullis.request`.
    #[must_use]
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// What the layers inside recorded.
    #[must_use]
    pub fn record(&self) -> &RequestRecord {
        &self.record
    }

    /// Records on the span what the layers decided: the API key's id, the
    /// principal, the outcome (`refused` when `refusal` is a gateway
    /// response type, with it as the reason) and the status; logs one INFO
    /// event `request refused` for a refusal; and sets `x-amzn-RequestId`
    /// on `response`.
    pub fn finish<B>(&self, response: &mut Response<B>, refusal: Option<GatewayResponseType>) {
        if let Ok(value) = HeaderValue::from_str(&self.id) {
            response.headers_mut().insert(X_AMZN_REQUEST_ID, value);
        }
        let span = &self.span;
        if span.is_disabled() && refusal.is_none() {
            return;
        }
        let key_id = self.record.api_key().map(|k| k.key_id().to_owned());
        let principal = self.record.caller().map(|c| c.principal().to_owned());
        if let Some(key_id) = &key_id {
            span.record("key_id", key_id.as_str());
        }
        if let Some(principal) = &principal {
            span.record("principal", principal.as_str());
        }
        span.record("status", response.status().as_u16());
        match refusal {
            Some(kind) => {
                span.record("outcome", REFUSED);
                span.record("reason", kind.as_str());
                tracing::info!(
                    parent: span,
                    outcome = REFUSED,
                    reason = kind.as_str(),
                    status = response.status().as_u16(),
                    key_id = key_id.as_deref().unwrap_or("-"),
                    principal = principal.as_deref().unwrap_or("-"),
                    "request refused"
                );
            }
            None => {
                span.record("outcome", ALLOWED);
            }
        }
    }
}

/// Opens the request's span and gives it its id: see the
/// [module docs](self).
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct RequestSpanLayer {
    ids_only: bool,
}

impl RequestSpanLayer {
    /// The request's span and its id.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id only: each request still gets its id and its
    /// response `x-amzn-RequestId`, and no span is opened.
    pub fn ids_only() -> Self {
        Self { ids_only: true }
    }
}

impl<S> Layer<S> for RequestSpanLayer {
    type Service = RequestSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestSpan {
            inner,
            ids_only: self.ids_only,
        }
    }
}

/// The service made by [`RequestSpanLayer`].
#[derive(Clone, Debug)]
pub struct RequestSpan<S> {
    inner: S,
    ids_only: bool,
}

impl<S> RequestSpan<S> {
    /// The request's span around `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            ids_only: false,
        }
    }

    /// A [`RequestSpanLayer`]: the request's span around any service.
    pub fn layer() -> RequestSpanLayer {
        RequestSpanLayer::new()
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, RB> Service<Request<B>> for RequestSpan<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if request.request_id().is_some() {
            // An outer layer opened the request's span.
            return ResponseFuture {
                future: self.inner.call(request),
                state: State::PassThrough,
            };
        }
        let (id, extended_id) = new_request_id();
        let id: Arc<str> = Arc::from(id);
        let span = if self.ids_only {
            Span::none()
        } else {
            new_span(&id, &request)
        };
        request
            .request_context_mut()
            .set_request_id(Arc::clone(&id));
        if span.is_disabled() {
            // No span (or none a subscriber wants): nothing to record.
            return ResponseFuture {
                future: self.inner.call(request),
                state: State::IdOnly(id),
            };
        }
        let opened = opened(&mut request, id, extended_id, span);
        let future = opened.span.in_scope(|| self.inner.call(request));
        ResponseFuture {
            future,
            state: State::Opened(opened),
        }
    }
}

enum State {
    PassThrough,
    IdOnly(Arc<str>),
    Opened(OpenedRequest),
}

pin_project! {
    /// The future of [`RequestSpan`]: the inner service's, inside the
    /// request's span.
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        state: State,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, RB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.state {
            State::PassThrough => this.future.poll(cx),
            State::IdOnly(id) => this.future.poll(cx).map_ok(|mut response| {
                if let Ok(value) = HeaderValue::from_str(id) {
                    response.headers_mut().insert(X_AMZN_REQUEST_ID, value);
                }
                response
            }),
            State::Opened(opened) => {
                let _entered = opened.span.enter();
                this.future.poll(cx).map_ok(|mut response| {
                    let refusal = refusal_type(&response);
                    opened.finish(&mut response, refusal);
                    response
                })
            }
        }
    }
}

/// Copies what the request's context holds (the caller, the API key,
/// the WAF's labels) into its [`RequestRecord`] with [`record_context`],
/// then calls the inner service: placed under a layer that authenticates,
/// it lets the request's span name the caller and the key even when a
/// layer further in refuses.
#[derive(Clone, Debug)]
pub struct RecordContext<S> {
    inner: S,
}

impl<S> RecordContext<S> {
    /// Records the context of the requests that reach `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S, B> Service<Request<B>> for RecordContext<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        record_context(&request);
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests;
