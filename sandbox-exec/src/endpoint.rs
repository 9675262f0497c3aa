//! The private endpoint a runner connects back to, and how the executor makes
//! sure the peer is the child it spawned.
//!
//! Three locks, any one of which keeps strangers out: the socket lives in a
//! directory only our uid can enter (mode 0700); the accepted peer's pid
//! (`SO_PEERCRED`) must be the runner's; and the runner must present a 128-bit
//! token that was passed only in its environment (readable only by its own user).

use std::fmt::Write as _;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use std::os::fd::{AsFd, OwnedFd};

use interprocess::local_socket::tokio::prelude::*;
use interprocess::local_socket::tokio::Stream;
use interprocess::local_socket::traits::Listener as _;
use interprocess::local_socket::{
    GenericFilePath, Listener, ListenerNonblockingMode, ListenerOptions,
};
use interprocess::os::unix::uds_local_socket;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::frame;
use crate::protocol::{Hello, MAGIC};

/// A directory only this user can enter, removed on drop.
#[derive(Debug)]
pub(crate) struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    pub fn create() -> io::Result<Self> {
        // A memory file system where there is one: binding a socket creates
        // an inode, which on a journalling disk file system costs real time.
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| writable_dir(p)))
            .unwrap_or_else(std::env::temp_dir);
        let path = base.join(format!(
            "sandbox-{}-{}",
            std::process::id(),
            token_hex(&new_token()?)
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(PrivateDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn writable_dir(path: &Path) -> bool {
    nix::unistd::access(
        path,
        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
    )
    .is_ok()
        && path.is_dir()
}

/// A fresh secret.
pub(crate) fn new_token() -> io::Result<[u8; 16]> {
    let mut token = [0; 16];
    getrandom::getrandom(&mut token).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(token)
}

pub(crate) fn token_hex(token: &[u8; 16]) -> String {
    token.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

pub(crate) fn parse_token(hex: &str) -> Option<[u8; 16]> {
    if hex.len() != 32 || !hex.is_ascii() {
        return None;
    }
    let mut token = [0; 16];
    for (i, byte) in token.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(token)
}

/// A listening socket for one runner.
///
/// It is a plain (non-blocking) socket rather than a tokio one so that a
/// pre-warmed runner's endpoint is not tied to the runtime that happened to
/// create it: the evaluation that takes the runner may run on another.
#[derive(Debug)]
pub(crate) struct Endpoint {
    path: PathBuf,
    listener: Listener,
}

impl Endpoint {
    pub fn bind(dir: &PrivateDir, name: &str) -> io::Result<Self> {
        let path = dir.path().join(format!("{name}.sock"));
        let listener = ListenerOptions::new()
            .name(path.as_path().to_fs_name::<GenericFilePath>()?)
            .nonblocking(ListenerNonblockingMode::Both)
            .create_sync()?;
        Ok(Endpoint { path, listener })
    }

    /// Waits for the next connection, in whatever runtime the caller runs on.
    async fn accept(&self) -> io::Result<Stream> {
        let Listener::UdSocket(listener) = &self.listener;
        // SAFETY: the listener outlives `ready`, which is dropped before we return.
        let ready =
            unsafe { AsyncFd::register_with_interest(listener.as_fd(), Interest::READABLE)? };
        loop {
            let mut guard = ready.readable().await?;
            match listener.accept() {
                Ok(stream) => {
                    let stream = uds_local_socket::tokio::Stream::try_from(OwnedFd::from(stream))?;
                    return Ok(Stream::from(stream));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => guard.clear_ready(),
                Err(e) => return Err(e),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts connections until one comes from `runner_pid` with the right
    /// token and a compatible protocol; strangers are dropped and logged.
    pub async fn accept_runner(&self, runner_pid: u32, token: &[u8; 16]) -> Result<Stream, String> {
        loop {
            let mut stream = self
                .accept()
                .await
                .map_err(|e| format!("accepting on {} failed: {e}", self.path.display()))?;
            let peer = stream.peer_creds().ok().and_then(|c| c.pid());
            if peer != Some(runner_pid as _) {
                tracing::warn!(
                    ?peer,
                    runner_pid,
                    "refused a connection from a process that is not the runner"
                );
                continue;
            }
            check_hello(&mut stream, token).await?;
            return Ok(stream);
        }
    }
}

/// Reads the runner's hello from `stream` and checks that it is one of our
/// runners, of this build, presenting `token`.
pub(crate) async fn check_hello(stream: &mut Stream, token: &[u8; 16]) -> Result<(), String> {
    let hello: Hello = frame::read_async(stream)
        .await
        .map_err(|e| format!("reading its hello: {e}"))?;
    if hello.magic != MAGIC {
        return Err("its hello is not a sandbox runner's".into());
    }
    if hello.version != frame::PROTOCOL_VERSION {
        return Err(format!(
            "it speaks protocol version {}, this executor {} (runner and library from different builds?)",
            hello.version,
            frame::PROTOCOL_VERSION
        ));
    }
    if &hello.token != token {
        return Err("it presented the wrong token".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_through_hex() {
        let token = new_token().unwrap();
        assert_eq!(parse_token(&token_hex(&token)), Some(token));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        assert_eq!(parse_token("abc"), None);
        assert_eq!(parse_token(&"zz".repeat(16)), None);
    }

    #[test]
    fn the_private_dir_is_closed_to_others_and_removed_on_drop() {
        use std::os::unix::fs::PermissionsExt;
        let dir = PrivateDir::create().unwrap();
        let path = dir.path().to_path_buf();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(dir);
        assert!(!path.exists());
    }
}
