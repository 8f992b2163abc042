//! Newline framing of the socket protocol, pure (no I/O) so that it can be
//! fuzzed: bytes go in as chunks of any size, complete lines come out, in
//! order, borrowed from the framer's buffer (no copy per line).
//!
//! **Invariant:** a line longer than the limit is never returned and never
//! buffered whole: once the unfinished line passes the limit its bytes are
//! counted and dropped up to its newline, and it comes out as
//! [`Frame::Oversized`] with its full length. Between two calls to
//! [`LineFramer::push`], once [`LineFramer::next_frame`] returned `None`, the
//! framer holds at most `limit` bytes.

/// What the framer yields, in input order.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete line within the limit, without its newline.
    Line(&'a [u8]),
    /// A line longer than the limit, of this many bytes (newline excluded);
    /// its content was dropped.
    Oversized(usize),
}

/// Splits a byte stream into lines of at most `limit` bytes.
#[derive(Debug)]
pub struct LineFramer {
    /// The longest line returned, newline excluded.
    limit: usize,
    /// Bytes received and not yet returned; lines start at `start`.
    buffer: Vec<u8>,
    /// Where the next line starts in `buffer`.
    start: usize,
    /// Where the search for the next newline resumes in `buffer`, so a long
    /// line arriving in many chunks is scanned once.
    scanned: usize,
    /// Inside a line that passed the limit: its length so far.
    discarding: Option<usize>,
    /// An oversized line that ended, to report before the lines after it.
    oversized_ended: Option<usize>,
}

/// A buffer that grew past this is released when emptied, so one large line
/// does not pin its memory for the connection's life.
const KEEP_CAPACITY: usize = 256 * 1024;

impl LineFramer {
    /// A framer returning lines of at most `limit` bytes.
    pub fn new(limit: usize) -> LineFramer {
        LineFramer {
            limit,
            buffer: Vec::new(),
            start: 0,
            scanned: 0,
            discarding: None,
            oversized_ended: None,
        }
    }

    /// Bytes held (a partial line, and complete lines not yet taken).
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// Bytes of memory the buffer holds (its capacity), for a budget over
    /// many framers.
    pub fn allocated(&self) -> usize {
        self.buffer.capacity()
    }

    /// Adds received bytes. Take the lines with [`LineFramer::next_frame`]
    /// before the next push to keep the buffer within the limit.
    pub fn push(&mut self, mut chunk: &[u8]) {
        if let Some(length) = self.discarding {
            match chunk.iter().position(|&byte| byte == b'\n') {
                None => {
                    self.discarding = Some(length + chunk.len());
                    return;
                }
                Some(newline) => {
                    self.discarding = None;
                    self.oversized_ended = Some(length + newline);
                    chunk = &chunk[newline + 1..];
                }
            }
        }
        if self.start > 0 {
            // Drop the lines already returned before growing the buffer.
            self.buffer.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buffer.extend_from_slice(chunk);
    }

    /// The next complete line (or oversized line), or `None` when more input
    /// is needed.
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        if let Some(length) = self.oversized_ended.take() {
            return Some(Frame::Oversized(length));
        }
        match self.buffer[self.scanned..]
            .iter()
            .position(|&byte| byte == b'\n')
        {
            Some(offset) => {
                let end = self.scanned + offset;
                let start = self.start;
                self.start = end + 1;
                self.scanned = end + 1;
                if end - start > self.limit {
                    Some(Frame::Oversized(end - start))
                } else {
                    Some(Frame::Line(&self.buffer[start..end]))
                }
            }
            None => {
                self.scanned = self.buffer.len();
                let partial = self.buffer.len() - self.start;
                if partial > self.limit {
                    // Too long already: stop keeping it, count the rest.
                    self.discarding = Some(partial);
                    self.clear();
                }
                None
            }
        }
    }

    /// At the end of the input: the last line if it had no newline (or its
    /// oversized report). Call after [`LineFramer::next_frame`] returned
    /// `None`.
    pub fn finish(&mut self) -> Option<Frame<'_>> {
        if let Some(length) = self.oversized_ended.take() {
            return Some(Frame::Oversized(length));
        }
        if let Some(length) = self.discarding.take() {
            return Some(Frame::Oversized(length));
        }
        let start = self.start;
        let end = self.buffer.len();
        if start == end {
            return None;
        }
        self.start = end;
        self.scanned = end;
        if end - start > self.limit {
            Some(Frame::Oversized(end - start))
        } else {
            Some(Frame::Line(&self.buffer[start..end]))
        }
    }

    fn clear(&mut self) {
        if self.buffer.capacity() > KEEP_CAPACITY {
            self.buffer = Vec::new();
        } else {
            self.buffer.clear();
        }
        self.start = 0;
        self.scanned = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(framer: &mut LineFramer, out: &mut Vec<String>) {
        while let Some(frame) = framer.next_frame() {
            out.push(match frame {
                Frame::Line(line) => String::from_utf8_lossy(line).into_owned(),
                Frame::Oversized(length) => format!("<{length}>"),
            });
        }
    }

    #[test]
    fn lines_across_chunks_and_oversized_lines_are_reported_in_order() {
        let mut framer = LineFramer::new(4);
        let mut out = Vec::new();
        for chunk in ["ab", "c\nlonger", "line\nok\n", "\nxyz"] {
            framer.push(chunk.as_bytes());
            frames(&mut framer, &mut out);
            assert!(framer.buffered() <= 4);
        }
        if let Some(Frame::Line(line)) = framer.finish() {
            out.push(String::from_utf8_lossy(line).into_owned());
        }
        assert_eq!(out, ["abc", "<10>", "ok", "", "xyz"]);
    }

    #[test]
    fn an_unterminated_oversized_line_is_reported_at_the_end() {
        let mut framer = LineFramer::new(2);
        let mut out = Vec::new();
        framer.push(b"a\nlong");
        frames(&mut framer, &mut out);
        framer.push(b"er");
        frames(&mut framer, &mut out);
        assert_eq!(out, ["a"]);
        assert_eq!(framer.finish(), Some(Frame::Oversized(6)));
        assert_eq!(framer.finish(), None);
    }
}
