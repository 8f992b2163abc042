//! The collector end to end: the real binary, a fresh temp directory and a
//! private redis-server per test. Every wait polls with a deadline.

mod support;

use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hooktrail_testkit::{wait_until, RedisServer};
use support::process::{envelope, fixture_envelopes, send_lines, xadd_all, Collector};

const KEY: &str = "hooktrail:events";
const LONG: Duration = Duration::from_secs(60);

fn group_pending(redis: &RedisServer) -> i64 {
    let reply = redis.command(&["XPENDING", KEY, "g"]);
    reply.lines().next().unwrap_or("0").parse().unwrap_or(-1)
}

#[test]
fn socket_events_from_concurrent_clients_give_exactly_n_rows() {
    let temp = tempfile::tempdir().unwrap();
    let collector = Collector::start(temp.path(), &[]);
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let socket = collector.socket.clone();
            std::thread::spawn(move || {
                let lines: Vec<String> = (0..250)
                    .map(|index| envelope(client * 1000 + index))
                    .collect();
                send_lines(&socket, &lines)
            })
        })
        .collect();
    for client in clients {
        let replies = client.join().unwrap();
        assert_eq!(replies.len(), 250);
        assert!(replies.iter().all(|reply| reply == "ok"), "{replies:?}");
    }
    // Replies come after the commit: the rows are there already.
    assert_eq!(collector.count(), 1000);
    // A redelivered event is acknowledged and stored once.
    let again = envelope(5);
    assert_eq!(
        send_lines(&collector.socket, &[again.clone(), again]),
        vec!["ok", "ok"]
    );
    // The per-minute rollup counts each stored event once, duplicates never.
    assert_eq!(
        collector.query_i64("SELECT sum(count) FROM event_counts"),
        collector.count()
    );
    collector.wait_rows(1001, LONG);
    let mode = std::fs::metadata(&collector.socket).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(collector.socket.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
}

#[test]
fn stream_events_are_stored_once_and_acknowledged() {
    let temp = tempfile::tempdir().unwrap();
    let redis = RedisServer::start();
    let before: Vec<String> = (0..1500).map(envelope).collect();
    xadd_all(redis.port, KEY, &before);
    let collector = Collector::start(temp.path(), &["--redis-url", &redis.url(), "--group", "g"]);
    collector.wait_rows(1500, LONG);
    let after: Vec<String> = (1500..2000).map(envelope).collect();
    xadd_all(redis.port, KEY, &after);
    collector.wait_rows(2000, LONG);
    wait_until("every entry acknowledged", LONG, || {
        group_pending(&redis) == 0
    });
    assert_eq!(
        collector.query_i64("SELECT count(*) FROM events WHERE source = 'redis'"),
        2000
    );
}

#[test]
fn pubsub_stores_what_it_receives() {
    let temp = tempfile::tempdir().unwrap();
    let redis = RedisServer::start();
    let collector = Collector::start(
        temp.path(),
        &["--redis-url", &redis.url(), "--transport", "pubsub"],
    );
    wait_until("the collector to subscribe", LONG, || {
        redis.command(&["PUBSUB", "NUMSUB", KEY]).lines().nth(1) == Some("1")
    });
    for index in 0..300 {
        let receivers = redis.command(&["PUBLISH", KEY, &envelope(index)]);
        assert_eq!(receivers, "1");
    }
    collector.wait_rows(300, LONG);
}

