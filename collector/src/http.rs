//! The HTTP side: the page, the JSON API, `/metrics` and the `/ws` upgrade,
//! on one `tiny_http` server (DESIGN §7).
//!
//! A few worker threads share the server; each owns one read-only SQLite
//! connection, opened on first use and reopened after an error. A `/ws`
//! request is checked here (Host, token, Origin, parameters) and then handed
//! to a thread of its own ([`crate::ws`]).
//!
//! Security, in the order applied to every request:
//! 1. `Host` must be the collector's own address (`127.0.0.1:PORT`,
//!    `localhost:PORT`, `[::1]:PORT`, this machine's hostname with the port,
//!    or the bound address), else 403: this stops DNS rebinding.
//! 2. Only `GET` (405 otherwise).
//! 3. With a token, every route but the page shell (`/`, `/app.js`,
//!    `/app.css`, `/favicon.svg`) needs `Authorization: Bearer TOKEN`, else
//!    401. Browsers cannot set headers on a WebSocket, so `/ws` also accepts
//!    `?token=TOKEN`. The page reads the token once from its URL fragment
//!    (`http://host:7717/#token=TOKEN`, never sent to the server) and keeps it
//!    in `sessionStorage`.
//! 4. A WebSocket whose `Origin` is not the page's own is refused (403).
//! 5. Every response carries a Content-Security-Policy without inline script,
//!    `X-Content-Type-Options: nosniff` and `X-Frame-Options: DENY`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tiny_http::{Header, Method, Request, Response};

use crate::api::{self, ApiResponse};
use crate::hub::Hub;
use crate::stats::Stats;
use crate::store::read::open_read_only;

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

/// Number of threads answering plain HTTP requests.
const WORKERS: usize = 4;

/// The Content-Security-Policy of every response: no inline script, nothing
/// from elsewhere, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const APP_CSS: &str = include_str!("../ui/app.css");
const FAVICON_SVG: &str = include_str!("../ui/favicon.svg");

/// What the request handlers share.
pub(crate) struct Shared {
    /// From the caller.
    pub context: HttpContext,
    /// Lower-cased `Host` values accepted (see the module docs).
    pub allowed_hosts: Vec<String>,
    /// Whether any `Host` is accepted: bound to an unspecified address with
    /// a token set, where the token is the guard.
    pub any_host: bool,
    /// Set when the collector stops.
    pub shutdown: Arc<AtomicBool>,
    /// The port the server listens on (to find upgraded sockets).
    pub local_port: u16,
}

fn allowed_hosts(bound: Option<SocketAddr>) -> (Vec<String>, bool) {
    let Some(bound) = bound else {
        return (Vec::new(), false);
    };
    let port = bound.port();
    let mut hosts = vec![
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ];
    hosts.push(match bound {
        SocketAddr::V4(address) => format!("{}:{port}", address.ip()),
        SocketAddr::V6(address) => format!("[{}]:{port}", address.ip()),
    });
    if let Ok(name) = hostname::get() {
        hosts.push(format!("{}:{port}", name.to_string_lossy().to_lowercase()));
    }
    if port == 80 {
        hosts.extend([
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
            "[::1]".to_owned(),
        ]);
    }
    (hosts, bound.ip().is_unspecified())
}

