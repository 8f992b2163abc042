//! `scripts/bench-ui`: the live UI's figures (issue 4).
//!
//! 1. Builds a database of 1,000,000 events over 500 sessions (or reuses
//!    `$BENCH_UI_DB` when it already holds them) and starts the release
//!    collector on it.
//! 2. p50/p99 of the API over keep-alive HTTP: `/api/events` with and without
//!    filters, `/api/sessions`, `/api/sessions/{id}`.
//! 3. 50 WebSocket clients while events arrive on the socket at 1,000/s:
//!    p50/p99 from the sender's write to delivery at every client (an upper
//!    bound of commit-to-delivery: it includes the socket read, batching and
//!    the commit).
//! 4. Socket ingest rate of a burst with no WebSocket client and with 50.
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

use hooktrail_shared::envelope::{new_event_id, now_millis, Envelope};

const EVENTS: i64 = 1_000_000;
const SESSIONS: i64 = 500;
const CLIENTS: usize = 50;

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
            "  + hook=SessionEnd (rare; budgeted scan)",
            Box::new(|_| "/api/events?after=&limit=100&hook=SessionEnd".into()),
        ),
        (
            "  + q=TEXT (payload search, desc)",
            Box::new(|i| format!("/api/events?order=desc&limit=100&q=marker-{}", i % 100)),
        ),
        ("/api/sessions", Box::new(|_| "/api/sessions".into())),
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
            "/api/stats?bucket=60&since=(newest-60 s)",
            Box::new(move |_| format!("/api/stats?bucket=60&since={}", newest_ts - 60_000)),
        ),
    ];
    for (name, path) in &routes {
        for index in 0..20 {
            client.get(&path(index));
        }
        let mut times = Vec::new();
        let requests = if name.contains("stats") { 50 } else { 500 };
        for index in 0..requests {
            let started = Instant::now();
            let (status, _) = client.get(&path(index));
            times.push(started.elapsed());
            assert!(status == 200, "{name}: status {status}");
        }
        let (p50, p99) = percentiles(&mut times);
        println!(
            "  {name:<46} p50 {:>7.2} ms   p99 {:>7.2} ms",
            ms(p50),
            ms(p99)
        );
    }
    drop(client);

    println!("WebSocket: {CLIENTS} clients, events at 1,000/s for 10 s on the socket:");
    let (p50, p99, delivered, expected) = live_latency(&running, CLIENTS, 10_000);
    println!("  write-to-delivery (upper bound of commit-to-delivery): p50 {p50:.2} ms   p99 {p99:.2} ms   ({delivered} of {expected} deliveries)");

    let burst = 100_000;
    let (alone, _) = ingest_rate(&running, burst, 0);
    let (with_clients, closed) = ingest_rate(&running, burst, CLIENTS);
    println!("Socket ingest of {burst} events (4 pipelined writers):");
    println!("  with no WebSocket client: {alone:>9.0} events/s");
    println!(
        "  with {CLIENTS} live clients:      {with_clients:>9.0} events/s   ({:+.1}%)",
        (with_clients / alone - 1.0) * 100.0
    );
    println!("  clients closed as too slow during the burst (they reconnect from their cursor): {closed} of {CLIENTS}");
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
    if existing >= EVENTS {
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
                "INSERT INTO events (id, ts, received_at, machine, session_id, agent_id, hook, tool, tool_use_id, cwd, source, payload) \
                 VALUES (?1, ?2, ?2, ?3, ?4, NULL, ?5, ?6, ?7, '/home/dev/project', 'socket', ?8)",
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
                index % 1000,
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
                    payload
                ])
                .unwrap();
        }
        transaction
            .execute(
                "INSERT INTO sessions (session_id, machine, cwd, first_ts, last_ts, ended_ts, end_reason, event_count, last_seq) \
                 SELECT session_id, MIN(machine), '/home/dev/project', MIN(ts), MAX(ts), MAX(CASE hook WHEN 'SessionEnd' THEN ts END), \
                 'other', COUNT(*), MAX(seq) FROM events GROUP BY session_id",
                [],
            )
            .unwrap();
    }
    transaction
        .execute_batch(hooktrail_collector::REBUILD_EVENT_COUNTS)
        .unwrap();
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
            .stderr(Stdio::null())
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

    fn get(&mut self, path: &str) -> (u16, usize) {
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
        (status, length)
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

/// Deliveries of events that are in [`Sent`], across all clients, so the
/// benchmark can wait for the last ones instead of guessing a delay.
static MATCHED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Opens `count` live WebSocket clients; each records write-to-delivery
/// times of the ids in `sent`.
fn open_clients(
    port: u16,
    count: usize,
    sent: &Sent,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<(Vec<Duration>, usize, bool)>> {
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
                let mut times = Vec::new();
                let mut received = 0;
                let mut closed = false;
                while !stop.load(Ordering::Relaxed) {
                    match socket.read() {
                        Ok(tungstenite::Message::Text(text)) => {
                            let now = Instant::now();
                            if sent.lock().unwrap().is_empty() {
                                received += text.matches("\"seq\":").count();
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

fn ingest_rate(running: &Running, count: usize, clients: usize) -> (f64, usize) {
    let sent: Sent = Arc::new(Mutex::new(HashMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let handles = open_clients(running.port, clients, &sent, &stop);
    wait_for_clients(running.port, clients);
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
    stop.store(true, Ordering::Relaxed);
    let closed = handles
        .into_iter()
        .filter(|_| true)
        .map(|handle| handle.join().map(|(_, _, closed)| closed).unwrap_or(true))
        .filter(|closed| *closed)
        .count();
    (rate, closed)
}
