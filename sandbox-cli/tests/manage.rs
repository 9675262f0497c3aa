//! End-to-end tests of the named-sandbox commands and of `sandbox up`: each
//! test spawns the real binary with its own temporary state directory
//! (`SANDBOX_STATE_DIR`), HOME and working directory, so no state or settings
//! of the machine leak in. Like the other CLI tests they read nothing from the
//! source tree at run time and also run as an unprivileged user (SANDBOX_BIN).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use common::sandbox_bin;

/// A state directory, HOME and working directory of one test.
struct Env {
    dir: tempfile::TempDir,
}

/// What a finished command printed, shown whole when an assertion fails.
struct Done {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Env {
    fn new() -> Env {
        let env = Env {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        for sub in ["home", "cwd"] {
            std::fs::create_dir(env.dir.path().join(sub)).expect("create dir");
        }
        env
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn cwd(&self) -> PathBuf {
        self.dir.path().join("cwd")
    }

    fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(sandbox_bin());
        cmd.args(args)
            .env("SANDBOX_STATE_DIR", self.state())
            .env("HOME", self.dir.path().join("home"))
            .env_remove("XDG_DATA_HOME")
            .current_dir(self.cwd())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `sandbox ARGS…` to the end.
    fn run<I, S>(&self, args: I) -> Done
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let out: Output = self.command(args).output().expect("run the sandbox binary");
        Done {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `sandbox ARGS…` and asserts it exits 0.
    fn ok<I, S>(&self, args: I) -> Done
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let done = self.run(args);
        assert_eq!(done.code, 0, "{done:?}");
        done
    }

    fn info(&self, name: &str) -> serde_json::Value {
        let done = self.ok(["info", name, "--json"]);
        serde_json::from_str(&done.stdout).unwrap_or_else(|e| panic!("{e}: {done:?}"))
    }

    fn write(&self, file: &str, bytes: &[u8]) -> PathBuf {
        let path = self.cwd().join(file);
        std::fs::write(&path, bytes).expect("write a test file");
        path
    }

    /// Starts `sandbox up` and waits until it serves.
    fn up(&self) -> Up {
        let mut child = self
            .command(["up"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sandbox up");
        let lines = lines(child.stderr.take().expect("stderr"));
        let mut up = Up {
            child,
            lines,
            log: Vec::new(),
        };
        up.wait_for("supervising");
        up
    }
}

/// A running `sandbox up`, stopped with SIGTERM when dropped.
struct Up {
    child: Child,
    lines: Receiver<String>,
    log: Vec<String>,
}

impl Up {
    /// Waits for a line of its log containing `text`.
    fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log.iter().any(|l| l.contains(text)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.log.push(line),
                Err(_) => panic!(
                    "sandbox up never logged {text:?}; log:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    /// Sends SIGTERM and returns its exit code and whole log.
    fn stop(&mut self) -> (i32, String) {
        // SAFETY: kill(2) on the pid of our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().expect("wait for sandbox up");
        self.log.extend(self.lines.iter());
        (status.code().unwrap_or(-1), self.log.join("\n"))
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

fn lines(pipe: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// True while `pid` runs (a zombie waiting for its reaper has stopped running).
fn process_runs(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which ends with the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits for `check` to hold, up to 10 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn create_list_info_destroy_round_trip() {
    let env = Env::new();
    let done = env.ok(["create", "demo", "--memory", "64MiB", "--pids", "32"]);
    assert!(done.stdout.starts_with("created sandbox demo"), "{done:?}");

    let list = env.ok(["list"]);
    assert!(
        list.stdout
            .lines()
            .nth(1)
            .unwrap_or("")
            .starts_with("demo "),
        "{list:?}"
    );

    let info = env.info("demo");
    assert_eq!(info["name"], "demo");
    assert_eq!(info["spec"]["limits"]["memory"], 64 << 20);
    assert_eq!(info["spec"]["limits"]["pids"], 32);
    assert_eq!(info["service"]["state"], "none");
    let workspace = PathBuf::from(info["workspace"].as_str().unwrap());
    assert!(workspace.is_dir());

    env.ok(["destroy", "demo"]);
    assert!(
        !workspace.exists(),
        "the default workspace goes with the sandbox"
    );
    let list = env.ok(["list", "--json"]);
    assert_eq!(list.stdout.trim(), "[]");
    let gone = env.run(["info", "demo"]);
    assert_eq!(gone.code, 125, "{gone:?}");
    assert_eq!(gone.stderr, "sandbox: error: no sandbox named \"demo\"\n");
}

#[test]
fn bad_names_are_refused_with_what_is_accepted() {
    let env = Env::new();
    let done = env.run(["create", "Bad Name"]);
    assert_eq!(done.code, 125, "{done:?}");
    insta::assert_snapshot!(done.stderr, @r#"sandbox: error: invalid sandbox name "Bad Name": use 1-63 characters from a-z, 0-9, '_' and '-', starting with a letter or digit"#);
    assert!(!env.state().join("sandboxes/Bad Name").exists());

    env.ok(["create", "demo"]);
    let done = env.run(["deploy", "demo", "../escape", "/dev/null"]);
    assert_eq!(done.code, 125, "{done:?}");
    assert!(
        done.stderr.contains("invalid module name \"../escape\""),
        "{done:?}"
    );
    let done = env.run(["snapshot", "demo", "a/b"]);
    assert_eq!(done.code, 125, "{done:?}");
    assert!(
        done.stderr.contains("invalid snapshot name \"a/b\""),
        "{done:?}"
    );
}

#[test]
fn a_duplicate_name_is_refused() {
    let env = Env::new();
    env.ok(["create", "demo"]);
    let done = env.run(["create", "demo"]);
    assert_eq!(done.code, 125, "{done:?}");
    insta::assert_snapshot!(done.stderr, @r#"sandbox: error: a sandbox named "demo" already exists (destroy it first or pick another name)"#);
}

#[test]
fn rollback_restores_the_exact_bytes_of_an_earlier_version() {
    let env = Env::new();
    env.ok(["create", "demo"]);
    // Not UTF-8, no trailing newline: the bytes must come back as they went in.
    let v1: &[u8] = b"\x00\xffplugin one\r\n\x7f";
    let v2: &[u8] = b"plugin two";
    env.ok([
        "deploy",
        "demo",
        "plugin.bin",
        env.write("v1", v1).to_str().unwrap(),
    ]);
    let done = env.ok([
        "deploy",
        "demo",
        "plugin.bin",
        env.write("v2", v2).to_str().unwrap(),
    ]);
    assert!(done.stdout.contains("v1 -> v2"), "{done:?}");

    let versions: serde_json::Value =
        serde_json::from_str(&env.ok(["versions", "demo", "--json"]).stdout).unwrap();
    assert_eq!(versions[0]["module"], "plugin.bin");
    assert_eq!(versions[0]["current_version"], 2);
    assert_eq!(versions[0]["total_versions"], 2);
    assert_eq!(versions[0]["versions"][0]["size"], v1.len());

    let done = env.ok(["rollback", "demo", "plugin.bin", "1"]);
    assert!(
        done.stdout.contains("rolled back plugin.bin v2 -> v1"),
        "{done:?}"
    );
    let code_dir = PathBuf::from(env.info("demo")["code_dir"].as_str().unwrap().to_string());
    assert_eq!(std::fs::read(code_dir.join("plugin.bin")).unwrap(), v1);
    let versions = env.ok(["versions", "demo", "plugin.bin"]);
    assert!(versions.stdout.contains("* v1"), "{versions:?}");
}

#[test]
fn rollback_to_a_missing_version_says_how_many_there_are() {
    let env = Env::new();
    env.ok(["create", "demo"]);
    env.ok([
        "deploy",
        "demo",
        "m",
        env.write("v1", b"1").to_str().unwrap(),
    ]);
    let done = env.run(["rollback", "demo", "m", "7"]);
    assert_eq!(done.code, 125, "{done:?}");
    insta::assert_snapshot!(done.stderr, @r#"sandbox: error: module "m" of sandbox "demo" has no version 7 (it has 1)"#);
}

#[test]
fn restore_puts_back_the_workspace_and_versions_of_a_snapshot() {
    let env = Env::new();
    env.ok(["create", "demo"]);
    env.ok([
        "deploy",
        "demo",
        "m",
        env.write("v1", b"one").to_str().unwrap(),
    ]);
    env.ok(["exec", "demo", "echo kept > notes.txt"]);
    env.ok(["snapshot", "demo", "before"]);

    env.ok([
        "deploy",
        "demo",
        "m",
        env.write("v2", b"two").to_str().unwrap(),
    ]);
    env.ok(["exec", "demo", "rm notes.txt; echo new > other.txt"]);
    let done = env.ok(["restore", "demo", "before"]);
    assert!(done.stdout.contains("restored snapshot before"), "{done:?}");

    let done = env.ok([
        "exec",
        "demo",
        "cat notes.txt; ls; cat \"$SANDBOX_CODE_DIR/m\"",
    ]);
    assert_eq!(done.stdout, "kept\nnotes.txt\none", "{done:?}");
    let list = env.ok(["snapshots", "demo"]);
    assert!(
        list.stdout
            .lines()
            .nth(1)
            .unwrap_or("")
            .starts_with("before "),
        "{list:?}"
    );
}

#[test]
fn exec_runs_in_the_workspace_with_the_code_dir_readable_not_writable() {
    let env = Env::new();
    env.ok(["create", "demo"]);
    env.ok([
        "deploy",
        "demo",
        "tool.sh",
        env.write("tool", b"echo tool v1").to_str().unwrap(),
    ]);
    let workspace = env.info("demo")["workspace"].as_str().unwrap().to_string();
    let done = env.run([
        "exec",
        "demo",
        "--",
        "sh",
        "-c",
        "pwd; sh \"$SANDBOX_CODE_DIR/tool.sh\"; \
         { echo x > \"$SANDBOX_CODE_DIR/tool.sh\"; } 2>/dev/null && echo WROTE-CODE; \
         echo w > in-workspace.txt && echo wrote-workspace",
    ]);
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(
        done.stdout,
        format!("{workspace}\ntool v1\nwrote-workspace\n"),
        "{done:?}"
    );
    assert!(Path::new(&workspace).join("in-workspace.txt").is_file());
}

#[test]
fn exec_exits_like_run_and_counts_outcomes_in_info() {
    let env = Env::new();
    env.ok(["create", "demo"]);
    assert_eq!(env.run(["exec", "demo", "exit 3"]).code, 3);
    let done = env.run(["exec", "demo", "--timeout", "300ms", "sleep 5"]);
    assert_eq!(done.code, 124, "{done:?}");
    let done = env.ok(["exec", "demo", "--json", "echo hi"]);
    let outcome: serde_json::Value = serde_json::from_str(&done.stdout).unwrap();
    assert_eq!(outcome["status"]["kind"], "exited");

    let metrics = &env.info("demo")["metrics"];
    assert_eq!(metrics["evaluations"], 3);
    assert_eq!(metrics["failures"], 2);
    assert_eq!(metrics["timeouts"], 1);
    assert!(
        metrics["wall_time_ms"].as_u64().unwrap() >= 300,
        "{metrics}"
    );
}

#[test]
fn exec_without_a_command_runs_the_entry_command() {
    let env = Env::new();
    env.ok(["create", "demo", "--entry", "echo entry in $SANDBOX_NAME"]);
    assert_eq!(env.ok(["exec", "demo"]).stdout, "entry in demo\n");
}

#[test]
fn compile_writes_only_to_its_output_directory() {
    let env = Env::new();
    let src = env.cwd().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("prog.txt"), "source\n").unwrap();
    let done = env.ok([
        "compile",
        "./src",
        "--",
        "cp prog.txt \"$SANDBOX_OUTPUT_DIR/prog.out\"; { echo x > beside-the-source; } 2>/dev/null || echo refused",
    ]);
    assert!(done.stdout.starts_with("refused\n"), "{done:?}");
    assert!(done.stdout.contains("  prog.out (Other)\n"), "{done:?}");
    assert_eq!(
        std::fs::read_to_string(src.join("build/prog.out")).unwrap(),
        "source\n"
    );
    assert!(!src.join("beside-the-source").exists());
}

#[test]
fn a_build_whose_artifact_is_malformed_fails_validation() {
    let env = Env::new();
    env.ok(["create", "demo"]);
    // Exits 0, but its "binary" is neither ELF nor a script.
    let done = env.run([
        "compile",
        "demo",
        "--",
        "echo junk > \"$SANDBOX_OUTPUT_DIR/prog\"; chmod +x \"$SANDBOX_OUTPUT_DIR/prog\"; echo '{}' > \"$SANDBOX_OUTPUT_DIR/meta.json\"",
    ]);
    assert_eq!(done.code, 1, "{done:?}");
    assert!(
        done.stdout
            .contains("prog: is executable but neither an ELF binary nor a #! script"),
        "{done:?}"
    );
    assert!(done.stdout.contains("meta.json (Json)"), "{done:?}");
}

#[test]
fn compile_failures_come_back_with_the_build_output() {
    let env = Env::new();
    env.ok(["create", "demo"]);
    let done = env.run([
        "compile",
        "demo",
        "--",
        "echo 'prog.c:1: error: expected ;' >&2; exit 2",
    ]);
    assert_eq!(done.code, 2, "{done:?}");
    assert!(
        done.stdout.contains("prog.c:1: error: expected ;"),
        "{done:?}"
    );
    assert!(
        done.stderr.contains("the build exited with code 2"),
        "{done:?}"
    );
    assert_eq!(env.info("demo")["metrics"]["failures"], 1);
}

#[test]
fn start_without_a_supervisor_says_to_run_up() {
    let env = Env::new();
    let done = env.ok(["create", "web", "--service", "sleep 1000"]);
    assert!(
        done.stderr.contains("it starts with `sandbox up`"),
        "{done:?}"
    );
    let done = env.run(["start", "web"]);
    assert_eq!(done.code, 125, "{done:?}");
    let expected = format!(
        "sandbox: error: no supervisor is running for {}: run `sandbox up` (services and events live in it)\n",
        env.state().display()
    );
    assert_eq!(done.stderr, expected);
}

#[test]
fn a_second_up_on_the_same_state_dir_is_refused() {
    let env = Env::new();
    let _up = env.up();
    let done = env.run(["up"]);
    assert_eq!(done.code, 125, "{done:?}");
    assert!(
        done.stderr
            .contains("state directory is in use by another manager"),
        "{done:?}"
    );
    assert!(
        done.stderr.contains("is `sandbox up` already running"),
        "{done:?}"
    );
    // The first one still serves.
    env.ok(["list"]);
}

/// A counter service speaking the control protocol; it writes the state it
/// imports to the workspace, where the test can read it.
const COUNTER: &str = r#"import sys
state = b"1"
inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    line = inp.readline()
    if not line:
        break
    if line == b"EXPORT\n":
        out.write(b"STATE %d\n" % len(state) + state)
    elif line.startswith(b"IMPORT "):
        state = inp.read(int(line[7:]))
        open("state.txt", "wb").write(state)
        out.write(b"IMPORTED\n")
    out.flush()
"#;

#[test]
fn deploy_under_up_migrates_the_service_state_and_events_show_the_reload() {
    let env = Env::new();
    env.ok([
        "create",
        "web",
        "--service",
        "exec python3 \"$SANDBOX_CODE_DIR/counter.py\"",
    ]);
    env.ok([
        "deploy",
        "web",
        "counter.py",
        env.write("c1", COUNTER.as_bytes()).to_str().unwrap(),
    ]);
    let mut up = env.up();
    up.wait_for("web service started");
    let pid_v1 = env.info("web")["service"]["pid"]
        .as_u64()
        .expect("a running service");

    let v2 = format!("{COUNTER}# v2\n");
    let done = env.ok([
        "deploy",
        "web",
        "counter.py",
        env.write("c2", v2.as_bytes()).to_str().unwrap(),
        "--migrate",
        "read n; printf %s \"$((n * 10 + SANDBOX_NEW_VERSION))\"",
    ]);
    assert!(
        done.stdout
            .contains("v1 -> v2 (service restarted, state migrated"),
        "{done:?}"
    );
    assert_eq!(env.ok(["exec", "web", "cat state.txt"]).stdout, "12");
    eventually("the old service process is gone", || !process_runs(pid_v1));

    let events = env.ok(["events", "web"]);
    assert!(
        events
            .stdout
            .contains("web reloaded counter.py v1 -> v2 (state migrated)"),
        "{events:?}"
    );
    let json = env.ok(["events", "web", "--json"]);
    let reloaded: Vec<serde_json::Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["event"] == "reloaded")
        .collect();
    assert_eq!(reloaded.len(), 1, "{json:?}");
    assert_eq!(reloaded[0]["migrated"], true);
}

#[test]
fn a_failing_migration_rolls_back_to_the_running_old_version() {
    let env = Env::new();
    env.ok([
        "create",
        "web",
        "--service",
        "exec python3 \"$SANDBOX_CODE_DIR/counter.py\"",
    ]);
    env.ok([
        "deploy",
        "web",
        "counter.py",
        env.write("c1", COUNTER.as_bytes()).to_str().unwrap(),
    ]);
    let mut up = env.up();
    up.wait_for("web service started");
    let v2 = format!("{COUNTER}# v2\n");
    let done = env.run([
        "deploy",
        "web",
        "counter.py",
        env.write("c2", v2.as_bytes()).to_str().unwrap(),
        "--migrate",
        "echo cannot read this state >&2; exit 4",
    ]);
    assert_eq!(done.code, 1, "{done:?}");
    assert!(
        done.stdout
            .contains("counter.py v2 did not take, v1 is active again"),
        "{done:?}"
    );
    assert!(
        done.stdout
            .contains("exited with code 4: cannot read this state"),
        "{done:?}"
    );
    let info = env.info("web");
    assert_eq!(info["modules"]["counter.py"], 1);
    assert_eq!(info["service"]["state"], "running");
}

#[test]
fn events_follow_streams_new_events() {
    let env = Env::new();
    let _up = env.up();
    env.ok(["create", "demo"]);
    let mut follower = env
        .command(["events", "demo", "--follow"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines(follower.stdout.take().unwrap());
    let first = lines
        .recv_timeout(Duration::from_secs(10))
        .expect("history");
    assert!(first.ends_with("demo created"), "{first}");
    env.ok(["snapshot", "demo", "s1"]);
    let next = lines
        .recv_timeout(Duration::from_secs(10))
        .expect("a live event");
    assert!(next.ends_with("demo snapshot s1 taken"), "{next}");
    let _ = follower.kill();
    let _ = follower.wait();
}

#[test]
fn sigterm_stops_up_and_every_service_with_it() {
    let env = Env::new();
    env.ok(["create", "web", "--service", "sleep 1000"]);
    let mut up = env.up();
    up.wait_for("web service started");
    let pid = env.info("web")["service"]["pid"]
        .as_u64()
        .expect("a running service");
    assert!(process_runs(pid));
    let (code, log) = up.stop();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("every service stopped"), "{log}");
    eventually("the service process is gone", || !process_runs(pid));
    assert!(!env.state().join("control.sock").exists());
    // Without a supervisor the state directory opens directly again.
    assert_eq!(env.info("web")["service"]["state"], "stopped");
}

/// Resident memory of `pid` in KiB (VmRSS).
fn rss_kib(pid: u32) -> u64 {
    proc_kib(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// Proportional set size of `pid` in KiB: its resident memory with shared
/// pages (the binary, libc) divided among their users, so summing it over
/// many processes does not count the same page many times.
fn pss_kib(pid: u32) -> u64 {
    proc_kib(&format!("/proc/{pid}/smaps_rollup"), "Pss:")
}

fn proc_kib(file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Every live process whose ancestors include `root` (not `root` itself).
fn descendants(root: u32) -> Vec<u32> {
    let mut parent = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            continue;
        }
        if let Some(ppid) = fields.get(1).and_then(|p| p.parse::<u32>().ok()) {
            parent.insert(pid, ppid);
        }
    }
    parent
        .keys()
        .copied()
        .filter(|&pid| {
            let mut p = pid;
            while let Some(&pp) = parent.get(&p) {
                if pp == root {
                    return true;
                }
                p = pp;
            }
            false
        })
        .collect()
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// The issue 5 targets through the CLI, printed rather than asserted where
/// they are figures: `cargo test -p sandbox-cli --test manage -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement (about a minute); run by hand with --ignored --nocapture"]
fn measure_idle_services_and_create_destroy_leaks() {
    let env = Env::new();
    let up = env.up();
    let up_pid = up.child.id();
    std::thread::sleep(Duration::from_millis(300));
    let rss_empty = rss_kib(up_pid);
    let mounts_before = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    let fds_before = entries(Path::new(&format!("/proc/{up_pid}/fd")));

    // 100 sandboxes, each with an idle service.
    let started = Instant::now();
    for i in 0..100 {
        env.ok([
            "create",
            &format!("idle-{i}"),
            "--service",
            "exec sleep 100000",
        ]);
    }
    let create_100 = started.elapsed();
    eventually("100 services running", || {
        let list: serde_json::Value =
            serde_json::from_str(&env.ok(["list", "--json"]).stdout).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .all(|s| s["service"]["state"] == "running")
    });
    std::thread::sleep(Duration::from_millis(500));
    let rss_100 = rss_kib(up_pid);
    let procs = descendants(up_pid);
    let services_rss: u64 = procs.iter().map(|&p| rss_kib(p)).sum();
    let services_pss: u64 = procs.iter().map(|&p| pss_kib(p)).sum();
    let threads = entries(Path::new(&format!("/proc/{up_pid}/task")));
    println!(
        "100 idle services: created in {create_100:?}; supervisor RSS {rss_empty} KiB empty -> {rss_100} KiB \
         ({:.1} KiB per sandbox in the supervisor, {threads} threads); {} service processes (runner, init, \
         service): PSS {services_pss} KiB together ({:.0} KiB per sandbox), RSS summed {services_rss} KiB",
        (rss_100.saturating_sub(rss_empty)) as f64 / 100.0,
        procs.len(),
        services_pss as f64 / 100.0
    );

    // Hot reload end to end: `sandbox deploy` of a running service, grace 0.
    let mut times = Vec::new();
    for i in 0..21 {
        let file = env.write("m", format!("version {i}\n").as_bytes());
        let t = Instant::now();
        env.ok([
            "deploy",
            "idle-0",
            "m",
            file.to_str().unwrap(),
            "--grace",
            "0ms",
        ]);
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "sandbox deploy of a running service (CLI process + socket + kill + confined start), p50 {:?}, max {:?}",
        times[times.len() / 2],
        times[times.len() - 1]
    );
    for i in 0..100 {
        env.ok(["destroy", &format!("idle-{i}")]);
    }

    // 1,000 create+destroy with a service each.
    let started = Instant::now();
    for i in 0..1000 {
        let name = format!("churn-{i}");
        env.ok(["create", &name, "--service", "exec sleep 100000"]);
        env.ok(["destroy", &name]);
    }
    let churn = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let left = descendants(up_pid);
    let mounts_after = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    let fds_after = entries(Path::new(&format!("/proc/{up_pid}/fd")));
    let sandboxes = entries(&env.state().join("sandboxes"));
    let objects = entries(&env.state().join("objects"));
    println!(
        "1,000 create+destroy with a service in {churn:?}: {} processes left under the supervisor, \
         mounts {mounts_before} -> {mounts_after}, supervisor fds {fds_before} -> {fds_after}, \
         {sandboxes} sandbox dirs and {objects} module objects left; supervisor RSS {} KiB",
        left.len(),
        rss_kib(up_pid)
    );
    assert!(left.is_empty(), "processes left: {left:?}");
    assert_eq!(mounts_before, mounts_after);
    assert_eq!(fds_before, fds_after);
    assert_eq!((sandboxes, objects), (0, 0));
}
