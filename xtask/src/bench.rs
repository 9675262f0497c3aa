//! `cargo xtask bench`: the executor benchmark, run as the current user and (when
//! that is root) again as an unprivileged user, and a summary of the medians.
//!
//! Steps:
//!
//! 1. `bwrap` must be in `PATH` for `confined/bwrap_true`: as root, bubblewrap is
//!    installed with apt-get when missing; otherwise it is an error saying what
//!    to install.
//! 2. `cargo bench -p sandbox-exec --bench evaluate --no-run` builds the bench
//!    executable and the `sandbox-runner` binary it starts.
//! 3. The bench executable runs as the current user, its results in
//!    `$CRITERION_HOME` (default `<target>/criterion`).
//! 4. Started as root (and without `--no-unprivileged`), the same executable runs
//!    again as uid/gid 65534 under `setpriv`, like the unprivileged pass of
//!    `cargo xtask test`: the executable and the runner are copied into a fresh
//!    world-readable temp dir (the checkout under `/root` is not traversable by
//!    other users), `SANDBOX_RUNNER_BIN` points at the copied runner, and
//!    `CRITERION_HOME` at a directory of that temp dir, so neither run sees the
//!    other's results. They are kept afterwards in `<target>/criterion-uid65534`.
//!
//! Criterion writes `<home>/<group>/<function>/new/estimates.json` (and
//! `benchmark.json` with the full id) for each benchmark; the summary lists every
//! median found and checks the targets. A p50 is the median of single runs
//! where the bench timed them one by one (`confined_latencies.json`: the
//! confined evaluations and bwrap runs), else criterion's median, which is a
//! median of sample means (each over many iterations, pulled up by a slow
//! tail):
//!
//! - `latency/evaluate_true` / `latency/raw_spawn_true` (an evaluation of
//!   `/bin/true` against a bare spawn + wait): at most 2;
//! - `confined/evaluate_true` (a fully confined evaluation of `/bin/true`): p50 at
//!   most 2.5 ms, and at most 0.5 times `confined/bwrap_true` (`bwrap
//!   --unshare-all ... /bin/true`) of the same run;
//! - `confined/evaluate_true` as uid 65534: at most 1.3 times the root figure.
//! - `confined_paced/…`: the same two with an unmeasured pause before each
//!   iteration (the spare runner ready, as when evaluations arrive from an
//!   agent), with the same targets; the back-to-back rows above include the
//!   contention of preparing the next spare on a 2-core machine.
//! - `confined/spawn_true` (a plain spawn of `/bin/true`, timed in blocks
//!   beside the back-to-back ones): no target, the host's speed at the time,
//!   for reading the absolute figures (it drifts by a factor of two here).
//!
//! The targets are judged on the first run (root, normally); the unprivileged
//! column is shown for comparison.
//!
//! `cargo xtask bench proxy` runs the proxy benchmark instead (`run_proxy`): as the
//! current user only, with the tunnel/direct throughput ratio (target at least
//! 0.8, judged on the median of the bench's paired transfers, each pair run
//! back to back; criterion's two batches are printed beside it) and the
//! latency the proxy adds (ping-pong target at most 150 µs).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};

use crate::cmd::{self, Artifact, NOBODY};

const EVALUATE: &str = "latency/evaluate_true";
const RAW_SPAWN: &str = "latency/raw_spawn_true";
const CONFINED: &str = "confined/evaluate_true";
const BWRAP: &str = "confined/bwrap_true";
const PACED: &str = "confined_paced/evaluate_true";
const PACED_BWRAP: &str = "confined_paced/bwrap_true";
/// A plain spawn of /bin/true timed beside them: the host's speed.
const SPAWN: &str = "confined/spawn_true";

/// `latency/evaluate_true` / `latency/raw_spawn_true`.
const TARGET_RATIO: f64 = 2.0;
/// p50 of `confined/evaluate_true`, in milliseconds.
const TARGET_CONFINED_MS: f64 = 2.5;
/// `confined/evaluate_true` / `confined/bwrap_true`.
const TARGET_VS_BWRAP: f64 = 0.5;
/// `confined/evaluate_true` unprivileged / as root.
const TARGET_UNPRIVILEGED: f64 = 1.3;

