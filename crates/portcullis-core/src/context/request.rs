//! [`RequestContext`]: every fact the layers learn about one request, in one
//! request extension.

use std::net::IpAddr;
use std::sync::Arc;

use http::{Extensions, Request};

use super::record::RequestRecord;
use super::{ApiKeyContext, Caller, UsageIdentifierKey, WafLabels};
use crate::response::GatewayResponses;

/// What the layers learned about one request: its id, the client address,
/// the caller, the API key, the key an authorizer chose, the WAF's labels
/// and the gateway-response overrides.
///
/// It is one request extension for all of them. The first layer that has
/// something to say inserts it (with
/// [`RequestContextExt::request_context_mut`], which inserts a default one
/// when the request has none), and every later layer writes its fact into
/// the same value: one insert per request, whatever the number of layers.
/// A field no layer set costs nothing.
///
/// The application reads it through [`RequestContextExt`] on the request,
/// its parts or its extensions, or, in an axum handler, as an extractor
/// (with the `axum` feature) that yields an empty context when no layer ran:
///
/// ```
/// use portcullis_core::context::{AuthMethod, Caller, RequestContextExt};
///
/// let mut request = http::Request::new(());
/// assert!(request.caller().is_none());
///
/// // What an authenticating layer does:
/// request
///     .request_context_mut()
///     .set_caller(Caller::new("user-123", AuthMethod::Jwt));
///
/// // What the application reads:
/// assert_eq!(request.caller().map(Caller::principal), Some("user-123"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    request_id: Option<Arc<str>>,
    client_ip: Option<IpAddr>,
    caller: Option<Caller>,
    api_key: Option<ApiKeyContext>,
    usage_identifier_key: Option<UsageIdentifierKey>,
    waf_labels: WafLabels,
    gateway_responses: Option<GatewayResponses>,
    record: Option<RequestRecord>,
}

impl RequestContext {
    /// An empty context: nothing known yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The request's id, the value its response carries as
    /// `x-amzn-RequestId` (set by the request's span or the access log).
    #[must_use]
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// The request's id, shared.
    #[must_use]
    pub fn request_id_arc(&self) -> Option<&Arc<str>> {
        self.request_id.as_ref()
    }

    /// Sets the request's id.
    pub fn set_request_id(&mut self, id: Arc<str>) -> &mut Self {
        self.request_id = Some(id);
        self
    }

    /// The client address, once a layer resolved it (see
    /// [`ClientIpResolver::resolve_and_store`](crate::client_ip::ClientIpResolver::resolve_and_store)).
    #[must_use]
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }

    /// Sets the client address, for the layers inside.
    pub fn set_client_ip(&mut self, ip: IpAddr) -> &mut Self {
        self.client_ip = Some(ip);
        self
    }

    /// The authenticated caller (the SigV4, JWT and custom authorizer
    /// layers set it).
    #[must_use]
    pub fn caller(&self) -> Option<&Caller> {
        self.caller.as_ref()
    }

    /// Sets the authenticated caller.
    pub fn set_caller(&mut self, caller: Caller) -> &mut Self {
        self.caller = Some(caller);
        self
    }

    /// This context with `caller` set: for a request built by hand
    /// (`http::request::Builder::extension`).
    #[must_use]
    pub fn with_caller(mut self, caller: Caller) -> Self {
        self.caller = Some(caller);
        self
    }

    /// The API key the request presented, once the API-key layer accepted it
    /// (read by the throttle and the quota).
    #[must_use]
    pub fn api_key(&self) -> Option<&ApiKeyContext> {
        self.api_key.as_ref()
    }

    /// Sets the accepted API key.
    pub fn set_api_key(&mut self, key: ApiKeyContext) -> &mut Self {
        self.api_key = Some(key);
        self
    }

    /// This context with `key` set: for a request built by hand.
    #[must_use]
    pub fn with_api_key(mut self, key: ApiKeyContext) -> Self {
        self.api_key = Some(key);
        self
    }

    /// The API key an authorizer chose (API Gateway's AUTHORIZER key
    /// source), read by the API-key layer.
    #[must_use]
    pub fn usage_identifier_key(&self) -> Option<&UsageIdentifierKey> {
        self.usage_identifier_key.as_ref()
    }

    /// Sets the API key an authorizer chose.
    pub fn set_usage_identifier_key(&mut self, key: UsageIdentifierKey) -> &mut Self {
        self.usage_identifier_key = Some(key);
        self
    }

    /// The labels WAF rules added; empty when no WAF ran or no rule added
    /// one.
    #[must_use]
    pub fn waf_labels(&self) -> &WafLabels {
        &self.waf_labels
    }

    /// The WAF labels, to add to.
    pub fn waf_labels_mut(&mut self) -> &mut WafLabels {
        &mut self.waf_labels
    }

    /// The gateway-response overrides refusals of this request render with
    /// (installed by [`GatewayResponsesLayer`](crate::GatewayResponsesLayer)).
    #[must_use]
    pub fn gateway_responses(&self) -> Option<&GatewayResponses> {
        self.gateway_responses.as_ref()
    }

    /// Sets the gateway-response overrides.
    pub fn set_gateway_responses(&mut self, responses: GatewayResponses) -> &mut Self {
        self.gateway_responses = Some(responses);
        self
    }

    /// The record the request's span keeps, if a span is open.
    pub(crate) fn record(&self) -> Option<&RequestRecord> {
        self.record.as_ref()
    }

    /// Sets the record the request's span keeps.
    pub(crate) fn set_record(&mut self, record: RequestRecord) {
        self.record = Some(record);
    }
}

