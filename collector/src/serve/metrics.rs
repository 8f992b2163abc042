//! `/api/health` and `/metrics` (DESIGN §7): the counters of [`Stats`] and
//! the database's file sizes, with no database connection.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::Ordering;

use hooktrail_shared::envelope::now_millis;
use serde_json::{json, Value};

use crate::event::Source;
use crate::hub::Hub;
use crate::serve::gate::ApiResponse;
use crate::stats::{SourceCounters, Stats, COMMIT_BUCKETS_MS};

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
pub(crate) fn metrics(stats: &Stats, hub: &Hub, database: &Path) -> ApiResponse {
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
