//! A fixed workload for the cost of a verified-token cache hit: the thread's
//! CPU time and (under callgrind) the instructions per request, figures that
//! move less with the machine's load than criterion's wall-clock medians.
//!
//! ```text
//! cargo build --release -p portcullis-jwt --example jwt_hot_path
//! target/release/examples/jwt_hot_path bare 2000000   # CPU time per request
//! target/release/examples/jwt_hot_path hit 2000000
//! valgrind --tool=callgrind target/release/examples/jwt_hot_path hit 20000
//! ```
//!
//! Both modes build the same request (`Authorization: Bearer` and a
//! Cognito-shaped RS256 access token of about 900 bytes) per call; `bare`
//! calls the inner `service_fn` alone, `hit` the layer in front of it with
//! the token already cached. The layer's cost is the difference. Valgrind's
//! CPU has no SHA extensions: SHA-256 counts for more instructions there
//! than it takes time on the machine.

#![allow(missing_docs)]

use std::convert::Infallible;
use std::future::{Future, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Request, Response};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use portcullis_jwt::{Issuer, JwtLayer, TokenCacheConfig};
use serde_json::json;
use tower::{Layer, Service, service_fn};

const ISS: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Bench";
const REQUESTS: u32 = 200_000;

/// The calling thread's CPU time, in nanoseconds (from `/proc`, in clock
/// ticks: only good over a long loop).
fn thread_cpu_nanos() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 10_000_000)
}

fn poll_once<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the future did not finish in one poll"),
    }
}

fn token_and_jwks() -> (String, String) {
    let pem =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/rsa1.pem")).expect("key");
    let encoding = EncodingKey::from_rsa_pem(&pem).expect("RSA PEM");
    let mut jwk =
        serde_json::to_value(Jwk::from_encoding_key(&encoding, Algorithm::RS256).expect("jwk"))
            .expect("json");
    jwk["kid"] = json!("bench");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs();
    // The same Cognito-shaped access token as benches/jwt.rs.
    let claims = json!({
        "sub": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "cognito:groups": ["members", "gold"],
        "iss": ISS, "version": 2, "client_id": "1example23456789", "origin_jti": "f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f",
        "event_id": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "token_use": "access",
        "scope": "loyalty/read loyalty/write openid", "auth_time": now, "exp": now + 3600, "iat": now,
        "jti": "00112233-4455-6677-8899-aabbccddeeff", "username": "jane.doe",
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("bench".into());
    (
        encode(&header, &claims, &encoding).expect("sign"),
        json!({"keys": [jwk]}).to_string(),
    )
}

fn run<S>(mut service: S, value: &HeaderValue, requests: u32) -> (Option<u64>, Option<u64>)
where
    S: Service<Request<()>, Error = Infallible>,
    S::Response: IsOk,
{
    let request = || {
        let mut request = Request::new(());
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value.clone());
        request
    };
    // Warm up (and fill the cache).
    for _ in 0..1_000 {
        assert!(poll_once(service.call(request())).expect("infallible").ok());
    }
    let start = thread_cpu_nanos();
    for _ in 0..requests {
        let response = poll_once(service.call(request())).expect("infallible");
        assert!(black_box(response).ok());
    }
    (start, thread_cpu_nanos())
}

trait IsOk {
    fn ok(&self) -> bool;
}

impl<B> IsOk for Response<B> {
    fn ok(&self) -> bool {
        self.status().is_success()
    }
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "hit".into());
    let requests: u32 = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(REQUESTS);
    let (token, jwks) = token_and_jwks();
    let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
    let inner = service_fn(|_: Request<()>| ready(Ok::<_, Infallible>(Response::new(()))));
    let (start, end) = match mode.as_str() {
        "bare" => run(inner, &value, requests),
        "hit" => {
            let layer = JwtLayer::builder()
                .issuer(
                    Issuer::user_pool_at(ISS)
                        .jwks(jwks)
                        .client_ids(["1example23456789"]),
                )
                .cache(TokenCacheConfig::default())
                .build()
                .expect("config");
            run(layer.layer(inner), &value, requests)
        }
        other => {
            eprintln!("unknown mode `{other}`: bare or hit");
            std::process::exit(2);
        }
    };
    let cpu = start
        .zip(end)
        .map(|(start, end)| (end - start) as f64 / f64::from(requests));
    println!(
        "{mode}: {requests} requests ({} token bytes), thread CPU {} ns/request",
        token.len(),
        cpu.map_or("n/a".into(), |c| format!("{c:.1}"))
    );
}
