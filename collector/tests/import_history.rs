//! Issue 16's import defects, each pinned by a test named after the bug:
//! the real `hooktrail-collector import` on transcripts written here, the
//! rows read back with SQL (items 9, 15 and 21).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hooktrail_testkit::wait_until;
use serde_json::{json, Value};
use support::process::{emit, Collector};

/// Runs the import, asserting success; returns the summary line.
fn import(dir: &Path, db: &Path) -> String {
    String::from_utf8_lossy(&support::process::import(dir, db).stdout)
        .trim()
        .to_owned()
}

/// Rows of a query as text, through the sqlite3 command line tool.
fn sql(db: &Path, query: &str) -> Vec<String> {
    let output = Command::new("sqlite3")
        .arg("-readonly")
        .arg(db)
        .arg(query)
        .output()
        .expect("sqlite3 is needed: apt-get install sqlite3");
    assert!(
        output.status.success(),
        "{query}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn one(db: &Path, query: &str) -> String {
    sql(db, query).join("\n")
}

/// `2026-11-28T10:MM:SS.000Z` for the `index`-th second of the hour.
fn at(second: usize) -> String {
    format!(
        "2026-11-28T10:{:02}:{:02}.000Z",
        second / 60 % 60,
        second % 60
    )
}

/// The lines of prompts `from..to` of `session`: each prompt, a response
/// with one Bash call, its result, and a closing response. With
/// `prompt_ids`, the lines carry `promptId` as Claude Code 2.1.330 writes
/// it; without, as older versions did.
fn prompt_lines(session: &str, range: std::ops::Range<usize>, prompt_ids: bool) -> Vec<Value> {
    let mut lines = Vec::new();
    for index in range {
        let second = index * 10;
        let mut group = vec![
            json!({"type": "user", "uuid": format!("{session}-u{index}"), "timestamp": at(second), "sessionId": session, "cwd": "/home/dev/p",
                   "message": {"role": "user", "content": format!("prompt number {index}")}}),
            json!({"type": "assistant", "uuid": format!("{session}-a{index}"), "timestamp": at(second + 1), "requestId": format!("req_{session}_{index}"),
                   "message": {"id": format!("msg_{session}_{index}"), "model": "claude-sonnet-4-5", "stop_reason": "tool_use",
                               "content": [{"type": "tool_use", "id": format!("toolu_{session}_{index}"), "name": "Bash", "input": {"command": "ls"}}],
                               "usage": {"input_tokens": 10, "output_tokens": 5}}}),
            json!({"type": "user", "uuid": format!("{session}-r{index}"), "timestamp": at(second + 2),
                   "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": format!("toolu_{session}_{index}"), "content": "ok"}]}}),
            json!({"type": "assistant", "uuid": format!("{session}-d{index}"), "timestamp": at(second + 3), "requestId": format!("req_{session}_{index}b"),
                   "message": {"id": format!("msg_{session}_{index}b"), "model": "claude-sonnet-4-5", "stop_reason": "end_turn",
                               "content": [{"type": "text", "text": "done"}],
                               "usage": {"input_tokens": 20, "output_tokens": 7}}}),
        ];
        if prompt_ids {
            for line in &mut group {
                line["promptId"] = json!(format!("{session}-p{index}"));
            }
        }
        lines.extend(group);
    }
    lines
}

fn write_lines(path: &Path, lines: &[Value]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let text: String = lines.iter().map(|line| line.to_string() + "\n").collect();
    std::fs::write(path, text).unwrap();
}

fn append_lines(path: &Path, lines: &[Value]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
}

/// A `projects` directory with one project, and the database beside it.
fn layout() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let projects = dir.path().join("projects");
    let project = projects.join("-home-dev-p");
    std::fs::create_dir_all(&project).unwrap();
    let db = dir.path().join("events.db");
    (dir, projects, project, db)
}

/// Every counter that follows a session's events agrees with its rows.
fn assert_counts_agree(db: &Path, session: &str) {
    assert_eq!(
        one(db, &format!("SELECT event_count = (SELECT COUNT(*) FROM events WHERE session_id = '{session}') FROM sessions WHERE session_id = '{session}'")),
        "1",
        "sessions.event_count"
    );
    assert_eq!(
        one(
            db,
            "SELECT (SELECT SUM(count) FROM event_counts) = (SELECT COUNT(*) FROM events)"
        ),
        "1",
        "event_counts"
    );
}

