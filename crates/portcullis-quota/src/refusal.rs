//! [`QuotaRefusal`]: why the layer refused a request.

use portcullis_core::refusal::Refusal;
use portcullis_core::{GatewayResponse, GatewayResponseType};

/// Why [`Quota`](crate::Quota) refused a request. The refusal's response
/// carries it in its extensions, so an outer layer, a test or the
/// application can tell why without parsing the body.
///
/// ```
/// use portcullis_core::GatewayResponseType;
/// use portcullis_core::refusal::Refusal;
/// use portcullis_quota::QuotaRefusal;
///
/// let refusal = QuotaRefusal::Exceeded;
/// assert_eq!(refusal.gateway_response().kind(), GatewayResponseType::QuotaExceeded);
/// assert_eq!(refusal.detail(), "quota_exhausted");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuotaRefusal {
    /// Nothing remains of the key's quota in this period: QUOTA_EXCEEDED
    /// (429).
    Exceeded,
    /// The store failed and the layer refuses on store errors
    /// ([`OnStoreError::Refuse`](crate::OnStoreError::Refuse)):
    /// API_CONFIGURATION_ERROR (500).
    StoreFailed,
}

impl Refusal for QuotaRefusal {
    fn gateway_response(&self) -> GatewayResponse {
        GatewayResponse::new(match self {
            QuotaRefusal::Exceeded => GatewayResponseType::QuotaExceeded,
            QuotaRefusal::StoreFailed => GatewayResponseType::ApiConfigurationError,
        })
    }

    fn detail(&self) -> &'static str {
        match self {
            QuotaRefusal::Exceeded => "quota_exhausted",
            QuotaRefusal::StoreFailed => "store_error",
        }
    }
}
