//! The database-backed routes of the JSON API (DESIGN §7): `/api/events`,
//! `/api/sessions`, `/api/sessions/{id}`, `/api/sessions/{id}/timeline`
//! and `/api/stats`, over a read-only
//! SQLite connection owned by the calling HTTP thread.
//!
//! Every read runs in one deferred transaction, so a page is one consistent
//! snapshot; in WAL mode readers never hold up the writer. The page of
//! events is read by [`crate::store::read`].

use std::fmt::Write as _;

use hooktrail_shared::envelope::now_millis;
use rusqlite::{Connection, OptionalExtension};
use serde_json::{json, Value};

use crate::query::{self, SessionSort};
use crate::serve::gate::ApiResponse;
use crate::serve::json::{push_event_list, push_json_string, ObjectWriter};
use crate::state::{shown_state, QuietLimits, GONE_QUIET};
use crate::store::read::{max_seq, read_events};

/// A session with no event for this long is shown as idle, not active.
pub(crate) const ACTIVE_WINDOW_MS: i64 = 10 * 60 * 1000;

fn events_route(
    connection: &mut Connection,
    query_string: &str,
) -> Result<ApiResponse, rusqlite::Error> {
    let request = match query::parse_events_query(query_string) {
        Ok(request) => request,
        Err(error) => return Ok(ApiResponse::bad_parameter(&error)),
    };
    let transaction = connection.transaction()?;
    let page = read_events(&transaction, &request)?;
    let last_seq = max_seq(&transaction)?;
    // A search answers for what is indexed: say how far that is (issue 21).
    let indexed_seq = match request.filter.text {
        Some(_) => Some(crate::store::indexer::indexed_seq(&transaction)?),
        None => None,
    };
    transaction.finish()?;
    let mut body = String::with_capacity(page.events.len() * 1024 + 64);
    body.push_str("{\"events\":[");
    push_event_list(&mut body, &page.events);
    let _ = write!(
        body,
        "],\"next\":{},\"more\":{},\"last_seq\":{}",
        page.next, page.more, last_seq
    );
    if let Some(indexed_seq) = indexed_seq {
        let _ = write!(
            body,
            ",\"search_index\":{{\"indexed_seq\":{indexed_seq},\"behind\":{}}}",
            (last_seq - indexed_seq).max(0)
        );
    }
    body.push('}');
    Ok(ApiResponse::json_text(200, body))
}

fn session_status(ended_ts: Option<i64>, last_ts: i64, now: i64) -> &'static str {
    if ended_ts.is_some() {
        "ended"
    } else if now - last_ts <= ACTIVE_WINDOW_MS {
        "active"
    } else {
        "idle"
    }
}

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
     EXISTS (SELECT 1 FROM events AS e WHERE e.session_id = sessions.session_id AND e.config_error = 1)";

/// A session without an event for this long that never sent `SessionEnd`
/// counts as ended without it, whatever its state: Claude Code sessions are
/// rarely left open a whole day.
pub(crate) const SESSION_END_OVERDUE_MS: i64 = 24 * 60 * 60 * 1000;

/// The completeness check (DESIGN §7): what the transcript showed (tool
/// calls, subagents) that no hook reported, and whether a `SessionEnd` is
/// overdue: the session went quiet (its process most likely died) or has
/// had no event for [`SESSION_END_OVERDUE_MS`].
struct Completeness {
    missing_tool_events: i64,
    missing_subagent_starts: i64,
    session_end_missing: bool,
}

impl Completeness {
    fn new(
        missing_tool_events: i64,
        missing_subagent_starts: i64,
        ended: bool,
        shown_state: &str,
        last_ts: i64,
        now: i64,
    ) -> Completeness {
        Completeness {
            missing_tool_events,
            missing_subagent_starts,
            session_end_missing: !ended
                && (shown_state == GONE_QUIET || now - last_ts > SESSION_END_OVERDUE_MS),
        }
    }

    fn push_json(&self, out: &mut String) {
        let mut object = ObjectWriter::open(out);
        object
            .bool(
                "complete",
                self.missing_tool_events == 0
                    && self.missing_subagent_starts == 0
                    && !self.session_end_missing,
            )
            .int("missing_tool_events", self.missing_tool_events)
            .int("missing_subagent_starts", self.missing_subagent_starts)
            .bool("session_end_missing", self.session_end_missing);
        object.close();
    }
}

