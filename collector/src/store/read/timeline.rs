//! What a session's timeline is built from (`crate::timeline`): the
//! session's bounds, its subagents and its events in seq order.

use hooktrail_shared::envelope::HookEvent;
use rusqlite::{Connection, OptionalExtension};

use crate::timeline::{AgentLane, Happening, HookFacts, TimelineEvent};

/// When a session began, last had an event, and ended (if it did).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionBounds {
    pub(crate) first_ts: i64,
    pub(crate) last_ts: i64,
    pub(crate) ended_ts: Option<i64>,
}

/// The bounds of `session_id`; `None` when there is no such session.
pub(crate) fn session_bounds(
    connection: &Connection,
    session_id: &str,
) -> rusqlite::Result<Option<SessionBounds>> {
    connection
        .prepare_cached("SELECT first_ts, last_ts, ended_ts FROM sessions WHERE session_id = ?1")?
        .query_row([session_id], |row| {
            Ok(SessionBounds {
                first_ts: row.get(0)?,
                last_ts: row.get(1)?,
                ended_ts: row.get(2)?,
            })
        })
        .optional()
}

/// The session's subagents, by start: one lane each.
pub(crate) fn agent_lanes(
    connection: &Connection,
    session_id: &str,
) -> rusqlite::Result<Vec<AgentLane>> {
    let mut statement = connection.prepare_cached(
        "SELECT agent_id, agent_type, started_ts, stopped_ts, state FROM agents \
         WHERE session_id = ?1 ORDER BY started_ts, agent_id",
    )?;
    let rows = statement.query_map([session_id], |row| {
        Ok(AgentLane {
            agent_id: row.get(0)?,
            agent_type: row.get(1)?,
            started_ts: row.get(2)?,
            stopped_ts: row.get(3)?,
            state: row.get(4)?,
        })
    })?;
    rows.collect()
}

/// Calls `each` with every event of `session_id` in seq order. One pass
/// through the (session_id, seq) index, reading a payload field only for
/// prompts and failures, so a 5,000-event session reads in a few
/// milliseconds.
pub(crate) fn for_each_event(
    connection: &Connection,
    session_id: &str,
    mut each: impl FnMut(TimelineEvent),
) -> rusqlite::Result<()> {
    let mut statement = connection.prepare_cached(
        "SELECT seq, ts, agent_id, hook, tool, tool_use_id, \
         CASE hook WHEN 'UserPromptSubmit' THEN substr(json_extract(payload, '$.prompt'), 1, 400) \
                   WHEN 'StopFailure' THEN substr(json_extract(payload, '$.error'), 1, 400) \
                   WHEN 'PostToolUseFailure' THEN substr(json_extract(payload, '$.error'), 1, 400) END \
         FROM events WHERE session_id = ?1 ORDER BY seq",
    )?;
    let mut rows = statement.query([session_id])?;
    while let Some(row) = rows.next()? {
        each(TimelineEvent {
            seq: row.get(0)?,
            ts: row.get(1)?,
            agent_id: row.get(2)?,
            what: Happening::Hook(HookFacts {
                hook: HookEvent::from_name(row.get_ref(3)?.as_str()?),
                tool: row.get(4)?,
                tool_use_id: row.get(5)?,
                // A prompt or error that is not text has no marker text.
                text: row.get(6).unwrap_or(None),
            }),
        });
    }
    Ok(())
}
