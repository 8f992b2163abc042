//! `/api/sessions` and `/api/sessions/{id}`: the sessions list (written
//! straight into the body, row by row: it is benchmarked) and one session
//! with its agents, tool calls, hooks, usage and prompts.

use std::fmt::Write as _;

use hooktrail_shared::envelope::HookEvent;
use hooktrail_shared::time::now_millis;
use rusqlite::Connection;
use serde_json::{json, Value};

use crate::query;
use crate::serve::gate::ApiResponse;
use crate::serve::json::ObjectWriter;
use crate::state::{shown_state, QuietLimits, GONE_QUIET};
use crate::store::read::activity::session_activity;
use crate::store::read::max_seq;
use crate::store::read::otel;
use crate::store::read::sessions::{
    self, AgentRow, CallOutcome, PromptRow, SessionRow, SessionsQuery, StoredError, ToolCallRow,
};
use crate::store::read::stats::{usage_by_model, UsageScope};

use super::usage_json;

/// A session with no event for this long is shown as idle, not active.
const ACTIVE_WINDOW_MS: i64 = 10 * 60 * 1000;

/// A session without an event for this long that never sent `SessionEnd`
/// counts as ended without it, whatever its state: Claude Code sessions are
/// rarely left open a whole day.
const SESSION_END_OVERDUE_MS: i64 = 24 * 60 * 60 * 1000;

fn session_status(ended_ts: Option<i64>, last_ts: i64, now: i64) -> &'static str {
    if ended_ts.is_some() {
        "ended"
    } else if now - last_ts <= ACTIVE_WINDOW_MS {
        "active"
    } else {
        "idle"
    }
}

/// The completeness check (DESIGN §7): what the transcript showed (tool
/// calls, subagents) that no hook reported, and whether a `SessionEnd` is
/// overdue: the session went quiet (its process most likely died) or has
/// had no event for [`SESSION_END_OVERDUE_MS`].
struct Completeness {
    missing_tool_events: i64,
    missing_subagent_starts: i64,
    session_end_missing: bool,
    /// The OpenTelemetry line (issue 22), for a session that exported any:
    /// requests only it reported, and transcript responses it did not.
    otel: Option<(i64, i64)>,
}

impl Completeness {
    fn new(row: &SessionRow<'_>, shown_state: &str, now: i64) -> Completeness {
        let ended = row.ended_ts.is_some() || row.state == Some("ended");
        Completeness {
            missing_tool_events: row.missing_tool_events,
            missing_subagent_starts: row.missing_subagent_starts,
            session_end_missing: !ended
                && (shown_state == GONE_QUIET || now - row.last_ts > SESSION_END_OVERDUE_MS),
            otel: row.otel_only_requests.zip(row.transcript_only_requests),
        }
    }

    fn push_json(&self, out: &mut String) {
        let otel_complete = self
            .otel
            .is_none_or(|(only_otel, only_transcript)| only_otel == 0 && only_transcript == 0);
        let mut object = ObjectWriter::open(out);
        object
            .bool(
                "complete",
                self.missing_tool_events == 0
                    && self.missing_subagent_starts == 0
                    && !self.session_end_missing
                    && otel_complete,
            )
            .int("missing_tool_events", self.missing_tool_events)
            .int("missing_subagent_starts", self.missing_subagent_starts)
            .bool("session_end_missing", self.session_end_missing);
        if let Some((only_otel, only_transcript)) = self.otel {
            object
                .int("otel_only_requests", only_otel)
                .int("transcript_only_requests", only_transcript);
        }
        object.close();
    }
}

