//! Table-driven tests: one JSON fixture per statement type, per FieldToMatch
//! and per text transformation, each with matching and non-matching requests.

#![allow(clippy::unwrap_used)]

mod support;

use http::HeaderName;
use portcullis_waf::{AclSources, WafAction, WafLayer};
use serde::Deserialize;
use serde_json::Value;
use support::RequestSpec;

#[derive(Debug, Deserialize)]
struct Fixture {
    name: String,
    #[serde(default)]
    acl: Option<Value>,
    #[serde(default)]
    statement: Option<Value>,
    #[serde(default)]
    ip_sets: Vec<Value>,
    #[serde(default)]
    regex_sets: Vec<Value>,
    #[serde(default)]
    rule_groups: Vec<Value>,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    request: RequestSpec,
    expect: String,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    terminating: Option<String>,
}

fn run(file: &str) -> usize {
    let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    let fixtures: Vec<Fixture> =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut checked = 0;
    for fixture in &fixtures {
        let acl = match (&fixture.acl, &fixture.statement) {
            (Some(acl), None) => acl.to_string(),
            (None, Some(statement)) => support::acl_with(std::slice::from_ref(statement)),
            _ => panic!("{}: give `acl` or `statement`", fixture.name),
        };
        let mut sources =
            AclSources::from_json(&acl).unwrap_or_else(|e| panic!("{}: {e}", fixture.name));
        for set in &fixture.ip_sets {
            sources = sources.with_ip_set_json(&set.to_string()).unwrap();
        }
        for set in &fixture.regex_sets {
            sources = sources
                .with_regex_pattern_set_json(&set.to_string())
                .unwrap();
        }
        for group in &fixture.rule_groups {
            sources = sources.with_rule_group_json(&group.to_string()).unwrap();
        }
        let compiled = sources
            .compile()
            .unwrap_or_else(|e| panic!("{}: {e}", fixture.name));
        let layer = WafLayer::new(compiled)
            .geo_header(HeaderName::from_static("cloudfront-viewer-country"));
        for (i, case) in fixture.cases.iter().enumerate() {
            let outcome = layer.evaluate(&case.request.build());
            let expected = match case.expect.as_str() {
                "BLOCK" => WafAction::Block,
                "ALLOW" => WafAction::Allow,
                other => panic!("{}: unknown expectation {other}", fixture.name),
            };
            assert_eq!(
                outcome.action(),
                expected,
                "{} case {i} ({:?}): {outcome:?}",
                fixture.name,
                case.request
            );
            for label in &case.labels {
                assert!(
                    outcome.labels().contains(label),
                    "{} case {i}: missing label {label} in {:?}",
                    fixture.name,
                    outcome.labels()
                );
            }
            if let Some(rule) = &case.terminating {
                assert_eq!(
                    outcome.terminating_rule(),
                    Some(rule.as_str()),
                    "{} case {i}",
                    fixture.name
                );
            }
            checked += 1;
        }
    }
    checked
}

#[test]
fn statement_fixtures() {
    assert!(run("statements.json") > 60);
}

#[test]
fn field_to_match_fixtures() {
    assert!(run("fields.json") > 40);
}

#[test]
fn transformation_fixtures() {
    // Every transformation AWS lists has a fixture.
    let text = std::fs::read_to_string(format!(
        "{}/tests/fixtures/transformations.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    for kind in portcullis_waf::transform::TransformKind::ALL {
        let name = serde_json::to_value(format!("{kind:?}")).unwrap();
        let screaming: String = name
            .as_str()
            .unwrap()
            .chars()
            .enumerate()
            .flat_map(|(i, c)| {
                let sep = (i > 0 && c.is_ascii_uppercase()).then_some('_');
                sep.into_iter()
                    .chain(std::iter::once(c.to_ascii_uppercase()))
            })
            .collect();
        let screaming = screaming
            .replace("U_T_F8", "UTF8")
            .replace("M_D5", "MD5")
            .replace("S_H_A256", "SHA256")
            .replace("B_A_S_E64", "BASE64");
        assert!(
            text.contains(&format!("\"transformation {screaming}\"")),
            "no fixture for {screaming}"
        );
    }
    assert!(run("transformations.json") >= 62);
}

#[test]
fn the_fuzz_acl_compiles_and_evaluates() {
    // The evaluate fuzz target's ACL: every statement type, field and
    // transformation in one document.
    let json = std::fs::read_to_string(format!(
        "{}/tests/fixtures/fuzz_acl.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let compiled = AclSources::from_json(&json)
        .unwrap()
        .with_ip_set_json(r#"{"IPSet":{"ARN":"arn:set","Addresses":["10.0.0.0/8","2001:db8::/32"]}}"#)
        .unwrap()
        .with_regex_pattern_set_json(r#"{"RegexPatternSet":{"ARN":"arn:re","RegularExpressionList":[{"RegexString":"(?i)select.+from"},{"RegexString":"<script"}]}}"#)
        .unwrap()
        .compile()
        .unwrap();
    assert!(compiled.rule_count() > 100);
    let layer = WafLayer::new(compiled);
    let blocked = http::Request::post("/block?id=1")
        .header("cookie", "s=1")
        .body(r#"{"a":{"b":"evil"},"c":[1,"<script>"]}"#.to_owned())
        .unwrap();
    let outcome = layer.evaluate(&blocked);
    assert_eq!(outcome.action(), WafAction::Block);
    assert!(outcome.matched_rules().count() > 3, "{outcome:?}");
    let allowed = http::Request::get("/fine").body(String::new()).unwrap();
    assert_eq!(layer.evaluate(&allowed).action(), WafAction::Allow);
}
