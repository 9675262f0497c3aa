//! Executor benchmarks: what one fresh runner child per evaluation costs.
//!
//! - `latency/raw_spawn_true`: a bare `std::process::Command::new("/bin/true")`
//!   spawn + wait, the floor any process-per-evaluation design pays.
//! - `latency/evaluate_true`: one evaluation of `/bin/true` through
//!   [`Executor::evaluate`] (runner spawn, socket handshake, pid and user
//!   namespaces, init, the command, report), on a current-thread tokio runtime.
//!   `cargo xtask bench` prints the ratio of the two medians; the target is at
//!   most 2.
//! - `throughput/concurrency/{1,2,8}`: N evaluations of `/bin/true` started
//!   together on a multi-thread runtime; criterion reports evaluations/second.
//! - `output/flood_1GiB_limit_50KB`: a child writing 1 GiB to stdout under the
//!   default 50 KB output limit; criterion reports bytes/second drained. (The
//!   host memory side of the same case is the `flood` example.)
//! - `confined/evaluate_true`: one fully confined evaluation of `/bin/true`:
//!   a policy built with [`Policy::builder`] whose only writable root is a
//!   scratch directory (a non-default policy: every namespace, the mount plan
//!   and whatever else the executor applies for a policy), plus memory, CPU
//!   time, pids, file size and open files limits.
//! - `confined_paced/evaluate_true` and `confined_paced/bwrap_true`: the same
//!   two, each iteration started after a [`PACE`] pause that is not measured,
//!   as evaluations arrive from an agent or a user: the executor's spare runner
//!   is then ready, so this is the latency of one evaluation. Back to back
//!   (`confined/…`) every evaluation also waits for its spare to finish
//!   starting, so those figures are the cost at full throughput.
//! - `confined/bwrap_true`: spawn + wait of `bwrap --unshare-all
//!   --die-with-parent --dev /dev --proc /proc --ro-bind / / /bin/true`, the
//!   baseline the confined evaluation is compared with (skipped with a message
//!   when `bwrap` is not installed). `cargo xtask bench` installs bubblewrap,
//!   runs the benchmark as root and as uid 65534, and prints the confined p50s,
//!   the confined/bwrap ratio (target at most 0.5) and the unprivileged/root
//!   ratio (target at most 1.3).
//!
//! - After the criterion groups, `confined` times evaluations and bwrap runs
//!   one by one (400 of each back to back, 200 paced), and writes them to
//!   `$CRITERION_HOME/confined_latencies.json`: the p50 targets are about
//!   single evaluations, which criterion's medians of sample means are not.
//!
//! Run with `cargo bench -p sandbox-exec --bench evaluate` (or `cargo xtask bench`
//! for the summary); add a filter such as `-- latency` to run one group. The
//! runner is the bundled `sandbox-runner` binary that cargo builds for the bench;
//! set `SANDBOX_RUNNER_BIN` to benchmark another one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use sandbox_exec::{Command, EvalRequest, Executor, Limits, RunnerProgram};
use sandbox_policy::{Context, HostFs, Policy};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

/// Bytes the flooding child writes.
const FLOOD_BYTES: u64 = 1 << 30;
/// The output limit it writes under (the default, 50 KB).
const FLOOD_LIMIT: usize = 50_000;

fn runner_program() -> PathBuf {
    std::env::var_os("SANDBOX_RUNNER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sandbox-runner")))
}

fn executor() -> Executor {
    let program = runner_program();
    assert!(
        program.is_file(),
        "runner {} not found; build it with `cargo build --release -p sandbox-exec --bins` \
         or set SANDBOX_RUNNER_BIN",
        program.display()
    );
    Executor::with_runner(RunnerProgram::path(program)).expect("creating the executor")
}

fn true_request() -> EvalRequest {
    EvalRequest::new(Command::argv(["/bin/true"])).timeout(Duration::from_secs(10))
}

