//! Sessions, their agents, and the rows of a session page's lists (tool
//! calls, prompts), which `super::activity` reads in one walk.

use rusqlite::{Connection, OptionalExtension};

use crate::query::SessionSort;

use super::{lenient_count, lenient_dollars, text};

/// The columns [`SessionRow::read`] reads, in order.
const SESSION_COLUMNS: &str =
    "session_id, machine, cwd, first_ts, last_ts, ended_ts, end_reason, event_count, transcript_path, last_seq, \
     agent_count, state, state_since, state_detail, current_tool, model, title, permission_mode, \
     CASE WHEN usage_responses > unpriced_responses THEN total_cost_usd END, total_tokens, \
     unpriced_responses, usage_responses, \
     (SELECT COUNT(*) FROM transcript_ids AS t WHERE t.session_id = sessions.session_id AND t.kind = 'tool_use' \
        AND NOT EXISTS (SELECT 1 FROM events AS e WHERE e.tool_use_id = t.item_id AND e.session_id = t.session_id)), \
     (SELECT COUNT(*) FROM transcript_ids AS t WHERE t.session_id = sessions.session_id AND t.kind = 'agent' \
        AND NOT EXISTS (SELECT 1 FROM agents AS a WHERE a.agent_id = t.item_id AND a.session_id = t.session_id \
            AND a.started_ts IS NOT NULL)), \
     EXISTS (SELECT 1 FROM events AS e WHERE e.session_id = sessions.session_id AND e.config_error = 1), \
     CASE WHEN EXISTS (SELECT 1 FROM otel_events AS o INDEXED BY otel_events_session \
                        WHERE o.session_id = sessions.session_id) THEN \
       (SELECT COALESCE(SUM(u.origin = 'otel'), 0) FROM usage AS u INDEXED BY usage_session_totals \
         WHERE u.session_id = sessions.session_id) END, \
     CASE WHEN EXISTS (SELECT 1 FROM otel_events AS o INDEXED BY otel_events_session \
                        WHERE o.session_id = sessions.session_id) THEN \
       (SELECT COALESCE(SUM(u.origin != 'otel' AND u.request_id IS NOT NULL AND u.otel_cost_usd IS NULL), 0) \
         FROM usage AS u INDEXED BY usage_session_totals WHERE u.session_id = sessions.session_id) END";

/// One `sessions` row with its completeness counts. Its text borrows the
/// row being read, so the sessions list writes its JSON without copying a
/// string (that list is benchmarked).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionRow<'r> {
    pub(crate) session_id: &'r str,
    pub(crate) machine: &'r str,
    pub(crate) cwd: Option<&'r str>,
    pub(crate) first_ts: i64,
    pub(crate) last_ts: i64,
    pub(crate) ended_ts: Option<i64>,
    pub(crate) end_reason: Option<&'r str>,
    pub(crate) event_count: i64,
    pub(crate) transcript_path: Option<&'r str>,
    pub(crate) last_seq: Option<i64>,
    pub(crate) agent_count: i64,
    /// The state the writer stored (before quiet sessions are told apart).
    pub(crate) state: Option<&'r str>,
    pub(crate) state_since: Option<i64>,
    pub(crate) state_detail: Option<&'r str>,
    pub(crate) current_tool: Option<&'r str>,
    pub(crate) model: Option<&'r str>,
    pub(crate) title: Option<&'r str>,
    pub(crate) permission_mode: Option<&'r str>,
    /// The total cost, when at least one response had a price.
    pub(crate) cost_usd: Option<f64>,
    pub(crate) tokens: i64,
    pub(crate) unpriced_responses: i64,
    pub(crate) usage_responses: i64,
    /// Tool calls the transcript shows that no hook reported.
    pub(crate) missing_tool_events: i64,
    /// Subagents the transcript shows whose start no hook reported.
    pub(crate) missing_subagent_starts: i64,
    /// Whether some of its events came from an emitter with a config error.
    pub(crate) config_error: bool,
    /// For a session that exported OpenTelemetry (issue 22; `None` for one
    /// that did not): API requests Claude Code reported that no transcript
    /// showed (usage rows of origin `otel`)...
    pub(crate) otel_only_requests: Option<i64>,
    /// ...and transcript responses with a request id no `api_request`
    /// matched.
    pub(crate) transcript_only_requests: Option<i64>,
}

