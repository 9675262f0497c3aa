//! Turning the policy inputs of the command line (default settings files,
//! `--settings`, `--allow`, `--deny`) into a [`Policy`], and policy errors into
//! one-line messages that name the flag or file and quote the bad part.

use std::path::PathBuf;

use anyhow::Context as _;
use sandbox_policy::{Context, HostFs, Layer, Policy, PolicyError, Report, SettingsError};

use crate::args::PolicyInputs;

/// Where `~` and relative paths point: `$HOME` and our working directory (where
/// the user typed the flags), not the command's `--cwd`.
pub fn host_context() -> anyhow::Result<Context> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .context("HOME is not set: it is needed to find ~/.sandbox/settings.json and to expand ~ in rules")?;
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    Ok(Context { home, cwd })
}

/// Builds the effective policy: user settings, project settings, `--settings`,
/// then the `--allow` and `--deny` flags.
pub fn build(inputs: &PolicyInputs, ctx: Context) -> Result<(Policy, Report), PolicyError> {
    let mut builder = Policy::builder(ctx).default_settings();
    if let Some(file) = &inputs.settings {
        builder = builder.settings_file(file);
    }
    for text in &inputs.allow {
        builder = builder.allow(text.as_str());
    }
    for text in &inputs.deny {
        builder = builder.deny(text.as_str());
    }
    if !inputs.resolve.is_empty() || inputs.allow_private_destinations {
        // The network flags are settings without a file: one JSON layer.
        let resolve: serde_json::Map<String, serde_json::Value> = inputs
            .resolve
            .iter()
            .map(|(host, addr)| (host.clone(), addr.to_string().into()))
            .collect();
        let mut network = serde_json::json!({ "resolve": resolve });
        if inputs.allow_private_destinations {
            network["allowPrivateDestinations"] = true.into();
        }
        let text = serde_json::json!({ "network": network }).to_string();
        builder = builder.settings_json(Layer::Flag, "/", text);
    }
    builder.build(&HostFs)
}

/// One line saying which flag or file is wrong and quoting the bad part:
/// `--allow: invalid permission "Foo(x)": unknown kind "Foo" (expected …)`.
pub fn describe(err: &PolicyError) -> String {
    match err {
        PolicyError::Permission {
            layer: Layer::Flag,
            field,
            error,
        } => format!("{field}: {error}"),
        PolicyError::Permission {
            layer,
            field,
            error,
        } => format!("{}: {field}: {error}", layer_source(layer)),
        PolicyError::Settings(err) => err.to_string(),
    }
}

/// `settings file PATH` for every file layer (the kind of file is in `Layer`'s
/// own display), or the layer's name.
pub fn layer_source(layer: &Layer) -> String {
    match layer_file(layer) {
        Some(path) => format!("settings file {}", path.display()),
        None => layer.to_string(),
    }
}

/// The settings file of a layer, if it is one.
pub fn layer_file(layer: &Layer) -> Option<&PathBuf> {
    match layer {
        Layer::User(p) | Layer::Project(p) | Layer::SettingsFile(p) => Some(p),
        Layer::Mandatory | Layer::Flag => None,
    }
}

/// The file an error is about, if any.
pub fn error_file(err: &PolicyError) -> Option<&PathBuf> {
    match err {
        PolicyError::Settings(SettingsError::Read { path, .. })
        | PolicyError::Settings(SettingsError::Json { path, .. })
        | PolicyError::Settings(SettingsError::Invalid { path, .. }) => Some(path),
        PolicyError::Permission { layer, .. } => layer_file(layer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(dir: &std::path::Path) -> Context {
        Context {
            home: dir.join("home"),
            cwd: dir.join("cwd"),
        }
    }

    #[test]
    fn a_bad_flag_names_the_flag_and_quotes_the_string() {
        let dir = tempfile::tempdir().unwrap();
        let err = build(
            &PolicyInputs::flags(&[], &["Raed(~/.ssh)"]),
            ctx(dir.path()),
        )
        .unwrap_err();
        let text = describe(&err);
        assert!(text.starts_with("--deny: "), "{text}");
        assert!(text.contains("\"Raed(~/.ssh)\""), "{text}");
    }

    #[test]
    fn a_missing_settings_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut i = PolicyInputs::flags(&[], &[]);
        i.settings = Some(dir.path().join("nope.json"));
        let err = build(&i, ctx(dir.path())).unwrap_err();
        assert!(describe(&err).contains("nope.json"), "{}", describe(&err));
        assert_eq!(error_file(&err), Some(&dir.path().join("nope.json")));
    }

    #[test]
    fn flags_land_in_the_flag_layer() {
        let dir = tempfile::tempdir().unwrap();
        let (policy, _) = build(
            &PolicyInputs::flags(&[], &["Read(~/.ssh)"]),
            ctx(dir.path()),
        )
        .unwrap();
        let rule = policy
            .rules()
            .into_iter()
            .find(|r| r.list == "denyRead")
            .unwrap();
        assert_eq!(rule.origin.layer, Layer::Flag);
        assert_eq!(rule.origin.field, "--deny");
    }
}
