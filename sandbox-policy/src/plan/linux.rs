//! The Linux plan: mount operations, Landlock rules and a seccomp description.
//!
//! # Model
//!
//! The runner starts in a fresh mount namespace whose root is a read-only recursive
//! bind of the host root, then applies [`LinuxPlan::mounts`] in order. Every path
//! then reads and writes as the policy says:
//!
//! - readable and read-only: the default (read-only root);
//! - writable: [`MountOp::BindWritable`] (the host path bound read-write);
//! - unreadable: [`MountOp::MaskDir`] (an empty read-only tmpfs) or
//!   [`MountOp::MaskFile`] (an empty read-only file bound over it);
//! - readable but not writable inside a writable or masked region:
//!   [`MountOp::ReadOnly`] (the host path bound back read-only).
//!
//! The sources of `BindWritable` and `ReadOnly` are always the *host's* path as it
//! was before any operation (the executor binds from the original root, as bwrap
//! does), so a hole can be bound back inside a mask.
//!
//! # Algorithm
//!
//! 1. Collect the *points*: every literal rule path, and every existing match of
//!    every glob rule (expanded through the [`FsView`]).
//! 2. Sort the points by depth, shallowest first (ties by path). A mount on a path
//!    hides earlier mounts beneath it, so this order lets deeper points refine
//!    shallower ones: writable binds come before the masks and read-only re-binds
//!    inside them; a mask comes before the holes bound back into it.
//! 3. For each point compute its state from the policy (hidden / writable /
//!    read-only, [`crate::FilesystemPolicy`]) and the state it inherits from its
//!    nearest ancestor point (the root is read-only). Emit an operation only when
//!    they differ. Between points the state is constant, because a path's state
//!    depends only on which rule points are its ancestors.
//! 4. A point that does not exist cannot be mounted on. When it should be
//!    writable it becomes a [`Gap`]. When it should be protected but lies in a
//!    writable region (`.git/hooks` in a project without `.git`), the sandbox
//!    could create it, so its first missing component gets a [`Placeholder`]: the
//!    enforcer creates an empty stand-in on the host before the mounts and the
//!    plan binds it read-only, so nothing can be created there or beneath.
//! 5. Every [`MountOp::MaskDir`] lists the points bound inside it, as mount points
//!    the executor creates in the tmpfs before making it read-only.
//!
//! Landlock then grants read+execute beneath `/` and read+write beneath each
//! writable bind; the masks and read-only binds inside writable roots keep their
//! meaning because a read-only mount refuses writes whatever Landlock allows.
//! The executor adds its own private `/tmp` and `/dev`, which are not policy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::filesystem::PathRule;
use crate::fs_view::{FsFacts, FsView, Kind};
use crate::glob::PathPattern;
use crate::origin::Origin;
use crate::plan::{expand, Gap};
use crate::policy::Policy;

/// Everything the Linux runner applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinuxPlan {
    /// Applied in order inside a fresh mount namespace whose root is a read-only
    /// recursive bind of the host root.
    pub mounts: Vec<MountOp>,
    /// Landlock rules (everything not listed is denied by Landlock).
    pub landlock: LandlockPlan,
    /// What the seccomp filter must allow.
    pub seccomp: SeccompPlan,
    /// The glob rules themselves, so that an enforcer can also judge files created
    /// after the sandbox starts.
    pub globs: Vec<GlobRule>,
    /// Empty stand-ins the enforcer must create on the host before applying
    /// [`LinuxPlan::mounts`], for protected paths that do not exist yet inside a
    /// writable region; the mounts bind each one read-only.
    pub placeholders: Vec<Placeholder>,
    /// What this plan cannot enforce exactly.
    pub gaps: Vec<Gap>,
}

/// An empty stand-in for a protected path that does not exist yet.
///
/// A mount needs something to mount on, and without one the sandbox could create
/// the protected path inside its writable root (`mkdir -p .git/hooks` where there
/// is no `.git`). The enforcer creates it (mode `000`, so host tools see nothing
/// they could use), keeps it while the evaluation runs, and removes it afterwards
/// if no other evaluation still uses it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Placeholder {
    /// The first missing component of the protected path (its parent exists).
    pub path: PathBuf,
    /// [`Kind::Dir`] or [`Kind::File`].
    pub kind: Kind,
    /// The rule that protects it.
    pub rule: Origin,
}

/// Protected names that are directories when they exist; other protected paths
/// get an empty file as stand-in, which is what a host tool reading them (a shell
/// reading `~/.bashrc`) handles best.
const DIRECTORY_NAMES: &[&str] = &[".git/hooks", ".sandbox", ".config/fish"];

