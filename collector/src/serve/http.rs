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
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tiny_http::{Method, Request};

use crate::log;
use crate::serve::fd::{
    descriptors_sharing, duplicate_listener, set_accepted_timeouts, set_listener_nodelay,
};
use crate::serve::gate::{respond, respond_static, ApiResponse, HttpContext, Shared};
use crate::serve::{alerts, api, approvals, budgets, metrics, sign_in, ws};
use crate::service::spawn_thread;
use crate::stats::Stats;
use crate::store::read::open_read_only;

/// Number of threads answering plain HTTP requests. A client that does not
/// read its response holds one for at most [`WRITE_TIMEOUT`] per blocked
/// write, so a handful of them slow the API down instead of freezing it.
const WORKERS: usize = 8;

/// How long one write to a client may block: a client that stops reading
/// gets its connection's write failed after this, and frees the worker.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection may send nothing (an idle keep-alive, or a request
/// sent a byte at a time) before it is closed, freeing its descriptor and
/// its `tiny_http` thread.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The first wait before restarting a listener whose accept loop ended; it
/// doubles after each failed restart, up to [`RESTART_BACKOFF_MAX`].
const RESTART_BACKOFF_FIRST: Duration = Duration::from_millis(50);

/// The longest wait between two restarts of the listener.
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// A restarted listener that has not failed for this long counts as
/// accepting again.
const RESTART_SETTLED_AFTER: Duration = Duration::from_secs(1);

/// How often the supervisor checks that the accept thread still holds the
/// listener (it can die by panicking, which reports nothing).
const LIVENESS_CHECK_EVERY: Duration = Duration::from_millis(500);

/// How often the supervisor connects to its own listener. Linux applies the
/// listener's `SO_RCVTIMEO` (set for the accepted sockets, see
/// [`READ_TIMEOUT`]) to `accept` too: with no new connection for that long,
/// `accept` failed with `EAGAIN`, `tiny_http`'s accept loop ended, and the
/// restart dropped the requests queued on the old server (answered 500).
/// A connection well within the timeout keeps `accept` from ever waiting
/// that long.
const ACCEPT_POKE_EVERY: Duration = Duration::from_secs(10);

/// One file of the page, embedded in the binary and served without the
/// token (the page shell: it holds no data).
struct PageFile {
    /// The path it is served at.
    path: &'static str,
    /// Its content, from `collector/ui/`.
    body: &'static str,
    /// Its `Content-Type`: module scripts must be served as JavaScript.
    content_type: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Declares the page's files: `"/path" => "file in ui/", content type`.
macro_rules! page_files {
    ($($path:literal => $file:literal, $content_type:expr;)*) => {
        &[$(PageFile {
            path: $path,
            body: include_str!(concat!("../../ui/", $file)),
            content_type: $content_type,
        },)*]
    };
}

/// Every file of the page, one row each: the one place a new module is
/// added (the page is native ES modules, with no build step).
const PAGE_FILES: &[PageFile] = page_files! {
    "/" => "index.html", HTML;
    "/index.html" => "index.html", HTML;
    "/app.css" => "app.css", CSS;
    "/favicon.svg" => "favicon.svg", SVG;
    "/favicon.ico" => "favicon.svg", SVG;
    "/app.js" => "app.js", JAVASCRIPT;
    "/api.js" => "api.js", JAVASCRIPT;
    "/approvals.js" => "approvals.js", JAVASCRIPT;
    "/detail.js" => "detail.js", JAVASCRIPT;
    "/edits.js" => "edits.js", JAVASCRIPT;
    "/feed.js" => "feed.js", JAVASCRIPT;
    "/filters.js" => "filters.js", JAVASCRIPT;
    "/format.js" => "format.js", JAVASCRIPT;
    "/health.js" => "health.js", JAVASCRIPT;
    "/live.js" => "live.js", JAVASCRIPT;
    "/overview.js" => "overview.js", JAVASCRIPT;
    "/route.js" => "route.js", JAVASCRIPT;
    "/session.js" => "session.js", JAVASCRIPT;
    "/sessions.js" => "sessions.js", JAVASCRIPT;
    "/timeline.js" => "timeline.js", JAVASCRIPT;
    "/alerts.js" => "alerts.js", JAVASCRIPT;
    "/welcome.js" => "welcome.js", JAVASCRIPT;
    "/title.js" => "title.js", JAVASCRIPT;
    "/budgets.js" => "budgets.js", JAVASCRIPT;
};

/// The page file served at `path`, if any.
fn page_file(path: &str) -> Option<&'static PageFile> {
    PAGE_FILES.iter().find(|file| file.path == path)
}

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

