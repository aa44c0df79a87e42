use super::*;
use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};

fn plain() -> Request<()> {
    Request::new(())
}

fn grpc() -> Request<()> {
    Request::builder()
        .header(CONTENT_TYPE, "application/grpc+proto")
        .body(())
        .expect("valid request")
}

fn json(response: &Response<Bytes>) -> serde_json::Value {
    serde_json::from_slice(response.body()).expect("gateway responses are JSON")
}

/// API Gateway's defaults, written out independently of the table in `kind.rs`
/// (API Gateway developer guide, "Gateway response types").
const EXPECTED: &[(GatewayResponseType, u16, &str, &str)] = &[
    (
        GatewayResponseType::MissingAuthenticationToken,
        403,
        "Missing Authentication Token",
        "MissingAuthenticationTokenException",
    ),
    (
        GatewayResponseType::InvalidApiKey,
        403,
        "Forbidden",
        "ForbiddenException",
    ),
    (
        GatewayResponseType::AccessDenied,
        403,
        "User is not authorized to access this resource",
        "AccessDeniedException",
    ),
    (
        GatewayResponseType::Unauthorized,
        401,
        "Unauthorized",
        "UnauthorizedException",
    ),
    (
        GatewayResponseType::ExpiredToken,
        403,
        "The security token included in the request is expired",
        "ExpiredTokenException",
    ),
    (
        GatewayResponseType::InvalidSignature,
        403,
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        "InvalidSignatureException",
    ),
    (
        GatewayResponseType::WafFiltered,
        403,
        "Forbidden",
        "WAFFilteredException",
    ),
    (
        GatewayResponseType::Throttled,
        429,
        "Too Many Requests",
        "TooManyRequestsException",
    ),
    (
        GatewayResponseType::QuotaExceeded,
        429,
        "Limit Exceeded",
        "LimitExceededException",
    ),
    (
        GatewayResponseType::RequestTooLarge,
        413,
        "Request Too Long",
        "RequestTooLargeException",
    ),
    (
        GatewayResponseType::AuthorizerFailure,
        500,
        "Internal server error",
        "AuthorizerFailureException",
    ),
    (
        GatewayResponseType::AuthorizerConfigurationError,
        500,
        "Internal server error",
        "AuthorizerConfigurationException",
    ),
    (
        GatewayResponseType::ApiConfigurationError,
        500,
        "Internal server error",
        "InternalServerErrorException",
    ),
    (
        GatewayResponseType::Default4xx,
        400,
        "Bad Request",
        "BadRequestException",
    ),
    (
        GatewayResponseType::Default5xx,
        500,
        "Internal server error",
        "InternalServerErrorException",
    ),
];

#[test]
fn every_type_renders_api_gateways_defaults() {
    for (kind, status, message, error_type) in EXPECTED {
        let response = GatewayResponse::new(*kind).render(&plain());
        assert_eq!(response.status().as_u16(), *status, "{kind}");
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "application/json",
            "{kind}"
        );
        assert_eq!(
            response.headers()["x-amzn-ErrorType"],
            *error_type,
            "{kind}"
        );
        assert_eq!(
            json(&response),
            serde_json::json!({ "message": message }),
            "{kind}"
        );
    }
}

#[test]
fn every_type_has_a_status_message_and_error_type() {
    for kind in GatewayResponseType::ALL {
        let response = GatewayResponse::new(*kind).render(&plain());
        assert!(
            response.status().is_client_error() || response.status().is_server_error(),
            "{kind}"
        );
        assert!(!kind.default_message().is_empty(), "{kind}");
        assert!(kind.error_type().ends_with("Exception"), "{kind}");
    }
}

#[test]
fn per_instance_messages_and_error_types() {
    let denied = GatewayResponse::new(GatewayResponseType::AccessDenied).with_message(
        messages::iam_access_denied(
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:execute-api:us-east-1:123456789012:a1b2c3/prod/GET/loyalty",
            true,
        ),
    );
    let response = denied.render(&plain());
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        json(&response)["message"],
        "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:us-east-1:123456789012:a1b2c3/prod/GET/loyalty with an explicit deny"
    );

    let unknown_key = GatewayResponse::new(GatewayResponseType::InvalidSignature)
        .with_message(messages::UNRECOGNIZED_CLIENT)
        .with_error_type(messages::UNRECOGNIZED_CLIENT_ERROR_TYPE);
    let response = unknown_key.render(&plain());
    assert_eq!(
        response.headers()["x-amzn-errortype"],
        "UnrecognizedClientException"
    );
    assert_eq!(
        json(&response)["message"],
        "The security token included in the request is invalid."
    );
}

