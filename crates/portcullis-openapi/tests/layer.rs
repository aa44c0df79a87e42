//! The layer, driven by definitions from the API Gateway developer guide, in
//! axum apps.
#![allow(clippy::unwrap_used, missing_docs)]

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::any;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use portcullis_core::config::ConfigError;
use portcullis_core::context::RequestContextExt;
use portcullis_core::context::{ApiKeyContext, AuthMethod, Caller};
use portcullis_core::path::PathRefusal;
use portcullis_core::refusal::Refusal;
use portcullis_core::resource::ApiResource;
use portcullis_core::{GatewayResponse, GatewayResponseType, ResponseBody};
use portcullis_openapi::{ApiDefinition, OpenApiLayer, OpenApiRefusal, RefusalInfo, Route};
use tower::ServiceExt;
use tower::layer::layer_fn;
use tower::service_fn;
use tower::util::BoxCloneSyncService;

type Check = fn(&mut Request<Body>) -> Result<(), GatewayResponseType>;

/// A stand-in for a Portcullis protection layer (this crate may not depend
/// on the real ones): it runs `check`, which leaves what a real layer would
/// in the extensions, or refuses with a core gateway response.
fn stand_in(
    check: Check,
) -> impl tower_layer::Layer<
    Route<Body, Body, Infallible>,
    Service = BoxCloneSyncService<Request<Body>, Response<ResponseBody<Body>>, Infallible>,
> + Clone {
    layer_fn(move |inner: Route<Body, Body, Infallible>| {
        BoxCloneSyncService::new(service_fn(move |mut request: Request<Body>| {
            let inner = inner.clone();
            async move {
                match check(&mut request) {
                    Ok(()) => Ok(inner.oneshot(request).await?.map(ResponseBody::inner)),
                    Err(kind) => Ok(GatewayResponse::new(kind).into_response(&request)),
                }
            }
        }))
    })
}

fn api_key(request: &mut Request<Body>) -> Result<(), GatewayResponseType> {
    if request
        .headers()
        .get("x-api-key")
        .is_some_and(|k| k == "a-valid-key-0123456789")
    {
        request
            .request_context_mut()
            .set_api_key(ApiKeyContext::new("key-1"));
        Ok(())
    } else {
        Err(GatewayResponseType::InvalidApiKey)
    }
}

fn bearer(request: &mut Request<Body>) -> Result<(), GatewayResponseType> {
    // `Bearer <sub> <scope>...`
    let value = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
        .ok_or(GatewayResponseType::Unauthorized)?;
    let mut parts = value.split(' ');
    let sub = parts.next().unwrap_or_default().to_owned();
    let caller = Caller::new(sub, AuthMethod::Jwt).with_scopes(parts.map(str::to_owned));
    request.request_context_mut().set_caller(caller);
    Ok(())
}

fn signed(request: &mut Request<Body>) -> Result<(), GatewayResponseType> {
    if request
        .headers()
        .get("authorization")
        .is_some_and(|v| v.as_bytes().starts_with(b"AWS4-HMAC-SHA256"))
    {
        request.request_context_mut().set_caller(Caller::new(
            "arn:aws:iam::123456789012:user/alice",
            AuthMethod::Iam,
        ));
        Ok(())
    } else {
        Err(GatewayResponseType::MissingAuthenticationToken)
    }
}

/// A stand-in that admits without authenticating: the layer must fail closed.
fn careless(_: &mut Request<Body>) -> Result<(), GatewayResponseType> {
    Ok(())
}

fn load(name: &str) -> ApiDefinition {
    let bytes = std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    ApiDefinition::from_slice(&bytes).unwrap()
}

