//! Criterion benches; the README records the figures and the command.
//!
//! - `acl20/*`: the 20-rule ACL (byte, regex, regex set, IP set, SQLi, XSS,
//!   size, rate-based) on a 1 KB JSON-body POST, through the engine and through
//!   the tower service, and on a small GET.
//! - `ipset/*`: one lookup in a 10,000-CIDR set, next to a linear `ipnet` scan.
//! - `rules/*`: evaluation cost with 10 and 100 non-matching rules.
//! - `loadtest_acl10/*`: the full-stack load test's ten-rule web ACL
//!   (read from `portcullis-loadtest`'s source, so the two cannot drift) on
//!   the load test's request.
//! - `managed_crs/*`: AWS's Core rule set (`AWSManagedRulesCommonRuleSet`,
//!   this crate's equivalent) alone in a web ACL, on a small GET with a query.

#![allow(missing_docs, clippy::unwrap_used)]

use std::convert::Infallible;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group};
use http::Request;
use http_body_util::Full;
use ipnet::{IpNet, Ipv4Net};
use portcullis_core::client_ip::PeerAddr;
use portcullis_waf::ipset::IpRanges;
use portcullis_waf::{AclSources, WafLayer};
use serde_json::{Value, json};
use tower::{Service, ServiceBuilder, ServiceExt};

fn tt(kinds: &[&str]) -> Value {
    Value::Array(
        kinds
            .iter()
            .enumerate()
            .map(|(i, k)| json!({"Priority": i, "Type": k}))
            .collect(),
    )
}

fn rule(i: usize, statement: Value, action: &str) -> Value {
    json!({"Name": format!("rule-{i}"), "Priority": i, "Statement": statement, "Action": {action: {}},
        "VisibilityConfig": {"SampledRequestsEnabled": false, "CloudWatchMetricsEnabled": false, "MetricName": "m"}})
}

/// Deterministic pseudo-random numbers.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn cidrs(n: usize) -> Vec<String> {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|_| {
            let addr = Ipv4Addr::from(rng.next() as u32);
            let prefix = 16 + (rng.next() % 17) as u8;
            Ipv4Net::new(addr, prefix).unwrap().trunc().to_string()
        })
        .collect()
}

