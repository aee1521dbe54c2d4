//! Splits the bytes of an X API v2 stream into lines, whatever the chunk boundaries: a line may arrive in
//! many chunks, a chunk may hold many lines. Works on bytes, so that a line that is not UTF-8 still reaches
//! validation (and the rejects topic) instead of breaking the stream. An empty line (`\r\n`) is X's
//! keep-alive heartbeat. A line longer than the maximum is reported and skipped without being buffered.
//! Also used for replay files, which have the same format.

/// What the stream carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// One line, without its `\n` or `\r\n`.
    Line(Vec<u8>),
    /// An empty line: X sends one every ~20 s when there is nothing else to send.
    Heartbeat,
    /// A line longer than the maximum, skipped; `prefix` holds its first bytes, for the reject record.
    Overlong { length: usize, prefix: Vec<u8> },
}

/// Bytes of an overlong line kept for its reject record.
const OVERLONG_PREFIX: usize = 1024;

#[derive(Debug)]
pub struct LineFramer {
    max_line: usize,
    buffer: Vec<u8>,
    /// Length of the overlong line being skipped, if any.
    skipping: Option<usize>,
    prefix: Vec<u8>,
}

impl LineFramer {
    pub fn new(max_line: usize) -> Self {
        Self { max_line, buffer: Vec::new(), skipping: None, prefix: Vec::new() }
    }

    /// Feeds one chunk; returns the frames it completed, in order.
    pub fn push(&mut self, mut chunk: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        while !chunk.is_empty() {
            let newline = memchr::memchr(b'\n', chunk);
            let (part, rest, ends_line) = match newline {
                Some(at) => (&chunk[..at], &chunk[at + 1..], true),
                None => (chunk, &[][..], false),
            };
            chunk = rest;
            if self.skipping.is_none() && self.buffer.len() + part.len() > self.max_line + 1 {
                // (+1: a `\r` before the `\n` does not count against the limit.) What is buffered so far
                // starts the overlong line's prefix; the rest of the line is only counted.
                self.prefix = std::mem::take(&mut self.buffer);
                self.skipping = Some(self.prefix.len());
                self.prefix.truncate(OVERLONG_PREFIX);
            }
            if let Some(length) = self.skipping.as_mut() {
                *length += part.len();
                let room = OVERLONG_PREFIX.saturating_sub(self.prefix.len());
                self.prefix.extend_from_slice(&part[..part.len().min(room)]);
            } else if ends_line && self.buffer.is_empty() {
                // A whole line inside one chunk, as nearly every line is: copied once, at its size, rather
                // than grown in the buffer and taken from it.
                frames.push(self.end_line_of(part.to_vec()));
                continue;
            } else {
                self.buffer.extend_from_slice(part);
            }
            if ends_line {
                frames.push(self.end_line());
            }
        }
        frames
    }

    /// Bytes of an unfinished line: what a dropped connection cut off mid-line.
    pub fn unfinished(&self) -> usize {
        self.buffer.len() + self.skipping.unwrap_or(0)
    }

    /// Takes an unfinished line (its first bytes, if it was overlong) so that a new connection starts clean;
    /// `None` when the last line was complete.
    pub fn take_unfinished(&mut self) -> Option<Vec<u8>> {
        let unfinished = match self.skipping.take() {
            Some(_) => std::mem::take(&mut self.prefix),
            None => std::mem::take(&mut self.buffer),
        };
        self.buffer.clear();
        (!unfinished.is_empty()).then_some(unfinished)
    }

    fn end_line(&mut self) -> Frame {
        if let Some(length) = self.skipping.take() {
            return Frame::Overlong { length, prefix: std::mem::take(&mut self.prefix) };
        }
        let line = std::mem::take(&mut self.buffer);
        self.end_line_of(line)
    }

    fn end_line_of(&self, mut line: Vec<u8>) -> Frame {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.len() > self.max_line {
            let length = line.len();
            line.truncate(OVERLONG_PREFIX);
            return Frame::Overlong { length, prefix: line };
        }
        if line.iter().all(u8::is_ascii_whitespace) { Frame::Heartbeat } else { Frame::Line(line) }
    }
}

#[cfg(test)]
mod tests {
    use super::{Frame, LineFramer};

    fn frames_of(chunks: &[&[u8]], max_line: usize) -> Vec<Frame> {
        let mut framer = LineFramer::new(max_line);
        chunks.iter().flat_map(|chunk| framer.push(chunk)).collect()
    }

    fn line(text: &str) -> Frame {
        Frame::Line(text.as_bytes().to_vec())
    }

    #[test]
    fn lines_heartbeats_and_crlf() {
        let frames = frames_of(&[b"{\"a\":1}\r\n\r\n{\"b\":2}\n\n"], 100);
        assert_eq!(frames, vec![line("{\"a\":1}"), Frame::Heartbeat, line("{\"b\":2}"), Frame::Heartbeat]);
    }

    #[test]
    fn every_chunk_split_gives_the_same_frames() {
        let stream: &[u8] = b"{\"id\":\"1\"}\r\n\r\n{\"id\":\"22\"}\r\n\xff\xfe\r\n{\"id\":\"333\"}\r\n";
        let whole = frames_of(&[stream], 100);
        assert_eq!(whole.len(), 5);
        for size in 1..stream.len() {
            let chunks: Vec<&[u8]> = stream.chunks(size).collect();
            assert_eq!(frames_of(&chunks, 100), whole, "chunks of {size}");
        }
        for cut in 1..stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(frames_of(&[a, b], 100), whole, "cut at {cut}");
        }
    }

    #[test]
    fn an_overlong_line_is_reported_skipped_and_never_buffered_whole() {
        let long = vec![b'x'; 5000];
        let mut framer = LineFramer::new(100);
        let mut frames = framer.push(b"{\"ok\":1}\r\n");
        for chunk in long.chunks(7) {
            frames.extend(framer.push(chunk));
            assert!(framer.buffer.len() <= 101, "the framer buffered {} bytes", framer.buffer.len());
        }
        frames.extend(framer.push(b"\r\n{\"ok\":2}\r\n"));
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0], line("{\"ok\":1}"));
        match &frames[1] {
            Frame::Overlong { length, prefix } => {
                assert!(*length >= 5000 && *length <= 5001, "{length}");
                assert_eq!(prefix.len(), 1024);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(frames[2], line("{\"ok\":2}"));
    }

    #[test]
    fn a_line_of_exactly_the_maximum_passes_and_one_more_byte_does_not() {
        let exact = "y".repeat(100);
        assert_eq!(frames_of(&[format!("{exact}\r\n").as_bytes()], 100), vec![line(&exact)]);
        let over = "y".repeat(101);
        assert!(matches!(frames_of(&[format!("{over}\n").as_bytes()], 100)[0], Frame::Overlong { length: 101, .. }));
    }

    #[test]
    fn a_connection_cut_mid_line_leaves_an_unfinished_line_to_take() {
        let mut framer = LineFramer::new(100);
        assert_eq!(framer.push(b"{\"id\":\"1\"}\r\n{\"id\":"), vec![line("{\"id\":\"1\"}")]);
        assert_eq!(framer.unfinished(), 6);
        assert_eq!(framer.take_unfinished(), Some(b"{\"id\":".to_vec()));
        assert_eq!(framer.take_unfinished(), None);
        assert_eq!(framer.push(b"{\"id\":\"2\"}\r\n"), vec![line("{\"id\":\"2\"}")]);
    }
}
