//! The AWS SigV4 test suite that ships inside the `aws-sigv4` crate
//! (`aws-signing-test-suite/v4`), located through `cargo metadata`.
//!
//! Every case with a `context.json` is verified in both forms (the
//! `Authorization` header and the presigned query string) at the suite's fixed
//! time with its credentials, through the layer, and its canonical request and
//! string to sign are compared with the suite's. Each signed request is then
//! mutated (the signature, a signed header, the date, the path, the body) and
//! must be refused with the right error.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use portcullis_core::clock::ManualClock;
use portcullis_core::context::AuthMethod;
use portcullis_core::context::RequestContextExt;
use portcullis_iam::ExecuteApiArn;
use portcullis_sigv4::canonical::UriEncoding;
use portcullis_sigv4::{Credential, SigV4Body, SigV4Layer, StaticCredentialProvider};
use serde::Deserialize;
use tower::{ServiceBuilder, ServiceExt};

fn suite_dir() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    let package = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "aws-sigv4")
        .expect("aws-sigv4 is a dev-dependency");
    let manifest = Path::new(package["manifest_path"].as_str().expect("manifest path"));
    let dir = manifest
        .parent()
        .expect("crate dir")
        .join("aws-signing-test-suite/v4");
    assert!(dir.is_dir(), "{} is missing", dir.display());
    dir
}

#[derive(Deserialize)]
struct Context {
    credentials: Creds,
    normalize: bool,
    region: String,
    service: String,
    timestamp: String,
    #[serde(default)]
    omit_session_token: bool,
}

#[derive(Deserialize)]
struct Creds {
    access_key_id: String,
    secret_access_key: String,
    token: Option<String>,
}

/// A raw request from the suite, as an HTTP/1.1 server would receive it.
#[derive(Clone, Debug)]
struct Raw {
    method: String,
    /// The request target, percent-encoded where the suite's raw text has bytes
    /// no HTTP client sends unencoded (a space, UTF-8).
    target: String,
    /// Whether the path needed such encoding.
    path_was_encoded: bool,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

fn wire_encode(text: &str) -> (String, bool) {
    let mut out = String::new();
    let mut changed = false;
    for &b in text.as_bytes() {
        if b <= b' ' || b >= 0x7f || b"\"<>\\^`{|}".contains(&b) {
            out.push_str(&format!("%{b:02X}"));
            changed = true;
        } else {
            out.push(char::from(b));
        }
    }
    (out, changed)
}

fn parse_raw(text: &str) -> Raw {
    let text = text.replace("\r\n", "\n");
    let text = text.trim_end();
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let request_line = lines.next().expect("request line");
    let (method, rest) = request_line.split_once(' ').expect("method");
    let target = rest
        .rsplit_once(' ')
        .map_or(rest, |(target, _version)| target);
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let (mut wire, path_was_encoded) = wire_encode(path);
    if let Some(query) = query {
        wire.push('?');
        wire.push_str(&wire_encode(query).0);
    }
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            // obs-fold: a continuation line, replaced by one space (RFC 9112 §5.2).
            let last = headers.last_mut().expect("continuation after a header");
            last.1.push(b' ');
            last.1.extend_from_slice(line.trim_start().as_bytes());
            continue;
        }
        let (name, value) = line.split_once(':').expect("header line");
        headers.push((name.to_owned(), value.as_bytes().to_vec()));
    }
    Raw {
        method: method.to_owned(),
        target: wire,
        path_was_encoded,
        headers,
        body: body.as_bytes().to_vec(),
    }
}

impl Raw {
    fn request(&self) -> Request<Full<Bytes>> {
        let mut builder = Request::builder()
            .method(self.method.as_str())
            .uri(self.target.as_str());
        for (name, value) in &self.headers {
            builder = builder.header(name.as_str(), value.as_slice());
        }
        builder
            .body(Full::new(Bytes::from(self.body.clone())))
            .expect("valid request")
    }

