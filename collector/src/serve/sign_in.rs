//! The page's sign-in routes (DESIGN §7), all `POST` with the page's own
//! `Origin` (checked by [`super::http`] before they run):
//! - `/api/page-token` `{"code": CODE}` → `{"token", "lifetime_ms"}`: a
//!   one-time code from the printed link for a page token; the only route
//!   besides the page shell that needs no token;
//! - `/api/page-token/renew` (token) → the same, with a new expiry;
//!
//! both setting the binder cookie the page token works with (kept when the
//! browser already holds a valid one, so other tabs keep working);
//! - `/api/ws-ticket` (token) → `{"ticket", "lifetime_ms"}` for `/ws`;
//!
//! and `GET /api/capabilities` (token) → `{"actions_allowed"}`.
//!
//! The credentials themselves are [`super::auth`]'s.

use std::io::Read;
use std::time::SystemTime;

use serde_json::json;
use tiny_http::Request;

use crate::serve::auth::{
    binder_valid, issue_binder, issue_page_token, redeem_code, CodeRefusal, TICKET_LIFETIME,
};
use crate::serve::gate::{ApiResponse, Shared};

/// The largest request body read: a code is 32 characters.
const MAX_BODY: u64 = 1024;

/// `POST /api/page-token`: exchanges a one-time code for a page token.
pub(crate) fn exchange_code(request: &mut Request, shared: &Shared) -> ApiResponse {
    let Some(secret) = shared.tokens.token() else {
        return ApiResponse::error(
            404,
            "this collector serves without a token: no code is needed",
        );
    };
    let Some(dir) = shared.context.page.codes_dir.as_deref() else {
        return ApiResponse::error(404, "this collector accepts no one-time codes");
    };
    let mut body = String::new();
    if request
        .as_reader()
        .take(MAX_BODY)
        .read_to_string(&mut body)
        .is_err()
    {
        return ApiResponse::error(400, "the body must be JSON text");
    }
    let code = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|value| value.get("code")?.as_str().map(str::to_owned));
    let Some(code) = code else {
        return ApiResponse::error(400, "send {\"code\": CODE} from the printed link");
    };
    match redeem_code(dir, &code, SystemTime::now()) {
        Ok(()) => page_token_answer(request, shared, &secret),
        Err(CodeRefusal::UnknownOrUsed) => ApiResponse::error(
            401,
            "this link's code is unknown or already used: run `hooktrail-collector url` for a new link",
        ),
        Err(CodeRefusal::Expired) => ApiResponse::error(
            401,
            "this link's code has expired: run `hooktrail-collector url` for a new link",
        ),
    }
}

/// `POST /api/page-token/renew`: a fresh page token for a page that holds
/// one (or the token); the caller has passed the token check.
pub(crate) fn renew(request: &Request, shared: &Shared) -> ApiResponse {
    match shared.tokens.token() {
        Some(secret) => page_token_answer(request, shared, &secret),
        None => ApiResponse::error(404, "this collector serves without a token"),
    }
}

/// A page token bound to the browser's binder: the one its cookie holds
/// when this collector signed it, else a new one, set as a session cookie
/// (see [`crate::serve::auth`]; `Secure` is left out because this
/// collector serves no TLS: behind a TLS proxy the browser still keeps it).
fn page_token_answer(request: &Request, shared: &Shared, secret: &str) -> ApiResponse {
    let lifetime = shared.context.page.page_token_lifetime;
    let held = shared
        .binder(request)
        .filter(|binder| binder_valid(secret, binder));
    let binder = match held.map_or_else(|| issue_binder(secret), Ok) {
        Ok(binder) => binder,
        Err(error) => return ApiResponse::error(503, &error),
    };
    let now = hooktrail_shared::time::now_millis();
    match issue_page_token(secret, &binder, now, lifetime) {
        Ok(token) => ApiResponse::json(&json!({
            "token": token,
            "lifetime_ms": lifetime.as_millis() as u64,
        }))
        .with_cookie(format!(
            "{}={binder}; Path=/; HttpOnly; SameSite=Strict",
            shared.binder_cookie_name()
        )),
        Err(error) => ApiResponse::error(503, &error),
    }
}

/// `GET /api/capabilities`: what the page may do here, so a panel that acts
/// (approvals, budget overrides) can show itself read-only off loopback.
pub(crate) fn capabilities(shared: &Shared) -> ApiResponse {
    ApiResponse::json(&json!({ "actions_allowed": shared.actions_allowed() }))
}

/// `POST /api/ws-ticket`: a ticket `/ws` accepts once, briefly.
pub(crate) fn ws_ticket(shared: &Shared) -> ApiResponse {
    match shared.tickets.issue() {
        Some(ticket) => ApiResponse::json(&json!({
            "ticket": ticket,
            "lifetime_ms": TICKET_LIFETIME.as_millis() as u64,
        })),
        None => ApiResponse::error(503, "too many WebSocket tickets outstanding"),
    }
}
