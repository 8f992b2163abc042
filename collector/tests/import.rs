//! `hooktrail-collector import`: the real binary imports copies of real
//! Claude Code 2.1.330 transcripts into a fresh database in a temp dir, and
//! the rows are read back with SQL; token totals are compared with an
//! independent reading of the same files (written here with
//! `serde_json::Value`, not the project's parser). Also: a second import adds
//! nothing, a session already hooked live keeps its live rows (with the
//! collector running during the import), bad lines and binary files are
//! counted and skipped, the completeness check reports a tool call the
//! hooks never reported, shipped by the real emitter, and an import whose
//! store fails ends with the error instead of hanging.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use hooktrail_testkit::{wait_until, workspace_root, KillOnDrop};
use serde_json::{json, Value};
use support::process::{copy_tree, emit, http_port, import, Collector};

/// The transcripts directory of the fixtures, laid out as Claude Code lays
/// out `~/.claude/projects`: one project directory holding every session.
fn projects_copy(root: &Path) -> PathBuf {
    let projects = root.join("projects");
    let project = projects.join("-home-dev-project");
    let fixtures = workspace_root().join("tests/fixtures/transcripts");
    for scenario in std::fs::read_dir(&fixtures).unwrap() {
        copy_tree(&scenario.unwrap().path(), &project);
    }
    projects
}

