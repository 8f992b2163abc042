//! `/api/health` and `/metrics` (DESIGN §7): the counters of [`Stats`] and
//! the database's file sizes; `/metrics` also reads sessions by state and
//! usage by model over the caller's read-only connection.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use hooktrail_shared::envelope::HookEvent;
use hooktrail_shared::time::now_millis;
use serde_json::{json, Value};

use crate::event::Source;
use crate::hub::Hub;
use crate::serve::gate::ApiResponse;
use crate::state::{QuietLimits, GONE_QUIET, SHOWN_STATES};
use crate::stats::{SourceCounters, Stats, COMMIT_BUCKETS_MS};
use crate::store::read::stats::{session_state_counts, usage_sums, UsageSums, TOKEN_KINDS};
use rusqlite::Connection;

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
                "redacted_again": counters.redacted_again.load(Ordering::Relaxed),
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
        "search_index": search_index_health(stats, now),
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

/// How far the search index is behind the stored events (issue 21): the
/// mark, the events past it and since when (`null`: caught up).
fn search_index_health(stats: &Stats, now: i64) -> Value {
    let since = stats.search_behind_since_ms.load(Ordering::Relaxed);
    json!({
        "indexed_seq": stats.search_indexed_seq.load(Ordering::Relaxed),
        "behind": stats.search_behind.load(Ordering::Relaxed).max(0),
        "behind_ms": if since > 0 { json!((now - since).max(0)) } else { Value::Null },
    })
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

/// What the families of `/metrics` are read from.
struct Sources<'a> {
    stats: &'a Stats,
    hub: &'a Hub,
    database: &'a Path,
}

/// A family's samples: (labels, value), the labels written as they appear
/// after the name (`{source="redis"}`, `_bucket{le="0.001"}`, or nothing).
type Samples = Vec<(String, String)>;

