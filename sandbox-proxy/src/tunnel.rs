//! The byte pump between a sandbox's connection and the upstream server.
//!
//! On Linux, when both ends are sockets the proxy owns (TCP or Unix), bytes move
//! with `splice(2)` through a pipe and never enter user space: a copying proxy
//! doubles the memory traffic of every byte, which on loopback halves throughput.
//! Other streams, or a kernel refusing the pipes, use a buffered copy.

use std::any::Any;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Per-direction buffer of the copying fallback. Larger than tokio's 8 KiB
/// default because bulk transfers are bounded by syscalls per byte; small enough
/// that a thousand open tunnels stay around 64 MiB.
const BUFFER: usize = 32 * 1024;

/// Copies both ways until both directions have ended, forwarding a half-close (EOF
/// from one side becomes a write shutdown towards the other) so protocols that end
/// a request by shutting down still work. Returns the bytes sent upstream and
/// downstream.
pub(crate) async fn splice<A>(client: &mut A, upstream: &mut TcpStream) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + Any,
{
    #[cfg(target_os = "linux")]
    {
        let any: &mut dyn Any = client;
        if let Some(tcp) = any.downcast_ref::<TcpStream>() {
            if let Some(done) = zero_copy::both_ways(tcp, upstream).await {
                return done;
            }
        } else if let Some(unix) = any.downcast_ref::<tokio::net::UnixStream>() {
            if let Some(done) = zero_copy::both_ways(unix, upstream).await {
                return done;
            }
        }
    }
    copy(client, upstream).await
}

/// The buffered copy, for any pair of streams.
pub(crate) async fn copy<A, B>(client: &mut A, upstream: &mut B) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    tokio::io::copy_bidirectional_with_sizes(client, upstream, BUFFER, BUFFER).await
}

#[cfg(target_os = "linux")]
mod zero_copy {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

    use tokio::io::Interest;
    use tokio::net::{TcpStream, UnixStream};

    /// Bytes moved per `splice` call; the pipe is sized to hold them.
    const CHUNK: usize = 256 * 1024;

    /// A socket whose readiness tokio tracks and whose descriptor `splice` can use.
    pub(super) trait Socket: AsRawFd {
        async fn io<R>(
            &self,
            interest: Interest,
            op: impl FnMut() -> io::Result<R>,
        ) -> io::Result<R>;
    }

    impl Socket for TcpStream {
        async fn io<R>(
            &self,
            interest: Interest,
            op: impl FnMut() -> io::Result<R>,
        ) -> io::Result<R> {
            self.async_io(interest, op).await
        }
    }

    impl Socket for UnixStream {
        async fn io<R>(
            &self,
            interest: Interest,
            op: impl FnMut() -> io::Result<R>,
        ) -> io::Result<R> {
            self.async_io(interest, op).await
        }
    }

    struct Pipe {
        read: OwnedFd,
        write: OwnedFd,
    }

    fn pipe() -> io::Result<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into the array it is given.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned by nobody else.
        let pipe = unsafe {
            Pipe {
                read: OwnedFd::from_raw_fd(fds[0]),
                write: OwnedFd::from_raw_fd(fds[1]),
            }
        };
        // A larger pipe means fewer calls per byte; the default (64 KiB) still works
        // when the system limit refuses.
        // SAFETY: F_SETPIPE_SZ on a pipe we own.
        unsafe {
            libc::fcntl(
                pipe.write.as_raw_fd(),
                libc::F_SETPIPE_SZ,
                CHUNK as libc::c_int,
            )
        };
        Ok(pipe)
    }

    fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
        // SAFETY: plain descriptors, no user memory involved.
        let n = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Both directions, or `None` when the pipes cannot be had (out of descriptors)
    /// and the caller should copy instead.
    pub(super) async fn both_ways<A: Socket, B: Socket>(
        client: &A,
        upstream: &B,
    ) -> Option<io::Result<(u64, u64)>> {
        let (up, down) = match (pipe(), pipe()) {
            (Ok(up), Ok(down)) => (up, down),
            _ => return None,
        };
        Some(tokio::try_join!(
            one_way(client, upstream, &up),
            one_way(upstream, client, &down)
        ))
    }

    /// Moves bytes from `from` to `to` until `from` ends, then shuts down writing
    /// on `to` (forwarding the half-close).
    async fn one_way<A: Socket, B: Socket>(from: &A, to: &B, pipe: &Pipe) -> io::Result<u64> {
        let mut total = 0u64;
        loop {
            // The pipe is empty here, so a would-block can only mean the source
            // has nothing to read: tokio's readiness for `from` is the right wait.
            let mut pending = from
                .io(Interest::READABLE, || {
                    splice(from.as_raw_fd(), pipe.write.as_raw_fd(), CHUNK)
                })
                .await?;
            if pending == 0 {
                // SAFETY: shutdown on a socket we hold; errors (already closed) are moot.
                unsafe { libc::shutdown(to.as_raw_fd(), libc::SHUT_WR) };
                return Ok(total);
            }
            while pending > 0 {
                let n = to
                    .io(Interest::WRITABLE, || {
                        splice(pipe.read.as_raw_fd(), to.as_raw_fd(), pending)
                    })
                    .await?;
                pending -= n;
                total += n as u64;
            }
        }
    }
}
