//! Pure sandbox policy (work in progress, see issue 3).
//!
//! This crate will turn permission strings (`Read(~/.ssh)`, `Edit(./src)`,
//! `WebFetch(domain:github.com)`) and settings JSON into one [`Policy`] value, and
//! derive the platform plans from it (Landlock rules, mount plan, seccomp program,
//! Seatbelt profile). It does no I/O beyond reading the settings files it is asked
//! to read, so everything it produces can be printed and tested on every platform.
//!
//! ```
//! let policy = sandbox_policy::Policy::default();
//! assert!(policy.is_unrestricted());
//! ```

/// The effective confinement policy of a sandbox.
///
/// Empty for now: the executor runs without filesystem or network rules until the
/// policy issue lands.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Policy {}

impl Policy {
    /// True when the policy adds no rule at all.
    pub fn is_unrestricted(&self) -> bool {
        true
    }
}
