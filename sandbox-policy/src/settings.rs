//! Settings JSON: the seed's shape and the field names of anthropic's
//! sandbox-runtime (srt) settings, so existing configs load.
//!
//! ```json
//! {
//!   "sandbox": { "enabled": true, "network": { "httpProxyPort": 8888 } },
//!   "permissions": { "allow": ["Read(.)", "Edit(./src)"], "deny": ["Read(~/.ssh)"] },
//!   "network": {
//!     "allowedDomains": ["github.com", "*.npmjs.org"], "deniedDomains": [],
//!     "allowUnixSockets": ["/var/run/docker.sock"], "allowLocalBinding": false,
//!     "allowPrivateDestinations": false, "resolve": { "db.test": "10.0.0.5" },
//!     "httpProxyPort": 8888, "socksProxyPort": 1080
//!   },
//!   "filesystem": { "denyRead": ["~/.ssh"], "allowRead": [], "allowWrite": ["."], "denyWrite": [".env"] }
//! }
//! ```
//!
//! `network` and `filesystem` are accepted at the top level (srt) and inside
//! `sandbox` (Claude Code). Relative paths are relative to the directory the file
//! configures: its own directory, or the parent of a `.sandbox` / `.claude`
//! directory holding it (so `Edit(./src)` in `/p/.sandbox/settings.json` is
//! `/p/src`). Unknown fields are reported as warnings with a suggestion, never
//! silently dropped; malformed JSON and wrong types are errors with line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::SettingsError;

/// The `filesystem` section (srt field names).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FilesystemSettings {
    pub deny_read: Option<Vec<String>>,
    pub allow_read: Option<Vec<String>>,
    pub allow_write: Option<Vec<String>>,
    pub deny_write: Option<Vec<String>>,
}

/// The `network` section (srt field names plus this project's additions).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NetworkSettings {
    pub allowed_domains: Option<Vec<String>>,
    pub denied_domains: Option<Vec<String>>,
    pub allow_unix_sockets: Option<Vec<String>>,
    pub allow_local_binding: Option<bool>,
    pub allow_private_destinations: Option<bool>,
    pub resolve: Option<BTreeMap<String, String>>,
    pub http_proxy_port: Option<u16>,
    pub socks_proxy_port: Option<u16>,
}

/// The `permissions` section of the seed.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct PermissionSettings {
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
}

/// The `sandbox` section of the seed / Claude Code.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct SandboxSettings {
    pub enabled: Option<bool>,
    pub network: Option<NetworkSettings>,
    pub filesystem: Option<FilesystemSettings>,
}

/// A whole settings file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(expecting = "a settings object")]
pub(crate) struct Settings {
    pub sandbox: Option<SandboxSettings>,
    pub permissions: Option<PermissionSettings>,
    pub network: Option<NetworkSettings>,
    pub filesystem: Option<FilesystemSettings>,
}

#[derive(Clone, Copy)]
enum Shape {
    /// A value whose type serde checks.
    Leaf,
    /// An object with these fields.
    Object(&'static [(&'static str, Shape)]),
    /// An object with any keys (`resolve`).
    Map,
}

const FILESYSTEM: &[(&str, Shape)] = &[
    ("denyRead", Shape::Leaf),
    ("allowRead", Shape::Leaf),
    ("allowWrite", Shape::Leaf),
    ("denyWrite", Shape::Leaf),
];
const NETWORK: &[(&str, Shape)] = &[
    ("allowedDomains", Shape::Leaf),
    ("deniedDomains", Shape::Leaf),
    ("allowUnixSockets", Shape::Leaf),
    ("allowLocalBinding", Shape::Leaf),
    ("allowPrivateDestinations", Shape::Leaf),
    ("resolve", Shape::Map),
    ("httpProxyPort", Shape::Leaf),
    ("socksProxyPort", Shape::Leaf),
];
const PERMISSIONS: &[(&str, Shape)] = &[("allow", Shape::Leaf), ("deny", Shape::Leaf)];
const SANDBOX: &[(&str, Shape)] = &[
    ("enabled", Shape::Leaf),
    ("network", Shape::Object(NETWORK)),
    ("filesystem", Shape::Object(FILESYSTEM)),
];
const TOP: &[(&str, Shape)] = &[
    ("$schema", Shape::Leaf),
    ("sandbox", Shape::Object(SANDBOX)),
    ("permissions", Shape::Object(PERMISSIONS)),
    ("network", Shape::Object(NETWORK)),
    ("filesystem", Shape::Object(FILESYSTEM)),
];

