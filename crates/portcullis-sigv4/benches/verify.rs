//! Criterion benches: verifying signed requests through `SigV4Layer`, side by
//! side with `scratchstack-aws-signature` on the same requests, in one run.
//!
//! Run: `cargo bench -p portcullis-sigv4 --bench verify`.
//!
//! Requests are built outside the timed section (`iter_batched`), and each
//! future is polled once with a no-op waker: both verifiers finish in one poll
//! here (the layer's credential provider answers at once; scratchstack's
//! signing-key service is a ready future), so no async runtime is timed.

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

mod common;

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use common::{Fixture, SECRET, T0, layer};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use portcullis_sigv4::SigV4Body;
use portcullis_test_support::poll_once;
use scratchstack_aws_principal::User;
use scratchstack_aws_signature::{
    GetSigningKeyRequest, GetSigningKeyResponse, KSecretKey, KSigningKey,
    NO_ADDITIONAL_SIGNED_HEADERS, SignatureOptions, sigv4_validate_request,
};
use tower::{Service, ServiceBuilder, ServiceExt};

fn scratchstack_now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(T0 as i64, 0).expect("timestamp")
}

/// The derived signing key, computed once (as the layer caches its own).
fn scratchstack_key() -> KSigningKey {
    SECRET.parse::<KSecretKey>().expect("secret").to_ksigning(
        scratchstack_now().date_naive(),
        "us-east-1",
        "execute-api",
    )
}

async fn scratchstack_verify<B>(request: Request<B>, signing_key: KSigningKey)
where
    B: scratchstack_aws_signature::IntoRequestBytes,
{
    let mut keys = tower::service_fn(move |_request: GetSigningKeyRequest| async move {
        let user = User::new("aws", "123456789012", "/", "alice")?;
        Ok(GetSigningKeyResponse::builder()
            .principal(user)
            .signing_key(signing_key)
            .build()?)
    });
    let result = sigv4_validate_request(
        request,
        "us-east-1",
        "execute-api",
        &mut keys,
        scratchstack_now(),
        &NO_ADDITIONAL_SIGNED_HEADERS,
        SignatureOptions::default(),
    )
    .await;
    assert!(result.is_ok(), "scratchstack refused: {result:?}");
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let get = Fixture::signed(
        "GET",
        "https://example.amazonaws.com/pets?limit=10&sort=asc",
        b"",
        false,
    );
    let post = Fixture::signed(
        "POST",
        "https://example.amazonaws.com/pets",
        &[b'x'; 1024],
        false,
    );

    let handler = |_request: Request<SigV4Body<Full<Bytes>>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    };
    let authorizing = ServiceBuilder::new().layer(layer(true)).service_fn(handler);
    let verifying = ServiceBuilder::new()
        .layer(layer(false))
        .service_fn(handler);
    let bare = tower::service_fn(|_request: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    });

    // Every variant checks its answer once before it is timed.
    let key = scratchstack_key();
    for service in [&authorizing, &verifying] {
        let response = rt
            .block_on(
                service
                    .clone()
                    .oneshot(get.request(Full::new(Bytes::new()))),
            )
            .expect("infallible");
        assert_eq!(response.status(), 200);
    }
    let response = rt
        .block_on(
            verifying
                .clone()
                .oneshot(post.request(Full::new(post.body.clone()))),
        )
        .expect("infallible");
    assert_eq!(response.status(), 200);
    rt.block_on(scratchstack_verify(get.request(()), key));
    rt.block_on(scratchstack_verify(post.request(post.body.clone()), key));

    let mut group = c.benchmark_group("signed_get");
    let empty = || Full::new(Bytes::new());
    group.bench_function("bare_service_no_layer", |b| {
        let mut service = bare;
        b.iter_batched(
            || get.request(empty()),
            |request| call_once(&mut service, request),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("portcullis_layer_verify_only", |b| {
        let mut service = verifying.clone();
        b.iter_batched(
            || get.request(empty()),
            |request| call_once(&mut service, request),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("portcullis_layer_verify_and_20_statement_policy", |b| {
        let mut service = authorizing.clone();
        b.iter_batched(
            || get.request(empty()),
            |request| call_once(&mut service, request),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("scratchstack_aws_signature", |b| {
        b.iter_batched(
            || get.request(()),
            |request| poll_once(scratchstack_verify(request, key)),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("signed_post_1k");
    group.bench_function("portcullis_layer_verify_only", |b| {
        let mut service = verifying.clone();
        b.iter_batched(
            || post.request(Full::new(post.body.clone())),
            |request| call_once(&mut service, request),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("scratchstack_aws_signature", |b| {
        b.iter_batched(
            || post.request(post.body.clone()),
            |request| poll_once(scratchstack_verify(request, key)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Polls a future once; the benched futures all finish in one poll.
fn call_once<S, R>(service: &mut S, request: R) -> S::Response
where
    S: Service<R>,
    S::Error: std::fmt::Debug,
{
    poll_once(std::future::poll_fn(|cx| service.poll_ready(cx))).expect("ready");
    let response = poll_once(service.call(request)).expect("infallible");
    black_box(response)
}

criterion_group!(benches_group, benches);
criterion_main!(benches_group);
