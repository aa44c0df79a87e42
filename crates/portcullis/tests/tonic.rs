//! The composed stack in a real tonic server (the standard health service),
//! called by a real tonic client over 127.0.0.1: refusals arrive as gRPC
//! statuses.

use std::net::SocketAddr;

use portcullis::Gateway;
use portcullis::config::Config;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const KEY: &str = "GrpcKey0123456789abcdefghij";

async fn serve(gateway: &Gateway) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let (_reporter, health) = tonic_health::server::health_reporter();
    let layer = gateway.layer();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .expect("server runs");
    });
    addr
}

async fn check(addr: SocketAddr, key: Option<&str>) -> Result<(), tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connects");
    let mut client = HealthClient::new(channel);
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    if let Some(key) = key {
        request
            .metadata_mut()
            .insert("x-api-key", MetadataValue::try_from(key).expect("ascii"));
    }
    client.check(request).await.map(|_| ())
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
