//! Runs the `portcullis` binary and checks its JSON and exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn run(command: &mut Command) -> (i32, Vec<Value>, String) {
    parse(command.output().expect("the binary runs"))
}

/// The exit code, the JSON lines of standard output, and standard error.
fn parse(output: Output) -> (i32, Vec<Value>, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = output;
    let lines = String::from_utf8(stdout)
        .expect("stdout is UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    (
        status.code().expect("an exit code"),
        lines,
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// The AWS SigV4 suite shipped in the `aws-sigv4` crate, found with
/// `cargo metadata`.
fn suite_dir() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata failed");
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    let package = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "aws-sigv4")
        .expect("aws-sigv4 is in the workspace's dependency graph");
    let manifest = Path::new(package["manifest_path"].as_str().expect("manifest path"));
    manifest
        .parent()
        .expect("crate dir")
        .join("aws-signing-test-suite/v4")
}

fn sigv4(file: &Path, secret: &str, at: &str) -> (i32, Vec<Value>, String) {
    run(bin()
        .args(["sigv4", "verify", "--request"])
        .arg(file)
        .args([
            "--access-key-id",
            "AKIDEXAMPLE",
            "--secret-access-key",
            secret,
            "--at",
            at,
        ]))
}

#[test]
fn sigv4_verifies_the_aws_suite_header_and_query_forms() {
    let case = suite_dir().join("get-vanilla");
    let (code, out, _) = sigv4(
        &case.join("header-signed-request.txt"),
        SECRET,
        "20150830T123600Z",
    );
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(
        out[0],
        json!({"valid": true, "access_key_id": "AKIDEXAMPLE", "region": "us-east-1",
               "service": "service", "signed_headers": ["host", "x-amz-date"]})
    );
    let (code, out, _) = sigv4(
        &case.join("query-signed-request.txt"),
        SECRET,
        "2015-08-30T12:36:00Z",
    );
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(out[0]["signed_headers"], json!(["host"]));
}

#[test]
fn sigv4_verifies_a_post_with_a_body() {
    let case = suite_dir().join("post-x-www-form-urlencoded");
    let (code, out, _) = sigv4(
        &case.join("header-signed-request.txt"),
        SECRET,
        "20150830T123600Z",
    );
    assert_eq!(code, 0, "{out:?}");
}

#[test]
fn sigv4_refusal_shows_the_canonical_request_and_string_to_sign() {
    let case = suite_dir().join("get-vanilla");
    let (code, out, _) = sigv4(
        &case.join("header-signed-request.txt"),
        "not-the-secret",
        "20150830T123600Z",
    );
    assert_eq!(code, 1);
    let out = &out[0];
    assert_eq!(out["valid"], false);
    assert_eq!(out["error"], "InvalidSignatureException");
    assert!(
        out["message"]
            .as_str()
            .unwrap()
            .starts_with("The request signature we calculated")
    );
    let expected_canonical =
        std::fs::read_to_string(case.join("header-canonical-request.txt")).unwrap();
    let expected_sts = std::fs::read_to_string(case.join("header-string-to-sign.txt")).unwrap();
    assert_eq!(out["canonical_request"], expected_canonical.trim_end());
    assert_eq!(out["string_to_sign"], expected_sts.trim_end());
}

