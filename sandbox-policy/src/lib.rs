//! Pure sandbox policy: what a sandboxed process may read, write and connect to.
//!
//! This crate turns permission strings (`Read(~/.ssh)`, `Edit(./src)`,
//! `WebFetch(domain:github.com)`, `UnixSocket(/var/run/docker.sock)`) and settings
//! JSON (the seed's `permissions` shape and anthropic sandbox-runtime's field names)
//! into one [`Policy`] value, layer by layer, each rule remembering its origin. From
//! the policy it derives the platform plans: the Linux mount plan, Landlock rules
//! and seccomp description ([`LinuxPlan`]) and the macOS Seatbelt profile
//! ([`Policy::seatbelt_profile`]); the network half answers the proxy's questions
//! ([`NetworkPolicy::decide`]).
//!
//! It does no I/O beyond reading the settings files it is asked to read: the home
//! directory and working directory come from a [`Context`], and symlinks, file kinds
//! and directory listings from an [`FsView`] ([`HostFs`] for the real machine,
//! [`MemFs`] for tests), so everything it produces is a value that can be printed
//! and tested on every platform.
//!
//! ```
//! use sandbox_policy::{Context, DecisionReason, MemFs, Policy};
//! use std::path::Path;
//!
//! let ctx = Context { home: "/home/user".into(), cwd: "/home/user/project".into() };
//! let fs = MemFs::new().dir("/home/user/project/src").dir("/home/user/.ssh");
//! let (policy, report) = Policy::builder(ctx)
//!     .allow("Edit(./src)")
//!     .deny("Read(~/.ssh)")
//!     .allow("WebFetch(domain:*.github.com)")
//!     .deny("WebFetch(domain:gist.github.com)")
//!     .build(&fs)?;
//! assert!(report.warnings.is_empty());
//!
//! assert!(policy.filesystem.can_write(Path::new("/home/user/project/src/main.rs")));
//! assert!(!policy.filesystem.can_read(Path::new("/home/user/.ssh/id_ed25519")));
//!
//! let decision = policy.network.decide("api.github.com", 443);
//! assert!(decision.allowed);
//! assert_eq!(decision.rule.unwrap().text, "WebFetch(domain:*.github.com)");
//! let decision = policy.network.decide("gist.github.com", 443);
//! assert_eq!(decision.reason, DecisionReason::DeniedByRule);
//! # Ok::<(), sandbox_policy::PolicyError>(())
//! ```
//!
//! Modules: [`permission`] (the grammar), [`path`] (rule paths), [`glob`] (pattern
//! semantics), [`settings`] (JSON and layers), [`filesystem`] and [`network`] (the
//! meaning of the rules), [`domain`] (host matching), [`plan`] (platform plans).

pub mod domain;
pub mod error;
pub mod filesystem;
pub mod fs_view;
pub mod glob;
pub mod network;
pub mod origin;
pub mod path;
pub mod permission;
pub mod plan;
pub mod policy;
#[cfg(test)]
mod random_strings;
pub mod settings;

pub use domain::{is_private_address, DomainError, Host, HostPattern, NetTarget};
pub use error::{PolicyError, SettingsError};
pub use filesystem::{FilesystemPolicy, PathRule};
pub use fs_view::{FsFacts, FsView, HostFs, Kind, MemFs};
pub use glob::{GlobError, PathPattern};
pub use network::{Decision, DecisionReason, NetRule, NetworkPolicy};
pub use origin::{Layer, Origin};
pub use path::{Context, PathError};
pub use permission::{Effect, Permission, PermissionError, Problem};
pub use plan::linux::{
    GlobRule, LandlockAccess, LandlockPlan, LandlockRule, LinuxPlan, MountOp, Mountpoint,
    Placeholder, RuleList, SeccompPlan,
};
pub use plan::seatbelt::SeatbeltOptions;
pub use plan::Gap;
pub use policy::{Policy, PolicyBuilder, Report, RuleSummary, Warning};
