//! The checkpointer: a helper thread of the writer (and of an import) that
//! copies committed WAL frames into the database file, so the committing
//! thread never waits for the checkpoint's `fsync`. It writes no rows (see
//! [`Checkpointer`]).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};
use rusqlite::{Connection, OpenFlags};

use crate::service::spawn_thread;

/// How often the checkpointer looks for new commits to copy into the
/// database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

/// The writer's own auto-checkpoint threshold (pages), a backstop in case
/// the checkpointer thread falls behind: the WAL cannot grow past about this
/// many pages (4 KiB each) before the writer checkpoints itself.
pub(crate) const BACKSTOP_AUTOCHECKPOINT_PAGES: i64 = 16_384;

/// Copies committed WAL frames into the database file on its own thread and
/// connection, so the writer never waits for a checkpoint's `fsync`.
///
/// With `synchronous=NORMAL` the WAL is only synced at checkpoints; SQLite's
/// automatic checkpoint runs inside the committing thread, which made the
/// writer spend about as long waiting for the disk as inserting rows. A
/// `PASSIVE` checkpoint never blocks the writer (WAL appends go on while it
/// copies) and writes no rows: it only moves pages the writer already
/// committed, so the writer stays the only thread that changes the data.
pub(crate) struct Checkpointer {
    /// Dropped to stop the thread: it wakes at once, so a writer or an
    /// import that is done does not wait out the interval.
    stop: Option<Sender<()>>,
    /// The checkpointer thread.
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing `path` whenever `commits` moved since the last
    /// checkpoint. `None` if the second connection cannot be opened (the
    /// writer's own auto-checkpoint then does the work).
    pub(crate) fn start(path: &Path, commits: Arc<AtomicU64>) -> Option<Checkpointer> {
        let connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok()?;
        connection.busy_timeout(Duration::from_millis(50)).ok()?;
        let (stop, stopping) = crossbeam_channel::bounded::<()>(0);
        let thread = spawn_thread("checkpoint", move || {
            let mut checkpointed = 0;
            // Nothing is ever sent: the wait ends at the interval, or at
            // once when the sender is dropped.
            while let Err(RecvTimeoutError::Timeout) = stopping.recv_timeout(CHECKPOINT_INTERVAL) {
                let now = commits.load(Ordering::Relaxed);
                if now == checkpointed {
                    continue;
                }
                // A failure (a reader's lock, a read-only file) leaves the
                // frames in the WAL for the next attempt; the writer's
                // errors are what get logged and counted.
                if connection
                    .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    .is_ok()
                {
                    checkpointed = now;
                }
            }
        })
        .ok()?;
        Some(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
