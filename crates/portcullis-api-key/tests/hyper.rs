//! The layer in a plain hyper server, called by a hyper client over
//! 127.0.0.1.

// Test code: helper functions outside `#[test]` unwrap too.
#![allow(clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portcullis_api_key::{ApiKeys, NewApiKey};
use portcullis_core::context::RequestContextExt;
use tower::ServiceBuilder;

async fn serve(keys: &ApiKeys) -> SocketAddr {
    let layer = keys.layer("a1b2c3d4e5", "prod");
    portcullis_test_support::serve::serve(move |_peer| {
        ServiceBuilder::new().layer(layer.clone()).service_fn(
            |request: Request<Incoming>| async move {
                let key = request.api_key().cloned();
                let body = key.map_or_else(String::new, |k| k.key_id().to_owned());
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
            },
        )
    })
    .await
}

async fn send(addr: SocketAddr, key: Option<&str>) -> (StatusCode, String) {
    let mut builder = Request::get(format!("http://{addr}/loyalty/42"));
    if let Some(key) = key {
        builder = builder.header("x-api-key", key);
    }
    let request = builder.body(Empty::<Bytes>::new()).unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn a_plain_hyper_server_requires_the_key() {
    let keys = ApiKeys::new();
    keys.put_usage_plan(common::plan("basic", common::STAGE))
        .await
        .unwrap();
    let created = keys
        .create(NewApiKey::new().id("hyper").usage_plan("basic"))
        .await
        .unwrap();
    let addr = serve(&keys).await;

    assert_eq!(
        send(addr, Some(created.value.expose())).await,
        (StatusCode::OK, "hyper".to_owned())
    );
    assert_eq!(
        send(addr, None).await,
        (
            StatusCode::FORBIDDEN,
            r#"{"message":"Forbidden"}"#.to_owned()
        )
    );
    keys.delete("hyper").await.unwrap();
    assert_eq!(
        send(addr, Some(created.value.expose())).await.0,
        StatusCode::FORBIDDEN
    );
}
