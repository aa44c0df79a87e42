//! Each optional section of the configuration file is read only when its
//! layer's feature is on. With the feature off the file is refused, by
//! `Config::from_file`, with an error that names the file, the section and
//! the feature to turn on; with it on the section is read.
//!
//! The workspace's tests run with every feature on (the examples ask for
//! them); the CI runs this test again with the default features alone, where
//! every section below is refused.

#![cfg(feature = "config")]

use std::path::Path;

use portcullis::config::{Config, ConfigFileError};

const GATEWAY: &str = r#"
[gateway]
region = "us-east-1"
account_id = "123456789012"
api_id = "a1b2c3d4e5"
stage = "prod"
"#;

/// One optional section: its text, the path the error names, the feature
/// it needs and whether this build has that feature.
struct Section {
    text: &'static str,
    path: &'static str,
    feature: &'static str,
    enabled: bool,
}

fn sections() -> Vec<Section> {
    vec![
        Section {
            text: "[waf]\nweb_acl = \"web-acl.json\"\n",
            path: "waf",
            feature: "waf",
            enabled: cfg!(feature = "waf"),
        },
        Section {
            text: "[iam]\nclock_skew_seconds = 60\n",
            path: "iam",
            feature: "sigv4",
            enabled: cfg!(feature = "sigv4"),
        },
        Section {
            text: "[jwt]\nissuer = \"https://issuer.example.com\"\n",
            path: "jwt",
            feature: "jwt",
            enabled: cfg!(feature = "jwt"),
        },
        Section {
            text: "[api]\nopenapi = \"openapi.json\"\n",
            path: "api",
            feature: "openapi",
            enabled: cfg!(feature = "openapi"),
        },
        Section {
            text: "[identity_pool]\nregion = \"us-east-1\"\naccount_id = \"123456789012\"\nkeys = [{ id = \"k1\", secret = \"test-pool-key-0000000000000000000000000000\" }]\nauthenticated_role = \"Member\"\nroles = { Member = { policies = [] } }\n",
            path: "identity_pool",
            feature: "identity-pool",
            enabled: cfg!(feature = "identity-pool"),
        },
    ]
}

fn load(dir: &Path, text: &str) -> Result<Config, ConfigFileError> {
    let file = dir.join("gateway.toml");
    std::fs::write(&file, format!("{GATEWAY}\n{text}")).expect("the temp dir is writable");
    Config::from_file(&file)
}

/// The refusal of a section whose feature is off: the file, the section's
/// path, and the feature, all in the message a user sees.
fn assert_refused(error: &ConfigFileError, dir: &Path, path: &str, feature: &str) {
    let file = dir.join("gateway.toml");
    assert_eq!(error.file.as_deref(), Some(file.as_path()), "{error}");
    assert_eq!(error.path(), path, "{error}");
    let shown = error.to_string();
    assert!(
        shown.starts_with(&format!("{}: {path}: [{path}] needs", file.display())),
        "{shown}"
    );
    assert!(shown.contains(&format!("`{feature}` feature")), "{shown}");
    assert!(
        shown.contains(&format!("features = [\"{feature}\"]")),
        "{shown}"
    );
}

#[test]
fn a_section_is_read_with_its_feature_and_refused_by_name_without_it() {
    let dir = tempfile::tempdir().expect("a temp dir");
    for section in sections() {
        let result = load(dir.path(), section.text);
        match (section.enabled, result) {
            (false, Err(error)) => {
                assert_refused(&error, dir.path(), section.path, section.feature);
            }
            (false, Ok(_)) => panic!(
                "[{}] was accepted without the `{}` feature",
                section.path, section.feature
            ),
            (true, Err(error)) => panic!(
                "[{}] was refused with the `{}` feature: {error}",
                section.path, section.feature
            ),
            (true, Ok(_)) => {}
        }
    }
}

/// Without `openapi`, `[api]` itself is refused (above).
#[cfg(feature = "openapi")]
#[test]
fn a_custom_authorizer_needs_the_authorizer_feature() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let text = "[api]\nopenapi = \"openapi.json\"\n\n[api.authorizers.tokenAuth]\nurl = \"http://127.0.0.1:9/authorize\"\n";
    match (cfg!(feature = "authorizer"), load(dir.path(), text)) {
        (true, result) => {
            result.expect("`[api.authorizers]` is read with the `authorizer` feature");
        }
        (false, result) => {
            let error = result.expect_err("refused without the `authorizer` feature");
            assert_refused(
                &error,
                dir.path(),
                "api.authorizers.tokenAuth",
                "authorizer",
            );
        }
    }
}

#[test]
fn the_default_sections_need_no_optional_feature() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = load(
        dir.path(),
        r#"
[[usage_plans]]
id = "basic"
throttle = { rate_limit = 10.0, burst_limit = 20 }
quota = { limit = 1000, period = "DAY" }

[[api_keys]]
id = "k1"
value = "DemoKey0123456789abcdefghij"
usage_plans = ["basic"]

[store]
kind = "memory"

[quota]
on_store_error = "refuse"

[client_ip]
trusted_proxies = ["10.0.0.0/8"]
"#,
    )
    .expect("the default features read these sections");
    assert_eq!(config.usage_plans.len(), 1);
    assert_eq!(config.api_keys.len(), 1);
}
