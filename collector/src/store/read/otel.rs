//! What the API reads of Claude Code's OpenTelemetry (issue 22, migration
//! 12): model spans and API errors for the timeline, where a session's and
//! a prompt's time went, and the activity metrics per day and project (the
//! completeness line is in `sessions.rs`' columns).
//!
//! Read-only: every function takes the caller's read transaction.

use std::collections::HashMap;

use rusqlite::{named_params, Connection};
use serde_json::{json, Value};

use crate::timeline::{ApiErrorMark, ModelRequest};

/// The session's `api_request` events as model spans, in time order: a
/// request ended at its event's time and lasted `duration_ms`; its lane is
/// the agent of the transcript row it joined.
pub(crate) fn model_spans(
    connection: &Connection,
    session_id: &str,
) -> rusqlite::Result<Vec<ModelRequest>> {
    let mut statement = connection.prepare_cached(
        "SELECT o.ts, COALESCE(o.duration_ms, 0), json_extract(o.attrs, '$.model'),
                (SELECT u.agent_id FROM usage AS u INDEXED BY usage_request
                  WHERE u.request_id = o.request_id AND u.session_id = o.session_id LIMIT 1)
         FROM otel_events AS o INDEXED BY otel_events_session
         WHERE o.session_id = :session AND o.name = 'api_request' ORDER BY o.ts, o.id",
    )?;
    let rows = statement.query_map(named_params! {":session": session_id}, |row| {
        let end: i64 = row.get(0)?;
        let duration: f64 = row.get(1)?;
        Ok(ModelRequest {
            start: end - duration.max(0.0).round() as i64,
            end,
            model: row.get(2)?,
            agent_id: row.get(3)?,
        })
    })?;
    rows.collect()
}

/// The session's `api_error` events as markers, in time order: status,
/// error and attempt (`529 Overloaded, attempt 2`).
pub(crate) fn api_errors(
    connection: &Connection,
    session_id: &str,
) -> rusqlite::Result<Vec<ApiErrorMark>> {
    let mut statement = connection.prepare_cached(
        "SELECT o.ts, json_extract(o.attrs, '$.status_code'), json_extract(o.attrs, '$.error'),
                json_extract(o.attrs, '$.attempt'),
                (SELECT u.agent_id FROM usage AS u INDEXED BY usage_request
                  WHERE u.request_id = o.request_id AND u.session_id = o.session_id LIMIT 1)
         FROM otel_events AS o INDEXED BY otel_events_session
         WHERE o.session_id = :session AND o.name = 'api_error' ORDER BY o.ts, o.id",
    )?;
    let rows = statement.query_map(named_params! {":session": session_id}, |row| {
        let status: Option<String> = row
            .get::<_, Option<rusqlite::types::Value>>(1)?
            .map(text_of);
        let error: Option<String> = row.get(2)?;
        let attempt: Option<String> = row
            .get::<_, Option<rusqlite::types::Value>>(3)?
            .map(text_of);
        let mut text = [status, error]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(attempt) = attempt {
            text.push_str(&format!(", attempt {attempt}"));
        }
        Ok(ApiErrorMark {
            ts: row.get(0)?,
            text: if text.is_empty() {
                "API error".to_owned()
            } else {
                text
            },
            agent_id: row.get(4)?,
        })
    })?;
    rows.collect()
}

fn text_of(value: rusqlite::types::Value) -> String {
    match value {
        rusqlite::types::Value::Integer(number) => number.to_string(),
        rusqlite::types::Value::Real(number) => number.to_string(),
        rusqlite::types::Value::Text(text) => text,
        _ => String::new(),
    }
}

/// Where a turn's time went, in milliseconds: the model (the `api_request`
/// durations), the tools (`tool_result` durations, else the hooks'
/// `PreToolUse` to `PostToolUse`), and waiting for the person (each
/// `PermissionRequest` until the agent's next event other than a
/// `Notification`, as the timeline draws it).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct TimeSplit {
    pub(crate) model_ms: Option<i64>,
    pub(crate) tool_ms: i64,
    pub(crate) waiting_ms: i64,
}

impl TimeSplit {
    pub(crate) fn to_json(self) -> Value {
        json!({
            "model_ms": self.model_ms,
            "tool_ms": self.tool_ms,
            "waiting_ms": self.waiting_ms,
        })
    }
}