impl<'r> SessionRow<'r> {
    fn read(row: &'r rusqlite::Row<'_>) -> rusqlite::Result<SessionRow<'r>> {
        Ok(SessionRow {
            session_id: text(row, 0)?.unwrap_or_default(),
            machine: text(row, 1)?.unwrap_or_default(),
            cwd: text(row, 2)?,
            first_ts: row.get(3)?,
            last_ts: row.get(4)?,
            ended_ts: row.get(5)?,
            end_reason: text(row, 6)?,
            event_count: row.get(7)?,
            transcript_path: text(row, 8)?,
            last_seq: row.get(9)?,
            agent_count: row.get(10)?,
            state: row.get_ref(11)?.as_str_or_null()?,
            state_since: row.get(12)?,
            state_detail: text(row, 13)?,
            current_tool: text(row, 14)?,
            model: text(row, 15)?,
            title: text(row, 16)?,
            permission_mode: text(row, 17)?,
            cost_usd: lenient_dollars(row, 18)?,
            tokens: lenient_count(row, 19)?,
            unpriced_responses: lenient_count(row, 20)?,
            usage_responses: lenient_count(row, 21)?,
            missing_tool_events: row.get(22)?,
            missing_subagent_starts: row.get(23)?,
            config_error: row.get(24)?,
            otel_only_requests: row.get(25)?,
            transcript_only_requests: row.get(26)?,
        })
    }
}

/// What the sessions list asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionsQuery<'a> {
    pub(crate) machine: Option<&'a str>,
    pub(crate) sort: SessionSort,
    pub(crate) limit: usize,
}

/// Calls `each` with every session `query` selects, waiting sessions first
/// in every order: they are what a person watching many sessions needs to
/// act on. Cost, tokens and agents are running totals on the row
/// (migration 6).
pub(crate) fn for_each_session(
    connection: &Connection,
    query: SessionsQuery<'_>,
    mut each: impl FnMut(SessionRow<'_>),
) -> rusqlite::Result<()> {
    let order = match query.sort {
        SessionSort::Recent => "last_ts DESC",
        SessionSort::Duration => "COALESCE(ended_ts, last_ts) - first_ts DESC",
        SessionSort::Cost => {
            "CASE WHEN usage_responses > unpriced_responses THEN total_cost_usd END DESC NULLS LAST, last_ts DESC"
        }
    };
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE (?1 IS NULL OR machine = ?1) \
         ORDER BY state = 'waiting' DESC, {order} LIMIT ?2"
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let mut rows = statement.query(rusqlite::params![query.machine, query.limit as i64])?;
    while let Some(row) = rows.next()? {
        each(SessionRow::read(row)?);
    }
    Ok(())
}

/// How many sessions are stored.
pub(crate) fn session_count(connection: &Connection) -> rusqlite::Result<i64> {
    connection.query_row("SELECT COUNT(*) FROM sessions", [], |row| row.get(0))
}

/// One session, given to `each` while its row is read; `None` when there
/// is no such session.
pub(crate) fn with_session<T>(
    connection: &Connection,
    session_id: &str,
    each: impl FnOnce(SessionRow<'_>) -> T,
) -> rusqlite::Result<Option<T>> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = ?1");
    connection
        .prepare_cached(&sql)?
        .query_row([session_id], |row| Ok(each(SessionRow::read(row)?)))
        .optional()
}

/// One subagent of a session, with the agent whose tool call started it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AgentRow {
    pub(crate) agent_id: String,
    pub(crate) agent_type: Option<String>,
    pub(crate) parent_tool_use_id: Option<String>,
    pub(crate) started_ts: Option<i64>,
    pub(crate) stopped_ts: Option<i64>,
    pub(crate) event_count: i64,
    pub(crate) transcript_path: Option<String>,
    /// The agent of the `PreToolUse` that started it (`None`: the main one).
    pub(crate) parent_agent_id: Option<String>,
    pub(crate) state: Option<String>,
    pub(crate) state_since: Option<i64>,
    pub(crate) state_detail: Option<String>,
    pub(crate) current_tool: Option<String>,
    pub(crate) prompt_id: Option<String>,
    pub(crate) cost_usd: Option<f64>,
    pub(crate) tokens: i64,
}

