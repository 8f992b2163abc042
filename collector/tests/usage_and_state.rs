//! Usage, cost and state, end to end: the real emitter reads transcripts at
//! turn boundaries and delivers to a real collector's socket; the totals in
//! SQLite are compared with an independent reading of the same transcripts
//! (written here, without the project's parser), with Claude Code's own
//! `cost_usd` for a real CLI run, and the sessions' states with what a
//! scripted session went through.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use hooktrail_testkit::{wait_until, workspace_root};
use serde_json::{json, Value};
use support::process::{emit, fixture_envelopes, http_port, send_lines, Collector};

/// Token totals per model.
type Totals = BTreeMap<String, [i64; 6]>;

/// An independent reading of transcripts by Claude Code's rules: one
/// response per `message.id` + `requestId`, its last line's usage, no
/// `<synthetic>` messages.
fn independent_totals(transcripts: &[&Path]) -> Totals {
    let mut last: BTreeMap<String, Value> = BTreeMap::new();
    for path in transcripts {
        for line in std::fs::read_to_string(path).unwrap().lines() {
            let Ok(value) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if value["type"] != "assistant" || value["message"]["usage"].is_null() {
                continue;
            }
            if value["message"]["model"] == "<synthetic>" {
                continue;
            }
            let key = format!(
                "{}:{}",
                value["message"]["id"].as_str().unwrap_or(""),
                value["requestId"].as_str().unwrap_or("")
            );
            last.insert(key, value["message"].clone());
        }
    }
    let mut totals = Totals::new();
    for message in last.values() {
        let usage = &message["usage"];
        let number = |value: &Value| value.as_i64().unwrap_or(0);
        let written = number(&usage["cache_creation_input_tokens"]);
        let hour = number(&usage["cache_creation"]["ephemeral_1h_input_tokens"]).min(written);
        let entry = totals
            .entry(message["model"].as_str().unwrap().to_owned())
            .or_default();
        entry[0] += number(&usage["input_tokens"]);
        entry[1] += number(&usage["output_tokens"]);
        entry[2] += written - hour;
        entry[3] += hour;
        entry[4] += number(&usage["cache_read_input_tokens"]);
        entry[5] += number(&usage["server_tool_use"]["web_search_requests"]);
    }
    totals
}

/// The collector's totals per model for one session, read back with SQL.
fn stored_totals(collector: &Collector, session: &str) -> Totals {
    collector
        .rows(&format!(
            "SELECT model, SUM(input_tokens), SUM(output_tokens), SUM(cache_write_5m_tokens), \
             SUM(cache_write_1h_tokens), SUM(cache_read_tokens), SUM(web_search_requests) \
             FROM usage WHERE session_id = '{session}' GROUP BY model"
        ))
        .into_iter()
        .map(|row| {
            let numbers: Vec<i64> = row[1..].iter().map(|cell| cell.parse().unwrap()).collect();
            (row[0].clone(), numbers.try_into().unwrap())
        })
        .collect()
}

/// One API response written as Claude Code writes it: one line per content
/// block, each repeating the usage (the first with a partial output count).
fn response_lines(
    id: &str,
    model: &str,
    usage: Value,
    sidechain: Option<&str>,
    blocks: usize,
) -> String {
    let mut text = String::new();
    for block in 0..blocks {
        let mut usage = usage.clone();
        if block + 1 < blocks {
            usage["output_tokens"] = json!(1);
        }
        let mut line = json!({
            "parentUuid": null, "isSidechain": sidechain.is_some(), "type": "assistant",
            "requestId": format!("req_{id}"), "uuid": format!("u-{id}-{block}"),
            "timestamp": "2026-11-28T10:00:00.000Z", "sessionId": "s",
            "message": {"id": format!("msg_{id}"), "type": "message", "role": "assistant", "model": model,
                        "content": [{"type": "text", "text": format!("block {block} says \"usage\"")}],
                        "stop_reason": null, "usage": usage}
        });
        if let Some(agent) = sidechain {
            line["agentId"] = json!(agent);
        }
        text.push_str(&line.to_string());
        text.push('\n');
    }
    text
}

