//! `sandbox policy show` and `sandbox policy check`: the effective policy rule by
//! rule with its origin, and a validation report of every settings file and flag.
//! The JSON shapes are described in `POLICY.md` next to this crate's `Cargo.toml`.

use std::fmt::Write as _;

use sandbox_policy::settings::base_dir;
use sandbox_policy::{
    Context, HostFs, Kind, Layer, LinuxPlan, Origin, Policy, PolicyError, Report, SettingsError,
    Warning,
};
use serde_json::{json, Value};

use crate::args::{PolicyCheckArgs, PolicyInputs, PolicyShowArgs};
use crate::policy_build::{self, describe, error_file, layer_file};
use crate::run::EXIT_SANDBOX_FAILED;

/// Exit status of `policy check` when some input is invalid.
pub const EXIT_INVALID: i32 = 1;

/// The rule lists in display order: srt list name and heading.
const GROUPS: [(&str, &str); 8] = [
    ("denyRead", "deny read"),
    ("allowRead", "allow read"),
    ("allowWrite", "allow write"),
    ("denyWrite", "deny write"),
    ("allowedDomains", "network allow"),
    ("deniedDomains", "network deny"),
    ("allowUnixSockets", "unix sockets allow"),
    ("denyUnixSockets", "unix sockets deny"),
];

/// Runs `sandbox policy show` and returns the exit status.
pub fn show(args: PolicyShowArgs) -> i32 {
    let ctx = match policy_build::host_context() {
        Ok(ctx) => ctx,
        Err(err) => return fail(&format!("{err:#}")),
    };
    let (policy, report) = match policy_build::build(&args.inputs, ctx) {
        Ok(built) => built,
        Err(err) => return fail(&describe(&err)),
    };
    print_warnings(&report.warnings);
    let plan = policy.linux_plan(&HostFs);
    if args.json {
        println!("{}", show_json(&policy, &report, &plan));
    } else {
        print!("{}", show_human(&policy, &report, &plan));
    }
    0
}

/// Runs `sandbox policy check` and returns the exit status: 0 valid, 1 invalid.
pub fn check(args: PolicyCheckArgs) -> i32 {
    let ctx = match policy_build::host_context() {
        Ok(ctx) => ctx,
        Err(err) => return fail(&format!("{err:#}")),
    };
    let result = check_inputs(&args.inputs, &ctx);
    if args.json {
        println!("{}", check_json(&result));
    } else {
        print!("{}", check_human(&result));
    }
    if result.errors.is_empty() {
        0
    } else {
        EXIT_INVALID
    }
}

fn fail(message: &str) -> i32 {
    eprintln!("sandbox: error: {message}");
    EXIT_SANDBOX_FAILED
}

/// Prints settings warnings on standard error, one per line.
pub fn print_warnings(warnings: &[Warning]) {
    for warning in warnings {
        eprintln!("sandbox: warning: {warning}");
    }
}

/// What `policy check` found: every input is checked on its own, so one bad
/// file does not hide the problems of the next.
#[derive(Debug, Default)]
pub struct CheckResult {
    /// What was checked, in order (`user settings /…`, `--allow "…"`).
    pub checked: Vec<String>,
    /// Errors, in input order.
    pub errors: Vec<PolicyError>,
    /// Warnings, in input order.
    pub warnings: Vec<Warning>,
}

/// Checks each settings file (user, project, `--settings`) and each flag alone.
pub fn check_inputs(inputs: &PolicyInputs, ctx: &Context) -> CheckResult {
    let mut result = CheckResult::default();
    let mut files = vec![
        (Layer::User(ctx.home.join(".sandbox/settings.json")), true),
        (Layer::Project(ctx.cwd.join(".sandbox/settings.json")), true),
    ];
    if let Some(file) = &inputs.settings {
        files.push((Layer::SettingsFile(ctx.cwd.join(file)), false));
    }
    for (layer, optional) in files {
        let Some(path) = layer_file(&layer).cloned() else {
            continue;
        };
        if optional && !path.exists() {
            continue;
        }
        result.checked.push(layer.to_string());
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(source) => {
                result
                    .errors
                    .push(SettingsError::Read { path, source }.into());
                continue;
            }
        };
        let builder =
            Policy::builder(ctx.clone()).settings_json(layer.clone(), base_dir(&path), text);
        result.record(builder.build(&HostFs));
    }
    for (flag, list, allow) in [
        ("--allow", &inputs.allow, true),
        ("--deny", &inputs.deny, false),
    ] {
        for text in list {
            result.checked.push(format!("{flag} {text:?}"));
            let builder = Policy::builder(ctx.clone());
            let builder = if allow {
                builder.allow(text.as_str())
            } else {
                builder.deny(text.as_str())
            };
            result.record(builder.build(&HostFs));
        }
    }
    result
}

