//! The executor's side of the zygote: a runner process started once, which
//! clones each spare's init instead of the executor executing a runner (the
//! zygote's side, and why, is in `runner::zygote`).

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::socket::{send, MsgFlags};

use crate::fdpass;
use crate::frame;
use crate::pidfd::{ChildProcess, Pidfd};
use crate::protocol::{Forked, RunnerSpec};
use crate::runner::{PARENT_ENV, USERNS_ENV, ZYGOTE_ENV};

/// How long a fork may take before the zygote is given up as hung: a fork
/// takes well under a millisecond, so only a stopped or wedged zygote waits
/// this long.
const PATIENCE: Duration = Duration::from_secs(5);

/// A running zygote and the channel to it.
#[derive(Debug)]
pub(crate) struct Zygote {
    /// Killed and reaped when the zygote is dropped; the inits it cloned
    /// are the executor's children and live on.
    _process: ChildProcess,
    channel: UnixStream,
}

impl Zygote {
    /// Starts `program` (with `args`) as a zygote.
    ///
    /// The inits it clones get their parent-death signal from the thread
    /// calling this, so call it from a thread that outlives them.
    /// With `user_namespace` (an unprivileged executor), the zygote moves
    /// into a user namespace of its own first, the parent of its inits'.
    pub fn start(program: &Path, args: &[OsString], user_namespace: bool) -> io::Result<Zygote> {
        let (channel, theirs) = UnixStream::pair()?;
        channel.set_read_timeout(Some(PATIENCE))?;
        channel.set_write_timeout(Some(PATIENCE))?;
        let child = std::process::Command::new(program)
            .args(args)
            .env_clear()
            .env(ZYGOTE_ENV, "1")
            .env(USERNS_ENV, if user_namespace { "1" } else { "0" })
            .env(PARENT_ENV, std::process::id().to_string())
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let pidfd = match Pidfd::open(child.id()) {
            Ok(pidfd) => pidfd,
            Err(error) => {
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
                return Err(error);
            }
        };
        Ok(Zygote {
            _process: ChildProcess::new(pidfd),
            channel,
        })
    }

    /// Clones the init of `spec` (the runner of a spare), with `fds` as its
    /// standard input, output and error and its channel to the executor,
    /// and in `network` if the zygote finds it idle (see
    /// `runner/network.rs`). Returns the init and, for a confined one, its
    /// network namespace. An error means the zygote is unusable.
    pub fn fork(
        &mut self,
        spec: &RunnerSpec,
        fds: [BorrowedFd<'_>; 4],
        network: Option<BorrowedFd<'_>>,
    ) -> io::Result<(ChildProcess, Option<OwnedFd>)> {
        let fd = self.channel.as_raw_fd();
        let batch: Vec<BorrowedFd<'_>> = fds.into_iter().chain(network).collect();
        fdpass::send_on(fd, &batch)?;
        let request = frame::encode(spec).map_err(io::Error::other)?;
        send_all(fd, &request)?;
        let mut received = fdpass::receive_now(fd)?.into_iter();
        match frame::read_sync::<_, Forked>(&mut self.channel).map_err(io::Error::other)? {
            Forked::Runner { pid } => {
                let pidfd = received
                    .next()
                    .ok_or_else(|| io::Error::other("the zygote sent no pidfd with its runner"))?;
                let init = ChildProcess::new(Pidfd::from_owned(pidfd, pid));
                Ok((init, received.next()))
            }
            Forked::Failed { reason } => Err(io::Error::other(reason)),
        }
    }
}

/// Writes all of `bytes` to the socket `fd`, with an error rather than
/// `SIGPIPE` if the zygote is gone.
fn send_all(fd: std::os::fd::RawFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match send(fd, bytes, MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => bytes = &bytes[n..],
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