fn usage(input: i64, output: i64, five: i64, hour: i64, read: i64, searches: i64) -> Value {
    json!({"input_tokens": input, "output_tokens": output,
           "cache_creation_input_tokens": five + hour, "cache_read_input_tokens": read,
           "cache_creation": {"ephemeral_5m_input_tokens": five, "ephemeral_1h_input_tokens": hour},
           "server_tool_use": {"web_search_requests": searches}, "service_tier": "standard"})
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

fn hook(session: &str, transcript: &Path, prompt: &str, name: &str, extra: Value) -> Value {
    let mut payload = json!({"session_id": session, "transcript_path": transcript,
        "cwd": "/home/dev/project", "prompt_id": prompt, "permission_mode": "default",
        "hook_event_name": name});
    if let (Some(object), Some(more)) = (payload.as_object_mut(), extra.as_object()) {
        object.extend(more.clone());
    }
    payload
}

#[test]
fn tokens_per_session_and_model_equal_an_independent_reading_of_the_transcripts() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &["--no-token"]);
    let state = dir.path().join("emitter-state");
    let session = "usage-session-1";
    let main = dir.path().join("projects/p/usage-session-1.jsonl");
    let agent_file = dir
        .path()
        .join("projects/p/usage-session-1/subagents/agent-a1.jsonl");
    std::fs::create_dir_all(agent_file.parent().unwrap()).unwrap();

    emit(
        &collector,
        &state,
        &hook(
            session,
            &main,
            "p1",
            "UserPromptSubmit",
            json!({"prompt": "first"}),
        ),
    );
    append(
        &main,
        &response_lines(
            "1",
            "claude-sonnet-4-5-20250929",
            usage(10, 200, 3000, 0, 0, 0),
            None,
            3,
        ),
    );
    append(
        &main,
        &response_lines(
            "2",
            "claude-sonnet-4-5-20250929",
            usage(3, 50, 0, 4000, 3000, 2),
            None,
            1,
        ),
    );
    append(&main, "{\"type\":\"assistant\",\"message\":{\"id\":\"x\",\"model\":\"<synthetic>\",\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}}\n");
    append(&main, "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":\"tool result mentioning \\\"usage\\\" and \\\"assistant\\\"\"}}\n");
    emit(
        &collector,
        &state,
        &hook(session, &main, "p1", "Stop", json!({})),
    );

    // A second prompt with a subagent on another model, and a response still
    // being written when the Stop hook reads.
    emit(
        &collector,
        &state,
        &hook(
            session,
            &main,
            "p2",
            "UserPromptSubmit",
            json!({"prompt": "second"}),
        ),
    );
    append(
        &agent_file,
        &response_lines(
            "a1",
            "claude-haiku-4-5-20251001",
            usage(100, 20, 500, 0, 0, 0),
            Some("a1"),
            2,
        ),
    );
    append(
        &agent_file,
        &response_lines(
            "a2",
            "claude-haiku-4-5-20251001",
            usage(5, 30, 0, 0, 500, 0),
            Some("a1"),
            1,
        ),
    );
    emit(
        &collector,
        &state,
        &hook(
            session,
            &main,
            "p2",
            "SubagentStop",
            json!({"agent_id": "a1", "agent_type": "general-purpose", "agent_transcript_path": agent_file}),
        ),
    );
    let third = response_lines(
        "3",
        "claude-sonnet-4-5-20250929",
        usage(7, 70, 0, 0, 7000, 0),
        None,
        1,
    );
    let (done, pending) = third.split_at(third.len() / 2);
    append(&main, done);
    emit(
        &collector,
        &state,
        &hook(session, &main, "p2", "Stop", json!({})),
    );
    append(&main, pending);
    emit(
        &collector,
        &state,
        &hook(
            session,
            &main,
            "p2",
            "SessionEnd",
            json!({"reason": "other"}),
        ),
    );

    let expected = independent_totals(&[&main, &agent_file]);
    assert_eq!(expected.len(), 2, "two models: {expected:?}");
    wait_until("the usage to be stored", Duration::from_secs(20), || {
        stored_totals(&collector, session) == expected
    });

    // The offsets lost (a new machine state, a redelivery): reading the
    // transcripts again from their start counts nothing twice.
    std::fs::remove_dir_all(&state).unwrap();
    emit(
        &collector,
        &state,
        &hook(session, &main, "p3", "Stop", json!({})),
    );
    emit(
        &collector,
        &state,
        &hook(
            session,
            &main,
            "p3",
            "SubagentStop",
            json!({"agent_id": "a1", "agent_transcript_path": agent_file}),
        ),
    );
    wait_until("the re-read events", Duration::from_secs(20), || {
        collector.count() == 8
    });
    assert_eq!(stored_totals(&collector, session), expected);

    // Attribution: the subagent's responses belong to it and to the prompt
    // it ran in; the first prompt's to the first prompt.
    let rows = collector.rows(&format!(
        "SELECT COALESCE(agent_id, '-'), prompt_id, COUNT(*) FROM usage WHERE session_id = '{session}' \
         GROUP BY 1, 2 ORDER BY 1, 2"
    ));
    assert_eq!(
        rows,
        vec![
            vec!["-".to_owned(), "p1".to_owned(), "2".to_owned()],
            vec!["-".to_owned(), "p2".to_owned(), "1".to_owned()],
            vec!["a1".to_owned(), "p2".to_owned(), "2".to_owned()],
        ]
    );

    // Cost at the price table's rates: sonnet 4.5 3/15/3.75/6/0.30, haiku
    // 4.5 1/5/1.25/2/0.10 per million tokens, $0.01 per web search.
    let dollars = |[input, output, five, hour, read, searches]: [i64; 6], rates: [f64; 5]| {
        (input as f64 * rates[0]
            + output as f64 * rates[1]
            + five as f64 * rates[2]
            + hour as f64 * rates[3]
            + read as f64 * rates[4])
            / 1e6
            + searches as f64 * 0.01
    };
    let expected_cost = dollars(
        expected["claude-sonnet-4-5-20250929"],
        [3.0, 15.0, 3.75, 6.0, 0.3],
    ) + dollars(
        expected["claude-haiku-4-5-20251001"],
        [1.0, 5.0, 1.25, 2.0, 0.1],
    );
    let stored_cost: f64 = collector.rows(&format!(
        "SELECT SUM(cost_usd) FROM usage WHERE session_id = '{session}'"
    ))[0][0]
        .parse()
        .unwrap();
    assert!(
        (stored_cost - expected_cost).abs() < 1e-9,
        "{stored_cost} vs {expected_cost}"
    );
}

