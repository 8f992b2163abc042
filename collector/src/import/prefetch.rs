//! Reading ahead on a thread of its own: one thread reads the transcripts,
//! in the import's order, into a few fixed buffers, and the parsing thread
//! reads each file from those buffers ([`ChunkedFile`], a `BufRead`).
//!
//! Reading a file cold waits for the disk; reading it warm copies it from
//! the page cache. On the parsing thread both came on top of the parsing
//! (a sixth of its time warm, more than half cold). Here the reads overlap
//! the parsing, and the parser sees the same bytes in the same order, so
//! the import is the same (`tests::chunks_read_as_the_file_does`).
//!
//! The files are read with `O_DIRECT` where the file system allows it
//! ([`Source`]): the disk writes straight into the buffer, with no copy
//! through the page cache. That copy was a third of the import's system
//! time and ran on a core the parsing and storing threads need; a history
//! read once also no longer pushes the user's own files out of the cache.
//!
//! Memory is bounded by the buffers: [`BUFFERS`] of [`CHUNK_BYTES`],
//! handed back and forth, never more.

use std::fs::File;
use std::io::{BufRead, Read};
use std::ops::Range;
use std::path::PathBuf;

use crossbeam_channel::{Receiver, Sender};
use hooktrail_shared::regular_file;

/// The size of one buffer: as large as the reader's buffer was, so a line
/// lies whole in one as often as before.
pub(super) const CHUNK_BYTES: usize = 1024 * 1024;

/// Buffers in flight: one being parsed, the others being filled or
/// waiting. A direct read has no read-ahead of the kernel's behind it, so
/// these are the only bytes read ahead: with 2 the parsing thread waited
/// 0.6-0.7 s for the disk per cold GB, with 8 under 0.13 s
/// (BENCHMARKS.md, "Issue 21, import: direct reads").
const BUFFERS: usize = 8;

/// What a direct read's buffer address, length and file offset must be a
/// multiple of: the device's logical block, 512 or 4096 bytes on every
/// common one. A read that breaks the rule fails (`EINVAL`) and the file
/// goes on buffered ([`Source::read`]), so a larger block costs speed,
/// never bytes.
const DIRECT_ALIGN: usize = 4096;

/// One buffer and the bytes of it that hold the file: they start at an
/// address aligned for a direct read.
pub(super) struct Chunk {
    buffer: Vec<u8>,
    bytes: Range<usize>,
}

/// What the reading thread found next in file number `.0`.
enum Piece {
    /// The next bytes.
    Bytes(Chunk),
    /// The end of the file.
    End,
    /// It could not be opened or read further: the file ends there.
    Failed(std::io::Error),
}

/// The parsing side: the pieces, in order, and the way back for the
/// buffers.
pub(super) struct Prefetched {
    pieces: Receiver<(usize, Piece)>,
    free: Sender<Vec<u8>>,
}

/// The reading side, run by [`Prefetcher::run`] on its own thread.
pub(super) struct Prefetcher {
    paths: Vec<PathBuf>,
    chunk_bytes: usize,
    pieces: Sender<(usize, Piece)>,
    free: Receiver<Vec<u8>>,
}

/// A reading thread and its parsing side for `paths`, read in that order
/// in buffers of `chunk_bytes` (rounded up to [`DIRECT_ALIGN`]).
pub(super) fn prefetch(paths: Vec<PathBuf>, chunk_bytes: usize) -> (Prefetcher, Prefetched) {
    let (pieces_sender, pieces) = crossbeam_channel::bounded(BUFFERS);
    let (free, free_receiver) = crossbeam_channel::bounded(BUFFERS);
    for _ in 0..BUFFERS {
        let _ = free.send(Vec::new());
    }
    (
        Prefetcher {
            paths,
            chunk_bytes: chunk_bytes.max(1).next_multiple_of(DIRECT_ALIGN),
            pieces: pieces_sender,
            free: free_receiver,
        },
        Prefetched { pieces, free },
    )
}

