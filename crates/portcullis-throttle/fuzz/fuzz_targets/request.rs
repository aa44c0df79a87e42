//! Untrusted request parts through the layer: the method, the path, the key
//! header's bytes and a per-method selector from configuration. The layer
//! must answer 200 or 429 and never panic, and a key's second request in the
//! same instant against a burst of one must be refused.
#![no_main]

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use http::{HeaderName, HeaderValue, Method, Request, Response};
use libfuzzer_sys::fuzz_target;
use portcullis_core::clock::ManualClock;
use portcullis_core::plan::{MethodSelector, ThrottleSettings};
use portcullis_throttle::{KeyBy, ThrottleLayer};
use tower_layer::Layer;
use tower_service::Service;

fn status<S>(service: &mut S, request: Request<()>) -> u16
where
    S: Service<Request<()>, Response = Response<portcullis_core::ResponseBody<String>>, Error = Infallible>,
{
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(service.call(request)).poll(&mut cx) {
        Poll::Ready(Ok(response)) => response.status().as_u16(),
        Poll::Ready(Err(never)) => match never {},
        Poll::Pending => panic!("the in-memory store answers at once"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |&b| b == b'\n');
    let (Some(method), Some(path), Some(key), selector) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let Ok(method) = Method::from_bytes(method) else { return };
    let Ok(path) = std::str::from_utf8(path) else { return };
    let Ok(uri) = http::Uri::try_from(path) else { return };
    let Ok(value) = HeaderValue::from_bytes(key) else { return };
    let name = HeaderName::from_static("x-key");
    let mut layer = ThrottleLayer::new("api", "stage")
        .clock(Arc::new(ManualClock::at_unix(1_700_000_000)))
        .key_by(KeyBy::header(name.clone()))
        .key_limit(ThrottleSettings::new(0.5, 1).expect("valid"));
    if let Some(selector) = selector
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<MethodSelector>().ok())
    {
        layer = layer.stage_limit(selector, ThrottleSettings::new(1000.0, 1000).expect("valid"));
    }
    let mut service = layer.layer(tower_service_fn());
    let request = || {
        let mut request = Request::builder().method(method.clone()).uri(uri.clone()).body(()).expect("valid parts");
        request.headers_mut().insert(name.clone(), value.clone());
        request
    };
    assert_eq!(status(&mut service, request()), 200);
    assert_eq!(status(&mut service, request()), 429);
});

#[derive(Clone)]
struct Ok200;

impl Service<Request<()>> for Ok200 {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: Request<()>) -> Self::Future {
        std::future::ready(Ok(Response::new(String::new())))
    }
}

fn tower_service_fn() -> Ok200 {
    Ok200
}
