//! [`AccessLogConfig`]: a stage's access log as a configuration file spells
//! it (the facade's `[api.access_log]` section).

use portcullis_core::client_ip::ClientIpResolver;
use portcullis_core::config::ConfigError;
use serde::Deserialize;

use crate::access_log::AccessLogLayer;

/// A stage's access log (`accessLogSettings`): the facade's
/// `[api.access_log]` deserializes straight into it, and
/// [`build`](Self::build) makes the [`AccessLogLayer`].
///
/// ```
/// use portcullis_openapi::access_log::{AccessLogConfig, AccessLogDestination};
///
/// let config: AccessLogConfig = serde_json::from_str(
///     r#"{"format": "$context.requestId $context.status", "destination": "stderr"}"#,
/// ).unwrap();
/// assert_eq!(config.destination, AccessLogDestination::Stderr);
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AccessLogConfig {
    /// The `$context` template (`accessLogSettings.format`): JSON, CLF or
    /// any text; it must contain `$context.requestId`.
    pub format: String,
    /// Where lines go: `tracing` (default; target
    /// `portcullis::access_log`), `stdout` or `stderr`.
    #[serde(default)]
    pub destination: AccessLogDestination,
}

/// Where access-log lines go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum AccessLogDestination {
    /// `tracing`, at INFO, target `portcullis::access_log`.
    #[default]
    Tracing,
    /// One line per request on standard output.
    Stdout,
    /// One line per request on standard error.
    Stderr,
}

impl AccessLogConfig {
    /// A log of `format` lines to `tracing`.
    #[must_use]
    pub fn new(format: impl Into<String>) -> Self {
        Self {
            format: format.into(),
            destination: AccessLogDestination::default(),
        }
    }

    /// Builds the layer, reading client addresses with `resolver`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] at `format` when the template is not one
    /// ([`AccessLogLayer::new`]).
    pub fn build(&self, resolver: ClientIpResolver) -> Result<AccessLogLayer, ConfigError> {
        let layer = AccessLogLayer::new(&self.format)
            .map_err(|e| ConfigError::new("format", e.to_string()))?
            .client_ip_resolver(resolver);
        Ok(match self.destination {
            AccessLogDestination::Tracing => layer,
            AccessLogDestination::Stdout => layer.writer(std::io::stdout()),
            AccessLogDestination::Stderr => layer.writer(std::io::stderr()),
        })
    }
}
