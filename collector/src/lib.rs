//! hooktrail's collector: stores every event in SQLite and serves the live UI.
//!
//! Layout (filled in by the collector and UI issues):
//! - [`schema`]: tables, view and migrations (DESIGN §6).
//! - [`stats`]: counters shared by all threads.
//! - [`hub`]: hands committed events to WebSocket clients.

pub mod http;
pub mod hub;
pub mod schema;
pub mod stats;

/// Runs the collector from the process arguments; returns the exit code.
pub fn run_from_args() -> i32 {
    eprintln!("usage: hooktrail-collector [--config FILE] [--db FILE] [--socket PATH] [--http ADDR] [--redis-url URL] [--transport stream|pubsub] [--key NAME] [--group NAME] [--spool-dir DIR] [--retention-days N] [--token TOKEN]");
    2
}
