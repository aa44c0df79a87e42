//! Serving a Tower service over HTTP/1 on a free loopback port, the way a
//! user's server would, for tests that use a real client.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let address = portcullis_test_support::serve::serve(|_peer| {
//!     tower::service_fn(|_request: http::Request<hyper::body::Incoming>| async {
//!         Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(
//!             bytes::Bytes::from_static(b"hello"),
//!         )))
//!     })
//! })
//! .await;
//! let mut stream = tokio::net::TcpStream::connect(address).await.expect("connects");
//! stream
//!     .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
//!     .await
//!     .expect("writes");
//! let mut response = String::new();
//! stream.read_to_string(&mut response).await.expect("reads");
//! assert!(response.starts_with("HTTP/1.1 200 OK"));
//! assert!(response.ends_with("hello"));
//! # }
//! ```

use std::error::Error as StdError;
use std::net::SocketAddr;

use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower_service::Service;

/// A listener on `127.0.0.1` at a free port, and its address: for a server
/// the test runs itself (`axum::serve`, a proxy, the program under test).
///
/// # Panics
///
/// If no loopback port can be bound.
pub async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free loopback port");
    let address = listener
        .local_addr()
        .expect("a bound listener has an address");
    (listener, address)
}

/// Serves on `127.0.0.1` at a free port, and returns its address.
///
/// `make` builds the service for each connection from the peer's address.
/// The server runs on the current Tokio runtime until it shuts down.
///
/// # Panics
///
/// If no loopback port can be bound.
pub async fn serve<M, S, B>(make: M) -> SocketAddr
where
    M: Fn(SocketAddr) -> S + Send + 'static,
    S: Service<http::Request<Incoming>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let (listener, address) = listener().await;
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let service = TowerToHyperService::new(make(peer));
            tokio::spawn(async move {
                // A client that goes away mid-request ends its connection;
                // the test sees that through its own client.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}
