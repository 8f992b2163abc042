//! The SQL of remote approval (issue 18, DESIGN §6 `decisions`, `away`).
//!
//! A `PermissionRequest` whose hook waits (its envelope carries
//! `wait_until`) gets a pending row in the writer's transaction
//! ([`insert_pending`]). A decision made on the page claims that row with one
//! conditional `UPDATE` ([`claim`]): of two decisions racing (a double click,
//! a replay) exactly one changes the row, the other is told 409. Decisions
//! are rare and come from HTTP threads, so they use a connection of their
//! own ([`DecisionStore`]) with the busy timeout, beside the writer's.

use std::path::Path;

use rusqlite::{named_params, Connection, OptionalExtension};
use serde_json::{json, Value};

use crate::ingest::NewEvent;

/// Records a waiting request, in the transaction that stores its event.
pub(crate) fn insert_pending(
    transaction: &rusqlite::Transaction<'_>,
    event: &NewEvent,
    expires_at: i64,
) -> rusqlite::Result<()> {
    let row = &event.row;
    transaction
        .prepare_cached(
            "INSERT OR IGNORE INTO decisions
             (event_id, kind, session_id, machine, tool, requested_at, expires_at)
             VALUES (:event_id, 'permission', :session_id, :machine, :tool, :requested_at, :expires_at)",
        )?
        .execute(named_params! {
            ":event_id": row.id,
            ":session_id": row.session_id,
            ":machine": row.machine,
            ":tool": row.tool,
            ":requested_at": row.ts,
            ":expires_at": expires_at,
        })?;
    Ok(())
}

/// The read-write connection decisions are recorded with.
pub(crate) struct DecisionStore {
    /// Its own connection (WAL, busy timeout), beside the writer's.
    connection: Connection,
}

/// A request as the decision needs it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// Its session (signed into the decision).
    pub(crate) session_id: String,
    /// `redis`, `socket` or `spool`: where the hook waits, if anywhere.
    pub(crate) source: String,
    /// The stored (redacted) payload: the input hash is taken from it.
    pub(crate) payload: String,
    /// When the hook stops waiting (unix ms).
    pub(crate) expires_at: i64,
    /// Already decided.
    pub(crate) decided: bool,
}

/// What one decision asks to record.
#[derive(Debug, Clone)]
pub(crate) struct Claim<'a> {
    /// The request.
    pub(crate) event_id: &'a str,
    /// `allow` or `deny`.
    pub(crate) verdict: &'a str,
    /// The person's reason.
    pub(crate) reason: &'a str,
    /// The deciding token's name.
    pub(crate) decided_by: &'a str,
    /// The hash of the stored tool call the decision is bound to.
    pub(crate) input_hash: &'a str,
    /// Now (unix ms).
    pub(crate) now: i64,
}

impl DecisionStore {
    /// Opens the database (created and migrated by the writer's `open`).
    pub(crate) fn open(path: &Path) -> Result<DecisionStore, String> {
        Ok(DecisionStore {
            connection: crate::store::open::open(path)?,
        })
    }

    /// The request with this event id, if it is one that waited.
    pub(crate) fn request(&self, event_id: &str) -> rusqlite::Result<Option<Request>> {
        self.connection
            .query_row(
                "SELECT d.session_id, e.source, e.payload, d.expires_at, d.verdict IS NOT NULL
                 FROM decisions AS d JOIN events AS e ON e.id = d.event_id
                 WHERE d.event_id = :event_id",
                named_params! {":event_id": event_id},
                |row| {
                    Ok(Request {
                        session_id: row.get::<_, Option<String>>(0)?.unwrap_or_default(),
                        source: row.get(1)?,
                        payload: row.get(2)?,
                        expires_at: row.get(3)?,
                        decided: row.get(4)?,
                    })
                },
            )
            .optional()
    }

    /// Records the decision if the request is still pending and not
    /// expired; returns whether this call decided it.
    pub(crate) fn claim(&self, claim: &Claim) -> rusqlite::Result<bool> {
        let changed = self.connection.execute(
            "UPDATE decisions SET verdict = :verdict, reason = :reason, decided_by = :decided_by,
                    input_hash = :input_hash, decided_at = :now
             WHERE event_id = :event_id AND verdict IS NULL AND expires_at > :now",
            named_params! {
                ":verdict": claim.verdict,
                ":reason": claim.reason,
                ":decided_by": claim.decided_by,
                ":input_hash": claim.input_hash,
                ":now": claim.now,
                ":event_id": claim.event_id,
            },
        )?;
        Ok(changed == 1)
    }

