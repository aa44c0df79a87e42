//! `kill -HUP` reloads the demo's configuration: a bad file is refused (the
//! error, with the file and field, is logged) and the running configuration
//! keeps serving; a good one takes effect without a restart.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use support::{API_KEY, Answer, CLIENT, Http, TEST_RUST_LOG, copy_dir};

/// The demo on a copy of its configuration, killed when dropped.
struct Demo {
    child: Child,
    base: String,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    fn start(config: &Path, data_dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_airline-loyalty"))
            .args(["--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", TEST_RUST_LOG)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("stderr lock")
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("readable stdout");
        let base = first
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .to_owned();
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Self {
            child,
            base,
            stderr,
        }
    }

    fn hang_up(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -HUP");
    }

    /// Waits until the log has `needle`, and returns the log.
    fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.stderr.lock().expect("stderr lock").clone();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

async fn points(http: &Http) -> Answer {
    let mut request = http.request(Method::GET, "/loyalty/C-1001/get", "");
    request
        .headers_mut()
        .insert("x-api-key", API_KEY.parse().expect("a header value"));
    http.send(http.sign(request, "", &CLIENT)).await
}

/// The client's policy without `GET /loyalty/*`.
const REDEEM_ONLY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"execute-api:Invoke",
  "Resource":"arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/POST/loyalty/*/redeem"}]}"#;

#[tokio::test(flavor = "current_thread")]
async fn sighup_reloads_the_configuration_and_refuses_a_bad_one() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let config = tempfile::tempdir().expect("a temp dir");
    let data = tempfile::tempdir().expect("a temp dir");
    copy_dir(&source, config.path());
    let file = config.path().join("gateway.toml");
    let good = std::fs::read_to_string(&file).expect("the configuration reads");
    let demo = Demo::start(&file, data.path());
    let http = Http::new(&demo.base);

    let answer = points(&http).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);

    // A policy file that is not there: refused, logged with the file and
    // the field, and the running configuration keeps serving.
    let bad = good.replace(
        "policies/invoke-loyalty.json",
        "policies/no-such-policy.json",
    );
    assert_ne!(bad, good, "the client's policy is named");
    std::fs::write(&file, bad).expect("the configuration writes");
    demo.hang_up();
    let log = demo.wait_for_log("reload refused");
    let expected = format!("{}: iam.users[0].policies[0]: cannot read", file.display());
    assert!(
        log.contains(&expected),
        "{expected:?} not in the log:\n{log}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await; // the plan's 1 request/s
    let answer = points(&http).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);

    // The file again, with the client's policy changed: once reloaded, GET
    // is denied.
    std::fs::write(&file, &good).expect("the configuration writes");
    std::fs::write(
        config.path().join("policies/invoke-loyalty.json"),
        REDEEM_ONLY,
    )
    .expect("the policy writes");
    demo.hang_up();
    demo.wait_for_log("gateway configuration reloaded");
    let answer = points(&http).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.json);
    assert_eq!(
        answer.error_type, "AccessDeniedException",
        "{}",
        answer.json
    );
}
