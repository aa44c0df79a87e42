//! The layer in a plain hyper server (no axum), over real HTTP/1.1 on
//! 127.0.0.1:0: the peer address from the accepted socket, bodies streamed
//! in chunks, refusals and custom responses as the client reads them.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use portcullis_core::client_ip::PeerAddr;
use portcullis_waf::{AclSources, WafBody, WafLayer, WafOutcome};
use serde_json::json;
use tower::ServiceBuilder;

fn vc() -> serde_json::Value {
    json!({"SampledRequestsEnabled": false, "CloudWatchMetricsEnabled": false, "MetricName": "m"})
}

fn layer() -> WafLayer {
    let acl = json!({"Name": "hyper-acl", "DefaultAction": {"Allow": {}},
    "CustomResponseBodies": {"busy": {"ContentType": "APPLICATION_JSON", "Content": "{\"message\":\"come back later\"}"}},
    "Rules": [
      {"Name": "tagged", "Priority": 0, "Action": {"Count": {}}, "VisibilityConfig": vc(),
       "RuleLabels": [{"Name": "tagged"}],
       "Statement": {"SizeConstraintStatement": {"FieldToMatch": {"SingleHeader": {"Name": "x-tag"}},
          "ComparisonOperator": "GE", "Size": 0, "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}}},
      {"Name": "sqli-json", "Priority": 1, "Action": {"Block": {}}, "VisibilityConfig": vc(),
       "Statement": {"SqliMatchStatement": {"FieldToMatch": {"JsonBody": {"MatchPattern": {"All": {}},
          "MatchScope": "VALUE", "InvalidFallbackBehavior": "EVALUATE_AS_STRING", "OversizeHandling": "CONTINUE"}},
          "TextTransformations": [{"Priority": 0, "Type": "URL_DECODE"}]}}},
      {"Name": "loopback-admin", "Priority": 2, "VisibilityConfig": vc(),
       "Action": {"Block": {"CustomResponse": {"ResponseCode": 429, "CustomResponseBodyKey": "busy",
          "ResponseHeaders": [{"Name": "retry", "Value": "60"}]}}},
       "Statement": {"AndStatement": {"Statements": [
          {"IPSetReferenceStatement": {"ARN": "arn:loopback"}},
          {"ByteMatchStatement": {"SearchString": "/admin", "PositionalConstraint": "STARTS_WITH",
             "FieldToMatch": {"UriPath": {}}, "TextTransformations": [{"Priority": 0, "Type": "LOWERCASE"}]}}]}}}
    ]});
    let compiled = AclSources::from_json(&acl.to_string())
        .unwrap()
        .with_ip_set_json(r#"{"IPSet": {"ARN": "arn:loopback", "Addresses": ["127.0.0.0/8"]}}"#)
        .unwrap()
        .compile()
        .unwrap();
    WafLayer::new(compiled)
}

/// A hyper server: the peer address goes into the request extensions, then
/// the WAF, then a handler that answers the body's length and a digest of it,
/// and what the WAF recorded.
async fn serve() -> SocketAddr {
    let layer = layer();
    portcullis_test_support::serve::serve(move |peer| {
        ServiceBuilder::new()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(PeerAddr(peer));
                request
            })
            .layer(layer.clone())
            .service_fn(|request: Request<WafBody<Incoming>>| async move {
                let outcome = request.extensions().get::<WafOutcome>().cloned();
                let body = request.into_body().collect().await.unwrap().to_bytes();
                let sum: u64 = body.iter().map(|&b| u64::from(b)).sum();
                let mut response =
                    Response::new(Full::new(Bytes::from(format!("{} {sum}", body.len()))));
                if let Some(outcome) = outcome {
                    let labels = outcome.labels().join(",");
                    response
                        .headers_mut()
                        .insert("x-labels", HeaderValue::from_str(&labels).unwrap());
                }
                Ok::<_, Infallible>(response)
            })
    })
    .await
}

async fn send<B>(request: Request<B>) -> (StatusCode, http::HeaderMap, String)
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn a_plain_hyper_server_enforces_the_acl() {
    let addr = serve().await;
    let url = |path: &str| format!("http://{addr}{path}");

    // Allowed, with the Count rule's label handed to the inner service.
    let (status, headers, body) = send(
        Request::post(url("/orders"))
            .header("x-tag", "1")
            .body(Full::new(Bytes::from_static(br#"{"name": "Jane O'Neil"}"#)))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["x-labels"],
        "awswaf:000000000000:webacl:hyper-acl:tagged"
    );
    let expected: u64 = br#"{"name": "Jane O'Neil"}"#.iter().map(|&b| u64::from(b)).sum();
    assert_eq!(body, format!("23 {expected}"));

    // SQL injection in a JSON value, URL-encoded.
    let (status, headers, body) = send(
        Request::post(url("/orders"))
            .body(Full::new(Bytes::from_static(
                br#"{"items": [{"name": "1%27%20OR%20%271%27%3D%271"}]}"#,
            )))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers["x-amzn-errortype"], "WAFFilteredException");
    assert_eq!(body, r#"{"message":"Forbidden"}"#);

    // The client is 127.0.0.1: the custom response of the IP-set rule.
    let (status, headers, body) = send(
        Request::get(url("/Admin/users"))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["x-amzn-waf-retry"], "60");
    assert_eq!(body, r#"{"message":"come back later"}"#);
}

#[tokio::test]
async fn a_streamed_body_reaches_the_service_whole() {
    let addr = serve().await;
    // 40 chunks of 1 KB: the WAF inspects the first 16 KB, the service gets
    // all 40 KB, unchanged. The JSON is cut at the limit, so it is inspected
    // as a string, and it holds no SQL injection.
    let mut text = String::from("{\"note\": \"");
    while text.len() < 40 * 1024 - 2 {
        text.push_str("lorem ipsum ");
    }
    text.truncate(40 * 1024 - 2);
    text.push_str("\"}");
    let bytes = Bytes::from(text);
    let sum: u64 = bytes.iter().map(|&b| u64::from(b)).sum();
    let chunks: Vec<Result<Frame<Bytes>, Infallible>> = bytes
        .chunks(1024)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let body = StreamBody::new(tokio_stream::iter(chunks));
    let (status, _, answer) = send(
        Request::post(format!("http://{addr}/notes"))
            .body(body)
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, format!("{} {sum}", 40 * 1024));

    // The same stream with SQL injection in the first chunk is refused.
    let mut chunks: Vec<Result<Frame<Bytes>, Infallible>> = vec![Ok(Frame::data(
        Bytes::from_static(b"{\"note\": \"1' UNION SELECT password FROM users--"),
    ))];
    chunks.extend((0..20).map(|_| Ok(Frame::data(Bytes::from(vec![b'a'; 1024])))));
    chunks.push(Ok(Frame::data(Bytes::from_static(b"\"}"))));
    let body = StreamBody::new(tokio_stream::iter(chunks));
    let (status, _, _) = send(
        Request::post(format!("http://{addr}/notes"))
            .body(body)
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
