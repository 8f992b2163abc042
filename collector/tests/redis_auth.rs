//! The Redis source against a private redis-server: AUTH with an ACL user
//! and password, and entries left pending by a dead consumer of the same
//! group claimed back (`XAUTOCLAIM`). Also the socket's connection limit and
//! idle timeout, on a collector run in-process with short limits (the binary
//! has no flags for them).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hooktrail_testkit::{wait_until, RedisServer};
use support::process::{envelope, send_lines, Collector};

const KEY: &str = "hooktrail:events";
const LONG: Duration = Duration::from_secs(60);

fn pending(redis: &RedisServer, group: &str) -> i64 {
    let reply = redis.command(&["XPENDING", KEY, group]);
    reply.lines().next().unwrap_or("0").parse().unwrap_or(-1)
}

#[test]
fn redis_acl_user_and_password_are_used_and_never_logged() {
    let temp = tempfile::tempdir().unwrap();
    // The default user needs a password too, so only AUTH gets in.
    let redis = RedisServer::start_with(&["--requirepass", "admin-secret"]);
    assert_eq!(
        redis.command(&[
            "ACL",
            "SETUSER",
            "ingest",
            "on",
            ">ingest-s3cret",
            "~*",
            "&*",
            "+@all"
        ]),
        "OK"
    );
    for index in 0..50 {
        redis.command(&["XADD", KEY, "*", "event", &envelope(index)]);
    }
    let url = format!("redis://ingest:ingest-s3cret@127.0.0.1:{}", redis.port);
    let collector = Collector::start(temp.path(), &["--redis-url", &url, "--group", "g"]);
    collector.wait_rows(50, LONG);
    wait_until("every entry acknowledged", LONG, || {
        pending(&redis, "g") == 0
    });
    // The connection really is the ACL user's.
    let clients = redis.command(&["CLIENT", "LIST"]);
    assert!(clients.contains("user=ingest"), "{clients}");
    let log = collector.log_text();
    assert!(
        !log.contains("ingest-s3cret"),
        "the password reached the log: {log}"
    );
}

#[test]
fn redis_wrong_password_is_logged_once_and_the_socket_keeps_working() {
    let temp = tempfile::tempdir().unwrap();
    let redis = RedisServer::start_with(&["--requirepass", "right"]);
    let url = format!("redis://:wrong-pass@127.0.0.1:{}", redis.port);
    let collector = Collector::start(temp.path(), &["--redis-url", &url, "--group", "g"]);
    wait_until("the failure to be logged", LONG, || {
        collector.log_text().contains("retrying with backoff")
    });
    assert_eq!(send_lines(&collector.socket, &[envelope(1)]), vec!["ok"]);
    let log = collector.log_text();
    assert!(
        !log.contains("wrong-pass"),
        "the password reached the log: {log}"
    );
    assert_eq!(
        log.matches("retrying with backoff").count(),
        1,
        "one log line per change of state, not per retry: {log}"
    );
}

#[test]
fn entries_left_pending_by_a_dead_consumer_are_claimed_and_acknowledged() {
    let temp = tempfile::tempdir().unwrap();
    let redis = RedisServer::start();
    let ids: Vec<String> = (0..40)
        .map(|index| redis.command(&["XADD", KEY, "*", "event", &envelope(index)]))
        .collect();
    assert_eq!(redis.command(&["XGROUP", "CREATE", KEY, "g", "0"]), "OK");
    // A consumer that read everything and died before XACK.
    let read = redis.command(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "dead",
        "COUNT",
        "100",
        "STREAMS",
        KEY,
        ">",
    ]);
    assert!(read.contains(&ids[39]), "{read}");
    assert_eq!(pending(&redis, "g"), 40);
    // Make the entries look idle for an hour (past the collector's claim
    // idle time) without waiting for it: XCLAIM to the same consumer with IDLE.
    let mut claim = vec!["XCLAIM", KEY, "g", "dead", "0"];
    claim.extend(ids.iter().map(String::as_str));
    claim.extend(["IDLE", "3600000", "JUSTID"]);
    redis.command(&claim);
    let collector = Collector::start(temp.path(), &["--redis-url", &redis.url(), "--group", "g"]);
    collector.wait_rows(40, LONG);
    wait_until("the claimed entries acknowledged", LONG, || {
        pending(&redis, "g") == 0
    });
    assert!(
        collector
            .log_text()
            .contains("claimed 40 entries left pending by a stopped consumer"),
        "{}",
        collector.log_text()
    );
    assert_eq!(
        collector.query_i64("SELECT count(DISTINCT id) FROM events"),
        40
    );
}

