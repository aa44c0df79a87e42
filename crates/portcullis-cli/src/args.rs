//! The command line: commands and their arguments.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Offline checks: SigV4 signatures, JWTs, AWS WAF web ACLs, API keys"
)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// AWS Signature Version 4.
    #[command(subcommand)]
    Sigv4(Sigv4Command),
    /// JSON Web Tokens.
    #[command(subcommand)]
    Jwt(JwtCommand),
    /// AWS WAFv2 web ACLs.
    #[command(subcommand)]
    Waf(WafCommand),
    /// API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Gateway configurations (`gateway.toml`).
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `config` commands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validates a gateway configuration with the `portcullis` crate's
    /// loader and prints every error with its path.
    Check {
        /// The configuration file, or `-` for standard input (paths in it
        /// are then relative to the current directory).
        #[arg(value_name = "FILE_OR_-")]
        file: PathBuf,
    },
}

/// `sigv4` commands.
#[derive(Debug, Subcommand)]
pub enum Sigv4Command {
    /// Verifies the signature of a raw HTTP/1.1 request.
    Verify(Sigv4VerifyArgs),
}

/// A command-line argument that carries a secret: the secret itself,
/// `@FILE` or `-`. Its `Debug` never shows it, so a logged or printed
/// argument list cannot leak it.
#[derive(Clone)]
pub struct SecretArg(String);

impl SecretArg {
    /// The argument as given (the secret, `@FILE` or `-`).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for SecretArg {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.to_owned()))
    }
}

impl std::fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretArg(<redacted>)")
    }
}

/// `sigv4 verify`.
#[derive(Debug, Args)]
pub struct Sigv4VerifyArgs {
    /// A raw HTTP/1.1 request: request line, headers, blank line, body
    /// (`-` for standard input).
    #[arg(long, value_name = "FILE_OR_-")]
    pub request: PathBuf,
    /// The signer's access key id.
    #[arg(long, value_name = "ID")]
    pub access_key_id: String,
    /// The signer's secret access key: the value, `@FILE` to read it from
    /// a file, or `-` for standard input.
    #[arg(long, value_name = "KEY_OR_@FILE_OR_-")]
    pub secret_access_key: SecretArg,
    /// The session token of temporary credentials: the value, `@FILE` or
    /// `-`.
    #[arg(long, value_name = "T_OR_@FILE_OR_-")]
    pub session_token: Option<SecretArg>,
    /// The region the credential scope must name (default: the scope's).
    #[arg(long, value_name = "R")]
    pub region: Option<String>,
    /// The service the credential scope must name (default: the scope's).
    #[arg(long, value_name = "S")]
    pub service: Option<String>,
    /// The time of verification: 2015-08-30T12:36:00Z or 20150830T123600Z (default now).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// The clock skew allowed either way.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub max_skew: u64,
    /// Do not normalise `.`, `..` and `//` in the path (S3-style signers).
    #[arg(long)]
    pub no_normalize_path: bool,
    /// How the canonical URI encodes the path: `double` (execute-api and
    /// every service but S3) or `single` (S3-style signers).
    #[arg(long, value_enum, default_value_t = UriEncodingArg::Double)]
    pub uri_encoding: UriEncodingArg,
}

/// `double` or `single`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UriEncodingArg {
    /// Encode the (already encoded) path again, as execute-api does.
    Double,
    /// Use the path as sent.
    Single,
}

/// `jwt` commands.
#[derive(Debug, Subcommand)]
pub enum JwtCommand {
    /// Verifies a token.
    Verify(JwtVerifyArgs),
}

/// `id` or `access`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TokenUseArg {
    /// An ID token.
    Id,
    /// An access token.
    Access,
}