/// Serves requests until `shutdown` is set. `server` is already bound, so
/// tests can bind port 0 and read the address first.
pub fn serve(
    server: tiny_http::Server,
    context: HttpContext,
    shutdown: Arc<std::sync::atomic::AtomicBool>,
) {
    let bound = server.server_addr().to_ip();
    if let Some(address) = bound {
        crate::ws::set_listener_nodelay(address);
    }
    let (hosts, unspecified) = allowed_hosts(bound);
    let any_host = unspecified && context.token.is_some();
    let local_port = bound.map(|address| address.port()).unwrap_or(0);
    let shared = Arc::new(Shared {
        context,
        allowed_hosts: hosts,
        any_host,
        shutdown,
        local_port,
    });
    let server = Arc::new(server);
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

fn header_value<'a>(request: &'a Request, name: &'static str) -> Option<&'a str> {
    request
        .headers()
        .iter()
        .find(|header| header.field.equiv(name))
        .map(|header| header.value.as_str())
}

fn constant_time_equal(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    left.iter()
        .zip(right)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// Adds the security headers every response carries.
pub(crate) fn with_security_headers<R: std::io::Read>(response: Response<R>) -> Response<R> {
    let header = |name: &str, value: &str| {
        Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header")
    };
    response
        .with_header(header("Content-Security-Policy", CONTENT_SECURITY_POLICY))
        .with_header(header("X-Content-Type-Options", "nosniff"))
        .with_header(header("X-Frame-Options", "DENY"))
        .with_header(header("Referrer-Policy", "no-referrer"))
        .with_header(header("Cross-Origin-Opener-Policy", "same-origin"))
        .with_header(header("Cross-Origin-Resource-Policy", "same-origin"))
}

fn respond(request: Request, answer: ApiResponse) {
    // Always a Content-Length (tiny_http would chunk bodies over 32 KB).
    let response = Response::from_string(answer.body)
        .with_chunked_threshold(usize::MAX)
        .with_status_code(answer.status)
        .with_header(
            Header::from_bytes(&b"Content-Type"[..], answer.content_type.as_bytes())
                .expect("content type"),
        )
        .with_header(
            Header::from_bytes(&b"Cache-Control"[..], &b"no-store"[..]).expect("cache control"),
        );
    let _ = request.respond(with_security_headers(response));
}

fn respond_static(request: Request, body: &'static str, content_type: &str) {
    let response = Response::from_data(body.as_bytes())
        .with_chunked_threshold(usize::MAX)
        .with_header(
            Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes())
                .expect("content type"),
        )
        .with_header(
            Header::from_bytes(&b"Cache-Control"[..], &b"no-cache"[..]).expect("cache control"),
        );
    let _ = request.respond(with_security_headers(response));
}

impl Shared {
    /// Whether the request's `Host` is the collector's own.
    fn host_allowed(&self, request: &Request) -> bool {
        if self.any_host {
            return true;
        }
        match header_value(request, "Host") {
            Some(host) => {
                let host = host.trim().to_ascii_lowercase();
                self.allowed_hosts.contains(&host)
            }
            None => false,
        }
    }

    /// Whether the request carries the token (always true without one).
    /// `query_token` is the `token` parameter, accepted on `/ws` only.
    pub(crate) fn token_ok(&self, request: &Request, query_token: Option<&str>) -> bool {
        let Some(expected) = self.context.token.as_deref() else {
            return true;
        };
        let from_header = header_value(request, "Authorization")
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .map(str::trim);
        [from_header, query_token]
            .iter()
            .flatten()
            .any(|given| constant_time_equal(given.as_bytes(), expected.as_bytes()))
    }

    /// Whether a WebSocket's `Origin` is the page's own. Absent means a
    /// non-browser client (browsers always send it), which cannot be a
    /// cross-site hijack.
    pub(crate) fn origin_allowed(&self, request: &Request) -> bool {
        let Some(origin) = header_value(request, "Origin") else {
            return true;
        };
        let origin = origin.trim().to_ascii_lowercase();
        let Some(host) = header_value(request, "Host") else {
            return false;
        };
        origin == format!("http://{}", host.trim().to_ascii_lowercase())
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
        return crate::ws::start(request, query_string, shared);
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
        "/api/health" => api::health(&context.stats, &context.hub, &context.database),
        "/metrics" => api::metrics(&context.stats, &context.hub, &context.database),
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
            let answer = api::route_database(open, path, query_string);
            if answer.status == 503 {
                *connection = None;
            }
            answer
        }
        _ => ApiResponse::error(404, "no such route"),
    };
    respond(request, answer);
}

/// Answers a request with an error (for [`crate::ws`]).
pub(crate) fn respond_error(request: Request, status: u16, message: &str) {
    respond(request, ApiResponse::error(status, message));
}

/// Answers a request with a 400 naming the parameter (for [`crate::ws`]).
pub(crate) fn respond_bad_parameter(request: Request, error: &crate::query::ParamError) {
    respond(request, ApiResponse::bad_parameter(error));
}
