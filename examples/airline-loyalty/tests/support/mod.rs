//! What the end-to-end tests share: the `airline-loyalty` binary on an
//! ephemeral port, demo tokens from its `mint-token` command, and an HTTP
//! client that signs requests with the `aws-sigv4` crate (through
//! `portcullis-test-support`), as an AWS SDK would.
// Each test binary uses a part of the support.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use portcullis_test_support::sigv4::{Signing, sign_request};
use serde_json::Value;

/// The demo's API key.
pub(crate) const API_KEY: &str = "LoyaltyDemoKey0123456789abcdef";

/// What the demo logs in the tests: everything at debug, the Portcullis
/// crates and the demo at trace, so that a secret logged at any level shows.
pub(crate) const TEST_RUST_LOG: &str = "debug,portcullis=trace,airline_loyalty=trace";

/// The server process, killed when dropped. Its stdout (after the first
/// line) and stderr are kept, for [`Server::assert_output_has_no_secret`].
pub(crate) struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    output: Arc<Mutex<Vec<u8>>>,
    drains: Vec<std::thread::JoinHandle<()>>,
    /// The fresh embedded store of this run, removed when dropped (after
    /// the process: fields drop after `Drop::drop`).
    _data_dir: Option<tempfile::TempDir>,
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

/// Copies `from` into `output` until it ends.
fn drain(
    mut from: impl Read + Send + 'static,
    output: &Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    let output = Arc::clone(output);
    std::thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        while let Ok(n) = from.read(&mut buffer) {
            if n == 0 {
                break;
            }
            output
                .lock()
                .expect("output lock")
                .extend_from_slice(&buffer[..n]);
        }
    })
}

/// The binary with `extra` arguments (such as `--store redis://...`), logging
/// at [`TEST_RUST_LOG`]. Unless `extra` names a store or a data dir, the run
/// gets a fresh embedded store of its own, so runs never share state.
pub(crate) fn start_with(extra: &[&str]) -> Server {
    let own_store = !extra.iter().any(|a| *a == "--store" || *a == "--data-dir");
    let data_dir = own_store.then(|| tempfile::tempdir().expect("a temp dir"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_airline-loyalty"));
    command.args(["--listen", "127.0.0.1:0"]).args(extra);
    if let Some(dir) = &data_dir {
        command.arg("--data-dir").arg(dir.path());
    }
    let mut child = command
        .env("RUST_LOG", TEST_RUST_LOG)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let output = Arc::new(Mutex::new(Vec::new()));
    // Stderr first, so the server never blocks on a full pipe.
    let stderr = child.stderr.take().expect("stderr");
    let mut drains = vec![drain(stderr, &output)];
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("readable stdout");
    let base = first
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    output
        .lock()
        .expect("output lock")
        .extend_from_slice(first.as_bytes());
    // Keep the banner and whatever else the server prints.
    drains.push(drain(stdout, &output));
    Server {
        child,
        base,
        output,
        drains,
        _data_dir: data_dir,
    }
}

impl Server {
    /// Waits (up to five seconds) until the server's output holds `text`
    /// after its first `after` bytes; returns the output's length then.
    pub(crate) fn wait_for_output(&self, text: &str, after: usize) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            {
                let output = self.output.lock().expect("output lock");
                let tail = String::from_utf8_lossy(&output[after.min(output.len())..]);
                if tail.contains(text) {
                    return output.len();
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the server's output never showed `{text}`; after byte {after} it is:\n{tail}"
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// How many bytes the server has printed so far.
    /// Everything the server printed so far, as text.
    pub(crate) fn output_text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().expect("output lock")).into_owned()
    }

    pub(crate) fn output_len(&self) -> usize {
        self.output.lock().expect("output lock").len()
    }

    /// Stops the server and returns all it printed, stdout and stderr.
    pub(crate) fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for drain in self.drains.drain(..) {
            drain.join().expect("the output drain ends");
        }
        let output = self.output.lock().expect("output lock");
        String::from_utf8_lossy(&output).into_owned()
    }

    /// Stops the server and checks what it printed (stdout and stderr, its
    /// logs at [`TEST_RUST_LOG`]): it must hold none of the secrets `http`
    /// sent or received, and must hold each of `identifiers` (names that
    /// are not secret, such as an API key's id or an access key id), which
    /// shows that the logs were captured and do name the callers.
    pub(crate) fn assert_output_has_no_secret(self, http: &Http, identifiers: &[&str]) {
        let secrets = http.secrets();
        assert!(!secrets.is_empty(), "the test sent no secret to look for");
        let output = self.stop();
        assert!(
            output.lines().count() > 1,
            "the server printed nothing but its first line:\n{output}"
        );
        for identifier in identifiers {
            assert!(
                output.contains(identifier),
                "the server's output does not name `{identifier}`: is it logging?\n{output}"
            );
        }
        for (kind, secret) in &secrets {
            for (number, line) in output.lines().enumerate() {
                assert!(
                    !line.contains(secret.as_str()),
                    "line {} of the server's output holds a secret ({kind}: {}...):\n{}",
                    number + 1,
                    &secret[..6],
                    line.replace(secret.as_str(), "<SECRET>")
                );
            }
        }
    }
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
    /// The response's headers.
    pub(crate) headers: http::HeaderMap,
}

/// The signing identity: an access key id, its secret, and the session
/// token of temporary credentials.
pub(crate) struct Signer<'a> {
    pub(crate) access_key_id: &'a str,
    pub(crate) secret_access_key: &'a str,
    pub(crate) session_token: Option<&'a str>,
}

