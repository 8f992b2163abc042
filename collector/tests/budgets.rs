//! Budgets (DESIGN §4 `budgets`), on the collector's side: a real collector
//! with budgets in its config file stores usage delivered on its socket, and
//! `/api/budgets` and `/metrics` show each budget's spend and verdict as
//! the usage arrives.

mod support;

use std::time::Duration;

use hooktrail_testkit::wait_until;
use serde_json::{json, Value};
use support::in_process::http_get;
use support::process::{send_lines, stop_with_usage, Collector};

fn start_with_budgets(dir: &std::path::Path, budgets: Value) -> (Collector, u16) {
    let config_dir = dir.join("config/hooktrail");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("config.json"),
        json!({"budgets": budgets}).to_string(),
    )
    .unwrap();
    let collector = Collector::start(dir, &["--no-token"]);
    let port = support::process::http_port(&collector);
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
    let replies = send_lines(
        &collector.socket,
        &[stop_with_usage("a", "box", "r1", 10_000)],
    );
    assert_eq!(replies, vec!["ok"]);
    wait_until(
        "session a's $0.03 in /api/budgets",
        Duration::from_secs(10),
        || {
            let answer = budgets_json(port, "");
            instance(&answer, "per-session", "a")
                .is_some_and(|entry| entry["spent_usd"].as_f64() > Some(0.029))
        },
    );
    let answer = budgets_json(port, "?session=a");
    assert_eq!(
        instance(&answer, "per-session", "a").unwrap()["standing"],
        "under"
    );
    assert_eq!(answer["refusal"], Value::Null);

    // Another $0.03: a is over its session budget; the day is past its warning.
    send_lines(
        &collector.socket,
        &[stop_with_usage("a", "box", "r2", 10_000)],
    );
    wait_until("session a refused", Duration::from_secs(10), || {
        budgets_json(port, "?session=a")["refusal"]["budget"] == "per-session"
    });
    let answer = budgets_json(port, "?session=a");
    assert_eq!(
        answer["refusal"]["reason"],
        "hooktrail: session budget $0.05 reached ($0.06 spent)"
    );
    assert_eq!(
        instance(&answer, "daily", "").unwrap()["standing"],
        "warning"
    );

    // Session b alone is under its own budget, but the day is now over.
    send_lines(
        &collector.socket,
        &[stop_with_usage("b", "other", "r3", 10_000)],
    );
    wait_until(
        "the day budget refuses session b",
        Duration::from_secs(10),
        || budgets_json(port, "?session=b")["refusal"]["budget"] == "daily",
    );
    let answer = budgets_json(port, "?session=b");
    assert_eq!(
        instance(&answer, "per-session", "b").unwrap()["standing"],
        "under"
    );
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
    send_lines(
        &collector.socket,
        &[stop_with_usage("s", "box", "r1", 10_000)],
    );
    wait_until("the kept budget refuses s", Duration::from_secs(10), || {
        budgets_json(port, "?session=s")["refusal"]["budget"] == "kept"
    });
    assert!(
        collector.log_text().contains("budgets[0]"),
        "{}",
        collector.log_text()
    );
}

/// Runs the real emitter on `payload` with the collector's config and key
/// (its `XDG_CONFIG_HOME`), delivering to `redis_url` when given, else to
/// the collector's socket; returns what it printed on stdout.
fn emit_capturing(collector: &Collector, payload: &Value, redis_url: Option<&str>) -> String {
    let extra: Vec<(&str, &str)> = redis_url
        .map(|url| ("HOOKTRAIL_REDIS_URL", url))
        .into_iter()
        .collect();
    support::process::run_emitter(collector, payload.to_string().as_bytes(), &extra)
}

fn pre_tool_use(session: &str) -> Value {
    json!({"session_id": session, "hook_event_name": "PreToolUse", "cwd": "/home/dev/acme",
           "tool_name": "Bash", "tool_use_id": "toolu_1", "tool_input": {"command": "touch x"}})
}

