//! The wire format of the runner channel, and the only code that knows it.
//!
//! A frame is a 4-byte little-endian payload length followed by the payload: one
//! message encoded with bincode 2 (serde, standard configuration). Frames larger
//! than [`MAX_FRAME`] are refused on both sides before any allocation, so a
//! confused or hostile peer can neither make us allocate gigabytes nor hang us
//! waiting for a payload that never comes: a short read is an error, not a wait
//! for more than the peer announced.
//!
//! The first frame on every connection is the runner's
//! [`Hello`](crate::protocol::Hello), which carries [`PROTOCOL_VERSION`].

use std::io::{self, Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Version of the messages in [`protocol`](crate::protocol); bumped on any change.
pub(crate) const PROTOCOL_VERSION: u32 = 1;

/// Largest payload accepted, in bytes.
pub(crate) const MAX_FRAME: u32 = 16 << 20;

const LEN_BYTES: usize = 4;

/// A frame on the runner channel could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// I/O on the socket failed.
    #[error("i/o error on the runner channel: {0}")]
    Io(#[from] io::Error),
    /// The peer closed the channel between two frames.
    #[error("the peer closed the runner channel")]
    Closed,
    /// The peer closed the channel in the middle of a frame.
    #[error("the runner channel closed in the middle of a frame ({got} of {expected} bytes)")]
    Truncated {
        /// Bytes the frame should have had.
        expected: usize,
        /// Bytes that arrived.
        got: usize,
    },
    /// The announced length is over the limit: not a frame of ours.
    #[error("malformed frame: announced length {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The announced length.
        len: u32,
        /// The limit ([`MAX_FRAME`]).
        max: u32,
    },
    /// The payload is not a valid message.
    #[error("malformed frame: {0}")]
    Decode(String),
    /// A message could not be encoded (or is over the limit).
    #[error("cannot encode a message: {0}")]
    Encode(String),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ MAX_FRAME as usize }>()
}

/// Encodes `message` as a whole frame, length prefix included.
pub(crate) fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let mut frame = vec![0; LEN_BYTES];
    bincode::serde::encode_into_std_write(message, &mut frame, config())
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    let len = frame.len() - LEN_BYTES;
    let len = u32::try_from(len)
        .ok()
        .filter(|&l| l <= MAX_FRAME)
        .ok_or_else(|| FrameError::Encode(format!("message of {len} bytes is over the limit")))?;
    frame[..LEN_BYTES].copy_from_slice(&len.to_le_bytes());
    Ok(frame)
}

/// What reading `got` bytes of a length prefix means.
fn prefix_read(got: usize) -> Result<(), FrameError> {
    match got {
        0 => Err(FrameError::Closed),
        n if n < LEN_BYTES => Err(FrameError::Truncated {
            expected: LEN_BYTES,
            got: n,
        }),
        _ => Ok(()),
    }
}

/// What reading `got` bytes of a `len`-byte payload means.
fn payload_read(got: usize, len: usize) -> Result<(), FrameError> {
    if got < len {
        return Err(FrameError::Truncated { expected: len, got });
    }
    Ok(())
}

fn payload_len(prefix: [u8; LEN_BYTES]) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(prefix);
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME,
        });
    }
    Ok(len as usize)
}

/// Decodes one payload; trailing bytes are an error, as they mean the two sides
/// disagree about the message layout.
pub(crate) fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    let (message, used) = bincode::serde::decode_from_slice(payload, config())
        .map_err(|e| FrameError::Decode(e.to_string()))?;
    if used != payload.len() {
        return Err(FrameError::Decode(format!(
            "{} unexpected trailing bytes after the message",
            payload.len() - used
        )));
    }
    Ok(message)
}

/// Writes one frame (blocking; the runner's side).
pub(crate) fn write_sync<W: Write, T: Serialize>(w: &mut W, message: &T) -> Result<(), FrameError> {
    w.write_all(&encode(message)?)?;
    w.flush()?;
    Ok(())
}

