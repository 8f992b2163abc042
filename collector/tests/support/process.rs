//! Support for the collector's integration tests: a collector process in a
//! fresh temp directory, envelopes, socket clients and database reads.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use hooktrail_shared::envelope::{new_event_id, Envelope};
use hooktrail_testkit::wait_until;

/// The collector binary under test.
pub const BINARY: &str = env!("CARGO_BIN_EXE_hooktrail-collector");

/// A collector process with its own directory, database, socket and spool.
pub struct Collector {
    /// The running process; `None` once it exited.
    pub child: Option<Child>,
    /// Everything of this collector lives here.
    pub dir: PathBuf,
    /// The database file.
    pub db: PathBuf,
    /// The socket path.
    pub socket: PathBuf,
    /// The spool directory.
    pub spool: PathBuf,
    /// Its stderr, for assertions on log lines.
    pub log: PathBuf,
    /// Extra arguments, reused by [`Collector::restart`].
    pub extra: Vec<String>,
}

impl Collector {
    /// Starts a collector in `dir` with extra arguments and waits until its
    /// socket accepts connections.
    pub fn start(dir: &Path, extra: &[&str]) -> Collector {
        let mut collector = Collector {
            child: None,
            dir: dir.to_owned(),
            db: dir.join("data/events.db"),
            socket: dir.join("run/collector.sock"),
            spool: dir.join("spool"),
            log: dir.join("collector.log"),
            extra: extra.iter().map(|arg| arg.to_string()).collect(),
        };
        collector.restart();
        collector
    }

    /// Starts the process again (after a kill) with the same arguments.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "collector already running");
        let child = self.command().spawn().expect("start the collector");
        self.child = Some(child);
        if !self.extra.iter().any(|arg| arg == "off") {
            let socket = self.socket.clone();
            let log = self.log.clone();
            wait_until(
                "the collector's socket to accept",
                Duration::from_secs(20),
                || UnixStream::connect(&socket).is_ok(),
            );
            let _ = log;
        }
    }

    /// The command line, for tests that run it themselves.
    pub fn command(&self) -> Command {
        let mut command = Command::new(BINARY);
        command
            .args(["--db", &self.db.display().to_string()])
            .args(["--socket", &self.socket.display().to_string()])
            .args(["--spool-dir", &self.spool.display().to_string()])
            .args(["--http", "127.0.0.1:0"])
            .args(&self.extra)
            .env_clear()
            .env("HOME", &self.dir)
            .env("XDG_CONFIG_HOME", self.dir.join("config"))
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.log)
                    .expect("log file"),
            );
        command
    }

    /// Sends a signal to the process.
    pub fn signal(&self, signal: i32) {
        let pid = self.child.as_ref().expect("running").id() as i32;
        // SAFETY: kill on the pid of a child we have not reaped yet.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// Kills with SIGKILL and reaps.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(30))
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let mut status = None;
        let child = self.child.as_mut().expect("running");
        wait_until("the collector to exit", deadline, || {
            status = child.try_wait().expect("try_wait");
            status.is_some()
        });
        self.child = None;
        status.unwrap()
    }

    /// Waits until the search index, which follows the writer (issue 21),
    /// holds every stored event: its mark has reached the newest `seq`.
    pub fn wait_indexed(&self, deadline: Duration) {
        wait_until("the search index to catch up", deadline, || {
            self.query_i64(
                "SELECT (SELECT indexed_seq FROM search_index_mark) >= \
                 (SELECT COALESCE(MAX(seq), 0) FROM events)",
            ) == 1
        });
    }

    /// Rows in `events` (0 while the database does not exist yet).
    pub fn count(&self) -> i64 {
        self.query_i64("SELECT count(*) FROM events")
    }

    /// Runs a query that returns one integer, on a read-only connection.
    pub fn query_i64(&self, sql: &str) -> i64 {
        let Ok(connection) = rusqlite::Connection::open_with_flags(
            &self.db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        ) else {
            return 0;
        };
        let _ = connection.busy_timeout(Duration::from_secs(5));
        connection.query_row(sql, [], |row| row.get(0)).unwrap_or(0)
    }

    /// Runs a query and returns each row's columns as text, via rusqlite.
    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        let connection = rusqlite::Connection::open_with_flags(
            &self.db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open db");
        let mut statement = connection.prepare(sql).expect("prepare");
        let columns = statement.column_count();
        let rows = statement
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
            .expect("query");
        rows.map(Result::unwrap).collect()
    }

    /// Waits until `events` holds exactly `expected` rows (and checks it does
    /// not go past it).
    pub fn wait_rows(&self, expected: i64, deadline: Duration) {
        wait_until(&format!("{expected} rows in events"), deadline, || {
            self.count() >= expected
        });
        assert_eq!(self.count(), expected, "more rows than events sent");
        assert_eq!(
            self.query_i64("SELECT count(DISTINCT id) FROM events"),
            expected,
            "duplicate ids stored"
        );
    }

    /// The collector's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs the real emitter (built beside the collector) on `payload`,
/// delivering to `collector`'s socket, with its state and spool in the
/// collector's directory and the collector's config (`XDG_CONFIG_HOME`);
/// `extra` adds or overrides variables. Returns its stdout; asserts that it
/// exited 0, as a hook always must.
#[allow(dead_code)]
pub fn run_emitter(collector: &Collector, payload: &[u8], extra: &[(&str, &str)]) -> String {
    let emitter = Path::new(BINARY).with_file_name("hooktrail-emit");
    let mut command = Command::new(emitter);
    command
        .env_clear()
        .env("HOME", &collector.dir)
        .env("XDG_CONFIG_HOME", collector.dir.join("config"))
        .env("XDG_STATE_HOME", collector.dir.join("emitter-state"))
        .env("HOOKTRAIL_SOCKET", &collector.socket)
        .env("HOOKTRAIL_SPOOL_DIR", collector.dir.join("emitter-spool"))
        .envs(extra.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command
        .spawn()
        .expect("run hooktrail-emit (cargo build -p hooktrail-emit)");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), payload).unwrap();
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

