//! False positives of the SQLi and XSS detectors on benign text that nobody in
//! this project wrote: botocore's service models (Apache-2.0, Amazon Web
//! Services), read by `tests/oracle/botocore_values.py` from the botocore that
//! `scripts/services.d/30-python-clients.sh` installs. Two sets:
//! - every string value of a request example (`examples-1.json`): names,
//!   ARNs, descriptions, JSON policies, dates, the values real API calls carry;
//! - a deterministic sample of the text between the HTML tags of the
//!   documentation strings (`service-2.json`): English prose with
//!   apostrophes, quotes, code words and SQL-looking words (`select`, `from`,
//!   `and`, `or`), the kind of text search boxes and comment forms carry.
//!
//! Without `PORTCULLIS_PYTHON` the test prints one line and passes, except
//! under `CI=true`, where it fails.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::Command;

use portcullis_waf::detect::{is_sqli, is_xss};

/// How many documentation segments are checked (a stride over the sorted
/// distinct ones), to keep the test to seconds.
const DOCUMENTATION_SAMPLE: usize = 40_000;

fn botocore_values() -> Option<serde_json::Value> {
    let python = match std::env::var("PORTCULLIS_PYTHON") {
        Ok(python) if !python.is_empty() => python,
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PORTCULLIS_PYTHON is not set (scripts/services.d/30-python-clients.sh)")
        }
        _ => {
            println!("botocore benign-set test skipped: PORTCULLIS_PYTHON is not set");
            return None;
        }
    };
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/oracle/botocore_values.py"
    );
    let output = Command::new(python).arg(script).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_slice(&output.stdout).unwrap())
}

fn distinct(values: &serde_json::Value) -> BTreeSet<String> {
    values
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// Counts and shows what each detector flags in `values`.
fn flagged(set: &str, values: &[&String]) -> [usize; 3] {
    let mut counts = [0; 3];
    for value in values {
        let bytes = value.as_bytes();
        for (i, (name, hit)) in [
            ("XSS", is_xss(bytes)),
            ("SQLi LOW", is_sqli(bytes, false)),
            ("SQLi HIGH", is_sqli(bytes, true)),
        ]
        .into_iter()
        .enumerate()
        {
            if hit {
                counts[i] += 1;
                println!("{set}: {name} flags {value:?}");
            }
        }
    }
    counts
}

fn rate(count: usize, total: usize) -> String {
    format!(
        "{count} of {total} ({:.3}%)",
        100.0 * count as f64 / total as f64
    )
}

#[test]
fn benign_botocore_text_is_rarely_flagged() {
    let Some(values) = botocore_values() else {
        return;
    };
    let examples = distinct(&values["examples"]);
    let documentation = distinct(&values["documentation"]);
    let stride = documentation.len().div_ceil(DOCUMENTATION_SAMPLE).max(1);
    let documentation: Vec<&String> = documentation.iter().step_by(stride).collect();
    let examples: Vec<&String> = examples.iter().collect();
    assert!(examples.len() > 1_000, "{} example values", examples.len());
    assert!(
        documentation.len() > 10_000,
        "{} segments",
        documentation.len()
    );
    let on_examples = flagged("example", &examples);
    let on_documentation = flagged("documentation", &documentation);
    println!("botocore {}", values["botocore"]);
    for (i, name) in ["XSS", "SQLi LOW", "SQLi HIGH"].iter().enumerate() {
        println!(
            "{name}: request examples {}; documentation text {}",
            rate(on_examples[i], examples.len()),
            rate(on_documentation[i], documentation.len())
        );
    }
    // #20's target for ordinary traffic: at most 0.1% false positives, for
    // XSS and for SQLi at AWS's default sensitivity.
    let total = examples.len() + documentation.len();
    for (i, name) in ["XSS", "SQLi LOW"].iter().enumerate() {
        let count = on_examples[i] + on_documentation[i];
        assert!(count * 1000 <= total, "{name}: {}", rate(count, total));
    }
}
