//! The property of the socket's line framing (`hooktrail_collector::framing`),
//! shared by the `socket_lines` fuzz target and the regression test.
//!
//! Input layout: byte 0 picks the line limit (1 to 256 bytes), byte 1 seeds
//! the chunk sizes, the rest is the stream. For any chunking, the framer must
//! yield exactly the lines of a plain split on `\n` (the last piece counts as
//! a line at the end of input when it is not empty), lines over the limit
//! reported as oversized with their length and never returned, the buffer
//! within the limit between reads, and every line must go through
//! `hooktrail_shared::envelope::parse_line` without panicking.

use hooktrail_collector::{Frame, LineFramer};

/// What the framer yields, owned, for comparison.
#[derive(Debug, PartialEq, Eq)]
enum Item {
    Line(Vec<u8>),
    Oversized(usize),
}

fn item(frame: Frame<'_>) -> Item {
    match frame {
        Frame::Line(line) => {
            // Whatever the bytes, parsing must not panic.
            let _ = hooktrail_shared::envelope::parse_line(line);
            Item::Line(line.to_vec())
        }
        Frame::Oversized(length) => Item::Oversized(length),
    }
}

/// The reference: split on every newline; the piece after the last newline
/// is a line when it is not empty.
fn reference(stream: &[u8], limit: usize) -> Vec<Item> {
    let mut pieces: Vec<&[u8]> = stream.split(|&byte| byte == b'\n').collect();
    if pieces.last().is_some_and(|last| last.is_empty()) {
        pieces.pop();
    }
    pieces
        .into_iter()
        .map(|line| {
            if line.len() > limit {
                Item::Oversized(line.len())
            } else {
                Item::Line(line.to_vec())
            }
        })
        .collect()
}

/// Checks the property for one fuzz input.
pub fn check(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let limit = 1 + data[0] as usize;
    let mut seed = u64::from(data[1]) | 1;
    let stream = &data[2..];
    let mut framer = LineFramer::new(limit);
    let mut got = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        // xorshift: chunk sizes from 1 to 3 limits, so chunks both split and
        // span lines.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let size = 1 + (seed as usize) % (3 * limit);
        let (chunk, after) = rest.split_at(size.min(rest.len()));
        rest = after;
        framer.push(chunk);
        while let Some(frame) = framer.next_frame() {
            got.push(item(frame));
        }
        assert!(
            framer.buffered() <= limit,
            "framer holds {} bytes with a limit of {limit}",
            framer.buffered()
        );
    }
    while let Some(frame) = framer.finish() {
        got.push(item(frame));
    }
    assert_eq!(framer.finish(), None, "finish keeps yielding");
    assert_eq!(got, reference(stream, limit), "limit {limit}");
}
