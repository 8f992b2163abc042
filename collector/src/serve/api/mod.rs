//! The database-backed routes of the JSON API (DESIGN §7): `/api/events`,
//! [`sessions`] (`/api/sessions`, `/api/sessions/{id}`), [`timeline`]
//! (`/api/sessions/{id}/timeline`) and [`stats`] (`/api/stats`), over a
//! read-only SQLite connection owned by the calling HTTP thread; and
//! `/api/hooks`, which needs none.
//!
//! A route parses its request, calls [`crate::store::read`] (which holds
//! every query, each read in one deferred transaction, so a page is one
//! consistent snapshot) and serializes the rows it gets back.

use std::fmt::Write as _;

use hooktrail_shared::envelope::{HookEvent, INVALID_HOOK, UNKNOWN_HOOK};
use rusqlite::Connection;
use serde_json::{json, Value};

use crate::query;
use crate::serve::gate::ApiResponse;
use crate::serve::json::push_event_list;
use crate::state::QuietLimits;
use crate::store::read::stats::ModelUsageRow;
use crate::store::read::{max_seq, read_events};

mod sessions;
mod stats;
mod timeline;

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

/// Token and cost totals per model, as `/api/stats` and a session page
/// list them.
fn usage_json(rows: Vec<ModelUsageRow>) -> Vec<Value> {
    rows.into_iter()
        .map(|row| {
            json!({
                "model": row.model,
                "input_tokens": row.input_tokens,
                "output_tokens": row.output_tokens,
                "cache_write_5m_tokens": row.cache_write_5m_tokens,
                "cache_write_1h_tokens": row.cache_write_1h_tokens,
                "cache_read_tokens": row.cache_read_tokens,
                "web_search_requests": row.web_search_requests,
                // A model without a price shows as unknown, never as $0.
                "cost_usd": if row.unpriced > 0 { Value::Null } else { json!(row.cost_usd) },
                "price_known": row.unpriced == 0,
                "responses": row.responses,
                // Claude Code's own figure (OpenTelemetry), for the
                // responses it reported: whose cost is whose.
                "otel_cost_usd": row.otel_cost_usd,
                "otel_responses": row.otel_responses,
            })
        })
        .collect()
}

/// `GET /api/hooks`: the hook names the page's filter offers, in DESIGN
/// §2's order, then the two the collector gives events itself (`Invalid`,
/// `Unknown`). Served from [`HookEvent::ALL`], so the page never keeps a
/// list of its own.
pub(crate) fn hooks_route() -> ApiResponse {
    let names: Vec<&str> = HookEvent::ALL
        .iter()
        .map(|hook| hook.name())
        .chain([INVALID_HOOK, UNKNOWN_HOOK])
        .collect();
    ApiResponse::json(&json!({ "hooks": names }))
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
        sessions::sessions_route(connection, query_string, quiet_limits)
    } else if let Some(raw_id) = path
        .strip_prefix("/api/sessions/")
        .and_then(|rest| rest.strip_suffix("/timeline"))
    {
        // A `/` in the id arrives as `%2F`: only a raw `/` splits the path.
        match query::decode_query_component(raw_id).filter(|_| !raw_id.contains('/')) {
            Some(id) if !id.is_empty() => timeline::timeline_route(connection, &id, query_string),
            _ => return ApiResponse::error(400, "bad session id in the path"),
        }
    } else if let Some(raw_id) = path.strip_prefix("/api/sessions/") {
        // A `/` in the id arrives as `%2F`: only a raw `/` splits the path.
        match query::decode_query_component(raw_id).filter(|_| !raw_id.contains('/')) {
            Some(id) if !id.is_empty() => {
                sessions::session_route(connection, &id, query_string, quiet_limits)
            }
            _ => return ApiResponse::error(400, "bad session id in the path"),
        }
    } else if path == "/api/stats" {
        stats::stats_route(connection, query_string)
    } else {
        return ApiResponse::error(404, "no such route");
    };
    result
        .unwrap_or_else(|error| ApiResponse::error(503, &format!("database read failed: {error}")))
}
