//! `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: `aws-chunked` bodies whose chunks are
//! signed, verified as they stream.
//!
//! The vector is S3's documented example ("Signature Calculations for the
//! Authorization Header: Transferring Payload in Multiple Chunks"): a PUT of
//! 66,560 bytes of `a` in chunks of 65,536, 1,024 and 0 bytes, with its seed
//! signature and the three chunk signatures AWS publishes.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use portcullis_core::clock::ManualClock;
use portcullis_iam::ExecuteApiArn;
use portcullis_sigv4::canonical::UriEncoding;
use portcullis_sigv4::{
    ChunkedBodyError, Credential, SigV4Body, SigV4BodyError, SigV4Layer, StaticCredentialProvider,
    VerifiedSignature,
};
use time::macros::datetime;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tower::{ServiceBuilder, ServiceExt};

const SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
const CHUNK_SIGNATURES: [&str; 3] = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
];

fn layer() -> SigV4Layer {
    let api = ExecuteApiArn::new("us-east-1", "123456789012", "bucket", "s3").expect("arn");
    let provider = StaticCredentialProvider::new().with(Credential::new(
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "arn:aws:iam::123456789012:user/uploader",
    ));
    SigV4Layer::new(api, provider)
        .service("s3")
        .normalize_path(false)
        .uri_encoding(UriEncoding::Single)
        .authentication_only()
        .clock(Arc::new(ManualClock::at(
            datetime!(2013-05-24 00:00:00 UTC),
        )))
}

/// The three chunks, framed: `hex(size);chunk-signature=...\r\n<data>\r\n`.
fn chunks() -> [Vec<u8>; 3] {
    let frame = |size: usize, signature: &str| {
        let mut out = format!("{size:x};chunk-signature={signature}\r\n").into_bytes();
        out.extend(std::iter::repeat_n(b'a', size));
        out.extend_from_slice(b"\r\n");
        out
    };
    [
        frame(65536, CHUNK_SIGNATURES[0]),
        frame(1024, CHUNK_SIGNATURES[1]),
        frame(0, CHUNK_SIGNATURES[2]),
    ]
}

fn request<B>(body: B, seed: &str, decoded_length: &str) -> Request<B> {
    Request::put("/examplebucket/chunkObject.txt")
        .header("host", "s3.amazonaws.com")
        .header("x-amz-date", "20130524T000000Z")
        .header("x-amz-storage-class", "REDUCED_REDUNDANCY")
        .header("content-encoding", "aws-chunked")
        .header("content-length", "66824")
        .header("x-amz-decoded-content-length", decoded_length)
        .header("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
                 SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;\
                 x-amz-decoded-content-length;x-amz-storage-class,Signature={seed}"
            ),
        )
        .body(body)
        .expect("request")
}

/// What the inner service saw: the headers it got, the data frames it read,
/// and the error that ended the body, if any.
#[derive(Debug, Default)]
struct Seen {
    content_length: Option<String>,
    content_encoding: Option<String>,
    verified: Option<VerifiedSignature>,
    frames: Vec<usize>,
    data: Vec<u8>,
    error: Option<ChunkedBodyError>,
}

async fn read_all<B>(request: Request<SigV4Body<B>>) -> Seen
where
    B: http_body::Body<Data = Bytes, Error = Infallible>,
{
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .map(|v| v.to_str().expect("ascii").to_owned())
    };
    let mut seen = Seen {
        content_length: header("content-length"),
        content_encoding: header("content-encoding"),
        verified: request.extensions().get::<VerifiedSignature>().cloned(),
        ..Seen::default()
    };
    let mut body = std::pin::pin!(request.into_body());
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    seen.frames.push(data.len());
                    seen.data.extend_from_slice(&data);
                }
            }
            Err(SigV4BodyError::Chunked(error)) => {
                seen.error = Some(error);
                break;
            }
            Err(SigV4BodyError::Body(never)) => match never {},
        }
    }
    seen
}

async fn send(request: Request<Full<Bytes>>) -> (StatusCode, String, Option<Seen>) {
    let seen: Arc<std::sync::Mutex<Option<Seen>>> = Arc::default();
    let seen_by_handler = seen.clone();
    let service = ServiceBuilder::new().layer(layer()).service_fn(
        move |request: Request<SigV4Body<Full<Bytes>>>| {
            let seen = seen_by_handler.clone();
            async move {
                let got = read_all(request).await;
                *seen.lock().expect("lock") = Some(got);
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }
        },
    );
    let response = service.oneshot(request).await.expect("infallible");
    let status = response.status();
    let error_type = response
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let seen = seen.lock().expect("lock").take();
    (
        status,
        format!("{error_type}: {}", String::from_utf8_lossy(&body)),
        seen,
    )
}

