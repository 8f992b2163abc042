//! Stores the OTLP receiver's records on the writer thread (migration 12):
//! `otel_events`, `otel_metric_points`, and the join of each `api_request`
//! to the usage row of the same `request_id`.
//!
//! The join, both orders:
//! - the transcript's row is there first: it gets `otel_cost_usd`;
//! - the `api_request` is first: a usage row of origin `otel` (hooktrail's
//!   price of Claude Code's token counts in `cost_usd`, Claude Code's cost in
//!   `otel_cost_usd`); the transcript's row, when it comes, retires it
//!   (trigger `usage_otel_retired`), so the response counts once.
//!
//! **Invariant:** storing the same records twice changes nothing (content
//! keys and `INSERT OR IGNORE`), so a batch retried after a failed commit,
//! or an export the exporter retried, is harmless.

use rusqlite::{named_params, Connection, Transaction, TransactionBehavior};

use crate::cost::PriceTable;
use crate::otlp::records::{Batch, MetricPoint, OtelEvent};
use hooktrail_shared::transcript::ResponseUsage;

/// Stores the batches' records in one transaction; nothing (no transaction)
/// when there are none, which is every batch of hook events.
pub(crate) fn store<'a>(
    connection: &mut Connection,
    batches: impl Iterator<Item = &'a Batch>,
    prices: &PriceTable,
) -> rusqlite::Result<()> {
    let batches: Vec<&Batch> = batches.collect();
    if batches.is_empty() {
        return Ok(());
    }
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = hooktrail_shared::time::now_millis();
    for batch in batches {
        for event in &batch.events {
            if insert_event(&transaction, event, now)? {
                join_request(&transaction, event, prices)?;
            }
        }
        for point in &batch.points {
            insert_point(&transaction, point)?;
        }
    }
    transaction.commit()
}

/// Inserts one event; `false` when its key was stored already.
fn insert_event(transaction: &Transaction, event: &OtelEvent, now: i64) -> rusqlite::Result<bool> {
    let changed = transaction
        .prepare_cached(
            "INSERT OR IGNORE INTO otel_events
             (key, name, ts, received_at, session_id, prompt_id, request_id, tool_use_id, duration_ms, cost_usd, attrs)
             VALUES (:key, :name, :ts, :received_at, :session_id, :prompt_id, :request_id, :tool_use_id,
                     :duration_ms, :cost_usd, :attrs)",
        )?
        .execute(named_params! {
            ":key": event.key,
            ":name": event.name,
            ":ts": event.ts,
            ":received_at": now,
            ":session_id": event.session_id,
            ":prompt_id": event.prompt_id,
            ":request_id": event.request_id,
            ":tool_use_id": event.tool_use_id,
            ":duration_ms": event.duration_ms,
            ":cost_usd": event.request.as_ref().map(|request| request.cost_usd),
            ":attrs": event.attrs,
        })?;
    Ok(changed > 0)
}

