//! The shared vocabulary of Portcullis, the Tower middleware that gives any
//! `tower::Service` the access controls of Amazon API Gateway, Cognito and AWS
//! WAF.
//!
//! Every Portcullis layer depends on this crate and on no other layer. They
//! meet through what is defined here:
//!
//! - [`response`]: API Gateway's gateway responses. A layer refuses a request
//!   by rendering a [`GatewayResponse`], as `{"message": ...}` with
//!   `x-amzn-ErrorType`, or as a gRPC status for gRPC requests, with the
//!   overrides the application set once through [`GatewayResponsesLayer`].
//! - [`body`] and [`future`]: the response body and future that let a layer
//!   refuse without knowing the inner service's body type, and without boxing.
//! - [`context`]: what layers leave in the request extensions: the
//!   authenticated [`Caller`](context::Caller), the
//!   [`ApiKeyContext`](context::ApiKeyContext), WAF labels.
//! - [`config`]: the one [`ConfigError`](config::ConfigError) of every crate,
//!   a dotted path and a message.
//! - [`refusal`]: the [`Refusal`](refusal::Refusal) trait every layer's
//!   reason type implements: its gateway response and its `detail`.
//! - [`store`]: the one fast-path shape of a store,
//!   [`Answer::Ready`](store::Answer) or `Pending`, and the one policy for a
//!   store that fails, [`OnStoreError`](store::OnStoreError).
//! - [`plan`]: the usage-plan model (throttle, quota, per-method overrides).
//! - [`clock`]: the injected [`Clock`](clock::Clock), with a manual clock for
//!   tests.
//! - [`client_ip`]: the one client-IP resolver, which trusts forwarding
//!   headers only from configured proxies.
//! - [`path`]: the one [`CanonicalPath`](path::CanonicalPath) of a request,
//!   which every decision that names a resource reads (IAM ARNs, authorizer
//!   method ARNs, per-method settings, routes), with its rules.
//! - [`resource`]: the [`ApiResource`](resource::ApiResource) a routing layer
//!   matched the request to (`/loyalty/{proxy+}` and its path parameters),
//!   which per-method settings and REQUEST authorizers read when present.
//! - [`request_span`]: the request's own span, `portcullis.request`, and
//!   its id, sent back as `x-amzn-RequestId`.
//! - [`trace`]: the one `tracing` vocabulary of every layer's decision, and
//!   [`layer_span!`], the span each layer opens around it.
//!
//! # Example
//!
//! A refusal rendered by a stand-in for a layer, with an override installed
//! once for the whole stack:
//!
//! ```
//! use http::{Request, StatusCode};
//! use portcullis_core::{GatewayResponse, GatewayResponseType, GatewayResponses, GatewayResponsesLayer};
//! use portcullis_core::response::{BodyTemplate, ResponseOverride};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let overrides = GatewayResponses::new().with(
//!     GatewayResponseType::Default4xx,
//!     ResponseOverride::new().body_template(BodyTemplate::json(
//!         r#"{"error":$context.error.messageString,"type":"$context.error.responseType"}"#,
//!     )),
//! );
//! let service = ServiceBuilder::new()
//!     .layer(GatewayResponsesLayer::new(overrides))
//!     .service_fn(|request: Request<()>| async move {
//!         // What a layer does when it refuses.
//!         let refusal = GatewayResponse::new(GatewayResponseType::InvalidApiKey);
//!         Ok::<_, std::convert::Infallible>(refusal.render(&request))
//!     });
//!
//! let response = service.oneshot(Request::new(())).await.unwrap();
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! assert_eq!(response.headers()["x-amzn-errortype"], "ForbiddenException");
//! assert_eq!(response.body().as_ref(), br#"{"error":"Forbidden","type":"INVALID_API_KEY"}"#);
//!
//! // The same refusal to a gRPC client is a gRPC status.
//! let grpc = Request::builder().header("content-type", "application/grpc").body(()).unwrap();
//! let response = GatewayResponse::new(GatewayResponseType::Throttled).render(&grpc);
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(response.headers()["grpc-status"], "8");
//! # }
//! ```
//!
//! # Features
//!
//! - `axum`: the client-IP resolver reads axum's `ConnectInfo<SocketAddr>`.
//! - `tonic`: the client-IP resolver reads tonic's `TcpConnectInfo`.

pub mod body;
pub mod client_ip;
pub mod clock;
pub mod config;
pub mod context;
pub mod future;
pub mod hash;
pub mod path;
pub mod plan;
pub mod ratelimit;
pub mod refusal;
pub mod request_span;
pub mod resource;
pub mod response;
pub mod store;
pub mod trace;

/// Writes `get_ref`, `get_mut` and `into_inner` for a service whose wrapped
/// service is its `inner` field, as tower-http's services have them.
///
/// ```
/// pub struct Logging<S> {
///     inner: S,
/// }
///
/// impl<S> Logging<S> {
///     portcullis_core::inner_service_accessors!();
/// }
///
/// let mut service = Logging { inner: 7 };
/// *service.get_mut() += 1;
/// assert_eq!(*service.get_ref(), 8);
/// assert_eq!(service.into_inner(), 8);
/// ```
#[macro_export]
macro_rules! inner_service_accessors {
    () => {
        /// The inner service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The inner service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Consumes this service, returning the inner one.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}

pub use body::ResponseBody;
pub use response::{GatewayResponse, GatewayResponseType, GatewayResponses, GatewayResponsesLayer};
