//! The layer in a plain hyper server, called by a hyper client over
//! 127.0.0.1.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portcullis_core::clock::ManualClock;
use portcullis_core::context::ApiKeyContext;
use portcullis_core::context::RequestContextExt;
use portcullis_core::plan::{QuotaPeriod, QuotaSettings, UsagePlan};
use portcullis_quota::QuotaLayer;
use tower::ServiceBuilder;
use tower::util::MapRequestLayer;

async fn serve(layer: QuotaLayer) -> SocketAddr {
    let plan = Arc::new(
        UsagePlan::new("hyper")
            .expect("valid id")
            .with_quota(QuotaSettings::new(2, QuotaPeriod::Month).expect("valid quota")),
    );
    portcullis_test_support::serve::serve(move |_peer| {
        let plan = plan.clone();
        // Stands in for the API-key layer: `x-api-key` is the key id.
        let api_key = MapRequestLayer::new(move |mut request: Request<Incoming>| {
            let key = request
                .headers()
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if let Some(key) = key {
                request
                    .request_context_mut()
                    .set_api_key(ApiKeyContext::new(key).with_usage_plan(plan.clone()));
            }
            request
        });
        ServiceBuilder::new()
            .layer(api_key)
            .layer(layer.clone())
            .service_fn(|_: Request<Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"points"))))
            })
    })
    .await
}

async fn send(addr: SocketAddr, key: &str) -> (StatusCode, Option<String>, String) {
    let request = Request::get(format!("http://{addr}/loyalty/42"))
        .header("x-api-key", key)
        .body(Empty::<Bytes>::new())
        .expect("valid request");
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.expect("server answers");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        retry_after,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn a_plain_hyper_server_enforces_the_monthly_quota() {
    // 2028-02-29 23:00: the month ends in an hour.
    let clock = ManualClock::at(time::macros::datetime!(2028-02-29 23:00 UTC));
    let addr = serve(QuotaLayer::new().clock(clock.clone())).await;

    for _ in 0..2 {
        assert_eq!(
            send(addr, "k").await,
            (StatusCode::OK, None, "points".to_owned())
        );
    }
    assert_eq!(
        send(addr, "k").await,
        (
            StatusCode::TOO_MANY_REQUESTS,
            Some("3600".to_owned()),
            r#"{"message":"Limit Exceeded"}"#.to_owned()
        )
    );
    clock.advance(Duration::from_secs(3600));
    assert_eq!(send(addr, "k").await.0, StatusCode::OK);
}
