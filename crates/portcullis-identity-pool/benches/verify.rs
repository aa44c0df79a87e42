//! Verifying a request signed with the pool's temporary credentials against
//! one signed with static credentials, through the same `SigV4Layer` with
//! the same one-statement policy, in one run.
//!
//! Run: `cargo bench -p portcullis-identity-pool --bench verify`.
//!
//! First, per-thread CPU time over 200,000 requests of each kind (repeatable
//! under load), printed as µs/request and as ratios; then criterion's
//! wall-clock figures. Requests are built outside the timed section, and each
//! future is polled once with a no-op waker (the providers answer at once).

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, Request, Response, Uri};
use http_body_util::Full;
use portcullis_core::clock::{ManualClock, SharedClock};
use portcullis_iam::{ExecuteApiArn, PolicyDocument};
use portcullis_identity_pool::{IdentityPool, IdentityPoolConfig};
use portcullis_sigv4::{
    Credential, CredentialProvider, SigV4Body, SigV4Layer, StaticCredentialProvider,
};
use portcullis_test_support::cpu::thread_cpu_time;
use portcullis_test_support::poll_once;
use portcullis_test_support::sigv4::{Signing, sign_request};
use serde_json::json;
use tower::{Service, ServiceBuilder};

const NOW: u64 = 1_800_000_000;
const REQUESTS: usize = 200_000;
const URI: &str = "https://api.example.com/loyalty/C123/get?full=true";

fn policy() -> serde_json::Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "execute-api:Invoke",
        "Resource": "arn:aws:execute-api:us-east-1:123456789012:api/prod/GET/loyalty/*"}]})
}

fn pool(clock: &ManualClock, cache_entries: usize) -> IdentityPool {
    let config = IdentityPoolConfig::from_json(
        &json!({
            "region": "us-east-1", "account_id": "123456789012",
            "keys": [{"id": "k1", "secret": "bench-key-bench-key-bench-key-bench-key"}],
            "allow_unauthenticated": true,
            "roles": {"User": {"policies": [policy()]}},
            "authenticated_role": "User", "unauthenticated_role": "User",
            "cache_entries": cache_entries,
        })
        .to_string(),
    )
    .expect("config");
    IdentityPool::builder(config)
        .clock(Arc::new(clock.clone()) as SharedClock)
        .build()
        .expect("pool")
}

/// A signed request, rebuilt for each call.
struct Fixture {
    uri: Uri,
    headers: HeaderMap,
}

impl Fixture {
    fn signed(access_key: &str, secret: &str, token: Option<&str>) -> Self {
        let mut request = Request::get(URI).body(()).expect("request");
        let signing = Signing::at(UNIX_EPOCH + Duration::from_secs(NOW))
            .credentials(access_key, secret, token);
        sign_request(&mut request, b"", &signing);
        Self {
            uri: request.uri().clone(),
            headers: request.headers().clone(),
        }
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::get(self.uri.clone())
            .body(Full::new(Bytes::new()))
            .expect("request");
        *request.headers_mut() = self.headers.clone();
        request
    }
}

type Svc =
    Box<dyn FnMut(Request<Full<Bytes>>) -> Response<portcullis_core::ResponseBody<Full<Bytes>>>>;

fn service(provider: impl CredentialProvider, clock: &ManualClock) -> Svc {
    let api = ExecuteApiArn::new("us-east-1", "123456789012", "api", "prod").expect("arn");
    let layer = SigV4Layer::new(api, provider).clock(Arc::new(clock.clone()) as SharedClock);
    let mut service = ServiceBuilder::new().layer(layer).service_fn(
        |_request: Request<SigV4Body<Full<Bytes>>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        },
    );
    Box::new(move |request| {
        poll_once(std::future::poll_fn(|cx| service.poll_ready(cx))).expect("ready");
        poll_once(service.call(request)).expect("infallible")
    })
}