/// A collector run in-process with the given tuning, socket only.
struct InProcess {
    socket: std::path::PathBuf,
    shutdown: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    stats: Arc<hooktrail_collector::Stats>,
    _temp: tempfile::TempDir,
}

impl InProcess {
    fn start(adjust: impl FnOnce(&mut hooktrail_collector::Tuning)) -> InProcess {
        let temp = tempfile::tempdir().unwrap();
        let socket = temp.path().join("run/c.sock");
        let args: Vec<String> = [
            "--db",
            &temp.path().join("events.db").display().to_string(),
            "--socket",
            &socket.display().to_string(),
            "--spool-dir",
            &temp.path().join("spool").display().to_string(),
            "--http",
            "off",
        ]
        .iter()
        .map(|arg| arg.to_string())
        .collect();
        let home = temp.path().to_owned();
        let env = move |name: &str| match name {
            "HOME" => Some(home.display().to_string()),
            "XDG_CONFIG_HOME" => Some(home.join("config").display().to_string()),
            _ => None,
        };
        let hooktrail_collector::Invocation::Run { mut settings, .. } =
            hooktrail_collector::parse_settings(&args, &env).expect("settings")
        else {
            panic!("expected settings to run with");
        };
        adjust(&mut settings.tuning);
        let bound = hooktrail_collector::bind(&settings).expect("bind");
        let shutdown = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(hooktrail_collector::Stats::default());
        let thread = {
            let (shutdown, stats) = (shutdown.clone(), stats.clone());
            std::thread::spawn(move || {
                hooktrail_collector::run_with_stats(*settings, bound, shutdown, stats).expect("run")
            })
        };
        InProcess {
            socket,
            shutdown,
            thread: Some(thread),
            stats,
            _temp: temp,
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn socket_connection_over_the_limit_is_refused_with_an_error_line() {
    let collector = InProcess::start(|tuning| tuning.max_connections = 2);
    let first = UnixStream::connect(&collector.socket).unwrap();
    let second = UnixStream::connect(&collector.socket).unwrap();
    wait_until("two connections accepted", LONG, || {
        collector.stats.socket_connections.load(Ordering::Relaxed) == 2
    });
    let third = UnixStream::connect(&collector.socket).unwrap();
    third.set_read_timeout(Some(LONG)).unwrap();
    let mut reply = String::new();
    BufReader::new(&third).read_line(&mut reply).unwrap();
    assert!(reply.starts_with("error too many connections"), "{reply:?}");
    // The accepted ones still work, and a slot freed is usable again.
    assert_eq!(send_on(&first, &envelope(1)), "ok\n");
    drop(second);
    wait_until("the closed connection released", LONG, || {
        collector.stats.socket_connections.load(Ordering::Relaxed) == 1
    });
    let fourth = UnixStream::connect(&collector.socket).unwrap();
    assert_eq!(send_on(&fourth, &envelope(2)), "ok\n");
}

#[test]
fn idle_socket_connection_is_closed_after_the_idle_timeout() {
    let collector = InProcess::start(|tuning| tuning.idle_timeout = Duration::from_millis(300));
    let connection = UnixStream::connect(&collector.socket).unwrap();
    assert_eq!(send_on(&connection, &envelope(1)), "ok\n");
    // Nothing more is sent: the collector closes its side (EOF).
    connection.set_read_timeout(Some(LONG)).unwrap();
    let mut rest = Vec::new();
    let read = (&connection).read_to_end(&mut rest).unwrap();
    assert_eq!(read, 0, "no bytes after the reply, then EOF");
    assert_eq!(
        collector.stats.socket_connections.load(Ordering::Relaxed),
        0
    );
}

/// Sends one line and reads its reply line.
fn send_on(stream: &UnixStream, line: &str) -> String {
    (&*stream)
        .write_all(format!("{line}\n").as_bytes())
        .unwrap();
    stream.set_read_timeout(Some(LONG)).unwrap();
    let mut reader = BufReader::new(stream);
    let mut reply = String::new();
    reader.read_line(&mut reply).unwrap();
    reply
}
