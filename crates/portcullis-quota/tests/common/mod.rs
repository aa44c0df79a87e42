//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use portcullis_core::ResponseBody;
use portcullis_core::context::ApiKeyContext;
use portcullis_core::context::RequestContextExt;
use portcullis_core::plan::{QuotaPeriod, QuotaSettings, UsagePlan};
use portcullis_quota::QuotaLayer;
use portcullis_quota::store::QuotaStore;
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, ServiceExt};

pub type TestService = BoxCloneService<Request<String>, Response<String>, Infallible>;

/// A plan with only a quota.
pub fn plan(id: &str, limit: u64, period: QuotaPeriod, offset: u64) -> Arc<UsagePlan> {
    Arc::new(
        UsagePlan::new(id)
            .expect("valid plan id")
            .with_quota(QuotaSettings::with_offset(limit, period, offset).expect("valid quota")),
    )
}

/// A request carrying what the API-key layer would have left for `key`.
pub fn request_for(key: &str, plan: &Arc<UsagePlan>) -> Request<String> {
    let mut request = Request::new(String::new());
    request
        .request_context_mut()
        .set_api_key(ApiKeyContext::new(key).with_usage_plan(plan.clone()));
    request
}

/// The layer around an echo service, with bodies collected to strings.
pub fn service<St: QuotaStore>(layer: QuotaLayer<St>) -> TestService {
    let service = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: Request<String>| async {
            Ok::<_, Infallible>(Response::new("ok".to_owned()))
        });
    BoxCloneService::new(
        service.and_then(|response: Response<ResponseBody<String>>| async move {
            let (parts, body) = response.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            Ok(Response::from_parts(
                parts,
                String::from_utf8_lossy(&bytes).into_owned(),
            ))
        }),
    )
}

/// Sends one request and returns the response.
pub async fn send(service: &TestService, request: Request<String>) -> Response<String> {
    service.clone().oneshot(request).await.expect("infallible")
}

/// Sends one request for `key` and returns its status.
pub async fn status(service: &TestService, key: &str, plan: &Arc<UsagePlan>) -> StatusCode {
    send(service, request_for(key, plan)).await.status()
}

/// Sends requests until one is refused; returns how many were admitted.
pub async fn admitted_until_refused(
    service: &TestService,
    key: &str,
    plan: &Arc<UsagePlan>,
) -> u64 {
    let mut admitted = 0;
    loop {
        match status(service, key, plan).await {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => return admitted,
            other => panic!("unexpected status {other}"),
        }
        assert!(admitted <= 1_000_000, "never refused");
    }
}