/// The placeholder for the missing protected `path`: its first missing component,
/// a directory when more follows beneath it or the name is one of
/// [`DIRECTORY_NAMES`].
fn placeholder_for(path: &Path, fs: &dyn FsView, rule: &Origin) -> Option<Placeholder> {
    let first_missing = path
        .ancestors()
        .take_while(|a| fs.metadata_kind(a).is_none())
        .last()?;
    // The parent must be a real directory: a symlink or a file in the way is
    // not something a stand-in can be created beneath.
    if fs.metadata_kind(first_missing.parent()?) != Some(Kind::Dir) {
        return None;
    }
    let kind = if first_missing != path || DIRECTORY_NAMES.iter().any(|d| path.ends_with(d)) {
        Kind::Dir
    } else {
        Kind::File
    };
    Some(Placeholder {
        path: first_missing.to_path_buf(),
        kind,
        rule: rule.clone(),
    })
}

/// One mount operation; see the module docs for the order and the sources.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MountOp {
    /// Bind the host path onto itself read-write.
    BindWritable {
        /// The path.
        path: PathBuf,
    },
    /// Bind the host path onto itself read-only (a deny-write path inside a
    /// writable root, or a re-opened hole inside a mask).
    ReadOnly {
        /// The path.
        path: PathBuf,
    },
    /// Mount an empty tmpfs on a directory, create `mountpoints` in it, then make
    /// it read-only.
    MaskDir {
        /// The directory.
        path: PathBuf,
        /// Paths inside it that later operations bind onto.
        mountpoints: Vec<Mountpoint>,
    },
    /// Bind an empty read-only file over a file (or socket, device…).
    MaskFile {
        /// The file.
        path: PathBuf,
    },
}

impl MountOp {
    /// The path the operation mounts on.
    pub fn path(&self) -> &Path {
        match self {
            MountOp::BindWritable { path }
            | MountOp::ReadOnly { path }
            | MountOp::MaskDir { path, .. }
            | MountOp::MaskFile { path } => path,
        }
    }
}

/// A mount point to create inside a masking tmpfs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mountpoint {
    /// The path (inside the masked directory).
    pub path: PathBuf,
    /// Create a directory ([`Kind::Dir`]) or an empty file (anything else).
    pub kind: Kind,
}

/// Landlock rules: path → access, everything else denied.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LandlockPlan {
    /// Rules, `/` first.
    pub rules: Vec<LandlockRule>,
}

/// One Landlock rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LandlockRule {
    /// The path (a directory, or a file for file-only rights).
    pub path: PathBuf,
    /// What is allowed beneath it.
    pub access: LandlockAccess,
}

/// Landlock access sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LandlockAccess {
    /// Read files, list directories, execute.
    ReadExecute,
    /// Everything of `ReadExecute` plus create, write, remove, rename.
    ReadWrite,
}

/// A pure description of what the seccomp filter must allow; the executor maps it
/// to BPF.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeccompPlan {
    /// Whether `socket(AF_UNIX, …)` is allowed at all (some unix socket is allowed).
    pub allow_unix_sockets: bool,
    /// The unix socket paths the policy allows (existing matches of the rules,
    /// minus explicitly denied ones).
    pub unix_socket_paths: Vec<PathBuf>,
    /// Whether `bind`/`listen` on local ports is allowed.
    pub allow_local_binding: bool,
}

/// Which list a glob rule is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RuleList {
    /// `denyRead`.
    DenyRead,
    /// `allowRead`.
    AllowRead,
    /// `allowWrite`.
    AllowWrite,
    /// `denyWrite`.
    DenyWrite,
}

/// A glob rule kept in the plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GlobRule {
    /// The list.
    pub list: RuleList,
    /// The pattern.
    pub pattern: PathPattern,
    /// Where it came from.
    pub origin: Origin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Hidden,
    ReadOnly,
    Writable,
}

fn glob_gap(list: RuleList, count: usize) -> String {
    let what = match list {
        RuleList::DenyRead => "hidden",
        RuleList::AllowRead => "re-opened",
        RuleList::AllowWrite => "writable",
        RuleList::DenyWrite => "protected from writing",
    };
    format!(
        "glob: only the {count} path(s) matching when the sandbox starts are {what}; \
         files created later that match are not"
    )
}

fn depth(p: &Path) -> usize {
    p.components().count()
}

