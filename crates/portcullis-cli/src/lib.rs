//! The `portcullis` command: offline checks for operators and CI pipelines,
//! with the same code the Portcullis layers run.
//!
//! | command | what it does | exit codes |
//! |---|---|---|
//! | `portcullis sigv4 verify --request FILE --access-key-id ID --secret-access-key SECRET [--session-token SECRET] [--region R] [--service S] [--at TIME] [--max-skew SECONDS] [--no-normalize-path] [--uri-encoding double\|single]` | verifies the SigV4 signature of a raw HTTP/1.1 request | 0 valid, 1 refused, 2 usage or I/O |
//! | `portcullis jwt verify --jwks FILE_OR_URL (--issuer ISS \| --cognito-user-pool REGION_POOLID) [--audience A]... [--client-id C]... [--token-use id\|access] [--alg ALG]... [--at UNIX_SECONDS] [--leeway SECONDS] SECRET` | verifies a JWT as the JWT layer does | 0 valid, 1 refused, 2 usage or I/O |
//! | `portcullis waf eval --web-acl FILE [--ip-sets FILE] [--regex-sets FILE] [--rule-groups FILE] (--request FILE \| --requests FILE.jsonl) [--client-ip IP] [--country CC]` | evaluates requests against an AWS WAFv2 web ACL | 0 evaluated, 2 load error (with its JSON path), I/O error or malformed input line |
//! | `portcullis waf check --web-acl FILE [...]` | validates a web ACL and lists its rules | 0 valid, 2 load error |
//! | `portcullis keys generate [--length N]` | a new API key value and its `value_sha256` | 0, 2 usage |
//! | `portcullis keys hash VALUE` | the `value_sha256` of a key value, for the configuration | 0, 2 invalid value |
//!
//! Every command prints JSON on standard output. Errors that end in exit 2
//! print `{"error": "<kind>", "message": "..."}` (load errors add
//! `document`, `path` and `kind`); argument errors are clap's, on standard
//! error.
//!
//! The functions behind the commands are public too, and [`run`] runs a
//! command line in-process:
//!
//! ```
//! let mut out = Vec::new();
//! let code = portcullis_cli::run(
//!     ["portcullis", "keys", "hash", "abcdefghijklmnopqrstuvwxyz0123456789ABCD"],
//!     &mut std::io::empty(),
//!     &mut out,
//! );
//! assert_eq!(code, 0);
//! let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
//! assert_eq!(json["value_sha256"].as_str().unwrap().len(), 64);
//! ```
//!
//! # Why clap
//!
//! `clap`'s derive API keeps the interface above in one place, generates
//! `--help`, and refuses bad arguments with exit code 2, which is the usage
//! exit code this tool promises; `argh` and `pico-args` would need that
//! written by hand.
//!
//! `config check` reads the file with `toml`, the parser the `portcullis`
//! crate's loader uses, so that cutting a bad part out and loading again
//! sees the document exactly as the loader does.

use std::ffi::OsString;
use std::io::{BufRead, Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};

pub mod config;
pub mod jwt;
pub mod keys;
pub mod raw;
pub mod sigv4;
pub mod waf;

/// A command's answer: JSON and an exit code (0 or 1).
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// 0 (valid) or 1 (refused).
    pub code: u8,
    /// What is printed.
    pub output: Value,
}

impl Report {
    /// A success (exit 0).
    #[must_use]
    pub fn ok(output: Value) -> Self {
        Self { code: 0, output }
    }

    /// A refusal (exit 1).
    #[must_use]
    pub fn refused(output: Value) -> Self {
        Self { code: 1, output }
    }
}

/// A usage, input or I/O error (exit 2).
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// A short kind: `usage`, `io`, `bad_request`, `load_error`, ...
    pub error: String,
    /// What went wrong.
    pub message: String,
    /// More fields merged into the JSON (a load error's `path`).
    pub extra: Value,
}

impl Failure {
    /// A failure of this kind.
    pub fn new(error: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            message: message.into(),
            extra: Value::Null,
        }
    }

    /// Adds fields to the JSON.
    #[must_use]
    pub fn with(mut self, extra: Value) -> Self {
        self.extra = extra;
        self
    }

    /// The JSON printed.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut value = json!({"error": self.error, "message": self.message});
        if let (Some(map), Value::Object(extra)) = (value.as_object_mut(), &self.extra) {
            for (k, v) in extra {
                map.insert(k.clone(), v.clone());
            }
        }
        value
    }
}