/// This thread's CPU time per request, in µs, over `REQUESTS` requests.
fn cpu_per_request(service: &mut Svc, fixture: &Fixture) -> f64 {
    let requests: Vec<_> = (0..REQUESTS).map(|_| fixture.request()).collect();
    let start = thread_cpu_time();
    for request in requests {
        let response = service(request);
        assert_eq!(response.status(), 200);
    }
    (thread_cpu_time() - start).as_secs_f64() * 1e6 / REQUESTS as f64
}

struct Setup {
    static_fixture: Fixture,
    temp_fixture: Fixture,
    static_service: Svc,
    temp_service: Svc,
    cold_service: Svc,
}

fn setup(rt: &tokio::runtime::Runtime) -> Setup {
    let clock = ManualClock::at_unix(NOW);
    let warm = pool(&clock, 10_000);
    let cold = pool(&clock, 0);
    let issued = rt
        .block_on(warm.get_credentials(&Default::default()))
        .expect("guest credentials");
    let temp_fixture = Fixture::signed(
        issued.access_key_id(),
        issued.secret_key().expose(),
        Some(issued.session_token().expose()),
    );
    let static_secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    let static_fixture = Fixture::signed("AKIDSTATICEXAMPLE", static_secret, None);
    let policy: PolicyDocument = serde_json::from_value(policy()).expect("policy");
    let static_provider = StaticCredentialProvider::new().with(
        Credential::new(
            "AKIDSTATICEXAMPLE",
            static_secret,
            "arn:aws:iam::123456789012:user/alice",
        )
        .with_policy(policy),
    );
    let mut setup = Setup {
        static_service: service(static_provider, &clock),
        temp_service: service(warm.provider(), &clock),
        cold_service: service(cold.provider(), &clock),
        static_fixture,
        temp_fixture,
    };
    // Every variant checks its answer before it is timed.
    for (service, fixture) in [
        (&mut setup.static_service, &setup.static_fixture),
        (&mut setup.temp_service, &setup.temp_fixture),
        (&mut setup.cold_service, &setup.temp_fixture),
    ] {
        assert_eq!(service(fixture.request()).status(), 200);
    }
    setup
}

/// `IDPOOL_ONLY=static|cached|cold` runs 20,000 requests of one kind and
/// nothing else: for `valgrind --tool=callgrind`, whose instruction counts
/// do not move with the machine's load.
fn only(s: &mut Setup, kind: &str) {
    let (service, fixture) = match kind {
        "static" => (&mut s.static_service, &s.static_fixture),
        "cached" => (&mut s.temp_service, &s.temp_fixture),
        _ => (&mut s.cold_service, &s.temp_fixture),
    };
    for _ in 0..20_000 {
        assert_eq!(service(fixture.request()).status(), 200);
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut s = setup(&rt);
    if let Ok(kind) = std::env::var("IDPOOL_ONLY") {
        only(&mut s, &kind);
        std::process::exit(0);
    }

    let st = cpu_per_request(&mut s.static_service, &s.static_fixture);
    let warm = cpu_per_request(&mut s.temp_service, &s.temp_fixture);
    let cold = cpu_per_request(&mut s.cold_service, &s.temp_fixture);
    println!("cpu_time: {REQUESTS} signed GETs each, per-thread CPU time");
    println!("cpu_time: static credentials             {st:.3} us/request");
    println!(
        "cpu_time: temporary credentials (cached)  {warm:.3} us/request  ratio {:.2}",
        warm / st
    );
    println!(
        "cpu_time: temporary credentials (cold)    {cold:.3} us/request  ratio {:.2}",
        cold / st
    );

    let mut group = c.benchmark_group("verify_signed_get");
    group.bench_function("static_credentials", |b| {
        b.iter_batched(
            || s.static_fixture.request(),
            |request| black_box((s.static_service)(request)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("temporary_credentials_cached", |b| {
        b.iter_batched(
            || s.temp_fixture.request(),
            |request| black_box((s.temp_service)(request)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("temporary_credentials_cold_no_cache", |b| {
        b.iter_batched(
            || s.temp_fixture.request(),
            |request| black_box((s.cold_service)(request)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches_group, benches);
criterion_main!(benches_group);
