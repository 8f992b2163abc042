//! The approval routes (issue 18, DESIGN §7):
//! - `GET /api/approvals?state=pending|decided|expired`: the requests, each
//!   with its whole tool input (the page renders it as text);
//! - `POST /api/approvals/{event_id}` `{"decision":"allow"|"deny","reason":"…"}`:
//!   200, 403 for a viewer (or a refused collector), 404 for an unknown id,
//!   409 once decided or expired;
//! - `POST /api/away` `{"machine":"*"|NAME,"on":bool}`: the away switch.
//!
//! A `POST` needs the bearer header or the page's own `Origin` (a
//! cross-site form can send neither), and an `Origin` that is not the
//! page's is refused whatever else it carries.

use std::io::Read;

use hooktrail_shared::signed::Verdict;
use hooktrail_shared::time::now_millis;
use serde::Deserialize;
use serde_json::json;
use tiny_http::{Method, Request};

use crate::approvals::{Approvals, Outcome, Role, MAX_REASON_CHARS};
use crate::serve::gate::{bearer, header_value, respond, ApiResponse, Shared};
use crate::store::decisions::{self, Listing};

/// The largest body read.
const MAX_BODY_BYTES: u64 = 16 * 1024;

/// Whether `path` is one of these routes.
pub(crate) fn owns(path: &str) -> bool {
    path == "/api/approvals" || path.starts_with("/api/approvals/") || path == "/api/away"
}

/// Who is calling, from the bearer token: the API's own token is the
/// approver `owner`; a named token has its own name and role; without any
/// token configured (`--no-token`, loopback only) the caller is `owner`.
pub(crate) fn caller(request: &Request, shared: &Shared) -> Option<(String, Role)> {
    let bearer = bearer(request);
    if shared.token_ok(request, None) && shared.context.token.is_some() {
        if let (Some(given), Some(approvals)) = (bearer, &shared.context.approvals) {
            if let Some((name, role)) = approvals.tokens.lookup(given) {
                return Some((name.to_owned(), role));
            }
        }
        return Some(("owner".to_owned(), Role::Approver));
    }
    if shared.context.token.is_none() {
        return Some(("owner".to_owned(), Role::Approver));
    }
    None
}

/// Serves one request of these routes (after the `Host` check).
pub(crate) fn handle(mut request: Request, path: &str, query_string: &str, shared: &Shared) {
    let Some((name, role)) = caller(&request, shared) else {
        return respond(
            request,
            ApiResponse::error(
                401,
                "this collector needs its token: send `Authorization: Bearer TOKEN`",
            ),
        );
    };
    let Some(approvals) = shared.context.approvals.clone() else {
        return respond(
            request,
            ApiResponse::error(404, "remote approval is off on this collector (approvals.wait is never and there is no key)"),
        );
    };
    let answer = match *request.method() {
        Method::Get if path == "/api/approvals" => list(shared, query_string),
        Method::Post => match post_allowed(&request, shared) {
            Err(answer) => answer,
            Ok(()) if role != Role::Approver => {
                ApiResponse::error(403, "this token may read but not decide (role viewer)")
            }
            Ok(()) if approvals.refused.is_some() => {
                ApiResponse::error(403, approvals.refused.as_deref().unwrap_or_default())
            }
            Ok(()) => match read_body(&mut request) {
                Err(answer) => answer,
                Ok(body) => post(&approvals, path, &body, &name),
            },
        },
        _ => ApiResponse::error(405, "use GET to list and POST to decide"),
    };
    respond(request, answer);
}

/// The `Origin` rule of every `POST` (see the module docs).
pub(crate) fn post_allowed(request: &Request, shared: &Shared) -> Result<(), ApiResponse> {
    let origin = header_value(request, "Origin");
    if origin.is_some() && !shared.origin_allowed(request) {
        return Err(ApiResponse::error(403, "this Origin is not the page's own"));
    }
    if origin.is_none() && header_value(request, "Authorization").is_none() {
        return Err(ApiResponse::error(
            403,
            "a decision needs the page's Origin or the Authorization header",
        ));
    }
    Ok(())
}

