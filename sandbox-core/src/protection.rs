//! The kernel protections a confined evaluation relies on, and which of them a
//! caller may agree to go without.
//!
//! The executor fails closed: when a protection the policy needs cannot be
//! applied on this machine, the evaluation is refused with an error naming it,
//! unless the request lists it in [`crate::EvalRequest::accept_weaker`].

use std::fmt;
use std::str::FromStr;

/// A protection that can be missing on some machines.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Protection {
    /// Landlock filesystem rules and scoping (signals, abstract Unix sockets),
    /// on top of the mount namespace.
    Landlock,
    /// The seccomp filter that blocks dangerous system calls (ptrace, mount,
    /// namespaces, keyrings, bpf, io_uring, TIOCSTI, raw sockets, …).
    Seccomp,
}

impl Protection {
    /// Every protection, in a stable order.
    pub const ALL: [Protection; 2] = [Protection::Landlock, Protection::Seccomp];

    /// The name used on the command line and in JSON (`landlock`, `seccomp`).
    pub fn name(self) -> &'static str {
        match self {
            Protection::Landlock => "landlock",
            Protection::Seccomp => "seccomp",
        }
    }
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a [`Protection`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protection {0:?}: expected one of landlock, seccomp, all")]
pub struct UnknownProtection(pub String);

impl FromStr for Protection {
    type Err = UnknownProtection;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Protection::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownProtection(s.to_string()))
    }
}

/// A protection that was not (fully) applied to an evaluation, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Weakening {
    /// What is weaker.
    pub protection: Protection,
    /// Whether it was left out entirely (`false`: applied in part).
    pub missing: bool,
    /// What exactly is not enforced, and why.
    pub detail: String,
}

impl fmt::Display for Weakening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.missing {
            "not applied"
        } else {
            "partly applied"
        };
        write!(f, "{} {how}: {}", self.protection, self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protections_parse_from_their_names() {
        for p in Protection::ALL {
            assert_eq!(p.name().parse::<Protection>(), Ok(p));
        }
    }

    #[test]
    fn an_unknown_protection_names_the_accepted_ones() {
        let err = "apparmor".parse::<Protection>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown protection \"apparmor\": expected one of landlock, seccomp, all"
        );
    }
}
