//! The escape suite: every test is a real attempt, by a real program running
//! inside a fully confined sandbox, to get out of it — read a denied secret,
//! write outside the writable roots, reach a host process, socket or listener,
//! gain a namespace, a mount or a privilege, use a dangerous kernel interface,
//! or exhaust the host. Each attempt must fail, and each test also performs the
//! matching allowed action in the same setup and sees it succeed, so that no
//! test can pass merely because everything inside the sandbox fails.
//!
//! Where the attempt is a raw system call, the probe is a Python program
//! (`/usr/bin/python3` with `ctypes`) that prints one `NAME ok` or
//! `NAME errno N` line per call; the tests assert the exact errno the
//! enforcement produces (for the seccomp filter, `EPERM`), which differs from
//! what the unconfined host returns (noted at each probe), so a missing layer
//! of enforcement makes the test fail.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{executor, is_root, processes_tagged, shell, unique_tag};
use sandbox_exec::{EvalRequest, Limits, Outcome, Status};
use sandbox_policy::{Context, HostFs, Policy};

/// What a probe prints for a call the seccomp filter (or a dropped
/// capability) refused.
const EPERM: &str = "errno 1";
const OK: &str = "ok";

/// One sandbox setup, in a fresh world-readable scratch directory under
/// `/var/tmp` (the sandbox's own `/tmp` is a private, empty tmpfs):
///
/// ```text
/// home/.ssh/id_rsa   the secret                     deny Read(<home>/.ssh)
/// home/notes.txt     readable
/// work/              the only writable root         allow Edit(<work>)
/// work/.env          a secret in the writable root  deny Read(<work>/.env)
/// work/protected     readable, never writable       deny Edit(<work>/protected)
/// work/free          an ordinary file of the writable root
/// outside/file       readable, outside every writable root
/// ```
///
/// The home directory is a fake one: the tests also run as uid 65534, whose
/// `HOME` may be unset or `/`.
struct Sandbox {
    dir: tempfile::TempDir,
    /// Content of `home/.ssh/id_rsa`.
    secret: String,
    /// Content of `work/.env`.
    env_secret: String,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("sbx-escape-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let sandbox = Sandbox {
            dir,
            secret: unique_tag("ssh-key"),
            env_secret: unique_tag("dotenv"),
        };
        std::fs::set_permissions(sandbox.dir.path(), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        sandbox.write("home/.ssh/id_rsa", &sandbox.secret);
        sandbox.write("home/notes.txt", "PUBLIC NOTES");
        sandbox.write("work/.env", &sandbox.env_secret);
        sandbox.write("work/protected", "PROTECTED ORIGINAL");
        sandbox.write("work/free", "FREE FILE");
        sandbox.write("outside/file", "OUTSIDE ORIGINAL");
        sandbox
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// The path as a string, for command lines.
    fn p(&self, relative: &str) -> String {
        self.path(relative).display().to_string()
    }

    /// Writes a world-readable file, creating world-readable directories.
    fn write(&self, relative: &str, content: &str) {
        let path = self.path(relative);
        let mut dir = path.parent().unwrap().to_path_buf();
        std::fs::create_dir_all(&dir).unwrap();
        while dir.starts_with(self.dir.path()) {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            dir.pop();
        }
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative)).unwrap()
    }

    /// The policy of the layout above, plus `extra` allow rules.
    fn policy(&self, extra: &[String]) -> Policy {
        let ctx = Context {
            home: self.path("home"),
            cwd: self.path("work"),
        };
        let mut builder = Policy::builder(ctx)
            .allow(format!("Edit({})", self.p("work")))
            .deny(format!("Read({})", self.p("home/.ssh")))
            .deny(format!("Read({})", self.p("work/.env")))
            .deny(format!("Edit({})", self.p("work/protected")));
        for rule in extra {
            builder = builder.allow(rule.clone());
        }
        builder.build(&HostFs).expect("policy").0
    }

    /// `line` run by `/bin/sh` in the confined sandbox, from the writable root.
    fn shell(&self, line: &str) -> EvalRequest {
        shell(&format!("{SH_PRELUDE}\n{line}"))
            .policy(self.policy(&[]))
            .cwd(self.path("work"))
            .env("HOME", self.p("home"))
    }

    /// A Python probe (the prelude below, then `script`) run with `args` in
    /// the confined sandbox.
    fn python(&self, script: &str, args: &str) -> EvalRequest {
        self.shell(&format!("exec /usr/bin/python3 - {args}"))
            .stdin(format!("{PY_PRELUDE}\n{script}"))
    }
}

/// `t NAME CMD...` runs CMD and prints `NAME ok` or `NAME failed`; error
/// messages go to standard output too, so that they cannot split a result line.
const SH_PRELUDE: &str = r#"exec 2>&1
t() { n=$1; shift; if "$@"; then echo "$n ok"; else echo "$n failed"; fi; }"#;

/// `syscall(NAME, NR, ARGS...)` and `attempt(NAME, FN)` print `NAME ok` or
/// `NAME errno N`.
const PY_PRELUDE: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def report(name, ok, err=None):
    print(name, "ok" if ok else "errno %s" % err, flush=True)

def syscall(name, nr, *args):
    args = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *args)
    report(name, r >= 0, ctypes.get_errno())
    return r

def attempt(name, fn):
    try:
        fn()
    except OSError as e:
        report(name, False, e.errno)
        return False
    report(name, True)
    return True
"#;

