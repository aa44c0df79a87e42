//! [`Refusal`]: the one shape of a layer's reason for refusing a request.
//!
//! Every layer has its own reasons (an unknown API key, an expired token, a
//! signature that does not match, an empty bucket), and every reason maps to
//! one of API Gateway's gateway responses. The trait says so once:
//!
//! - [`gateway_response`](Refusal::gateway_response): what the client sees;
//! - [`detail`](Refusal::detail): the layer's finer reason, in `snake_case`,
//!   as the [`trace`](crate::trace) vocabulary records it;
//! - [`decision`](Refusal::decision): both, as the layer's span records them.
//!
//! [`Refusal::into_response`] renders the refusal and leaves the reason in the
//! response's extensions, so an outer layer, a test or the application can
//! tell *why* without parsing the body.
//!
//! ```
//! use http::{Request, StatusCode};
//! use portcullis_core::refusal::Refusal;
//! use portcullis_core::{GatewayResponse, GatewayResponseType};
//!
//! #[derive(Clone, Copy, Debug, PartialEq, Eq)]
//! enum KeyRefusal {
//!     Unknown,
//! }
//!
//! impl Refusal for KeyRefusal {
//!     fn gateway_response(&self) -> GatewayResponse {
//!         GatewayResponse::new(GatewayResponseType::InvalidApiKey)
//!     }
//!     fn detail(&self) -> &'static str {
//!         "unknown"
//!     }
//! }
//!
//! let request = Request::new(());
//! let response = KeyRefusal::Unknown.into_response::<_, ()>(&request);
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! assert_eq!(response.extensions().get::<KeyRefusal>(), Some(&KeyRefusal::Unknown));
//! assert_eq!(KeyRefusal::Unknown.decision().detail(), Some("unknown"));
//!
//! // The same, for a request already split into its parts.
//! let (parts, ()) = Request::new(()).into_parts();
//! let response = KeyRefusal::Unknown.into_response_parts::<()>(&parts);
//! assert_eq!(response.extensions().get::<KeyRefusal>(), Some(&KeyRefusal::Unknown));
//! ```

use http::request::Parts;
use http::{Request, Response};

use crate::body::ResponseBody;
use crate::response::GatewayResponse;
use crate::trace::Decision;

/// A layer's reason for refusing a request.
pub trait Refusal: Clone + Send + Sync + 'static {
    /// The gateway response the client sees.
    fn gateway_response(&self) -> GatewayResponse;

    /// The finer reason, in `snake_case` (`unknown`, `expired`,
    /// `bucket_empty`), recorded as the span's `detail`.
    fn detail(&self) -> &'static str;

    /// The decision the layer's span records: refused, with the gateway
    /// response's type as the reason and [`detail`](Self::detail).
    fn decision(&self) -> Decision {
        Decision::refused(self.gateway_response().kind()).with_detail(self.detail())
    }

    /// The refusal rendered for `request` (as JSON, or as a gRPC status to a
    /// gRPC client), with `self` in the response's extensions.
    fn into_response<ReqBody, ResBody>(
        self,
        request: &Request<ReqBody>,
    ) -> Response<ResponseBody<ResBody>>
    where
        Self: Sized,
    {
        let mut response = self.gateway_response().into_response(request);
        response.extensions_mut().insert(self);
        response
    }

    /// [`into_response`](Self::into_response) for a request already split
    /// into its parts (a layer that decides after reading the body, or after
    /// awaiting a store, holds only the parts).
    fn into_response_parts<ResBody>(self, parts: &Parts) -> Response<ResponseBody<ResBody>>
    where
        Self: Sized,
    {
        let mut response = self
            .gateway_response()
            .render_parts(parts)
            .map(ResponseBody::rejection);
        response.extensions_mut().insert(self);
        response
    }
}
