//! The composed stack in a real tonic server (the standard health service),
//! called by a real tonic client over 127.0.0.1: refusals arrive as gRPC
//! statuses.

use std::net::SocketAddr;

use portcullis::Gateway;
use portcullis::config::Config;
use portcullis_test_support::grpc::{self, health_client};
use tonic::Code;

const KEY: &str = "GrpcKey0123456789abcdefghij";

async fn serve(gateway: &Gateway) -> SocketAddr {
    grpc::serve(gateway.layer(), grpc::health()).await
}

async fn check(addr: SocketAddr, key: Option<&str>) -> Result<(), tonic::Status> {
    let mut client = health_client(addr).await;
    grpc::check(&mut client, "", key.map(|key| ("x-api-key", key))).await
}

#[tokio::test]
async fn grpc_clients_get_grpc_statuses_from_the_composed_stack() {
    let config = Config::from_toml(&format!(
        r#"
        [gateway]
        region = "us-east-1"
        account_id = "123456789012"
        api_id = "a1b2c3d4e5"
        stage = "prod"
        [[usage_plans]]
        id = "grpc"
        throttle = {{ rate_limit = 0.001, burst_limit = 2 }}
        [[api_keys]]
        id = "grpc-key"
        value = "{KEY}"
        usage_plans = ["grpc"]
        "#
    ))
    .unwrap();
    let gateway = Gateway::builder(config).build().unwrap();
    let addr = serve(&gateway).await;

    let status = check(addr, None).await.expect_err("no key");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "Forbidden");

    check(addr, Some(KEY)).await.expect("first of the burst");
    check(addr, Some(KEY)).await.expect("second of the burst");
    let status = check(addr, Some(KEY)).await.expect_err("throttled");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(status.message(), "Too Many Requests");
}
