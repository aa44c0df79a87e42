//! `portcullis jwt verify`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_core::clock::{ManualClock, SharedClock, SystemClock};
use portcullis_jwt::{
    Algorithm, Issuer, JwksSource, JwtLayer, TokenCacheConfig, TokenUse, UserPoolId,
};
use serde_json::{Value, json};

use crate::{Failure, Report};

/// Where the issuer's keys come from (`--jwks`).
#[derive(Clone, Debug)]
pub enum JwksArg {
    /// An http(s) URL, fetched.
    Url(String),
    /// A file.
    File(PathBuf),
    /// The JWKS JSON itself (`--jwks -`: read from standard input).
    Json(String),
}

impl JwksArg {
    /// `--jwks`'s value: an http(s) URL or a file path. (`-`, standard
    /// input, is read by the caller and given as [`JwksArg::Json`].)
    #[must_use]
    pub fn from_argument(argument: &str) -> Self {
        if argument.starts_with("https://") || argument.starts_with("http://") {
            JwksArg::Url(argument.to_owned())
        } else {
            JwksArg::File(PathBuf::from(argument))
        }
    }
}

/// Who issued the token.
#[derive(Clone, Debug)]
pub enum IssuerArg {
    /// `--issuer ISS`.
    Issuer(String),
    /// `--cognito-user-pool REGION_POOLID` (`us-east-1_AbCdEf123`).
    CognitoUserPool(String),
}

/// The arguments of `jwt verify`, already read. `Debug` redacts the token
/// (a bearer credential).
#[derive(Clone)]
pub struct VerifyArgs {
    /// The JWKS: an http(s) URL, a file, or the JSON itself.
    pub jwks: JwksArg,
    /// The issuer.
    pub issuer: IssuerArg,
    /// Accepted audiences.
    pub audiences: Vec<String>,
    /// Accepted Cognito app clients.
    pub client_ids: Vec<String>,
    /// `id` or `access`.
    pub token_use: Option<TokenUse>,
    /// The allowed algorithms (default: the issuer's).
    pub algorithms: Vec<Algorithm>,
    /// The time of verification, Unix seconds (default now).
    pub at: Option<u64>,
    /// Leeway on `exp`, `nbf` and `iat`, seconds.
    pub leeway: Option<u64>,
    /// The token.
    pub token: String,
}

impl std::fmt::Debug for VerifyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyArgs")
            .field("jwks", &self.jwks)
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("client_ids", &self.client_ids)
            .field("token_use", &self.token_use)
            .field("algorithms", &self.algorithms)
            .field("at", &self.at)
            .field("leeway", &self.leeway)
            .field("token", &"<redacted>")
            .finish()
    }
}

fn issuer(args: &VerifyArgs) -> Result<Issuer, Failure> {
    let mut issuer = match &args.issuer {
        IssuerArg::Issuer(iss) => Issuer::new(iss.as_str()),
        IssuerArg::CognitoUserPool(pool) => {
            let pool: UserPoolId = pool.parse().map_err(|_| {
                Failure::new(
                    "usage",
                    "--cognito-user-pool takes a pool id such as us-east-1_AbCdEf123",
                )
            })?;
            Issuer::user_pool(&pool)
        }
    };
    let keys = match &args.jwks {
        JwksArg::Url(url) => JwksSource::JwksUrl(url.clone()),
        JwksArg::File(path) => JwksSource::JwksFile(path.clone()),
        JwksArg::Json(json) => JwksSource::Jwks(json.clone()),
    };
    issuer = issuer.keys(keys).allow_insecure_http(true);
    if !args.audiences.is_empty() {
        issuer = issuer.audiences(args.audiences.iter().cloned());
    }
    if !args.client_ids.is_empty() {
        issuer = issuer.client_ids(args.client_ids.iter().cloned());
    }
    if !args.algorithms.is_empty() {
        issuer = issuer.algorithms(args.algorithms.iter().copied());
    }
    if let Some(leeway) = args.leeway {
        issuer = issuer.leeway(Duration::from_secs(leeway));
    }
    Ok(issuer)
}

/// The token's decoded header, if it has one.
fn header(token: &str) -> Value {
    token
        .split('.')
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h.trim_end_matches('=')).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null)
}

/// Verifies the token. Valid: exit 0; refused: exit 1; bad configuration:
/// exit 2.
///
/// # Errors
///
/// [`Failure`] (exit 2) when the issuer or its keys cannot be set up.
pub async fn verify(args: VerifyArgs) -> Result<Report, Failure> {
    let clock: SharedClock = match args.at {
        Some(at) => Arc::new(ManualClock::at_unix(at)),
        None => Arc::new(SystemClock),
    };
    let mut layer = JwtLayer::builder()
        .issuer(issuer(&args)?)
        .cache(TokenCacheConfig::disabled())
        .clock(clock)
        .build()
        .map_err(|e| Failure::new("config_error", e.to_string()))?;
    if let Some(token_use) = args.token_use {
        layer = layer.token_use(token_use);
    }
    let token = args.token.trim();
    match layer.verify(token).await {
        Ok(verified) => Ok(Report::ok(json!({
            "valid": true,
            "header": header(token),
            "claims": verified.claims().as_map(),
        }))),
        Err(reason) => Ok(Report::refused(json!({
            "valid": false,
            "error": reason.as_str(),
            "message": reason.gateway_response().message(),
        }))),
    }
}
