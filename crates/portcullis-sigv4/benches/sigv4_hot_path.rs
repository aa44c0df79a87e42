//! A fixed workload for counting the instructions the layer adds per signed
//! GET: a figure that does not move with the machine's load as criterion's
//! wall-clock medians do.
//!
//! ```text
//! export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="valgrind --tool=callgrind"
//! cargo bench -p portcullis-sigv4 --bench sigv4_hot_path -- bare
//! cargo bench -p portcullis-sigv4 --bench sigv4_hot_path -- verify
//! cargo bench -p portcullis-sigv4 --bench sigv4_hot_path -- policy
//! ```
//!
//! Every mode signs the same GET with `aws-sigv4` and rebuilds it per
//! request; `bare` calls the handler alone, `verify` the layer (signature
//! only), `policy` the layer with the 20-statement policy evaluated. The
//! layer's cost is (mode − bare) / requests instructions. Valgrind's CPU has
//! no SHA extensions, so SHA-256 and HMAC count for more instructions there
//! than they take time on the machine. A second word sets the count; under
//! `cargo test --benches` it runs 100 requests.

#![allow(missing_docs)]

mod common;

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use common::{Fixture, handler, layer, signed_get};
use http::{Request, Response};
use http_body_util::Full;
use portcullis_test_support::poll_once;
use portcullis_test_support::workload::Args;
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
    let args = Args::from_env();
    let mode = args.word(0).unwrap_or("verify");
    let requests = args.requests(1, REQUESTS);
    let get = signed_get();
    match mode {
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