/// A count column read leniently: an integer, or a real (a running total
/// that overflowed on rows stored before token counts were bounded),
/// saturated to an integer; NULL or text is 0. One odd row must never
/// fail a whole route.
fn lenient_count(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<i64> {
    Ok(match row.get_ref(index)? {
        rusqlite::types::ValueRef::Integer(count) => count,
        rusqlite::types::ValueRef::Real(count) => count as i64,
        _ => 0,
    })
}

/// A dollar column read leniently: a number, or nothing (NULL, or a value
/// that is not a finite number).
fn lenient_dollars(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Option<f64>> {
    Ok(match row.get_ref(index)? {
        rusqlite::types::ValueRef::Integer(dollars) => Some(dollars as f64),
        rusqlite::types::ValueRef::Real(dollars) if dollars.is_finite() => Some(dollars),
        _ => None,
    })
}

/// Appends one row of `SESSION_COLUMNS` as the session's JSON object.
fn push_session_row(
    out: &mut String,
    row: &rusqlite::Row<'_>,
    now: i64,
    quiet_limits: QuietLimits,
) -> rusqlite::Result<()> {
    let first_ts: i64 = row.get(3)?;
    let last_ts: i64 = row.get(4)?;
    let ended_ts: Option<i64> = row.get(5)?;
    let status = session_status(ended_ts, last_ts, now);
    let stored_state: Option<String> = row.get(11)?;
    let state = shown_state(stored_state.as_deref(), last_ts, now, quiet_limits);
    let duration_end = match status {
        "active" => now.max(last_ts),
        _ => ended_ts.unwrap_or(last_ts).max(last_ts),
    };
    let completeness = Completeness::new(
        row.get(22)?,
        row.get(23)?,
        ended_ts.is_some() || stored_state.as_deref() == Some("ended"),
        state,
        last_ts,
        now,
    );
    let text = |index: usize| {
        row.get_ref(index)
            .map(|value| value.as_str_or_null().ok().flatten())
    };
    let mut object = ObjectWriter::open(out);
    object.str("session_id", text(0)?.unwrap_or_default());
    object.str("machine", text(1)?.unwrap_or_default());
    object.opt_str("cwd", text(2)?);
    object.int("first_ts", first_ts);
    object.int("last_ts", last_ts);
    object.opt_int("ended_ts", ended_ts);
    object.opt_str("end_reason", text(6)?);
    object.int("event_count", row.get(7)?);
    object.opt_str("transcript_path", text(8)?);
    object.opt_int("last_seq", row.get(9)?);
    object.int("agent_count", row.get(10)?);
    object.str("status", status);
    object.int("duration_ms", duration_end - first_ts);
    object.str("state", state);
    if state == GONE_QUIET {
        object.int("state_since", last_ts);
    } else {
        object.opt_int("state_since", row.get(12)?);
    }
    object.opt_str("state_detail", text(13)?);
    if state == "working" || state == "waiting" {
        object.opt_str("current_tool", text(14)?);
    } else {
        object.raw("current_tool", "null");
    }
    object.opt_str("model", text(15)?);
    object.opt_str("title", text(16)?);
    object.opt_str("permission_mode", text(17)?);
    object.opt_float("cost_usd", lenient_dollars(row, 18)?);
    object.int("tokens", lenient_count(row, 19)?);
    object.int("unpriced_responses", lenient_count(row, 20)?);
    object.int("usage_responses", lenient_count(row, 21)?);
    completeness.push_json(object.nested("completeness"));
    object.bool("config_error", row.get(24)?);
    object.close();
    Ok(())
}

/// One session row as a `Value`, for the routes that build their answer
/// with `json!`.
fn session_row_value(
    row: &rusqlite::Row<'_>,
    now: i64,
    quiet_limits: QuietLimits,
) -> rusqlite::Result<Value> {
    let mut text = String::with_capacity(1024);
    push_session_row(&mut text, row, now, quiet_limits)?;
    serde_json::from_str(&text)
        .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))
}

