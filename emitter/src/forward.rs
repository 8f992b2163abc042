//! Spool forwarding: after a hook has delivered its own event to Redis, it
//! sends what the spool holds over the same connection, within small budgets,
//! so a machine that was cut off catches up by itself.
//!
//! The common case must cost nothing: the spool's `.pending` marker is taken
//! with one `unlink` (see `shared::spool`), and only when it was there does
//! the hook look into the spool directory.
//!
//! Everything else is bounded, whatever the spool holds: [`BUDGET`] of time
//! for all of it (reading, sending and giving files back), at most
//! [`READ_BUDGET`] bytes read for sending and [`SKIP_BUDGET`] bytes scanned
//! past lines too large to send. A claimed file is read from where the last
//! forwarder left off; delivered lines are never read again, because a file
//! given back early keeps its offset in its name (`ClaimedFile::release_at`),
//! so nothing is copied or put back. A line over [`MAX_LINE_BYTES`] (no
//! emitter writes one since payloads are bounded in total; an older one did)
//! is passed by instead of blocking the spool for good: it never goes to
//! Redis, and its file is set aside for the collector's drainer once
//! forwarded (`ClaimedFile::finish_forwarding`).

use std::path::Path;
use std::time::Duration;

use hooktrail_shared::config::RedisConfig;
use hooktrail_shared::envelope::MAX_LINE_BYTES;
use hooktrail_shared::spool::{self, ClaimedFile, Claimer};

use crate::deadline::Deadline;
use crate::diag::debug;
use crate::redis::{delivery_result, encode_delivery, Connection, Delivery};

/// The time a hook may spend forwarding after its own delivery.
pub const BUDGET: Duration = Duration::from_millis(150);

/// The bytes of spooled lines a hook may read for sending: room for a few
/// of the largest lines, and well over a thousand typical ones.
pub const READ_BUDGET: usize = 4 * 1024 * 1024;

/// The bytes a hook may scan past oversized lines (scanning costs far less
/// than sending: no copy, no network).
pub const SKIP_BUDGET: usize = 32 * 1024 * 1024;

/// Lines sent per pipelined write.
const BATCH: usize = 256;

/// The piece read at a time while scanning past an oversized line.
const SKIP_CHUNK: usize = 256 * 1024;

const _: () = assert!(
    READ_BUDGET > MAX_LINE_BYTES,
    "a hook's read budget must hold any line it may send"
);

/// What one forwarding pass did, for the diagnostics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Forwarded {
    /// Lines Redis accepted.
    pub sent: usize,
    /// Lines over [`MAX_LINE_BYTES`] passed by (left for the collector).
    pub passed_oversized: usize,
}

/// The budgets left for the rest of one forwarding pass.
struct Budgets {
    /// Ends the whole pass; also the Redis connection's deadline.
    deadline: Deadline,
    /// Bytes still to be read for sending.
    read: usize,
    /// Bytes still to be scanned past oversized lines.
    skip: usize,
}

impl Budgets {
    fn spent(&self) -> bool {
        self.deadline.remaining().is_none() || self.read == 0
    }
}

/// How far one file got.
enum Progress {
    /// Every line up to the end of the file is delivered (or passed by).
    Done,
    /// Stopped at the offset: a budget ran out or Redis stopped taking lines.
    StoppedAt(u64),
}

/// Forwards the spool in `spool_dir` over `connection` when its marker says
/// it may hold lines.
pub fn forward_spool(
    connection: &mut Connection,
    redis: &RedisConfig,
    spool_dir: &Path,
    budget: Duration,
) -> Forwarded {
    let mut total = Forwarded::default();
    if !spool::take_pending(spool_dir) {
        return total;
    }
    let mut budgets = Budgets {
        deadline: Deadline::after(budget),
        read: READ_BUDGET,
        skip: SKIP_BUDGET,
    };
    connection.set_deadline(budgets.deadline);
    let tag = format!("emit{}", std::process::id());
    let mut finished = false;
    while !budgets.spent() {
        // Never wait on a lock here: the collector's drainer holds its claim
        // until its commit, which took 5.8 s with a busy database.
        let claimed = match spool::claim_files(spool_dir, &tag, 1, Claimer::Forwarder) {
            Ok(claimed) => claimed,
            Err(error) => {
                debug!(
                    "forward: cannot claim spool files in {}: {error}",
                    spool_dir.display()
                );
                break;
            }
        };
        let passed_busy = claimed.passed_busy;
        let Some(file) = claimed.files.into_iter().next() else {
            // A file passed by may still hold lines: then keep the marker.
            finished = !passed_busy;
            break;
        };
        let mut passed_oversized = file.passed_oversized();
        let progress = forward_file(
            connection,
            redis,
            &file,
            &mut budgets,
            &mut total,
            &mut passed_oversized,
        );
        let settled = match progress {
            Ok(Progress::Done) => file.finish_forwarding(passed_oversized),
            Ok(Progress::StoppedAt(offset)) => file.release_at(offset, passed_oversized),
            Err(error) => {
                debug!("forward: cannot read {}: {error}", file.path.display());
                // Dropping the claim unlocks it; the next drainer takes it.
                break;
            }
        };
        if let Err(error) = settled {
            debug!("forward: cannot settle a claimed spool file: {error}");
            break;
        }
        if matches!(progress, Ok(Progress::StoppedAt(_))) {
            break;
        }
    }
    if !finished {
        // More may be waiting; keep the marker for the next hook.
        let _ = spool::mark_pending(spool_dir);
    }
    total
}