/// The server the workers take requests from; replaced when its accept loop
/// ended.
type CurrentServer = RwLock<Arc<tiny_http::Server>>;

impl HttpServer {
    /// Starts the HTTP thread: it serves requests on `WORKERS` worker
    /// threads until `shutdown` is set, and restarts the listener when
    /// `tiny_http`'s accept loop ends.
    pub fn spawn(self) -> Result<JoinHandle<()>, String> {
        spawn_thread("http", move || self.run())
    }

    fn run(self) {
        let bound = self.server.server_addr().to_ip();
        let mut spare = None;
        if let Some(address) = bound {
            set_listener_nodelay(address);
            spare = duplicate_listener(address);
            match &spare {
                Some(listener) => {
                    if !set_accepted_timeouts(listener, READ_TIMEOUT, WRITE_TIMEOUT) {
                        log::warn("HTTP: cannot set the connections' read and write timeouts");
                    }
                }
                None => log::warn(
                    "HTTP: cannot find the listening socket; a failed listener will be bound again",
                ),
            }
        }
        let stats = self.context.stats.clone();
        let shutdown = self.shutdown.clone();
        let shared = Arc::new(Shared::new(self.context, bound, self.shutdown));
        let current: Arc<CurrentServer> = Arc::new(RwLock::new(Arc::new(self.server)));
        let (failures, failed) = crossbeam_channel::unbounded();
        let workers: Vec<_> = (0..WORKERS)
            .map(|index| {
                let current = current.clone();
                let shared = shared.clone();
                let failures = failures.clone();
                std::thread::Builder::new()
                    .name(format!("http-{index}"))
                    .spawn(move || worker(&current, &shared, &failures))
                    .expect("spawn an HTTP worker thread")
            })
            .collect();
        drop(failures);
        ListenerSupervisor {
            address: bound,
            spare,
            stats,
            state: ListenerState::Accepting,
            backoff: RESTART_BACKOFF_FIRST,
            last_check: Instant::now(),
            last_poke: Instant::now(),
        }
        .run(&current, &failed, &shutdown);
        for worker in workers {
            let _ = worker.join();
        }
    }
}

/// Where the listener is in its restart cycle.
#[derive(Debug, Clone, Copy)]
enum ListenerState {
    /// Accepting connections.
    Accepting,
    /// Its accept loop ended; the next restart is due at this instant.
    Down { retry_at: Instant },
    /// Restarted at this instant; accepting again once it has not failed
    /// for [`RESTART_SETTLED_AFTER`].
    Restarted { at: Instant },
}

/// Restarts the listener when `tiny_http`'s accept loop ends (it ends on
/// any accept error, `EMFILE` included, and nothing else would notice),
/// with backoff, and keeps `Stats` told so health and the watchdog see it.
struct ListenerSupervisor {
    /// The bound address, to bind again when there is no spare socket.
    address: Option<std::net::SocketAddr>,
    /// A duplicate of the listening socket, kept so a new server can be
    /// started on it (same port, backlog kept) when the old one died.
    spare: Option<std::net::TcpListener>,
    /// Where the listener's state is published.
    stats: Arc<Stats>,
    /// Where the restart cycle is.
    state: ListenerState,
    /// The wait before the next restart attempt.
    backoff: Duration,
    /// When the accept thread was last checked for.
    last_check: Instant,
    /// When the listener was last connected to (see [`ACCEPT_POKE_EVERY`]).
    last_poke: Instant,
}