fn flood_request() -> EvalRequest {
    EvalRequest::new(Command::argv([
        "head",
        "-c",
        &FLOOD_BYTES.to_string(),
        "/dev/zero",
    ]))
    .max_output(FLOOD_LIMIT)
    .timeout(Duration::from_secs(60))
}

/// The exact command line `confined/bwrap_true` runs.
const BWRAP_ARGS: &[&str] = &[
    "--unshare-all",
    "--die-with-parent",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
    "--ro-bind",
    "/",
    "/",
    "/bin/true",
];

/// Runs `/bin/true` under `bwrap` with [`BWRAP_ARGS`] and waits for it.
fn bwrap_true(bwrap: &Path) {
    let status = std::process::Command::new(bwrap)
        .args(BWRAP_ARGS)
        .status()
        .expect("spawning bwrap");
    assert!(status.success(), "bwrap /bin/true: {status}");
}

/// Limits for the confined evaluation: all set, none near what `/bin/true` uses.
fn confined_limits() -> Limits {
    Limits {
        memory: Some(256 << 20),
        cpu_time: Some(Duration::from_secs(10)),
        pids: Some(64),
        file_size: Some(16 << 20),
        open_files: Some(256),
    }
}

/// A policy whose only writable root is `scratch`.
fn confined_policy(scratch: &Path) -> Policy {
    let ctx = Context {
        home: std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/".into()),
        cwd: std::env::current_dir().expect("current directory"),
    };
    let (policy, report) = Policy::builder(ctx)
        .allow(format!("Edit({})", scratch.display()))
        .build(&HostFs)
        .expect("building the confined policy");
    for warning in report.warnings {
        eprintln!("confined: policy warning: {warning:?}");
    }
    policy
}

fn confined_request(policy: &Policy) -> EvalRequest {
    true_request()
        .policy(policy.clone())
        .limits(confined_limits())
}

/// The pause before each paced iteration: ample time for the executor to
/// have its next spare runner started and prepared.
const PACE: Duration = Duration::from_millis(20);

/// Runs `f` `iters` times, each after a [`PACE`] pause, and returns the time
/// spent in `f` alone.
fn paced(iters: u64, mut f: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        std::thread::sleep(PACE);
        let start = Instant::now();
        f();
        total += start.elapsed();
    }
    total
}

/// The `bwrap` in `PATH`, if any.
fn find_bwrap() -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("bwrap"))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn current_thread_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building a tokio runtime")
}

fn latency(c: &mut Criterion) {
    let rt = current_thread_runtime();
    let executor = executor();
    let outcome = rt
        .block_on(executor.evaluate(true_request()))
        .expect("evaluating /bin/true");
    assert!(
        outcome.status.success(),
        "/bin/true through the executor: {:?}",
        outcome.status
    );

    let mut group = c.benchmark_group("latency");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("raw_spawn_true", |b| {
        b.iter(|| {
            let status = std::process::Command::new("/bin/true")
                .status()
                .expect("spawning /bin/true");
            assert!(status.success(), "/bin/true: {status}");
        })
    });
    group.bench_function("evaluate_true", |b| {
        b.iter(|| {
            rt.block_on(executor.evaluate(true_request()))
                .expect("evaluating /bin/true")
        })
    });
    group.finish();
}

fn throughput(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building a tokio runtime");
    let executor = executor();

    let mut group = c.benchmark_group("throughput");
    group
        .sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for n in [1u64, 2, 8] {
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::new("concurrency", n), &n, |b, &n| {
            b.iter(|| {
                rt.block_on(async {
                    let mut set = JoinSet::new();
                    for _ in 0..n {
                        let executor = executor.clone();
                        set.spawn(async move { executor.evaluate(true_request()).await });
                    }
                    while let Some(joined) = set.join_next().await {
                        let outcome = joined
                            .expect("evaluation task panicked")
                            .expect("evaluating /bin/true");
                        assert!(outcome.status.success(), "/bin/true: {:?}", outcome.status);
                    }
                })
            })
        });
    }
    group.finish();
}

