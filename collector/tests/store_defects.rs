//! Regression tests of issue 16's store and serving defects, each against
//! the real collector binary (and its `import` mode), read back with SQL
//! and the HTTP API: impossible token counts, tool calls and prompts of
//! other sessions, the session page's query plans, a collector and imports
//! starting together on a new database, price overrides, `--db` on a file
//! that is not a database, waiting sessions that went quiet, the model of
//! live sessions, and retention of usage rows.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use hooktrail_shared::envelope::{new_event_id, Envelope};
use hooktrail_shared::time::now_millis;
use hooktrail_testkit::{wait_until, workspace_root};
use serde_json::{json, Value};
use support::process::{http_port, send_lines, Collector, BINARY};

/// Whether [`collector_on`] waits for the collector's socket.
enum Wait {
    /// Until the socket accepts, as `Collector::start` does.
    ForSocket,
    /// Not at all: the caller starts something beside it.
    No,
}

/// A collector in `dir` on the database `db` (not `dir`'s own).
fn collector_on(dir: &Path, db: &Path, extra: &[&str], wait: Wait) -> Collector {
    std::fs::create_dir_all(dir).unwrap();
    let mut collector = Collector {
        child: None,
        dir: dir.to_owned(),
        db: db.to_owned(),
        socket: dir.join("run/collector.sock"),
        spool: dir.join("spool"),
        log: dir.join("collector.log"),
        extra: extra.iter().map(|arg| arg.to_string()).collect(),
    };
    match wait {
        Wait::ForSocket => collector.restart(),
        Wait::No => collector.child = Some(collector.command().spawn().unwrap()),
    }
    collector
}

fn start_on(dir: &Path, db: &Path, extra: &[&str]) -> Collector {
    collector_on(dir, db, extra, Wait::ForSocket)
}

/// `GET path` as the page asks; the status and the body.
fn get(port: u16, path: &str) -> (u16, String) {
    let reply =
        support::in_process::http_get(port, path, &[("Host", &format!("127.0.0.1:{port}"))]);
    (reply.status, reply.body)
}

