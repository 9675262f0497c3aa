//! Network namespaces of finished evaluations are reused for later ones
//! (creating one costs the kernel about 0.7 ms of CPU), without anything of
//! one evaluation's network reaching the next, and without taking a plain
//! evaluation off the host's network.

mod common;

use std::time::Duration;

use common::{executor, policy, shell};
use sandbox_exec::{Executor, Status};

/// `SO_NETNS_COOKIE`: a network namespace's identity, never given to
/// another (inode numbers are, once a namespace is freed).
const SO_NETNS_COOKIE: i32 = 71;

/// The cookie of the network namespace the shell of an evaluation runs in.
async fn namespace_of(executor: &Executor, confined: bool) -> String {
    let request = shell(&format!(
        "python3 -c 'import socket; print(int.from_bytes(socket.socket().getsockopt(socket.SOL_SOCKET, {SO_NETNS_COOKIE}, 8), \"little\"))'"
    ));
    let request = if confined {
        request.policy(policy(&[], &[]))
    } else {
        request
    };
    let outcome = executor.evaluate(request).await.unwrap();
    assert_eq!(outcome.status, Status::Exited { code: 0 }, "{outcome:?}");
    outcome.output_text().trim().to_owned()
}

/// The namespaces of `n` confined evaluations one after the other, with a
/// pause in between for the last one's init to exit and be reclaimed.
async fn confined_namespaces(executor: &Executor, n: usize) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..n {
        seen.push(namespace_of(executor, true).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

#[tokio::test]
async fn a_finished_evaluations_network_namespace_is_reused() {
    let executor = executor();
    let seen = confined_namespaces(&executor, 8).await;
    let mut distinct = seen.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() < seen.len(), "never reused: {seen:?}");
}

#[tokio::test]
async fn with_reuse_off_every_evaluation_gets_a_new_network_namespace() {
    let executor = executor();
    executor.set_network_reuse(false);
    let seen = confined_namespaces(&executor, 6).await;
    let mut distinct = seen.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), seen.len(), "reused: {seen:?}");
}

/// The cookie of this process's network namespace.
fn host_namespace() -> String {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut cookie = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cookie`.
    let got = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    assert_eq!(got, 0, "{}", std::io::Error::last_os_error());
    cookie.to_string()
}

#[tokio::test]
async fn a_plain_evaluation_keeps_the_host_network_after_confined_ones() {
    let executor = executor();
    confined_namespaces(&executor, 4).await;
    let host = host_namespace();
    for _ in 0..3 {
        assert_eq!(namespace_of(&executor, false).await, host);
    }
}

#[tokio::test]
async fn a_listener_of_one_evaluation_is_not_reachable_from_the_next() {
    let executor = executor();
    let confined = || policy(&[], &[]);
    // Listens in the background on a fixed port and is killed with the
    // evaluation; the second evaluation, possibly in the same namespace,
    // finds nobody there (connection refused), while a listener of its own
    // on the same port works (so the check cannot pass by the network
    // failing altogether).
    let listen = "python3 -c 'import socket,time; s=socket.socket(); s.bind((\"127.0.0.1\", 7447)); s.listen(); time.sleep(30)' & sleep 0.3; echo listening";
    for _ in 0..4 {
        let first = executor
            .evaluate(shell(listen).policy(confined()))
            .await
            .unwrap();
        assert_eq!(first.output_text(), "listening\n", "{first:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let probe = "python3 -c '
import socket
c = socket.socket()
print(c.connect_ex((\"127.0.0.1\", 7447)) != 0)
s = socket.socket(); s.bind((\"127.0.0.1\", 7447)); s.listen()
print(socket.create_connection((\"127.0.0.1\", 7447)) is not None)'";
        let second = executor
            .evaluate(shell(probe).policy(confined()))
            .await
            .unwrap();
        assert_eq!(second.output_text(), "True\nTrue\n", "{second:?}");
    }
}