fn output(c: &mut Criterion) {
    let rt = current_thread_runtime();
    let executor = executor();
    let started = Instant::now();
    let outcome = rt
        .block_on(executor.evaluate(flood_request()))
        .expect("evaluating the flood");
    assert!(outcome.status.success(), "flood: {:?}", outcome.status);
    assert_eq!(outcome.streams.total(), FLOOD_BYTES, "flood byte count");
    assert!(
        outcome.output.len() < FLOOD_LIMIT + 200,
        "flood kept {} bytes",
        outcome.output.len()
    );
    eprintln!(
        "output: 1 GiB under a {FLOOD_LIMIT}-byte limit, first run {:?}",
        started.elapsed()
    );

    // Flat sampling: 10 samples of the same iteration count. At ~0.3 s a run,
    // 5 s gives two runs per sample; criterion warns when only one fits.
    let mut group = c.benchmark_group("output");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Bytes(FLOOD_BYTES));
    group.bench_function("flood_1GiB_limit_50KB", |b| {
        b.iter(|| {
            rt.block_on(executor.evaluate(flood_request()))
                .expect("evaluating the flood")
        })
    });
    group.finish();
}

fn confined(c: &mut Criterion) {
    let rt = current_thread_runtime();
    let executor = executor();
    // Outside /tmp, which a confined evaluation sees as a private tmpfs.
    let scratch = tempfile::Builder::new()
        .prefix("sbx-bench-")
        .tempdir_in("/var/tmp")
        .expect("creating a scratch directory in /var/tmp");
    let policy = confined_policy(scratch.path());
    let outcome = rt
        .block_on(executor.evaluate(confined_request(&policy)))
        .expect("evaluating /bin/true confined");
    assert!(
        outcome.status.success(),
        "confined /bin/true through the executor: {:?}: {}",
        outcome.status,
        outcome.output_text()
    );
    // No protection accepted as weaker: a missing one refuses the evaluation
    // above, so the figure is always that of the full confinement.
    assert!(
        outcome.weakened.is_empty(),
        "confined /bin/true ran weakened: {:?}",
        outcome.weakened
    );
    let limits: Vec<String> = outcome
        .limits
        .iter()
        .map(|e| format!("{:?} by {:?}", e.limit, e.mechanism))
        .collect();
    eprintln!(
        "confined: uid {}, limits enforced: {}",
        nix::unistd::geteuid(),
        limits.join(", ")
    );

    // Flat sampling: at several milliseconds an iteration, linear sampling's
    // 1 + 2 + ... + 50 iterations would not fit in the measurement time.
    let mut group = c.benchmark_group("confined");
    group
        .sample_size(50)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("evaluate_true", |b| {
        b.iter(|| {
            rt.block_on(executor.evaluate(confined_request(&policy)))
                .expect("evaluating /bin/true confined")
        })
    });
    match find_bwrap() {
        None => eprintln!(
            "confined/bwrap_true skipped: bwrap not found in PATH \
             (install bubblewrap, e.g. apt-get install bubblewrap)"
        ),
        Some(bwrap) => {
            let status = std::process::Command::new(&bwrap)
                .args(BWRAP_ARGS)
                .status()
                .expect("spawning bwrap");
            if !status.success() {
                eprintln!(
                    "confined/bwrap_true skipped: `bwrap {}` failed here ({status})",
                    BWRAP_ARGS.join(" ")
                );
            } else {
                group.bench_function("bwrap_true", |b| b.iter(|| bwrap_true(&bwrap)));
            }
        }
    }
    group.finish();

    // Each iteration also sleeps PACE unmeasured, and criterion plans the
    // samples on that wall time: 5 s makes about 200 evaluations (1 s made
    // 60, whose median moved by a quarter millisecond from run to run).
    let mut group = c.benchmark_group("confined_paced");
    group
        .sample_size(50)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("evaluate_true", |b| {
        b.iter_custom(|iters| {
            paced(iters, || {
                rt.block_on(executor.evaluate(confined_request(&policy)))
                    .expect("evaluating /bin/true confined");
            })
        })
    });
    if let Some(bwrap) = find_bwrap() {
        group.bench_function("bwrap_true", |b| {
            b.iter_custom(|iters| paced(iters, || bwrap_true(&bwrap)))
        });
    }
    group.finish();
    individual_latencies(&rt, &executor, &policy);
    drop(executor);
    drop(scratch);
}

