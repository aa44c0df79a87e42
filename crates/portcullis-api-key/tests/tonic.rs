//! The layer in a real tonic server (the standard health service), called by
//! a real tonic client over 127.0.0.1.

// Test code: helper functions outside `#[test]` unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use portcullis_api_key::{ApiKeys, NewApiKey};
use portcullis_test_support::grpc::{self, health_client};
use tonic::Code;

async fn serve(keys: &ApiKeys) -> SocketAddr {
    grpc::serve(keys.layer("a1b2c3d4e5", "prod"), grpc::health()).await
}

async fn check(addr: SocketAddr, key: Option<&str>) -> Result<(), tonic::Status> {
    let mut client = health_client(addr).await;
    grpc::check(&mut client, "", key.map(|key| ("x-api-key", key))).await
}

#[tokio::test]
async fn a_tonic_client_is_refused_without_a_valid_key() {
    let keys = ApiKeys::new();
    keys.put_usage_plan(common::plan("basic", common::STAGE))
        .await
        .unwrap();
    let created = keys
        .create(NewApiKey::new().id("grpc").usage_plan("basic"))
        .await
        .unwrap();
    let addr = serve(&keys).await;

    check(addr, Some(created.value.expose()))
        .await
        .expect("a valid key is let through");

    let status = check(addr, None).await.expect_err("no key");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "Forbidden");

    let status = check(addr, Some("NotAKeyAnybodyIssued0000"))
        .await
        .expect_err("unknown key");
    assert_eq!(status.code(), Code::PermissionDenied);

    // Rotated while the server runs.
    let new_value = keys.rotate("grpc").await.unwrap();
    let status = check(addr, Some(created.value.expose()))
        .await
        .expect_err("the old value after rotation");
    assert_eq!(status.code(), Code::PermissionDenied);
    check(addr, Some(new_value.expose()))
        .await
        .expect("the new value is let through");
}
