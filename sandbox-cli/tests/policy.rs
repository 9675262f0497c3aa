//! `sandbox policy show|check` and the policy flags of `sandbox run`: each test
//! runs the real binary with a temporary HOME and working directory, so that no
//! settings file of the machine leaks in; temporary paths are redacted as `[TMP]`
//! in the golden snapshots.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::sandbox_bin;

/// A temporary HOME and project directory, with settings files in them.
struct Sandbox {
    dir: tempfile::TempDir,
}

const USER_SETTINGS: &str = r#"{
  "permissions": { "deny": ["Read(~/.aws)"] }
}"#;

const PROJECT_SETTINGS: &str = r#"{
  "permissions": {
    "allow": ["Edit(./src)", "WebFetch(domain:*.github.com)"],
    "deny": ["WebFetch(domain:gist.github.com)"]
  },
  "filesystem": { "denyWrite": ["./src/generated"] }
}"#;

const EXTRA_SETTINGS: &str = r#"{
  "network": {
    "allowUnixSockets": ["./docker.sock"],
    "allowLocalBinding": true,
    "resolve": { "db.test": "10.0.0.5" }
  },
  "filesystem": { "denyRead": ["./secrets/**"] },
  "netwrk": {}
}"#;

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::create_dir_all(dir.path().join("project/src")).unwrap();
        Sandbox { dir }
    }

    /// With user and project settings files and `extra.json` in the project.
    fn with_settings() -> Sandbox {
        let sb = Sandbox::new();
        sb.write("home/.sandbox/settings.json", USER_SETTINGS);
        sb.write("project/.sandbox/settings.json", PROJECT_SETTINGS);
        sb.write("project/extra.json", EXTRA_SETTINGS);
        sb
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn project(&self) -> PathBuf {
        self.dir.path().join("project")
    }

    fn sandbox(&self, args: &[&str]) -> Output {
        Command::new(sandbox_bin())
            .args(args)
            .env("HOME", self.dir.path().join("home"))
            .current_dir(self.project())
            .stdin(Stdio::null())
            .output()
            .expect("run sandbox")
    }

    /// Text with the temporary directory (as given and canonical) as `[TMP]`.
    fn redact(&self, bytes: &[u8]) -> String {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let raw = self.dir.path();
        let canonical = raw.canonicalize().unwrap();
        let mut out = text;
        for path in [canonical.as_path(), raw] {
            out = out.replace(path.to_str().unwrap(), "[TMP]");
        }
        out
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited")
}

fn snapshot_text(sb: &Sandbox, out: &Output) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        code(out),
        sb.redact(&out.stdout),
        sb.redact(&out.stderr)
    )
}

#[test]
fn show_prints_every_rule_with_its_layer() {
    let sb = Sandbox::with_settings();
    let out = sb.sandbox(&[
        "policy",
        "show",
        "--settings",
        "extra.json",
        "--deny",
        "Read(~/.ssh)",
        "--allow",
        "WebFetch(tcp:localhost:5432)",
    ]);
    assert_eq!(code(&out), 0, "{out:?}");
    // Columns are as wide as the longest value, which depends on the length of
    // the temporary directory's path: compare the text with runs of spaces
    // squeezed (the unit tests of policy_cmd check the alignment).
    insta::assert_snapshot!(squeeze_spaces(&snapshot_text(&sb, &out)));
}

fn squeeze_spaces(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        out.push_str(&line[..indent]);
        let mut spaces = 0;
        for c in line[indent..].chars() {
            if c == ' ' {
                spaces += 1;
                continue;
            }
            if spaces > 0 {
                out.push_str(if spaces > 1 { "  " } else { " " });
                spaces = 0;
            }
            out.push(c);
        }
        out.push('\n');
    }
    out
}