impl From<std::convert::Infallible> for Failure {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

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

/// The most bytes read from one file or from standard input (the
/// `--requests` stream, read line by line, is not bounded).
pub const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;

/// Reads all of `reader`, refusing more than [`MAX_INPUT_BYTES`].
fn read_bounded(reader: impl std::io::Read, what: &str) -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::new("io", format!("{what}: {e}")))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(Failure::new(
            "io",
            format!("{what}: larger than {MAX_INPUT_BYTES} bytes"),
        ));
    }
    Ok(bytes)
}

/// A file's bytes, at most [`MAX_INPUT_BYTES`].
fn read_file(path: &Path) -> Result<Vec<u8>, Failure> {
    let shown = path.display().to_string();
    let file =
        std::fs::File::open(path).map_err(|e| Failure::new("io", format!("{shown}: {e}")))?;
    read_bounded(file, &shown)
}

/// Standard input, which one argument of a command may read.
struct Stdin<'a> {
    reader: &'a mut dyn BufRead,
    taken_by: Option<&'static str>,
}

impl Stdin<'_> {
    /// All of standard input, for the argument `what`; a second argument
    /// asking for it is a usage error.
    fn take(&mut self, what: &'static str) -> Result<Vec<u8>, Failure> {
        if let Some(first) = self.taken_by {
            return Err(Failure::new(
                "usage",
                format!(
                    "{what} and {first} both ask for standard input (`-`); give one of them a file"
                ),
            ));
        }
        self.taken_by = Some(what);
        read_bounded(&mut self.reader, "standard input")
    }

    /// A file's bytes, or standard input's for `-`.
    fn read(&mut self, path: &Path, what: &'static str) -> Result<Vec<u8>, Failure> {
        if path.as_os_str() == "-" {
            return self.take(what);
        }
        read_file(path)
    }

    fn read_text(&mut self, path: &Path, what: &'static str) -> Result<String, Failure> {
        String::from_utf8(self.read(path, what)?)
            .map_err(|_| Failure::new("io", format!("{}: not UTF-8", path.display())))
    }

    /// A secret argument: the value itself, `@FILE` for a file's content,
    /// or `-` for standard input. One line end is trimmed from what is
    /// read (`echo` and editors add one).
    fn secret(&mut self, argument: &str, what: &'static str) -> Result<String, Failure> {
        let bytes = if argument == "-" {
            self.take(what)?
        } else if let Some(path) = argument.strip_prefix('@') {
            read_file(Path::new(path))
                .map_err(|e| Failure::new("io", format!("{what}: {}", e.message)))?
        } else {
            return Ok(argument.to_owned());
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| Failure::new("io", format!("{what}: not UTF-8")))?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        Ok(text.strip_suffix('\r').unwrap_or(text).to_owned())
    }
}

fn acl_files(args: &AclArgs, stdin: &mut Stdin<'_>) -> Result<waf::AclFiles, Failure> {
    let mut many = |paths: &[PathBuf], what: &'static str| -> Result<Vec<String>, Failure> {
        paths.iter().map(|p| stdin.read_text(p, what)).collect()
    };
    Ok(waf::AclFiles {
        ip_sets: many(&args.ip_sets, "--ip-sets")?,
        regex_sets: many(&args.regex_sets, "--regex-sets")?,
        rule_groups: many(&args.rule_groups, "--rule-groups")?,
        web_acl: stdin.read_text(&args.web_acl, "--web-acl")?,
    })
}

fn write_json(out: &mut dyn Write, value: &Value) {
    let text = serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned());
    // A closed stdout is nothing more can be done about.
    let _ = writeln!(out, "{text}");
}