/// Options of `cargo xtask bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Run only the benchmarks whose id matches this criterion filter, e.g.
    /// `confined` or `latency`.
    pub filter: Option<String>,
    /// Skip the second run as an unprivileged user.
    #[arg(long)]
    pub no_unprivileged: bool,
    /// The uid of the unprivileged run.
    #[arg(long, default_value_t = NOBODY)]
    pub uid: u32,
    /// The gid of the unprivileged run.
    #[arg(long, default_value_t = NOBODY)]
    pub gid: u32,
    /// Arguments for criterion, e.g. `--quick`.
    #[arg(last = true)]
    pub criterion_args: Vec<String>,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    if args.filter.as_deref() == Some("proxy") {
        return run_proxy(args);
    }
    let started = SystemTime::now();
    let euid = unsafe { libc::geteuid() }; // SAFETY: geteuid cannot fail.
    let root = euid == 0;
    ensure_bwrap(root)?;
    let setpriv = if root && !args.no_unprivileged {
        Some(cmd::find_in_path("setpriv").context(
            "setpriv not found: install util-linux (apt-get install util-linux), \
             or pass --no-unprivileged",
        )?)
    } else {
        None
    };

    let artifacts = cmd::build(&[
        "bench",
        "-p",
        "sandbox-exec",
        "--bench",
        "evaluate",
        "--no-run",
    ])?;
    let bench = find_artifact(&artifacts, "evaluate", "bench")?;
    let runner = find_artifact(&artifacts, "sandbox-runner", "bin")?;
    let mut bench_args = vec!["--bench".to_string()];
    bench_args.extend(args.filter.clone());
    bench_args.extend(args.criterion_args.iter().cloned());
    let mut failures = Vec::new();

    // The run as the current user, as `cargo bench` would start it.
    let first_label = if root {
        "root".to_string()
    } else {
        format!("uid {euid}")
    };
    let target_dir = cmd::target_dir()?;
    let first_dir = match std::env::var_os("CRITERION_HOME") {
        Some(home) => PathBuf::from(home),
        None => target_dir.join("criterion"),
    };
    println!("== benchmark as {first_label} ==");
    let mut run = Command::new(&bench.executable);
    run.args(&bench_args)
        .current_dir(cmd::workspace_root().join("sandbox-exec"))
        .env("CRITERION_HOME", &first_dir);
    if let Err(e) = cmd::run(&mut run) {
        failures.push(format!("benchmark as {first_label}: {e:#}"));
    }
    let first = results(&first_dir)?;
    print_medians(&first_label, &first_dir, &first, started);

    let second = match &setpriv {
        Some(setpriv) => {
            println!("== benchmark as uid {} ==", args.uid);
            let kept = target_dir.join(format!("criterion-uid{}", args.uid));
            match unprivileged_run(args, setpriv, bench, runner, &bench_args, &kept) {
                Ok((results, failure)) => {
                    failures.extend(failure);
                    print_medians(&format!("uid {}", args.uid), &kept, &results, started);
                    Some(results)
                }
                Err(e) => {
                    failures.push(format!("benchmark as uid {}: {e:#}", args.uid));
                    None
                }
            }
        }
        None => {
            if root {
                println!("note: unprivileged run skipped (--no-unprivileged)");
            } else {
                println!(
                    "note: unprivileged run skipped: not root, the run above was as uid {euid}"
                );
            }
            None
        }
    };

    summary(
        &first_label,
        &first,
        second.as_deref().map(|r| (args.uid, r)),
        started,
    );
    if failures.is_empty() {
        Ok(())
    } else {
        bail!("benchmark failed:\n  - {}", failures.join("\n  - "))
    }
}

/// Installs bubblewrap when `bwrap` is missing (as root), or says what to install.
fn ensure_bwrap(root: bool) -> Result<()> {
    if cmd::find_in_path("bwrap").is_some() {
        return Ok(());
    }
    if !root {
        bail!(
            "bwrap not found: the benchmark compares with bubblewrap; install it \
             (apt-get install bubblewrap, as root) or run `cargo xtask bench` as root"
        );
    }
    let apt = cmd::find_in_path("apt-get")
        .context("bwrap not found and no apt-get to install it: install bubblewrap")?;
    let install = || {
        let mut c = Command::new(&apt);
        c.args(["install", "-y", "--no-install-recommends", "bubblewrap"])
            .env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    println!("== installing bubblewrap ==");
    if cmd::run(&mut install()).is_err() {
        // A fresh machine may have no package lists yet.
        cmd::run(Command::new(&apt).arg("update"))?;
        cmd::run(&mut install())?;
    }
    if cmd::find_in_path("bwrap").is_none() {
        bail!("bubblewrap installed, but bwrap is still not in PATH");
    }
    Ok(())
}

fn find_artifact<'a>(artifacts: &'a [Artifact], name: &str, kind: &str) -> Result<&'a Artifact> {
    artifacts
        .iter()
        .find(|a| {
            a.package == "sandbox-exec" && a.name == name && a.kinds.iter().any(|k| k == kind)
        })
        .with_context(|| format!("cargo reported no {kind} `{name}` of sandbox-exec"))
}

