//! Shared types and lifecycle traits of the `sandbox` toolkit.
//!
//! Every other crate speaks in these terms: an [`EvalRequest`] describes one
//! evaluation (command, stdin, environment, setup steps, [`Limits`], timeout and
//! output limit), an [`Executor`] runs it in a fresh confined child, and the
//! result is an [`Outcome`] with a precise [`Status`], the captured output, its
//! truncation facts, resource usage and the [`Violation`]s recorded meanwhile.
//! Use this crate directly when you program against the executor trait (to swap in
//! another executor, or to build a manager on top) without pulling in the Linux
//! machinery of `sandbox-exec`.
//!
//! The [`manager`] module keeps named sandboxes in a state directory: their
//! specs, versioned modules with hot reload and rollback, supervised services,
//! snapshots and metrics ([`Manager`]).
//!
//! ```
//! use std::time::Duration;
//! use sandbox_core::{Command, EvalRequest, Limits};
//!
//! let request = EvalRequest::new(Command::shell("echo hello"))
//!     .timeout(Duration::from_secs(5))
//!     .max_output(1024)
//!     .limits(Limits { memory: Some(256 << 20), ..Limits::default() });
//! assert_eq!(request.timeout, Duration::from_secs(5));
//! assert_eq!(request.command.program(), "/bin/sh");
//! ```

mod bytes;
mod event;
mod executor;
mod id;
mod limits;
pub mod manager;
mod outcome;
mod protection;
mod request;
mod units;
mod violation;
mod violation_file;
mod violation_log;
mod violation_sink;

pub use bytes::format_bytes;
pub use event::Event;
pub use executor::Executor;
pub use id::EvalId;
pub use limits::{LimitEnforcement, LimitKind, Limits, Mechanism};
pub use manager::{Manager, ManagerError, SandboxSpec};
pub use outcome::{Outcome, ResourceUsage, Status, StreamCounts, Termination, Truncation};
pub use protection::{Protection, UnknownProtection, Weakening};
pub use request::{
    Command, EvalRequest, OutputLimitAction, TruncateMode, DEFAULT_ENV_ALLOWLIST,
    DEFAULT_MAX_OUTPUT, DEFAULT_TIMEOUT,
};
pub use units::{format_duration, parse_duration, parse_size, UnitError, UnitProblem};
pub use violation::{Violation, ViolationKind};
pub use violation_file::{ReadLog, ViolationFile, ViolationFileError, DEFAULT_MAX_BYTES};
pub use violation_log::{ViolationLog, DEFAULT_LOG_CAPACITY};
pub use violation_sink::ViolationSink;