fn sessions_route(
    connection: &mut Connection,
    query_string: &str,
    quiet_limits: QuietLimits,
) -> Result<ApiResponse, rusqlite::Error> {
    let request = match query::parse_sessions_query(query_string) {
        Ok(request) => request,
        Err(error) => return Ok(ApiResponse::bad_parameter(&error)),
    };
    let now = now_millis();
    let transaction = connection.transaction()?;
    let mut body = String::with_capacity(request.limit * 1024 + 256);
    body.push_str("{\"sessions\":[");
    let mut machines: Vec<String> = Vec::new();
    {
        // Waiting sessions first in every order: they are what a person
        // watching many sessions needs to act on. Cost, tokens and agents
        // are running totals on the row (migration 6).
        let order = match request.sort {
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
        let mut statement = transaction.prepare_cached(&sql)?;
        let mut rows = statement.query(rusqlite::params![request.machine, request.limit as i64])?;
        let mut first = true;
        while let Some(row) = rows.next()? {
            if !first {
                body.push(',');
            }
            first = false;
            push_session_row(&mut body, row, now, quiet_limits)?;
            let machine = row.get_ref(1)?.as_str().unwrap_or_default();
            if !machines.iter().any(|known| known == machine) {
                machines.push(machine.to_owned());
            }
        }
    }
    let total: i64 =
        transaction.query_row("SELECT COUNT(*) FROM sessions", [], |row| row.get(0))?;
    let last_seq = max_seq(&transaction)?;
    transaction.finish()?;
    machines.sort();
    body.push_str("],\"machines\":");
    body.push_str(&serde_json::to_string(&machines).unwrap_or_else(|_| "[]".to_owned()));
    let _ = write!(
        body,
        ",\"total\":{total},\"now\":{now},\"last_seq\":{last_seq},\"active_window_ms\":{ACTIVE_WINDOW_MS},\"quiet_after_ms\":{},\"waiting_quiet_after_ms\":{}}}",
        quiet_limits.working_ms,
        quiet_limits.waiting_ms
    );
    Ok(ApiResponse::json_text(200, body))
}

fn tool_call_json(row: &rusqlite::Row<'_>) -> rusqlite::Result<Value> {
    let error: Option<rusqlite::types::Value> = row.get(8)?;
    let error = match error {
        Some(rusqlite::types::Value::Text(text)) => Value::String(text),
        Some(rusqlite::types::Value::Integer(number)) => json!(number),
        Some(rusqlite::types::Value::Real(number)) => json!(number),
        _ => Value::Null,
    };
    Ok(json!({
        "seq": row.get::<_, i64>(0)?,
        "agent_id": row.get::<_, Option<String>>(1)?,
        "tool": row.get::<_, Option<String>>(2)?,
        "tool_use_id": row.get::<_, Option<String>>(3)?,
        "started_ts": row.get::<_, i64>(4)?,
        "finished_ts": row.get::<_, Option<i64>>(5)?,
        "duration_ms": row.get::<_, Option<f64>>(6)?,
        "outcome": row.get::<_, String>(7)?,
        "error": error,
    }))
}

const TOOL_CALL_COLUMNS: &str =
    "seq, agent_id, tool, tool_use_id, started_ts, finished_ts, duration_ms, outcome, error";

/// The most tool calls (and failures) one session page lists.
const TOOL_CALLS_LISTED: usize = 500;

/// The tool calls of a session page, from one read of the `tool_calls`
/// view: reading it once per list cost three joins of every call of a long
/// session (issue 16 item 7).
struct SessionToolCalls {
    /// The slowest calls first (calls without a duration last), then by seq.
    slowest: Vec<Value>,
    /// The failed calls in seq order.
    failures: Vec<Value>,
    /// Per tool: calls, failures, pending calls, mean and longest duration,
    /// the slowest tool first.
    tools: Vec<Value>,
}

/// One call of the `tool_calls` view, as the session page lists it.
struct ToolCallRow {
    /// Its `PreToolUse`'s seq: the order of the failures list, and the
    /// tie-break of the slowest list.
    seq: i64,
    /// The tool's name, for the per-tool figures.
    tool: Option<String>,
    /// The call's duration (the hook's `duration_ms`, else the times'
    /// difference), for the orders and the per-tool figures.
    duration_ms: Option<f64>,
    /// `ok`, `failed` or `pending`.
    outcome: String,
    /// The call as the page shows it.
    json: Value,
}

/// One tool's figures on a session page.
#[derive(Default)]
struct ToolFigures {
    /// The tool's name.
    tool: Option<String>,
    /// Its calls.
    calls: i64,
    /// Its failed calls.
    failed: i64,
    /// Its calls still running (or whose outcome never came).
    pending: i64,
    /// The sum of its known durations, for the mean.
    total_ms: f64,
    /// How many of its calls have a duration, for the mean.
    timed: i64,
    /// Its longest call: the order of the list.
    longest_ms: Option<f64>,
}

impl ToolFigures {
    fn add(&mut self, call: &ToolCallRow) {
        self.calls += 1;
        self.failed += i64::from(call.outcome == "failed");
        self.pending += i64::from(call.outcome == "pending");
        if let Some(ms) = call.duration_ms {
            self.total_ms += ms;
            self.timed += 1;
            self.longest_ms = Some(self.longest_ms.map_or(ms, |known| known.max(ms)));
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "tool": self.tool,
            "calls": self.calls,
            "failed": self.failed,
            "pending": self.pending,
            "avg_ms": (self.timed > 0).then(|| self.total_ms / self.timed as f64),
            "max_ms": self.longest_ms,
        })
    }
}

