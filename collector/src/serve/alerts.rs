//! The alerts' side of HTTP (issue 20): `GET /api/alerts?limit=N` (the most
//! recent alerts, newest first, each with its delivery state) and the
//! `hooktrail_alerts{destination,state}` family of `/metrics`. Reads the
//! outbox through `store::outbox` on the worker's read-only connection.

use std::fmt::Write;

use rusqlite::Connection;
use serde_json::json;

use super::gate::ApiResponse;
use crate::store::outbox;

/// Alerts per page when `limit=` is not given, and the most allowed.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

/// `GET /api/alerts?limit=N`.
pub(crate) fn route(connection: &Connection, query_string: &str) -> ApiResponse {
    let mut limit = DEFAULT_LIMIT;
    for (name, value) in query_string
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
    {
        match (name, value.parse::<i64>()) {
            ("limit", Ok(number)) if (1..=MAX_LIMIT).contains(&number) => limit = number,
            ("limit", _) => {
                return ApiResponse::error(400, "limit: a number of alerts from 1 to 500")
            }
            _ => return ApiResponse::error(400, &format!("unknown parameter {name:?}")),
        }
    }
    match outbox::recent(connection, limit) {
        Ok(alerts) => ApiResponse::json(&json!({ "alerts": alerts })),
        Err(error) => ApiResponse::error(503, &format!("database read failed: {error}")),
    }
}

/// `hooktrail_alerts{destination,state}`: alerts sent, failed (given up)
/// and pending per destination; empty when the outbox cannot be read.
pub(crate) fn metrics_family(connection: &Connection) -> String {
    let Ok(counts) = outbox::counts(connection) else {
        return String::new();
    };
    let mut out = String::from(
        "# HELP hooktrail_alerts Alerts by destination and delivery state (sent, failed: given up, pending).\n# TYPE hooktrail_alerts gauge\n",
    );
    let mut destinations: Vec<&str> = counts.iter().map(|(name, _, _)| name.as_str()).collect();
    destinations.dedup();
    for destination in destinations {
        for state in ["sent", "failed", "pending"] {
            let count = counts
                .iter()
                .find(|(name, known, _)| name == destination && known == state)
                .map_or(0, |(_, _, count)| *count);
            let name = destination
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = writeln!(
                out,
                "hooktrail_alerts{{destination=\"{name}\",state=\"{state}\"}} {count}"
            );
        }
    }
    out
}