/// Runs the bench executable as `args.uid` from a world-readable temp dir:
///
/// ```text
/// $TMPDIR/xtask-bench-XXXXXX/   0755, removed afterwards
///   bin/        the bench executable and sandbox-runner (0755)
///   home/       HOME and cwd of the run, owned by the unprivileged user
///   criterion/  CRITERION_HOME, owned by the unprivileged user
/// ```
///
/// Copies the results to `kept` and returns them, with a message if the run
/// failed.
fn unprivileged_run(
    args: &BenchArgs,
    setpriv: &Path,
    bench: &Artifact,
    runner: &Artifact,
    bench_args: &[String],
    kept: &Path,
) -> Result<(Vec<Measured>, Option<String>)> {
    let scratch = tempfile::Builder::new()
        .prefix("xtask-bench-")
        .tempdir()
        .context("creating the temp dir of the unprivileged run")?;
    let dir = scratch.path();
    let (bin, home, criterion) = (dir.join("bin"), dir.join("home"), dir.join("criterion"));
    for d in [dir, &bin, &home, &criterion] {
        fs::create_dir_all(d)?;
        fs::set_permissions(d, fs::Permissions::from_mode(0o755))?;
    }
    for d in [&home, &criterion] {
        std::os::unix::fs::chown(d, Some(args.uid), Some(args.gid))
            .with_context(|| format!("chown {} to {}:{}", d.display(), args.uid, args.gid))?;
    }
    let exe = cmd::copy_executable(&bench.executable, &bin)?;
    let runner = cmd::copy_executable(&runner.executable, &bin)?;

    let mut run = cmd::as_user(setpriv, args.uid, args.gid, &exe);
    run.args(bench_args)
        .current_dir(&home)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .env("HOME", &home)
        .env("SANDBOX_RUNNER_BIN", &runner)
        .env("CRITERION_HOME", &criterion);
    for var in ["RUST_BACKTRACE", "RUST_LOG"] {
        if let Some(value) = std::env::var_os(var) {
            run.env(var, value);
        }
    }
    let failure = cmd::run(&mut run)
        .err()
        .map(|e| format!("benchmark as uid {}: {e:#}", args.uid));

    if kept.exists() {
        fs::remove_dir_all(kept).with_context(|| format!("removing {}", kept.display()))?;
    }
    cmd::copy_tree(&criterion, kept)?;
    let results = results(kept)?;
    let path = dir.to_path_buf();
    scratch
        .close()
        .with_context(|| format!("removing {}", path.display()))?;
    Ok((results, failure))
}

/// One benchmark's result.
struct Measured {
    /// `group/function[/parameter]`.
    id: String,
    median_ns: f64,
    modified: SystemTime,
}

/// Every result under a criterion home, sorted by id. Where the bench timed
/// evaluations one by one (`confined_latencies.json`), their median replaces
/// criterion's (a median of sample means) for that id.
fn results(dir: &Path) -> Result<Vec<Measured>> {
    let mut results = Vec::new();
    if dir.is_dir() {
        collect(dir, dir, &mut results)?;
    }
    let individual = dir.join(INDIVIDUAL_FILE);
    if individual.is_file() {
        let modified = fs::metadata(&individual)?.modified()?;
        let text = fs::read_to_string(&individual)
            .with_context(|| format!("reading {}", individual.display()))?;
        for (id, median_ns) in individual_medians(&text)
            .with_context(|| format!("reading {}", individual.display()))?
        {
            let id = format!("{id} (one by one)");
            results.push(Measured {
                id,
                median_ns,
                modified,
            });
        }
    }
    results.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(results)
}

/// Where the executor bench writes the evaluations it timed one by one.
const INDIVIDUAL_FILE: &str = "confined_latencies.json";