/// Reads and writes the [`RequestContext`] of a request, its parts or its
/// extensions.
///
/// The readers return `None` when no layer wrote the fact;
/// [`request_context_mut`](Self::request_context_mut) inserts an empty
/// context the first time, so a layer used alone works the same as one in a
/// full stack.
pub trait RequestContextExt {
    /// The request's context, if a layer inserted one.
    fn request_context(&self) -> Option<&RequestContext>;

    /// The request's context, inserted empty if there was none.
    fn request_context_mut(&mut self) -> &mut RequestContext;

    /// The authenticated caller.
    fn caller(&self) -> Option<&Caller> {
        self.request_context().and_then(RequestContext::caller)
    }

    /// The accepted API key.
    fn api_key(&self) -> Option<&ApiKeyContext> {
        self.request_context().and_then(RequestContext::api_key)
    }

    /// The WAF's labels, if a WAF added any.
    fn waf_labels(&self) -> Option<&WafLabels> {
        self.request_context()
            .map(RequestContext::waf_labels)
            .filter(|labels| !labels.is_empty())
    }

    /// The resolved client address.
    fn client_ip(&self) -> Option<IpAddr> {
        self.request_context().and_then(RequestContext::client_ip)
    }

    /// The request's id.
    fn request_id(&self) -> Option<&str> {
        self.request_context().and_then(RequestContext::request_id)
    }
}

impl RequestContextExt for Extensions {
    #[inline]
    fn request_context(&self) -> Option<&RequestContext> {
        self.get::<RequestContext>()
    }

    #[inline]
    fn request_context_mut(&mut self) -> &mut RequestContext {
        self.get_or_insert_default::<RequestContext>()
    }
}

impl<B> RequestContextExt for Request<B> {
    #[inline]
    fn request_context(&self) -> Option<&RequestContext> {
        self.extensions().request_context()
    }

    #[inline]
    fn request_context_mut(&mut self) -> &mut RequestContext {
        self.extensions_mut().request_context_mut()
    }
}

impl RequestContextExt for http::request::Parts {
    #[inline]
    fn request_context(&self) -> Option<&RequestContext> {
        self.extensions.request_context()
    }

    #[inline]
    fn request_context_mut(&mut self) -> &mut RequestContext {
        self.extensions.request_context_mut()
    }
}

#[cfg(feature = "axum")]
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts.request_context().cloned().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::AuthMethod;

    #[test]
    fn layers_write_into_one_extension() {
        let mut request = Request::new(());
        assert!(request.request_context().is_none());
        assert!(request.caller().is_none() && request.api_key().is_none());

        request
            .request_context_mut()
            .set_caller(Caller::new("user-1", AuthMethod::Jwt));
        request
            .request_context_mut()
            .set_api_key(ApiKeyContext::new("k-1"));
        request.request_context_mut().waf_labels_mut().add("a:b");
        request
            .request_context_mut()
            .set_client_ip(IpAddr::from([192, 0, 2, 1]));

        assert_eq!(request.extensions().len(), 1);
        assert_eq!(request.caller().map(Caller::principal), Some("user-1"));
        assert_eq!(request.api_key().map(ApiKeyContext::key_id), Some("k-1"));
        assert!(request.waf_labels().is_some_and(|l| l.contains("a:b")));
        assert_eq!(request.client_ip(), Some(IpAddr::from([192, 0, 2, 1])));
        assert!(request.request_id().is_none());
    }

    #[cfg(feature = "axum")]
    #[tokio::test]
    async fn the_axum_extractor_reads_the_context_or_an_empty_one() {
        use axum::extract::FromRequestParts;

        let (mut parts, ()) = Request::new(()).into_parts();
        let empty = RequestContext::from_request_parts(&mut parts, &())
            .await
            .unwrap_or_else(|never| match never {});
        assert!(empty.caller().is_none());

        parts
            .request_context_mut()
            .set_caller(Caller::new("user-2", AuthMethod::Iam));
        let read = RequestContext::from_request_parts(&mut parts, &())
            .await
            .unwrap_or_else(|never| match never {});
        assert_eq!(read.caller().map(Caller::principal), Some("user-2"));
    }

    #[test]
    fn no_labels_reads_as_none() {
        let mut request = Request::new(());
        request.request_context_mut();
        assert!(request.waf_labels().is_none());
        request.request_context_mut().waf_labels_mut().add("x:y");
        assert_eq!(request.waf_labels().map(WafLabels::len), Some(1));
    }
}