#[test]
fn prompts_of_a_transcript_without_prompt_ids_are_each_imported_not_only_the_first() {
    let (_dir, projects, project, db) = layout();
    write_lines(
        &project.join("old-session.jsonl"),
        &prompt_lines("old-session", 0..5, false),
    );
    import(&projects, &db);
    assert_eq!(
        one(
            &db,
            "SELECT COUNT(*) FROM events WHERE hook = 'UserPromptSubmit'"
        ),
        "5"
    );
    assert_eq!(
        sql(
            &db,
            "SELECT prompt || '|' || outcome || '|' || tool_calls FROM prompts ORDER BY started_ts"
        ),
        (0..5)
            .map(|index| format!("prompt number {index}|Stop|1"))
            .collect::<Vec<_>>(),
        "one prompt each, with its own tool call and Stop"
    );
}

#[test]
fn reimporting_a_grown_transcript_moves_its_session_end_to_the_new_last_line() {
    let (_dir, projects, project, db) = layout();
    let session = "grown";
    let transcript = project.join(format!("{session}.jsonl"));
    write_lines(&transcript, &prompt_lines(session, 0..2, true));
    let agent_file = project.join(format!("{session}/subagents/agent-a77.jsonl"));
    let agent_line = |index: usize| {
        json!({"type": "user", "uuid": format!("agent-line-{index}"), "timestamp": at(index * 10 + 1), "isSidechain": true, "agentId": "a77",
               "message": {"role": "user", "content": format!("agent step {index}")}})
    };
    write_lines(&agent_file, &[agent_line(0)]);
    import(&projects, &db);
    assert_eq!(
        one(&db, "SELECT state FROM sessions WHERE session_id = 'grown'"),
        "ended"
    );

    // The session goes on: two more prompts, the last one still running
    // (a tool call without its result), and the subagent did more.
    let mut more = prompt_lines(session, 2..4, true);
    more.truncate(more.len() - 2);
    append_lines(&transcript, &more);
    append_lines(&agent_file, &[agent_line(3)]);
    import(&projects, &db);

    let last_ts = one(
        &db,
        "SELECT MAX(ts) FROM events WHERE session_id = 'grown' AND agent_id IS NULL",
    );
    assert_eq!(
        sql(
            &db,
            "SELECT ts FROM events WHERE session_id = 'grown' AND hook = 'SessionEnd'"
        ),
        std::slice::from_ref(&last_ts),
        "one SessionEnd, at the new last line"
    );
    assert_eq!(
        one(
            &db,
            "SELECT state || '|' || (ended_ts = last_ts) || '|' || end_reason FROM sessions WHERE session_id = 'grown'"
        ),
        "ended|1|transcript_end"
    );
    assert_eq!(
        one(
            &db,
            "SELECT COUNT(*) || '|' || MAX(ts) FROM events WHERE agent_id = 'a77' AND hook = 'SubagentStop'"
        ),
        format!(
            "1|{}",
            one(&db, "SELECT MAX(ts) FROM events WHERE agent_id = 'a77'")
        ),
        "one SubagentStop, at the subagent's new last line"
    );
    assert_eq!(
        one(&db, "SELECT event_count = (SELECT COUNT(*) FROM events WHERE agent_id = 'a77') FROM agents WHERE agent_id = 'a77'"),
        "1"
    );
    assert_counts_agree(&db, session);
    // Importing the same files again changes nothing.
    let before = sql(&db, "SELECT seq, id FROM events ORDER BY seq");
    let again = import(&projects, &db);
    assert!(again.contains(", 0 events,"), "{again}");
    assert_eq!(sql(&db, "SELECT seq, id FROM events ORDER BY seq"), before);
}