async fn run(request: EvalRequest) -> Outcome {
    let outcome = executor().evaluate(request).await.unwrap();
    assert!(
        !matches!(
            outcome.status,
            Status::NoConnection { .. } | Status::SpawnFailed { .. } | Status::SetupFailed { .. }
        ),
        "the sandbox itself failed: {:?}\n{}",
        outcome.status,
        outcome.output_text()
    );
    outcome
}

/// Runs the request and returns what it printed.
async fn output(request: EvalRequest) -> String {
    run(request).await.output_text().into_owned()
}

/// The result the probe printed for `name`.
fn result<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("the probe printed no result for {name}:\n{text}"))
}

#[track_caller]
fn expect(text: &str, name: &str, want: &str) {
    let got = result(text, name);
    assert_eq!(
        got, want,
        "{name}: expected `{want}`, got `{got}`; the probe printed:\n{text}"
    );
}

#[track_caller]
fn expect_absent(text: &str, secret: &str) {
    assert!(
        !text.contains(secret),
        "the secret {secret} leaked into the output:\n{text}"
    );
}

/// A process on the host, outside every sandbox, killed on drop.
struct HostProcess(std::process::Child);

impl HostProcess {
    /// `sleep` with `SBX_HOST_SECRET=secret` in its environment.
    fn sleep(secret: &str) -> HostProcess {
        let child = std::process::Command::new("sleep")
            .arg("300")
            .env("SBX_HOST_SECRET", secret)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        HostProcess(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Alive, and neither stopped nor traced.
    #[track_caller]
    fn assert_unharmed(&mut self) {
        assert!(
            self.0.try_wait().unwrap().is_none(),
            "the host process died"
        );
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        assert!(status.contains("TracerPid:\t0\n"), "{status}");
        let state = status
            .lines()
            .find_map(|l| l.strip_prefix("State:\t"))
            .unwrap();
        assert!(!state.starts_with(['T', 't']), "stopped: {state}");
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// No process of the evaluation survives it.
#[track_caller]
fn assert_no_process_tagged(tag: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_tagged(tag).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(processes_tagged(tag), Vec::<u32>::new(), "survivors");
}

// ---------------------------------------------------------------------------
// Reading a denied file
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_denied_file_cannot_be_read_directly() {
    let sb = Sandbox::new();
    let text = output(sb.shell(&format!(
        "cat {key}; cat {env}; cat {notes}",
        key = sb.p("home/.ssh/id_rsa"),
        env = sb.p("work/.env"),
        notes = sb.p("home/notes.txt"),
    )))
    .await;
    expect_absent(&text, &sb.secret);
    expect_absent(&text, &sb.env_secret);
    assert!(text.contains("PUBLIC NOTES"), "{text}");
}

#[tokio::test]
async fn a_denied_file_cannot_be_read_through_a_symlink() {
    let sb = Sandbox::new();
    let text = output(sb.shell(&format!(
        "ln -s {key} link-key; ln -s {ssh} link-ssh; ln -s {env} link-env; ln -s {notes} link-notes
         cat link-key; cat link-ssh/id_rsa; cat link-env; cat link-notes",
        key = sb.p("home/.ssh/id_rsa"),
        ssh = sb.p("home/.ssh"),
        env = sb.p("work/.env"),
        notes = sb.p("home/notes.txt"),
    )))
    .await;
    expect_absent(&text, &sb.secret);
    expect_absent(&text, &sb.env_secret);
    // The links were made in the writable root, and the allowed one reads.
    assert!(sb.path("work/link-key").is_symlink());
    assert!(text.contains("PUBLIC NOTES"), "{text}");
}

#[tokio::test]
async fn a_denied_file_cannot_be_read_through_proc_self_root() {
    let sb = Sandbox::new();
    let text = output(sb.shell(&format!(
        "cat /proc/self/root{key}; cat /proc/self/root{env}; cat /proc/self/root{notes}",
        key = sb.p("home/.ssh/id_rsa"),
        env = sb.p("work/.env"),
        notes = sb.p("home/notes.txt"),
    )))
    .await;
    expect_absent(&text, &sb.secret);
    expect_absent(&text, &sb.env_secret);
    assert!(text.contains("PUBLIC NOTES"), "{text}");
}

#[tokio::test]
async fn a_denied_file_cannot_be_read_through_the_root_of_pid_1() {
    let sb = Sandbox::new();
    let text = output(sb.shell(&format!(
        "cat /proc/1/root{key}; cat /proc/1/root{env}; cat /proc/1/root{notes}",
        key = sb.p("home/.ssh/id_rsa"),
        env = sb.p("work/.env"),
        notes = sb.p("home/notes.txt"),
    )))
    .await;
    expect_absent(&text, &sb.secret);
    expect_absent(&text, &sb.env_secret);
    assert!(text.contains("PUBLIC NOTES"), "{text}");
}

#[tokio::test]
async fn a_denied_file_cannot_be_hard_linked_into_the_writable_root() {
    let sb = Sandbox::new();
    let text = output(sb.shell(&format!(
        "t ln_key ln {key} hl-key; t ln_env ln .env hl-env; t ln_free ln free hl-free
         cat hl-key hl-env hl-free",
        key = sb.p("home/.ssh/id_rsa"),
    )))
    .await;
    expect(&text, "ln_key", "failed");
    expect(&text, "ln_env", "failed");
    expect_absent(&text, &sb.secret);
    expect_absent(&text, &sb.env_secret);
    // No name of the secrets' inodes appeared in the writable root.
    for (link, secret) in [
        ("work/hl-key", "home/.ssh/id_rsa"),
        ("work/hl-env", "work/.env"),
    ] {
        if let Ok(meta) = std::fs::metadata(sb.path(link)) {
            assert_ne!(
                meta.ino(),
                std::fs::metadata(sb.path(secret)).unwrap().ino()
            );
        }
    }
    expect(&text, "ln_free", OK);
    assert_eq!(
        std::fs::metadata(sb.path("work/hl-free")).unwrap().ino(),
        std::fs::metadata(sb.path("work/free")).unwrap().ino()
    );
}

// ---------------------------------------------------------------------------
// Writing outside the writable roots
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_file_outside_the_writable_roots_cannot_be_written() {
    let sb = Sandbox::new();
    let text = output(sb.shell(&format!(
        "t write_outside sh -c 'echo pwned > {outside}/file'
         t create_outside sh -c 'echo pwned > {outside}/new'
         t write_home sh -c 'echo pwned > {home}/notes.txt'
         t write_work sh -c 'echo written > {work}/new'",
        outside = sb.p("outside"),
        home = sb.p("home"),
        work = sb.p("work"),
    )))
    .await;
    expect(&text, "write_outside", "failed");
    expect(&text, "create_outside", "failed");
    expect(&text, "write_home", "failed");
    assert_eq!(sb.read("outside/file"), "OUTSIDE ORIGINAL");
    assert!(!sb.path("outside/new").exists());
    assert_eq!(sb.read("home/notes.txt"), "PUBLIC NOTES");
    expect(&text, "write_work", OK);
    assert_eq!(sb.read("work/new"), "written\n");
}

#[tokio::test]
async fn a_file_outside_the_writable_roots_cannot_be_moved() {
    let sb = Sandbox::new();
    let text = output(sb.shell(&format!(
        "t mv_into_work mv {outside}/file stolen
         t rename_outside mv {outside}/file {outside}/renamed
         t mv_in_work mv free moved",
        outside = sb.p("outside"),
    )))
    .await;
    expect(&text, "mv_into_work", "failed");
    expect(&text, "rename_outside", "failed");
    assert_eq!(sb.read("outside/file"), "OUTSIDE ORIGINAL");
    assert!(!sb.path("outside/renamed").exists());
    expect(&text, "mv_in_work", OK);
    assert_eq!(sb.read("work/moved"), "FREE FILE");
}

#[tokio::test]
async fn a_protected_file_in_the_writable_root_cannot_be_written_moved_or_replaced() {
    let sb = Sandbox::new();
    let text = output(sb.shell(
        "t write_protected sh -c 'echo pwned > protected'
         t move_protected mv protected moved-protected
         t replace_protected sh -c 'echo pwned > decoy && mv -f decoy protected'
         t remove_protected rm -f protected
         t move_free mv free moved-free",
    ))
    .await;
    for attempt in [
        "write_protected",
        "move_protected",
        "replace_protected",
        "remove_protected",
    ] {
        expect(&text, attempt, "failed");
    }
    assert_eq!(sb.read("work/protected"), "PROTECTED ORIGINAL");
    assert!(!sb.path("work/moved-protected").exists());
    expect(&text, "move_free", OK);
    assert_eq!(sb.read("work/moved-free"), "FREE FILE");
}

/// `.git/hooks` in a writable root is a mandatory protection, enforced by a
/// read-only bind on it; renaming the unprotected `.git` above it (the bind
/// moves along) and recreating `.git/hooks` would plant a hook on the host
/// that its next `git commit` runs.
#[tokio::test]
async fn a_protected_directory_cannot_be_replaced_by_renaming_its_parent() {
    let sb = Sandbox::new();
    sb.write("work/.git/hooks/README", "hooks");
    sb.write("work/.git/HEAD", "ref: refs/heads/main\n");
    let text = output(sb.shell(
        "t write_hook sh -c 'echo evil > .git/hooks/pre-commit'
         t swap_parent sh -c 'mv .git .git-old && mkdir -p .git/hooks && echo evil > .git/hooks/pre-commit'
         t write_git sh -c 'echo written > .git/description'",
    ))
    .await;
    expect(&text, "write_hook", "failed");
    expect(&text, "swap_parent", "failed");
    assert!(
        !sb.path("work/.git/hooks/pre-commit").exists(),
        "a hook was planted on the host:\n{text}"
    );
    assert_eq!(sb.read("work/.git/hooks/README"), "hooks");
    // The rest of .git is as writable as the root it is in.
    expect(&text, "write_git", OK);
}

/// The mandatory protections of a writable root hold for paths that do not
/// exist yet as well: a planted `.sandbox/settings.json` would widen the next
/// evaluation's policy, a planted `.git/hooks/pre-commit` runs on the host.
/// Read-only stand-ins keep them uncreatable, and are gone afterwards.
#[tokio::test]
async fn a_protected_path_cannot_be_created_where_it_does_not_exist_yet() {
    let sb = Sandbox::new();
    let text = output(sb.shell(
        r#"t plant_settings sh -c 'mkdir -p .sandbox && echo "{\"permissions\":{\"allow\":[\"Edit(/)\"]}}" > .sandbox/settings.json'
         t plant_hook sh -c 'mkdir -p .git/hooks && echo evil > .git/hooks/pre-commit'
         t create_other sh -c 'mkdir -p src && echo "fn main() {}" > src/main.rs'"#,
    ))
    .await;
    expect(&text, "plant_settings", "failed");
    expect(&text, "plant_hook", "failed");
    assert!(!sb.path("work/.sandbox/settings.json").exists(), "{text}");
    assert!(!sb.path("work/.git/hooks/pre-commit").exists(), "{text}");
    expect(&text, "create_other", OK);
    assert_eq!(sb.read("work/src/main.rs"), "fn main() {}\n");
    assert!(!sb.path("work/.git").exists(), "a stand-in was left behind");
    assert!(
        !sb.path("work/.sandbox").exists(),
        "a stand-in was left behind"
    );
}

// ---------------------------------------------------------------------------
// Reaching host processes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_host_process_cannot_be_traced() {
    let sb = Sandbox::new();
    let mut sleeper = HostProcess::sleep(&unique_tag("env"));
    // Unconfined, PTRACE_ATTACH (16) to a process of the same uid succeeds; in
    // the sandbox's pid namespace a host pid is unknown (ESRCH): only the
    // seccomp filter answers EPERM.
    let text = output(sb.python(
        "syscall('getpid', 39)
own, sleeper = int(sys.argv[1]), int(sys.argv[2])
syscall('ptrace_test', 101, 16, own, None, None)
syscall('ptrace_sleeper', 101, 16, sleeper, None, None)",
        &format!("{} {}", std::process::id(), sleeper.pid()),
    ))
    .await;
    expect(&text, "getpid", OK);
    expect(&text, "ptrace_test", EPERM);
    expect(&text, "ptrace_sleeper", EPERM);
    sleeper.assert_unharmed();
    let me = std::fs::read_to_string("/proc/self/status").unwrap();
    assert!(me.contains("TracerPid:\t0\n"), "{me}");
}

#[tokio::test]
async fn a_host_process_cannot_be_signalled() {
    let sb = Sandbox::new();
    let mut sleeper = HostProcess::sleep(&unique_tag("env"));
    let text = output(sb.shell(&format!(
        "t probe_host kill -0 {pid}; t kill_host kill -9 {pid}; t kill_test kill -9 {test}
         t probe_self kill -0 $$",
        pid = sleeper.pid(),
        test = std::process::id(),
    )))
    .await;
    expect(&text, "probe_host", "failed");
    expect(&text, "kill_host", "failed");
    expect(&text, "kill_test", "failed");
    expect(&text, "probe_self", OK);
    sleeper.assert_unharmed();
}

#[tokio::test]
async fn the_environment_of_a_host_process_cannot_be_read() {
    let sb = Sandbox::new();
    let secret = unique_tag("host-env");
    let sleeper = HostProcess::sleep(&secret);
    let mark = unique_tag("own-env");
    let text = output(
        sb.shell(&format!(
            "t environ_host cat /proc/{pid}/environ; t environ_test cat /proc/{test}/environ
             t environ_self grep -q {mark} /proc/self/environ",
            pid = sleeper.pid(),
            test = std::process::id(),
        ))
        .env("SBX_MARK", &mark),
    )
    .await;
    expect(&text, "environ_host", "failed");
    expect(&text, "environ_test", "failed");
    expect_absent(&text, &secret);
    expect(&text, "environ_self", OK);
}

// ---------------------------------------------------------------------------
// Reaching host sockets and the network
// ---------------------------------------------------------------------------

/// The Python that connects to the Unix socket at `sys.argv[1]`.
const UNIX_CONNECT: &str = "import socket
def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(sys.argv[1])
attempt('connect', connect)";

#[tokio::test]
async fn a_host_unix_socket_cannot_be_reached() {
    let sb = Sandbox::new();
    let path = sb.path("host.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    listener.set_nonblocking(true).unwrap();
    // Once the policy names the socket, the connection goes through. (With
    // any `UnixSocket` rule, every Unix socket the sandbox can see is
    // reachable: seccomp cannot read connect()'s path, a gap the plan reports.)
    let allowed = sb
        .python(UNIX_CONNECT, &path.display().to_string())
        .policy(sb.policy(&[format!("UnixSocket({})", path.display())]));
    let text = output(allowed).await;
    expect(&text, "connect", OK);
    assert!(listener.accept().is_ok(), "{text}");

    // Without the rule it must not. Unconfined it would: the host root is
    // read-only in the sandbox, but connecting to a socket is no write.
    let text = output(sb.python(UNIX_CONNECT, &path.display().to_string())).await;
    expect(&text, "connect", EPERM);
    assert!(listener.accept().is_err(), "the host listener was reached");
}

#[tokio::test]
async fn a_host_abstract_unix_socket_cannot_be_reached() {
    use std::os::linux::net::SocketAddrExt;
    let sb = Sandbox::new();
    let name = unique_tag("abstract");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    // A policy that allows some Unix socket, so that AF_UNIX itself is not
    // refused: the abstract namespace must still be the sandbox's own.
    let other = sb.path("allowed.sock");
    let request = sb
        .python(
            "import socket
def connect(name):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(name)
own = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
own.bind('\\0' + sys.argv[1] + '-own')
own.listen()
attempt('connect_own', lambda: connect('\\0' + sys.argv[1] + '-own'))
attempt('connect_host', lambda: connect('\\0' + sys.argv[1]))",
            &name,
        )
        .policy(sb.policy(&[format!("UnixSocket({})", other.display())]));
    let text = output(request).await;
    expect(&text, "connect_own", OK);
    assert_ne!(result(&text, "connect_host"), OK, "{text}");
    assert!(listener.accept().is_err(), "the host listener was reached");
}

#[tokio::test]
async fn raw_and_packet_sockets_cannot_be_created() {
    let sb = Sandbox::new();
    // Unconfined as root the three raw sockets can be created (as uid 65534
    // they fail with EPERM for want of CAP_NET_RAW).
    let text = output(sb.python(
        "import socket
attempt('udp', lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close())
attempt('packet', lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close())
attempt('raw_icmp', lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close())
attempt('raw_icmp6', lambda: socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6).close())",
        "",
    ))
    .await;
    expect(&text, "udp", OK);
    expect(&text, "packet", EPERM);
    expect(&text, "raw_icmp", EPERM);
    expect(&text, "raw_icmp6", EPERM);
}

/// Connects to `127.0.0.1:sys.argv[1]` and, as the allowed counterpart, to a
/// listener of its own on the sandbox's loopback.
const TCP_CONNECT: &str = "import socket
def connect(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect((host, port))
own = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
own.bind(('127.0.0.1', 0))
own.listen()
attempt('connect_own', lambda: connect('127.0.0.1', own.getsockname()[1]))
attempt('connect_host', lambda: connect('127.0.0.1', int(sys.argv[1])))
attempt('connect_internet', lambda: connect('1.1.1.1', 80))";

#[tokio::test]
async fn a_host_tcp_listener_cannot_be_reached_without_the_proxy() {
    let sb = Sandbox::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let text = output(sb.python(TCP_CONNECT, &port.to_string())).await;
    expect(&text, "connect_own", OK);
    // ECONNREFUSED: the sandbox's loopback is its own.
    expect(&text, "connect_host", "errno 111");
    assert!(listener.accept().is_err(), "the host listener was reached");
}

#[tokio::test]
async fn no_route_leads_out_of_the_sandbox() {
    let sb = Sandbox::new();
    let text = output(sb.python(TCP_CONNECT, "9")).await;
    expect(&text, "connect_own", OK);
    // ENETUNREACH: loopback is the only interface.
    expect(&text, "connect_internet", "errno 101");
}

// ---------------------------------------------------------------------------
// Mounts, namespaces, chroot, privileges
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_file_system_cannot_be_mounted() {
    let sb = Sandbox::new();
    sb.write("work/m/marker", "under the mount point");
    let text = output(sb.shell(
        "t mount_tmpfs mount -t tmpfs none m
         t bind_mount mount --bind /tmp m
         t write_after sh -c 'echo after > m/after'
         cat m/marker; echo",
    ))
    .await;
    expect(&text, "mount_tmpfs", "failed");
    expect(&text, "bind_mount", "failed");
    // Nothing covers the directory: what is written there reaches the host.
    expect(&text, "write_after", OK);
    assert!(text.contains("under the mount point"), "{text}");
    assert_eq!(sb.read("work/m/after"), "after\n");

    // The system calls, old and new mount API (fsopen 430, open_tree 428).
    let text = output(sb.python(
        "attempt('stat', lambda: os.stat('m'))
ctypes.set_errno(0)
report('mount', libc.mount(b'none', b'm', b'tmpfs', 0, None) == 0, ctypes.get_errno())
syscall('fsopen', 430, b'tmpfs', 0)
syscall('open_tree', 428, -100, b'/', 1)",
        "",
    ))
    .await;
    expect(&text, "stat", OK);
    expect(&text, "mount", EPERM);
    expect(&text, "fsopen", EPERM);
    expect(&text, "open_tree", EPERM);
}

#[tokio::test]
async fn new_namespaces_cannot_be_created_with_unshare() {
    let sb = Sandbox::new();
    // Unconfined, a user namespace (`-U`) can be created by any user, and
    // inside it the others. Each attempt must be refused at the unshare call
    // itself: `unshare -r` could also fail later, writing its uid map, after
    // the namespace was made.
    let attempts = [
        ("unshare_user", "-U"),
        ("unshare_user_root", "-r"),
        ("unshare_user_net", "-r -n"),
        ("unshare_net", "-n"),
        ("unshare_mount", "-m"),
    ];
    let lines: Vec<String> = attempts
        .iter()
        .map(|(name, flags)| format!("t {name} unshare {flags} true"))
        .collect();
    let text = output(sb.shell(&format!("{}\nt run_child sh -c true", lines.join("\n")))).await;
    for (name, _) in attempts {
        expect(&text, name, "failed");
    }
    assert_eq!(
        text.matches("unshare failed: Operation not permitted")
            .count(),
        attempts.len(),
        "{text}"
    );
    expect(&text, "run_child", OK);
}

#[tokio::test]
async fn a_user_namespace_cannot_be_created_with_a_system_call() {
    let sb = Sandbox::new();
    // Unconfined both succeed for any user. The clone comes first: once in a
    // new user namespace, where its uid has no mapping, the process could not
    // create another one whatever the filter says.
    let text = output(sb.python(
        "CLONE_NEWUSER, SIGCHLD = 0x10000000, 17
ctypes.set_errno(0)
pid = libc.syscall(ctypes.c_long(56), ctypes.c_long(CLONE_NEWUSER | SIGCHLD), None, None, None, None)
if pid == 0:
    os._exit(0)
report('clone', pid > 0, ctypes.get_errno())
if pid > 0:
    os.waitpid(pid, 0)
ctypes.set_errno(0)
report('unshare', libc.unshare(CLONE_NEWUSER) == 0, ctypes.get_errno())
pid = os.fork()
if pid == 0:
    os._exit(0)
report('fork', os.waitpid(pid, 0)[1] == 0)",
        "",
    ))
    .await;
    expect(&text, "unshare", EPERM);
    expect(&text, "clone", EPERM);
    expect(&text, "fork", OK);
}

#[tokio::test]
async fn chroot_is_refused() {
    let sb = Sandbox::new();
    let text = output(sb.shell(&format!(
        "t chroot_cmd chroot {work} /bin/true
         /usr/bin/python3 -c \"import os
try:
    os.chdir('{work}'); print('chdir ok')
except OSError as e:
    print('chdir errno', e.errno)
try:
    os.chroot('{work}'); print('chroot ok')
except OSError as e:
    print('chroot errno', e.errno)\"",
        work = sb.p("work"),
    )))
    .await;
    expect(&text, "chroot_cmd", "failed");
    expect(&text, "chroot", EPERM);
    expect(&text, "chdir", OK);
}

/// `Uid:` (real, effective, saved, fs) and `CapEff:` of a `/proc/PID/status` text.
fn credentials(status: &str) -> (Vec<u32>, u64) {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{status}"))
            .trim()
            .to_string()
    };
    let uids = field("Uid:")
        .split_whitespace()
        .map(|u| u.parse().unwrap())
        .collect();
    let cap_eff = u64::from_str_radix(&field("CapEff:"), 16).unwrap();
    (uids, cap_eff)
}

#[tokio::test]
async fn a_setuid_root_binary_runs_without_privilege() {
    use std::os::unix::process::CommandExt;
    let sb = Sandbox::new();
    // A setuid-root program and a way to read its credentials while it runs.
    // As root: a setuid-root copy of cat, reading its own status. Otherwise
    // (no way to make one): the machine's setuid-root su, read while it waits
    // for a password that never comes.
    let line = if is_root() {
        let cat = sb.path("suid-cat");
        std::fs::copy("/usr/bin/cat", &cat).unwrap();
        std::fs::set_permissions(&cat, std::fs::Permissions::from_mode(0o4755)).unwrap();
        format!("{} /proc/self/status", cat.display())
    } else {
        "sleep 5 | /usr/bin/su root -c true & p=$!; i=0
         while [ \"$(head -c 11 /proc/$p/cmdline)\" != /usr/bin/su ] && [ $i -lt 200 ]; do
             sleep 0.05; i=$((i + 1))
         done
         cat /proc/$p/status; kill $p"
            .to_string()
    };
    // The check can fail: outside the sandbox (as uid 65534 when we are root)
    // the program runs with effective uid 0 and capabilities.
    let mut outside = std::process::Command::new("/bin/sh");
    outside.arg("-c").arg(&line).stdin(Stdio::null());
    if is_root() {
        outside.uid(65534).gid(65534);
    }
    let outside = outside.output().unwrap();
    let (uids, cap_eff) = credentials(&String::from_utf8_lossy(&outside.stdout));
    assert_eq!(uids[1], 0, "the probe is not setuid-root outside");
    assert_ne!(cap_eff, 0, "the probe has no capabilities outside");

    // Inside: it runs (the allowed action), as the caller, with nothing.
    let text = output(sb.shell(&line)).await;
    let (uids, cap_eff) = credentials(&text);
    assert_eq!(uids[1], nix::unistd::geteuid().as_raw(), "{text}");
    assert_eq!(cap_eff, 0, "{text}");
}

// ---------------------------------------------------------------------------
// Dangerous kernel interfaces (the seccomp filter)
// ---------------------------------------------------------------------------

/// Opens a pty pair and, from a new session whose controlling terminal it
/// is, tries `ioctl` requests on it.
const PTY_PROBE: &str = "import fcntl, pty, termios
try:
    master, slave = pty.openpty()
except OSError as e:
    report('openpty', False, e.errno)
    sys.exit(0)
report('openpty', True)
attempt('TIOCGWINSZ', lambda: fcntl.ioctl(slave, termios.TIOCGWINSZ, bytes(8)))
pid = os.fork()
if pid == 0:
    try:
        os.setsid()
        attempt('TIOCSCTTY', lambda: fcntl.ioctl(slave, termios.TIOCSCTTY, 0))
        attempt('TIOCSTI', lambda: fcntl.ioctl(slave, termios.TIOCSTI, b'x'))
        # The kernel reads the request as 32 bits: set bits above them must
        # not hide TIOCSTI from the filter.
        ctypes.set_errno(0)
        wide = libc.ioctl(slave, ctypes.c_ulong(1 << 32 | termios.TIOCSTI), b'y')
        report('TIOCSTI_wide', wide == 0, ctypes.get_errno())
        attempt('TIOCLINUX', lambda: fcntl.ioctl(slave, 0x541C, bytes([11])))
    finally:
        os._exit(0)
os.waitpid(pid, 0)
os.set_blocking(master, False)
try:
    print('injected', os.read(master, 64), flush=True)
except BlockingIOError:
    print('injected nothing', flush=True)";

#[tokio::test]
async fn tiocsti_cannot_push_input_into_a_terminal() {
    let sb = Sandbox::new();
    // Unconfined (dev.tty.legacy_tiocsti is 1 here) TIOCSTI on one's own
    // controlling terminal succeeds for any user, and so does the request
    // with bits set above its 32.
    let text = output(sb.python(PTY_PROBE, "")).await;
    expect(&text, "openpty", OK);
    expect(&text, "TIOCGWINSZ", OK);
    expect(&text, "TIOCSCTTY", OK);
    expect(&text, "TIOCSTI", EPERM);
    expect(&text, "TIOCSTI_wide", EPERM);
    expect(&text, "injected", "nothing");
}

#[tokio::test]
async fn tioclinux_is_refused() {
    let sb = Sandbox::new();
    // Unconfined, on a pty, TIOCLINUX fails with ENOTTY (25).
    let text = output(sb.python(PTY_PROBE, "")).await;
    expect(&text, "openpty", OK);
    expect(&text, "TIOCGWINSZ", OK);
    expect(&text, "TIOCLINUX", EPERM);
}

#[tokio::test]
async fn io_uring_cannot_be_set_up() {
    let sb = Sandbox::new();
    // Unconfined io_uring_setup(1, params) returns a descriptor
    // (kernel.io_uring_disabled is 0 here).
    let text = output(sb.python(
        "syscall('getpid', 39)
params = ctypes.create_string_buffer(120)
syscall('io_uring_setup', 425, 1, params)",
        "",
    ))
    .await;
    expect(&text, "getpid", OK);
    expect(&text, "io_uring_setup", EPERM);
}

#[tokio::test]
async fn kernel_keyrings_cannot_be_used() {
    let sb = Sandbox::new();
    // Unconfined add_key and keyctl(KEYCTL_JOIN_SESSION_KEYRING) succeed and
    // request_key fails with ENOKEY (126).
    let text = output(sb.python(
        "syscall('getpid', 39)
syscall('add_key', 248, b'user', b'sbxtest', b'payload', 7, -2)
syscall('request_key', 249, b'user', b'sbxtest-none', None, 0)
syscall('keyctl', 250, 1, None)",
        "",
    ))
    .await;
    expect(&text, "getpid", OK);
    expect(&text, "add_key", EPERM);
    expect(&text, "request_key", EPERM);
    expect(&text, "keyctl", EPERM);
}

#[tokio::test]
async fn bpf_is_refused() {
    let sb = Sandbox::new();
    // Unconfined, BPF_MAP_CREATE with an empty attribute fails with EINVAL
    // (22) before any permission check, for root and uid 65534 alike.
    let text = output(sb.python(
        "syscall('getpid', 39)
attr = ctypes.create_string_buffer(128)
syscall('bpf', 321, 0, attr, 128)",
        "",
    ))
    .await;
    expect(&text, "getpid", OK);
    expect(&text, "bpf", EPERM);
}

#[tokio::test]
async fn perf_events_cannot_be_opened() {
    let sb = Sandbox::new();
    // A user-space-only CPU-clock counter of the caller itself: unconfined
    // this succeeds for any user (kernel.perf_event_paranoid is 2 here).
    let text = output(sb.python(
        "import struct
syscall('getpid', 39)
attr = ctypes.create_string_buffer(128)
struct.pack_into('IIQ', attr, 0, 1, 128, 0)
struct.pack_into('Q', attr, 40, 1 | 1 << 5 | 1 << 6)
syscall('perf_event_open', 298, attr, 0, -1, -1, 0)",
        "",
    ))
    .await;
    expect(&text, "getpid", OK);
    expect(&text, "perf_event_open", EPERM);
}

#[tokio::test]
async fn userfaultfd_is_refused() {
    let sb = Sandbox::new();
    // Unconfined userfaultfd(UFFD_USER_MODE_ONLY | O_CLOEXEC) succeeds for
    // any user.
    let text = output(sb.python(
        "syscall('getpid', 39)
syscall('userfaultfd', 323, 1 | 0o2000000)",
        "",
    ))
    .await;
    expect(&text, "getpid", OK);
    expect(&text, "userfaultfd", EPERM);
}

#[tokio::test]
async fn clone3_reports_enosys_so_that_libc_falls_back_to_clone() {
    let sb = Sandbox::new();
    // Unconfined clone3(NULL, 0) fails with EINVAL (22); ENOSYS (38) means
    // the filter hides it, since it cannot inspect clone3's flags.
    let text = output(sb.python(
        "import subprocess, threading
syscall('clone3', 435, None, 0)
report('spawn', subprocess.run(['/bin/true']).returncode == 0)
t = threading.Thread(target=lambda: None)
attempt('thread', t.start)
t.join()",
        "",
    ))
    .await;
    expect(&text, "clone3", "errno 38");
    expect(&text, "spawn", OK);
    expect(&text, "thread", OK);
}

/// Runs machine code: `mov eax, NR; mov ebx, ARG; INSTRUCTION; ret`, with
/// INSTRUCTION `int 0x80` (the i386 system call ABI) or `syscall` (x86-64).
const TRAMPOLINE: &str = "import mmap
def machine_call(nr, arg, instruction):
    code = (b'\\x53\\xb8' + nr.to_bytes(4, 'little') + b'\\xbb' + arg.to_bytes(4, 'little')
            + instruction + b'\\x5b\\xc3')
    page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(code)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    return ctypes.CFUNCTYPE(ctypes.c_int)(address)()
INT80, SYSCALL = b'\\xcd\\x80', b'\\x0f\\x05'";

#[cfg(target_arch = "x86_64")]
#[tokio::test]
async fn the_i386_system_call_abi_cannot_bypass_the_filter() {
    let sb = Sandbox::new();
    // Unconfined (IA32 emulation is on here) the i386 unshare (310) of a user
    // namespace succeeds: a filter matching x86-64 numbers alone would let it
    // through. The filter kills the process on a foreign ABI (SIGSYS, 31).
    let script = format!(
        "{TRAMPOLINE}
report('x86_64_getpid', machine_call(39, 0, SYSCALL) == os.getpid())
pid = os.fork()
if pid == 0:
    try:
        r = machine_call(310, 0x10000000, INT80)
        report('i386_unshare', r == 0, -r)
    finally:
        os._exit(0)
status = os.waitpid(pid, 0)[1]
if os.WIFSIGNALED(status):
    print('i386_unshare killed by', os.WTERMSIG(status), flush=True)"
    );
    let text = output(sb.python(&script, "")).await;
    expect(&text, "x86_64_getpid", OK);
    let i386 = result(&text, "i386_unshare");
    assert!(
        i386 == "killed by 31" || i386 == EPERM,
        "the i386 unshare was not refused: {i386}\n{text}"
    );
}

// ---------------------------------------------------------------------------
// Exhausting the host
// ---------------------------------------------------------------------------

/// Each process forks two children down to depth `sys.argv[1]` (at most
/// 2^(depth+1) - 2 processes: a bomb with a bound, should the limit fail);
/// the leaves wait a second so that all are alive at once; every process
/// exits 1 if a fork was refused beneath it.
const FORK_BOMB: &str = "import time
DEPTH = int(sys.argv[1])
def spawn(depth):
    kids = []
    for _ in range(2):
        try:
            pid = os.fork()
        except OSError as e:
            print('refused errno', e.errno, flush=True)
            return 1
        if pid == 0:
            code = 1
            try:
                if depth < DEPTH:
                    code = spawn(depth + 1)
                else:
                    time.sleep(1)
                    code = 0
            finally:
                os._exit(code)
        kids.append(pid)
    failed = [pid for pid in kids if os.waitpid(pid, 0)[1] != 0]
    return 1 if failed else 0
code = spawn(1)
print('forks', 'ok' if code == 0 else 'refused', flush=True)
sys.exit(code)";

#[tokio::test]
async fn a_fork_bomb_is_held_to_the_pids_limit() {
    let sb = Sandbox::new();
    let limits = Limits {
        pids: Some(16),
        ..Limits::default()
    };
    let tag = unique_tag("fork-bomb");
    let outcome = run(sb
        .python(FORK_BOMB, &format!("7 {tag}"))
        .limits(limits.clone()))
    .await;
    let text = outcome.output_text();
    assert!(text.contains("refused errno 11"), "{text}");
    if is_root() {
        // The cgroup counts refused forks.
        assert_eq!(outcome.status, Status::PidsLimit, "{text}");
    } else {
        // RLIMIT_NPROC refuses forks but counts nothing: the status is the
        // program's own failure (see limits.rs).
        assert!(!outcome.status.success(), "{:?}\n{text}", outcome.status);
    }
    assert_no_process_tagged(&tag);

    // Two children fit under the limit.
    let outcome = run(sb.python(FORK_BOMB, "1").limits(limits)).await;
    assert_eq!(
        outcome.status,
        Status::Exited { code: 0 },
        "{}",
        outcome.output_text()
    );
    expect(&outcome.output_text(), "forks", OK);
}

/// Allocates and fills `sys.argv[1]` MiB, one at a time (2 GiB at most,
/// should the limit fail).
const MEMORY_BOMB: &str = "chunks = []
for _ in range(min(int(sys.argv[1]), 2048)):
    chunks.append(b'x' * (1 << 20))
print('allocated', len(chunks), flush=True)";

#[tokio::test]
async fn a_memory_bomb_is_stopped_by_the_memory_limit() {
    let sb = Sandbox::new();
    let limits = Limits {
        memory: Some(64 << 20),
        ..Limits::default()
    };
    let tag = unique_tag("memory-bomb");
    let outcome = run(sb
        .python(MEMORY_BOMB, &format!("100000 {tag}"))
        .limits(limits.clone()))
    .await;
    let text = outcome.output_text();
    assert_eq!(outcome.status, Status::MemoryLimit, "{text}");
    assert!(!text.contains("allocated"), "{text}");
    assert_no_process_tagged(&tag);

    let outcome = run(sb.python(MEMORY_BOMB, "8").limits(limits)).await;
    let text = outcome.output_text();
    assert_eq!(outcome.status, Status::Exited { code: 0 }, "{text}");
    assert!(text.contains("allocated 8"), "{text}");
}

#[tokio::test]
async fn a_disk_fill_is_stopped_by_the_file_size_limit() {
    let sb = Sandbox::new();
    let limits = Limits {
        file_size: Some(1 << 20),
        ..Limits::default()
    };
    // 100 MB at most, should the limit fail.
    let outcome = run(sb
        .shell("head -c 100000000 /dev/zero > fill")
        .limits(limits.clone()))
    .await;
    assert_eq!(
        outcome.status,
        Status::FileSizeLimit,
        "{}",
        outcome.output_text()
    );
    assert_eq!(
        std::fs::metadata(sb.path("work/fill")).unwrap().len(),
        1 << 20
    );

    let outcome = run(sb.shell("head -c 100000 /dev/zero > small").limits(limits)).await;
    assert_eq!(
        outcome.status,
        Status::Exited { code: 0 },
        "{}",
        outcome.output_text()
    );
    assert_eq!(
        std::fs::metadata(sb.path("work/small")).unwrap().len(),
        100_000
    );
}