fn summary(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Rows of a query as text, on a read-only connection.
fn rows(db: &Path, sql: &str) -> Vec<Vec<String>> {
    let connection =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut statement = connection.prepare(sql).unwrap();
    let columns = statement.column_count();
    statement
        .query_map([], |row| {
            Ok((0..columns)
                .map(|index| match row.get_ref(index).unwrap() {
                    rusqlite::types::ValueRef::Null => "NULL".to_owned(),
                    rusqlite::types::ValueRef::Integer(value) => value.to_string(),
                    rusqlite::types::ValueRef::Real(value) => value.to_string(),
                    rusqlite::types::ValueRef::Text(text) => {
                        String::from_utf8_lossy(text).into_owned()
                    }
                    rusqlite::types::ValueRef::Blob(_) => "BLOB".to_owned(),
                })
                .collect())
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn count(db: &Path, sql: &str) -> i64 {
    rows(db, sql)[0][0].parse().unwrap()
}

/// Token totals per session and model: input, output, 5-minute and 1-hour
/// cache writes, cache reads, web searches.
type Totals = BTreeMap<(String, String), [i64; 6]>;

/// An independent reading of every transcript under `dir` by Claude Code's
/// rules: one response per `message.id` + `requestId`, its last line's
/// usage, no `<synthetic>` messages; a subagent's file counts for the
/// session of its directory.
fn independent_totals(dir: &Path) -> Totals {
    let mut last: BTreeMap<(String, String), Value> = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "jsonl") {
                continue;
            }
            let parent = path.parent().unwrap();
            let session = if parent.file_name().unwrap() == "subagents" {
                parent
                    .parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned()
            } else {
                path.file_stem().unwrap().to_str().unwrap().to_owned()
            };
            for line in std::fs::read_to_string(&path).unwrap().lines() {
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
                last.insert((session.clone(), key), value["message"].clone());
            }
        }
    }
    let mut totals = Totals::new();
    for ((session, _), message) in &last {
        let usage = &message["usage"];
        let number = |value: &Value| value.as_i64().unwrap_or(0);
        let written = number(&usage["cache_creation_input_tokens"]);
        let hour = number(&usage["cache_creation"]["ephemeral_1h_input_tokens"]).min(written);
        let entry = totals
            .entry((
                session.clone(),
                message["model"].as_str().unwrap().to_owned(),
            ))
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

fn stored_totals(db: &Path) -> Totals {
    rows(
        db,
        "SELECT session_id, model, SUM(input_tokens), SUM(output_tokens), SUM(cache_write_5m_tokens), \
         SUM(cache_write_1h_tokens), SUM(cache_read_tokens), SUM(web_search_requests) \
         FROM usage GROUP BY session_id, model",
    )
    .into_iter()
    .map(|row| {
        let numbers: Vec<i64> = row[2..].iter().map(|cell| cell.parse().unwrap()).collect();
        (
            (row[0].clone(), row[1].clone()),
            numbers.try_into().unwrap(),
        )
    })
    .collect()
}

const TOOLS_SESSION: &str = "0068a3b0-cf16-401c-acd6-81052d1aa28d";
const COST_SESSION: &str = "94376c17-a6fb-41b7-b656-ab50c3d473f6";
const SUBAGENT_SESSION: &str = "f1186d05-3a83-4974-8510-f705a95b2757";
const STOPFAILURE_SESSION: &str = "9bb6b1d4-411e-40c9-9e3d-ef981900fedb";

#[test]
fn importing_real_transcripts_stores_sessions_agents_prompts_tool_calls_and_exact_token_totals() {
    let dir = tempfile::tempdir().unwrap();
    let projects = projects_copy(dir.path());
    let db = dir.path().join("data/events.db");
    let output = import(&projects, &db);
    let line = summary(&output);
    assert!(
        line.starts_with("imported 7 files (0 skipped), 5 sessions"),
        "{line}"
    );
    assert!(line.contains("0 bad lines skipped"), "{line}");
    assert!(
        String::from_utf8_lossy(&output.stderr).is_empty(),
        "no progress bar when stderr is not a terminal"
    );

    assert_eq!(count(&db, "SELECT COUNT(*) FROM sessions"), 5);
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM events WHERE source != 'import'"),
        0
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM usage WHERE origin != 'import'"),
        0
    );
    let session = &rows(
        &db,
        &format!("SELECT title, model, state, cwd, transcript_path LIKE '%{TOOLS_SESSION}.jsonl' FROM sessions WHERE session_id = '{TOOLS_SESSION}'"),
    )[0];
    assert_eq!(
        session,
        &[
            "exercise the tools",
            "claude-opus-5-5",
            "ended",
            "/home/dev/project",
            "1"
        ]
    );

    // Subagents, linked to the Agent call that started them.
    assert_eq!(
        rows(&db, "SELECT agent_id, session_id, agent_type, parent_tool_use_id, started_ts <= stopped_ts, state FROM agents ORDER BY agent_id"),
        vec![
            vec!["a2108dc1b67d259d9", SUBAGENT_SESSION, "general-purpose", "toolu_agent1", "1", "ended"],
            vec!["a6d2496d31dac7fff", COST_SESSION, "general-purpose", "toolu_cost_agent", "1", "ended"],
        ]
    );

    // Tool calls with their outcome and duration from the transcript's times.
    let calls = rows(
        &db,
        &format!("SELECT tool_use_id, tool, outcome, duration_ms, error FROM tool_calls WHERE session_id = '{TOOLS_SESSION}' ORDER BY started_ts, tool_use_id"),
    );
    assert_eq!(calls.len(), 8, "{calls:?}");
    let by_id: BTreeMap<&str, &Vec<String>> =
        calls.iter().map(|row| (row[0].as_str(), row)).collect();
    assert_eq!(by_id["toolu_fail"][2], "failed");
    assert!(by_id["toolu_fail"][4].contains("boom"));
    assert_eq!(by_id["toolu_editfail"][2], "failed");
    assert_eq!(by_id["toolu_touch"][2], "ok");
    // 09:44:38.845 to 09:44:44.213.
    assert_eq!(by_id["toolu_touch"][3], "5368");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM tool_calls WHERE agent_id = 'a2108dc1b67d259d9' AND outcome = 'ok'"),
        1
    );

    // Prompts, with their outcome, tool calls and cost.
    let prompts = rows(
        &db,
        "SELECT session_id, prompt, outcome, tool_calls, tool_failures, cost_usd IS NOT NULL FROM prompts ORDER BY started_ts",
    );
    let tools_prompt = prompts.iter().find(|row| row[0] == TOOLS_SESSION).unwrap();
    assert_eq!(
        tools_prompt[1..],
        ["exercise the tools", "Stop", "8", "2", "1"]
    );
    let failed = prompts
        .iter()
        .find(|row| row[0] == STOPFAILURE_SESSION)
        .unwrap();
    assert_eq!(failed[1..3], ["this will fail", "StopFailure"]);
    let cost_prompts: Vec<&str> = prompts
        .iter()
        .filter(|row| row[0] == COST_SESSION)
        .map(|row| row[1].as_str())
        .collect();
    assert_eq!(
        cost_prompts,
        [
            "COST-PROMPT-1 count files with a subagent",
            "COST-PROMPT-2 now with haiku 4.5"
        ],
        "slash commands are not prompts"
    );
    assert_eq!(
        rows(
            &db,
            &format!(
                "SELECT state_detail FROM sessions WHERE session_id = '{STOPFAILURE_SESSION}'"
            )
        )[0][0],
        "transcript_end"
    );

    // Tokens: per session and model, exactly an independent reading.
    let expected = independent_totals(&projects);
    assert!(expected.len() >= 6, "{expected:?}");
    assert_eq!(stored_totals(&db), expected);
    // Subagent responses count for their agent.
    assert_eq!(
        count(&db, &format!("SELECT COUNT(*) FROM usage WHERE session_id = '{COST_SESSION}' AND agent_id = 'a6d2496d31dac7fff'")),
        2
    );
    // The cost run's total is Claude Code's own figure (docs/TRANSCRIPTS.md).
    let cost: f64 = rows(
        &db,
        &format!("SELECT SUM(cost_usd) FROM usage WHERE session_id = '{COST_SESSION}'"),
    )[0][0]
        .parse()
        .unwrap();
    assert!((cost - 0.0848313).abs() < 1e-6, "{cost}");
}

/// The import follows the config's privacy like every other way in: at
/// `metadata`, no prompt text of the transcripts is stored.
#[test]
fn the_import_redacts_at_the_configs_privacy_level() {
    let dir = tempfile::tempdir().unwrap();
    let projects = projects_copy(dir.path());
    let prompt_rows = "SELECT COUNT(*) FROM events WHERE payload LIKE '%exercise the tools%'";
    let full = dir.path().join("full.db");
    import(&projects, &full);
    assert!(
        count(&full, prompt_rows) > 0,
        "the fixture's prompt is stored at the default level"
    );

    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"privacy": "metadata"}"#).unwrap();
    let metadata = dir.path().join("metadata.db");
    let output = std::process::Command::new(support::process::BINARY)
        .arg("import")
        .arg(&projects)
        .args([
            "--db".as_ref(),
            metadata.as_os_str(),
            "--config".as_ref(),
            config.as_os_str(),
        ])
        .env_clear()
        .env("HOME", dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(count(&metadata, "SELECT COUNT(*) FROM events") > 0);
    assert_eq!(
        count(&metadata, prompt_rows),
        0,
        "no prompt text at metadata privacy"
    );
}

#[test]
fn importing_twice_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let projects = projects_copy(dir.path());
    let db = dir.path().join("events.db");
    import(&projects, &db);
    let snapshot = |db: &Path| {
        rows(
            db,
            "SELECT (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM usage), \
             (SELECT SUM(event_count) FROM sessions), (SELECT SUM(event_count) FROM agents), \
             (SELECT SUM(output_tokens) FROM usage), (SELECT SUM(count) FROM event_counts), \
             (SELECT COUNT(*) FROM transcript_ids)",
        )
    };
    let before = snapshot(&db);
    let again = summary(&import(&projects, &db));
    assert!(again.contains(", 0 events,"), "{again}");
    assert_eq!(snapshot(&db), before);
}

