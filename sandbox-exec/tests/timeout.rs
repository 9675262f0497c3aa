//! The wall-clock timeout kills the whole process tree and keeps partial output.

mod common;

use std::time::Duration;

use common::{executor, processes_tagged, shell, unique_tag};
use sandbox_exec::{Observer, OutputStream, Status};

/// Checks, as soon as the evaluation prints `ready`, that the tagged
/// processes exist — so a test that finds none afterwards cannot pass by
/// never having started them.
struct SeeTagged {
    tag: String,
    seen: Vec<u32>,
}

impl Observer for SeeTagged {
    fn output(&mut self, _: OutputStream, bytes: &[u8]) {
        if self.seen.is_empty() && String::from_utf8_lossy(bytes).contains("ready") {
            for _ in 0..100 {
                self.seen = processes_tagged(&self.tag);
                if !self.seen.is_empty() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Runs `spawn_escapee` (which must start a process whose command line holds
/// its last word, the tag) and then hangs until the timeout.
async fn timeout_leaves_nothing_behind(spawn_escapee: impl Fn(&str) -> String) {
    let tag = unique_tag("escapee");
    let line = format!("{}\nsleep 0.2; echo ready; sleep 300", spawn_escapee(&tag));
    let request = shell(&line).timeout(Duration::from_millis(1500));
    let mut observer = SeeTagged {
        tag: tag.clone(),
        seen: Vec::new(),
    };
    let outcome = executor()
        .evaluate_observed(request, &mut observer)
        .await
        .unwrap();
    assert_eq!(outcome.status, Status::TimedOut);
    assert!(!observer.seen.is_empty(), "the escapee never started");
    // SIGKILL of a pid namespace's init is synchronous for the namespace, but
    // give the kernel a moment to finish tearing processes down.
    let mut survivors = processes_tagged(&tag);
    for _ in 0..50 {
        if survivors.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        survivors = processes_tagged(&tag);
    }
    assert!(
        survivors.is_empty(),
        "survivors after timeout: {survivors:?}"
    );
}

#[tokio::test]
async fn timeout_kills_a_double_forked_grandchild() {
    // The subshell forks the sleeper and exits at once: the sleeper is orphaned.
    timeout_leaves_nothing_behind(|tag| format!("(sh -c 'sleep 300' {tag} &)")).await;
}

#[tokio::test]
async fn timeout_kills_a_grandchild_that_left_the_session() {
    timeout_leaves_nothing_behind(|tag| format!("setsid sh -c 'sleep 300' {tag} &")).await;
}

#[tokio::test]
async fn timeout_kills_a_setsid_double_forked_grandchild() {
    timeout_leaves_nothing_behind(|tag| format!("(setsid sh -c 'sleep 300' {tag} &)")).await;
}

#[tokio::test]
async fn partial_output_before_the_timeout_is_returned() {
    let request = shell("echo first; sleep 0.05; echo second >&2; sleep 30")
        .timeout(Duration::from_millis(800));
    let outcome = executor().evaluate(request).await.unwrap();
    assert_eq!(outcome.status, Status::TimedOut);
    assert_eq!(outcome.output_text(), "first\nsecond\n");
    assert_eq!(outcome.exit_code(), 124);
}

#[tokio::test]
async fn the_timeout_has_millisecond_resolution() {
    let request = shell("sleep 30").timeout(Duration::from_millis(300));
    let outcome = executor().evaluate(request).await.unwrap();
    assert_eq!(outcome.status, Status::TimedOut);
    assert!(outcome.wall_time >= Duration::from_millis(300));
    assert!(
        outcome.wall_time < Duration::from_millis(1300),
        "{:?}",
        outcome.wall_time
    );
}

#[tokio::test]
async fn background_processes_die_when_the_command_ends() {
    let tag = unique_tag("background");
    let line = format!("sh -c 'sleep 300' {tag} & sleep 0.2; echo done");
    let outcome = executor().evaluate(shell(&line)).await.unwrap();
    assert_eq!(outcome.status, Status::Exited { code: 0 });
    std::thread::sleep(Duration::from_millis(100));
    assert!(processes_tagged(&tag).is_empty());
}