fn whole_body() -> Full<Bytes> {
    Full::new(Bytes::from(chunks().concat()))
}

#[tokio::test]
async fn the_s3_documentation_example_verifies_and_is_decoded() {
    let (status, message, seen) = send(request(whole_body(), SEED, "66560")).await;
    assert_eq!(status, StatusCode::OK, "{message}");
    let seen = seen.expect("the inner service was called");
    assert_eq!(seen.error, None);
    assert_eq!(seen.data.len(), 66560);
    assert!(seen.data.iter().all(|&b| b == b'a'));
    assert_eq!(seen.frames, [65536, 1024], "one frame per verified chunk");
    assert_eq!(seen.content_length.as_deref(), Some("66560"));
    assert_eq!(seen.content_encoding, None, "aws-chunked is removed");
    let verified = seen.verified.expect("verified signature");
    assert!(verified.streaming);
    assert_eq!(
        verified.scope.to_string(),
        "20130524/us-east-1/s3/aws4_request"
    );
    assert_eq!(verified.signed_header_names().count(), 7);
}

#[tokio::test]
async fn a_tampered_chunk_ends_the_body_after_the_verified_ones() {
    let mut body = chunks();
    body[1][100] = b'b';
    let (status, _, seen) = send(request(
        Full::new(Bytes::from(body.concat())),
        SEED,
        "66560",
    ))
    .await;
    // The headers were verified: the inner service runs and reads the body.
    assert_eq!(status, StatusCode::OK);
    let seen = seen.expect("inner service called");
    assert_eq!(seen.frames, [65536], "only the first, verified chunk");
    assert_eq!(
        seen.error,
        Some(ChunkedBodyError::SignatureMismatch { index: 1 })
    );
    // Chunks in another order break the chain at once.
    let [first, second, last] = chunks();
    let (_, _, seen) = send(request(
        Full::new(Bytes::from([second, first, last].concat())),
        SEED,
        "66560",
    ))
    .await;
    let seen = seen.expect("inner service called");
    assert!(seen.data.is_empty());
    assert_eq!(
        seen.error,
        Some(ChunkedBodyError::SignatureMismatch { index: 0 })
    );
    // A body cut before its final chunk.
    let [first, second, _] = chunks();
    let (_, _, seen) = send(request(
        Full::new(Bytes::from([first, second].concat())),
        SEED,
        "66560",
    ))
    .await;
    assert_eq!(
        seen.expect("inner service called").error,
        Some(ChunkedBodyError::Truncated {
            decoded: 66560,
            expected: 66560
        })
    );
}

#[tokio::test]
async fn the_seed_signature_and_the_headers_are_checked_first() {
    let wrong_seed = SEED.replace('4', "5");
    let (status, message, seen) = send(request(whole_body(), &wrong_seed, "66560")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        message.starts_with("InvalidSignatureException"),
        "{message}"
    );
    assert!(seen.is_none(), "the inner service never ran");

    // x-amz-decoded-content-length is signed: another value is a mismatch.
    let (status, _, _) = send(request(whole_body(), SEED, "66561")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Missing, or over the limit.
    let mut missing = request(whole_body(), SEED, "66560");
    missing.headers_mut().remove("x-amz-decoded-content-length");
    let (status, message, _) = send(missing).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        message.contains("needs a numeric x-amz-decoded-content-length"),
        "{message}"
    );
    let service = ServiceBuilder::new()
        .layer(layer().max_body_bytes(1000))
        .service_fn(|_request: Request<SigV4Body<Full<Bytes>>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        });
    let response = service
        .oneshot(request(whole_body(), SEED, "66560"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn the_trailer_variants_are_refused_as_unsupported() {
    for value in [
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
    ] {
        let mut request = request(whole_body(), SEED, "66560");
        request
            .headers_mut()
            .insert("x-amz-content-sha256", value.parse().expect("value"));
        let (status, message, seen) = send(request).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{value}");
        assert!(
            message.starts_with("IncompleteSignatureException")
                && message.contains("not supported"),
            "{value}: {message}"
        );
        assert!(seen.is_none());
    }
}

/// Each chunk reaches the inner service as soon as it is verified, before
/// the next one has even been sent.
#[tokio::test]
async fn each_chunk_is_released_when_verified_not_at_the_end() {
    let (sender, receiver) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
    let body = StreamBody::new(ReceiverStream::new(receiver));
    let (progress, mut progress_rx) = mpsc::unbounded_channel::<usize>();
    let service = ServiceBuilder::new().layer(layer()).service_fn(
        move |request: Request<SigV4Body<StreamBody<ReceiverStream<_>>>>| {
            let progress = progress.clone();
            async move {
                let mut body = std::pin::pin!(request.into_body());
                let mut total = 0;
                while let Some(frame) = body.frame().await {
                    let data = frame.expect("verified").into_data().expect("data");
                    total += data.len();
                    progress.send(total).expect("test listens");
                }
                Ok::<_, Infallible>(Response::new(total.to_string()))
            }
        },
    );
    let call = tokio::spawn(service.oneshot(request(body, SEED, "66560")));
    let [first, second, last] = chunks();
    // The first chunk, in two pieces.
    let (head, tail) = first.split_at(1000);
    for piece in [head, tail] {
        sender
            .send(Ok(Frame::data(Bytes::copy_from_slice(piece))))
            .await
            .expect("send");
    }
    // The whole first chunk reaches the inner service (possibly as the
    // pieces it arrived in) before the second chunk is sent.
    let released = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut released = 0;
        while released < 65536 {
            released = progress_rx.recv().await.expect("a length");
        }
        released
    })
    .await
    .expect("the first chunk is released before the second is sent");
    assert_eq!(released, 65536, "no byte of the second chunk yet");
    for piece in [second, last] {
        sender
            .send(Ok(Frame::data(Bytes::from(piece))))
            .await
            .expect("send");
    }
    drop(sender);
    let response = call.await.expect("task").expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&body[..], b"66560");
}