/// `GET path`, asserting a 200, as JSON.
fn get_json(port: u16, path: &str) -> Value {
    let (status, body) = get(port, path);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// A hook payload of `session` as an envelope line at time `ts`, with the
/// payload's extra fields.
fn envelope_at(session: &str, hook: &str, ts: i64, extra: Value) -> Value {
    let mut payload = json!({"session_id": session, "transcript_path": format!("/t/{session}.jsonl"),
        "cwd": "/home/dev/project", "hook_event_name": hook});
    if let (Some(object), Some(more)) = (payload.as_object_mut(), extra.as_object()) {
        object.extend(more.clone());
    }
    let line = Envelope::from_hook_stdin(
        payload.to_string().as_bytes(),
        new_event_id(),
        ts,
        "testhost".into(),
    )
    .to_json();
    serde_json::from_str(&line).unwrap()
}

/// Sends envelope values to the collector's socket and waits until they
/// are stored.
fn send_and_wait(collector: &Collector, envelopes: &[Value]) {
    let expected = collector.count() + envelopes.len() as i64;
    let lines: Vec<String> = envelopes.iter().map(Value::to_string).collect();
    let replies = send_lines(&collector.socket, &lines);
    assert!(replies.iter().all(|reply| reply == "ok"), "{replies:?}");
    wait_until("the events", Duration::from_secs(20), || {
        collector.count() >= expected
    });
}

/// One response of an envelope's `usage`.
fn response(id: &str, model: &str, output: Value) -> Value {
    json!({"message_id": format!("msg_{id}"), "request_id": format!("req_{id}"), "model": model,
           "input": 10, "output": output, "cache_write_5m": 0, "cache_write_1h": 0, "cache_read": 100})
}

/// A `Stop` of `session` carrying these responses read from its transcript.
fn stop_with_usage(session: &str, ts: i64, responses: Vec<Value>) -> Value {
    let mut stop = envelope_at(session, "Stop", ts, json!({}));
    stop["usage"] = json!({"transcript": "session", "from": 0, "to": 1000, "responses": responses});
    stop
}

/// The routes a page reads, each asserted to answer 200.
fn every_route_answers(port: u16, session: &str) {
    for path in [
        "/api/sessions".to_owned(),
        "/api/sessions?sort=cost".to_owned(),
        format!("/api/sessions/{session}"),
        format!("/api/sessions/{session}/timeline"),
        "/api/stats".to_owned(),
        format!(
            "/api/stats?bucket=3600&since={}",
            now_millis() - 30 * 86_400_000
        ),
    ] {
        get_json(port, &path);
    }
}

#[test]
fn huge_token_counts_are_refused_counted_and_break_no_route() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &["--no-token"]);
    let port = http_port(&collector);
    let now = now_millis();
    send_and_wait(
        &collector,
        &[
            envelope_at(
                "huge",
                "UserPromptSubmit",
                now - 2000,
                json!({"prompt": "go"}),
            ),
            stop_with_usage(
                "huge",
                now - 1000,
                vec![
                    response(
                        "max_i64",
                        "claude-sonnet-4-5",
                        json!(9223372036854775807u64),
                    ),
                    response("max_u64", "claude-sonnet-4-5", json!(u64::MAX)),
                    response("fine", "claude-sonnet-4-5", json!(500)),
                ],
            ),
        ],
    );
    assert_eq!(
        collector.rows("SELECT key, output_tokens FROM usage"),
        vec![vec!["msg_fine:req_fine".to_owned(), "500".to_owned()]],
        "only the plausible response is stored"
    );
    every_route_answers(port, "huge");
    let session = get_json(port, "/api/sessions/huge");
    assert_eq!(session["session"]["tokens"], 610);
    assert!(session["session"]["cost_usd"].as_f64().unwrap() < 0.01);
    let health = get_json(port, "/api/health");
    assert_eq!(health["usage"]["refused"], 2, "{health}");
    let (_, metrics) = get(port, "/metrics");
    assert!(
        metrics.contains("hooktrail_usage_refused_total 2"),
        "{metrics}"
    );
    assert!(
        !metrics
            .lines()
            .any(|line| line.starts_with("hooktrail_tokens_total") && line.contains(" -")),
        "{metrics}"
    );
    assert!(collector
        .log_text()
        .contains("refused the usage of 2 API responses"));

    // A row that got in some other way (an older collector, a hand-made
    // insert) overflows the session's running total; every route still
    // answers.
    let writable = rusqlite::Connection::open(&collector.db).unwrap();
    writable.busy_timeout(Duration::from_secs(5)).unwrap();
    for key in ["a", "b"] {
        writable
            .execute(
                "INSERT INTO usage (key, message_id, session_id, model, ts, output_tokens, cost_usd, origin) \
                 VALUES (?1, ?1, 'huge', 'claude-sonnet-4-5', ?2, 9223372036854775807, 1e14, 'hook')",
                rusqlite::params![key, now],
            )
            .unwrap();
    }
    drop(writable);
    every_route_answers(port, "huge");
    let (status, metrics) = get(port, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("hooktrail_tokens_total"), "{metrics}");
}

/// A copy of the `tools` transcript fixture as `projects/<project>/`, with
/// `edit` applied to each of its lines.
fn transcript_copy(root: &Path, edit: impl Fn(&mut Value)) -> PathBuf {
    let projects = root.join("projects");
    let project = projects.join("-home-dev-project");
    std::fs::create_dir_all(&project).unwrap();
    let fixture = workspace_root().join("tests/fixtures/transcripts/tools");
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "jsonl") {
            continue;
        }
        let mut text = String::new();
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let mut value: Value = serde_json::from_str(line).unwrap();
            edit(&mut value);
            text.push_str(&value.to_string());
            text.push('\n');
        }
        std::fs::write(project.join(path.file_name().unwrap()), text).unwrap();
    }
    projects
}