/// Runs one parsed command; `--requests` lines are written as they are
/// evaluated, everything else is returned.
fn dispatch(
    command: Command,
    stdin: &mut dyn BufRead,
    stdout: &mut dyn Write,
) -> Result<Option<Report>, Failure> {
    let mut input = Stdin {
        reader: stdin,
        taken_by: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new("io", e.to_string()))?;
    match command {
        Command::Keys(KeysCommand::Generate { length }) => keys::generate(length).map(Some),
        Command::Keys(KeysCommand::Hash { value }) => {
            keys::hash(&input.secret(value.as_str(), "VALUE")?).map(Some)
        }
        Command::Config(ConfigCommand::Check { file }) => {
            let text = input.read_text(&file, "FILE")?;
            let file = (file.as_os_str() != "-").then_some(file.as_path());
            Ok(Some(config::check(&text, file)))
        }
        Command::Sigv4(Sigv4Command::Verify(args)) => {
            let at = match &args.at {
                Some(text) => sigv4::parse_time(text).map_err(|m| Failure::new("usage", m))?,
                None => time::OffsetDateTime::now_utc().unix_timestamp(),
            };
            let verify = sigv4::VerifyArgs {
                request: input.read(&args.request, "--request")?,
                secret_access_key: input
                    .secret(args.secret_access_key.as_str(), "--secret-access-key")?,
                session_token: args
                    .session_token
                    .as_ref()
                    .map(|t| input.secret(t.as_str(), "--session-token"))
                    .transpose()?,
                access_key_id: args.access_key_id,
                region: args.region,
                service: args.service,
                at,
                max_skew: args.max_skew,
                normalize_path: !args.no_normalize_path,
                single_encoding: args.uri_encoding == UriEncodingArg::Single,
            };
            runtime.block_on(sigv4::verify(verify)).map(Some)
        }
        Command::Jwt(JwtCommand::Verify(args)) => {
            let token = input.secret(args.token.as_str(), "TOKEN")?;
            let algorithms = args
                .algorithms
                .iter()
                .map(|a| {
                    a.parse::<portcullis_jwt::Algorithm>().map_err(|_| {
                        Failure::new("usage", format!("--alg: unknown algorithm `{a}`"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let issuer = match (args.issuer, args.cognito_user_pool) {
                (Some(iss), _) => jwt::IssuerArg::Issuer(iss),
                (None, Some(pool)) => jwt::IssuerArg::CognitoUserPool(pool),
                (None, None) => {
                    return Err(Failure::new(
                        "usage",
                        "give --issuer or --cognito-user-pool",
                    ));
                }
            };
            let jwks = if args.jwks == "-" {
                jwt::JwksArg::Json(input.read_text(Path::new("-"), "--jwks")?)
            } else {
                jwt::JwksArg::from_argument(&args.jwks)
            };
            let verify = jwt::VerifyArgs {
                jwks,
                issuer,
                audiences: args.audiences,
                client_ids: args.client_ids,
                token_use: args.token_use.map(|t| match t {
                    TokenUseArg::Id => portcullis_jwt::TokenUse::Id,
                    TokenUseArg::Access => portcullis_jwt::TokenUse::Access,
                }),
                algorithms,
                at: args.at,
                leeway: args.leeway,
                token,
            };
            runtime.block_on(jwt::verify(verify)).map(Some)
        }
        Command::Waf(WafCommand::Check(args)) => {
            waf::check(&acl_files(&args, &mut input)?).map(Some)
        }
        Command::Waf(WafCommand::Eval(args)) => {
            let evaluator = waf::Evaluator::new(
                &acl_files(&args.acl, &mut input)?,
                args.client_ip,
                args.country,
            )?;
            if let Some(path) = &args.request {
                return evaluator
                    .eval_file(&input.read(path, "--request")?)
                    .map(|v| Some(Report::ok(v)));
            }
            let path = args.requests.unwrap_or_else(|| PathBuf::from("-"));
            let bad = if path.as_os_str() == "-" {
                if let Some(first) = input.taken_by {
                    return Err(Failure::new(
                        "usage",
                        format!("--requests and {first} both ask for standard input (`-`); give one of them a file"),
                    ));
                }
                evaluator.eval_lines(input.reader, &mut *stdout)
            } else {
                let file = std::fs::File::open(&path)
                    .map_err(|e| Failure::new("io", format!("{}: {e}", path.display())))?;
                evaluator.eval_lines(std::io::BufReader::new(file), &mut *stdout)
            }
            .map_err(|e| Failure::new("io", e.to_string()))?;
            if bad > 0 {
                // Every line has had its answer; the exit code says some were malformed.
                return Err(
                    Failure::new("bad_request", format!("{bad} malformed line(s)"))
                        .with(json!({"silent": true})),
                );
            }
            Ok(None)
        }
    }
}

/// Runs a command line (`args[0]` is the program name) and returns the exit
/// code: 0 valid, 1 refused, 2 usage, input or I/O error.
pub fn run<I, T>(args: I, stdin: &mut dyn BufRead, stdout: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let _ = error.print();
            return u8::try_from(error.exit_code()).unwrap_or(2);
        }
    };
    match dispatch(cli.command, stdin, stdout) {
        Ok(Some(report)) => {
            write_json(stdout, &report.output);
            report.code
        }
        Ok(None) => 0,
        Err(failure) => {
            if failure.extra.get("silent").is_none() {
                write_json(stdout, &failure.to_json());
            }
            2
        }
    }
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
