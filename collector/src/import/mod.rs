//! `hooktrail-collector import [DIR]`: stores the history in Claude Code's
//! transcripts (DESIGN §5).
//!
//! A process mode of its own, which may run while the collector runs: one
//! thread walks `DIR` and turns each transcript into hook-like events, usage
//! and ids ([`synthesize`]); the main thread stores them in batches through
//! the writer's own transaction ([`ImportStore`], `store::writer::
//! commit_events`), so the two overlap. The batches are small (at most
//! [`BATCH_EVENTS`] events or [`BATCH_BYTES`] of payload), which bounds the
//! memory and how long a running collector waits for the write lock.
//!
//! A session that already has live events (any source but `import`) keeps
//! them: its events are not imported, only its usage (origin `import`, never
//! replacing a hook's row) and its transcript ids (for the completeness
//! check).

mod progress;
pub(crate) mod synthesize;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cost::PriceTable;
use crate::store::read::{open_read_only, session_has_live_events};
use crate::store::writer::{BatchExtras, ImportStore};
use progress::Progress;
use synthesize::{FileJob, FileKind, Output};

/// Most events per transaction.
const BATCH_EVENTS: usize = 4000;
/// Most payload bytes per transaction.
const BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Most usage rows per transaction.
const BATCH_USAGE: usize = 8000;

/// Whether to draw the progress bar: when stderr is a terminal.
pub(crate) fn progress_wanted() -> bool {
    progress::stderr_is_terminal()
}

/// What an import did, for its summary line.
#[derive(Debug, Default, Clone)]
pub struct ImportSummary {
    /// Transcript files read.
    pub files: u64,
    /// Files skipped whole (binary, unreadable).
    pub skipped_files: u64,
    /// Sessions whose events were imported.
    pub sessions: u64,
    /// Sessions left to their live hooks (only usage and ids stored).
    pub live_sessions: u64,
    /// Events newly stored (a second import stores none).
    pub events: u64,
    /// Responses read (stored or updated by key).
    pub responses: u64,
    /// Lines that were not transcript lines: skipped.
    pub bad_lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Time the reading thread spent reading and turning lines into events.
    pub reading: Duration,
    /// Time the reading thread waited for the store to take a batch.
    pub waiting_for_store: Duration,
    /// Time the main thread spent in transactions.
    pub storing: Duration,
}

impl ImportSummary {
    /// Where the time went: reading vs storing (they overlap), for the
    /// benchmark (`HOOKTRAIL_IMPORT_PHASES=1`).
    pub fn phases_line(&self) -> String {
        format!(
            "phases: reading {:.2} s, reader waiting for the store {:.2} s, storing {:.2} s, wall {:.2} s",
            self.reading.as_secs_f64(),
            self.waiting_for_store.as_secs_f64(),
            self.storing.as_secs_f64(),
            self.elapsed.as_secs_f64()
        )
    }

    /// The one summary line.
    pub fn line(&self) -> String {
        let megabytes = self.bytes as f64 / 1e6;
        let seconds = self.elapsed.as_secs_f64();
        format!(
            "imported {} files ({} skipped), {} sessions ({} already live: usage only), {} events, {} responses, {} bad lines skipped, {:.1} MB in {:.2} s ({:.1} MB/s)",
            self.files,
            self.skipped_files,
            self.sessions,
            self.live_sessions,
            self.events,
            self.responses,
            self.bad_lines,
            megabytes,
            seconds,
            megabytes / seconds.max(1e-9)
        )
    }
}

/// One batch from the reading thread to the storing one.
struct Batch {
    events: Vec<crate::ingest::NewEvent>,
    extras: BatchExtras,
}