#[test]
fn messages_are_json_escaped() {
    let response = GatewayResponse::new(GatewayResponseType::Unauthorized)
        .with_message("quote \" backslash \\ newline \n")
        .render(&plain());
    assert_eq!(
        json(&response)["message"],
        "quote \" backslash \\ newline \n"
    );
}

#[test]
fn layer_headers_survive_rendering() {
    let refusal = GatewayResponse::new(GatewayResponseType::Throttled)
        .with_header(RETRY_AFTER, HeaderValue::from_static("2"))
        .with_header(
            HeaderName::from_static("ratelimit"),
            HeaderValue::from_static("\"plan\";r=0;t=2"),
        );
    for request in [plain(), grpc()] {
        let response = refusal.render(&request);
        assert_eq!(response.headers()[RETRY_AFTER], "2");
        assert_eq!(response.headers()["ratelimit"], "\"plan\";r=0;t=2");
    }
    let unauthorized = GatewayResponse::new(GatewayResponseType::Unauthorized)
        .with_header(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
        .render(&plain());
    assert_eq!(unauthorized.headers()[WWW_AUTHENTICATE], "Bearer");
}

#[test]
fn grpc_requests_get_a_grpc_status() {
    let cases = [
        (GatewayResponseType::Unauthorized, "16", "Unauthorized"),
        (GatewayResponseType::InvalidApiKey, "7", "Forbidden"),
        (GatewayResponseType::Throttled, "8", "Too%20Many%20Requests"),
        (GatewayResponseType::QuotaExceeded, "8", "Limit%20Exceeded"),
        (
            GatewayResponseType::RequestTooLarge,
            "8",
            "Request%20Too%20Long",
        ),
        (
            GatewayResponseType::AuthorizerFailure,
            "13",
            "Internal%20server%20error",
        ),
    ];
    for (kind, code, message) in cases {
        let response = GatewayResponse::new(kind).render(&grpc());
        assert_eq!(response.status(), StatusCode::OK, "{kind}");
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "application/grpc",
            "{kind}"
        );
        assert_eq!(response.headers()["grpc-status"], code, "{kind}");
        assert_eq!(response.headers()["grpc-message"], message, "{kind}");
        assert!(response.body().is_empty(), "{kind}");
    }
}

#[test]
fn overrides_change_status_headers_and_body() {
    let overrides = GatewayResponses::new().with(
        GatewayResponseType::Throttled,
        ResponseOverride::new()
            .status_code(StatusCode::SERVICE_UNAVAILABLE)
            .header(HeaderName::from_static("x-team"), HeaderValue::from_static("payments"))
            .body_template(BodyTemplate::json(
                r#"{"error":{"type":"$context.error.responseType","text":$context.error.messageString}}"#,
            )),
    );
    let mut request = plain();
    request
        .request_context_mut()
        .set_gateway_responses(overrides.clone());
    let response = GatewayResponse::new(GatewayResponseType::Throttled)
        .with_header(RETRY_AFTER, HeaderValue::from_static("1"))
        .render(&request);
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["x-team"], "payments");
    assert_eq!(response.headers()[RETRY_AFTER], "1");
    assert_eq!(
        response.headers()["x-amzn-errortype"],
        "TooManyRequestsException"
    );
    assert_eq!(
        json(&response),
        serde_json::json!({"error": {"type": "THROTTLED", "text": "Too Many Requests"}})
    );

    // Other types are untouched.
    let other = GatewayResponse::new(GatewayResponseType::QuotaExceeded).render(&request);
    assert_eq!(other.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        json(&other),
        serde_json::json!({"message": "Limit Exceeded"})
    );

    // A gRPC client sees the overridden status as its code.
    let mut grpc_request = grpc();
    grpc_request
        .request_context_mut()
        .set_gateway_responses(overrides);
    let response = GatewayResponse::new(GatewayResponseType::Throttled).render(&grpc_request);
    assert_eq!(response.headers()["grpc-status"], "14");
    assert_eq!(response.headers()["x-team"], "payments");
}