impl Prefetcher {
    /// Reads every file, in order, until done or the parsing side is gone.
    pub(super) fn run(self) {
        // A buffer taken from the pool but not sent (after an empty read).
        let mut spare: Option<Vec<u8>> = None;
        for (index, path) in self.paths.iter().enumerate() {
            // Not blocking on a FIFO or a device put in a file's place
            // since the listing: it fails like a missing file.
            let mut source = match regular_file::open(path) {
                Ok((file, _)) => Source::new(file),
                Err(error) => {
                    if self.pieces.send((index, Piece::Failed(error))).is_err() {
                        return;
                    }
                    continue;
                }
            };
            loop {
                let mut buffer = match spare.take() {
                    Some(buffer) => buffer,
                    None => match self.free.recv() {
                        Ok(buffer) => buffer,
                        Err(_) => return,
                    },
                };
                // Allocated (and zeroed) once; refilled ever after. The
                // extra block leaves room to start at an aligned address.
                buffer.resize(self.chunk_bytes + DIRECT_ALIGN, 0);
                let start = buffer.as_ptr().align_offset(DIRECT_ALIGN);
                let room = start..start + self.chunk_bytes;
                let piece = match source.fill(&mut buffer[room]) {
                    Ok(0) => {
                        spare = Some(buffer);
                        Piece::End
                    }
                    Ok(filled) => Piece::Bytes(Chunk {
                        buffer,
                        bytes: start..start + filled,
                    }),
                    Err(error) => {
                        spare = Some(buffer);
                        Piece::Failed(error)
                    }
                };
                let last = !matches!(piece, Piece::Bytes(..));
                if self.pieces.send((index, piece)).is_err() {
                    return;
                }
                if last {
                    break;
                }
            }
        }
    }
}

/// An open transcript, read directly from the disk while the file system
/// and the alignment allow it, buffered after.
///
/// Invariant: the file offset is a multiple of [`DIRECT_ALIGN`] while
/// `direct`, except after a short read: the one that ends the file (a read
/// past the end then gives 0, as it should), or one a growing file gave.
/// A direct read from such an offset fails with `EINVAL` (on ext4 and XFS;
/// tmpfs since Linux 6.6 and btrfs quietly read it buffered), which turns
/// `direct` off for good, and that read is made again, buffered, from the
/// same offset. Either way the bytes are the file's.
struct Source {
    file: File,
    /// Whether `O_DIRECT` is set on `file`.
    direct: bool,
}

impl Source {
    /// Sets `O_DIRECT` on `file` if its file system takes it (one that
    /// refuses it, such as tmpfs before Linux 6.6, is read buffered, as
    /// before).
    fn new(file: File) -> Source {
        let direct = set_direct(&file, true);
        Source { file, direct }
    }

    /// Reads until `buffer` is full or the file ends; returns the bytes
    /// read.
    fn fill(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let mut filled = 0;
        while filled < buffer.len() {
            match self.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                // What was read is handed on; the error comes again next time.
                Err(_) if filled > 0 => break,
                Err(error) => return Err(error),
            }
        }
        Ok(filled)
    }

    /// One read; a direct read refused for its alignment is made again
    /// buffered.
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self.file.read(buffer) {
            Err(error) if self.direct && error.raw_os_error() == Some(libc::EINVAL) => {
                self.direct = false;
                if !set_direct(&self.file, false) {
                    return Err(error);
                }
                self.file.read(buffer)
            }
            result => result,
        }
    }
}

/// Sets or clears `O_DIRECT` on an open file; false if that failed.
fn set_direct(file: &File, on: bool) -> bool {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: F_GETFL and F_SETFL only read and change the status flags
    // of a descriptor this `File` owns and keeps open.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return false;
        }
        let flags = if on {
            flags | libc::O_DIRECT
        } else {
            flags & !libc::O_DIRECT
        };
        libc::fcntl(fd, libc::F_SETFL, flags) == 0
    }
}

impl Prefetched {
    /// File number `index`, which must be the next one: the files are
    /// read in the order they were given.
    pub(super) fn file(&self, index: usize) -> ChunkedFile<'_> {
        ChunkedFile {
            prefetched: self,
            index,
            current: None,
            at: 0,
            done: false,
        }
    }
}

