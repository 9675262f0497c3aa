//! Answering a [`Request`] with a [`Manager`]: the one implementation of every
//! named-sandbox operation, run by `sandbox up` for its clients and by a
//! command that found no supervisor and opened the state directory itself.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use sandbox_core::manager::{
    validate_module_name, validate_sandbox_name, validate_snapshot_name, Manager, ManagerError,
    ReloadOptions,
};
use sandbox_core::{Command, EvalId, EvalRequest, OutputLimitAction};
use sandbox_exec::Executor;

use super::render;
use super::request::Request;
use crate::control::Sink;
use crate::run::EXIT_SANDBOX_FAILED;
use crate::up::EventLog;

/// What the supervisor adds to a bare manager.
pub struct Supervision {
    /// Recent events and the followers of new ones.
    pub events: Arc<EventLog>,
    /// Runs `--migrate` state handlers.
    pub executor: Executor,
}

/// The manager a request runs against, and whether it supervises services.
pub struct Served<'a> {
    /// The state directory's manager.
    pub manager: &'a Manager,
    /// Present in `sandbox up`.
    pub supervision: Option<&'a Supervision>,
}

/// Exit status of a deploy or rollback whose new version did not take.
pub const EXIT_ROLLED_BACK: i32 = 1;

/// Largest state a `--migrate` command may print (the protocol's limit).
const MAX_STATE: usize = 16 << 20;

