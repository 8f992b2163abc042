//! The spool source: drains the spool directory at start and then
//! periodically.
//!
//! Each claimed file (`hooktrail_shared::spool::claim`) is read whole; its
//! valid lines go to the writer as submissions, its rejected lines are
//! recorded in `rejected.jsonl`, counted and logged. The file is deleted only
//! after every submission from it is committed. If the collector stops first,
//! the claim's lock dies with it and the next drainer claims the file again;
//! redelivered events are stored once by id.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hooktrail_shared::redact::Redactor;
use hooktrail_shared::spool;

use crate::event::Source;
use crate::ingest::{self, Submission, WriterQueue};
use crate::log;
use crate::service::spawn_thread;
use crate::stats::Stats;

/// Files claimed per pass.
const FILES_PER_PASS: usize = 16;

/// Events per submission, so a huge spool file is committed in steps.
const EVENTS_PER_SUBMISSION: usize = 2000;

/// The spool source thread: everything it needs, by name.
/// [`SpoolSource::spawn`] starts it.
pub(crate) struct SpoolSource {
    /// The spool directory.
    pub(crate) dir: PathBuf,
    /// Where events go.
    pub(crate) queue: WriterQueue,
    /// Counters.
    pub(crate) stats: Arc<Stats>,
    /// Time between passes.
    pub(crate) interval: Duration,
    /// Stops the drainer between files.
    pub(crate) shutdown: Arc<AtomicBool>,
    /// How long a pass waits for its commits once shutdown started.
    pub(crate) drain_deadline: Duration,
    /// This collector's redaction rules, applied again to every event
    /// received (its own: two collectors in one process keep theirs).
    pub(crate) redactor: Arc<Redactor>,
}

impl SpoolSource {
    /// Starts the drainer's thread: it drains at once, then every
    /// `interval`, until shutdown.
    pub(crate) fn spawn(self) -> Result<JoinHandle<()>, String> {
        spawn_thread("spool", move || self.run())
    }

    /// Drains until shutdown.
    fn run(self) {
        let tag = format!("collector{}", std::process::id());
        let mut passes: u64 = 0;
        let mut last_error: Option<String> = None;
        let mut named = HashSet::new();
        while !self.shutdown.load(Ordering::Relaxed) {
            passes += 1;
            match self.pass(&format!("{tag}-{passes}"), &mut named) {
                Ok(()) => {
                    if last_error.take().is_some() {
                        log::info(&format!("spool: draining {} again", self.dir.display()));
                    }
                }
                Err(error) => {
                    if last_error.as_deref() != Some(error.as_str()) {
                        log::warn(&format!(
                            "spool: cannot drain {}: {error}",
                            self.dir.display()
                        ));
                        last_error = Some(error);
                    }
                }
            }
            let until = Instant::now() + self.interval;
            while Instant::now() < until && !self.shutdown.load(Ordering::Relaxed) {
                // The drain period, in slices so shutdown is prompt.
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(Duration::from_millis(50).min(self.interval));
            }
        }
    }

    /// Claims and drains every file present now. Entries that are not
    /// regular files are left where they are and named in the log once
    /// (`named` remembers them across passes).
    fn pass(&self, tag: &str, named: &mut HashSet<PathBuf>) -> Result<(), String> {
        loop {
            let claim = spool::claim_files(&self.dir, tag, FILES_PER_PASS, spool::Claimer::Drainer)
                .map_err(|error| error.to_string())?;
            for path in claim.not_regular {
                if named.insert(path.clone()) {
                    log::warn(&format!(
                        "spool: passing by {}: not a regular file (a FIFO, device or link); remove it",
                        path.display()
                    ));
                }
            }
            let claimed = claim.files;
            if claimed.is_empty() {
                return Ok(());
            }
            let full = claimed.len() >= FILES_PER_PASS;
            for file in claimed {
                if self.shutdown.load(Ordering::Relaxed) {
                    // Dropping the claim releases its lock; the file is
                    // drained at the next start.
                    return Ok(());
                }
                self.drain_file(file)?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    fn drain_file(&self, mut file: spool::ClaimedFile) -> Result<(), String> {
        let name = file.path.display().to_string();
        let lines = file
            .read_lines()
            .map_err(|error| format!("cannot read {name}: {error}"))?;
        let mut events = Vec::with_capacity(lines.len().min(EVENTS_PER_SUBMISSION));
        let mut rejected = 0usize;
        // A rejected line that could not be copied to `rejected.jsonl` only
        // exists in this file: then the file is kept (its stored events are
        // deduplicated by id when it is drained again).
        let mut unrecorded = 0usize;
        for line in &lines {
            match ingest::parse_counted(line, Source::Spool, &self.stats, &self.redactor) {
                Ok(event) => events.push(event),
                Err(reason) => {
                    rejected += 1;
                    if let Err(error) = spool::record_rejected(&self.dir, line, &reason.0) {
                        unrecorded += 1;
                        log::warn(&format!("spool: cannot record a rejected line: {error}"));
                    }
                    if rejected <= 3 {
                        log::warn(&format!(
                            "spool: rejected a line of {name}: {reason} (kept in {})",
                            spool::REJECTED_FILE
                        ));
                    }
                }
            }
        }
        if rejected > 3 {
            log::warn(&format!(
                "spool: {rejected} lines of {name} rejected in all (kept in {})",
                spool::REJECTED_FILE
            ));
        }
        let (done_sender, done_receiver) = crossbeam_channel::unbounded();
        let mut outstanding = 0;
        let mut total = 0u64;
        let mut chunks = Vec::new();
        while !events.is_empty() {
            let rest = events.split_off(events.len().min(EVENTS_PER_SUBMISSION));
            chunks.push(std::mem::replace(&mut events, rest));
        }
        for chunk in chunks {
            total += chunk.len() as u64;
            let done = done_sender.clone();
            let submission = Submission {
                source: Source::Spool,
                events: chunk,
                acknowledge: Box::new(move |committed| {
                    let _ = done.send(committed);
                }),
                otel: None,
            };
            if self.queue.submit(submission).is_err() {
                return Err("the writer has stopped".to_owned());
            }
            outstanding += 1;
        }
        drop(done_sender);
        let mut deadline: Option<Instant> = None;
        while outstanding > 0 {
            match done_receiver.recv_timeout(Duration::from_millis(200)) {
                Ok(_) => outstanding -= 1,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if self.shutdown.load(Ordering::Relaxed) {
                        let since = *deadline.get_or_insert_with(Instant::now);
                        if since.elapsed() > self.drain_deadline {
                            return Ok(());
                        }
                    }
                }
                // The writer dropped the acknowledgement without committing.
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
        if unrecorded > 0 {
            log::warn(&format!(
                "spool: keeping {name}: {unrecorded} rejected lines could not be recorded in {}",
                spool::REJECTED_FILE
            ));
            return Ok(());
        }
        file.finish()
            .map_err(|error| format!("cannot delete the drained {name}: {error}"))?;
        self.stats
            .source(Source::Spool)
            .acknowledged
            .fetch_add(total, Ordering::Relaxed);
        Ok(())
    }
}
