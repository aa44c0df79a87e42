//! Portcullis in a plain hyper 1 server (hyper-util, no framework).
//!
//! [`config/gateway.toml`](https://github.com/portcullis-rs/portcullis/blob/main/examples/hyper-server/config/gateway.toml)
//! describes the gateway: a WAF web ACL, one usage plan (1 request per
//! second, bursts of 2, 5 a day) and a partner's API key. The facade builds
//! the whole stack from it as one layer, in API Gateway's order (WAF, API
//! key, throttle, quota), and [`serve`] puts it in front of the loyalty
//! handler, leaving `/health` open. Each connection's peer address goes into
//! the request extensions as [`PeerAddr`], where the WAF and the throttle
//! look for the client's IP.

use std::convert::Infallible;
use std::path::Path;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use portcullis::config::ConfigFileError;
use portcullis::core::client_ip::PeerAddr;
use portcullis::core::clock::SharedClock;
use portcullis::core::context::ApiKeyContext;
use portcullis::core::context::RequestContextExt;
use portcullis::{Boxed, BoxedStack, Gateway, GatewayBody, box_body};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};

/// The gateway configuration shipped with the example.
pub const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/gateway.toml");

/// The demo partner's API key (in [`CONFIG`]). A demo secret, published on
/// purpose.
pub const DEMO_API_KEY: &str = "HyperPartnerDemoKey0123456789";

/// Builds the gateway described by the configuration file at `path`, on
/// `clock` (the system clock in production, a manual one in tests).
///
/// # Errors
///
/// [`ConfigFileError`] naming the file and the bad field.
pub fn gateway(path: impl AsRef<Path>, clock: SharedClock) -> Result<Gateway, ConfigFileError> {
    Gateway::builder_from_file(path)?.clock(clock).build()
}

const MEMBERS: &[(&str, u64, &str)] = &[
    ("C-1001", 12_400, "SILVER"),
    ("C-1002", 58_250, "GOLD"),
    ("C-1003", 2_150, "BLUE"),
];

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// The application: `GET /loyalty/{customerId}` answers a member's points.
/// It runs only once every layer has let the request through.
async fn loyalty(request: Request<GatewayBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    let customer_id = request.uri().path().strip_prefix("/loyalty/");
    let member = customer_id.and_then(|id| MEMBERS.iter().find(|(m, ..)| *m == id));
    let response = match (request.method(), member) {
        (&Method::GET, Some(&(id, points, tier))) => {
            // The API-key layer left the key it accepted in the extensions.
            let partner = request.api_key().map(ApiKeyContext::key_id);
            json(
                StatusCode::OK,
                &serde_json::json!({"customerId": id, "points": points, "tier": tier, "partner": partner}),
            )
        }
        _ => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"message": "Not Found"}),
        ),
    };
    Ok(response)
}

/// The loyalty handler behind the whole stack.
type Protected = Boxed<BoxedStack<Infallible>>;

/// `/health` as is, everything else through the stack.
async fn route(
    protected: Protected,
    request: Request<Incoming>,
) -> Result<Response<GatewayBody>, Infallible> {
    if request.uri().path() == "/health" {
        let ok = json(StatusCode::OK, &serde_json::json!({"status": "ok"}));
        return Ok(ok.map(box_body));
    }
    protected.oneshot(request).await
}

/// Serves on `listener` until accepting a connection fails: `/health` as is,
/// everything else behind `gateway`'s stack.
///
/// # Errors
///
/// The error of `accept`.
pub async fn serve(listener: TcpListener, gateway: Gateway) -> std::io::Result<()> {
    // Built once: every connection's clone shares the buckets and counters.
    let protected = ServiceBuilder::new()
        .layer(gateway.layer())
        .service_fn(loyalty);
    loop {
        let (stream, peer) = listener.accept().await?;
        let protected = protected.clone();
        let service = service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(PeerAddr(peer));
            route(protected.clone(), request)
        });
        tokio::spawn(async move {
            // A connection's error (the client went away) ends that connection only.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
