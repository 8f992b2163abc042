//! Test support shared by the emitter's and the collector's integration tests.
//!
//! - [`RedisServer`]: a private `redis-server` on a free port, which a test can
//!   stop, restart, or replace with a [`SilentListener`] (never answers) or a
//!   [`ScriptedListener`] (answers whatever the test says, hostile replies too).
//! - [`wait_until`]: polls a condition with a deadline (tests never sleep a
//!   fixed time).
//! - [`fixture`]: the real Claude Code payloads in `tests/fixtures/`.
//! - [`redis_cli`]: runs one command through a raw RESP connection.
//!
//! **Invariant:** a test that needs a service it cannot find fails with a
//! message saying what to install; it never passes silently.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Polls `condition` every few milliseconds until it is true or `deadline`
/// passes; panics with `what` on timeout.
pub fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        if condition() {
            return;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for: {what}");
        }
        // The poll interval of a deadline-bound wait: the sanctioned sleep.
        #[allow(clippy::disallowed_methods)]
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// A child process killed and reaped when dropped, so a failing test
/// leaves none running.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("bind 127.0.0.1:0")
}

/// The workspace root (where `tests/fixtures` lives).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The lines of one fixture file, e.g. `fixture("tools_basic")`.
pub fn fixture(name: &str) -> Vec<String> {
    let path = workspace_root()
        .join("tests/fixtures")
        .join(format!("{name}.jsonl"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("read fixture {}: {error}", path.display()))
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// Every fixture line of every fixture file.
pub fn all_fixtures() -> Vec<String> {
    ["tools_basic", "subagent", "failures"]
        .iter()
        .flat_map(|name| fixture(name))
        .collect()
}

fn redis_server_binary() -> String {
    std::env::var("HOOKTRAIL_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

/// A private `redis-server` for one test, on its own port and directory.
pub struct RedisServer {
    /// The port it listens on; kept across restarts so clients reconnect.
    pub port: u16,
    /// Its working directory (AOF/RDB files, if a test enables them).
    pub dir: tempfile::TempDir,
    /// Extra `redis-server` arguments given at start, reused at restart.
    extra: Vec<String>,
    /// The running process; `None` while stopped.
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a private server with no persistence and waits until it answers
    /// PING.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts a private server with extra arguments (`["--requirepass", "x"]`).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server again on the same port (after [`RedisServer::stop`]).
    /// With `--appendonly yes` among the extra arguments, data survives.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running redis-server");
        let child = Command::new(redis_server_binary())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--dir", &self.dir.path().display().to_string()])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start redis-server ({error}); install it: apt-get install redis-server (or run scripts/setup)")
            });
        self.child = Some(child);
        let port = self.port;
        let password = self.password();
        wait_until(
            "redis-server to answer PING",
            Duration::from_secs(10),
            || ping(port, password.as_deref()),
        );
    }

    fn password(&self) -> Option<String> {
        self.extra
            .windows(2)
            .find(|pair| pair[0] == "--requirepass")
            .map(|pair| pair[1].clone())
    }

    /// Kills the server (SIGKILL) and waits for the port to close.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let port = self.port;
        wait_until("redis port to close", Duration::from_secs(5), || {
            TcpStream::connect(("127.0.0.1", port)).is_err()
        });
    }

    /// Runs one command and returns the raw reply text (see [`redis_cli`]).
    pub fn command(&self, args: &[&str]) -> String {
        redis_cli(self.port, self.password().as_deref(), args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn ping(port: u16, password: Option<&str>) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_millis(500)))?;
        if let Some(password) = password {
            stream.write_all(&encode(&["AUTH", password]))?;
            let mut reader = BufReader::new(stream.try_clone()?);
            let mut line = String::new();
            reader.read_line(&mut line)?;
        }
        stream.write_all(&encode(&["PING"]))?;
        let mut buffer = [0u8; 7];
        stream.read_exact(&mut buffer)?;
        Ok(&buffer == b"+PONG\r\n")
    };
    attempt().unwrap_or(false)
}

fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Runs one command on a Redis at `127.0.0.1:port` and returns its reply in a
/// simple text form: integers and simple strings as their text, bulk strings
/// as their content, arrays as their elements joined by newlines (nested
/// arrays flattened), nil as an empty string. Panics on an error reply.
pub fn redis_cli(port: u16, password: Option<&str>, args: &[&str]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to test redis");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    if let Some(password) = password {
        stream.write_all(&encode(&["AUTH", password])).unwrap();
        let mut lines = Vec::new();
        read_reply(&mut reader, &mut lines);
    }
    stream.write_all(&encode(args)).unwrap();
    let mut lines = Vec::new();
    read_reply(&mut reader, &mut lines);
    lines.join("\n")
}

fn read_reply(reader: &mut impl BufRead, out: &mut Vec<String>) {
    let mut line = String::new();
    reader.read_line(&mut line).expect("read redis reply");
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(1);
    match kind {
        "+" | ":" => out.push(rest.to_owned()),
        "-" => panic!("redis error reply: {rest}"),
        "$" => {
            let length: i64 = rest.parse().unwrap();
            if length < 0 {
                out.push(String::new());
            } else {
                let mut buffer = vec![0u8; length as usize + 2];
                reader.read_exact(&mut buffer).unwrap();
                buffer.truncate(length as usize);
                out.push(String::from_utf8_lossy(&buffer).into_owned());
            }
        }
        "*" => {
            let count: i64 = rest.parse().unwrap();
            for _ in 0..count.max(0) {
                read_reply(reader, out);
            }
        }
        other => panic!("unexpected redis reply type {other:?}"),
    }
}

/// XADDs each line as the `event` field of a new entry of stream `key`
/// (`MAXLEN ~ 1000000`, as the emitter writes), pipelined on one connection;
/// panics on an error reply.
pub fn xadd_all(port: u16, key: &str, lines: &[String]) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to test redis");
    let mut buffer = Vec::new();
    for line in lines {
        buffer.extend_from_slice(&encode(&[
            "XADD", key, "MAXLEN", "~", "1000000", "*", "event", line,
        ]));
    }
    stream.write_all(&buffer).expect("write XADDs");
    let mut reader = BufReader::new(stream);
    for _ in lines {
        let mut reply = Vec::new();
        read_reply(&mut reader, &mut reply);
    }
}

/// Writes the lines to a collector's Unix socket on one connection and
/// returns one reply per line, in order. Writes stop at the first error: a
/// test may kill the collector mid-stream, and the replies received until
/// then are what counts.
pub fn send_lines(socket: &Path, lines: &[String]) -> Vec<String> {
    let mut stream =
        std::os::unix::net::UnixStream::connect(socket).expect("connect to the collector");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let reader_stream = stream.try_clone().unwrap();
    let count = lines.len();
    let reader = thread::spawn(move || {
        let mut reader = BufReader::new(reader_stream);
        let mut replies = Vec::with_capacity(count);
        for _ in 0..count {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            replies.push(line.trim_end().to_owned());
        }
        replies
    });
    let mut buffer = Vec::new();
    for chunk in lines.chunks(64) {
        buffer.clear();
        for line in chunk {
            buffer.extend_from_slice(line.as_bytes());
            buffer.push(b'\n');
        }
        if stream.write_all(&buffer).is_err() {
            break;
        }
    }
    reader.join().unwrap()
}

/// Whether the response to a silent server should be "accept, then never
/// answer" or "never accept" (a full backlog).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// Accepts each connection and never writes a byte.
    AcceptAndNeverAnswer,
    /// Never calls `accept`: connections queue in the backlog. With a tiny
    /// backlog that is full, new connects hang until the client's timeout.
    NeverAccept,
}

/// A TCP listener in Redis's place that never answers.
pub struct SilentListener {
    /// The port it listens on.
    pub port: u16,
    /// Tells the accept thread to stop.
    stop: Arc<AtomicBool>,
    /// Keeps the listener (and, for `NeverAccept`, the queued sockets) alive.
    _listener: Option<TcpListener>,
    /// Connections held open so they never see EOF.
    _held: Vec<TcpStream>,
}