fn app(layer: OpenApiLayer<Body, Body, Infallible>) -> Router {
    Router::new()
        .route("/{*rest}", any(|| async { "from the app" }))
        .route("/", any(|| async { "root" }))
        .layer(layer)
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, http::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

fn validation_app() -> Router {
    let layer = OpenApiLayer::builder(load("validation-sample.json"))
        .api_key(stand_in(api_key))
        .build()
        .unwrap();
    app(layer)
}

#[tokio::test]
async fn request_validation_follows_the_guides_sample() {
    let app = validation_app();
    let key = "a-valid-key-0123456789";
    // GET inherits the API's `params-only` validator: q1 is required.
    let (status, headers, body) = send(
        &app,
        Request::get("/validation")
            .header("x-api-key", key)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(headers["x-amzn-errortype"], "BadRequestException");
    assert_eq!(
        body,
        r#"{"message":"Missing required request parameters: [q1]"}"#
    );
    let (status, _, body) = send(
        &app,
        Request::get("/validation?q1=cat")
            .header("x-api-key", key)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "from the app"));
    // A blank value is missing too.
    let (status, _, _) = send(
        &app,
        Request::get("/validation?q1=")
            .header("x-api-key", key)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);

    // POST uses `all`: header h1 and the RequestBodyModel.
    let post = |h1: Option<&str>, body: &str| {
        let mut builder = Request::post("/validation")
            .header("x-api-key", key)
            .header("content-type", "application/json");
        if let Some(h1) = h1 {
            builder = builder.header("h1", h1);
        }
        builder.body(Body::from(body.to_owned())).unwrap()
    };
    let good = r#"{"name":"Rex","type":"dog","price":100}"#;
    let (status, _, body) = send(&app, post(None, good)).await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::BAD_REQUEST,
            r#"{"message":"Missing required request parameters: [h1]"}"#
        )
    );
    let (status, _, body) = send(&app, post(Some("v"), good)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "from the app"));
    for bad in [
        r#"{"name":"Rex","type":"bird","price":100}"#,
        r#"{"name":"Rex","type":"dog","price":10}"#,
        r#"{"type":"dog","price":100}"#,
        "not json",
    ] {
        let (status, headers, body) = send(&app, post(Some("v"), bad)).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body, r#"{"message":"Invalid request body"}"#);
        assert_eq!(headers["x-amzn-errortype"], "BadRequestException");
    }
    // The key comes before validation, as in API Gateway.
    let (status, _, body) = send(
        &app,
        Request::get("/validation").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::FORBIDDEN, r#"{"message":"Forbidden"}"#)
    );
}

/// The reason a refused response carries in its extensions, with the
/// `RefusalInfo` the access log reads agreeing with it.
async fn refusal_of(app: &Router, request: Request<Body>) -> Option<OpenApiRefusal> {
    let response = app.clone().oneshot(request).await.unwrap();
    let refusal = response.extensions().get::<OpenApiRefusal>().cloned();
    if let Some(refusal) = &refusal {
        let info = response.extensions().get::<RefusalInfo>().unwrap();
        assert_eq!(info.kind, refusal.gateway_response().kind());
        assert_eq!(response.status(), info.kind.default_status());
    }
    refusal
}

