//! Output capture: keeps at most `max_output` bytes however much arrives, counts
//! everything, and renders the seed's truncation marker.
//!
//! Memory is bounded by the limit: the head is a vector that never grows past
//! its share and the tail (in `head_tail` mode) a ring of the other share, so a
//! child writing gigabytes costs the host nothing more than the limit.

use std::collections::VecDeque;

use sandbox_core::{format_bytes, StreamCounts, TruncateMode, Truncation};

use crate::OutputStream;

/// Output being captured.
#[derive(Debug)]
pub(crate) struct Capture {
    max: usize,
    mode: TruncateMode,
    head_cap: usize,
    head: Vec<u8>,
    tail_cap: usize,
    tail: VecDeque<u8>,
    counts: StreamCounts,
    /// Bytes of `head` already handed out by [`push`](Self::push).
    emitted: usize,
}

/// Captured output, finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Captured {
    /// The kept output, with the marker when truncated.
    pub output: Vec<u8>,
    pub truncation: Option<Truncation>,
    pub streams: StreamCounts,
}

impl Capture {
    /// A capture that keeps at most `max` bytes, choosing them by `mode`.
    pub fn new(max: usize, mode: TruncateMode) -> Self {
        let head_cap = match mode {
            TruncateMode::Head => max,
            TruncateMode::HeadTail => max.div_ceil(2),
        };
        Capture {
            max,
            mode,
            head_cap,
            // Grown on demand: most outputs are far below the limit.
            head: Vec::new(),
            tail_cap: max - head_cap,
            tail: VecDeque::new(),
            counts: StreamCounts::default(),
            emitted: 0,
        }
    }

    /// Bytes received so far, kept or not.
    pub fn total(&self) -> u64 {
        self.counts.total()
    }

    /// Whether more than the limit has arrived.
    pub fn over_limit(&self) -> bool {
        self.total() > self.max as u64
    }

    /// Takes in the next chunk of output and returns the bytes that are now
    /// certain to begin the final output and were not returned before (see
    /// [`Observer::output`](crate::Observer::output)).
    pub fn push(&mut self, stream: OutputStream, bytes: &[u8]) -> &[u8] {
        match stream {
            OutputStream::Stdout => self.counts.stdout_bytes += bytes.len() as u64,
            OutputStream::Stderr => self.counts.stderr_bytes += bytes.len() as u64,
        }
        let to_head = bytes.len().min(self.head_cap - self.head.len());
        self.head.extend_from_slice(&bytes[..to_head]);
        self.push_tail(&bytes[to_head..]);

        let ready = complete_utf8_len(&self.head);
        let start = self.emitted.min(ready);
        self.emitted = self.emitted.max(ready);
        &self.head[start..ready]
    }

    fn push_tail(&mut self, bytes: &[u8]) {
        if self.tail_cap == 0 || bytes.is_empty() {
            return;
        }
        if bytes.len() >= self.tail_cap {
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - self.tail_cap..]);
        } else {
            let excess = (self.tail.len() + bytes.len()).saturating_sub(self.tail_cap);
            self.tail.drain(..excess);
            self.tail.extend(bytes);
        }
    }

    /// The kept output and its truncation facts.
    pub fn finish(self) -> Captured {
        let total = self.total();
        if !self.over_limit() {
            let mut output = self.head;
            output.extend(self.tail);
            return Captured {
                output,
                truncation: None,
                streams: self.counts,
            };
        }
        let head = &self.head[..complete_utf8_len(&self.head)];
        let (output, kept, marker) = match self.mode {
            TruncateMode::Head => {
                let marker = format!(
                    "...(truncated, showing first {} of {})",
                    format_bytes(self.max as u64),
                    format_bytes(total)
                );
                let mut output = head.to_vec();
                output.push(b'\n');
                output.extend_from_slice(marker.as_bytes());
                (output, head.len(), marker)
            }
            TruncateMode::HeadTail => {
                let tail: Vec<u8> = self.tail.into_iter().collect();
                let tail = &tail[leading_continuation_len(&tail)..];
                let marker = format!(
                    "...(truncated, showing first {} and last {} of {})",
                    format_bytes(self.head_cap as u64),
                    format_bytes(self.tail_cap as u64),
                    format_bytes(total)
                );
                let mut output = head.to_vec();
                output.push(b'\n');
                output.extend_from_slice(marker.as_bytes());
                output.push(b'\n');
                output.extend_from_slice(tail);
                (output, head.len() + tail.len(), marker)
            }
        };
        Captured {
            output,
            truncation: Some(Truncation {
                kept_bytes: kept as u64,
                total_bytes: total,
                marker,
                mode: self.mode,
            }),
            streams: self.counts,
        }
    }
}

/// Length of the longest prefix of `buf` that does not end inside a UTF-8
/// character. Bytes that are not UTF-8 at all count as complete, so binary
/// output is never held back by more than three bytes.
fn complete_utf8_len(buf: &[u8]) -> usize {
    let n = buf.len();
    for back in 1..=n.min(4) {
        let byte = buf[n - back];
        if byte & 0xC0 == 0x80 {
            continue;
        }
        let needed = match byte {
            b if b & 0xE0 == 0xC0 => 2,
            b if b & 0xF0 == 0xE0 => 3,
            b if b & 0xF8 == 0xF0 => 4,
            _ => 1,
        };
        return if needed > back { n - back } else { n };
    }
    n
}