#[test]
fn default_4xx_and_5xx_overrides_apply_to_types_without_their_own() {
    let overrides = GatewayResponses::new()
        .with(
            GatewayResponseType::Default4xx,
            ResponseOverride::new()
                .status_code(StatusCode::IM_A_TEAPOT)
                .header(
                    HeaderName::from_static("x-class"),
                    HeaderValue::from_static("4xx"),
                )
                .body_template(BodyTemplate::json(
                    r#"{"oops":$context.error.messageString}"#,
                )),
        )
        .with(
            GatewayResponseType::Default5xx,
            ResponseOverride::new().header(
                HeaderName::from_static("x-class"),
                HeaderValue::from_static("5xx"),
            ),
        )
        .with(
            GatewayResponseType::QuotaExceeded,
            ResponseOverride::new().header(
                HeaderName::from_static("x-own"),
                HeaderValue::from_static("1"),
            ),
        );
    let mut request = plain();
    request
        .request_context_mut()
        .set_gateway_responses(overrides);

    let throttled = GatewayResponse::new(GatewayResponseType::Throttled).render(&request);
    // The status stays the type's own: a DEFAULT_4XX status applies to DEFAULT_4XX only.
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.headers()["x-class"], "4xx");
    assert_eq!(
        json(&throttled),
        serde_json::json!({"oops": "Too Many Requests"})
    );

    let failure = GatewayResponse::new(GatewayResponseType::AuthorizerFailure).render(&request);
    assert_eq!(failure.headers()["x-class"], "5xx");
    assert_eq!(
        json(&failure),
        serde_json::json!({"message": "Internal server error"})
    );

    // A type with its own override does not also take the fallback's.
    let quota = GatewayResponse::new(GatewayResponseType::QuotaExceeded).render(&request);
    assert_eq!(quota.headers()["x-own"], "1");
    assert!(quota.headers().get("x-class").is_none());
    assert_eq!(
        json(&quota),
        serde_json::json!({"message": "Limit Exceeded"})
    );

    let default = GatewayResponse::new(GatewayResponseType::Default4xx).render(&request);
    assert_eq!(default.status(), StatusCode::IM_A_TEAPOT);
}

#[test]
fn a_custom_body_and_status_win_over_overrides() {
    let overrides = GatewayResponses::new().with(
        GatewayResponseType::WafFiltered,
        ResponseOverride::new()
            .status_code(StatusCode::NOT_FOUND)
            .body_template(BodyTemplate::json("{}")),
    );
    let mut request = plain();
    request
        .request_context_mut()
        .set_gateway_responses(overrides);
    let response = GatewayResponse::new(GatewayResponseType::WafFiltered)
        .with_status(StatusCode::TOO_MANY_REQUESTS)
        .with_body(HeaderValue::from_static("text/plain"), "slow down")
        .render(&request);
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()[CONTENT_TYPE], "text/plain");
    assert_eq!(response.body().as_ref(), b"slow down");
    assert_eq!(
        response.headers()["x-amzn-errortype"],
        "WAFFilteredException"
    );
}

#[test]
fn configured_overrides_render() {
    let overrides: GatewayResponses = serde_json::from_str(
        r#"{"INVALID_API_KEY": {"status": 401, "headers": {"www-authenticate": "ApiKey"},
             "template": "key refused: $context.error.message", "content_type": "text/plain"}}"#,
    )
    .expect("valid configuration");
    let response = GatewayResponse::new(GatewayResponseType::InvalidApiKey)
        .render_with(Some(&overrides), false);
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()[WWW_AUTHENTICATE], "ApiKey");
    assert_eq!(response.headers()[CONTENT_TYPE], "text/plain");
    assert_eq!(response.body().as_ref(), b"key refused: Forbidden");
}

#[test]
fn display_and_debug_show_the_type_and_message() {
    let refusal = GatewayResponse::new(GatewayResponseType::Throttled);
    assert_eq!(refusal.to_string(), "THROTTLED: Too Many Requests");
    assert!(format!("{refusal:?}").contains("Throttled"));
}
