//! The control protocol between the manager and a service, on the service's
//! standard input and output. The text of [`PROTOCOL_DOC`] is the reference a
//! service author needs; it is repeated here:
//!
//! ```text
//! The manager writes to the service's standard input; the service answers on
//! its standard output. Lines end with "\n". Lengths are decimal byte counts.
//! A state is opaque bytes (the service picks the encoding, e.g. JSON).
//!
//! manager -> service
//!   EXPORT\n                  send your current state
//!   IMPORT <len>\n<bytes>     take this state (migrated from the previous version)
//!
//! service -> manager
//!   READY\n                   optional: started and serving
//!   STATE <len>\n<bytes>      the answer to EXPORT
//!   IMPORTED\n                the answer to IMPORT: the state is in use
//!   ERROR <text>\n            the answer to EXPORT or IMPORT that failed
//!
//! Any other output line is ignored, so a service that never migrates state
//! needs none of this (write logs to standard error all the same: a log line
//! that happens to start with STATE would be misread). A state is at most
//! 16 MiB; a larger one ends the channel. The manager waits for an answer up to
//! the timeout of the reload options (default 5 s), and treats a service that
//! exits or closes its output meanwhile as failed.
//! ```
//!
//! Hot reload with a state handler runs: `EXPORT` to the old process, kill the
//! old process, start the new version, `IMPORT` of the handler's result, wait
//! for `IMPORTED`. A minimal Python service:
//!
//! ```text
//! import sys
//! state, inp, out = b"", sys.stdin.buffer, sys.stdout.buffer
//! while line := inp.readline():
//!     if line == b"EXPORT\n":
//!         out.write(b"STATE %d\n" % len(state) + state)
//!     elif line.startswith(b"IMPORT "):
//!         state = inp.read(int(line[7:]))
//!         out.write(b"IMPORTED\n")
//!     out.flush()
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use super::supervise::ControlChannel;

/// The protocol reference for service authors (also in the module docs).
pub const PROTOCOL_DOC: &str = "\
The manager writes to the service's standard input; the service answers on
its standard output. Lines end with \"\\n\". Lengths are decimal byte counts.
A state is opaque bytes (the service picks the encoding, e.g. JSON).

manager -> service
  EXPORT\\n                  send your current state
  IMPORT <len>\\n<bytes>     take this state (migrated from the previous version)

service -> manager
  READY\\n                   optional: started and serving
  STATE <len>\\n<bytes>      the answer to EXPORT
  IMPORTED\\n                the answer to IMPORT: the state is in use
  ERROR <text>\\n            the answer to EXPORT or IMPORT that failed

Any other output line is ignored, so a service that never migrates state
needs none of this (write logs to standard error all the same: a log line
that happens to start with STATE would be misread). A state is at most
16 MiB; a larger one ends the channel. The manager waits for an answer up to
the timeout of the reload options (default 5 s), and treats a service that
exits or closes its output meanwhile as failed.
";

/// Largest state a service may send.
pub(crate) const MAX_STATE: usize = 16 << 20;
const MAX_LINE: usize = 4096;

/// One message from the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    Ready,
    State(Vec<u8>),
    Imported,
    Error(String),
}

/// The manager's end of a service's control channel. A thread reads the
/// service's output into frames, so that waiting for an answer can time out
/// and so that a chatty service never blocks on a full pipe.
pub(crate) struct Control {
    /// `None` once a write timed out: the writer is then stuck in its thread
    /// until the service reads or dies.
    writer: Option<Box<dyn Write + Send>>,
    frames: Receiver<Frame>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Control")
    }
}

impl Control {
    pub fn new(ends: ControlChannel) -> Control {
        let (tx, rx) = channel();
        let reader = ends.from_service;
        let _ = std::thread::Builder::new()
            .name("sandbox-service-control".into())
            .spawn(move || read_frames(reader, tx));
        Control {
            writer: Some(ends.to_service),
            frames: rx,
        }
    }