/// Evaluations timed one by one in each mode of [`individual_latencies`].
const INDIVIDUAL: usize = 400;
/// Back to back, evaluations and bwrap runs alternate in blocks of this many.
const BLOCK: usize = 50;

/// Times confined evaluations and bwrap runs one by one, so that their p50 is
/// the median of single runs: criterion's median is one of sample means, each
/// over many iterations, which a slow tail pulls up. Back to back, they
/// alternate in blocks (an evaluation right after a bwrap run would find its
/// spare ready), with a block of plain spawns of `/bin/true` for the host's
/// speed; paced, one of each after every [`PACE`]. Written to
/// `$CRITERION_HOME/confined_latencies.json` (nanoseconds per benchmark id)
/// for `cargo xtask bench confined`, and summarised here.
fn individual_latencies(rt: &Runtime, executor: &Executor, policy: &Policy) {
    let Some(home) = std::env::var_os("CRITERION_HOME") else {
        return;
    };
    let bwrap = find_bwrap();
    let evaluate = || {
        let start = Instant::now();
        rt.block_on(executor.evaluate(confined_request(policy)))
            .expect("evaluating /bin/true confined");
        start.elapsed()
    };
    let run_bwrap = |bwrap: &Path| {
        let start = Instant::now();
        bwrap_true(bwrap);
        start.elapsed()
    };
    // The host's own speed, for reading the absolute figures: the same
    // machine ran a plain spawn of /bin/true anywhere from 0.57 to 1.06 ms
    // (p50) within one hour.
    let spawn = || {
        let start = Instant::now();
        let status = std::process::Command::new("/bin/true")
            .status()
            .expect("spawning /bin/true");
        assert!(status.success(), "/bin/true: {status}");
        start.elapsed()
    };
    let mut series: Vec<(&str, Vec<Duration>)> = vec![
        ("confined/evaluate_true", Vec::new()),
        ("confined/bwrap_true", Vec::new()),
        ("confined_paced/evaluate_true", Vec::new()),
        ("confined_paced/bwrap_true", Vec::new()),
        ("confined/spawn_true", Vec::new()),
    ];
    for _ in 0..INDIVIDUAL / BLOCK {
        series[0].1.extend((0..BLOCK).map(|_| evaluate()));
        if let Some(bwrap) = &bwrap {
            series[1].1.extend((0..BLOCK).map(|_| run_bwrap(bwrap)));
        }
        series[4].1.extend((0..BLOCK).map(|_| spawn()));
    }
    for _ in 0..INDIVIDUAL / 2 {
        std::thread::sleep(PACE);
        series[2].1.push(evaluate());
        if let Some(bwrap) = &bwrap {
            std::thread::sleep(PACE);
            series[3].1.push(run_bwrap(bwrap));
        }
    }
    let mut entries = Vec::new();
    for (id, mut times) in series {
        if times.is_empty() {
            continue;
        }
        times.sort();
        let at = |q: usize| times[(times.len() * q / 100).min(times.len() - 1)];
        println!(
            "{id} one by one: p50 {:?} p90 {:?} over {}",
            at(50),
            at(90),
            times.len()
        );
        let ns: Vec<String> = times.iter().map(|t| t.as_nanos().to_string()).collect();
        entries.push(format!("\"{id}\":[{}]", ns.join(",")));
    }
    let path = Path::new(&home).join("confined_latencies.json");
    if let Err(e) = std::fs::write(&path, format!("{{{}}}\n", entries.join(","))) {
        eprintln!("cannot write {}: {e}", path.display());
    }
}

criterion_group!(benches, latency, throughput, output, confined);
criterion_main!(benches);