#[test]
fn a_session_hooked_live_keeps_its_live_rows_and_gets_only_usage_from_the_import() {
    let dir = tempfile::tempdir().unwrap();
    let projects = projects_copy(dir.path());
    std::fs::create_dir_all(dir.path().join("collector")).unwrap();
    let collector = Collector::start(&dir.path().join("collector"), &["--no-token"]);
    let transcript = projects
        .join("-home-dev-project")
        .join(format!("{TOOLS_SESSION}.jsonl"));
    // The hooks saw one tool call and the first turn's end, with the usage
    // the emitter read from the transcript at that Stop.
    let state = dir.path().join("emitter-state");
    let common = json!({"session_id": TOOLS_SESSION, "transcript_path": transcript, "cwd": "/home/dev/project"});
    let with = |extra: Value| {
        let mut payload = common.clone();
        payload
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        payload
    };
    emit(
        &collector,
        &state,
        &with(
            json!({"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_use_id": "toolu_par_bash", "tool_input": {"command": "ls"}}),
        ),
    );
    emit(
        &collector,
        &state,
        &with(json!({"hook_event_name": "Stop"})),
    );
    wait_until("the live events", Duration::from_secs(20), || {
        collector.count() == 2
    });
    let live_usage = collector.query_i64("SELECT COUNT(*) FROM usage WHERE origin = 'hook'");
    assert!(live_usage > 0);

    // The import runs while the collector runs.
    let line = summary(&import(&projects, &collector.db));
    assert!(line.contains("(1 already live: usage only)"), "{line}");
    assert_eq!(
        collector.query_i64(&format!(
            "SELECT COUNT(*) FROM events WHERE session_id = '{TOOLS_SESSION}'"
        )),
        2,
        "no imported events in the live session"
    );
    assert_eq!(
        collector.query_i64(&format!("SELECT COUNT(*) FROM events WHERE session_id = '{TOOLS_SESSION}' AND source = 'import'")),
        0
    );
    assert_eq!(
        collector.query_i64("SELECT COUNT(*) FROM usage WHERE origin = 'hook'"),
        live_usage,
        "the hook's usage rows stay the hook's"
    );
    assert!(collector.query_i64("SELECT COUNT(*) FROM sessions") == 5);
    assert!(collector.query_i64("SELECT COUNT(*) FROM events WHERE source = 'import'") > 0);

    // The collector still takes live events after the import.
    emit(
        &collector,
        &state,
        &with(json!({"hook_event_name": "SessionEnd", "reason": "other"})),
    );
    wait_until("the live SessionEnd", Duration::from_secs(20), || {
        collector.query_i64(&format!(
            "SELECT COUNT(*) FROM events WHERE session_id = '{TOOLS_SESSION}'"
        )) == 3
    });
    // The import recorded the transcript's tool calls: the hooks reported
    // one of the eight.
    let port = http_port(&collector);
    let session = get_json(port, &format!("/api/sessions/{TOOLS_SESSION}"));
    assert_eq!(
        session["session"]["completeness"]["missing_tool_events"], 7,
        "{session}"
    );
}

