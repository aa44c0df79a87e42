//! portcullis-jwt's `JwtLayer` (uncached and cache hit), `jsonwebtoken`'s own
//! `decode`, and `jwt-authorizer`'s layer, on the same RS256 token and key, in
//! one criterion run; one task and 64 concurrent tasks.
//!
//! `cd crates/portcullis-jwt/peer-bench && cargo bench --bench peer`

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use futures_util::FutureExt as _;
use http::{HeaderValue, Request, Response};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use portcullis_jwt::{Issuer, JwtLayer, TokenCacheConfig};
use serde_json::{Map, Value, json};
use tower::{Service, ServiceBuilder, ServiceExt};

const ISS: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Bench";

struct Fixture {
    token: String,
    jwks: String,
    decoding: DecodingKey,
}

fn fixture() -> Fixture {
    let pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/keys/rsa1.pem"
    ))
    .expect("key");
    let encoding = EncodingKey::from_rsa_pem(&pem).expect("RSA PEM");
    let mut jwk =
        serde_json::to_value(Jwk::from_encoding_key(&encoding, Algorithm::RS256).expect("jwk"))
            .expect("json");
    jwk["kid"] = json!("bench");
    let jwk_typed: Jwk = serde_json::from_value(jwk.clone()).expect("jwk");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs();
    // A Cognito-shaped access token (about 900 bytes).
    let claims = json!({
        "sub": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "cognito:groups": ["members", "gold"],
        "iss": ISS, "version": 2, "client_id": "1example23456789", "origin_jti": "f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f",
        "event_id": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "token_use": "access",
        "scope": "loyalty/read loyalty/write openid", "auth_time": now, "exp": now + 3600, "iat": now,
        "jti": "00112233-4455-6677-8899-aabbccddeeff", "username": "jane.doe",
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("bench".into());
    Fixture {
        token: encode(&header, &claims, &encoding).expect("sign"),
        jwks: json!({"keys": [jwk]}).to_string(),
        decoding: DecodingKey::from_jwk(&jwk_typed).expect("decoding key"),
    }
}

fn layer(f: &Fixture, cache: TokenCacheConfig) -> JwtLayer {
    JwtLayer::builder()
        .issuer(
            Issuer::user_pool_at(ISS)
                .jwks(f.jwks.clone())
                .client_ids(["1example23456789"]),
        )
        .cache(cache)
        .build()
        .expect("config")
}

type Svc = tower::util::BoxCloneSyncService<
    Request<()>,
    Response<portcullis_core::ResponseBody<String>>,
    Infallible,
>;

fn service(layer: JwtLayer) -> Svc {
    tower::util::BoxCloneSyncService::new(ServiceBuilder::new().layer(layer).service_fn(
        |_req: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) },
    ))
}

type PeerSvc =
    tower::util::BoxCloneSyncService<Request<()>, axum07::response::Response, Infallible>;

fn peer_service(rt: &tokio::runtime::Runtime, f: &Fixture) -> PeerSvc {
    use jwt_authorizer::{IntoLayer, JwtAuthorizer, Validation};
    let authorizer = rt
        .block_on(
            JwtAuthorizer::<Map<String, Value>>::from_jwks_text(&f.jwks)
                .validation(Validation::new().iss(&[ISS]))
                .build(),
        )
        .expect("jwt-authorizer builds");
    tower::util::BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(authorizer.into_layer())
            .service_fn(|_req: Request<()>| async {
                Ok::<_, Infallible>(axum07::response::Response::new(axum07::body::Body::empty()))
            }),
    )
}

fn request(value: &HeaderValue) -> Request<()> {
    let mut request = Request::new(());
    request
        .headers_mut()
        .insert(http::header::AUTHORIZATION, value.clone());
    request
}

/// One request through the service; the decision is synchronous, so the
/// future is ready at once and no executor is needed.
fn call(svc: &mut Svc, value: &HeaderValue) {
    let response = svc
        .call(request(value))
        .now_or_never()
        .expect("ready")
        .expect("infallible");
    assert_eq!(response.status(), 200);
}

