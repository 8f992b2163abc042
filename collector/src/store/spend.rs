//! What budgets measure: spend per session, and per machine and working
//! directory within a time window, read from the `usage` table and the
//! sessions' running totals (both kept by the writer's transaction).
//!
//! Reads only, on a read-only connection of the caller's: the budget thread
//! never holds up the writer.

use rusqlite::{named_params, Connection};

/// A session active since the caller's cut-off, with what it has cost.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SessionSpend {
    /// The session.
    pub(crate) session_id: String,
    /// Where it runs: machine budgets count it there.
    pub(crate) machine: String,
    /// Its working directory: project budgets match it against their glob.
    pub(crate) cwd: String,
    /// The sum of its priced responses, in USD (the running total).
    pub(crate) usd: f64,
}

/// The sessions with an event at or after `since` (ms), cheapest first is
/// not needed: every one gets a verdict. Served by `sessions_last_ts`.
pub(crate) fn active_sessions(
    connection: &Connection,
    since: i64,
) -> rusqlite::Result<Vec<SessionSpend>> {
    let mut statement = connection.prepare_cached(
        "SELECT session_id, machine, COALESCE(cwd, ''), total_cost_usd
         FROM sessions WHERE last_ts >= :since",
    )?;
    let rows = statement.query_map(named_params! {":since": since}, |row| {
        Ok(SessionSpend {
            session_id: row.get(0)?,
            machine: row.get(1)?,
            cwd: row.get(2)?,
            usd: row.get(3)?,
        })
    })?;
    rows.collect()
}

/// Spend in a window for one machine and working directory.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlaceSpend {
    /// The machine the responses were made on.
    pub(crate) machine: String,
    /// Their working directory.
    pub(crate) cwd: String,
    /// The sum of their priced responses, in USD.
    pub(crate) usd: f64,
}

/// The priced spend of `[start, end)` (ms) by machine and cwd: one pass
/// over the window through `usage_ts`, so every project, machine and global
/// budget of that window is summed from the same rows.
pub(crate) fn window_spend(
    connection: &Connection,
    start: i64,
    end: i64,
) -> rusqlite::Result<Vec<PlaceSpend>> {
    let mut statement = connection.prepare_cached(
        "SELECT COALESCE(machine, ''), COALESCE(cwd, ''), total(cost_usd)
         FROM usage WHERE ts >= :start AND ts < :end
         GROUP BY 1, 2",
    )?;
    let rows = statement.query_map(named_params! {":start": start, ":end": end}, |row| {
        Ok(PlaceSpend {
            machine: row.get(0)?,
            cwd: row.get(1)?,
            usd: row.get(2)?,
        })
    })?;
    rows.collect()
}

/// What approvers granted on top of a budget, by budget name and subject
/// (a session id, a machine, or "" for project and global budgets) and
/// window start (0 for a session's lifetime).
pub(crate) fn grants(connection: &Connection) -> rusqlite::Result<Vec<(String, String, i64, f64)>> {
    let mut statement = connection.prepare_cached(
        "SELECT budget, subject, window_start, total(usd) FROM budget_grants GROUP BY 1, 2, 3",
    )?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))?;
    rows.collect()
}
