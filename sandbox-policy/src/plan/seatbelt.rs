//! The macOS Seatbelt (SBPL) profile generator.
//!
//! In SBPL the *last* matching rule wins, so the profile is written from the
//! general to the specific:
//!
//! 1. `(version 1)(allow default)`, then `(deny file-write*)`;
//! 2. `(allow file-write* …)` for the temporary directories and every
//!    `allowWrite` rule;
//! 3. the read rules, least specific first (by pattern depth; at equal depth the
//!    re-opening before the deny, so the deny wins): a `denyRead` region denies
//!    reading *and* writing; an `allowRead` re-opening allows reading, and writing
//!    where an `allowWrite` rule or temporary directory also applies;
//! 4. `(deny file-write* …)` for every `denyWrite` rule (it beats everything above);
//! 5. `(deny network*)`, then outbound TCP to the local proxy ports, the allowed
//!    unix sockets, and local binding when allowed.
//!
//! A literal rule path is `(subpath "…")`; a glob is `(regex #"^…(/.*)?$")`, the
//! exact translation of [`crate::glob`] (the rule covers its matches and everything
//! beneath them). The ordering of glob rules by pattern depth approximates "the
//! most specific match wins" for globs whose match depth varies (`**`).

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::filesystem::PathRule;
use crate::fs_view::FsView;
use crate::glob::PathPattern;
use crate::network::NetworkPolicy;
use crate::policy::Policy;

/// Parameters of the profile that are not policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatbeltOptions {
    /// Local port of the HTTP proxy the sandbox may connect to.
    pub http_proxy_port: Option<u16>,
    /// Local port of the SOCKS5 proxy the sandbox may connect to.
    pub socks_proxy_port: Option<u16>,
    /// Writable temporary directories (already symlink-resolved).
    pub temp_dirs: Vec<PathBuf>,
}

impl Default for SeatbeltOptions {
    /// No proxy; `/private/tmp` and `/private/var/folders` writable.
    fn default() -> Self {
        SeatbeltOptions {
            http_proxy_port: None,
            socks_proxy_port: None,
            temp_dirs: vec![
                PathBuf::from("/private/tmp"),
                PathBuf::from("/private/var/folders"),
            ],
        }
    }
}

impl SeatbeltOptions {
    /// The defaults, with the proxy ports the policy's settings fixed.
    pub fn for_network(network: &NetworkPolicy) -> SeatbeltOptions {
        SeatbeltOptions {
            http_proxy_port: network.http_proxy_port,
            socks_proxy_port: network.socks_proxy_port,
            ..SeatbeltOptions::default()
        }
    }
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn filter(pattern: &PathPattern) -> String {
    match pattern.literal_path() {
        Some(path) => format!("(subpath {})", quote(&path.to_string_lossy())),
        None => format!("(regex #\"^{}(/.*)?$\")", pattern.to_regex()),
    }
}

/// A trailing SBPL comment naming the rule's origin (control characters replaced,
/// so a newline in a settings string cannot end the comment).
fn comment(rule: &PathRule) -> String {
    let o = &rule.origin;
    format!(" ; {} {} [{}]", o.field, o.text, o.layer)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

impl Policy {
    /// The Seatbelt profile with the proxy ports of the policy's settings (if any)
    /// and the default temporary directories. Paths were resolved when the policy was
    /// built: `fs` is not consulted (globs become regexes, nothing is expanded); it is
    /// taken for symmetry with [`Policy::linux_plan`].
    pub fn seatbelt_profile(&self, fs: &dyn FsView) -> String {
        self.seatbelt_profile_with(fs, &SeatbeltOptions::for_network(&self.network))
    }

    /// The Seatbelt profile with explicit options.
    pub fn seatbelt_profile_with(&self, _fs: &dyn FsView, options: &SeatbeltOptions) -> String {
        let f = &self.filesystem;
        let mut out = String::from(
            "(version 1)\n(allow default)\n\n; writes: nothing but these\n(deny file-write*)\n",
        );
        let mut writable: Vec<String> = options
            .temp_dirs
            .iter()
            .map(|d| format!("(subpath {})", quote(&d.to_string_lossy())))
            .collect();
        for dir in &writable {
            let _ = writeln!(out, "(allow file-write* {dir})");
        }
        for rule in &f.allow_write {
            let _ = writeln!(
                out,
                "(allow file-write* {}){}",
                filter(&rule.pattern),
                comment(rule)
            );
        }
        writable.extend(f.allow_write.iter().map(|r| filter(&r.pattern)));

        let mut reads: Vec<(&PathRule, bool)> = f
            .deny_read
            .iter()
            .map(|r| (r, false))
            .chain(f.allow_read.iter().map(|r| (r, true)))
            .collect();
        // Least specific first; at equal depth the re-opening first so the deny wins.
        reads.sort_by_key(|(r, allow)| (r.pattern.depth(), !*allow));
        if !reads.is_empty() {
            out.push_str("\n; reads: denied regions and re-openings, least specific first\n");
        }
        for (rule, allow) in reads {
            let target = filter(&rule.pattern);
            if allow {
                let _ = writeln!(out, "(allow file-read* {target}){}", comment(rule));
                let _ = writeln!(
                    out,
                    "(allow file-write* (require-all {target} (require-any {})))",
                    writable.join(" ")
                );
            } else {
                let _ = writeln!(
                    out,
                    "(deny file-read* file-write* {target}){}",
                    comment(rule)
                );
            }
        }
        if !f.deny_write.is_empty() {
            out.push_str("\n; deny-write beats allow-write\n");
        }
        for rule in &f.deny_write {
            let _ = writeln!(
                out,
                "(deny file-write* {}){}",
                filter(&rule.pattern),
                comment(rule)
            );
        }

        let net = &self.network;
        out.push_str(
            "\n; network: only the local proxies and allowed unix sockets\n(deny network*)\n",
        );
        for port in [options.http_proxy_port, options.socks_proxy_port]
            .into_iter()
            .flatten()
        {
            let _ = writeln!(
                out,
                "(allow network-outbound (remote tcp \"localhost:{port}\"))"
            );
        }
        for rule in &net.allow_unix_sockets {
            let target = match rule.pattern.literal_path() {
                Some(p) => format!("(path-literal {})", quote(&p.to_string_lossy())),
                None => format!("(regex #\"^{}$\")", rule.pattern.to_regex()),
            };
            let _ = writeln!(
                out,
                "(allow network-outbound (remote unix-socket {target})){}",
                comment(rule)
            );
        }
        for rule in &net.deny_unix_sockets {
            let target = match rule.pattern.literal_path() {
                Some(p) => format!("(path-literal {})", quote(&p.to_string_lossy())),
                None => format!("(regex #\"^{}$\")", rule.pattern.to_regex()),
            };
            let _ = writeln!(
                out,
                "(deny network-outbound (remote unix-socket {target})){}",
                comment(rule)
            );
        }
        if net.allow_local_binding {
            out.push_str("(allow network-bind (local ip \"localhost:*\"))\n");
            out.push_str("(allow network-inbound (local ip \"localhost:*\"))\n");
        }
        out
    }
}
