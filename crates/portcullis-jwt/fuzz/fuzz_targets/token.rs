//! Arbitrary bytes as the token, and as the whole `Authorization` header,
//! through the layer with a static RS256 key and an HMAC secret: never a panic,
//! and nothing unsigned is ever accepted.
#![no_main]

use std::sync::{Arc, OnceLock};

use futures_util::FutureExt as _;
use libfuzzer_sys::fuzz_target;
use portcullis_core::clock::ManualClock;
use portcullis_jwt::{HmacSecret, Issuer, JwtLayer};

const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"k","alg":"RS256","e":"AQAB","n":"n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw"}]}"#;

fn layer() -> &'static JwtLayer {
    static LAYER: OnceLock<JwtLayer> = OnceLock::new();
    LAYER.get_or_init(|| {
        JwtLayer::builder()
            .issuer(
                Issuer::new("https://issuer.fuzz")
                    .jwks(JWKS)
                    .hmac_secret(HmacSecret::new("fuzzing secret of at least 32 bytes!")),
            )
            .clock(Arc::new(ManualClock::at_unix(1_800_000_000)))
            .build()
            .expect("valid config")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    // Static keys: the verification is synchronous.
    if let Some(Ok(_)) = layer().verify(token).now_or_never() {
        panic!("accepted a token no key signed: {token:?}");
    }
    if let Ok(value) = http::HeaderValue::from_bytes(data) {
        let mut request = http::Request::new(());
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value);
        let mut svc = tower_layer::Layer::layer(layer(), tower_service_fn());
        let response = tower_service::Service::call(&mut svc, request).now_or_never();
        if let Some(Ok(response)) = response {
            assert_ne!(response.status(), 200, "unsigned token passed");
        }
    }
});

#[derive(Clone)]
struct Ok200;

impl tower_service::Service<http::Request<()>> for Ok200 {
    type Response = http::Response<String>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<()>) -> Self::Future {
        std::future::ready(Ok(http::Response::new(String::new())))
    }
}

fn tower_service_fn() -> Ok200 {
    Ok200
}