#[test]
fn corrupt_and_foreign_lines_and_binary_files_are_counted_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let projects = dir.path().join("projects");
    let project = projects.join("-p");
    std::fs::create_dir_all(&project).unwrap();
    let good = std::fs::read_to_string(workspace_root().join(format!(
        "tests/fixtures/transcripts/tools/{TOOLS_SESSION}.jsonl"
    )))
    .unwrap();
    let mut lines: Vec<&str> = good.lines().collect();
    lines.insert(3, "{\"type\":\"user\",\"message\":{\"content\": truncated");
    lines.insert(5, "[1,2,3]");
    lines.insert(7, "{\"foreign\":\"object\"}");
    std::fs::write(
        project.join(format!("{TOOLS_SESSION}.jsonl")),
        lines.join("\n") + "\n",
    )
    .unwrap();
    let mut binary = vec![0u8, 159, 146, 150, b'\n'];
    binary.extend((0..100_000u32).map(|index| (index * 7919 % 251) as u8));
    std::fs::write(project.join("garbage.jsonl"), binary).unwrap();
    let db = dir.path().join("events.db");
    let line = summary(&import(&projects, &db));
    assert!(line.starts_with("imported 1 files (1 skipped)"), "{line}");
    assert!(line.contains(", 3 bad lines skipped"), "{line}");
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM tool_calls"),
        8,
        "the good lines are all imported"
    );
}

fn get_json(port: u16, path: &str) -> Value {
    let reply =
        support::in_process::http_get(port, path, &[("Host", &format!("127.0.0.1:{port}"))]);
    assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
    serde_json::from_str(&reply.body).unwrap()
}

