//! The gate every request passes: the handlers' shared state, the `Host`,
//! token and `Origin` checks, the security headers, and the response
//! helpers. Both [`super::http`] and [`super::ws`] use it; neither uses the
//! other's internals.
//!
//! Security, in the order applied to every request:
//! 1. `Host` must be the collector's own address (`127.0.0.1:PORT`,
//!    `localhost:PORT`, `[::1]:PORT`, this machine's hostname with the port,
//!    or the bound address), else 403: this stops DNS rebinding.
//! 2. Only `GET` (405 otherwise).
//! 3. With a token, every route but the page shell (`/`, its scripts and
//!    style sheet, `/favicon.svg`: `http.rs`'s `PAGE_FILES`) and the code
//!    exchange needs `Authorization: Bearer` with the token, or a page token
//!    together with its binder cookie ([`super::auth`]), else 401. Browsers
//!    cannot set headers on a WebSocket, so `/ws` also accepts `?ticket=`
//!    (one use, 30 s).
//! 4. A WebSocket whose `Origin` is not the page's own is refused (403); a
//!    `POST` must carry the page's own `Origin` (403 otherwise).
//! 5. Every response carries a Content-Security-Policy without inline script,
//!    `X-Content-Type-Options: nosniff` and `X-Frame-Options: DENY`.

use hooktrail_shared::signed::constant_time_equal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde_json::{json, Value};
use tiny_http::{Header, Request, Response};

use crate::hub::Hub;
use crate::query::ParamError;
use crate::serve::auth::{
    page_token_valid, PageTokenCheck, Tickets, TokenSource, DEFAULT_PAGE_TOKEN_LIFETIME,
};
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
    /// A working session without an event for this long is shown as gone
    /// quiet (`--quiet-after`).
    pub quiet_after: std::time::Duration,
    /// The budget thread's verdicts, when budgets are configured
    /// (`/api/budgets`, the budget families of `/metrics`).
    pub budgets: Option<std::sync::Arc<crate::budgets::BudgetControl>>,
    /// Remote approval (issue 18), when on: the named tokens with their
    /// roles, and the decisions (`super::approvals`).
    pub approvals: Option<Arc<crate::approvals::Approvals>>,
    /// A waiting session without an event for this long is shown as gone
    /// quiet (`--waiting-quiet-after`).
    pub waiting_quiet_after: std::time::Duration,
    /// How the page signs in without the token in its URL.
    pub page: PageAuth,
}

impl HttpContext {
    /// The quiet limits the session routes and `/metrics` apply.
    pub(crate) fn quiet_limits(&self) -> crate::state::QuietLimits {
        crate::state::QuietLimits::new(self.quiet_after, self.waiting_quiet_after)
    }
}

/// How the page signs in (DESIGN §7, [`super::auth`]).
#[derive(Debug, Clone)]
pub struct PageAuth {
    /// The file the token was read from, re-read when `token rotate`
    /// replaces it; `None` when it came from `--token` or `$HOOKTRAIL_TOKEN`.
    pub token_file: Option<PathBuf>,
    /// Where `hooktrail-collector url` leaves one-time codes; `None` accepts
    /// none (no token, or no place for them).
    pub codes_dir: Option<PathBuf>,
    /// How long a page token works unless renewed (`--page-token-lifetime`).
    pub page_token_lifetime: std::time::Duration,
}

impl Default for PageAuth {
    fn default() -> PageAuth {
        PageAuth {
            token_file: None,
            codes_dir: None,
            page_token_lifetime: DEFAULT_PAGE_TOKEN_LIFETIME,
        }
    }
}

/// The Content-Security-Policy of every response: no inline script, nothing
/// from elsewhere, no framing.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What the request handlers share: the context and the rules built from
/// the bound address.
pub(crate) struct Shared {
    /// From the caller.
    pub(crate) context: HttpContext,
    /// Lower-cased `Host` values accepted (see the module docs).
    allowed_hosts: Vec<String>,
    /// Whether any `Host` is accepted: bound to an unspecified address with
    /// a token set, where the token is the guard.
    any_host: bool,
    /// Set when the collector stops.
    pub(crate) shutdown: Arc<AtomicBool>,
    /// The port the server listens on (to find upgraded sockets).
    pub(crate) local_port: u16,
    /// The token in use, followed through rotations.
    pub(crate) tokens: TokenSource,
    /// The WebSocket tickets outstanding.
    pub(crate) tickets: Tickets,
    /// Whether the page may act (approve, override): see
    /// [`crate::settings::actions_allowed_on`].
    actions_allowed: bool,
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

/// One response of the API: status, content type and body.
#[derive(Debug)]
pub(crate) struct ApiResponse {
    /// HTTP status code.
    pub(crate) status: u16,
    /// `Content-Type` header value.
    pub(crate) content_type: &'static str,
    /// The body.
    pub(crate) body: String,
    /// A `Set-Cookie` value (the sign-in routes' binder), if any.
    pub(crate) set_cookie: Option<String>,
}

impl ApiResponse {
    /// A 200 JSON answer.
    pub(crate) fn json(value: &Value) -> ApiResponse {
        ApiResponse::json_text(200, value.to_string())
    }

    /// A JSON answer from already-serialized text.
    pub(crate) fn json_text(status: u16, body: String) -> ApiResponse {
        ApiResponse {
            status,
            content_type: "application/json; charset=utf-8",
            body,
            set_cookie: None,
        }
    }

    /// The same answer, setting a cookie.
    pub(crate) fn with_cookie(self, cookie: String) -> ApiResponse {
        ApiResponse {
            set_cookie: Some(cookie),
            ..self
        }
    }

