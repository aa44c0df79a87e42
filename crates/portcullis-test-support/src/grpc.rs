//! A real tonic server and client for a layer's gRPC tests: the standard
//! health service served behind the layer on a free loopback port, and
//! `Check` calls carrying metadata, whose refusals arrive as
//! [`tonic::Status`].
//!
//! ```
//! use portcullis_test_support::grpc::{check, health, health_client, serve};
//! use tower::layer::util::Identity;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let address = serve(Identity::new(), health()).await;
//! let mut client = health_client(address).await;
//! check(&mut client, "", [("x-api-key", "abc")])
//!     .await
//!     .expect("no layer refuses");
//! let status = check(&mut client, "unknown.Service", [])
//!     .await
//!     .expect_err("the health service knows no such service");
//! assert_eq!(status.code(), tonic::Code::NotFound);
//! # }
//! ```

use std::error::Error as StdError;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use tonic::body::Body;
use tonic::client::GrpcService;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower_layer::Layer;
use tower_service::Service;

type BoxError = Box<dyn StdError + Send + Sync>;

/// tonic's standard health service, reporting every service serving under
/// `""`, as routes for [`serve`].
#[must_use]
pub fn health() -> Routes {
    let (_reporter, health) = tonic_health::server::health_reporter();
    Routes::new(health)
}

/// Serves `routes` ([`health`], or the test's own) behind `layer`, on
/// `127.0.0.1` at a free port, and returns its address. Several layers
/// compose with `tower::ServiceBuilder`, the first added outermost, as
/// `Server::builder().layer(..).layer(..)` does.
///
/// # Panics
///
/// If no loopback port can be bound; the server task panics if it fails.
pub async fn serve<L, ResBody>(layer: L, routes: Routes) -> SocketAddr
where
    L: Layer<Routes> + Clone + Send + 'static,
    L::Service: Service<Request<Body>, Response = Response<ResBody>> + Clone + Send + 'static,
    <L::Service as Service<Request<Body>>>::Future: Send,
    <L::Service as Service<Request<Body>>>::Error: Into<BoxError> + Send,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let (listener, address) = crate::serve::listener().await;
    tokio::spawn(async move {
        Server::builder()
            .layer(layer)
            .add_routes(routes)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
            .expect("the tonic server runs");
    });
    address
}

/// A channel to the server at `address`, connected.
///
/// # Panics
///
/// If it cannot connect.
pub async fn channel(address: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{address}"))
        .expect("a socket address makes a valid endpoint")
        .connect()
        .await
        .expect("connects to the test server")
}

/// A health client of the server at `address`, connected.
///
/// # Panics
///
/// If it cannot connect.
pub async fn health_client(address: SocketAddr) -> HealthClient<Channel> {
    HealthClient::new(channel(address).await)
}

/// Calls `Check` for `service` (`""`: the server as a whole) with
/// `metadata` (name and value pairs: an array, an `Option`, ...), and
/// returns the status of a refusal.
///
/// # Panics
///
/// If a metadata name or value is not valid ASCII metadata: a test's setup
/// is wrong.
pub async fn check<'a, T>(
    client: &mut HealthClient<T>,
    service: &str,
    metadata: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), tonic::Status>
where
    T: GrpcService<Body>,
    T::Error: Into<BoxError>,
    T::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
{
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: service.to_owned(),
    });
    for (name, value) in metadata {
        request.metadata_mut().insert(
            MetadataKey::from_bytes(name.as_bytes()).expect("a valid metadata name"),
            MetadataValue::try_from(value).expect("an ASCII metadata value"),
        );
    }
    client.check(request).await.map(|_| ())
}
