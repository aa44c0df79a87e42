//! The layer at its public surface: priorities, actions, labels, rate-based
//! rules on a manual clock, body inspection and oversize handling, load errors
//! and hot reload.

#![allow(clippy::unwrap_used)]

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use portcullis_core::clock::ManualClock;
use portcullis_core::config::ConfigError;
use portcullis_core::context::RequestContextExt;
use portcullis_core::refusal::Refusal;
use portcullis_waf::{
    AclSources, CompiledAcl, LoadError, WafAction, WafBody, WafLayer, WafOutcome, WafRefusal,
};
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt};

const VC: &str = r#""VisibilityConfig":{"SampledRequestsEnabled":false,"CloudWatchMetricsEnabled":false,"MetricName":"m"}"#;

type Streamed =
    StreamBody<tokio_stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

fn rule(name: &str, priority: i64, statement: Value, action: &str) -> Value {
    let mut rule: Value = serde_json::from_str(&format!("{{{VC}}}")).unwrap();
    rule["Name"] = json!(name);
    rule["Priority"] = json!(priority);
    rule["Statement"] = statement;
    rule["Action"] = json!({ action: {} });
    rule
}

fn acl(rules: Vec<Value>) -> Value {
    json!({"Name": "acl", "ARN": "arn:aws:wafv2:us-east-1:111122223333:regional/webacl/acl/1",
           "DefaultAction": {"Allow": {}}, "Rules": rules})
}

