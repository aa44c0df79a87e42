//! Every mode and directive of airline-graphql, driven by real clients:
//! Python's `gql` (requests transport) with botocore signing AWS_IAM
//! requests, in `tests/client/appsync_modes.py`; subscriptions over
//! AppSync's real-time protocol (gql's AppSync WebSocket transport) and
//! per-field IAM, in `tests/client/appsync_realtime.py`.
//!
//! Needs `GRAPHQL_CLIENT_PYTHON` (set by `scripts/services.d/31-graphql-client.sh`):
//! without it the test prints one line and passes, except under CI, where it
//! fails. With `OIDC_ISSUER_URL` (scripts/services.d/20-oidc.sh) the server
//! also accepts the real OIDC issuer's tokens, and the client checks
//! OPENID_CONNECT with one; under CI the issuer is required.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_airline-graphql");

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mint(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("mint-token")
        .args(args)
        .output()
        .expect("runs mint-token");
    assert!(out.status.success(), "mint-token failed: {out:?}");
    String::from_utf8(out.stdout)
        .expect("a UTF-8 token")
        .trim()
        .to_owned()
}

/// A running airline-graphql and what its banner printed.
struct Started {
    server: Server,
    base: String,
    banner: HashMap<String, String>,
}

impl Started {
    fn line(&self, name: &str) -> &str {
        self.banner
            .get(name)
            .unwrap_or_else(|| panic!("a `{name}:` line in the banner"))
    }
}

fn start(extra: &[String]) -> Started {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts airline-graphql");
    let stdout = child.stdout.take().expect("piped stdout");
    let server = Server(child);
    let mut lines = BufReader::new(stdout).lines();
    let first = lines
        .next()
        .expect("a first line")
        .expect("readable stdout");
    let base = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("the first line is `listening on http://ADDR`, got `{first}`"))
        .to_owned();
    let mut banner = HashMap::new();
    for line in lines.by_ref().take(12) {
        let line = line.expect("readable stdout");
        let done = line.starts_with("user pool: ");
        if let Some((name, value)) = line.split_once(": ") {
            banner.insert(name.to_owned(), value.to_owned());
        }
        if done {
            break;
        }
    }
    Started {
        server,
        base,
        banner,
    }
}

/// The Python interpreter of the client venv, or `None` (the test then
/// prints why and passes, except under CI, where it fails).
fn client_python() -> Option<std::ffi::OsString> {
    let python = std::env::var_os("GRAPHQL_CLIENT_PYTHON");
    if python.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "GRAPHQL_CLIENT_PYTHON is not set: source scripts/services.d/31-graphql-client.sh"
        );
        eprintln!(
            "skipped: GRAPHQL_CLIENT_PYTHON is not set (source scripts/services.d/31-graphql-client.sh)"
        );
    }
    python
}

/// Runs the client script `script` against `started`, with the environment
/// every script reads plus `configure`'s, and kills it after `limit`.
/// Returns its report when it passed; fails the test otherwise.
fn run_script(
    python: std::ffi::OsString,
    started: Started,
    script: &str,
    limit: Duration,
    configure: impl FnOnce(&mut Command),
) -> String {
    let mut client = Command::new(python);
    client
        .arg(format!(
            "{}/tests/client/{script}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .env("GRAPHQL_URL", format!("{}/graphql", started.base))
        .env("API_KEY", started.line("api key"))
        .env("IAM_ACCESS_KEY_ID", started.line("iam access key id"))
        .env(
            "IAM_SECRET_ACCESS_KEY",
            started.line("iam secret access key"),
        )
        .env("IAM_REGION", "us-east-1")
        .env("TOKEN", mint(&[]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    configure(&mut client);
    let mut child = client.spawn().expect("runs the Python client");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("waits for the client").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("the client's output");
    drop(started.server);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{report}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the client's checks failed:\n{report}"
    );
    report
}

fn passed(report: &str) -> usize {
    report.lines().filter(|l| l.starts_with("ok - ")).count()
}

#[test]
fn a_real_graphql_client_sees_appsync_behaviour() {
    let Some(python) = client_python() else {
        return;
    };
    // The real OpenID Connect issuer (scripts/services.d/20-oidc.sh), if
    // running: the server then accepts its tokens as OPENID_CONNECT.
    let oidc = std::env::var("OIDC_ISSUER_URL").ok();
    assert!(
        oidc.is_some() || std::env::var_os("CI").is_none(),
        "OIDC_ISSUER_URL is not set under CI: scripts/services.d/20-oidc.sh must start the issuer"
    );
    let mut server_args = Vec::new();
    if let Some(issuer) = &oidc {
        server_args.extend(["--oidc-issuer".into(), issuer.clone()]);
        server_args.extend(["--oidc-audience".into(), "portcullis".into()]);
    }
    let started = start(&server_args);
    let report = run_script(
        python,
        started,
        "appsync_modes.py",
        Duration::from_secs(120),
        |client| {
            if let Some(issuer) = &oidc {
                client.env("OIDC_ISSUER_URL", issuer);
            } else {
                client.env_remove("OIDC_ISSUER_URL");
            }
            client.env(
                "ADMIN_TOKEN",
                mint(&["--username", "bob", "--group", "Admin"]),
            );
        },
    );
    let expected = if oidc.is_some() { 41 } else { 33 };
    assert!(
        passed(&report) >= expected,
        "expected every check to run:\n{report}"
    );
}

/// Subscriptions over AppSync's real-time protocol with gql's AppSync
/// WebSocket transport (API key, IAM and user-pool authentication), the raw
/// protocol with the `websockets` library, and per-field IAM with signed
/// queries and mutations (`tests/client/appsync_realtime.py`).
#[test]
fn subscriptions_and_per_field_iam_with_real_clients() {
    let Some(python) = client_python() else {
        return;
    };
    let started = start(&[]);
    let partner_key = started.line("iam partner access key id").to_owned();
    let partner_secret = started.line("iam partner secret access key").to_owned();
    let report = run_script(
        python,
        started,
        "appsync_realtime.py",
        Duration::from_secs(180),
        |client| {
            client
                .env("PARTNER_ACCESS_KEY_ID", partner_key)
                .env("PARTNER_SECRET_ACCESS_KEY", partner_secret);
        },
    );
    assert!(
        passed(&report) >= 25,
        "expected every check to run:\n{report}"
    );
}