/// A v1 envelope line with a fresh id and a ~1 KB payload.
pub fn envelope(index: usize) -> String {
    let payload = format!(
        r#"{{"session_id":"sess-{}","transcript_path":"/t/{}.jsonl","cwd":"/home/dev/p","hook_event_name":"PostToolUse","tool_name":"Bash","tool_use_id":"toolu_{index}","tool_input":{{"command":"ls -la {}"}},"tool_response":{{"stdout":"{}"}}}}"#,
        index % 7,
        index % 7,
        index,
        "x".repeat(800)
    );
    Envelope::from_hook_stdin(
        payload.as_bytes(),
        new_event_id(),
        1_700_000_000_000 + index as i64,
        "testhost".into(),
    )
    .to_json()
}

/// The fixture's hook payloads as envelopes, with increasing timestamps.
pub fn fixture_envelopes(name: &str) -> Vec<String> {
    hooktrail_testkit::fixture(name)
        .iter()
        .enumerate()
        .map(|(index, line)| {
            Envelope::from_hook_stdin(
                line.as_bytes(),
                new_event_id(),
                1_700_000_000_000 + index as i64 * 100,
                "fixhost".into(),
            )
            .to_json()
        })
        .collect()
}

/// Runs the real emitter (built beside the collector by `cargo test
/// --workspace`) on one hook payload, delivering to `collector`'s socket,
/// with its state (transcript offsets) under `state`.
pub fn emit(collector: &Collector, state: &Path, payload: &serde_json::Value) {
    let emitter = Path::new(BINARY).with_file_name("hooktrail-emit");
    assert!(
        emitter.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (scripts/test)",
        emitter.display()
    );
    let mut child = Command::new(emitter)
        .env_clear()
        .env("HOME", &collector.dir)
        .env("XDG_STATE_HOME", state)
        .env("XDG_CONFIG_HOME", collector.dir.join("emitter-config"))
        .env("HOOKTRAIL_SOCKET", &collector.socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run hooktrail-emit");
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        payload.to_string().as_bytes(),
    )
    .unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

/// The port of the collector's HTTP server, from its log.
pub fn http_port(collector: &Collector) -> u16 {
    logged_port(collector, "serving the UI on http://")
}

/// The port of the collector's OTLP receiver (`--otlp`), from its log.
pub fn otlp_port(collector: &Collector) -> u16 {
    logged_port(collector, "(OTLP/HTTP) on http://")
}

/// The port of the address the log gives after `prefix`, once it does.
fn logged_port(collector: &Collector, prefix: &str) -> u16 {
    let mut port = 0;
    wait_until(
        &format!("an address after {prefix:?} in the log"),
        Duration::from_secs(20),
        || {
            port = collector
                .log_text()
                .split(prefix)
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|address| address.rsplit(':').next())
                .and_then(|port| port.parse().ok())
                .unwrap_or(0);
            port != 0
        },
    );
    port
}

/// `GET path` from the collector's HTTP port as JSON, asserting a 200.
pub fn http_json(port: u16, path: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "GET {path}: {head}\n{body}"
    );
    serde_json::from_str(body).unwrap_or_else(|error| panic!("GET {path}: {error}: {body}"))
}

/// Runs `hooktrail-collector import DIR --db DB` (no config, `HOME` in
/// `dir`) and returns its output, asserting success.
pub fn import(dir: &Path, db: &Path) -> std::process::Output {
    let output = Command::new(BINARY)
        .arg("import")
        .arg(dir)
        .arg("--db")
        .arg(db)
        .env_clear()
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("no-config"))
        .stdin(Stdio::null())
        .output()
        .expect("run hooktrail-collector import");
    assert!(
        output.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Copies a directory tree (the transcript fixtures, say).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

// Each test crate uses its own subset of these helpers.
#[allow(unused_imports)]
pub use hooktrail_testkit::{send_lines, xadd_all};

/// A `Stop` envelope for `session` carrying one priced response of
/// `input_tokens` Sonnet 4.5 input tokens ($3 per million), made now.
pub fn stop_with_usage(session: &str, machine: &str, response: &str, input_tokens: i64) -> String {
    let now = hooktrail_shared::time::now_millis();
    serde_json::json!({
        "v": 1,
        "id": format!("evt-{session}-{response}"),
        "ts": now,
        "machine": machine,
        "session_id": session,
        "hook": "Stop",
        "cwd": "/home/dev/acme",
        "payload": {"session_id": session, "hook_event_name": "Stop", "cwd": "/home/dev/acme"},
        "usage": {
            "transcript": "session", "from": 0, "to": 100, "more": false, "bad_lines": 0,
            "responses": [{
                "message_id": format!("msg_{response}"), "request_id": format!("req_{response}"),
                "model": "claude-sonnet-4-5", "ts": now, "sidechain": false, "agent_id": null,
                "input": input_tokens, "output": 0, "cache_write_5m": 0, "cache_write_1h": 0,
                "cache_read": 0, "web_search": 0
            }]
        }
    })
    .to_string()
}