/// The subagents of a session, by start.
pub(crate) fn agents(connection: &Connection, session_id: &str) -> rusqlite::Result<Vec<AgentRow>> {
    let mut statement = connection.prepare_cached(
        "SELECT a.agent_id, a.agent_type, a.parent_tool_use_id, a.started_ts, a.stopped_ts, a.event_count, \
         a.transcript_path, \
         (SELECT e.agent_id FROM events AS e INDEXED BY events_tool_use_id \
            WHERE e.tool_use_id = a.parent_tool_use_id AND e.session_id = a.session_id AND e.hook = 'PreToolUse' LIMIT 1), \
         a.state, a.state_since, a.state_detail, a.current_tool, a.prompt_id, \
         (SELECT SUM(cost_usd) FROM usage INDEXED BY usage_agent \
            WHERE usage.agent_id = a.agent_id AND usage.session_id = a.session_id), \
         (SELECT CAST(TOTAL(input_tokens + output_tokens + cache_write_5m_tokens + cache_write_1h_tokens + cache_read_tokens) AS INTEGER) \
            FROM usage INDEXED BY usage_agent WHERE usage.agent_id = a.agent_id AND usage.session_id = a.session_id) \
         FROM agents AS a WHERE a.session_id = ?1 ORDER BY a.started_ts, a.agent_id",
    )?;
    let rows = statement.query_map([session_id], |row| {
        Ok(AgentRow {
            agent_id: row.get(0)?,
            agent_type: row.get(1)?,
            parent_tool_use_id: row.get(2)?,
            started_ts: row.get(3)?,
            stopped_ts: row.get(4)?,
            event_count: row.get(5)?,
            transcript_path: row.get(6)?,
            parent_agent_id: row.get(7)?,
            state: row.get(8)?,
            state_since: row.get(9)?,
            state_detail: row.get(10)?,
            current_tool: row.get(11)?,
            prompt_id: row.get(12)?,
            cost_usd: row.get(13)?,
            tokens: row.get::<_, Option<i64>>(14)?.unwrap_or(0),
        })
    })?;
    rows.collect()
}

/// A stored error as it came: text, or a number.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StoredError {
    Text(String),
    Integer(i64),
    Real(f64),
}

/// The outcome of a tool call, from the `tool_calls` view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallOutcome {
    Ok,
    Failed,
    Pending,
}

impl CallOutcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Failed => "failed",
            CallOutcome::Pending => "pending",
        }
    }
}

/// One call of the `tool_calls` view (read by `super::activity`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolCallRow {
    /// Its `PreToolUse`'s seq.
    pub(crate) seq: i64,
    pub(crate) agent_id: Option<String>,
    pub(crate) tool: Option<String>,
    pub(crate) tool_use_id: Option<String>,
    pub(crate) started_ts: i64,
    pub(crate) finished_ts: Option<i64>,
    /// The hook's `duration_ms`, else the times' difference.
    pub(crate) duration_ms: Option<f64>,
    pub(crate) outcome: CallOutcome,
    pub(crate) error: Option<StoredError>,
}

/// One prompt of a session and what it led to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PromptRow {
    pub(crate) prompt_id: String,
    pub(crate) prompt: Option<String>,
    pub(crate) started_ts: i64,
    pub(crate) ended_ts: Option<i64>,
    /// The hook that ended it, as stored (`Stop`, `StopFailure`,
    /// `SessionEnd`); `None` while it runs.
    pub(crate) ended_by: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) tool_calls: i64,
    pub(crate) tool_failures: i64,
    pub(crate) cost_usd: Option<f64>,
    pub(crate) tokens: i64,
}