impl Served<'_> {
    /// Runs `request`, writing its answer to `sink`; returns the exit status.
    pub fn handle(&self, request: Request, sink: &mut dyn Sink) -> i32 {
        match self.dispatch(request, sink) {
            Ok(code) => code,
            Err(err) => {
                sink.err(&format!("sandbox: error: {}\n", self.explain(&err)));
                EXIT_SANDBOX_FAILED
            }
        }
    }

    /// The error as the user should read it: a missing launcher means no supervisor runs.
    fn explain(&self, err: &anyhow::Error) -> String {
        match err.downcast_ref::<ManagerError>() {
            Some(ManagerError::NoLauncher(name)) => format!(
                "sandbox {name:?} has a service, and no supervisor is running for {}: run `sandbox up`",
                self.manager.state_dir().display()
            ),
            _ => format!("{err:#}"),
        }
    }

    fn no_supervisor(&self) -> anyhow::Error {
        anyhow!(
            "no supervisor is running for {}: run `sandbox up` (services and events live in it)",
            self.manager.state_dir().display()
        )
    }

    fn dispatch(&self, request: Request, sink: &mut dyn Sink) -> anyhow::Result<i32> {
        let m = self.manager;
        match request {
            Request::Create { name, spec, json } => {
                let has_service = spec.service.is_some();
                let info = m.create(&name, spec)?;
                if json {
                    out(sink, &render::json(&info)?)?;
                } else {
                    out(sink, &render::created(&info))?;
                }
                if has_service && self.supervision.is_none() {
                    sink.err(&format!(
                        "sandbox: note: the service of {name:?} is not running: no supervisor is running for {}; it starts with `sandbox up`\n",
                        m.state_dir().display()
                    ));
                }
            }
            Request::List { json } => {
                let list = m.list();
                if json {
                    out(sink, &render::json(&list)?)?;
                } else {
                    out(sink, &render::list(&list))?;
                }
                for (name, err) in m.broken() {
                    sink.err(&format!(
                        "sandbox: warning: sandbox {name:?} cannot be loaded ({err}); `sandbox destroy {name}` removes it\n"
                    ));
                }
            }
            Request::Info { name, json } => {
                valid_name(&name)?;
                let info = m.info(&name)?;
                if json {
                    out(sink, &render::json(&info)?)?;
                } else {
                    out(sink, &render::info(&info, self.supervision.is_some()))?;
                }
            }
            Request::Start { name } => {
                valid_name(&name)?;
                if self.supervision.is_none() {
                    if m.info(&name)?.spec.service.is_none() {
                        return Err(ManagerError::NoService(name).into());
                    }
                    return Err(self.no_supervisor());
                }
                let status = m.start_service(&name)?;
                out(
                    sink,
                    &format!("{name}: service {}\n", render::status(&status)),
                )?;
            }
            Request::Stop { name } => {
                valid_name(&name)?;
                m.stop_service(&name)?;
                if self.supervision.is_some() {
                    out(sink, &format!("{name}: service stopped\n"))?;
                } else {
                    out(
                        sink,
                        &format!(
                            "{name}: service not running (no supervisor is running for {})\n",
                            m.state_dir().display()
                        ),
                    )?;
                }
            }
            Request::Restart { name } => {
                valid_name(&name)?;
                let info = m.restart(&name)?;
                out(
                    sink,
                    &format!(
                        "{name}: restarted (restart {}), service {}\n",
                        info.restarts,
                        render::status(&info.service)
                    ),
                )?;
            }
            Request::Destroy { name } => {
                valid_name(&name)?;
                m.destroy(&name)?;
                out(sink, &format!("destroyed {name}\n"))?;
            }
            Request::Deploy {
                name,
                module,
                bytes,
                migrate,
                grace_ms,
                wait_ready,
                json,
            } => {
                valid_name(&name)?;
                validate_module_name(&module)?;
                let mut opts = ReloadOptions::default()
                    .grace(Duration::from_millis(grace_ms))
                    .wait_ready(wait_ready);
                if let Some(cmd) = &migrate {
                    opts = self.migration(&name, cmd, opts)?;
                }
                let report = m.hot_reload(&name, &module, &bytes, opts)?;
                if json {
                    out(sink, &render::json(&report)?)?;
                } else {
                    out(sink, &render::reload(&name, &report, "deployed"))?;
                    if migrate.is_some() && !report.service_restarted && report.succeeded() {
                        sink.err("sandbox: note: no service was running, so there was no state to migrate\n");
                    }
                }
                if let Some(reason) = &report.rolled_back {
                    if json {
                        sink.err(&format!("sandbox: deploy rolled back: {reason}\n"));
                    }
                    return Ok(EXIT_ROLLED_BACK);
                }
            }
            Request::Versions { name, module, json } => {
                valid_name(&name)?;
                let modules: Vec<String> = match module {
                    Some(module) => {
                        validate_module_name(&module)?;
                        vec![module]
                    }
                    None => m.modules(&name)?.into_keys().collect(),
                };
                let histories = modules
                    .iter()
                    .map(|module| m.get_version_history(&name, module))
                    .collect::<Result<Vec<_>, _>>()?;
                if json {
                    out(sink, &render::json(&histories)?)?;
                } else if histories.is_empty() {
                    out(sink, &format!("{name} has no modules yet (`sandbox deploy {name} MODULE FILE` adds one)\n"))?;
                } else {
                    out(sink, &render::versions(&histories))?;
                }
            }
            Request::Rollback {
                name,
                module,
                version,
            } => {
                valid_name(&name)?;
                validate_module_name(&module)?;
                let report = m.rollback_module(&name, &module, version)?;
                out(sink, &render::reload(&name, &report, "rolled back"))?;
                if report.rolled_back.is_some() {
                    return Ok(EXIT_ROLLED_BACK);
                }
            }
            Request::Snapshot { name, snapshot } => {
                valid_name(&name)?;
                validate_snapshot_name(&snapshot)?;
                let info = m.snapshot(&name, &snapshot)?;
                out(sink, &render::snapshot(&name, &info, "took"))?;
            }
            Request::Restore { name, snapshot } => {
                valid_name(&name)?;
                validate_snapshot_name(&snapshot)?;
                let info = m.restore(&name, &snapshot)?;
                out(sink, &render::snapshot(&name, &info, "restored"))?;
            }
            Request::Snapshots { name, delete, json } => {
                valid_name(&name)?;
                if let Some(snapshot) = delete {
                    validate_snapshot_name(&snapshot)?;
                    m.delete_snapshot(&name, &snapshot)?;
                    out(sink, &format!("deleted snapshot {snapshot} of {name}\n"))?;
                    return Ok(0);
                }
                let list = m.list_snapshots(&name)?;
                if json {
                    out(sink, &render::json(&list)?)?;
                } else {
                    out(sink, &render::snapshots(&name, &list))?;
                }
            }
            Request::Events { name, follow, json } => {
                valid_name(&name)?;
                let Some(sup) = self.supervision else {
                    return Err(self.no_supervisor());
                };
                self.events(sup, &name, follow, json, sink)?;
            }
            Request::Evaluation { name, command } => {
                valid_name(&name)?;
                let request = match command {
                    Some(command) => m.eval_request(&name, command)?,
                    None => m.entry_request(&name)?,
                };
                sink.data(serde_json::to_value(&request)?);
            }
            Request::Build { name, build, out } => {
                valid_name(&name)?;
                let info = m.info(&name)?;
                let out = out.unwrap_or_else(|| info.workspace.join("build"));
                let build = match build {
                    Some(build) => build,
                    None if info.workspace.join("Makefile").is_file() => Command::argv(["make"]),
                    None => bail!(
                        "no build command for {name}: give one after `--` (e.g. `sandbox compile {name} -- cc -o \"$SANDBOX_OUTPUT_DIR/app\" app.c`); without one, `make` runs when the workspace has a Makefile"
                    ),
                };
                let request = m.compile_request(&name, build, &out)?;
                sink.data(serde_json::to_value(&request)?);
            }
            Request::RecordOutcome { name, outcome } => {
                valid_name(&name)?;
                m.record_outcome(&name, &outcome)?;
            }
        }
        Ok(0)
    }

    /// Prints the recent events of `name`, then with `follow` the new ones
    /// until the client hangs up.
    fn events(
        &self,
        sup: &Supervision,
        name: &str,
        follow: bool,
        json: bool,
        sink: &mut dyn Sink,
    ) -> anyhow::Result<()> {
        let (history, live) = sup.events.follow(follow);
        let known = history.iter().any(|e| e.sandbox == name);
        if !known {
            // Unknown and never seen: most likely a typo.
            self.manager.info(name)?;
        }
        for event in history.iter().filter(|e| e.sandbox == name) {
            out(sink, &render::event(event, json)?)?;
        }
        let Some(live) = live else { return Ok(()) };
        loop {
            match live.recv_timeout(Duration::from_millis(500)) {
                Ok(event) if event.sandbox == name => {
                    if sink.out(&render::event(&event, json)?).is_err() {
                        return Ok(());
                    }
                }
                Ok(_) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if sink.closed() {
                        return Ok(());
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
    }

    /// Reload options whose state handler runs `cmd` confined in sandbox `name`.
    fn migration(
        &self,
        name: &str,
        cmd: &str,
        opts: ReloadOptions,
    ) -> anyhow::Result<ReloadOptions> {
        // Built now, not in the handler: the handler runs in the middle of the
        // reload, and the request is the same whatever the versions.
        let base = self
            .manager
            .eval_request(name, migrate_command(cmd))?
            .max_output(MAX_STATE + 1)
            .on_output_limit(OutputLimitAction::Kill)
            .timeout(Duration::from_secs(30));
        let executor = match self.supervision {
            Some(sup) => sup.executor.clone(),
            // No supervisor: no service runs, so the handler is never called.
            None => return Ok(opts),
        };
        Ok(opts.state_handler(move |old_state, from, to| {
            run_migration(&executor, &base, old_state, from, to)
        }))
    }
}

/// `CMD` with its standard error kept apart: the merged output of an
/// evaluation would otherwise mix diagnostics into the new state. The
/// diagnostics are printed after a failure, as the explanation.
fn migrate_command(cmd: &str) -> Command {
    const WRAPPER: &str = r#"e=$(mktemp) || exit 125
/bin/sh -c "$1" 2>"$e"
rc=$?
if [ "$rc" -ne 0 ]; then cat "$e"; fi
rm -f "$e"
exit "$rc""#;
    Command::argv(["/bin/sh", "-c", WRAPPER, "sandbox-migrate", cmd])
}

fn run_migration(
    executor: &Executor,
    base: &EvalRequest,
    old_state: Vec<u8>,
    from: u32,
    to: u32,
) -> Result<Vec<u8>, String> {
    let mut request = base.clone().stdin(old_state);
    request.id = EvalId::next();
    request
        .env
        .insert("SANDBOX_OLD_VERSION".into(), from.to_string());
    request
        .env
        .insert("SANDBOX_NEW_VERSION".into(), to.to_string());
    let outcome = executor
        .evaluate_blocking(request)
        .map_err(|e| format!("the --migrate command could not run: {e}"))?;
    if !outcome.status.success() {
        let text = outcome.output_text();
        let tail: String = text
            .chars()
            .rev()
            .take(2000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(format!(
            "the --migrate command {}: {}",
            render::status_text(&outcome.status),
            tail.trim()
        ));
    }
    Ok(outcome.output)
}

fn valid_name(name: &str) -> anyhow::Result<()> {
    Ok(validate_sandbox_name(name)?)
}

fn out(sink: &mut dyn Sink, text: &str) -> anyhow::Result<()> {
    // A reader that went away is not an error of the operation, which is done.
    let _ = sink.out(text);
    Ok(())
}
