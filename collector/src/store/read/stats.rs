//! Counts and totals: events per time bucket, usage by model, cost per day
//! (`/api/stats`, a session page), and the database families of `/metrics`.

use rusqlite::Connection;

/// Which usage rows [`usage_by_model`] sums.
#[derive(Debug, Clone, Copy)]
pub(crate) enum UsageScope<'a> {
    /// Responses at or after this time (unix ms).
    Since(i64),
    /// One session's responses.
    Session(&'a str),
}

/// Token and cost totals of one model.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ModelUsageRow {
    pub(crate) model: String,
    pub(crate) input_tokens: i64,
    pub(crate) output_tokens: i64,
    pub(crate) cache_write_5m_tokens: i64,
    pub(crate) cache_write_1h_tokens: i64,
    pub(crate) cache_read_tokens: i64,
    pub(crate) web_search_requests: i64,
    /// The sum of the priced responses' cost.
    pub(crate) cost_usd: Option<f64>,
    pub(crate) responses: i64,
    /// Responses without a price: a model with any shows as unknown.
    pub(crate) unpriced: i64,
    /// Claude Code's own cost of the responses it reported over
    /// OpenTelemetry (`usage.otel_cost_usd`), and how many those were.
    pub(crate) otel_cost_usd: Option<f64>,
    pub(crate) otel_responses: i64,
}

/// Token and cost totals per model of the usage rows `scope` selects, the
/// costliest first.
pub(crate) fn usage_by_model(
    connection: &Connection,
    scope: UsageScope<'_>,
) -> rusqlite::Result<Vec<ModelUsageRow>> {
    let filter = match scope {
        UsageScope::Since(_) => "ts >= ?1",
        UsageScope::Session(_) => "session_id = ?1",
    };
    let sql = format!(
        "SELECT model, CAST(TOTAL(input_tokens) AS INTEGER), CAST(TOTAL(output_tokens) AS INTEGER), \
         CAST(TOTAL(cache_write_5m_tokens) AS INTEGER), CAST(TOTAL(cache_write_1h_tokens) AS INTEGER), \
         CAST(TOTAL(cache_read_tokens) AS INTEGER), CAST(TOTAL(web_search_requests) AS INTEGER), SUM(cost_usd), \
         COUNT(*), SUM(cost_usd IS NULL), SUM(otel_cost_usd), COUNT(otel_cost_usd) \
         FROM usage WHERE {filter} GROUP BY model ORDER BY SUM(cost_usd) DESC, model"
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let read = |row: &rusqlite::Row<'_>| {
        Ok(ModelUsageRow {
            model: row.get(0)?,
            input_tokens: row.get(1)?,
            output_tokens: row.get(2)?,
            cache_write_5m_tokens: row.get(3)?,
            cache_write_1h_tokens: row.get(4)?,
            cache_read_tokens: row.get(5)?,
            web_search_requests: row.get(6)?,
            cost_usd: row.get(7)?,
            responses: row.get(8)?,
            unpriced: row.get(9)?,
            otel_cost_usd: row.get(10)?,
            otel_responses: row.get(11)?,
        })
    };
    let rows = match scope {
        UsageScope::Since(since) => statement.query_map([since], read)?,
        UsageScope::Session(session_id) => statement.query_map([session_id], read)?,
    };
    rows.collect()
}

/// Events of one hook from one machine in one time bucket.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EventCountRow {
    /// The bucket's start (unix ms).
    pub(crate) bucket: i64,
    pub(crate) hook: String,
    pub(crate) machine: String,
    pub(crate) count: i64,
}

/// Events since `since` per bucket of `bucket_ms`, hook and machine, by
/// bucket. Whole-minute buckets come from the per-minute rollup the writer
/// keeps (a few rows per minute; `since` should then be a whole minute);
/// other sizes count the events themselves.
pub(crate) fn event_counts(
    connection: &Connection,
    since: i64,
    bucket_ms: i64,
) -> rusqlite::Result<Vec<EventCountRow>> {
    let mut statement = connection.prepare_cached(if bucket_ms % 60_000 == 0 {
        "SELECT (minute / ?2) * ?2 AS bucket, hook, machine, SUM(count) FROM event_counts \
         WHERE minute >= ?1 GROUP BY bucket, hook, machine ORDER BY bucket"
    } else {
        "SELECT (ts / ?2) * ?2 AS bucket, hook, machine, COUNT(*) FROM events WHERE ts >= ?1 \
         GROUP BY bucket, hook, machine ORDER BY bucket"
    })?;
    let rows = statement.query_map(rusqlite::params![since, bucket_ms], |row| {
        Ok(EventCountRow {
            bucket: row.get(0)?,
            hook: row.get(1)?,
            machine: row.get(2)?,
            count: row.get(3)?,
        })
    })?;
    rows.collect()
}

/// Cost and tokens of one day, model, project and machine.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DayCostRow {
    /// The day's start (unix ms, UTC).
    pub(crate) day: i64,
    pub(crate) model: String,
    /// The working directory.
    pub(crate) project: Option<String>,
    pub(crate) machine: Option<String>,
    pub(crate) cost_usd: Option<f64>,
    pub(crate) unpriced_responses: i64,
    pub(crate) tokens: i64,
}

