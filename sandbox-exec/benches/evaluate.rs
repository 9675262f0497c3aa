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
//!
//! Run with `cargo bench -p sandbox-exec --bench evaluate` (or `cargo xtask bench`
//! for the summary); add a filter such as `-- latency` to run one group. The
//! runner is the bundled `sandbox-runner` binary that cargo builds for the bench;
//! set `SANDBOX_RUNNER_BIN` to benchmark another one.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use sandbox_exec::{Command, EvalRequest, Executor, RunnerProgram};
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

criterion_group!(benches, latency, throughput, output);
criterion_main!(benches);
