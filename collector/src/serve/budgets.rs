//! `GET /api/budgets` and the budget families of `/metrics` (DESIGN §7):
//! each budget instance with its spend, limit and standing, read from the
//! budget thread's latest snapshot (no database read here).

use serde_json::{json, Value};

use crate::budgets::{InstanceVerdict, Snapshot};
use crate::serve::gate::ApiResponse;

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
pub(crate) fn push_metrics(out: &mut String, snapshot: &Snapshot) {
    let mut largest: Vec<(&str, f64, f64)> = Vec::new();
    for instance in &snapshot.instances {
        let share = instance.verdict.spent / instance.verdict.limit.max(f64::MIN_POSITIVE);
        match largest.iter_mut().find(|(name, ..)| *name == instance.budget) {
            Some(held) if share > held.1 / held.2.max(f64::MIN_POSITIVE) => {
                *held = (&instance.budget, instance.verdict.spent, instance.verdict.limit);
            }
            Some(_) => {}
            None => largest.push((&instance.budget, instance.verdict.spent, instance.verdict.limit)),
        }
    }
    out.push_str("# HELP hooktrail_budget_spent_usd Spend of each budget's fullest instance, in USD.\n");
    out.push_str("# TYPE hooktrail_budget_spent_usd gauge\n");
    for (name, spent, _) in &largest {
        out.push_str(&format!("hooktrail_budget_spent_usd{{budget=\"{name}\"}} {spent}\n"));
    }
    out.push_str("# HELP hooktrail_budget_limit_usd Limit of each budget's fullest instance, grants included.\n");
    out.push_str("# TYPE hooktrail_budget_limit_usd gauge\n");
    for (name, _, limit) in &largest {
        out.push_str(&format!("hooktrail_budget_limit_usd{{budget=\"{name}\"}} {limit}\n"));
    }
}
