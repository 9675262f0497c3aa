//! Spare runners started ahead of time: each still runs exactly one
//! evaluation, and none outlives its executor.

mod common;

use std::time::{Duration, Instant};

use common::{processes_tagged, runner_bin, shell, unique_tag};
use sandbox_exec::{Executor, Observer, RunnerProgram, Status};

/// An executor whose runners (and their inits) carry `tag` in their command line.
fn tagged_executor(tag: &str) -> Executor {
    Executor::with_runner(RunnerProgram::Path {
        program: runner_bin(),
        args: vec![tag.into()],
    })
    .expect("executor")
}

/// Polls until `done` holds, for at most ten seconds.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[derive(Default)]
struct RunnerPids(Vec<u32>);

impl Observer for RunnerPids {
    fn runner_started(&mut self, pid: u32) {
        self.0.push(pid);
    }
}

#[tokio::test]
async fn every_evaluation_gets_a_runner_of_its_own_even_with_spares() {
    let executor = tagged_executor(&unique_tag("own"));
    executor.set_prewarm(2);
    let mut pids = RunnerPids::default();
    for _ in 0..6 {
        let outcome = executor
            .evaluate_observed(shell("true"), &mut pids)
            .await
            .unwrap();
        assert_eq!(outcome.status, Status::Exited { code: 0 });
    }
    let mut distinct = pids.0.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 6, "runner pids: {:?}", pids.0);
}

#[tokio::test]
async fn a_spare_is_started_while_an_evaluation_runs() {
    let tag = unique_tag("spare");
    let executor = tagged_executor(&tag);
    executor.evaluate(shell("true")).await.unwrap();
    // A spare is a runner waiting for a job plus the init it prepared.
    eventually("a spare runner and its init are waiting", || {
        processes_tagged(&tag).len() == 2
    });
}

#[tokio::test]
async fn a_killed_spare_is_replaced_by_a_fresh_runner() {
    let tag = unique_tag("killed");
    let executor = tagged_executor(&tag);
    executor.evaluate(shell("true")).await.unwrap();
    eventually("a spare is waiting", || processes_tagged(&tag).len() == 2);
    for pid in processes_tagged(&tag) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let outcome = executor.evaluate(shell("echo still fine")).await.unwrap();
    assert_eq!(outcome.status, Status::Exited { code: 0 });
    assert_eq!(outcome.output_text(), "still fine\n");
}

#[tokio::test]
async fn dropping_the_executor_kills_its_spares() {
    let tag = unique_tag("dropped");
    let executor = tagged_executor(&tag);
    executor.evaluate(shell("true")).await.unwrap();
    eventually("a spare is waiting", || processes_tagged(&tag).len() == 2);
    drop(executor);
    eventually("no spare survives its executor", || {
        processes_tagged(&tag).is_empty()
    });
}

#[tokio::test]
async fn prewarm_zero_leaves_no_process_behind() {
    let tag = unique_tag("cold");
    let executor = tagged_executor(&tag);
    executor.set_prewarm(0);
    executor.evaluate(shell("true")).await.unwrap();
    // Give a (wrongly) started spare the time to show up.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(processes_tagged(&tag), Vec::<u32>::new());
}

#[test]
fn a_spare_serves_a_blocking_call_on_a_later_runtime() {
    let tag = unique_tag("blocking");
    let executor = tagged_executor(&tag);
    // Each blocking call runs on a runtime of its own; the spare started
    // during the first must work under the second.
    executor.evaluate_blocking(shell("true")).unwrap();
    eventually("a spare is waiting", || processes_tagged(&tag).len() == 2);
    let outcome = executor.evaluate_blocking(shell("echo second")).unwrap();
    assert_eq!(outcome.output_text(), "second\n");
}
