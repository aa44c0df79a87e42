//! Observability, end to end: the demo binary with its Prometheus exporter
//! on an ephemeral `--metrics-addr`, driven over real HTTP. A scrape of
//! `/metrics` after a few requests holds each layer's
//! `portcullis_<layer>_decisions_total` and `_decision_seconds`; the logs
//! hold one `portcullis.request` span per request, under the request id the
//! response carries in `x-amzn-RequestId`, naming the API key's id and never
//! its value.

mod support;

use http::{Method, StatusCode};
use support::{API_KEY, Answer, Http, Server, start_with, try_loyalty};

/// The demo's API key id (`config/gateway.toml`).
const KEY_ID: &str = "demo-key";

/// The demo with its exporter on a free port; the exporter's base URL.
fn start_with_metrics() -> (Server, String) {
    let server = start_with(&["--metrics-addr", "127.0.0.1:0"]);
    server.wait_for_output("metrics on http://", 0);
    let output = server.output_text();
    let url = output
        .lines()
        .find_map(|line| line.strip_prefix("metrics on "))
        .expect("the demo prints where /metrics is served")
        .trim()
        .to_owned();
    (server, url)
}

/// The value of the sample `name{labels}` in a Prometheus text scrape:
/// the first sample of `name` whose labels include every one of `labels`
/// (`key="value"` pairs), or `None`.
fn sample(scrape: &str, name: &str, labels: &[&str]) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (labels_part, value) = match rest.strip_prefix('{') {
            Some(rest) => rest.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        let present: Vec<&str> = labels_part.split(',').collect();
        labels
            .iter()
            .all(|l| present.contains(l))
            .then(|| value.trim().parse().ok())?
    })
}

/// `GET url`: the exporter's text, after checking its status and type.
async fn scrape(url: &str) -> String {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let response = client
        .get(url.parse().expect("a URL"))
        .await
        .expect("the exporter answers");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("a body")
        .to_bytes();
    String::from_utf8(body.to_vec()).expect("UTF-8")
}

fn request_id(answer: &Answer) -> String {
    answer
        .headers
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
        .expect("every response carries x-amzn-RequestId")
        .to_owned()
}