/// One file as the reading thread read it: a `BufRead` over its pieces.
/// Dropped before its end, it skips the rest, so the next file starts
/// where it should.
pub(super) struct ChunkedFile<'p> {
    prefetched: &'p Prefetched,
    index: usize,
    /// The buffer being read.
    current: Option<Chunk>,
    /// How far `current` is consumed: an index into its buffer, from
    /// its first byte to its end.
    at: usize,
    /// The end (or an error) was seen.
    done: bool,
}

impl ChunkedFile<'_> {
    /// The next piece of this file; an end if the reading thread is gone.
    fn next_piece(&mut self) -> Piece {
        match self.prefetched.pieces.recv() {
            Ok((index, piece)) => {
                debug_assert_eq!(index, self.index, "files are read in order");
                piece
            }
            Err(_) => Piece::Failed(std::io::Error::other("the reading thread stopped")),
        }
    }

    /// Hands the current buffer back to the reading thread.
    fn release(&mut self) {
        if let Some(chunk) = self.current.take() {
            let _ = self.prefetched.free.send(chunk.buffer);
        }
        self.at = 0;
    }
}

impl Read for ChunkedFile<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let count = available.len().min(out.len());
        out[..count].copy_from_slice(&available[..count]);
        self.consume(count);
        Ok(count)
    }
}

impl BufRead for ChunkedFile<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        let exhausted = self
            .current
            .as_ref()
            .is_none_or(|chunk| self.at >= chunk.bytes.end);
        if exhausted && !self.done {
            self.release();
            match self.next_piece() {
                Piece::Bytes(chunk) => {
                    self.at = chunk.bytes.start;
                    self.current = Some(chunk);
                }
                Piece::End => self.done = true,
                Piece::Failed(error) => {
                    self.done = true;
                    return Err(error);
                }
            }
        }
        Ok(match &self.current {
            Some(chunk) => &chunk.buffer[self.at.min(chunk.bytes.end)..chunk.bytes.end],
            None => &[],
        })
    }

    fn consume(&mut self, amount: usize) {
        self.at += amount;
    }
}

