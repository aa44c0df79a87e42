//! [`ThrottleRefusal`]: why the layer refused a request.

use portcullis_core::path::PathRefusal;
use portcullis_core::refusal::Refusal;
use portcullis_core::{GatewayResponse, GatewayResponseType};

use crate::store::Level;

/// Why [`Throttle`](crate::Throttle) refused a request. The refusal's
/// response carries it in its extensions, so an outer layer, a test or the
/// application can tell why without parsing the body.
///
/// ```
/// use portcullis_core::GatewayResponseType;
/// use portcullis_core::refusal::Refusal;
/// use portcullis_throttle::{Level, ThrottleRefusal};
///
/// let refusal = ThrottleRefusal::BucketEmpty(Level::Key);
/// assert_eq!(refusal.gateway_response().kind(), GatewayResponseType::Throttled);
/// assert_eq!(refusal.detail(), "bucket_empty");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ThrottleRefusal {
    /// The bucket of this level had no token: THROTTLED (429).
    BucketEmpty(Level),
    /// The store failed and the layer refuses on store errors
    /// ([`OnStoreError::Refuse`](portcullis_core::store::OnStoreError::Refuse)):
    /// API_CONFIGURATION_ERROR (500).
    StoreFailed,
    /// The request's path has no canonical form, and a per-method limit had
    /// to be matched against it.
    NonCanonicalPath(PathRefusal),
}

impl Refusal for ThrottleRefusal {
    fn gateway_response(&self) -> GatewayResponse {
        match self {
            ThrottleRefusal::BucketEmpty(_) => GatewayResponse::new(GatewayResponseType::Throttled),
            ThrottleRefusal::StoreFailed => {
                GatewayResponse::new(GatewayResponseType::ApiConfigurationError)
            }
            ThrottleRefusal::NonCanonicalPath(refusal) => refusal.gateway_response(),
        }
    }

    fn detail(&self) -> &'static str {
        match self {
            ThrottleRefusal::BucketEmpty(_) => "bucket_empty",
            ThrottleRefusal::StoreFailed => "store_error",
            ThrottleRefusal::NonCanonicalPath(_) => "non_canonical_path",
        }
    }
}