/// `hooktrail-collector import DIR --db DB [extra]`, run to its end.
fn import_command(dir: &Path, db: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .arg("import")
        .arg(dir)
        .arg("--db")
        .arg(db)
        .args(extra)
        .env_clear()
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("no-config"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn run_import(dir: &Path, db: &Path) -> Output {
    let output = import_command(dir, db, &[]).output().unwrap();
    assert!(
        output.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn huge_token_counts_in_an_imported_transcript_are_refused_too() {
    let dir = tempfile::tempdir().unwrap();
    // The first two responses of the transcript claim 2^63-1 and u64::MAX
    // output tokens.
    let seen = std::sync::Mutex::new(Vec::<String>::new());
    let projects = transcript_copy(dir.path(), |line| {
        if line["type"] != "assistant" || line["message"]["usage"].is_null() {
            return;
        }
        let id = line["message"]["id"].as_str().unwrap_or("").to_owned();
        let mut seen = seen.lock().unwrap();
        if !seen.contains(&id) && seen.len() < 2 {
            seen.push(id.clone());
        }
        if let Some(position) = seen.iter().position(|known| *known == id) {
            line["message"]["usage"]["output_tokens"] = if position == 0 {
                json!(9223372036854775807u64)
            } else {
                json!(u64::MAX)
            };
        }
    });
    let db = dir.path().join("events.db");
    let output = run_import(&projects, &db);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refused the usage of 2 API responses"),
        "{stderr}"
    );
    let stored = |sql: &str| -> i64 {
        let connection = rusqlite::Connection::open(&db).unwrap();
        connection.query_row(sql, [], |row| row.get(0)).unwrap()
    };
    assert!(stored("SELECT COUNT(*) FROM usage") > 0);
    assert_eq!(
        stored("SELECT COUNT(*) FROM usage WHERE output_tokens > 10000000 OR output_tokens < 0"),
        0
    );
    assert_eq!(
        stored("SELECT COUNT(*) FROM sessions WHERE typeof(total_tokens) != 'integer' OR total_tokens < 0"),
        0
    );
    let collector = start_on(dir.path(), &db, &["--no-token"]);
    let port = http_port(&collector);
    let session = get_json(port, "/api/sessions")["sessions"][0]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    every_route_answers(port, &session);
}

#[test]
fn tool_calls_and_prompts_of_another_session_with_the_same_ids_stay_out() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &["--no-token"]);
    let port = http_port(&collector);
    let now = now_millis();
    // A forked session repeats the first one's ids: same prompt id, same
    // tool_use id; here its call failed, the original's succeeded.
    let turn = |session: &str, outcome: &str, at: i64| {
        let ids = json!({"prompt_id": "prompt-shared", "tool_name": "Bash", "tool_use_id": "toolu_shared"});
        let mut post = ids.clone();
        if outcome == "PostToolUseFailure" {
            post["error"] = json!("exit 1");
        }
        vec![
            envelope_at(
                session,
                "UserPromptSubmit",
                at,
                json!({"prompt_id": "prompt-shared", "prompt": "run it"}),
            ),
            envelope_at(session, "PreToolUse", at + 10, ids),
            envelope_at(session, outcome, at + 20, post),
            envelope_at(
                session,
                "Stop",
                at + 30,
                json!({"prompt_id": "prompt-shared"}),
            ),
        ]
    };
    let mut events = turn("original", "PostToolUse", now - 60_000);
    events.extend(turn("fork", "PostToolUseFailure", now - 30_000));
    send_and_wait(&collector, &events);

    let page = get_json(port, "/api/sessions/original");
    let calls = page["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["outcome"], "ok");
    assert_eq!(page["failures"], json!([]));
    assert_eq!(page["tools"][0]["calls"], 1);
    let prompts = page["prompts"].as_array().unwrap();
    assert_eq!(prompts.len(), 1, "{prompts:?}");
    assert_eq!(prompts[0]["tool_calls"], 1);
    assert_eq!(prompts[0]["tool_failures"], 0);
    assert_eq!(prompts[0]["outcome"], "done");
    assert_eq!(
        prompts[0]["ended_ts"].as_i64().unwrap(),
        now - 60_000 + 30,
        "the original's own Stop"
    );
    let fork = get_json(port, "/api/sessions/fork");
    assert_eq!(fork["tool_calls"].as_array().unwrap().len(), 1);
    assert_eq!(fork["failures"].as_array().unwrap().len(), 1);
    assert_eq!(
        collector.rows("SELECT session_id, outcome FROM tool_calls ORDER BY session_id"),
        vec![
            vec!["fork".to_owned(), "failed".to_owned()],
            vec!["original".to_owned(), "ok".to_owned()],
        ]
    );
    assert_eq!(
        collector
            .rows("SELECT session_id, tool_calls, tool_failures FROM prompts ORDER BY session_id"),
        vec![
            vec!["fork".to_owned(), "1".to_owned(), "1".to_owned()],
            vec!["original".to_owned(), "1".to_owned(), "0".to_owned()],
        ]
    );
}

/// The plan SQLite (the collector's own build of it) picks for `sql`.
fn query_plan(db: &Path, sql: &str) -> String {
    let connection =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut statement = connection
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap();
    let rows = statement
        .query_map([], |row| row.get::<_, String>(3))
        .unwrap();
    rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
}

#[test]
fn the_session_page_reads_a_sessions_prompts_and_calls_without_walking_every_hook() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &["--no-token"]);
    let now = now_millis();
    send_and_wait(
        &collector,
        &[envelope_at(
            "s",
            "UserPromptSubmit",
            now,
            json!({"prompt_id": "p"}),
        )],
    );
    // Each prompt's counts go through the prompt_id index, and the
    // session's rows through the session index: never a walk of every
    // PreToolUse (or every prompt) of the database through events_hook_seq.
    for sql in [
        "SELECT * FROM prompts WHERE session_id = 's' ORDER BY started_ts LIMIT 500",
        "SELECT * FROM tool_calls WHERE session_id = 's' ORDER BY duration_ms DESC LIMIT 500",
        "SELECT tool, COUNT(*) FROM tool_calls WHERE session_id = 's' GROUP BY tool",
    ] {
        let plan = query_plan(&collector.db, sql);
        assert!(!plan.contains("events_hook_seq"), "{sql}:\n{plan}");
        assert!(plan.contains("events_session_seq"), "{sql}:\n{plan}");
    }
    let plan = query_plan(
        &collector.db,
        "SELECT * FROM prompts WHERE session_id = 's'",
    );
    assert!(
        plan.matches("events_prompt_id").count() >= 5,
        "each subquery by prompt:\n{plan}"
    );
}