/// Sends the lines of `file` from where the last forwarder left off, within
/// `budgets`.
fn forward_file(
    connection: &mut Connection,
    redis: &RedisConfig,
    file: &ClaimedFile,
    budgets: &mut Budgets,
    total: &mut Forwarded,
    passed_oversized: &mut bool,
) -> std::io::Result<Progress> {
    let length = file.len()?;
    let mut offset = file.resume_offset().min(length);
    if offset > 0 && offset < length {
        // An offset inside a line means the last forwarder was scanning past
        // an oversized one when its budget ran out.
        let mut before = [0u8];
        file.read_at(offset - 1, &mut before)?;
        if before[0] != b'\n' {
            match skip_line(file, offset, budgets)? {
                Skipped::PastNewline(next) => offset = next,
                Skipped::StoppedAt(at) => return Ok(Progress::StoppedAt(at)),
            }
        }
    }
    let mut buffer = Vec::new();
    while offset < length {
        if budgets.spent() {
            return Ok(Progress::StoppedAt(offset));
        }
        buffer.resize(budgets.read.min((length - offset) as usize), 0);
        let read = file.read_at(offset, &mut buffer)?;
        buffer.truncate(read);
        let Some(last_newline) = buffer.iter().rposition(|&byte| byte == b'\n') else {
            if read > MAX_LINE_BYTES {
                // The line at `offset` is too large to send: pass it by.
                *passed_oversized = true;
                total.passed_oversized += 1;
                budgets.read -= read;
                match skip_line(file, offset + read as u64, budgets)? {
                    Skipped::PastNewline(next) => {
                        offset = next;
                        continue;
                    }
                    Skipped::StoppedAt(at) => return Ok(Progress::StoppedAt(at)),
                }
            }
            if read > 0 && offset + read as u64 >= length {
                // A last line without its newline (an appender killed
                // mid-write): send it, so the collector rejects it visibly.
                budgets.read -= read;
                let delivered = send_lines(connection, redis, &[&buffer[..]], budgets);
                total.sent += delivered;
                return Ok(if delivered == 1 {
                    Progress::Done
                } else {
                    Progress::StoppedAt(offset)
                });
            }
            // The next line does not fit in what is left of the read budget.
            return Ok(Progress::StoppedAt(offset));
        };
        let whole = &buffer[..=last_newline];
        budgets.read -= whole.len();
        // The lines to send, each with the offset it starts at.
        let mut sendable: Vec<(&[u8], u64)> = Vec::new();
        let mut start = 0;
        for (index, &byte) in whole.iter().enumerate() {
            if byte != b'\n' {
                continue;
            }
            let line = &whole[start..index];
            if line.len() > MAX_LINE_BYTES {
                *passed_oversized = true;
                total.passed_oversized += 1;
            } else if !line.iter().all(u8::is_ascii_whitespace) {
                sendable.push((line, offset + start as u64));
            }
            start = index + 1;
        }
        let lines: Vec<&[u8]> = sendable.iter().map(|(line, _)| *line).collect();
        let delivered = send_lines(connection, redis, &lines, budgets);
        total.sent += delivered;
        if let Some((_, resume)) = sendable.get(delivered) {
            // Resume at the first line not known to be delivered.
            return Ok(Progress::StoppedAt(*resume));
        }
        offset += whole.len() as u64;
    }
    Ok(Progress::Done)
}

/// Where a scan past an oversized line ended.
enum Skipped {
    /// Just past the line's newline (or at the end of the file).
    PastNewline(u64),
    /// At this offset inside the line: the skip budget or the time ran out.
    StoppedAt(u64),
}

/// Scans from `from` (inside an oversized line) to just past its newline,
/// within the skip budget and the deadline.
fn skip_line(file: &ClaimedFile, from: u64, budgets: &mut Budgets) -> std::io::Result<Skipped> {
    let mut chunk = vec![0u8; SKIP_CHUNK];
    let mut at = from;
    loop {
        if budgets.skip == 0 || budgets.deadline.remaining().is_none() {
            return Ok(Skipped::StoppedAt(at));
        }
        let want = budgets.skip.min(SKIP_CHUNK);
        let read = file.read_at(at, &mut chunk[..want])?;
        if read == 0 {
            return Ok(Skipped::PastNewline(at));
        }
        if let Some(newline) = chunk[..read].iter().position(|&byte| byte == b'\n') {
            budgets.skip -= newline + 1;
            return Ok(Skipped::PastNewline(at + newline as u64 + 1));
        }
        budgets.skip -= read;
        at += read as u64;
    }
}

/// Sends `lines` in pipelined batches, in order, and returns how many lines
/// from the start were delivered.
fn send_lines(
    connection: &mut Connection,
    redis: &RedisConfig,
    lines: &[&[u8]],
    budgets: &Budgets,
) -> usize {
    let mut delivered = 0;
    while delivered < lines.len() {
        if budgets.deadline.remaining().is_none() {
            return delivered;
        }
        let batch = &lines[delivered..lines.len().min(delivered + BATCH)];
        let mut commands = Vec::with_capacity(batch.iter().map(|line| line.len() + 96).sum());
        for line in batch {
            encode_delivery(&mut commands, redis, line);
        }
        let (replies, failure) = connection.request_partial(&commands, batch.len());
        for reply in &replies {
            match delivery_result(redis.transport, reply) {
                Ok(Delivery::Delivered) => delivered += 1,
                Ok(Delivery::NoReceivers) => {
                    // Pub/sub with nobody listening: stop, keep the rest.
                    return delivered;
                }
                Err(error) => {
                    debug!("forward: line not accepted: {error}");
                    return delivered;
                }
            }
        }
        if let Some(failure) = failure {
            // Commands without a reply may or may not have taken effect;
            // sending them again is harmless (events are stored once by id).
            debug!("forward: stopped: {failure}");
            return delivered;
        }
    }
    delivered
}