    /// An error answer: `{"error": message, "parameter": name?}`.
    pub(crate) fn error(status: u16, message: &str) -> ApiResponse {
        ApiResponse::json_text(status, json!({ "error": message }).to_string())
    }

    /// A 400 naming the bad parameter.
    pub(crate) fn bad_parameter(error: &ParamError) -> ApiResponse {
        ApiResponse::json_text(
            400,
            json!({ "error": error.to_string(), "parameter": error.parameter, "reason": error.message }).to_string(),
        )
    }
}

/// The value of the request's header `name` (case-insensitive), if any.
pub(crate) fn header_value<'a>(request: &'a Request, name: &'static str) -> Option<&'a str> {
    request
        .headers()
        .iter()
        .find(|header| header.field.equiv(name))
        .map(|header| header.value.as_str())
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

/// Answers a request with `answer`, with the security headers.
pub(crate) fn respond(request: Request, answer: ApiResponse) {
    // Always a Content-Length (tiny_http would chunk bodies over 32 KB).
    let mut response = Response::from_string(answer.body)
        .with_chunked_threshold(usize::MAX)
        .with_status_code(answer.status)
        .with_header(
            Header::from_bytes(&b"Content-Type"[..], answer.content_type.as_bytes())
                .expect("content type"),
        )
        .with_header(
            Header::from_bytes(&b"Cache-Control"[..], &b"no-store"[..]).expect("cache control"),
        );
    if let Some(cookie) = answer.set_cookie {
        if let Ok(header) = Header::from_bytes(&b"Set-Cookie"[..], cookie.as_bytes()) {
            response = response.with_header(header);
        }
    }
    let _ = request.respond(with_security_headers(response));
}

/// Answers a request with one of the page's embedded files.
pub(crate) fn respond_static(request: Request, body: &'static str, content_type: &str) {
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
    /// The handlers' state for a server bound to `bound`: which `Host`
    /// values it answers (see the module docs).
    pub(crate) fn new(
        context: HttpContext,
        bound: Option<SocketAddr>,
        shutdown: Arc<AtomicBool>,
    ) -> Shared {
        let (hosts, unspecified) = allowed_hosts(bound);
        let any_host = unspecified && context.token.is_some();
        let local_port = bound.map(|address| address.port()).unwrap_or(0);
        let tokens = TokenSource::new(context.token.clone(), context.page.token_file.clone());
        Shared {
            context,
            allowed_hosts: hosts,
            any_host,
            shutdown,
            local_port,
            tokens,
            tickets: Tickets::default(),
            actions_allowed: crate::settings::actions_allowed_on(bound),
        }
    }

    /// Whether the page may take actions (approvals, budget overrides):
    /// false on a listener off loopback, where the token crosses the
    /// network in clear. Routes that act answer 403 when this is false.
    pub(crate) fn actions_allowed(&self) -> bool {
        self.actions_allowed
    }

    /// Whether the request's `Host` is the collector's own.
    pub(crate) fn host_allowed(&self, request: &Request) -> bool {
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

    /// Whether the request carries the token, or a page token and its
    /// binder cookie, in its `Authorization` header, or a WebSocket ticket
    /// (`query_ticket`, the `ticket` parameter of `/ws`, used up here);
    /// always true without a token.
    pub(crate) fn token_ok(&self, request: &Request, query_ticket: Option<&str>) -> bool {
        let Some(expected) = self.tokens.token() else {
            return true;
        };
        if let Some(ticket) = query_ticket {
            return self.tickets.redeem(ticket);
        }
        let Some(given) = bearer(request) else {
            return false;
        };
        let named = self
            .context
            .approvals
            .as_ref()
            .is_some_and(|approvals| approvals.tokens.lookup(given).is_some());
        named
            || constant_time_equal(given.as_bytes(), expected.as_bytes())
            || page_token_valid(
                given,
                PageTokenCheck {
                    secret: &expected,
                    binder: self.binder(request).as_deref(),
                    now_ms: hooktrail_shared::time::now_millis(),
                    lifetime: self.context.page.page_token_lifetime,
                },
            )
    }

    /// The name of the binder cookie: with the port, since cookies are not
    /// kept apart by port (see [`super::auth`]).
    pub(crate) fn binder_cookie_name(&self) -> String {
        format!("hooktrail_binder_{}", self.local_port)
    }

    /// The binder cookie the request carries, if any.
    pub(crate) fn binder(&self, request: &Request) -> Option<String> {
        let name = self.binder_cookie_name();
        request
            .headers()
            .iter()
            .filter(|header| header.field.equiv("Cookie"))
            .flat_map(|header| header.value.as_str().split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_owned())
    }

    /// Whether a `POST` comes from the page itself: browsers always send
    /// `Origin` on a `POST`, so one without it, or from elsewhere, is
    /// refused (cross-site request forgery).
    pub(crate) fn post_origin_allowed(&self, request: &Request) -> bool {
        header_value(request, "Origin").is_some() && self.origin_allowed(request)
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

/// The value of the request's `Authorization: Bearer` header, if any.
pub(crate) fn bearer(request: &Request) -> Option<&str> {
    header_value(request, "Authorization")
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// Answers a request with an error (for [`super::ws`]).
pub(crate) fn respond_error(request: Request, status: u16, message: &str) {
    respond(request, ApiResponse::error(status, message));
}

/// Answers a request with a 400 naming the parameter (for [`super::ws`]).
pub(crate) fn respond_bad_parameter(request: Request, error: &ParamError) {
    respond(request, ApiResponse::bad_parameter(error));
}
