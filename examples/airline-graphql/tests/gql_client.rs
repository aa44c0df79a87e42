//! Every mode and directive of airline-graphql, driven by real clients:
//! Python's `gql` (requests transport) with botocore signing AWS_IAM
//! requests, in `tests/client/appsync_modes.py`.
//!
//! Needs `GRAPHQL_CLIENT_PYTHON` (set by `scripts/services.d/31-graphql-client.sh`):
//! without it the test prints one line and passes, except under CI, where it
//! fails. With `OIDC_ISSUER_URL` (scripts/services.d/20-oidc.sh) the server
//! also accepts the real OIDC issuer's tokens, and the client checks
//! OPENID_CONNECT with one; under CI the issuer is required.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

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

#[test]
fn a_real_graphql_client_sees_appsync_behaviour() {
    let Some(python) = std::env::var_os("GRAPHQL_CLIENT_PYTHON") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "GRAPHQL_CLIENT_PYTHON is not set: source scripts/services.d/31-graphql-client.sh"
        );
        eprintln!(
            "skipped: GRAPHQL_CLIENT_PYTHON is not set (source scripts/services.d/31-graphql-client.sh)"
        );
        return;
    };

    // The real OpenID Connect issuer (scripts/services.d/20-oidc.sh), if
    // running: the server then accepts its tokens as OPENID_CONNECT.
    let oidc = std::env::var("OIDC_ISSUER_URL").ok();
    assert!(
        oidc.is_some() || std::env::var_os("CI").is_none(),
        "OIDC_ISSUER_URL is not set under CI: scripts/services.d/20-oidc.sh must start the issuer"
    );
    let mut server_args = vec!["--listen".to_owned(), "127.0.0.1:0".to_owned()];
    if let Some(issuer) = &oidc {
        server_args.extend(["--oidc-issuer".into(), issuer.clone()]);
        server_args.extend(["--oidc-audience".into(), "portcullis".into()]);
    }
    let mut child = Command::new(BIN)
        .args(&server_args)
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
    let mut api_key = None;
    let mut access_key = None;
    let mut secret_key = None;
    for line in lines.by_ref().take(8) {
        let line = line.expect("readable stdout");
        if let Some(v) = line.strip_prefix("api key: ") {
            api_key = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("iam access key id: ") {
            access_key = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("iam secret access key: ") {
            secret_key = Some(v.to_owned());
        }
        if api_key.is_some() && access_key.is_some() && secret_key.is_some() {
            break;
        }
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/client/appsync_modes.py");
    let mut client = Command::new(python);
    if let Some(issuer) = &oidc {
        client.env("OIDC_ISSUER_URL", issuer);
    } else {
        client.env_remove("OIDC_ISSUER_URL");
    }
    let out = client
        .arg(script)
        .env("GRAPHQL_URL", format!("{base}/graphql"))
        .env("API_KEY", api_key.expect("an `api key:` line"))
        .env("IAM_ACCESS_KEY_ID", access_key.expect("an access key line"))
        .env(
            "IAM_SECRET_ACCESS_KEY",
            secret_key.expect("a secret key line"),
        )
        .env("IAM_REGION", "us-east-1")
        .env("TOKEN", mint(&[]))
        .env(
            "ADMIN_TOKEN",
            mint(&["--username", "bob", "--group", "Admin"]),
        )
        .output()
        .expect("runs the Python client");
    drop(server);
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the client's checks failed:\n{report}"
    );
    let passed = report.lines().filter(|l| l.starts_with("ok - ")).count();
    let expected = if oidc.is_some() { 41 } else { 33 };
    assert!(
        passed >= expected,
        "expected every check to run, {passed} passed:\n{report}"
    );
}