/// An `api_request`: Claude Code's cost onto the transcript's row of the
/// same request, else a usage row of origin `otel` (see the module doc).
fn join_request(
    transaction: &Transaction,
    event: &OtelEvent,
    prices: &PriceTable,
) -> rusqlite::Result<()> {
    let Some(request) = &event.request else {
        return Ok(());
    };
    if let Some(request_id) = &request.request_id {
        let joined = transaction
            .prepare_cached(
                "UPDATE usage SET otel_cost_usd = :cost WHERE request_id = :request_id AND origin != 'otel'",
            )?
            .execute(named_params! {":cost": request.cost_usd, ":request_id": request_id})?;
        if joined > 0 {
            return Ok(());
        }
    }
    let usage = ResponseUsage {
        message_id: request
            .request_id
            .clone()
            .unwrap_or_else(|| event.key.clone()),
        request_id: request.request_id.clone(),
        model: request.model.clone(),
        ts: Some(event.ts),
        input: request.input_tokens,
        output: request.output_tokens,
        cache_write_5m: request.cache_write_5m_tokens,
        cache_write_1h: request.cache_write_1h_tokens,
        cache_read: request.cache_read_tokens,
        speed: request.speed.clone(),
        ..ResponseUsage::default()
    };
    let key = format!(
        "otel:{}",
        request.request_id.as_deref().unwrap_or(&event.key)
    );
    transaction
        .prepare_cached(
            "INSERT OR IGNORE INTO usage
             (key, message_id, request_id, session_id, prompt_id, machine, cwd, model, ts,
              input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens,
              cost_usd, price_version, origin, speed, otel_cost_usd)
             VALUES (:key, :message_id, :request_id, :session_id, :prompt_id,
                     (SELECT machine FROM sessions WHERE session_id = :session_id),
                     (SELECT cwd FROM sessions WHERE session_id = :session_id),
                     :model, :ts, :input, :output, :cache_write_5m, :cache_write_1h, :cache_read,
                     :cost, :price_version, 'otel', :speed, :otel_cost)",
        )?
        .execute(named_params! {
            ":key": key,
            ":message_id": usage.message_id,
            ":request_id": usage.request_id,
            ":session_id": event.session_id,
            ":prompt_id": event.prompt_id,
            ":model": usage.model,
            ":ts": event.ts,
            ":input": usage.input as i64,
            ":output": usage.output as i64,
            ":cache_write_5m": usage.cache_write_5m as i64,
            ":cache_write_1h": usage.cache_write_1h as i64,
            ":cache_read": usage.cache_read as i64,
            ":cost": prices.cost(&usage),
            ":price_version": prices.version,
            ":speed": usage.speed,
            ":otel_cost": request.cost_usd,
        })?;
    Ok(())
}

fn insert_point(transaction: &Transaction, point: &MetricPoint) -> rusqlite::Result<()> {
    transaction
        .prepare_cached(
            "INSERT OR IGNORE INTO otel_metric_points
             (key, name, session_id, day, ts, start_ts, kind, value, temporality, attrs)
             VALUES (:key, :name, :session_id, :day, :ts, :start_ts, :kind, :value, :temporality, :attrs)",
        )?
        .execute(named_params! {
            ":key": point.key,
            ":name": point.name,
            ":session_id": point.session_id,
            ":day": point.day,
            ":ts": point.ts,
            ":start_ts": point.start_ts,
            ":kind": point.kind,
            ":value": point.value,
            ":temporality": point.temporality.as_str(),
            ":attrs": point.attrs,
        })?;
    Ok(())
}

