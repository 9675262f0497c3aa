//! The byte pump between a sandbox's connection and the upstream server.

use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

/// Per-direction copy buffer. Larger than tokio's 8 KiB default because bulk
/// transfers through a tunnel are bounded by syscalls per byte; small enough that a
/// thousand open tunnels stay around 64 MiB.
const BUFFER: usize = 32 * 1024;

/// Copies both ways until both directions have ended, forwarding a half-close (EOF
/// from one side becomes a write shutdown towards the other) so request/response
/// protocols that signal the end of a request by shutting down still work. Returns
/// the bytes sent upstream and downstream.
pub(crate) async fn splice<A, B>(client: &mut A, upstream: &mut B) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    tokio::io::copy_bidirectional_with_sizes(client, upstream, BUFFER, BUFFER).await
}