#[test]
fn cost_of_a_real_cli_run_matches_claude_codes_own_telemetry() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &["--no-token"]);
    let state = dir.path().join("emitter-state");
    let fixtures = workspace_root().join("tests/fixtures");
    let session = "94376c17-a6fb-41b7-b656-ab50c3d473f6";
    let main = fixtures.join(format!("transcripts/cost/{session}.jsonl"));
    let agent_file = fixtures.join(format!(
        "transcripts/cost/{session}/subagents/agent-a6d2496d31dac7fff.jsonl"
    ));
    emit(
        &collector,
        &state,
        &hook(
            session,
            &agent_file,
            "p",
            "SubagentStop",
            json!({"agent_id": "a6d2496d31dac7fff", "agent_transcript_path": agent_file}),
        ),
    );
    emit(
        &collector,
        &state,
        &hook(
            session,
            &main,
            "p",
            "SessionEnd",
            json!({"reason": "other"}),
        ),
    );

    // Claude Code's own figures: its OpenTelemetry `api_request` records.
    let records: Vec<Value> = std::fs::read_to_string(fixtures.join("otel/cost.api_request.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let telemetry: f64 = records
        .iter()
        .map(|record| record["cost_usd"].as_f64().unwrap())
        .sum();
    let expected = independent_totals(&[&main, &agent_file]);
    wait_until("the run's usage", Duration::from_secs(20), || {
        stored_totals(&collector, session) == expected
    });
    let stored: f64 = collector.rows(&format!(
        "SELECT SUM(cost_usd) FROM usage WHERE session_id = '{session}'"
    ))[0][0]
        .parse()
        .unwrap();
    assert!(telemetry > 0.0);
    assert!(
        (stored - telemetry).abs() <= telemetry * 0.01,
        "stored ${stored} against Claude Code's ${telemetry}"
    );
    let responses = collector.query_i64(&format!(
        "SELECT COUNT(*) FROM usage WHERE session_id = '{session}'"
    ));
    assert_eq!(responses, records.len() as i64, "one row per API request");
}

/// `GET path` from the collector on `port`, as its own page would ask.
fn get(port: u16, path: &str) -> support::in_process::Reply {
    let reply =
        support::in_process::http_get(port, path, &[("Host", &format!("127.0.0.1:{port}"))]);
    assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
    reply
}

fn get_json(port: u16, path: &str) -> Value {
    serde_json::from_str(&get(port, path).body).unwrap()
}

#[test]
fn sessions_show_the_state_a_scripted_session_went_through() {
    let dir = tempfile::tempdir().unwrap();
    // The fixture's events are from 2023: a waiting session that old would
    // have gone quiet under the default `--waiting-quiet-after`.
    let collector = Collector::start(
        dir.path(),
        &[
            "--quiet-after",
            "3600",
            "--waiting-quiet-after",
            "3153600000",
            "--no-token",
        ],
    );
    let port = http_port(&collector);
    let state_of = |session: &str| {
        collector.rows(&format!(
            "SELECT state, COALESCE(state_detail, '-'), COALESCE(current_tool, '-') FROM sessions WHERE session_id = '{session}'"
        ))
    };
    let session_of = |name: &str| {
        let first: Value = serde_json::from_str(&hooktrail_testkit::fixture(name)[0]).unwrap();
        first["session_id"].as_str().unwrap().to_owned()
    };
    let send_and_wait = |lines: &[String]| {
        let expected = collector.count() + lines.len() as i64;
        send_lines(&collector.socket, lines);
        wait_until("the events", Duration::from_secs(20), || {
            collector.count() >= expected
        });
    };
    let send_until = |name: &str, hook: &str| {
        let lines = fixture_envelopes(name);
        let stop = lines
            .iter()
            .position(|line| line.contains(&format!("\"hook\":\"{hook}\"")))
            .unwrap_or_else(|| panic!("{name} has no {hook}"));
        send_and_wait(&lines[..=stop]);
    };

    // Waiting on a permission, with the tool it is for.
    let permission = session_of("cli-2.1.330/perm-default");
    send_until("cli-2.1.330/perm-default", "PermissionRequest");
    assert_eq!(
        state_of(&permission)[0][..2],
        ["waiting".to_owned(), "Bash".to_owned()]
    );
    let sessions = get_json(port, "/api/sessions");
    let listed = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["session_id"] == permission.as_str())
        .unwrap()
        .clone();
    assert_eq!(listed["state"], "waiting");
    assert_eq!(listed["title"], "make a file");
    assert!(listed["state_since"].as_i64().unwrap() > 0);

    // Compacting from PreCompact, through the SessionStart it causes, to
    // PostCompact; and the model recorded from the model switch.
    let compact = session_of("cli-2.1.330/compact");
    send_until("cli-2.1.330/compact", "PreCompact");
    assert_eq!(state_of(&compact)[0][0], "compacting");
    let lines = fixture_envelopes("cli-2.1.330/compact");
    let post = lines
        .iter()
        .position(|line| line.contains("\"hook\":\"PostCompact\""))
        .unwrap();
    let pre = lines
        .iter()
        .position(|line| line.contains("\"hook\":\"PreCompact\""))
        .unwrap();
    send_and_wait(&lines[pre + 1..post]);
    assert_eq!(
        state_of(&compact)[0][0],
        "compacting",
        "SessionStart(compact) keeps it compacting"
    );
    send_and_wait(&lines[post..]);
    assert_eq!(
        state_of(&compact)[0][..2],
        ["ended".to_owned(), "other".to_owned()]
    );
    assert_eq!(
        collector.rows(&format!(
            "SELECT model FROM sessions WHERE session_id = '{compact}'"
        ))[0][0],
        "claude-haiku-4-5"
    );

    // A failed turn keeps its error, then the session ends.
    let failed = session_of("cli-2.1.330/stopfailure");
    send_until("cli-2.1.330/stopfailure", "StopFailure");
    assert_eq!(
        state_of(&failed)[0][..2],
        ["failed".to_owned(), "server_error".to_owned()]
    );

    // The prompts view: each prompt with its outcome.
    let outcomes = collector.rows(&format!(
        "SELECT outcome, COALESCE(error, '-') FROM prompts WHERE session_id = '{failed}'"
    ));
    assert_eq!(
        outcomes,
        vec![vec!["StopFailure".to_owned(), "server_error".to_owned()]]
    );

    // The gauge of sessions by state.
    let metrics = get(port, "/metrics").body;
    assert!(
        metrics.contains("hooktrail_sessions{state=\"waiting\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hooktrail_sessions{state=\"failed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hooktrail_sessions{state=\"ended\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_working_session_without_events_has_gone_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &["--quiet-after", "1", "--no-token"]);
    let port = http_port(&collector);
    let lines = fixture_envelopes("cli-2.1.330/perm-default");
    // Up to the PreToolUse: working, with the tool running, on events whose
    // time (the fixture's, in 2023) is long past.
    let pre = lines
        .iter()
        .position(|line| line.contains("\"hook\":\"PreToolUse\""))
        .unwrap();
    send_lines(&collector.socket, &lines[..=pre]);
    wait_until("the events", Duration::from_secs(20), || {
        collector.count() == pre as i64 + 1
    });
    assert_eq!(
        collector.rows("SELECT state, current_tool FROM sessions")[0],
        vec!["working".to_owned(), "Bash".to_owned()]
    );
    let sessions = get_json(port, "/api/sessions");
    assert_eq!(sessions["sessions"][0]["state"], "gone_quiet");
    let metrics = get(port, "/metrics").body;
    assert!(
        metrics.contains("hooktrail_sessions{state=\"gone_quiet\"} 1"),
        "{metrics}"
    );
}