    /// Records whether the hook took the decision: `hook` or `not_taken`.
    pub(crate) fn set_delivered(&self, event_id: &str, delivered: &str) -> rusqlite::Result<()> {
        self.connection.execute(
            "UPDATE decisions SET delivered = :delivered WHERE event_id = :event_id",
            named_params! {":delivered": delivered, ":event_id": event_id},
        )?;
        Ok(())
    }

    /// Turns the away switch on or off for `machine` (`*` = every machine).
    pub(crate) fn set_away(&self, machine: &str, on: bool, now: i64) -> rusqlite::Result<()> {
        self.connection.execute(
            "INSERT INTO away (machine, \"on\", since) VALUES (:machine, :on, :now)
             ON CONFLICT(machine) DO UPDATE SET \"on\" = excluded.\"on\",
               since = CASE WHEN away.\"on\" = excluded.\"on\" THEN away.since ELSE excluded.since END",
            named_params! {":machine": machine, ":on": on, ":now": now},
        )?;
        Ok(())
    }
}

/// Which requests a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listing {
    /// Not decided, and the hook still waits.
    Pending,
    /// Decided (the audit trail), newest first.
    Decided,
    /// Never decided before the hook stopped waiting.
    Expired,
}

/// The requests of one listing, as JSON objects, at most `limit`.
pub(crate) fn list(
    connection: &Connection,
    listing: Listing,
    now: i64,
    limit: i64,
) -> rusqlite::Result<Vec<Value>> {
    let condition = match listing {
        Listing::Pending => "d.verdict IS NULL AND d.expires_at > :now ORDER BY d.requested_at",
        Listing::Decided => "d.verdict IS NOT NULL AND :now = :now ORDER BY d.decided_at DESC",
        Listing::Expired => "d.verdict IS NULL AND d.expires_at <= :now ORDER BY d.expires_at DESC",
    };
    let sql = format!(
        "SELECT d.event_id, d.session_id, d.machine, d.tool, d.verdict, d.reason, d.decided_by,
                d.requested_at, d.decided_at, d.expires_at, d.delivered, d.input_hash,
                e.payload, e.cwd, e.agent_id
         FROM decisions AS d LEFT JOIN events AS e ON e.id = d.event_id
         WHERE {condition} LIMIT :limit"
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let rows = statement.query_map(named_params! {":now": now, ":limit": limit}, |row| {
        let payload: Option<String> = row.get(12)?;
        let tool_input = payload
            .as_deref()
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .and_then(|mut value| value.get_mut("tool_input").map(Value::take))
            .unwrap_or(Value::Null);
        Ok(json!({
            "event_id": row.get::<_, String>(0)?,
            "session_id": row.get::<_, Option<String>>(1)?,
            "machine": row.get::<_, Option<String>>(2)?,
            "tool": row.get::<_, Option<String>>(3)?,
            "verdict": row.get::<_, Option<String>>(4)?,
            "reason": row.get::<_, Option<String>>(5)?,
            "decided_by": row.get::<_, Option<String>>(6)?,
            "requested_at": row.get::<_, i64>(7)?,
            "decided_at": row.get::<_, Option<i64>>(8)?,
            "expires_at": row.get::<_, i64>(9)?,
            "delivered": row.get::<_, Option<String>>(10)?,
            "input_hash": row.get::<_, Option<String>>(11)?,
            "cwd": row.get::<_, Option<String>>(13)?,
            "agent_id": row.get::<_, Option<String>>(14)?,
            "tool_input": tool_input,
        }))
    })?;
    rows.collect()
}

/// The away switches that are on: machine names, `*` for every machine.
pub(crate) fn away_machines(connection: &Connection) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut statement = connection
        .prepare_cached("SELECT machine, since FROM away WHERE \"on\" = 1 ORDER BY machine")?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    rows.collect()
}
