#![doc = include_str!("../README.md")]

mod criterion_table;
mod fleet;
mod headers;
mod mem;
mod scale;
mod serve;
mod setup;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The Portcullis load-test harness.
#[derive(Debug, Parser)]
#[command(name = "portcullis-loadtest", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serves the hello-world app, bare or behind a stack variant.
    Serve(serve::Args),
    /// Prints the request headers (one `Name: value` a line) that a load
    /// tool sends for a variant: the API key, and the JWT or a fresh SigV4
    /// signature.
    Headers(headers::Args),
    /// Resident memory after 1,000,000 distinct keys through the throttle,
    /// the quota, or both (one variant a process), and after each store's
    /// idle interval.
    Mem(mem::Args),
    /// Throttle + quota decisions per second at 1, 2 and 64 tasks.
    Scale(scale::Args),
    /// Many replicas (each its own gateway: connections, throttle leases,
    /// quota engine) in one process against one Redis: decisions per second,
    /// Redis round trips and CPU per decision, and the quota admitted
    /// against its limit, per replica count.
    RedisFleet(fleet::Args),
    /// Reads criterion's `estimates.json` files under a folder and prints
    /// the per-layer table (ours, the peer, the ratio) as markdown.
    CriterionTable(criterion_table::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(&args),
        Command::Headers(args) => headers::run(&args),
        Command::Mem(args) => mem::run(&args),
        Command::Scale(args) => scale::run(&args),
        Command::RedisFleet(args) => fleet::run(&args),
        Command::CriterionTable(args) => criterion_table::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("portcullis-loadtest: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The harness's error: a message for the operator.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;