#[test]
fn show_json_is_one_documented_object() {
    let sb = Sandbox::with_settings();
    let out = sb.sandbox(&[
        "policy",
        "show",
        "--json",
        "--settings",
        "extra.json",
        "--deny",
        "Read(~/.ssh)",
    ]);
    assert_eq!(code(&out), 0, "{out:?}");
    let text = sb.redact(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    insta::assert_json_snapshot!(value);
}

#[test]
fn show_without_any_input_is_the_mandatory_policy() {
    let sb = Sandbox::new();
    let out = sb.sandbox(&["policy", "show"]);
    assert_eq!(code(&out), 0, "{out:?}");
    let text = sb.redact(&out.stdout);
    assert!(text.starts_with("layers: mandatory\n"), "{text}");
    assert!(text.contains("/home/.bashrc "), "{text}");
}

#[test]
fn show_with_a_bad_flag_fails_like_run() {
    let sb = Sandbox::new();
    let out = sb.sandbox(&["policy", "show", "--allow", "Edit("]);
    assert_eq!(code(&out), 125, "{out:?}");
    let stderr = sb.redact(&out.stderr);
    assert!(
        stderr.starts_with("sandbox: error: --allow: invalid permission \"Edit(\""),
        "{stderr}"
    );
}

#[test]
fn check_reports_errors_of_every_input() {
    let sb = Sandbox::new();
    sb.write(
        "project/.sandbox/settings.json",
        r#"{"network": {"allowedDomains": ["github.com", "exa mple.com"]}, "permisions": {}}"#,
    );
    sb.write(
        "project/broken.json",
        "{\n  \"filesystem\": {\"denyRead\": [1]}\n}",
    );
    let out = sb.sandbox(&[
        "policy",
        "check",
        "--settings",
        "broken.json",
        "--allow",
        "WebFetch(github.com)",
        "--deny",
        "Read(~/.ssh)",
    ]);
    assert_eq!(code(&out), 1, "{out:?}");
    insta::assert_snapshot!(snapshot_text(&sb, &out));
}

#[test]
fn check_json_lists_errors_with_file_and_field() {
    let sb = Sandbox::new();
    sb.write(
        "project/.sandbox/settings.json",
        r#"{"network": {"allowedDomains": ["exa mple.com"]}}"#,
    );
    let out = sb.sandbox(&["policy", "check", "--json"]);
    assert_eq!(code(&out), 1, "{out:?}");
    let value: serde_json::Value = serde_json::from_str(&sb.redact(&out.stdout)).unwrap();
    insta::assert_json_snapshot!(value);
}

#[test]
fn check_passes_with_only_warnings() {
    let sb = Sandbox::with_settings();
    let out = sb.sandbox(&["policy", "check", "--settings", "extra.json"]);
    assert_eq!(code(&out), 0, "{out:?}");
    let text = sb.redact(&out.stdout);
    assert!(
        text.contains("warning: settings file [TMP]/project/extra.json: unknown field \"netwrk\""),
        "{text}"
    );
    assert!(text.ends_with("valid: 0 errors, 1 warning\n"), "{text}");
}

#[test]
fn check_without_any_input_is_valid() {
    let sb = Sandbox::new();
    let out = sb.sandbox(&["policy", "check"]);
    assert_eq!(code(&out), 0, "{out:?}");
}

#[test]
fn run_with_a_bad_allow_fails_before_running_and_quotes_it() {
    let sb = Sandbox::new();
    let marker = sb.project().join("ran");
    let command = format!("touch {}", marker.display());
    let out = sb.sandbox(&["run", "--allow", "Raed(~/.ssh)", &command]);
    assert_eq!(code(&out), 125, "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("sandbox: error: --allow: "), "{stderr}");
    assert!(stderr.contains("\"Raed(~/.ssh)\""), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(!Path::new(&marker).exists(), "the command ran");
}

#[test]
fn run_with_malformed_settings_names_the_file_and_place() {
    let sb = Sandbox::new();
    sb.write("project/bad.json", "{\n  \"network\": {,}\n}");
    let out = sb.sandbox(&["run", "--settings", "bad.json", "true"]);
    assert_eq!(code(&out), 125, "{out:?}");
    let stderr = sb.redact(&out.stderr);
    assert_eq!(
        stderr,
        "sandbox: error: settings file [TMP]/project/bad.json: line 2, column 15: key must be a string\n"
    );
}

#[test]
fn run_with_a_missing_settings_file_names_it() {
    let sb = Sandbox::new();
    let out = sb.sandbox(&["run", "--settings", "nope.json", "true"]);
    assert_eq!(code(&out), 125, "{out:?}");
    let stderr = sb.redact(&out.stderr);
    assert!(
        stderr.starts_with("sandbox: error: settings file [TMP]/project/nope.json: cannot read"),
        "{stderr}"
    );
}

#[test]
fn run_prints_settings_warnings_and_still_runs() {
    let sb = Sandbox::new();
    sb.write("project/.sandbox/settings.json", r#"{"zzz": 1}"#);
    let out = sb.sandbox(&["run", "echo ran"]);
    let stderr = sb.redact(&out.stderr);
    assert!(
        stderr.contains(
            "sandbox: warning: settings file [TMP]/project/.sandbox/settings.json: unknown field \"zzz\"\n"
        ),
        "{out:?}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n", "{out:?}");
    assert_eq!(code(&out), 0, "{out:?}");
}