/// Appends one session as its JSON object.
fn push_session(out: &mut String, row: &SessionRow<'_>, now: i64, quiet_limits: QuietLimits) {
    let status = session_status(row.ended_ts, row.last_ts, now);
    let state = shown_state(row.state, row.last_ts, now, quiet_limits);
    let duration_end = match status {
        "active" => now.max(row.last_ts),
        _ => row.ended_ts.unwrap_or(row.last_ts).max(row.last_ts),
    };
    let completeness = Completeness::new(row, state, now);
    let mut object = ObjectWriter::open(out);
    object.str("session_id", row.session_id);
    object.str("machine", row.machine);
    object.opt_str("cwd", row.cwd);
    object.int("first_ts", row.first_ts);
    object.int("last_ts", row.last_ts);
    object.opt_int("ended_ts", row.ended_ts);
    object.opt_str("end_reason", row.end_reason);
    object.int("event_count", row.event_count);
    object.opt_str("transcript_path", row.transcript_path);
    object.opt_int("last_seq", row.last_seq);
    object.int("agent_count", row.agent_count);
    object.str("status", status);
    object.int("duration_ms", duration_end - row.first_ts);
    object.str("state", state);
    if state == GONE_QUIET {
        object.int("state_since", row.last_ts);
    } else {
        object.opt_int("state_since", row.state_since);
    }
    object.opt_str("state_detail", row.state_detail);
    if state == "working" || state == "waiting" {
        object.opt_str("current_tool", row.current_tool);
    } else {
        object.raw("current_tool", "null");
    }
    object.opt_str("model", row.model);
    object.opt_str("title", row.title);
    object.opt_str("permission_mode", row.permission_mode);
    object.opt_float("cost_usd", row.cost_usd);
    object.int("tokens", row.tokens);
    object.int("unpriced_responses", row.unpriced_responses);
    object.int("usage_responses", row.usage_responses);
    completeness.push_json(object.nested("completeness"));
    object.bool("config_error", row.config_error);
    object.close();
}