/// The median of each id's latencies in `text` (`{"id": [ns, ...], ...}`).
fn individual_medians(text: &str) -> Result<Vec<(String, f64)>> {
    let value: serde_json::Value = serde_json::from_str(text)?;
    let object = value.as_object().context("not a JSON object")?;
    let mut medians = Vec::new();
    for (id, times) in object {
        let mut times: Vec<f64> = times
            .as_array()
            .with_context(|| format!("{id}: not a list of latencies"))?
            .iter()
            .map(|t| {
                t.as_f64()
                    .with_context(|| format!("{id}: {t} is not a number"))
            })
            .collect::<Result<_>>()?;
        if times.is_empty() {
            continue;
        }
        times.sort_by(f64::total_cmp);
        let n = times.len();
        let median = if n % 2 == 1 {
            times[n / 2]
        } else {
            (times[n / 2 - 1] + times[n / 2]) / 2.0
        };
        medians.push((id.clone(), median));
    }
    Ok(medians)
}

fn print_medians(label: &str, dir: &Path, results: &[Measured], started: SystemTime) {
    println!("== benchmark medians as {label} ({}) ==", dir.display());
    if results.is_empty() {
        println!("no results found");
    }
    let width = results.iter().map(|r| r.id.len()).max().unwrap_or(0);
    for r in results {
        let stale = if r.modified < started {
            "  (stale: from an earlier run)"
        } else {
            ""
        };
        println!("{:<width$}  {:>12}{stale}", r.id, human(r.median_ns));
    }
}

/// The figures of one run.
struct Figures<'a> {
    results: &'a [Measured],
    started: SystemTime,
}

impl Figures<'_> {
    /// `id`'s figure: the median of its single runs where the bench timed
    /// them one by one, else criterion's median.
    fn find(&self, id: &str) -> Option<&Measured> {
        let one_by_one = format!("{id} (one by one)");
        self.results
            .iter()
            .find(|r| r.id == one_by_one)
            .or_else(|| self.results.iter().find(|r| r.id == id))
    }

    fn median_ns(&self, id: &str) -> Option<f64> {
        self.find(id).map(|r| r.median_ns)
    }

    fn ratio(&self, a: &str, b: &str) -> Option<f64> {
        match (self.median_ns(a), self.median_ns(b)) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        }
    }

    /// Whether any of `ids` comes from an earlier run.
    fn stale(&self, ids: &[&str]) -> bool {
        ids.iter()
            .any(|id| self.find(id).is_some_and(|r| r.modified < self.started))
    }
}

