//! Issue 16, end to end through the real emitter and a real collector: usage
//! billed to each response's own prompt, and the flag of an emitter whose
//! config file is broken, stored and served.

mod support;

use std::path::Path;
use std::time::Duration;

use hooktrail_testkit::wait_until;
use serde_json::{json, Value};
use support::process::{emit, http_port, Collector};

fn user(prompt_id: &str) -> String {
    json!({"type": "user", "promptId": prompt_id, "message": {"role": "user", "content": "go"}})
        .to_string()
        + "\n"
}

fn response(id: &str) -> String {
    json!({"type": "assistant", "requestId": format!("req_{id}"), "timestamp": "2026-11-28T10:00:00.000Z",
           "message": {"id": format!("msg_{id}"), "model": "claude-sonnet-4-5",
                       "usage": {"input_tokens": 1, "output_tokens": 2}}})
    .to_string()
        + "\n"
}

fn stop(session: &str, transcript: &Path, prompt: &str) -> Value {
    json!({"session_id": session, "transcript_path": transcript, "cwd": "/home/dev/project",
           "prompt_id": prompt, "hook_event_name": "Stop"})
}

fn get_json(port: u16, path: &str) -> Value {
    let reply =
        support::in_process::http_get(port, path, &[("Host", &format!("127.0.0.1:{port}"))]);
    assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
    serde_json::from_str(&reply.body).unwrap()
}

#[test]
fn hook_usage_is_billed_to_each_responses_own_prompt_not_the_stops() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &["--no-token"]);
    let transcript = dir.path().join("t.jsonl");
    // The first Stop after `install` in a running session reads three
    // prompts' responses at once.
    let text = user("p0")
        + &response("r0")
        + &user("p1")
        + &response("r1")
        + &user("p2")
        + &response("r2");
    std::fs::write(&transcript, text).unwrap();
    emit(
        &collector,
        &dir.path().join("state"),
        &stop("s-bill", &transcript, "p2"),
    );
    wait_until("three usage rows", Duration::from_secs(20), || {
        collector.query_i64("SELECT COUNT(*) FROM usage") == 3
    });
    let rows = collector.rows("SELECT message_id, prompt_id FROM usage ORDER BY message_id");
    assert_eq!(
        rows,
        [["msg_r0", "p0"], ["msg_r1", "p1"], ["msg_r2", "p2"]]
            .map(|row| row.map(str::to_owned).to_vec())
    );
}

#[test]
fn events_of_an_emitter_with_a_broken_config_are_flagged_in_sqlite_and_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &["--no-token"]);
    let port = http_port(&collector);
    let state = dir.path().join("state");
    let config = dir.path().join("emitter-config/hooktrail/config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, r#"{"privacy":"full",}"#).unwrap();
    let prompt = |session: &str| {
        json!({"session_id": session, "cwd": "/home/dev/project", "hook_event_name": "UserPromptSubmit",
               "prompt": "the launch plan is secret"})
    };
    emit(&collector, &state, &prompt("s-broken"));
    std::fs::write(&config, r#"{"privacy":"full"}"#).unwrap();
    emit(&collector, &state, &prompt("s-fine"));
    wait_until("both events", Duration::from_secs(20), || {
        collector.count() == 2
    });
    assert_eq!(
        collector.rows(
            "SELECT session_id, COALESCE(config_error, 0), payload LIKE '%launch plan%' FROM events ORDER BY seq"
        ),
        [["s-broken", "1", "0"], ["s-fine", "0", "1"]].map(|row| row.map(str::to_owned).to_vec())
    );

    let events = get_json(port, "/api/events?after=0");
    let flags: Vec<(Value, Value)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| (event["session_id"].clone(), event["config_error"].clone()))
        .collect();
    assert_eq!(
        flags,
        [
            (json!("s-broken"), json!(true)),
            (json!("s-fine"), Value::Null)
        ]
    );
    let sessions = get_json(port, "/api/sessions");
    for session in sessions["sessions"].as_array().unwrap() {
        let broken = session["session_id"] == "s-broken";
        assert_eq!(session["config_error"], json!(broken), "{session}");
    }
    let one = get_json(port, "/api/sessions/s-broken");
    assert_eq!(one["session"]["config_error"], true, "{one}");
}