/// A provider that answers asynchronously: the layer takes its slow path.
#[derive(Debug)]
struct AsyncProvider(Arc<Credential>);

impl portcullis_sigv4::CredentialProvider for AsyncProvider {
    fn lookup(&self, access_key_id: &str) -> portcullis_sigv4::CredentialLookup {
        let credential = self.0.clone();
        let known = access_key_id == credential.access_key_id();
        portcullis_sigv4::CredentialLookup::Pending(Box::pin(async move {
            tokio::task::yield_now().await;
            Ok(known.then_some(credential))
        }))
    }
}

#[tokio::test]
async fn streaming_through_an_async_provider_verifies_too() {
    let api = ExecuteApiArn::new("us-east-1", "123456789012", "bucket", "s3").expect("arn");
    let provider = AsyncProvider(Arc::new(Credential::new(
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "arn:aws:iam::123456789012:user/uploader",
    )));
    let layer = SigV4Layer::new(api, provider)
        .service("s3")
        .normalize_path(false)
        .uri_encoding(UriEncoding::Single)
        .authentication_only()
        .clock(Arc::new(ManualClock::at(
            datetime!(2013-05-24 00:00:00 UTC),
        )));
    for (tamper, expected_error) in [
        (false, None),
        (true, Some(ChunkedBodyError::SignatureMismatch { index: 0 })),
    ] {
        let mut body = chunks();
        if tamper {
            body[0][1000] = b'b';
        }
        let service = ServiceBuilder::new().layer(layer.clone()).service_fn(
            |request: Request<SigV4Body<Full<Bytes>>>| async move {
                let seen = read_all(request).await;
                let mut response = Response::new(Full::new(Bytes::new()));
                response.extensions_mut().insert(Arc::new(seen));
                Ok::<_, Infallible>(response)
            },
        );
        let response = service
            .oneshot(request(
                Full::new(Bytes::from(body.concat())),
                SEED,
                "66560",
            ))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        let seen = response
            .extensions()
            .get::<Arc<Seen>>()
            .expect("inner service ran")
            .clone();
        assert_eq!(seen.error, expected_error);
        assert_eq!(seen.data.len(), if tamper { 0 } else { 66560 });
        assert!(seen.verified.as_ref().is_some_and(|v| v.streaming));
    }
}

/// Live: the seed signature computed now by the `aws-sigv4` crate (the
/// payload hash given as `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`), the chunks
/// signed here as S3 specifies (the same computation the documented example
/// checks above), streamed over HTTP to an axum server with the layer.
mod live {
    use std::time::{Duration, SystemTime};

    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{
        PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
    };
    use aws_sigv4::sign::v4;
    use axum::Router;
    use bytes::Bytes;
    use hmac::{Hmac, Mac};
    use http::{Request, StatusCode};
    use http_body::Frame;
    use http_body_util::{BodyExt, StreamBody};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use portcullis_iam::ExecuteApiArn;
    use portcullis_sigv4::{Credential, SigV4Layer, StaticCredentialProvider};
    use sha2::{Digest, Sha256};
    use tokio::sync::mpsc;
    use tokio_stream::wrappers::ReceiverStream;

    const KEY: &str = "AKIDSTREAMING";
    const SECRET: &str = "streaming/secret+key";

    fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    async fn echo(request: axum::extract::Request) -> (StatusCode, String) {
        let length = request.headers()["content-length"]
            .to_str()
            .expect("ascii")
            .to_owned();
        match request.into_body().collect().await {
            Ok(body) => {
                let body = body.to_bytes();
                (
                    StatusCode::OK,
                    format!(
                        "{length} {} {}",
                        body.len(),
                        hex::encode(Sha256::digest(&body))
                    ),
                )
            }
            Err(error) => (StatusCode::BAD_REQUEST, format!("body: {error}")),
        }
    }

