//! Support for the UI's API and WebSocket tests: a real SQLite file with the
//! collector's schema, a row writer that publishes to the hub after each
//! commit (as the collector's writer does), the HTTP server on a free port,
//! and a small HTTP client that sets any `Host` it is told to.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hooktrail_collector::{
    migrate_schema, CommittedEvent, HttpContext, HttpServer, Hub, PageAuth, Stats,
};
use rusqlite::{params, Connection};
use serde_json::Value;

/// A database file and a writer connection to it.
pub struct TestDb {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The database file.
    pub path: PathBuf,
    /// The one writing connection.
    pub connection: Connection,
    /// Timestamps handed out, strictly increasing.
    pub clock: i64,
}

impl TestDb {
    pub fn new() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let mut connection = Connection::open(&path).unwrap();
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .unwrap();
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .unwrap();
        migrate_schema(&mut connection).unwrap();
        let clock = now_millis() - 60_000;
        TestDb {
            dir,
            path,
            connection,
            clock,
        }
    }

    /// Inserts hook payloads (one transaction) from `machine`, updating
    /// `sessions` and `agents` like the collector does; returns the rows.
    pub fn insert_payloads(
        &mut self,
        machine: &str,
        payloads: &[String],
    ) -> Vec<Arc<CommittedEvent>> {
        let transaction = self.connection.transaction().unwrap();
        let mut rows = Vec::new();
        for text in payloads {
            self.clock += 1;
            let ts = self.clock;
            let payload: Value = serde_json::from_str(text).unwrap();
            let field = |name: &str| payload.get(name).and_then(Value::as_str).map(str::to_owned);
            let hook = field("hook_event_name").unwrap_or_else(|| "Unknown".into());
            let session = field("session_id");
            let agent = field("agent_id");
            let tool = field("tool_name");
            let tool_use_id = field("tool_use_id");
            let cwd = field("cwd");
            let id = uuid::Uuid::now_v7().to_string();
            transaction
                .execute(
                    "INSERT INTO events (id, ts, received_at, machine, session_id, agent_id, hook, tool, tool_use_id, cwd, source, payload) \
                     VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'socket', ?10)",
                    params![id, ts, machine, session, agent, hook, tool, tool_use_id, cwd, text],
                )
                .unwrap();
            let seq = transaction.last_insert_rowid();
            hooktrail_collector::index_event_text(&transaction, seq, &hook, text).unwrap();
            if let Some(session) = &session {
                transaction
                    .execute(
                        "INSERT INTO sessions (session_id, machine, cwd, first_ts, last_ts, event_count, transcript_path, last_seq) \
                         VALUES (?1, ?2, ?3, ?4, ?4, 1, ?5, ?6) \
                         ON CONFLICT(session_id) DO UPDATE SET last_ts = ?4, event_count = event_count + 1, last_seq = ?6",
                        params![session, machine, cwd, ts, field("transcript_path"), seq],
                    )
                    .unwrap();
                if hook == "SessionEnd" {
                    transaction
                        .execute("UPDATE sessions SET ended_ts = ?2, end_reason = ?3 WHERE session_id = ?1", params![session, ts, field("reason")])
                        .unwrap();
                }
                if let Some(agent) = &agent {
                    transaction
                        .execute(
                            "INSERT INTO agents (agent_id, session_id, agent_type, started_ts, event_count) VALUES (?1, ?2, ?3, ?4, 1) \
                             ON CONFLICT(agent_id) DO UPDATE SET event_count = event_count + 1",
                            params![agent, session, field("agent_type"), ts],
                        )
                        .unwrap();
                    if hook == "SubagentStart" {
                        // The Agent call that started it: the latest pending Agent PreToolUse of the session.
                        transaction
                            .execute(
                                "UPDATE agents SET parent_tool_use_id = (SELECT tool_use_id FROM events WHERE session_id = ?2 \
                                 AND hook = 'PreToolUse' AND tool = 'Agent' ORDER BY seq DESC LIMIT 1) WHERE agent_id = ?1",
                                params![agent, session],
                            )
                            .unwrap();
                    }
                    if hook == "SubagentStop" {
                        transaction
                            .execute(
                                "UPDATE agents SET stopped_ts = ?2 WHERE agent_id = ?1",
                                params![agent, ts],
                            )
                            .unwrap();
                    }
                }
            }
            rows.push(Arc::new(CommittedEvent {
                seq,
                id,
                ts,
                received_at: ts,
                machine: machine.to_owned(),
                session_id: session,
                agent_id: agent,
                hook,
                tool,
                tool_use_id,
                cwd,
                source: "socket",
                payload: text.clone(),
                prompt_id: None,
                permission_mode: None,
                state: None,
                config_error: false,
            }));
        }
        // Rows inserted without the writer: rebuild its per-minute rollup.
        transaction
            .execute_batch(hooktrail_collector::REBUILD_EVENT_COUNTS)
            .unwrap();
        transaction.commit().unwrap();
        rows
    }

    /// Inserts `count` synthetic events of one session, in one transaction.
    pub fn insert_synthetic(
        &mut self,
        machine: &str,
        session: &str,
        count: usize,
    ) -> Vec<Arc<CommittedEvent>> {
        let payloads: Vec<String> = (0..count)
            .map(|index| {
                serde_json::json!({"session_id": session, "cwd": "/w", "hook_event_name": "Notification", "message": format!("n{index}")})
                    .to_string()
            })
            .collect();
        self.insert_payloads(machine, &payloads)
    }
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The HTTP server of one test, on a free port.
pub struct TestServer {
    pub port: u16,
    pub hub: Arc<Hub>,
    pub stats: Arc<Stats>,
    pub shutdown: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start(db: &TestDb, token: Option<&str>) -> TestServer {
        TestServer::start_with(db, token, PageAuth::default())
    }

