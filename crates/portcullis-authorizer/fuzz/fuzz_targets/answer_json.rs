//! An authorizer's answer (what the HTTP adapter reads from the network):
//! parsing never panics, and a parsed answer goes through the layer without
//! panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_authorizer::{AuthorizerEvent, AuthorizerLayer, AuthorizerResponse};
use tower::{ServiceBuilder, ServiceExt};

fuzz_target!(|data: &[u8]| {
    let Ok(answer) = AuthorizerResponse::from_slice(data) else {
        return;
    };
    let authorizer = move |_event: AuthorizerEvent| {
        let answer = answer.clone();
        async move { Ok(answer) }
    };
    let service = ServiceBuilder::new()
        .layer(AuthorizerLayer::token(authorizer).result_ttl_seconds(0))
        .service_fn(|_request: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
        });
    let request = http::Request::get("/fuzz")
        .header("authorization", "token")
        .body(())
        .expect("valid request");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let response = runtime
        .block_on(service.oneshot(request))
        .expect("infallible");
    assert!(matches!(response.status().as_u16(), 200 | 403 | 500));
});