impl CheckResult {
    fn record(&mut self, built: Result<(Policy, Report), PolicyError>) {
        match built {
            Ok((_, report)) => self.warnings.extend(report.warnings),
            Err(err) => self.errors.push(err),
        }
    }
}

/// The human report of `policy check`.
pub fn check_human(result: &CheckResult) -> String {
    let mut out = String::new();
    if result.checked.is_empty() {
        out.push_str("checked: nothing (no settings file, no flag)\n");
    } else {
        let _ = writeln!(out, "checked: {}", result.checked.join(", "));
    }
    for err in &result.errors {
        let _ = writeln!(out, "error: {}", describe(err));
    }
    for warning in &result.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    let (e, w) = (result.errors.len(), result.warnings.len());
    let _ = writeln!(
        out,
        "{}: {e} error{}, {w} warning{}",
        if e == 0 { "valid" } else { "invalid" },
        plural(e),
        plural(w)
    );
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The JSON report of `policy check` (see POLICY.md).
pub fn check_json(result: &CheckResult) -> Value {
    json!({
        "valid": result.errors.is_empty(),
        "checked": result.checked,
        "errors": result.errors.iter().map(error_json).collect::<Vec<_>>(),
        "warnings": result.warnings.iter().map(warning_json).collect::<Vec<_>>(),
    })
}

fn error_json(err: &PolicyError) -> Value {
    let (field, line, column) = match err {
        PolicyError::Settings(SettingsError::Json { line, column, .. }) => {
            (None, Some(*line), Some(*column))
        }
        PolicyError::Settings(SettingsError::Invalid { field, .. })
        | PolicyError::Permission { field, .. } => (Some(field.clone()), None, None),
        PolicyError::Settings(SettingsError::Read { .. }) => (None, None, None),
    };
    json!({
        "file": error_file(err).map(|p| p.display().to_string()),
        "field": field,
        "line": line,
        "column": column,
        "message": describe(err),
    })
}

fn warning_json(warning: &Warning) -> Value {
    json!({
        "layer": layer_json(&warning.layer),
        "file": layer_file(&warning.layer).map(|p| p.display().to_string()),
        "message": warning.message,
    })
}

/// `{"kind": "mandatory"|"user"|"project"|"settings_file"|"flag", "path": …}`.
fn layer_json(layer: &Layer) -> Value {
    let kind = match layer {
        Layer::Mandatory => "mandatory",
        Layer::User(_) => "user",
        Layer::Project(_) => "project",
        Layer::SettingsFile(_) => "settings_file",
        Layer::Flag => "flag",
    };
    json!({
        "kind": kind,
        "path": layer_file(layer).map(|p| p.display().to_string()),
    })
}

fn origin_json(origin: &Origin) -> Value {
    json!({
        "layer": layer_json(&origin.layer),
        "field": origin.field,
        "text": origin.text,
    })
}

/// The JSON object of `policy show` (see POLICY.md).
pub fn show_json(policy: &Policy, report: &Report, plan: &LinuxPlan) -> Value {
    let net = &policy.network;
    let gaps = &plan.gaps;
    json!({
        "layers": report.layers.iter().map(layer_json).collect::<Vec<_>>(),
        "rules": policy.rules().iter().map(|r| json!({
            "list": r.list,
            "value": r.value,
            "origin": origin_json(&r.origin),
        })).collect::<Vec<_>>(),
        "network": {
            "allow_local_binding": net.allow_local_binding,
            "allow_private_destinations": net.allow_private_destinations,
            "resolve": net.resolve.iter().map(|(k, v)| (k.clone(), json!(v.to_string()))).collect::<serde_json::Map<_, _>>(),
            "http_proxy_port": net.http_proxy_port,
            "socks_proxy_port": net.socks_proxy_port,
        },
        "warnings": report.warnings.iter().map(warning_json).collect::<Vec<_>>(),
        "linux_gaps": gaps.iter().map(|g| json!({
            "rule": g.rule.as_ref().map(origin_json),
            "reason": g.reason,
        })).collect::<Vec<_>>(),
        "linux_stand_ins": plan.placeholders.iter().map(|p| json!({
            "path": p.path,
            "kind": if p.kind == Kind::Dir { "directory" } else { "file" },
            "rule": origin_json(&p.rule),
        })).collect::<Vec<_>>(),
    })
}

/// Where a rule came from, for the table: the layer, then the field and text.
fn origin_text(origin: &Origin) -> (String, String) {
    match &origin.layer {
        Layer::Mandatory => ("mandatory".into(), String::new()),
        Layer::Flag => (
            "command line".into(),
            format!("{} {:?}", origin.field, origin.text),
        ),
        layer => (
            layer.to_string(),
            format!("{} {:?}", origin.field, origin.text),
        ),
    }
}

/// The human table of `policy show`: one group per list, each rule with its
/// layer, then the network settings, the Linux stand-ins and gaps.
pub fn show_human(policy: &Policy, report: &Report, plan: &LinuxPlan) -> String {
    let gaps = &plan.gaps;
    let mut out = String::new();
    let mut layers: Vec<String> = vec!["mandatory".into()];
    layers.extend(report.layers.iter().map(Layer::to_string));
    if policy.rules().iter().any(|r| r.origin.layer == Layer::Flag) {
        layers.push("command line".into());
    }
    let _ = writeln!(out, "layers: {}", layers.join(", "));
    out.push_str(
        "reads: allowed except deny read (allow read re-opens); writes: only under allow write,\n\
         except deny write; network: only to network allow, except network deny\n",
    );
    let rules = policy.rules();
    let rows: Vec<(&str, String, String, String)> = rules
        .iter()
        .map(|r| {
            let (layer, source) = origin_text(&r.origin);
            (r.list, r.value.clone(), layer, source)
        })
        .collect();
    let value_width = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    let layer_width = rows.iter().map(|r| r.2.chars().count()).max().unwrap_or(0);
    for (list, heading) in GROUPS {
        let _ = writeln!(out, "\n{heading}");
        let mut any = false;
        for (_, value, layer, source) in rows.iter().filter(|r| r.0 == list) {
            any = true;
            let line = format!("  {value:<value_width$}  {layer:<layer_width$}  {source}");
            let _ = writeln!(out, "{}", line.trim_end());
        }
        if !any {
            out.push_str("  (none)\n");
        }
    }
    let net = &policy.network;
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let port = |p: Option<u16>| p.map_or("any free port".to_string(), |p| p.to_string());
    out.push_str("\nnetwork settings\n");
    let _ = writeln!(
        out,
        "  local binding:         {}",
        yes_no(net.allow_local_binding)
    );
    let _ = writeln!(
        out,
        "  private destinations:  {}",
        yes_no(net.allow_private_destinations)
    );
    let resolve: Vec<String> = net
        .resolve
        .iter()
        .map(|(host, ip)| format!("{host} -> {ip}"))
        .collect();
    let _ = writeln!(
        out,
        "  resolve:               {}",
        if resolve.is_empty() {
            "(none)".to_string()
        } else {
            resolve.join(", ")
        }
    );
    let _ = writeln!(
        out,
        "  http proxy port:       {}",
        port(net.http_proxy_port)
    );
    let _ = writeln!(
        out,
        "  socks proxy port:      {}",
        port(net.socks_proxy_port)
    );
    if !plan.placeholders.is_empty() {
        out.push_str(
            "\nprotected paths that do not exist yet (an empty read-only stand-in exists while an evaluation runs):\n",
        );
        for p in &plan.placeholders {
            let (layer, source) = origin_text(&p.rule);
            let from = format!("{layer} {source}");
            let kind = if p.kind == Kind::Dir {
                "directory"
            } else {
                "file"
            };
            let _ = writeln!(
                out,
                "  - {} ({kind}; {})",
                p.path.display(),
                from.trim_end()
            );
        }
    }
    if gaps.is_empty() {
        out.push_str("\nnot enforced exactly on Linux: nothing\n");
    } else {
        out.push_str("\nnot enforced exactly on Linux:\n");
        for gap in gaps {
            match &gap.rule {
                Some(origin) => {
                    let (layer, source) = origin_text(origin);
                    let from = format!("{layer} {source}");
                    let _ = writeln!(out, "  - {} ({})", gap.reason, from.trim_end());
                }
                None => {
                    let _ = writeln!(out, "  - {}", gap.reason);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Context) {
        let dir = tempfile::tempdir().unwrap();
        let ctx = Context {
            home: dir.path().join("home"),
            cwd: dir.path().join("cwd"),
        };
        std::fs::create_dir_all(&ctx.home).unwrap();
        std::fs::create_dir_all(&ctx.cwd).unwrap();
        (dir, ctx)
    }

    #[test]
    fn check_reports_every_bad_flag_not_only_the_first() {
        let (_dir, ctx) = setup();
        let result = check_inputs(&PolicyInputs::flags(&["Nope(x)"], &["Read()"]), &ctx);
        assert_eq!(result.errors.len(), 2);
        assert_eq!(result.checked, ["--allow \"Nope(x)\"", "--deny \"Read()\""]);
    }

    #[test]
    fn check_skips_absent_default_files_but_not_a_named_one() {
        let (_dir, ctx) = setup();
        let mut i = PolicyInputs::flags(&[], &[]);
        assert!(check_inputs(&i, &ctx).checked.is_empty());
        i.settings = Some("missing.json".into());
        let result = check_inputs(&i, &ctx);
        assert_eq!(result.errors.len(), 1);
        assert!(describe(&result.errors[0]).contains("missing.json"));
    }

    #[test]
    fn check_reads_the_project_file_as_the_project_layer() {
        let (_dir, ctx) = setup();
        let path = ctx.cwd.join(".sandbox/settings.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, r#"{"zzz": 1}"#).unwrap();
        let result = check_inputs(&PolicyInputs::flags(&[], &[]), &ctx);
        assert!(result.errors.is_empty());
        assert_eq!(result.warnings.len(), 1);
        assert_eq!(result.warnings[0].layer, Layer::Project(path));
    }

    #[test]
    fn check_json_gives_line_and_column_of_malformed_json() {
        let (_dir, ctx) = setup();
        let file = ctx.cwd.join("bad.json");
        std::fs::write(&file, "{\n  \"network\": {,}\n}").unwrap();
        let mut i = PolicyInputs::flags(&[], &[]);
        i.settings = Some(file.clone());
        let value = check_json(&check_inputs(&i, &ctx));
        assert_eq!(value["valid"], false);
        assert_eq!(value["errors"][0]["line"], 2);
        assert_eq!(value["errors"][0]["column"], 15);
        assert_eq!(value["errors"][0]["file"], file.display().to_string());
    }

    #[test]
    fn show_aligns_the_layer_column_across_groups() {
        let ctx = Context {
            home: "/h".into(),
            cwd: "/p".into(),
        };
        let fs = sandbox_policy::MemFs::new().dir("/h").dir("/p/src");
        let (policy, report) = Policy::builder(ctx)
            .allow("Edit(./src)")
            .deny("Read(~/.ssh)")
            .allow("WebFetch(domain:example.com)")
            .build(&fs)
            .unwrap();
        let text = show_human(&policy, &report, &LinuxPlan::default());
        let columns: Vec<usize> = text
            .lines()
            .filter(|l| {
                l.starts_with("  ") && (l.contains("command line") || l.ends_with("mandatory"))
            })
            .map(|l| l.find("command line").or(l.find("mandatory")).unwrap())
            .collect();
        assert!(columns.len() > 3, "{text}");
        assert!(columns.windows(2).all(|w| w[0] == w[1]), "{text}");
    }

    #[test]
    fn show_lists_empty_groups_as_none() {
        let text = show_human(
            &Policy::default(),
            &Report::default(),
            &LinuxPlan::default(),
        );
        assert!(text.contains("\nnetwork allow\n  (none)\n"), "{text}");
        assert!(
            text.contains("not enforced exactly on Linux: nothing"),
            "{text}"
        );
    }
}