pub(crate) fn read_body(request: &mut Request) -> Result<Vec<u8>, ApiResponse> {
    let mut body = Vec::new();
    request
        .as_reader()
        .take(MAX_BODY_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|error| ApiResponse::error(400, &format!("cannot read the body: {error}")))?;
    if body.len() as u64 > MAX_BODY_BYTES {
        return Err(ApiResponse::error(413, "the body is larger than 16 KiB"));
    }
    Ok(body)
}

fn list(shared: &Shared, query_string: &str) -> ApiResponse {
    let state = query_string
        .split('&')
        .find_map(|pair| pair.strip_prefix("state="))
        .unwrap_or("pending");
    let listing =
        match state {
            "pending" => Listing::Pending,
            "decided" => Listing::Decided,
            "expired" => Listing::Expired,
            _ => return ApiResponse::json_text(
                400,
                json!({"error": "state must be pending, decided or expired", "parameter": "state"})
                    .to_string(),
            ),
        };
    let now = now_millis();
    let rows =
        crate::store::read::open_read_only(&shared.context.database).and_then(|connection| {
            let away = decisions::away_machines(&connection)?;
            Ok((decisions::list(&connection, listing, now, 200)?, away))
        });
    match rows {
        Ok((approvals, away)) => ApiResponse::json(&json!({
            "state": state,
            "now": now,
            "approvals": approvals,
            "away": away.into_iter().map(|(machine, since)| json!({"machine": machine, "since": since})).collect::<Vec<_>>(),
        })),
        Err(error) => ApiResponse::error(503, &format!("cannot read the approvals: {error}")),
    }
}

/// A decision's body.
#[derive(Deserialize)]
struct DecisionBody {
    decision: String,
    #[serde(default)]
    reason: String,
}

/// The away switch's body.
#[derive(Deserialize)]
struct AwayBody {
    #[serde(default = "every_machine")]
    machine: String,
    on: bool,
}

fn every_machine() -> String {
    "*".to_owned()
}

fn post(approvals: &Approvals, path: &str, body: &[u8], name: &str) -> ApiResponse {
    if path == "/api/away" {
        let Ok(away) = serde_json::from_slice::<AwayBody>(body) else {
            return ApiResponse::error(
                400,
                "expected {\"machine\": \"*\" or a name, \"on\": true or false}",
            );
        };
        return match approvals.set_away(&away.machine, away.on) {
            Ok(()) => ApiResponse::json(&json!({"machine": away.machine, "on": away.on})),
            Err(error) => ApiResponse::error(503, &error),
        };
    }
    let Some(event_id) = path
        .strip_prefix("/api/approvals/")
        .filter(|id| !id.is_empty())
    else {
        return ApiResponse::error(404, "no such route");
    };
    let Ok(decision) = serde_json::from_slice::<DecisionBody>(body) else {
        return ApiResponse::error(
            400,
            "expected {\"decision\": \"allow\" or \"deny\", \"reason\": \"…\"}",
        );
    };
    let verdict = match decision.decision.as_str() {
        "allow" => Verdict::Allow,
        "deny" => Verdict::Deny,
        _ => return ApiResponse::error(400, "decision must be allow or deny"),
    };
    let reason: String = decision.reason.chars().take(MAX_REASON_CHARS).collect();
    match approvals.decide(event_id, verdict, &reason, name) {
        Ok(Outcome::Decided { delivered }) => ApiResponse::json(&json!({
            "event_id": event_id,
            "verdict": verdict.as_str(),
            "decided_by": name,
            "delivered": delivered,
        })),
        Ok(Outcome::NotFound) => ApiResponse::error(404, "no waiting request has this id"),
        Ok(Outcome::Conflict(why)) => ApiResponse::error(409, why),
        Err(error) => ApiResponse::error(503, &error),
    }
}
