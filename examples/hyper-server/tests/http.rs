//! The example served on 127.0.0.1 and called over real HTTP by hyper-util's
//! client: each layer of the configured stack answers as API Gateway would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_server::{CONFIG, DEMO_API_KEY, gateway, serve};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use portcullis::core::clock::ManualClock;
use serde_json::{Value, json};

struct Running {
    addr: SocketAddr,
    clock: ManualClock,
    client: Client<HttpConnector, Empty<Bytes>>,
}

/// What came back: status, `x-amzn-ErrorType`, body.
type Answer = (StatusCode, Option<String>, Value);

async fn start() -> Running {
    // 2026-11-24 12:00 UTC: half a day before the quota's period resets.
    let clock = ManualClock::at_unix(1_795_521_600);
    let gateway = gateway(CONFIG, Arc::new(clock.clone())).expect("the shipped config loads");
    let (listener, addr) = portcullis_test_support::serve::listener().await;
    tokio::spawn(serve(listener, gateway));
    Running {
        addr,
        clock,
        client: Client::builder(TokioExecutor::new()).build_http(),
    }
}

impl Running {
    async fn get(&self, path_and_query: &str, key: Option<&str>) -> Answer {
        let mut request = Request::get(format!("http://{}{path_and_query}", self.addr));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        let response = self
            .client
            .request(request.body(Empty::new()).expect("request"))
            .await
            .expect("the server answers");
        let status = response.status();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body = serde_json::from_slice(&body).expect("a JSON body");
        (status, error_type, body)
    }
}

fn refused(status: StatusCode, error_type: &str, message: &str) -> Answer {
    (
        status,
        Some(error_type.to_owned()),
        json!({"message": message}),
    )
}

#[tokio::test]
async fn health_is_open_and_the_api_needs_the_key() {
    let app = start().await;
    assert_eq!(
        app.get("/health", None).await,
        (StatusCode::OK, None, json!({"status": "ok"}))
    );
    assert_eq!(
        app.get("/loyalty/C-1001", None).await,
        refused(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden")
    );
    assert_eq!(
        app.get("/loyalty/C-1001", Some("NotTheKey0123456789abcdefgh"))
            .await,
        refused(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden")
    );
    assert_eq!(
        app.get("/loyalty/C-1002", Some(DEMO_API_KEY)).await,
        (
            StatusCode::OK,
            None,
            json!({"customerId": "C-1002", "points": 58_250, "tier": "GOLD", "partner": "partner-1"})
        )
    );
}

#[tokio::test]
async fn the_waf_blocks_sql_injection_before_the_key_is_looked_at() {
    let app = start().await;
    let (status, error_type, _) = app
        .get(
            "/loyalty/C-1001?id=1%27%20OR%20%271%27=%271",
            Some(DEMO_API_KEY),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_type.as_deref(), Some("WAFFilteredException"));
    // Blocked before the throttle: the key's burst of 2 is whole.
    for _ in 0..2 {
        assert_eq!(
            app.get("/loyalty/C-1001", Some(DEMO_API_KEY)).await.0,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn the_usage_plan_throttles_then_runs_out_for_the_day() {
    let app = start().await;
    let ok = |answer: Answer| answer.0 == StatusCode::OK;
    // Burst of 2, then Too Many Requests.
    assert!(ok(app.get("/loyalty/C-1001", Some(DEMO_API_KEY)).await));
    assert!(ok(app.get("/loyalty/C-1001", Some(DEMO_API_KEY)).await));
    assert_eq!(
        app.get("/loyalty/C-1001", Some(DEMO_API_KEY)).await,
        refused(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequestsException",
            "Too Many Requests"
        )
    );
    // A throttled request used no quota: 3 more fit in the day's 5.
    for _ in 0..3 {
        app.clock.advance(Duration::from_secs(1));
        assert!(ok(app.get("/loyalty/C-1001", Some(DEMO_API_KEY)).await));
    }
    app.clock.advance(Duration::from_secs(1));
    assert_eq!(
        app.get("/loyalty/C-1001", Some(DEMO_API_KEY)).await,
        refused(
            StatusCode::TOO_MANY_REQUESTS,
            "LimitExceededException",
            "Limit Exceeded"
        )
    );
    // The next UTC day, the quota is whole again.
    app.clock.advance(Duration::from_secs(12 * 3600));
    assert!(ok(app.get("/loyalty/C-1001", Some(DEMO_API_KEY)).await));
}
