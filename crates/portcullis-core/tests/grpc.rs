//! Gateway responses rendered for gRPC, decoded by a real tonic client.
//!
//! A tonic server runs the standard health service behind a layer that refuses
//! every call with the gateway-response type named in the `x-reject-as`
//! metadata, the way any Portcullis layer refuses.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response};
use portcullis_core::future::ResponseFuture;
use portcullis_core::response::{GatewayResponses, ResponseOverride};
use portcullis_core::{GatewayResponse, GatewayResponseType, GatewayResponsesLayer, ResponseBody};
use portcullis_test_support::grpc::{self, health_client};
use tonic::Code;
use tower::{Layer, Service, ServiceBuilder};

#[derive(Clone)]
struct RejectLayer;

impl<S> Layer<S> for RejectLayer {
    type Service = Reject<S>;
    fn layer(&self, inner: S) -> Reject<S> {
        Reject { inner }
    }
}

#[derive(Clone)]
struct Reject<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Reject<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let kind = request
            .headers()
            .get("x-reject-as")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<GatewayResponseType>().ok());
        match kind {
            Some(kind) => {
                let refusal = GatewayResponse::new(kind)
                    .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("3"));
                ResponseFuture::answered(refusal.into_response(&request))
            }
            None => ResponseFuture::inner(self.inner.call(request)),
        }
    }
}

async fn serve(overrides: GatewayResponses) -> SocketAddr {
    let layers = ServiceBuilder::new()
        .layer(GatewayResponsesLayer::new(overrides))
        .layer(RejectLayer)
        .into_inner();
    grpc::serve(layers, grpc::health()).await
}

async fn call(addr: SocketAddr, reject_as: Option<&str>) -> Result<(), tonic::Status> {
    let mut client = health_client(addr).await;
    grpc::check(&mut client, "", reject_as.map(|kind| ("x-reject-as", kind))).await
}

#[tokio::test]
async fn a_tonic_client_decodes_each_refusal() {
    let addr = serve(GatewayResponses::new()).await;

    call(addr, None).await.expect("an allowed call succeeds");

    let cases = [
        ("UNAUTHORIZED", Code::Unauthenticated, "Unauthorized"),
        (
            "MISSING_AUTHENTICATION_TOKEN",
            Code::PermissionDenied,
            "Missing Authentication Token",
        ),
        ("INVALID_API_KEY", Code::PermissionDenied, "Forbidden"),
        (
            "ACCESS_DENIED",
            Code::PermissionDenied,
            "User is not authorized to access this resource",
        ),
        ("WAF_FILTERED", Code::PermissionDenied, "Forbidden"),
        ("THROTTLED", Code::ResourceExhausted, "Too Many Requests"),
        ("QUOTA_EXCEEDED", Code::ResourceExhausted, "Limit Exceeded"),
        (
            "REQUEST_TOO_LARGE",
            Code::ResourceExhausted,
            "Request Too Long",
        ),
        (
            "AUTHORIZER_FAILURE",
            Code::Internal,
            "Internal server error",
        ),
    ];
    for (kind, code, message) in cases {
        let status = call(addr, Some(kind)).await.expect_err(kind);
        assert_eq!(status.code(), code, "{kind}");
        assert_eq!(status.message(), message, "{kind}");
        assert_eq!(
            status
                .metadata()
                .get("retry-after")
                .map(|v| v.to_str().ok()),
            Some(Some("3")),
            "{kind}: layer headers reach the client"
        );
        assert_eq!(
            status
                .metadata()
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok()),
            Some(
                GatewayResponseType::ALL
                    .iter()
                    .find(|t| t.as_str() == kind)
                    .expect("known type")
                    .error_type()
            ),
        );
    }
}

#[tokio::test]
async fn overrides_reach_grpc_clients() {
    let overrides = GatewayResponses::new().with(
        GatewayResponseType::Throttled,
        ResponseOverride::new().status_code(http::StatusCode::SERVICE_UNAVAILABLE),
    );
    let addr = serve(overrides).await;
    let status = call(addr, Some("THROTTLED")).await.expect_err("refused");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "Too Many Requests");
}

#[test]
fn infallible_is_the_error_of_a_rejecting_service_fn() {
    // The gateway response renders without the inner service: the error type
    // of a layered service_fn stays the inner one.
    let response: Result<_, Infallible> =
        Ok(GatewayResponse::new(GatewayResponseType::Throttled).render(&Request::new(())));
    assert_eq!(response.map(|r| r.status().as_u16()), Ok(429));
}