#[tokio::test]
async fn refusals_carry_their_reason_in_the_response_extensions() {
    let app = validation_app();
    let key = "a-valid-key-0123456789";
    let get = |uri: &str| {
        Request::get(uri)
            .header("x-api-key", key)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        refusal_of(&app, get("/validation")).await,
        Some(OpenApiRefusal::MissingParameters(vec!["q1".to_owned()]))
    );
    assert_eq!(refusal_of(&app, get("/validation?q1=cat")).await, None);
    let bad_body = Request::post("/validation")
        .header("x-api-key", key)
        .header("content-type", "application/json")
        .header("h1", "v")
        .body(Body::from("not json"))
        .unwrap();
    let refusal = refusal_of(&app, bad_body).await;
    assert_eq!(refusal, Some(OpenApiRefusal::BodyInvalid));
    assert_eq!(refusal.unwrap().decision().detail(), Some("body_invalid"));
    assert_eq!(
        refusal_of(&app, get("/elsewhere")).await,
        Some(OpenApiRefusal::NoRoute)
    );
    assert_eq!(
        refusal_of(&app, get("/validation/../validation")).await,
        Some(OpenApiRefusal::NonCanonicalPath(PathRefusal::DotSegment))
    );

    let app = authorizers_app(bearer);
    let with = |path: &str, name: &str, value: &str| {
        Request::get(path)
            .header(name, value)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        refusal_of(
            &app,
            with("/profile", "authorization", "Bearer u1 other/scope")
        )
        .await,
        Some(OpenApiRefusal::ScopeMissing)
    );
    // The authorizer admits without leaving a caller: the layer fails closed.
    assert_eq!(
        refusal_of(&app, with("/request", "auth", "anything")).await,
        Some(OpenApiRefusal::NoCaller { iam: false })
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_get_missing_authentication_token() {
    let app = validation_app();
    for request in [
        Request::get("/elsewhere").body(Body::empty()).unwrap(),
        Request::delete("/validation").body(Body::empty()).unwrap(),
        Request::get("/validation/../validation")
            .body(Body::empty())
            .unwrap(),
    ] {
        let (status, headers, body) = send(&app, request).await;
        assert_eq!(status, 403);
        assert_eq!(
            headers["x-amzn-errortype"],
            "MissingAuthenticationTokenException"
        );
        assert_eq!(body, r#"{"message":"Missing Authentication Token"}"#);
    }
}

#[tokio::test]
async fn body_limit_applies_before_parsing() {
    let layer = OpenApiLayer::builder(load("validation-sample.json"))
        .api_key(stand_in(api_key))
        .body_limit(64)
        .build()
        .unwrap();
    let app = app(layer);
    let big = format!(
        r#"{{"name":"{}","type":"dog","price":100}}"#,
        "x".repeat(100)
    );
    let (status, _, _) = send(
        &app,
        Request::post("/validation")
            .header("x-api-key", "a-valid-key-0123456789")
            .header("h1", "v")
            .body(Body::from(big))
            .unwrap(),
    )
    .await;
    assert_eq!(status, 413);
}

fn authorizers_app(cognito: Check) -> Router {
    let layer = OpenApiLayer::builder(load("authorizers.json"))
        .authorizer("test-authorizer", stand_in(bearer))
        .authorizer("request_authorizer_single_header", stand_in(careless))
        .cognito(stand_in(cognito))
        .sigv4(stand_in(signed))
        .api_key(stand_in(api_key))
        .build()
        .unwrap();
    app(layer)
}

#[tokio::test]
async fn each_method_goes_through_the_layers_its_security_names() {
    let app = authorizers_app(bearer);
    let get = |path: &str, headers: &[(&str, &str)]| {
        let mut builder = Request::get(path);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(Body::empty()).unwrap()
    };
    // Token authorizer.
    assert_eq!(send(&app, get("/http", &[])).await.0, 401);
    assert_eq!(
        send(&app, get("/http", &[("authorization", "Bearer u1")]))
            .await
            .0,
        200
    );
    // Cognito with the method's scope: any one matching scope passes.
    assert_eq!(
        send(
            &app,
            get("/profile", &[("authorization", "Bearer u1 other/scope")])
        )
        .await
        .0,
        401
    );
    assert_eq!(
        send(
            &app,
            get(
                "/profile",
                &[("authorization", "Bearer u1 x/y loyalty/read")]
            )
        )
        .await
        .0,
        200
    );
    // SigV4 plus an API key, on a templated path.
    let sig = ("authorization", "AWS4-HMAC-SHA256 Credential=...");
    assert_eq!(send(&app, get("/loyalty/C-1004", &[])).await.0, 403);
    let (status, headers, _) = send(&app, get("/loyalty/C-1004", &[sig])).await;
    assert_eq!(
        (status, &headers["x-amzn-errortype"]),
        (
            StatusCode::FORBIDDEN,
            &"ForbiddenException".parse().unwrap()
        )
    );
    assert_eq!(
        send(
            &app,
            get(
                "/loyalty/C%2D1004",
                &[sig, ("x-api-key", "a-valid-key-0123456789")]
            )
        )
        .await
        .0,
        200
    );
    // A layer that admits without leaving a caller fails closed.
    assert_eq!(
        send(&app, get("/request", &[("auth", "anything")])).await.0,
        401
    );
}

#[tokio::test]
async fn a_missing_layer_fails_at_build() {
    let error = OpenApiLayer::builder::<Body, Body, Infallible>(load("authorizers.json"))
        .sigv4(stand_in(signed))
        .build()
        .unwrap_err();
    assert!(error.path().starts_with("securitySchemes."), "{error}");
    assert_eq!(
        error.message(),
        "no layer was given for this security scheme",
        "{error}"
    );
}

#[tokio::test]
async fn rest_cors_preflight_needs_no_key_and_refusals_carry_cors() {
    let layer = OpenApiLayer::builder(load("cors-rest.yaml"))
        .api_key(stand_in(api_key))
        .build()
        .unwrap();
    let app = app(layer);
    let preflight = Request::options("/users")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(&app, preflight).await;
    assert_eq!(status, 200);
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert_eq!(headers["access-control-allow-methods"], "*");
    assert_eq!(
        headers["access-control-allow-headers"],
        "Content-Type,X-Amz-Date,Authorization,X-Api-Key"
    );
    // The GET itself needs the key; its refusal carries the DEFAULT_4XX header.
    let (status, headers, _) = send(
        &app,
        Request::get("/users")
            .header("origin", "https://app.example")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(headers["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn http_api_cors_and_greedy_any_method_over_a_real_socket() {
    let layer = OpenApiLayer::builder(load("http-api.json"))
        .build()
        .unwrap();
    let app = app(layer);
    let (listener, addr) = portcullis_test_support::serve::listener().await;
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Body>();
    let preflight = Request::options(format!("http://{addr}/any/deep/path"))
        .header("origin", "https://www.example.com")
        .header("access-control-request-method", "POST")
        .body(Body::empty())
        .unwrap();
    let response = client.request(preflight).await.unwrap();
    assert_eq!(response.status(), 204);
    let h = response.headers();
    assert_eq!(h["access-control-allow-origin"], "https://www.example.com");
    assert_eq!(h["access-control-allow-methods"], "GET,OPTIONS,POST");
    assert_eq!(h["access-control-max-age"], "3600");
    assert_eq!(h["access-control-allow-credentials"], "true");
    // Another origin gets no CORS headers.
    let other = Request::options(format!("http://{addr}/x"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .body(Body::empty())
        .unwrap();
    let response = client.request(other).await.unwrap();
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    // A plain request through `{proxy+}` with any method, CORS headers added.
    let delete = Request::delete(format!("http://{addr}/a/b"))
        .header("origin", "https://www.example.com")
        .body(Body::empty())
        .unwrap();
    let response = client.request(delete).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["access-control-expose-headers"],
        "x-apigateway-header,x-amz-date,content-type"
    );
    // `{proxy+}` needs at least one segment: the root is not defined.
    let root = Request::get(format!("http://{addr}/"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(client.request(root).await.unwrap().status(), 403);
}

#[test]
fn unsupported_extensions_fail_with_their_path() {
    let error = ApiDefinition::from_slice(
        br#"{"openapi":"3.0.1","paths":{"/a":{"get":{"x-amazon-apigateway-policy":{}}}}}"#,
    )
    .unwrap_err();
    assert_eq!(error.path(), "paths./a.get.x-amazon-apigateway-policy");
    assert_eq!(
        error.message(),
        "the extension `x-amazon-apigateway-policy` is not supported"
    );
    // Ignored on purpose: loads.
    ApiDefinition::from_slice(
        br#"{"openapi":"3.0.1","x-amazon-apigateway-binary-media-types":["*/*"],"paths":{}}"#,
    )
    .unwrap();
}

#[test]
fn method_selectors_and_throttles() {
    let definition = load("authorizers.json");
    let selectors: Vec<String> = definition
        .methods()
        .map(|m| m.selector().to_string())
        .collect();
    assert!(
        selectors.contains(&"/loyalty/{customerId}/GET".to_owned()),
        "{selectors:?}"
    );
    let throttle = portcullis_core::plan::ThrottleSettings::new(5.0, 10).unwrap();
    let ok = definition
        .method_throttles([
            ("/http/GET".parse().unwrap(), throttle),
            ("/*/*".parse().unwrap(), throttle),
        ])
        .unwrap();
    assert_eq!(ok[0].0.to_string(), "/http/GET");
    assert!(
        definition
            .method_throttles([("/htp/GET".parse().unwrap(), throttle)])
            .is_err()
    );
    let _ = Arc::new(definition);
}

#[derive(Clone, Default)]
struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn access_log_renders_every_request_and_every_response_has_a_request_id() {
    use portcullis_openapi::access_log::AccessLogLayer;
    let lines = Lines::default();
    let template = r#"{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","ua":"$context.identity.userAgent","method":"$context.httpMethod","resource":"$context.resourcePath","path":"$context.path","status":"$context.status","len":"$context.responseLength","key":"$context.identity.apiKeyId","principal":"$context.authorizer.principalId","error":"$context.error.message","type":"$context.error.responseType","waf":"$context.waf.status","latency":"$context.responseLatency","ext":"$context.extendedRequestId","sub":"$context.authorizer.claims.sub"}"#;
    let layer = OpenApiLayer::builder(load("authorizers.json"))
        .authorizer("test-authorizer", stand_in(bearer))
        .authorizer("request_authorizer_single_header", stand_in(careless))
        .cognito(stand_in(bearer))
        .sigv4(stand_in(signed))
        .api_key(stand_in(api_key))
        .build()
        .unwrap();
    let app = app(layer).layer(AccessLogLayer::new(template).unwrap().writer(lines.clone()));
    let ok = Request::get("/loyalty/C-1004")
        .header("authorization", "AWS4-HMAC-SHA256 Credential=...")
        .header("x-api-key", "a-valid-key-0123456789")
        .header("user-agent", "curl/8 \"quoted\"")
        .body(Body::empty())
        .unwrap();
    let (_, headers, _) = send(&app, ok).await;
    let id = headers["x-amzn-requestid"].to_str().unwrap().to_owned();
    let refused = Request::get("/loyalty/C-1004")
        .header("authorization", "AWS4-HMAC-SHA256 Credential=...")
        .body(Body::empty())
        .unwrap();
    let (_, refused_headers, _) = send(&app, refused).await;
    assert!(refused_headers.contains_key("x-amzn-requestid"));
    let (_, unknown_headers, _) =
        send(&app, Request::get("/nowhere").body(Body::empty()).unwrap()).await;
    assert!(unknown_headers.contains_key("x-amzn-requestid"));

    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let logged: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(logged.len(), 3);
    assert_eq!(logged[0]["requestId"], id.as_str());
    assert_eq!(logged[0]["ua"], "curl/8 \"quoted\"");
    assert_eq!(logged[0]["resource"], "/loyalty/{customerId}");
    assert_eq!(logged[0]["path"], "/loyalty/C-1004");
    assert_eq!(logged[0]["status"], "200");
    assert_eq!(logged[0]["key"], "key-1");
    assert_eq!(
        logged[0]["principal"],
        "arn:aws:iam::123456789012:user/alice"
    );
    assert_eq!(logged[0]["error"], "-");
    assert_eq!(logged[1]["status"], "403");
    assert_eq!(logged[1]["type"], "INVALID_API_KEY");
    assert_eq!(logged[1]["error"], "Forbidden");
    assert_eq!(
        logged[1]["principal"],
        "arn:aws:iam::123456789012:user/alice"
    );
    assert_eq!(logged[1]["key"], "-");
    assert_eq!(logged[2]["type"], "MISSING_AUTHENTICATION_TOKEN");
    assert_eq!(logged[2]["resource"], "-");
    assert_ne!(logged[0]["requestId"], logged[1]["requestId"]);
}

#[test]
fn access_log_templates_are_checked() {
    use portcullis_openapi::access_log::AccessLogLayer;
    assert_eq!(
        AccessLogLayer::new("$context.requestId $context.nope")
            .unwrap_err()
            .to_string(),
        "unknown variable `$context.nope`"
    );
    assert_eq!(
        AccessLogLayer::new("$context.status")
            .unwrap_err()
            .to_string(),
        "the template must contain $context.requestId"
    );
    // API Gateway's CLF example.
    let _clf = AccessLogLayer::new(
        r#"$context.identity.sourceIp - - [$context.requestTime] "$context.httpMethod $context.resourcePath $context.protocol" $context.status $context.responseLength $context.requestId"#,
    )
    .unwrap();
}

/// A definition SAM's translator generated (aws/serverless-application-model
/// `tests/translator/output/`, the `Body` it gives `AWS::ApiGateway::RestApi`;
/// see `tests/fixtures/README.md`).
fn sam(name: &str) -> Result<ApiDefinition, ConfigError> {
    let bytes = std::fs::read(format!(
        "{}/tests/fixtures/sam/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    ApiDefinition::from_slice(&bytes)
}

#[test]
fn sams_generated_definitions_load() {
    use portcullis_openapi::definition::{Authorization, CustomAuthorizerKind};
    let api = sam("api_with_auth_all_maximum_openapi_3").unwrap();
    let method = |path: &str, verb: &str| {
        api.methods()
            .find(|m| m.resource_path() == path && m.http_method() == verb)
            .unwrap_or_else(|| panic!("{verb} {path}"))
    };
    assert_eq!(api.methods().count(), 12);
    // `[{"NONE": []}, {"api_key": []}]`: no authorizer, and a key.
    assert_eq!(method("/", "GET").authorization(), &Authorization::None);
    assert!(method("/", "GET").api_key_required());
    assert!(api.methods().all(|m| m.api_key_required()));
    match method("/any/cognitomultiple", "ANY").authorization() {
        Authorization::CognitoUserPools { provider_arns, .. } => {
            assert_eq!(provider_arns, &["arn:aws:2", "arn:aws:3"]);
        }
        other => panic!("{other:?}"),
    }
    match method("/users", "DELETE").authorization() {
        Authorization::Custom {
            scheme,
            kind,
            identity_source,
            result_ttl_seconds,
            ..
        } => {
            assert_eq!(scheme, "MyLambdaRequestAuth");
            assert_eq!(*kind, CustomAuthorizerKind::Request);
            assert_eq!(identity_source.len(), 4);
            assert_eq!(
                identity_source[1],
                "method.request.querystring.Authorization2"
            );
            assert_eq!(*result_ttl_seconds, 0);
        }
        other => panic!("{other:?}"),
    }
    match method("/users", "GET").authorization() {
        Authorization::Custom {
            kind,
            identity_source,
            identity_validation_expression,
            result_ttl_seconds,
            ..
        } => {
            assert_eq!(*kind, CustomAuthorizerKind::Token);
            assert_eq!(
                identity_source,
                &["method.request.header.MyCustomAuthHeader"]
            );
            assert_eq!(
                identity_validation_expression.as_deref(),
                Some("mycustomauthexpression")
            );
            assert_eq!(*result_ttl_seconds, 20);
        }
        other => panic!("{other:?}"),
    }

    let validated = sam("api_request_model_with_validator_openapi_3").unwrap();
    let get = validated.methods().next().unwrap();
    assert!(get.validates_body() && get.validates_parameters());
    assert_eq!(
        get.models().collect::<Vec<_>>(),
        [("application/json", "user")]
    );

    let responses = sam("api_with_gateway_responses_all_openapi_3").unwrap();
    assert!(responses.gateway_responses().is_some());
}

/// SAM's CORS output writes the values its test template gave (`methods`,
/// `origins`) unquoted, which API Gateway reads as mapping expressions, not
/// static values: refused, with their path in the definition.
#[test]
fn sams_unquoted_cors_values_are_refused_with_their_path() {
    let error = sam("api_with_cors_openapi_3").unwrap_err().to_string();
    assert!(
        error.contains(".x-amazon-apigateway-integration.responses.default.responseParameters."),
        "{error}"
    );
}

#[tokio::test]
async fn sams_authorizers_and_api_keys_route_per_method() {
    let layer = OpenApiLayer::builder(sam("api_with_auth_all_maximum_openapi_3").unwrap())
        .cognito(stand_in(bearer))
        .authorizer("MyLambdaRequestAuth", stand_in(bearer))
        .authorizer("MyLambdaTokenAuth", stand_in(bearer))
        .authorizer(
            "MyLambdaTokenAuthNoneFunctionInvokeRole",
            stand_in(careless),
        )
        .api_key(stand_in(api_key))
        .build()
        .unwrap();
    let app = app(layer);
    let key = "a-valid-key-0123456789";
    let call = |method: &str, path: &str, token: bool, with_key: bool| {
        let mut builder = Request::builder().method(method).uri(path);
        if token {
            builder = builder.header("authorization", "Bearer u-1");
        }
        if with_key {
            builder = builder.header("x-api-key", key);
        }
        builder.body(Body::empty()).unwrap()
    };
    // NONE + key.
    assert_eq!(
        send(&app, call("GET", "/", false, true)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, call("GET", "/", false, false)).await.0,
        StatusCode::FORBIDDEN
    );
    // Any method, Cognito + key.
    for verb in ["GET", "POST", "PATCH"] {
        let (status, _, body) = send(&app, call(verb, "/any/default", true, true)).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "from the app"),
            "{verb}"
        );
    }
    assert_eq!(
        send(&app, call("GET", "/any/default", false, true)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, call("GET", "/any/default", true, false)).await.0,
        StatusCode::FORBIDDEN
    );
    // The token authorizer that admits without leaving a caller: closed.
    assert_eq!(
        send(&app, call("PATCH", "/users", true, true)).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Per method on one resource.
    assert_eq!(
        send(&app, call("DELETE", "/users", true, true)).await.0,
        StatusCode::OK
    );
    // Undefined: 403 Missing Authentication Token.
    let (status, headers, _) = send(&app, call("HEAD", "/users", true, true)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        headers["x-amzn-errortype"],
        "MissingAuthenticationTokenException"
    );
}

#[tokio::test]
async fn sams_gateway_responses_and_validator_apply() {
    let layer = OpenApiLayer::builder(sam("api_request_model_with_validator_openapi_3").unwrap())
        .build()
        .unwrap();
    let validated = app(layer);
    let get = |body: &'static str| {
        Request::get("/")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    assert_eq!(
        send(&validated, get(r#"{"username":"ada"}"#)).await.0,
        StatusCode::OK
    );
    let (status, _, body) = send(&validated, get(r#"{"username":7}"#)).await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::BAD_REQUEST,
            r#"{"message":"Invalid request body"}"#
        )
    );
    // `required: true`: an empty body is invalid.
    assert_eq!(send(&validated, get("")).await.0, StatusCode::BAD_REQUEST);

    // UNAUTHORIZED's static headers on a 401 of a protection layer.
    let layer = OpenApiLayer::builder(sam("api_with_auth_all_maximum_openapi_3").unwrap())
        .cognito(stand_in(bearer))
        .authorizer("MyLambdaRequestAuth", stand_in(bearer))
        .authorizer("MyLambdaTokenAuth", stand_in(bearer))
        .authorizer("MyLambdaTokenAuthNoneFunctionInvokeRole", stand_in(bearer))
        .api_key(stand_in(api_key))
        .build()
        .unwrap();
    let responses = sam("api_with_gateway_responses_all_openapi_3")
        .unwrap()
        .gateway_responses()
        .cloned()
        .unwrap();
    let app = app(layer).layer(portcullis_core::GatewayResponsesLayer::new(responses));
    let unauthorized = Request::get("/any/default")
        .header("x-api-key", "a-valid-key-0123456789")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(&app, unauthorized).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], r#"Bearer realm="admin""#);
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert_eq!(headers["access-control-expose-headers"], "WWW-Authenticate");
}

#[tokio::test]
async fn the_guides_petstore_proxy_routes_every_method_below_the_root() {
    for file in ["petstore-proxy.json", "petstore-proxy-swagger.json"] {
        let app = app(OpenApiLayer::builder(load(file)).build().unwrap());
        for (method, path) in [
            ("GET", "/pets"),
            ("POST", "/pets"),
            ("DELETE", "/pets/1/toys"),
        ] {
            let request = Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .unwrap();
            let (status, _, body) = send(&app, request).await;
            assert_eq!(
                (status, body.as_str()),
                (StatusCode::OK, "from the app"),
                "{file} {method} {path}"
            );
        }
        // `{proxy+}` needs at least one segment: the root is not a resource.
        let (status, headers, _) = send(&app, Request::get("/").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{file}");
        assert_eq!(
            headers["x-amzn-errortype"],
            "MissingAuthenticationTokenException"
        );
    }
}

/// A stand-in for the usage plan's throttle and quota (given to the
/// builder's `throttle`): each request it sees takes one of `limit` requests
/// from the counter, and a request past the limit gets 429 Limit Exceeded,
/// as portcullis-quota answers.
fn counting_quota(
    used: Arc<std::sync::atomic::AtomicU64>,
    limit: u64,
) -> impl tower_layer::Layer<
    Route<Body, Body, Infallible>,
    Service = BoxCloneSyncService<Request<Body>, Response<ResponseBody<Body>>, Infallible>,
> + Clone {
    layer_fn(move |inner: Route<Body, Body, Infallible>| {
        let used = Arc::clone(&used);
        BoxCloneSyncService::new(service_fn(move |request: Request<Body>| {
            let inner = inner.clone();
            let taken = used.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            async move {
                if taken > limit {
                    return Ok(GatewayResponse::new(GatewayResponseType::QuotaExceeded)
                        .into_response(&request));
                }
                Ok(inner.oneshot(request).await?.map(ResponseBody::inner))
            }
        }))
    })
}

/// API Gateway's order for a method with an API key and a request
/// validator: the key and its usage plan (throttle, then quota) first,
/// request validation after, so a request the validator refuses has already
/// used one of the key's requests, and a key past its quota gets 429 even
/// with an invalid body. A request without a valid key uses nothing.
#[tokio::test]
async fn validation_runs_after_the_usage_plan_and_invalid_requests_use_quota() {
    let definition = ApiDefinition::from_slice(
        br##"
openapi: "3.0.1"
info: { title: orders, version: "1" }
x-amazon-apigateway-request-validators:
  all: { validateRequestBody: true, validateRequestParameters: true }
paths:
  /orders:
    post:
      security: [ { api_key: [] } ]
      x-amazon-apigateway-request-validator: all
      parameters:
        - { name: x-order-channel, in: header, required: true, schema: { type: string } }
      requestBody:
        required: true
        content:
          application/json:
            schema: { $ref: "#/components/schemas/Order" }
components:
  schemas:
    Order: { type: object, required: [sku], properties: { sku: { type: string } } }
  securitySchemes:
    api_key: { type: apiKey, name: x-api-key, in: header }
"##,
    )
    .unwrap();
    let used = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let layer = OpenApiLayer::builder(definition)
        .api_key(stand_in(api_key))
        .throttle(counting_quota(Arc::clone(&used), 3))
        .build()
        .unwrap();
    let app = app(layer);
    let order = |key: &str, channel: Option<&str>, body: &'static str| {
        let mut request = Request::post("/orders")
            .header("x-api-key", key)
            .header("content-type", "application/json");
        if let Some(channel) = channel {
            request = request.header("x-order-channel", channel);
        }
        request.body(Body::from(body)).unwrap()
    };
    let key = "a-valid-key-0123456789";

    // A wrong key is refused before the usage plan: nothing is used.
    let (status, _, _) = send(&app, order("not-the-key", Some("web"), r#"{"sku":"a"}"#)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(used.load(std::sync::atomic::Ordering::SeqCst), 0);

    // A missing required header and an invalid body: 400 each, and each
    // used one request of the quota.
    let (status, _, body) = send(&app, order(key, None, r#"{"sku":"a"}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains("Missing required request parameters: [x-order-channel]"),
        "{body}"
    );
    let (status, _, body) = send(&app, order(key, Some("web"), r#"{"item":"a"}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("Invalid request body"), "{body}");
    assert_eq!(used.load(std::sync::atomic::Ordering::SeqCst), 2);

    // The third request of the quota is valid and reaches the app.
    let (status, _, body) = send(&app, order(key, Some("web"), r#"{"sku":"a"}"#)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "from the app"));

    // Past the quota, an invalid body gets the quota's 429, not the
    // validator's 400: the usage plan is checked first.
    let (status, _, body) = send(&app, order(key, Some("web"), r#"{"item":"a"}"#)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body.contains("Limit Exceeded"), "{body}");
    let (status, _, _) = send(&app, order(key, None, "")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

/// A stand-in for the throttle slot that records the `ApiResource` each
/// request carries when the method's chain runs.
fn resource_recorder(
    seen: Arc<std::sync::Mutex<Vec<Option<ApiResource>>>>,
) -> impl tower_layer::Layer<
    Route<Body, Body, Infallible>,
    Service = BoxCloneSyncService<Request<Body>, Response<ResponseBody<Body>>, Infallible>,
> + Clone {
    layer_fn(move |inner: Route<Body, Body, Infallible>| {
        let seen = Arc::clone(&seen);
        BoxCloneSyncService::new(service_fn(move |request: Request<Body>| {
            let inner = inner.clone();
            seen.lock()
                .unwrap()
                .push(request.extensions().get::<ApiResource>().cloned());
            async move { Ok(inner.oneshot(request).await?.map(ResponseBody::inner)) }
        }))
    })
}

/// The layers of a method's chain (a per-method throttle, a REQUEST
/// authorizer) see the resource the request was routed to, as API Gateway
/// names it: the template, with the values of its path parameters.
#[tokio::test]
async fn the_chain_sees_the_resource_the_request_was_routed_to() {
    let definition = ApiDefinition::from_slice(
        br#"
openapi: "3.0.1"
info: { title: loyalty, version: "1" }
paths:
  /:
    get: {}
  /loyalty/{proxy+}:
    x-amazon-apigateway-any-method:
      parameters: [ { name: proxy, in: path, required: true, schema: { type: string } } ]
  /loyalty/{customerId}/get:
    get:
      parameters: [ { name: customerId, in: path, required: true, schema: { type: string } } ]
"#,
    )
    .unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let layer = OpenApiLayer::builder(definition)
        .throttle(resource_recorder(Arc::clone(&seen)))
        .build()
        .unwrap();
    let app = app(layer);
    for (method, path) in [
        ("GET", "/loyalty/C-1001/get"),
        ("POST", "/loyalty/C-1002/redeem"),
        ("DELETE", "/loyalty/C%2D1003/a/b"),
        ("GET", "/"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let (status, _, _) = send(&app, request).await;
        assert_eq!(status, StatusCode::OK, "{method} {path}");
    }
    let seen: Vec<(String, Vec<(String, String)>)> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|resource| {
            let resource = resource.as_ref().expect("every routed request has one");
            (
                resource.resource_path().to_owned(),
                resource
                    .path_parameters()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            )
        })
        .collect();
    let owned = |template: &str, parameters: &[(&str, &str)]| {
        (
            template.to_owned(),
            parameters
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        seen,
        [
            owned("/loyalty/{customerId}/get", &[("customerId", "C-1001")]),
            owned("/loyalty/{proxy+}", &[("proxy", "C-1002/redeem")]),
            // Decoded, as the canonical path the request was routed on.
            owned("/loyalty/{proxy+}", &[("proxy", "C-1003/a/b")]),
            owned("/", &[]),
        ]
    );
}
