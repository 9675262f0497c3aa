//! The effective [`Policy`] and the [`PolicyBuilder`] that merges layers into it.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::domain::{Host, HostPattern, NetTarget};
use crate::error::{PolicyError, SettingsError};
use crate::filesystem::{mandatory_protections, FilesystemPolicy, PathRule};
use crate::fs_view::FsView;
use crate::glob;
use crate::network::{NetRule, NetworkPolicy};
use crate::origin::{Layer, Origin};
use crate::path::{self, Context};
use crate::permission::{Effect, Permission, PermissionError, Problem};
use crate::settings::{self, FilesystemSettings, NetworkSettings, Settings};

/// The effective confinement policy of a sandbox: what it may read, write and
/// connect to, each rule with its origin.
///
/// [`Policy::default()`] is the unrestricted policy (no rule at all, no mandatory
/// protection): the executor applies no confinement for it. Policies built with
/// [`Policy::builder`] always carry the mandatory protections.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Policy {
    /// Filesystem rules.
    pub filesystem: FilesystemPolicy,
    /// Network rules.
    pub network: NetworkPolicy,
}

/// One rule as printed by `policy show`: its list, its resolved value, its origin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleSummary {
    /// The srt list name: `denyRead`, `allowRead`, `allowWrite`, `denyWrite`,
    /// `allowedDomains`, `deniedDomains`, `allowUnixSockets`, `denyUnixSockets`.
    pub list: &'static str,
    /// The resolved pattern or target.
    pub value: String,
    /// Where it came from.
    pub origin: Origin,
}

impl Policy {
    /// True only for a policy with no rule and no mandatory protection
    /// (`Policy::default()`): the executor then applies no confinement at all. The
    /// plans derived from such a policy describe its literal meaning (nothing
    /// writable, no network) and are not meant to be applied.
    pub fn is_unrestricted(&self) -> bool {
        *self == Policy::default()
    }

    /// A builder that merges settings layers and flags (see [`PolicyBuilder`]).
    pub fn builder(ctx: Context) -> PolicyBuilder {
        PolicyBuilder {
            ctx,
            inputs: Vec::new(),
        }
    }

    /// Every rule with its list and origin, filesystem first.
    pub fn rules(&self) -> Vec<RuleSummary> {
        let mut out = Vec::new();
        let fs = &self.filesystem;
        let net = &self.network;
        let paths: [(&'static str, &Vec<PathRule>); 6] = [
            ("denyRead", &fs.deny_read),
            ("allowRead", &fs.allow_read),
            ("allowWrite", &fs.allow_write),
            ("denyWrite", &fs.deny_write),
            ("allowUnixSockets", &net.allow_unix_sockets),
            ("denyUnixSockets", &net.deny_unix_sockets),
        ];
        for (list, rules) in paths {
            out.extend(rules.iter().map(|r| RuleSummary {
                list,
                value: r.pattern.to_string(),
                origin: r.origin.clone(),
            }));
        }
        for (list, rules) in [("allowedDomains", &net.allow), ("deniedDomains", &net.deny)] {
            out.extend(rules.iter().map(|r| RuleSummary {
                list,
                value: r.target.to_string(),
                origin: r.origin.clone(),
            }));
        }
        out
    }
}

/// A warning about a layer: an unknown or ignored field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Warning {
    /// The layer it is about.
    pub layer: Layer,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.layer {
            Layer::User(p) | Layer::Project(p) | Layer::SettingsFile(p) => {
                write!(f, "settings file {}: {}", p.display(), self.message)
            }
            other => write!(f, "{other}: {}", self.message),
        }
    }
}

/// What building a policy had to say besides errors, and which files it read.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// Non-fatal problems (unknown fields are reported, never silently dropped).
    pub warnings: Vec<Warning>,
    /// The settings layers that were loaded, in order.
    pub layers: Vec<Layer>,
}