#[test]
fn sigv4_refuses_an_old_signature_and_a_wrong_region() {
    let file = suite_dir().join("get-vanilla/header-signed-request.txt");
    let (code, out, _) = sigv4(&file, SECRET, "2015-08-30T12:46:00Z");
    assert_eq!(code, 1);
    assert!(
        out[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Signature expired: 20150830T123600Z is now earlier than"),
        "{out:?}"
    );
    let (code, out, _) = run(bin()
        .args(["sigv4", "verify", "--request"])
        .arg(&file)
        .args([
            "--access-key-id",
            "AKIDEXAMPLE",
            "--secret-access-key",
            SECRET,
            "--at",
            "20150830T123600Z",
            "--region",
            "eu-west-1",
        ]));
    assert_eq!(code, 1);
    assert_eq!(out[0]["error"], "InvalidSignatureException");
}

#[test]
fn sigv4_unsigned_request_is_missing_authentication_token() {
    let (code, out, _) = sigv4(&fixture("get.http"), SECRET, "20150830T123600Z");
    assert_eq!(code, 1);
    assert_eq!(out[0]["error"], "MissingAuthenticationTokenException");
    assert_eq!(out[0]["message"], "Missing Authentication Token");
    assert_eq!(out[0]["canonical_request"], Value::Null);
}

#[test]
fn usage_and_io_errors_exit_2() {
    let (code, out, _) = sigv4(Path::new("/no/such/file"), SECRET, "20150830T123600Z");
    assert_eq!(code, 2);
    assert_eq!(out[0]["error"], "io");
    let (code, out, _) = sigv4(&fixture("get.http"), SECRET, "yesterday");
    assert_eq!(code, 2);
    assert_eq!(out[0]["error"], "usage");
    let (code, out, stderr) = run(bin().args(["sigv4", "verify"]));
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(stderr.contains("--request"), "{stderr}");
}

#[test]
fn keys_generate_and_hash_agree() {
    let (code, out, _) = run(bin().args(["keys", "generate", "--length", "32"]));
    assert_eq!(code, 0);
    let value = out[0]["value"].as_str().unwrap().to_owned();
    assert_eq!(value.len(), 32);
    assert!(value.bytes().all(|b| b.is_ascii_alphanumeric()));
    let (code, hashed, _) = run(bin().args(["keys", "hash", &value]));
    assert_eq!(code, 0);
    assert_eq!(hashed[0]["value_sha256"], out[0]["value_sha256"]);

    // The digest is SHA-256 of the value, as `sha256sum` prints it.
    let (_, known, _) =
        run(bin().args(["keys", "hash", "abcdefghijklmnopqrstuvwxyz0123456789ABCD"]));
    assert_eq!(
        known[0]["value_sha256"],
        "86cd2d2a95a72152010970f791b1f8e592a70efc2e988a4830937842ff1c7b85"
    );

    assert_eq!(run(bin().args(["keys", "generate", "--length", "5"])).0, 2);
    assert_eq!(run(bin().args(["keys", "hash", "short"])).0, 2);
}

#[test]
fn waf_eval_one_line_per_request() {
    let (code, out, _) = run(bin()
        .args(["waf", "eval", "--web-acl"])
        .arg(fixture("web-acl.json"))
        .arg("--ip-sets")
        .arg(fixture("ip-sets.json"))
        .arg("--requests")
        .arg(fixture("requests.jsonl")));
    // One malformed line: its own error line, and exit 2 at the end.
    assert_eq!(code, 2);
    assert_eq!(out.len(), 6, "{out:?}");
    assert_eq!(out[0]["action"], "ALLOW");
    assert_eq!(out[0]["status"], 200);
    assert_eq!(out[1]["action"], "BLOCK");
    assert_eq!(out[1]["terminating_rule"], "blocked-ips");
    assert_eq!(out[1]["status"], 403);
    assert_eq!(out[2]["terminating_rule"], "sqli-query");
    assert_eq!(out[2]["status"], 406);
    assert_eq!(out[3]["terminating_rule"], "xss-body");
    assert_eq!(out[3]["matched_rules"], json!(["tag-admin", "xss-body"]));
    assert_eq!(
        out[3]["labels"],
        json!(["awswaf:000000000000:webacl:loyalty-acl:admin"])
    );
    assert_eq!(out[4]["action"], "ALLOW");
    assert_eq!(out[4]["matched_rules"], json!(["tag-admin"]));
    assert_eq!(out[5]["error"], "bad_request");
    assert_eq!(out[5]["line"], 7);
}

#[test]
fn waf_eval_reads_a_corpus_from_stdin_in_one_process() {
    let mut corpus = String::new();
    for i in 0..2000 {
        let ip = if i % 2 == 0 {
            "192.0.2.7"
        } else {
            "198.51.100.7"
        };
        corpus.push_str(&format!(
            r#"{{"method":"GET","uri":"/loyalty/C-{i}/get","headers":[],"body":"","client_ip":"{ip}"}}"#
        ));
        corpus.push('\n');
    }
    let mut child = bin()
        .args(["waf", "eval", "--web-acl"])
        .arg(fixture("web-acl.json"))
        .arg("--ip-sets")
        .arg(fixture("ip-sets.json"))
        .args(["--requests", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(corpus.as_bytes()).unwrap();
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2000);
    for (i, line) in lines.iter().enumerate() {
        let expected = if i % 2 == 0 { "BLOCK" } else { "ALLOW" };
        assert_eq!(line["action"], expected, "line {i}");
    }
}

#[test]
fn waf_eval_one_raw_request_with_client_ip() {
    let eval = |ip: &str| {
        run(bin()
            .args(["waf", "eval", "--web-acl"])
            .arg(fixture("web-acl.json"))
            .arg("--ip-sets")
            .arg(fixture("ip-sets.json"))
            .arg("--request")
            .arg(fixture("get.http"))
            .args(["--client-ip", ip]))
    };
    let (code, out, _) = eval("192.0.2.1");
    assert_eq!(code, 0);
    assert_eq!(out[0]["action"], "BLOCK");
    let (code, out, _) = eval("203.0.113.1");
    assert_eq!(code, 0);
    assert_eq!(out[0]["action"], "ALLOW");
}

#[test]
fn waf_check_lists_rules_and_load_errors_carry_the_json_path() {
    let (code, out, _) = run(bin()
        .args(["waf", "check", "--web-acl"])
        .arg(fixture("web-acl.json"))
        .arg("--ip-sets")
        .arg(fixture("ip-sets.json")));
    assert_eq!(code, 0);
    assert_eq!(out[0]["name"], "loyalty-acl");
    assert_eq!(out[0]["rule_count"], 4);
    assert_eq!(out[0]["rules"][1]["statement"], "SqliMatchStatement");
    assert_eq!(out[0]["rules"][2]["action"], "Count");

    // Without the IP set the reference does not resolve.
    let (code, out, _) = run(bin()
        .args(["waf", "check", "--web-acl"])
        .arg(fixture("web-acl.json")));
    assert_eq!(code, 2);
    assert_eq!(out[0]["error"], "load_error");
    assert_eq!(
        out[0]["path"],
        "Rules[0].Statement.IPSetReferenceStatement.ARN"
    );

    // A field of the wrong type: its path.
    let dir = std::env::temp_dir().join(format!("portcullis-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad-acl.json");
    std::fs::write(
        &bad,
        r#"{"Name":"a","DefaultAction":{"Allow":{}},"Rules":[{"Name":"r","Priority":"one",
           "Statement":{},"Action":{"Block":{}}}]}"#,
    )
    .unwrap();
    let (code, out, _) = run(bin().args(["waf", "check", "--web-acl"]).arg(&bad));
    assert_eq!(code, 2);
    assert_eq!(out[0]["path"], "Rules[0].Priority");
    std::fs::remove_dir_all(&dir).ok();
}

