//! `sandbox platform`: runs the real binary and checks the shape of its report
//! (the values depend on the machine).

mod common;

use std::process::{Command, Output};

use common::sandbox_bin;

fn platform(args: &[&str]) -> Output {
    Command::new(sandbox_bin())
        .arg("platform")
        .args(args)
        .output()
        .expect("run sandbox platform")
}

#[test]
fn json_is_one_object_with_every_key() {
    let out = platform(&["--json"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    for key in [
        "os",
        "kernel_release",
        "arch",
        "root",
        "user_namespaces",
        "landlock",
        "seccomp",
        "cgroup",
        "enforcement",
    ] {
        assert!(value.get(key).is_some(), "{key} missing in {value}");
    }
    for key in [
        "unprivileged_userns_clone",
        "max_user_namespaces",
        "unprivileged_unshare_works",
    ] {
        assert!(
            value["user_namespaces"].get(key).is_some(),
            "{key}: {value}"
        );
    }
    assert!(value["landlock"].get("abi").is_some(), "{value}");
    assert!(
        value["seccomp"]["user_notification"].is_boolean(),
        "{value}"
    );
    assert!(value["cgroup"]["mode"].is_string(), "{value}");
    let lines = value["enforcement"].as_array().unwrap();
    assert!(!lines.is_empty());
    for line in lines {
        assert!(
            line["what"].is_string() && line["enforced"].is_boolean() && line["detail"].is_string()
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn json_names_this_kernel() {
    let out = platform(&["--json"]);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["os"], "linux");
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(value["kernel_release"], release.trim());
}

#[test]
fn human_output_separates_enforced_from_not_enforced() {
    let out = platform(&[]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("os:"), "{text}");
    assert!(text.contains("\nenforced / observable:\n"), "{text}");
    assert!(
        text.contains("\nnot enforced / not observable:\n"),
        "{text}"
    );
    assert!(text.contains("  memory limit:"), "{text}");
}