    /// Waits for `READY` (frames before it are dropped).
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        match self.next(timeout, "READY")? {
            Frame::Ready => Ok(()),
            other => Err(format!("expected READY, got {}", describe(&other))),
        }
    }

    /// Asks for the state.
    pub fn export(&mut self, timeout: Duration) -> Result<Vec<u8>, String> {
        self.drain();
        self.send(b"EXPORT\n".to_vec(), timeout)?;
        loop {
            match self.next(timeout, "STATE")? {
                Frame::State(bytes) => return Ok(bytes),
                Frame::Error(text) => return Err(format!("export refused: {text}")),
                Frame::Ready | Frame::Imported => continue,
            }
        }
    }

    /// Hands over a state and waits for `IMPORTED`.
    pub fn import(&mut self, state: &[u8], timeout: Duration) -> Result<(), String> {
        let mut message = format!("IMPORT {}\n", state.len()).into_bytes();
        message.extend_from_slice(state);
        self.send(message, timeout)?;
        loop {
            match self.next(timeout, "IMPORTED")? {
                Frame::Imported => return Ok(()),
                Frame::Error(text) => return Err(format!("import refused: {text}")),
                Frame::Ready | Frame::State(_) => continue,
            }
        }
    }

    /// Writes from a helper thread: a service that stops reading its input
    /// must not block the manager (a state larger than the pipe buffer would).
    fn send(&mut self, bytes: Vec<u8>, timeout: Duration) -> Result<(), String> {
        let mut writer = self
            .writer
            .take()
            .ok_or("an earlier write to the service's input never completed")?;
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("sandbox-service-write".into())
            .spawn(move || {
                let result = writer.write_all(&bytes).and_then(|()| writer.flush());
                let _ = tx.send((writer, result));
            })
            .map_err(|e| format!("starting a writer thread: {e}"))?;
        match rx.recv_timeout(timeout) {
            Ok((writer, result)) => {
                self.writer = Some(writer);
                result.map_err(|e| format!("writing to the service's input: {e}"))
            }
            Err(_) => Err(format!(
                "the service did not read its input within {} ms",
                timeout.as_millis()
            )),
        }
    }

    fn drain(&mut self) {
        while self.frames.try_recv().is_ok() {}
    }

    fn next(&mut self, timeout: Duration, waiting_for: &str) -> Result<Frame, String> {
        match self.frames.recv_timeout(timeout) {
            Ok(frame) => Ok(frame),
            Err(RecvTimeoutError::Timeout) => Err(format!(
                "no {waiting_for} within {} ms",
                timeout.as_millis()
            )),
            Err(RecvTimeoutError::Disconnected) => Err(format!(
                "the service closed its output (exited?) before sending {waiting_for}"
            )),
        }
    }
}

fn describe(frame: &Frame) -> String {
    match frame {
        Frame::Ready => "READY".into(),
        Frame::State(b) => format!("STATE {}", b.len()),
        Frame::Imported => "IMPORTED".into(),
        Frame::Error(t) => format!("ERROR {t}"),
    }
}

/// Parses the service's output until it ends or a frame breaks the protocol.
pub(crate) fn read_frames(reader: impl Read, tx: Sender<Frame>) {
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    let mut skipping = false;
    loop {
        line.clear();
        let n = match (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if line.last() != Some(&b'\n') {
            if n < MAX_LINE {
                return; // end of output inside a line
            }
            skipping = true; // an over-long line: ignore it up to its end
            continue;
        }
        if std::mem::take(&mut skipping) {
            continue;
        }
        let text = String::from_utf8_lossy(&line[..line.len() - 1]);
        let frame = if text == "READY" {
            Frame::Ready
        } else if text == "IMPORTED" {
            Frame::Imported
        } else if let Some(msg) = text.strip_prefix("ERROR ") {
            Frame::Error(msg.to_string())
        } else if let Some(len) = text.strip_prefix("STATE ") {
            let len = match len.trim().parse::<usize>() {
                Ok(len) if len <= MAX_STATE => len,
                _ => {
                    let _ = tx.send(Frame::Error(format!(
                        "bad STATE length {len:?} (at most {MAX_STATE} bytes)"
                    )));
                    // Keep draining so the service never blocks on a full pipe.
                    let _ = std::io::copy(&mut reader, &mut std::io::sink());
                    return;
                }
            };
            let mut state = vec![0; len];
            if reader.read_exact(&mut state).is_err() {
                return;
            }
            Frame::State(state)
        } else {
            continue;
        };
        if tx.send(frame).is_err() {
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8]) -> Vec<Frame> {
        let (tx, rx) = channel();
        read_frames(input, tx);
        rx.try_iter().collect()
    }

    #[test]
    fn frames_are_parsed_and_other_lines_ignored() {
        let got = frames(b"hello\nREADY\nSTATE 5\na\nbc\nIMPORTED\nERROR no way\n");
        assert_eq!(
            got,
            [
                Frame::Ready,
                Frame::State(b"a\nbc\n".to_vec()),
                Frame::Imported,
                Frame::Error("no way".into())
            ]
        );
    }

    #[test]
    fn an_oversized_state_is_refused_without_allocating_it() {
        let got = frames(format!("STATE {}\n", MAX_STATE + 1).as_bytes());
        assert!(matches!(&got[..], [Frame::Error(e)] if e.contains("bad STATE length")));
    }

    #[test]
    fn an_overlong_line_is_skipped_whole() {
        let mut input = vec![b'x'; MAX_LINE * 2];
        input.extend_from_slice(b"READY\nREADY\n");
        // The first READY ends the long line; only the second is a frame.
        assert_eq!(frames(&input), [Frame::Ready]);
    }

    /// A writer that never accepts a byte, like a service that stopped reading.
    struct Stuck;
    impl Write for Stuck {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(Duration::from_secs(3600));
            Ok(0)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_service_that_does_not_read_cannot_block_an_import() {
        let mut control = Control::new(ControlChannel {
            to_service: Box::new(Stuck),
            from_service: Box::new(std::io::empty()),
        });
        let started = std::time::Instant::now();
        let err = control
            .import(&[0; 1 << 20], Duration::from_millis(50))
            .unwrap_err();
        assert!(err.contains("did not read its input"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_state_cut_short_is_not_delivered() {
        assert!(frames(b"STATE 10\nabc").is_empty());
    }
}