    /// A server whose page signs in as `page` says (codes, lifetimes).
    pub fn start_with(db: &TestDb, token: Option<&str>, page: PageAuth) -> TestServer {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let hub = Hub::new();
        let stats = Arc::new(Stats::default());
        let shutdown = Arc::new(AtomicBool::new(false));
        let context = HttpContext {
            database: db.path.clone(),
            stats: stats.clone(),
            hub: hub.clone(),
            token: token.map(str::to_owned),
            budgets: None,
            quiet_after: std::time::Duration::from_secs(600),
            waiting_quiet_after: std::time::Duration::from_secs(3600),
            page,
            approvals: None,
        };
        let flag = shutdown.clone();
        let thread = HttpServer {
            server,
            context,
            shutdown: flag,
        }
        .spawn()
        .unwrap();
        TestServer {
            port,
            hub,
            stats,
            shutdown,
            thread: Some(thread),
        }
    }

    /// `GET path` with `Host: 127.0.0.1:PORT`.
    pub fn get(&self, path: &str) -> Reply {
        self.get_with(path, &[("Host", &format!("127.0.0.1:{}", self.port))])
    }

    /// `GET path` with exactly these headers.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        http_get(self.port, path, headers)
    }

    /// `POST path` with `body` and exactly these headers.
    pub fn post_with(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        http_request(self.port, "POST", path, headers, body)
    }

    /// The page's own `Host` and `Origin` values, as a browser on it sends them.
    pub fn host_and_origin(&self) -> (String, String) {
        let host = format!("127.0.0.1:{}", self.port);
        let origin = format!("http://{host}");
        (host, origin)
    }

    /// `GET path` and the parsed JSON body, asserting the status.
    pub fn json(&self, path: &str, status: u16) -> Value {
        let reply = self.get(path);
        assert_eq!(reply.status, status, "GET {path}: {}", reply.body);
        serde_json::from_str(&reply.body)
            .unwrap_or_else(|error| panic!("GET {path}: not JSON ({error}): {}", reply.body))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

pub fn http_get(port: u16, path: &str, headers: &[(&str, &str)]) -> Reply {
    http_request(port, "GET", path, headers, "")
}

/// One request with exactly these headers (and a Content-Length for a body).
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if method != "GET" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap_or("")
        .split(' ')
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| {
            line.split_once(':')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