fn path_starts(prefix: &str) -> Value {
    json!({"ByteMatchStatement": {"SearchString": prefix, "PositionalConstraint": "STARTS_WITH",
        "FieldToMatch": {"UriPath": {}}, "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}})
}

fn body_contains(needle: &str, oversize: &str) -> Value {
    json!({"ByteMatchStatement": {"SearchString": needle, "PositionalConstraint": "CONTAINS",
        "FieldToMatch": {"Body": {"OversizeHandling": oversize}}, "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}})
}

fn compile(acl: &Value) -> CompiledAcl {
    CompiledAcl::from_json(&acl.to_string()).unwrap()
}

/// An inner service that echoes the body it received, with the WAF outcome's
/// terminating rule and labels in headers.
async fn echo(request: Request<WafBody<Streamed>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let labels = request
        .waf_labels()
        .map(|l| l.iter().collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    let rule = request
        .extensions()
        .get::<WafOutcome>()
        .and_then(|o| o.terminating_rule().map(str::to_owned))
        .unwrap_or_default();
    let inserted = request
        .headers()
        .get("x-amzn-waf-checked")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let mut response = Response::new(Full::new(body));
    response
        .headers_mut()
        .insert("x-labels", labels.parse().unwrap());
    response
        .headers_mut()
        .insert("x-rule", rule.parse().unwrap());
    response
        .headers_mut()
        .insert("x-inserted", inserted.parse().unwrap());
    Ok(response)
}

fn streamed(chunks: Vec<&'static [u8]>) -> Streamed {
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = chunks
        .into_iter()
        .map(|c| Ok(Frame::data(Bytes::from_static(c))))
        .collect();
    StreamBody::new(tokio_stream::iter(frames))
}

#[tokio::test]
async fn lowest_priority_wins_and_allow_terminates() {
    // Listed out of order: priority 1 (Allow /public) runs before priority 2 (Block /).
    let layer = WafLayer::new(compile(&acl(vec![
        rule("block-all", 2, path_starts("/"), "Block"),
        rule("allow-public", 1, path_starts("/public"), "Allow"),
    ])));
    let public = layer.evaluate(&Request::get("/public/x").body(String::new()).unwrap());
    assert_eq!(public.action(), WafAction::Allow);
    assert_eq!(public.terminating_rule(), Some("allow-public"));
    assert_eq!(public.matched_rules().collect::<Vec<_>>(), ["allow-public"]);
    let other = layer.evaluate(&Request::get("/private").body(String::new()).unwrap());
    assert_eq!(other.action(), WafAction::Block);
    assert_eq!(other.terminating_rule(), Some("block-all"));
}

#[tokio::test]
async fn count_adds_labels_and_goes_on() {
    let mut count = rule("tag", 1, path_starts("/api"), "Count");
    count["RuleLabels"] = json!([{"Name": "api"}, {"Name": "ns:deep"}]);
    let layer = WafLayer::new(compile(&acl(vec![
        count,
        rule(
            "block-tagged",
            2,
            json!({"LabelMatchStatement": {"Scope": "LABEL", "Key": "ns:deep"}}),
            "Block",
        ),
    ])));
    let outcome = layer.evaluate(&Request::get("/api/x").body(String::new()).unwrap());
    assert_eq!(outcome.action(), WafAction::Block);
    assert_eq!(
        outcome.matched_rules().collect::<Vec<_>>(),
        ["tag", "block-tagged"]
    );
    assert_eq!(
        outcome.labels(),
        [
            "awswaf:111122223333:webacl:acl:api",
            "awswaf:111122223333:webacl:acl:ns:deep"
        ]
    );
    assert_eq!(
        layer
            .evaluate(&Request::get("/other").body(String::new()).unwrap())
            .action(),
        WafAction::Allow
    );
}

#[tokio::test]
async fn labels_outcome_and_inserted_headers_reach_the_inner_service() {
    let mut count = rule("tag", 1, path_starts("/"), "Count");
    count["RuleLabels"] = json!([{"Name": "seen"}]);
    count["Action"] = json!({"Count": {"CustomRequestHandling": {"InsertHeaders": [{"Name": "checked", "Value": "yes"}]}}});
    let service = ServiceBuilder::new()
        .layer(WafLayer::new(compile(&acl(vec![count]))))
        .service_fn(echo);
    let response = service
        .oneshot(Request::get("/x").body(streamed(vec![])).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["x-labels"],
        "awswaf:111122223333:webacl:acl:seen"
    );
    assert_eq!(response.headers()["x-inserted"], "yes");
}

#[tokio::test]
async fn block_renders_waf_filtered_or_the_custom_response() {
    let mut custom = rule("custom", 1, path_starts("/custom"), "Block");
    custom["Action"] = json!({"Block": {"CustomResponse": {"ResponseCode": 429, "CustomResponseBodyKey": "slow",
        "ResponseHeaders": [{"Name": "reason", "Value": "rate"}]}}});
    let mut doc = acl(vec![
        custom,
        rule("plain", 2, path_starts("/plain"), "Block"),
    ]);
    doc["CustomResponseBodies"] = json!({"slow": {"ContentType": "APPLICATION_JSON", "Content": "{\"message\":\"slow down\"}"}});
    let service = ServiceBuilder::new()
        .layer(WafLayer::new(compile(&doc)))
        .service_fn(echo);

    let plain = service
        .clone()
        .oneshot(Request::get("/plain").body(streamed(vec![])).unwrap())
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::FORBIDDEN);
    assert_eq!(plain.headers()["x-amzn-errortype"], "WAFFilteredException");
    let outcome = plain.extensions().get::<WafOutcome>().unwrap();
    assert!(outcome.is_blocked());
    assert_eq!(outcome.block_status(), Some(StatusCode::FORBIDDEN));
    assert_eq!(outcome.terminating_rule(), Some("plain"));
    let refusal = plain.extensions().get::<WafRefusal>().unwrap();
    assert!(refusal.is_blocked());
    assert!(!refusal.has_custom_response());
    assert_eq!(refusal.detail(), "blocked");
    assert_eq!(refusal.decision().reason(), "WAF_FILTERED");
    assert_eq!(
        plain.into_body().collect().await.unwrap().to_bytes(),
        r#"{"message":"Forbidden"}"#
    );

    let custom = service
        .clone()
        .oneshot(Request::get("/custom").body(streamed(vec![])).unwrap())
        .await
        .unwrap();
    assert_eq!(custom.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(custom.headers()["x-amzn-waf-reason"], "rate");
    let outcome = custom.extensions().get::<WafOutcome>().unwrap();
    assert_eq!(outcome.block_status(), Some(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(outcome.terminating_rule(), Some("custom"));
    assert_eq!(outcome.matched_rules().collect::<Vec<_>>(), ["custom"]);
    let refusal = custom.extensions().get::<WafRefusal>().unwrap();
    assert!(refusal.has_custom_response());
    assert_eq!(
        refusal
            .gateway_response()
            .render(&Request::new(()))
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(custom.headers()["content-type"], "application/json");
    assert_eq!(
        custom.into_body().collect().await.unwrap().to_bytes(),
        r#"{"message":"slow down"}"#
    );

    let grpc = service
        .oneshot(
            Request::get("/plain")
                .header("content-type", "application/grpc")
                .body(streamed(vec![]))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(grpc.status(), StatusCode::OK);
    assert_eq!(grpc.headers()["grpc-status"], "7");
}

#[tokio::test]
async fn default_block_with_custom_response() {
    let mut doc = acl(vec![rule("ok", 1, path_starts("/ok"), "Allow")]);
    doc["DefaultAction"] =
        json!({"Block": {"CustomResponse": {"ResponseCode": 404, "CustomResponseBodyKey": "nf"}}});
    doc["CustomResponseBodies"] =
        json!({"nf": {"ContentType": "TEXT_PLAIN", "Content": "not here"}});
    let service = ServiceBuilder::new()
        .layer(WafLayer::new(compile(&doc)))
        .service_fn(echo);
    let denied = service
        .clone()
        .oneshot(Request::get("/x").body(streamed(vec![])).unwrap())
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::NOT_FOUND);
    assert_eq!(denied.headers()["content-type"], "text/plain");
    let outcome = denied.extensions().get::<WafOutcome>().unwrap();
    assert_eq!(outcome.block_status(), Some(StatusCode::NOT_FOUND));
    assert_eq!(outcome.terminating_rule(), None, "the default action");
    let ok = service
        .oneshot(Request::get("/ok").body(streamed(vec![])).unwrap())
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["x-rule"], "ok");
    assert!(ok.extensions().get::<WafOutcome>().is_none());
}

#[tokio::test]
async fn geo_match_from_a_maxmind_database() {
    let geo = json!({"GeoMatchStatement": {"CountryCodes": ["DE", "JP"]}});
    let doc = acl(vec![rule("geo", 1, geo, "Block")]);
    let countries = portcullis_waf::MaxMindCountries::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/geo/country.mmdb"
    ))
    .unwrap();
    let layer = WafLayer::new(compile(&doc)).country_lookup(countries);
    let from = |ip: &str| {
        let mut request = Request::get("/").body(Bytes::new()).unwrap();
        request
            .extensions_mut()
            .insert(portcullis_core::client_ip::PeerAddr(
                std::net::SocketAddr::new(ip.parse().unwrap(), 1234),
            ));
        request
    };
    let us = layer.evaluate(&from("192.0.2.7"));
    assert_eq!(us.action(), WafAction::Allow);
    assert_eq!(us.labels(), ["awswaf:clientip:geo:country:US".to_owned()]);
    let de = layer.evaluate(&from("2001:db8:2::1"));
    assert_eq!(de.action(), WafAction::Block);
    assert_eq!(de.labels(), ["awswaf:clientip:geo:country:DE".to_owned()]);
    assert_eq!(
        layer.evaluate(&from("203.0.113.1")).action(),
        WafAction::Block
    );
    let unknown = layer.evaluate(&from("10.1.2.3"));
    assert_eq!(unknown.action(), WafAction::Allow);
    assert!(unknown.labels().is_empty());
}

fn rate_acl(key: Value, limit: u64, window: u64) -> Value {
    let mut statement = json!({"RateBasedStatement": {"Limit": limit, "EvaluationWindowSec": window,
        "ScopeDownStatement": path_starts("/api")}});
    for (k, v) in key.as_object().unwrap() {
        statement["RateBasedStatement"][k] = v.clone();
    }
    acl(vec![rule("rate", 1, statement, "Block")])
}

#[tokio::test]
async fn rate_based_counts_exactly_and_forgets_after_the_window() {
    let clock = ManualClock::at_unix(1_700_000_000);
    let layer = WafLayer::new(compile(&rate_acl(
        json!({"AggregateKeyType": "IP"}),
        10,
        60,
    )))
    .clock(clock.clone());
    let hit = |ip: &str, uri: &str| layer.evaluate(&support::from_ip(ip, uri)).action();
    for i in 0..10 {
        assert_eq!(hit("192.0.2.1", "/api/x"), WafAction::Allow, "request {i}");
        clock.advance(Duration::from_secs(5));
    }
    // The 11th request within 60 s is over the limit.
    assert_eq!(hit("192.0.2.1", "/api/x"), WafAction::Block);
    // Another IP has its own count; out-of-scope requests are not counted.
    assert_eq!(hit("192.0.2.2", "/api/x"), WafAction::Allow);
    assert_eq!(hit("192.0.2.1", "/static"), WafAction::Allow);
    // t0 + 50 s now. At t0 + 66 s the first two requests (t0, t0 + 5) have left
    // the 60 s window: 9 of the 11 counted remain, and this one makes 10.
    clock.advance(Duration::from_secs(16));
    assert_eq!(hit("192.0.2.1", "/api/x"), WafAction::Allow);
    assert_eq!(hit("192.0.2.1", "/api/x"), WafAction::Block);
    clock.advance(Duration::from_secs(120));
    assert_eq!(hit("192.0.2.1", "/api/x"), WafAction::Allow);
}

#[tokio::test]
async fn rate_based_constant_forwarded_and_custom_keys() {
    let clock = ManualClock::at_unix(1_700_000_000);
    let constant = WafLayer::new(compile(&rate_acl(
        json!({"AggregateKeyType": "CONSTANT"}),
        10,
        120,
    )))
    .clock(clock.clone());
    for i in 0..10 {
        assert_eq!(
            constant
                .evaluate(&support::from_ip(&format!("192.0.2.{i}"), "/api"))
                .action(),
            WafAction::Allow
        );
    }
    assert_eq!(
        constant
            .evaluate(&support::from_ip("198.51.100.1", "/api"))
            .action(),
        WafAction::Block
    );

    let forwarded = WafLayer::new(compile(&rate_acl(
        json!({"AggregateKeyType": "FORWARDED_IP", "ForwardedIPConfig": {"HeaderName": "X-Forwarded-For", "FallbackBehavior": "NO_MATCH"}}),
        10,
        300,
    )))
    .clock(clock.clone());
    let via = |xff: &str| {
        Request::get("/api")
            .header("x-forwarded-for", xff)
            .body(String::new())
            .unwrap()
    };
    for _ in 0..10 {
        assert_eq!(
            forwarded.evaluate(&via("203.0.113.5, 10.0.0.1")).action(),
            WafAction::Allow
        );
    }
    assert_eq!(
        forwarded.evaluate(&via("203.0.113.5")).action(),
        WafAction::Block
    );
    assert_eq!(
        forwarded.evaluate(&via("203.0.113.6")).action(),
        WafAction::Allow
    );
    assert_eq!(
        forwarded
            .evaluate(&Request::get("/api").body(String::new()).unwrap())
            .action(),
        WafAction::Allow
    );

    let custom = WafLayer::new(compile(&rate_acl(
        json!({"AggregateKeyType": "CUSTOM_KEYS", "CustomKeys": [
            {"Header": {"Name": "x-api-key", "TextTransformations": [{"Priority": 0, "Type": "LOWERCASE"}]}},
            {"HTTPMethod": {}}]}),
        10,
        600,
    )))
    .clock(clock.clone());
    let keyed = |key: &str, method: &str| {
        Request::builder()
            .method(method)
            .uri("/api")
            .header("x-api-key", key)
            .body(String::new())
            .unwrap()
    };
    for _ in 0..5 {
        assert_eq!(
            custom.evaluate(&keyed("ABC", "GET")).action(),
            WafAction::Allow
        );
        assert_eq!(
            custom.evaluate(&keyed("abc", "GET")).action(),
            WafAction::Allow
        );
    }
    assert_eq!(
        custom.evaluate(&keyed("abc", "GET")).action(),
        WafAction::Block
    );
    assert_eq!(
        custom.evaluate(&keyed("abc", "POST")).action(),
        WafAction::Allow
    );
    // No key header: not counted, not matched.
    assert_eq!(
        custom
            .evaluate(&Request::get("/api").body(String::new()).unwrap())
            .action(),
        WafAction::Allow
    );
}

async fn send_body(layer: &WafLayer, chunks: Vec<&'static [u8]>) -> (StatusCode, Bytes) {
    let service = ServiceBuilder::new().layer(layer.clone()).service_fn(echo);
    let response = service
        .oneshot(Request::post("/upload").body(streamed(chunks)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    (
        status,
        response.into_body().collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test]
async fn body_is_inspected_and_passed_on_whole_and_unchanged() {
    let layer = WafLayer::new(
        AclSources::from_json(
            &acl(vec![rule(
                "evil",
                1,
                body_contains("EVIL", "CONTINUE"),
                "Block",
            )])
            .to_string(),
        )
        .unwrap()
        .with_body_inspection_limit(16)
        .compile()
        .unwrap(),
    );
    // Split across frames, within the limit: found.
    assert_eq!(
        send_body(&layer, vec![b"abc E", b"VIL def"]).await.0,
        StatusCode::FORBIDDEN
    );
    // Past the limit (CONTINUE inspects the first 16 bytes only): not found,
    // and the inner service gets every byte.
    let (status, echoed) =
        send_body(&layer, vec![b"0123456789", b"abcdef", b"ghEVILjk", b"tail"]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(echoed, "0123456789abcdefghEVILjktail");
    let (status, echoed) = send_body(&layer, vec![b"clean body"]).await;
    assert_eq!(
        (status, echoed),
        (StatusCode::OK, Bytes::from("clean body"))
    );
}

#[tokio::test]
async fn a_body_that_fails_while_inspected_is_refused_with_its_reason() {
    type Failing =
        StreamBody<tokio_stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>>;
    let layer = WafLayer::new(compile(&acl(vec![rule(
        "evil",
        1,
        body_contains("EVIL", "CONTINUE"),
        "Block",
    )])));
    let called = Arc::new(AtomicUsize::new(0));
    let inner_calls = called.clone();
    let service =
        ServiceBuilder::new()
            .layer(layer)
            .service_fn(move |_: Request<WafBody<Failing>>| {
                inner_calls.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::new()))) }
            });
    let frames = vec![
        Ok(Frame::data(Bytes::from_static(b"abc"))),
        Err(std::io::Error::other("connection reset")),
    ];
    let response = service
        .oneshot(
            Request::post("/upload")
                .body(StreamBody::new(tokio_stream::iter(frames)))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        called.load(Ordering::SeqCst),
        0,
        "the inner service is not called"
    );
    let refusal = response.extensions().get::<WafRefusal>().unwrap();
    assert!(!refusal.is_blocked());
    assert_eq!(refusal.detail(), "unreadable_body");
    assert_eq!(refusal.decision().reason(), "BAD_REQUEST_BODY");
    assert!(response.extensions().get::<WafOutcome>().is_none());
}

#[tokio::test]
async fn oversize_handling_match_no_match_continue() {
    let build = |handling: &str| {
        WafLayer::new(
            AclSources::from_json(
                &acl(vec![rule("r", 1, body_contains("EVIL", handling), "Block")]).to_string(),
            )
            .unwrap()
            .with_body_inspection_limit(8)
            .compile()
            .unwrap(),
        )
    };
    let big_clean: Vec<&'static [u8]> = vec![b"aaaaaaaa", b"bbbbbbbb"];
    let big_evil_early: Vec<&'static [u8]> = vec![b"EVILaaaa", b"bbbbbbbb"];
    let small_evil: Vec<&'static [u8]> = vec![b"EVIL"];

    let cont = build("CONTINUE");
    assert_eq!(send_body(&cont, big_clean.clone()).await.0, StatusCode::OK);
    assert_eq!(
        send_body(&cont, big_evil_early.clone()).await.0,
        StatusCode::FORBIDDEN
    );

    let matched = build("MATCH");
    assert_eq!(
        send_body(&matched, big_clean.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send_body(&matched, small_evil.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(send_body(&matched, vec![b"fine"]).await.0, StatusCode::OK);

    let no_match = build("NO_MATCH");
    assert_eq!(send_body(&no_match, big_evil_early).await.0, StatusCode::OK);
    assert_eq!(
        send_body(&no_match, small_evil).await.0,
        StatusCode::FORBIDDEN
    );
}

#[test]
fn association_config_sets_the_body_limit() {
    let mut doc = acl(vec![rule("r", 1, body_contains("x", "CONTINUE"), "Block")]);
    doc["AssociationConfig"] =
        json!({"RequestBody": {"API_GATEWAY": {"DefaultSizeInspectionLimit": "KB_64"}}});
    assert_eq!(compile(&doc).body_inspection_limit(), 64 * 1024);
    assert_eq!(compile(&acl(vec![])).body_inspection_limit(), 16 * 1024);
}

/// The configuration error `doc` fails to load with.
fn load_error(doc: &Value) -> ConfigError {
    match AclSources::from_json(&doc.to_string()).and_then(|s| s.compile()) {
        Err(LoadError::Config(error)) => error,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn load_errors_name_the_json_path() {
    let nested = acl(vec![
        rule("a", 1, path_starts("/a"), "Block"),
        rule("b", 2, path_starts("/b"), "Block"),
        rule("c", 3, path_starts("/c"), "Block"),
        rule(
            "d",
            4,
            json!({"AndStatement": {"Statements": [path_starts("/d"), {"AsnMatchStatement": {"AsnList": [64496]}}]}}),
            "Block",
        ),
    ]);
    let err = load_error(&nested);
    assert_eq!(
        err.path,
        "Rules[3].Statement.AndStatement.Statements[1].AsnMatchStatement"
    );
    assert_eq!(
        err.message(),
        "AsnMatchStatement is not supported: it needs AWS's ASN database"
    );
    assert!(
        err.to_string()
            .contains("Rules[3].Statement.AndStatement.Statements[1]"),
        "{err}"
    );

    let managed = acl(vec![rule(
        "m",
        1,
        json!({"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": "AWSManagedRulesCommonRuleSet"}}),
        "Block",
    )]);
    // A managed group loads (tests/managed.rs), but its rule takes an
    // OverrideAction, not an Action.
    let err = load_error(&managed);
    assert_eq!(err.path, "Rules[0].OverrideAction");
    assert!(err.message.contains("OverrideAction"), "{err}");

    let captcha = acl(vec![rule("c", 1, path_starts("/"), "Captcha")]);
    assert_eq!(load_error(&captcha).path, "Rules[0].Action.Captcha");
    let challenge = acl(vec![rule("c", 1, path_starts("/"), "Challenge")]);
    assert_eq!(
        load_error(&challenge).message(),
        "the Challenge action is not supported: it needs AWS's token and puzzle service; use Block or Count"
    );

    let bad_position = acl(vec![rule(
        "p",
        1,
        json!({"ByteMatchStatement": {"SearchString": "x", "PositionalConstraint": "SOMEWHERE",
        "FieldToMatch": {"UriPath": {}}, "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}}),
        "Block",
    )]);
    let err = load_error(&bad_position);
    assert_eq!(
        err.path,
        "Rules[0].Statement.ByteMatchStatement.PositionalConstraint"
    );
    assert!(
        err.message().starts_with("unknown variant `SOMEWHERE`"),
        "{err}"
    );

    let bad_transform = acl(vec![rule(
        "t",
        1,
        json!({"ByteMatchStatement": {"SearchString": "x", "PositionalConstraint": "CONTAINS",
        "FieldToMatch": {"UriPath": {}}, "TextTransformations": [{"Priority": 0, "Type": "ROT13"}]}}),
        "Block",
    )]);
    assert_eq!(
        load_error(&bad_transform).path,
        "Rules[0].Statement.ByteMatchStatement.TextTransformations[0].Type"
    );

    let bad_regex = acl(vec![rule(
        "r",
        1,
        json!({"OrStatement": {"Statements": [path_starts("/"), {"RegexMatchStatement": {"RegexString": "(?<=a)b",
        "FieldToMatch": {"UriPath": {}}, "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}}]}}),
        "Block",
    )]);
    assert_eq!(
        load_error(&bad_regex).path,
        "Rules[0].Statement.OrStatement.Statements[1].RegexMatchStatement.RegexString"
    );

    let low_limit = acl(vec![rule(
        "r",
        1,
        json!({"RateBasedStatement": {"Limit": 5, "AggregateKeyType": "IP"}}),
        "Block",
    )]);
    assert_eq!(
        load_error(&low_limit).path,
        "Rules[0].Statement.RateBasedStatement.Limit"
    );
    let bad_window = acl(vec![rule(
        "r",
        1,
        json!({"RateBasedStatement": {"Limit": 50, "EvaluationWindowSec": 90, "AggregateKeyType": "IP"}}),
        "Block",
    )]);
    assert_eq!(
        load_error(&bad_window).path,
        "Rules[0].Statement.RateBasedStatement.EvaluationWindowSec"
    );
    let nested_rate = acl(vec![rule(
        "r",
        1,
        json!({"NotStatement": {"Statement": {"RateBasedStatement": {"Limit": 50, "AggregateKeyType": "IP"}}}}),
        "Block",
    )]);
    assert_eq!(
        load_error(&nested_rate).path,
        "Rules[0].Statement.NotStatement.Statement.RateBasedStatement"
    );
    let constant = acl(vec![rule(
        "r",
        1,
        json!({"RateBasedStatement": {"Limit": 50, "AggregateKeyType": "CONSTANT"}}),
        "Block",
    )]);
    assert_eq!(
        load_error(&constant).path,
        "Rules[0].Statement.RateBasedStatement.ScopeDownStatement"
    );

    let missing_set = acl(vec![rule(
        "i",
        1,
        json!({"IPSetReferenceStatement": {"ARN": "arn:nope"}}),
        "Block",
    )]);
    let err = load_error(&missing_set);
    assert_eq!(
        (err.path(), err.message()),
        (
            "Rules[0].Statement.IPSetReferenceStatement.ARN",
            "no IP set with ARN `arn:nope` was supplied (AclSources::with_ip_set_json)"
        )
    );

    let unsupported_field = acl(vec![rule(
        "f",
        1,
        json!({"ByteMatchStatement": {"SearchString": "x", "PositionalConstraint": "CONTAINS",
        "FieldToMatch": {"HeaderOrder": {"OversizeHandling": "MATCH"}}, "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}}),
        "Block",
    )]);
    assert_eq!(
        load_error(&unsupported_field).path,
        "Rules[0].Statement.ByteMatchStatement.FieldToMatch.HeaderOrder"
    );

    let duplicate = acl(vec![
        rule("a", 1, path_starts("/"), "Block"),
        rule("b", 1, path_starts("/"), "Block"),
    ]);
    assert_eq!(load_error(&duplicate).path, "Rules[1].Priority");

    let mut bad_body = acl(vec![rule("b", 1, path_starts("/"), "Block")]);
    bad_body["Rules"][0]["Action"] = json!({"Block": {"CustomResponse": {"ResponseCode": 403, "CustomResponseBodyKey": "missing"}}});
    assert_eq!(
        load_error(&bad_body).path,
        "Rules[0].Action.Block.CustomResponse.CustomResponseBodyKey"
    );

    let bad_set = AclSources::from_json(&acl(vec![]).to_string())
        .unwrap()
        .with_ip_set_json(r#"{"IPSet":{"ARN":"arn:s","Addresses":["10.0.0.0/8","nope"]}}"#)
        .unwrap();
    let doc = acl(vec![rule(
        "i",
        1,
        json!({"IPSetReferenceStatement": {"ARN": "arn:s"}}),
        "Block",
    )]);
    let err = AclSources::from_json(&doc.to_string())
        .unwrap()
        .with_ip_set_json(r#"{"IPSet":{"ARN":"arn:s","Addresses":["10.0.0.0/8","nope"]}}"#)
        .unwrap()
        .compile()
        .unwrap_err();
    let LoadError::Config(err) = err else {
        panic!("expected a configuration error, got {err:?}");
    };
    // A fault in a referenced set: the referring statement, then the path
    // inside the set.
    assert_eq!(
        (err.path(), err.message()),
        (
            "Rules[0].Statement.IPSetReferenceStatement.Addresses[1]",
            "`nope` is not an IP address or CIDR"
        )
    );
    assert!(
        bad_set.compile().is_ok(),
        "an unused bad set is not compiled"
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let doc = json!({"WebACL": {"Name": "acl", "Id": "x", "Capacity": 3, "ManagedByFirewallManager": false,
        "DefaultAction": {"Allow": {}}, "TokenDomains": ["a"], "NewFieldFromTheFuture": {"x": 1},
        "Rules": [{"Name": "r", "Priority": 0, "Action": {"Block": {}}, "Unknown": 1,
            "Statement": {"ByteMatchStatement": {"SearchString": "/x", "PositionalConstraint": "EXACTLY", "Extra": true,
                "FieldToMatch": {"UriPath": {}}, "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}}}]},
        "LockToken": "abc"});
    let acl = compile(&doc);
    assert_eq!(acl.name(), "acl");
    assert_eq!(acl.rule_count(), 1);
}

#[test]
fn malformed_json_is_an_error_not_a_panic() {
    for text in [
        "",
        "{",
        "[]",
        "{\"Name\": 1}",
        "{\"Name\":\"a\",\"DefaultAction\":{\"Allow\":{}},\"Rules\":[{}]}",
    ] {
        assert!(
            AclSources::from_json(text)
                .and_then(|s| s.compile())
                .is_err(),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_swaps_atomically_under_concurrent_requests() {
    let layer = WafLayer::new(compile(&acl(vec![rule(
        "block-a",
        1,
        path_starts("/a"),
        "Block",
    )])));
    let reloader = layer.reloader();
    let served = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..4 {
        let layer = layer.clone();
        let served = served.clone();
        tasks.push(tokio::spawn(async move {
            let service = ServiceBuilder::new().layer(layer).service_fn(echo);
            for i in 0..500 {
                let uri = if (i + t) % 2 == 0 { "/a" } else { "/b" };
                let response = service
                    .clone()
                    .oneshot(Request::get(uri).body(streamed(vec![])).unwrap())
                    .await
                    .unwrap();
                // Every request is answered, by one ACL or the other.
                assert!(matches!(
                    response.status(),
                    StatusCode::OK | StatusCode::FORBIDDEN
                ));
                served.fetch_add(1, Ordering::Relaxed);
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for i in 0..50 {
        let target = if i % 2 == 0 { "/b" } else { "/a" };
        reloader.reload(compile(&acl(vec![rule(
            "block",
            1,
            path_starts(target),
            "Block",
        )])));
        tokio::task::yield_now().await;
    }
    reloader.reload(compile(&acl(vec![rule(
        "block-b",
        1,
        path_starts("/b"),
        "Block",
    )])));
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(served.load(Ordering::Relaxed), 2000);
    // After the last reload, the new ACL is in force for every clone.
    assert_eq!(
        layer
            .evaluate(&Request::get("/a").body(String::new()).unwrap())
            .action(),
        WafAction::Allow
    );
    assert_eq!(
        layer
            .evaluate(&Request::get("/b").body(String::new()).unwrap())
            .action(),
        WafAction::Block
    );
    assert_eq!(reloader.current().rule_count(), 1);
}

#[test]
fn reload_keeps_rate_counters_of_the_same_rule() {
    let clock = ManualClock::at_unix(1_700_000_000);
    let doc = rate_acl(json!({"AggregateKeyType": "IP"}), 10, 60);
    let layer = WafLayer::new(compile(&doc)).clock(clock);
    for _ in 0..10 {
        assert_eq!(
            layer
                .evaluate(&support::from_ip("192.0.2.1", "/api"))
                .action(),
            WafAction::Allow
        );
    }
    layer.reloader().reload(compile(&doc));
    assert_eq!(
        layer
            .evaluate(&support::from_ip("192.0.2.1", "/api"))
            .action(),
        WafAction::Block
    );
}
