//! The JSON API and `/metrics` (DESIGN §7), over a read-only SQLite
//! connection owned by the calling HTTP thread.
//!
//! Every read runs in one deferred transaction, so a page is one consistent
//! snapshot; in WAL mode readers never hold up the writer. The page of
//! events is read by [`crate::store::read`].

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::Ordering;

use hooktrail_shared::envelope::now_millis;
use rusqlite::{Connection, OptionalExtension};
use serde_json::{json, Value};

use crate::event::{CommittedEvent, Source};
use crate::hub::Hub;
use crate::query::{self, ParamError};
use crate::stats::{Stats, COMMIT_BUCKETS_MS};
use crate::store::read::{max_seq, read_events};

/// A session with no event for this long is shown as idle, not active.
pub const ACTIVE_WINDOW_MS: i64 = 10 * 60 * 1000;

/// One response of the API: status, content type and body.
#[derive(Debug)]
pub struct ApiResponse {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type` header value.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl ApiResponse {
    /// A 200 JSON answer.
    pub fn json(value: &Value) -> ApiResponse {
        ApiResponse::json_text(200, value.to_string())
    }

    /// A JSON answer from already-serialized text.
    pub fn json_text(status: u16, body: String) -> ApiResponse {
        ApiResponse {
            status,
            content_type: "application/json; charset=utf-8",
            body,
        }
    }

    /// An error answer: `{"error": message, "parameter": name?}`.
    pub fn error(status: u16, message: &str) -> ApiResponse {
        ApiResponse::json_text(status, json!({ "error": message }).to_string())
    }

    /// A 400 naming the bad parameter.
    pub fn bad_parameter(error: &ParamError) -> ApiResponse {
        ApiResponse::json_text(
            400,
            json!({ "error": error.to_string(), "parameter": error.parameter, "reason": error.message }).to_string(),
        )
    }
}

fn push_json_string(out: &mut String, text: &str) {
    out.push_str(&serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned()));
}

fn push_optional(out: &mut String, text: Option<&str>) {
    match text {
        Some(text) => push_json_string(out, text),
        None => out.push_str("null"),
    }
}

/// Appends one event as a JSON object. The payload is embedded as JSON when
/// it is valid JSON, else as a string.
pub fn push_event_json(out: &mut String, event: &CommittedEvent) {
    let _ = write!(out, "{{\"seq\":{},\"id\":", event.seq);
    push_json_string(out, &event.id);
    let _ = write!(
        out,
        ",\"ts\":{},\"received_at\":{},\"machine\":",
        event.ts, event.received_at
    );
    push_json_string(out, &event.machine);
    out.push_str(",\"session_id\":");
    push_optional(out, event.session_id.as_deref());
    out.push_str(",\"agent_id\":");
    push_optional(out, event.agent_id.as_deref());
    out.push_str(",\"hook\":");
    push_json_string(out, &event.hook);
    out.push_str(",\"tool\":");
    push_optional(out, event.tool.as_deref());
    out.push_str(",\"tool_use_id\":");
    push_optional(out, event.tool_use_id.as_deref());
    out.push_str(",\"cwd\":");
    push_optional(out, event.cwd.as_deref());
    out.push_str(",\"source\":");
    push_json_string(out, event.source);
    out.push_str(",\"payload\":");
    if serde_json::from_str::<&serde_json::value::RawValue>(&event.payload).is_ok() {
        out.push_str(event.payload.trim());
    } else {
        push_json_string(out, &event.payload);
    }
    out.push('}');
}

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
    transaction.finish()?;
    let mut body = String::with_capacity(page.events.len() * 1024 + 64);
    body.push_str("{\"events\":[");
    for (index, event) in page.events.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        push_event_json(&mut body, event);
    }
    let _ = write!(
        body,
        "],\"next\":{},\"more\":{},\"last_seq\":{}}}",
        page.next, page.more, last_seq
    );
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
     (SELECT COUNT(*) FROM agents WHERE agents.session_id = sessions.session_id)";

fn session_row_json(row: &rusqlite::Row<'_>, now: i64) -> rusqlite::Result<Value> {
    let first_ts: i64 = row.get(3)?;
    let last_ts: i64 = row.get(4)?;
    let ended_ts: Option<i64> = row.get(5)?;
    let status = session_status(ended_ts, last_ts, now);
    let duration_end = match status {
        "active" => now.max(last_ts),
        _ => ended_ts.unwrap_or(last_ts).max(last_ts),
    };
    Ok(json!({
        "session_id": row.get::<_, String>(0)?,
        "machine": row.get::<_, String>(1)?,
        "cwd": row.get::<_, Option<String>>(2)?,
        "first_ts": first_ts,
        "last_ts": last_ts,
        "ended_ts": ended_ts,
        "end_reason": row.get::<_, Option<String>>(6)?,
        "event_count": row.get::<_, i64>(7)?,
        "transcript_path": row.get::<_, Option<String>>(8)?,
        "last_seq": row.get::<_, Option<i64>>(9)?,
        "agent_count": row.get::<_, i64>(10)?,
        "status": status,
        "duration_ms": duration_end - first_ts,
    }))
}

fn sessions_route(
    connection: &mut Connection,
    query_string: &str,
) -> Result<ApiResponse, rusqlite::Error> {
    let request = match query::parse_sessions_query(query_string) {
        Ok(request) => request,
        Err(error) => return Ok(ApiResponse::bad_parameter(&error)),
    };
    let now = now_millis();
    let transaction = connection.transaction()?;
    let sessions: Vec<Value> = {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE (?1 IS NULL OR machine = ?1) ORDER BY last_ts DESC LIMIT ?2"
        );
        let mut statement = transaction.prepare_cached(&sql)?;
        let rows = statement.query_map(
            rusqlite::params![request.machine, request.limit as i64],
            |row| session_row_json(row, now),
        )?;
        rows.collect::<Result<_, _>>()?
    };
    let total: i64 =
        transaction.query_row("SELECT COUNT(*) FROM sessions", [], |row| row.get(0))?;
    let last_seq = max_seq(&transaction)?;
    transaction.finish()?;
    let mut machines: Vec<String> = sessions
        .iter()
        .filter_map(|s| s["machine"].as_str().map(str::to_owned))
        .collect();
    machines.sort();
    machines.dedup();
    Ok(ApiResponse::json(&json!({
        "sessions": sessions,
        "machines": machines,
        "total": total,
        "now": now,
        "last_seq": last_seq,
        "active_window_ms": ACTIVE_WINDOW_MS,
    })))
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

fn session_route(
    connection: &mut Connection,
    session_id: &str,
    query_string: &str,
) -> Result<ApiResponse, rusqlite::Error> {
    if let Err(error) = query::parse_pairs(query_string, &[]) {
        return Ok(ApiResponse::bad_parameter(&error));
    }
    let now = now_millis();
    let transaction = connection.transaction()?;
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = ?1");
    let session = transaction
        .prepare_cached(&sql)?
        .query_row([session_id], |row| session_row_json(row, now))
        .optional()?;
    let Some(session) = session else {
        return Ok(ApiResponse::error(404, "no such session"));
    };
    let mut agents: Vec<Value> = {
        let mut statement = transaction.prepare_cached(
            "SELECT a.agent_id, a.agent_type, a.parent_tool_use_id, a.started_ts, a.stopped_ts, a.event_count, \
             a.transcript_path, \
             (SELECT e.agent_id FROM events AS e WHERE e.tool_use_id = a.parent_tool_use_id AND e.hook = 'PreToolUse' LIMIT 1) \
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
    let tool_calls: Vec<Value> = {
        let sql = format!(
            "SELECT {TOOL_CALL_COLUMNS} FROM tool_calls WHERE session_id = ?1 \
             ORDER BY duration_ms IS NULL, duration_ms DESC, seq LIMIT 500"
        );
        let mut statement = transaction.prepare_cached(&sql)?;
        let rows = statement.query_map([session_id], tool_call_json)?;
        rows.collect::<Result<_, _>>()?
    };
    let failures: Vec<Value> = {
        let sql = format!("SELECT {TOOL_CALL_COLUMNS} FROM tool_calls WHERE session_id = ?1 AND outcome = 'failed' ORDER BY seq LIMIT 500");
        let mut statement = transaction.prepare_cached(&sql)?;
        let rows = statement.query_map([session_id], tool_call_json)?;
        rows.collect::<Result<_, _>>()?
    };
    let tools: Vec<Value> = {
        let mut statement = transaction.prepare_cached(
            "SELECT tool, COUNT(*), SUM(outcome = 'failed'), SUM(outcome = 'pending'), AVG(duration_ms), MAX(duration_ms) \
             FROM tool_calls WHERE session_id = ?1 GROUP BY tool ORDER BY MAX(duration_ms) DESC",
        )?;
        let rows = statement.query_map([session_id], |row| {
            Ok(json!({
                "tool": row.get::<_, Option<String>>(0)?,
                "calls": row.get::<_, i64>(1)?,
                "failed": row.get::<_, i64>(2)?,
                "pending": row.get::<_, i64>(3)?,
                "avg_ms": row.get::<_, Option<f64>>(4)?,
                "max_ms": row.get::<_, Option<f64>>(5)?,
            }))
        })?;
        rows.collect::<Result<_, _>>()?
    };
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
    transaction.finish()?;
    Ok(ApiResponse::json(&json!({
        "session": session,
        "agents": agents,
        "tool_calls": tool_calls,
        "failures": failures,
        "tools": tools,
        "hooks": hooks,
    })))
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
    transaction.finish()?;
    Ok(ApiResponse::json(&json!({
        "bucket": request.bucket_seconds,
        "since": since,
        "now": now,
        "total": total,
        "per_hook": per_hook,
        "per_machine": per_machine,
        "series": series,
    })))
}

/// Size in bytes of the database file and its WAL.
fn database_sizes(database: &Path) -> (u64, u64) {
    let size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    (size(database), size(Path::new(&wal)))
}

/// The body of `/api/health`; needs no database connection.
pub fn health(stats: &Stats, hub: &Hub, database: &Path) -> ApiResponse {
    let now = now_millis();
    let last_commit = stats.last_commit_ms.load(Ordering::Relaxed);
    let (db_bytes, wal_bytes) = database_sizes(database);
    let mut sources = serde_json::Map::new();
    for source in Source::ALL {
        let counters = stats.source(source);
        sources.insert(
            source.as_str().to_owned(),
            json!({
                "received": counters.received.load(Ordering::Relaxed),
                "stored": counters.stored.load(Ordering::Relaxed),
                "duplicates": counters.duplicates.load(Ordering::Relaxed),
                "rejected": counters.rejected.load(Ordering::Relaxed),
                "acknowledged": counters.acknowledged.load(Ordering::Relaxed),
            }),
        );
    }
    let commits = stats.commits.load(Ordering::Relaxed);
    let micros = stats.commit_micros_total.load(Ordering::Relaxed);
    ApiResponse::json(&json!({
        "ok": stats.write_errors.load(Ordering::Relaxed) == 0 || stats.writer_queue.load(Ordering::Relaxed) == 0,
        "now": now,
        "redis": { "link": stats.redis_link().as_str(), "pending": stats.redis_pending.load(Ordering::Relaxed) },
        "socket": { "connections": stats.socket_connections.load(Ordering::Relaxed) },
        "writer": {
            "queue": stats.writer_queue.load(Ordering::Relaxed),
            "last_commit_ms": if last_commit > 0 { json!(last_commit) } else { Value::Null },
            "last_commit_age_ms": if last_commit > 0 { json!(now - last_commit) } else { Value::Null },
            "last_seq": stats.last_seq.load(Ordering::Relaxed),
            "commits": commits,
            "mean_commit_ms": if commits > 0 { json!(micros as f64 / commits as f64 / 1000.0) } else { Value::Null },
            "write_errors": stats.write_errors.load(Ordering::Relaxed),
        },
        "database": { "path": database.display().to_string(), "bytes": db_bytes, "wal_bytes": wal_bytes },
        "websocket": { "clients": stats.websocket_clients.load(Ordering::Relaxed), "dropped_slow": hub.dropped_slow() },
        "sources": sources,
    }))
}

fn label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The body of `/metrics` in the Prometheus text format (version 0.0.4).
pub fn metrics(stats: &Stats, hub: &Hub, database: &Path) -> ApiResponse {
    let mut out = String::with_capacity(4096);
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let per_source = |read: &dyn Fn(&crate::stats::SourceCounters) -> u64| {
        Source::ALL
            .iter()
            .map(|source| {
                (
                    format!("{{source=\"{}\"}}", source.as_str()),
                    read(stats.source(*source)).to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    family(
        "hooktrail_events_received_total",
        "counter",
        "Lines or entries read, per source.",
        per_source(&|c| c.received.load(Ordering::Relaxed)),
    );
    family(
        "hooktrail_events_stored_total",
        "counter",
        "Events newly stored, per source.",
        per_source(&|c| c.stored.load(Ordering::Relaxed)),
    );
    family(
        "hooktrail_events_duplicate_total",
        "counter",
        "Redelivered events already stored, per source.",
        per_source(&|c| c.duplicates.load(Ordering::Relaxed)),
    );
    family(
        "hooktrail_events_rejected_total",
        "counter",
        "Malformed, oversized or binary input refused, per source.",
        per_source(&|c| c.rejected.load(Ordering::Relaxed)),
    );
    family(
        "hooktrail_events_acknowledged_total",
        "counter",
        "Events acknowledged to their source after commit.",
        per_source(&|c| c.acknowledged.load(Ordering::Relaxed)),
    );
    let per_hook: Vec<(String, String)> = stats
        .stored_per_hook
        .lock()
        .map(|map| {
            map.iter()
                .map(|(hook, count)| (format!("{{hook=\"{}\"}}", label(hook)), count.to_string()))
                .collect()
        })
        .unwrap_or_default();
    family(
        "hooktrail_events_stored_by_hook_total",
        "counter",
        "Events stored, per hook.",
        per_hook,
    );
    family(
        "hooktrail_writer_queue_depth",
        "gauge",
        "Events queued for the writer, not yet committed.",
        vec![(
            String::new(),
            stats.writer_queue.load(Ordering::Relaxed).to_string(),
        )],
    );
    family(
        "hooktrail_last_seq",
        "gauge",
        "Highest seq committed.",
        vec![(
            String::new(),
            stats.last_seq.load(Ordering::Relaxed).to_string(),
        )],
    );
    family(
        "hooktrail_last_commit_timestamp_seconds",
        "gauge",
        "Wall-clock time of the last commit.",
        vec![(
            String::new(),
            format!(
                "{:.3}",
                stats.last_commit_ms.load(Ordering::Relaxed) as f64 / 1000.0
            ),
        )],
    );
    family(
        "hooktrail_write_errors_total",
        "counter",
        "Failed commit attempts.",
        vec![(
            String::new(),
            stats.write_errors.load(Ordering::Relaxed).to_string(),
        )],
    );
    let commits = stats.commits.load(Ordering::Relaxed);
    let mut buckets: Vec<(String, String)> = COMMIT_BUCKETS_MS
        .iter()
        .zip(&stats.commit_buckets)
        .map(|(bound, count)| {
            (
                format!("_bucket{{le=\"{}\"}}", bound / 1000.0),
                count.load(Ordering::Relaxed).to_string(),
            )
        })
        .collect();
    buckets.push(("_bucket{le=\"+Inf\"}".to_owned(), commits.to_string()));
    buckets.push((
        "_sum".to_owned(),
        format!(
            "{:.6}",
            stats.commit_micros_total.load(Ordering::Relaxed) as f64 / 1e6
        ),
    ));
    buckets.push(("_count".to_owned(), commits.to_string()));
    family(
        "hooktrail_commit_duration_seconds",
        "histogram",
        "Latency of the writer's commits.",
        buckets,
    );
    let link = stats.redis_link();
    let links = ["disabled", "connecting", "up", "down"]
        .iter()
        .map(|state| {
            (
                format!("{{state=\"{state}\"}}"),
                u8::from(link.as_str() == *state).to_string(),
            )
        })
        .collect();
    family(
        "hooktrail_redis_link",
        "gauge",
        "Redis link state (1 for the current state).",
        links,
    );
    family(
        "hooktrail_redis_pending",
        "gauge",
        "Entries delivered to the consumer group and not acknowledged.",
        vec![(
            String::new(),
            stats.redis_pending.load(Ordering::Relaxed).to_string(),
        )],
    );
    family(
        "hooktrail_socket_connections",
        "gauge",
        "Open connections on the collector socket.",
        vec![(
            String::new(),
            stats.socket_connections.load(Ordering::Relaxed).to_string(),
        )],
    );
    family(
        "hooktrail_websocket_clients",
        "gauge",
        "Connected WebSocket clients.",
        vec![(
            String::new(),
            stats.websocket_clients.load(Ordering::Relaxed).to_string(),
        )],
    );
    family(
        "hooktrail_websocket_dropped_slow_total",
        "counter",
        "WebSocket clients closed for falling behind.",
        vec![(String::new(), hub.dropped_slow().to_string())],
    );
    let (db_bytes, wal_bytes) = database_sizes(database);
    family(
        "hooktrail_database_bytes",
        "gauge",
        "Size of the database file and its WAL.",
        vec![
            ("{file=\"db\"}".to_owned(), db_bytes.to_string()),
            ("{file=\"wal\"}".to_owned(), wal_bytes.to_string()),
        ],
    );
    ApiResponse {
        status: 200,
        content_type: "text/plain; version=0.0.4; charset=utf-8",
        body: out,
    }
}

/// Routes the database-backed API (`path` starts with `/api/`).
pub fn route_database(connection: &mut Connection, path: &str, query_string: &str) -> ApiResponse {
    let result = if path == "/api/events" {
        events_route(connection, query_string)
    } else if path == "/api/sessions" {
        sessions_route(connection, query_string)
    } else if let Some(raw_id) = path.strip_prefix("/api/sessions/") {
        match query::percent_decode(raw_id) {
            Some(id) if !id.is_empty() && !id.contains('/') => {
                session_route(connection, &id, query_string)
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