enum Input {
    File {
        layer: Layer,
        path: PathBuf,
        optional: bool,
    },
    Json {
        layer: Layer,
        base: PathBuf,
        text: String,
    },
    Permission {
        effect: Effect,
        text: String,
    },
}

/// Merges layers into a [`Policy`]: user settings, project settings, a settings
/// file, flags, in the order they are added. Later layers add rules; deny rules
/// win whatever their layer; a scalar (`allowLocalBinding`, a port, a `resolve`
/// entry) set by a later layer replaces the earlier value.
pub struct PolicyBuilder {
    ctx: Context,
    inputs: Vec<Input>,
}

impl PolicyBuilder {
    /// Adds the user layer (`~/.sandbox/settings.json`) and the project layer
    /// (`.sandbox/settings.json` in the cwd), each only if the file exists.
    pub fn default_settings(mut self) -> Self {
        let user = self.ctx.home.join(".sandbox/settings.json");
        let project = self.ctx.cwd.join(".sandbox/settings.json");
        self.inputs.push(Input::File {
            layer: Layer::User(user.clone()),
            path: user,
            optional: true,
        });
        self.inputs.push(Input::File {
            layer: Layer::Project(project.clone()),
            path: project,
            optional: true,
        });
        self
    }

    /// Adds a settings file that must exist (`--settings FILE`; relative to the cwd).
    pub fn settings_file(mut self, path: impl AsRef<Path>) -> Self {
        let path = self.ctx.cwd.join(path);
        self.inputs.push(Input::File {
            layer: Layer::SettingsFile(path.clone()),
            path,
            optional: false,
        });
        self
    }

    /// Adds settings given as text, for `layer`, with relative paths resolved
    /// against `base_dir`.
    pub fn settings_json(
        mut self,
        layer: Layer,
        base_dir: impl Into<PathBuf>,
        text: impl Into<String>,
    ) -> Self {
        self.inputs.push(Input::Json {
            layer,
            base: base_dir.into(),
            text: text.into(),
        });
        self
    }

    /// Adds one permission string of the flag layer; relative paths are relative
    /// to the cwd.
    pub fn permission(mut self, effect: Effect, text: impl Into<String>) -> Self {
        self.inputs.push(Input::Permission {
            effect,
            text: text.into(),
        });
        self
    }

    /// `permission(Effect::Allow, text)`.
    pub fn allow(self, text: impl Into<String>) -> Self {
        self.permission(Effect::Allow, text)
    }

    /// `permission(Effect::Deny, text)`.
    pub fn deny(self, text: impl Into<String>) -> Self {
        self.permission(Effect::Deny, text)
    }

    /// Reads and merges every layer, then adds the mandatory protections.
    pub fn build(self, fs: &dyn FsView) -> Result<(Policy, Report), PolicyError> {
        let mut acc = Accumulator {
            ctx: &self.ctx,
            fs,
            policy: Policy::default(),
            report: Report::default(),
        };
        for input in &self.inputs {
            match input {
                Input::File {
                    layer,
                    path,
                    optional,
                } => {
                    if *optional && fs.metadata_kind(path).is_none() {
                        continue;
                    }
                    let text = fs
                        .read_to_string(path)
                        .map_err(|source| SettingsError::Read {
                            path: path.clone(),
                            source,
                        })?;
                    acc.settings(layer, &settings::base_dir(path), &text)?;
                }
                Input::Json { layer, base, text } => acc.settings(layer, base, text)?,
                Input::Permission { effect, text } => {
                    let field = match effect {
                        Effect::Allow => "--allow",
                        Effect::Deny => "--deny",
                    };
                    acc.permission(&Layer::Flag, field, *effect, text, &self.ctx.cwd)?;
                }
            }
        }
        acc.mandatory();
        Ok((acc.policy, acc.report))
    }
}

struct Accumulator<'a> {
    ctx: &'a Context,
    fs: &'a dyn FsView,
    policy: Policy,
    report: Report,
}