const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example";
const NOW: u64 = 1_800_000_000;

fn token(claims: Value) -> String {
    let pem = std::fs::read(fixture("demo-private.pem")).expect("the demo key");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("airline-loyalty-demo-1".to_owned());
    let key = EncodingKey::from_rsa_pem(&pem).expect("a PEM RSA key");
    encode(&header, &claims, &key).expect("the token encodes")
}

fn jwt(token: &str, extra: &[&str]) -> (i32, Vec<Value>, String) {
    run(bin()
        .args(["jwt", "verify", "--jwks"])
        .arg(fixture("jwks.json"))
        .args([
            "--cognito-user-pool",
            "us-east-1_Example",
            "--client-id",
            "demo-client",
        ])
        .args(["--at", &NOW.to_string()])
        .args(extra)
        .arg(token))
}

#[test]
fn jwt_verifies_a_cognito_id_token() {
    let id_token = token(json!({
        "iss": ISSUER, "sub": "u-1", "aud": "demo-client", "token_use": "id",
        "cognito:username": "alice", "email": "alice@example.com",
        "iat": NOW - 10, "exp": NOW + 3600,
    }));
    let (code, out, _) = jwt(&id_token, &["--token-use", "id"]);
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(out[0]["valid"], true);
    assert_eq!(out[0]["header"]["kid"], "airline-loyalty-demo-1");
    assert_eq!(out[0]["header"]["alg"], "RS256");
    assert_eq!(out[0]["claims"]["email"], "alice@example.com");

    // The same token, read from standard input.
    let mut child = bin()
        .args(["jwt", "verify", "--jwks"])
        .arg(fixture("jwks.json"))
        .args(["--issuer", ISSUER, "--at", &NOW.to_string(), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{id_token}").unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));

    // `--jwks -`: the key set from standard input (the token on the command
    // line); a token from standard input too is a usage error.
    let jwks = std::fs::read(fixture("jwks.json")).unwrap();
    let from_stdin = |token: &str| {
        run_with_stdin(
            bin()
                .args(["jwt", "verify", "--jwks", "-", "--issuer", ISSUER])
                .args(["--at", &NOW.to_string(), token]),
            &jwks,
        )
    };
    let (code, out, _) = from_stdin(&id_token);
    assert_eq!((code, &out[0]["valid"]), (0, &json!(true)), "{out:?}");
    let (code, out, _) = from_stdin("-");
    assert_eq!((code, &out[0]["error"]), (2, &json!("usage")), "{out:?}");

    // An access token where an ID token is required.
    let (code, out, _) = jwt(&id_token, &["--token-use", "access"]);
    assert_eq!(code, 1);
    assert_eq!(out[0]["error"], "wrong_token_use");
}

#[test]
fn jwt_refusals_exit_1() {
    let expired = token(json!({
        "iss": ISSUER, "sub": "u-1", "aud": "demo-client", "token_use": "id",
        "iat": NOW - 7200, "exp": NOW - 3600,
    }));
    let (code, out, _) = jwt(&expired, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        out[0],
        json!({"valid": false, "error": "expired", "message": "The incoming token has expired"})
    );
    let (code, out, _) = jwt(&expired, &["--leeway", "7200"]);
    assert_eq!(code, 0, "{out:?}");

    let other_client = token(json!({
        "iss": ISSUER, "sub": "u-1", "aud": "someone-else", "token_use": "id",
        "iat": NOW, "exp": NOW + 60,
    }));
    let (code, out, _) = jwt(&other_client, &[]);
    assert_eq!(code, 1);
    assert_eq!(out[0]["error"], "wrong_audience");
    assert_eq!(out[0]["message"], "Unauthorized");

    let (code, out, _) = jwt("not.a.token", &[]);
    assert_eq!(code, 1);
    assert_eq!(out[0]["error"], "malformed");

    let (code, _, _) = jwt(&other_client, &["--alg", "XX999"]);
    assert_eq!(code, 2);
    let (code, _, stderr) = run(bin().args(["jwt", "verify", "--jwks", "x", "tok"]));
    assert_eq!(code, 2, "{stderr}");
}

/// Every case of the AWS suite that has a `context.json`, in both forms,
/// through the binary, with the case's credentials, time and path
/// normalisation. Cases whose raw request line holds bytes an HTTP client
/// would percent-encode (a space, UTF-8) were signed over the unencoded
/// path, so they verify with single encoding.
#[test]
fn sigv4_verifies_every_suite_case() {
    let mut verified = 0;
    let mut failures = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(suite_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("context.json").is_file())
        .collect();
    dirs.sort();
    for dir in &dirs {
        let context: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("context.json")).unwrap())
                .unwrap();
        let creds = &context["credentials"];
        for form in ["header", "query"] {
            let file = dir.join(format!("{form}-signed-request.txt"));
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let target = text.lines().next().unwrap_or("");
            let target = target.split_once(' ').map_or("", |(_, rest)| {
                rest.rsplit_once(' ').map_or(rest, |(t, _)| t)
            });
            let needs_encoding = target.bytes().any(|b| b == b' ' || b >= 0x80);
            let mut command = bin();
            command
                .args(["sigv4", "verify", "--request"])
                .arg(&file)
                .args(["--access-key-id", creds["access_key_id"].as_str().unwrap()])
                .args([
                    "--secret-access-key",
                    creds["secret_access_key"].as_str().unwrap(),
                ])
                .args(["--at", context["timestamp"].as_str().unwrap()]);
            if let Some(token) = creds["token"].as_str() {
                command.args(["--session-token", token]);
            }
            if context["normalize"] == false {
                command.arg("--no-normalize-path");
            }
            if needs_encoding {
                command.args(["--uri-encoding", "single"]);
            }
            let (code, out, _) = run(&mut command);
            if code == 0 {
                verified += 1;
            } else {
                failures.push(format!("{} {form}: {:?}", dir.display(), out));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(
        verified >= 70,
        "only {verified} signed requests in the suite"
    );
    println!("{verified} signed requests of the AWS suite verified");
}

#[test]
fn waf_check_lists_the_managed_groups_rules_with_names_labels_and_actions() {
    let (code, out, _) = run(bin()
        .args(["waf", "check", "--web-acl"])
        .arg(fixture("managed-acl.json")));
    assert_eq!(code, 0, "{out:?}");
    let crs = &out[0]["rules"][0]["managed_rule_group"];
    assert_eq!(crs["name"], "AWSManagedRulesCommonRuleSet");
    assert_eq!(crs["version"], "Version_1.12");
    let rules = crs["rules"].as_array().unwrap();
    let find = |name: &str| rules.iter().find(|r| r["name"] == name).unwrap().clone();
    assert_eq!(
        find("NoUserAgent_HEADER"),
        json!({"name": "NoUserAgent_HEADER", "action": "Count",
               "labels": ["awswaf:managed:aws:core-rule-set:NoUserAgent_Header"]})
    );
    assert_eq!(find("SizeRestrictions_BODY")["action"], "Count");
    assert_eq!(find("SizeRestrictions_QUERYSTRING")["action"], "Block");
    assert_eq!(
        find("SizeRestrictions_QUERYSTRING")["labels"],
        json!(["awswaf:managed:aws:core-rule-set:SizeRestrictions_QueryString"])
    );
    let sqli = &out[0]["rules"][1]["managed_rule_group"]["rules"];
    assert_eq!(sqli[0]["name"], "SQLi_QUERYARGUMENTS");
    assert_eq!(
        sqli[0]["labels"],
        json!(["awswaf:managed:aws:sql-database:SQLi_QueryArguments"])
    );
}

#[test]
fn waf_eval_names_the_managed_rule_as_aws_logs_do() {
    let dir = std::env::temp_dir().join(format!("portcullis-cli-managed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let requests = dir.join("requests.jsonl");
    std::fs::write(
        &requests,
        concat!(
            r#"{"uri":"/items?id=1%27%20OR%20%271%27%3D%271","headers":[["user-agent","curl/8.5.0"]]}"#,
            "\n",
            r#"{"uri":"/items?id=1001"}"#,
            "\n"
        ),
    )
    .unwrap();
    let (code, out, _) = run(bin()
        .args(["waf", "eval", "--web-acl"])
        .arg(fixture("managed-acl.json"))
        .arg("--requests")
        .arg(&requests));
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(out[0]["action"], "BLOCK");
    assert_eq!(
        out[0]["terminating_rule"],
        "AWS-AWSManagedRulesSQLiRuleSet/SQLi_QUERYARGUMENTS"
    );
    assert_eq!(
        out[0]["rule_group_list"],
        json!([{"rule_group_id": "AWS#AWSManagedRulesSQLiRuleSet",
                "web_acl_rule": "AWS-AWSManagedRulesSQLiRuleSet",
                "terminating_rule": {"rule_id": "SQLi_QUERYARGUMENTS", "action": "BLOCK"},
                "non_terminating_matching_rules": []}])
    );
    // No user agent: the overridden rule counts, labels, and lets it through.
    assert_eq!(out[1]["action"], "ALLOW");
    assert_eq!(
        out[1]["matched_rules"],
        json!(["AWS-AWSManagedRulesCommonRuleSet/NoUserAgent_HEADER"])
    );
    assert_eq!(
        out[1]["rule_group_list"][0]["non_terminating_matching_rules"],
        json!([{"rule_id": "NoUserAgent_HEADER", "action": "COUNT"}])
    );
    assert_eq!(
        out[1]["labels"],
        json!(["awswaf:managed:aws:core-rule-set:NoUserAgent_Header"])
    );
}

/// Runs `command` with `input` on standard input.
fn run_with_stdin(command: &mut Command, input: &[u8]) -> (i32, Vec<Value>, String) {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input)
        .expect("stdin takes the input");
    parse(child.wait_with_output().expect("the binary ends"))
}

/// A fresh folder for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    dir
}

const GATEWAY: &str = r#"
[gateway]
region = "us-east-1"
account_id = "123456789012"
api_id = "a1b2c3d4e5"
stage = "prod"
"#;

#[test]
fn config_check_reports_every_error_with_its_path() {
    let dir = scratch("config-every-error");
    let file = dir.join("gateway.toml");
    std::fs::write(
        &file,
        format!(
            r#"{GATEWAY}
[[usage_plans]]
id = "bad"
quota = {{ limit = 10, period = "FORTNIGHT", offset = 0 }}

[[usage_plans]]
id = "basic"

[[api_keys]]
id = "k1"
value = "short"
usage_plans = ["basic"]

[[api_keys]]
id = "k2"
value = "DemoKey0123456789abcdefghij"
usage_plans = ["bad", "nope"]

[iam]
resource_policy = "missing.json"

[jwt]
issuer = "https://issuer.example"
jwks = "no-jwks.json"
"#
        ),
    )
    .unwrap();
    let (code, out, _) = run(bin().args(["config", "check"]).arg(&file));
    assert_eq!(code, 1, "{out:?}");
    assert_eq!(out[0]["valid"], false);
    let mut paths: Vec<&str> = out[0]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    paths.sort_unstable();
    // Five errors, each by its path in the file as written. `api_keys[1]`'s
    // plan `bad` is not reported: the plan itself is.
    assert_eq!(
        paths,
        [
            "api_keys[0].value",
            "api_keys[1].usage_plans[1]",
            "iam.resource_policy",
            "jwt.jwks",
            "usage_plans[0].quota.period",
        ]
    );
    let messages = out[0]["errors"].to_string();
    assert!(messages.contains("FORTNIGHT"), "{messages}");
    assert!(messages.contains("`nope`"), "{messages}");
}

#[test]
fn config_check_accepts_the_examples_and_reads_standard_input() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for example in ["airline-loyalty", "hyper-server"] {
        let file = root
            .join("examples")
            .join(example)
            .join("config/gateway.toml");
        let (code, out, _) = run(bin().args(["config", "check"]).arg(&file));
        assert_eq!(code, 0, "{example}: {out:?}");
        assert_eq!(out[0]["valid"], true);
    }

    // `-`: standard input, with paths relative to the current folder. The
    // embedded store's folder is not created: a check writes nothing.
    let dir = scratch("config-stdin");
    let text = format!("{GATEWAY}\n[store]\nkind = \"embedded\"\ndata_dir = \"data\"\n");
    let (code, out, _) = run_with_stdin(
        bin().current_dir(&dir).args(["config", "check", "-"]),
        text.as_bytes(),
    );
    assert_eq!((code, &out[0]["valid"]), (0, &json!(true)), "{out:?}");
    assert!(!dir.join("data").exists());

    let (code, out, _) = run_with_stdin(bin().args(["config", "check", "-"]), b"[gateway");
    assert_eq!(code, 1);
    assert_eq!(out[0]["errors"][0]["path"], "");
    assert!(
        out[0]["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("line 1")
    );
    assert_eq!(run(bin().args(["config", "check", "/no/such/file"])).0, 2);
}

#[test]
fn secrets_come_from_the_argument_a_file_or_standard_input() {
    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCD";
    const DIGEST: &str = "86cd2d2a95a72152010970f791b1f8e592a70efc2e988a4830937842ff1c7b85";
    let dir = scratch("secrets");
    let key_file = dir.join("key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();

    let (code, out, _) = run_with_stdin(bin().args(["keys", "hash", "-"]), KEY.as_bytes());
    assert_eq!((code, &out[0]["value_sha256"]), (0, &json!(DIGEST)));
    let at_file = format!("@{}", key_file.display());
    let (code, out, _) = run(bin().args(["keys", "hash", &at_file]));
    assert_eq!((code, &out[0]["value_sha256"]), (0, &json!(DIGEST)));
    // `-` is standard input, never the literal value `-`.
    let (code, out, _) = run_with_stdin(bin().args(["keys", "hash", "-"]), b"-");
    assert_eq!((code, &out[0]["error"]), (2, &json!("invalid_key_value")));

    // The SigV4 secret from standard input and from a file.
    let case = suite_dir().join("get-vanilla");
    let request = case.join("header-signed-request.txt");
    let verify = |secret: &str| {
        let mut command = bin();
        command
            .args(["sigv4", "verify", "--request"])
            .arg(&request)
            .args([
                "--access-key-id",
                "AKIDEXAMPLE",
                "--secret-access-key",
                secret,
            ])
            .args(["--at", "20150830T123600Z"]);
        command
    };
    let (code, out, _) = run_with_stdin(&mut verify("-"), format!("{SECRET}\n").as_bytes());
    assert_eq!((code, &out[0]["valid"]), (0, &json!(true)), "{out:?}");
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let (code, out, _) = run(&mut verify(&format!("@{}", secret_file.display())));
    assert_eq!((code, &out[0]["valid"]), (0, &json!(true)), "{out:?}");
    let (code, out, _) = run_with_stdin(&mut verify("-"), b"not-the-secret");
    assert_eq!((code, &out[0]["valid"]), (1, &json!(false)));

    // Two arguments cannot both read standard input.
    let (code, out, _) = run_with_stdin(
        bin().args([
            "sigv4",
            "verify",
            "--request",
            "-",
            "--access-key-id",
            "AKIDEXAMPLE",
            "--secret-access-key",
            "-",
        ]),
        b"GET / HTTP/1.1\nHost: h\n\n",
    );
    assert_eq!((code, &out[0]["error"]), (2, &json!("usage")));
}

#[test]
fn sigv4_on_a_head_that_is_not_utf8_gives_a_verdict() {
    let case = suite_dir().join("get-vanilla");
    let signed = std::fs::read(case.join("header-signed-request.txt")).unwrap();
    // The suite's signed request with its signed `Host` value made bytes
    // that are not UTF-8: the layer refuses it, so the CLI does too.
    let at = signed
        .windows(4)
        .position(|w| w.eq_ignore_ascii_case(b"host"))
        .unwrap();
    let mut request = signed[..at].to_vec();
    request.extend_from_slice(b"Host:caf\xe9.example\n");
    let rest = &signed[at..];
    request.extend_from_slice(&rest[rest.iter().position(|b| *b == b'\n').unwrap() + 1..]);
    let verify_stdin = |request: &[u8]| {
        run_with_stdin(
            bin()
                .args(["sigv4", "verify", "--request", "-", "--access-key-id"])
                .args(["AKIDEXAMPLE", "--secret-access-key", SECRET])
                .args(["--at", "20150830T123600Z"]),
            request,
        )
    };
    let (code, out, _) = verify_stdin(&request);
    assert_eq!(code, 1, "{out:?}");
    assert_eq!(out[0]["valid"], false);
    // A header name that is not UTF-8: no server takes it, still a verdict.
    let (code, out, _) = verify_stdin(b"GET / HTTP/1.1\nX-\xff: a\n\n");
    assert_eq!((code, &out[0]["valid"]), (1, &json!(false)), "{out:?}");
}

#[test]
fn waf_check_names_the_missing_field() {
    let acl: Value =
        serde_json::from_slice(&std::fs::read(fixture("web-acl.json")).unwrap()).unwrap();
    let mut top = acl.clone();
    top["WebACL"]
        .as_object_mut()
        .unwrap()
        .remove("DefaultAction");
    let (code, out, _) = run_with_stdin(
        bin().args(["waf", "check", "--web-acl", "-"]),
        top.to_string().as_bytes(),
    );
    assert_eq!(code, 2);
    assert_eq!(out[0]["path"], "DefaultAction");
    assert_eq!(out[0]["missing_field"], "DefaultAction");

    let mut nested = acl;
    nested["WebACL"]["Rules"][0]
        .as_object_mut()
        .unwrap()
        .remove("Name");
    let (code, out, _) = run_with_stdin(
        bin().args(["waf", "check", "--web-acl", "-"]),
        nested.to_string().as_bytes(),
    );
    assert_eq!(code, 2);
    assert_eq!(out[0]["path"], "Rules[0].Name", "{out:?}");
}