#[test]
fn spool_is_drained_and_its_files_deleted() {
    let temp = tempfile::tempdir().unwrap();
    let spool = temp.path().join("spool");
    let mut lines: Vec<String> = (0..300).map(envelope).collect();
    hooktrail_shared::spool::append_lines(&spool, lines.iter().map(String::as_str)).unwrap();
    hooktrail_shared::spool::append(&spool, "this line is not an envelope").unwrap();
    // A file that is not a spool file (the emitter's marker) is left alone.
    std::fs::write(spool.join(".pending"), "").unwrap();
    let collector = Collector::start(temp.path(), &[]);
    collector.wait_rows(300, LONG);
    // Files spooled while it runs are drained too.
    lines = (300..400).map(envelope).collect();
    hooktrail_shared::spool::append_lines(&spool, lines.iter().map(String::as_str)).unwrap();
    collector.wait_rows(400, LONG);
    wait_until("the spool files to be deleted", LONG, || {
        std::fs::read_dir(&spool)
            .unwrap()
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .all(|name| !name.starts_with("spool-"))
    });
    let rejected =
        std::fs::read_to_string(spool.join(hooktrail_shared::spool::REJECTED_FILE)).unwrap();
    assert!(
        rejected.contains("this line is not an envelope"),
        "{rejected}"
    );
    assert!(spool.join(".pending").exists());
    assert!(
        collector.log_text().contains("rejected"),
        "{}",
        collector.log_text()
    );
}

#[test]
fn camel_case_envelope_is_stored() {
    let temp = tempfile::tempdir().unwrap();
    let collector = Collector::start(temp.path(), &[]);
    let line = r#"{"id":"legacy-1","timestamp":"2024-11-22T21:52:25.678Z","sessionId":"s9","machineId":"old-box","workingDirectory":"/w","eventType":"PostToolUse","hookType":"PostToolUse","data":{"tool_name":"Edit","tool_use_id":"toolu_9","session_id":"s9"}}"#;
    assert_eq!(
        send_lines(&collector.socket, &[line.to_owned()]),
        vec!["ok"]
    );
    let rows = collector.rows(
        "SELECT id, ts, machine, session_id, hook, tool, tool_use_id, cwd, source FROM events",
    );
    assert_eq!(
        rows,
        vec![vec![
            "legacy-1",
            "1732312345678",
            "old-box",
            "s9",
            "PostToolUse",
            "Edit",
            "toolu_9",
            "/w",
            "socket"
        ]]
    );
}

#[test]
fn malformed_oversized_and_binary_lines_are_rejected_and_counted() {
    let temp = tempfile::tempdir().unwrap();
    let mut settings = settings_in(temp.path());
    settings.socket = Some(temp.path().join("s.sock"));
    let bound = hooktrail_collector::bind(&settings).unwrap();
    let stats = Arc::new(hooktrail_collector::Stats::default());
    let shutdown = Arc::new(AtomicBool::new(false));
    let runner = {
        let (stats, shutdown) = (stats.clone(), shutdown.clone());
        std::thread::spawn(move || {
            hooktrail_collector::run_with_stats(settings, bound, shutdown, stats)
        })
    };
    let socket = temp.path().join("s.sock");
    let oversized = format!(
        "{{\"v\":1,\"id\":\"big\",\"pad\":\"{}\"}}",
        "y".repeat(hooktrail_shared::protocol::MAX_LINE_BYTES + 10)
    );
    let binary = String::from_utf8_lossy(b"\x00\x01\x02binary\x7f").into_owned();
    let lines = vec![
        envelope(1),
        "{not json".to_owned(),
        oversized,
        binary,
        r#"{"v":1,"id":"no-payload","ts":1,"hook":"Stop"}"#.to_owned(),
        envelope(2),
    ];
    let replies = send_lines(&socket, &lines);
    assert_eq!(replies.len(), 6, "{replies:?}");
    assert_eq!(replies[0], "ok");
    assert!(replies[1].starts_with("error "), "{}", replies[1]);
    assert!(
        replies[2].starts_with("error line longer than"),
        "{}",
        replies[2]
    );
    assert!(replies[3].starts_with("error "), "{}", replies[3]);
    assert!(
        replies[4].starts_with("error missing \"payload\""),
        "{}",
        replies[4]
    );
    assert_eq!(replies[5], "ok");
    // Invalid UTF-8 bytes on the wire, not just odd characters.
    let mut raw = UnixStream::connect(&socket).unwrap();
    use std::io::{BufRead, Write};
    raw.write_all(b"\xff\xfe\xfd\n").unwrap();
    let mut reply = String::new();
    std::io::BufReader::new(raw).read_line(&mut reply).unwrap();
    assert!(reply.starts_with("error not UTF-8"), "{reply}");
    let socket_counters = stats.source(hooktrail_collector::Source::Socket);
    assert_eq!(socket_counters.rejected.load(Ordering::Relaxed), 5);
    assert_eq!(socket_counters.received.load(Ordering::Relaxed), 7);
    assert_eq!(socket_counters.stored.load(Ordering::Relaxed), 2);
    assert_eq!(socket_counters.acknowledged.load(Ordering::Relaxed), 2);
    // It keeps running.
    assert_eq!(send_lines(&socket, &[envelope(3)]), vec!["ok"]);
    shutdown.store(true, Ordering::Relaxed);
    runner.join().unwrap().unwrap();
}