/// Prints the table of the targets.
fn summary(
    first_label: &str,
    first: &[Measured],
    second: Option<(u32, &[Measured])>,
    started: SystemTime,
) {
    let first = Figures {
        results: first,
        started,
    };
    let second_label = second.map(|(uid, _)| format!("uid {uid}"));
    let second = second.map(|(_, results)| Figures { results, started });

    let verdict = |value: Option<f64>, target: f64, unit: &str| match value {
        Some(v) if v <= target => format!("<= {target}{unit}: met"),
        Some(_) => format!("<= {target}{unit}: NOT met"),
        None => format!("<= {target}{unit}: missing"),
    };
    let ratio = |v: Option<f64>| v.map_or("missing".to_string(), |r| format!("{r:.2}"));
    let time = |v: Option<f64>| v.map_or("missing".to_string(), human);
    let stale_mark = |stale: bool| if stale { " [stale]" } else { "" };

    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut row = |name: &str, ids: &[&str], value: &dyn Fn(&Figures) -> String, target: String| {
        let first_cell = format!("{}{}", value(&first), stale_mark(first.stale(ids)));
        let second_cell = second.as_ref().map_or(String::new(), |s| {
            format!("{}{}", value(s), stale_mark(s.stale(ids)))
        });
        let target = if first.stale(ids) && !target.is_empty() {
            format!("{target} (on stale results)")
        } else {
            target
        };
        rows.push([name.to_string(), first_cell, second_cell, target]);
    };

    row(
        "latency evaluate / raw spawn",
        &[EVALUATE, RAW_SPAWN],
        &|f| ratio(f.ratio(EVALUATE, RAW_SPAWN)),
        verdict(first.ratio(EVALUATE, RAW_SPAWN), TARGET_RATIO, ""),
    );
    row(
        "confined/evaluate_true p50",
        &[CONFINED],
        &|f| time(f.median_ns(CONFINED)),
        verdict(
            first.median_ns(CONFINED).map(|ns| ns / 1e6),
            TARGET_CONFINED_MS,
            " ms",
        ),
    );
    row(
        "confined/bwrap_true p50",
        &[BWRAP],
        &|f| time(f.median_ns(BWRAP)),
        String::new(),
    );
    row(
        "confined evaluate / bwrap",
        &[CONFINED, BWRAP],
        &|f| ratio(f.ratio(CONFINED, BWRAP)),
        verdict(first.ratio(CONFINED, BWRAP), TARGET_VS_BWRAP, ""),
    );

    row(
        "plain spawn of /bin/true p50 (host speed)",
        &[SPAWN],
        &|f| time(f.median_ns(SPAWN)),
        String::new(),
    );
    row(
        "confined evaluate / plain spawn",
        &[CONFINED, SPAWN],
        &|f| ratio(f.ratio(CONFINED, SPAWN)),
        String::new(),
    );
    row(
        "confined_paced/evaluate_true p50",
        &[PACED],
        &|f| time(f.median_ns(PACED)),
        verdict(
            first.median_ns(PACED).map(|ns| ns / 1e6),
            TARGET_CONFINED_MS,
            " ms",
        ),
    );
    row(
        "confined_paced/bwrap_true p50",
        &[PACED_BWRAP],
        &|f| time(f.median_ns(PACED_BWRAP)),
        String::new(),
    );
    row(
        "paced evaluate / paced bwrap",
        &[PACED, PACED_BWRAP],
        &|f| ratio(f.ratio(PACED, PACED_BWRAP)),
        verdict(first.ratio(PACED, PACED_BWRAP), TARGET_VS_BWRAP, ""),
    );
    row(
        "paced evaluate unprivileged / root",
        &[PACED],
        &|f| {
            let own = f.median_ns(PACED);
            let root = first.median_ns(PACED);
            ratio(own.zip(root).map(|(o, r)| o / r))
        },
        String::new(),
    );

    let unprivileged_ratio =
        second.as_ref().and_then(
            |s| match (s.median_ns(CONFINED), first.median_ns(CONFINED)) {
                (Some(u), Some(r)) if r > 0.0 => Some(u / r),
                _ => None,
            },
        );
    let stale = first.stale(&[CONFINED]) || second.as_ref().is_some_and(|s| s.stale(&[CONFINED]));
    let (name, mut target) = match &second_label {
        Some(label) => (
            format!("confined evaluate {label} / {first_label}"),
            verdict(unprivileged_ratio, TARGET_UNPRIVILEGED, ""),
        ),
        None => (
            "confined evaluate unprivileged / root".to_string(),
            format!("<= {TARGET_UNPRIVILEGED}: not measured (needs root)"),
        ),
    };
    if stale && second_label.is_some() {
        target.push_str(" (on stale results)");
    }
    rows.push([
        name,
        format!("{}{}", ratio(unprivileged_ratio), stale_mark(stale)),
        String::new(),
        target,
    ]);

    let header = [
        "measure".to_string(),
        first_label.to_string(),
        second_label.unwrap_or_default(),
        format!("target (judged on {first_label})"),
    ];
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            std::iter::once(&header)
                .chain(&rows)
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    println!(
        "== summary (p50 = median of single runs timed one by one, else criterion's median) =="
    );
    for r in std::iter::once(&header).chain(&rows) {
        let line = format!(
            "{:<w0$}  {:>w1$}  {:>w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
        );
        println!("{}", line.trim_end());
    }
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

/// `proxy_throughput/tunnel_1GiB` against `proxy_throughput/direct_1GiB`: at least.
const TARGET_PROXY_THROUGHPUT: f64 = 0.8;
/// `proxy_latency/tunnel_ping_pong` minus `proxy_latency/direct_ping_pong`, in µs.
const TARGET_PROXY_ADDED_US: f64 = 150.0;

/// The median of the paired throughput ratios the proxy bench wrote to
/// `home` during this run (`proxy_paired.json`), if it did.
fn paired_median(home: &Path, started: SystemTime) -> Option<f64> {
    let path = home.join("proxy_paired.json");
    let fresh = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= started);
    if !fresh {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?["median"].as_f64()
}

/// `cargo xtask bench proxy`: the proxy benchmark (`sandbox-proxy/benches/proxy.rs`,
/// as the current user only: nothing in it depends on privileges), its medians,
/// and the tunnelled figures against the direct-loopback ones of the same run.
fn run_proxy(args: &BenchArgs) -> Result<()> {
    let started = SystemTime::now();
    let artifacts = cmd::build(&[
        "bench",
        "-p",
        "sandbox-proxy",
        "--bench",
        "proxy",
        "--no-run",
    ])?;
    let bench = artifacts
        .iter()
        .find(|a| {
            a.package == "sandbox-proxy"
                && a.name == "proxy"
                && a.kinds.iter().any(|k| k == "bench")
        })
        .context("cargo reported no bench `proxy` of sandbox-proxy")?;
    let home = match std::env::var_os("CRITERION_HOME") {
        Some(home) => PathBuf::from(home),
        None => cmd::target_dir()?.join("criterion"),
    };
    let mut run = Command::new(&bench.executable);
    run.arg("--bench")
        .args(&args.criterion_args)
        .current_dir(cmd::workspace_root().join("sandbox-proxy"))
        .env("CRITERION_HOME", &home);
    let outcome = cmd::run(&mut run);
    let mut all = results(&home)?;
    all.retain(|r| r.id.starts_with("proxy_"));
    print_medians("the current user", &home, &all, started);

    let f = Figures {
        results: &all,
        started,
    };
    let stale = |ids: &[&str]| if f.stale(ids) { " [stale]" } else { "" };
    let (direct, tunnel) = (
        "proxy_throughput/direct_1GiB",
        "proxy_throughput/tunnel_1GiB",
    );
    let verdict = |r: f64| {
        if r >= TARGET_PROXY_THROUGHPUT {
            "met"
        } else {
            "NOT met"
        }
    };
    // Same bytes each way, so throughput tunnel/direct is time direct/tunnel.
    match f.ratio(direct, tunnel) {
        Some(r) => println!(
            "tunnel throughput / direct, criterion's two batches: {r:.2}{}",
            stale(&[direct, tunnel])
        ),
        None => println!("tunnel throughput / direct, criterion's two batches: missing"),
    }
    // The target is judged on the paired figure: each pair's two transfers
    // run back to back, so drift between the batches does not enter it.
    match paired_median(&home, started) {
        Some(r) => println!(
            "tunnel throughput / direct, median of pairs: {r:.2} (target >= {TARGET_PROXY_THROUGHPUT}: {})",
            verdict(r)
        ),
        None => println!("tunnel throughput / direct, median of pairs: missing (PROXY_PAIRS=0?)"),
    }
    for (what, base, via) in [
        (
            "ping-pong",
            "proxy_latency/direct_ping_pong",
            "proxy_latency/tunnel_ping_pong",
        ),
        (
            "connect + first byte, CONNECT",
            "proxy_latency/direct_connect_first_byte",
            "proxy_latency/tunnel_connect_first_byte",
        ),
        (
            "connect + first byte, SOCKS5",
            "proxy_latency/direct_connect_first_byte",
            "proxy_latency/socks5_connect_first_byte",
        ),
    ] {
        match (f.median_ns(base), f.median_ns(via)) {
            (Some(b), Some(v)) => {
                let added_us = (v - b) / 1e3;
                let verdict = if what == "ping-pong" {
                    let met = if added_us <= TARGET_PROXY_ADDED_US {
                        "met"
                    } else {
                        "NOT met"
                    };
                    format!(" (target <= {TARGET_PROXY_ADDED_US} µs: {met})")
                } else {
                    String::new()
                };
                println!(
                    "added p50, {what}: {added_us:.1} µs ({} direct, {} proxied){verdict}{}",
                    human(b),
                    human(v),
                    stale(&[base, via])
                );
            }
            _ => println!("added p50, {what}: missing"),
        }
    }
    outcome.context("the proxy benchmark failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_odd_count_is_the_middle_run() {
        let medians = individual_medians(r#"{"a/b":[5,1,3]}"#).unwrap();
        assert_eq!(medians, vec![("a/b".to_string(), 3.0)]);
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let medians = individual_medians(r#"{"a/b":[4,1,3,2]}"#).unwrap();
        assert_eq!(medians, vec![("a/b".to_string(), 2.5)]);
    }

    #[test]
    fn a_latency_that_is_not_a_number_is_an_error_naming_its_id() {
        let error = individual_medians(r#"{"a/b":[1,"x"]}"#).unwrap_err();
        assert!(format!("{error:#}").contains("a/b"), "{error:#}");
    }
}