/// An HTTP/1 client for one server. It remembers every secret it sends or
/// receives (API keys, bearer tokens, ID tokens sent to `/credentials`,
/// secret access keys, session tokens, signatures), for
/// [`Server::assert_output_has_no_secret`].
pub(crate) struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    secrets: Mutex<Vec<(&'static str, String)>>,
}

impl Http {
    /// A client for the server at `base`.
    pub(crate) fn new(base: &str) -> Self {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: base.to_owned(),
            secrets: Mutex::new(Vec::new()),
        }
    }

    /// Remembers `secret` (of `kind`) unless it is too short to be one.
    fn remember(&self, kind: &'static str, secret: &str) {
        if secret.len() >= 8 {
            let mut secrets = self.secrets.lock().expect("secrets lock");
            if !secrets.iter().any(|(_, known)| known == secret) {
                secrets.push((kind, secret.to_owned()));
            }
        }
    }

    /// The secrets sent or received so far, with their kinds.
    pub(crate) fn secrets(&self) -> Vec<(&'static str, String)> {
        self.secrets.lock().expect("secrets lock").clone()
    }

    /// Remembers the secrets in an outgoing request's headers.
    fn remember_request(&self, request: &Request<Full<Bytes>>) {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        if let Some(authorization) = header("authorization") {
            if let Some(token) = authorization.strip_prefix("Bearer ") {
                self.remember("bearer token", token);
            } else if let Some((_, signature)) = authorization.split_once("Signature=") {
                self.remember("SigV4 signature", signature);
            } else {
                self.remember("authorization header", &authorization);
            }
        }
        if let Some(key) = header("x-api-key") {
            self.remember("API key", &key);
        }
        if let Some(token) = header("x-amz-security-token") {
            self.remember("session token", &token);
        }
    }

    /// Remembers the ID tokens of a `/credentials` body.
    fn remember_body(&self, body: &str) {
        if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(body)
            && let Some(Value::Object(logins)) = fields.get("Logins")
        {
            for token in logins.values().filter_map(Value::as_str) {
                self.remember("ID token", token);
            }
        }
    }

    /// Remembers the temporary credentials of a `/credentials` answer.
    fn remember_answer(&self, json: &Value) {
        let credentials = &json["Credentials"];
        if let Some(secret) = credentials["SecretKey"].as_str() {
            self.remember("secret access key", secret);
        }
        if let Some(token) = credentials["SessionToken"].as_str() {
            self.remember("session token", token);
        }
    }

    /// `method path` with `body` and a `host` header.
    pub(crate) fn request(&self, method: Method, path: &str, body: &str) -> Request<Full<Bytes>> {
        self.remember_body(body);
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
        self.remember("secret access key", signer.secret_access_key);
        if let Some(token) = signer.session_token {
            self.remember("session token", token);
        }
        let signing = Signing::now().credentials(
            signer.access_key_id,
            signer.secret_access_key,
            signer.session_token,
        );
        sign_request(&mut request, body.as_bytes(), &signing);
        request
    }

    /// Sends `request` and reads the whole answer.
    pub(crate) async fn send(&self, request: Request<Full<Bytes>>) -> Answer {
        self.remember_request(&request);
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
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        self.remember_answer(&json);
        Answer {
            status,
            error_type,
            json,
            headers,
        }
    }
}

impl Http {
    /// Sends `request` and reads the whole answer, or `None` when the
    /// server does not answer (refused, reset: a killed server).
    pub(crate) async fn try_send(&self, request: Request<Full<Bytes>>) -> Option<Answer> {
        self.remember_request(&request);
        let response = self.client.request(request).await.ok()?;
        let status = response.status();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.ok()?.to_bytes();
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Some(Answer {
            status,
            error_type,
            json,
            headers,
        })
    }
}

