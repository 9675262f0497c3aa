//! Network: a confined evaluation reaches the network only through the
//! executor's proxies, by the names and ports its policy allows; every
//! denial is recorded in the outcome and the executor's log.
//!
//! The servers are real, on the host's 127.0.0.1, started by the tests; the
//! names the sandbox uses are mapped to them with the policy's `resolve`
//! map, so no test needs DNS.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use common::executor;
use sandbox_core::{Outcome, Status, ViolationKind};
use sandbox_exec::{Command, EvalRequest};
use sandbox_policy::{Context, HostFs, Layer, Policy};

const PYTHON: &str = "/usr/bin/python3";
const BIG: usize = 64 << 20;

/// A tiny HTTP/1.0 server on 127.0.0.1: `/` answers `hello`, `/big` streams
/// [`BIG`] bytes, `/slow` sends one byte a second for a minute.
fn server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    addr
}

fn answer(mut stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
    }
    let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
    let _ = match path.as_str() {
        "/big" => {
            let _ = write!(stream, "HTTP/1.0 200 OK\r\nContent-Length: {BIG}\r\n\r\n");
            let chunk = vec![b'x'; 1 << 16];
            (0..BIG / chunk.len()).try_for_each(|_| stream.write_all(&chunk))
        }
        "/slow" => {
            let _ = write!(stream, "HTTP/1.0 200 OK\r\n\r\n");
            (0..60).try_for_each(|_| {
                std::thread::sleep(Duration::from_secs(1));
                stream.write_all(b".")
            })
        }
        _ => write!(
            stream,
            "HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        ),
    };
}

/// A policy allowing `allow` (permission strings) with `names` resolved to
/// 127.0.0.1.
fn policy(allow: &[&str], names: &[&str]) -> Policy {
    let ctx = Context {
        home: std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/".into()),
        cwd: std::env::current_dir().unwrap(),
    };
    let resolve: Vec<String> = names
        .iter()
        .map(|n| format!("\"{n}\": \"127.0.0.1\""))
        .collect();
    let mut builder = Policy::builder(ctx).settings_json(
        Layer::Flag,
        "/",
        format!(
            r#"{{"network": {{"resolve": {{{}}}}}}}"#,
            resolve.join(", ")
        ),
    );
    for a in allow {
        builder = builder.allow(*a);
    }
    builder.build(&HostFs).expect("policy").0
}

