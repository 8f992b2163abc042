//! The HTTP side: the page, the JSON API, `/metrics` and the `/ws` upgrade,
//! on one `tiny_http` server (DESIGN §7). Filled in by the UI issue.

use std::path::PathBuf;
use std::sync::Arc;

use crate::hub::Hub;
use crate::stats::Stats;

/// Everything the HTTP threads need from the rest of the collector.
#[derive(Debug, Clone)]
pub struct HttpContext {
    /// The database file; HTTP threads open their own read-only connections
    /// and never hold up the writer.
    pub database: PathBuf,
    /// Counters for `/api/health` and `/metrics`.
    pub stats: Arc<Stats>,
    /// Live feed of committed events for `/ws`.
    pub hub: Arc<Hub>,
    /// The bearer token every route but the page shell requires, when set.
    pub token: Option<String>,
}

/// Serves requests until `shutdown` is set. `server` is already bound, so
/// tests can bind port 0 and read the address first.
pub fn serve(server: tiny_http::Server, context: HttpContext, shutdown: Arc<std::sync::atomic::AtomicBool>) {
    let _ = context;
    while !shutdown.load(std::sync::atomic::Ordering::Relaxed) {
        if let Ok(Some(request)) = server.recv_timeout(std::time::Duration::from_millis(200)) {
            let _ = request.respond(tiny_http::Response::from_string("hooktrail: UI not built yet").with_status_code(503));
        }
    }
}