fn settings_in(dir: &std::path::Path) -> hooktrail_collector::Settings {
    let args: Vec<String> = vec![
        "--db".into(),
        dir.join("events.db").display().to_string(),
        "--spool-dir".into(),
        dir.join("spool").display().to_string(),
        "--http".into(),
        "off".into(),
        "--socket".into(),
        "off".into(),
    ];
    let home = dir.display().to_string();
    match hooktrail_collector::parse_settings(&args, &move |name: &str| {
        (name == "HOME").then(|| home.clone())
    })
    .unwrap()
    {
        hooktrail_collector::Invocation::Run { settings, .. } => *settings,
        hooktrail_collector::Invocation::Print(text) => panic!("{text}"),
        hooktrail_collector::Invocation::Import { .. } => panic!("an import"),
    }
}

#[test]
fn sigkill_mid_stream_then_restart_gives_exactly_n_rows() {
    let temp = tempfile::tempdir().unwrap();
    let redis = RedisServer::start();
    let lines: Vec<String> = (0..20_000).map(envelope).collect();
    xadd_all(redis.port, KEY, &lines);
    let mut collector =
        Collector::start(temp.path(), &["--redis-url", &redis.url(), "--group", "g"]);
    wait_until("some rows stored", LONG, || collector.count() > 0);
    collector.kill9();
    let stored_at_kill = collector.count();
    assert!(
        stored_at_kill < 20_000,
        "the kill came too late to test anything ({stored_at_kill} rows)"
    );
    collector.restart();
    collector.wait_rows(20_000, LONG);
    wait_until("every entry acknowledged", LONG, || {
        group_pending(&redis) == 0
    });
}

