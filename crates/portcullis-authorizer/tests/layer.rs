//! The layer at its public surface: TOKEN and REQUEST authorizers, policy
//! outcomes, failures, caching with the manual clock, single-flight, and what
//! reaches the handler.

use std::convert::Infallible;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use portcullis_authorizer::{
    AUTHORIZER_DENIED_EXPLICIT, AuthorizerConfig, AuthorizerError, AuthorizerEvent,
    AuthorizerLayer, AuthorizerRefusal, AuthorizerResponse, IdentitySource,
};
use portcullis_core::clock::ManualClock;
use portcullis_core::context::RequestContextExt;
use portcullis_core::context::{AuthMethod, RequestContext};
use portcullis_core::resource::ApiResource;
use portcullis_core::response::messages;
use portcullis_iam::{ExecuteApiArn, PolicyDocument};
use tower::{ServiceBuilder, ServiceExt};

fn policy(effect: &str, resource: &str) -> PolicyDocument {
    PolicyDocument::from_json(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"{effect}","Action":"execute-api:Invoke","Resource":"{resource}"}}]}}"#
    ))
    .expect("valid policy")
}

const ALL: &str = "arn:aws:execute-api:*:*:*/*/*/*";

/// An authorizer that counts its calls and answers by token:
/// `allow` / `deny` / `nomatch` / `unauthorized` / `fail` / `malformed`.
#[derive(Clone, Default)]
struct Counting {
    calls: Arc<AtomicUsize>,
}

impl Counting {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn authorizer(
        &self,
    ) -> impl Fn(AuthorizerEvent) -> std::future::Ready<Result<AuthorizerResponse, AuthorizerError>>
    + Clone
    + Send
    + Sync
    + 'static {
        let calls = self.calls.clone();
        move |event: AuthorizerEvent| {
            calls.fetch_add(1, Ordering::SeqCst);
            let identity = match &event {
                AuthorizerEvent::Token(t) => t.authorization_token.clone(),
                AuthorizerEvent::Request(r) => r
                    .headers
                    .get("x-token")
                    .cloned()
                    .unwrap_or_else(|| "allow".to_owned()),
            };
            std::future::ready(match identity.as_str() {
                "allow" | "Bearer allow" => {
                    Ok(AuthorizerResponse::new("user-1", policy("Allow", ALL))
                        .with_context("tier", "gold")
                        .with_context("age", 42)
                        .with_usage_identifier_key("usage-key-0123456789abcdef"))
                }
                "deny" => Ok(AuthorizerResponse::new("user-2", policy("Deny", ALL))),
                "nomatch" => Ok(AuthorizerResponse::new(
                    "user-3",
                    policy("Allow", "arn:aws:execute-api:*:*:*/*/POST/*"),
                )),
                "unauthorized" => Err(AuthorizerError::Unauthorized),
                "malformed" => AuthorizerResponse::from_json(
                    r#"{"principalId":"x","policyDocument":{"Statement":"nope"}}"#,
                ),
                "empty-principal" => Ok(AuthorizerResponse::new("", policy("Allow", ALL))),
                _ => Err(AuthorizerError::failed("boom")),
            })
        }
    }
}

async fn handler(request: Request<String>) -> Result<Response<String>, Infallible> {
    let caller = request.caller().cloned();
    let key = request
        .request_context()
        .and_then(RequestContext::usage_identifier_key)
        .cloned();
    let body = serde_json::json!({
        "principal": caller.as_ref().map(|c| c.principal().to_owned()),
        "method": caller.as_ref().map(|c| c.method().as_str()),
        "tier": caller.as_ref().and_then(|c| c.claim("tier").cloned()),
        "age": caller.as_ref().and_then(|c| c.claim("age").cloned()),
        "key": key.map(|k| k.expose().to_owned()),
    });
    Ok(Response::new(body.to_string()))
}

fn get(path: &str, token: Option<&str>) -> Request<String> {
    let mut builder = Request::get(path);
    if let Some(token) = token {
        builder = builder.header("authorization", token);
    }
    builder.body(String::new()).expect("valid request")
}

async fn send<S>(
    service: &S,
    request: Request<String>,
) -> (StatusCode, serde_json::Value, Option<String>)
where
    S: tower::Service<
            Request<String>,
            Response = Response<portcullis_core::ResponseBody<String>>,
            Error = Infallible,
        > + Clone,
{
    use http_body_util::BodyExt;
    let response = service.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let error_type = response
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("string bodies never fail")
        .to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json, error_type)
}