    fn header_mut(&mut self, name: &str) -> Option<&mut Vec<u8>> {
        self.headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    fn query_param_mut(&mut self, name: &str, f: impl FnOnce(&str) -> String) {
        let (path, query) = self.target.split_once('?').expect("presigned query");
        let mut f = Some(f);
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) if k == name => format!("{k}={}", (f.take().expect("once"))(v)),
                _ => pair.to_owned(),
            })
            .collect();
        self.target = format!("{path}?{}", query.join("&"));
    }

    fn query_param(&self, name: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    }
}

struct Case {
    name: String,
    dir: PathBuf,
    context: Context,
}

fn cases() -> (Vec<Case>, Vec<String>) {
    let mut cases = Vec::new();
    let mut without_context = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(suite_dir())
        .expect("suite dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let Ok(context) = std::fs::read_to_string(dir.join("context.json")) else {
            without_context.push(name);
            continue;
        };
        let context: Context = serde_json::from_str(&context).expect("context.json");
        cases.push(Case { name, dir, context });
    }
    (cases, without_context)
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
        .replace("\r\n", "\n")
        .trim()
        .to_owned()
}

fn layer_for(case: &Case, encoding: UriEncoding) -> SigV4Layer {
    let creds = &case.context.credentials;
    let mut credential = Credential::new(
        creds.access_key_id.as_str(),
        creds.secret_access_key.as_str(),
        "arn:aws:iam::123456789012:user/suite",
    );
    if let Some(token) = &creds.token {
        credential = credential.with_session_token(token.as_str(), None);
    }
    let time = time::OffsetDateTime::parse(
        &case.context.timestamp,
        &time::format_description::well_known::Rfc3339,
    )
    .expect("timestamp");
    let api = ExecuteApiArn::new(
        case.context.region.as_str(),
        "123456789012",
        "suite",
        "test",
    )
    .expect("arn");
    SigV4Layer::new(api, StaticCredentialProvider::new().with(credential))
        .service(case.context.service.as_str())
        .normalize_path(case.context.normalize)
        .uri_encoding(encoding)
        .authentication_only()
        .clock(Arc::new(ManualClock::at(time)))
}

/// Sends `request` through the layer; the handler checks it got the body
/// unchanged and the caller.
async fn send(layer: &SigV4Layer, raw: &Raw) -> (StatusCode, String, String) {
    let expected_body = raw.body.clone();
    let service = ServiceBuilder::new().layer(layer.clone()).service_fn(
        move |request: Request<SigV4Body<Full<Bytes>>>| {
            let expected_body = expected_body.clone();
            async move {
                let caller = request.caller().cloned().expect("caller set");
                assert_eq!(caller.method(), AuthMethod::Iam);
                assert_eq!(caller.principal(), "arn:aws:iam::123456789012:user/suite");
                let body = request
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes();
                assert_eq!(
                    body.as_ref(),
                    expected_body.as_slice(),
                    "the inner service gets the body unchanged"
                );
                Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(
                    b"ok",
                ))))
            }
        },
    );
    let response = service.oneshot(raw.request()).await.expect("infallible");
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
    let message = if status == StatusCode::OK {
        String::from_utf8_lossy(&body).into_owned()
    } else {
        let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON refusal");
        json["message"].as_str().expect("message").to_owned()
    };
    (status, error_type, message)
}

const MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

#[derive(Default)]
struct Tally {
    verified: usize,
    forms: usize,
    canonical_matched: usize,
    mutations: usize,
    refused_right: usize,
    failures: Vec<String>,
}

