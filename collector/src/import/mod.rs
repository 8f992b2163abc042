//! `hooktrail-collector import [DIR]`: stores the history in Claude Code's
//! transcripts (DESIGN §5).
//!
//! A process mode of its own, which may run while the collector runs: one
//! thread walks `DIR` and turns each transcript into hook-like events, usage
//! and ids ([`synthesize`]); the main thread stores them in batches through
//! the writer's own transaction ([`ImportStore`], `store::writer::
//! commit_events`), so the two overlap. A third thread reads the files
//! ahead, in the same order, into a few buffers ([`prefetch`]), so the
//! parsing thread waits neither for the disk nor for the copy out of the
//! page cache, and a fourth the subagents' meta files ([`agent_meta`]).
//! The batches are small (at most
//! [`BATCH_EVENTS`] events or [`BATCH_BYTES`] of payload), which bounds the
//! memory and how long a running collector waits for the write lock.
//!
//! A session that already has live events (any source but `import`) keeps
//! them: its events are not imported, only its usage (origin `import`, never
//! replacing a hook's row) and its transcript ids (for the completeness
//! check).
//!
//! A transcript's end event is named after its last line, so a transcript
//! that grew since the last import gets a new end, and the store keeps only
//! the latest end of a session that had rows before
//! (`store::import::retire_replaced_ends`). A session found only through its
//! subagents' files ends at their last line ([`synthesize::end_orphan_session`]).
//!
//! The summary counts what was stored: sessions with new events, and
//! responses inserted or updated (not those a hook already recorded).

mod agent_meta;
mod prefetch;
mod progress;
mod skim;
pub(crate) mod synthesize;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cost::PriceTable;
use crate::store::import::{session_is_stored, StoredEnd};
use crate::store::read::{open_read_only, session_has_live_events};
use crate::store::writer::{BatchExtras, ImportStore};
use hooktrail_shared::envelope::HookEvent;
use hooktrail_shared::redact::Redactor;
use progress::Progress;
use synthesize::{FileJob, FileKind, LastLine, Output};

/// Most events per transaction.
const BATCH_EVENTS: usize = 4000;
/// Most payload bytes per transaction.
const BATCH_BYTES: usize = 8 * 1024 * 1024;
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
    /// Sessions with events newly stored (a second import stores none).
    pub sessions: u64,
    /// Sessions left to their live hooks (only usage and ids stored).
    pub live_sessions: u64,
    /// Events newly stored (a second import stores none).
    pub events: u64,
    /// Responses stored or updated (by key); not those a hook already
    /// recorded, which an import never replaces.
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
    /// When the store got its first batch (from the start).
    pub first_batch: Duration,
    /// When the reading thread was done (from the start): what is left
    /// after it is the store's alone.
    pub reading_ended: Duration,
}

