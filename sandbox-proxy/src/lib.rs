//! Filtering network proxies for sandboxes (work in progress, see issue 4).
//!
//! A confined evaluation has no network of its own: it reaches the outside only
//! through the HTTP (`CONNECT` and absolute-form) and SOCKS5 proxies this crate
//! will provide, which allow or deny each connection by domain and `host:port`
//! according to the sandbox's policy and record every denial as a violation.
//!
//! Nothing is exported yet; this doc test only proves the crate links:
//!
//! ```
//! let _ = sandbox_proxy::CRATE_PURPOSE;
//! ```

/// One line saying what this crate is for (a placeholder until the proxies land).
pub const CRATE_PURPOSE: &str = "filtering HTTP and SOCKS5 proxies for sandboxes";
