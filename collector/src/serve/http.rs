//! The HTTP server thread: the page, the JSON API, `/metrics` and the `/ws`
//! upgrade, on one `tiny_http` server (DESIGN §7).
//!
//! A few worker threads share the server; each owns one read-only SQLite
//! connection, opened on first use and reopened after an error. Every
//! request passes [`super::gate`] first (Host, method, then the token for
//! all but the page shell; the security headers on every answer) and is then
//! routed: the page's files, [`super::metrics`], [`super::api`], or `/ws` to
//! [`super::ws`], which checks its token, Origin and parameters and serves
//! the client on a thread of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tiny_http::{Method, Request};

use crate::serve::fd::set_listener_nodelay;
use crate::serve::gate::{respond, respond_static, ApiResponse, HttpContext, Shared};
use crate::serve::{api, metrics, ws};
use crate::service::spawn_thread;
use crate::store::read::open_read_only;

/// Number of threads answering plain HTTP requests.
const WORKERS: usize = 4;

const INDEX_HTML: &str = include_str!("../../ui/index.html");
const APP_JS: &str = include_str!("../../ui/app.js");
const APP_CSS: &str = include_str!("../../ui/app.css");
const FAVICON_SVG: &str = include_str!("../../ui/favicon.svg");

/// The HTTP server thread: everything it needs, by name.
/// [`HttpServer::spawn`] starts it.
pub struct HttpServer {
    /// The bound server, so tests can bind port 0 and read the address first.
    pub server: tiny_http::Server,
    /// What the handlers need from the rest of the collector.
    pub context: HttpContext,
    /// Set when the collector stops.
    pub shutdown: Arc<AtomicBool>,
}

impl HttpServer {
    /// Starts the HTTP thread: it serves requests on `WORKERS` worker
    /// threads until `shutdown` is set.
    pub fn spawn(self) -> Result<JoinHandle<()>, String> {
        spawn_thread("http", move || self.run())
    }

    fn run(self) {
        let bound = self.server.server_addr().to_ip();
        if let Some(address) = bound {
            set_listener_nodelay(address);
        }
        let shared = Arc::new(Shared::new(self.context, bound, self.shutdown));
        let server = Arc::new(self.server);
        let workers: Vec<_> = (0..WORKERS)
            .map(|index| {
                let server = server.clone();
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("http-{index}"))
                    .spawn(move || worker(&server, &shared))
                    .expect("spawn an HTTP worker thread")
            })
            .collect();
        for worker in workers {
            let _ = worker.join();
        }
    }
}

fn worker(server: &tiny_http::Server, shared: &Arc<Shared>) {
    let mut connection: Option<rusqlite::Connection> = None;
    while !shared.shutdown.load(Ordering::Relaxed) {
        match server.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(request)) => handle(request, shared, &mut connection),
            Ok(None) => {}
            // A failed receive (the server closing): back off instead of spinning.
            #[allow(clippy::disallowed_methods)]
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn handle(request: Request, shared: &Arc<Shared>, connection: &mut Option<rusqlite::Connection>) {
    if !shared.host_allowed(&request) {
        return respond(
            request,
            ApiResponse::error(
                403,
                "this Host is not the collector's own (DNS rebinding protection)",
            ),
        );
    }
    if *request.method() != Method::Get {
        return respond(request, ApiResponse::error(405, "only GET is served"));
    }
    let url = request.url().to_owned();
    let (path, query_string) = url.split_once('?').unwrap_or((url.as_str(), ""));
    match path {
        "/" | "/index.html" => {
            return respond_static(request, INDEX_HTML, "text/html; charset=utf-8")
        }
        "/app.js" => return respond_static(request, APP_JS, "text/javascript; charset=utf-8"),
        "/app.css" => return respond_static(request, APP_CSS, "text/css; charset=utf-8"),
        "/favicon.svg" | "/favicon.ico" => {
            return respond_static(request, FAVICON_SVG, "image/svg+xml")
        }
        _ => {}
    }
    if path == "/ws" {
        return ws::start(request, query_string, shared);
    }
    if !shared.token_ok(&request, None) {
        return respond(
            request,
            ApiResponse::error(
                401,
                "this collector needs its token: send `Authorization: Bearer TOKEN`",
            ),
        );
    }
    let context = &shared.context;
    let answer = match path {
        "/api/health" => metrics::health(&context.stats, &context.hub, &context.database),
        "/metrics" => {
            if connection.is_none() {
                *connection = open_read_only(&context.database).ok();
            }
            let reader = connection
                .as_mut()
                .map(|open| (open, context.quiet_after.as_millis() as i64));
            metrics::metrics(&context.stats, &context.hub, &context.database, reader)
        }
        _ if path.starts_with("/api/") => {
            if connection.is_none() {
                match open_read_only(&context.database) {
                    Ok(opened) => *connection = Some(opened),
                    Err(error) => {
                        return respond(
                            request,
                            ApiResponse::error(
                                503,
                                &format!("cannot open the database read-only: {error}"),
                            ),
                        )
                    }
                }
            }
            let Some(open) = connection.as_mut() else {
                return;
            };
            let answer = api::route_database(
                open,
                path,
                query_string,
                context.quiet_after.as_millis() as i64,
            );
            if answer.status == 503 {
                *connection = None;
            }
            answer
        }
        _ => ApiResponse::error(404, "no such route"),
    };
    respond(request, answer);
}