/// The demo's client IAM user: may call `GET /loyalty/*`, no management
/// operation.
pub(crate) const CLIENT: Signer<'static> = Signer {
    access_key_id: "AKIALOYALTYCLIENT001",
    secret_access_key: "loyaltyClientSecretKeyDemo0000000000001",
    session_token: None,
};

/// The demo's admin IAM user (access key id, secret): every management
/// operation.
pub(crate) const ADMIN: (&str, &str) = (
    "AKIALOYALTYADMIN0001",
    "loyaltyAdminSecretKeyDemo00000000000001",
);

/// The value of the environment variable `name`; when it is unset or empty,
/// `None` after one line saying the test is skipped and how to run it, or a
/// panic under CI (`CI` set), where the test must run.
pub(crate) fn required_env(name: &str, how: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var_os("CI").is_some() => panic!("{name} is not set under CI"),
        _ => {
            eprintln!("skipped: {name} is not set; {how}");
            None
        }
    }
}

/// The AWS CLI (`PORTCULLIS_AWS_CLI`), as [`required_env`] finds it.
pub(crate) fn aws_cli() -> Option<String> {
    required_env(
        "PORTCULLIS_AWS_CLI",
        "`source scripts/services.d/30-python-clients.sh`",
    )
}

/// `aws apigateway ARGS --endpoint-url BASE/admin` as `user`: the exit
/// status, stdout as JSON (`Null` when empty) and stderr.
pub(crate) fn aws(
    cli: &str,
    base: &str,
    user: (&str, &str),
    args: &[&str],
) -> (bool, Value, String) {
    let output = Command::new(cli)
        .arg("apigateway")
        .args(args)
        .args([
            "--endpoint-url",
            &format!("{base}/admin"),
            "--output",
            "json",
        ])
        .env("AWS_ACCESS_KEY_ID", user.0)
        .env("AWS_SECRET_ACCESS_KEY", user.1)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("the AWS CLI runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json = if stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    };
    (
        output.status.success(),
        json,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The admin's `aws apigateway ARGS` against `base`, which must succeed.
pub(crate) fn admin(cli: &str, base: &str, args: &[&str]) -> Value {
    let (ok, json, stderr) = aws(cli, base, ADMIN, args);
    assert!(ok, "aws apigateway {args:?}: {stderr}");
    json
}

/// `GET /loyalty/C-1001/get` with the API key `key`, signed by [`CLIENT`];
/// `None` when the server does not answer.
pub(crate) async fn try_loyalty(http: &Http, key: &str) -> Option<Answer> {
    try_loyalty_from(http, key, None).await
}

/// [`try_loyalty`] from the client `client_ip`, named in `X-Forwarded-For`
/// (the demo trusts it from 127.0.0.1), so that load spread over many
/// addresses stays under the WAF's rate rule (300 a minute per address).
pub(crate) async fn try_loyalty_from(
    http: &Http,
    key: &str,
    client_ip: Option<&str>,
) -> Option<Answer> {
    let mut request = http.request(Method::GET, "/loyalty/C-1001/get", "");
    let headers = request.headers_mut();
    headers.insert(
        "x-api-key",
        key.parse().expect("an API key is a header value"),
    );
    if let Some(ip) = client_ip {
        headers.insert(
            "x-forwarded-for",
            ip.parse().expect("an address is a header value"),
        );
    }
    http.try_send(http.sign(request, "", &CLIENT)).await
}

/// Today's date (UTC), as GetUsage's `startDate` and `endDate` take it.
pub(crate) fn today() -> String {
    time::OffsetDateTime::now_utc().date().to_string()
}

/// GetUsage of `key_id` in `plan_id` today through `base`'s `/admin`:
/// `(used, remaining)`, or `None` when the key has no usage record yet.
pub(crate) fn usage_today(
    cli: &str,
    base: &str,
    plan_id: &str,
    key_id: &str,
) -> Option<(u64, u64)> {
    let day = today();
    let usage = admin(
        cli,
        base,
        &[
            "get-usage",
            "--usage-plan-id",
            plan_id,
            "--key-id",
            key_id,
            "--start-date",
            &day,
            "--end-date",
            &day,
        ],
    );
    let day_usage = &usage["items"][key_id][0];
    Some((day_usage[0].as_u64()?, day_usage[1].as_u64()?))
}

/// Copies the folder `from` (a configuration folder) to `to`, recursively.
pub(crate) fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("the folder is made");
    for entry in std::fs::read_dir(from).expect("the folder reads") {
        let entry = entry.expect("an entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("the file copies");
        }
    }
}
