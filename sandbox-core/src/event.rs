use crate::{EvalId, Outcome, Violation};

/// Something that happened to an evaluation, for subscribers (dashboards,
/// debuggers, the manager's metrics).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The runner child for an evaluation was spawned.
    Started {
        /// The evaluation.
        eval: EvalId,
        /// Host pid of the runner child.
        runner_pid: u32,
    },
    /// A protected action was denied while the evaluation ran.
    Violation(Violation),
    /// The evaluation ended.
    Finished {
        /// The evaluation.
        eval: EvalId,
        /// Its outcome.
        outcome: Box<Outcome>,
    },
}
