//! frame

/// A frame on the runner channel could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// I/O on the socket failed.
    #[error("i/o error on the runner channel: {0}")]
    Io(#[from] std::io::Error),
}