/// This thread's CPU time: unlike wall time, it does not count the time the
/// thread waits for a core on a loaded machine.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// The ratios the issue sets targets for, measured interleaved (A, B, C, D,
/// A, ...) in one process so that a loaded machine slows every side alike:
/// each side's wall time and thread CPU time over rounds of 300 requests,
/// and the median over 21 rounds of each ratio to `decode`. `ROUNDS=n`
/// changes the number of rounds.
fn interleaved_ratios(f: &Fixture, value: &HeaderValue, validation: &Validation) {
    let mut uncached = service(layer(f, TokenCacheConfig::disabled()));
    let mut cached = service(layer(f, TokenCacheConfig::default()));
    call(&mut cached, value);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut peer = peer_service(&rt, f);
    // The same boxed service_fn without the layer: what a request costs the
    // bench itself (building it aside), for the hit's figure over bare.
    let mut bare = tower::util::BoxCloneSyncService::new(ServiceBuilder::new().service_fn(
        |_req: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) },
    ));
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(21);
    const PER_ROUND: u32 = 300;
    const BLOCK: u32 = 20;
    // [wall, cpu] x [decode, uncached, peer, hit, bare] per round.
    let mut wall: Vec<[f64; 5]> = Vec::new();
    let mut cpu: Vec<[f64; 5]> = Vec::new();
    for _ in 0..rounds {
        let mut w = [Duration::ZERO; 5];
        let mut c = [Duration::ZERO; 5];
        // Blocks of BLOCK calls per side, the sides' order rotating from
        // block to block: the clocks are read per block (reading the thread
        // CPU clock is a system call), the requests are built before.
        for b in 0..(PER_ROUND / BLOCK) as usize {
            for k in 0..5 {
                let which = (b + k) % 5;
                let mut requests: Vec<Request<()>> = (0..BLOCK).map(|_| request(value)).collect();
                let cpu_start = thread_cpu();
                let start = Instant::now();
                let mut ok = true;
                for r in requests.drain(..) {
                    ok &= match which {
                        0 => decode::<Map<String, Value>>(
                            black_box(&f.token),
                            &f.decoding,
                            validation,
                        )
                        .map(black_box)
                        .is_ok(),
                        1 => status_ok(uncached.call(r).now_or_never()),
                        2 => peer
                            .call(r)
                            .now_or_never()
                            .is_some_and(|res| res.is_ok_and(|res| res.status() == 200)),
                        3 => status_ok(cached.call(r).now_or_never()),
                        _ => bare
                            .call(r)
                            .now_or_never()
                            .is_some_and(|res| res.is_ok_and(|res| res.status() == 200)),
                    };
                }
                w[which] += start.elapsed();
                c[which] += thread_cpu().saturating_sub(cpu_start);
                drop(requests);
                assert!(ok, "side {which} accepts the token");
            }
        }
        wall.push(w.map(|d| d.as_secs_f64()));
        cpu.push(c.map(|d| d.as_secs_f64()));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let ratio =
        |rows: &[[f64; 5]], side: usize| median(rows.iter().map(|r| r[side] / r[0]).collect());
    let per_call = |rows: &[[f64; 5]], side: usize| {
        median(
            rows.iter()
                .map(|r| r[side] / f64::from(PER_ROUND) * 1e6)
                .collect(),
        )
    };
    for (name, rows) in [("wall", &wall), ("thread CPU", &cpu)] {
        println!(
            "interleaved RS256, {name} time, median of {rounds} rounds of {PER_ROUND} in blocks of {BLOCK}: \
             layer_uncached / jsonwebtoken_decode = {:.3}; jwt_authorizer / jsonwebtoken_decode = {:.3}; \
             decode = {:.2} us; layer_uncached = {:.2} us; jwt_authorizer = {:.2} us; layer_cache_hit = {:.3} us; \
             bare service = {:.3} us; layer_cache_hit over bare = {:.3} us",
            ratio(rows, 1),
            ratio(rows, 2),
            per_call(rows, 0),
            per_call(rows, 1),
            per_call(rows, 2),
            per_call(rows, 3),
            per_call(rows, 4),
            median(
                rows.iter()
                    .map(|r| (r[3] - r[4]) / f64::from(PER_ROUND) * 1e6)
                    .collect()
            ),
        );
    }
}

fn status_ok(
    response: Option<Result<Response<portcullis_core::ResponseBody<String>>, Infallible>>,
) -> bool {
    response.is_some_and(|r| r.is_ok_and(|r| r.status() == 200))
}