/// Whether a session has any `PermissionRequest`, which the caller knows
/// from the session's walk: waiting time is only ever counted from them,
/// and its window query reads every event of the session (25 ms on a
/// 20,000-event session), so a session without one skips it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Waits {
    /// At least one `PermissionRequest`: count the waits.
    Some,
    /// None: the waiting time is 0 without a query.
    None,
}

/// Where a session's time went, as a whole and per prompt.
#[derive(Debug, Default)]
pub(crate) struct TimeSplits {
    /// The whole session: the sum of every prompt's figures and of the
    /// events outside any prompt.
    pub(crate) session: TimeSplit,
    /// Each prompt's figures, by prompt id.
    pub(crate) per_prompt: HashMap<String, TimeSplit>,
}

/// One grouped figure: a prompt's (`Some`) or the events outside any
/// prompt (`None`).
type ByPrompt<T> = Vec<(Option<String>, T)>;

/// The time split of a session and of each of its prompts, from grouped
/// queries whose groups (the `NULL` prompt included) add up to the
/// session's figure, so each of the session's events is read once per
/// query, not once for the session and again for its prompts.
/// - model time: Claude Code's `api_request` durations (OpenTelemetry);
/// - tool time: its `tool_result` durations, else the hooks' `PreToolUse`
///   to `PostToolUse`/`PostToolUseFailure` times;
/// - waiting time: from each `PermissionRequest` to its agent's next event
///   that is not a `Notification` (skipped when `waits` says none).
pub(crate) fn time_splits(
    connection: &Connection,
    session_id: &str,
    waits: Waits,
) -> rusqlite::Result<TimeSplits> {
    let otel = otel_durations(connection, session_id)?;
    let hook_tools = hook_tool_times(connection, session_id)?;
    let waited = if waits == Waits::None {
        Vec::new()
    } else {
        waiting_times(connection, session_id)?
    };
    let mut splits = TimeSplits::default();
    let (mut model_sum, mut otel_tool_sum) = (None::<f64>, None::<f64>);
    let mut otel_tools: HashMap<String, i64> = HashMap::new();
    for (prompt, (model_ms, tool_ms)) in otel {
        model_sum = add_some(model_sum, model_ms);
        otel_tool_sum = add_some(otel_tool_sum, tool_ms);
        if let Some(prompt) = prompt {
            splits
                .per_prompt
                .entry(prompt.clone())
                .or_default()
                .model_ms = model_ms.map(|ms| ms.round() as i64);
            if let Some(ms) = tool_ms {
                otel_tools.insert(prompt, ms.round() as i64);
            }
        }
    }
    let mut hook_tool_sum = 0;
    for (prompt, ms) in hook_tools {
        hook_tool_sum += ms;
        if let Some(prompt) = prompt {
            let own = otel_tools.get(&prompt).copied().unwrap_or(ms);
            splits.per_prompt.entry(prompt).or_default().tool_ms = own;
        }
    }
    for (prompt, ms) in otel_tools {
        splits.per_prompt.entry(prompt).or_default().tool_ms = ms;
    }
    for (prompt, ms) in waited {
        splits.session.waiting_ms += ms;
        if let Some(prompt) = prompt {
            splits.per_prompt.entry(prompt).or_default().waiting_ms = ms;
        }
    }
    splits.session.model_ms = model_sum.map(|ms| ms.round() as i64);
    splits.session.tool_ms = otel_tool_sum.map_or(hook_tool_sum, |ms| ms.round() as i64);
    Ok(splits)
}

/// `a + b` where either may be missing: missing only when both are.
fn add_some(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
    }
}

/// Per prompt: the `api_request` and the `tool_result` durations.
fn otel_durations(
    connection: &Connection,
    session_id: &str,
) -> rusqlite::Result<ByPrompt<(Option<f64>, Option<f64>)>> {
    connection
        .prepare_cached(
            "SELECT prompt_id, SUM(CASE WHEN name = 'api_request' THEN duration_ms END),
                    SUM(CASE WHEN name = 'tool_result' THEN duration_ms END)
             FROM otel_events INDEXED BY otel_events_session
             WHERE session_id = :session GROUP BY prompt_id",
        )?
        .query_map(named_params! {":session": session_id}, |row| {
            Ok((row.get(0)?, (row.get(1)?, row.get(2)?)))
        })?
        .collect()
}

