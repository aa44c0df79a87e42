//! The layer's metrics: every decision counted in
//! `portcullis_authorizer_decisions_total` by outcome and reason, and timed
//! in `portcullis_authorizer_decision_seconds`, whichever path decided it
//! (before the authorizer, a call to it, a cached answer).

use std::convert::Infallible;

use http::{Request, Response, StatusCode};
use portcullis_authorizer::{
    AuthorizerError, AuthorizerEvent, AuthorizerLayer, AuthorizerResponse,
};
use portcullis_iam::PolicyDocument;
use portcullis_test_support::metrics::{CapturedMetrics, with_recorder};
use tower::{ServiceBuilder, ServiceExt};

fn policy(effect: &str) -> PolicyDocument {
    PolicyDocument::from_json(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"{effect}","Action":"execute-api:Invoke","Resource":"arn:aws:execute-api:*:*:*/*/*/*"}}]}}"#
    ))
    .expect("valid policy")
}

async fn answer(event: AuthorizerEvent) -> Result<AuthorizerResponse, AuthorizerError> {
    let token = match &event {
        AuthorizerEvent::Token(t) => t.authorization_token.clone(),
        AuthorizerEvent::Request(_) => String::new(),
    };
    match token.as_str() {
        "allow" => Ok(AuthorizerResponse::new("user-1", policy("Allow"))),
        "deny" => Ok(AuthorizerResponse::new("user-2", policy("Deny"))),
        _ => Err(AuthorizerError::failed("boom")),
    }
}

async fn ok(_: Request<String>) -> Result<Response<String>, Infallible> {
    Ok(Response::new(String::new()))
}

fn get(token: Option<&str>) -> Request<String> {
    let mut builder = Request::get("/pets");
    if let Some(token) = token {
        builder = builder.header("authorization", token);
    }
    builder.body(String::new()).expect("valid request")
}

#[test]
fn every_decision_is_counted_and_timed() {
    let recorder = CapturedMetrics::default();
    with_recorder(&recorder, async {
        let service = ServiceBuilder::new()
            .layer(AuthorizerLayer::token(answer))
            .service_fn(ok);
        // A call to the authorizer, then the cached answer, a deny, a
        // failure and no token at all.
        for (token, status) in [
            (Some("allow"), StatusCode::OK),
            (Some("allow"), StatusCode::OK),
            (Some("deny"), StatusCode::FORBIDDEN),
            (Some("fail"), StatusCode::INTERNAL_SERVER_ERROR),
            (None, StatusCode::UNAUTHORIZED),
        ] {
            let response = service
                .clone()
                .oneshot(get(token))
                .await
                .expect("infallible");
            assert_eq!(response.status(), status, "{token:?}");
        }
    });
    let counter = "portcullis_authorizer_decisions_total";
    for (outcome, reason, count) in [
        ("allowed", "OK", 2.0),
        ("refused", "ACCESS_DENIED", 1.0),
        ("refused", "AUTHORIZER_FAILURE", 1.0),
        ("refused", "UNAUTHORIZED", 1.0),
    ] {
        assert_eq!(
            recorder.counted(counter, &[("outcome", outcome), ("reason", reason)]),
            count,
            "{outcome} {reason}"
        );
    }
    // One sample per decision.
    recorder.assert_durations("portcullis_authorizer_decision_seconds", 5);
}
