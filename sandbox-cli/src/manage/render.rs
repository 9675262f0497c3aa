//! Text for people (and `--json` for programs) of the named-sandbox commands:
//! sandboxes, service states, reload reports, version histories, snapshots and
//! events. Pure functions from the manager's types to strings.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sandbox_core::manager::{
    EventKind, ManagerEvent, ReloadReport, SandboxInfo, ServiceStatus, SnapshotInfo, VersionHistory,
};
use sandbox_core::{format_bytes, format_duration, Limits, Status};

/// Pretty JSON and a newline.
pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(text)
}

/// `2025-01-31T12:34:56.789Z`: UTC, so that it reads the same everywhere.
pub fn utc(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's days-to-civil: exact for the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// `running (pid 42)`, `stopped`, `failed: …`.
pub fn status(status: &ServiceStatus) -> String {
    match status {
        ServiceStatus::None => "none".into(),
        ServiceStatus::Stopped => "stopped".into(),
        ServiceStatus::Running { pid: Some(pid), .. } => format!("running (pid {pid})"),
        ServiceStatus::Running { pid: None, .. } => "running".into(),
        ServiceStatus::Restarting { attempt, after } => format!(
            "restarting (attempt {attempt}, in {})",
            format_duration(*after)
        ),
        ServiceStatus::Failed { reason } => format!("failed: {reason}"),
    }
}

/// How an evaluation ended, in a few words.
pub fn status_text(status: &Status) -> String {
    match status {
        Status::Exited { code } => format!("exited with code {code}"),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
            .unwrap_or_else(|| format!("{other:?}"))
            .replace('_', " "),
    }
}

/// What `create` prints.
pub fn created(info: &SandboxInfo) -> String {
    format!(
        "created sandbox {} (workspace {})\n",
        info.name,
        info.workspace.display()
    )
}

/// The table of `list`.
pub fn list(list: &[SandboxInfo]) -> String {
    if list.is_empty() {
        return "no sandboxes (`sandbox create NAME` makes one)\n".into();
    }
    let mut rows = vec![[
        "NAME".to_string(),
        "SERVICE".into(),
        "MODULES".into(),
        "EVALUATIONS".into(),
        "CREATED".into(),
    ]];
    for info in list {
        rows.push([
            info.name.clone(),
            short_status(&info.service),
            info.modules.len().to_string(),
            info.metrics.evaluations.to_string(),
            utc(info.created_at),
        ]);
    }
    table(&rows)
}

fn short_status(status: &ServiceStatus) -> String {
    match status {
        ServiceStatus::None => "-".into(),
        ServiceStatus::Stopped => "stopped".into(),
        ServiceStatus::Running { .. } => "running".into(),
        ServiceStatus::Restarting { .. } => "restarting".into(),
        ServiceStatus::Failed { .. } => "failed".into(),
    }
}

fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The `key: value` lines of `info`.
pub fn info(info: &SandboxInfo, supervised: bool) -> String {
    let spec = &info.spec;
    let m = &info.metrics;
    let mut lines: Vec<(&str, String)> = vec![
        ("name", info.name.clone()),
        ("created", utc(info.created_at)),
        ("workspace", info.workspace.display().to_string()),
        ("code dir", info.code_dir.display().to_string()),
        (
            "policy",
            if spec.policy.is_unrestricted() {
                "unconfined (limits only)".into()
            } else {
                format!("confined, {} rules", spec.policy.rules().len())
            },
        ),
        ("limits", limits(&spec.limits)),
        (
            "entry",
            if spec.entry.is_empty() {
                "none".into()
            } else {
                spec.entry.join(" ")
            },
        ),
    ];
    match &spec.service {
        Some(service) => {
            let mut state = status(&info.service);
            if !supervised && info.service == ServiceStatus::Stopped {
                state.push_str(" (no supervisor running: `sandbox up`)");
            }
            lines.push(("service", service.command.join(" ")));
            lines.push(("service state", state));
        }
        None => lines.push(("service", "none".into())),
    }
    let modules = if info.modules.is_empty() {
        "none".to_string()
    } else {
        info.modules
            .iter()
            .map(|(name, v)| match v {
                Some(v) => format!("{name} v{v}"),
                None => format!("{name} (inactive)"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    lines.push(("modules", modules));
    lines.push(("restarts", info.restarts.to_string()));
    lines.push((
        "evaluations",
        format!(
            "{} ({} failed, {} timed out, {} hit a limit)",
            m.evaluations, m.failures, m.timeouts, m.limit_hits
        ),
    ));
    lines.push(("violations", m.violations.to_string()));
    lines.push((
        "peak memory",
        m.peak_memory_bytes
            .map(format_bytes)
            .unwrap_or_else(|| "-".into()),
    ));
    lines.push((
        "cpu time",
        format!(
            "{} (wall {})",
            format_duration(m.cpu_time),
            format_duration(m.wall_time)
        ),
    ));
    lines.push((
        "service crashes",
        format!("{} ({} restarts)", m.service_crashes, m.service_restarts),
    ));
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    lines
        .iter()
        .map(|(k, v)| format!("{:<width$} {v}\n", format!("{k}:")))
        .collect()
}

fn limits(limits: &Limits) -> String {
    let mut parts = Vec::new();
    if let Some(v) = limits.memory {
        parts.push(format!("memory {}", format_bytes(v)));
    }
    if let Some(v) = limits.cpu_time {
        parts.push(format!("cpu time {}", format_duration(v)));
    }
    if let Some(v) = limits.pids {
        parts.push(format!("pids {v}"));
    }
    if let Some(v) = limits.file_size {
        parts.push(format!("file size {}", format_bytes(v)));
    }
    if let Some(v) = limits.open_files {
        parts.push(format!("open files {v}"));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

fn version(v: Option<u32>) -> String {
    v.map(|v| format!("v{v}")).unwrap_or_else(|| "none".into())
}

/// One line for a reload or rollback, and why it was abandoned.
pub fn reload(name: &str, report: &ReloadReport, verb: &str) -> String {
    let mut facts = Vec::new();
    if report.service_restarted {
        facts.push("service restarted".to_string());
    }
    if report.migrated {
        facts.push("state migrated".into());
    }
    facts.push(format_duration(report.duration));
    match &report.rolled_back {
        None if report.from == Some(report.to) && verb == "deployed" => format!(
            "{name}: {} v{} unchanged (same bytes as the active version)\n",
            report.module, report.to
        ),
        None => format!(
            "{name}: {verb} {} {} -> v{} ({})\n",
            report.module,
            version(report.from),
            report.to,
            facts.join(", ")
        ),
        Some(reason) => format!(
            "{name}: {} v{} did not take, {} is active again: {reason}\n",
            report.module,
            report.to,
            version(report.from)
        ),
    }
}

/// The histories of `versions`, the active version starred.
pub fn versions(histories: &[VersionHistory]) -> String {
    let mut out = String::new();
    for h in histories {
        let _ = writeln!(
            out,
            "{} (active {}, {} versions)",
            h.module,
            version(h.current_version),
            h.total_versions
        );
        for v in &h.versions {
            let mark = if Some(v.version) == h.current_version {
                '*'
            } else {
                ' '
            };
            let _ = writeln!(
                out,
                "{mark} v{:<4} {:>9}  sha256:{}  {}",
                v.version,
                format_bytes(v.size),
                &v.sha256[..v.sha256.len().min(12)],
                utc(v.created_at)
            );
        }
    }
    out
}

/// What `snapshot` and `restore` print.
pub fn snapshot(name: &str, info: &SnapshotInfo, verb: &str) -> String {
    let mut out = format!(
        "{name}: {verb} snapshot {} ({} files, {}; modules {})\n",
        info.name,
        info.files,
        format_bytes(info.bytes),
        modules(info)
    );
    for skipped in &info.skipped {
        let _ = writeln!(
            out,
            "  skipped {} (not a file, directory or link)",
            skipped.display()
        );
    }
    out
}

fn modules(info: &SnapshotInfo) -> String {
    if info.modules.is_empty() {
        return "none".into();
    }
    info.modules
        .iter()
        .map(|(m, v)| format!("{m} {}", version(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The table of `snapshots`.
pub fn snapshots(name: &str, list: &[SnapshotInfo]) -> String {
    if list.is_empty() {
        return format!("{name} has no snapshots (`sandbox snapshot {name} SNAP` takes one)\n");
    }
    let mut rows = vec![[
        "SNAPSHOT".to_string(),
        "FILES".into(),
        "SIZE".into(),
        "MODULES".into(),
        "CREATED".into(),
    ]];
    for s in list {
        rows.push([
            s.name.clone(),
            s.files.to_string(),
            format_bytes(s.bytes),
            modules(s),
            utc(s.created_at),
        ]);
    }
    table(&rows)
}

/// One event: a JSON line, or `TIME NAME what happened`.
pub fn event(event: &ManagerEvent, json: bool) -> anyhow::Result<String> {
    if json {
        // Flat: {"time":…,"time_ms":…,"sandbox":…,"event":"reloaded",…fields}.
        let mut value = serde_json::to_value(&event.kind)?;
        let since = event.time.duration_since(UNIX_EPOCH).unwrap_or_default();
        value["time"] = utc(event.time).into();
        value["time_ms"] = (since.as_millis() as u64).into();
        value["sandbox"] = event.sandbox.clone().into();
        let mut line = serde_json::to_string(&value)?;
        line.push('\n');
        return Ok(line);
    }
    let what = match &event.kind {
        EventKind::Created => "created".to_string(),
        EventKind::Destroyed => "destroyed".into(),
        EventKind::Restarted => "restarted".into(),
        EventKind::ServiceStarted { pid } => format!("service started{}", pid_text(*pid)),
        EventKind::ServiceCrashed { exit } => format!("service crashed: {exit}"),
        EventKind::ServiceRestarted {
            pid,
            attempt,
            after,
        } => format!(
            "service restarted{} (attempt {attempt}, after {})",
            pid_text(*pid),
            format_duration(*after)
        ),
        EventKind::ServiceFailed { reason } => format!("service failed: {reason}"),
        EventKind::ServiceStopped => "service stopped".into(),
        EventKind::Reloaded {
            module,
            from,
            to,
            migrated,
        } => format!(
            "reloaded {module} {} -> v{to}{}",
            version(*from),
            if *migrated { " (state migrated)" } else { "" }
        ),
        EventKind::RolledBack {
            module,
            from,
            to,
            reason,
        } => format!(
            "rolled back {module} {} -> {}: {reason}",
            version(*from),
            version(*to)
        ),
        EventKind::EvaluationFinished {
            eval,
            status,
            violations,
        } => format!(
            "evaluation {eval} {}{}",
            status_text(status),
            if *violations > 0 {
                format!(", {violations} violations")
            } else {
                String::new()
            }
        ),
        EventKind::SnapshotTaken { snapshot } => format!("snapshot {snapshot} taken"),
        EventKind::SnapshotRestored { snapshot } => format!("snapshot {snapshot} restored"),
    };
    Ok(format!("{} {} {what}\n", utc(event.time), event.sandbox))
}

fn pid_text(pid: Option<u32>) -> String {
    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_are_civil_dates() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(utc(t), "2024-02-29T12:34:56.789Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc(t), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn tables_pad_every_column_but_the_last() {
        let rows = [
            ["NAME".to_string(), "X".into()],
            ["a-long-name".into(), "1".into()],
        ];
        assert_eq!(table(&rows), "NAME         X\na-long-name  1\n");
    }

    #[test]
    fn evaluation_statuses_read_as_words() {
        assert_eq!(
            status_text(&Status::Exited { code: 3 }),
            "exited with code 3"
        );
        assert_eq!(status_text(&Status::TimedOut), "timed out");
    }
}
