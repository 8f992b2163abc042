//! `GET /api/budgets` and the budget families of `/metrics` (DESIGN §7):
//! each budget instance with its spend, limit and standing, read from the
//! budget thread's latest snapshot (no database read here).

use serde::Deserialize;
use serde_json::{json, Value};
use tiny_http::{Method, Request};

use crate::approvals::Role;
use crate::budgets::{GrantRefused, InstanceVerdict, Snapshot};
use crate::serve::approvals::{caller, post_allowed, read_body};
use crate::serve::gate::{respond, ApiResponse, Shared};

/// `POST /api/budgets/grant` `{"budget","subject","usd","reason"}`: an
/// approver lets one budget instance spend `usd` more in its current
/// window (for a session budget, the session's whole life).
pub(crate) const GRANT_ROUTE: &str = "/api/budgets/grant";

/// The grant's body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    budget: String,
    #[serde(default)]
    subject: String,
    usd: f64,
    #[serde(default)]
    reason: String,
}

/// Serves [`GRANT_ROUTE`]: the caller and `Origin` rules of the approval
/// routes, then the grant.
pub(crate) fn grant(mut request: Request, shared: &Shared) {
    let answer = (|| {
        let (name, role) = caller(&request, shared).ok_or_else(|| {
            ApiResponse::error(
                401,
                "this collector needs its token: send `Authorization: Bearer TOKEN`",
            )
        })?;
        if *request.method() != Method::Post {
            return Err(ApiResponse::error(405, "use POST to grant"));
        }
        post_allowed(&request, shared)?;
        if !shared.actions_allowed() {
            return Err(ApiResponse::error(
                403,
                "budget overrides are refused on a non-loopback listener without TLS (DESIGN §7)",
            ));
        }
        if role != Role::Approver {
            return Err(ApiResponse::error(
                403,
                "this token may read but not grant (role viewer)",
            ));
        }
        let control =
            shared.context.budgets.clone().ok_or_else(|| {
                ApiResponse::error(404, "no budget is configured on this collector")
            })?;
        let body: GrantBody = serde_json::from_slice(&read_body(&mut request)?)
            .map_err(|error| ApiResponse::error(400, &format!("bad grant: {error}")))?;
        let reason: String = body.reason.chars().take(500).collect();
        match control.grant(&body.budget, &body.subject, body.usd, &name, &reason) {
            Ok(Ok(())) => Ok(ApiResponse::json(&json!({
                "granted": {"budget": body.budget, "subject": body.subject, "usd": body.usd, "by": name}
            }))),
            Ok(Err(GrantRefused::UnknownBudget)) => {
                Err(ApiResponse::error(404, "no budget by that name"))
            }
            Ok(Err(GrantRefused::Invalid(why))) => Err(ApiResponse::error(400, why)),
            Err(error) => Err(ApiResponse::error(
                503,
                &format!("cannot record the grant: {error}"),
            )),
        }
    })();
    respond(request, answer.unwrap_or_else(|refusal| refusal));
}

/// One instance as the API shows it.
fn instance_json(instance: &InstanceVerdict) -> Value {
    json!({
        "budget": instance.budget,
        "scope": instance.scope,
        "period": instance.period,
        "subject": instance.subject,
        "window_start": (instance.window_start > 0).then_some(instance.window_start),
        "action": instance.action.as_str(),
        "warn_at": instance.warn_at,
        "spent_usd": instance.verdict.spent,
        "limit_usd": instance.verdict.limit,
        "standing": instance.verdict.standing.as_str(),
        "reason": instance.verdict.reason,
    })
}

/// `GET /api/budgets[?session=ID]`: every instance, or those of one session
/// (its session budgets and the project, machine and global ones it counts
/// toward are in `refusal` when one refuses it).
pub(crate) fn list(snapshot: &Snapshot, session: Option<&str>) -> ApiResponse {
    let instances: Vec<Value> = snapshot
        .instances
        .iter()
        .filter(|instance| {
            session.is_none_or(|id| instance.scope != "session" || instance.subject == id)
        })
        .map(instance_json)
        .collect();
    let refusal = session.and_then(|id| snapshot.sessions.get(id)).map(|refusal| {
        json!({"budget": refusal.budget, "action": refusal.action.as_str(), "reason": refusal.reason})
    });
    ApiResponse::json(&json!({
        "budgets": instances,
        "refusal": refusal,
        "computed_at": (snapshot.computed_at > 0).then_some(snapshot.computed_at),
    }))
}

/// Appends `hooktrail_budget_spent_usd{budget}` and
/// `hooktrail_budget_limit_usd{budget}`: per budget, the largest instance
/// (the session nearest its limit, the machine that spent most), so the
/// series count is the number of budgets, not of sessions.
pub(crate) fn push_metrics(out: &mut String, snapshot: &Snapshot, denials: &[(String, u64)]) {
    let mut largest: Vec<(&str, f64, f64)> = Vec::new();
    for instance in &snapshot.instances {
        let share = instance.verdict.spent / instance.verdict.limit.max(f64::MIN_POSITIVE);
        match largest
            .iter_mut()
            .find(|(name, ..)| *name == instance.budget)
        {
            Some(held) if share > held.1 / held.2.max(f64::MIN_POSITIVE) => {
                *held = (
                    &instance.budget,
                    instance.verdict.spent,
                    instance.verdict.limit,
                );
            }
            Some(_) => {}
            None => largest.push((
                &instance.budget,
                instance.verdict.spent,
                instance.verdict.limit,
            )),
        }
    }
    out.push_str(
        "# HELP hooktrail_budget_spent_usd Spend of each budget's fullest instance, in USD.\n",
    );
    out.push_str("# TYPE hooktrail_budget_spent_usd gauge\n");
    for (name, spent, _) in &largest {
        out.push_str(&format!(
            "hooktrail_budget_spent_usd{{budget=\"{name}\"}} {spent}\n"
        ));
    }
    out.push_str(
        "# HELP hooktrail_budget_denials_total Tool calls and prompts refused by each budget.\n",
    );
    out.push_str("# TYPE hooktrail_budget_denials_total counter\n");
    for (name, count) in denials {
        out.push_str(&format!(
            "hooktrail_budget_denials_total{{budget=\"{name}\"}} {count}\n"
        ));
    }
    out.push_str("# HELP hooktrail_budget_limit_usd Limit of each budget's fullest instance, grants included.\n");
    out.push_str("# TYPE hooktrail_budget_limit_usd gauge\n");
    for (name, _, limit) in &largest {
        out.push_str(&format!(
            "hooktrail_budget_limit_usd{{budget=\"{name}\"}} {limit}\n"
        ));
    }
}