/// Makes every directory between a writable root and a protection inside it
/// (a read-only re-bind or a mask) a mount point of its own, bound writable
/// onto itself. A mount point cannot be renamed or removed (`EBUSY`), so the
/// protection cannot be sidestepped by moving its parent away and creating a
/// fresh, unprotected copy (`mv .git .git-old; mkdir -p .git/hooks`). The
/// cost: renames between these directories and the rest of the root cross a
/// mount (`EXDEV`; `mv` falls back to copying).
fn pin_ancestors(mounts: &mut Vec<MountOp>, fs: &dyn FsView) {
    let mut pins: Vec<PathBuf> = Vec::new();
    for op in mounts.iter() {
        if matches!(op, MountOp::BindWritable { .. }) {
            continue;
        }
        let path = op.path();
        let enclosing = mounts
            .iter()
            .filter(|o| path.starts_with(o.path()) && o.path() != path)
            .max_by_key(|o| depth(o.path()));
        let Some(MountOp::BindWritable { path: root }) = enclosing else {
            continue;
        };
        for ancestor in path.ancestors().skip(1) {
            if ancestor == root.as_path() {
                break;
            }
            let known =
                mounts.iter().any(|o| o.path() == ancestor) || pins.iter().any(|p| p == ancestor);
            if !known && fs.metadata_kind(ancestor) == Some(Kind::Dir) {
                pins.push(ancestor.to_path_buf());
            }
        }
    }
    mounts.extend(pins.into_iter().map(|path| MountOp::BindWritable { path }));
    // Shallowest first again, as the module docs require: pins and placeholders
    // (which stand in from a shallower component than their rule) were added
    // out of order.
    mounts.sort_by(|a, b| {
        depth(a.path())
            .cmp(&depth(b.path()))
            .then_with(|| a.path().cmp(b.path()))
    });
}

impl Policy {
    /// Derives the Linux plan; globs are expanded through `fs`.
    pub fn linux_plan(&self, fs: &dyn FsView) -> LinuxPlan {
        self.linux_plan_and_facts(fs).0
    }

    /// Derives the Linux plan like [`linux_plan`](Self::linux_plan), with
    /// what it learned of `fs`: while those facts [hold](FsFacts::hold), the
    /// plan is what this policy derives.
    pub fn linux_plan_and_facts(&self, fs: &dyn FsView) -> (LinuxPlan, FsFacts) {
        let remembered = crate::fs_view::Remembered::new(fs);
        let plan = self.derive_linux_plan(&remembered);
        (plan, remembered.into_facts())
    }