/// One family of `/metrics`: its `# HELP` and `# TYPE` lines, and how to
/// read its samples.
struct Family {
    name: &'static str,
    /// `counter`, `gauge` or `histogram`.
    kind: &'static str,
    help: &'static str,
    samples: fn(&Sources<'_>) -> Samples,
}

/// One unlabelled sample.
fn one(value: impl ToString) -> Samples {
    vec![(String::new(), value.to_string())]
}

/// One sample per source, of the counter `read` picks.
fn per_source(sources: &Sources<'_>, read: fn(&SourceCounters) -> &AtomicU64) -> Samples {
    Source::ALL
        .iter()
        .map(|source| {
            (
                format!("{{source=\"{}\"}}", source.as_str()),
                read(sources.stats.source(*source))
                    .load(Ordering::Relaxed)
                    .to_string(),
            )
        })
        .collect()
}

/// The commit latency histogram: a bucket per bound, `+Inf`, sum, count.
fn commit_histogram(sources: &Sources<'_>) -> Samples {
    let stats = sources.stats;
    let commits = stats.commits.load(Ordering::Relaxed);
    let mut buckets: Samples = COMMIT_BUCKETS_MS
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
    buckets
}

/// The Redis link: 1 for the current state, 0 for the others.
fn redis_link(sources: &Sources<'_>) -> Samples {
    let link = sources.stats.redis_link();
    ["disabled", "connecting", "up", "down"]
        .iter()
        .map(|state| {
            (
                format!("{{state=\"{state}\"}}"),
                u8::from(link.as_str() == *state).to_string(),
            )
        })
        .collect()
}

/// The families of `/metrics` that need no database, in their order.
const FAMILIES: &[Family] = &[
    Family {
        name: "hooktrail_events_received_total",
        kind: "counter",
        help: "Lines or entries read, per source.",
        samples: |s| per_source(s, |c| &c.received),
    },
    Family {
        name: "hooktrail_events_stored_total",
        kind: "counter",
        help: "Events newly stored, per source.",
        samples: |s| per_source(s, |c| &c.stored),
    },
    Family {
        name: "hooktrail_events_duplicate_total",
        kind: "counter",
        help: "Redelivered events already stored, per source.",
        samples: |s| per_source(s, |c| &c.duplicates),
    },
    Family {
        name: "hooktrail_events_rejected_total",
        kind: "counter",
        help: "Malformed, oversized or binary input refused, per source.",
        samples: |s| per_source(s, |c| &c.rejected),
    },
    Family {
        name: "hooktrail_events_redacted_again_total",
        kind: "counter",
        help: "Received events the collector redacted itself, per source: they named no redaction or another one (older emitters, old spool files, other publishers, another version or other redaction settings).",
        samples: |s| per_source(s, |c| &c.redacted_again),
    },
    Family {
        name: "hooktrail_events_acknowledged_total",
        kind: "counter",
        help: "Events acknowledged to their source after commit.",
        samples: |s| per_source(s, |c| &c.acknowledged),
    },
    Family {
        name: "hooktrail_events_stored_by_hook_total",
        kind: "counter",
        help: "Events stored, per hook.",
        samples: |s| {
            counts_by_label(&s.stats.stored_per_hook, "hook", |hook| {
                HookEvent::from_name(hook) != HookEvent::Other
            })
        },
    },
    Family {
        name: "hooktrail_redactions_total",
        kind: "counter",
        help: "Secrets replaced in stored events, per redaction rule (by the emitter or the collector).",
        samples: |s| counts_by_label(&s.stats.redactions_per_rule, "rule", |_| false),
    },
    Family {
        name: "hooktrail_usage_refused_total",
        kind: "counter",
        help: "API responses whose usage was refused for an impossible token count (over 10,000,000 of a kind): never stored.",
        samples: |s| one(s.stats.usage_refused.load(Ordering::Relaxed)),
    },
    Family {
        name: "hooktrail_writer_queue_depth",
        kind: "gauge",
        help: "Events queued for the writer, not yet committed.",
        samples: |s| one(s.stats.writer_queue.load(Ordering::Relaxed)),
    },
    Family {
        name: "hooktrail_last_seq",
        kind: "gauge",
        help: "Highest seq committed.",
        samples: |s| one(s.stats.last_seq.load(Ordering::Relaxed)),
    },
    Family {
        name: "hooktrail_search_indexed_seq",
        kind: "gauge",
        help: "The search index's mark: every event up to this seq is searchable.",
        samples: |s| one(s.stats.search_indexed_seq.load(Ordering::Relaxed)),
    },
    Family {
        name: "hooktrail_search_index_behind_events",
        kind: "gauge",
        help: "Stored events not in the search index yet (the index follows the writer).",
        samples: |s| one(s.stats.search_behind.load(Ordering::Relaxed).max(0)),
    },
    Family {
        name: "hooktrail_search_index_behind_seconds",
        kind: "gauge",
        help: "How long the search index has been behind the stored events (0: caught up).",
        samples: |s| {
            let since = s.stats.search_behind_since_ms.load(Ordering::Relaxed);
            let ms = if since > 0 { (now_millis() - since).max(0) } else { 0 };
            one(format!("{:.3}", ms as f64 / 1000.0))
        },
    },
    Family {
        name: "hooktrail_last_commit_timestamp_seconds",
        kind: "gauge",
        help: "Wall-clock time of the last commit.",
        samples: |s| {
            let ms = s.stats.last_commit_ms.load(Ordering::Relaxed);
            one(format!("{:.3}", ms as f64 / 1000.0))
        },
    },
    Family {
        name: "hooktrail_http_listener_restarts_total",
        kind: "counter",
        help: "Times the HTTP listener was restarted after its accept loop ended (out of file descriptors, say).",
        samples: |s| one(s.stats.http_listener_restarts.load(Ordering::Relaxed)),
    },
    Family {
        name: "hooktrail_socket_closed_over_budget_total",
        kind: "counter",
        help: "Socket connections closed because unfinished lines on all connections passed their memory budget.",
        samples: |s| one(s.stats.socket_closed_over_budget.load(Ordering::Relaxed)),
    },
    Family {
        name: "hooktrail_otlp_requests_total",
        kind: "counter",
        help: "OTLP exports received (--otlp), by outcome: stored (200) or refused (4xx, 503).",
        samples: |s| {
            let otlp = &s.stats.otlp;
            let requests = otlp.requests.load(Ordering::Relaxed);
            let refused = otlp.refused.load(Ordering::Relaxed);
            vec![
                ("{outcome=\"accepted\"}".to_owned(), requests.saturating_sub(refused).to_string()),
                ("{outcome=\"refused\"}".to_owned(), refused.to_string()),
            ]
        },
    },
    Family {
        name: "hooktrail_otlp_records_total",
        kind: "counter",
        help: "OTLP log records and data points stored, or refused inside accepted exports (partial_success).",
        samples: |s| {
            let otlp = &s.stats.otlp;
            vec![
                ("{outcome=\"stored\"}".to_owned(), otlp.records.load(Ordering::Relaxed).to_string()),
                ("{outcome=\"rejected\"}".to_owned(), otlp.rejected_records.load(Ordering::Relaxed).to_string()),
            ]
        },
    },
    Family {
        name: "hooktrail_write_errors_total",
        kind: "counter",
        help: "Failed commit attempts.",
        samples: |s| one(s.stats.write_errors.load(Ordering::Relaxed)),
    },
    Family {
        name: "hooktrail_commit_duration_seconds",
        kind: "histogram",
        help: "Latency of the writer's commits.",
        samples: commit_histogram,
    },
    Family {
        name: "hooktrail_redis_link",
        kind: "gauge",
        help: "Redis link state (1 for the current state).",
        samples: redis_link,
    },
    Family {
        name: "hooktrail_redis_pending",
        kind: "gauge",
        help: "Entries delivered to the consumer group and not acknowledged.",
        samples: |s| one(s.stats.redis_pending.load(Ordering::Relaxed)),
    },
    Family {
        name: "hooktrail_redis_stream_length",
        kind: "gauge",
        help: "Entries in the Redis stream (XINFO STREAM length); -1 when unknown.",
        samples: |s| one(s.stats.redis_stream_length.load(Ordering::Relaxed)),
    },
    Family {
        name: "hooktrail_redis_group_lag",
        kind: "gauge",
        help: "Entries in the stream the consumer group has not read (XINFO GROUPS lag); -1 when Redis cannot tell.",
        samples: |s| one(s.stats.redis_group_lag.load(Ordering::Relaxed)),
    },
    Family {
        name: "hooktrail_redis_trimmed_unread_total",
        kind: "counter",
        help: "Stream entries trimmed (MAXLEN) or deleted before the consumer group read them: lost events.",
        samples: |s| one(s.stats.redis_trimmed_unread.load(Ordering::Relaxed)),
    },
    Family {
        name: "hooktrail_socket_connections",
        kind: "gauge",
        help: "Open connections on the collector socket.",
        samples: |s| one(s.stats.socket_connections.load(Ordering::Relaxed)),
    },
    Family {
        name: "hooktrail_websocket_clients",
        kind: "gauge",
        help: "Connected WebSocket clients.",
        samples: |s| one(s.stats.websocket_clients.load(Ordering::Relaxed)),
    },
    Family {
        name: "hooktrail_websocket_dropped_slow_total",
        kind: "counter",
        help: "WebSocket clients whose live queue overflowed (they read on from the database).",
        samples: |s| one(s.hub.dropped_slow()),
    },
    Family {
        name: "hooktrail_database_bytes",
        kind: "gauge",
        help: "Size of the database file and its WAL.",
        samples: |s| {
            let (db_bytes, wal_bytes) = database_sizes(s.database);
            vec![
                ("{file=\"db\"}".to_owned(), db_bytes.to_string()),
                ("{file=\"wal\"}".to_owned(), wal_bytes.to_string()),
            ]
        },
    },
];

/// Appends one family: its `# HELP` and `# TYPE` lines, then its samples.
fn push_family(out: &mut String, name: &str, kind: &str, help: &str, samples: Samples) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// The body of `/metrics` in the Prometheus text format (version 0.0.4).
pub(crate) fn metrics(
    stats: &Stats,
    hub: &Hub,
    database: &Path,
    reader: Option<(&mut Connection, QuietLimits)>,
) -> ApiResponse {
    let mut out = String::with_capacity(4096);
    let sources = Sources {
        stats,
        hub,
        database,
    };
    for family in FAMILIES {
        let samples = (family.samples)(&sources);
        push_family(&mut out, family.name, family.kind, family.help, samples);
    }
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

/// The state a session shows, from its stored state and whether it went
/// quiet; an unknown stored state shows as idle.
fn shown(stored: Option<&str>, quiet: bool) -> &'static str {
    if quiet {
        return GONE_QUIET;
    }
    let stored = stored.unwrap_or("idle");
    SHOWN_STATES
        .iter()
        .copied()
        .find(|state| *state == stored)
        .unwrap_or("idle")
}

/// Sessions by state, and tokens and cost by model, read from the database
/// in one snapshot.
fn database_families(
    connection: &mut Connection,
    quiet_limits: QuietLimits,
) -> rusqlite::Result<String> {
    let now = now_millis();
    let transaction = connection.transaction()?;
    let states = session_state_counts(
        &transaction,
        now - quiet_limits.working_ms,
        now - quiet_limits.waiting_ms,
    )?;
    let usage = usage_sums(&transaction)?;
    transaction.finish()?;
    let mut by_state: std::collections::BTreeMap<&'static str, i64> =
        SHOWN_STATES.iter().map(|state| (*state, 0)).collect();
    for row in states {
        *by_state
            .entry(shown(row.stored.as_deref(), row.quiet))
            .or_default() += row.count;
    }
    let mut out = String::new();
    let sessions = by_state
        .into_iter()
        .map(|(state, count)| (format!("{{state=\"{state}\"}}"), count.to_string()))
        .collect();
    push_family(
        &mut out,
        "hooktrail_sessions",
        "gauge",
        "Sessions by their current state.",
        sessions,
    );
    let (mut tokens, mut cost) = (Vec::new(), Vec::new());
    for (model, sums) in group_unknown(usage, |_| false, UsageSums::add) {
        let model = label(&model);
        for (kind, count) in TOKEN_KINDS.iter().zip(sums.tokens) {
            tokens.push((
                format!("{{model=\"{model}\",kind=\"{kind}\"}}"),
                count.to_string(),
            ));
        }
        // A model without a price has no cost sample at all: absent, not $0.
        if sums.unpriced == 0 {
            let dollars = sums.cost_usd.unwrap_or(0.0);
            cost.push((format!("{{model=\"{model}\"}}"), dollars.to_string()));
        }
    }
    push_family(
        &mut out,
        "hooktrail_tokens_total",
        "counter",
        "Tokens used, by model and kind, read from the transcripts.",
        tokens,
    );
    push_family(
        &mut out,
        "hooktrail_cost_usd_total",
        "counter",
        "Cost in USD by model at the price table's rates (models without a price are left out).",
        cost,
    );
    Ok(out)
}