/// Issue 21: events are acknowledged when their rows commit, and the
/// search index follows from a mark kept in the database. A collector
/// killed while its index is behind indexes the rest after the restart:
/// every stored event becomes searchable, none twice.
#[test]
fn events_stored_before_a_kill_9_become_searchable_after_the_restart() {
    let temp = tempfile::tempdir().unwrap();
    let redis = RedisServer::start();
    let lines: Vec<String> = (0..20_000).map(envelope).collect();
    xadd_all(redis.port, KEY, &lines);
    let mut collector = Collector::start(
        temp.path(),
        &["--redis-url", &redis.url(), "--group", "g", "--no-token"],
    );
    let behind = |collector: &Collector| {
        collector.query_i64(
            "SELECT COALESCE((SELECT MAX(seq) FROM events), 0) \
             - COALESCE((SELECT indexed_seq FROM search_index_mark), 0)",
        )
    };
    wait_until("stored events the index has not taken yet", LONG, || {
        behind(&collector) > 0
    });
    collector.kill9();
    let (stored, unindexed) = (collector.count(), behind(&collector));
    assert!(
        unindexed > 0,
        "the index had caught up before the kill ({stored} rows)"
    );
    collector.restart();
    collector.wait_rows(20_000, LONG);
    collector.wait_indexed(LONG);
    // Each envelope's tool output is 800 `x`: one index row per event.
    let searchable = collector
        .query_i64(r#"SELECT count(*) FROM events_fts WHERE events_fts MATCH '"xxxxxxxx"'"#);
    assert_eq!(
        searchable, 20_000,
        "{stored} stored, {unindexed} unindexed at the kill"
    );
    // A search answer says the index is current (the port of the second
    // start: the log holds both).
    let marker = "serving the UI on http://";
    wait_until("the restarted collector's HTTP address", LONG, || {
        collector.log_text().matches(marker).count() == 2
    });
    let log = collector.log_text();
    let address = log
        .rsplit(marker)
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
    let answer = support::process::http_json(port, "/api/events?limit=1&q=xxxxxxxx");
    assert_eq!(answer["search_index"]["behind"], 0, "{answer}");
    assert_eq!(
        answer["events"].as_array().map(Vec::len),
        Some(1),
        "{answer}"
    );
}

#[test]
fn sigkill_with_socket_clients_loses_no_acknowledged_event() {
    let temp = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(temp.path(), &[]);
    let lines: Vec<String> = (0..20_000).map(envelope).collect();
    let socket = collector.socket.clone();
    let sender = {
        let lines = lines.clone();
        std::thread::spawn(move || send_lines(&socket, &lines))
    };
    wait_until("some rows stored", LONG, || collector.count() > 0);
    collector.kill9();
    let replies = sender.join().unwrap();
    let acknowledged = replies.iter().filter(|reply| *reply == "ok").count() as i64;
    // Every event that got its `ok` is stored.
    assert!(
        collector.count() >= acknowledged,
        "{} rows < {acknowledged} acknowledged",
        collector.count()
    );
    collector.restart();
    // An emitter resends what was not acknowledged: all of it, once.
    let replies = send_lines(&collector.socket, &lines);
    assert!(replies.iter().all(|reply| reply == "ok"));
    collector.wait_rows(20_000, LONG);
}

#[test]
fn redis_restart_mid_stream_loses_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let collector = Collector::start(temp.path(), &["--redis-url", &redis.url(), "--group", "g"]);
    let first: Vec<String> = (0..1000).map(envelope).collect();
    xadd_all(redis.port, KEY, &first);
    collector.wait_rows(1000, LONG);
    redis.stop();
    wait_until("the collector to notice", LONG, || {
        collector.log_text().contains("retrying with backoff")
    });
    redis.restart();
    let second: Vec<String> = (1000..2000).map(envelope).collect();
    xadd_all(redis.port, KEY, &second);
    collector.wait_rows(2000, LONG);
    wait_until("every entry acknowledged", LONG, || {
        group_pending(&redis) == 0
    });
    let log = collector.log_text();
    assert_eq!(
        log.matches("retrying with backoff").count(),
        1,
        "the outage is logged once: {log}"
    );
    assert!(log.contains("again"), "{log}");
}

