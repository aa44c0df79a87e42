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
use std::io::{BufRead, Write};

use clap::Parser;
use serde_json::Value;

pub mod config;
pub mod jwt;
pub mod keys;
pub mod raw;
pub mod sigv4;
pub mod waf;

mod args;
mod dispatch;
mod input;
mod report;

pub use args::{
    AclArgs, Cli, Command, ConfigCommand, JwtCommand, JwtVerifyArgs, KeysCommand, SecretArg,
    Sigv4Command, Sigv4VerifyArgs, TokenUseArg, UriEncodingArg, WafCommand, WafEvalArgs,
};
pub use input::MAX_INPUT_BYTES;
pub use report::{Failure, Report};

use crate::dispatch::dispatch;

fn write_json(out: &mut dyn Write, value: &Value) {
    let text = serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned());
    // A closed stdout is nothing more can be done about.
    let _ = writeln!(out, "{text}");
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
