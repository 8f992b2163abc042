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
    let rows = statement.query_map([], |row| {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
    })?;
    rows.collect()
}

/// A guarded event (`PreToolUse`, `UserPromptSubmit`) stored after `after`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GuardedEvent {
    /// Its cursor.
    pub(crate) seq: i64,
    /// Its id (the audit row's key).
    pub(crate) id: String,
    /// Its session.
    pub(crate) session_id: String,
    /// Its machine.
    pub(crate) machine: String,
    /// `PreToolUse` or `UserPromptSubmit`.
    pub(crate) hook: String,
    /// The tool, for a `PreToolUse`.
    pub(crate) tool: Option<String>,
    /// When the hook ran (unix ms).
    pub(crate) ts: i64,
}

/// The newest event's seq (0 for an empty database).
pub(crate) fn newest_seq(connection: &Connection) -> rusqlite::Result<i64> {
    connection.query_row("SELECT COALESCE(max(seq), 0) FROM events", [], |row| {
        row.get(0)
    })
}

/// Up to 1,000 guarded events after `after`, oldest first.
pub(crate) fn guarded_events_after(
    connection: &Connection,
    after: i64,
) -> rusqlite::Result<Vec<GuardedEvent>> {
    let mut statement = connection.prepare_cached(
        "SELECT seq, id, COALESCE(session_id, ''), machine, hook, tool, ts FROM events
         WHERE seq > :after AND hook IN ('PreToolUse', 'UserPromptSubmit')
         ORDER BY seq LIMIT 1000",
    )?;
    let rows = statement.query_map(named_params! {":after": after}, |row| {
        Ok(GuardedEvent {
            seq: row.get(0)?,
            id: row.get(1)?,
            session_id: row.get(2)?,
            machine: row.get(3)?,
            hook: row.get(4)?,
            tool: row.get(5)?,
            ts: row.get(6)?,
        })
    })?;
    rows.collect()
}

/// The budget refusals of one session's events, by seq, for the timeline.
pub(crate) fn refused_events(
    connection: &Connection,
    session_id: &str,
) -> rusqlite::Result<Vec<(i64, String)>> {
    let mut statement = connection.prepare_cached(
        "SELECT e.seq, COALESCE(d.reason, '') FROM decisions AS d JOIN events AS e ON e.id = d.event_id
         WHERE d.kind = 'budget' AND d.session_id = :session_id ORDER BY e.seq",
    )?;
    let rows = statement.query_map(named_params! {":session_id": session_id}, |row| {
        Ok((row.get(0)?, row.get(1)?))
    })?;
    rows.collect()
}

/// One grant an approver made (issue 19, "Override").
#[derive(Debug, Clone)]
pub(crate) struct Grant<'a> {
    /// The budget's name.
    pub(crate) budget: &'a str,
    /// The instance it raises: a session id, a machine, or "".
    pub(crate) subject: &'a str,
    /// The window it applies to (0 for a session's lifetime).
    pub(crate) window_start: i64,
    /// How much more may be spent, USD.
    pub(crate) usd: f64,
    /// The approver's token name.
    pub(crate) granted_by: &'a str,
    /// Why, as typed.
    pub(crate) reason: &'a str,
    /// Now (unix ms).
    pub(crate) now: i64,
}

/// The connection grants are recorded with: rare writes from HTTP threads,
/// beside the writer's connection, like the decisions' store.
pub(crate) struct GrantStore {
    /// Its own read-write connection (WAL, busy timeout).
    connection: Connection,
}

impl GrantStore {
    /// Opens the database (created and migrated by the writer's `open`).
    pub(crate) fn open(path: &std::path::Path) -> Result<GrantStore, String> {
        Ok(GrantStore {
            connection: crate::store::open::open(path)?,
        })
    }

    /// Records that the hook of `event` refused it for `budget`, in the audit
    /// trail (`decisions`, kind `budget`); once per event.
    pub(crate) fn record_refusal(
        &mut self,
        event: &GuardedEvent,
        verdict: &str,
        budget: &str,
        reason: &str,
    ) -> rusqlite::Result<()> {
        self.connection.execute(
            "INSERT OR IGNORE INTO decisions (event_id, kind, session_id, machine, tool, verdict,
                                              reason, decided_by, requested_at, decided_at,
                                              expires_at, delivered)
             VALUES (:event_id, 'budget', :session_id, :machine, :tool, :verdict, :reason,
                     :decided_by, :ts, :ts, :ts, 'hook')",
            named_params! {
                ":event_id": event.id,
                ":session_id": event.session_id,
                ":machine": event.machine,
                ":tool": event.tool.as_deref().unwrap_or(&event.hook),
                ":verdict": verdict,
                ":reason": reason,
                ":decided_by": format!("budget:{budget}"),
                ":ts": event.ts,
            },
        )?;
        Ok(())
    }

    /// Records a grant and its line in the audit trail (`decisions`, kind
    /// `budget_grant`), in one transaction.
    pub(crate) fn record(&mut self, grant: &Grant) -> rusqlite::Result<()> {
        let transaction = self.connection.transaction()?;
        transaction.execute(
            "INSERT INTO budget_grants (budget, subject, window_start, usd, granted_by, reason, granted_at)
             VALUES (:budget, :subject, :window_start, :usd, :granted_by, :reason, :now)",
            named_params! {
                ":budget": grant.budget,
                ":subject": grant.subject,
                ":window_start": grant.window_start,
                ":usd": grant.usd,
                ":granted_by": grant.granted_by,
                ":reason": grant.reason,
                ":now": grant.now,
            },
        )?;
        let id = transaction.last_insert_rowid();
        transaction.execute(
            "INSERT INTO decisions (event_id, kind, session_id, tool, verdict, reason, decided_by,
                                    requested_at, decided_at, expires_at, delivered)
             VALUES (:event_id, 'budget_grant', :session_id, :budget, :verdict, :reason,
                     :granted_by, :now, :now, :now, NULL)",
            named_params! {
                ":event_id": format!("grant:{id}"),
                ":session_id": (!grant.subject.is_empty()).then_some(grant.subject),
                ":budget": grant.budget,
                ":verdict": format!("+{:.2} USD", grant.usd),
                ":reason": grant.reason,
                ":granted_by": grant.granted_by,
                ":now": grant.now,
            },
        )?;
        transaction.commit()
    }
}
