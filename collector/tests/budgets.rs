//! Budgets (DESIGN §4 `budgets`), on the collector's side: a real collector
//! with budgets in its config file stores usage delivered on its socket, and
//! `/api/budgets` and `/metrics` show each budget's spend and verdict as
//! the usage arrives.

mod common;
mod ui_support;

use std::time::Duration;

use common::{send_lines, Collector};
use hooktrail_testkit::wait_until;
use serde_json::{json, Value};
use ui_support::http_get;

/// A `Stop` envelope for `session` carrying one priced response of
/// `input_tokens` Sonnet 4.5 input tokens ($3 per million), made now.
fn stop_with_usage(session: &str, machine: &str, response: &str, input_tokens: i64) -> String {
    let now = ui_support::now_millis();
    json!({
        "v": 1,
        "id": format!("evt-{session}-{response}"),
        "ts": now,
        "machine": machine,
        "session_id": session,
        "hook": "Stop",
        "cwd": "/home/dev/acme",
        "payload": {"session_id": session, "hook_event_name": "Stop", "cwd": "/home/dev/acme"},
        "usage": {
            "transcript": "session", "from": 0, "to": 100, "more": false, "bad_lines": 0,
            "responses": [{
                "message_id": format!("msg_{response}"), "request_id": format!("req_{response}"),
                "model": "claude-sonnet-4-5", "ts": now, "sidechain": false, "agent_id": null,
                "input": input_tokens, "output": 0, "cache_write_5m": 0, "cache_write_1h": 0,
                "cache_read": 0, "web_search": 0
            }]
        }
    })
    .to_string()
}

fn start_with_budgets(dir: &std::path::Path, budgets: Value) -> (Collector, u16) {
    let config_dir = dir.join("config/hooktrail");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(config_dir.join("config.json"), json!({"budgets": budgets}).to_string()).unwrap();
    let collector = Collector::start(dir, &["--no-token"]);
    let port = common::http_port(&collector);
    (collector, port)
}

fn budgets_json(port: u16, query: &str) -> Value {
    let host = format!("127.0.0.1:{port}");
    let reply = http_get(port, &format!("/api/budgets{query}"), &[("Host", &host)]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    serde_json::from_str(&reply.body).unwrap()
}

/// The instance of `budget` for `subject` in an `/api/budgets` answer.
fn instance<'a>(answer: &'a Value, budget: &str, subject: &str) -> Option<&'a Value> {
    answer["budgets"]
        .as_array()?
        .iter()
        .find(|entry| entry["budget"] == budget && entry["subject"] == subject)
}

#[test]
fn session_and_day_budgets_follow_the_spend_as_usage_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let (collector, port) = start_with_budgets(
        dir.path(),
        json!([
            {"name": "per-session", "scope": "session", "usd": 0.05},
            {"name": "daily", "scope": "all", "period": "day", "usd": 0.08, "warn_at": 50}
        ]),
    );
    // $0.03 in session a: under both.
    let replies = send_lines(&collector.socket, &[stop_with_usage("a", "box", "r1", 10_000)]);
    assert_eq!(replies, vec!["ok"]);
    wait_until("session a's $0.03 in /api/budgets", Duration::from_secs(10), || {
        let answer = budgets_json(port, "");
        instance(&answer, "per-session", "a").is_some_and(|entry| entry["spent_usd"].as_f64() > Some(0.029))
    });
    let answer = budgets_json(port, "?session=a");
    assert_eq!(instance(&answer, "per-session", "a").unwrap()["standing"], "under");
    assert_eq!(answer["refusal"], Value::Null);

    // Another $0.03: a is over its session budget; the day is past its warning.
    send_lines(&collector.socket, &[stop_with_usage("a", "box", "r2", 10_000)]);
    wait_until("session a refused", Duration::from_secs(10), || {
        budgets_json(port, "?session=a")["refusal"]["budget"] == "per-session"
    });
    let answer = budgets_json(port, "?session=a");
    assert_eq!(
        answer["refusal"]["reason"],
        "hooktrail: session budget $0.05 reached ($0.06 spent)"
    );
    assert_eq!(instance(&answer, "daily", "").unwrap()["standing"], "warning");

    // Session b alone is under its own budget, but the day is now over.
    send_lines(&collector.socket, &[stop_with_usage("b", "other", "r3", 10_000)]);
    wait_until("the day budget refuses session b", Duration::from_secs(10), || {
        budgets_json(port, "?session=b")["refusal"]["budget"] == "daily"
    });
    let answer = budgets_json(port, "?session=b");
    assert_eq!(instance(&answer, "per-session", "b").unwrap()["standing"], "under");
    assert_eq!(
        answer["refusal"]["reason"],
        "hooktrail: all day budget daily $0.08 reached ($0.09 spent)"
    );

    let host = format!("127.0.0.1:{port}");
    let metrics = http_get(port, "/metrics", &[("Host", &host)]).body;
    assert!(
        metrics.contains("hooktrail_budget_spent_usd{budget=\"daily\"} 0.09"),
        "{metrics}"
    );
}

#[test]
fn a_budget_entry_with_a_typo_is_named_in_the_log_and_the_rest_still_hold() {
    let dir = tempfile::tempdir().unwrap();
    let (collector, port) = start_with_budgets(
        dir.path(),
        json!([
            {"scope": "sesion", "usd": 5},
            {"name": "kept", "scope": "session", "usd": 0.01}
        ]),
    );
    send_lines(&collector.socket, &[stop_with_usage("s", "box", "r1", 10_000)]);
    wait_until("the kept budget refuses s", Duration::from_secs(10), || {
        budgets_json(port, "?session=s")["refusal"]["budget"] == "kept"
    });
    assert!(
        collector.log_text().contains("budgets[0]"),
        "{}",
        collector.log_text()
    );
}