#[test]
fn sqlite3_holding_an_exclusive_lock_for_3s_costs_no_event() {
    let temp = tempfile::tempdir().unwrap();
    let collector = Collector::start(temp.path(), &[]);
    assert_eq!(send_lines(&collector.socket, &[envelope(0)]), vec!["ok"]);
    let mut holder = Command::new("sqlite3")
        .arg(&collector.db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("sqlite3 CLI (apt-get install sqlite3)");
    {
        use std::io::Write;
        let stdin = holder.stdin.as_mut().unwrap();
        stdin.write_all(b"BEGIN EXCLUSIVE;\nINSERT INTO sessions(session_id, machine, first_ts, last_ts) VALUES ('lock', 'm', 0, 0);\n.shell sleep 3\nROLLBACK;\n").unwrap();
    }
    let probe = rusqlite::Connection::open(&collector.db).unwrap();
    probe.busy_timeout(Duration::ZERO).unwrap();
    wait_until("sqlite3 to hold the write lock", LONG, || {
        probe.execute_batch("BEGIN IMMEDIATE; ROLLBACK;").is_err()
    });
    drop(probe);
    let lines: Vec<String> = (1..501).map(envelope).collect();
    let replies = send_lines(&collector.socket, &lines);
    assert!(
        replies.iter().all(|reply| reply == "ok"),
        "{:?}",
        &replies[..3]
    );
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    collector.wait_rows(501, LONG);
    assert!(
        collector.log_text().contains("cannot commit"),
        "{}",
        collector.log_text()
    );
}

#[test]
fn sigterm_with_stream_events_in_flight_loses_none() {
    let temp = tempfile::tempdir().unwrap();
    let redis = RedisServer::start();
    let lines: Vec<String> = (0..20_000).map(envelope).collect();
    xadd_all(redis.port, KEY, &lines);
    let mut collector =
        Collector::start(temp.path(), &["--redis-url", &redis.url(), "--group", "g"]);
    wait_until("some rows stored", LONG, || collector.count() > 0);
    let status = collector.terminate();
    assert!(status.success(), "{status:?}: {}", collector.log_text());
    // Everything it read was committed and acknowledged before it exited.
    assert_eq!(group_pending(&redis), 0);
    let stored = collector.count();
    collector.restart();
    collector.wait_rows(20_000, LONG);
    assert!(stored > 0);
}

#[test]
fn sigterm_with_socket_events_in_flight_answers_all_it_read() {
    let temp = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(temp.path(), &[]);
    let lines: Vec<String> = (0..5000).map(envelope).collect();
    let socket = collector.socket.clone();
    let sender = {
        let lines = lines.clone();
        std::thread::spawn(move || send_lines(&socket, &lines))
    };
    wait_until("some rows stored", LONG, || collector.count() > 0);
    let status = collector.terminate();
    assert!(status.success(), "{status:?}");
    let replies = sender.join().unwrap();
    let acknowledged = replies.iter().filter(|reply| *reply == "ok").count() as i64;
    assert!(acknowledged > 0);
    assert_eq!(
        collector.count(),
        acknowledged,
        "every stored event was answered, every answer stored"
    );
    assert!(
        !collector.socket.exists(),
        "the socket file is removed at exit"
    );
}

#[test]
fn stale_socket_is_replaced_and_a_live_collector_is_not_displaced() {
    let temp = tempfile::tempdir().unwrap();
    let socket = temp.path().join("run/collector.sock");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let first = Collector::start(temp.path(), &[]);
    assert_eq!(send_lines(&first.socket, &[envelope(1)]), vec!["ok"]);
    let second_dir = temp.path().join("second");
    std::fs::create_dir_all(&second_dir).unwrap();
    let output = Command::new(support::process::BINARY)
        .args(["--db", &second_dir.join("e.db").display().to_string()])
        .args(["--socket", &socket.display().to_string()])
        .args([
            "--http",
            "127.0.0.1:0",
            "--spool-dir",
            &second_dir.join("spool").display().to_string(),
        ])
        .env("HOME", &second_dir)
        .env("XDG_CONFIG_HOME", second_dir.join("config"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("already listening"));
    assert_eq!(send_lines(&first.socket, &[envelope(2)]), vec!["ok"]);
    first.wait_rows(2, LONG);
}

#[test]
fn sessions_and_agents_are_filled_from_fixtures_in_any_order() {
    let temp = tempfile::tempdir().unwrap();
    let collector = Collector::start(temp.path(), &[]);
    let mut lines = fixture_envelopes("subagent");
    // Deliver in reverse so the Agent tool's PostToolUse and the subagent's
    // own events arrive before its SubagentStart.
    lines.reverse();
    for line in &lines {
        assert_eq!(
            send_lines(&collector.socket, std::slice::from_ref(line)),
            vec!["ok"]
        );
    }
    lines = fixture_envelopes("tools_basic");
    assert!(send_lines(&collector.socket, &lines)
        .iter()
        .all(|reply| reply == "ok"));
    let session = "3fbea859-b92d-4bc3-9607-2410216643b3";
    let rows = collector.rows(&format!(
        "SELECT machine, cwd, event_count, ended_ts IS NOT NULL, end_reason, transcript_path, first_ts < last_ts FROM sessions WHERE session_id = '{session}'"
    ));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0], "fixhost");
    assert_eq!(rows[0][1], "/home/dev/project");
    assert_eq!(rows[0][2], "12");
    assert_eq!(rows[0][3], "1");
    assert_ne!(rows[0][4], "NULL");
    assert!(
        rows[0][5].ends_with(&format!("{session}.jsonl")),
        "{:?}",
        rows[0]
    );
    assert_eq!(rows[0][6], "1");
    let agents = collector.rows(
        "SELECT agent_id, session_id, agent_type, parent_tool_use_id, started_ts IS NOT NULL, stopped_ts IS NOT NULL, event_count, transcript_path FROM agents",
    );
    assert_eq!(agents.len(), 1, "{agents:?}");
    let agent = &agents[0];
    assert_eq!(agent[0], "aedc35a865b2629db");
    assert_eq!(agent[1], session);
    assert_eq!(agent[2], "general-purpose");
    assert_eq!(
        agent[3], "toolu_00001",
        "linked to the Agent tool call that started it"
    );
    assert_eq!(&agent[4..7], ["1", "1", "4"]);
    assert!(
        agent[7].ends_with("agent-aedc35a865b2629db.jsonl"),
        "{agent:?}"
    );
    assert_eq!(collector.query_i64("SELECT count(*) FROM sessions"), 2);
}

