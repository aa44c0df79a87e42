//! The body-buffer budget under attack, measured: many concurrent large
//! bodies with a known access key id and a wrong signature (no
//! `x-amz-content-sha256`, so the layer must hash each body before it can
//! refuse it) sent to a plain hyper server on 127.0.0.1. The process's
//! peak resident memory must stay under the budget plus a stated margin, and
//! the requests past the budget must get THROTTLED (429) at once.
//!
//! This binary holds this one test only, so that no other test shares the
//! process whose memory it reads (`/proc/self/status`).

use std::net::SocketAddr;
use std::time::Duration;

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use portcullis_iam::ExecuteApiArn;
use portcullis_sigv4::{Credential, SigV4Body, SigV4Layer, StaticCredentialProvider};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceBuilder;

const MIB: u64 = 1024 * 1024;
/// The layer's budget.
const BUDGET: u64 = 32 * MIB;
/// What the process may add to its resident memory beyond the budget: the
/// runtime's threads and allocator arenas, hyper's per-connection buffers
/// (up to ~400 KiB each while a body is read), the client's side of 240
/// connections. Measured: 33 to 48 MiB of growth with the 32 MiB budget;
/// 524 MiB with the budget raised out of the way (2 GiB).
const MARGIN: u64 = 32 * MIB;
const BODY: u64 = 5 * MIB;
/// Bodies with a `Content-Length` (reserved up front).
const SIZED: usize = 200;
/// Chunked bodies (reserved as they arrive).
const CHUNKED: usize = 40;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|line| line.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"));
    line.split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .unwrap_or_else(|| panic!("a number in {line}"))
}

async fn serve() -> SocketAddr {
    let provider = StaticCredentialProvider::new().with(Credential::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "arn:aws:iam::123456789012:user/alice",
    ));
    let api = ExecuteApiArn::new("us-east-1", "123456789012", "mem", "prod").expect("arn");
    let layer = SigV4Layer::new(api, provider).max_buffered_body_bytes(BUDGET);
    portcullis_test_support::serve::serve(move |_peer| {
        // Every connection's service is a clone of one layer's: one
        // budget for all.
        ServiceBuilder::new().layer(layer.clone()).service_fn(
            |_request: Request<SigV4Body<Incoming>>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"admitted"))))
            },
        )
    })
    .await
}

/// The head of a POST with a known key, a current date, the right scope and
/// a well-formed but wrong signature.
fn head(addr: SocketAddr, chunked: bool) -> String {
    let now = time::OffsetDateTime::now_utc();
    let date = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let length = if chunked {
        "Transfer-Encoding: chunked\r\n".to_owned()
    } else {
        // As curl does for large bodies: the body follows a 100 Continue.
        format!("Content-Length: {BODY}\r\nExpect: 100-continue\r\n")
    };
    format!(
        "POST /upload HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Date: {date}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{}/us-east-1/execute-api/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature={}\r\n{length}Connection: close\r\n\r\n",
        &date[..8],
        "0".repeat(64)
    )
}

/// What one request ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// A final response: status and `x-amzn-ErrorType`.
    Response(u16, String),
    /// The connection was reset or closed before a final response.
    Cut,
}

/// Reads one response head; `None` when the connection ends first.
async fn read_head(stream: &mut tokio::net::tcp::OwnedReadHalf) -> Option<(u16, String)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let status = text.get(9..12)?.parse().ok()?;
    let error_type = text
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("x-amzn-errortype")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    Some((status, error_type))
}

/// Writes the body; returns the write half, whose drop would half-close the
/// connection (which hyper's server takes as the client leaving).
async fn write_body(
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    chunked: bool,
) -> std::io::Result<tokio::net::tcp::OwnedWriteHalf> {
    // One shared 64 KiB slice: the client keeps no body in memory.
    static PIECE: [u8; 64 * 1024] = [b'x'; 64 * 1024];
    let mut sent = 0u64;
    while sent < BODY {
        if chunked {
            writer
                .write_all(format!("{:x}\r\n", PIECE.len()).as_bytes())
                .await?;
            writer.write_all(&PIECE).await?;
            writer.write_all(b"\r\n").await?;
        } else {
            writer.write_all(&PIECE).await?;
        }
        sent += PIECE.len() as u64;
    }
    if chunked {
        writer.write_all(b"0\r\n\r\n").await?;
    }
    writer.flush().await?;
    Ok(writer)
}