#[test]
fn a_collector_and_imports_starting_together_on_a_new_database_all_succeed() {
    let root = tempfile::tempdir().unwrap();
    let projects = transcript_copy(root.path(), |_| {});
    for round in 0..8 {
        let dir = root.path().join(format!("round-{round}"));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("data/events.db");
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        // A collector and an import, then two imports, all at once.
        let collector = collector_on(&dir, &db, &["--no-token"], Wait::No);
        let import = import_command(&projects, &db, &[]).spawn().unwrap();
        let second = import_command(&projects, &db, &[]).spawn().unwrap();
        for child in [import, second] {
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "round {round}: import failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut collector = collector;
        wait_until("the collector's socket", Duration::from_secs(30), || {
            std::os::unix::net::UnixStream::connect(&collector.socket).is_ok()
        });
        assert!(
            collector
                .child
                .as_mut()
                .unwrap()
                .try_wait()
                .unwrap()
                .is_none(),
            "round {round}: the collector exited: {}",
            collector.log_text()
        );
        let version: i64 = rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert!(version > 0);
        assert!(collector.count() > 0, "round {round}: nothing imported");
    }
}

/// A child process killed when the test is done with it, also when an
/// assertion fails first.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the collector with `args`, which should make it refuse to start:
/// asserts it exits (non-zero) within 20 s, and returns its stderr.
fn refused_start(dir: &Path, args: &[&str]) -> String {
    let log = dir.join(format!("refused-{}.log", new_event_id()));
    let mut child = KillOnDrop(
        Command::new(BINARY)
            .args(args)
            .args(["--socket", "off", "--http", "off"])
            .env_clear()
            .env("HOME", dir)
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("XDG_DATA_HOME", dir.join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut status = None;
    wait_until(
        &format!("the collector to refuse {args:?} and exit"),
        Duration::from_secs(20),
        || {
            status = child.0.try_wait().unwrap();
            status.is_some()
        },
    );
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(!status.unwrap().success(), "it started: {stderr}");
    stderr
}

#[test]
fn price_overrides_with_negative_prices_or_a_built_in_models_names_are_refused_by_entry() {
    let dir = tempfile::tempdir().unwrap();
    let rates =
        r#""input":3,"output":15,"cache_write_5m":3.75,"cache_write_1h":6,"cache_read":0.3"#;
    let cases = [
        (
            r#"{"version":"neg","models":[{"id":"local","input":0,"output":0,"cache_write_5m":0,"cache_write_1h":0,"cache_read":0},{"id":"cheap-sonnet","input":-3,"output":15,"cache_write_5m":3.75,"cache_write_1h":6,"cache_read":0.3}]}"#
                .to_owned(),
            vec!["\"cheap-sonnet\" (entry 2", "input is -3"],
        ),
        (
            format!(
                r#"{{"version":"cover","models":[{{"id":"my-sonnet","names":["claude-sonnet-4-5-20250929"],{rates}}}]}}"#
            ),
            vec!["\"my-sonnet\" (entry 1", "claude-sonnet-4-5"],
        ),
    ];
    for (index, (table, expected)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("prices-{index}.json"));
        std::fs::write(&file, table).unwrap();
        let db = dir.path().join(format!("events-{index}.db"));
        let db_text = db.display().to_string();
        let file_text = file.display().to_string();
        let stderr = refused_start(dir.path(), &["--db", &db_text, "--prices", &file_text]);
        for part in expected {
            assert!(stderr.contains(part), "{part} in {stderr}");
        }
        let output = import_command(dir.path(), &db, &["--prices", &file_text])
            .output()
            .unwrap();
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains(expected[0]));
    }
    // The same override under the built-in id applies.
    let file = dir.path().join("prices-ok.json");
    std::fs::write(
        &file,
        format!(r#"{{"version":"ok","models":[{{"id":"claude-sonnet-4-5","names":["claude-sonnet-4-5-20250929"],{rates}}}]}}"#),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("ok")).unwrap();
    let collector = Collector::start(
        &dir.path().join("ok"),
        &["--no-token", "--prices", &file.display().to_string()],
    );
    http_port(&collector);
}

#[test]
fn a_db_path_that_is_not_a_database_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "my notes, not a database\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let stderr = refused_start(dir.path(), &["--db", &file.display().to_string()]);
    assert!(stderr.contains("is not a SQLite database"), "{stderr}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "the file's mode was changed");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "my notes, not a database\n"
    );
    assert!(!dir.path().join("notes.txt-wal").exists());
    // A real database others can read is still tightened.
    let db = dir.path().join("real.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let collector = start_on(&dir.path().join("c"), &db, &["--no-token"]);
    http_port(&collector);
    let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn a_session_waiting_for_its_user_with_no_event_for_an_hour_has_gone_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_millis();
    let waiting = |session: &str, at: i64| {
        vec![
            envelope_at(session, "UserPromptSubmit", at, json!({"prompt": "deploy"})),
            envelope_at(
                session,
                "PermissionRequest",
                at + 10,
                json!({"tool_name": "Bash"}),
            ),
        ]
    };
    let mut events = waiting("asked-two-hours-ago", now - 2 * 3_600_000);
    events.extend(waiting("asked-ten-minutes-ago", now - 600_000));
    events.push(envelope_at(
        "idle-prompt-long-ago",
        "Notification",
        now - 3 * 3_600_000,
        json!({"notification_type": "idle_prompt", "message": "Claude is waiting for your input"}),
    ));
    let states = |collector: &Collector| -> Vec<(String, String)> {
        let port = http_port(collector);
        let mut states: Vec<(String, String)> = get_json(port, "/api/sessions")["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                (
                    row["session_id"].as_str().unwrap().to_owned(),
                    row["state"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        states.sort();
        states
    };
    std::fs::create_dir_all(dir.path().join("default")).unwrap();
    std::fs::create_dir_all(dir.path().join("flag")).unwrap();
    let collector = Collector::start(&dir.path().join("default"), &["--no-token"]);
    send_and_wait(&collector, &events);
    assert_eq!(
        states(&collector),
        vec![
            ("asked-ten-minutes-ago".to_owned(), "waiting".to_owned()),
            ("asked-two-hours-ago".to_owned(), "gone_quiet".to_owned()),
            ("idle-prompt-long-ago".to_owned(), "gone_quiet".to_owned()),
        ]
    );
    let port = http_port(&collector);
    let (_, metrics) = get(port, "/metrics");
    assert!(
        metrics.contains("hooktrail_sessions{state=\"gone_quiet\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hooktrail_sessions{state=\"waiting\"} 1"),
        "{metrics}"
    );
    let page = get_json(port, "/api/sessions/asked-two-hours-ago");
    assert_eq!(page["session"]["completeness"]["session_end_missing"], true);

    // The limit is configurable, by flag and by variable.
    let shorter = Collector::start(
        &dir.path().join("flag"),
        &["--no-token", "--waiting-quiet-after", "300"],
    );
    send_and_wait(&shorter, &events);
    assert!(states(&shorter)
        .iter()
        .all(|(_, state)| state == "gone_quiet"));
    let sessions = get_json(http_port(&shorter), "/api/sessions");
    assert_eq!(sessions["waiting_quiet_after_ms"], 300_000);
}

#[test]
fn a_live_session_shows_the_model_of_its_responses() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &["--no-token"]);
    let port = http_port(&collector);
    let now = now_millis();
    let mut subagent_stop = envelope_at(
        "live",
        "SubagentStop",
        now - 500,
        json!({"agent_id": "agent-1", "agent_type": "Explore"}),
    );
    subagent_stop["agent_id"] = json!("agent-1");
    subagent_stop["usage"] = json!({"transcript": "agent", "from": 0, "to": 10,
        "responses": [response("sub", "claude-haiku-4-5", json!(5))]});
    send_and_wait(
        &collector,
        &[
            envelope_at(
                "live",
                "SessionStart",
                now - 3000,
                json!({"source": "startup"}),
            ),
            envelope_at(
                "live",
                "UserPromptSubmit",
                now - 2000,
                json!({"prompt": "hi"}),
            ),
            stop_with_usage(
                "live",
                now - 1000,
                vec![response("main", "claude-opus-4-5", json!(20))],
            ),
            subagent_stop,
        ],
    );
    let listed = get_json(port, "/api/sessions")["sessions"][0].clone();
    assert_eq!(listed["model"], "claude-opus-4-5", "{listed}");
    assert_eq!(
        get_json(port, "/api/sessions/live")["session"]["model"],
        "claude-opus-4-5"
    );
    // A model switch later names the new one.
    send_and_wait(
        &collector,
        &[stop_with_usage(
            "live",
            now,
            vec![response("later", "claude-sonnet-4-5", json!(20))],
        )],
    );
    assert_eq!(
        collector.rows("SELECT model FROM sessions WHERE session_id = 'live'")[0][0],
        "claude-sonnet-4-5"
    );
}

#[test]
fn retention_deletes_expired_usage_rows_of_imported_sessions_with_their_events() {
    let dir = tempfile::tempdir().unwrap();
    // The fixture's responses are days old by now.
    let projects = transcript_copy(dir.path(), |line| {
        if let Some(ts) = line.get("timestamp").and_then(Value::as_str) {
            let old = format!("2020{}", &ts[4..]);
            line["timestamp"] = json!(old);
        }
    });
    let db = dir.path().join("events.db");
    run_import(&projects, &db);
    let count = |sql: &str| -> i64 {
        let connection = rusqlite::Connection::open(&db).unwrap();
        connection.busy_timeout(Duration::from_secs(5)).unwrap();
        connection.query_row(sql, [], |row| row.get(0)).unwrap()
    };
    assert!(count("SELECT COUNT(*) FROM usage WHERE origin = 'import'") > 0);
    assert!(count("SELECT COUNT(*) FROM transcript_ids") > 0);
    let collector = start_on(
        &dir.path().join("c"),
        &db,
        &["--no-token", "--retention-days", "30"],
    );
    wait_until(
        "retention to delete the expired usage rows",
        Duration::from_secs(30),
        || count("SELECT COUNT(*) FROM usage") == 0,
    );
    wait_until(
        "retention to delete the expired sessions",
        Duration::from_secs(30),
        || count("SELECT COUNT(*) FROM sessions") <= 1,
    );
    // The newest event is kept (see retention.rs), with its session; the
    // transcript ids of deleted sessions go with them.
    assert!(collector.count() <= 1);
    assert_eq!(
        count("SELECT COUNT(*) FROM transcript_ids WHERE session_id NOT IN (SELECT session_id FROM sessions)"),
        0
    );
}
