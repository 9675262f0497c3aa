//! Passing descriptors between init and the executor over their channel
//! (`SCM_RIGHTS`): the sockets init creates inside the sandbox's network
//! namespace are served by the executor outside it.
//!
//! A batch travels as one byte carrying the descriptors, sent at a point of
//! the protocol where the receiver expects it (right after the job, before
//! init's `Accepted`), so it never lands inside a frame.

use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use interprocess::local_socket::tokio::Stream as AsyncStream;
use interprocess::local_socket::Stream;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use tokio::io::Interest;

/// Most descriptors one batch carries.
pub(crate) const MAX_FDS: usize = 5;

fn raw_sync(stream: &Stream) -> RawFd {
    match stream {
        Stream::UdSocket(s) => s.inner().as_raw_fd(),
    }
}

/// Sends `fds` (at most [`MAX_FDS`]) to the other end of `stream`.
pub(crate) fn send(stream: &Stream, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    send_on(raw_sync(stream), fds)
}

/// Sends `fds` (at most [`MAX_FDS`]) over the connected Unix socket `socket`.
pub(crate) fn send_on(socket: RawFd, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let byte = [fds.len() as u8];
    loop {
        match sendmsg::<()>(
            socket,
            &[IoSlice::new(&byte)],
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one batch of descriptors sent with [`send`].
pub(crate) async fn receive(stream: &AsyncStream) -> io::Result<Vec<OwnedFd>> {
    let AsyncStream::UdSocket(s) = stream;
    let socket = s.inner();
    loop {
        socket.readable().await?;
        match socket.try_io(Interest::READABLE, || receive_now(socket.as_raw_fd())) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            result => return result,
        }
    }
}

/// Receives one batch sent with [`send_on`] over the blocking Unix socket
/// `fd`, waiting for it (or ready now, when called from [`receive`]).
pub(crate) fn receive_now(fd: RawFd) -> io::Result<Vec<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [IoSliceMut::new(&mut byte)];
    let msg = loop {
        match recvmsg::<()>(fd, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Err(nix::errno::Errno::EINTR) => continue,
            result => break result.map_err(io::Error::from)?,
        }
    };
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            // SAFETY: the kernel just installed these descriptors for us.
            fds.extend(
                received
                    .into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    if msg.bytes == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the other end closed the channel before passing its descriptors",
        ));
    }
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        return Err(io::Error::other(
            "more descriptors were passed than expected",
        ));
    }
    let expected = byte[0] as usize;
    if fds.len() != expected {
        return Err(io::Error::other(format!(
            "expected {expected} descriptors, got {}",
            fds.len()
        )));
    }
    Ok(fds)
}
