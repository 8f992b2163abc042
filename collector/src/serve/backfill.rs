//! The backfill thread: the live feed's second producer. It hands the hub
//! the rows that another process committed to the same database, so a
//! WebSocket client sees every `seq`, in order, whatever wrote it.
//!
//! `hooktrail-collector import` runs as a process of its own and commits
//! straight into the database; the writer never sees those rows, so it
//! cannot publish them. Without this thread a client live at the newest
//! `seq` missed them, and once the next live event moved its cursor past
//! them, a reconnect from that cursor missed them too.
//!
//! How: the thread wakes when the hub says a writer's batch left a gap
//! (`Hub::publish`), and otherwise every [`POLL_INTERVAL`] asks SQLite's
//! `data_version` (no table read) whether anyone committed. When the newest
//! `seq` is past what the hub delivered, it reads the rows after that
//! position in pages, in one snapshot each, and hands them to the hub, which
//! delivers those it has not delivered yet, in order. With no subscriber it
//! reads nothing and only moves the hub's position on. Rows the writer
//! committed but did not publish yet may be read here first; the hub passes
//! over whatever it already delivered, so nothing goes out twice.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Receiver;
use rusqlite::Connection;

use crate::hub::Hub;
use crate::log;
use crate::query::{EventFilter, EventsQuery, Order};
use crate::service::spawn_thread;
use crate::store::import::data_version;
use crate::store::read::{max_seq, open_read_only, read_events};

/// How often the thread asks whether another process committed; the delay
/// of an imported row on the live feed when no live event comes meanwhile.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Rows per page read for the hub.
const PAGE: usize = 500;

/// The backfill thread: everything it needs, by name.
/// [`Backfill::spawn`] starts it.
pub(crate) struct Backfill {
    /// The collector's database.
    pub(crate) database: PathBuf,
    /// Where the rows go.
    pub(crate) hub: Arc<Hub>,
    /// Woken by the hub when a writer's batch left a gap
    /// (`Hub::attach_backfill`).
    pub(crate) wake: Receiver<()>,
    /// Stops the thread.
    pub(crate) shutdown: Arc<AtomicBool>,
}

impl Backfill {
    /// Starts the thread; it runs until shutdown.
    pub(crate) fn spawn(self) -> Result<JoinHandle<()>, String> {
        spawn_thread("backfill", move || self.run())
    }

    fn run(self) {
        let mut connection: Option<Connection> = None;
        let mut seen_version: Option<i64> = None;
        let mut failing: Option<String> = None;
        while !self.shutdown.load(Ordering::Relaxed) {
            let woken = self.wake.recv_timeout(POLL_INTERVAL).is_ok();
            if connection.is_none() {
                connection = open_read_only(&self.database).ok();
            }
            let Some(open) = connection.as_mut() else {
                continue;
            };
            let result = match data_version(open) {
                Ok(version) if !woken && seen_version == Some(version) => continue,
                Ok(version) => {
                    seen_version = Some(version);
                    self.catch_up(open)
                }
                Err(error) => Err(error),
            };
            match result {
                Ok(()) => {
                    if failing.take().is_some() {
                        log::info("backfill: reading other processes' rows again");
                    }
                }
                Err(error) => {
                    let text = error.to_string();
                    if failing.as_deref() != Some(text.as_str()) {
                        log::warn(&format!(
                            "backfill: cannot read rows for the live feed ({text}); retrying"
                        ));
                        failing = Some(text);
                    }
                    connection = None;
                    seen_version = None;
                }
            }
        }
    }

    /// Hands the hub every row after its delivered position, page by page.
    fn catch_up(&self, connection: &mut Connection) -> rusqlite::Result<()> {
        while !self.shutdown.load(Ordering::Relaxed) {
            let transaction = connection.transaction()?;
            let newest = max_seq(&transaction)?;
            let delivered = self.hub.last_published_seq();
            if newest <= delivered || self.hub.skip_unwatched(newest) {
                return Ok(());
            }
            let page = read_events(
                &transaction,
                &EventsQuery {
                    after: Some(delivered),
                    before: None,
                    limit: PAGE,
                    order: Order::Ascending,
                    filter: EventFilter::default(),
                },
            )?;
            drop(transaction);
            let events: Vec<_> = page.events.into_iter().map(Arc::new).collect();
            self.hub.publish_backfill(&events, page.next);
        }
        Ok(())
    }
}
