//! `/api/health` and `/metrics` (DESIGN §7): the counters of [`Stats`] and
//! the database's file sizes; `/metrics` also reads sessions by state and
//! usage by model over the caller's read-only connection.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::Ordering;

use hooktrail_shared::envelope::{now_millis, HookEvent};
use serde_json::{json, Value};

use crate::event::Source;
use crate::hub::Hub;
use crate::serve::gate::ApiResponse;
use crate::state::{QuietLimits, GONE_QUIET, SHOWN_STATES};
use crate::stats::{SourceCounters, Stats, COMMIT_BUCKETS_MS};
use rusqlite::Connection;

/// One model's usage: tokens by kind, the priced cost, and how many rows
/// had no price.
type UsageSums = ([(&'static str, i64); 5], Option<f64>, i64);

/// Size in bytes of the database file and its WAL.
fn database_sizes(database: &Path) -> (u64, u64) {
    let size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    (size(database), size(Path::new(&wal)))
}

/// The body of `/api/health`; needs no database connection.
pub(crate) fn health(stats: &Stats, hub: &Hub, database: &Path) -> ApiResponse {
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
    let listener_down_since = stats.http_listener_down_since_ms.load(Ordering::Relaxed);
    ApiResponse::json(&json!({
        "ok": (stats.write_errors.load(Ordering::Relaxed) == 0 || stats.writer_queue.load(Ordering::Relaxed) == 0)
            && listener_down_since == 0,
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
        "usage": { "refused": stats.usage_refused.load(Ordering::Relaxed) },
        "http": {
            "listener": if listener_down_since == 0 { "accepting" } else { "restarting" },
            "listener_restarts": stats.http_listener_restarts.load(Ordering::Relaxed),
        },
    }))
}

/// The most unknown values one label shows: each new hook, model or rule
/// name would add series for good (3,000 unknown hook names made `/metrics`
/// 775 KB). Past it, values are summed under `other`; the ones kept are the
/// first by name, so a value never leaves `other` and its count only grows.
const MAX_UNKNOWN_LABEL_VALUES: usize = 32;

/// The label value for everything past [`MAX_UNKNOWN_LABEL_VALUES`].
const OTHER_LABEL: &str = "other";

/// `values` by name, the known ones and the first unknown ones kept, the
/// rest summed (with `add`) under [`OTHER_LABEL`].
fn group_unknown<V: Copy>(
    mut values: Vec<(String, V)>,
    known: impl Fn(&str) -> bool,
    add: impl Fn(V, V) -> V,
) -> Vec<(String, V)> {
    values.sort_by(|a, b| a.0.cmp(&b.0));
    let (mut kept, mut unknown, mut other) = (Vec::new(), 0, None);
    for (name, value) in values {
        if known(&name) || (name != OTHER_LABEL && unknown < MAX_UNKNOWN_LABEL_VALUES) {
            unknown += usize::from(!known(&name));
            kept.push((name, value));
        } else {
            other = Some(other.map_or(value, |sum| add(sum, value)));
        }
    }
    kept.extend(other.map(|sum| (OTHER_LABEL.to_owned(), sum)));
    kept
}

/// The counts of a `Stats` map by label, grouped by [`group_unknown`].
fn counts_by_label(
    map: &std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    name: &str,
    known: impl Fn(&str) -> bool,
) -> Vec<(String, String)> {
    let values = map
        .lock()
        .map(|map| {
            map.iter()
                .map(|(key, count)| (key.clone(), *count))
                .collect()
        })
        .unwrap_or_default();
    group_unknown(values, known, |a, b| a + b)
        .into_iter()
        .map(|(key, count)| (format!("{{{name}=\"{}\"}}", label(&key)), count.to_string()))
        .collect()
}

fn label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The body of `/metrics` in the Prometheus text format (version 0.0.4).
pub(crate) fn metrics(
    stats: &Stats,
    hub: &Hub,
    database: &Path,
    reader: Option<(&mut Connection, QuietLimits)>,
) -> ApiResponse {
    let mut out = String::with_capacity(4096);
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let per_source = |read: &dyn Fn(&SourceCounters) -> u64| {
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
    let per_hook = counts_by_label(&stats.stored_per_hook, "hook", |hook| {
        HookEvent::from_name(hook) != HookEvent::Other
    });
    family(
        "hooktrail_events_stored_by_hook_total",
        "counter",
        "Events stored, per hook.",
        per_hook,
    );
    let per_rule = counts_by_label(&stats.redactions_per_rule, "rule", |_| false);
    family(
        "hooktrail_redactions_total",
        "counter",
        "Secrets replaced in stored events, per redaction rule (by the emitter or the collector).",
        per_rule,
    );
    family(
        "hooktrail_usage_refused_total",
        "counter",
        "API responses whose usage was refused for an impossible token count (over 10,000,000 of a kind): never stored.",
        vec![(
            String::new(),
            stats.usage_refused.load(Ordering::Relaxed).to_string(),
        )],
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
        "hooktrail_http_listener_restarts_total",
        "counter",
        "Times the HTTP listener was restarted after its accept loop ended (out of file descriptors, say).",
        vec![(
            String::new(),
            stats.http_listener_restarts.load(Ordering::Relaxed).to_string(),
        )],
    );
    family(
        "hooktrail_socket_closed_over_budget_total",
        "counter",
        "Socket connections closed because unfinished lines on all connections passed their memory budget.",
        vec![(
            String::new(),
            stats.socket_closed_over_budget.load(Ordering::Relaxed).to_string(),
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
        "hooktrail_redis_stream_length",
        "gauge",
        "Entries in the Redis stream (XINFO STREAM length); -1 when unknown.",
        vec![(
            String::new(),
            stats
                .redis_stream_length
                .load(Ordering::Relaxed)
                .to_string(),
        )],
    );
    family(
        "hooktrail_redis_group_lag",
        "gauge",
        "Entries in the stream the consumer group has not read (XINFO GROUPS lag); -1 when Redis cannot tell.",
        vec![(
            String::new(),
            stats.redis_group_lag.load(Ordering::Relaxed).to_string(),
        )],
    );
    family(
        "hooktrail_redis_trimmed_unread_total",
        "counter",
        "Stream entries trimmed (MAXLEN) or deleted before the consumer group read them: lost events.",
        vec![(
            String::new(),
            stats.redis_trimmed_unread.load(Ordering::Relaxed).to_string(),
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
    if let Some((connection, quiet_limits)) = reader {
        // What the database knows: a failed read leaves these families out
        // rather than failing the counters above.
        if let Ok(text) = database_families(connection, quiet_limits) {
            out.push_str(&text);
        }
        out.push_str(&super::alerts::metrics_family(connection));
    }
    ApiResponse {
        status: 200,
        content_type: "text/plain; version=0.0.4; charset=utf-8",
        body: out,
        set_cookie: None,
    }
}

/// Sessions by state, and tokens and cost by model, read from the database
/// in one snapshot.
fn database_families(
    connection: &mut Connection,
    quiet_limits: QuietLimits,
) -> rusqlite::Result<String> {
    let now = now_millis();
    let transaction = connection.transaction()?;
    let mut by_state: std::collections::BTreeMap<&'static str, i64> =
        SHOWN_STATES.iter().map(|state| (*state, 0)).collect();
    {
        let mut statement = transaction.prepare_cached(
            "SELECT state, ((state IN ('working', 'compacting') AND last_ts < ?1) OR (state = 'waiting' AND last_ts < ?2)), \
             COUNT(*) FROM sessions GROUP BY 1, 2",
        )?;
        let rows = statement.query_map(
            [now - quiet_limits.working_ms, now - quiet_limits.waiting_ms],
            |row| {
                Ok((
                    row.get::<_, Option<String>>(0)?,
                    row.get::<_, bool>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            },
        )?;
        for row in rows {
            let (stored, quiet, count) = row?;
            let shown = if quiet {
                GONE_QUIET
            } else {
                let stored = stored.as_deref().unwrap_or("idle");
                SHOWN_STATES
                    .iter()
                    .copied()
                    .find(|state| *state == stored)
                    .unwrap_or("idle")
            };
            *by_state.entry(shown).or_default() += count;
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP hooktrail_sessions Sessions by their current state.\n# TYPE hooktrail_sessions gauge"
    );
    for (state, count) in by_state {
        let _ = writeln!(out, "hooktrail_sessions{{state=\"{state}\"}} {count}");
    }
    let mut tokens = String::new();
    let mut cost = String::new();
    {
        let mut statement = transaction.prepare_cached(
            "SELECT model, CAST(TOTAL(input_tokens) AS INTEGER), CAST(TOTAL(output_tokens) AS INTEGER), \
             CAST(TOTAL(cache_write_5m_tokens) AS INTEGER), CAST(TOTAL(cache_write_1h_tokens) AS INTEGER), \
             CAST(TOTAL(cache_read_tokens) AS INTEGER), SUM(cost_usd), SUM(cost_usd IS NULL) \
             FROM usage GROUP BY model ORDER BY model",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                [
                    ("input", row.get::<_, i64>(1)?),
                    ("output", row.get::<_, i64>(2)?),
                    ("cache_write_5m", row.get::<_, i64>(3)?),
                    ("cache_write_1h", row.get::<_, i64>(4)?),
                    ("cache_read", row.get::<_, i64>(5)?),
                ],
                row.get::<_, Option<f64>>(6)?,
                row.get::<_, i64>(7)?,
            ))
        })?;
        let rows = rows
            .map(|row| {
                row.map(|(model, kinds, dollars, unpriced)| (model, (kinds, dollars, unpriced)))
            })
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let add = |(mut kinds, dollars, unpriced): UsageSums,
                   (more, more_dollars, more_unpriced): UsageSums| {
            for (sum, (_, count)) in kinds.iter_mut().zip(more) {
                sum.1 += count;
            }
            let dollars = match (dollars, more_dollars) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            };
            (kinds, dollars, unpriced + more_unpriced)
        };
        for (model, (kinds, dollars, unpriced)) in group_unknown(rows, |_| false, add) {
            let model = label(&model);
            for (kind, count) in kinds {
                let _ = writeln!(
                    tokens,
                    "hooktrail_tokens_total{{model=\"{model}\",kind=\"{kind}\"}} {count}"
                );
            }
            // A model without a price has no cost sample at all: absent, not $0.
            if unpriced == 0 {
                let _ = writeln!(
                    cost,
                    "hooktrail_cost_usd_total{{model=\"{model}\"}} {}",
                    dollars.unwrap_or(0.0)
                );
            }
        }
    }
    transaction.finish()?;
    let _ = writeln!(
        out,
        "# HELP hooktrail_tokens_total Tokens used, by model and kind, read from the transcripts.\n# TYPE hooktrail_tokens_total counter"
    );
    out.push_str(&tokens);
    let _ = writeln!(
        out,
        "# HELP hooktrail_cost_usd_total Cost in USD by model at the price table's rates (models without a price are left out).\n# TYPE hooktrail_cost_usd_total counter"
    );
    out.push_str(&cost);
    Ok(out)
}
