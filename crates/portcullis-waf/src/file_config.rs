//! [`WafFileConfig`]: a web ACL and its sets as a configuration file names
//! them (the facade's `[waf]` section), each document a JSON file beside it.

use std::path::{Path, PathBuf};

use portcullis_core::client_ip::ClientIpResolver;
use portcullis_core::clock::Clock;
use portcullis_core::config::ConfigError;
use serde::Deserialize;

use crate::compile::AclSources;
use crate::error::LoadError;
use crate::layer::WafLayer;

/// A web ACL and the documents it references, as a configuration file names
/// them: the facade's `[waf]` section deserializes straight into it. The
/// files are `aws wafv2 get-*` JSON, read relative to a folder the caller
/// gives.
///
/// ```
/// use portcullis_waf::WafFileConfig;
///
/// let config: WafFileConfig = serde_json::from_str(r#"{
///     "web_acl": "waf/web-acl.json",
///     "ip_sets": ["waf/blocked.json"],
///     "geo_header": "cloudfront-viewer-country"
/// }"#).unwrap();
/// assert_eq!(config.ip_sets.len(), 1);
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WafFileConfig {
    /// The web ACL (`aws wafv2 get-web-acl` JSON).
    pub web_acl: PathBuf,
    /// IP sets (`aws wafv2 get-ip-set` JSON; a file may hold an array).
    #[serde(default)]
    pub ip_sets: Vec<PathBuf>,
    /// Regex pattern sets.
    #[serde(default)]
    pub regex_sets: Vec<PathBuf>,
    /// Rule groups.
    #[serde(default)]
    pub rule_groups: Vec<PathBuf>,
    /// The body inspection limit in bytes (default: the ACL's, else 16 KB).
    #[serde(default)]
    pub body_inspection_limit: Option<usize>,
    /// Read the country from this header (set by a CDN in front).
    #[serde(default)]
    pub geo_header: Option<String>,
}

impl WafFileConfig {
    /// A configuration of the web ACL at `web_acl` alone.
    #[must_use]
    pub fn new(web_acl: impl Into<PathBuf>) -> Self {
        Self {
            web_acl: web_acl.into(),
            ip_sets: Vec::new(),
            regex_sets: Vec::new(),
            rule_groups: Vec::new(),
            body_inspection_limit: None,
            geo_header: None,
        }
    }

    /// Reads every document from `base_dir` and compiles the ACL of
    /// `account_id` (its labels' namespace).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the file's field: `web_acl`, `ip_sets[i]`,
    /// `regex_sets[i]`, `rule_groups[i]` (unreadable, or not the document
    /// it should be; the message names the JSON path inside it), `web_acl`
    /// again when the ACL does not compile.
    pub fn sources(&self, base_dir: &Path, account_id: &str) -> Result<AclSources, ConfigError> {
        let text = read(base_dir, &self.web_acl, "web_acl")?;
        let mut sources = AclSources::from_json(&text).map_err(|e| load("web_acl", &e))?;
        let referenced: [(&str, &[PathBuf], AddDocument); 3] = [
            ("ip_sets", &self.ip_sets, AclSources::with_ip_set_json),
            (
                "regex_sets",
                &self.regex_sets,
                AclSources::with_regex_pattern_set_json,
            ),
            (
                "rule_groups",
                &self.rule_groups,
                AclSources::with_rule_group_json,
            ),
        ];
        for (name, paths, add) in referenced {
            for (i, path) in paths.iter().enumerate() {
                let field = format!("{name}[{i}]");
                for doc in documents(&field, &read(base_dir, path, &field)?)? {
                    sources = add(sources, &doc).map_err(|e| load(&field, &e))?;
                }
            }
        }
        sources = sources.with_account_id(account_id);
        if let Some(limit) = self.body_inspection_limit {
            sources = sources.with_body_inspection_limit(limit);
        }
        Ok(sources)
    }

    /// Builds the layer: [`sources`](Self::sources) compiled, on `clock`,
    /// with `resolver` for client addresses and the `geo_header` if given.
    ///
    /// # Errors
    ///
    /// As [`sources`](Self::sources); `web_acl` when the ACL does not
    /// compile, `geo_header` when it is not a header name.
    pub fn build(
        &self,
        base_dir: &Path,
        account_id: &str,
        clock: impl Clock,
        resolver: ClientIpResolver,
    ) -> Result<WafLayer, ConfigError> {
        let acl = self
            .sources(base_dir, account_id)?
            .compile()
            .map_err(|e| load("web_acl", &e))?;
        let mut layer = WafLayer::new(acl).clock(clock).client_ip_resolver(resolver);
        if let Some(header) = &self.geo_header {
            let name = http::HeaderName::try_from(header.as_str())
                .map_err(|_| ConfigError::new("geo_header", "not a header name"))?;
            layer = layer.geo_header(name);
        }
        Ok(layer)
    }
}

/// The WAF's error, at `field`; its text names the JSON path inside the
/// document.
fn load(field: &str, error: &LoadError) -> ConfigError {
    ConfigError::new(field.to_owned(), error.to_string())
}

/// Adds one referenced document (an IP set, regex pattern set or rule
/// group, as JSON) to the sources.
type AddDocument = fn(AclSources, &str) -> Result<AclSources, LoadError>;

fn read(base_dir: &Path, path: &Path, field: &str) -> Result<String, ConfigError> {
    let full = base_dir.join(path);
    std::fs::read_to_string(&full).map_err(|e| {
        ConfigError::new(
            field.to_owned(),
            format!("cannot read {}: {e}", full.display()),
        )
    })
}

/// The documents of a file: each item of a JSON array, or the file itself.
fn documents(field: &str, text: &str) -> Result<Vec<String>, ConfigError> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Array(items)) => Ok(items.iter().map(ToString::to_string).collect()),
        Ok(_) => Ok(vec![text.to_owned()]),
        Err(e) => Err(ConfigError::new(field.to_owned(), e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::WafFileConfig;

    #[test]
    fn an_unreadable_document_is_refused_at_its_field() {
        let nowhere = Path::new("/nonexistent-portcullis-dir");
        let error = WafFileConfig::new("acl.json")
            .sources(nowhere, "123456789012")
            .expect_err("no such file");
        assert_eq!(error.path(), "web_acl");
        assert!(error.message().contains("acl.json"), "{error}");
    }
}