impl Tally {
    fn mutation(
        &mut self,
        what: &str,
        got: (StatusCode, String, String),
        want_type: &str,
        want_message: &str,
    ) {
        self.mutations += 1;
        let (status, error_type, message) = got;
        if status == StatusCode::FORBIDDEN
            && error_type == want_type
            && message.starts_with(want_message)
        {
            self.refused_right += 1;
        } else {
            self.failures.push(format!(
                "{what}: got {status} {error_type} {message:?}, want 403 {want_type} {want_message:?}"
            ));
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn every_v4_case_verifies_in_both_forms_and_every_mutation_is_refused() {
    let (cases, without_context) = cases();
    assert!(cases.len() >= 38, "found only {} cases", cases.len());
    let mut tally = Tally::default();
    let mut single_encoded = Vec::new();

    for case in &cases {
        for form in ["header", "query"] {
            tally.forms += 1;
            let label = format!("{}/{form}", case.name);
            let raw = parse_raw(&read(&case.dir, &format!("{form}-signed-request.txt")));
            // The suite's raw request lines hold a space or UTF-8 in three
            // paths (get-space-*, get-utf8), which no client sends unencoded.
            // Its expected canonical URI encodes those bytes once; on the wire
            // that is the single-encoding rule, so those three are verified
            // with `UriEncoding::Single`. Every other case is verified with
            // execute-api's double encoding (the default).
            let encoding = if raw.path_was_encoded {
                single_encoded.push(label.clone());
                UriEncoding::Single
            } else {
                UriEncoding::Double
            };
            let layer = layer_for(case, encoding);

            // The canonical request and string to sign are the suite's.
            let payload = {
                use sha2::Digest;
                let has_sha_header = raw
                    .headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case("x-amz-content-sha256"));
                if has_sha_header || !raw.body.is_empty() {
                    hex::encode(sha2::Sha256::digest(&raw.body))
                } else {
                    portcullis_sigv4::EMPTY_SHA256.to_owned()
                }
            };
            // A token added after signing (omit_session_token) is not in the
            // suite's canonical request.
            let mut for_texts = raw.clone();
            if form == "query" && case.context.omit_session_token {
                for_texts.target = for_texts
                    .target
                    .split('&')
                    .filter(|p| !p.starts_with("X-Amz-Security-Token="))
                    .collect::<Vec<_>>()
                    .join("&");
            }
            match layer.signing_texts(&for_texts.request(), &payload) {
                Ok(texts)
                    if texts.canonical_request
                        == read(&case.dir, &format!("{form}-canonical-request.txt"))
                        && texts.string_to_sign
                            == read(&case.dir, &format!("{form}-string-to-sign.txt")) =>
                {
                    tally.canonical_matched += 1;
                }
                Ok(texts) => tally.failures.push(format!(
                    "{label}: canonical request differs:\n{}",
                    texts.canonical_request
                )),
                Err(error) => tally.failures.push(format!("{label}: {error}")),
            }

            let got = send(&layer, &raw).await;
            if got.0 == StatusCode::OK {
                tally.verified += 1;
            } else {
                tally.failures.push(format!("{label}: refused: {got:?}"));
                continue;
            }

            // 1. The signature.
            let mut mutated = raw.clone();
            let flip = |sig: &str| {
                let mut s = sig.to_owned();
                let last = if s.ends_with('0') { "1" } else { "0" };
                s.replace_range(s.len() - 1.., last);
                s
            };
            if form == "header" {
                let auth = mutated.header_mut("authorization").expect("authorization");
                let text = String::from_utf8(auth.clone()).expect("ascii");
                *auth = flip(&text).into_bytes();
            } else {
                mutated.query_param_mut("X-Amz-Signature", flip);
            }
            tally.mutation(
                &format!("{label} signature"),
                send(&layer, &mutated).await,
                "InvalidSignatureException",
                MISMATCH,
            );

            // 2. A signed header (not the date, token or payload hash).
            let signed = if form == "header" {
                let auth = String::from_utf8(
                    raw.headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
                        .expect("auth")
                        .1
                        .clone(),
                )
                .expect("ascii");
                auth.split("SignedHeaders=")
                    .nth(1)
                    .expect("signed headers")
                    .split(',')
                    .next()
                    .expect("list")
                    .to_owned()
            } else {
                raw.query_param("X-Amz-SignedHeaders")
                    .expect("signed headers")
                    .replace("%3B", ";")
            };
            let target = signed
                .split(';')
                .rfind(|h| {
                    !matches!(
                        *h,
                        "x-amz-date" | "x-amz-security-token" | "x-amz-content-sha256"
                    )
                })
                .expect("a signed header")
                .to_owned();
            let mut mutated = raw.clone();
            mutated
                .header_mut(&target)
                .expect("signed header present")
                .push(b'x');
            tally.mutation(
                &format!("{label} header {target}"),
                send(&layer, &mutated).await,
                "InvalidSignatureException",
                MISMATCH,
            );

            // 3. The date: a second later (same scope) is a mismatch; ten
            //    minutes earlier is expired (header form: 5 minutes of skew);
            //    two hours earlier is past the presigned URL's X-Amz-Expires;
            //    ten minutes later is not yet current.
            let set_date = |raw: &Raw, date: &str| {
                let mut mutated = raw.clone();
                if form == "header" {
                    *mutated.header_mut("x-amz-date").expect("x-amz-date") =
                        date.as_bytes().to_vec();
                } else {
                    mutated.query_param_mut("X-Amz-Date", |_| date.to_owned());
                }
                mutated
            };
            tally.mutation(
                &format!("{label} date +1s"),
                send(&layer, &set_date(&raw, "20150830T123601Z")).await,
                "InvalidSignatureException",
                MISMATCH,
            );
            let (old, want) = if form == "header" {
                (
                    "20150830T122600Z",
                    "Signature expired: 20150830T122600Z is now earlier than 20150830T123100Z (20150830T123600Z - 5 min.)",
                )
            } else {
                (
                    "20150830T103600Z",
                    "Signature expired: 20150830T103600Z is now earlier than 20150830T113600Z (20150830T123600Z - 60 min.)",
                )
            };
            tally.mutation(
                &format!("{label} date expired"),
                send(&layer, &set_date(&raw, old)).await,
                "InvalidSignatureException",
                want,
            );
            tally.mutation(
                &format!("{label} date future"),
                send(&layer, &set_date(&raw, "20150830T124600Z")).await,
                "InvalidSignatureException",
                "Signature not yet current: 20150830T124600Z is still later than 20150830T124100Z (20150830T123600Z + 5 min.)",
            );

            // 4. The path.
            let mut mutated = raw.clone();
            mutated.target = format!("/mutated{}", mutated.target);
            tally.mutation(
                &format!("{label} path"),
                send(&layer, &mutated).await,
                "InvalidSignatureException",
                MISMATCH,
            );

            // 5. The body: one byte more (or a body where there was none).
            let mut mutated = raw.clone();
            mutated.body.push(b'x');
            if let Some(length) = mutated.header_mut("content-length") {
                *length = mutated_len(&raw.body).into_bytes();
            }
            let got = send(&layer, &mutated).await;
            tally.mutation(
                &format!("{label} body"),
                got,
                "InvalidSignatureException",
                MISMATCH,
            );
        }
    }

    println!(
        "AWS SigV4 test suite (v4): {} cases with context ({} without: {}); \
         verified {}/{} signed requests; canonical request and string to sign matched {}/{}; \
         refused {}/{} mutations with the right error; single-encoded: {:?}",
        cases.len(),
        without_context.len(),
        without_context.join(", "),
        tally.verified,
        tally.forms,
        tally.canonical_matched,
        tally.forms,
        tally.refused_right,
        tally.mutations,
        single_encoded,
    );
    assert!(
        tally.failures.is_empty(),
        "{} failures:\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
    assert_eq!(tally.verified, tally.forms);
    assert_eq!(tally.refused_right, tally.mutations);
}

fn mutated_len(body: &[u8]) -> String {
    (body.len() + 1).to_string()
}

/// The two suite folders without a `context.json` only give a canonical
/// request: their URIs must canonicalise the same with double encoding.
#[test]
fn double_encoding_cases_canonicalise_like_the_suite() {
    let dir = suite_dir();
    for name in ["double-encode-path", "double-url-encode"] {
        let raw = parse_raw(&read(&dir.join(name), "header-signed-request.txt"));
        let expected = read(&dir.join(name), "header-canonical-request.txt");
        let expected_uri = expected.lines().nth(1).expect("uri line");
        let mut out = Vec::new();
        portcullis_sigv4::canonical::canonical_uri(
            &raw.target,
            true,
            UriEncoding::Double,
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).expect("ascii"),
            expected_uri,
            "{name}"
        );
    }
}