fn acl20() -> WafLayer {
    let json = |scope: &str| json!({"JsonBody": {"MatchPattern": {"All": {}}, "MatchScope": scope, "InvalidFallbackBehavior": "EVALUATE_AS_STRING", "OversizeHandling": "CONTINUE"}});
    let byte = |field: Value, s: &str, pos: &str, t: &[&str]| json!({"ByteMatchStatement": {"SearchString": s, "PositionalConstraint": pos, "FieldToMatch": field, "TextTransformations": tt(t)}});
    let regex = |field: Value, r: &str, t: &[&str]| json!({"RegexMatchStatement": {"RegexString": r, "FieldToMatch": field, "TextTransformations": tt(t)}});
    let ua = json!({"SingleHeader": {"Name": "user-agent"}});
    let statements = vec![
        json!({"IPSetReferenceStatement": {"ARN": "arn:block"}}),
        byte(
            json!({"UriPath": {}}),
            "/admin",
            "STARTS_WITH",
            &["URL_DECODE", "LOWERCASE"],
        ),
        byte(ua.clone(), "sqlmap", "CONTAINS", &["LOWERCASE"]),
        byte(json!({"Method": {}}), "TRACE", "EXACTLY", &["NONE"]),
        byte(
            json!({"QueryString": {}}),
            "debug",
            "CONTAINS_WORD",
            &["URL_DECODE", "LOWERCASE"],
        ),
        regex(
            json!({"UriPath": {}}),
            r"\.(php|asp|jsp)$",
            &["URL_DECODE", "LOWERCASE"],
        ),
        regex(ua.clone(), "(?i)(nikto|nessus|masscan)", &["NONE"]),
        json!({"RegexPatternSetReferenceStatement": {"ARN": "arn:words", "FieldToMatch": {"UriPath": {}}, "TextTransformations": tt(&["URL_DECODE", "LOWERCASE"])}}),
        json!({"SqliMatchStatement": {"FieldToMatch": json("VALUE"), "TextTransformations": tt(&["URL_DECODE", "HTML_ENTITY_DECODE"])}}),
        json!({"SqliMatchStatement": {"FieldToMatch": {"AllQueryArguments": {}}, "TextTransformations": tt(&["URL_DECODE", "HTML_ENTITY_DECODE"])}}),
        json!({"XssMatchStatement": {"FieldToMatch": json("VALUE"), "TextTransformations": tt(&["URL_DECODE", "HTML_ENTITY_DECODE"])}}),
        json!({"XssMatchStatement": {"FieldToMatch": {"AllQueryArguments": {}}, "TextTransformations": tt(&["URL_DECODE", "HTML_ENTITY_DECODE"])}}),
        json!({"SizeConstraintStatement": {"FieldToMatch": {"Body": {"OversizeHandling": "MATCH"}}, "ComparisonOperator": "GT", "Size": 8192, "TextTransformations": tt(&["NONE"])}}),
        json!({"SizeConstraintStatement": {"FieldToMatch": {"QueryString": {}}, "ComparisonOperator": "GT", "Size": 2048, "TextTransformations": tt(&["NONE"])}}),
        json!({"SizeConstraintStatement": {"FieldToMatch": {"SingleHeader": {"Name": "cookie"}}, "ComparisonOperator": "GT", "Size": 4096, "TextTransformations": tt(&["NONE"])}}),
        byte(json("KEY"), "__proto__", "EXACTLY", &["NONE"]),
        byte(
            json!({"Headers": {"MatchPattern": {"All": {}}, "MatchScope": "VALUE", "OversizeHandling": "CONTINUE"}}),
            "${jndi:",
            "CONTAINS",
            &["URL_DECODE_UNI", "LOWERCASE"],
        ),
        json!({"NotStatement": {"Statement": byte(json!({"UriPath": {}}), "/", "STARTS_WITH", &["NONE"])}}),
        json!({"AndStatement": {"Statements": [byte(json!({"Method": {}}), "DELETE", "EXACTLY", &["NONE"]), byte(json!({"UriPath": {}}), "/api/", "STARTS_WITH", &["NONE"])]}}),
        json!({"RateBasedStatement": {"Limit": 2_000_000_000u64, "EvaluationWindowSec": 300, "AggregateKeyType": "IP"}}),
    ];
    assert_eq!(statements.len(), 20);
    let rules: Vec<Value> = statements
        .into_iter()
        .enumerate()
        .map(|(i, s)| rule(i, s, "Block"))
        .collect();
    let acl = json!({"Name": "bench", "DefaultAction": {"Allow": {}}, "Rules": rules});
    let ip_set = json!({"IPSet": {"ARN": "arn:block", "Addresses": cidrs(10_000)}});
    let words = json!({"RegexPatternSet": {"ARN": "arn:words", "RegularExpressionList": [
        {"RegexString": "wp-admin"}, {"RegexString": "phpmyadmin"}, {"RegexString": "cgi-bin"}]}});
    let compiled = AclSources::from_json(&acl.to_string())
        .unwrap()
        .with_ip_set_json(&ip_set.to_string())
        .unwrap()
        .with_regex_pattern_set_json(&words.to_string())
        .unwrap()
        .compile()
        .unwrap();
    assert_eq!(compiled.rule_count(), 20);
    WafLayer::new(compiled)
}

/// A realistic 1 KB JSON order.
fn json_body_1kb() -> Bytes {
    let items: Vec<Value> = (0..6)
        .map(|i| json!({"sku": format!("SKU-{i:05}"), "name": "Blue ceramic coffee mug, 350 ml", "qty": i + 1, "price": 12.5, "gift": false}))
        .collect();
    let mut body = json!({"orderId": "b7c6a3e0-5d1f-4c1e-9a77-2f0d3c9b8e11", "customer": {"name": "Jane O'Neil", "email": "jane@example.com",
        "address": "42 Harbour Street, Flat 3, Bristol"}, "items": items, "note": "Please leave at the door."})
    .to_string();
    while body.len() < 1024 {
        body.insert_str(body.len() - 1, ",\"pad\":\"x\"");
    }
    Bytes::from(body)
}

fn post(body: Bytes) -> Request<Bytes> {
    let mut request = Request::post("/api/orders?source=web&campaign=spring")
        .header("host", "api.example.com")
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36")
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("cookie", "session=3f9a1c; theme=dark")
        .body(body)
        .unwrap();
    request.extensions_mut().insert(PeerAddr(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
        40000,
    )));
    request
}