/// Reads exactly `buf.len()` bytes; `Ok(n < len)` means end of file after `n`.
fn fill_sync<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Reads one frame (blocking; the runner's side).
pub(crate) fn read_sync<R: Read, T: DeserializeOwned>(r: &mut R) -> Result<T, FrameError> {
    let mut prefix = [0; LEN_BYTES];
    prefix_read(fill_sync(r, &mut prefix)?)?;
    let len = payload_len(prefix)?;
    let mut payload = vec![0; len];
    payload_read(fill_sync(r, &mut payload)?, len)?;
    decode(&payload)
}

async fn fill_async<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]).await? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// Writes one frame (the executor's side).
pub(crate) async fn write_async<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    message: &T,
) -> Result<(), FrameError> {
    w.write_all(&encode(message)?).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one frame (the executor's side). Not cancel-safe: keep the future
/// alive until it completes, or drop the stream with it.
pub(crate) async fn read_async<R: AsyncRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
) -> Result<T, FrameError> {
    let mut prefix = [0; LEN_BYTES];
    prefix_read(fill_async(r, &mut prefix).await?)?;
    let len = payload_len(prefix)?;
    let mut payload = vec![0; len];
    payload_read(fill_async(r, &mut payload).await?, len)?;
    decode(&payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Msg {
        n: u32,
        text: String,
    }

    fn msg() -> Msg {
        Msg {
            n: 7,
            text: "héllo".into(),
        }
    }

    #[test]
    fn a_frame_round_trips() {
        let bytes = encode(&msg()).unwrap();
        let back: Msg = read_sync(&mut &bytes[..]).unwrap();
        assert_eq!(back, msg());
    }

    #[test]
    fn the_prefix_is_the_little_endian_payload_length() {
        let bytes = encode(&msg()).unwrap();
        let len = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - 4);
    }

    #[test]
    fn an_oversized_length_is_refused_before_reading_the_payload() {
        let garbage = b"GET / HTTP/1.1\r\n\r\n";
        let err = read_sync::<_, Msg>(&mut &garbage[..]).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { len, .. } if len == u32::from_le_bytes(*b"GET ")),
            "{err}"
        );
        assert!(err.to_string().contains("exceeds"), "{err}");
    }

    #[test]
    fn a_payload_that_is_not_a_message_is_a_decode_error() {
        let mut frame = 3u32.to_le_bytes().to_vec();
        frame.extend_from_slice(&[0xff, 0xff, 0xff]);
        let err = read_sync::<_, Msg>(&mut &frame[..]).unwrap_err();
        assert!(matches!(err, FrameError::Decode(_)), "{err}");
    }

    #[test]
    fn trailing_bytes_after_a_message_are_an_error() {
        let mut payload = encode(&msg()).unwrap()[4..].to_vec();
        payload.push(0);
        let err = decode::<Msg>(&payload).unwrap_err();
        assert!(err.to_string().contains("trailing"), "{err}");
    }

    #[test]
    fn end_of_file_between_frames_is_closed() {
        let err = read_sync::<_, Msg>(&mut &[][..]).unwrap_err();
        assert!(matches!(err, FrameError::Closed));
    }

    #[test]
    fn end_of_file_inside_a_frame_is_truncated() {
        let bytes = encode(&msg()).unwrap();
        let cut = &bytes[..bytes.len() - 2];
        let err = read_sync::<_, Msg>(&mut &cut[..]).unwrap_err();
        assert!(matches!(err, FrameError::Truncated { .. }), "{err}");
    }

    #[tokio::test]
    async fn async_and_blocking_sides_agree() {
        let mut wire = Vec::new();
        write_async(&mut wire, &msg()).await.unwrap();
        let back: Msg = read_async(&mut &wire[..]).await.unwrap();
        assert_eq!(back, msg());
        assert_eq!(wire, encode(&msg()).unwrap());
    }
}