#[tokio::test]
async fn token_authorizer_outcomes() {
    let counting = Counting::default();
    let service = ServiceBuilder::new()
        .layer(AuthorizerLayer::token(counting.authorizer()).result_ttl_seconds(0))
        .service_fn(handler);

    let (status, body, _) = send(&service, get("/pets", Some("allow"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["principal"], "user-1");
    assert_eq!(body["method"], AuthMethod::CustomAuthorizer.as_str());
    assert_eq!(body["tier"], "gold");
    assert_eq!(body["age"], 42);
    assert_eq!(body["key"], "usage-key-0123456789abcdef");

    let (status, body, error_type) = send(&service, get("/pets", Some("deny"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], AUTHORIZER_DENIED_EXPLICIT);
    assert_eq!(
        AUTHORIZER_DENIED_EXPLICIT,
        format!("{} with an explicit deny", messages::AUTHORIZER_DENIED)
    );
    assert_eq!(error_type.as_deref(), Some("AccessDeniedException"));

    let (status, body, _) = send(&service, get("/pets", Some("nomatch"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], messages::AUTHORIZER_DENIED);

    let (status, body, error_type) = send(&service, get("/pets", Some("unauthorized"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["message"], "Unauthorized");
    assert_eq!(error_type.as_deref(), Some("UnauthorizedException"));

    for failing in ["fail", "malformed", "empty-principal"] {
        let (status, _, error_type) = send(&service, get("/pets", Some(failing))).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{failing}");
        assert_eq!(
            error_type.as_deref(),
            Some("AuthorizerFailureException"),
            "{failing}"
        );
    }
    assert_eq!(counting.calls(), 7);

    // A missing or empty token: 401 without calling the authorizer.
    let (status, _, _) = send(&service, get("/pets", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = send(&service, get("/pets", Some("  "))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(counting.calls(), 7);
}

#[tokio::test]
async fn token_header_and_validation_regex() {
    let counting = Counting::default();
    let layer = AuthorizerLayer::token(counting.authorizer())
        .token_header(http::HeaderName::from_static("x-auth"))
        .identity_validation(regex::Regex::new("^Bearer [a-z]+$").expect("valid regex"));
    let service = ServiceBuilder::new().layer(layer).service_fn(handler);

    let request = |value: &str| {
        Request::get("/pets")
            .header("x-auth", value)
            .body(String::new())
            .expect("valid request")
    };
    let (status, body, _) = send(&service, request("Bearer allow")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["principal"], "user-1");
    // Failing the regex: 401 and no call.
    let (status, _, _) = send(&service, request("Basic abc")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The Authorization header is not the identity source here.
    let (status, _, _) = send(&service, get("/pets", Some("Bearer allow"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(counting.calls(), 1);
}

#[tokio::test]
async fn request_authorizer_sources_and_event() {
    let seen: Arc<std::sync::Mutex<Vec<AuthorizerEvent>>> = Arc::default();
    let record = seen.clone();
    let authorizer = move |event: AuthorizerEvent| {
        record.lock().expect("not poisoned").push(event);
        async { Ok(AuthorizerResponse::new("req-user", policy("Allow", ALL))) }
    };
    let arns = ExecuteApiArn::new("eu-west-1", "123456789012", "abc123", "prod").expect("valid");
    let layer = AuthorizerLayer::request(
        authorizer,
        [
            "method.request.header.X-Tenant"
                .parse::<IdentitySource>()
                .expect("valid"),
            "method.request.querystring.key".parse().expect("valid"),
            "stageVariables.env".parse().expect("valid"),
            "context.httpMethod".parse().expect("valid"),
        ],
    )
    .method_arn(arns)
    .stage_variables([("env".to_owned(), "production".to_owned())].into())
    .result_ttl_seconds(0);
    let service = ServiceBuilder::new().layer(layer).service_fn(handler);

    let request = Request::post("/orders/7?key=k%201&key=k2&other=x")
        .header("x-tenant", "acme")
        .header("x-multi", "a")
        .header("x-multi", "b")
        .header("user-agent", "test/1")
        .body(String::new())
        .expect("valid request");
    let (status, body, _) = send(&service, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["principal"], "req-user");

    // A missing query parameter: 401 without a call.
    let request = Request::post("/orders/7?other=x")
        .header("x-tenant", "acme")
        .body(String::new())
        .expect("valid request");
    let (status, _, _) = send(&service, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let events = seen.lock().expect("not poisoned");
    assert_eq!(events.len(), 1);
    let event = events[0].as_request().expect("a REQUEST event");
    assert_eq!(
        event.method_arn,
        "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/POST/orders/7"
    );
    assert_eq!(event.http_method, "POST");
    assert_eq!(event.path, "/orders/7");
    // No routing layer in front: the path stands for the resource.
    assert_eq!(event.resource, "/orders/7");
    assert_eq!(event.request_context.resource_path, "/orders/7");
    assert!(event.path_parameters.is_empty());
    assert_eq!(event.headers["x-tenant"], "acme");
    assert_eq!(event.multi_value_headers["x-multi"], ["a", "b"]);
    assert_eq!(event.query_string_parameters["key"], "k2");
    assert_eq!(
        event.multi_value_query_string_parameters["key"],
        ["k 1", "k2"]
    );
    assert_eq!(event.stage_variables["env"], "production");
    assert_eq!(event.request_context.stage, "prod");
    assert_eq!(
        event.request_context.identity.user_agent.as_deref(),
        Some("test/1")
    );
    let json = serde_json::to_value(&events[0]).expect("serialisable");
    assert_eq!(json["type"], "REQUEST");
    assert_eq!(json["methodArn"], event.method_arn);
    assert_eq!(json["multiValueQueryStringParameters"]["key"][0], "k 1");
}

/// Behind a routing layer (portcullis-openapi), the event names the
/// resource the request was routed to, as API Gateway does: `resource` and
/// `requestContext.resourcePath` are its template, `pathParameters` the
/// values of its parameters; `path` and the method ARN stay the request's.
#[tokio::test]
async fn request_event_names_the_routed_resource() {
    let seen: Arc<std::sync::Mutex<Vec<AuthorizerEvent>>> = Arc::default();
    let record = seen.clone();
    let authorizer = move |event: AuthorizerEvent| {
        record.lock().expect("not poisoned").push(event);
        async { Ok(AuthorizerResponse::new("req-user", policy("Allow", ALL))) }
    };
    let arns = ExecuteApiArn::new("eu-west-1", "123456789012", "abc123", "prod").expect("valid");
    let layer = AuthorizerLayer::request(
        authorizer,
        ["method.request.header.X-Tenant"
            .parse::<IdentitySource>()
            .expect("valid")],
    )
    .method_arn(arns)
    .result_ttl_seconds(0);
    let service = ServiceBuilder::new().layer(layer).service_fn(handler);

    let mut request = Request::get("/loyalty/C-1001/points/2026")
        .header("x-tenant", "acme")
        .body(String::new())
        .expect("valid request");
    request.extensions_mut().insert(ApiResource::new(
        "/loyalty/{proxy+}",
        [("proxy", "C-1001/points/2026")],
    ));
    let (status, _, _) = send(&service, request).await;
    assert_eq!(status, StatusCode::OK);

    let events = seen.lock().expect("not poisoned");
    let event = events[0].as_request().expect("a REQUEST event");
    assert_eq!(event.resource, "/loyalty/{proxy+}");
    assert_eq!(event.request_context.resource_path, "/loyalty/{proxy+}");
    assert_eq!(
        event.path_parameters,
        [("proxy".to_owned(), "C-1001/points/2026".to_owned())].into()
    );
    assert_eq!(event.path, "/loyalty/C-1001/points/2026");
    assert_eq!(
        event.method_arn,
        "arn:aws:execute-api:eu-west-1:123456789012:abc123/prod/GET/loyalty/C-1001/points/2026"
    );
    let json = serde_json::to_value(&events[0]).expect("serialisable");
    assert_eq!(json["resource"], "/loyalty/{proxy+}");
    assert_eq!(json["pathParameters"]["proxy"], "C-1001/points/2026");
    assert_eq!(json["requestContext"]["resourcePath"], "/loyalty/{proxy+}");
}

#[tokio::test]
async fn wildcard_policies_and_the_cache_warning() {
    // A policy naming only the first request's method ARN, cached, denies
    // the next method: the reason the docs ask for wildcard resources.
    let arns = ExecuteApiArn::new("us-east-1", "123456789012", "abc123", "prod").expect("valid");
    let narrow = arns.resource("GET", "/pets");
    let authorizer = move |event: AuthorizerEvent| {
        let resource = if event.token() == Some("narrow") {
            event.method_arn().to_owned()
        } else {
            "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/*".to_owned()
        };
        async move { Ok(AuthorizerResponse::new("u", policy("Allow", &resource))) }
    };
    let service = ServiceBuilder::new()
        .layer(AuthorizerLayer::token(authorizer).method_arn(arns))
        .service_fn(handler);
    assert_eq!(
        send(&service, get("/pets", Some("narrow"))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        narrow,
        "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/pets"
    );
    let post = Request::post("/pets")
        .header("authorization", "narrow")
        .body(String::new())
        .expect("valid");
    assert_eq!(send(&service, post).await.0, StatusCode::FORBIDDEN);

    assert_eq!(
        send(&service, get("/pets", Some("wide"))).await.0,
        StatusCode::OK
    );
    let post = Request::post("/pets/1/toys")
        .header("authorization", "wide")
        .body(String::new())
        .expect("valid");
    assert_eq!(send(&service, post).await.0, StatusCode::OK);
    let other_stage_arn = Request::delete("/x")
        .header("authorization", "wide")
        .body(String::new())
        .expect("valid");
    assert_eq!(send(&service, other_stage_arn).await.0, StatusCode::OK);
}

#[tokio::test]
async fn cache_hits_and_expiry_with_the_manual_clock() {
    let counting = Counting::default();
    let clock = ManualClock::at_unix(1_800_000_000);
    let service = ServiceBuilder::new()
        .layer(AuthorizerLayer::token(counting.authorizer()).clock(clock.clone()))
        .service_fn(handler);

    assert_eq!(
        send(&service, get("/a", Some("allow"))).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&service, get("/b", Some("allow"))).await.0,
        StatusCode::OK
    );
    assert_eq!(counting.calls(), 1, "the second request is a cache hit");
    // A cached Deny is reused too.
    assert_eq!(
        send(&service, get("/a", Some("deny"))).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&service, get("/a", Some("deny"))).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(counting.calls(), 2);

    clock.advance(Duration::from_secs(299));
    let (status, body, _) = send(&service, get("/c", Some("allow"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["tier"], "gold",
        "the cached context reaches the handler"
    );
    assert_eq!(counting.calls(), 2);

    clock.advance(Duration::from_secs(1));
    assert_eq!(
        send(&service, get("/c", Some("allow"))).await.0,
        StatusCode::OK
    );
    assert_eq!(counting.calls(), 3, "300 s later the entry has expired");

    // Errors are not cached.
    assert_eq!(
        send(&service, get("/a", Some("fail"))).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        send(&service, get("/a", Some("fail"))).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        send(&service, get("/a", Some("unauthorized"))).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&service, get("/a", Some("unauthorized"))).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(counting.calls(), 7);
}

#[tokio::test]
async fn ttl_zero_turns_caching_off_and_ttl_is_capped() {
    let counting = Counting::default();
    let service = ServiceBuilder::new()
        .layer(AuthorizerLayer::token(counting.authorizer()).result_ttl_seconds(0))
        .service_fn(handler);
    for _ in 0..3 {
        assert_eq!(
            send(&service, get("/a", Some("allow"))).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(counting.calls(), 3);

    let counting = Counting::default();
    let clock = ManualClock::at_unix(0);
    let service = ServiceBuilder::new()
        .layer(
            AuthorizerLayer::token(counting.authorizer())
                .clock(clock.clone())
                .result_ttl_seconds(100_000),
        )
        .service_fn(handler);
    assert_eq!(
        send(&service, get("/a", Some("allow"))).await.0,
        StatusCode::OK
    );
    clock.advance(Duration::from_secs(3599));
    assert_eq!(
        send(&service, get("/a", Some("allow"))).await.0,
        StatusCode::OK
    );
    assert_eq!(counting.calls(), 1);
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        send(&service, get("/a", Some("allow"))).await.0,
        StatusCode::OK
    );
    assert_eq!(counting.calls(), 2, "the TTL is capped at 3600 s");
}

#[tokio::test]
async fn the_cache_is_bounded() {
    let counting = Counting::default();
    let authorizer = counting.authorizer();
    let wrapped = move |event: AuthorizerEvent| {
        // Every token allows, as `allow` does.
        let event = match event {
            AuthorizerEvent::Token(mut t) => {
                t.authorization_token = "allow".to_owned();
                AuthorizerEvent::Token(t)
            }
            other => other,
        };
        authorizer(event)
    };
    let service = ServiceBuilder::new()
        .layer(
            AuthorizerLayer::token(wrapped)
                .clock(ManualClock::at_unix(0))
                .max_cache_entries(NonZeroUsize::new(2).expect("non-zero")),
        )
        .service_fn(handler);
    for token in ["t1", "t2", "t3"] {
        assert_eq!(
            send(&service, get("/", Some(token))).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(counting.calls(), 3);
    // t3 was just cached; with room for two, t1 and t2 cannot both still be.
    assert_eq!(send(&service, get("/", Some("t3"))).await.0, StatusCode::OK);
    assert_eq!(counting.calls(), 3);
    for token in ["t1", "t2"] {
        assert_eq!(
            send(&service, get("/", Some(token))).await.0,
            StatusCode::OK
        );
    }
    assert!(counting.calls() >= 4, "at least one of t1, t2 was evicted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_call_the_authorizer_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let (counter, gate) = (calls.clone(), release.clone());
    let authorizer = move |_event: AuthorizerEvent| {
        let (counter, gate) = (counter.clone(), gate.clone());
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            gate.notified().await;
            Ok(AuthorizerResponse::new("slow-user", policy("Allow", ALL)))
        }
    };
    // Counts requests that have gone through the layer's `call`, where the
    // cache lookup happens, so the test knows every miss is registered.
    let entered = Arc::new(AtomicUsize::new(0));
    let seen = entered.clone();
    let service = ServiceBuilder::new()
        .map_request(move |request: Request<String>| {
            seen.fetch_add(1, Ordering::SeqCst);
            request
        })
        .layer(AuthorizerLayer::token(authorizer).clock(ManualClock::at_unix(0)))
        .service_fn(handler);

    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move { send(&service, get("/", Some("same-token"))).await })
        })
        .collect();
    // Every request has looked the cache up and missed before the one call
    // in flight is allowed to finish.
    while entered.load(Ordering::SeqCst) < 16 || calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    release.notify_one();
    for task in tasks {
        let (status, body, _) = task.await.expect("task completes");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["principal"], "slow-user");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn remembered_decisions_follow_the_method_arn() {
    // A cached answer's decisions are remembered per method and path, for a
    // policy without conditions. A clone of the layer with another stage
    // shares the cache but builds other method ARNs: the decision reached
    // for one must not leak to the other.
    let prod = ExecuteApiArn::new("us-east-1", "123456789012", "abc123", "prod").expect("valid");
    let dev = ExecuteApiArn::new("us-east-1", "123456789012", "abc123", "dev").expect("valid");
    let counting = Counting::default();
    let calls = counting.calls.clone();
    let authorizer = move |_event: AuthorizerEvent| {
        calls.fetch_add(1, Ordering::SeqCst);
        async {
            Ok(AuthorizerResponse::new(
                "u",
                policy(
                    "Allow",
                    "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/*",
                ),
            ))
        }
    };
    let layer = AuthorizerLayer::token(authorizer).method_arn(prod);
    let on_prod = ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(handler);
    let on_dev = ServiceBuilder::new()
        .layer(layer.method_arn(dev))
        .service_fn(handler);
    for _ in 0..3 {
        assert_eq!(
            send(&on_prod, get("/pets", Some("t"))).await.0,
            StatusCode::OK
        );
        assert_eq!(
            send(&on_dev, get("/pets", Some("t"))).await.0,
            StatusCode::FORBIDDEN
        );
        let delete = Request::delete("/pets")
            .header("authorization", "t")
            .body(String::new())
            .expect("valid");
        assert_eq!(send(&on_prod, delete).await.0, StatusCode::FORBIDDEN);
        assert_eq!(
            send(&on_prod, get("/pets/1", Some("t"))).await.0,
            StatusCode::OK
        );
    }
    // The layers share one cache: one call for the one token.
    assert_eq!(counting.calls(), 1);
}

#[tokio::test]
async fn source_ip_reaches_policy_conditions() {
    use portcullis_core::client_ip::PeerAddr;
    let authorizer = |_event: AuthorizerEvent| async {
        Ok(AuthorizerResponse::new(
            "u",
            PolicyDocument::from_json(
                r#"{"Version":"2012-10-17","Statement":[
                    {"Effect":"Allow","Action":"execute-api:Invoke","Resource":"*"},
                    {"Effect":"Deny","Action":"execute-api:Invoke","Resource":"*",
                     "Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#,
            )
            .map_err(AuthorizerError::failed)?,
        ))
    };
    let service = ServiceBuilder::new()
        .layer(AuthorizerLayer::token(authorizer))
        .service_fn(handler);
    let from = |ip: &str| {
        let mut request = get("/", Some("t"));
        request.extensions_mut().insert(PeerAddr(
            format!("{ip}:1234").parse().expect("valid address"),
        ));
        request
    };
    assert_eq!(send(&service, from("10.1.2.3")).await.0, StatusCode::OK);
    // Same token, cached policy, other address: the Deny's condition holds.
    let (status, body, _) = send(&service, from("192.0.2.1")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], AUTHORIZER_DENIED_EXPLICIT);
}

#[tokio::test]
async fn a_refused_response_carries_its_reason_in_the_extensions() {
    let counting = Counting::default();
    let service = ServiceBuilder::new()
        .layer(AuthorizerLayer::token(counting.authorizer()))
        .service_fn(handler);
    let cases = [
        (None, AuthorizerRefusal::MissingIdentity),
        (Some("unauthorized"), AuthorizerRefusal::Unauthorized),
        (Some("fail"), AuthorizerRefusal::AuthorizerFailed),
        (Some("malformed"), AuthorizerRefusal::MalformedAnswer),
        (Some("nomatch"), AuthorizerRefusal::ImplicitDeny),
        // Twice: the authorizer's answer, then the cached one.
        (Some("deny"), AuthorizerRefusal::ExplicitDeny),
        (Some("deny"), AuthorizerRefusal::ExplicitDeny),
    ];
    for (token, refusal) in cases {
        let response = service
            .clone()
            .oneshot(get("/pets", token))
            .await
            .expect("infallible");
        assert!(!response.status().is_success(), "{refusal:?}");
        assert_eq!(
            response.extensions().get::<AuthorizerRefusal>(),
            Some(&refusal)
        );
    }
    let response = service
        .oneshot(get("/pets/%2e%2e/x", Some("allow")))
        .await
        .expect("infallible");
    assert!(matches!(
        response.extensions().get::<AuthorizerRefusal>(),
        Some(AuthorizerRefusal::NonCanonicalPath(_))
    ));
}

#[tokio::test]
async fn configuration_as_data() {
    let counting = Counting::default();
    let config: AuthorizerConfig = serde_json::from_str(
        r#"{"type":"TOKEN","identity_source":["method.request.header.X-Token"],
            "identity_validation_expression":"^[a-z]+$","result_ttl_in_seconds":0}"#,
    )
    .expect("valid config");
    let layer = AuthorizerLayer::from_config(counting.authorizer(), &config).expect("valid layer");
    let service = ServiceBuilder::new().layer(layer).service_fn(handler);
    let request = Request::get("/")
        .header("x-token", "allow")
        .body(String::new())
        .expect("valid");
    assert_eq!(send(&service, request).await.0, StatusCode::OK);

    let bad = |json: &str| {
        let config: AuthorizerConfig = serde_json::from_str(json).expect("parses");
        AuthorizerLayer::from_config(counting.authorizer(), &config)
            .expect_err("invalid")
            .path()
            .to_owned()
    };
    assert_eq!(
        bad(r#"{"type":"TOKEN","result_ttl_in_seconds":3601}"#),
        "result_ttl_in_seconds"
    );
    assert_eq!(
        bad(r#"{"type":"TOKEN","identity_validation_expression":"("}"#),
        "identity_validation_expression"
    );
    assert_eq!(bad(r#"{"type":"REQUEST"}"#), "identity_source");
    assert_eq!(
        bad(r#"{"type":"TOKEN","identity_source":["method.request.querystring.a"]}"#),
        "identity_source"
    );
    assert_eq!(
        bad(r#"{"type":"TOKEN","max_cache_entries":0}"#),
        "max_cache_entries"
    );
    let err = serde_json::from_str::<AuthorizerConfig>(
        r#"{"type":"TOKEN","identity_source":["header.x"]}"#,
    )
    .expect_err("bad source");
    assert!(err.to_string().contains("header.x"), "{err}");
    let err = serde_json::from_str::<AuthorizerConfig>(r#"{"type":"TOKEN","ttl":1}"#)
        .expect_err("unknown field");
    assert!(err.to_string().contains("ttl"), "{err}");
}

#[tokio::test]
async fn grpc_requests_get_grpc_statuses() {
    let counting = Counting::default();
    let service = ServiceBuilder::new()
        .layer(AuthorizerLayer::token(counting.authorizer()))
        .service_fn(handler);
    let request = Request::post("/pkg.Svc/Method")
        .header("content-type", "application/grpc")
        .body(String::new())
        .expect("valid");
    let response = service.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "16");
}