/// Imports every transcript under `dir` into `database`.
pub fn run(
    dir: &Path,
    database: &Path,
    prices: Arc<PriceTable>,
    machine: &str,
    show_progress: bool,
) -> Result<ImportSummary, String> {
    let started = Instant::now();
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let files = transcripts(dir);
    let total: u64 = files.iter().map(|(_, _, size)| size).sum();
    let mut store = ImportStore::open(database, prices)?;
    let reader_connection = open_read_only(database)
        .map_err(|error| format!("cannot read {}: {error}", database.display()))?;
    let bytes_read = AtomicU64::new(0);
    let mut summary = ImportSummary::default();
    let mut progress = Progress::new(show_progress, total);
    let (sender, receiver) = crossbeam_channel::bounded::<Batch>(2);
    let read_summary = std::thread::scope(|scope| -> Result<ImportSummary, String> {
        let bytes_read = &bytes_read;
        let files = &files;
        let reader =
            scope.spawn(move || read_all(files, machine, &reader_connection, bytes_read, &sender));
        loop {
            match receiver.recv_timeout(Duration::from_millis(100)) {
                Ok(batch) => {
                    let commit_started = Instant::now();
                    summary.events += store.commit(&batch.events, &batch.extras)? as u64;
                    summary.storing += commit_started.elapsed();
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
            progress.draw(bytes_read.load(Ordering::Relaxed), started.elapsed());
        }
        reader
            .join()
            .map_err(|_| "the transcript reader panicked".to_owned())
    })?;
    store.finish();
    progress.done();
    Ok(ImportSummary {
        events: summary.events,
        storing: summary.storing,
        elapsed: started.elapsed(),
        ..read_summary
    })
}

/// The reading thread: every file, in path order (a session's file before
/// its subagents'), in batches.
fn read_all(
    files: &[(PathBuf, FileKind, u64)],
    machine: &str,
    connection: &rusqlite::Connection,
    bytes_read: &AtomicU64,
    sender: &crossbeam_channel::Sender<Batch>,
) -> ImportSummary {
    let mut summary = ImportSummary::default();
    let mut live_by_session: HashMap<String, bool> = HashMap::new();
    let mut output = Output::default();
    for (path, kind, _) in files {
        let session_id = kind.session_id();
        let live = match live_by_session.get(session_id) {
            Some(&live) => live,
            None => {
                let live = session_has_live_events(connection, session_id).unwrap_or(false);
                live_by_session.insert(session_id.to_owned(), live);
                if live {
                    summary.live_sessions += 1;
                } else {
                    summary.sessions += 1;
                }
                live
            }
        };
        let job = FileJob {
            path,
            kind,
            machine,
            live,
            bytes_read,
        };
        let reading_started = Instant::now();
        let result = synthesize::read_file(&job, &mut output);
        summary.reading += reading_started.elapsed();
        match result {
            Ok(counts) if counts.binary => summary.skipped_files += 1,
            Ok(counts) => {
                summary.files += 1;
                summary.bad_lines += counts.bad_lines;
                summary.responses += counts.responses;
            }
            Err(error) => {
                crate::log::warn(&format!("import: skipping {}: {error}", path.display()));
                summary.skipped_files += 1;
            }
        }
        if output.events.len() >= BATCH_EVENTS
            || output.payload_bytes >= BATCH_BYTES
            || output.usage.len() >= BATCH_USAGE
        {
            summary.waiting_for_store += send(&mut output, sender);
        }
    }
    summary.waiting_for_store += send(&mut output, sender);
    summary.bytes = bytes_read.load(Ordering::Relaxed);
    summary
}

/// Hands the batch to the store; returns how long that waited.
fn send(output: &mut Output, sender: &crossbeam_channel::Sender<Batch>) -> Duration {
    if output.events.is_empty() && output.usage.is_empty() && output.transcript_ids.is_empty() {
        return Duration::ZERO;
    }
    let batch = Batch {
        events: std::mem::take(&mut output.events),
        extras: BatchExtras {
            usage: std::mem::take(&mut output.usage),
            transcript_ids: std::mem::take(&mut output.transcript_ids),
        },
    };
    output.payload_bytes = 0;
    let started = Instant::now();
    let _ = sender.send(batch);
    started.elapsed()
}

/// Every transcript under `dir`, sorted by path, with what it is and its
/// size: `<session>.jsonl` files, and `agent-<id>.jsonl` files in a
/// `<session>/subagents/` directory. Symbolic links are not followed.
fn transcripts(dir: &Path) -> Vec<(PathBuf, FileKind, u64)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if file_type.is_dir() {
                pending.push(path);
                continue;
            }
            if !file_type.is_file() || path.extension().is_none_or(|ext| ext != "jsonl") {
                continue;
            }
            let Some(kind) = file_kind(&path) else {
                continue;
            };
            let size = entry.metadata().map(|meta| meta.len()).unwrap_or(0);
            found.push((path, kind, size));
        }
    }
    found.sort_by(|left, right| left.0.cmp(&right.0));
    found
}

/// What a `.jsonl` file is, from its place: a subagent's transcript lies in
/// `<session>/subagents/`, every other one is a session's.
fn file_kind(path: &Path) -> Option<FileKind> {
    let stem = path.file_stem()?.to_str()?;
    let parent = path.parent()?;
    if parent.file_name().is_some_and(|name| name == "subagents") {
        let session_id = parent.parent()?.file_name()?.to_str()?.to_owned();
        let agent_id = stem.strip_prefix("agent-").unwrap_or(stem).to_owned();
        return Some(FileKind::Subagent {
            session_id,
            agent_id,
        });
    }
    Some(FileKind::Session {
        session_id: stem.to_owned(),
    })
}
