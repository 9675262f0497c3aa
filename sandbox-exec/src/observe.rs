//! Live observation of a running evaluation.

/// Which standard stream a chunk of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Receives what happens while an evaluation runs, e.g. to stream its output to a
/// terminal.
///
/// Every method has an empty default, so implement only what you need.
pub trait Observer: Send {
    /// The runner child that runs this evaluation has this host pid (it may have
    /// been started ahead of time, as a spare, but it runs no other evaluation).
    fn runner_started(&mut self, _pid: u32) {}

    /// The next bytes of the kept output, in arrival order.
    ///
    /// Concatenated, the chunks are exactly the beginning of `Outcome::output`:
    /// bytes past the output limit are never passed here, and a UTF-8 character is
    /// never split between a chunk and the limit. Whatever `Outcome::output` holds
    /// beyond them (the truncation marker, and the tail in `head_tail` mode) is
    /// known only at the end.
    fn output(&mut self, _stream: OutputStream, _bytes: &[u8]) {}
}

/// An [`Observer`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl Observer for NoObserver {}
