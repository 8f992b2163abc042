//! The search index follows the writer (issue 21): events are acknowledged
//! when their rows commit, and their text goes into `events_fts` afterwards,
//! in the indexer's own short transactions on the writer's connection and
//! thread, between batches.
//!
//! **Invariants.**
//! - `search_index_mark.indexed_seq` (migration 13) is the high-water mark:
//!   every stored event with `seq <= indexed_seq` is in `events_fts` (or has
//!   no searchable text), and none above it is. An indexing step moves the
//!   mark in the same transaction as the rows it adds, so a crash loses
//!   nothing: the next start carries on from the mark.
//! - SQLite reuses the rowids of deleted rows at the top of the table (no
//!   `AUTOINCREMENT`). Retention never deletes the newest row, but a person
//!   deleting rows with `sqlite3` could, and the next event would get a
//!   `seq` at or below the mark. So
//!   [`commit_events`](super::writer::commit_events) lowers the mark to just
//!   below the batch's first new `seq` in the batch's own transaction; every
//!   event still stored above that point is then one of the new ones, so
//!   nothing is indexed twice and nothing is skipped.
//! - The writer comes first. A step runs when the writer's queue has
//!   stayed empty for [`SETTLE`] (an empty queue right after a commit is
//!   often a source between two reads), or when the index has waited
//!   [`MAX_WAIT`] (so a steady stream cannot keep search stale for long;
//!   [`SATURATED_MAX_WAIT`] while the writer's batches are full);
//!   a step ends after [`BUSY_STEP`] when it interrupts a stream (else
//!   [`IDLE_STEP`]).
//! - Only one process indexes at a time: a step reads the mark inside its
//!   own `BEGIN IMMEDIATE`, so an import running beside the collector (which
//!   stores but does not index) never makes it index an event twice.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hooktrail_shared::time::now_millis;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::search::searchable_text;
use crate::stats::Stats;

/// How long the index may stay behind while the writer has events waiting
/// before one step runs anyway: search freshness under a steady stream.
pub(crate) const MAX_WAIT: Duration = Duration::from_millis(200);

/// How long the index may stay behind while the writer is saturated (its
/// last batch was full) before one step runs anyway. In a burst the index
/// cannot keep up whatever its share (it costs the writer more per event
/// than the rows), so a step every [`MAX_WAIT`] only took ingest's time
/// (2.5% of it) and the catch-up after the burst does the work; this keeps
/// the mark moving during a long one.
pub(crate) const SATURATED_MAX_WAIT: Duration = Duration::from_secs(2);

/// How busy the writer is when it asks whether a step is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriterLoad {
    /// Its queue has stayed empty for [`SETTLE`].
    Idle,
    /// Events are waiting; its last batch was not full.
    Busy,
    /// Its last batch was full (the most events a transaction takes): a
    /// burst.
    Saturated,
}

/// The longest step while events wait for the writer: what indexing may add
/// to an acknowledgement.
pub(crate) const BUSY_STEP: Duration = Duration::from_millis(5);

/// The longest step while the writer's queue is empty: long enough for the
/// FTS segment of one transaction to hold several hundred events, short
/// enough that an event arriving meanwhile waits little.
pub(crate) const IDLE_STEP: Duration = Duration::from_millis(10);

/// How long the writer's queue must stay empty before an idle step: a
/// Redis or socket source between two reads leaves it empty for less.
pub(crate) const SETTLE: Duration = Duration::from_millis(2);

/// The most events read per step (the clock ends most steps first).
const STEP_ROWS: i64 = 4096;