#[test]
fn a_hook_refuses_a_tool_call_and_a_prompt_only_once_its_session_is_over_budget() {
    let dir = tempfile::tempdir().unwrap();
    let (collector, port) = start_with_budgets(
        dir.path(),
        json!([{"name": "per-session", "scope": "session", "usd": 0.05}]),
    );
    assert_eq!(
        emit_capturing(&collector, &pre_tool_use("s"), None),
        "",
        "under budget: no output"
    );
    send_lines(
        &collector.socket,
        &[stop_with_usage("s", "box", "r1", 20_000)],
    );
    wait_until("session s refused", Duration::from_secs(10), || {
        budgets_json(port, "?session=s")["refusal"]["budget"] == "per-session"
    });
    let printed: Value =
        serde_json::from_str(&emit_capturing(&collector, &pre_tool_use("s"), None))
            .expect("the hook prints Claude Code's PreToolUse output");
    assert_eq!(printed["hookSpecificOutput"]["permissionDecision"], "deny");
    assert_eq!(
        printed["hookSpecificOutput"]["permissionDecisionReason"],
        "hooktrail: session budget $0.05 reached ($0.06 spent)"
    );
    let prompt =
        json!({"session_id": "s", "hook_event_name": "UserPromptSubmit", "prompt": "more"});
    let blocked: Value = serde_json::from_str(&emit_capturing(&collector, &prompt, None)).unwrap();
    assert_eq!(blocked["decision"], "block");
    // Another session and every other event pass untouched.
    assert_eq!(emit_capturing(&collector, &pre_tool_use("other"), None), "");
    let post = json!({"session_id": "s", "hook_event_name": "PostToolUse", "tool_name": "Bash"});
    assert_eq!(emit_capturing(&collector, &post, None), "");
}

#[test]
fn a_forged_or_expired_verdict_in_redis_is_ignored_and_a_signed_one_is_obeyed() {
    let redis = hooktrail_testkit::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (collector, _port) = start_with_budgets(
        dir.path(),
        json!([{"name": "per-session", "scope": "session", "usd": 100}]),
    );
    let key_file = dir.path().join("config/hooktrail/approvals.key");
    wait_until(
        "the collector creates the key",
        Duration::from_secs(10),
        || key_file.exists(),
    );
    let key = hooktrail_shared::signed::Key::load(&key_file).unwrap();
    let verdict = |key: &hooktrail_shared::signed::Key, subject: &str, exp: u64| {
        hooktrail_shared::signed::SignedMessage::sign(
            key,
            hooktrail_shared::signed::Unsigned {
                kind: hooktrail_shared::signed::Kind::Budget,
                event_id: String::new(),
                session_id: subject.to_owned(),
                input_hash: String::new(),
                verdict: hooktrail_shared::signed::Verdict::Deny,
                reason: "hooktrail: test budget reached".to_owned(),
                by: "budget:test".to_owned(),
                exp,
            },
        )
        .to_line()
    };
    let later = (support::in_process::now_millis() + 60_000) as u64;
    let stranger = hooktrail_shared::signed::Key::generate();
    let slot = "hooktrail:events:verdict:session:r";
    for (line, obeyed) in [
        (verdict(&stranger, "r", later), false),
        (verdict(&key, "r", 1), false),
        (verdict(&key, "another-session", later), false),
        (verdict(&key, "r", later), true),
    ] {
        redis.command(&["SET", slot, &line]);
        let printed = emit_capturing(&collector, &pre_tool_use("r"), Some(&redis.url()));
        assert_eq!(!printed.is_empty(), obeyed, "{line} gave {printed:?}");
    }
    // A machine-wide verdict read from the session's slot is not the session's.
    let machine = hostname::get().unwrap().to_string_lossy().into_owned();
    redis.command(&[
        "SET",
        slot,
        &verdict(&key, &format!("machine:{machine}"), later),
    ]);
    assert_eq!(
        emit_capturing(&collector, &pre_tool_use("r"), Some(&redis.url())),
        ""
    );
}
