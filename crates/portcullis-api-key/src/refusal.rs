//! [`ApiKeyRefusal`]: why the layer refused a request, and how a refusal is
//! recorded in traces and metrics.

use portcullis_core::refusal::Refusal;
use portcullis_core::{GatewayResponse, GatewayResponseType};
use tracing::Span;

/// Why the layer refused a request. Every refusal is API Gateway's
/// INVALID_API_KEY (403 `Forbidden`), except [`ApiKeyRefusal::StoreFailed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ApiKeyRefusal {
    /// No key: no header, an empty one, or no `UsageIdentifierKey`.
    Missing,
    /// A key that cannot be valid: not 20 to 128 alphanumeric characters, or
    /// the header given twice. It is refused without being hashed.
    Malformed,
    /// No key has this value.
    Unknown,
    /// The key is disabled.
    Disabled,
    /// The key is in no usage plan for the layer's stage. API Gateway admits
    /// a key only on the stages of the usage plans it is in, so a key created
    /// and not yet added to a plan is refused with 403 `Forbidden`. See
    /// [`ApiKeyLayer::require_usage_plan`](crate::ApiKeyLayer::require_usage_plan).
    NoUsagePlan,
    /// The store failed: API_CONFIGURATION_ERROR (500 `Internal server
    /// error`). The layer fails closed.
    StoreFailed,
}

impl ApiKeyRefusal {
    /// The type of the gateway response the layer answers with.
    fn kind(self) -> GatewayResponseType {
        match self {
            ApiKeyRefusal::StoreFailed => GatewayResponseType::ApiConfigurationError,
            _ => GatewayResponseType::InvalidApiKey,
        }
    }
}

impl Refusal for ApiKeyRefusal {
    /// API Gateway's INVALID_API_KEY (403), or API_CONFIGURATION_ERROR (500)
    /// when the store failed.
    fn gateway_response(&self) -> GatewayResponse {
        GatewayResponse::new(self.kind())
    }

    /// A short name for logs and metrics (`missing`, `malformed`, `unknown`,
    /// `disabled`, `no_usage_plan`, `store_failed`).
    fn detail(&self) -> &'static str {
        match self {
            ApiKeyRefusal::Missing => "missing",
            ApiKeyRefusal::Malformed => "malformed",
            ApiKeyRefusal::Unknown => "unknown",
            ApiKeyRefusal::Disabled => "disabled",
            ApiKeyRefusal::NoUsagePlan => "no_usage_plan",
            ApiKeyRefusal::StoreFailed => "store_failed",
        }
    }
}

pub(crate) fn record_refusal(refusal: ApiKeyRefusal, span: &Span) {
    let decision = refusal.decision();
    decision.record(span);
    // Literal labels on every arm: the metric key is static and costs no
    // allocation.
    match refusal {
        ApiKeyRefusal::Missing => {
            metrics::counter!("portcullis_api_key_decisions_total", "outcome" => "refused", "reason" => "INVALID_API_KEY").increment(1);
        }
        ApiKeyRefusal::Malformed => {
            metrics::counter!("portcullis_api_key_decisions_total", "outcome" => "refused", "reason" => "INVALID_API_KEY").increment(1);
        }
        ApiKeyRefusal::Unknown => {
            metrics::counter!("portcullis_api_key_decisions_total", "outcome" => "refused", "reason" => "INVALID_API_KEY").increment(1);
        }
        ApiKeyRefusal::Disabled => {
            metrics::counter!("portcullis_api_key_decisions_total", "outcome" => "refused", "reason" => "INVALID_API_KEY").increment(1);
        }
        ApiKeyRefusal::NoUsagePlan => {
            metrics::counter!("portcullis_api_key_decisions_total", "outcome" => "refused", "reason" => "INVALID_API_KEY").increment(1);
        }
        ApiKeyRefusal::StoreFailed => {
            metrics::counter!("portcullis_api_key_decisions_total", "outcome" => "refused", "reason" => "API_CONFIGURATION_ERROR").increment(1);
        }
    }
    if !matches!(
        refusal,
        ApiKeyRefusal::Disabled | ApiKeyRefusal::NoUsagePlan | ApiKeyRefusal::StoreFailed
    ) {
        tracing::debug!(
            layer = "api_key",
            outcome = decision.outcome().as_str(),
            reason = decision.reason(),
            detail = refusal.detail(),
            "API key refused"
        );
    }
}
