//! The guide "Getting started with axum" (`docs/getting-started-axum.md`),
//! step by step: each test starts the example's program with that step's
//! configuration file on a free port and sends it real HTTP requests. The
//! last test checks that the guide's code blocks are this example's code.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const KEY: &str = "GettingStartedKey0123456789";

fn example_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The program, listening on a free port; killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(config: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_getting-started-axum"))
            .arg(example_dir().join("config").join(config))
            .arg("127.0.0.1:0")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the example's program starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("the program's first line");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!("the program with {config} printed {line:?}, not its address")
            })
            .to_owned();
        Self { child, base }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = Request::get(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let response = client
            .request(request.body(Empty::new()).expect("a valid request"))
            .await
            .expect("the program answers");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("the whole body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8(body.to_vec()).expect("a UTF-8 body"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    /// Asserts an API Gateway refusal: its status, `x-amzn-ErrorType` and
    /// `{"message": ...}` body.
    fn assert_refused(&self, status: StatusCode, error_type: &str, message: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.headers["x-amzn-errortype"], error_type, "{self:?}");
        let body: serde_json::Value = serde_json::from_str(&self.body).expect("a JSON body");
        assert_eq!(body, serde_json::json!({ "message": message }), "{self:?}");
    }

    /// Asserts a 429 of the throttle or the quota, with its `Retry-After`.
    fn assert_too_many(&self, error_type: &str, message: &str) {
        self.assert_refused(StatusCode::TOO_MANY_REQUESTS, error_type, message);
        assert!(self.headers.contains_key("retry-after"), "{self:?}");
    }

    /// Asserts API Gateway's 401 for a missing or invalid token.
    fn assert_unauthorized(&self) {
        self.assert_refused(
            StatusCode::UNAUTHORIZED,
            "UnauthorizedException",
            "Unauthorized",
        );
    }

    /// Asserts API Gateway's 403 for a missing, unknown or disabled key.
    fn assert_forbidden(&self) {
        self.assert_refused(StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden");
    }
}

/// A token from the example's `mint-token` program, as the guide makes one.
fn mint_token(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_mint-token"))
        .args(args)
        .output()
        .expect("mint-token runs");
    assert!(output.status.success(), "mint-token: {output:?}");
    String::from_utf8(output.stdout)
        .expect("a UTF-8 token")
        .trim()
        .to_owned()
}

#[tokio::test]
async fn step_1_api_keys() {
    let server = Server::start("step1-api-keys.toml");

    let public = server.get("/", &[]).await;
    assert_eq!(public.status, StatusCode::OK);
    assert_eq!(public.body, "Hello, world!");

    server.get("/pets", &[]).await.assert_forbidden();
    server
        .get("/pets", &[("x-api-key", "NotTheKey0123456789abcdefgh")])
        .await
        .assert_forbidden();

    let pets = server.get("/pets", &[("x-api-key", KEY)]).await;
    assert_eq!(pets.status, StatusCode::OK, "{pets:?}");
    assert_eq!(pets.body, r#"["Rex","Tom"]"#);

    // No issuer in this step's file: no `/me` route yet.
    assert_eq!(server.get("/me", &[]).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn step_2_usage_plan() {
    let server = Server::start("step2-usage-plan.toml");
    let key = [("x-api-key", KEY)];

    // A burst of 2: two requests at once pass, the third is throttled.
    assert_eq!(server.get("/pets", &key).await.status, StatusCode::OK);
    assert_eq!(server.get("/pets", &key).await.status, StatusCode::OK);
    let throttled = server.get("/pets", &key).await;
    throttled.assert_too_many("TooManyRequestsException", "Too Many Requests");

    // At one request a second, the quota of 4 a day runs out after two more
    // admitted requests; a throttled request does not count.
    let mut admitted = 2;
    let quota_refusal = loop {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let reply = server.get("/pets", &key).await;
        match reply.status {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS
                if reply.headers["x-amzn-errortype"] == "LimitExceededException" =>
            {
                break reply;
            }
            _ => panic!("unexpected reply after {admitted} admitted: {reply:?}"),
        }
        assert!(admitted <= 4, "more than the quota admitted");
    };
    assert_eq!(admitted, 4, "the quota admits exactly its limit");
    quota_refusal.assert_too_many("LimitExceededException", "Limit Exceeded");

    // The public route has no plan.
    assert_eq!(server.get("/", &[]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn step_3_jwt() {
    let server = Server::start("gateway.toml");
    let token = mint_token(&["alice"]);
    let bearer = format!("Bearer {token}");

    // `/me`: a token and nothing else.
    server.get("/me", &[]).await.assert_unauthorized();
    let me = server.get("/me", &[("authorization", &bearer)]).await;
    assert_eq!(me.status, StatusCode::OK, "{me:?}");
    assert_eq!(me.body, "Hello, alice!");

    // A token for another audience, or with a changed signature, is refused.
    let other_audience = format!("Bearer {}", mint_token(&["alice", "another-app"]));
    server
        .get("/me", &[("authorization", &other_audience)])
        .await
        .assert_unauthorized();
    // One character inside the signature (the last one has unused bits).
    let mut tampered = bearer.clone().into_bytes();
    let inside = tampered.len() - 10;
    tampered[inside] = if tampered[inside] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("an ASCII token");
    server
        .get("/me", &[("authorization", &tampered)])
        .await
        .assert_unauthorized();

    // `/pets`: the token first, then the key.
    server
        .get("/pets", &[("x-api-key", KEY)])
        .await
        .assert_unauthorized();
    server
        .get("/pets", &[("authorization", &bearer)])
        .await
        .assert_forbidden();
    let pets = server
        .get("/pets", &[("authorization", &bearer), ("x-api-key", KEY)])
        .await;
    assert_eq!(pets.status, StatusCode::OK, "{pets:?}");
    assert_eq!(pets.body, r#"["Rex","Tom"]"#);
}

/// The fenced code blocks of a markdown file whose info string starts with
/// one of `languages` and does not contain `ignore`.
fn code_blocks(markdown: &str, languages: &[&str]) -> Vec<String> {
    let mut blocks = Vec::new();
    // Inside a block: whether it is kept, and its lines so far.
    let mut inside: Option<(bool, Vec<&str>)> = None;
    for line in markdown.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut inside, fence) {
            (None, Some(info)) => {
                let language = info.split(',').next().unwrap_or_default();
                let kept = languages.contains(&language) && !info.contains("ignore");
                inside = Some((kept, Vec::new()));
            }
            (Some((kept, lines)), Some(_)) => {
                if *kept {
                    blocks.push(lines.join("\n"));
                }
                inside = None;
            }
            (Some((_, lines)), None) => lines.push(line),
            (None, None) => {}
        }
    }
    blocks
}

/// Whether `block`'s lines appear, in order and together, among `source`'s
/// lines, ignoring indentation.
fn contains_block(source: &str, block: &str) -> bool {
    let source: Vec<&str> = source.lines().map(str::trim).collect();
    let block: Vec<&str> = block.lines().map(str::trim).collect();
    source
        .windows(block.len())
        .any(|window| window == block.as_slice())
}

#[test]
fn the_guide_shows_this_example_code() {
    let root = example_dir();
    let guide_path = root.join("../../docs/getting-started-axum.md");
    let guide = std::fs::read_to_string(&guide_path).expect("the guide");
    let read = |path: &Path| std::fs::read_to_string(root.join(path)).expect("a source file");
    let sources: Vec<(String, String)> = [
        "src/main.rs",
        "src/bin/mint-token.rs",
        "config/step1-api-keys.toml",
        "config/step2-usage-plan.toml",
        "config/gateway.toml",
        "config/jwks.json",
    ]
    .into_iter()
    .map(|path| (path.to_owned(), read(Path::new(path))))
    .collect();

    let blocks = code_blocks(&guide, &["rust", "toml", "json"]);
    assert!(
        blocks.len() >= 8,
        "the guide's checked code blocks: {blocks:#?}"
    );
    for block in &blocks {
        assert!(
            sources
                .iter()
                .any(|(_, source)| contains_block(source, block)),
            "this block of the guide is in none of the example's files:\n{block}"
        );
    }

    // The dependency line names the features the example builds with.
    let manifest = read(Path::new("Cargo.toml"));
    let features = manifest
        .lines()
        .find(|line| line.starts_with("portcullis = "))
        .and_then(|line| line.split("features = ").nth(1))
        .expect("the example's portcullis dependency names its features");
    assert!(
        guide.contains(&format!("features = {features}")),
        "the guide's Cargo.toml line has other features than {features}"
    );
}