#[tokio::test(flavor = "current_thread")]
async fn metrics_are_scraped_and_request_spans_name_the_key_id_not_its_value() {
    let (server, metrics_url) = start_with_metrics();
    let http = Http::new(&server.base);

    // The plan's burst is 2 at one request a second: of four requests at
    // once, the first is admitted and at least one is throttled.
    let mut admitted = None;
    let mut throttled = None;
    for _ in 0..4 {
        let answer = try_loyalty(&http, API_KEY).await.expect("the demo answers");
        match answer.status {
            StatusCode::OK if admitted.is_none() => admitted = Some(answer),
            StatusCode::TOO_MANY_REQUESTS if throttled.is_none() => throttled = Some(answer),
            _ => {}
        }
    }
    let admitted = admitted.expect("one request admitted");
    let throttled = throttled.expect("one request throttled");
    assert_eq!(throttled.error_type, "TooManyRequestsException");
    // A key that does not exist: refused by the API-key layer.
    let unknown = try_loyalty(&http, "NoSuchKeyNoSuchKeyNoSuchKey00")
        .await
        .expect("the demo answers");
    assert_eq!(unknown.status, StatusCode::FORBIDDEN);
    // Unsigned, without credentials: refused by IAM.
    let unsigned = http
        .send(http.request(Method::GET, "/loyalty/C-1001/get", ""))
        .await;
    assert_eq!(unsigned.status, StatusCode::FORBIDDEN);

    let scrape = scrape(&metrics_url).await;
    let count = |name: &str, labels: &[&str]| {
        sample(&scrape, name, labels)
            .unwrap_or_else(|| panic!("no {name}{labels:?} in the scrape:\n{scrape}"))
    };
    let allowed = ["outcome=\"allowed\"", "reason=\"OK\""];
    assert!(count("portcullis_throttle_decisions_total", &allowed) >= 1.0);
    assert!(
        count(
            "portcullis_throttle_decisions_total",
            &[
                "outcome=\"refused\"",
                "reason=\"THROTTLED\"",
                "level=\"key\""
            ]
        ) >= 1.0
    );
    assert!(count("portcullis_api_key_decisions_total", &allowed) >= 2.0);
    assert!(
        count(
            "portcullis_api_key_decisions_total",
            &["outcome=\"refused\"", "reason=\"INVALID_API_KEY\""]
        ) >= 1.0
    );
    assert!(count("portcullis_sigv4_decisions_total", &allowed) >= 5.0);
    assert!(
        count(
            "portcullis_sigv4_decisions_total",
            &[
                "outcome=\"refused\"",
                "reason=\"MISSING_AUTHENTICATION_TOKEN\""
            ]
        ) >= 1.0
    );
    assert!(count("portcullis_waf_decisions_total", &allowed) >= 6.0);
    assert!(count("portcullis_quota_decisions_total", &allowed) >= 1.0);
    // The latency histograms: one observation per decision made at once,
    // histograms (buckets), not summaries.
    for layer in ["api_key", "sigv4", "waf", "quota"] {
        let name = format!("portcullis_{layer}_decision_seconds_count");
        assert!(count(&name, &[]) >= 1.0, "{name}");
        let bucket = format!("portcullis_{layer}_decision_seconds_bucket");
        assert!(count(&bucket, &["le=\"+Inf\""]) >= 1.0, "{bucket}");
    }
    // The throttle times one decision in 64: its histogram is exported,
    // perhaps still empty after five decisions.
    for name in [
        "portcullis_throttle_decision_seconds_count",
        "portcullis_throttle_decision_seconds_bucket",
    ] {
        assert!(sample(&scrape, name, &[]).is_some(), "no {name}:\n{scrape}");
    }
    // Never a key id or a path as a label.
    assert!(!scrape.contains(KEY_ID), "{scrape}");
    assert!(!scrape.contains("/loyalty/"), "{scrape}");

    // The logs: each request's span, closed with everything recorded on
    // it, under the id its response carried.
    let admitted_id = request_id(&admitted);
    let throttled_id = request_id(&throttled);
    server.wait_for_output(&format!("request_id=\"{throttled_id}\""), 0);
    let output = server.output_text();
    let closed = |id: &str| -> String {
        output
            .lines()
            .filter(|line| line.contains(&format!("request_id=\"{id}\"")))
            // The request span's own close, not a layer span's inside it
            // (`portcullis.request{..}:portcullis.waf{..}: ... close`).
            .find(|line| {
                line.contains("portcullis.request")
                    && !line.contains("}:portcullis.")
                    && line.contains("close")
            })
            .unwrap_or_else(|| panic!("no closed span for {id}:\n{output}"))
            .to_owned()
    };
    let line = closed(&admitted_id);
    for field in [
        "method=GET",
        "path=\"/loyalty/C-1001/get\"",
        "key_id=\"demo-key\"",
        "principal=",
        "outcome=\"allowed\"",
        "status=200",
    ] {
        assert!(line.contains(field), "{field} missing: {line}");
    }
    let line = closed(&throttled_id);
    for field in [
        "key_id=\"demo-key\"",
        "outcome=\"refused\"",
        "reason=\"THROTTLED\"",
        "status=429",
    ] {
        assert!(line.contains(field), "{field} missing: {line}");
    }
    // One INFO line for the refusal, inside the span, naming key and reason.
    assert!(
        output.lines().any(|l| l.contains(" INFO ")
            && l.contains(&throttled_id)
            && l.contains("request refused")
            && l.contains("key_id=\"demo-key\"")
            && l.contains("reason=\"THROTTLED\"")),
        "no INFO refusal line for {throttled_id}:\n{output}"
    );
    // And never the key's value (nor any other secret the client sent).
    assert!(!output.contains(API_KEY));
    server.assert_output_has_no_secret(&http, &[KEY_ID, &admitted_id, &throttled_id]);
}
