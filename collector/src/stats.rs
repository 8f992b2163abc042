//! Counters shared by every thread, read by `/api/health` and `/metrics`.
//!
//! Plain atomics: the writer and the readers bump them without locks, and the
//! HTTP side reads a consistent-enough snapshot.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use crate::event::Source;

/// Counters of one source.
#[derive(Debug, Default)]
pub struct SourceCounters {
    /// Lines or entries read from the source.
    pub received: AtomicU64,
    /// Events newly inserted into `events`.
    pub stored: AtomicU64,
    /// Events whose id was already stored (redeliveries).
    pub duplicates: AtomicU64,
    /// Lines refused as malformed, oversized or binary.
    pub rejected: AtomicU64,
    /// Events the collector redacted itself because their `redacted_with`
    /// named no redaction or another one: older emitters, old spool files,
    /// other publishers, or emitters of another version or with other
    /// redaction settings (it grows with every event of such a machine).
    pub redacted_again: AtomicU64,
    /// Events acknowledged back to the source after their commit.
    pub acknowledged: AtomicU64,
}

/// State of the Redis link, for health and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RedisLink {
    /// No Redis configured (local mode).
    Disabled = 0,
    /// Trying to connect, or backing off after a failure.
    Connecting = 1,
    /// Connected and reading.
    Up = 2,
    /// The last attempt failed; backing off.
    Down = 3,
}

impl RedisLink {
    /// The name used in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RedisLink::Disabled => "disabled",
            RedisLink::Connecting => "connecting",
            RedisLink::Up => "up",
            RedisLink::Down => "down",
        }
    }
}

/// Upper bounds (ms) of the commit latency histogram.
pub(crate) const COMMIT_BUCKETS_MS: [f64; 10] = [
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0, 5000.0,
];

/// Every counter of the collector.
#[derive(Debug, Default)]
pub struct Stats {
    /// Per-source counters, indexed by [`Source`].
    sources: [SourceCounters; 4],
    /// Events queued for the writer and not yet committed.
    pub writer_queue: AtomicI64,
    /// Wall-clock ms of the last successful commit (0: none yet).
    pub last_commit_ms: AtomicI64,
    /// Highest `seq` committed so far.
    pub last_seq: AtomicI64,
    /// Commits done, and their total and per-bucket latency, for `/metrics`.
    pub commits: AtomicU64,
    /// Sum of commit latencies in microseconds.
    pub commit_micros_total: AtomicU64,
    /// Cumulative histogram counts, one per `COMMIT_BUCKETS_MS` bound.
    pub commit_buckets: [AtomicU64; 10],
    /// Failed commit attempts (busy database, disk full, read-only file).
    pub write_errors: AtomicU64,
    /// [`RedisLink`] as its `u8`.
    redis_link: AtomicU8,
    /// Entries pending in the consumer group (delivered, not acknowledged).
    pub redis_pending: AtomicI64,
    /// Open socket connections.
    pub socket_connections: AtomicI64,
    /// Connected WebSocket clients.
    pub websocket_clients: AtomicI64,
    /// Events stored per hook name, for `/metrics`.
    pub stored_per_hook: Mutex<BTreeMap<String, u64>>,
    /// Redactions in stored events per rule (the emitter's and the
    /// collector's own), for `/metrics`.
    pub redactions_per_rule: Mutex<BTreeMap<String, u64>>,
    /// Wall-clock ms when the writer last went round its loop; the systemd
    /// watchdog is only fed while this is recent, so a stuck writer gets the
    /// service restarted.
    pub writer_heartbeat_ms: AtomicI64,
    /// API responses whose usage was refused for an impossible token count
    /// (over `cost::MAX_TOKENS_PER_KIND` of a kind): never stored.
    pub usage_refused: AtomicU64,
    /// Events deleted by `--retention-days`.
    pub retention_deleted: AtomicU64,
    /// Times the Redis link was established (the first time included).
    pub redis_connects: AtomicU64,
    /// Wall-clock ms when the collector started, for uptime.
    pub started_ms: AtomicI64,
    /// Wall-clock ms since when the HTTP listener has not been accepting
    /// (0: it is), so `/api/health` turns not-ok and the systemd watchdog
    /// stops being fed when restarting it keeps failing.
    pub http_listener_down_since_ms: AtomicI64,
    /// Times the HTTP listener was restarted after its accept loop ended.
    pub http_listener_restarts: AtomicU64,
    /// The stream's length (`XINFO STREAM`), -1 when Redis did not say.
    pub redis_stream_length: AtomicI64,
    /// Entries in the stream the group has not read yet (`XINFO GROUPS`
    /// `lag`), -1 when Redis cannot tell (after a trim or deletion).
    pub redis_group_lag: AtomicI64,
    /// Entries trimmed (`MAXLEN ~`) or deleted before the group read them:
    /// lost events, counted and logged when seen.
    pub redis_trimmed_unread: AtomicU64,
    /// Socket connections closed because all connections' unfinished lines
    /// together passed their memory budget.
    pub socket_closed_over_budget: AtomicU64,
    /// The OTLP receiver's counters (issue 22).
    pub otlp: std::sync::Arc<OtlpCounters>,
    /// The search index's mark (`search_index_mark`): every stored event up
    /// to this `seq` is searchable (issue 21; `store::indexer`).
    pub search_indexed_seq: AtomicI64,
    /// Stored events past the mark, by `seq`: what search does not see yet.
    pub search_behind: AtomicI64,
    /// Wall-clock ms since when the index has been behind (0: caught up).
    pub search_behind_since_ms: AtomicI64,
}

/// The OTLP receiver's counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct OtlpCounters {
    /// Export requests received.
    pub requests: AtomicU64,
    /// Requests refused (4xx, 503).
    pub refused: AtomicU64,
    /// Records (log records, data points) stored.
    pub records: AtomicU64,
    /// Records refused inside accepted exports (`partial_success`).
    pub rejected_records: AtomicU64,
}

impl Stats {
    /// The counters of one source.
    pub fn source(&self, source: Source) -> &SourceCounters {
        &self.sources[source.index()]
    }

    /// Records one commit's latency.
    pub fn record_commit(&self, elapsed: std::time::Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.commit_micros_total
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        let millis = elapsed.as_secs_f64() * 1000.0;
        for (bound, bucket) in COMMIT_BUCKETS_MS.iter().zip(&self.commit_buckets) {
            if millis <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The Redis link state.
    pub fn redis_link(&self) -> RedisLink {
        match self.redis_link.load(Ordering::Relaxed) {
            1 => RedisLink::Connecting,
            2 => RedisLink::Up,
            3 => RedisLink::Down,
            _ => RedisLink::Disabled,
        }
    }

    /// Sets the Redis link state; returns the previous one, so callers can log
    /// changes once instead of once per retry.
    pub fn set_redis_link(&self, link: RedisLink) -> RedisLink {
        let previous = self.redis_link.swap(link as u8, Ordering::Relaxed);
        match previous {
            1 => RedisLink::Connecting,
            2 => RedisLink::Up,
            3 => RedisLink::Down,
            _ => RedisLink::Disabled,
        }
    }
}
