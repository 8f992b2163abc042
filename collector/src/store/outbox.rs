//! The alerts outbox (DESIGN §6 `outbox`): alerts are raised inside the
//! writer's transaction, so an alert exists exactly when the state change
//! that raised it is committed, and delivered later by the notifier threads
//! (`alerts/notifier.rs`) through their own connections ([`DeliveryStore`]).
//!
//! - [`install`] gives the writer's connection the rules, in a `TEMP` table
//!   only that connection sees: the writer needs no new field, and the
//!   import's connection (the same `commit_events`) raises nothing.
//! - [`raise`] runs in every commit: the events that put a session in
//!   `waiting`, `failed` or `ended`, the sessions whose usage moved, and the
//!   permission requests the same transaction recorded as pending decisions
//!   (`store/decisions.rs`), are matched against the rules; once a second it
//!   also runs [`tick`]'s checks, so time rules fire under a steady load too.
//! - `store/budget_alerts.rs` raises `budget` alerts from the budget thread,
//!   which alone knows where each budget stands.
//! - [`tick`] runs when the writer is idle: sessions waiting for at least
//!   `after_seconds`, gone quiet, and the day's cost.
//!
//! Once per episode: `UNIQUE(destination, rule, episode)`, with episode keys
//! such as `session:<id>:waiting:<state_since>` (a new wait has a new
//! `state_since`), `session:<id>:failed:<state_since>`,
//! `session:<id>:ended`, `session:<id>:gone_quiet:<last_ts>`,
//! `session:<id>:cost`, `day:<day start>:cost`,
//! `session:<id>:approval:<event id>`, and the budgets' (see
//! `store/budget_alerts.rs`). The check runs before the
//! body is built, so a session waiting for an hour costs one indexed lookup
//! per tick, not a body.
//!
//! Raising never fails a batch: it runs in a savepoint, and an error rolls
//! back only the alerts (logged at most once a minute), never the events.
//!
//! The notifier's connection writes only the delivery columns of `outbox`
//! rows (state, attempts, next attempt, error, sent time), one small
//! autocommit `UPDATE` per attempt, and deletes sent and given-up rows
//! older than `alerts.keep_days` ([`DeliveryStore::prune`]): an exception
//! to "only the writer writes", asked for so that a slow receiver never
//! touches the writer.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use rusqlite::{named_params, Connection, OpenFlags, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::alerts::body::{self, SessionFacts, Subject};
use crate::alerts::config::{Condition, CostPer, Rule};
use crate::ingest::NewEvent;
use crate::log;
use crate::state::State;
use hooktrail_shared::time::now_millis;

/// How often the time rules are checked.
const TICK_INTERVAL_MS: i64 = 1_000;
/// A condition that came due longer ago than this raises nothing: at the
/// first start with alerts, or after a long stop, a year of history must
/// not alert at once.
const LOOKBACK_MS: i64 = 86_400_000;
/// The day's cost is summed at most this often.
const DAY_COST_INTERVAL_MS: i64 = 30_000;

/// What the writer's connection keeps about alerts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WriterRules {
    /// The configured rules.
    pub(crate) rules: Vec<Rule>,
    /// The page's address for deep links.
    pub(crate) public_url: String,
    /// `--quiet-after`, for `gone_quiet` rules.
    pub(crate) quiet_after_ms: i64,
}

/// Gives the writer's connection its rules (see the module doc).
pub(crate) fn install(connection: &Connection, rules: &WriterRules) -> rusqlite::Result<()> {
    let text = serde_json::to_string(rules)
        .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))?;
    connection.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS alert_setup (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             setup TEXT NOT NULL,
             last_tick_ms INTEGER NOT NULL DEFAULT 0)",
    )?;
    connection.execute(
        "INSERT OR REPLACE INTO temp.alert_setup (id, setup, last_tick_ms) VALUES (1, :setup, 0)",
        named_params! { ":setup": text },
    )?;
    Ok(())
}