fn bench_acl20(c: &mut Criterion) {
    let layer = acl20();
    let body = json_body_1kb();
    assert!((1024..1100).contains(&body.len()), "{}", body.len());
    let request = post(body.clone());
    assert_eq!(
        layer.evaluate(&request).action(),
        portcullis_waf::WafAction::Allow
    );
    let mut group = c.benchmark_group("acl20");
    group.bench_function("evaluate_1kb_json_post", |b| {
        b.iter(|| black_box(layer.evaluate(black_box(&request))))
    });

    let get = post(Bytes::new());
    let (mut parts, empty) = get.into_parts();
    parts.method = http::Method::GET;
    parts.uri = "/api/orders/42".parse().unwrap();
    parts.headers.remove("content-type");
    let get = Request::from_parts(parts, empty);
    assert_eq!(
        layer.evaluate(&get).action(),
        portcullis_waf::WafAction::Allow
    );
    group.bench_function("evaluate_small_get", |b| {
        b.iter(|| black_box(layer.evaluate(black_box(&get))))
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .service_fn(|_req: Request<_>| async {
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
        });
    group.bench_function("service_1kb_json_post", |b| {
        b.iter(|| {
            let mut service = service.clone();
            let request = post(body.clone()).map(Full::new);
            runtime.block_on(
                async move { service.ready().await.unwrap().call(request).await.unwrap() },
            )
        })
    });
    let small_get = || {
        let mut request = Request::get("/api/orders/42")
            .header("user-agent", "curl/8.5")
            .body(Full::new(Bytes::new()))
            .unwrap();
        request.extensions_mut().insert(PeerAddr(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
            40000,
        )));
        request
    };
    let status = runtime
        .block_on(service.clone().oneshot(small_get()))
        .unwrap()
        .status();
    assert_eq!(status, http::StatusCode::OK, "the small GET is allowed");
    group.bench_function("service_small_get", |b| {
        b.iter(|| {
            let mut service = service.clone();
            let mut request = Request::get("/api/orders/42")
                .header("user-agent", "curl/8.5")
                .body(Full::new(Bytes::new()))
                .unwrap();
            request.extensions_mut().insert(PeerAddr(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
                40000,
            )));
            runtime.block_on(
                async move { service.ready().await.unwrap().call(request).await.unwrap() },
            )
        })
    });
    group.bench_function("bare_service_small_get", |b| {
        let bare = tower::service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
        });
        b.iter(|| {
            let mut service = bare;
            let request = Request::get("/api/orders/42")
                .header("user-agent", "curl/8.5")
                .body(Full::new(Bytes::new()))
                .unwrap();
            runtime.block_on(
                async move { service.ready().await.unwrap().call(request).await.unwrap() },
            )
        })
    });
    group.finish();
}

fn bench_ipset(c: &mut Criterion) {
    let list = cidrs(10_000);
    let set = IpRanges::from_cidrs(&list).unwrap();
    let nets: Vec<IpNet> = list.iter().map(|s| s.parse().unwrap()).collect();
    let mut rng = XorShift(42);
    let probes: Vec<IpAddr> = (0..1024)
        .map(|_| IpAddr::V4(Ipv4Addr::from(rng.next() as u32)))
        .collect();
    let hits = probes.iter().filter(|ip| set.contains(**ip)).count();
    assert!(
        hits > 0 && hits < probes.len(),
        "a mix of hits and misses: {hits}"
    );
    let mut group = c.benchmark_group("ipset");
    let mut i = 0;
    group.bench_function("ranges_10k_cidrs", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            black_box(set.contains(black_box(probes[i])))
        })
    });
    group.bench_function("linear_ipnet_scan_10k_cidrs", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            black_box(nets.iter().any(|n| n.contains(&probes[i])))
        })
    });
    group.finish();
}

fn rules_acl(n: usize) -> WafLayer {
    let rules: Vec<Value> = (0..n)
        .map(|i| {
            let statement = match i % 4 {
                0 => json!({"ByteMatchStatement": {"SearchString": format!("/blocked-{i}"), "PositionalConstraint": "STARTS_WITH",
                    "FieldToMatch": {"UriPath": {}}, "TextTransformations": tt(&["LOWERCASE"])}}),
                1 => json!({"ByteMatchStatement": {"SearchString": format!("bad-agent-{i}"), "PositionalConstraint": "CONTAINS",
                    "FieldToMatch": {"SingleHeader": {"Name": "user-agent"}}, "TextTransformations": tt(&["LOWERCASE"])}}),
                2 => json!({"RegexMatchStatement": {"RegexString": format!("^/v{i}/[a-z]+/internal"),
                    "FieldToMatch": {"UriPath": {}}, "TextTransformations": tt(&["URL_DECODE"])}}),
                _ => json!({"SizeConstraintStatement": {"FieldToMatch": {"QueryString": {}}, "ComparisonOperator": "GT",
                    "Size": 4096 + i, "TextTransformations": tt(&["NONE"])}}),
            };
            rule(i, statement, "Block")
        })
        .collect();
    WafLayer::from_json(
        &json!({"Name": "n", "DefaultAction": {"Allow": {}}, "Rules": rules}).to_string(),
    )
    .unwrap()
}

