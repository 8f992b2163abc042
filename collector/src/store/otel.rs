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
