//! The control socket of `sandbox up`: how the other `sandbox` commands reach
//! the supervisor that holds a state directory.
//!
//! The socket is `STATE_DIR/control.sock` (a Unix stream socket, mode 0600, so
//! only its owner — and root — can connect). One connection carries one
//! request; everything is newline-terminated JSON:
//!
//! ```text
//! client -> supervisor   one Request line, e.g. {"op":"info","name":"demo","json":false}
//! supervisor -> client   Frame lines until the last one, {"exit":CODE}:
//!                          {"out":"text"}   for our standard output
//!                          {"err":"text"}   for our standard error
//!                          {"data":VALUE}   a machine answer (an EvalRequest, …)
//!                          {"exit":0}       the exit status; the connection ends
//! ```
//!
//! The supervisor renders text itself, so a command prints the same whether
//! it ran in the supervisor or directly on the state directory. `events
//! --follow` is the one long answer: `out` frames until the client hangs up.
//! Evaluations (`exec`, `compile`) do not run in the supervisor: the client
//! asks it for the request (`data`), runs it with its own executor — the output
//! streams straight to the user's terminal — and sends the outcome back to be
//! counted.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::manage::request::Request;

/// File name of the socket inside the state directory.
pub const SOCKET_NAME: &str = "control.sock";

/// Longest request line accepted (a deployed module travels in it).
const MAX_REQUEST: u64 = 256 << 20;

/// The socket of the supervisor of `state_dir`.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// One line of an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frame {
    /// Text for standard output.
    Out(String),
    /// Text for standard error.
    Err(String),
    /// A machine answer.
    Data(serde_json::Value),
    /// The exit status; the last frame.
    Exit(i32),
}

/// Where a command's answer goes: the terminal (direct mode) or a client
/// connection (in the supervisor).
pub trait Sink {
    /// Text for standard output. An error means the reader is gone.
    fn out(&mut self, text: &str) -> io::Result<()>;
    /// Text for standard error.
    fn err(&mut self, text: &str);
    /// A machine answer.
    fn data(&mut self, value: serde_json::Value);
    /// True when the reader has gone away (checked while following events).
    fn closed(&mut self) -> bool {
        false
    }
}

/// Our own standard output and error; a data answer is kept for the caller.
#[derive(Debug, Default)]
pub struct StdSink {
    /// The last data answer.
    pub data: Option<serde_json::Value>,
}

impl Sink for StdSink {
    fn out(&mut self, text: &str) -> io::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()
    }

    fn err(&mut self, text: &str) {
        let _ = io::stderr().lock().write_all(text.as_bytes());
    }

    fn data(&mut self, value: serde_json::Value) {
        self.data = Some(value);
    }
}

/// The supervisor's end of one client connection.
pub struct SocketSink {
    stream: UnixStream,
}

impl SocketSink {
    fn send(&mut self, frame: &Frame) -> io::Result<()> {
        let mut line = serde_json::to_vec(frame).map_err(io::Error::other)?;
        line.push(b'\n');
        self.stream.write_all(&line)
    }
}

impl Sink for SocketSink {
    fn out(&mut self, text: &str) -> io::Result<()> {
        self.send(&Frame::Out(text.to_string()))
    }

    fn err(&mut self, text: &str) {
        let _ = self.send(&Frame::Err(text.to_string()));
    }

    fn data(&mut self, value: serde_json::Value) {
        let _ = self.send(&Frame::Data(value));
    }

    fn closed(&mut self) -> bool {
        // A client sends nothing after its request: readable means it hung up.
        let mut byte = 0u8;
        // SAFETY: a one-byte buffer we own, on a socket we own; MSG_PEEK
        // leaves the byte in place, MSG_DONTWAIT never blocks.
        let n = unsafe {
            libc::recv(
                self.stream.as_raw_fd(),
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock
    }
}

/// Connects to the supervisor of `state_dir`, or `None` when none answers
/// (no socket, or a stale one left by a supervisor that was killed). A socket
/// we may not use (a supervisor of another user) is an error: falling back
/// to the state directory would only meet its lock.
pub fn connect(state_dir: &Path) -> anyhow::Result<Option<UnixStream>> {
    let path = socket_path(state_dir);
    match UnixStream::connect(&path) {
        Ok(stream) => Ok(Some(stream)),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(e).with_context(|| {
            format!(
                "cannot connect to the supervisor at {} (it runs as another user; its socket is private to that user)",
                path.display()
            )
        }),
        Err(_) => Ok(None),
    }
}

/// Sends `request` on `stream` and passes the answer to `sink`; returns the exit status.
pub fn call(mut stream: UnixStream, request: &Request, sink: &mut dyn Sink) -> anyhow::Result<i32> {
    let mut line = serde_json::to_vec(request).context("encoding the request")?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .context("sending the request to the supervisor")?;
    let mut reader = BufReader::new(stream);
    let mut text = String::new();
    loop {
        text.clear();
        let n = reader
            .read_line(&mut text)
            .context("reading the supervisor's answer")?;
        if n == 0 {
            bail!(
                "the supervisor closed the connection before it answered (did `sandbox up` stop?)"
            );
        }
        let frame: Frame = serde_json::from_str(&text)
            .with_context(|| format!("the supervisor's answer is not a frame: {text:?}"))?;
        match frame {
            Frame::Out(t) => {
                if sink.out(&t).is_err() {
                    // Our reader went away (`sandbox events -f | head`).
                    return Ok(0);
                }
            }
            Frame::Err(t) => sink.err(&t),
            Frame::Data(v) => sink.data(v),
            Frame::Exit(code) => return Ok(code),
        }
    }
}

/// Binds the socket of `state_dir`, replacing a stale one (the caller holds
/// the state directory's lock, so no other supervisor owns it), mode 0600.
pub fn bind(state_dir: &Path) -> anyhow::Result<UnixListener> {
    let path = socket_path(state_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("removing the stale socket {}", path.display()))
        }
    }
    let listener = UnixListener::bind(&path).with_context(|| {
        format!(
            "binding the control socket {} (a Unix socket path must be shorter than 108 bytes)",
            path.display()
        )
    })?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {} private (mode 0600)", path.display()))?;
    Ok(listener)
}

/// Serves one connection: reads its request and lets `handle` answer it.
pub fn serve(stream: UnixStream, handle: impl FnOnce(Request, &mut SocketSink) -> i32) {
    let read = match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    };
    let mut sink = SocketSink { stream };
    let mut line = Vec::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    if reader.read_until(b'\n', &mut line).is_err() || line.is_empty() {
        return;
    }
    let code = match serde_json::from_slice::<Request>(&line) {
        Ok(request) => handle(request, &mut sink),
        Err(e) => {
            sink.err(&format!(
                "sandbox: error: the supervisor cannot read the request: {e} \
                 (is this `sandbox` the same version as the one running `sandbox up`?)\n"
            ));
            crate::run::EXIT_SANDBOX_FAILED
        }
    };
    let _ = sink.send(&Frame::Exit(code));
}