/// Cost per UTC day since `since` (a day's start), by day, then model,
/// project and machine. Read from the per-day rollup that triggers keep
/// (schema 14): a few rows per day, the same figures as grouping the usage
/// rows (`COST_PER_DAY_FROM_USAGE`). `tokens` is cast as that query casts
/// its sum: token counts a hand-made row pushed past `i64` (SQLite then
/// goes on in floating point) read as the largest integer.
pub(crate) fn cost_per_day(
    connection: &Connection,
    since: i64,
) -> rusqlite::Result<Vec<DayCostRow>> {
    let mut statement = connection.prepare_cached(
        "SELECT day, model, cwd, machine, CASE WHEN priced > 0 THEN cost_sum + cost_error END, unpriced, \
         CAST(tokens AS INTEGER) \
         FROM usage_days WHERE day >= ?1 ORDER BY day, model, cwd, machine",
    )?;
    let rows = statement.query_map([since], |row| {
        Ok(DayCostRow {
            day: row.get(0)?,
            model: row.get(1)?,
            project: row.get(2)?,
            machine: row.get(3)?,
            cost_usd: row.get(4)?,
            unpriced_responses: row.get(5)?,
            tokens: row.get(6)?,
        })
    })?;
    rows.collect()
}

/// [`cost_per_day`] computed from the usage rows themselves, as it was
/// before the rollup: for tests that check the rollup against it.
#[cfg(test)]
pub(crate) const COST_PER_DAY_FROM_USAGE: &str =
    "SELECT (ts / 86400000) * 86400000 AS day, model, cwd, machine, SUM(cost_usd), SUM(cost_usd IS NULL), \
     CAST(TOTAL(input_tokens + output_tokens + cache_write_5m_tokens + cache_write_1h_tokens + cache_read_tokens) AS INTEGER) \
     FROM usage WHERE ts >= ?1 GROUP BY day, model, cwd, machine ORDER BY day";

/// How many sessions have one stored state, and whether they have gone
/// quiet (no event within their state's limit).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StateCountRow {
    pub(crate) stored: Option<String>,
    pub(crate) quiet: bool,
    pub(crate) count: i64,
}

/// Sessions by stored state and quietness: working or compacting sessions
/// whose last event is before `working_before`, waiting ones before
/// `waiting_before`, are quiet.
pub(crate) fn session_state_counts(
    connection: &Connection,
    working_before: i64,
    waiting_before: i64,
) -> rusqlite::Result<Vec<StateCountRow>> {
    let mut statement = connection.prepare_cached(
        "SELECT state, ((state IN ('working', 'compacting') AND last_ts < ?1) OR (state = 'waiting' AND last_ts < ?2)), \
         COUNT(*) FROM sessions GROUP BY 1, 2",
    )?;
    let rows = statement.query_map([working_before, waiting_before], |row| {
        Ok(StateCountRow {
            stored: row.get(0)?,
            quiet: row.get(1)?,
            count: row.get(2)?,
        })
    })?;
    rows.collect()
}

/// The token kinds `/metrics` counts, in the order of its samples.
pub(crate) const TOKEN_KINDS: [&str; 5] = [
    "input",
    "output",
    "cache_write_5m",
    "cache_write_1h",
    "cache_read",
];

/// One model's usage for `/metrics`: tokens by [`TOKEN_KINDS`], the priced
/// cost, and how many responses had no price.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct UsageSums {
    pub(crate) tokens: [i64; 5],
    pub(crate) cost_usd: Option<f64>,
    pub(crate) unpriced: i64,
}

impl UsageSums {
    /// The sums of two groups (a model folded into `other`).
    pub(crate) fn add(self, more: UsageSums) -> UsageSums {
        let mut tokens = self.tokens;
        for (sum, count) in tokens.iter_mut().zip(more.tokens) {
            *sum += count;
        }
        let cost_usd = match (self.cost_usd, more.cost_usd) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        UsageSums {
            tokens,
            cost_usd,
            unpriced: self.unpriced + more.unpriced,
        }
    }
}

/// Every model's usage, by model name, from the per-model rollup
/// `usage_models` (schema 17, kept by triggers on `usage`): one row per
/// model, where grouping every usage row cost `/metrics` a scan of them all.
/// `cost_sum + cost_error` is the value [`USAGE_SUMS_FROM_USAGE`]'s `SUM`
/// gives.
pub(crate) fn usage_sums(connection: &Connection) -> rusqlite::Result<Vec<(String, UsageSums)>> {
    read_usage_sums(
        connection,
        "SELECT model, CAST(input_tokens AS INTEGER), CAST(output_tokens AS INTEGER), \
         CAST(cache_write_5m_tokens AS INTEGER), CAST(cache_write_1h_tokens AS INTEGER), \
         CAST(cache_read_tokens AS INTEGER), CASE WHEN priced > 0 THEN cost_sum + cost_error END, \
         unpriced FROM usage_models ORDER BY model",
    )
}

/// What [`usage_sums`] reads, grouped from the usage rows themselves (before
/// schema 17): the rollup is tested against it.
#[cfg(test)]
pub(crate) const USAGE_SUMS_FROM_USAGE: &str =
    "SELECT model, CAST(TOTAL(input_tokens) AS INTEGER), CAST(TOTAL(output_tokens) AS INTEGER), \
     CAST(TOTAL(cache_write_5m_tokens) AS INTEGER), CAST(TOTAL(cache_write_1h_tokens) AS INTEGER), \
     CAST(TOTAL(cache_read_tokens) AS INTEGER), SUM(cost_usd), SUM(cost_usd IS NULL) \
     FROM usage GROUP BY model ORDER BY model";

/// Rows of (model, five token sums, cost, unpriced count) read by `sql`.
pub(crate) fn read_usage_sums(
    connection: &Connection,
    sql: &str,
) -> rusqlite::Result<Vec<(String, UsageSums)>> {
    let mut statement = connection.prepare_cached(sql)?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get(0)?,
            UsageSums {
                tokens: [
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                ],
                cost_usd: row.get(6)?,
                unpriced: row.get(7)?,
            },
        ))
    })?;
    rows.collect()
}
