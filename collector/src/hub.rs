//! The live hub: hands each committed event to the WebSocket clients.
//!
//! **Invariant:** [`Hub::publish`] never blocks the writer. A client that
//! cannot keep up has a bounded queue; when it is full the client is closed
//! with a reason and reconnects from its last `seq`.

use std::sync::Arc;

/// One committed row, as the writer hands it to the hub.
#[derive(Debug, Clone)]
pub struct CommittedEvent {
    /// The row's `seq`: the cursor clients resume from.
    pub seq: i64,
    pub id: String,
    pub ts: i64,
    pub received_at: i64,
    pub machine: String,
    pub session_id: Option<String>,
    pub agent_id: Option<String>,
    pub hook: String,
    pub tool: Option<String>,
    pub tool_use_id: Option<String>,
    pub cwd: Option<String>,
    /// `redis`, `socket` or `spool`.
    pub source: &'static str,
    /// The payload JSON text as stored.
    pub payload: String,
}

/// Fan-out point between the writer and the WebSocket clients.
#[derive(Debug, Default)]
pub struct Hub {
    // Filled in by the UI work: per-client bounded queues.
}

impl Hub {
    /// A hub with no clients.
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    /// Called by the writer after each commit, with the newly stored rows in
    /// `seq` order. Must return at once.
    pub fn publish(&self, events: &[Arc<CommittedEvent>]) {
        let _ = events;
    }
}
