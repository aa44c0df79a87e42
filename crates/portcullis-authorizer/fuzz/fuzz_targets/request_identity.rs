//! Untrusted request parts (path, query, headers) through a REQUEST
//! authorizer: reading identity sources and building the event never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_authorizer::{
    AuthorizerError, AuthorizerEvent, AuthorizerLayer, AuthorizerResponse, IdentitySource,
};
use portcullis_iam::PolicyDocument;
use tower::{ServiceBuilder, ServiceExt};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut pieces = text.splitn(3, '\n');
    let path_and_query = pieces.next().unwrap_or("");
    let header = pieces.next().unwrap_or("");
    let Ok(uri) = format!("/{path_and_query}").parse::<http::Uri>() else {
        return;
    };
    let mut request = http::Request::get(uri);
    if let Ok(value) = http::HeaderValue::from_bytes(header.as_bytes()) {
        request = request.header("x-id", value.clone()).header("x-id", value);
    }
    let Ok(request) = request.body(()) else {
        return;
    };
    let authorizer = |event: AuthorizerEvent| async move {
        let _ = serde_json_len(&event);
        Ok::<_, AuthorizerError>(AuthorizerResponse::new(
            "p",
            PolicyDocument::from_json(
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
            )
            .expect("valid policy"),
        ))
    };
    let sources = [
        "method.request.header.x-id",
        "method.request.querystring.q",
        "context.path",
    ]
    .map(|s| s.parse::<IdentitySource>().expect("valid source"));
    let service = ServiceBuilder::new()
        .layer(AuthorizerLayer::request(authorizer, sources))
        .service_fn(|_request: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
        });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let response = runtime
        .block_on(service.oneshot(request))
        .expect("infallible");
    assert!(matches!(response.status().as_u16(), 200 | 401));
});

fn serde_json_len(event: &AuthorizerEvent) -> usize {
    format!("{event:?}").len()
}
