//! The layer in a real tonic server on 127.0.0.1:0, serving tonic-health, and
//! a real tonic client decoding the refusal as RESOURCE_EXHAUSTED.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use portcullis_core::clock::ManualClock;
use portcullis_core::context::ApiKeyContext;
use portcullis_core::context::RequestContextExt;
use portcullis_core::plan::{QuotaPeriod, QuotaSettings, UsagePlan};
use portcullis_quota::QuotaLayer;
use portcullis_test_support::grpc::{self, health_client};
use tonic::Code;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceBuilder;
use tower::util::MapRequestLayer;

async fn serve(clock: ManualClock) -> SocketAddr {
    let plan = Arc::new(
        UsagePlan::new("grpc")
            .expect("test setup")
            .with_quota(QuotaSettings::new(2, QuotaPeriod::Day).expect("test setup")),
    );
    // Stands in for the API-key layer: the key id is the `x-api-key` metadata.
    let api_key = MapRequestLayer::new(move |mut request: Request<tonic::body::Body>| {
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
    let layers = ServiceBuilder::new()
        .layer(api_key)
        .layer(QuotaLayer::new().clock(clock))
        .into_inner();
    grpc::serve(layers, grpc::health()).await
}

async fn check(
    client: &mut HealthClient<tonic::transport::Channel>,
    key: &str,
) -> Result<(), tonic::Status> {
    portcullis_test_support::grpc::check(client, "", [("x-api-key", key)]).await
}

#[tokio::test]
async fn a_tonic_client_sees_resource_exhausted_past_the_quota() {
    let clock = ManualClock::at(time::macros::datetime!(2026-11-23 23:00 UTC));
    let addr = serve(clock.clone()).await;
    let mut client = health_client(addr).await;

    check(&mut client, "k").await.unwrap();
    check(&mut client, "k").await.unwrap();
    let status = check(&mut client, "k").await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(status.message(), "Limit Exceeded");
    assert_eq!(status.metadata().get("retry-after").unwrap(), "3600");
    // The IETF draft's convention, the default (the older trio is opt-in).
    assert_eq!(
        status.metadata().get("ratelimit").unwrap(),
        r#""quota";r=0;t=3600"#
    );
    assert!(status.metadata().get("ratelimit-remaining").is_none());
    assert_eq!(
        status.metadata().get("x-amzn-errortype").unwrap(),
        "LimitExceededException"
    );

    // Another key is unaffected, and the quota resets at 00:00 UTC.
    check(&mut client, "other").await.unwrap();
    clock.advance(Duration::from_secs(3600));
    check(&mut client, "k").await.unwrap();
}