#[test]
fn a_subagent_file_without_its_session_transcript_does_not_leave_the_session_working() {
    let (_dir, projects, project, db) = layout();
    let agent_lines: Vec<Value> = (0..3)
        .map(|index| {
            json!({"type": "user", "uuid": format!("orphan-{index}"), "timestamp": at(index), "isSidechain": true, "agentId": "a1",
                   "message": {"role": "user", "content": format!("step {index}")}})
        })
        .collect();
    write_lines(
        &project.join("orphaned/subagents/agent-a1.jsonl"),
        &agent_lines,
    );
    import(&projects, &db);
    assert_eq!(
        one(
            &db,
            "SELECT state || '|' || (ended_ts = last_ts) FROM sessions WHERE session_id = 'orphaned'"
        ),
        "ended|1",
        "the session ends where its subagent's file ends"
    );
    assert_eq!(
        one(&db, "SELECT state FROM agents WHERE agent_id = 'a1'"),
        "ended"
    );

    // Its transcript turns up later: its own end replaces the stand-in.
    write_lines(
        &project.join("orphaned.jsonl"),
        &prompt_lines("orphaned", 0..2, true),
    );
    import(&projects, &db);
    let last_ts = one(
        &db,
        "SELECT MAX(ts) FROM events WHERE session_id = 'orphaned'",
    );
    assert_eq!(
        sql(
            &db,
            "SELECT ts FROM events WHERE session_id = 'orphaned' AND hook = 'SessionEnd'"
        ),
        [last_ts]
    );
    assert_eq!(
        one(
            &db,
            "SELECT state || '|' || (ended_ts = last_ts) FROM sessions WHERE session_id = 'orphaned'"
        ),
        "ended|1"
    );
    assert_counts_agree(&db, "orphaned");
}

#[test]
fn sidechain_lines_without_an_agent_id_are_not_prompts_of_the_main_agent() {
    let (_dir, projects, project, db) = layout();
    let mut lines = prompt_lines("side", 0..1, true);
    // Older Claude Code wrote a subagent's lines into the main transcript,
    // marked only as a sidechain: with a prompt id of their own, or none.
    lines.push(json!({"type": "user", "uuid": "side-task", "timestamp": at(5), "isSidechain": true, "promptId": "side-sub",
                      "message": {"role": "user", "content": "the subagent's task"}}));
    lines.push(json!({"type": "user", "uuid": "side-task-2", "timestamp": at(6), "isSidechain": true,
                      "message": {"role": "user", "content": [{"type": "text", "text": "more for the subagent"}]}}));
    write_lines(&project.join("side.jsonl"), &lines);
    import(&projects, &db);
    assert_eq!(sql(&db, "SELECT prompt FROM prompts"), ["prompt number 0"]);
}

#[test]
fn the_import_summary_counts_sessions_and_responses_stored_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let projects = dir.path().join("projects");
    let project = projects.join("-home-dev-p");
    // A file with no line that has a time: found, nothing stored.
    write_lines(
        &project.join("empty-session.jsonl"),
        &[json!({"type": "summary", "summary": "nothing"})],
    );
    let transcript = project.join("counted.jsonl");
    write_lines(&transcript, &prompt_lines("counted", 0..2, true));
    std::fs::create_dir_all(dir.path().join("collector")).unwrap();
    let collector = Collector::start(&dir.path().join("collector"), &["--no-token"]);
    // The collector has created the database (two processes migrating one
    // at once is issue 16's item 12, not this test's).
    wait_until("the collector's database", Duration::from_secs(20), || {
        collector.log_text().contains("storing events in")
    });
    let first = import(&projects, &collector.db);
    assert!(
        first.contains(", 1 sessions (0 already live: usage only), "),
        "{first}"
    );
    assert!(first.contains(", 4 responses,"), "{first}");
    let again = import(&projects, &collector.db);
    assert!(
        again.contains(", 0 sessions (0 already live: usage only), 0 events,"),
        "{again}"
    );

    // A session the hooks recorded, usage included: the import stores none
    // of its responses, and says so.
    let live = project.join("live.jsonl");
    write_lines(&live, &prompt_lines("live", 0..2, true));
    let state = dir.path().join("emitter-state");
    emit(
        &collector,
        &state,
        &json!({"session_id": "live", "transcript_path": live, "cwd": "/home/dev/p", "hook_event_name": "Stop"}),
    );
    wait_until("the hook's usage", Duration::from_secs(20), || {
        collector.query_i64("SELECT COUNT(*) FROM usage WHERE origin = 'hook'") == 4
    });
    std::fs::remove_file(&transcript).unwrap();
    let with_live = import(&projects, &collector.db);
    assert!(
        with_live.contains(", 0 sessions (1 already live: usage only), 0 events, 0 responses,"),
        "{with_live}"
    );
}
