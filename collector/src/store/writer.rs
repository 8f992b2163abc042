//! The one SQLite writer.
//!
//! **Invariant:** this thread owns the only read-write connection; nothing
//! else in the collector writes to the database. Sources queue
//! [`Submission`]s on a bounded channel. The writer takes everything queued
//! (up to [`Tuning::max_batch`](crate::settings::Tuning) events), stores it
//! in one `BEGIN IMMEDIATE` transaction with `INSERT OR IGNORE` by event id,
//! updates `sessions` and `agents` in the same transaction, commits, and only
//! then runs each submission's acknowledgement, publishes the new rows to the
//! hub and updates the counters. A batch that fails (a locked database, a
//! full disk, a read-only file) is rolled back, logged once, counted in
//! `write_errors` and retried as it is; nothing in it is acknowledged until
//! it is stored.
//!
//! Durability: WAL with `synchronous=NORMAL`. A commit is in the WAL file
//! (written with `write(2)`) before it returns, so an acknowledged event
//! survives the collector's `kill -9`; the WAL is fsynced at checkpoints, so a
//! power cut can lose the last transactions acknowledged since the previous
//! checkpoint (never corrupt the database).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use rusqlite::{named_params, params, Connection, Transaction, TransactionBehavior};

use crate::cost::{self, PriceTable};
use crate::event::Source;
use crate::hub::Hub;
use crate::ingest::{Committed, NewEvent, Queued, Submission};
use crate::log;
use crate::service::spawn_thread;
use crate::state::{State, ToolChange, Transition};
use crate::stats::Stats;
use crate::store::checkpoint::{Checkpointer, BACKSTOP_AUTOCHECKPOINT_PAGES};
use crate::store::indexer::{self, SearchIndexer, WriterLoad, BUSY_STEP, IDLE_STEP};
use crate::store::retention::{Retention, RetentionSchedule};
use crate::store::schema;
use hooktrail_shared::envelope::HookEvent;
use hooktrail_shared::transcript::{ResponseUsage, TranscriptKind};

/// How long the writer waits for a submission before its idle chores.
const IDLE_WAIT: Duration = Duration::from_millis(500);

/// The writer thread: everything it needs, by name. [`Writer::spawn`]
/// starts it.
pub(crate) struct Writer {
    /// The only read-write connection of the collector (see [`open`](crate::store::open::open)).
    pub(crate) connection: Connection,
    /// Submissions from every source.
    pub(crate) queue: Receiver<Queued>,
    /// Counters and gauges shared with the HTTP side.
    pub(crate) stats: Arc<Stats>,
    /// Receives each commit's new rows for the live UI.
    pub(crate) hub: Arc<Hub>,
    /// Most events per transaction.
    pub(crate) max_batch: usize,
    /// Old-event deletion policy.
    pub(crate) retention: Retention,
    /// Set at shutdown; from then on a batch that keeps failing is given up
    /// after `drain_deadline` (unacknowledged, so its sources redeliver it).
    pub(crate) shutdown: Arc<AtomicBool>,
    /// How long shutdown waits for a failing batch.
    pub(crate) drain_deadline: Duration,
    /// What each response costs: applied as usage is stored, and to every
    /// stored response when the table changed since it was priced.
    pub(crate) prices: Arc<PriceTable>,
}

impl Writer {
    /// Starts the writer thread; it runs until every sender is gone and the
    /// queue is empty.
    pub(crate) fn spawn(mut self) -> Result<JoinHandle<()>, String> {
        self.max_batch = self.max_batch.max(1);
        spawn_thread("writer", move || {
            let indexer = SearchIndexer::load(&self.connection).unwrap_or_else(|error| {
                log::warn(&format!(
                    "writer: cannot read the search index's mark: {error}"
                ));
                SearchIndexer::unknown()
            });
            WriterLoop {
                retention: RetentionSchedule::new(self.retention),
                setup: self,
                failing: None,
                commits: Arc::new(AtomicU64::new(0)),
                indexer,
                chores_at: Instant::now(),
            }
            .run()
        })
    }
}

/// The writer thread's state: its setup and what the loop keeps.
struct WriterLoop {
    /// What [`Writer::spawn`] was given.
    setup: Writer,
    /// Old-event deletion, one small step when the queue is idle.
    retention: RetentionSchedule,
    /// The error being retried, so it is logged once, not once per attempt.
    failing: Option<String>,
    /// Commits so far, read by the checkpointer thread to know when there
    /// is something new to checkpoint.
    commits: Arc<AtomicU64>,
    /// The search index, filled behind the commits between batches.
    indexer: SearchIndexer,
    /// When the idle chores (retention, alert time rules, the newest `seq`
    /// of other processes) last ran.
    chores_at: Instant,
}

/// What happened to one batch at the end of [`WriterLoop::store`].
enum BatchOutcome {
    /// Committed; the batch was acknowledged.
    Committed,
    /// Given up at shutdown: nothing acknowledged.
    Abandoned,
}