async fn send(addr: SocketAddr, chunked: bool) -> Outcome {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    if writer
        .write_all(head(addr, chunked).as_bytes())
        .await
        .is_err()
    {
        return Outcome::Cut;
    }
    let mut writing = if chunked {
        Some(tokio::spawn(write_body(writer, true)))
    } else {
        match read_head(&mut reader).await {
            Some((100, _)) => Some(tokio::spawn(write_body(writer, false))),
            Some((status, error_type)) => return Outcome::Response(status, error_type),
            None => return Outcome::Cut,
        }
    };
    let outcome = match read_head(&mut reader).await {
        Some((status, error_type)) => Outcome::Response(status, error_type),
        None => Outcome::Cut,
    };
    if let Some(writing) = writing.take() {
        writing.abort();
    }
    outcome
}

#[test]
fn concurrent_large_bodies_with_a_wrong_signature_stay_within_the_budget() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let addr = serve().await;
        // Warm up: one request of each kind, so that the runtime, the
        // connection machinery and the allocator's arenas exist before the
        // baseline is read.
        for chunked in [true, false] {
            let outcome = send(addr, chunked).await;
            assert_eq!(
                outcome,
                Outcome::Response(403, "InvalidSignatureException".into()),
                "a lone body fits the budget and fails its signature"
            );
        }
        let baseline = status_kib("VmRSS:") * 1024;

        let mut tasks = Vec::new();
        for i in 0..SIZED + CHUNKED {
            let chunked = i % 6 == 5;
            tasks.push((chunked, tokio::spawn(send(addr, chunked))));
        }
        let mut outcomes = Vec::new();
        for (chunked, task) in tasks {
            let outcome = tokio::time::timeout(Duration::from_secs(120), task)
                .await
                .expect("every request ends in time")
                .expect("task");
            outcomes.push((chunked, outcome));
        }
        let peak = status_kib("VmHWM:") * 1024;
        let growth = peak.saturating_sub(baseline);

        let count = |chunked: bool, wanted: &Outcome| {
            outcomes
                .iter()
                .filter(|(c, o)| *c == chunked && o == wanted)
                .count()
        };
        let throttled = Outcome::Response(429, "TooManyRequestsException".into());
        let refused = Outcome::Response(403, "InvalidSignatureException".into());
        let sized = outcomes.iter().filter(|(c, _)| !c).count();
        let chunked = outcomes.len() - sized;
        let summary = format!(
            "baseline RSS {} MiB, peak {} MiB, growth {} MiB (budget {} MiB + margin {} MiB); \
             sized: {} throttled, {} refused by signature, of {sized}; \
             chunked: {} throttled, {} refused by signature, {} cut, of {chunked}",
            baseline / MIB,
            peak / MIB,
            growth / MIB,
            BUDGET / MIB,
            MARGIN / MIB,
            count(false, &throttled),
            count(false, &refused),
            count(true, &throttled),
            count(true, &refused),
            count(true, &Outcome::Cut),
        );
        println!("{summary}");
        assert!(growth <= BUDGET + MARGIN, "{summary}");
        // Every sized body got a gateway response: THROTTLED at once, or
        // read within the budget and refused for its signature.
        assert_eq!(
            count(false, &throttled) + count(false, &refused),
            sized,
            "{summary}: {outcomes:?}"
        );
        // 200 bodies of 5 MiB cannot fit 32 MiB at once.
        assert!(count(false, &throttled) > 0, "{summary}");
        // A chunked body is refused mid-stream when the budget runs out: the
        // server answers and closes while the client is still sending, so
        // the client may see the connection reset before it reads the answer.
        for (_, outcome) in outcomes.iter().filter(|(c, _)| *c) {
            assert!(
                [&throttled, &refused, &Outcome::Cut].contains(&outcome),
                "{summary}: {outcome:?}"
            );
        }
        assert!(
            count(true, &throttled) > 0,
            "some chunked bodies ran out of budget mid-stream: {summary}"
        );
    });
}
