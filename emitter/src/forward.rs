//! Spool forwarding: after a hook has delivered its own event to Redis, it
//! sends what the spool holds over the same connection, within a small budget,
//! so a machine that was cut off catches up by itself.
//!
//! The common case must cost nothing: the spool's `.pending` marker is taken
//! with one `unlink` (see `shared::spool`), and only when it was there does
//! the hook look into the spool directory. Each claimed file is sent as
//! pipelined `XADD`s (or `PUBLISH`es, stopping at the first that reaches no
//! subscriber); lines without a success reply go back to the spool.

use std::path::Path;
use std::time::Duration;

use hooktrail_shared::config::{RedisConfig, Transport};
use hooktrail_shared::spool::{self, LockWait};

use crate::deadline::Deadline;
use crate::diag::debug;
use crate::redis::{delivery_result, encode_delivery, Connection, Delivery};

/// The time a hook may spend forwarding after its own delivery.
pub const BUDGET: Duration = Duration::from_millis(150);

/// Lines sent per pipelined write.
const BATCH: usize = 256;

/// What one forwarding pass did, for the diagnostics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Forwarded {
    /// Lines Redis accepted.
    pub sent: usize,
    /// Lines put back into the spool.
    pub kept: usize,
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
    let deadline = Deadline::after(budget);
    connection.set_deadline(deadline);
    let tag = format!("emit{}", std::process::id());
    let mut finished = false;
    loop {
        if deadline.remaining().is_none() {
            break;
        }
        // Never wait on a lock here: the collector's drainer holds its claim
        // until its commit, which took 5.8 s with a busy database.
        let claimed = match spool::claim_files(spool_dir, &tag, 1, LockWait::Skip) {
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
        let Some(mut file) = claimed.files.into_iter().next() else {
            // A file passed by may still hold lines: then keep the marker.
            finished = !passed_busy;
            break;
        };
        let lines = match file.read_lines() {
            Ok(lines) => lines,
            Err(error) => {
                debug!("forward: cannot read {}: {error}", file.path.display());
                // Dropping the claim unlocks it; the next drainer takes it.
                break;
            }
        };
        let undelivered = send_lines(connection, redis, &lines, deadline);
        total.sent += lines.len() - undelivered.len();
        total.kept += undelivered.len();
        let result = if undelivered.is_empty() {
            file.finish()
        } else {
            let kept: Vec<String> = undelivered
                .iter()
                .map(|&index| String::from_utf8_lossy(&lines[index]).into_owned())
                .collect();
            file.put_back(spool_dir, kept.iter().map(String::as_str))
        };
        if let Err(error) = result {
            debug!("forward: cannot settle a claimed spool file: {error}");
            break;
        }
        if !undelivered.is_empty() {
            // Stop at the first partial failure: the lines just put back are
            // in the current spool file, which the next claim would take.
            break;
        }
    }
    if !finished {
        // More may be waiting; keep the marker for the next hook.
        let _ = spool::mark_pending(spool_dir);
    }
    total
}

/// Sends `lines` in pipelined batches; returns the indexes of lines that were
/// not (known to be) delivered.
fn send_lines(
    connection: &mut Connection,
    redis: &RedisConfig,
    lines: &[Vec<u8>],
    deadline: Deadline,
) -> Vec<usize> {
    let mut undelivered = Vec::new();
    let mut next = 0;
    while next < lines.len() {
        if deadline.remaining().is_none() {
            break;
        }
        let batch = &lines[next..lines.len().min(next + BATCH)];
        let mut commands = Vec::with_capacity(batch.iter().map(|line| line.len() + 96).sum());
        for line in batch {
            encode_delivery(&mut commands, redis, line);
        }
        let (replies, failure) = connection.request_partial(&commands, batch.len());
        let mut nobody_listens = false;
        for (offset, reply) in replies.iter().enumerate() {
            match delivery_result(redis.transport, reply) {
                Ok(Delivery::Delivered) => {}
                Ok(Delivery::NoReceivers) => {
                    nobody_listens = true;
                    undelivered.push(next + offset);
                }
                Err(error) => {
                    debug!("forward: line not accepted: {error}");
                    undelivered.push(next + offset);
                }
            }
        }
        // Commands without a reply may or may not have taken effect; sending
        // them again is harmless (events are stored once by id).
        undelivered.extend(next + replies.len()..next + batch.len());
        next += batch.len();
        if let Some(failure) = failure {
            debug!("forward: stopped: {failure}");
            break;
        }
        if nobody_listens && redis.transport == Transport::PubSub {
            break;
        }
    }
    undelivered.extend(next..lines.len());
    undelivered
}