impl WriterLoop {
    /// Runs until every sender is gone and the queue is empty.
    fn run(mut self) {
        let checkpointer = self
            .setup
            .connection
            .path()
            .filter(|path| !path.is_empty())
            .map(std::path::PathBuf::from)
            .and_then(|path| Checkpointer::start(&path, self.commits.clone()));
        if checkpointer.is_some() {
            let _ = self.setup.connection.pragma_update(
                None,
                "wal_autocheckpoint",
                BACKSTOP_AUTOCHECKPOINT_PAGES,
            );
        }
        if let Err(error) = reprice(&mut self.setup.connection, &self.setup.prices) {
            log::warn(&format!("writer: cannot reprice stored usage: {error}"));
        }
        self.indexer.publish(&self.setup.stats);
        loop {
            self.heartbeat();
            let wait = self.indexer.idle_wait(IDLE_WAIT);
            let first = match self.setup.queue.recv_timeout(wait) {
                Ok(submission) => submission,
                Err(RecvTimeoutError::Timeout) => {
                    self.idle();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let (first, held) = first;
            let mut events = first.events.len();
            let mut batch = vec![first];
            // Dropped after the batch is stored: its bytes stay counted
            // against the queue's budget while the writer holds them.
            let mut holds = vec![held];
            while events < self.setup.max_batch {
                match self.setup.queue.try_recv() {
                    Ok((submission, held)) => {
                        events += submission.events.len();
                        batch.push(submission);
                        holds.push(held);
                    }
                    Err(_) => break,
                }
            }
            if let BatchOutcome::Abandoned = self.store(batch) {
                log::warn("writer: shutting down with a batch it could not store; it stays unacknowledged at its sources");
            }
            drop(holds);
            // Under a steady stream the queue never stays empty for long:
            // the index then gets a short step once it has waited too long
            // (longer in a burst, when batches are full).
            let load = if events >= self.setup.max_batch {
                WriterLoad::Saturated
            } else {
                WriterLoad::Busy
            };
            if self.indexer.due(load) {
                self.index(BUSY_STEP);
            }
        }
        self.heartbeat();
        drop(checkpointer);
        if let Err(error) = self
            .setup
            .connection
            .execute_batch("PRAGMA wal_checkpoint(PASSIVE)")
        {
            log::warn(&format!("writer: final checkpoint failed: {error}"));
        }
    }

    /// Nothing queued for a while ([`SearchIndexer::idle_wait`]): a step of
    /// the search index while it is behind, and
    /// every [`IDLE_WAIT`] the chores: a retention step, the alert time
    /// rules, and the newest `seq` (an import beside the collector stores
    /// events this writer never sees).
    fn idle(&mut self) {
        if self.indexer.due(WriterLoad::Idle) {
            self.index(IDLE_STEP);
        }
        if self.chores_at.elapsed() < IDLE_WAIT {
            return;
        }
        self.chores_at = Instant::now();
        self.retention
            .step(&mut self.setup.connection, &self.setup.stats);
        crate::store::outbox::tick(&mut self.setup.connection);
        if let Err(error) = self.indexer.refresh_newest(&self.setup.connection) {
            log::warn(&format!("writer: cannot read the newest seq: {error}"));
        }
        self.indexer.publish(&self.setup.stats);
    }

    /// One step of the search index, for up to `budget` (see
    /// [`SearchIndexer::step`]); a failure is logged once and retried later.
    fn index(&mut self, budget: Duration) {
        match self.indexer.step(&mut self.setup.connection, budget) {
            Ok(step) => {
                if step.events > 0 {
                    self.commits.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(error) => {
                self.indexer.failed(&error);
            }
        }
        self.indexer.publish(&self.setup.stats);
    }

    /// Counts responses refused for impossible token counts, with a log
    /// line, so a bad transcript shows in `/metrics` and `/api/health`.
    fn note_refused_usage(&self, refused: u64) {
        if refused == 0 {
            return;
        }
        self.setup
            .stats
            .usage_refused
            .fetch_add(refused, Ordering::Relaxed);
        log::warn(&format!(
            "writer: refused the usage of {refused} API responses with a token count over {} (or web searches over {}); their events are stored",
            cost::MAX_TOKENS_PER_KIND,
            cost::MAX_WEB_SEARCHES
        ));
    }

    fn heartbeat(&self) {
        self.setup
            .stats
            .writer_heartbeat_ms
            .store(hooktrail_shared::time::now_millis(), Ordering::Relaxed);
    }

    /// Commits a batch, retrying until it is stored (or abandoned at
    /// shutdown), then acknowledges and publishes it.
    fn store(&mut self, batch: Vec<Submission>) -> BatchOutcome {
        let mut pause = Duration::from_millis(20);
        let mut shutdown_seen: Option<Instant> = None;
        let mut batch = batch;
        let seqs = loop {
            let started = Instant::now();
            match self.commit(&batch) {
                Ok(stored) => {
                    self.note_refused_usage(stored.usage_refused);
                    self.setup.stats.record_commit(started.elapsed());
                    self.commits.fetch_add(1, Ordering::Relaxed);
                    if let Some(error) = self.failing.take() {
                        log::info(&format!("writer: writing again after: {error}"));
                    }
                    break stored.seqs;
                }
                Err(error) => {
                    self.setup
                        .stats
                        .write_errors
                        .fetch_add(1, Ordering::Relaxed);
                    let text = error.to_string();
                    if self.failing.as_deref() != Some(text.as_str()) {
                        log::warn(&format!(
                            "writer: cannot commit {} events ({text}); retrying, nothing is acknowledged until stored",
                            batch.iter().map(|submission| submission.events.len()).sum::<usize>()
                        ));
                        self.failing = Some(text);
                    }
                    if self.setup.shutdown.load(Ordering::Relaxed) {
                        let since = *shutdown_seen.get_or_insert_with(Instant::now);
                        if since.elapsed() > self.setup.drain_deadline {
                            let dropped: usize =
                                batch.iter().map(|submission| submission.events.len()).sum();
                            self.setup
                                .stats
                                .writer_queue
                                .fetch_sub(dropped as i64, Ordering::Relaxed);
                            return BatchOutcome::Abandoned;
                        }
                    }
                    self.heartbeat();
                    // Backoff before retrying a failed commit.
                    #[allow(clippy::disallowed_methods)]
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        };
        let now = hooktrail_shared::time::now_millis();
        self.setup
            .stats
            .last_commit_ms
            .store(now, Ordering::Relaxed);
        self.count_stored(&batch, &seqs);
        let mut published = Vec::with_capacity(seqs.len());
        let mut seq_iter = seqs.into_iter();
        for submission in batch.drain(..) {
            let mut committed = Committed::default();
            let count = submission.events.len();
            for event in submission.events {
                let seq = seq_iter.next().unwrap_or(0);
                if seq > 0 {
                    committed.stored += 1;
                    let mut row = event.row;
                    row.seq = seq;
                    published.push(Arc::new(row));
                } else {
                    committed.duplicates += 1;
                }
            }
            let counters = self.setup.stats.source(submission.source);
            counters
                .stored
                .fetch_add(committed.stored as u64, Ordering::Relaxed);
            counters
                .duplicates
                .fetch_add(committed.duplicates as u64, Ordering::Relaxed);
            self.setup
                .stats
                .writer_queue
                .fetch_sub(count as i64, Ordering::Relaxed);
            (submission.acknowledge)(committed);
        }
        if let (Some(first), Some(last)) = (published.first(), published.last()) {
            self.setup
                .stats
                .last_seq
                .fetch_max(last.seq, Ordering::Relaxed);
            self.indexer.committed(first.seq, last.seq);
            self.indexer.publish(&self.setup.stats);
        }
        if !published.is_empty() {
            self.setup.hub.publish(&published);
        }
        BatchOutcome::Committed
    }

    /// Adds a committed batch's new events to the per-hook and per-rule
    /// counters. Counted by reference, each name copied only the first time
    /// the counters see it (a batch is mostly one or two hooks).
    fn count_stored(&self, batch: &[Submission], seqs: &[i64]) {
        let mut per_hook = NameCounts::default();
        let mut per_rule = NameCounts::default();
        let events = batch.iter().flat_map(|submission| &submission.events);
        for (event, _) in events.zip(seqs).filter(|(_, &seq)| seq > 0) {
            per_hook.add(&event.row.hook, 1);
            for (rule, count) in event.redactions.iter().flatten() {
                per_rule.add(rule, *count);
            }
        }
        let stats = &self.setup.stats;
        for (counts, map) in [
            (per_hook, &stats.stored_per_hook),
            (per_rule, &stats.redactions_per_rule),
        ] {
            if counts.is_empty() {
                continue;
            }
            if let Ok(mut map) = map.lock() {
                for (name, count) in counts.into_counts() {
                    match map.get_mut(name) {
                        Some(total) => *total += count,
                        None => {
                            map.insert(name.to_owned(), count);
                        }
                    }
                }
            }
        }
    }

    /// One transaction of the batch's events: see [`commit_events`].
    fn commit(&mut self, batch: &[Submission]) -> rusqlite::Result<CommitReport> {
        // The OTLP receiver's records (issue 22): a transaction of their
        // own, only when the batch has some; idempotent, so a retry after
        // the events' commit failed stores nothing twice.
        crate::store::otel::store(
            &mut self.setup.connection,
            batch
                .iter()
                .filter_map(|submission| submission.otel.as_deref()),
            &self.setup.prices,
        )?;
        let events: Vec<&NewEvent> = batch
            .iter()
            .flat_map(|submission| &submission.events)
            .collect();
        commit_events(
            &mut self.setup.connection,
            &events,
            &self.setup.prices,
            &BatchExtras::default(),
        )
    }
}

/// The import's side of the database (`hooktrail-collector import`): the
/// same [`open`](crate::store::open::open) (WAL, busy timeout, migrations) and the same
/// [`commit_events`] as the writer thread, in a process of its own that may
/// run beside a collector. Its transactions are small (a few thousand
/// events), so the collector's writer waits at most a few milliseconds for
/// one, and a transaction that finds the database busy is retried.
pub(crate) struct ImportStore {
    /// The import's read-write connection.
    connection: Connection,
    /// What imported responses cost.
    prices: Arc<PriceTable>,
    /// Responses refused for impossible token counts so far, reported
    /// once at [`ImportStore::finish`].
    usage_refused: u64,
    /// Transactions committed, which tell the checkpointer there is work.
    commits: Arc<AtomicU64>,
    /// Copies the import's commits into the database file on a thread of
    /// its own, as the writer's does (`None` if it could not start: the
    /// backstop auto-checkpoint then does it, in the storing thread).
    checkpointer: Option<Checkpointer>,
}

/// How long the import keeps retrying a transaction that finds the database
/// locked (a collector committing, a reader holding a lock) before it gives
/// up with an error.
const IMPORT_BUSY_PATIENCE: Duration = Duration::from_secs(60);

/// The import connection's page cache, as SQLite's `cache_size` takes it
/// (negative: KiB), 8 MiB.
const IMPORT_CACHE_KIB: i64 = -8192;

impl ImportStore {
    /// Opens (creating and migrating if needed) the database for an import.
    pub(crate) fn open(path: &Path, prices: Arc<PriceTable>) -> Result<ImportStore, String> {
        let connection = crate::store::open::open(path)?;
        // SQLite's default checkpoints the WAL every 1,000 pages (4 MB),
        // inside the committing thread, with an fsync each time: a fifth of
        // the import's storing time. As in the collector, a checkpointer
        // thread copies the commits instead, and the storing thread
        // checkpoints only as a backstop, and once more at
        // [`ImportStore::finish`]. That took the checkpoints off the
        // storing thread, the one the import ends waiting for
        // (BENCHMARKS.md, "Issue 21, import: direct reads"). The
        // durability is the same (`synchronous=NORMAL`: commits are
        // written, not synced, until a checkpoint), and what a power cut
        // could lose of an import is stored again by importing again.
        let _ = connection.pragma_update(None, "wal_autocheckpoint", BACKSTOP_AUTOCHECKPOINT_PAGES);
        // Half the writer's page cache: the import's peak memory stays
        // under 64 MB, and its storing time did not change measurably
        // (BENCHMARKS.md, issue 21 item 3, round 3).
        let _ = connection.pragma_update(None, "cache_size", IMPORT_CACHE_KIB);
        let commits = Arc::new(AtomicU64::new(0));
        let checkpointer = Checkpointer::start(path, commits.clone());
        Ok(ImportStore {
            connection,
            prices,
            usage_refused: 0,
            commits,
            checkpointer,
        })
    }

    /// Stores one batch in one transaction and reports what was new (the
    /// rest was already stored: an earlier import).
    pub(crate) fn commit(
        &mut self,
        events: &[NewEvent],
        extras: &BatchExtras,
    ) -> Result<CommitReport, String> {
        let events: Vec<&NewEvent> = events.iter().collect();
        let prices = self.prices.clone();
        let report = self
            .retrying(|connection| commit_events(connection, &events, &prices, extras))
            .map_err(|error| format!("cannot store imported events: {error}"))?;
        self.usage_refused += report.usage_refused;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(report)
    }

    /// Replaces earlier end events of grown transcripts
    /// ([`super::import::retire_replaced_ends`]).
    pub(crate) fn retire_replaced_ends(
        &mut self,
        ends: &[super::import::StoredEnd],
    ) -> Result<usize, String> {
        let retired = self
            .retrying(|connection| super::import::retire_replaced_ends(connection, ends))
            .map_err(|error| format!("cannot replace the end of a grown transcript: {error}"))?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(retired)
    }

    /// Runs one transaction, again while the database is locked.
    fn retrying<T>(
        &mut self,
        mut transaction: impl FnMut(&mut Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            match transaction(&mut self.connection) {
                Ok(done) => return Ok(done),
                Err(error)
                    if schema::is_busy(&error) && started.elapsed() < IMPORT_BUSY_PATIENCE =>
                {
                    // Backoff while another connection holds the write lock.
                    #[allow(clippy::disallowed_methods)]
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Copies the import's pages from the WAL into the database file, as
    /// far as readers allow.
    pub(crate) fn finish(mut self) {
        drop(self.checkpointer.take());
        if self.usage_refused > 0 {
            log::warn(&format!(
                "import: refused the usage of {} API responses with a token count over {} (or web searches over {}); their events are stored",
                self.usage_refused,
                cost::MAX_TOKENS_PER_KIND,
                cost::MAX_WEB_SEARCHES
            ));
        }
        let _ = self
            .connection
            .execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
    }
}

/// What an import adds to a transaction besides its events: usage and the
/// transcript's ids, which it also stores for sessions whose events it
/// leaves to the hooks.
#[derive(Debug, Default)]
pub(crate) struct BatchExtras {
    /// Responses read from transcripts, stored with origin `import` (never
    /// replacing a hook's row).
    pub(crate) usage: Vec<ImportedUsage>,
    /// Tool calls and subagents the transcripts show, per session, for the
    /// completeness check.
    pub(crate) transcript_ids: Vec<TranscriptIds>,
}

/// One response read by the import, with what it is attributed to.
#[derive(Debug)]
pub(crate) struct ImportedUsage {
    /// The session the transcript belongs to.
    pub(crate) session_id: String,
    /// The subagent, for a subagent's transcript (or a sidechain line).
    pub(crate) agent_id: Option<String>,
    /// The prompt during which the response came (`promptId` of the
    /// transcript's user lines).
    pub(crate) prompt_id: Option<String>,
    /// The machine the transcripts were read on.
    pub(crate) machine: String,
    /// The session's directory.
    pub(crate) cwd: Option<String>,
    /// The response and its usage, by the counting rules of `transcript`.
    pub(crate) response: ResponseUsage,
}

/// The ids one session's transcript shows (DESIGN §6 `transcript_ids`).
#[derive(Debug, Default)]
pub(crate) struct TranscriptIds {
    /// The session they belong to.
    pub(crate) session_id: String,
    /// `tool_use` block ids: each should have hook events.
    pub(crate) tool_use_ids: Vec<String>,
    /// Subagent ids: each should have had a `SubagentStart`.
    pub(crate) agent_ids: Vec<String>,
}

/// Remembers an id a transcript showed, once.
const INSERT_TRANSCRIPT_ID: &str =
    "INSERT OR IGNORE INTO transcript_ids (session_id, kind, item_id) VALUES (?1, ?2, ?3)";

fn store_transcript_ids(
    insert: &mut rusqlite::CachedStatement<'_>,
    session_id: &str,
    tool_use_ids: &[String],
    agent_ids: &[String],
) -> rusqlite::Result<()> {
    for id in tool_use_ids {
        insert.execute(params![session_id, "tool_use", id])?;
    }
    for id in agent_ids {
        insert.execute(params![session_id, "agent", id])?;
    }
    Ok(())
}

/// What one [`commit_events`] transaction stored.
#[derive(Debug, Default)]
pub(crate) struct CommitReport {
    /// Each event's new `seq` (0 for a duplicate), in order.
    pub(crate) seqs: Vec<i64>,
    /// Rows of `extras.usage` inserted or updated (a hook's row, which an
    /// import never replaces, is not), for the import's summary.
    pub(crate) usage_rows: usize,
    /// Responses refused for an impossible token count
    /// ([`cost::is_plausible`]): counted for `/metrics` and the health
    /// line, never stored, so one bad transcript cannot break the sums.
    pub(crate) usage_refused: u64,
}

/// One transaction, shared by the writer thread and the import: inserts
/// every event (`INSERT OR IGNORE` by id), updates `sessions`, `agents`,
/// `event_counts`, the usage the events carry and `extras`, and reports
/// each event's new `seq` and the responses refused ([`CommitReport`]).
///
/// Each step is a function of its own, run in this order inside the one
/// `BEGIN IMMEDIATE` transaction; nothing is visible to readers until the
/// commit, and a failing step rolls the whole batch back.
pub(crate) fn commit_events(
    connection: &mut Connection,
    events: &[&NewEvent],
    prices: &PriceTable,
    extras: &BatchExtras,
) -> rusqlite::Result<CommitReport> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut deltas = BatchDeltas::default();
    let seqs = insert_events(&transaction, events, &mut deltas)?;
    // The search index is filled behind the commit (store::indexer); a new
    // event at or below its mark (a reused rowid) lowers the mark here.
    if let Some(&first_new) = seqs.iter().find(|&&seq| seq > 0) {
        indexer::keep_mark_below(&transaction, first_new)?;
    }
    upsert_sessions(&transaction, &deltas.sessions)?;
    upsert_agents(&transaction, &deltas.agents)?;
    let mut usage = UsageTally::default();
    store_event_usage(&transaction, events, &seqs, prices, &mut usage)?;
    store_imported_usage(&transaction, &extras.usage, prices, &mut usage)?;
    fill_session_models(&transaction, &extras.usage)?;
    store_imported_ids(&transaction, &extras.transcript_ids)?;
    add_minute_counts(&transaction, &deltas.minute_counts)?;
    crate::store::outbox::raise(&transaction, events, &seqs)?;
    transaction.commit()?;
    Ok(CommitReport {
        seqs,
        usage_rows: usage.rows,
        usage_refused: usage.refused,
    })
}

/// What a batch's new events change in the side tables, gathered while
/// they are inserted and written once per session, agent and minute.
#[derive(Default)]
struct BatchDeltas<'a> {
    sessions: HashMap<&'a str, SessionDelta<'a>>,
    agents: HashMap<&'a str, AgentDelta<'a>>,
    /// Events per (minute, hook, machine), for `event_counts`.
    minute_counts: HashMap<(i64, &'a str, &'a str), i64>,
}

/// Usage stored and refused so far in one transaction.
#[derive(Default)]
struct UsageTally {
    /// Rows of the import's usage inserted or updated.
    rows: usize,
    /// Responses refused for an impossible token count.
    refused: u64,
}

/// Inserts every event (a duplicate id changes nothing and gets `seq` 0)
/// and a waiting request's pending decision; notes each new event in
/// `deltas`. Returns the `seq`s in order. The search text is indexed after
/// the commit (`store::indexer`).
fn insert_events<'a>(
    transaction: &Transaction<'_>,
    events: &[&'a NewEvent],
    deltas: &mut BatchDeltas<'a>,
) -> rusqlite::Result<Vec<i64>> {
    let mut insert = transaction.prepare_cached(
        "INSERT OR IGNORE INTO events
         (id, ts, received_at, machine, session_id, agent_id, hook, tool, tool_use_id, cwd, source, payload, prompt_id, permission_mode, redactions, config_error)
         VALUES (:id, :ts, :received_at, :machine, :session_id, :agent_id, :hook, :tool, :tool_use_id, :cwd, :source, :payload, :prompt_id, :permission_mode, :redactions, :config_error)",
    )?;
    let mut seqs = Vec::with_capacity(events.len());
    for &event in events {
        let row = &event.row;
        let changed = execute_in_order(
            &mut insert,
            named_params! {
                ":id": row.id,
                ":ts": row.ts,
                ":received_at": row.received_at,
                ":machine": row.machine,
                ":session_id": row.session_id,
                ":agent_id": row.agent_id,
                ":hook": row.hook,
                ":tool": row.tool,
                ":tool_use_id": row.tool_use_id,
                ":cwd": row.cwd,
                ":source": row.source,
                ":payload": row.payload,
                ":prompt_id": row.prompt_id,
                ":permission_mode": row.permission_mode,
                ":redactions": event
                    .redactions
                    .as_ref()
                    .and_then(|counts| serde_json::to_string(counts).ok()),
                ":config_error": row.config_error.then_some(1),
            },
        )?;
        if changed == 0 {
            seqs.push(0);
            continue;
        }
        let seq = transaction.last_insert_rowid();
        seqs.push(seq);
        note_side_tables(event, seq, &mut deltas.sessions, &mut deltas.agents);
        if let Some(expires_at) = event.wait_until {
            crate::store::decisions::insert_pending(transaction, event, expires_at)?;
        }
        *deltas
            .minute_counts
            .entry((minute_of(row.ts), row.hook.as_str(), row.machine.as_str()))
            .or_default() += 1;
    }
    Ok(seqs)
}

/// Adds each session's batch to its row: counts and times add up, the
/// first directory, title and transcript path stay, and a state older than
/// what the row already reflects changes nothing.
fn upsert_sessions(
    transaction: &Transaction<'_>,
    sessions: &HashMap<&str, SessionDelta<'_>>,
) -> rusqlite::Result<()> {
    if sessions.is_empty() {
        return Ok(());
    }
    let mut upsert = transaction.prepare_cached(
        "INSERT INTO sessions
         (session_id, machine, cwd, first_ts, last_ts, ended_ts, end_reason, event_count, transcript_path, last_seq,
          state, state_since, state_detail, current_tool, model, title, permission_mode)
         VALUES (:session_id, :machine, :cwd, :first_ts, :last_ts, :ended_ts, :end_reason, :event_count, :transcript_path, :last_seq,
                 :state, :state_since, :state_detail, :current_tool, :model, :title, :permission_mode)
         ON CONFLICT(session_id) DO UPDATE SET
           state = CASE WHEN :state IS NOT NULL AND :state_ts >= sessions.last_ts THEN :state ELSE sessions.state END,
           state_since = CASE WHEN :state IS NOT NULL AND :state_ts >= sessions.last_ts
                               AND (sessions.state IS NOT :state OR :entered_in_batch) THEN :state_since ELSE sessions.state_since END,
           state_detail = CASE WHEN :state IS NOT NULL AND :state_ts >= sessions.last_ts THEN :state_detail ELSE sessions.state_detail END,
           current_tool = CASE WHEN :tool_changed AND :state_ts >= sessions.last_ts THEN :current_tool ELSE sessions.current_tool END,
           model = COALESCE(:model, sessions.model),
           title = COALESCE(sessions.title, :title),
           permission_mode = COALESCE(:permission_mode, sessions.permission_mode),
           cwd = COALESCE(sessions.cwd, excluded.cwd),
           first_ts = MIN(sessions.first_ts, excluded.first_ts),
           last_ts = MAX(sessions.last_ts, excluded.last_ts),
           ended_ts = COALESCE(excluded.ended_ts, sessions.ended_ts),
           end_reason = COALESCE(excluded.end_reason, sessions.end_reason),
           event_count = sessions.event_count + excluded.event_count,
           transcript_path = COALESCE(sessions.transcript_path, excluded.transcript_path),
           last_seq = MAX(COALESCE(sessions.last_seq, 0), excluded.last_seq)",
    )?;
    for (session_id, delta) in sessions {
        let state = delta.state.as_ref();
        execute_in_order(
            &mut upsert,
            named_params! {
                ":session_id": session_id,
                ":machine": delta.machine,
                ":cwd": delta.cwd,
                ":first_ts": delta.first_ts,
                ":last_ts": delta.last_ts,
                ":ended_ts": delta.ended_ts,
                ":end_reason": delta.end_reason,
                ":event_count": delta.event_count,
                ":transcript_path": delta.transcript_path,
                ":last_seq": delta.last_seq,
                ":state": state.map(|state| state.state.as_str()),
                ":state_since": state.map(|state| state.since),
                ":state_detail": state.and_then(|state| state.detail),
                ":current_tool": delta.current_tool.flatten(),
                ":model": delta.model,
                ":title": delta.title,
                ":permission_mode": delta.permission_mode,
                ":state_ts": state.map(|state| state.ts),
                ":entered_in_batch": state.is_some_and(|state| state.entered_in_batch),
                ":tool_changed": delta.current_tool.is_some(),
            },
        )?;
    }
    Ok(())
}

/// Adds each agent's batch to its row, as [`upsert_sessions`] does for
/// sessions; an agent first seen through its spawning call (no session
/// yet) takes its session from a later batch.
fn upsert_agents(
    transaction: &Transaction<'_>,
    agents: &HashMap<&str, AgentDelta<'_>>,
) -> rusqlite::Result<()> {
    if agents.is_empty() {
        return Ok(());
    }
    let mut upsert = transaction.prepare_cached(
        "INSERT INTO agents
         (agent_id, session_id, agent_type, parent_tool_use_id, started_ts, stopped_ts, event_count, transcript_path,
          state, state_since, state_detail, current_tool, prompt_id)
         VALUES (:agent_id, :session_id, :agent_type, :parent_tool_use_id, :started_ts, :stopped_ts, :event_count, :transcript_path,
                 :state, :state_since, :state_detail, :current_tool, :prompt_id)
         ON CONFLICT(agent_id) DO UPDATE SET
           state = CASE WHEN :state IS NOT NULL AND :state_ts >= COALESCE(agents.state_since, 0) THEN :state ELSE agents.state END,
           state_since = CASE WHEN :state IS NOT NULL AND :state_ts >= COALESCE(agents.state_since, 0)
                               AND (agents.state IS NOT :state OR :entered_in_batch) THEN :state_since ELSE agents.state_since END,
           state_detail = CASE WHEN :state IS NOT NULL AND :state_ts >= COALESCE(agents.state_since, 0) THEN :state_detail ELSE agents.state_detail END,
           current_tool = CASE WHEN :tool_changed THEN :current_tool ELSE agents.current_tool END,
           prompt_id = COALESCE(agents.prompt_id, :prompt_id),
           session_id = CASE WHEN agents.session_id = '' THEN excluded.session_id ELSE agents.session_id END,
           agent_type = COALESCE(agents.agent_type, excluded.agent_type),
           parent_tool_use_id = COALESCE(agents.parent_tool_use_id, excluded.parent_tool_use_id),
           started_ts = COALESCE(MIN(agents.started_ts, excluded.started_ts), agents.started_ts, excluded.started_ts),
           stopped_ts = COALESCE(MAX(agents.stopped_ts, excluded.stopped_ts), agents.stopped_ts, excluded.stopped_ts),
           event_count = agents.event_count + excluded.event_count,
           transcript_path = COALESCE(excluded.transcript_path, agents.transcript_path)",
    )?;
    for (agent_id, delta) in agents {
        let state = delta.state.as_ref();
        execute_in_order(
            &mut upsert,
            named_params! {
                ":agent_id": agent_id,
                ":session_id": delta.session_id.unwrap_or(""),
                ":agent_type": delta.agent_type,
                ":parent_tool_use_id": delta.parent_tool_use_id,
                ":started_ts": delta.started_ts,
                ":stopped_ts": delta.stopped_ts,
                ":event_count": delta.event_count,
                ":transcript_path": delta.transcript_path,
                ":state": state.map(|state| state.state.as_str()),
                ":state_since": state.map(|state| state.since),
                ":state_detail": state.and_then(|state| state.detail),
                ":current_tool": delta.current_tool.flatten(),
                ":prompt_id": delta.prompt_id,
                ":state_ts": state.map(|state| state.ts),
                ":entered_in_batch": state.is_some_and(|state| state.entered_in_batch),
                ":tool_changed": delta.current_tool.is_some(),
            },
        )?;
    }
    Ok(())
}

/// Stores the usage the new events carry (an emitter read it from the
/// transcript at a turn boundary), and the transcript's ids with it.
fn store_event_usage(
    transaction: &Transaction<'_>,
    events: &[&NewEvent],
    seqs: &[i64],
    prices: &PriceTable,
    tally: &mut UsageTally,
) -> rusqlite::Result<()> {
    let mut upsert = transaction.prepare_cached(UPSERT_USAGE)?;
    let mut insert_id = transaction.prepare_cached(INSERT_TRANSCRIPT_ID)?;
    for (&event, seq) in events.iter().zip(seqs) {
        let (Some(usage), true) = (&event.usage, *seq > 0) else {
            continue;
        };
        let row = &event.row;
        let origin = if row.source == Source::Import.as_str() {
            "import"
        } else {
            "hook"
        };
        if let Some(session_id) = row.session_id.as_deref() {
            store_transcript_ids(
                &mut insert_id,
                session_id,
                &usage.tool_use_ids,
                &usage.agent_ids,
            )?;
        }
        for response in &usage.responses {
            if !cost::is_plausible(response) {
                tally.refused += 1;
                continue;
            }
            // A subagent's transcript belongs to the event's agent; in a
            // session's transcript, a sidechain line names its own agent
            // where it can.
            let agent_id = match usage.transcript {
                TranscriptKind::Agent => row.agent_id.as_deref(),
                TranscriptKind::Session => response.agent_id.as_deref(),
            };
            let usage_row = UsageRow {
                response,
                session_id: row.session_id.as_deref(),
                agent_id,
                // The response's own prompt (its transcript's `promptId`),
                // else the shipping event's.
                prompt_id: response.prompt_id.as_deref().or(row.prompt_id.as_deref()),
                machine: &row.machine,
                cwd: row.cwd.as_deref(),
                ts: Some(response.ts.unwrap_or(row.ts)),
                origin,
                event_id: Some(&row.id),
            };
            usage_row.run(&mut upsert, prices)?;
        }
    }
    Ok(())
}

/// What [`UPSERT_USAGE`] and [`STORE_STAGED_USAGE`] do when the response
/// is already stored (see [`UPSERT_USAGE`]).
macro_rules! usage_conflict {
    () => {
        "ON CONFLICT(key) DO UPDATE SET
       model = excluded.model,
       ts = COALESCE(usage.ts, excluded.ts),
       input_tokens = excluded.input_tokens,
       output_tokens = excluded.output_tokens,
       cache_write_5m_tokens = excluded.cache_write_5m_tokens,
       cache_write_1h_tokens = excluded.cache_write_1h_tokens,
       cache_read_tokens = excluded.cache_read_tokens,
       web_search_requests = excluded.web_search_requests,
       cost_usd = excluded.cost_usd,
       price_version = excluded.price_version,
       inference_geo = excluded.inference_geo,
       speed = excluded.speed,
       session_id = COALESCE(usage.session_id, excluded.session_id),
       agent_id = COALESCE(excluded.agent_id, usage.agent_id),
       prompt_id = COALESCE(usage.prompt_id, excluded.prompt_id),
       machine = COALESCE(usage.machine, excluded.machine),
       cwd = COALESCE(usage.cwd, excluded.cwd),
       origin = excluded.origin,
       event_id = excluded.event_id
     WHERE NOT (usage.origin = 'hook' AND excluded.origin = 'import')"
    };
}

/// Stores the responses an import read (origin `import`, never replacing
/// a hook's row); counts the rows changed.
///
/// They are staged in a temporary table and stored by one
/// `INSERT ... SELECT` ([`STORE_STAGED_USAGE`]): the same upsert, row by
/// row in the same order, with the same triggers, but one statement per
/// batch instead of one per row. A statement on `usage` (triggers, and
/// constraints that abort) runs in a statement journal, which copies
/// every page it touches first; per row, that copy, the statement's
/// start and end were over half of what a row cost (issue 21 item 3).
fn store_imported_usage(
    transaction: &Transaction<'_>,
    usage: &[ImportedUsage],
    prices: &PriceTable,
    tally: &mut UsageTally,
) -> rusqlite::Result<()> {
    if usage.is_empty() {
        return Ok(());
    }
    transaction.execute_batch(CREATE_USAGE_STAGE)?;
    let mut stage = transaction.prepare_cached(STAGE_USAGE)?;
    let mut staged = 0_usize;
    for imported in usage {
        let response = &imported.response;
        if !cost::is_plausible(response) {
            tally.refused += 1;
            continue;
        }
        let usage_row = UsageRow {
            response,
            session_id: Some(&imported.session_id),
            agent_id: imported.agent_id.as_deref(),
            prompt_id: imported.prompt_id.as_deref(),
            machine: &imported.machine,
            cwd: imported.cwd.as_deref(),
            ts: response.ts,
            origin: "import",
            event_id: None,
        };
        usage_row.run(&mut stage, prices)?;
        staged += 1;
    }
    // The stage was empty, so the staged rows are rowids 1 to `staged`.
    let mut store = transaction.prepare_cached(STORE_STAGED_USAGE)?;
    for after in (0..staged).step_by(STAGE_CHUNK) {
        let upto = (after + STAGE_CHUNK) as i64;
        tally.rows += execute_in_order(
            &mut store,
            named_params! {":after": after as i64, ":upto": upto},
        )?;
    }
    transaction
        .prepare_cached("DELETE FROM temp.usage_stage")?
        .execute([])?;
    Ok(())
}

/// Most staged responses one [`STORE_STAGED_USAGE`] stores: its statement
/// journal holds a copy of every page the statement touched until it ends.
const STAGE_CHUNK: usize = 256;

/// The import's responses of one batch, in order, before
/// [`STORE_STAGED_USAGE`] stores them: temporary (this connection's, in
/// memory), and emptied after each batch. Its columns have no type, so a
/// value keeps the type it was bound with until `usage` gives it its own,
/// as when it is bound to [`UPSERT_USAGE`].
const CREATE_USAGE_STAGE: &str = "CREATE TEMP TABLE IF NOT EXISTS usage_stage
     (key, message_id, request_id, session_id, agent_id, prompt_id, machine, cwd, model, ts,
      input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens,
      web_search_requests, cost_usd, price_version, origin, event_id, inference_geo, speed)";

/// Stages one response: the parameters of [`UPSERT_USAGE`], in its order,
/// so [`UsageRow::run`] binds either.
const STAGE_USAGE: &str = "INSERT INTO temp.usage_stage
     (key, message_id, request_id, session_id, agent_id, prompt_id, machine, cwd, model, ts,
      input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens,
      web_search_requests, cost_usd, price_version, origin, event_id, inference_geo, speed)
     VALUES (:key, :message_id, :request_id, :session_id, :agent_id, :prompt_id, :machine, :cwd, :model, :ts,
      :input_tokens, :output_tokens, :cache_write_5m_tokens, :cache_write_1h_tokens, :cache_read_tokens,
      :web_search_requests, :cost_usd, :price_version, :origin, :event_id, :inference_geo, :speed)";

/// [`UPSERT_USAGE`] for every staged response, in the order staged
/// (`WHERE true` tells SQLite's parser the `ON CONFLICT` is the upsert's).
const STORE_STAGED_USAGE: &str = concat!(
    "INSERT INTO main.usage
     (key, message_id, request_id, session_id, agent_id, prompt_id, machine, cwd, model, ts,
      input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens,
      web_search_requests, cost_usd, price_version, origin, event_id, inference_geo, speed)
     SELECT key, message_id, request_id, session_id, agent_id, prompt_id, machine, cwd, model, ts,
      input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens,
      web_search_requests, cost_usd, price_version, origin, event_id, inference_geo, speed
     FROM temp.usage_stage WHERE rowid > :after AND rowid <= :upto ORDER BY rowid
     ",
    usage_conflict!()
);

/// A session the hooks recorded without usage (an older emitter) takes
/// its model from the import's main-agent responses, when it has none:
/// the first such response of the batch, since once it has set the model
/// the others' updates change nothing (so they are not run).
fn fill_session_models(
    transaction: &Transaction<'_>,
    usage: &[ImportedUsage],
) -> rusqlite::Result<()> {
    let mut fill_model = transaction
        .prepare_cached("UPDATE sessions SET model = ?2 WHERE session_id = ?1 AND model IS NULL")?;
    let mut tried: HashSet<&str> = HashSet::new();
    for imported in usage.iter().filter(|imported| {
        imported.agent_id.is_none()
            && !imported.response.sidechain
            && is_model_name(&imported.response.model)
            && cost::is_plausible(&imported.response)
    }) {
        if !tried.insert(&imported.session_id) {
            continue;
        }
        fill_model.execute(params![imported.session_id, imported.response.model])?;
    }
    Ok(())
}

/// Stores the tool call and subagent ids the import's transcripts show.
fn store_imported_ids(
    transaction: &Transaction<'_>,
    transcript_ids: &[TranscriptIds],
) -> rusqlite::Result<()> {
    let mut insert_id = transaction.prepare_cached(INSERT_TRANSCRIPT_ID)?;
    for ids in transcript_ids {
        store_transcript_ids(
            &mut insert_id,
            &ids.session_id,
            &ids.tool_use_ids,
            &ids.agent_ids,
        )?;
    }
    Ok(())
}

/// Adds the batch's events to `event_counts`, per minute, hook and machine.
fn add_minute_counts(
    transaction: &Transaction<'_>,
    minute_counts: &HashMap<(i64, &str, &str), i64>,
) -> rusqlite::Result<()> {
    if minute_counts.is_empty() {
        return Ok(());
    }
    let mut upsert = transaction.prepare_cached(
        "INSERT INTO event_counts (minute, hook, machine, count) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(minute, hook, machine) DO UPDATE SET count = count + excluded.count",
    )?;
    for ((minute, hook, machine), count) in minute_counts {
        upsert.execute(params![minute, hook, machine, count])?;
    }
    Ok(())
}

/// One `usage` row: a response's usage and what it is attributed to. The
/// hooks' usage and the import's are both stored through it, so the
/// upsert's parameters are bound in one place.
struct UsageRow<'a> {
    /// The response, by the counting rules of `transcript`.
    response: &'a ResponseUsage,
    session_id: Option<&'a str>,
    agent_id: Option<&'a str>,
    prompt_id: Option<&'a str>,
    machine: &'a str,
    cwd: Option<&'a str>,
    /// When the response came (the shipping event's time when the
    /// transcript line has none).
    ts: Option<i64>,
    /// `hook` or `import`: an import never replaces a hook's row.
    origin: &'static str,
    /// The event that carried it; `None` for an import's responses.
    event_id: Option<&'a str>,
}

impl UsageRow<'_> {
    /// Runs [`UPSERT_USAGE`] (or [`STAGE_USAGE`], which names the same
    /// parameters in the same order) for this row, priced with `prices`;
    /// returns the rows changed (0 when a hook's row kept an import's out).
    fn run(
        &self,
        upsert: &mut rusqlite::CachedStatement<'_>,
        prices: &PriceTable,
    ) -> rusqlite::Result<usize> {
        let response = self.response;
        execute_in_order(
            upsert,
            named_params! {
                ":key": response.key(),
                ":message_id": response.message_id,
                ":request_id": response.request_id,
                ":session_id": self.session_id,
                ":agent_id": self.agent_id,
                ":prompt_id": self.prompt_id,
                ":machine": self.machine,
                ":cwd": self.cwd,
                ":model": response.model,
                ":ts": self.ts,
                ":input_tokens": response.input as i64,
                ":output_tokens": response.output as i64,
                ":cache_write_5m_tokens": response.cache_write_5m as i64,
                ":cache_write_1h_tokens": response.cache_write_1h as i64,
                ":cache_read_tokens": response.cache_read as i64,
                ":web_search_requests": response.web_search as i64,
                ":cost_usd": prices.cost(response),
                ":price_version": prices.version,
                ":origin": self.origin,
                ":event_id": self.event_id,
                ":inference_geo": response.inference_geo,
                ":speed": response.speed,
            },
        )
    }
}

/// Runs a prepared statement with its named parameters, given in the order
/// they first appear in its SQL, bound by position. SQLite numbers `:name`
/// parameters by first appearance, so this binds exactly what
/// `execute(named_params! {..})` binds, without looking each name up (a
/// linear search per parameter, about 8% of the CPU of a commit on these
/// hot statements). A wrong count is an error; a name out of order is an
/// error in unit tests (`cfg(test)`), which run every statement that uses
/// this (the `tests` module below).
fn execute_in_order(
    statement: &mut rusqlite::Statement<'_>,
    params: &[(&str, &dyn rusqlite::ToSql)],
) -> rusqlite::Result<usize> {
    if statement.parameter_count() != params.len() {
        return Err(rusqlite::Error::InvalidParameterCount(
            params.len(),
            statement.parameter_count(),
        ));
    }
    for (index, (name, value)) in params.iter().enumerate() {
        if cfg!(test) && statement.parameter_name(index + 1) != Some(*name) {
            return Err(rusqlite::Error::InvalidParameterName((*name).to_owned()));
        }
        statement.raw_bind_parameter(index + 1, *value)?;
    }
    statement.raw_execute()
}

/// Stores one response's usage, keyed so that it counts once: the last
/// written usage wins, a hook's row is never replaced by an import's, and
/// the agent and prompt it was first attributed to stay. Bound by
/// [`UsageRow::run`].
pub(crate) const UPSERT_USAGE: &str = concat!(
    "INSERT INTO usage
     (key, message_id, request_id, session_id, agent_id, prompt_id, machine, cwd, model, ts,
      input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens,
      web_search_requests, cost_usd, price_version, origin, event_id, inference_geo, speed)
     VALUES (:key, :message_id, :request_id, :session_id, :agent_id, :prompt_id, :machine, :cwd, :model, :ts,
      :input_tokens, :output_tokens, :cache_write_5m_tokens, :cache_write_1h_tokens, :cache_read_tokens,
      :web_search_requests, :cost_usd, :price_version, :origin, :event_id, :inference_geo, :speed)
     ",
    usage_conflict!()
);

/// Prices again every stored response priced with another table (or none):
/// a price fix or a `--prices` override applies to history too.
fn reprice(connection: &mut Connection, prices: &PriceTable) -> rusqlite::Result<usize> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut changed = 0;
    {
        let mut select = transaction.prepare(
            "SELECT key, model, input_tokens, output_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
                    cache_read_tokens, web_search_requests, inference_geo, speed
             FROM usage WHERE price_version IS NOT ?1",
        )?;
        let mut update = transaction
            .prepare("UPDATE usage SET cost_usd = ?2, price_version = ?3 WHERE key = ?1")?;
        let rows = select.query_map([&prices.version], |row| {
            Ok((
                row.get::<_, String>(0)?,
                ResponseUsage {
                    model: row.get(1)?,
                    input: row.get::<_, i64>(2)? as u64,
                    output: row.get::<_, i64>(3)? as u64,
                    cache_write_5m: row.get::<_, i64>(4)? as u64,
                    cache_write_1h: row.get::<_, i64>(5)? as u64,
                    cache_read: row.get::<_, i64>(6)? as u64,
                    web_search: row.get::<_, i64>(7)? as u64,
                    inference_geo: row.get(8)?,
                    speed: row.get(9)?,
                    ..ResponseUsage::default()
                },
            ))
        })?;
        for row in rows {
            let (key, usage) = row?;
            update.execute(params![key, prices.cost(&usage), prices.version])?;
            changed += 1;
        }
    }
    transaction.commit()?;
    Ok(changed)
}

/// Counts per name (hook, redaction rule) within one batch, by reference:
/// a batch names a handful of hooks, found by a short linear search; past
/// [`NameCounts::SHORT`] names (a publisher inventing hook names) the rest
/// are hashed.
#[derive(Default)]
struct NameCounts<'a> {
    /// The first names seen, searched in order.
    short: Vec<(&'a str, u64)>,
    /// Names beyond the short list.
    more: HashMap<&'a str, u64>,
}

impl<'a> NameCounts<'a> {
    /// How many names the linear list holds.
    const SHORT: usize = 16;

    fn add(&mut self, name: &'a str, count: u64) {
        if let Some((_, total)) = self.short.iter_mut().find(|(known, _)| *known == name) {
            *total += count;
        } else if self.short.len() < Self::SHORT {
            self.short.push((name, count));
        } else {
            *self.more.entry(name).or_default() += count;
        }
    }

    fn is_empty(&self) -> bool {
        self.short.is_empty()
    }

    fn into_counts(self) -> impl Iterator<Item = (&'a str, u64)> {
        self.short.into_iter().chain(self.more)
    }
}

/// The minute key of `event_counts` for `ts`, rounded as SQLite's integer
/// division rounds (migration 2 and `REBUILD_EVENT_COUNTS` use the same).
fn minute_of(ts: i64) -> i64 {
    (ts / 60_000) * 60_000
}

/// The model of the main agent's last response in the usage an event
/// carries: a live session's model, which `SessionStart` names only after a
/// compaction. A subagent's responses (its own transcript, or sidechain
/// lines) may use another model and say nothing about the session's.
fn main_agent_model(event: &NewEvent) -> Option<&str> {
    let usage = event.usage.as_ref()?;
    if event.row.agent_id.is_some() || !matches!(usage.transcript, TranscriptKind::Session) {
        return None;
    }
    usage
        .responses
        .iter()
        .rev()
        .find(|response| {
            !response.sidechain
                && response.agent_id.is_none()
                && is_model_name(&response.model)
                && cost::is_plausible(response)
        })
        .map(|response| response.model.as_str())
}

/// Whether a transcript's model is a real one (not `<synthetic>`, the
/// name of Claude Code's own messages, nor empty).
fn is_model_name(model: &str) -> bool {
    !model.is_empty() && !model.starts_with('<')
}

/// One session's changes within a batch.
struct SessionDelta<'a> {
    machine: &'a str,
    cwd: Option<&'a str>,
    first_ts: i64,
    last_ts: i64,
    ended_ts: Option<i64>,
    end_reason: Option<&'a str>,
    event_count: i64,
    transcript_path: Option<&'a str>,
    last_seq: i64,
    /// The last state change of the batch, if any.
    state: Option<StateDelta<'a>>,
    /// The tool shown as running, when the batch changed it: `Some(None)`
    /// clears it.
    current_tool: Option<Option<&'a str>>,
    model: Option<&'a str>,
    title: Option<&'a str>,
    permission_mode: Option<&'a str>,
}

/// A session's or agent's state at the end of a batch.
struct StateDelta<'a> {
    state: State,
    /// When the state was entered.
    since: i64,
    /// The time of the last transition: a transition older than what the
    /// row already reflects (events arriving out of order) changes nothing.
    ts: i64,
    /// Whether the batch itself entered the state (after being in another),
    /// so `since` replaces the stored one even when the state's name is the
    /// same as before the batch.
    entered_in_batch: bool,
    detail: Option<&'a str>,
}

/// Applies one event's transition to a batch's running state.
fn apply_transition<'a>(
    state: &mut Option<StateDelta<'a>>,
    current_tool: &mut Option<Option<&'a str>>,
    change: &'a Transition,
    ts: i64,
) {
    if state.as_ref().is_some_and(|known| ts < known.ts) {
        return;
    }
    match state {
        Some(known) if known.state == change.state => {
            known.ts = ts;
            known.detail = change.detail.as_deref();
        }
        _ => {
            *state = Some(StateDelta {
                state: change.state,
                since: ts,
                ts,
                entered_in_batch: state.is_some(),
                detail: change.detail.as_deref(),
            })
        }
    }
    match &change.tool {
        ToolChange::Keep => {}
        ToolChange::Set(tool) => *current_tool = Some(Some(tool.as_str())),
        ToolChange::Clear => *current_tool = Some(None),
    }
}

/// One agent's changes within a batch.
#[derive(Default)]
struct AgentDelta<'a> {
    session_id: Option<&'a str>,
    agent_type: Option<&'a str>,
    parent_tool_use_id: Option<&'a str>,
    started_ts: Option<i64>,
    stopped_ts: Option<i64>,
    event_count: i64,
    transcript_path: Option<&'a str>,
    state: Option<StateDelta<'a>>,
    current_tool: Option<Option<&'a str>>,
    /// The prompt during which the agent started.
    prompt_id: Option<&'a str>,
}

fn note_side_tables<'a>(
    event: &'a NewEvent,
    seq: i64,
    sessions: &mut HashMap<&'a str, SessionDelta<'a>>,
    agents: &mut HashMap<&'a str, AgentDelta<'a>>,
) {
    let row = &event.row;
    let is_end = event.hook == HookEvent::SessionEnd;
    if let Some(session_id) = row.session_id.as_deref() {
        let delta = sessions.entry(session_id).or_insert_with(|| SessionDelta {
            machine: &row.machine,
            cwd: None,
            first_ts: row.ts,
            last_ts: row.ts,
            ended_ts: None,
            end_reason: None,
            event_count: 0,
            transcript_path: None,
            last_seq: seq,
            state: None,
            current_tool: None,
            model: None,
            title: None,
            permission_mode: None,
        });
        if let Some(change) = &event.transitions.session {
            apply_transition(&mut delta.state, &mut delta.current_tool, change, row.ts);
        }
        delta.model = event
            .model
            .as_deref()
            .or_else(|| main_agent_model(event))
            .or(delta.model);
        delta.title = delta.title.or(event.title.as_deref());
        delta.permission_mode = row.permission_mode.as_deref().or(delta.permission_mode);
        // The session's directory is where it started: the earliest event's.
        if delta.cwd.is_none() || row.ts < delta.first_ts {
            delta.cwd = row.cwd.as_deref().or(delta.cwd);
        }
        delta.first_ts = delta.first_ts.min(row.ts);
        delta.last_ts = delta.last_ts.max(row.ts);
        delta.event_count += 1;
        delta.last_seq = delta.last_seq.max(seq);
        delta.transcript_path = delta.transcript_path.or(event.transcript_path.as_deref());
        if is_end {
            delta.ended_ts = Some(row.ts);
            delta.end_reason = event.end_reason.as_deref().or(Some("unknown"));
        }
    }
    if let Some(agent_id) = row.agent_id.as_deref() {
        let delta = agents.entry(agent_id).or_default();
        delta.session_id = delta.session_id.or(row.session_id.as_deref());
        delta.agent_type = delta.agent_type.or(event.agent_type.as_deref());
        delta.event_count += 1;
        if let Some(change) = &event.transitions.agent {
            apply_transition(&mut delta.state, &mut delta.current_tool, change, row.ts);
        }
        match event.hook {
            HookEvent::SubagentStart => {
                delta.prompt_id = delta.prompt_id.or(row.prompt_id.as_deref());
                delta.started_ts = Some(delta.started_ts.map_or(row.ts, |ts| ts.min(row.ts)))
            }
            HookEvent::SubagentStop => {
                delta.stopped_ts = Some(delta.stopped_ts.map_or(row.ts, |ts| ts.max(row.ts)));
                delta.transcript_path = event
                    .agent_transcript_path
                    .as_deref()
                    .or(delta.transcript_path);
            }
            _ => {}
        }
    }
    if let Some(spawned) = event.spawned_agent_id.as_deref() {
        let delta = agents.entry(spawned).or_default();
        delta.session_id = delta.session_id.or(row.session_id.as_deref());
        delta.parent_tool_use_id = row.tool_use_id.as_deref().or(delta.parent_tool_use_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hooktrail_shared::envelope;
    use hooktrail_shared::redact::{Redactor, Settings as RedactionSettings};

    /// A migrated database in memory.
    fn database() -> Connection {
        let mut connection = Connection::open_in_memory().unwrap();
        schema::migrate(&mut connection).unwrap();
        connection
    }

    /// An event as the socket source builds it from `line`.
    fn event(line: &str) -> NewEvent {
        NewEvent::from_envelope_remembering(
            envelope::parse_line(line.as_bytes()).unwrap(),
            Source::Socket,
            &Redactor::new(RedactionSettings::default()),
            None,
        )
    }

    /// One envelope of session `s` on machine `m`, with `rest` (hook, ids,
    /// payload) spliced in.
    fn line(id: &str, ts: i64, rest: &str) -> String {
        format!(r#"{{"v":1,"id":"{id}","ts":{ts},"machine":"m","session_id":"s",{rest}}}"#)
    }

    fn commit(
        connection: &mut Connection,
        events: &[NewEvent],
        extras: &BatchExtras,
    ) -> CommitReport {
        let events: Vec<&NewEvent> = events.iter().collect();
        commit_events(connection, &events, &PriceTable::embedded(), extras).unwrap()
    }

    fn text(connection: &Connection, sql: &str) -> String {
        connection
            .query_row(&format!("SELECT CAST(({sql}) AS TEXT)"), [], |row| {
                row.get::<_, Option<String>>(0)
            })
            .unwrap()
            .unwrap_or_else(|| "NULL".into())
    }

    #[test]
    fn a_duplicate_id_gets_seq_zero_and_counts_nowhere() {
        let mut connection = database();
        let prompt = || {
            event(&line(
                "e1",
                1_000,
                r#""hook":"UserPromptSubmit","payload":{"prompt":"fix the build"}"#,
            ))
        };
        let report = commit(
            &mut connection,
            &[prompt(), prompt()],
            &BatchExtras::default(),
        );
        assert!(report.seqs[0] > 0);
        assert_eq!(report.seqs[1], 0);
        let again = commit(&mut connection, &[prompt()], &BatchExtras::default());
        assert_eq!(again.seqs, vec![0]);
        for (sql, expected) in [
            ("SELECT COUNT(*) FROM events", "1"),
            // The search index follows the commit (store::indexer).
            ("SELECT COUNT(*) FROM events_fts", "0"),
            ("SELECT indexed_seq FROM search_index_mark", "0"),
            ("SELECT event_count FROM sessions", "1"),
            ("SELECT SUM(count) FROM event_counts", "1"),
        ] {
            assert_eq!(text(&connection, sql), expected, "{sql}");
        }
    }

    #[test]
    fn a_session_row_adds_up_batches_and_an_older_event_keeps_its_state() {
        let mut connection = database();
        let first = [
            event(&line(
                "p",
                1_000,
                r#""cwd":"/w","hook":"UserPromptSubmit","payload":{"prompt":"fix it"}"#,
            )),
            event(&line(
                "t",
                1_500,
                r#""hook":"PreToolUse","tool":"Bash","payload":{}"#,
            )),
            event(&line("x", 2_000, r#""hook":"Stop","payload":{}"#)),
        ];
        commit(&mut connection, &first, &BatchExtras::default());
        let row = "SELECT state || ' ' || first_ts || ' ' || last_ts || ' ' || event_count || ' ' || title || ' ' || cwd FROM sessions";
        assert_eq!(text(&connection, row), "idle 1000 2000 3 fix it /w");
        assert_eq!(
            text(&connection, "SELECT current_tool FROM sessions"),
            "NULL"
        );
        // Arrives late: older than the row's last event, it counts but
        // leaves the state alone.
        let late = [event(&line(
            "late",
            1_200,
            r#""hook":"PreToolUse","tool":"Read","payload":{}"#,
        ))];
        commit(&mut connection, &late, &BatchExtras::default());
        assert_eq!(text(&connection, row), "idle 1000 2000 4 fix it /w");
        let end = [event(&line(
            "end",
            3_000,
            r#""hook":"SessionEnd","payload":{"reason":"clear"}"#,
        ))];
        commit(&mut connection, &end, &BatchExtras::default());
        assert_eq!(
            text(
                &connection,
                "SELECT state || ' ' || ended_ts || ' ' || end_reason FROM sessions"
            ),
            "ended 3000 clear"
        );
    }

    #[test]
    fn an_agent_row_takes_its_start_stop_prompt_and_spawning_call() {
        let mut connection = database();
        let events = [
            event(&line(
                "start",
                100,
                r#""agent_id":"a1","hook":"SubagentStart","payload":{"prompt_id":"p1","agent_type":"Explore"}"#,
            )),
            event(&line(
                "spawn",
                200,
                r#""hook":"PostToolUse","tool":"Agent","tool_use_id":"toolu_1","payload":{"tool_response":{"agentId":"a1"}}"#,
            )),
            event(&line(
                "stop",
                300,
                r#""agent_id":"a1","hook":"SubagentStop","payload":{"agent_transcript_path":"/t/a1.jsonl"}"#,
            )),
        ];
        commit(&mut connection, &events, &BatchExtras::default());
        assert_eq!(
            text(
                &connection,
                "SELECT session_id || ' ' || agent_type || ' ' || parent_tool_use_id || ' ' || started_ts || ' '
                        || stopped_ts || ' ' || state || ' ' || prompt_id || ' ' || transcript_path || ' ' || event_count
                 FROM agents WHERE agent_id = 'a1'"
            ),
            "s Explore toolu_1 100 300 ended p1 /t/a1.jsonl 2"
        );
    }

    /// A response's usage as an emitter ships it.
    fn response(message_id: &str, input: u64) -> ResponseUsage {
        ResponseUsage {
            message_id: message_id.into(),
            model: "claude-sonnet-4-5".into(),
            ts: Some(5_000),
            input,
            output: 7,
            ..ResponseUsage::default()
        }
    }

    fn imported(response: ResponseUsage) -> ImportedUsage {
        ImportedUsage {
            session_id: "s".into(),
            agent_id: None,
            prompt_id: Some("p-import".into()),
            machine: "m".into(),
            cwd: Some("/w".into()),
            response,
        }
    }

    #[test]
    fn usage_from_hooks_and_imports_is_stored_once_and_a_hook_row_wins() {
        let mut connection = database();
        let usage = serde_json::json!({
            "transcript": "session", "from": 0, "to": 10,
            "responses": [response("m1", 10), response("huge", cost::MAX_TOKENS_PER_KIND + 1)],
            "tool_use_ids": ["toolu_1"],
        });
        let stop = event(&line(
            "stop",
            6_000,
            &format!(r#""hook":"Stop","usage":{usage},"payload":{{"prompt_id":"p1"}}"#),
        ));
        let report = commit(&mut connection, &[stop], &BatchExtras::default());
        assert_eq!(report.usage_refused, 1);
        let extras = BatchExtras {
            usage: vec![imported(response("m1", 99)), imported(response("m2", 3))],
            transcript_ids: vec![TranscriptIds {
                session_id: "s".into(),
                tool_use_ids: vec!["toolu_2".into()],
                agent_ids: vec!["a9".into()],
            }],
        };
        let report = commit(&mut connection, &[], &extras);
        // m1 stays the hook's; m2 is new.
        assert_eq!((report.usage_rows, report.usage_refused), (1, 0));
        assert_eq!(
            text(
                &connection,
                "SELECT group_concat(key || ' ' || origin || ' ' || input_tokens || ' ' || COALESCE(event_id, '-')
                                     || ' ' || prompt_id || ' ' || ts, ', ')
                 FROM (SELECT * FROM usage ORDER BY key)"
            ),
            "m1 hook 10 stop p1 5000, m2 import 3 - p-import 5000"
        );
        assert_eq!(
            text(
                &connection,
                "SELECT group_concat(kind || ':' || item_id, ' ') FROM (SELECT * FROM transcript_ids ORDER BY item_id)"
            ),
            "agent:a9 tool_use:toolu_1 tool_use:toolu_2"
        );
        // A later batch on the same connection: staged in order (the last
        // of a key wins, as row by row), counted, and the stage emptied.
        let extras = BatchExtras {
            usage: vec![
                imported(response("m3", 1)),
                imported(response("m3", 7)),
                imported(response("m2", 4)),
            ],
            transcript_ids: Vec::new(),
        };
        let report = commit(&mut connection, &[], &extras);
        assert_eq!(report.usage_rows, 3);
        assert_eq!(
            text(
                &connection,
                "SELECT group_concat(key || ' ' || input_tokens, ', ') FROM (SELECT * FROM usage ORDER BY key)"
            ),
            "m1 10, m2 4, m3 7"
        );
        assert_eq!(
            text(&connection, "SELECT COUNT(*) FROM temp.usage_stage"),
            "0"
        );
    }

    #[test]
    fn an_import_batch_larger_than_a_stage_chunk_is_stored_whole() {
        let mut connection = database();
        let count = STAGE_CHUNK * 2 + 3;
        let usage = (0..count)
            .map(|index| imported(response(&format!("m{index}"), index as u64 + 1)))
            .collect();
        let extras = BatchExtras {
            usage,
            transcript_ids: Vec::new(),
        };
        let report = commit(&mut connection, &[], &extras);
        assert_eq!(report.usage_rows, count);
        let expected = (1..=count as u64).sum::<u64>();
        let stored = format!("{count} {expected}");
        assert_eq!(
            text(
                &connection,
                "SELECT COUNT(*) || ' ' || SUM(input_tokens) FROM usage"
            ),
            stored
        );
    }

    #[test]
    fn an_import_gives_a_session_without_a_model_its_main_agent_model() {
        let mut connection = database();
        let start = [event(&line(
            "start",
            1,
            r#""hook":"SessionStart","payload":{}"#,
        ))];
        commit(&mut connection, &start, &BatchExtras::default());
        assert_eq!(text(&connection, "SELECT model FROM sessions"), "NULL");
        let mut sidechain = response("side", 1);
        sidechain.model = "claude-haiku-4-5".into();
        sidechain.sidechain = true;
        let extras = BatchExtras {
            usage: vec![imported(response("main", 1)), imported(sidechain)],
            transcript_ids: Vec::new(),
        };
        commit(&mut connection, &[], &extras);
        assert_eq!(
            text(&connection, "SELECT model FROM sessions"),
            "claude-sonnet-4-5"
        );
    }

    /// Every row of the side tables, as text, in a fixed order.
    fn side_tables(connection: &Connection) -> String {
        [
            "sessions",
            "agents",
            "event_counts",
            "usage",
            "transcript_ids",
        ]
        .iter()
        .map(|table| {
            let mut statement = connection
                .prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2, 3"))
                .unwrap();
            let columns = statement.column_count();
            let rows: Vec<String> = statement
                .query_map([], |row| {
                    Ok((0..columns)
                        .map(|index| match row.get_ref(index).unwrap() {
                            rusqlite::types::ValueRef::Text(text) => {
                                String::from_utf8_lossy(text).into_owned()
                            }
                            other => format!("{other:?}"),
                        })
                        .collect::<Vec<_>>()
                        .join("|"))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            format!("{table}:\n{}", rows.join("\n"))
        })
        .collect::<Vec<_>>()
        .join("\n")
    }

    /// The writer folds a batch into one upsert per session, agent and
    /// minute (issue 21): a batch of many events of one session and its
    /// subagent leaves the same rows as committing them one by one, late
    /// events, state changes, usage and the end included.
    #[test]
    fn a_batch_of_one_session_leaves_the_rows_one_by_one_commits_leave() {
        let usage = serde_json::json!({
            "transcript": "session", "from": 0, "to": 10,
            "responses": [response("m1", 10), response("m2", 20)],
            "tool_use_ids": ["toolu_1"],
        });
        let lines = [
            line(
                "start",
                1_000,
                r#""cwd":"/w","hook":"SessionStart","payload":{"model":"claude-opus-4-5","transcript_path":"/t/s.jsonl"}"#,
            ),
            line(
                "prompt",
                1_100,
                r#""hook":"UserPromptSubmit","payload":{"prompt":"fix the build","prompt_id":"p1","permission_mode":"default"}"#,
            ),
            line(
                "pre",
                1_200,
                r#""hook":"PreToolUse","tool":"Bash","tool_use_id":"toolu_1","payload":{"prompt_id":"p1"}"#,
            ),
            line(
                "wait",
                1_250,
                r#""hook":"Notification","payload":{"notification_type":"permission_prompt"}"#,
            ),
            line(
                "post",
                1_300,
                r#""hook":"PostToolUse","tool":"Agent","tool_use_id":"toolu_2","payload":{"tool_response":{"agentId":"a1"}}"#,
            ),
            line(
                "a-start",
                1_400,
                r#""agent_id":"a1","hook":"SubagentStart","payload":{"prompt_id":"p1","agent_type":"Explore"}"#,
            ),
            line(
                "a-pre",
                1_500,
                r#""agent_id":"a1","hook":"PreToolUse","tool":"Read","payload":{}"#,
            ),
            line(
                "a-post",
                1_600,
                r#""agent_id":"a1","hook":"PostToolUse","tool":"Read","payload":{}"#,
            ),
            line(
                "late",
                1_150,
                r#""hook":"PreToolUse","tool":"Grep","payload":{"permission_mode":"plan"}"#,
            ),
            line(
                "a-stop",
                1_700,
                r#""agent_id":"a1","hook":"SubagentStop","payload":{"agent_transcript_path":"/t/a1.jsonl"}"#,
            ),
            format!(
                r#"{{"v":1,"id":"stop","ts":1800,"machine":"m","session_id":"s","hook":"Stop","usage":{usage},"payload":{{}}}}"#
            ),
            line(
                "again",
                61_000,
                r#""hook":"UserPromptSubmit","payload":{"prompt":"and the tests"}"#,
            ),
            line(
                "end",
                61_500,
                r#""hook":"SessionEnd","payload":{"reason":"clear"}"#,
            ),
            line(
                "prompt",
                1_100,
                r#""hook":"UserPromptSubmit","payload":{"prompt":"a duplicate"}"#,
            ),
        ];
        let mut batched = database();
        let events: Vec<NewEvent> = lines.iter().map(|text| event(text)).collect();
        commit(&mut batched, &events, &BatchExtras::default());
        let mut one_by_one = database();
        for text in &lines {
            commit(&mut one_by_one, &[event(text)], &BatchExtras::default());
        }
        let expected = side_tables(&one_by_one);
        assert!(expected.contains("ended"), "{expected}");
        assert_eq!(side_tables(&batched), expected);
    }

    #[test]
    fn event_counts_add_up_per_minute_hook_and_machine() {
        let mut connection = database();
        let pre = |id: &str, ts: i64| event(&line(id, ts, r#""hook":"PreToolUse","payload":{}"#));
        commit(
            &mut connection,
            &[pre("a", 60_000), pre("b", 119_999), pre("c", 120_000)],
            &BatchExtras::default(),
        );
        commit(
            &mut connection,
            &[pre("d", 61_000)],
            &BatchExtras::default(),
        );
        assert_eq!(
            text(
                &connection,
                "SELECT group_concat(minute || ' ' || hook || ' ' || machine || ' ' || count, ', ')
                 FROM (SELECT * FROM event_counts ORDER BY minute)"
            ),
            "60000 PreToolUse m 3, 120000 PreToolUse m 1"
        );
    }
}
