#![doc = include_str!("../README.md")]

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
