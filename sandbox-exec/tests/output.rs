//! Output capture through real processes: order, counts, truncation, the
//! UTF-8 boundary, and the output limit.

mod common;

use std::time::Duration;

use common::{executor, shell};
use sandbox_exec::{Observer, OutputLimitAction, OutputStream, Status, TruncateMode};

#[tokio::test]
async fn stdout_and_stderr_merge_in_arrival_order_with_counts() {
    let outcome = executor()
        .evaluate(shell(
            "echo one; sleep 0.05; echo two >&2; sleep 0.05; echo three",
        ))
        .await
        .unwrap();
    assert_eq!(outcome.output_text(), "one\ntwo\nthree\n");
    assert_eq!(outcome.streams.stdout_bytes, 10);
    assert_eq!(outcome.streams.stderr_bytes, 4);
    assert_eq!(outcome.truncation, None);
}

#[tokio::test]
async fn long_output_is_truncated_with_the_seed_marker() {
    let outcome = executor()
        .evaluate(shell("head -c 1258291 /dev/zero | tr '\\0' x"))
        .await
        .unwrap();
    let text = outcome.output_text();
    assert!(text.starts_with(&"x".repeat(50_000)));
    assert!(
        text.ends_with("\n...(truncated, showing first 48.8KB of 1.2MB)"),
        "{}",
        &text[49_990..]
    );
    let t = outcome.truncation.unwrap();
    assert_eq!((t.kept_bytes, t.total_bytes), (50_000, 1_258_291));
    assert_eq!(outcome.streams.stdout_bytes, 1_258_291);
    assert_eq!(outcome.status, Status::Exited { code: 0 });
}

#[tokio::test]
async fn truncation_never_splits_a_multibyte_character() {
    // 'é' is two bytes: with a limit of 5 the cut falls inside the third one.
    let outcome = executor()
        .evaluate(shell("printf 'ééééé'").max_output(5))
        .await
        .unwrap();
    let text = std::str::from_utf8(&outcome.output).expect("valid UTF-8");
    assert!(
        text.starts_with("éé\n...(truncated, showing first 5B of 10B)"),
        "{text}"
    );
    assert_eq!(outcome.truncation.unwrap().kept_bytes, 4);
}

#[tokio::test]
async fn head_tail_mode_keeps_the_end_of_the_output() {
    let outcome = executor()
        .evaluate(
            shell("seq 1 100000")
                .max_output(20)
                .truncate_mode(TruncateMode::HeadTail),
        )
        .await
        .unwrap();
    let text = outcome.output_text();
    assert!(text.starts_with("1\n2\n3\n4\n5"), "{text}");
    assert!(text.ends_with("99\n100000\n"), "{text}");
    assert!(text.contains("...(truncated, showing first 10B and last 10B of"));
}

#[tokio::test]
async fn output_limit_kill_stops_a_flood_at_once() {
    let request = shell("yes")
        .max_output(1000)
        .on_output_limit(OutputLimitAction::Kill)
        .timeout(Duration::from_secs(20));
    let outcome = executor().evaluate(request).await.unwrap();
    assert_eq!(outcome.status, Status::OutputLimit);
    assert!(outcome.wall_time < Duration::from_secs(5));
    assert!(outcome
        .output_text()
        .contains("...(truncated, showing first 1000B of"));
}

#[tokio::test]
async fn a_gigabyte_flood_is_counted_but_not_kept() {
    let outcome = executor()
        .evaluate(shell("head -c 1073741824 /dev/zero"))
        .await
        .unwrap();
    assert_eq!(outcome.streams.stdout_bytes, 1 << 30);
    assert!(outcome.output.len() < 50_100);
}

#[derive(Default)]
struct Collect(Vec<u8>);

impl Observer for Collect {
    fn output(&mut self, _: OutputStream, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

#[tokio::test]
async fn the_observer_sees_the_kept_output_as_it_arrives() {
    let mut seen = Collect::default();
    let outcome = executor()
        .evaluate_observed(shell("seq 1 1000").max_output(100), &mut seen)
        .await
        .unwrap();
    assert!(!seen.0.is_empty());
    assert!(outcome.output.starts_with(&seen.0));
    assert!(seen.0.len() <= 100);
}