async fn run(policy: Policy, line: &str) -> Outcome {
    let outcome = executor()
        .evaluate(
            EvalRequest::new(Command::shell(line))
                .policy(policy)
                .timeout(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    assert!(
        !matches!(outcome.status, Status::NoConnection { .. }),
        "{:?}",
        outcome.status
    );
    outcome
}

fn stdout(outcome: &Outcome) -> String {
    outcome.output_text().into_owned()
}

#[tokio::test]
async fn an_allowed_domain_is_reached_with_curl_through_the_http_proxy() {
    let port = server().port();
    let outcome = run(
        policy(&["WebFetch(domain:allowed.test)"], &["allowed.test"]),
        &format!("curl -sS --max-time 10 http://allowed.test:{port}/"),
    )
    .await;
    assert_eq!(stdout(&outcome), "hello", "{:?}", outcome.status);
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
}

#[tokio::test]
async fn an_allowed_domain_is_reached_with_curl_through_the_socks5_proxy() {
    let port = server().port();
    // ALL_PROXY names the SOCKS5 proxy (socks5h: the proxy resolves).
    let outcome = run(
        policy(&["WebFetch(domain:allowed.test)"], &["allowed.test"]),
        &format!("curl -sS --max-time 10 --proxy \"$ALL_PROXY\" http://allowed.test:{port}/"),
    )
    .await;
    assert_eq!(stdout(&outcome), "hello", "{:?}", outcome.status);
}

#[tokio::test]
async fn an_allowed_domain_is_reached_with_python_urllib() {
    let port = server().port();
    let outcome = run(
        policy(&["WebFetch(domain:allowed.test)"], &["allowed.test"]),
        &format!(
            "{PYTHON} -c 'import urllib.request; print(urllib.request.urlopen(\"http://allowed.test:{port}/\", timeout=10).read().decode(), end=\"\")'"
        ),
    )
    .await;
    assert_eq!(stdout(&outcome), "hello", "{:?}", outcome.status);
}

#[tokio::test]
async fn a_denied_domain_gets_403_and_is_recorded() {
    let port = server().port();
    let executor = executor();
    let outcome = executor
        .evaluate(
            EvalRequest::new(Command::shell(format!(
                "curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 http://denied.test:{port}/"
            )))
            .policy(policy(
                &["WebFetch(domain:allowed.test)"],
                &["allowed.test", "denied.test"],
            ))
            .timeout(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    assert_eq!(stdout(&outcome), "403");
    let [violation] = outcome.violations.as_slice() else {
        panic!("expected one violation: {:?}", outcome.violations);
    };
    assert_eq!(violation.kind, ViolationKind::Network);
    assert_eq!(violation.target, format!("denied.test:{port}"));
    assert_eq!(violation.rule, "no matching rule");
    assert_eq!(violation.eval, Some(outcome.id));
    // The executor's log has it too.
    assert_eq!(executor.violations().of_evaluation(outcome.id).len(), 1);
}

#[tokio::test]
async fn a_lookalike_name_is_denied_over_socks5() {
    let port = server().port();
    let outcome = run(
        policy(
            &["WebFetch(domain:allowed.test)"],
            &["allowed.test", "allowed.test.evil.test", "evilallowed.test"],
        ),
        &format!(
            "for h in allowed.test.evil.test evilallowed.test; do
                curl -s -o /dev/null --max-time 10 --proxy \"$ALL_PROXY\" http://$h:{port}/; echo \" $h $?\"
             done"
        ),
    )
    .await;
    // curl exit 97: the SOCKS5 proxy refused the connection.
    assert_eq!(
        stdout(&outcome),
        " allowed.test.evil.test 97\n evilallowed.test 97\n"
    );
    assert_eq!(outcome.violations.len(), 2, "{:?}", outcome.violations);
}

#[tokio::test]
async fn a_direct_connection_without_the_proxy_fails() {
    let port = server().port();
    let outcome = run(
        policy(&["WebFetch(domain:allowed.test)"], &["allowed.test"]),
        &format!(
            "{PYTHON} -c '
import socket, errno
for addr in [(\"127.0.0.1\", {port}), (\"1.1.1.1\", 80)]:
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect(addr)
        print(\"connected\", addr)
    except OSError as e:
        print(errno.errorcode.get(e.errno, e))
'"
        ),
    )
    .await;
    // The host's loopback is another namespace's; there is no route out.
    assert_eq!(stdout(&outcome), "ECONNREFUSED\nENETUNREACH\n");
}

#[tokio::test]
async fn a_long_response_is_streamed_through() {
    let port = server().port();
    let outcome = run(
        policy(&["WebFetch(domain:allowed.test)"], &["allowed.test"]),
        &format!(
            "curl -sS -o /dev/null -w '%{{size_download}}' --max-time 20 http://allowed.test:{port}/big"
        ),
    )
    .await;
    assert_eq!(stdout(&outcome), BIG.to_string());
}

#[tokio::test]
async fn a_slow_download_does_not_stall_another() {
    let port = server().port();
    let outcome = run(
        policy(&["WebFetch(domain:allowed.test)"], &["allowed.test"]),
        &format!(
            "curl -s -o /dev/null --max-time 20 http://allowed.test:{port}/slow &
             slow=$!
             sleep 0.5
             start=$(date +%s%N)
             curl -sS --max-time 10 http://allowed.test:{port}/
             echo \" $(( ($(date +%s%N) - start) / 1000000 < 2000 ))\"
             kill -0 $slow && echo still-downloading"
        ),
    )
    .await;
    assert_eq!(stdout(&outcome), "hello 1\nstill-downloading\n");
}

#[tokio::test]
async fn without_network_rules_there_is_no_proxy_at_all() {
    let outcome = run(
        policy(&[], &[]),
        "echo \"[${HTTP_PROXY-unset}]\"; curl -s --max-time 5 http://127.0.0.1:3128/; echo \" $?\"",
    )
    .await;
    // curl exit 7: nothing listens.
    assert_eq!(stdout(&outcome), "[unset]\n 7\n");
}