fn layer_path(layer: &Layer) -> PathBuf {
    match layer {
        Layer::User(p) | Layer::Project(p) | Layer::SettingsFile(p) => p.clone(),
        _ => PathBuf::new(),
    }
}

impl Accumulator<'_> {
    fn settings(&mut self, layer: &Layer, base: &Path, text: &str) -> Result<(), PolicyError> {
        let (settings, warnings) = settings::parse(&layer_path(layer), text)?;
        self.report.layers.push(layer.clone());
        self.report
            .warnings
            .extend(warnings.into_iter().map(|message| Warning {
                layer: layer.clone(),
                message,
            }));
        let Settings {
            sandbox,
            permissions,
            network,
            filesystem,
        } = settings;
        if let Some(perms) = permissions {
            for (field, effect, list) in [
                ("permissions.allow", Effect::Allow, perms.allow),
                ("permissions.deny", Effect::Deny, perms.deny),
            ] {
                for text in list.unwrap_or_default() {
                    self.permission(layer, field, effect, &text, base)?;
                }
            }
        }
        let (sandbox_net, sandbox_fs) = match sandbox {
            Some(s) => (s.network, s.filesystem),
            None => (None, None),
        };
        for (prefix, section) in [
            ("filesystem", filesystem),
            ("sandbox.filesystem", sandbox_fs),
        ] {
            if let Some(section) = section {
                self.filesystem(layer, prefix, section, base)?;
            }
        }
        for (prefix, section) in [("network", network), ("sandbox.network", sandbox_net)] {
            if let Some(section) = section {
                self.network(layer, prefix, section, base)?;
            }
        }
        Ok(())
    }

    fn invalid(layer: &Layer, field: String, message: String) -> PolicyError {
        SettingsError::Invalid {
            path: layer_path(layer),
            field,
            message,
        }
        .into()
    }

    fn path_rules(
        &self,
        layer: &Layer,
        field: &str,
        list: Option<Vec<String>>,
        base: &Path,
    ) -> Result<Vec<PathRule>, PolicyError> {
        list.unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(
                |(i, text)| match path::resolve(&text, base, self.ctx, self.fs) {
                    Ok(pattern) => Ok(PathRule {
                        pattern,
                        origin: Origin::new(layer.clone(), field, text),
                    }),
                    Err(e) => Err(Self::invalid(
                        layer,
                        format!("{field}[{i}]"),
                        format!("path {text:?}: {e}"),
                    )),
                },
            )
            .collect()
    }

    fn filesystem(
        &mut self,
        layer: &Layer,
        prefix: &str,
        s: FilesystemSettings,
        base: &Path,
    ) -> Result<(), PolicyError> {
        let f = format!("{prefix}.denyRead");
        let rules = self.path_rules(layer, &f, s.deny_read, base)?;
        self.policy.filesystem.deny_read.extend(rules);
        let f = format!("{prefix}.allowRead");
        let rules = self.path_rules(layer, &f, s.allow_read, base)?;
        self.policy.filesystem.allow_read.extend(rules);
        let f = format!("{prefix}.allowWrite");
        let rules = self.path_rules(layer, &f, s.allow_write, base)?;
        self.policy.filesystem.allow_write.extend(rules);
        let f = format!("{prefix}.denyWrite");
        let rules = self.path_rules(layer, &f, s.deny_write, base)?;
        self.policy.filesystem.deny_write.extend(rules);
        Ok(())
    }

    fn network(
        &mut self,
        layer: &Layer,
        prefix: &str,
        s: NetworkSettings,
        base: &Path,
    ) -> Result<(), PolicyError> {
        for (name, list, allow) in [
            ("allowedDomains", s.allowed_domains, true),
            ("deniedDomains", s.denied_domains, false),
        ] {
            let field = format!("{prefix}.{name}");
            for (i, text) in list.unwrap_or_default().into_iter().enumerate() {
                let host = HostPattern::parse(&text).map_err(|e| {
                    Self::invalid(
                        layer,
                        format!("{field}[{i}]"),
                        format!("invalid domain {text:?}: {e}"),
                    )
                })?;
                let rule = NetRule {
                    target: NetTarget::Domain(host),
                    origin: Origin::new(layer.clone(), field.clone(), text),
                };
                let net = &mut self.policy.network;
                if allow {
                    net.allow.push(rule)
                } else {
                    net.deny.push(rule)
                }
            }
        }
        let f = format!("{prefix}.allowUnixSockets");
        let rules = self.path_rules(layer, &f, s.allow_unix_sockets, base)?;
        let net = &mut self.policy.network;
        net.allow_unix_sockets.extend(rules);
        if let Some(v) = s.allow_local_binding {
            net.allow_local_binding = v;
        }
        if let Some(v) = s.allow_private_destinations {
            net.allow_private_destinations = v;
        }
        if let Some(v) = s.http_proxy_port {
            net.http_proxy_port = Some(v);
        }
        if let Some(v) = s.socks_proxy_port {
            net.socks_proxy_port = Some(v);
        }
        for (host, ip) in s.resolve.unwrap_or_default() {
            let field = format!("{prefix}.resolve.{host}");
            let name = Host::parse(&host)
                .map_err(|e| {
                    Self::invalid(layer, field.clone(), format!("invalid host {host:?}: {e}"))
                })?
                .name;
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| Self::invalid(layer, field, format!("invalid IP address {ip:?}")))?;
            net.resolve.insert(name, ip);
        }
        Ok(())
    }

    fn permission(
        &mut self,
        layer: &Layer,
        field: &str,
        effect: Effect,
        text: &str,
        base: &Path,
    ) -> Result<(), PolicyError> {
        let fail = |problem| PolicyError::Permission {
            layer: layer.clone(),
            field: field.to_string(),
            error: Box::new(PermissionError {
                input: text.to_string(),
                problem,
            }),
        };
        let parsed = Permission::parse(text).map_err(|e| fail(e.problem))?;
        let origin = Origin::new(layer.clone(), field, text);
        let path_rule = |raw: &str| {
            path::resolve(raw, base, self.ctx, self.fs)
                .map(|pattern| PathRule {
                    pattern,
                    origin: origin.clone(),
                })
                .map_err(|error| {
                    fail(Problem::Path {
                        path: raw.to_string(),
                        error,
                    })
                })
        };
        let fs = &mut self.policy.filesystem;
        let net = &mut self.policy.network;
        match (effect, parsed) {
            (Effect::Deny, Permission::Read(p)) => fs.deny_read.push(path_rule(&p)?),
            (Effect::Allow, Permission::Read(p)) => fs.allow_read.push(path_rule(&p)?),
            (Effect::Allow, Permission::Edit(p)) => fs.allow_write.push(path_rule(&p)?),
            (Effect::Deny, Permission::Edit(p)) => fs.deny_write.push(path_rule(&p)?),
            (Effect::Allow, Permission::UnixSocket(p)) => {
                net.allow_unix_sockets.push(path_rule(&p)?)
            }
            (Effect::Deny, Permission::UnixSocket(p)) => net.deny_unix_sockets.push(path_rule(&p)?),
            (Effect::Allow, Permission::WebFetch(target)) => {
                net.allow.push(NetRule { target, origin })
            }
            (Effect::Deny, Permission::WebFetch(target)) => {
                net.deny.push(NetRule { target, origin })
            }
        }
        Ok(())
    }

    fn mandatory(&mut self) {
        let home = path::resolve_symlinks(&glob::literal(&self.ctx.home), self.fs).literal_prefix();
        for (path, text) in mandatory_protections(&home, &self.policy.filesystem.allow_write) {
            let pattern = path::resolve_symlinks(&glob::literal(&path), self.fs);
            self.policy.filesystem.deny_write.push(PathRule {
                pattern,
                origin: Origin::new(Layer::Mandatory, "mandatory", text),
            });
        }
    }
}