    fn derive_linux_plan(&self, fs: &dyn FsView) -> LinuxPlan {
        let f = &self.filesystem;
        let mut plan = LinuxPlan::default();
        let mut points: BTreeMap<PathBuf, &PathRule> = BTreeMap::new();
        let lists: [(RuleList, &Vec<PathRule>); 4] = [
            (RuleList::DenyRead, &f.deny_read),
            (RuleList::AllowRead, &f.allow_read),
            (RuleList::AllowWrite, &f.allow_write),
            (RuleList::DenyWrite, &f.deny_write),
        ];
        for (list, rules) in lists {
            for rule in rules {
                if let Some(path) = rule.pattern.literal_path() {
                    points.entry(path).or_insert(rule);
                    continue;
                }
                let (found, truncated) = expand(&rule.pattern, fs);
                plan.gaps.push(Gap {
                    rule: Some(rule.origin.clone()),
                    reason: glob_gap(list, found.len()),
                });
                if truncated {
                    plan.gaps.push(Gap {
                        rule: Some(rule.origin.clone()),
                        reason: format!(
                            "glob: expansion stopped after {} entries; later matches are not enforced",
                            crate::plan::GLOB_EXPANSION_LIMIT
                        ),
                    });
                }
                for path in found {
                    points.entry(path).or_insert(rule);
                }
                plan.globs.push(GlobRule {
                    list,
                    pattern: rule.pattern.clone(),
                    origin: rule.origin.clone(),
                });
            }
        }
        let mut ordered: Vec<(PathBuf, &PathRule)> = points.into_iter().collect();
        ordered.sort_by(|(a, _), (b, _)| depth(a).cmp(&depth(b)).then_with(|| a.cmp(b)));

        let mut states: BTreeMap<PathBuf, State> = BTreeMap::new();
        for (path, rule) in ordered {
            let want = if !f.can_read(&path) {
                State::Hidden
            } else if f.can_write(&path) {
                State::Writable
            } else {
                State::ReadOnly
            };
            let inherited = path
                .ancestors()
                .skip(1)
                .find_map(|a| states.get(a).copied())
                .unwrap_or(State::ReadOnly);
            if want == inherited {
                states.insert(path, want);
                continue;
            }
            let kind = fs.metadata_kind(&path);
            let op = match (want, kind) {
                (State::Hidden | State::ReadOnly, None) if inherited == State::Writable => {
                    if let Some(placeholder) = placeholder_for(&path, fs, &rule.origin) {
                        let stand_in = placeholder.path.clone();
                        // Several protected paths can share one stand-in
                        // (`.git/hooks` and `.git/config` without `.git`).
                        if !plan.placeholders.iter().any(|p| p.path == stand_in) {
                            plan.placeholders.push(placeholder);
                            plan.mounts.push(MountOp::ReadOnly {
                                path: stand_in.clone(),
                            });
                        }
                        states.insert(stand_in, want);
                        continue;
                    }
                    plan.gaps.push(Gap {
                        rule: Some(rule.origin.clone()),
                        reason: format!(
                            "{}: does not exist when the sandbox starts and cannot be stood in \
                             for, so the sandbox could create it",
                            path.display()
                        ),
                    });
                    states.insert(path, inherited);
                    continue;
                }
                (_, None) | (_, Some(Kind::Symlink)) => {
                    let reason = match (want, inherited) {
                        (State::Writable, _) => Some("does not exist when the sandbox starts, so it is not writable"),
                        (_, State::Writable) => Some("does not exist when the sandbox starts, so the sandbox could create it"),
                        _ => None,
                    };
                    if let Some(reason) = reason {
                        plan.gaps.push(Gap {
                            rule: Some(rule.origin.clone()),
                            reason: format!("{}: {reason}", path.display()),
                        });
                    }
                    states.insert(path, inherited);
                    continue;
                }
                (State::Hidden, Some(Kind::Dir)) => MountOp::MaskDir {
                    path: path.clone(),
                    mountpoints: Vec::new(),
                },
                (State::Hidden, Some(_)) => MountOp::MaskFile { path: path.clone() },
                (State::Writable, _) => MountOp::BindWritable { path: path.clone() },
                (State::ReadOnly, _) => MountOp::ReadOnly { path: path.clone() },
            };
            if want == State::Writable {
                plan.landlock.rules.push(LandlockRule {
                    path: path.clone(),
                    access: LandlockAccess::ReadWrite,
                });
            }
            states.insert(path, want);
            plan.mounts.push(op);
        }
        pin_ancestors(&mut plan.mounts, fs);
        plan.placeholders.sort_by(|a, b| a.path.cmp(&b.path));
        // Mount points inside masks: each op's nearest enclosing op.
        for i in 0..plan.mounts.len() {
            let path = plan.mounts[i].path().to_path_buf();
            let enclosing = (0..i)
                .filter(|j| path.starts_with(plan.mounts[*j].path()))
                .max_by_key(|j| depth(plan.mounts[*j].path()));
            if let Some(j) = enclosing {
                let kind = fs.metadata_kind(&path).unwrap_or(Kind::Dir);
                if let MountOp::MaskDir { mountpoints, .. } = &mut plan.mounts[j] {
                    mountpoints.push(Mountpoint { path, kind });
                }
            }
        }
        plan.landlock.rules.insert(
            0,
            LandlockRule {
                path: PathBuf::from("/"),
                access: LandlockAccess::ReadExecute,
            },
        );
        plan.seccomp = self.seccomp_plan(fs, &mut plan.gaps);
        plan
    }

    fn seccomp_plan(&self, fs: &dyn FsView, gaps: &mut Vec<Gap>) -> SeccompPlan {
        let net = &self.network;
        let mut paths = Vec::new();
        for rule in &net.allow_unix_sockets {
            let found = match rule.pattern.literal_path() {
                Some(p) => vec![p],
                None => expand(&rule.pattern, fs).0,
            };
            paths.extend(
                found
                    .into_iter()
                    .filter(|p| !net.deny_unix_sockets.iter().any(|d| d.pattern.covers(p))),
            );
        }
        paths.sort();
        paths.dedup();
        if !paths.is_empty() {
            gaps.push(Gap {
                rule: None,
                reason: "unix sockets: seccomp cannot see the path given to connect(), so with \
                         AF_UNIX allowed any unix socket visible in the sandbox can be reached"
                    .to_string(),
            });
        }
        SeccompPlan {
            allow_unix_sockets: !paths.is_empty(),
            unix_socket_paths: paths,
            allow_local_binding: net.allow_local_binding,
        }
    }
}
