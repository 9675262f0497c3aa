//! `sandbox violations`: the persistent log of what sandboxes were denied,
//! which every `sandbox run` (and `sandbox exec`) appends to.

use std::io::Write;

use sandbox_core::{EvalId, Outcome, Violation, ViolationFile, ViolationKind};

use crate::args::{ViolationType, ViolationsArgs};
use crate::manage::render::utc;
use crate::run::EXIT_SANDBOX_FAILED;

/// The user's log, or why there is none.
fn log() -> Result<ViolationFile, String> {
    ViolationFile::default_path()
        .map(ViolationFile::new)
        .ok_or_else(|| {
            "no state directory for the violation log: set XDG_STATE_HOME or HOME".to_string()
        })
}

/// A fresh evaluation id from the user's log (see
/// [`ViolationFile::next_eval_id`]).
pub fn next_eval_id() -> Result<EvalId, String> {
    log()?.next_eval_id().map_err(|e| e.to_string())
}

/// Appends the violations of `outcome` to the user's log; a failure is a
/// warning, never the run's failure.
pub fn record(outcome: &Outcome, err: &mut impl Write) {
    if outcome.violations.is_empty() {
        return;
    }
    let written = log().and_then(|log| log.append(&outcome.violations).map_err(|e| e.to_string()));
    if let Err(reason) = written {
        let _ = writeln!(
            err,
            "sandbox: warning: the violations were not saved: {reason}"
        );
    }
}

/// One line for a violation: `network denied.test:80 (no matching rule)`.
pub fn describe(v: &Violation) -> String {
    format!("{} {} ({})", kind_name(v.kind), v.target, v.rule)
}

fn kind_name(kind: ViolationKind) -> &'static str {
    match kind {
        ViolationKind::Network => "network",
        ViolationKind::Filesystem => "filesystem",
        ViolationKind::Syscall => "syscall",
    }
}

/// Runs `sandbox violations`.
pub fn violations(args: ViolationsArgs) -> i32 {
    let log = match log() {
        Ok(log) => log,
        Err(reason) => {
            eprintln!("sandbox: {reason}");
            return EXIT_SANDBOX_FAILED;
        }
    };
    if args.clear {
        return match log.clear() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("sandbox: cannot clear: {e}");
                EXIT_SANDBOX_FAILED
            }
        };
    }
    let read = match log.read() {
        Ok(read) => read,
        Err(e) => {
            eprintln!("sandbox: cannot read: {e}");
            return EXIT_SANDBOX_FAILED;
        }
    };
    for line in &read.skipped_lines {
        eprintln!(
            "sandbox: warning: {}: line {line} is not a violation; skipped",
            log.path().display()
        );
    }
    let wanted = args.r#type.map(|t| match t {
        ViolationType::Network => ViolationKind::Network,
        ViolationType::Filesystem => ViolationKind::Filesystem,
        ViolationType::Syscall => ViolationKind::Syscall,
    });
    let shown = read
        .violations
        .iter()
        .filter(|v| wanted.is_none_or(|k| v.kind == k));
    let mut out = std::io::stdout().lock();
    for v in shown {
        let line = if args.json { json(v) } else { human(v) };
        if writeln!(out, "{line}").is_err() {
            break; // a reader that went away
        }
    }
    0
}

fn human(v: &Violation) -> String {
    let eval = v.eval.map(|e| format!(" eval {}", e.0)).unwrap_or_default();
    let sandbox = v
        .sandbox
        .as_ref()
        .map(|s| format!(" in {s}"))
        .unwrap_or_default();
    format!(
        "{} {}{eval}{sandbox}: {}",
        utc(v.time),
        describe(v),
        v.command
    )
}

/// One JSON object per line, the time in RFC 3339 like the human form.
fn json(v: &Violation) -> String {
    serde_json::json!({
        "time": utc(v.time),
        "kind": kind_name(v.kind),
        "target": v.target,
        "rule": v.rule,
        "eval": v.eval.map(|e| e.0),
        "sandbox": v.sandbox,
        "command": v.command,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandbox_core::EvalId;
    use std::time::{Duration, UNIX_EPOCH};

    fn violation() -> Violation {
        Violation {
            time: UNIX_EPOCH + Duration::from_secs(1_795_374_000),
            eval: Some(EvalId(7)),
            sandbox: None,
            kind: ViolationKind::Network,
            target: "evil.test:443".into(),
            rule: "no matching rule".into(),
            command: "curl https://evil.test".into(),
        }
    }

    #[test]
    fn a_violation_reads_as_one_line() {
        assert_eq!(
            human(&violation()),
            "2026-11-22T19:00:00.000Z network evil.test:443 (no matching rule) eval 7: curl https://evil.test"
        );
    }

    #[test]
    fn the_json_form_is_one_flat_object() {
        let value: serde_json::Value = serde_json::from_str(&json(&violation())).unwrap();
        assert_eq!(value["kind"], "network");
        assert_eq!(value["eval"], 7);
        assert_eq!(value["time"], "2026-11-22T19:00:00.000Z");
    }
}
