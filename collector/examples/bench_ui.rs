//! `scripts/bench-ui`: the UI's figures (issues 4 and 11).
//!
//! 1. Builds a database of 1,000,000 events over 500 sessions, with states,
//!    titles and priced usage, plus one session of 5,000 events with three
//!    subagents in parallel (or reuses `$BENCH_UI_DB` when it already holds
//!    them), fills the search index as migration 4 does, and starts the
//!    release collector on it.
//! 2. p50/p99 of the API over keep-alive HTTP: `/api/events` with and without
//!    each filter, combined, and with `q=` search; `/api/sessions` in each
//!    sort, `/api/sessions/{id}` and its timeline (of 2,000-event sessions
//!    and of a session of 1,000 prompts and 20,000 events); then the page's first paint with 500
//!    sessions in headless Chromium; `/metrics` among the routes.
//!    `BENCH_UI_API_ONLY=1` stops here; `BENCH_UI_LIVE_ONLY=1` skips this
//!    step (the API and the browser) for the two below.
//! 3. 50 WebSocket clients while events arrive on the socket at 1,000/s:
//!    p50/p99 from the sender's write to delivery at every client (an upper
//!    bound of commit-to-delivery: it includes the socket read, batching and
//!    the commit).
//! 4. Socket ingest rate of a burst with no WebSocket client and with 50,
//!    and how long after the burst's last acknowledgement every client had
//!    every event of it.
//!    `BENCH_UI_IDLE_CLIENTS=1` runs the benchmark's own WebSocket readers
//!    at SCHED_IDLE, so they stand for browsers on other machines.
//!
//! It prints figures; it asserts nothing.

// A benchmark prints its figures and paces its load with sleeps; both are
// its job, unlike in the daemons and tests the bans protect.
#![allow(clippy::print_stdout, clippy::disallowed_methods)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hooktrail_shared::envelope::{new_event_id, Envelope};
use hooktrail_shared::time::now_millis;

const EVENTS: i64 = 1_000_000;
const SESSIONS: i64 = 500;
const CLIENTS: usize = 50;
/// A session of 5,000 events with three subagents running in parallel,
/// permission waits and a compaction, for the timeline.
const BIG_SESSION: &str = "bench-session-big";
const BIG_EVENTS: i64 = 5_000;
/// A long session (issue 16 item 7): 1,000 prompts of 20 events each (the
/// prompt, nine tool calls with their outcomes, the stop), so the session
/// page's per-prompt counts show whether they read the prompt's events or
/// every PreToolUse of the database.
const PROMPTS_SESSION: &str = "bench-session-prompts";
const PROMPTS_SESSION_PROMPTS: i64 = 1_000;

/// Builds the path of the i-th request of one route.
type RequestPath = Box<dyn Fn(usize) -> String>;

fn main() {
    let binaries = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    let collector = binaries.join("hooktrail-collector");
    let dir = tempfile::tempdir().unwrap();
    let db = std::env::var_os("BENCH_UI_DB")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().join("events.db"));
    build_database(&db);

    let newest_ts: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT MAX(ts) FROM events", [], |row| row.get(0))
        .unwrap();
    let running = Running::start(&collector, &db, dir.path());
    if std::env::var_os("BENCH_UI_LIVE_ONLY").is_none() {
        api_and_page(&running, newest_ts);
        if std::env::var_os("BENCH_UI_API_ONLY").is_some() {
            return;
        }
    }
    live_and_burst(&running);
}

