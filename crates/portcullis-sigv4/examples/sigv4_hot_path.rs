//! A fixed workload for counting the instructions the layer adds per signed
//! GET: a figure that does not move with the machine's load as criterion's
//! wall-clock medians do.
//!
//! ```text
//! cargo build --release -p portcullis-sigv4 --example sigv4_hot_path
//! valgrind --tool=callgrind target/release/examples/sigv4_hot_path bare
//! valgrind --tool=callgrind target/release/examples/sigv4_hot_path verify
//! valgrind --tool=callgrind target/release/examples/sigv4_hot_path policy
//! ```
//!
//! Every mode signs the same GET with `aws-sigv4` and rebuilds it per
//! request; `bare` calls the handler alone, `verify` the layer (signature
//! only), `policy` the layer with the 20-statement policy evaluated. The
//! layer's cost is (mode − bare) / requests instructions. Valgrind's CPU has
//! no SHA extensions, so SHA-256 and HMAC count for more instructions there
//! than they take time on the machine.

#![allow(missing_docs)]

#[path = "../benches/common/mod.rs"]
mod common;

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use common::{Fixture, layer};
use http::{Request, Response};
use http_body_util::Full;
use portcullis_sigv4::SigV4Body;
use portcullis_test_support::poll_once;
use tower::{Service, ServiceBuilder};

const REQUESTS: u32 = 20_000;

fn run<S, B>(mut service: S, fixture: &Fixture, requests: u32)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>,
{
    for _ in 0..requests {
        let response =
            poll_once(service.call(fixture.request(Full::new(Bytes::new())))).expect("infallible");
        assert_eq!(black_box(response).status(), 200);
    }
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "verify".into());
    let requests: u32 = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(REQUESTS);
    let get = Fixture::signed(
        "GET",
        "https://example.amazonaws.com/pets?limit=10&sort=asc",
        b"",
        false,
    );
    let handler = |_request: Request<SigV4Body<Full<Bytes>>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    };
    match mode.as_str() {
        "bare" => run(
            tower::service_fn(|_request: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }),
            &get,
            requests,
        ),
        "verify" => run(
            ServiceBuilder::new()
                .layer(layer(false))
                .service_fn(handler),
            &get,
            requests,
        ),
        "policy" => run(
            ServiceBuilder::new().layer(layer(true)).service_fn(handler),
            &get,
            requests,
        ),
        other => {
            eprintln!("unknown mode `{other}`: bare, verify or policy");
            std::process::exit(2);
        }
    }
    println!("{mode}: {requests} signed GETs");
}
