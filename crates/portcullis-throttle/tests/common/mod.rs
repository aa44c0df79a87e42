//! Shared helpers for the integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use portcullis_core::ResponseBody;
use portcullis_core::clock::ManualClock;
use portcullis_core::context::ApiKeyContext;
use portcullis_core::context::RequestContextExt;
use portcullis_core::plan::{ThrottleSettings, UsagePlan};
use portcullis_throttle::{Throttle, ThrottleLayer, ThrottleStore};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

pub const API: &str = "a1b2c3d4e5";
pub const STAGE: &str = "prod";

pub fn settings(rate: f64, burst: u32) -> ThrottleSettings {
    ThrottleSettings::new(rate, burst).unwrap()
}

pub fn plan(id: &str, rate: f64, burst: u32) -> UsagePlan {
    UsagePlan::new(id)
        .unwrap()
        .with_throttle(settings(rate, burst))
}

pub fn clock() -> ManualClock {
    ManualClock::at_unix(1_700_000_000)
}

pub type Svc =
    BoxCloneSyncService<Request<Full<Bytes>>, Response<ResponseBody<Full<Bytes>>>, Infallible>;

type Handler =
    fn(Request<Full<Bytes>>) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>;

fn echo(_: Request<Full<Bytes>>) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>> {
    std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok")))))
}

/// The layer over an echo service, with the manual clock.
pub fn service<St: ThrottleStore>(layer: ThrottleLayer<St>, clock: &ManualClock) -> Svc {
    let layer = layer.clock(Arc::new(clock.clone()));
    let svc: Throttle<tower::util::ServiceFn<Handler>, St> = ServiceBuilder::new()
        .layer(layer)
        .service_fn(echo as Handler);
    BoxCloneSyncService::new(svc)
}

/// A request from the API key `key` under `plan`.
pub fn keyed(method: Method, path: &str, key: &str, plan: &Arc<UsagePlan>) -> Request<Full<Bytes>> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .body(Full::new(Bytes::new()))
        .unwrap();
    request
        .request_context_mut()
        .set_api_key(ApiKeyContext::new(key).with_usage_plan(Arc::clone(plan)));
    request
}

pub fn get(key: &str, plan: &Arc<UsagePlan>) -> Request<Full<Bytes>> {
    keyed(Method::GET, "/pets", key, plan)
}

pub async fn status(svc: &Svc, request: Request<Full<Bytes>>) -> StatusCode {
    svc.clone().oneshot(request).await.unwrap().status()
}

pub async fn statuses(
    svc: &Svc,
    n: usize,
    mut request: impl FnMut() -> Request<Full<Bytes>>,
) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(status(svc, request()).await.as_u16());
    }
    out
}

pub async fn body_of(response: Response<ResponseBody<Full<Bytes>>>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}