/// Step 2: the API's routes, then the page in Chromium.
fn api_and_page(running: &Running, newest_ts: i64) {
    println!("API on {EVENTS} events over {SESSIONS} sessions (500 requests each, keep-alive, after a warm-up):");
    let mut client = Http::connect(running.port);
    let session = |index: i64| format!("bench-session-{index:04}");
    let routes: Vec<(&str, RequestPath)> = vec![
        (
            "/api/events?after=&limit=100",
            Box::new(|_| "/api/events?after=&limit=100".into()),
        ),
        (
            "/api/events?after=RANDOM&limit=100",
            Box::new(|i| format!("/api/events?after={}&limit=100", (i as i64 * 7919) % EVENTS)),
        ),
        (
            "/api/events?order=desc&limit=100 (newest)",
            Box::new(|_| "/api/events?order=desc&limit=100".into()),
        ),
        (
            "  + session=S",
            Box::new(move |i| {
                format!(
                    "/api/events?after=&limit=100&session={}",
                    session(i as i64 % SESSIONS)
                )
            }),
        ),
        (
            "  + hook=PreToolUse&tool=Bash",
            Box::new(|i| {
                format!(
                    "/api/events?after={}&limit=100&hook=PreToolUse&tool=Bash",
                    (i as i64 * 7919) % EVENTS
                )
            }),
        ),
        (
            "  + machine=M&hook=PostToolUse",
            Box::new(|i| {
                format!(
                    "/api/events?after={}&limit=100&machine=host-{}&hook=PostToolUse",
                    (i as i64 * 7919) % EVENTS,
                    i % 5
                )
            }),
        ),
        (
            "  + hook=SessionEnd (rare)",
            Box::new(|_| "/api/events?after=&limit=100&hook=SessionEnd".into()),
        ),
        (
            "  + hook=SessionEnd (rare, desc)",
            Box::new(|_| "/api/events?order=desc&limit=100&hook=SessionEnd".into()),
        ),
        (
            "  + hook=PermissionRequest (rare, desc)",
            Box::new(|_| "/api/events?order=desc&limit=100&hook=PermissionRequest".into()),
        ),
        (
            "  + machine=M (alone)",
            Box::new(|i| format!("/api/events?order=desc&limit=100&machine=host-{}", i % 5)),
        ),
        (
            "  + tool=Bash (alone)",
            Box::new(|i| {
                format!(
                    "/api/events?after={}&limit=100&tool=Bash",
                    (i as i64 * 7919) % EVENTS
                )
            }),
        ),
        (
            "  + agent=ID (rare)",
            Box::new(|i| format!("/api/events?after=&limit=100&agent=bench-agent-{}", i % 3)),
        ),
        (
            "  + agent=main (alone)",
            Box::new(|_| "/api/events?order=desc&limit=100&agent=main".into()),
        ),
        (
            "  + session=S&hook=PreToolUse&tool=Read",
            Box::new(move |i| {
                format!(
                    "/api/events?limit=100&session={}&hook=PreToolUse&tool=Read",
                    session(i as i64 % SESSIONS)
                )
            }),
        ),
        (
            "  + q=marker-N (common term, desc)",
            Box::new(|i| format!("/api/events?order=desc&limit=100&q=marker-{}", i % 100)),
        ),
        (
            "  + q=grep (in every indexed event, asc)",
            Box::new(|_| "/api/events?after=&limit=100&q=grep".into()),
        ),
        (
            "  + q=needle (rare term, 10 hits)",
            Box::new(|_| "/api/events?order=desc&limit=100&q=needle-".into()),
        ),
        (
            "  + q=marker-N&machine=M&hook=PreToolUse",
            Box::new(|i| {
                format!(
                    "/api/events?order=desc&limit=100&q=marker-{}&machine=host-{}&hook=PreToolUse",
                    i % 100,
                    i % 5
                )
            }),
        ),
        (
            "  + q=needle&session=S (rare and combined)",
            Box::new(|_| {
                "/api/events?order=desc&limit=100&q=needle-&session=bench-session-0007".into()
            }),
        ),
        (
            "/api/sessions (cost and state)",
            Box::new(|_| "/api/sessions".into()),
        ),
        (
            "/api/sessions?sort=cost",
            Box::new(|_| "/api/sessions?sort=cost".into()),
        ),
        (
            "/api/sessions?sort=duration",
            Box::new(|_| "/api/sessions?sort=duration".into()),
        ),
        (
            "/api/sessions/{big}/timeline (5,000 events)",
            Box::new(|_| format!("/api/sessions/{BIG_SESSION}/timeline")),
        ),
        (
            "/api/sessions/{prompts} (1,000 prompts, 20,000 events)",
            Box::new(|_| format!("/api/sessions/{PROMPTS_SESSION}")),
        ),
        (
            "/api/sessions/{prompts}/timeline (20,000 events)",
            Box::new(|_| format!("/api/sessions/{PROMPTS_SESSION}/timeline")),
        ),
        (
            "/api/sessions/{id}",
            Box::new(move |i| {
                format!(
                    "/api/sessions/bench-session-{:04}",
                    (i as i64 * 13) % SESSIONS
                )
            }),
        ),
        (
            "/api/sessions/{id}/timeline",
            Box::new(move |i| {
                format!(
                    "/api/sessions/bench-session-{:04}/timeline",
                    (i as i64 * 13) % SESSIONS
                )
            }),
        ),
        (
            "/api/stats?bucket=60&since=(newest-60 s)",
            Box::new(move |_| format!("/api/stats?bucket=60&since={}", newest_ts - 60_000)),
        ),
        ("/metrics", Box::new(|_| "/metrics".into())),
    ];
    for (name, path) in &routes {
        for index in 0..20 {
            client.get(&path(index));
        }
        let mut times = Vec::new();
        let requests = if name.contains("stats") || name.contains("20,000") || *name == "/metrics" {
            50
        } else {
            500
        };
        for index in 0..requests {
            let started = Instant::now();
            let (status, body) = client.get(&path(index));
            times.push(started.elapsed());
            assert!(
                status == 200,
                "{name}: status {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(400)])
            );
        }
        let (p50, p99) = percentiles(&mut times);
        println!(
            "  {name:<46} p50 {:>7.2} ms   p99 {:>7.2} ms",
            ms(p50),
            ms(p99)
        );
    }
    drop(client);
    if std::env::var_os("BENCH_UI_API_ONLY").is_some() {
        return;
    }
    match first_paint(running.port) {
        Ok(figures) => println!("{figures}"),
        Err(why) => println!("First paint: skipped ({why})"),
    }
    match long_session_draw(running.port) {
        Ok(figures) => println!("{figures}"),
        Err(why) => println!("Long session draw: skipped ({why})"),
    }
}