impl ListenerSupervisor {
    fn run(
        mut self,
        current: &CurrentServer,
        failed: &Receiver<std::io::Error>,
        shutdown: &AtomicBool,
    ) {
        while !shutdown.load(Ordering::Relaxed) {
            match failed.recv_timeout(Duration::from_millis(100)) {
                Ok(error) => self.accept_loop_ended(&error),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if self.last_check.elapsed() >= LIVENESS_CHECK_EVERY {
                self.last_check = Instant::now();
                if !matches!(self.state, ListenerState::Down { .. }) && self.accept_thread_gone() {
                    self.accept_loop_ended(&std::io::Error::other(
                        "the accept thread ended (out of file descriptors?)",
                    ));
                }
            }
            if self.last_poke.elapsed() >= ACCEPT_POKE_EVERY {
                self.last_poke = Instant::now();
                self.poke();
            }
            self.tick(current);
        }
    }

    /// Opens and closes one connection to the listener, so that `accept`
    /// returns before the listener's receive timeout (see
    /// [`ACCEPT_POKE_EVERY`]). `tiny_http` reads end-of-file on it at once.
    fn poke(&self) {
        if !matches!(self.state, ListenerState::Accepting) || self.spare.is_none() {
            return;
        }
        if let Some(address) = self.address {
            let _ = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(1));
        }
    }

    /// Whether `tiny_http`'s accept thread is gone: only the spare still
    /// refers to the listening socket (see [`descriptors_sharing`]).
    fn accept_thread_gone(&self) -> bool {
        let Some(spare) = &self.spare else {
            return false;
        };
        descriptors_sharing(spare).is_some_and(|count| count < 2)
    }

