//! `sandbox platform`: what this machine supports and what the sandbox enforces
//! on it, as aligned `key: value` lines or one JSON object (see POLICY.md).

use std::fmt::Write as _;

use sandbox_exec::{probe_platform, PlatformReport};

use crate::args::PlatformArgs;
use crate::run::EXIT_SANDBOX_FAILED;

/// Runs `sandbox platform` and returns the exit status.
pub fn platform(args: PlatformArgs) -> i32 {
    let report = probe_platform();
    if args.json {
        match serde_json::to_string(&report) {
            Ok(line) => println!("{line}"),
            Err(err) => {
                eprintln!("sandbox: error: cannot encode the platform report: {err}");
                return EXIT_SANDBOX_FAILED;
            }
        }
    } else {
        print!("{}", human(&report));
    }
    0
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// The `key: value` lines, values aligned, then what is enforced and what not.
pub fn human(report: &PlatformReport) -> String {
    let ns = &report.user_namespaces;
    let mut userns = match ns.unprivileged_unshare_works {
        Some(true) => "usable unprivileged (tried)".to_string(),
        Some(false) => "not usable unprivileged (tried)".to_string(),
        None if ns.usable() => "probably usable unprivileged (not tried)".to_string(),
        None => "not usable unprivileged (not tried)".to_string(),
    };
    let mut sysctls = Vec::new();
    if let Some(flag) = ns.unprivileged_userns_clone {
        sysctls.push(format!("unprivileged_userns_clone={}", u8::from(flag)));
    }
    if let Some(max) = ns.max_user_namespaces {
        sysctls.push(format!("max_user_namespaces={max}"));
    }
    if !sysctls.is_empty() {
        let _ = write!(userns, "; {}", sysctls.join(", "));
    }
    let landlock = match (report.landlock.abi, &report.landlock.unavailable_reason) {
        (Some(abi), _) => format!("ABI {abi}"),
        (None, Some(reason)) => format!("unavailable ({reason})"),
        (None, None) => "unavailable".to_string(),
    };
    let cgroup = &report.cgroup;
    let mut cgroups = cgroup.mode.name().to_string();
    if !cgroup.v1_controllers.is_empty() {
        let _ = write!(
            cgroups,
            " (v1 controllers: {})",
            cgroup.v1_controllers.join(", ")
        );
    }
    let lines: Vec<(String, String)> = vec![
        ("os".into(), report.os.clone()),
        (
            "kernel".into(),
            report
                .kernel_release
                .clone()
                .unwrap_or_else(|| "unknown".into()),
        ),
        ("arch".into(), report.arch.clone()),
        ("root".into(), yes_no(report.root).into()),
        ("user namespaces".into(), userns),
        ("landlock".into(), landlock),
        ("seccomp".into(), yes_no(report.seccomp.available).into()),
        (
            "seccomp user notification".into(),
            yes_no(report.seccomp.user_notification).into(),
        ),
        ("cgroup".into(), cgroups),
        ("cgroup v1 memory".into(), yes_no(cgroup.v1_memory).into()),
        ("cgroup v1 pids".into(), yes_no(cgroup.v1_pids).into()),
    ];
    let mut enforced = Vec::new();
    let mut not_enforced = Vec::new();
    for line in &report.enforcement {
        let entry = (line.what.clone(), line.detail.clone());
        if line.enforced {
            enforced.push(entry);
        } else {
            not_enforced.push(entry);
        }
    }
    let width = lines
        .iter()
        .chain(&enforced)
        .chain(&not_enforced)
        .map(|(k, _)| k.chars().count() + 1)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let section = |out: &mut String, lines: &[(String, String)], indent: &str| {
        for (key, value) in lines {
            let key = format!("{key}:");
            let _ = writeln!(out, "{indent}{key:<width$} {value}");
        }
    };
    section(&mut out, &lines, "");
    out.push_str("\nenforced / observable:\n");
    if enforced.is_empty() {
        out.push_str("  (nothing)\n");
    }
    section(&mut out, &enforced, "  ");
    out.push_str("\nnot enforced / not observable:\n");
    if not_enforced.is_empty() {
        out.push_str("  (nothing)\n");
    }
    section(&mut out, &not_enforced, "  ");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_output_has_one_aligned_line_per_fact() {
        let text = human(&probe_platform());
        for key in ["os:", "kernel:", "arch:", "root:", "landlock:", "cgroup:"] {
            assert!(
                text.lines().any(|l| l.starts_with(key)),
                "{key} missing in\n{text}"
            );
        }
        let value_columns: Vec<usize> = text
            .lines()
            .take_while(|l| !l.is_empty())
            .map(|l| {
                let colon = l.find(':').unwrap();
                colon + 1 + l[colon + 1..].len() - l[colon + 1..].trim_start().len()
            })
            .collect();
        assert!(value_columns.windows(2).all(|w| w[0] == w[1]), "{text}");
    }
}
