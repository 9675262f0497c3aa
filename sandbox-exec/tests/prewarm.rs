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

/// The zygote and the waiting spare's init (cloned by the zygote straight
/// into the evaluation's namespaces, with no runner of its own) among the
/// processes tagged `tag`, when they are all there is: the executor waits
/// between evaluations, a spare ready.
fn zygote_and_spare(tag: &str) -> Option<(u32, u32)> {
    let me = std::process::id();
    let ours = pid_namespace(me);
    let tagged = processes_tagged(tag);
    let forked_child = |pid: u32| forked_environment(pid) && parent_of(pid) == Some(me);
    match tagged[..] {
        [a, b] if forked_child(a) && forked_child(b) => {
            match (pid_namespace(a) == ours, pid_namespace(b) == ours) {
                (true, false) => Some((a, b)),
                (false, true) => Some((b, a)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Polls until the executor of `tag` waits with a spare ready; its zygote
/// and the spare's init.
fn waiting_spare(tag: &str) -> (u32, u32) {
    let mut found = None;
    eventually("a spare is waiting", || {
        found = zygote_and_spare(tag);
        found.is_some()
    });
    found.expect("checked by eventually")
}

/// The pid namespace of process `pid`.
fn pid_namespace(pid: u32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
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
    waiting_spare(&tag);
}

#[tokio::test]
async fn a_long_evaluation_has_its_successor_spare_ready_before_it_ends() {
    let tag = unique_tag("long");
    let executor = tagged_executor(&tag);
    let running = tokio::spawn({
        let executor = executor.clone();
        async move { executor.evaluate(shell("sleep 2")).await }
    });
    // The evaluation's runner and init (the first runner is executed), the
    // zygote, and the spare's init: the spare is not held back until the
    // evaluation ends.
    let start = Instant::now();
    while processes_tagged(&tag).len() < 4 {
        assert!(
            start.elapsed() < Duration::from_millis(1500),
            "no spare while the evaluation runs: {:?}",
            processes_tagged(&tag)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!running.is_finished());
    let outcome = running.await.unwrap().unwrap();
    assert_eq!(outcome.status, Status::Exited { code: 0 });
}

#[tokio::test]
async fn a_killed_spare_is_replaced_by_a_fresh_runner() {
    let tag = unique_tag("killed");
    let executor = tagged_executor(&tag);
    executor.evaluate(shell("true")).await.unwrap();
    waiting_spare(&tag);
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

/// The parent of process `pid`, if it is still there.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The parent is the second field after the parenthesised name.
    let after_name = stat.get(stat.rfind(')')? + 2..)?;
    after_name.split(' ').nth(1)?.parse().ok()
}

/// Whether process `pid` has the zygote's environment: it is the zygote or
/// an init it forked (an executed runner's names its endpoint instead).
fn forked_environment(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|env| String::from_utf8_lossy(&env).contains("SANDBOX_RUNNER_ZYGOTE=1"))
}

/// Records, for each runner, its parent and whether it was forked by the
/// zygote (its environment is the zygote's) rather than executed. The
/// evaluations observed must last (their runner's memory goes when it ends).
#[derive(Default)]
struct RunnerOrigins(Vec<(u32, bool)>);

impl Observer for RunnerOrigins {
    fn runner_started(&mut self, pid: u32) {
        let parent = parent_of(pid).expect("the runner's parent");
        self.0.push((parent, forked_environment(pid)));
    }
}

#[tokio::test]
async fn spares_are_forked_by_the_zygote_as_children_of_the_executor() {
    let executor = tagged_executor(&unique_tag("forked"));
    let mut origins = RunnerOrigins::default();
    for _ in 0..4 {
        let outcome = executor
            .evaluate_observed(shell("sleep 0.2"), &mut origins)
            .await
            .unwrap();
        assert_eq!(outcome.status, Status::Exited { code: 0 });
    }
    // The first evaluation found no spare and executed its runner.
    let me = std::process::id();
    assert_eq!(origins.0[0], (me, false));
    for later in &origins.0[1..] {
        assert_eq!(*later, (me, true), "all runners: {:?}", origins.0);
    }
}

#[tokio::test]
async fn a_killed_zygote_leaves_evaluations_to_executed_runners() {
    let tag = unique_tag("zygote");
    let executor = tagged_executor(&tag);
    executor.evaluate(shell("true")).await.unwrap();
    let (zygote, _) = waiting_spare(&tag);
    let me = std::process::id();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(zygote as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let mut origins = RunnerOrigins::default();
    for _ in 0..3 {
        let outcome = executor
            .evaluate_observed(shell("sleep 0.2; echo still fine"), &mut origins)
            .await
            .unwrap();
        assert_eq!(outcome.output_text(), "still fine\n");
    }
    // The spare forked before the kill is used; after it, runners are executed.
    assert_eq!(
        origins.0.last(),
        Some(&(me, false)),
        "all runners: {:?}",
        origins.0
    );
}

#[tokio::test]
async fn dropping_the_executor_kills_its_spares() {
    let tag = unique_tag("dropped");
    let executor = tagged_executor(&tag);
    executor.evaluate(shell("true")).await.unwrap();
    waiting_spare(&tag);
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
    waiting_spare(&tag);
    let outcome = executor.evaluate_blocking(shell("echo second")).unwrap();
    assert_eq!(outcome.output_text(), "second\n");
}

/// A runner program whose zygote comes up `delay` late: a script that
/// sleeps first when it is to be the zygote, then becomes the runner.
fn slow_zygote_runner(delay: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(unique_tag("slow-zygote"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = dir.join("runner");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ -n \"$SANDBOX_RUNNER_ZYGOTE\" ] && sleep {delay}\nexec '{}' \"$@\"\n",
            runner_bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[tokio::test]
async fn an_evaluation_waits_for_the_spare_being_started_rather_than_starting_its_own() {
    let tag = unique_tag("awaited");
    let program = slow_zygote_runner("0.2");
    let executor = Executor::with_runner(RunnerProgram::Path {
        program: program.clone(),
        args: vec![tag.clone().into()],
    })
    .expect("executor");
    // The first evaluation's spare is started as it ends, by a zygote that
    // takes 0.2 s to come up: the second evaluation finds it being started.
    executor.evaluate(shell("true")).await.unwrap();
    let mut pids = RunnerPids::default();
    let outcome = executor
        .evaluate_observed(shell("true"), &mut pids)
        .await
        .unwrap();
    assert_eq!(outcome.status, Status::Exited { code: 0 });
    let second = pids.0[0];
    // Had the second evaluation started an init of its own (the zygote
    // clones in order), the spare being started, cloned before it, would be
    // the one left waiting now.
    // (The second evaluation's init may linger a moment after its outcome.)
    let mut spare = None;
    eventually("a spare is waiting", || {
        spare = zygote_and_spare(&tag)
            .map(|(_, spare)| spare)
            .filter(|&spare| spare != second);
        spare.is_some()
    });
    let spare = spare.expect("checked by eventually");
    assert!(
        spare > second,
        "the waiting spare {spare} was cloned before the second evaluation's init {second}"
    );
    drop(executor);
    let _ = std::fs::remove_dir_all(program.parent().unwrap());
}