/// `--retention-days`: Claude Code's events and metric points older than
/// `cutoff` go with the hook events (in the retention step's transaction).
pub(crate) fn expire(transaction: &Transaction, cutoff: i64) -> rusqlite::Result<()> {
    transaction.execute(
        "DELETE FROM otel_events WHERE ts < :cutoff",
        named_params! {":cutoff": cutoff},
    )?;
    transaction.execute(
        "DELETE FROM otel_metric_points WHERE day < :day",
        named_params! {":day": crate::otlp::records::day_of(cutoff)},
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::records::ApiRequest;

    fn database() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let connection = crate::store::open::open(&dir.path().join("events.db")).unwrap();
        connection
            .execute(
                "INSERT INTO sessions (session_id, machine, cwd, first_ts, last_ts, event_count)
                 VALUES ('s', 'm', '/p', 1, 1, 1)",
                [],
            )
            .unwrap();
        (dir, connection)
    }

    fn api_request(request_id: &str, cost_usd: f64) -> Batch {
        Batch {
            events: vec![OtelEvent {
                key: format!("k-{request_id}"),
                name: "api_request".into(),
                ts: 1_000,
                session_id: Some("s".into()),
                prompt_id: Some("p".into()),
                request_id: Some(request_id.into()),
                tool_use_id: None,
                duration_ms: Some(900.0),
                attrs: "{}".into(),
                request: Some(ApiRequest {
                    request_id: Some(request_id.into()),
                    model: "claude-sonnet-4-5".into(),
                    cost_usd,
                    input_tokens: 1000,
                    output_tokens: 100,
                    ..ApiRequest::default()
                }),
            }],
            ..Batch::default()
        }
    }

    /// The transcript's row of a response, as the hooks or the import store it.
    fn transcript_row(connection: &Connection, request_id: &str, cost: f64) {
        connection
            .execute(
                "INSERT INTO usage (key, message_id, request_id, session_id, model, input_tokens, output_tokens, cost_usd, origin)
                 VALUES (:key, :key, :request_id, 's', 'claude-sonnet-4-5', 1000, 100, :cost, 'hook')",
                named_params! {":key": format!("msg-{request_id}"), ":request_id": request_id, ":cost": cost},
            )
            .unwrap();
    }

    /// (rows, origins, SUM(cost_usd), SUM(otel_cost_usd)) of the session's
    /// usage, and its running totals (cost, responses).
    fn totals(connection: &Connection) -> (i64, String, f64, f64, f64, i64) {
        let (rows, origins, cost, otel) = connection
            .query_row(
                "SELECT COUNT(*), group_concat(origin), SUM(cost_usd), SUM(otel_cost_usd) FROM usage WHERE session_id = 's'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .unwrap();
        let (total, responses) = connection
            .query_row(
                "SELECT total_cost_usd, usage_responses FROM sessions WHERE session_id = 's'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        (rows, origins, cost, otel, total, responses)
    }

    #[test]
    fn an_api_request_before_its_transcript_row_counts_once() {
        let (_dir, mut connection) = database();
        let prices = PriceTable::embedded();
        let batch = api_request("req_a", 0.0123);
        store(&mut connection, [&batch].into_iter(), &prices).unwrap();
        let (rows, origins, cost, otel, total, responses) = totals(&connection);
        assert_eq!(
            (rows, origins.as_str(), otel, responses),
            (1, "otel", 0.0123, 1)
        );
        assert!(
            cost > 0.0 && (total - cost).abs() < 1e-12,
            "priced by hooktrail: {cost}"
        );
        // The transcript's row arrives: it retires the otel row and keeps
        // Claude Code's cost.
        transcript_row(&connection, "req_a", 0.02);
        let (rows, origins, cost, otel, total, responses) = totals(&connection);
        assert_eq!(
            (rows, origins.as_str(), otel, responses),
            (1, "hook", 0.0123, 1)
        );
        assert_eq!((cost, total), (0.02, 0.02));
        // The same export again (a retry): nothing changes.
        store(&mut connection, [&batch].into_iter(), &prices).unwrap();
        assert_eq!(totals(&connection).0, 1);
        assert_eq!(
            connection
                .query_row("SELECT COUNT(*) FROM otel_events", [], |row| row
                    .get::<_, i64>(0))
                .unwrap(),
            1
        );
    }

    #[test]
    fn an_api_request_after_its_transcript_row_is_joined_to_it() {
        let (_dir, mut connection) = database();
        transcript_row(&connection, "req_b", 0.02);
        store(
            &mut connection,
            [&api_request("req_b", 0.0199)].into_iter(),
            &PriceTable::embedded(),
        )
        .unwrap();
        let (rows, origins, cost, otel, total, responses) = totals(&connection);
        assert_eq!(
            (rows, origins.as_str(), cost, otel, total, responses),
            (1, "hook", 0.02, 0.0199, 0.02, 1)
        );
    }

    #[test]
    fn retention_takes_old_records_with_it() {
        let (_dir, mut connection) = database();
        let batch = api_request("req_old", 0.5);
        store(
            &mut connection,
            [&batch].into_iter(),
            &PriceTable::embedded(),
        )
        .unwrap();
        let transaction = connection.transaction().unwrap();
        expire(&transaction, 500).unwrap();
        assert_eq!(
            transaction
                .query_row("SELECT COUNT(*) FROM otel_events", [], |row| row
                    .get::<_, i64>(0))
                .unwrap(),
            1,
            "ts 1,000 is after the cutoff"
        );
        expire(&transaction, 2_000).unwrap();
        assert_eq!(
            transaction
                .query_row("SELECT COUNT(*) FROM otel_events", [], |row| row
                    .get::<_, i64>(0))
                .unwrap(),
            0
        );
    }
}