fn bench_rules(c: &mut Criterion) {
    let request = Request::get("/api/orders/42?page=2")
        .header("user-agent", "Mozilla/5.0 Chrome/126.0")
        .body(Bytes::new())
        .unwrap();
    let mut group = c.benchmark_group("rules");
    for n in [10, 100] {
        let layer = rules_acl(n);
        assert_eq!(
            layer.evaluate(&request).action(),
            portcullis_waf::WafAction::Allow
        );
        group.bench_with_input(BenchmarkId::new("evaluate_small_get", n), &n, |b, _| {
            b.iter(|| black_box(layer.evaluate(black_box(&request))))
        });
    }
    group.finish();
}

/// The load test's source, from which its web ACL and request are read.
const LOADTEST_SETUP: &str = include_str!("../../portcullis-loadtest/src/setup.rs");

/// The raw string constant `name` of the load test's setup.
fn loadtest_const(name: &str) -> &'static str {
    let raw = format!("const {name}: &str = r#\"");
    let start = LOADTEST_SETUP.find(&raw).unwrap() + raw.len();
    let len = LOADTEST_SETUP[start..].find("\"#;").unwrap();
    &LOADTEST_SETUP[start..start + len]
}

/// The load test's ten-rule web ACL and its IP set.
fn loadtest_acl10() -> WafLayer {
    let mut sources = AclSources::from_json(loadtest_const("WEB_ACL")).unwrap();
    let ip_sets: Vec<Value> = serde_json::from_str(loadtest_const("IP_SETS")).unwrap();
    for ip_set in ip_sets {
        sources = sources.with_ip_set_json(&ip_set.to_string()).unwrap();
    }
    let compiled = sources.compile().unwrap();
    assert_eq!(compiled.rule_count(), 10);
    WafLayer::new(compiled)
}

/// The load test's request as the WAF sees it: `PATH` with the headers `wrk`
/// sends (host, the API key, a bearer token of the same length as the
/// benchmark's), from loopback, with no body.
fn loadtest_request() -> Request<Bytes> {
    let marker = "pub(crate) const PATH: &str = \"";
    let start = LOADTEST_SETUP.find(marker).unwrap() + marker.len();
    let path = &LOADTEST_SETUP[start..start + LOADTEST_SETUP[start..].find('"').unwrap()];
    assert!(
        path.contains('?'),
        "the load test's request has a query: {path}"
    );
    let mut request = Request::get(path)
        .header("host", "127.0.0.1:18081")
        .header("x-api-key", "LoadTestKey0123456789abcdefghij")
        .header("authorization", format!("Bearer {}", "e".repeat(820)))
        .body(Bytes::new())
        .unwrap();
    request.extensions_mut().insert(PeerAddr(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        40000,
    )));
    request
}

fn bench_loadtest_acl10(c: &mut Criterion) {
    let layer = loadtest_acl10();
    let request = loadtest_request();
    let outcome = layer.evaluate(&request);
    assert_eq!(outcome.action(), portcullis_waf::WafAction::Allow);
    assert_eq!(
        outcome.matched_rules().collect::<Vec<_>>(),
        ["label-gets"],
        "only the counting rule matches"
    );
    let mut group = c.benchmark_group("loadtest_acl10");
    group.bench_function("evaluate_get", |b| {
        b.iter(|| black_box(layer.evaluate(black_box(&request))))
    });
    group.finish();
}

/// The Core rule set alone in a blocking web ACL.
fn managed_crs() -> WafLayer {
    let acl = json!({"Name": "crs", "DefaultAction": {"Allow": {}}, "Rules": [{
        "Name": "crs", "Priority": 0, "OverrideAction": {"None": {}},
        "Statement": {"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": "AWSManagedRulesCommonRuleSet"}},
        "VisibilityConfig": {"SampledRequestsEnabled": false, "CloudWatchMetricsEnabled": false, "MetricName": "crs"}}]});
    WafLayer::from_json(&acl.to_string()).unwrap()
}