    /// Sends `chunks` as a signed streaming upload; `tamper` flips a byte of
    /// the second chunk after signing.
    async fn upload(chunks: &[Vec<u8>], tamper: bool) -> (StatusCode, String) {
        let provider = StaticCredentialProvider::new().with(Credential::new(
            KEY,
            SECRET,
            "arn:aws:iam::123456789012:user/uploader",
        ));
        let api = ExecuteApiArn::new("us-east-1", "123456789012", "live", "prod").expect("arn");
        let app = Router::new()
            .fallback(echo)
            .layer(SigV4Layer::new(api, provider).authentication_only());
        let (listener, addr) = portcullis_test_support::serve::listener().await;
        tokio::spawn(async move { axum::serve(listener, app).await.expect("server") });

        let decoded: usize = chunks.iter().map(Vec::len).sum();
        let framing = |size: usize| format!("{size:x};chunk-signature=").len() + 64 + 4;
        let encoded: usize = chunks
            .iter()
            .map(|c| framing(c.len()) + c.len())
            .sum::<usize>()
            + framing(0);
        let mut request = Request::put(format!("http://{addr}/uploads/object"))
            .header("content-encoding", "aws-chunked")
            .header("content-length", encoded.to_string())
            .header("x-amz-decoded-content-length", decoded.to_string())
            .body(())
            .expect("request");

        // The seed signature, by aws-sigv4.
        let identity = Credentials::new(KEY, SECRET, None, None, "tests").into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let now = SystemTime::now();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("execute-api")
            .time(now)
            .settings(settings)
            .build()
            .expect("params")
            .into();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().expect("ascii").to_owned()))
            .collect();
        let signable = SignableRequest::new(
            "PUT",
            request.uri().to_string(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Precomputed("STREAMING-AWS4-HMAC-SHA256-PAYLOAD".to_owned()),
        )
        .expect("signable");
        let (instructions, seed) = sign(signable, &params).expect("signed").into_parts();
        instructions.apply_to_request_http1x(&mut request);
        let amz_date = request.headers()["x-amz-date"]
            .to_str()
            .expect("ascii")
            .to_owned();

        // The chunk signatures, chained from the seed.
        let mut key = hmac(
            format!("AWS4{SECRET}").as_bytes(),
            &amz_date.as_bytes()[..8],
        );
        for part in ["us-east-1", "execute-api", "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        let scope = format!("{}/us-east-1/execute-api/aws4_request", &amz_date[..8]);
        let empty = hex::encode(Sha256::digest(b""));
        let mut previous = seed;
        let mut frames = Vec::new();
        for (index, chunk) in chunks.iter().chain([&Vec::new()]).enumerate() {
            let string_to_sign = format!(
                "AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous}\n{empty}\n{}",
                hex::encode(Sha256::digest(chunk))
            );
            previous = hex::encode(hmac(&key, string_to_sign.as_bytes()));
            let mut frame =
                format!("{:x};chunk-signature={previous}\r\n", chunk.len()).into_bytes();
            frame.extend_from_slice(chunk);
            if tamper && index == 1 {
                let at = frame.len() - 1;
                frame[at] ^= 1;
            }
            frame.extend_from_slice(b"\r\n");
            frames.push(frame);
        }

        // Streamed in 8 KiB pieces.
        let (sender, receiver) = mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(4);
        tokio::spawn(async move {
            for frame in frames {
                for piece in frame.chunks(8192) {
                    if sender
                        .send(Ok(Frame::data(Bytes::copy_from_slice(piece))))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        });
        let request = request.map(|()| StreamBody::new(ReceiverStream::new(receiver)));
        let client = Client::builder(TokioExecutor::new()).build_http();
        let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
            .await
            .expect("in time")
            .expect("response");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn chunks() -> Vec<Vec<u8>> {
        [100_000usize, 65_536, 7]
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|j| (i * 31 + j * 7) as u8).collect())
            .collect()
    }

    #[tokio::test]
    async fn a_streaming_upload_signed_now_passes_over_http() {
        let chunks = chunks();
        let all: Vec<u8> = chunks.concat();
        let (status, body) = upload(&chunks, false).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body,
            format!("{0} {0} {1}", all.len(), hex::encode(Sha256::digest(&all)))
        );
    }

    #[tokio::test]
    async fn a_tampered_chunk_fails_the_handlers_body_read() {
        let (status, body) = upload(&chunks(), true).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body.contains("the signature of chunk 1 does not match"),
            "{body}"
        );
    }
}