/// srt fields this crate knows but does not implement: reported as ignored.
const UNSUPPORTED: &[&str] = &[
    "ignoreViolations",
    "enableWeakerNestedSandbox",
    "allowAllUnixSockets",
    "ripgrep",
    "mandatoryDenySearchDepth",
    "allowPty",
];

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn suggestion(name: &str, known: &[(&'static str, Shape)]) -> Option<&'static str> {
    let squash = |s: &str| s.replace(['_', '-'], "").to_ascii_lowercase();
    known
        .iter()
        .map(|(k, _)| *k)
        .find(|k| squash(k) == squash(name))
        .or_else(|| {
            known
                .iter()
                .map(|(k, _)| (edit_distance(name, k), *k))
                .filter(|(d, _)| *d <= 3)
                .min()
                .map(|(_, k)| k)
        })
}

fn walk(value: &Value, shape: Shape, prefix: &str, warnings: &mut Vec<String>) {
    let (Shape::Object(fields), Value::Object(map)) = (shape, value) else {
        return;
    };
    for (key, child) in map {
        let full = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match fields.iter().find(|(k, _)| k == key) {
            Some((_, shape)) => walk(child, *shape, &full, warnings),
            None if UNSUPPORTED.contains(&key.as_str()) => {
                warnings.push(format!("field {full:?} is not supported and is ignored"))
            }
            None => warnings.push(match suggestion(key, fields) {
                Some(s) => format!("unknown field {full:?} (did you mean {s:?}?)"),
                None => format!("unknown field {full:?}"),
            }),
        }
    }
}

fn json_error(path: &Path, e: serde_json::Error) -> SettingsError {
    let text = e.to_string();
    let message = match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    SettingsError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message,
    }
}

/// Parses settings text; returns the settings and the warnings about fields that
/// are unknown or ignored.
pub(crate) fn parse(path: &Path, text: &str) -> Result<(Settings, Vec<String>), SettingsError> {
    let value: Value = serde_json::from_str(text).map_err(|e| json_error(path, e))?;
    let settings: Settings = serde_json::from_str(text).map_err(|e| json_error(path, e))?;
    let mut warnings = Vec::new();
    walk(&value, Shape::Object(TOP), "", &mut warnings);
    if settings.sandbox.as_ref().and_then(|s| s.enabled) == Some(false) {
        warnings.push(
            "\"sandbox.enabled\": false is ignored: the sandbox cannot be switched off by settings"
                .to_string(),
        );
    }
    Ok((settings, warnings))
}

/// The directory relative paths of a settings file are relative to: the file's
/// directory, or its parent when that directory is `.sandbox` or `.claude`.
pub fn base_dir(settings_file: &Path) -> PathBuf {
    let dir = settings_file.parent().unwrap_or(Path::new("/"));
    match dir.file_name().and_then(|n| n.to_str()) {
        Some(".sandbox") | Some(".claude") => dir.parent().unwrap_or(dir).to_path_buf(),
        _ => dir.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warnings(text: &str) -> Vec<String> {
        parse(Path::new("/p/s.json"), text).unwrap().1
    }

    #[test]
    fn the_seed_shape_parses() {
        let (s, w) = parse(
            Path::new("/p/s.json"),
            r#"{"sandbox": {"enabled": true, "network": {"httpProxyPort": 8888, "socksProxyPort": 1080}},
                "permissions": {"allow": ["Read(.)"], "deny": ["Read(~/.ssh)"]}}"#,
        )
        .unwrap();
        assert!(w.is_empty());
        assert_eq!(
            s.sandbox.unwrap().network.unwrap().http_proxy_port,
            Some(8888)
        );
        assert_eq!(s.permissions.unwrap().deny.unwrap(), vec!["Read(~/.ssh)"]);
    }

    #[test]
    fn unknown_fields_are_reported_with_a_suggestion() {
        assert_eq!(
            warnings(r#"{"network": {"allowedDomain": []}, "permisions": {}, "zzz": 1}"#),
            vec![
                r#"unknown field "network.allowedDomain" (did you mean "allowedDomains"?)"#,
                r#"unknown field "permisions" (did you mean "permissions"?)"#,
                r#"unknown field "zzz""#,
            ]
        );
    }

    #[test]
    fn snake_case_spellings_get_the_camel_case_suggestion() {
        assert_eq!(
            warnings(r#"{"sandbox": {"network": {"allow_unix_sockets": []}}}"#),
            vec![
                r#"unknown field "sandbox.network.allow_unix_sockets" (did you mean "allowUnixSockets"?)"#
            ]
        );
    }

    #[test]
    fn known_but_unsupported_srt_fields_are_reported_as_ignored() {
        assert_eq!(
            warnings(r#"{"ignoreViolations": {}}"#),
            vec![r#"field "ignoreViolations" is not supported and is ignored"#]
        );
    }

    #[test]
    fn resolve_keys_are_free() {
        assert!(warnings(r#"{"network": {"resolve": {"any.host": "10.0.0.1"}}}"#).is_empty());
    }

    #[test]
    fn malformed_json_is_an_error_with_line_and_column() {
        let err = parse(Path::new("/p/s.json"), "{\n  \"network\": {,}\n}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "settings file /p/s.json: line 2, column 15: key must be a string"
        );
    }

    #[test]
    fn a_wrong_type_is_an_error_with_line_and_column() {
        let err = parse(
            Path::new("/p/s.json"),
            "{\"network\": {\n \"allowLocalBinding\": \"yes\"}}",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "settings file /p/s.json: line 2, column 27: invalid type: string \"yes\", expected a boolean"
        );
    }

    #[test]
    fn a_non_object_is_an_error() {
        let err = parse(Path::new("/s.json"), "[]").unwrap_err();
        assert!(
            err.to_string().contains("expected a settings object"),
            "{err}"
        );
    }

    #[test]
    fn base_dir_is_the_project_for_dot_sandbox_files() {
        assert_eq!(
            base_dir(Path::new("/p/.sandbox/settings.json")),
            PathBuf::from("/p")
        );
        assert_eq!(
            base_dir(Path::new("/p/.claude/settings.json")),
            PathBuf::from("/p")
        );
        assert_eq!(
            base_dir(Path::new("/etc/sb/x.json")),
            PathBuf::from("/etc/sb")
        );
    }

    #[test]
    fn random_json_never_panics() {
        for s in
            crate::random_strings::strings("{}[]\":,0123 truefalsnetworkallowedDomains", 20_000)
        {
            let _ = parse(Path::new("/s.json"), &s);
        }
    }
}
