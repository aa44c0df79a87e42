//! What the layer leaves behind when it refuses: the rendered refusal with
//! its [`RefusalInfo`], and the span, event and metrics of the decision.

use std::time::Duration;

use bytes::Bytes;
use http::Response;
use portcullis_core::response::GatewayResponses;
use portcullis_core::trace::Decision;
use portcullis_core::{GatewayResponse, GatewayResponseType};
use tracing::Span;

/// A refusal this crate made, left in the response extensions for the
/// access log (`$context.error.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusalInfo {
    /// The response type.
    pub kind: GatewayResponseType,
    /// The message.
    pub message: String,
}

pub(crate) fn refuse<RB: From<Bytes>>(
    refusal: &GatewayResponse,
    overrides: Option<&GatewayResponses>,
    grpc: bool,
) -> Response<RB> {
    let mut response = refusal.render_with(overrides, grpc).map(RB::from);
    response.extensions_mut().insert(RefusalInfo {
        kind: refusal.kind(),
        message: refusal.message().to_owned(),
    });
    response
}

/// `portcullis_openapi_decision_seconds`: the time a decision took.
pub(crate) fn record_seconds(spent: Duration) {
    metrics::histogram!("portcullis_openapi_decision_seconds").record(spent.as_secs_f64());
}

/// The span, event and counter of a refusal.
pub(crate) fn record_refusal(refusal: &GatewayResponse, detail: &'static str, span: &Span) {
    let decision = Decision::refused(refusal.kind()).with_detail(detail);
    decision.record(span);
    // Entered, not given as the event's parent, since a span no subscriber
    // wants would make the event a root, outside the request's span.
    let _entered = span.enter();
    tracing::info!(
        layer = "openapi",
        outcome = decision.outcome().as_str(),
        reason = decision.reason(),
        detail = decision.detail(),
        "request refused"
    );
    metrics::counter!("portcullis_openapi_decisions_total", "outcome" => "refused", "reason" => refusal.kind().as_str())
        .increment(1);
}
