//! `portcullis config check`: validates a gateway configuration
//! (`gateway.toml`) with the `portcullis` crate's own loader.
//!
//! The loader stops at the first error. To report every error, the check
//! runs it again after cutting the bad part out of the document: the
//! innermost array element holding the bad field (`api_keys[2]`,
//! `iam.users[0].policies[1]`), else the field of its section
//! (`jwt.jwks`), else the section. Errors that the cut itself causes are
//! not reported: a field then missing from a table that was cut into, and
//! a reference to the `id` of an element that was cut out (a key in a plan
//! that was itself invalid). Paths are reported in the original document's
//! numbering. A TOML syntax error, or an error in a section the loader
//! cannot go on without (`[gateway]`), ends the check.
//!
//! The store is never opened: the configuration is built on the in-memory
//! store, so checking a file neither creates the embedded store's folder
//! nor connects to Redis nor writes anything.

use std::path::{Path, PathBuf};

use portcullis::Gateway;
use portcullis::config::{Config, StoreSettings};
use serde_json::{Value, json};

use crate::Report;

/// The most errors one check reports.
pub const MAX_CONFIG_ERRORS: usize = 100;

/// A configuration error with its path in the original document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The path of the bad field (`api_keys[0].value`), empty for the file
    /// as a whole.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// One step of a path: a table key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Splits `a.b[0].c` into steps.
fn steps(path: &str) -> Vec<Step> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Step::Key(key.to_owned()));
        }
        while let Some((index, tail)) = rest.split_once(']') {
            match index.parse() {
                Ok(i) => out.push(Step::Index(i)),
                Err(_) => out.push(Step::Key(index.to_owned())),
            }
            rest = tail.strip_prefix('[').unwrap_or(tail);
        }
    }
    out
}

fn render(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The part of the document cut out after an error at `path`.
fn unit(path: &[Step]) -> &[Step] {
    if let Some(last_index) = path.iter().rposition(|s| matches!(s, Step::Index(_))) {
        return &path[..=last_index];
    }
    &path[..path.len().min(2)]
}

fn get<'a>(value: &'a toml::Value, path: &[Step]) -> Option<&'a toml::Value> {
    path.iter().try_fold(value, |v, step| match step {
        Step::Key(key) => v.get(key.as_str()),
        Step::Index(i) => v.get(*i),
    })
}

/// Removes the value at `path`; false when there is none.
fn remove(value: &mut toml::Value, path: &[Step]) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    let parent = parent.iter().try_fold(value, |v, step| match step {
        Step::Key(key) => v.get_mut(key.as_str()),
        Step::Index(i) => v.get_mut(*i),
    });
    match (parent, last) {
        (Some(toml::Value::Table(table)), Step::Key(key)) => table.remove(key).is_some(),
        (Some(toml::Value::Array(array)), Step::Index(i)) if *i < array.len() => {
            array.remove(*i);
            true
        }
        _ => false,
    }
}

/// Array elements cut out so far, to number later paths as the original
/// document does.
#[derive(Debug, Default)]
struct Cuts {
    /// (the array's path in original numbering, the element's original index)
    elements: Vec<(Vec<Step>, usize)>,
}

impl Cuts {
    /// `path` (in the current document's numbering) in the original's.
    fn original(&self, path: &[Step]) -> Vec<Step> {
        let mut out: Vec<Step> = Vec::with_capacity(path.len());
        for step in path {
            match step {
                Step::Index(i) => {
                    let mut removed: Vec<usize> = self
                        .elements
                        .iter()
                        .filter(|(array, _)| *array == out)
                        .map(|(_, index)| *index)
                        .collect();
                    removed.sort_unstable();
                    let mut index = *i;
                    for r in removed {
                        if r <= index {
                            index += 1;
                        }
                    }
                    out.push(Step::Index(index));
                }
                Step::Key(key) => out.push(Step::Key(key.clone())),
            }
        }
        out
    }
}

/// Runs the loader once: parse, then build every layer on the memory store.
fn load(text: &str, base_dir: &Path) -> Result<(), portcullis::config::ConfigError> {
    let config = Config::from_toml(text)?;
    Gateway::builder(config)
        .base_dir(base_dir)
        .store(StoreSettings::memory())
        .build()
        .map(drop)
        .map_err(|e| e.error)
}

