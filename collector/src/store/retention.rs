//! Retention (`--retention-days`): the writer deletes expired events and
//! usage rows in small chunks while its queue is idle, so a deletion never holds the write
//! lock for long. It runs on the writer's connection, inside the writer's
//! thread: the writer stays the only one that changes rows.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, TransactionBehavior};

use crate::log;
use crate::stats::Stats;

/// Whether the writer deletes old events.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Retention {
    /// Keep everything.
    KeepAll,
    /// Delete events whose `ts` is older than this.
    DeleteOlderThan(Duration),
}

/// Most events one retention step deletes, so it never holds the write lock
/// for long.
const RETENTION_CHUNK: i64 = 500;

/// The writer's retention duty: the policy and when its next step is due.
#[derive(Debug)]
pub(crate) struct RetentionSchedule {
    /// Old-event deletion policy.
    retention: Retention,
    /// When the next retention step is due.
    due: Instant,
}

impl RetentionSchedule {
    /// A schedule whose first step is due now.
    pub(crate) fn new(retention: Retention) -> RetentionSchedule {
        RetentionSchedule {
            retention,
            due: Instant::now(),
        }
    }

    /// Deletes one small chunk of expired events and usage rows when due
    /// (the writer calls it only when its queue is idle), then the
    /// sessions, agents and transcript ids left without events.
    pub(crate) fn step(&mut self, connection: &mut Connection, stats: &Stats) {
        let Retention::DeleteOlderThan(age) = self.retention else {
            return;
        };
        if Instant::now() < self.due {
            return;
        }
        let cutoff = hooktrail_shared::time::now_millis() - age.as_millis() as i64;
        let result = (|| -> rusqlite::Result<(usize, bool)> {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // The row holding the highest seq is never deleted, even when
            // it expired. `seq` is an `INTEGER PRIMARY KEY` without
            // AUTOINCREMENT, so SQLite gives a new row MAX(seq) + 1: were
            // the newest rows deleted (an emitter whose clock is behind
            // sends events that are "old" on arrival), the next event would
            // get a seq that WebSocket clients and `after=` pagers have
            // already seen, and they would skip it. Keeping that one row
            // keeps MAX(seq) from ever going down, which is all
            // AUTOINCREMENT would give, without a table rebuild; the cost
            // is one expired event kept until a newer one arrives.
            let deleted = transaction.execute(
                "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE ts < ?1
                 AND seq < (SELECT max(seq) FROM events) ORDER BY ts LIMIT ?2)",
                params![cutoff, RETENTION_CHUNK],
            )?;
            // Usage rows go by their response's time, like events: a
            // hook's and an import's alike (an imported session's usage
            // would otherwise outlive its events, and its cost stay in
            // every total).
            let usage_deleted = transaction.execute(
                "DELETE FROM usage WHERE key IN
                     (SELECT key FROM usage WHERE ts < ?1 ORDER BY ts LIMIT ?2)",
                params![cutoff, RETENTION_CHUNK],
            )?;
            let more_due = (deleted.max(usage_deleted) as i64) >= RETENTION_CHUNK;
            if !more_due {
                transaction.execute(
                    "DELETE FROM event_counts WHERE minute + 60000 <= ?1",
                    params![cutoff],
                )?;
                transaction.execute(
                    "DELETE FROM sessions WHERE last_ts < ?1
                     AND NOT EXISTS (SELECT 1 FROM events WHERE events.session_id = sessions.session_id)",
                    params![cutoff],
                )?;
                transaction.execute(
                    "DELETE FROM agents WHERE NOT EXISTS
                     (SELECT 1 FROM sessions WHERE sessions.session_id = agents.session_id)",
                    [],
                )?;
                crate::store::otel::expire(&transaction, cutoff)?;
                transaction.execute(
                    "DELETE FROM transcript_ids WHERE NOT EXISTS
                     (SELECT 1 FROM sessions WHERE sessions.session_id = transcript_ids.session_id)",
                    [],
                )?;
            }
            transaction.commit()?;
            Ok((deleted, more_due))
        })();
        match result {
            Ok((deleted, more_due)) => {
                stats
                    .retention_deleted
                    .fetch_add(deleted as u64, Ordering::Relaxed);
                self.due = if more_due {
                    Instant::now()
                } else {
                    Instant::now() + Duration::from_secs(60)
                };
            }
            Err(error) => {
                stats.write_errors.fetch_add(1, Ordering::Relaxed);
                log::warn(&format!(
                    "writer: retention step failed ({error}); trying again in a minute"
                ));
                self.due = Instant::now() + Duration::from_secs(60);
            }
        }
    }
}