    fn accept_loop_ended(&mut self, error: &std::io::Error) {
        if matches!(self.state, ListenerState::Accepting) {
            log::error(&format!(
                "HTTP: the listener stopped accepting connections ({error}); restarting it"
            ));
            self.stats
                .http_listener_down_since_ms
                .store(hooktrail_shared::time::now_millis(), Ordering::Relaxed);
        }
        self.state = ListenerState::Down {
            retry_at: Instant::now() + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(RESTART_BACKOFF_MAX);
    }

    fn tick(&mut self, current: &CurrentServer) {
        match self.state {
            ListenerState::Accepting => {}
            ListenerState::Down { retry_at } if Instant::now() >= retry_at => {
                match self.start_server() {
                    Ok(server) => {
                        let old = std::mem::replace(
                            &mut *current.write().unwrap_or_else(|poison| poison.into_inner()),
                            Arc::new(server),
                        );
                        drop(old);
                        self.stats
                            .http_listener_restarts
                            .fetch_add(1, Ordering::Relaxed);
                        self.state = ListenerState::Restarted { at: Instant::now() };
                    }
                    Err(_) => {
                        self.state = ListenerState::Down {
                            retry_at: Instant::now() + self.backoff,
                        };
                        self.backoff = (self.backoff * 2).min(RESTART_BACKOFF_MAX);
                    }
                }
            }
            ListenerState::Down { .. } => {}
            ListenerState::Restarted { at } if at.elapsed() >= RESTART_SETTLED_AFTER => {
                let since = self
                    .stats
                    .http_listener_down_since_ms
                    .swap(0, Ordering::Relaxed);
                log::info(&format!(
                    "HTTP: accepting connections again after {} ms",
                    hooktrail_shared::time::now_millis() - since
                ));
                self.state = ListenerState::Accepting;
                self.backoff = RESTART_BACKOFF_FIRST;
            }
            ListenerState::Restarted { .. } => {}
        }
    }

    /// A new server on the spare socket, or bound again on the address.
    fn start_server(&mut self) -> Result<tiny_http::Server, String> {
        if let Some(spare) = &self.spare {
            let listener = spare.try_clone().map_err(|error| error.to_string())?;
            return tiny_http::Server::from_listener(listener, None)
                .map_err(|error| error.to_string());
        }
        let address = self.address.ok_or("no address to bind again")?;
        let server = tiny_http::Server::http(address).map_err(|error| error.to_string())?;
        set_listener_nodelay(address);
        self.spare = duplicate_listener(address);
        if let Some(listener) = &self.spare {
            set_accepted_timeouts(listener, READ_TIMEOUT, WRITE_TIMEOUT);
        }
        Ok(server)
    }
}

fn worker(current: &CurrentServer, shared: &Arc<Shared>, failures: &Sender<std::io::Error>) {
    let mut connection: Option<rusqlite::Connection> = None;
    while !shared.shutdown.load(Ordering::Relaxed) {
        let server = current
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        match server.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(request)) => handle(request, shared, &mut connection),
            Ok(None) => {}
            // The accept loop ended (tiny_http hands its error to one
            // receiver and stops accepting): the supervisor restarts it.
            Err(error) => {
                let _ = failures.send(error);
            }
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
    let url = request.url().to_owned();
    let (path, query_string) = url.split_once('?').unwrap_or((url.as_str(), ""));
    if path == budgets::GRANT_ROUTE {
        return budgets::grant(request, shared);
    }
    if approvals::owns(path) {
        return approvals::handle(request, path, query_string, shared);
    }
    match request.method() {
        Method::Get => {}
        Method::Post => return post(request, path, shared),
        _ => {
            return respond(
                request,
                ApiResponse::error(405, "only GET and POST are served"),
            )
        }
    }
    if let Some(file) = page_file(path) {
        return respond_static(request, file.body, file.content_type);
    }
    if path == "/ws" {
        return ws::start(request, query_string, shared);
    }
    if !shared.token_ok(&request, None) {
        return respond(request, token_missing());
    }
    let context = &shared.context;
    let answer = match path {
        "/api/health" => metrics::health(&context.stats, &context.hub, &context.database),
        "/api/capabilities" => sign_in::capabilities(shared),
        "/api/hooks" => api::hooks_route(),
        "/api/budgets" => {
            let snapshot = context
                .budgets
                .as_ref()
                .map(|control| control.verdicts.snapshot());
            match crate::query::parse_pairs(query_string, &["session"]) {
                Ok(pairs) => {
                    let session = pairs.first().map(|(_, value)| value.as_str());
                    budgets::list(&snapshot.unwrap_or_default(), session)
                }
                Err(error) => ApiResponse::bad_parameter(&error),
            }
        }
        "/metrics" => {
            if connection.is_none() {
                *connection = open_read_only(&context.database).ok();
            }
            let reader = connection
                .as_mut()
                .map(|open| (open, context.quiet_limits()));
            let mut answer =
                metrics::metrics(&context.stats, &context.hub, &context.database, reader);
            if let Some(control) = &context.budgets {
                budgets::push_metrics(
                    &mut answer.body,
                    &control.verdicts.snapshot(),
                    &control.verdicts.denials(),
                );
            }
            answer
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
            if path == "/api/alerts" {
                return respond(request, alerts::route(open, query_string));
            }
            let answer = api::route_database(open, path, query_string, context.quiet_limits());
            if answer.status == 503 {
                *connection = None;
            }
            answer
        }
        _ => ApiResponse::error(404, "no such route"),
    };
    respond(request, answer);
}

/// The `POST` routes: the page's own `Origin` first (no cross-site form or
/// script can post), then the token, except for the code exchange, which is
/// how the page gets one.
fn post(mut request: Request, path: &str, shared: &Shared) {
    if !shared.post_origin_allowed(&request) {
        return respond(
            request,
            ApiResponse::error(403, "POST refused: its Origin is not this page's own"),
        );
    }
    if path == "/api/page-token" {
        let answer = sign_in::exchange_code(&mut request, shared);
        return respond(request, answer);
    }
    if !shared.token_ok(&request, None) {
        return respond(request, token_missing());
    }
    let answer = match path {
        "/api/page-token/renew" => sign_in::renew(&request, shared),
        "/api/ws-ticket" => sign_in::ws_ticket(shared),
        _ => ApiResponse::error(404, "no such route"),
    };
    respond(request, answer);
}

/// The 401 of a request without the token (or a page token).
fn token_missing() -> ApiResponse {
    ApiResponse::error(
        401,
        "this collector needs its token: send `Authorization: Bearer TOKEN`",
    )
}