/// Every error of a configuration, in the order the loader finds them.
#[must_use]
pub fn problems(text: &str, base_dir: &Path) -> Vec<ConfigProblem> {
    let mut document: toml::Value = match text.parse::<toml::Table>() {
        Ok(table) => toml::Value::Table(table),
        Err(error) => {
            return vec![ConfigProblem {
                path: String::new(),
                message: error.to_string().trim_end().to_owned(),
            }];
        }
    };
    let mut found = Vec::new();
    let mut cuts = Cuts::default();
    let mut cut_paths: Vec<Vec<Step>> = Vec::new();
    let mut cut_ids: Vec<String> = Vec::new();
    let mut current = text.to_owned();
    while found.len() < MAX_CONFIG_ERRORS {
        let Err(error) = load(&current, base_dir) else {
            break;
        };
        let path = steps(&error.path);
        let missing_after_cut = error.message.starts_with("missing field")
            && cut_paths
                .iter()
                .any(|cut| cut.len() > path.len() && cut.starts_with(&path));
        let reference_to_cut = get(&document, &path)
            .and_then(toml::Value::as_str)
            .is_some_and(|s| cut_ids.iter().any(|id| id == s));
        if !missing_after_cut && !reference_to_cut {
            found.push(ConfigProblem {
                path: render(&cuts.original(&path)),
                message: error.message.clone(),
            });
        }
        let cut = unit(&path).to_vec();
        if cut.is_empty() || cut.first() == Some(&Step::Key("gateway".to_owned())) {
            break;
        }
        if let Some(id) = get(&document, &cut)
            .and_then(|v| v.get("id"))
            .and_then(toml::Value::as_str)
        {
            cut_ids.push(id.to_owned());
        }
        let original = cuts.original(&cut);
        if !remove(&mut document, &cut) {
            break;
        }
        if let (Some(Step::Index(index)), Some((_, array))) =
            (original.last(), original.split_last())
        {
            cuts.elements.push((array.to_vec(), *index));
        }
        cut_paths.push(cut);
        current = match toml::to_string(&document) {
            Ok(text) => text,
            Err(_) => break,
        };
    }
    found
}

/// Checks a configuration: exit 0 when it loads, 1 with every error.
#[must_use]
pub fn check(text: &str, file: Option<&Path>) -> Report {
    let base_dir = file
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let base_dir = if base_dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base_dir
    };
    let file = file.map_or_else(|| "-".to_owned(), |f| f.display().to_string());
    let problems = problems(text, &base_dir);
    if problems.is_empty() {
        return Report::ok(json!({"valid": true, "file": file}));
    }
    let errors: Vec<Value> = problems
        .iter()
        .map(|p| json!({"path": p.path, "message": p.message}))
        .collect();
    Report::refused(json!({"valid": false, "file": file, "errors": errors}))
}

#[cfg(test)]
mod tests {
    use super::{Cuts, Step, render, steps, unit};

    #[test]
    fn paths_round_trip_and_units_are_the_innermost_element() {
        let path = steps("iam.users[0].policies[1]");
        assert_eq!(render(&path), "iam.users[0].policies[1]");
        assert_eq!(render(unit(&steps("api_keys[2].value"))), "api_keys[2]");
        assert_eq!(render(unit(&steps("jwt.jwks"))), "jwt.jwks");
        assert_eq!(render(unit(&steps("store.kind.x"))), "store.kind");
    }

    #[test]
    fn later_paths_keep_the_original_numbering() {
        let mut cuts = Cuts::default();
        cuts.elements
            .push((vec![Step::Key("api_keys".to_owned())], 0));
        cuts.elements
            .push((vec![Step::Key("api_keys".to_owned())], 2));
        // Elements 0 and 2 are gone: what is now [1] was [3].
        assert_eq!(
            render(&cuts.original(&steps("api_keys[1].value"))),
            "api_keys[3].value"
        );
        assert_eq!(
            render(&cuts.original(&steps("usage_plans[1]"))),
            "usage_plans[1]"
        );
    }
}
