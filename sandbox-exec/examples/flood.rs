//! Output flood check: a child writes 1 GiB to stdout under the default 50 KB
//! output limit, three times, and this program reports each run's wall time and
//! how much the host's peak resident set (`VmHWM`) grew meanwhile.
//!
//! Bounded capture means the executor's memory must not follow the child's
//! output: the check fails (exit code 1) when the peak grew by more than 16 MiB
//! or a run took 1.5 s or more.
//!
//! ```text
//! cargo run --release -p sandbox-exec --example flood
//! ```
//!
//! Timings are only meaningful in release mode.

use std::time::{Duration, Instant};

use sandbox_exec::{Command, EvalRequest, Executor};

const FLOOD_BYTES: u64 = 1 << 30;
const LIMIT: usize = 50_000;
const RUNS: usize = 3;
const MAX_GROWTH_KIB: u64 = 16 * 1024;
const MAX_WALL: Duration = Duration::from_millis(1500);

/// The process's peak resident set so far, in KiB.
fn peak_rss_kib() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmHWM line in /proc/self/status".to_string())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In a runner child this never returns; everywhere else it returns at once.
    sandbox_exec::dispatch();

    let before = peak_rss_kib()?;
    let executor = Executor::new()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut walls = Vec::with_capacity(RUNS);
    let mut failed = false;
    for _ in 0..RUNS {
        let request = EvalRequest::new(Command::argv([
            "head",
            "-c",
            &FLOOD_BYTES.to_string(),
            "/dev/zero",
        ]))
        .max_output(LIMIT)
        .timeout(Duration::from_secs(60));
        let start = Instant::now();
        let outcome = runtime.block_on(executor.evaluate(request))?;
        let wall = start.elapsed();
        walls.push(wall);
        if !outcome.status.success() || outcome.streams.total() != FLOOD_BYTES {
            eprintln!(
                "flood: unexpected outcome: status {:?}, {} bytes written",
                outcome.status,
                outcome.streams.total()
            );
            failed = true;
        }
        if outcome.output.len() > LIMIT + 200 {
            eprintln!("flood: kept {} bytes of output", outcome.output.len());
            failed = true;
        }
    }
    let grew = peak_rss_kib()?.saturating_sub(before);
    println!("flood: 1 GiB under 50 KB limit: wall {walls:?} each, host peak RSS grew {grew} KiB");
    if grew > MAX_GROWTH_KIB {
        eprintln!("flood: peak RSS grew by more than {MAX_GROWTH_KIB} KiB");
        failed = true;
    }
    if let Some(slow) = walls.iter().find(|w| **w >= MAX_WALL) {
        eprintln!("flood: a run took {slow:?} (limit {MAX_WALL:?})");
        failed = true;
    }
    std::process::exit(if failed { 1 } else { 0 })
}
