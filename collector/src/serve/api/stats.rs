//! `/api/stats`: events per time bucket, hook and machine, usage by model,
//! cost per day, and Claude Code's activity metrics per day and project.

use hooktrail_shared::time::now_millis;
use rusqlite::Connection;
use serde_json::json;

use crate::query;
use crate::serve::gate::ApiResponse;
use crate::store::read::stats::{cost_per_day, event_counts, usage_by_model, UsageScope};

use super::usage_json;

pub(super) fn stats_route(
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
    // Cost per day looks back 30 days unless `since` asks for more.
    let cost_since = ((since.min(now - 30 * 86_400_000)) / 86_400_000) * 86_400_000;
    // Whole-minute buckets come from the per-minute rollup, so `since` is
    // rounded down to its minute.
    let since = if bucket_ms % 60_000 == 0 {
        (since / 60_000) * 60_000
    } else {
        since
    };
    let transaction = connection.transaction()?;
    let counts = event_counts(&transaction, since, bucket_ms)?;
    let usage = usage_by_model(&transaction, UsageScope::Since(since))?;
    let days = cost_per_day(&transaction, cost_since)?;
    let activity = crate::store::read::otel::activity_per_day(
        &transaction,
        &crate::otlp::records::day_of(cost_since),
    )?;
    transaction.finish()?;
    let mut per_hook = serde_json::Map::new();
    let mut per_machine = serde_json::Map::new();
    let mut total = 0i64;
    let mut series = Vec::with_capacity(counts.len());
    for row in counts {
        total += row.count;
        for (map, key) in [(&mut per_hook, &row.hook), (&mut per_machine, &row.machine)] {
            let sum = map.entry(key.clone()).or_insert(json!(0));
            *sum = json!(sum.as_i64().unwrap_or(0) + row.count);
        }
        series.push(json!({ "t": row.bucket, "hook": row.hook, "machine": row.machine, "count": row.count }));
    }
    let cost_per_day: Vec<_> = days
        .into_iter()
        .map(|day| {
            json!({
                "day": day.day,
                "model": day.model,
                "project": day.project,
                "machine": day.machine,
                "cost_usd": day.cost_usd,
                "unpriced_responses": day.unpriced_responses,
                "tokens": day.tokens,
            })
        })
        .collect();
    Ok(ApiResponse::json(&json!({
        "usage": usage_json(usage),
        "cost_per_day": cost_per_day,
        "activity_per_day": activity,
        "bucket": request.bucket_seconds,
        "since": since,
        "now": now,
        "total": total,
        "per_hook": per_hook,
        "per_machine": per_machine,
        "series": series,
    })))
}