/// Runs one operation `N` times (default 20,000) and nothing else, for
/// `perf stat -e cycles,instructions`: CPU cycles do not count the time the
/// process waits for a core, so the figure holds on a loaded machine.
/// `op` is `setup` (building the request only), `decode`, `uncached`, `hit` or
/// `peer`.
fn cycles(f: &Fixture, value: &HeaderValue, validation: &Validation, op: &str) {
    let n: u64 = std::env::var("N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let mut uncached = service(layer(f, TokenCacheConfig::disabled()));
    let mut cached = service(layer(f, TokenCacheConfig::default()));
    call(&mut cached, value);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut peer = peer_service(&rt, f);
    for _ in 0..n {
        let r = request(value);
        match op {
            "setup" => drop(black_box(r)),
            "decode" => {
                black_box(
                    decode::<Map<String, Value>>(black_box(&f.token), &f.decoding, validation)
                        .expect("valid"),
                );
                drop(black_box(r));
            }
            "uncached" => drop(black_box(uncached.call(r).now_or_never())),
            "hit" => drop(black_box(cached.call(r).now_or_never())),
            "peer" => drop(black_box(peer.call(r).now_or_never())),
            other => panic!("unknown op {other}"),
        }
    }
}

/// Where the layer's time goes, interleaved: `PARTS=1 cargo bench --bench peer`.
fn parts(f: &Fixture, value: &HeaderValue, validation: &Validation) {
    let plain = layer(f, TokenCacheConfig::disabled());
    let mut uncached = service(plain.clone());
    let (message, signature) = f.token.rsplit_once('.').expect("jwt");
    let mut t = [Duration::ZERO; 4];
    for _ in 0..3000 {
        let start = Instant::now();
        black_box(
            decode::<Map<String, Value>>(black_box(&f.token), &f.decoding, validation)
                .expect("valid"),
        );
        t[0] += start.elapsed();
        let start = Instant::now();
        black_box(
            jsonwebtoken::crypto::verify(
                signature,
                message.as_bytes(),
                &f.decoding,
                Algorithm::RS256,
            )
            .expect("ok"),
        );
        t[1] += start.elapsed();
        let start = Instant::now();
        black_box(plain.verify(&f.token).now_or_never());
        t[2] += start.elapsed();
        let r = request(value);
        let start = Instant::now();
        black_box(uncached.call(r).now_or_never());
        t[3] += start.elapsed();
    }
    let base = t[0].as_secs_f64();
    println!(
        "parts / decode: crypto::verify {:.3}, JwtLayer::verify {:.3}, service {:.3}",
        t[1].as_secs_f64() / base,
        t[2].as_secs_f64() / base,
        t[3].as_secs_f64() / base
    );
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    let value = HeaderValue::from_str(&format!("Bearer {}", f.token)).expect("header");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[ISS]);

    if let Ok(op) = std::env::var("CYCLES") {
        cycles(&f, &value, &validation, &op);
        return;
    }
    if std::env::var_os("PARTS").is_some() {
        parts(&f, &value, &validation);
        return;
    }
    interleaved_ratios(&f, &value, &validation);
    if std::env::var_os("INTERLEAVED_ONLY").is_some() {
        return;
    }

    let mut group = c.benchmark_group("rs256");
    group.bench_function("jsonwebtoken_decode", |b| {
        b.iter(|| {
            decode::<Map<String, Value>>(black_box(&f.token), &f.decoding, &validation)
                .expect("valid")
        })
    });
    let mut uncached = service(layer(&f, TokenCacheConfig::disabled()));
    group.bench_function("layer_uncached", |b| {
        b.iter_batched(
            || request(&value),
            |r| uncached.call(r).now_or_never(),
            BatchSize::SmallInput,
        )
    });
    let mut cached = service(layer(&f, TokenCacheConfig::default()));
    call(&mut cached, &value);
    group.bench_function("layer_cache_hit", |b| {
        b.iter_batched(
            || request(&value),
            |r| cached.call(r).now_or_never(),
            BatchSize::SmallInput,
        )
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut peer = peer_service(&rt, &f);
    let response = peer
        .call(request(&value))
        .now_or_never()
        .expect("ready")
        .expect("infallible");
    assert_eq!(response.status(), 200, "jwt-authorizer accepts the token");
    group.bench_function("jwt_authorizer", |b| {
        b.iter_batched(
            || request(&value),
            |r| peer.call(r).now_or_never(),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    // 64 concurrent tasks on a multi-thread runtime; the figure is time per
    // request over all tasks.
    let mut group = c.benchmark_group("rs256_64_tasks");
    for (name, svc) in [
        (
            "layer_uncached",
            service(layer(&f, TokenCacheConfig::disabled())),
        ),
        (
            "layer_cache_hit",
            service(layer(&f, TokenCacheConfig::default())),
        ),
    ] {
        let value = value.clone();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let per_task = iters.div_ceil(64).max(1);
                let start = Instant::now();
                rt.block_on(async {
                    let tasks: Vec<_> = (0..64)
                        .map(|_| {
                            let svc = svc.clone();
                            let value = value.clone();
                            tokio::spawn(async move {
                                for _ in 0..per_task {
                                    let response = svc
                                        .clone()
                                        .oneshot(request(&value))
                                        .await
                                        .expect("infallible");
                                    assert_eq!(response.status(), 200);
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("task");
                    }
                });
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (per_task * 64) as f64)
            })
        });
    }
    for (name, svc) in [("jwt_authorizer", peer_service(&rt, &f))] {
        let value = value.clone();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let per_task = iters.div_ceil(64).max(1);
                let start = Instant::now();
                rt.block_on(async {
                    let tasks: Vec<_> = (0..64)
                        .map(|_| {
                            let svc = svc.clone();
                            let value = value.clone();
                            tokio::spawn(async move {
                                for _ in 0..per_task {
                                    let response = svc
                                        .clone()
                                        .oneshot(request(&value))
                                        .await
                                        .expect("infallible");
                                    assert_eq!(response.status(), 200);
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("task");
                    }
                });
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (per_task * 64) as f64)
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = jwt;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(jwt);