/// How many bytes at the start of `buf` continue a character that began before it.
fn leading_continuation_len(buf: &[u8]) -> usize {
    buf.iter()
        .take(3)
        .take_while(|&&b| b & 0xC0 == 0x80)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture_all(max: usize, mode: TruncateMode, chunks: &[&[u8]]) -> (Captured, Vec<u8>) {
        let mut capture = Capture::new(max, mode);
        let mut emitted = Vec::new();
        for chunk in chunks {
            emitted.extend_from_slice(capture.push(OutputStream::Stdout, chunk));
        }
        (capture.finish(), emitted)
    }

    #[test]
    fn output_under_the_limit_is_kept_whole() {
        let (c, _) = capture_all(10, TruncateMode::Head, &[b"hello\n"]);
        assert_eq!(c.output, b"hello\n");
        assert_eq!(c.truncation, None);
    }

    #[test]
    fn output_of_exactly_the_limit_is_not_truncated() {
        let (c, _) = capture_all(5, TruncateMode::Head, &[b"abc", b"de"]);
        assert_eq!(c.output, b"abcde");
        assert_eq!(c.truncation, None);
    }

    #[test]
    fn truncated_output_ends_with_the_seed_marker() {
        let big = vec![b'x'; 1_258_291];
        let (c, _) = capture_all(50_000, TruncateMode::Head, &[&big]);
        let text = String::from_utf8(c.output).unwrap();
        assert!(text.ends_with("\n...(truncated, showing first 48.8KB of 1.2MB)"));
        assert_eq!(
            text.len(),
            50_000 + 1 + "...(truncated, showing first 48.8KB of 1.2MB)".len()
        );
        let t = c.truncation.unwrap();
        assert_eq!((t.kept_bytes, t.total_bytes), (50_000, 1_258_291));
    }

    #[test]
    fn truncation_never_splits_a_utf8_character() {
        // "é" is two bytes; the limit falls between them.
        let (c, _) = capture_all(4, TruncateMode::Head, &["abcé!".as_bytes()]);
        assert!(c.output.starts_with(b"abc\n..."));
        assert!(std::str::from_utf8(&c.output).is_ok());
        assert_eq!(c.truncation.unwrap().kept_bytes, 3);
    }

    #[test]
    fn head_tail_keeps_both_ends_around_the_marker() {
        let (c, _) = capture_all(6, TruncateMode::HeadTail, &[b"abcdefghijkl"]);
        assert_eq!(
            String::from_utf8(c.output).unwrap(),
            "abc\n...(truncated, showing first 3B and last 3B of 12B)\njkl"
        );
    }

    #[test]
    fn head_tail_under_the_limit_keeps_everything_in_order() {
        let (c, _) = capture_all(10, TruncateMode::HeadTail, &[b"abc", b"defg", b"hij"]);
        assert_eq!(c.output, b"abcdefghij");
    }

    #[test]
    fn head_tail_never_starts_the_tail_inside_a_character() {
        let (c, _) = capture_all(4, TruncateMode::HeadTail, &["abcdefgé".as_bytes()]);
        let text = String::from_utf8(c.output).unwrap();
        assert!(text.ends_with(")\né"), "{text}");
    }

    #[test]
    fn counts_per_stream_include_dropped_bytes() {
        let mut capture = Capture::new(2, TruncateMode::Head);
        capture.push(OutputStream::Stdout, b"aaaa");
        capture.push(OutputStream::Stderr, b"bbb");
        let c = capture.finish();
        assert_eq!((c.streams.stdout_bytes, c.streams.stderr_bytes), (4, 3));
    }

    #[test]
    fn emitted_bytes_are_always_a_prefix_of_the_output() {
        let text = "añb€c𝄞d".repeat(20);
        let bytes = text.as_bytes();
        for max in [0, 1, 5, 17, 40, bytes.len(), bytes.len() + 3] {
            for mode in [TruncateMode::Head, TruncateMode::HeadTail] {
                for chunk in [1, 2, 3, 7] {
                    let chunks: Vec<&[u8]> = bytes.chunks(chunk).collect();
                    let (c, emitted) = capture_all(max, mode, &chunks);
                    assert!(
                        c.output.starts_with(&emitted),
                        "max {max} mode {mode:?} chunk {chunk}"
                    );
                    assert!(std::str::from_utf8(&c.output).is_ok());
                }
            }
        }
    }

    #[test]
    fn memory_stays_within_the_limit_however_much_arrives() {
        let mut capture = Capture::new(1000, TruncateMode::HeadTail);
        let chunk = vec![b'z'; 64 * 1024];
        for _ in 0..200 {
            capture.push(OutputStream::Stdout, &chunk);
        }
        assert!(capture.head.capacity() <= 1000 * 2);
        assert!(capture.tail.len() <= 500);
        assert_eq!(capture.total(), 200 * 64 * 1024);
    }
}
