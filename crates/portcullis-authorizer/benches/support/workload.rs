//! The workload the criterion bench (`benches/cache_hit.rs`) and the
//! `authorizer_hot_path` program share: a TOKEN request, and a layer whose
//! authorizer allows it with a two-statement policy, on a manual clock so
//! the cached answer never expires.

use http::Request;
use portcullis_authorizer::{
    Authorizer, AuthorizerError, AuthorizerEvent, AuthorizerLayer, AuthorizerResponse,
};
use portcullis_core::clock::ManualClock;
use portcullis_iam::PolicyDocument;

/// The request: the same token every time, so every call after the first is
/// a cache hit.
pub(crate) fn request() -> Request<()> {
    Request::get("/pets/7")
        .header(
            "authorization",
            "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.c2lnbmF0dXJl",
        )
        .header("user-agent", "bench/1.0")
        .body(())
        .expect("valid request")
}

/// The layer: an authorizer that answers at once, allowing `GET` and
/// denying `DELETE`, with a context value.
pub(crate) fn layer() -> AuthorizerLayer<impl Authorizer> {
    let policy = PolicyDocument::from_json(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:*:*:*/*/GET/*"},
            {"Effect":"Deny","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:*:*:*/*/DELETE/*"}]}"#,
    )
    .expect("valid policy");
    let authorizer = move |_event: AuthorizerEvent| {
        let policy = policy.clone();
        async move {
            Ok::<_, AuthorizerError>(
                AuthorizerResponse::new("user-42", policy).with_context("tier", "gold"),
            )
        }
    };
    AuthorizerLayer::token(authorizer).clock(ManualClock::at_unix(1_800_000_000))
}