/// Per prompt: the hooks' tool time, `PreToolUse` to its outcome.
fn hook_tool_times(connection: &Connection, session_id: &str) -> rusqlite::Result<ByPrompt<i64>> {
    connection
        .prepare_cached(
            "SELECT pre.prompt_id, COALESCE(SUM(MAX(post.ts - pre.ts, 0)), 0) FROM events AS pre
             JOIN events AS post ON post.tool_use_id = pre.tool_use_id AND post.session_id = pre.session_id
              AND post.hook IN ('PostToolUse', 'PostToolUseFailure')
             WHERE pre.session_id = :session AND pre.hook = 'PreToolUse'
             GROUP BY pre.prompt_id",
        )?
        .query_map(named_params! {":session": session_id}, |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect()
}

/// Per prompt: the time from each `PermissionRequest` to its agent's next
/// event that is not a `Notification`.
fn waiting_times(connection: &Connection, session_id: &str) -> rusqlite::Result<ByPrompt<i64>> {
    connection
        .prepare_cached(
            "SELECT prompt_id, SUM(next_ts - ts) FROM (
                SELECT hook, ts, prompt_id, LEAD(ts) OVER (PARTITION BY agent_id ORDER BY seq) AS next_ts
                FROM events WHERE session_id = :session AND hook != 'Notification')
             WHERE hook = 'PermissionRequest' AND next_ts IS NOT NULL
             GROUP BY prompt_id",
        )?
        .query_map(named_params! {":session": session_id}, |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect()
}

/// Claude Code's activity metrics per UTC day and project (the session's
/// directory) since `since_day` (`YYYY-MM-DD`): lines added and removed,
/// commits, pull requests, active seconds. Delta points add up; of a
/// cumulative series the last value counts.
pub(crate) fn activity_per_day(
    connection: &Connection,
    since_day: &str,
) -> rusqlite::Result<Vec<Value>> {
    let mut statement = connection.prepare_cached(
        "SELECT day, project, name, kind, SUM(value) FROM (
            SELECT p.day, s.cwd AS project, p.name, p.kind,
                   CASE WHEN p.temporality = 'delta' THEN SUM(p.value) ELSE MAX(p.value) END AS value
            FROM otel_metric_points AS p LEFT JOIN sessions AS s ON s.session_id = p.session_id
            WHERE p.day >= :since AND p.name IN
                ('lines_of_code.count', 'commit.count', 'pull_request.count', 'active_time.total')
            GROUP BY p.day, p.session_id, p.name, p.kind, p.temporality,
                     CASE WHEN p.temporality = 'delta' THEN 0 ELSE p.start_ts END)
         GROUP BY day, project, name, kind ORDER BY day, project",
    )?;
    let mut rows = statement.query(named_params! {":since": since_day})?;
    let mut days: Vec<Value> = Vec::new();
    while let Some(row) = rows.next()? {
        let day: String = row.get(0)?;
        let project: Option<String> = row.get(1)?;
        let name: String = row.get(2)?;
        let kind: Option<String> = row.get(3)?;
        let value: f64 = row.get(4)?;
        let field = match (name.as_str(), kind.as_deref()) {
            ("lines_of_code.count", Some("added")) => "lines_added",
            ("lines_of_code.count", Some("removed")) => "lines_removed",
            ("commit.count", _) => "commits",
            ("pull_request.count", _) => "pull_requests",
            ("active_time.total", _) => "active_seconds",
            _ => continue,
        };
        let same = days
            .last()
            .is_some_and(|last| last["day"] == day.as_str() && last["project"] == json!(project));
        if !same {
            days.push(
                json!({"day": day, "project": project, "lines_added": 0, "lines_removed": 0,
                             "commits": 0, "pull_requests": 0, "active_seconds": 0.0}),
            );
        }
        if let Some(last) = days.last_mut() {
            let total = last[field].as_f64().unwrap_or(0.0) + value;
            last[field] = if field == "active_seconds" {
                json!(total)
            } else {
                json!(total.round() as i64)
            };
        }
    }
    Ok(days)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::records::{ApiRequest, Batch, MetricPoint, OtelEvent, Temporality};

    fn event(
        name: &str,
        ts: i64,
        duration: f64,
        request_id: Option<&str>,
        prompt: &str,
    ) -> OtelEvent {
        OtelEvent {
            key: format!("{name}-{ts}"),
            name: name.into(),
            ts,
            session_id: Some("s".into()),
            prompt_id: Some(prompt.into()),
            request_id: request_id.map(str::to_owned),
            tool_use_id: None,
            duration_ms: Some(duration),
            attrs: r#"{"model":"claude-sonnet-4-5","status_code":529,"error":"Overloaded","attempt":2}"#.into(),
            request: (name == "api_request").then(|| ApiRequest {
                request_id: request_id.map(str::to_owned),
                model: "claude-sonnet-4-5".into(),
                cost_usd: 0.01,
                ..ApiRequest::default()
            }),
        }
    }

    fn point(name: &str, kind: &str, value: f64, ts: i64) -> MetricPoint {
        MetricPoint {
            key: format!("{name}-{kind}-{ts}"),
            name: name.into(),
            session_id: Some("s".into()),
            ts,
            day: crate::otlp::records::day_of(ts),
            start_ts: None,
            kind: Some(kind.into()),
            attrs: "{}".into(),
            value,
            temporality: Temporality::Delta,
        }
    }

    #[test]
    fn spans_errors_time_and_activity_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut connection = crate::store::open::open(&dir.path().join("events.db")).unwrap();
        connection
            .execute_batch(
                "INSERT INTO sessions (session_id, machine, cwd, first_ts, last_ts, event_count)
                     VALUES ('s', 'm', '/p', 1, 1, 1);
                 INSERT INTO events (id, ts, received_at, machine, session_id, hook, tool_use_id, source, payload, prompt_id)
                     VALUES ('e1', 10000, 0, 'm', 's', 'PreToolUse', 't1', 'socket', '{}', 'p1'),
                            ('e2', 10500, 0, 'm', 's', 'PermissionRequest', 't1', 'socket', '{}', 'p1'),
                            ('e3', 10600, 0, 'm', 's', 'Notification', NULL, 'socket', '{}', 'p1'),
                            ('e4', 13500, 0, 'm', 's', 'PostToolUse', 't1', 'socket', '{}', 'p1');",
            )
            .unwrap();
        let batch = Batch {
            events: vec![
                event("api_request", 9_000, 1_200.0, Some("r1"), "p1"),
                event("api_request", 15_000, 800.0, Some("r2"), "p2"),
                event("api_error", 14_000, 30.0, Some("r3"), "p2"),
            ],
            points: vec![
                point("lines_of_code.count", "added", 40.0, 86_400_000),
                point("lines_of_code.count", "added", 2.0, 86_400_001),
                point("commit.count", "x", 1.0, 86_400_000),
            ],
            ..Batch::default()
        };
        crate::store::otel::store(
            &mut connection,
            [&batch].into_iter(),
            &crate::cost::PriceTable::embedded(),
        )
        .unwrap();
        let spans = model_spans(&connection, "s").unwrap();
        assert_eq!(
            spans
                .iter()
                .map(|span| (span.start, span.end))
                .collect::<Vec<_>>(),
            vec![(7_800, 9_000), (14_200, 15_000)]
        );
        let errors = api_errors(&connection, "s").unwrap();
        assert_eq!(errors[0].text, "529 Overloaded, attempt 2");
        // Model 2 s; no tool_result, so the hooks' 3.5 s; waiting from the
        // PermissionRequest to the next non-Notification event: 3 s.
        let splits = time_splits(&connection, "s", Waits::Some).unwrap();
        assert_eq!(
            splits.session,
            TimeSplit {
                model_ms: Some(2_000),
                tool_ms: 3_500,
                waiting_ms: 3_000
            }
        );
        assert_eq!(splits.per_prompt["p1"].model_ms, Some(1_200));
        assert_eq!(splits.per_prompt["p2"].model_ms, Some(800));
        // Two api_requests of origin otel: no transcript showed them.
        let line = crate::store::read::sessions::with_session(&connection, "s", |row| {
            (row.otel_only_requests, row.transcript_only_requests)
        })
        .unwrap();
        assert_eq!(line, Some((Some(2), Some(0))));
        let days = activity_per_day(&connection, "1970-01-01").unwrap();
        assert_eq!(days.len(), 1);
        assert_eq!(days[0]["day"], "1970-01-02");
        assert_eq!(days[0]["project"], "/p");
        assert_eq!(
            (days[0]["lines_added"].as_i64(), days[0]["commits"].as_i64()),
            (Some(42), Some(1))
        );
    }
}
