use std::convert::Infallible;

use tower::{ServiceBuilder, ServiceExt};

use super::*;
use crate::GatewayResponse;
use crate::context::{ApiKeyContext, RequestContext};

fn is_uuid_v4(id: &str) -> bool {
    let bytes = id.as_bytes();
    id.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *b == b'-'
            } else {
                b.is_ascii_digit() || (b'a'..=b'f').contains(b)
            }
        })
        && bytes[14] == b'4'
        && matches!(bytes[19], b'8' | b'9' | b'a' | b'b')
}

#[test]
fn ids_are_version_4_uuids_and_differ() {
    let (a, extended) = new_request_id();
    let (b, _) = new_request_id();
    assert!(is_uuid_v4(&a), "{a}");
    assert_ne!(a, b);
    assert_eq!(extended.len(), 13);
    assert!(extended.ends_with('='));
    assert!(extended[..12].bytes().all(|b| b.is_ascii_alphanumeric()));
}

#[test]
fn refusals_are_known_by_their_error_type_and_status() {
    let request = Request::new(());
    let throttled = GatewayResponse::new(GatewayResponseType::Throttled).render(&request);
    assert_eq!(
        refusal_type(&throttled),
        Some(GatewayResponseType::Throttled)
    );
    let invalid = GatewayResponse::new(GatewayResponseType::InvalidApiKey).render(&request);
    assert_eq!(
        refusal_type(&invalid),
        Some(GatewayResponseType::InvalidApiKey)
    );
    assert_eq!(refusal_type(&Response::new(())), None);
}

/// What the echo service saw: the request's id, and whether it had a
/// record.
type Seen = Option<(Arc<str>, bool)>;

async fn echo(request: Request<()>) -> Result<Response<Seen>, Infallible> {
    let context = request.request_context();
    let id = context.and_then(RequestContext::request_id_arc).cloned();
    let record = context.and_then(RequestContext::record).is_some();
    Ok(Response::new(id.map(|id| (id, record))))
}

/// A subscriber that wants every span, and keeps nothing.
struct Everything(std::sync::atomic::AtomicU64);

impl tracing::Subscriber for Everything {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let next = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::span::Id::from_u64(next + 1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn the_response_carries_the_id_the_request_had() {
    let _subscriber =
        tracing::subscriber::set_default(Everything(std::sync::atomic::AtomicU64::new(0)));
    for layer in [RequestSpanLayer::new(), RequestSpanLayer::ids_only()] {
        let service = ServiceBuilder::new().layer(layer.clone()).service_fn(echo);
        let response = service.oneshot(Request::new(())).await.expect("infallible");
        let (id, record) = response.body().clone().expect("the request had an id");
        assert!(is_uuid_v4(&id), "{id}");
        assert_eq!(response.headers()[X_AMZN_REQUEST_ID], &*id);
        // A record only where a span (one a subscriber wants) is there to
        // record on.
        assert_eq!(record, !layer.ids_only, "{layer:?}");
    }
}

#[tokio::test]
async fn an_inner_request_span_keeps_the_outer_id() {
    let service = ServiceBuilder::new()
        .layer(RequestSpanLayer::new())
        .layer(RequestSpanLayer::new())
        .service_fn(echo);
    let response = service.oneshot(Request::new(())).await.expect("infallible");
    let (id, _) = response.body().clone().expect("the request had an id");
    assert_eq!(response.headers()[X_AMZN_REQUEST_ID], &*id);
    assert_eq!(
        response.headers().get_all(X_AMZN_REQUEST_ID).iter().count(),
        1
    );
}

#[test]
fn record_context_copies_the_api_key() {
    let mut request = Request::new(());
    let opened = open(&mut request);
    assert!(opened.record().api_key().is_none());
    request
        .request_context_mut()
        .set_api_key(ApiKeyContext::new("k-1"));
    record_context(&request);
    assert_eq!(
        opened.record().api_key().map(|k| k.key_id().to_owned()),
        Some("k-1".to_owned())
    );
    assert!(!opened.record().waf_seen());
    assert_eq!(request.request_id(), Some(&**opened.id()));
    assert_eq!(request.extensions().len(), 1);
}
