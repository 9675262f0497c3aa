//! Isolated compilation: the build may write only to its output directory,
//! and its artifacts are listed and installable as module versions.

use std::fs;
use std::future::Future;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use sandbox_core::manager::{ReloadOptions, OUTPUT_DIR_ENV};
use sandbox_core::{
    Command, EvalRequest, Executor, Manager, Outcome, ResourceUsage, SandboxSpec, Status,
    StreamCounts, Termination,
};

/// Plays the build: writes one artifact where the request says, keeps the request.
struct FakeBuild {
    seen: Mutex<Option<EvalRequest>>,
}

impl Executor for FakeBuild {
    type Error = std::io::Error;

    fn evaluate(
        &self,
        request: EvalRequest,
    ) -> impl Future<Output = Result<Outcome, Self::Error>> + Send {
        let out = Path::new(&request.env[OUTPUT_DIR_ENV]).to_path_buf();
        let result = fs::create_dir_all(out.join("lib"))
            .and_then(|()| fs::write(out.join("lib/plugin.wasm"), b"\0asm"))
            .map(|()| Outcome {
                id: request.id,
                status: Status::Exited { code: 0 },
                termination: Some(Termination::Exited(0)),
                output: b"built 1 artifact\n".to_vec(),
                streams: StreamCounts::default(),
                truncation: None,
                wall_time: Duration::from_millis(42),
                usage: ResourceUsage::default(),
                limits: Vec::new(),
                violations: Vec::new(),
                violations_unlisted: 0,
                weakened: Vec::new(),
            });
        *self.seen.lock().unwrap() = Some(request);
        std::future::ready(result)
    }
}

fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the fake executor is always ready"),
    }
}

#[test]
fn a_build_writes_only_to_its_output_dir_and_yields_installable_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let m = Manager::open(dir.path()).unwrap();
    let info = m.create("b", SandboxSpec::default()).unwrap();
    let executor = FakeBuild {
        seen: Mutex::new(None),
    };
    let build = Command::shell("cc -o $SANDBOX_OUTPUT_DIR/lib/plugin.wasm main.c");
    let compiled = block_on(m.compile(&executor, "b", build, out.path())).unwrap();

    assert!(compiled.success());
    assert_eq!(compiled.artifacts, [out.path().join("lib/plugin.wasm")]);
    assert_eq!(compiled.output, "built 1 artifact\n");
    assert_eq!(compiled.duration, Duration::from_millis(42));

    let request = executor.seen.lock().unwrap().take().unwrap();
    let policy = &request.policy;
    assert!(!policy.is_unrestricted(), "a build is always confined");
    assert!(policy.filesystem.can_write(&out.path().join("x.o")));
    assert!(!policy.filesystem.can_write(&info.workspace.join("x.o")));
    assert!(!policy.filesystem.can_write(&info.code_dir.join("x")));
    assert_eq!(m.metrics("b").unwrap().evaluations, 1);

    let bytes = fs::read(&compiled.artifacts[0]).unwrap();
    let report = m
        .hot_reload("b", "plugin.wasm", &bytes, ReloadOptions::default())
        .unwrap();
    assert_eq!(report.to, 1);
}