/// `jwt verify`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("iss").required(true).args(["issuer", "cognito_user_pool"])))]
pub struct JwtVerifyArgs {
    /// The issuer's JWKS: a file, an http(s) URL, or `-` for standard input.
    #[arg(long, value_name = "FILE_OR_URL")]
    pub jwks: String,
    /// The exact `iss` the token must carry.
    #[arg(long, value_name = "ISS")]
    pub issuer: Option<String>,
    /// A Cognito user pool id (`us-east-1_AbCdEf123`): Cognito's issuer and rules.
    #[arg(long, value_name = "REGION_POOLID")]
    pub cognito_user_pool: Option<String>,
    /// An accepted audience (repeatable).
    #[arg(long = "audience", value_name = "A")]
    pub audiences: Vec<String>,
    /// An accepted Cognito app client id (repeatable).
    #[arg(long = "client-id", value_name = "C")]
    pub client_ids: Vec<String>,
    /// The kind of Cognito token accepted.
    #[arg(long, value_enum)]
    pub token_use: Option<TokenUseArg>,
    /// An allowed algorithm, such as RS256 (repeatable; default: the issuer's).
    #[arg(long = "alg", value_name = "ALG")]
    pub algorithms: Vec<String>,
    /// The time of verification (default now).
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub at: Option<u64>,
    /// Leeway on `exp`, `nbf` and `iat`.
    #[arg(long, value_name = "SECONDS")]
    pub leeway: Option<u64>,
    /// The token, `@FILE` to read it from a file, or `-` for standard
    /// input.
    #[arg(value_name = "TOKEN_OR_@FILE_OR_-")]
    pub token: SecretArg,
}

/// `waf` commands.
#[derive(Debug, Subcommand)]
pub enum WafCommand {
    /// Evaluates requests against a web ACL.
    Eval(WafEvalArgs),
    /// Validates a web ACL and prints its rules.
    Check(AclArgs),
}

/// The documents of a web ACL.
#[derive(Debug, Args)]
pub struct AclArgs {
    /// The web ACL (`aws wafv2 get-web-acl` output; `-` for standard input).
    #[arg(long, value_name = "FILE_OR_-")]
    pub web_acl: PathBuf,
    /// IP sets: one document or a JSON array of them (repeatable).
    #[arg(long, value_name = "FILE")]
    pub ip_sets: Vec<PathBuf>,
    /// Regex pattern sets: one document or a JSON array (repeatable).
    #[arg(long, value_name = "FILE")]
    pub regex_sets: Vec<PathBuf>,
    /// Rule groups: one document or a JSON array (repeatable).
    #[arg(long, value_name = "FILE")]
    pub rule_groups: Vec<PathBuf>,
}

/// `waf eval`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["request", "requests"])))]
pub struct WafEvalArgs {
    /// The ACL.
    #[command(flatten)]
    pub acl: AclArgs,
    /// One request: a raw HTTP/1.1 request, or one JSON request object
    /// (`-` for standard input).
    #[arg(long, value_name = "FILE_OR_-")]
    pub request: Option<PathBuf>,
    /// JSON lines `{"method","uri","headers":[[name,value],...],"body","client_ip"}`:
    /// one output line each (`-` for standard input).
    #[arg(long, value_name = "FILE.jsonl")]
    pub requests: Option<PathBuf>,
    /// The client IP (default for every request).
    #[arg(long, value_name = "IP")]
    pub client_ip: Option<IpAddr>,
    /// The client's country (ISO 3166 alpha-2) for geo match statements.
    #[arg(long, value_name = "CC")]
    pub country: Option<String>,
}

/// `keys` commands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Prints a new random key value and its `value_sha256`.
    Generate {
        /// The value's length, 20 to 128.
        #[arg(long, default_value_t = portcullis_api_key::DEFAULT_KEY_LEN)]
        length: usize,
    },
    /// Prints the `value_sha256` of a key value, for the configuration file.
    Hash {
        /// The key value, `@FILE` to read it from a file, or `-` for
        /// standard input.
        #[arg(value_name = "VALUE_OR_@FILE_OR_-")]
        value: SecretArg,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_arguments_never_show_their_secrets() {
        let cli = Cli::try_parse_from([
            "portcullis",
            "sigv4",
            "verify",
            "--request",
            "-",
            "--access-key-id",
            "AKIDEXAMPLE",
            "--secret-access-key",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "--session-token",
            "SessionTokenValue123",
        ])
        .expect("the arguments parse");
        let shown = format!("{cli:?}");
        assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(!shown.contains("SessionTokenValue123"), "{shown}");

        let cli =
            Cli::try_parse_from(["portcullis", "keys", "hash", "TopSecretKeyValue0123456789"])
                .expect("the arguments parse");
        assert!(!format!("{cli:?}").contains("TopSecretKeyValue"));
        let cli = Cli::try_parse_from([
            "portcullis",
            "jwt",
            "verify",
            "--jwks",
            "jwks.json",
            "--issuer",
            "https://issuer.example",
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
        ])
        .expect("the arguments parse");
        assert!(!format!("{cli:?}").contains("eyJhbGci"));
    }
}