/// The rules installed on this connection and the last tick's time.
pub(super) fn installed(connection: &Connection) -> rusqlite::Result<Option<(WriterRules, i64)>> {
    let present: i64 = connection
        .prepare_cached(
            "SELECT count(*) FROM sqlite_temp_master WHERE type = 'table' AND name = 'alert_setup'",
        )?
        .query_row([], |row| row.get(0))?;
    if present == 0 {
        return Ok(None);
    }
    let (text, last_tick): (String, i64) = connection
        .prepare_cached("SELECT setup, last_tick_ms FROM temp.alert_setup WHERE id = 1")?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(serde_json::from_str(&text)
        .ok()
        .map(|rules| (rules, last_tick)))
}

/// Raises the alerts of one batch, inside the writer's transaction (see
/// the module doc). Never returns an error that would fail the batch.
pub(crate) fn raise(
    connection: &Connection,
    events: &[&NewEvent],
    seqs: &[i64],
) -> rusqlite::Result<()> {
    let Some((rules, last_tick)) = installed(connection).unwrap_or(None) else {
        return Ok(());
    };
    connection.execute_batch("SAVEPOINT hooktrail_alerts")?;
    let now = now_millis();
    let result = raise_for_batch(connection, &rules, events, seqs, now)
        .and_then(|()| raise_approvals(connection, &rules, events, seqs, now))
        .and_then(|()| {
            if now - last_tick >= TICK_INTERVAL_MS {
                check_time_rules(connection, &rules, now, last_tick)
            } else {
                Ok(())
            }
        });
    match result {
        Ok(()) => connection.execute_batch("RELEASE hooktrail_alerts"),
        Err(error) => {
            warn_rarely(&format!(
                "alerts: cannot raise alerts, the events are stored without them: {error}"
            ));
            connection.execute_batch("ROLLBACK TO hooktrail_alerts; RELEASE hooktrail_alerts")
        }
    }
}

/// The writer's idle-time check of the time rules, in a transaction of its
/// own, at most once a second.
pub(crate) fn tick(connection: &mut Connection) {
    let Some((rules, last_tick)) = installed(connection).unwrap_or(None) else {
        return;
    };
    let now = now_millis();
    if now - last_tick < TICK_INTERVAL_MS {
        return;
    }
    let result = (|| {
        let transaction =
            connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        check_time_rules(&transaction, &rules, now, last_tick)?;
        transaction.commit()
    })();
    if let Err(error) = result {
        warn_rarely(&format!("alerts: cannot check the time rules: {error}"));
    }
}

/// Logs a warning at most once a minute: a broken outbox must not flood
/// the journal at the writer's commit rate.
fn warn_rarely(message: &str) {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = now_millis();
    let last = LAST.load(Ordering::Relaxed);
    if now - last >= 60_000
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        log::warn(message);
    }
}

