//! Running one parsed command.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::args::{
    AclArgs, Command, ConfigCommand, JwtCommand, KeysCommand, Sigv4Command, TokenUseArg,
    UriEncodingArg, WafCommand,
};
use crate::input::Stdin;
use crate::report::{Failure, Report};
use crate::{config, jwt, keys, sigv4, waf};

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

/// Runs one parsed command; `--requests` lines are written as they are
/// evaluated, everything else is returned.
pub(crate) fn dispatch(
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