/// A small browser GET with a query, from a public address.
fn small_get_with_query() -> Request<Bytes> {
    let mut request = Request::get("/api/orders?status=shipped&page=2")
        .header("host", "api.example.com")
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36")
        .header("accept", "application/json")
        .header("cookie", "session=3f9a1c; theme=dark")
        .body(Bytes::new())
        .unwrap();
    request.extensions_mut().insert(PeerAddr(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
        40000,
    )));
    request
}

fn bench_managed_crs(c: &mut Criterion) {
    let layer = managed_crs();
    let request = small_get_with_query();
    let outcome = layer.evaluate(&request);
    assert_eq!(outcome.action(), portcullis_waf::WafAction::Allow);
    assert_eq!(outcome.matched_rules().count(), 0);
    let mut group = c.benchmark_group("managed_crs");
    group.bench_function("evaluate_small_get", |b| {
        b.iter(|| black_box(layer.evaluate(black_box(&request))))
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_acl20,
    bench_ipset,
    bench_rules,
    bench_loadtest_acl10,
    bench_managed_crs
);

/// `WAF_PROFILE=N` runs only `N` evaluations of the 20-rule ACL on the 1 KB
/// JSON POST, with no criterion machinery, for
/// `valgrind --tool=callgrind` instruction counts (run it with N and with 0
/// and divide the difference by N); `WAF_PROFILE_LOADTEST=N` the same with
/// the load test's ten-rule ACL and request, `WAF_PROFILE_CRS=N` with the
/// Core rule set on a small GET. Otherwise, criterion's main.
fn main() {
    type Case = fn() -> (WafLayer, Request<Bytes>);
    let cases: [(&str, Case); 3] = [
        ("WAF_PROFILE_LOADTEST", || {
            (loadtest_acl10(), loadtest_request())
        }),
        ("WAF_PROFILE_CRS", || {
            (managed_crs(), small_get_with_query())
        }),
        ("WAF_PROFILE", || (acl20(), post(json_body_1kb()))),
    ];
    for (variable, case) in cases {
        if let Some(n) = std::env::var(variable)
            .ok()
            .and_then(|n| n.parse::<usize>().ok())
        {
            let (layer, request) = case();
            for _ in 0..n {
                black_box(layer.evaluate(black_box(&request)));
            }
            return;
        }
    }
    if let Some(n) = std::env::var("WAF_CPU_TIME")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
    {
        cpu_time(n.max(1));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

/// `WAF_CPU_TIME=N`: the per-thread CPU time of one evaluation (the 1 KB JSON
/// POST and the small GET on the 20-rule ACL, the load test's request on
/// its ten-rule ACL and the Core rule set on a small GET), the median of 21 rounds of `N`. Unlike wall-clock time
/// it does not count the time the thread waits for a core, so it holds on a
/// loaded machine.
fn cpu_time(n: u32) {
    let thread_ns = || {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        t.tv_sec as u128 * 1_000_000_000 + t.tv_nsec as u128
    };
    let acl20 = acl20();
    let acl10 = loadtest_acl10();
    let post = post(json_body_1kb());
    let mut get = Request::get("/api/orders/42")
        .header("user-agent", "curl/8.5")
        .body(Bytes::new())
        .unwrap();
    get.extensions_mut().insert(PeerAddr(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
        40000,
    )));
    let loadtest = loadtest_request();
    let crs = managed_crs();
    let crs_get = small_get_with_query();
    for (name, layer, request) in [
        ("acl20/evaluate_1kb_json_post", &acl20, &post),
        ("acl20/evaluate_small_get", &acl20, &get),
        ("loadtest_acl10/evaluate_get", &acl10, &loadtest),
        ("managed_crs/evaluate_small_get", &crs, &crs_get),
    ] {
        let mut rounds: Vec<f64> = (0..21)
            .map(|_| {
                let start = thread_ns();
                for _ in 0..n {
                    black_box(layer.evaluate(black_box(request)));
                }
                (thread_ns() - start) as f64 / f64::from(n)
            })
            .collect();
        rounds.sort_by(f64::total_cmp);
        println!(
            "{name}: {:.2} µs CPU per evaluation (median of 21 rounds of {n}; min {:.2}, max {:.2})",
            rounds[10] / 1000.0,
            rounds[0] / 1000.0,
            rounds[20] / 1000.0
        );
    }
}
