//! `cargo xtask bench`: the executor benchmark and a summary of its medians.
//!
//! Criterion writes `<target>/criterion/<group>/<function>/new/estimates.json`
//! (and `benchmark.json` with the full id) for each benchmark; the summary lists
//! every median found there and compares `latency/evaluate_true` (an evaluation of
//! `/bin/true` through the executor) with `latency/raw_spawn_true` (a bare
//! spawn + wait of `/bin/true`).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};

use crate::cmd;

const EVALUATE: &str = "latency/evaluate_true";
const RAW_SPAWN: &str = "latency/raw_spawn_true";
const TARGET_RATIO: f64 = 2.0;

/// Options of `cargo xtask bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Arguments for criterion, e.g. a benchmark filter or `--quick`.
    #[arg(last = true)]
    pub criterion_args: Vec<String>,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let started = SystemTime::now();
    let mut cargo = cmd::cargo(["bench", "-p", "sandbox-exec", "--bench", "evaluate"]);
    if !args.criterion_args.is_empty() {
        cargo.arg("--").args(&args.criterion_args);
    }
    cmd::run(&mut cargo)?;

    let dir = match std::env::var_os("CRITERION_HOME") {
        Some(home) => PathBuf::from(home),
        None => cmd::target_dir()?.join("criterion"),
    };
    let mut results = Vec::new();
    if dir.is_dir() {
        collect(&dir, &dir, &mut results)?;
    }
    results.sort_by(|a, b| a.id.cmp(&b.id));

    println!("== benchmark medians ({}) ==", dir.display());
    if results.is_empty() {
        println!("no results found");
    }
    let width = results.iter().map(|r| r.id.len()).max().unwrap_or(0);
    for r in &results {
        let stale = if r.modified < started {
            "  (stale: from an earlier run)"
        } else {
            ""
        };
        println!("{:<width$}  {:>12}{stale}", r.id, human(r.median_ns));
    }

    let find = |id: &str| results.iter().find(|r| r.id == id);
    let median_us = |id: &str| find(id).map(|r| r.median_ns / 1000.0);
    let show = |v: Option<f64>| v.map_or("missing".to_string(), |us| format!("{us:.1} µs"));
    let stale = [EVALUATE, RAW_SPAWN]
        .iter()
        .any(|id| find(id).is_some_and(|r| r.modified < started));
    let (evaluate, raw) = (median_us(EVALUATE), median_us(RAW_SPAWN));
    let ratio = match (evaluate, raw) {
        (Some(e), Some(r)) if r > 0.0 => {
            let verdict = if e / r <= TARGET_RATIO {
                "met"
            } else {
                "NOT met"
            };
            format!("{:.2} (target <= {TARGET_RATIO:.1}: {verdict})", e / r)
        }
        _ => format!("missing (target <= {TARGET_RATIO:.1})"),
    };
    println!(
        "evaluate /bin/true p50 = {}, raw spawn+wait p50 = {}, ratio = {ratio}{}",
        show(evaluate),
        show(raw),
        if stale { " [uses stale results]" } else { "" }
    );
    Ok(())
}

/// One benchmark's result.
struct Measured {
    /// `group/function[/parameter]`.
    id: String,
    median_ns: f64,
    modified: SystemTime,
}

/// Finds every `new/estimates.json` under `dir`.
fn collect(root: &Path, dir: &Path, out: &mut Vec<Measured>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        let estimates = path.join("estimates.json");
        if path.file_name().is_some_and(|n| n == "new") && estimates.is_file() {
            if let Some(result) = read_result(root, &path, &estimates)? {
                out.push(result);
            }
        } else {
            collect(root, &path, out)?;
        }
    }
    Ok(())
}

fn read_result(root: &Path, new_dir: &Path, estimates: &Path) -> Result<Option<Measured>> {
    let read = |p: &Path| -> Result<serde_json::Value> {
        let text = fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
    };
    let Some(median_ns) = read(estimates)?["median"]["point_estimate"].as_f64() else {
        return Ok(None);
    };
    // The full id as criterion knows it; the directory path when absent (criterion
    // replaces characters such as `/` in ids by `_` in directory names).
    let bench_dir = new_dir.parent().unwrap_or(new_dir);
    let id = read(&new_dir.join("benchmark.json"))
        .ok()
        .and_then(|b| b["full_id"].as_str().map(String::from))
        .unwrap_or_else(|| {
            let rel = bench_dir.strip_prefix(root).unwrap_or(bench_dir);
            rel.to_string_lossy().into_owned()
        });
    let modified = fs::metadata(estimates)?.modified()?;
    Ok(Some(Measured {
        id,
        median_ns,
        modified,
    }))
}

/// A duration in nanoseconds, with a readable unit.
fn human(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}