/// Reads every tool call of `session_id` once and builds the three lists.
fn session_tool_calls(
    transaction: &rusqlite::Transaction<'_>,
    session_id: &str,
) -> rusqlite::Result<SessionToolCalls> {
    let sql =
        format!("SELECT {TOOL_CALL_COLUMNS} FROM tool_calls WHERE session_id = ?1 ORDER BY seq");
    let mut statement = transaction.prepare_cached(&sql)?;
    let calls: Vec<ToolCallRow> = statement
        .query_map([session_id], |row| {
            let duration_ms = match row.get_ref(6)? {
                rusqlite::types::ValueRef::Integer(ms) => Some(ms as f64),
                rusqlite::types::ValueRef::Real(ms) => Some(ms),
                _ => None,
            };
            Ok(ToolCallRow {
                seq: row.get(0)?,
                tool: row.get(2)?,
                duration_ms,
                outcome: row.get(7)?,
                json: tool_call_json(row)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let failures = calls
        .iter()
        .filter(|call| call.outcome == "failed")
        .take(TOOL_CALLS_LISTED)
        .map(|call| call.json.clone())
        .collect();
    let mut tools: Vec<ToolFigures> = Vec::new();
    for call in &calls {
        let index = match tools.iter().position(|known| known.tool == call.tool) {
            Some(index) => index,
            None => {
                tools.push(ToolFigures {
                    tool: call.tool.clone(),
                    ..ToolFigures::default()
                });
                tools.len() - 1
            }
        };
        tools[index].add(call);
    }
    // The slowest tool first, tools never timed last.
    tools.sort_by(|a, b| {
        b.longest_ms
            .partial_cmp(&a.longest_ms)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let tools = tools.iter().map(ToolFigures::to_json).collect();
    let mut slowest: Vec<&ToolCallRow> = calls.iter().collect();
    slowest.sort_by(|a, b| match (a.duration_ms, b.duration_ms) {
        (Some(a_ms), Some(b_ms)) => b_ms
            .partial_cmp(&a_ms)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.seq.cmp(&b.seq)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.seq.cmp(&b.seq),
    });
    let slowest = slowest
        .into_iter()
        .take(TOOL_CALLS_LISTED)
        .map(|call| call.json.clone())
        .collect();
    Ok(SessionToolCalls {
        slowest,
        failures,
        tools,
    })
}

fn session_route(
    connection: &mut Connection,
    session_id: &str,
    query_string: &str,
    quiet_limits: QuietLimits,
) -> Result<ApiResponse, rusqlite::Error> {
    if let Err(error) = query::parse_pairs(query_string, &[]) {
        return Ok(ApiResponse::bad_parameter(&error));
    }
    let now = now_millis();
    let transaction = connection.transaction()?;
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = ?1");
    let session = transaction
        .prepare_cached(&sql)?
        .query_row([session_id], |row| {
            session_row_value(row, now, quiet_limits)
        })
        .optional()?;
    let Some(session) = session else {
        return Ok(ApiResponse::error(404, "no such session"));
    };
    let mut agents: Vec<Value> = {
        let mut statement = transaction.prepare_cached(
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
            Ok(json!({
                "agent_id": row.get::<_, String>(0)?,
                "agent_type": row.get::<_, Option<String>>(1)?,
                "parent_tool_use_id": row.get::<_, Option<String>>(2)?,
                "started_ts": row.get::<_, Option<i64>>(3)?,
                "stopped_ts": row.get::<_, Option<i64>>(4)?,
                "event_count": row.get::<_, i64>(5)?,
                "transcript_path": row.get::<_, Option<String>>(6)?,
                "parent_agent_id": row.get::<_, Option<String>>(7)?,
                "state": row.get::<_, Option<String>>(8)?,
                "state_since": row.get::<_, Option<i64>>(9)?,
                "state_detail": row.get::<_, Option<String>>(10)?,
                "current_tool": row.get::<_, Option<String>>(11)?,
                "prompt_id": row.get::<_, Option<String>>(12)?,
                "cost_usd": row.get::<_, Option<f64>>(13)?,
                "tokens": row.get::<_, Option<i64>>(14)?.unwrap_or(0),
            }))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    // The tree: each agent lists its children; roots hang off the main agent.
    let ids: Vec<String> = agents
        .iter()
        .map(|a| a["agent_id"].as_str().unwrap_or("").to_owned())
        .collect();
    for agent in agents.iter_mut() {
        let parent = agent["parent_agent_id"].as_str().map(str::to_owned);
        let depth_parent = match parent {
            Some(parent) if ids.contains(&parent) => Value::String(parent),
            _ => Value::Null,
        };
        agent["parent_agent_id"] = depth_parent;
    }
    let SessionToolCalls {
        slowest: tool_calls,
        failures,
        tools,
    } = session_tool_calls(&transaction, session_id)?;
    let hooks: Value = {
        let mut statement = transaction.prepare_cached(
            "SELECT hook, COUNT(*) FROM events WHERE session_id = ?1 GROUP BY hook ORDER BY hook",
        )?;
        let rows = statement.query_map([session_id], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })?;
        let mut map = serde_json::Map::new();
        for row in rows {
            let (hook, count) = row?;
            map.insert(hook, json!(count));
        }
        Value::Object(map)
    };
    let usage = usage_by_model(
        &transaction,
        "WHERE session_id = ?1",
        rusqlite::params![session_id],
    )?;
    let prompts: Vec<Value> = {
        let mut statement = transaction.prepare_cached(
            "SELECT prompt_id, prompt, started_ts, ended_ts, outcome, error, tool_calls, tool_failures, cost_usd, tokens \
             FROM prompts WHERE session_id = ?1 ORDER BY started_ts LIMIT 500",
        )?;
        let rows = statement.query_map([session_id], |row| {
            let started: i64 = row.get(2)?;
            let ended: Option<i64> = row.get(3)?;
            Ok(json!({
                "prompt_id": row.get::<_, String>(0)?,
                "prompt": row.get::<_, Option<String>>(1)?,
                "started_ts": started,
                "ended_ts": ended,
                "duration_ms": ended.map(|ended| ended - started),
                "outcome": match row.get::<_, Option<String>>(4)?.as_deref() {
                    Some("Stop") => "done",
                    Some("StopFailure") => "failed",
                    Some("SessionEnd") => "ended",
                    _ => "running",
                },
                "error": row.get::<_, Option<String>>(5)?,
                "tool_calls": row.get::<_, i64>(6)?,
                "tool_failures": row.get::<_, i64>(7)?,
                "cost_usd": row.get::<_, Option<f64>>(8)?,
                "tokens": lenient_count(row, 9)?,
            }))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    transaction.finish()?;
    Ok(ApiResponse::json(&json!({
        "session": session,
        "usage": usage,
        "prompts": prompts,
        "agents": agents,
        "tool_calls": tool_calls,
        "failures": failures,
        "tools": tools,
        "hooks": hooks,
    })))
}

/// A span of a timeline being built: a tool call, a permission wait or a
/// compaction.
struct OpenSpan {
    /// Index into the lanes.
    lane: usize,
    /// `tool`, `permission` or `compact`.
    kind: &'static str,
    /// The tool's name, or what the wait was for.
    label: Option<String>,
    /// When it started (ms).
    start: i64,
    /// When it ended; `None` while open.
    end: Option<i64>,
    /// `ok`, `failed`, `pending`, `denied` (a budget refused it: tools) or `done`.
    outcome: &'static str,
    /// The event that opened it, for its payload.
    seq: i64,
    /// The event that closed it.
    end_seq: Option<i64>,
}

/// Marks what budgets refused (issue 19): a refused tool call's span ends
/// where it began with outcome `denied`, and a `BudgetRefused` marker with
/// the reason sits at the refused call or prompt.
fn mark_budget_refusals(
    transaction: &rusqlite::Transaction<'_>,
    session_id: &str,
    spans: &mut [OpenSpan],
    markers: &mut Vec<(usize, String, i64, i64, Option<String>)>,
) -> rusqlite::Result<()> {
    for (seq, reason) in crate::store::spend::refused_events(transaction, session_id)? {
        let at = match spans
            .iter_mut()
            .find(|span| span.seq == seq && span.kind == "tool")
        {
            Some(span) => {
                span.outcome = "denied";
                span.end = Some(span.start);
                span.end_seq = Some(seq);
                Some((span.lane, span.start))
            }
            None => markers
                .iter()
                .find(|marker| marker.3 == seq)
                .map(|marker| (marker.0, marker.2)),
        };
        if let Some((lane, ts)) = at {
            markers.push((lane, "BudgetRefused".to_owned(), ts, seq, Some(reason)));
        }
    }
    Ok(())
}

/// The most characters of a prompt a timeline marker carries.
const MARKER_TEXT_CHARS: usize = 120;

/// `/api/sessions/{id}/timeline`: one lane for the main agent and one per
/// subagent; tool calls as spans from their start to their end with their
/// outcome, permission waits (a `PermissionRequest` until the next event of
/// that agent other than a `Notification`) and compactions (`PreCompact`
/// until `PostCompact`) as spans, and prompts, stops and failures as
/// markers. One pass over the session's events through the
/// (session_id, seq) index, reading a payload field only for prompts and
/// failures, so a 5,000-event session answers in a few milliseconds.
fn timeline_route(
    connection: &mut Connection,
    session_id: &str,
    query_string: &str,
) -> Result<ApiResponse, rusqlite::Error> {
    if let Err(error) = query::parse_pairs(query_string, &[]) {
        return Ok(ApiResponse::bad_parameter(&error));
    }
    let now = now_millis();
    let transaction = connection.transaction()?;
    let bounds: Option<(i64, i64, Option<i64>)> = transaction
        .prepare_cached("SELECT first_ts, last_ts, ended_ts FROM sessions WHERE session_id = ?1")?
        .query_row([session_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    let Some((first_ts, last_ts, ended_ts)) = bounds else {
        return Ok(ApiResponse::error(404, "no such session"));
    };
    let mut lanes: Vec<Value> = vec![json!({"agent_id": Value::Null, "label": "main"})];
    let mut lane_of: std::collections::HashMap<String, usize> = Default::default();
    {
        let mut statement = transaction.prepare_cached(
            "SELECT agent_id, agent_type, started_ts, stopped_ts, state FROM agents \
             WHERE session_id = ?1 ORDER BY started_ts, agent_id",
        )?;
        let rows = statement.query_map([session_id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, Option<i64>>(2)?,
                row.get::<_, Option<i64>>(3)?,
                row.get::<_, Option<String>>(4)?,
            ))
        })?;
        for row in rows {
            let (agent_id, agent_type, started, stopped, state) = row?;
            lane_of.insert(agent_id.clone(), lanes.len());
            lanes.push(json!({
                "agent_id": agent_id,
                "label": agent_type.filter(|t| !t.is_empty()).unwrap_or_else(|| "agent".into()),
                "started_ts": started,
                "stopped_ts": stopped,
                "state": state,
            }));
        }
    }
    let mut spans: Vec<OpenSpan> = Vec::new();
    // (lane, hook, ts, seq, text)
    let mut markers: Vec<(usize, String, i64, i64, Option<String>)> = Vec::new();
    let mut open_tools: std::collections::HashMap<String, usize> = Default::default();
    let mut open_permission: std::collections::HashMap<usize, usize> = Default::default();
    let mut open_compact: Option<usize> = None;
    {
        let mut statement = transaction.prepare_cached(
            "SELECT seq, ts, agent_id, hook, tool, tool_use_id, \
             CASE hook WHEN 'UserPromptSubmit' THEN substr(json_extract(payload, '$.prompt'), 1, 400) \
                       WHEN 'StopFailure' THEN substr(json_extract(payload, '$.error'), 1, 400) \
                       WHEN 'PostToolUseFailure' THEN substr(json_extract(payload, '$.error'), 1, 400) END \
             FROM events WHERE session_id = ?1 ORDER BY seq",
        )?;
        let mut rows = statement.query([session_id])?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let ts: i64 = row.get(1)?;
            let agent: Option<String> = row.get(2)?;
            let hook = row.get_ref(3)?.as_str()?;
            let tool: Option<String> = row.get(4)?;
            let tool_use_id: Option<String> = row.get(5)?;
            let text: Option<String> = row.get(6).unwrap_or(None);
            let lane = match &agent {
                None => 0,
                Some(agent) => match lane_of.get(agent) {
                    Some(lane) => *lane,
                    None => {
                        lane_of.insert(agent.clone(), lanes.len());
                        lanes.push(json!({"agent_id": agent, "label": "agent"}));
                        lanes.len() - 1
                    }
                },
            };
            if hook != "Notification" {
                if let Some(index) = open_permission.remove(&lane) {
                    spans[index].end = Some(ts);
                    spans[index].end_seq = Some(seq);
                    spans[index].outcome = "done";
                }
            }
            match hook {
                "PreToolUse" => {
                    spans.push(OpenSpan {
                        lane,
                        kind: "tool",
                        label: tool,
                        start: ts,
                        end: None,
                        outcome: "pending",
                        seq,
                        end_seq: None,
                    });
                    if let Some(id) = tool_use_id {
                        open_tools.insert(id, spans.len() - 1);
                    }
                }
                "PostToolUse" | "PostToolUseFailure" | "PermissionDenied" => {
                    if let Some(index) = tool_use_id.and_then(|id| open_tools.remove(&id)) {
                        let span = &mut spans[index];
                        span.end = Some(ts.max(span.start));
                        span.end_seq = Some(seq);
                        span.outcome = match hook {
                            "PostToolUse" => "ok",
                            _ => "failed",
                        };
                    }
                }
                "PermissionRequest" => {
                    spans.push(OpenSpan {
                        lane,
                        kind: "permission",
                        label: tool,
                        start: ts,
                        end: None,
                        outcome: "pending",
                        seq,
                        end_seq: None,
                    });
                    open_permission.insert(lane, spans.len() - 1);
                }
                "PreCompact" => {
                    spans.push(OpenSpan {
                        lane,
                        kind: "compact",
                        label: None,
                        start: ts,
                        end: None,
                        outcome: "pending",
                        seq,
                        end_seq: None,
                    });
                    open_compact = Some(spans.len() - 1);
                }
                "PostCompact" => {
                    if let Some(index) = open_compact.take() {
                        spans[index].end = Some(ts);
                        spans[index].end_seq = Some(seq);
                        spans[index].outcome = "done";
                    }
                }
                "UserPromptSubmit" | "Stop" | "StopFailure" | "SubagentStart" | "SubagentStop"
                | "SessionStart" | "SessionEnd" => {
                    let label = text.map(|text| {
                        let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
                        match line.char_indices().nth(MARKER_TEXT_CHARS) {
                            Some((cut, _)) => format!("{}…", &line[..cut]),
                            None => line,
                        }
                    });
                    markers.push((lane, hook.to_owned(), ts, seq, label));
                }
                _ => {}
            }
        }
    }
    mark_budget_refusals(&transaction, session_id, &mut spans, &mut markers)?;
    transaction.finish()?;
    // The axis ends at the session's end or last event; a span still open
    // runs on to now.
    let open = spans.iter().any(|span| span.end.is_none());
    let end = match ended_ts {
        Some(ended) => ended.max(last_ts),
        None if open => now.max(last_ts),
        None => last_ts,
    };
    // Compact rows: [lane, kind, label, start, end, outcome, seq, end_seq];
    // an open span's end is null (it runs to the session's end). Written as
    // text: a `Value` per span cost more than the query for 5,000 events.
    let null_or = |value: Option<i64>| value.map_or("null".to_owned(), |value| value.to_string());
    let mut body = String::with_capacity(spans.len() * 64 + markers.len() * 96 + 512);
    body.push_str("{\"session_id\":");
    push_json_string(&mut body, session_id);
    let _ = write!(body, ",\"start\":{first_ts},\"end\":{end},\"lanes\":");
    body.push_str(&Value::Array(lanes).to_string());
    body.push_str(
        ",\"span_columns\":[\"lane\",\"kind\",\"label\",\"start\",\"end\",\"outcome\",\"seq\",\"end_seq\"],\"spans\":[",
    );
    for (index, span) in spans.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        let _ = write!(body, "[{},\"{}\",", span.lane, span.kind);
        match &span.label {
            Some(label) => push_json_string(&mut body, label),
            None => body.push_str("null"),
        }
        let _ = write!(
            body,
            ",{},{},\"{}\",{},{}]",
            span.start,
            null_or(span.end),
            span.outcome,
            span.seq,
            null_or(span.end_seq)
        );
    }
    body.push_str("],\"marker_columns\":[\"lane\",\"hook\",\"ts\",\"seq\",\"text\"],\"markers\":[");
    for (index, (lane, hook, ts, seq, text)) in markers.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        let _ = write!(body, "[{lane},");
        push_json_string(&mut body, hook);
        let _ = write!(body, ",{ts},{seq},");
        match text {
            Some(text) => push_json_string(&mut body, text),
            None => body.push_str("null"),
        }
        body.push(']');
    }
    body.push_str("]}");
    Ok(ApiResponse::json_text(200, body))
}

/// Token and cost totals per model of the usage rows `filter` selects
/// (a `WHERE` clause over `usage`).
fn usage_by_model(
    transaction: &rusqlite::Transaction<'_>,
    filter: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<Value>> {
    let sql = format!(
        "SELECT model, CAST(TOTAL(input_tokens) AS INTEGER), CAST(TOTAL(output_tokens) AS INTEGER), \
         CAST(TOTAL(cache_write_5m_tokens) AS INTEGER), CAST(TOTAL(cache_write_1h_tokens) AS INTEGER), \
         CAST(TOTAL(cache_read_tokens) AS INTEGER), CAST(TOTAL(web_search_requests) AS INTEGER), SUM(cost_usd), \
         COUNT(*), SUM(cost_usd IS NULL) \
         FROM usage {filter} GROUP BY model ORDER BY SUM(cost_usd) DESC, model"
    );
    let mut statement = transaction.prepare_cached(&sql)?;
    let rows = statement.query_map(params, |row| {
        let unpriced: i64 = row.get(9)?;
        Ok(json!({
            "model": row.get::<_, String>(0)?,
            "input_tokens": row.get::<_, i64>(1)?,
            "output_tokens": row.get::<_, i64>(2)?,
            "cache_write_5m_tokens": row.get::<_, i64>(3)?,
            "cache_write_1h_tokens": row.get::<_, i64>(4)?,
            "cache_read_tokens": row.get::<_, i64>(5)?,
            "web_search_requests": row.get::<_, i64>(6)?,
            // A model without a price shows as unknown, never as $0.
            "cost_usd": if unpriced > 0 { Value::Null } else { json!(row.get::<_, Option<f64>>(7)?) },
            "price_known": unpriced == 0,
            "responses": row.get::<_, i64>(8)?,
        }))
    })?;
    rows.collect()
}

fn stats_route(
    connection: &mut Connection,
    query_string: &str,
) -> Result<ApiResponse, rusqlite::Error> {
    let now = now_millis();
    let request = match query::parse_stats_query(query_string, now) {
        Ok(request) => request,
        Err(error) => return Ok(ApiResponse::bad_parameter(&error)),
    };
    let since = request.since_ms.unwrap_or(now - 3_600_000);
    let bucket_ms = request.bucket_seconds * 1000;
    // Cost per day looks back 30 days unless `since` asks for more.
    let cost_since = ((since.min(now - 30 * 86_400_000)) / 86_400_000) * 86_400_000;
    let transaction = connection.transaction()?;
    let mut series = Vec::new();
    let mut per_hook = serde_json::Map::new();
    let mut per_machine = serde_json::Map::new();
    let mut total = 0i64;
    // Whole-minute buckets come from the per-minute rollup the writer keeps
    // (a few rows per minute); other sizes count the events themselves. With
    // the rollup, `since` is rounded down to its minute.
    let from_rollup = bucket_ms % 60_000 == 0;
    let since = if from_rollup {
        (since / 60_000) * 60_000
    } else {
        since
    };
    {
        let mut statement = transaction.prepare_cached(if from_rollup {
            "SELECT (minute / ?2) * ?2 AS bucket, hook, machine, SUM(count) FROM event_counts \
             WHERE minute >= ?1 GROUP BY bucket, hook, machine ORDER BY bucket"
        } else {
            "SELECT (ts / ?2) * ?2 AS bucket, hook, machine, COUNT(*) FROM events WHERE ts >= ?1 \
             GROUP BY bucket, hook, machine ORDER BY bucket"
        })?;
        let rows = statement.query_map(rusqlite::params![since, bucket_ms], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })?;
        for row in rows {
            let (bucket, hook, machine, count) = row?;
            total += count;
            let hook_total = per_hook.entry(hook.clone()).or_insert(json!(0));
            *hook_total = json!(hook_total.as_i64().unwrap_or(0) + count);
            let machine_total = per_machine.entry(machine.clone()).or_insert(json!(0));
            *machine_total = json!(machine_total.as_i64().unwrap_or(0) + count);
            series.push(json!({ "t": bucket, "hook": hook, "machine": machine, "count": count }));
        }
    }
    let usage = usage_by_model(&transaction, "WHERE ts >= ?1", rusqlite::params![since])?;
    let mut cost_per_day = Vec::new();
    {
        let mut statement = transaction.prepare_cached(
            "SELECT (ts / 86400000) * 86400000 AS day, model, cwd, machine, SUM(cost_usd), SUM(cost_usd IS NULL), \
             CAST(TOTAL(input_tokens + output_tokens + cache_write_5m_tokens + cache_write_1h_tokens + cache_read_tokens) AS INTEGER) \
             FROM usage WHERE ts >= ?1 GROUP BY day, model, cwd, machine ORDER BY day",
        )?;
        let rows = statement.query_map([cost_since], |row| {
            Ok(json!({
                "day": row.get::<_, i64>(0)?,
                "model": row.get::<_, String>(1)?,
                "project": row.get::<_, Option<String>>(2)?,
                "machine": row.get::<_, Option<String>>(3)?,
                "cost_usd": row.get::<_, Option<f64>>(4)?,
                "unpriced_responses": row.get::<_, i64>(5)?,
                "tokens": row.get::<_, i64>(6)?,
            }))
        })?;
        for row in rows {
            cost_per_day.push(row?);
        }
    }
    transaction.finish()?;
    Ok(ApiResponse::json(&json!({
        "usage": usage,
        "cost_per_day": cost_per_day,
        "bucket": request.bucket_seconds,
        "since": since,
        "now": now,
        "total": total,
        "per_hook": per_hook,
        "per_machine": per_machine,
        "series": series,
    })))
}

/// Routes the database-backed API (`path` starts with `/api/`).
pub(crate) fn route_database(
    connection: &mut Connection,
    path: &str,
    query_string: &str,
    quiet_limits: QuietLimits,
) -> ApiResponse {
    let result = if path == "/api/events" {
        events_route(connection, query_string)
    } else if path == "/api/sessions" {
        sessions_route(connection, query_string, quiet_limits)
    } else if let Some(raw_id) = path
        .strip_prefix("/api/sessions/")
        .and_then(|rest| rest.strip_suffix("/timeline"))
    {
        // A `/` in the id arrives as `%2F`: only a raw `/` splits the path.
        match query::percent_decode(raw_id).filter(|_| !raw_id.contains('/')) {
            Some(id) if !id.is_empty() => timeline_route(connection, &id, query_string),
            _ => return ApiResponse::error(400, "bad session id in the path"),
        }
    } else if let Some(raw_id) = path.strip_prefix("/api/sessions/") {
        // A `/` in the id arrives as `%2F`: only a raw `/` splits the path.
        match query::percent_decode(raw_id).filter(|_| !raw_id.contains('/')) {
            Some(id) if !id.is_empty() => {
                session_route(connection, &id, query_string, quiet_limits)
            }
            _ => return ApiResponse::error(400, "bad session id in the path"),
        }
    } else if path == "/api/stats" {
        stats_route(connection, query_string)
    } else {
        return ApiResponse::error(404, "no such route");
    };
    result
        .unwrap_or_else(|error| ApiResponse::error(503, &format!("database read failed: {error}")))
}