pub(super) fn sessions_route(
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
    let query = SessionsQuery {
        machine: request.machine.as_deref(),
        sort: request.sort,
        limit: request.limit,
    };
    let mut first = true;
    sessions::for_each_session(&transaction, query, |row| {
        if !first {
            body.push(',');
        }
        first = false;
        push_session(&mut body, &row, now, quiet_limits);
        if !machines.iter().any(|known| known == row.machine) {
            machines.push(row.machine.to_owned());
        }
    })?;
    let total = sessions::session_count(&transaction)?;
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

/// The most tool calls (and failures) one session page lists.
const TOOL_CALLS_LISTED: usize = 500;

fn tool_call_json(call: &ToolCallRow) -> Value {
    let error = match &call.error {
        Some(StoredError::Text(text)) => Value::String(text.clone()),
        Some(StoredError::Integer(number)) => json!(number),
        Some(StoredError::Real(number)) => json!(number),
        None => Value::Null,
    };
    json!({
        "seq": call.seq,
        "agent_id": call.agent_id,
        "tool": call.tool,
        "tool_use_id": call.tool_use_id,
        "started_ts": call.started_ts,
        "finished_ts": call.finished_ts,
        "duration_ms": call.duration_ms,
        "outcome": call.outcome.as_str(),
        "error": error,
    })
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
        self.failed += i64::from(call.outcome == CallOutcome::Failed);
        self.pending += i64::from(call.outcome == CallOutcome::Pending);
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

/// Per tool: calls, failures, pending calls, mean and longest duration,
/// the slowest tool first (tools never timed last).
fn tool_figures(calls: &[ToolCallRow]) -> Vec<Value> {
    let mut tools: Vec<ToolFigures> = Vec::new();
    for call in calls {
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
    tools.sort_by(|a, b| {
        b.longest_ms
            .partial_cmp(&a.longest_ms)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    tools.iter().map(ToolFigures::to_json).collect()
}

/// The slowest calls first (calls without a duration last), then by seq.
fn slowest_calls(calls: &[ToolCallRow]) -> Vec<Value> {
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
    slowest
        .into_iter()
        .take(TOOL_CALLS_LISTED)
        .map(tool_call_json)
        .collect()
}

/// The failed calls in seq order.
fn failed_calls(calls: &[ToolCallRow]) -> Vec<Value> {
    calls
        .iter()
        .filter(|call| call.outcome == CallOutcome::Failed)
        .take(TOOL_CALLS_LISTED)
        .map(tool_call_json)
        .collect()
}

/// The agent tree: each agent names its parent; roots (and agents whose
/// parent is not one of this session's) hang off the main agent (`null`).
fn agents_json(mut agents: Vec<AgentRow>) -> Vec<Value> {
    let ids: Vec<String> = agents.iter().map(|a| a.agent_id.clone()).collect();
    for agent in &mut agents {
        agent.parent_agent_id = agent.parent_agent_id.take().filter(|id| ids.contains(id));
    }
    agents
        .into_iter()
        .map(|agent| {
            json!({
                "agent_id": agent.agent_id,
                "agent_type": agent.agent_type,
                "parent_tool_use_id": agent.parent_tool_use_id,
                "started_ts": agent.started_ts,
                "stopped_ts": agent.stopped_ts,
                "event_count": agent.event_count,
                "transcript_path": agent.transcript_path,
                "parent_agent_id": agent.parent_agent_id,
                "state": agent.state,
                "state_since": agent.state_since,
                "state_detail": agent.state_detail,
                "current_tool": agent.current_tool,
                "prompt_id": agent.prompt_id,
                "cost_usd": agent.cost_usd,
                "tokens": agent.tokens,
            })
        })
        .collect()
}

fn prompt_json(prompt: PromptRow) -> Value {
    let outcome = match prompt.ended_by.as_deref().map(HookEvent::from_name) {
        Some(HookEvent::Stop) => "done",
        Some(HookEvent::StopFailure) => "failed",
        Some(HookEvent::SessionEnd) => "ended",
        _ => "running",
    };
    json!({
        "prompt_id": prompt.prompt_id,
        "prompt": prompt.prompt,
        "started_ts": prompt.started_ts,
        "ended_ts": prompt.ended_ts,
        "duration_ms": prompt.ended_ts.map(|ended| ended - prompt.started_ts),
        "outcome": outcome,
        "error": prompt.error,
        "tool_calls": prompt.tool_calls,
        "tool_failures": prompt.tool_failures,
        "cost_usd": prompt.cost_usd,
        "tokens": prompt.tokens,
    })
}

/// One session as a `Value`, through the list's own writer.
fn session_value(row: SessionRow<'_>, now: i64, quiet_limits: QuietLimits) -> Value {
    let mut text = String::with_capacity(1024);
    push_session(&mut text, &row, now, quiet_limits);
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

pub(super) fn session_route(
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
    let session = sessions::with_session(&transaction, session_id, |row| {
        session_value(row, now, quiet_limits)
    })?;
    let Some(session) = session else {
        return Ok(ApiResponse::error(404, "no such session"));
    };
    let agents = agents_json(sessions::agents(&transaction, session_id)?);
    let activity = session_activity(&transaction, session_id)?;
    let calls = activity.calls;
    let hooks: serde_json::Map<String, Value> = activity
        .hooks
        .into_iter()
        .map(|(hook, count)| (hook, json!(count)))
        .collect();
    let usage = usage_by_model(&transaction, UsageScope::Session(session_id))?;
    let prompts = activity.prompts;
    let waits = if hooks.contains_key(HookEvent::PermissionRequest.name()) {
        otel::Waits::Some
    } else {
        otel::Waits::None
    };
    let otel = otel::time_splits(&transaction, session_id, waits)?;
    transaction.finish()?;
    Ok(ApiResponse::json(&json!({
        "session": session,
        "usage": usage_json(usage),
        "time": otel.session.to_json(),
        "prompts": prompts
            .into_iter()
            .map(|prompt| {
                let time = otel.per_prompt.get(&prompt.prompt_id).copied().unwrap_or_default();
                let mut value = prompt_json(prompt);
                value["time"] = time.to_json();
                value
            })
            .collect::<Vec<_>>(),
        "agents": agents,
        "tool_calls": slowest_calls(&calls),
        "failures": failed_calls(&calls),
        "tools": tool_figures(&calls),
        "hooks": hooks,
    })))
}