/// How long after a failed step the next one is tried.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// The mark, read in the caller's transaction; 0 on a database without the
/// table (never the case past migration 13).
pub(crate) fn indexed_seq(connection: &Connection) -> rusqlite::Result<i64> {
    Ok(connection
        .query_row(
            "SELECT indexed_seq FROM search_index_mark WHERE id = 1",
            [],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

/// Lowers the mark below `first_new_seq` when SQLite handed out a `seq` at
/// or below it (see the module's invariants). One statement per commit,
/// on a one-row table.
pub(crate) fn keep_mark_below(connection: &Connection, first_new_seq: i64) -> rusqlite::Result<()> {
    connection
        .prepare_cached(
            "UPDATE search_index_mark SET indexed_seq = ?1 - 1 WHERE id = 1 AND indexed_seq >= ?1",
        )?
        .execute(params![first_new_seq])?;
    Ok(())
}

/// Moves the mark to at least `seq`, for tools and tests that insert rows
/// in `seq` order and index each one themselves
/// ([`index_event_text`](super::schema::index_event_text)).
pub(crate) fn raise_mark(connection: &Connection, seq: i64) -> rusqlite::Result<()> {
    connection
        .prepare_cached(
            "UPDATE search_index_mark SET indexed_seq = MAX(indexed_seq, ?1) WHERE id = 1",
        )?
        .execute(params![seq])?;
    Ok(())
}

/// What one [`SearchIndexer::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    /// Events read past the mark (each indexed, or without searchable text).
    pub(crate) events: usize,
    /// The mark after the step.
    pub(crate) indexed_seq: i64,
    /// Whether the step reached the newest stored event.
    pub(crate) caught_up: bool,
}

/// The writer thread's view of the index: where the mark is and since when
/// it has been behind.
#[derive(Debug)]
pub(crate) struct SearchIndexer {
    /// The mark as of the last step (or the start).
    indexed_seq: i64,
    /// The newest `seq` known to be stored: the writer's commits, and the
    /// table's maximum read at the start and when idle (an import in another
    /// process stores events the writer never sees).
    newest_seq: i64,
    /// When the last step ran or the index caught up, for [`MAX_WAIT`].
    last_step: Instant,
    /// After a failed step (a database another process holds): no step
    /// before this moment.
    retry_at: Option<Instant>,
    /// The error of the failed steps, logged once.
    failing: Option<String>,
    /// Wall-clock ms since when the index has been behind (0: caught up),
    /// for `/api/health` and `/metrics`.
    behind_since_ms: i64,
}

impl SearchIndexer {
    /// Reads the mark and the newest stored `seq`.
    pub(crate) fn load(connection: &Connection) -> rusqlite::Result<SearchIndexer> {
        let mut indexer = SearchIndexer {
            indexed_seq: indexed_seq(connection)?,
            ..SearchIndexer::unknown()
        };
        indexer.newest_seq = 0;
        indexer.refresh_newest(connection)?;
        Ok(indexer)
    }

    /// An indexer that knows nothing yet (its mark could not be read): it
    /// counts itself behind, and its first step reads the mark.
    pub(crate) fn unknown() -> SearchIndexer {
        SearchIndexer {
            indexed_seq: 0,
            newest_seq: 1,
            last_step: Instant::now(),
            retry_at: None,
            failing: None,
            behind_since_ms: 0,
        }
    }

    /// How long the writer may wait for a submission: [`SETTLE`] while the
    /// index is behind (a step follows if nothing came), else `idle` or
    /// until a failed step may be retried.
    pub(crate) fn idle_wait(&self, idle: Duration) -> Duration {
        if !self.behind() {
            return idle;
        }
        match self.retry_at {
            Some(at) => at
                .saturating_duration_since(Instant::now())
                .clamp(SETTLE, idle),
            None => SETTLE,
        }
    }

    /// Notes a failed step: logged once, retried after [`RETRY_AFTER`].
    pub(crate) fn failed(&mut self, error: &rusqlite::Error) {
        let text = error.to_string();
        if self.failing.as_deref() != Some(text.as_str()) {
            crate::log::warn(&format!(
                "search index: cannot index past seq {} ({text}); retrying",
                self.indexed_seq
            ));
            self.failing = Some(text);
        }
        self.retry_at = Some(Instant::now() + RETRY_AFTER);
    }

    /// Puts the mark and how far behind it is into `stats`.
    pub(crate) fn publish(&mut self, stats: &Stats) {
        let behind = (self.newest_seq - self.indexed_seq).max(0);
        if behind == 0 {
            self.behind_since_ms = 0;
        } else if self.behind_since_ms == 0 {
            self.behind_since_ms = now_millis();
        }
        stats
            .search_indexed_seq
            .store(self.indexed_seq, Ordering::Relaxed);
        stats.search_behind.store(behind, Ordering::Relaxed);
        stats
            .search_behind_since_ms
            .store(self.behind_since_ms, Ordering::Relaxed);
    }

    /// Whether stored events wait for the index.
    pub(crate) fn behind(&self) -> bool {
        self.newest_seq > self.indexed_seq
    }

    /// Notes a commit's newest `seq`. A `seq` at or below the mark means
    /// the commit lowered it ([`keep_mark_below`]): the next step reads it.
    pub(crate) fn committed(&mut self, first_seq: i64, last_seq: i64) {
        if first_seq > 0 && first_seq <= self.indexed_seq {
            self.indexed_seq = first_seq - 1;
        }
        if !self.behind() {
            self.last_step = Instant::now();
        }
        self.newest_seq = self.newest_seq.max(last_seq);
    }

    /// Rereads the table's newest `seq` (an index lookup), for events
    /// another process stored.
    pub(crate) fn refresh_newest(&mut self, connection: &Connection) -> rusqlite::Result<()> {
        let newest: i64 =
            connection.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |row| {
                row.get(0)
            })?;
        self.newest_seq = newest;
        Ok(())
    }

    /// Whether a step should run now: the index is behind, and the writer
    /// has nothing waiting, or the index has waited [`MAX_WAIT`]
    /// ([`SATURATED_MAX_WAIT`] while the writer is saturated).
    pub(crate) fn due(&self, load: WriterLoad) -> bool {
        self.behind()
            && self.retry_at.is_none_or(|at| Instant::now() >= at)
            && match load {
                WriterLoad::Idle => true,
                WriterLoad::Busy => self.last_step.elapsed() >= MAX_WAIT,
                WriterLoad::Saturated => self.last_step.elapsed() >= SATURATED_MAX_WAIT,
            }
    }

    /// Indexes the events past the mark for up to `budget`, in one
    /// transaction that also moves the mark.
    pub(crate) fn step(
        &mut self,
        connection: &mut Connection,
        budget: Duration,
    ) -> rusqlite::Result<Step> {
        let started = Instant::now();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let from = indexed_seq(&transaction)?;
        let mut last = from;
        let mut events = 0;
        let mut exhausted = true;
        {
            let mut select = transaction.prepare_cached(
                "SELECT seq, hook, payload FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let mut insert = transaction
                .prepare_cached("INSERT INTO events_fts (rowid, text) VALUES (?1, ?2)")?;
            let mut rows = select.query(params![from, STEP_ROWS])?;
            while let Some(row) = rows.next()? {
                let seq: i64 = row.get(0)?;
                let hook = row.get_ref(1)?.as_str()?;
                let payload = row.get_ref(2)?.as_str()?;
                if let Some(text) = searchable_text(hook, payload) {
                    insert.execute(params![seq, text])?;
                }
                last = seq;
                events += 1;
                // The clock is read every 32 events: about 0.3 ms of work.
                if events % 32 == 0 && started.elapsed() >= budget {
                    exhausted = false;
                    break;
                }
            }
            if events as i64 == STEP_ROWS {
                exhausted = false;
            }
        }
        if last > from {
            // An upsert: were the row ever deleted, an UPDATE would keep the
            // mark at 0 and every step would index the same events again.
            transaction.execute(
                "INSERT INTO search_index_mark (id, indexed_seq) VALUES (1, ?1)
                 ON CONFLICT(id) DO UPDATE SET indexed_seq = excluded.indexed_seq",
                params![last],
            )?;
        }
        transaction.commit()?;
        if let Some(error) = self.failing.take() {
            crate::log::info(&format!("search index: indexing again after: {error}"));
        }
        self.retry_at = None;
        self.indexed_seq = last;
        self.last_step = Instant::now();
        if exhausted {
            // Everything stored when the step began is indexed.
            self.newest_seq = last;
        }
        Ok(Step {
            events,
            indexed_seq: last,
            caught_up: exhausted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> Connection {
        let mut connection = Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut connection).unwrap();
        connection
    }

    fn insert(connection: &Connection, id: &str, command: &str) -> i64 {
        let payload = format!(r#"{{"tool_input":{{"command":"{command}"}}}}"#);
        connection
            .execute(
                "INSERT INTO events (id, ts, received_at, machine, session_id, hook, tool, source, payload) \
                 VALUES (?1, 1, 1, 'm', 's', 'PreToolUse', 'Bash', 'socket', ?2)",
                params![id, payload],
            )
            .unwrap();
        connection.last_insert_rowid()
    }

    fn found(connection: &Connection, phrase: &str) -> Vec<i64> {
        let mut select = connection
            .prepare("SELECT rowid FROM events_fts WHERE events_fts MATCH ?1 ORDER BY rowid")
            .unwrap();
        let rows = select
            .query_map([format!("\"{phrase}\"")], |row| row.get(0))
            .unwrap();
        rows.map(Result::unwrap).collect()
    }

    #[test]
    fn a_step_indexes_past_the_mark_and_moves_it_in_the_same_transaction() {
        let mut connection = database();
        let first = insert(&connection, "a", "cargo build --release");
        let second = insert(&connection, "b", "make install");
        let mut indexer = SearchIndexer::load(&connection).unwrap();
        assert!(indexer.behind());
        assert!(found(&connection, "release").is_empty());
        let step = indexer.step(&mut connection, IDLE_STEP).unwrap();
        assert_eq!(
            (step.events, step.indexed_seq, step.caught_up),
            (2, second, true)
        );
        assert!(!indexer.behind());
        assert_eq!(found(&connection, "build --rel"), vec![first]);
        assert_eq!(indexed_seq(&connection).unwrap(), second);
        // Nothing new: a step adds nothing and keeps the mark.
        let step = indexer.step(&mut connection, IDLE_STEP).unwrap();
        assert_eq!((step.events, step.indexed_seq), (0, second));
        assert_eq!(found(&connection, "install"), vec![second]);
    }

    #[test]
    fn a_reused_seq_lowers_the_mark_and_is_indexed_once() {
        let mut connection = database();
        insert(&connection, "a", "old command one");
        let top = insert(&connection, "b", "old command two");
        let mut indexer = SearchIndexer::load(&connection).unwrap();
        indexer.step(&mut connection, IDLE_STEP).unwrap();
        connection.execute("DELETE FROM events", []).unwrap();
        let reused = insert(&connection, "c", "fresh words");
        assert!(reused <= top, "SQLite reuses the top rowids");
        keep_mark_below(&connection, reused).unwrap();
        indexer.committed(reused, reused);
        assert!(indexer.due(WriterLoad::Idle));
        indexer.step(&mut connection, IDLE_STEP).unwrap();
        assert_eq!(found(&connection, "fresh words"), vec![reused]);
        assert!(found(&connection, "old command").is_empty());
    }

    #[test]
    fn a_busy_writer_gets_a_step_only_after_the_longest_wait() {
        let connection = database();
        insert(&connection, "a", "x");
        let mut indexer = SearchIndexer::load(&connection).unwrap();
        indexer.last_step = Instant::now();
        assert!(indexer.due(WriterLoad::Idle));
        assert!(!indexer.due(WriterLoad::Busy));
        indexer.last_step = Instant::now() - MAX_WAIT;
        assert!(indexer.due(WriterLoad::Busy));
        // A saturated writer (full batches) lets the index wait longer.
        assert!(!indexer.due(WriterLoad::Saturated));
        indexer.last_step = Instant::now() - SATURATED_MAX_WAIT;
        assert!(indexer.due(WriterLoad::Saturated));
        // Behind: the writer waits only long enough to see the queue settle.
        let idle = Duration::from_millis(500);
        assert_eq!(indexer.idle_wait(idle), SETTLE);
        indexer.indexed_seq = indexer.newest_seq;
        assert_eq!(indexer.idle_wait(idle), idle);
    }
}
