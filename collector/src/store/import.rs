//! What the import process and the collector's live feed need from the
//! database beyond the writer's transaction and the page of events:
//! - the import's end events are *the transcript ends here*: when a grown
//!   transcript is imported again, its new `SessionEnd` (or a subagent's
//!   `SubagentStop`) replaces the earlier one instead of standing beside it
//!   ([`retire_replaced_ends`]);
//! - whether a session is stored at all, read once per session;
//! - `PRAGMA data_version`, which tells the collector cheaply that another
//!   process (an import) committed rows its own writer did not publish.
//!
//! Only [`retire_replaced_ends`] changes rows, and only the import calls it,
//! on the import's own connection (`writer::ImportStore`).

use rusqlite::{named_params, Connection, TransactionBehavior};

/// One end event the import has just stored, for a session (or subagent)
/// that already had rows before this import.
#[derive(Debug, Clone)]
pub(crate) struct StoredEnd {
    /// The session the end belongs to.
    pub(crate) session_id: String,
    /// The subagent, for a `SubagentStop`; `None` for a `SessionEnd`.
    pub(crate) agent_id: Option<String>,
    /// `SessionEnd` or `SubagentStop`.
    pub(crate) hook: String,
}

/// Keeps, of the import's end events of each `ends` session (and agent),
/// only the latest one (by time, then `seq`) and deletes the others,
/// keeping the counters they were counted in (`sessions.event_count`,
/// `agents.event_count`, `event_counts`) right. A session's `ended_ts` is
/// set to the kept end's time, since storing an older end (a subagent's
/// file imported without its session's) may have moved it back. Returns the
/// number of events deleted.
pub(crate) fn retire_replaced_ends(
    connection: &mut Connection,
    ends: &[StoredEnd],
) -> rusqlite::Result<usize> {
    if ends.is_empty() {
        return Ok(0);
    }
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut deleted = 0;
    {
        let mut find = transaction.prepare_cached(
            "SELECT seq, ts, machine FROM events INDEXED BY events_session_seq
             WHERE session_id = :session AND hook = :hook AND source = 'import'
               AND agent_id IS :agent
             ORDER BY ts DESC, seq DESC",
        )?;
        let mut delete = transaction.prepare_cached("DELETE FROM events WHERE seq = :seq")?;
        let mut uncount_minute = transaction.prepare_cached(
            "UPDATE event_counts SET count = count - 1
             WHERE minute = (:ts / 60000) * 60000 AND hook = :hook AND machine = :machine",
        )?;
        let mut uncount_session = transaction.prepare_cached(
            "UPDATE sessions SET event_count = event_count - 1 WHERE session_id = :session",
        )?;
        let mut uncount_agent = transaction.prepare_cached(
            "UPDATE agents SET event_count = event_count - 1 WHERE agent_id = :agent",
        )?;
        let mut set_ended = transaction
            .prepare_cached("UPDATE sessions SET ended_ts = :ts WHERE session_id = :session")?;
        for end in ends {
            let found: Vec<(i64, i64, String)> = find
                .query_map(
                    named_params! {
                        ":session": end.session_id,
                        ":hook": end.hook,
                        ":agent": end.agent_id,
                    },
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )?
                .collect::<rusqlite::Result<_>>()?;
            let Some(((_, kept_ts, _), older)) = found.split_first() else {
                continue;
            };
            for (seq, ts, machine) in older {
                delete.execute(named_params! {":seq": seq})?;
                uncount_minute
                    .execute(named_params! {":ts": ts, ":hook": end.hook, ":machine": machine})?;
                uncount_session.execute(named_params! {":session": end.session_id})?;
                if end.agent_id.is_some() {
                    uncount_agent.execute(named_params! {":agent": end.agent_id})?;
                }
                deleted += 1;
            }
            if end.agent_id.is_none() && !older.is_empty() {
                set_ended.execute(named_params! {":ts": kept_ts, ":session": end.session_id})?;
            }
        }
    }
    transaction.commit()?;
    Ok(deleted)
}

/// Whether the database holds any event of `session_id` (one index probe).
pub(crate) fn session_is_stored(
    connection: &Connection,
    session_id: &str,
) -> rusqlite::Result<bool> {
    connection
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM events WHERE session_id = :session)")?
        .query_row(named_params! {":session": session_id}, |row| row.get(0))
}

/// `PRAGMA data_version`: changes whenever another connection (the
/// collector's writer, an import) committed since this connection last
/// asked. Cheap: no table is read.
pub(crate) fn data_version(connection: &Connection) -> rusqlite::Result<i64> {
    connection.query_row("PRAGMA data_version", [], |row| row.get(0))
}
