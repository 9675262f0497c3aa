//! `sandbox run` with network rules end to end, and `sandbox violations`:
//! a real server on the host's 127.0.0.1, named through `--resolve`.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{sandbox_bin, text};

/// Answers every connection with `hello`; returns its port.
fn server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            );
        }
    });
    port
}

/// `sandbox ARGS…` with its violation log in `state`.
fn sandbox(state: &Path, args: &[&str]) -> Output {
    Command::new(sandbox_bin())
        .args(args)
        .env("XDG_STATE_HOME", state)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn an_allowed_name_is_fetched_and_a_denied_one_is_logged() {
    let state = tempfile::tempdir().unwrap();
    let port = server();
    let line = format!(
        "curl -sS --max-time 10 http://allowed.test:{port}/; echo; \
         curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 http://denied.test:{port}/"
    );
    let out = sandbox(
        state.path(),
        &[
            "run",
            "--allow",
            "WebFetch(domain:allowed.test)",
            "--resolve",
            "allowed.test:127.0.0.1",
            "--resolve",
            "denied.test:127.0.0.1",
            &line,
        ],
    );
    assert_eq!(text(&out.stdout), "hello\n403", "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!(
            "sandbox: denied: network denied.test:{port} (no matching rule)"
        )),
        "{}",
        text(&out.stderr)
    );

    let listed = sandbox(state.path(), &["violations", "--json", "--type", "network"]);
    assert_eq!(listed.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = text(&listed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["target"], format!("denied.test:{port}"));
    assert_eq!(lines[0]["rule"], "no matching rule");

    let syscalls = sandbox(state.path(), &["violations", "--type", "syscall"]);
    assert_eq!(text(&syscalls.stdout), "");

    assert_eq!(
        sandbox(state.path(), &["violations", "--clear"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(text(&sandbox(state.path(), &["violations"]).stdout), "");
}

#[test]
fn run_json_lists_the_violations_of_the_evaluation() {
    let state = tempfile::tempdir().unwrap();
    let port = server();
    let line = format!("curl -s -o /dev/null --max-time 10 http://denied.test:{port}/");
    let out = sandbox(
        state.path(),
        &[
            "run",
            "--json",
            "--allow",
            "WebFetch(domain:allowed.test)",
            "--resolve",
            "denied.test:127.0.0.1",
            &line,
        ],
    );
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let violations = outcome["violations"].as_array().unwrap();
    assert_eq!(violations.len(), 1, "{outcome}");
    assert_eq!(violations[0]["kind"], "network");
    assert_eq!(violations[0]["target"], format!("denied.test:{port}"));
}

#[test]
fn a_malformed_resolve_flag_is_an_error_naming_it() {
    let state = tempfile::tempdir().unwrap();
    let out = sandbox(
        state.path(),
        &["run", "--resolve", "api.test:not-an-ip", "true"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("--resolve")
            && err.contains("\"not-an-ip\" in \"api.test:not-an-ip\" is not an IP address"),
        "{err}"
    );
}