/// Steps 3 and 4: live delivery at 1,000 events/s, and the burst.
fn live_and_burst(running: &Running) {
    println!("WebSocket: {CLIENTS} clients, events at 1,000/s for 10 s on the socket:");
    let (p50, p99, delivered, expected) = live_latency(running, CLIENTS, 10_000);
    println!("  write-to-delivery (upper bound of commit-to-delivery): p50 {p50:.2} ms   p99 {p99:.2} ms   ({delivered} of {expected} deliveries)");

    let burst = 100_000;
    let (alone, _, _) = ingest_rate(running, burst, 0);
    let (with_clients, closed, caught_up) = ingest_rate(running, burst, CLIENTS);
    println!("Socket ingest of {burst} events (4 pipelined writers):");
    println!("  with no WebSocket client: {alone:>9.0} events/s");
    println!(
        "  with {CLIENTS} live clients:      {with_clients:>9.0} events/s   ({:+.1}%)",
        (with_clients / alone - 1.0) * 100.0
    );
    println!("  clients closed during the burst: {closed} of {CLIENTS}");
    match caught_up {
        Some(after) => println!(
            "  every client had every event {:.2} s after the burst's last acknowledgement",
            after.as_secs_f64()
        ),
        None => println!("  the clients did not all have every event within 120 s of the burst"),
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn percentiles(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    (at(0.50), at(0.99))
}

fn build_database(db: &Path) {
    let connection = hooktrail_collector::open_database(db).unwrap();
    let existing: i64 = connection
        .query_row("SELECT COUNT(*) FROM events", [], |row| row.get(0))
        .unwrap();
    // The big session is written last, a few events short of BIG_EVENTS.
    let big: i64 = connection
        .query_row(
            "SELECT COUNT(*) FROM events WHERE session_id = ?1",
            [BIG_SESSION],
            |row| row.get(0),
        )
        .unwrap();
    let long: i64 = connection
        .query_row(
            "SELECT COUNT(*) FROM events WHERE session_id = ?1",
            [PROMPTS_SESSION],
            |row| row.get(0),
        )
        .unwrap();
    if existing >= EVENTS && big > 0 && long > 0 {
        println!("reusing {} ({existing} events)", db.display());
        return;
    }
    let started = Instant::now();
    let mut connection = connection;
    let now = now_millis();
    let start_ts = now - EVENTS; // one event per ms, ending now
    let per_session = EVENTS / SESSIONS;
    let transaction = connection.transaction().unwrap();
    {
        let mut insert = transaction
            .prepare(
                "INSERT INTO events (id, ts, received_at, machine, session_id, agent_id, hook, tool, tool_use_id, cwd, source, payload, prompt_id) \
                 VALUES (?1, ?2, ?2, ?3, ?4, ?9, ?5, ?6, ?7, '/home/dev/project', 'socket', ?8, ?10)",
            )
            .unwrap();
        for index in 0..EVENTS {
            // Sessions interleave in runs of 20 events, like concurrent sessions do.
            let session_index = (index / 20) % SESSIONS;
            let session = format!("bench-session-{session_index:04}");
            let machine = format!("host-{}", session_index % 5);
            let position = (index / 20 / SESSIONS) * 20 + index % 20;
            let (hook, tool) = match position % per_session {
                0 => ("SessionStart", None),
                p if p == per_session - 1 => ("SessionEnd", None),
                p if p % 10 == 1 => ("UserPromptSubmit", None),
                p if p % 2 == 0 => ("PreToolUse", Some(if p % 6 == 0 { "Bash" } else { "Read" })),
                p => (
                    "PostToolUse",
                    Some(if (p - 1) % 6 == 0 { "Bash" } else { "Read" }),
                ),
            };
            let tool_use = tool.map(|_| format!("toolu_{session_index:04}_{:06}", position / 2));
            let payload = format!(
                r#"{{"session_id":"{session}","cwd":"/home/dev/project","hook_event_name":"{hook}","tool_name":{},"tool_input":{{"command":"grep -rn 'fn main' src/ marker-{}","description":"Find entry points"}},"tool_use_id":{},"transcript_path":"/home/dev/.claude/projects/-home-dev-project/{session}.jsonl","padding":"{}"}}"#,
                tool.map(|t| format!("\"{t}\"")).unwrap_or("null".into()),
                if index % 100_000 == 7 {
                    format!("{} needle-{index}", index % 1000)
                } else {
                    (index % 1000).to_string()
                },
                tool_use
                    .as_ref()
                    .map(|t| format!("\"{t}\""))
                    .unwrap_or("null".into()),
                "x".repeat(300)
            );
            insert
                .execute(rusqlite::params![
                    new_event_id(),
                    start_ts + index,
                    machine,
                    session,
                    hook,
                    tool,
                    tool_use,
                    payload,
                    None::<String>,
                    // Each prompt's events carry its id, as Claude Code's do.
                    (position % per_session > 0)
                        .then(|| format!("{session}-prompt-{}", (position % per_session - 1) / 10)),
                ])
                .unwrap();
        }
        insert_big_session(&mut insert, start_ts);
        insert_prompts_session(&mut insert, start_ts);
        transaction
            .execute(
                "INSERT INTO sessions (session_id, machine, cwd, first_ts, last_ts, ended_ts, end_reason, event_count, last_seq) \
                 SELECT session_id, MIN(machine), '/home/dev/project', MIN(ts), MAX(ts), MAX(CASE hook WHEN 'SessionEnd' THEN ts END), \
                 'other', COUNT(*), MAX(seq) FROM events GROUP BY session_id",
                [],
            )
            .unwrap();
    }
    // What the writer keeps for live sessions: states (one in seven waiting
    // for the user), titles, models, and 20 priced responses per session.
    transaction
        .execute_batch(&format!(
            "UPDATE sessions SET state = CASE (rowid % 7) WHEN 0 THEN 'waiting' WHEN 1 THEN 'working' \
               WHEN 2 THEN 'failed' WHEN 3 THEN 'compacting' WHEN 4 THEN 'idle' ELSE 'ended' END, \
             state_since = last_ts, state_detail = CASE (rowid % 7) WHEN 0 THEN 'permission: Bash' END, \
             title = 'Fix the flaky integration test in ' || session_id, model = 'claude-opus-4-5'; \
             INSERT INTO agents (agent_id, session_id, agent_type, started_ts, stopped_ts, event_count, state) \
               SELECT agent_id, session_id, 'Explore', MIN(ts), MAX(ts), COUNT(*), 'ended' FROM events \
               WHERE session_id = '{BIG_SESSION}' AND agent_id IS NOT NULL GROUP BY agent_id; \
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 19) \
             INSERT INTO usage (key, message_id, session_id, machine, cwd, model, ts, input_tokens, output_tokens, \
               cache_read_tokens, cost_usd, origin) \
             SELECT session_id || '-' || i, session_id || '-' || i, session_id, machine, cwd, 'claude-opus-4-5', \
               first_ts + i * 1000, 1000 + i, 200 + (rowid % 50) * i, 50000, 0.01 * ((rowid * 7 + i) % 23), 'hook' \
             FROM sessions, n;"
        ))
        .unwrap();
    transaction
        .execute_batch(hooktrail_collector::REBUILD_EVENT_COUNTS)
        .unwrap();
    let indexing = Instant::now();
    hooktrail_collector::rebuild_search_index(&transaction).unwrap();
    println!(
        "  search index of {} events built in {:.1} s (what migration 4 does to an existing database)",
        EVENTS + BIG_EVENTS + PROMPTS_SESSION_PROMPTS * 20,
        indexing.elapsed().as_secs_f64()
    );
    transaction.commit().unwrap();
    connection
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;")
        .unwrap();
    println!(
        "built {} with {EVENTS} events in {:.1} s",
        db.display(),
        started.elapsed().as_secs_f64()
    );
}

/// The 5,000-event session of [`BIG_SESSION`]: prompts, main-agent tool
/// calls, three subagents whose calls overlap the main agent's, a
/// permission wait every 50 calls and one compaction.
fn insert_big_session(insert: &mut rusqlite::Statement<'_>, start_ts: i64) {
    let mut put = |ts: i64,
                   agent: Option<&str>,
                   hook: &str,
                   tool: Option<&str>,
                   tool_use: Option<&str>,
                   extra: &str| {
        let payload = format!(
            r#"{{"session_id":"{BIG_SESSION}","cwd":"/home/dev/big","hook_event_name":"{hook}","tool_name":{},"tool_use_id":{},"agent_id":{}{extra}}}"#,
            tool.map(|t| format!("\"{t}\"")).unwrap_or("null".into()),
            tool_use
                .map(|t| format!("\"{t}\""))
                .unwrap_or("null".into()),
            agent.map(|t| format!("\"{t}\"")).unwrap_or("null".into()),
        );
        insert
            .execute(rusqlite::params![
                new_event_id(),
                ts,
                "host-0",
                BIG_SESSION,
                hook,
                tool,
                tool_use,
                payload,
                agent,
                None::<String>
            ])
            .unwrap();
    };
    let mut ts = start_ts;
    let mut written = 0;
    let mut call = 0;
    while written < BIG_EVENTS - 4 {
        if call % 100 == 0 {
            put(
                ts,
                None,
                "UserPromptSubmit",
                None,
                None,
                r#","prompt":"Refactor the parser and run the tests""#,
            );
            written += 1;
        }
        if call == 1500 {
            put(ts, None, "PreCompact", None, None, r#","trigger":"auto""#);
            ts += 8_000;
            put(ts, None, "PostCompact", None, None, r#","trigger":"auto""#);
            written += 2;
        }
        let agent = match call % 4 {
            0 => None,
            lane => Some(format!("bench-agent-{}", lane - 1)),
        };
        let tool_use = format!("toolu_big_{call:06}");
        let tool = if call % 3 == 0 { "Bash" } else { "Read" };
        put(
            ts,
            agent.as_deref(),
            "PreToolUse",
            Some(tool),
            Some(&tool_use),
            r#","tool_input":{"command":"cargo test"}"#,
        );
        if call % 50 == 0 {
            put(
                ts + 5,
                agent.as_deref(),
                "PermissionRequest",
                Some(tool),
                None,
                "",
            );
            written += 1;
        }
        let hook = if call % 17 == 0 {
            "PostToolUseFailure"
        } else {
            "PostToolUse"
        };
        put(
            ts + 40 + (call % 7) * 30,
            agent.as_deref(),
            hook,
            Some(tool),
            Some(&tool_use),
            "",
        );
        written += 2;
        ts += 60;
        call += 1;
    }
}

/// The long session of [`PROMPTS_SESSION`]: 1,000 prompts, each with nine
/// tool calls (one in nine failing) and a stop, every event carrying its
/// prompt's id.
fn insert_prompts_session(insert: &mut rusqlite::Statement<'_>, start_ts: i64) {
    let mut ts = start_ts;
    let mut put = |hook: &str, tool: Option<&str>, tool_use: Option<&str>, prompt: &str| {
        let payload = format!(
            r#"{{"session_id":"{PROMPTS_SESSION}","cwd":"/home/dev/long","hook_event_name":"{hook}","prompt_id":"{prompt}","tool_name":{},"tool_use_id":{},"prompt":"step {prompt}","duration_ms":12}}"#,
            tool.map(|t| format!("\"{t}\"")).unwrap_or("null".into()),
            tool_use
                .map(|t| format!("\"{t}\""))
                .unwrap_or("null".into()),
        );
        insert
            .execute(rusqlite::params![
                new_event_id(),
                ts,
                "host-1",
                PROMPTS_SESSION,
                hook,
                tool,
                tool_use,
                payload,
                None::<String>,
                prompt
            ])
            .unwrap();
        ts += 25;
    };
    for prompt_index in 0..PROMPTS_SESSION_PROMPTS {
        let prompt = format!("{PROMPTS_SESSION}-prompt-{prompt_index:04}");
        put("UserPromptSubmit", None, None, &prompt);
        for call in 0..9 {
            let tool_use = format!("toolu_long_{prompt_index:04}_{call}");
            let tool = if call % 3 == 0 { "Bash" } else { "Read" };
            put("PreToolUse", Some(tool), Some(&tool_use), &prompt);
            let outcome = if call == 8 && prompt_index % 9 == 0 {
                "PostToolUseFailure"
            } else {
                "PostToolUse"
            };
            put(outcome, Some(tool), Some(&tool_use), &prompt);
        }
        put("Stop", None, None, &prompt);
    }
}

struct Running {
    child: Child,
    port: u16,
    socket: PathBuf,
}

impl Running {
    fn start(binary: &Path, db: &Path, dir: &Path) -> Running {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let socket = dir.join("collector.sock");
        let child = Command::new(binary)
            .args([
                "--db",
                &db.display().to_string(),
                "--socket",
                &socket.display().to_string(),
            ])
            .args([
                "--spool-dir",
                &dir.join("spool").display().to_string(),
                "--http",
                &format!("127.0.0.1:{port}"),
                // The benchmark measures the API, not the token check.
                "--no-token",
            ])
            .env_clear()
            .env("HOME", dir)
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .stdout(Stdio::null())
            // Its warnings go to the benchmark's own output.
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the collector");
        let deadline = Instant::now() + Duration::from_secs(60);
        while UnixStream::connect(&socket).is_err()
            || TcpStream::connect(("127.0.0.1", port)).is_err()
        {
            assert!(Instant::now() < deadline, "the collector did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Running {
            child,
            port,
            socket,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A keep-alive HTTP/1.1 client for GETs with Content-Length answers.
struct Http {
    reader: BufReader<TcpStream>,
    port: u16,
}

impl Http {
    fn connect(port: u16) -> Http {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        Http {
            reader: BufReader::new(stream),
            port,
        }
    }

    fn get(&mut self, path: &str) -> (u16, Vec<u8>) {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
            self.port
        );
        self.reader.get_mut().write_all(request.as_bytes()).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        (status, body)
    }
}

fn envelope(index: usize) -> (String, String) {
    let payload = format!(
        r#"{{"session_id":"live-session-{}","cwd":"/home/dev/project","hook_event_name":"PostToolUse","tool_name":"Bash","tool_input":{{"command":"ls"}},"tool_use_id":"toolu_live_{index}","duration_ms":3,"padding":"{}"}}"#,
        index % 20,
        "y".repeat(500)
    );
    let id = new_event_id();
    (
        id.clone(),
        Envelope::from_hook_stdin(payload.as_bytes(), id, now_millis(), "benchhost".into())
            .to_json(),
    )
}

type Sent = Arc<Mutex<HashMap<String, Instant>>>;

/// What one WebSocket client thread reports: its write-to-delivery times,
/// the events it received, and whether it was closed.
type ClientResult = (Vec<Duration>, usize, bool);

/// Deliveries of events that are in [`Sent`], across all clients, so the
/// benchmark can wait for the last ones instead of guessing a delay.
static MATCHED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Events received by all clients while nothing was timed (the burst).
static RECEIVED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Opens `count` live WebSocket clients; each records write-to-delivery
/// times of the ids in `sent`.
fn open_clients(
    port: u16,
    count: usize,
    sent: &Sent,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<ClientResult>> {
    // Resume from the newest committed event, as the page does: a client
    // whose subscription lands after the first test events still gets them
    // through the replay.
    let newest: serde_json::Value =
        serde_json::from_str(&fetch(port, "/api/events?order=desc&limit=1")).expect("events JSON");
    let after = newest["last_seq"].as_i64().expect("last_seq");
    let handles: Vec<_> = (0..count)
        .map(|_| {
            let sent = sent.clone();
            let stop = stop.clone();
            let (mut socket, _) =
                tungstenite::connect(format!("ws://127.0.0.1:{port}/ws?after={after}"))
                    .expect("open a WebSocket");
            if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_ref() {
                stream
                    .set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
            }
            std::thread::spawn(move || {
                // BENCH_UI_IDLE_CLIENTS=1: the clients read at SCHED_IDLE,
                // as browsers on other machines would take no CPU from the
                // collector; by default they compete with it on this one.
                if std::env::var_os("BENCH_UI_IDLE_CLIENTS").is_some() {
                    // SAFETY: this thread's own scheduling, a live sched_param.
                    unsafe {
                        let parameters = libc::sched_param { sched_priority: 0 };
                        libc::sched_setscheduler(0, libc::SCHED_IDLE, &parameters);
                    }
                }
                let mut times = Vec::new();
                let mut received = 0;
                let mut closed = false;
                while !stop.load(Ordering::Relaxed) {
                    match socket.read() {
                        Ok(tungstenite::Message::Text(text)) => {
                            let now = Instant::now();
                            if sent.lock().unwrap().is_empty() {
                                let events = text.matches("\"seq\":").count();
                                received += events;
                                RECEIVED.fetch_add(events, Ordering::Relaxed);
                                continue;
                            }
                            let message: serde_json::Value = serde_json::from_str(&text).unwrap();
                            if let Some(events) = message["events"].as_array() {
                                let sent = sent.lock().unwrap();
                                for event in events {
                                    received += 1;
                                    if let Some(at) =
                                        event["id"].as_str().and_then(|id| sent.get(id))
                                    {
                                        times.push(now.duration_since(*at));
                                        MATCHED.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(tungstenite::Error::Io(error))
                            if matches!(
                                error.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => {
                            closed = true;
                            break;
                        }
                    }
                }
                (times, received, closed)
            })
        })
        .collect();
    handles
}

fn wait_for_clients(port: u16, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fetch(port, "/metrics")
        .lines()
        .any(|line| line == format!("hooktrail_websocket_clients {count}"))
    {
        assert!(Instant::now() < deadline, "clients did not connect");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn fetch(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

fn live_latency(running: &Running, clients: usize, events: usize) -> (f64, f64, usize, usize) {
    let sent: Sent = Arc::new(Mutex::new(HashMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    MATCHED.store(0, Ordering::Relaxed);
    let handles = open_clients(running.port, clients, &sent, &stop);
    wait_for_clients(running.port, clients);
    let mut stream = UnixStream::connect(&running.socket).unwrap();
    let reader = stream.try_clone().unwrap();
    let replies = std::thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        let mut line = String::new();
        for _ in 0..events {
            line.clear();
            reader.read_line(&mut line).unwrap();
        }
    });
    let started = Instant::now();
    for index in 0..events {
        let due = started + Duration::from_micros(index as u64 * 1000);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let (id, line) = envelope(index);
        sent.lock().unwrap().insert(id, Instant::now());
        stream.write_all(line.as_bytes()).unwrap();
        stream.write_all(b"\n").unwrap();
    }
    replies.join().unwrap();
    // Wait (up to 5 s) for the last deliveries to land.
    let deadline = Instant::now() + Duration::from_secs(5);
    while MATCHED.load(Ordering::Relaxed) < events * clients && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let mut times = Vec::new();
    let mut delivered = 0;
    for handle in handles {
        let (mut client_times, received, _) = handle.join().unwrap();
        delivered += received;
        times.append(&mut client_times);
    }
    let (p50, p99) = percentiles(&mut times);
    (ms(p50), ms(p99), delivered, events * clients)
}

/// The burst's rate, the clients closed, and how long after its last
/// acknowledgement every client had every event (None: not within 120 s).
fn ingest_rate(running: &Running, count: usize, clients: usize) -> (f64, usize, Option<Duration>) {
    let sent: Sent = Arc::new(Mutex::new(HashMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let handles = open_clients(running.port, clients, &sent, &stop);
    wait_for_clients(running.port, clients);
    RECEIVED.store(0, Ordering::Relaxed);
    let lines: Vec<String> = (0..count).map(|index| envelope(index).1).collect();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for chunk in lines.chunks(count.div_ceil(4)) {
            let socket = running.socket.clone();
            scope.spawn(move || {
                let mut stream = UnixStream::connect(&socket).unwrap();
                let reader = stream.try_clone().unwrap();
                let expected = chunk.len();
                let replies = std::thread::spawn(move || {
                    let mut reader = BufReader::new(reader);
                    let mut line = String::new();
                    for _ in 0..expected {
                        line.clear();
                        reader.read_line(&mut line).unwrap();
                    }
                });
                let mut buffer = Vec::new();
                for group in chunk.chunks(100) {
                    buffer.clear();
                    for line in group {
                        buffer.extend_from_slice(line.as_bytes());
                        buffer.push(b'\n');
                    }
                    stream.write_all(&buffer).unwrap();
                }
                replies.join().unwrap();
            });
        }
    });
    let rate = count as f64 / started.elapsed().as_secs_f64();
    let stored = Instant::now();
    let deadline = stored + Duration::from_secs(120);
    while RECEIVED.load(Ordering::Relaxed) < count * clients && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let caught_up = (RECEIVED.load(Ordering::Relaxed) >= count * clients).then(|| stored.elapsed());
    stop.store(true, Ordering::Relaxed);
    let closed = handles
        .into_iter()
        .filter(|_| true)
        .map(|handle| handle.join().map(|(_, _, closed)| closed).unwrap_or(true))
        .filter(|closed| *closed)
        .count();
    (rate, closed, caught_up)
}

/// One request to chromedriver (WebDriver is HTTP and JSON).
fn webdriver(port: u16, method: &str, path: &str, body: &serde_json::Value) -> serde_json::Value {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body = body.to_string();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut text = vec![0; length];
    let _ = reader.read_exact(&mut text);
    serde_json::from_slice::<serde_json::Value>(&text).unwrap_or_default()["value"].clone()
}

/// Headless Chromium driven by chromedriver (WebDriver is HTTP and JSON),
/// with a fresh profile; dropped, it ends the session and the driver.
struct Browser {
    driver: Child,
    driver_port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Result<Browser, String> {
        let find = |names: &[&str]| {
            names
                .iter()
                .flat_map(|name| {
                    ["/usr/bin", "/usr/lib/chromium", "/usr/local/bin"]
                        .iter()
                        .map(move |dir| Path::new(dir).join(name))
                })
                .find(|path| path.is_file())
        };
        let chromium =
            find(&["chromium", "chromium-browser", "google-chrome"]).ok_or("no chromium")?;
        let chromedriver = find(&["chromedriver"]).ok_or("no chromedriver")?;
        let driver_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let profile = tempfile::tempdir().unwrap();
        let mut driver = Command::new(chromedriver)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| error.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", driver_port)).is_err() {
            if Instant::now() > deadline {
                let _ = driver.kill();
                return Err("chromedriver did not start".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let session = webdriver(
            driver_port,
            "POST",
            "/session",
            &serde_json::json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1600,1000",
                         format!("--user-data-dir={}", profile.path().display())]}}}}),
        )["sessionId"]
            .as_str()
            .map(str::to_owned);
        let Some(session) = session else {
            let _ = driver.kill();
            return Err("chromedriver could not start chromium".into());
        };
        Ok(Browser {
            driver,
            driver_port,
            session,
            _profile: profile,
        })
    }

    fn open(&self, url: &str) {
        let path = format!("/session/{}/url", self.session);
        webdriver(
            self.driver_port,
            "POST",
            &path,
            &serde_json::json!({ "url": url }),
        );
    }

    fn run(&self, script: &str) -> serde_json::Value {
        let path = format!("/session/{}/execute/sync", self.session);
        webdriver(
            self.driver_port,
            "POST",
            &path,
            &serde_json::json!({"script": script, "args": []}),
        )
    }

    /// Runs `script` every 10 ms until it returns a non-null value.
    fn poll(&self, script: &str, what: &str) -> Result<serde_json::Value, String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let value = self.run(script);
            if !value.is_null() {
                return Ok(value);
            }
            if Instant::now() > deadline {
                return Err(format!("{what} in 60 s"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        webdriver(self.driver_port, "DELETE", &path, &serde_json::json!({}));
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Median and maximum of `values`.
fn median_max(values: &mut [f64]) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    (values[values.len() / 2], values[values.len() - 1])
}

/// The page's first paint with 500 sessions in headless Chromium: first
/// contentful paint, and the moment the session list is drawn (the page
/// marks it `sessions-drawn`), over 10 fresh loads.
fn first_paint(port: u16) -> Result<String, String> {
    let browser = Browser::start()?;
    let mut contentful = Vec::new();
    let mut drawn = Vec::new();
    for _ in 0..10 {
        browser.open(&format!("http://127.0.0.1:{port}/"));
        let pair = browser.poll(
            "const d = performance.getEntriesByName('sessions-drawn')[0]; \
             const p = performance.getEntriesByName('first-contentful-paint')[0]; \
             return d && p && document.querySelectorAll('.session').length >= 500 ? [p.startTime, d.startTime] : null",
            "the page did not draw 500 sessions",
        )?;
        contentful.push(pair[0].as_f64().unwrap_or(0.0));
        drawn.push(pair[1].as_f64().unwrap_or(0.0));
    }
    let (fcp_median, fcp_max) = median_max(&mut contentful);
    let (drawn_median, drawn_max) = median_max(&mut drawn);
    Ok(format!(
        "First paint in headless Chromium, 500 sessions, 10 loads:\n  first contentful paint: median {fcp_median:.0} ms, max {fcp_max:.0} ms\n  session list drawn:     median {drawn_median:.0} ms, max {drawn_max:.0} ms (from navigation start)"
    ))
}

/// The long session's view (1,000 prompts, 20,000 events) opened by its
/// link in headless Chromium, over 5 fresh loads: from navigation start to
/// the moment every panel and the timeline are drawn (the page marks it
/// `session-drawn`), and the longest main-thread task while drawing.
fn long_session_draw(port: u16) -> Result<String, String> {
    let browser = Browser::start()?;
    let mut drawn = Vec::new();
    let mut longest = Vec::new();
    for _ in 0..5 {
        browser.open(&format!(
            "http://127.0.0.1:{port}/#/session/{PROMPTS_SESSION}"
        ));
        // Long tasks are only reported to an observer set up before them, so
        // the page's own buffered entries are read (buffered: true).
        browser.run(
            "window.__long = 0; new PerformanceObserver((list) => { for (const e of list.getEntries()) \
             window.__long = Math.max(window.__long, e.duration); }).observe({type: 'longtask', buffered: true});",
        );
        let figures = browser.poll(
            "const d = performance.getEntriesByName('session-drawn')[0]; \
             return d ? [d.startTime, window.__long || 0] : null",
            "the long session was not drawn",
        )?;
        drawn.push(figures[0].as_f64().unwrap_or(0.0));
        longest.push(figures[1].as_f64().unwrap_or(0.0));
    }
    let (drawn_median, drawn_max) = median_max(&mut drawn);
    let (long_median, long_max) = median_max(&mut longest);
    Ok(format!(
        "The 1,000-prompt session (20,000 events) opened in headless Chromium, 5 loads:\n  every panel and the timeline drawn: median {drawn_median:.0} ms, max {drawn_max:.0} ms (from navigation start)\n  longest main-thread task: median {long_median:.0} ms, max {long_max:.0} ms"
    ))
}