/// The batch's state changes and cost changes.
fn raise_for_batch(
    connection: &Connection,
    rules: &WriterRules,
    events: &[&NewEvent],
    seqs: &[i64],
    now: i64,
) -> rusqlite::Result<()> {
    let mut touched: Vec<&str> = Vec::new();
    for (event, seq) in events.iter().zip(seqs) {
        let row = &event.row;
        let (Some(session_id), true) = (row.session_id.as_deref(), *seq > 0) else {
            continue;
        };
        // A session's cost moves only with the usage an event carries.
        if event.usage.is_some() && !touched.contains(&session_id) {
            touched.push(session_id);
        }
        let Some(change) = &event.transitions.session else {
            continue;
        };
        if row.ts < now - LOOKBACK_MS {
            continue;
        }
        let wanted = |rule: &&Rule| match (change.state, rule.when) {
            (State::Waiting, Condition::Waiting { after_seconds }) => after_seconds == 0,
            (State::Failed, Condition::Failed) | (State::Ended, Condition::Ended) => true,
            _ => false,
        };
        if !rules.rules.iter().any(|rule| wanted(&rule)) {
            continue;
        }
        let Some(mut facts) = session_facts(connection, session_id)? else {
            continue;
        };
        // The state this event entered: the row may have moved on within
        // the batch (a failure, then the end).
        if facts.state != change.state.as_str() {
            facts.state = change.state.as_str().to_owned();
            facts.state_since = row.ts;
            facts.state_detail = change.detail.clone();
        }
        let episode = match change.state {
            State::Ended => format!("session:{session_id}:ended"),
            state => format!(
                "session:{session_id}:{}:{}",
                state.as_str(),
                facts.state_since
            ),
        };
        for rule in rules.rules.iter().filter(wanted) {
            if rule.admits(&facts.machine, facts.cwd.as_deref()) {
                queue(
                    connection,
                    rules,
                    rule,
                    &episode,
                    &Subject::Session(&facts),
                    now,
                )?;
            }
        }
    }
    let session_cost_rules: Vec<(&Rule, f64)> = rules
        .rules
        .iter()
        .filter_map(|rule| match rule.when {
            Condition::Cost {
                amount_usd,
                per: CostPer::Session,
            } => Some((rule, amount_usd)),
            _ => None,
        })
        .collect();
    if !session_cost_rules.is_empty() {
        for session_id in touched {
            let Some(facts) = session_facts(connection, session_id)? else {
                continue;
            };
            let episode = format!("session:{session_id}:cost");
            for (rule, amount) in &session_cost_rules {
                if facts.cost_usd.is_some_and(|cost| cost >= *amount)
                    && rule.admits(&facts.machine, facts.cwd.as_deref())
                {
                    queue(
                        connection,
                        rules,
                        rule,
                        &episode,
                        &Subject::Session(&facts),
                        now,
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// The permission requests of the batch that the same transaction recorded
/// as pending decisions (`store::decisions::insert_pending`): one
/// `approval_pending` alert each, with the tool asking.
fn raise_approvals(
    connection: &Connection,
    rules: &WriterRules,
    events: &[&NewEvent],
    seqs: &[i64],
    now: i64,
) -> rusqlite::Result<()> {
    if !rules
        .rules
        .iter()
        .any(|rule| rule.when == Condition::ApprovalPending)
    {
        return Ok(());
    }
    for (event, seq) in events.iter().zip(seqs) {
        let row = &event.row;
        let (Some(session_id), Some(_), true) =
            (row.session_id.as_deref(), event.wait_until, *seq > 0)
        else {
            continue;
        };
        let pending: Option<i64> = connection
            .prepare_cached(
                "SELECT 1 FROM decisions WHERE event_id = :event_id AND verdict IS NULL",
            )?
            .query_row(named_params! { ":event_id": row.id }, |row| row.get(0))
            .optional()?;
        if pending.is_none() || row.ts < now - LOOKBACK_MS {
            continue;
        }
        let detail = format!("permission for {}", row.tool.as_deref().unwrap_or("a tool"));
        let raising = Raising {
            when: Condition::ApprovalPending,
            session_id,
            episode: &format!("session:{session_id}:approval:{}", row.id),
            detail: Some(&detail),
        };
        raise_for_session(connection, rules, &raising, now)?;
    }
    Ok(())
}

/// One condition another feature detects for one session.
pub(super) struct Raising<'a> {
    /// The condition (`approval_pending`, `budget`).
    pub(super) when: Condition,
    /// The session it is about.
    pub(super) session_id: &'a str,
    /// Its once-per-episode key (e.g. `session:<id>:approval:<event id>`).
    pub(super) episode: &'a str,
    /// What about: the tool asking, the budget crossed.
    pub(super) detail: Option<&'a str>,
}

/// Raises the alerts of `raising`, inside the caller's transaction, once
/// per episode. Nothing when no rule wants it or the session is unknown.
pub(super) fn raise_for_session(
    connection: &Connection,
    rules: &WriterRules,
    raising: &Raising<'_>,
    now: i64,
) -> rusqlite::Result<()> {
    let Some(mut facts) = session_facts(connection, raising.session_id)? else {
        return Ok(());
    };
    if let Some(detail) = raising.detail {
        facts.state_detail = Some(detail.to_owned());
    }
    if raising.when == Condition::ApprovalPending {
        facts.state = State::Waiting.as_str().to_owned();
    }
    for rule in rules
        .rules
        .iter()
        .filter(|rule| rule.when.word() == raising.when.word())
    {
        if rule.admits(&facts.machine, facts.cwd.as_deref()) {
            queue(
                connection,
                rules,
                rule,
                raising.episode,
                &Subject::Session(&facts),
                now,
            )?;
        }
    }
    Ok(())
}

/// Waiting for long enough, gone quiet, the day's cost.
fn check_time_rules(
    connection: &Connection,
    rules: &WriterRules,
    now: i64,
    last_tick: i64,
) -> rusqlite::Result<()> {
    connection
        .prepare_cached("UPDATE temp.alert_setup SET last_tick_ms = :now WHERE id = 1")?
        .execute(named_params! { ":now": now })?;
    for rule in &rules.rules {
        match rule.when {
            Condition::Waiting { after_seconds } => {
                let due = now - after_seconds as i64 * 1000;
                let sessions = sessions_where(
                    connection,
                    "state = 'waiting' AND state_since <= :due AND state_since >= :oldest",
                    due,
                )?;
                for facts in sessions {
                    let episode =
                        format!("session:{}:waiting:{}", facts.session_id, facts.state_since);
                    if rule.admits(&facts.machine, facts.cwd.as_deref()) {
                        queue(
                            connection,
                            rules,
                            rule,
                            &episode,
                            &Subject::Session(&facts),
                            now,
                        )?;
                    }
                }
            }
            Condition::GoneQuiet => {
                let due = now - rules.quiet_after_ms;
                let sessions = sessions_where(
                    connection,
                    "state IN ('working', 'compacting') AND last_ts <= :due AND last_ts >= :oldest",
                    due,
                )?;
                for mut facts in sessions {
                    // `sessions_where` put the last event's time in
                    // `state_since`: quiet since then.
                    facts.state = crate::state::GONE_QUIET.to_owned();
                    let episode = format!(
                        "session:{}:gone_quiet:{}",
                        facts.session_id, facts.state_since
                    );
                    if rule.admits(&facts.machine, facts.cwd.as_deref()) {
                        queue(
                            connection,
                            rules,
                            rule,
                            &episode,
                            &Subject::Session(&facts),
                            now,
                        )?;
                    }
                }
            }
            Condition::Cost {
                amount_usd,
                per: CostPer::Day,
            } if now / DAY_COST_INTERVAL_MS != last_tick / DAY_COST_INTERVAL_MS => {
                let day_start_ms = now - now.rem_euclid(86_400_000);
                let cost_usd: f64 = connection
                    .prepare_cached(
                        "SELECT COALESCE(SUM(cost_usd), 0) FROM usage WHERE ts >= :start",
                    )?
                    .query_row(named_params! { ":start": day_start_ms }, |row| row.get(0))?;
                if cost_usd >= amount_usd {
                    let episode = format!("day:{day_start_ms}:cost");
                    let subject = Subject::Day {
                        day_start_ms,
                        cost_usd,
                    };
                    queue(connection, rules, rule, &episode, &subject, now)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The columns [`facts_from_row`] reads.
const FACTS_COLUMNS: &str = "session_id, title, machine, cwd, state, state_since, state_detail,
     total_cost_usd, usage_responses, unpriced_responses, model, last_ts";

fn facts_from_row(row: &Row<'_>) -> rusqlite::Result<SessionFacts> {
    let responses: i64 = row.get(8)?;
    let unpriced: i64 = row.get(9)?;
    Ok(SessionFacts {
        session_id: row.get(0)?,
        title: row.get(1)?,
        machine: row.get(2)?,
        cwd: row.get(3)?,
        state: row
            .get::<_, Option<String>>(4)?
            .unwrap_or_else(|| "idle".to_owned()),
        state_since: row.get::<_, Option<i64>>(5)?.unwrap_or(0),
        state_detail: row.get(6)?,
        // Unknown, not $0, while no response has a price.
        cost_usd: (responses == 0 || unpriced < responses)
            .then(|| row.get::<_, Option<f64>>(7))
            .transpose()?
            .flatten(),
        model: row.get(10)?,
    })
}

pub(super) fn session_facts(
    connection: &Connection,
    session_id: &str,
) -> rusqlite::Result<Option<SessionFacts>> {
    connection
        .prepare_cached(&format!(
            "SELECT {FACTS_COLUMNS} FROM sessions WHERE session_id = :id"
        ))?
        .query_row(named_params! { ":id": session_id }, facts_from_row)
        .optional()
}

/// Sessions matching `condition` (with `:due` and `:oldest`); for
/// `gone_quiet` the caller reads `last_ts` from `state_since`'s place, so
/// the episode key is the last event's time.
fn sessions_where(
    connection: &Connection,
    condition: &str,
    due: i64,
) -> rusqlite::Result<Vec<SessionFacts>> {
    let quiet = condition.contains("last_ts <=");
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {FACTS_COLUMNS} FROM sessions WHERE {condition} LIMIT 1000"
    ))?;
    let rows = statement.query_map(
        named_params! { ":due": due, ":oldest": due - LOOKBACK_MS },
        |row| {
            let mut facts = facts_from_row(row)?;
            if quiet {
                facts.state_since = row.get(11)?;
            }
            Ok(facts)
        },
    )?;
    rows.collect()
}

/// Queues one alert per destination of `rule`, unless this episode was
/// already raised for it.
pub(super) fn queue(
    connection: &Connection,
    rules: &WriterRules,
    rule: &Rule,
    episode: &str,
    subject: &Subject<'_>,
    now: i64,
) -> rusqlite::Result<()> {
    let session_id = match subject {
        Subject::Session(facts)
        | Subject::Budget {
            session: Some(facts),
            ..
        } => Some(facts.session_id.as_str()),
        Subject::Day { .. } | Subject::Budget { session: None, .. } => None,
    };
    for destination in &rule.to {
        let raised: Option<i64> = connection
            .prepare_cached(
                "SELECT 1 FROM outbox WHERE destination = :destination AND rule = :rule AND episode = :episode",
            )?
            .query_row(
                named_params! { ":destination": destination, ":rule": rule.name, ":episode": episode },
                |row| row.get(0),
            )
            .optional()?;
        if raised.is_some() {
            continue;
        }
        let delivery_id = hooktrail_shared::envelope::new_event_id();
        let text = body::build(&delivery_id, rule, subject, &rules.public_url, now);
        connection
            .prepare_cached(
                "INSERT OR IGNORE INTO outbox
                 (delivery_id, destination, rule, episode, session_id, body, created_at, state, attempts, next_attempt_at)
                 VALUES (:delivery_id, :destination, :rule, :episode, :session_id, :body, :now, 'pending', 0, :now)",
            )?
            .execute(named_params! {
                ":delivery_id": delivery_id,
                ":destination": destination,
                ":rule": rule.name,
                ":episode": episode,
                ":session_id": session_id,
                ":body": text,
                ":now": now,
            })?;
    }
    Ok(())
}

/// An alert waiting for delivery.
#[derive(Debug, Clone)]
pub(crate) struct PendingAlert {
    /// The row.
    pub(crate) id: i64,
    /// Sent as `X-Hooktrail-Delivery`: the same on every retry, so a
    /// receiver can drop duplicates.
    pub(crate) delivery_id: String,
    /// The alert's JSON.
    pub(crate) body: String,
    /// Failed attempts so far (the backoff's exponent).
    pub(crate) attempts: u32,
    /// When it was raised (the give-up clock starts here).
    pub(crate) created_at: i64,
    /// Not before this time (unix ms).
    pub(crate) next_attempt_at: i64,
}

/// How an attempt ended, as stored.
pub(crate) enum Attempt<'a> {
    /// Delivered; `answer` is what the receiver said (status, a short body).
    Sent { answer: &'a str },
    /// Failed; tried again at `next_attempt_at`.
    Retry {
        error: &'a str,
        next_attempt_at: i64,
    },
    /// Failed for longer than the retry window: given up.
    GaveUp { error: &'a str },
}

/// A notifier thread's own connection: reads its destination's next alert,
/// writes how each attempt went (see the module doc).
pub(crate) struct DeliveryStore {
    /// Read-write, used only for the delivery columns of `outbox`.
    connection: Connection,
}

impl DeliveryStore {
    /// Opens the database the writer already created and migrated.
    pub(crate) fn open(path: &Path) -> Result<DeliveryStore, String> {
        let connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|connection| {
            connection.busy_timeout(Duration::from_secs(5))?;
            Ok(connection)
        })
        .map_err(|error| {
            format!(
                "alerts: cannot open the database {}: {error}",
                path.display()
            )
        })?;
        Ok(DeliveryStore { connection })
    }

    /// The oldest undelivered alert of `destination`: delivery is in order.
    pub(crate) fn next_pending(&self, destination: &str) -> rusqlite::Result<Option<PendingAlert>> {
        self.connection
            .prepare_cached(
                "SELECT id, delivery_id, body, attempts, created_at, next_attempt_at FROM outbox
                 WHERE destination = :destination AND state = 'pending' ORDER BY id LIMIT 1",
            )?
            .query_row(named_params! { ":destination": destination }, |row| {
                Ok(PendingAlert {
                    id: row.get(0)?,
                    delivery_id: row.get(1)?,
                    body: row.get(2)?,
                    attempts: row.get::<_, i64>(3)?.max(0) as u32,
                    created_at: row.get(4)?,
                    next_attempt_at: row.get(5)?,
                })
            })
            .optional()
    }

    /// Stores how an attempt at alert `id` went.
    pub(crate) fn record(&self, id: i64, attempt: Attempt<'_>, now: i64) -> rusqlite::Result<()> {
        let (state, error, next, sent_at, answer) = match attempt {
            Attempt::Sent { answer } => ("sent", None, None, Some(now), Some(answer)),
            Attempt::Retry {
                error,
                next_attempt_at,
            } => ("pending", Some(error), Some(next_attempt_at), None, None),
            Attempt::GaveUp { error } => ("failed", Some(error), None, None, None),
        };
        self.connection
            .prepare_cached(
                "UPDATE outbox SET state = :state, attempts = attempts + (:state <> 'sent'),
                        last_error = COALESCE(:error, last_error),
                        next_attempt_at = COALESCE(:next, next_attempt_at),
                        sent_at = :sent_at, answer = :answer
                 WHERE id = :id",
            )?
            .execute(named_params! {
                ":state": state, ":error": error, ":next": next, ":sent_at": sent_at,
                ":answer": answer, ":id": id,
            })?;
        Ok(())
    }
}

impl DeliveryStore {
    /// Deletes the sent and given-up alerts raised before `before` (unix
    /// ms), a thousand at a time so the writer never waits long; returns
    /// how many. Pending alerts stay until delivered or given up.
    pub(crate) fn prune(&self, before: i64) -> rusqlite::Result<usize> {
        let mut deleted = 0;
        loop {
            let count = self
                .connection
                .prepare_cached(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox
                     WHERE state IN ('sent', 'failed') AND created_at < :before LIMIT 1000)",
                )?
                .execute(named_params! { ":before": before })?;
            deleted += count;
            if count < 1000 {
                return Ok(deleted);
            }
        }
    }
}

/// The most recent alerts, newest first, for `/api/alerts`.
pub(crate) fn recent(connection: &Connection, limit: i64) -> rusqlite::Result<Vec<Value>> {
    let mut statement = connection.prepare_cached(
        "SELECT id, delivery_id, destination, rule, session_id, body, created_at, state, attempts,
                next_attempt_at, last_error, sent_at, answer
         FROM outbox ORDER BY id DESC LIMIT :limit",
    )?;
    let rows = statement.query_map(named_params! { ":limit": limit }, |row| {
        let body: String = row.get(5)?;
        Ok(serde_json::json!({
            "id": row.get::<_, i64>(0)?,
            "delivery_id": row.get::<_, String>(1)?,
            "destination": row.get::<_, String>(2)?,
            "rule": row.get::<_, String>(3)?,
            "session_id": row.get::<_, Option<String>>(4)?,
            "alert": serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
            "created_at": row.get::<_, i64>(6)?,
            "state": row.get::<_, String>(7)?,
            "attempts": row.get::<_, i64>(8)?,
            "next_attempt_at": row.get::<_, Option<i64>>(9)?,
            "last_error": row.get::<_, Option<String>>(10)?,
            "sent_at": row.get::<_, Option<i64>>(11)?,
            "answer": row.get::<_, Option<String>>(12)?,
        }))
    })?;
    rows.collect()
}

/// Alerts per destination and delivery state, for `/metrics`.
pub(crate) fn counts(connection: &Connection) -> rusqlite::Result<Vec<(String, String, i64)>> {
    let mut statement = connection.prepare_cached(
        "SELECT destination, state, COUNT(*) FROM outbox GROUP BY destination, state ORDER BY 1, 2",
    )?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> Connection {
        let mut connection = Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut connection).unwrap();
        let rule = |when, to: &str| Rule {
            name: Condition::word(&when).to_owned(),
            when,
            machines: vec![],
            projects: vec![],
            to: vec![to.to_owned()],
        };
        install(
            &connection,
            &WriterRules {
                rules: vec![
                    rule(Condition::ApprovalPending, "phone"),
                    rule(Condition::Waiting { after_seconds: 5 }, "me"),
                    rule(Condition::GoneQuiet, "me"),
                ],
                public_url: "http://h".into(),
                quiet_after_ms: 600_000,
            },
        )
        .unwrap();
        connection
    }

    fn add_session(connection: &Connection, id: &str, state: &str, since: i64) {
        connection
            .execute(
                "INSERT INTO sessions (session_id, machine, cwd, first_ts, last_ts, state, state_since)
                 VALUES (?1, 'box', '/p', ?2, ?2, ?3, ?2)",
                rusqlite::params![id, since, state],
            )
            .unwrap();
    }

    fn alerts(connection: &Connection) -> Vec<(String, String, String)> {
        let mut statement = connection
            .prepare("SELECT destination, rule, episode FROM outbox ORDER BY id")
            .unwrap();
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap();
        rows.map(Result::unwrap).collect()
    }

    #[test]
    fn another_features_condition_is_raised_once_per_episode() {
        let connection = database();
        add_session(&connection, "s", "working", now_millis());
        let rules = installed(&connection).unwrap().unwrap().0;
        let raising = |when, episode| Raising {
            when,
            session_id: "s",
            episode,
            detail: Some("permission for Bash"),
        };
        for _ in 0..2 {
            let approval = raising(Condition::ApprovalPending, "session:s:approval:e1");
            raise_for_session(&connection, &rules, &approval, now_millis()).unwrap();
        }
        let budget = raising(Condition::Budget, "session:s:budget");
        raise_for_session(&connection, &rules, &budget, now_millis()).unwrap();
        assert_eq!(
            alerts(&connection),
            [(
                "phone".to_owned(),
                "approval_pending".to_owned(),
                "session:s:approval:e1".to_owned()
            )]
        );
        let body: String = connection
            .query_row("SELECT body FROM outbox", [], |row| row.get(0))
            .unwrap();
        assert!(
            body.contains("\"state\":\"waiting\"") && body.contains("permission for Bash"),
            "{body}"
        );
    }

    #[test]
    fn a_wait_alerts_once_when_due_and_a_new_wait_alerts_again() {
        let connection = database();
        let now = now_millis();
        add_session(&connection, "fresh", "waiting", now - 1_000);
        add_session(&connection, "due", "waiting", now - 6_000);
        add_session(&connection, "ancient", "waiting", now - 3 * LOOKBACK_MS);
        let rules = installed(&connection).unwrap().unwrap().0;
        check_time_rules(&connection, &rules, now, 0).unwrap();
        check_time_rules(&connection, &rules, now + 1_000, now).unwrap();
        let due = format!("session:due:waiting:{}", now - 6_000);
        assert_eq!(
            alerts(&connection),
            [("me".to_owned(), "waiting".to_owned(), due)],
            "only the session waiting for 5 s, once; not one older than a day"
        );
        connection
            .execute(
                "UPDATE sessions SET state_since = ?1 WHERE session_id = 'due'",
                [now - 5_500],
            )
            .unwrap();
        check_time_rules(&connection, &rules, now + 2_000, now + 1_000).unwrap();
        assert_eq!(alerts(&connection).len(), 2, "a new wait is a new episode");
    }

    #[test]
    fn a_working_session_without_events_for_quiet_after_alerts_as_gone_quiet_once() {
        let connection = database();
        let now = now_millis();
        add_session(&connection, "quiet", "working", now - 700_000);
        add_session(&connection, "busy", "working", now - 1_000);
        let rules = installed(&connection).unwrap().unwrap().0;
        check_time_rules(&connection, &rules, now, 0).unwrap();
        check_time_rules(&connection, &rules, now + 1_000, now).unwrap();
        let episode = format!("session:quiet:gone_quiet:{}", now - 700_000);
        assert_eq!(
            alerts(&connection),
            [("me".to_owned(), "gone_quiet".to_owned(), episode)]
        );
        let body: String = connection
            .query_row("SELECT body FROM outbox", [], |row| row.get(0))
            .unwrap();
        assert!(body.contains("\"state\":\"gone_quiet\""), "{body}");
    }
}