impl ImportSummary {
    /// Where the time went: reading vs storing (they overlap), for the
    /// benchmark (`HOOKTRAIL_IMPORT_PHASES=1`).
    pub fn phases_line(&self) -> String {
        format!(
            "phases: reading {:.2} s, reader waiting for the store {:.2} s, storing {:.2} s, first batch at {:.2} s, reading ended at {:.2} s, wall {:.2} s",
            self.reading.as_secs_f64(),
            self.waiting_for_store.as_secs_f64(),
            self.storing.as_secs_f64(),
            self.first_batch.as_secs_f64(),
            self.reading_ended.as_secs_f64(),
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
    /// Sessions of this batch that had rows before the import: a new end
    /// event of theirs replaces an earlier one.
    stored_before: HashSet<String>,
}

/// Imports every transcript under `dir` into `database`.
pub fn run(
    dir: &Path,
    database: &Path,
    prices: Arc<PriceTable>,
    machine: &str,
    show_progress: bool,
    redactor: &Redactor,
) -> Result<ImportSummary, String> {
    let started = Instant::now();
    keep_large_allocations_apart();
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
    // One batch waiting while one is stored and the next is read: the
    // reader stays a batch ahead, and memory holds three at most.
    let (sender, receiver) = crossbeam_channel::bounded::<Batch>(1);
    let paths = files.iter().map(|(path, _, _)| path.clone()).collect();
    let (prefetcher, prefetched) = prefetch::prefetch(paths, prefetch::CHUNK_BYTES);
    let subagents = files
        .iter()
        .filter_map(|(path, kind, _)| Some((path.clone(), kind.agent_id()?.to_owned())))
        .collect();
    let (agent_meta_reader, agent_types) = agent_meta::read_ahead(subagents);
    let read_summary = std::thread::scope(|scope| -> Result<ImportSummary, String> {
        // Owned here, so a failed store drops it on its way out: the
        // reading thread's next send fails and it stops, instead of
        // waiting for ever for a store that is gone (the scope waits for
        // every thread).
        let receiver = receiver;
        let bytes_read = &bytes_read;
        let files = &files;
        scope.spawn(move || prefetcher.run());
        scope.spawn(move || agent_meta_reader.run());
        let reader = scope.spawn(move || {
            let reading = Reading {
                machine,
                redactor,
                bytes_read,
                prefetched: &prefetched,
                agent_types: &agent_types,
            };
            let summary = read_all(files, &reading, &reader_connection, &sender);
            ImportSummary {
                reading_ended: started.elapsed(),
                ..summary
            }
        });
        let mut sessions_stored = HashSet::new();
        loop {
            match receiver.recv_timeout(Duration::from_millis(100)) {
                Ok(batch) => {
                    if summary.first_batch.is_zero() {
                        summary.first_batch = started.elapsed();
                    }
                    let commit_started = Instant::now();
                    store_batch(&mut store, &batch, &mut summary, &mut sessions_stored)?;
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
        sessions: summary.sessions,
        responses: summary.responses,
        storing: summary.storing,
        first_batch: summary.first_batch,
        elapsed: started.elapsed(),
        ..read_summary
    })
}

/// Payloads at least this large get pages of their own from the allocator.
const MMAP_THRESHOLD_BYTES: i32 = 256 * 1024;
/// Free memory at the top of the heap beyond this is given back.
const TRIM_THRESHOLD_BYTES: i32 = 8 * 1024 * 1024;

/// Fixes glibc's threshold for giving an allocation pages of its own
/// (`M_MMAP_THRESHOLD`). By default it rises to the size of each such
/// block freed, up to 32 MiB, and the heap's trim threshold with it to
/// twice that, so after the first large tool result is freed the others
/// (up to 400 KB each, built by the reading thread, freed by the storing
/// one) come from a heap that they fragment and that is never given back:
/// the import's peak memory varied from 50 to 72 MB between runs of the
/// same files; fixed, it stays under 50 MB. The trim threshold is set too
/// (8 MiB; glibc's default of 128 KiB gave pages back and faulted them in
/// again so often that it cost 0.1 s of system time per GB). Measured in
/// BENCHMARKS.md, issue 21 item 3, round 3. The import is a process of its
/// own, so this changes nothing for the collector.
fn keep_large_allocations_apart() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets allocator parameters; it is called before
    // the import's threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES);
    }
}

/// Stores one batch, counts what was new, and replaces the earlier ends of
/// grown transcripts.
fn store_batch(
    store: &mut ImportStore,
    batch: &Batch,
    summary: &mut ImportSummary,
    sessions_stored: &mut HashSet<String>,
) -> Result<(), String> {
    let report = store.commit(&batch.events, &batch.extras)?;
    summary.responses += report.usage_rows as u64;
    let mut ends = Vec::new();
    for (event, &seq) in batch.events.iter().zip(&report.seqs) {
        if seq <= 0 {
            continue;
        }
        summary.events += 1;
        let row = &event.row;
        let Some(session_id) = row.session_id.as_deref() else {
            continue;
        };
        if !sessions_stored.contains(session_id) {
            sessions_stored.insert(session_id.to_owned());
            summary.sessions += 1;
        }
        let is_end = matches!(event.hook, HookEvent::SessionEnd | HookEvent::SubagentStop);
        if is_end && batch.stored_before.contains(session_id) {
            ends.push(StoredEnd {
                session_id: session_id.to_owned(),
                agent_id: row.agent_id.clone(),
                hook: row.hook.clone(),
            });
        }
    }
    store.retire_replaced_ends(&ends)?;
    Ok(())
}

/// What the reading thread knows of one session, looked up at its first
/// file.
#[derive(Debug, Clone, Copy)]
struct SessionFacts {
    /// It has live events: only its usage and ids are imported.
    live: bool,
    /// It had rows before this import.
    stored_before: bool,
}

/// A session found only through its subagents' files, until its last one
/// is read.
struct Orphan {
    /// The session.
    kind: FileKind,
    /// Its directory (`<project>/<session>`), named in no event.
    dir: PathBuf,
    /// The latest last line of its subagents' files so far.
    last_line: Option<LastLine>,
    /// It had rows before this import (an earlier end to replace).
    stored_before: bool,
}

/// What the reading thread reads every file with.
#[derive(Clone, Copy)]
struct Reading<'a> {
    /// The machine the history is imported on.
    machine: &'a str,
    /// The redaction rules every synthesized event goes through.
    redactor: &'a Redactor,
    /// Bumped as bytes are read, for the progress bar.
    bytes_read: &'a AtomicU64,
    /// The files' bytes, read ahead in order by a thread of their own.
    prefetched: &'a prefetch::Prefetched,
    /// The subagents' types, read ahead in order by another.
    agent_types: &'a agent_meta::AgentTypes,
}

/// The reading thread: every file, in path order (a session's file before
/// its subagents'), in batches.
fn read_all(
    files: &[(PathBuf, FileKind, u64)],
    reading: &Reading<'_>,
    connection: &rusqlite::Connection,
    sender: &crossbeam_channel::Sender<Batch>,
) -> ImportSummary {
    let Reading {
        machine,
        redactor,
        bytes_read,
        prefetched,
        agent_types,
    } = *reading;
    let mut summary = ImportSummary::default();
    let mut facts_by_session: HashMap<String, SessionFacts> = HashMap::new();
    let with_transcript: HashSet<&str> = files
        .iter()
        .filter(|(_, kind, _)| matches!(kind, FileKind::Session { .. }))
        .map(|(_, kind, _)| kind.session_id())
        .collect();
    let mut output = Output::default();
    let mut stored_before = HashSet::new();
    let mut orphan: Option<Orphan> = None;
    for (index, (path, kind, _)) in files.iter().enumerate() {
        let session_id = kind.session_id();
        if orphan
            .as_ref()
            .is_some_and(|orphan| orphan.kind.session_id() != session_id)
        {
            end_orphan(orphan.take(), reading, &mut output, &mut stored_before);
        }
        let facts = match facts_by_session.get(session_id) {
            Some(&facts) => facts,
            None => {
                let live = session_has_live_events(connection, session_id).unwrap_or(false);
                let facts = SessionFacts {
                    live,
                    stored_before: !live
                        && session_is_stored(connection, session_id).unwrap_or(true),
                };
                facts_by_session.insert(session_id.to_owned(), facts);
                if live {
                    summary.live_sessions += 1;
                }
                facts
            }
        };
        let live = facts.live;
        if facts.stored_before {
            stored_before.insert(session_id.to_owned());
        }
        if !live && !with_transcript.contains(session_id) && orphan.is_none() {
            orphan = Some(Orphan {
                kind: FileKind::Session {
                    session_id: session_id.to_owned(),
                },
                dir: path
                    .parent()
                    .and_then(Path::parent)
                    .unwrap_or(path)
                    .to_owned(),
                last_line: None,
                stored_before: facts.stored_before,
            });
        }
        // Asked once for each subagent's file, in the order they were
        // given to the thread that reads them.
        let agent_type = kind.agent_id().and_then(|_| agent_types.next());
        let job = FileJob {
            path,
            kind,
            machine,
            redactor,
            live,
            bytes_read,
            agent_type,
        };
        let reading_started = Instant::now();
        let result = synthesize::read_from(&job, prefetched.file(index), &mut output);
        summary.reading += reading_started.elapsed();
        match result {
            Ok(counts) if counts.binary => summary.skipped_files += 1,
            Ok(counts) => {
                summary.files += 1;
                summary.bad_lines += counts.bad_lines;
                if let (Some(orphan), Some(last)) = (orphan.as_mut(), counts.last_line) {
                    if orphan
                        .last_line
                        .as_ref()
                        .is_none_or(|known| last.ts >= known.ts)
                    {
                        orphan.last_line = Some(last);
                    }
                }
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
            match send(&mut output, &mut stored_before, sender) {
                Some(waited) => summary.waiting_for_store += waited,
                None => break,
            }
        }
    }
    end_orphan(orphan.take(), reading, &mut output, &mut stored_before);
    summary.waiting_for_store += send(&mut output, &mut stored_before, sender).unwrap_or_default();
    summary.bytes = bytes_read.load(Ordering::Relaxed);
    summary
}

/// Emits the end of an orphan session (see [`Orphan`]) once its last
/// subagent file is read.
fn end_orphan(
    orphan: Option<Orphan>,
    reading: &Reading<'_>,
    output: &mut Output,
    stored_before: &mut HashSet<String>,
) {
    let Some(Orphan {
        kind,
        dir,
        last_line: Some(last_line),
        stored_before: was_stored,
    }) = orphan
    else {
        return;
    };
    if was_stored {
        stored_before.insert(kind.session_id().to_owned());
    }
    let job = FileJob {
        path: &dir,
        kind: &kind,
        machine: reading.machine,
        redactor: reading.redactor,
        live: false,
        bytes_read: reading.bytes_read,
        agent_type: None,
    };
    synthesize::end_orphan_session(&job, &last_line, output);
}

/// Hands the batch to the store; returns how long that waited, or `None`
/// when the store is gone (it failed, and reports why): reading stops.
/// `stored_before` goes with it (each file of such a session adds it again).
fn send(
    output: &mut Output,
    stored_before: &mut HashSet<String>,
    sender: &crossbeam_channel::Sender<Batch>,
) -> Option<Duration> {
    if output.events.is_empty() && output.usage.is_empty() && output.transcript_ids.is_empty() {
        return Some(Duration::ZERO);
    }
    let batch = Batch {
        events: std::mem::take(&mut output.events),
        extras: BatchExtras {
            usage: std::mem::take(&mut output.usage),
            transcript_ids: std::mem::take(&mut output.transcript_ids),
        },
        stored_before: std::mem::take(stored_before),
    };
    output.payload_bytes = 0;
    let started = Instant::now();
    sender.send(batch).ok()?;
    Some(started.elapsed())
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