#[test]
fn tool_calls_view_gives_durations_and_failures() {
    let temp = tempfile::tempdir().unwrap();
    let collector = Collector::start(temp.path(), &[]);
    let lines = fixture_envelopes("failures");
    assert!(send_lines(&collector.socket, &lines)
        .iter()
        .all(|reply| reply == "ok"));
    let calls = collector.rows("SELECT tool_use_id, tool, outcome, duration_ms IS NOT NULL, error IS NOT NULL FROM tool_calls ORDER BY tool_use_id");
    assert_eq!(
        calls,
        vec![
            vec!["toolu_00001", "Bash", "failed", "1", "1"],
            vec!["toolu_00003", "Bash", "ok", "1", "0"],
            vec!["toolu_00007", "WebFetch", "pending", "0", "0"],
        ]
    );
}

#[test]
fn retention_deletes_old_events_and_their_sessions() {
    let temp = tempfile::tempdir().unwrap();
    let collector = Collector::start(temp.path(), &["--retention-days", "1"]);
    // Fixture timestamps are from 2023: all expire. A fresh one stays.
    let mut lines = fixture_envelopes("failures");
    let fresh = hooktrail_shared::envelope::Envelope::from_hook_stdin(
        br#"{"session_id":"new","hook_event_name":"Stop"}"#,
        hooktrail_shared::envelope::new_event_id(),
        hooktrail_shared::time::now_millis(),
        "h".into(),
    );
    lines.push(fresh.to_json());
    assert!(send_lines(&collector.socket, &lines)
        .iter()
        .all(|reply| reply == "ok"));
    wait_until("old events deleted", LONG, || {
        collector.count() == 1 && collector.query_i64("SELECT count(*) FROM sessions") == 1
    });
    assert_eq!(
        collector.rows("SELECT session_id FROM sessions"),
        vec![vec!["new"]]
    );
}

#[test]
fn command_line_is_checked() {
    let help = Command::new(support::process::BINARY)
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--retention-days"));
    let version = Command::new(support::process::BINARY)
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("hooktrail-collector "));
    let open = Command::new(support::process::BINARY)
        .args([
            "--http",
            "0.0.0.0:0",
            "--socket",
            "off",
            "--db",
            "/nonexistent/x.db",
        ])
        .env_remove("HOOKTRAIL_TOKEN")
        .output()
        .unwrap();
    assert_eq!(open.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&open.stderr).contains("without a token"));
    let unknown = Command::new(support::process::BINARY)
        .arg("--frobnicate")
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
}
