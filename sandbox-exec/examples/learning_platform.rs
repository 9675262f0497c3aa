//! A learning platform: a student's exercise ("print the sum of the numbers
//! on standard input") is compiled in isolation — the compiler reads the
//! sources and writes only its output directory — and the program is run
//! against the test cases, confined, with a memory and process limit and a
//! timeout. Three submissions: one that does not compile (the compiler's
//! errors come back as data), a correct one, and one that loops forever (the
//! timeout ends it).
//!
//! ```text
//! cargo run -p sandbox-exec --example learning_platform
//! ```
//!
//! It compiles C with `cc` when the machine has it, else byte-compiles Python
//! with `python3 -m py_compile`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sandbox_core::manager::{Manager, SandboxSpec};
use sandbox_core::{Command, Limits, Status};
use sandbox_exec::Executor;
use sandbox_policy::{Context, HostFs, Policy};

const TESTS: &[(&str, &str)] = &[("1 2 3\n", "6"), ("40 2\n", "42"), ("\n", "0")];

/// One language the platform grades in: file name, the three submissions,
/// the build command and how to run the artifact.
struct Language {
    source: &'static str,
    submissions: [(&'static str, &'static str); 3],
    build: &'static str,
    run: &'static str,
}

const C: Language = Language {
    source: "sum.c",
    submissions: [
        ("missing semicolon", "#include <stdio.h>\nint main(void) { long s = 0, x; while (scanf(\"%ld\", &x) == 1) s += x printf(\"%ld\\n\", s); return 0; }\n"),
        ("correct", "#include <stdio.h>\nint main(void) { long s = 0, x; while (scanf(\"%ld\", &x) == 1) s += x; printf(\"%ld\\n\", s); return 0; }\n"),
        ("endless loop", "#include <stdio.h>\nint main(void) { volatile long s = 0; for (;;) s++; }\n"),
    ],
    build: r#"cc -O2 -Wall -o "$SANDBOX_OUTPUT_DIR/sum" sum.c"#,
    run: r#""$SANDBOX_OUTPUT_DIR/sum""#,
};

const PYTHON: Language = Language {
    source: "sum.py",
    submissions: [
        (
            "missing parenthesis",
            "import sys\nprint(sum(int(x) for x in sys.stdin.read().split())\n",
        ),
        (
            "correct",
            "import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))\n",
        ),
        ("endless loop", "while True:\n    pass\n"),
    ],
    build: r#"python3 -c 'import py_compile, os; py_compile.compile("sum.py", cfile=os.environ["SANDBOX_OUTPUT_DIR"] + "/sum.pyc", doraise=True)'"#,
    run: r#"python3 "$SANDBOX_OUTPUT_DIR/sum.pyc""#,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    sandbox_exec::dispatch();

    let lang = if on_path("cc") { &C } else { &PYTHON };
    let state = tempfile::tempdir()?;
    let manager = Manager::open(state.path())?;
    let executor = Executor::new()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let spec = SandboxSpec::new(confined_policy()?).limits(Limits {
        memory: Some(128 << 20),
        pids: Some(32),
        ..Limits::default()
    });
    let info = manager.create("exercise-sum", spec)?;
    println!(
        "exercise \"sum\" in sandbox exercise-sum, graded in {}",
        if lang.source.ends_with(".c") {
            "C (cc)"
        } else {
            "Python (python3)"
        }
    );

    for (attempt, (what, code)) in lang.submissions.iter().enumerate() {
        println!("\nsubmission {} ({what}):", attempt + 1);
        std::fs::write(info.workspace.join(lang.source), code)?;
        let out = info.workspace.join(format!("build-{}", attempt + 1));
        let compiled = runtime.block_on(manager.compile(
            &executor,
            "exercise-sum",
            Command::shell(lang.build),
            &out,
        ))?;
        if !compiled.success() {
            println!(
                "  compile failed in {:?}; the compiler said:",
                compiled.duration
            );
            for line in compiled.output.lines().take(6) {
                println!("    | {line}");
            }
            continue;
        }
        println!(
            "  compiled in {:?}: {}",
            compiled.duration,
            names(&compiled.artifacts, &out)
        );
        grade(&manager, &executor, lang, &out)?;
    }

    let m = manager.metrics("exercise-sum")?;
    println!(
        "\nmetrics: {} evaluations (builds and runs), {} failed, {} timed out",
        m.evaluations, m.failures, m.timeouts
    );
    manager.destroy("exercise-sum")?;
    Ok(())
}

/// Runs the artifact in `out` against every test case, each in a fresh child.
fn grade(
    manager: &Manager,
    executor: &Executor,
    lang: &Language,
    out: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut passed = 0;
    for (input, expected) in TESTS {
        let request = manager
            .eval_request("exercise-sum", Command::shell(lang.run))?
            .env("SANDBOX_OUTPUT_DIR", out.display().to_string())
            .stdin(*input)
            .timeout(Duration::from_secs(1))
            .max_output(4096);
        let outcome = executor.evaluate_blocking(request)?;
        manager.record_outcome("exercise-sum", &outcome)?;
        let got = outcome.output_text().trim().to_string();
        let verdict = match &outcome.status {
            Status::Exited { code: 0 } if got == *expected => {
                passed += 1;
                "pass".to_string()
            }
            Status::Exited { code: 0 } => format!("wrong answer {got:?}"),
            Status::TimedOut => format!("timed out after {:?}, killed", outcome.wall_time),
            other => format!("{} (exit status {})", other.name(), outcome.exit_code()),
        };
        println!(
            "  test {:?} -> expected {expected}: {verdict}",
            input.trim()
        );
        if outcome.status == Status::TimedOut {
            // The remaining tests would time out the same way.
            break;
        }
    }
    println!("  {passed}/{} tests passed", TESTS.len());
    Ok(())
}

fn names(artifacts: &[PathBuf], dir: &Path) -> String {
    artifacts
        .iter()
        .map(|a| a.strip_prefix(dir).unwrap_or(a).display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The mandatory policy (read-only host, private /tmp, no network); the
/// manager adds the workspace as writable, `compile` only the output directory.
fn confined_policy() -> Result<Policy, Box<dyn std::error::Error>> {
    let ctx = Context {
        home: std::env::var_os("HOME")
            .unwrap_or_else(|| "/".into())
            .into(),
        cwd: std::env::current_dir()?,
    };
    let (policy, _report) = Policy::builder(ctx).build(&HostFs)?;
    Ok(policy)
}
