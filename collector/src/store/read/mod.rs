//! The read side of the database: read-only connections, and every read
//! the HTTP and WebSocket threads make, as typed functions returning rows.
//! The routes in `crate::serve` parse a request, call these and serialize
//! the rows; they hold no SQL.
//!
//! - [`events`]: the page of events (`/api/events`, the WebSocket replay).
//! - [`sessions`]: sessions and their agents.
//! - [`activity`]: a session page's tool calls, hook counts and prompts, in
//!   one walk of the session's events.
//! - [`timeline`]: what `crate::timeline` builds a session's lanes from.
//! - [`stats`]: event counts, usage by model and cost per day
//!   (`/api/stats`), and the database families of `/metrics`.
//! - [`otel`]: Claude Code's OpenTelemetry (issue 22): model spans, API
//!   errors, the time split, the OTel completeness line, activity per day.
//!
//! Every read runs in one deferred transaction of the caller, so a page is
//! one consistent snapshot; in WAL mode readers never hold up the writer.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

pub(crate) mod activity;
pub(crate) mod events;
pub(crate) mod otel;
pub(crate) mod sessions;
pub(crate) mod stats;
pub(crate) mod timeline;

pub(crate) use events::read_events;

/// Opens a read-only connection to the collector's database.
pub(crate) fn open_read_only(database: &Path) -> rusqlite::Result<Connection> {
    // A read-only open can fail for a moment while the writer resets the WAL
    // (SQLITE_CANTOPEN / BUSY); retry briefly before reporting it.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match open_read_only_once(database) {
            Ok(connection) => return Ok(connection),
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                // Backoff while the writer resets the WAL.
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(error) => return Err(error),
        }
    }
}

fn open_read_only_once(database: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open_with_flags(
        database,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    connection.busy_timeout(Duration::from_secs(2))?;
    connection.pragma_update(None, "query_only", true)?;
    connection.pragma_update(None, "cache_size", -16384)?;
    // Touch the schema now, so a failure shows here and not mid-request.
    connection.query_row("SELECT COUNT(*) FROM sqlite_master", [], |_| Ok(()))?;
    Ok(connection)
}

/// The newest `seq` stored (0: none).
pub(crate) fn max_seq(connection: &Connection) -> rusqlite::Result<i64> {
    connection.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |row| {
        row.get(0)
    })
}

/// Whether a session has events that came from hooks (any source but the
/// import): the import leaves such a session's events to the hooks.
pub(crate) fn session_has_live_events(
    connection: &Connection,
    session_id: &str,
) -> rusqlite::Result<bool> {
    connection
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM events WHERE session_id = ?1 AND source != 'import')",
        )?
        .query_row([session_id], |row| row.get(0))
}

/// A count column read leniently: an integer, or a real (a running total
/// that overflowed on rows stored before token counts were bounded),
/// saturated to an integer; NULL or text is 0. One odd row must never
/// fail a whole route.
fn lenient_count(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<i64> {
    Ok(match row.get_ref(index)? {
        ValueRef::Integer(count) => count,
        ValueRef::Real(count) => count as i64,
        _ => 0,
    })
}

/// A dollar column read leniently: a number, or nothing (NULL, or a value
/// that is not a finite number).
fn lenient_dollars(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Option<f64>> {
    Ok(match row.get_ref(index)? {
        ValueRef::Integer(dollars) => Some(dollars as f64),
        ValueRef::Real(dollars) if dollars.is_finite() => Some(dollars),
        _ => None,
    })
}

/// A text column borrowed from its row: NULL (or a blob) is `None`.
fn text<'r>(row: &'r rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Option<&'r str>> {
    row.get_ref(index)
        .map(|value| value.as_str_or_null().ok().flatten())
}
