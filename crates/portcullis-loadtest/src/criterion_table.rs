//! `criterion-table`: every criterion estimate under a folder, and the
//! figures of ours against each peer measured in the same bench run.
//!
//! The folder holds one sub-folder per crate (`CRITERION_HOME` of that
//! crate's run); each benchmark's `new/benchmark.json` names it and its
//! `new/estimates.json` holds the median.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::Error;

/// Arguments of `criterion-table`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The folder with one criterion home per crate.
    #[arg(long)]
    dir: PathBuf,
}

/// The peers, by a word their benchmark ids contain.
const PEERS: &[&str] = &[
    "tower_governor",
    "jwt_authorizer",
    "scratchstack",
    "libinjection",
];

/// Benchmarks that are neither ours nor a peer: baselines and building blocks.
const NOT_OURS: &[&str] = &[
    "bare",
    "baseline",
    "jsonwebtoken_decode",
    "no_layer",
    "linear_ipnet",
];

#[derive(Debug)]
struct Estimate {
    group: String,
    id: String,
    median_ns: f64,
}

pub(crate) fn run(args: &Args) -> Result<(), Error> {
    let mut by_crate: BTreeMap<String, Vec<Estimate>> = BTreeMap::new();
    let mut crates: Vec<PathBuf> = std::fs::read_dir(&args.dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    crates.sort();
    for home in crates {
        let name = home
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut found = Vec::new();
        collect(&home, &mut found)?;
        found.sort_by(|a, b| (&a.group, &a.id).cmp(&(&b.group, &b.id)));
        by_crate.insert(name, found);
    }

    println!("### Ours against the peers (same bench run, median time per operation)\n");
    println!("| crate | benchmark group | ours | ours | peer | peer | ours / peer |");
    println!("|---|---|---|---:|---|---:|---:|");
    let mut pairs = 0;
    for (krate, estimates) in &by_crate {
        for peer in estimates.iter().filter(|e| is_peer(&e.id)) {
            for ours in estimates
                .iter()
                .filter(|e| e.group == peer.group && is_ours(&e.id))
            {
                pairs += 1;
                println!(
                    "| {krate} | {} | {} | {} | {} | {} | {:.2} |",
                    peer.group,
                    ours.id,
                    human(ours.median_ns),
                    peer.id,
                    human(peer.median_ns),
                    ours.median_ns / peer.median_ns
                );
            }
        }
    }
    if pairs == 0 {
        println!("| (no peer benchmark in this run) | | | | | | |");
    }
    println!(
        "\nA ratio below 1 means ours is faster. Peers not listed had no benchmark in this run.\n"
    );

    println!("### Every benchmark (median)\n");
    println!("| crate | group | benchmark | median |");
    println!("|---|---|---|---:|");
    for (krate, estimates) in &by_crate {
        for e in estimates {
            println!(
                "| {krate} | {} | {} | {} |",
                e.group,
                e.id,
                human(e.median_ns)
            );
        }
    }
    Ok(())
}

fn is_peer(id: &str) -> bool {
    PEERS.iter().any(|p| id.contains(p))
}

fn is_ours(id: &str) -> bool {
    !is_peer(id) && !NOT_OURS.iter().any(|n| id.contains(n))
}

fn human(ns: f64) -> String {
    if ns >= 1_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else if ns >= 1_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{ns:.1} ns")
    }
}

fn collect(dir: &Path, out: &mut Vec<Estimate>) -> Result<(), Error> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            let (Ok(bench), Ok(estimates)) = (
                std::fs::read_to_string(path.join("benchmark.json")),
                std::fs::read_to_string(path.join("estimates.json")),
            ) else {
                continue;
            };
            let bench: Value = serde_json::from_str(&bench)?;
            let estimates: Value = serde_json::from_str(&estimates)?;
            let group = bench["group_id"].as_str().unwrap_or_default().to_owned();
            let mut id = bench["function_id"].as_str().unwrap_or_default().to_owned();
            if let Some(value) = bench["value_str"].as_str() {
                id = if id.is_empty() {
                    value.to_owned()
                } else {
                    format!("{id}/{value}")
                };
            }
            if let Some(median) = estimates["median"]["point_estimate"].as_f64() {
                out.push(Estimate {
                    group,
                    id,
                    median_ns: median,
                });
            }
        } else if path
            .file_name()
            .is_some_and(|n| n != "report" && n != "base")
        {
            collect(&path, out)?;
        }
    }
    Ok(())
}
