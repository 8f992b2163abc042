//! The database. **Only this folder opens SQLite**, and only
//! [`writer`] writes it.
//!
//! - [`open`]: opening a read-write connection (a private file, WAL, the
//!   pragmas, the migrations); every module below that writes uses it.
//! - [`writer`]: the writer thread and the one read-write connection of the
//!   collector. Its helper thread is in
//!   [`checkpoint`] (copies committed WAL pages, writes no rows), and its
//!   idle-time deletions in [`retention`]. Between batches it also runs
//!   [`indexer`], which fills the search index behind it (issue 21).
//! - [`schema`]: tables, the `tool_calls` view and migrations (DESIGN §6).
//! - [`spend`]: what budgets measure (read-only).
//! - [`decisions`]: remote approval's pending requests, decisions and the
//!   away switch; decisions are written on a connection of their own.
//! - [`read`]: read-only connections and every read of the HTTP and
//!   WebSocket threads, as typed rows (the page of events, sessions,
//!   timelines, stats).
//! - [`import`]: what the import process needs beyond the writer's
//!   transaction (grown transcripts' ends), and `data_version`, by which
//!   the collector notices another process's commits.
//! - [`outbox`]: alerts raised in the writer's transaction, and the
//!   notifier threads' connections, which record deliveries (issue 20).
//! - [`budget_alerts`]: `budget` alerts, raised by the budget thread on a
//!   connection of its own (only it knows where a budget stands).

pub(crate) mod budget_alerts;
pub(crate) mod checkpoint;
pub(crate) mod decisions;
pub(crate) mod import;
pub(crate) mod indexer;
pub(crate) mod open;
pub(crate) mod otel;
pub(crate) mod outbox;
pub(crate) mod read;
pub(crate) mod retention;
pub(crate) mod schema;
pub(crate) mod spend;
pub(crate) mod writer;