impl Drop for ChunkedFile<'_> {
    fn drop(&mut self) {
        self.release();
        while !self.done {
            match self.next_piece() {
                Piece::Bytes(chunk) => {
                    let _ = self.prefetched.free.send(chunk.buffer);
                }
                Piece::End | Piece::Failed(_) => self.done = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_read_as_the_file_does() {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        let mut texts = Vec::new();
        for (index, size) in [0usize, 1, 4095, 4096, 4097, 20_000]
            .into_iter()
            .enumerate()
        {
            let text: Vec<u8> = (0..size).map(|at| (at * 7 + index) as u8).collect();
            let path = dir.path().join(format!("f{index}"));
            std::fs::write(&path, &text).unwrap();
            paths.push(path);
            texts.push(text);
        }
        paths.insert(2, dir.path().join("missing"));
        texts.insert(2, Vec::new());
        let (prefetcher, prefetched) = prefetch(paths, 4096);
        std::thread::scope(|scope| {
            scope.spawn(move || prefetcher.run());
            for (index, text) in texts.iter().enumerate() {
                let mut file = prefetched.file(index);
                let mut read = Vec::new();
                let result = file.read_to_end(&mut read);
                assert_eq!(result.is_err(), index == 2, "file {index}");
                assert_eq!(&read, text, "file {index}");
            }
        });
    }

    /// What reading one file gave, comparable (the receive time aside).
    fn outcome(
        result: std::io::Result<crate::import::synthesize::FileCounts>,
        output: &mut crate::import::synthesize::Output,
    ) -> String {
        let events: Vec<String> = output
            .events
            .drain(..)
            .map(|mut event| {
                event.row.received_at = 0;
                format!("{:?}", event.row)
            })
            .collect();
        let usage = format!("{:?}", output.usage.drain(..).collect::<Vec<_>>());
        let ids = format!("{:?}", output.transcript_ids.drain(..).collect::<Vec<_>>());
        format!(
            "{:?}\n{events:#?}\n{usage}\n{ids}",
            result.map_err(|error| error.kind())
        )
    }

    #[test]
    fn a_tree_read_ahead_in_small_chunks_imports_as_read_from_its_files() {
        use crate::import::synthesize::{read_file, read_from, FileJob, FileKind, Output};
        use hooktrail_shared::redact::{Redactor, Settings};
        use std::sync::atomic::AtomicU64;
        let fixtures =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/transcripts");
        let mut paths: Vec<PathBuf> = walk(&fixtures);
        let dir = tempfile::tempdir().unwrap();
        let long = dir.path().join("long.jsonl");
        let body = "x\\n".repeat(30_000);
        std::fs::write(
            &long,
            format!(
                "{}\n{}\n",
                r#"{"type":"user","uuid":"u1","timestamp":"2026-01-01T00:00:00.000Z","promptId":"p1","message":{"content":"go"}}"#,
                format_args!(r#"{{"type":"user","uuid":"u2","timestamp":"2026-01-01T00:00:01.000Z","message":{{"content":[{{"type":"tool_result","tool_use_id":"t1","is_error":true,"content":"{body}"}}]}},"toolUseResult":"{body}"}}"#),
            ),
        )
        .unwrap();
        paths.push(long);
        paths.push(dir.path().join("missing.jsonl"));
        assert!(paths.len() >= 8, "{paths:?}");
        let redactor = Redactor::new(Settings::default());
        let bytes_read = AtomicU64::new(0);
        let kind = FileKind::Session {
            session_id: "s".to_owned(),
        };
        let (prefetcher, prefetched) = prefetch(paths.clone(), 4096);
        let mut events = 0;
        std::thread::scope(|scope| {
            scope.spawn(move || prefetcher.run());
            for (index, path) in paths.iter().enumerate() {
                let job = FileJob::for_test(path, &kind, &redactor, &bytes_read);
                let mut output = Output::default();
                let whole = read_file(&job, &mut output);
                events += output.events.len();
                let expected = outcome(whole, &mut output);
                let ahead = read_from(&job, prefetched.file(index), &mut output);
                assert_eq!(outcome(ahead, &mut output), expected, "{}", path.display());
            }
        });
        assert!(events > 20, "{events} events");
    }

    fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                found.extend(walk(&path));
            } else if path.extension().is_some_and(|ext| ext == "jsonl") {
                found.push(path);
            }
        }
        found.sort();
        found
    }

    #[test]
    fn a_direct_read_goes_on_buffered_after_an_unaligned_end() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let text: Vec<u8> = (0..3 * DIRECT_ALIGN + 100).map(|at| at as u8).collect();
        std::fs::write(&path, &text).unwrap();
        let mut source = Source::new(File::open(&path).unwrap());
        let mut buffer = vec![0; 8 * DIRECT_ALIGN];
        let start = buffer.as_ptr().align_offset(DIRECT_ALIGN);
        let room = &mut buffer[start..start + 7 * DIRECT_ALIGN];
        assert_eq!(source.fill(room).unwrap(), text.len());
        assert_eq!(&room[..text.len()], &text[..]);
        // The file grows while it is read: the offset is no longer aligned.
        let more = vec![b'x'; 5000];
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&more)
            .unwrap();
        assert_eq!(source.fill(room).unwrap(), more.len());
        assert_eq!(&room[..more.len()], &more[..]);
        // Whether the file system refused the unaligned direct read
        // (ext4: `direct` is now off) or read it buffered itself (tmpfs,
        // btrfs), the bytes are the file's.
        assert_eq!(source.fill(room).unwrap(), 0);
    }

    #[test]
    fn a_file_left_half_read_is_skipped_to_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("a");
        let second = dir.path().join("b");
        std::fs::write(&first, vec![b'a'; 10_000]).unwrap();
        std::fs::write(&second, b"second").unwrap();
        let (prefetcher, prefetched) = prefetch(vec![first, second], 4096);
        std::thread::scope(|scope| {
            scope.spawn(move || prefetcher.run());
            let mut file = prefetched.file(0);
            assert_eq!(file.fill_buf().unwrap().len(), 4096);
            drop(file);
            let mut read = Vec::new();
            prefetched.file(1).read_to_end(&mut read).unwrap();
            assert_eq!(read, b"second");
        });
    }
}