impl SilentListener {
    /// Listens on `port` (0 for a free one) with the given behaviour.
    pub fn start(port: u16, silence: Silence) -> SilentListener {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind silent listener");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        match silence {
            Silence::AcceptAndNeverAnswer => {
                let accept_listener = listener.try_clone().unwrap();
                let stop_flag = stop.clone();
                accept_listener.set_nonblocking(true).unwrap();
                thread::spawn(move || {
                    let mut held = Vec::new();
                    while !stop_flag.load(Ordering::Relaxed) {
                        match accept_listener.accept() {
                            Ok((stream, _)) => held.push(stream),
                            // A non-blocking accept loop's idle tick.
                            #[allow(clippy::disallowed_methods)]
                            Err(_) => thread::sleep(Duration::from_millis(1)),
                        }
                    }
                });
                SilentListener {
                    port,
                    stop,
                    _listener: Some(listener),
                    _held: Vec::new(),
                }
            }
            Silence::NeverAccept => {
                // Fill the accept queue so further connects cannot complete.
                let mut held = Vec::new();
                for _ in 0..2048 {
                    match connect_with_timeout(port, Duration::from_millis(20)) {
                        Some(stream) => held.push(stream),
                        None => break,
                    }
                }
                SilentListener {
                    port,
                    stop,
                    _listener: Some(listener),
                    _held: held,
                }
            }
        }
    }
}

/// How long a [`ScriptedListener`] keeps sending its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// The reply once per connection, then the connection stays open.
    Once,
    /// The reply again and again until the client goes away (a reply line
    /// that never ends, say).
    Forever,
}

/// A TCP listener in Redis's place that answers every connection with the
/// same bytes, whatever it is sent: a hostile or broken Redis.
pub struct ScriptedListener {
    /// The port it listens on.
    pub port: u16,
    /// Tells the accept thread to stop.
    stop: Arc<AtomicBool>,
}

impl ScriptedListener {
    /// Listens on a free port; each connection gets `reply` (see [`Repeat`])
    /// after its first bytes arrive.
    pub fn start(reply: Vec<u8>, repeat: Repeat) -> ScriptedListener {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind scripted listener");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let reply = Arc::new(reply);
        listener.set_nonblocking(true).unwrap();
        thread::spawn(move || {
            while !stop_flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let reply = reply.clone();
                        thread::spawn(move || {
                            let _ = stream.set_nonblocking(false);
                            let mut request = [0u8; 4096];
                            if stream.read(&mut request).unwrap_or(0) == 0 {
                                return;
                            }
                            loop {
                                if stream.write_all(&reply).is_err() || repeat == Repeat::Once {
                                    break;
                                }
                            }
                            // Keep the connection open until the client closes it.
                            let _ = stream.read(&mut request);
                        });
                    }
                    // A non-blocking accept loop's idle tick.
                    #[allow(clippy::disallowed_methods)]
                    Err(_) => thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        ScriptedListener { port, stop }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for ScriptedListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn connect_with_timeout(port: u16, timeout: Duration) -> Option<TcpStream> {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&address, timeout).ok()
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_redis_starts_stops_and_restarts() {
        let mut server = RedisServer::start();
        assert_eq!(server.command(&["SET", "k", "v"]), "OK");
        assert_eq!(server.command(&["GET", "k"]), "v");
        server.stop();
        assert!(TcpStream::connect(("127.0.0.1", server.port)).is_err());
        server.restart();
        assert_eq!(server.command(&["PING"]), "PONG");
    }

    #[test]
    fn silent_listener_accepts_and_never_answers() {
        let listener = SilentListener::start(0, Silence::AcceptAndNeverAnswer);
        let mut stream = TcpStream::connect(("127.0.0.1", listener.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        stream.write_all(&encode(&["PING"])).unwrap();
        let mut buffer = [0u8; 1];
        assert!(stream.read(&mut buffer).is_err());
    }

    #[test]
    fn fixtures_are_real_hook_payloads() {
        let lines = all_fixtures();
        assert!(lines.len() >= 30);
        assert!(lines.iter().all(|line| line.contains("hook_event_name")));
    }
}
