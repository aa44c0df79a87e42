//! What the end-to-end tests share: the `airline-loyalty` binary on an
//! ephemeral port, demo tokens from its `mint-token` command, and an HTTP
//! client that signs requests with the `aws-sigv4` crate, as an AWS SDK would.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SessionTokenMode, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// The demo's API key.
pub(crate) const API_KEY: &str = "LoyaltyDemoKey0123456789abcdef";

/// The server process, killed when dropped.
pub(crate) struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary on its embedded in-memory configuration.
pub(crate) fn start() -> Server {
    start_with(&[])
}

/// The binary with `extra` arguments (such as `--store redis://...`).
pub(crate) fn start_with(extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_airline-loyalty"))
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines
        .next()
        .expect("a first line")
        .expect("readable stdout");
    let base = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    // Keep draining the banner so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Server { child, base }
}

/// A demo Cognito ID token for `username` in `groups`, from the binary's
/// `mint-token` command.
pub(crate) fn mint_token(username: &str, groups: &[&str]) -> String {
    let mut args = vec!["mint-token", "--username", username];
    for group in groups {
        args.extend(["--group", group]);
    }
    let output = Command::new(env!("CARGO_BIN_EXE_airline-loyalty"))
        .args(&args)
        .output()
        .expect("mint-token runs");
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned()
}

/// An answer: its status, `x-amzn-ErrorType` (empty when absent) and JSON
/// body (`Null` when it is not JSON).
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) error_type: String,
    pub(crate) json: Value,
}

/// The signing identity: an access key id, its secret, and the session
/// token of temporary credentials.
pub(crate) struct Signer<'a> {
    pub(crate) access_key_id: &'a str,
    pub(crate) secret_access_key: &'a str,
    pub(crate) session_token: Option<&'a str>,
}

/// An HTTP/1 client for one server.
pub(crate) struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    /// A client for the server at `base`.
    pub(crate) fn new(base: &str) -> Self {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: base.to_owned(),
        }
    }

    /// `method path` with `body` and a `host` header.
    pub(crate) fn request(&self, method: Method, path: &str, body: &str) -> Request<Full<Bytes>> {
        Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("host", self.base.trim_start_matches("http://"))
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("a valid request")
    }

    /// Signs `request` (whose body is `body`) for execute-api in us-east-1,
    /// now, including the session token when there is one.
    pub(crate) fn sign(
        &self,
        mut request: Request<Full<Bytes>>,
        body: &str,
        signer: &Signer<'_>,
    ) -> Request<Full<Bytes>> {
        let identity = Credentials::new(
            signer.access_key_id,
            signer.secret_access_key,
            signer.session_token.map(str::to_owned),
            None,
            "airline-loyalty-tests",
        )
        .into();
        let mut settings = SigningSettings::default();
        settings.session_token_mode = SessionTokenMode::Include;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("execute-api")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .expect("signing parameters")
            .into();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().expect("ASCII header").to_owned()))
            .collect();
        let signable = SignableRequest::new(
            request.method().as_str(),
            request.uri().to_string(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body.as_bytes()),
        )
        .expect("signable");
        let (instructions, _) = sign(signable, &params).expect("signed").into_parts();
        instructions.apply_to_request_http1x(&mut request);
        request
    }

    /// Sends `request` and reads the whole answer.
    pub(crate) async fn send(&self, request: Request<Full<Bytes>>) -> Answer {
        let response = self
            .client
            .request(request)
            .await
            .expect("the server answers");
        let status = response.status();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .map(|v| v.to_str().expect("ASCII").to_owned())
            .unwrap_or_default();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        Answer {
            status,
            error_type,
            json: serde_json::from_slice(&body).unwrap_or(Value::Null),
        }
    }
}