#[test]
fn completeness_reports_a_tool_call_and_a_subagent_the_hooks_never_reported() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &["--no-token"]);
    let state = dir.path().join("emitter-state");
    let transcript = dir.path().join("session-c.jsonl");
    // The transcript: a prompt, one response with two tool calls (the hooks
    // will report only the first), and an Agent result naming a subagent
    // whose SubagentStart never came.
    let lines = [
        json!({"type": "user", "promptId": "p1", "uuid": "u1", "timestamp": "2026-11-28T09:00:00.000Z", "message": {"role": "user", "content": "go"}}),
        json!({"type": "assistant", "uuid": "u2", "requestId": "req_1", "timestamp": "2026-11-28T09:00:01.000Z", "message": {"id": "msg_1", "model": "claude-sonnet-4-5", "content": [{"type": "tool_use", "id": "toolu_seen", "name": "Bash", "input": {}}], "usage": {"input_tokens": 1, "output_tokens": 1}}}),
        json!({"type": "assistant", "uuid": "u3", "requestId": "req_1", "timestamp": "2026-11-28T09:00:01.000Z", "message": {"id": "msg_1", "model": "claude-sonnet-4-5", "content": [{"type": "tool_use", "id": "toolu_unseen", "name": "Agent", "input": {}}], "usage": {"input_tokens": 1, "output_tokens": 1}}}),
        json!({"type": "user", "promptId": "p1", "uuid": "u4", "timestamp": "2026-11-28T09:00:02.000Z", "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_unseen", "content": "done"}]}, "toolUseResult": {"status": "completed", "agentId": "agent_never_started"}}),
    ];
    let text: String = lines.iter().map(|line| line.to_string() + "\n").collect();
    std::fs::write(&transcript, text).unwrap();
    let common = json!({"session_id": "session-c", "transcript_path": transcript, "cwd": "/p", "prompt_id": "p1"});
    let with = |extra: Value| {
        let mut payload = common.clone();
        payload
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        payload
    };
    emit(
        &collector,
        &state,
        &with(json!({"hook_event_name": "UserPromptSubmit", "prompt": "go"})),
    );
    emit(
        &collector,
        &state,
        &with(
            json!({"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_use_id": "toolu_seen", "tool_input": {}}),
        ),
    );
    emit(
        &collector,
        &state,
        &with(
            json!({"hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_use_id": "toolu_seen", "tool_response": {}}),
        ),
    );
    emit(
        &collector,
        &state,
        &with(json!({"hook_event_name": "Stop"})),
    );
    emit(
        &collector,
        &state,
        &with(json!({"hook_event_name": "SessionEnd", "reason": "other"})),
    );
    wait_until("the five events", Duration::from_secs(20), || {
        collector.count() == 5
    });
    let port = http_port(&collector);
    let one = get_json(port, "/api/sessions/session-c");
    assert_eq!(
        one["session"]["completeness"],
        json!({"complete": false, "missing_tool_events": 1, "missing_subagent_starts": 1, "session_end_missing": false}),
        "{one}"
    );
    let list = get_json(port, "/api/sessions");
    assert_eq!(
        list["sessions"][0]["completeness"]["missing_tool_events"],
        1
    );

    // Once the missing events arrive, the session is complete.
    emit(
        &collector,
        &state,
        &with(
            json!({"hook_event_name": "PreToolUse", "tool_name": "Agent", "tool_use_id": "toolu_unseen", "tool_input": {}}),
        ),
    );
    emit(
        &collector,
        &state,
        &with(
            json!({"hook_event_name": "SubagentStart", "agent_id": "agent_never_started", "agent_type": "general-purpose"}),
        ),
    );
    wait_until("the late events", Duration::from_secs(20), || {
        collector.count() == 7
    });
    let one = get_json(port, "/api/sessions/session-c");
    assert_eq!(one["session"]["completeness"]["complete"], true, "{one}");
}

#[test]
fn a_store_that_fails_ends_the_import_with_its_error_instead_of_hanging() {
    // 24 sessions of 1,000 prompts: six batches (a batch ends after a file),
    // so the reading thread is still sending when the store fails (it used
    // to wait for ever for it).
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let db = dir.path().join("events.db");
    import(&empty, &db);
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse_late BEFORE INSERT ON events
             WHEN (SELECT COUNT(*) FROM events) >= 5000
             BEGIN SELECT RAISE(ABORT, 'refused for the test'); END;",
        )
        .unwrap();
    let project = dir.path().join("projects/-home-dev-many");
    std::fs::create_dir_all(&project).unwrap();
    for session in 0..24 {
        let lines: String = (0..1000)
            .map(|at| {
                format!(
                    "{{\"type\":\"user\",\"uuid\":\"u{session}-{at}\",\"timestamp\":\"2026-01-01T{:02}:{:02}:{:02}.000Z\",\"promptId\":\"p{session}-{at}\",\"cwd\":\"/home/dev/many\",\"message\":{{\"content\":\"prompt {at}\"}}}}\n",
                    session,
                    at / 60 % 60,
                    at % 60
                )
            })
            .collect();
        std::fs::write(project.join(format!("s-{session}.jsonl")), lines).unwrap();
    }
    let mut child = KillOnDrop(
        std::process::Command::new(support::process::BINARY)
            .arg("import")
            .arg(dir.path().join("projects"))
            .arg("--db")
            .arg(&db)
            .env_clear()
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("no-config"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut status = None;
    wait_until("the failed import to exit", Duration::from_secs(60), || {
        status = child.0.try_wait().unwrap();
        status.is_some()
    });
    assert!(!status.unwrap().success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("refused for the test"), "{stderr}");
}
