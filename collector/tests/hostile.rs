//! Issue 13's collector-side defects, each pinned by a test named after the
//! bug: the real binary in a fresh temp directory, polling with deadlines.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use hooktrail_shared::envelope::{new_event_id, Envelope};
use hooktrail_shared::time::now_millis;
use hooktrail_testkit::wait_until;
use support::process::{send_lines, Collector};

const LONG: Duration = Duration::from_secs(60);

/// One envelope for `session` with the timestamp `ts` and a payload of about
/// `padding` bytes.
fn envelope_at(session: &str, ts: i64, padding: usize) -> String {
    let payload = format!(
        r#"{{"session_id":"{session}","hook_event_name":"Notification","message":"{}"}}"#,
        "m".repeat(padding)
    );
    Envelope::from_hook_stdin(payload.as_bytes(), new_event_id(), ts, "h".into()).to_json()
}

/// The HTTP address the collector logged at start.
fn http_address(collector: &Collector) -> String {
    let mut address = String::new();
    wait_until("the collector to log its HTTP address", LONG, || {
        let log = collector.log_text();
        if let Some(rest) = log.split("serving the UI on http://").nth(1) {
            address = rest.split_whitespace().next().unwrap_or("").to_owned();
        }
        !address.is_empty()
    });
    address
}

/// The token the collector generated at its first start.
fn token(collector: &Collector) -> String {
    let path = collector.dir.join(".local/state/hooktrail/http-token");
    let mut token = String::new();
    wait_until("the token file", LONG, || {
        token = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .trim()
            .to_owned();
        !token.is_empty()
    });
    token
}

/// One GET with `Connection: close`; the status code and the body, or `None`
/// when no answer came within `deadline`.
fn get(
    address: &str,
    path: &str,
    token: Option<&str>,
    deadline: Duration,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(deadline)).ok()?;
    let authorization = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\n{authorization}Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())?;
    Some((status, body))
}

#[test]
fn retention_deleting_the_newest_rows_must_not_make_a_seq_reusable() {
    let temp = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(temp.path(), &[]);
    // An emitter whose clock is far behind: every event is "old" on arrival,
    // the newest rows included.
    let old: Vec<String> = (0..3)
        .map(|index| envelope_at("behind", 1_700_000_000_000 + index, 10))
        .collect();
    assert!(send_lines(&collector.socket, &old)
        .iter()
        .all(|reply| reply == "ok"));
    collector.wait_rows(3, LONG);
    let highest_before = collector.query_i64("SELECT max(seq) FROM events");
    collector.terminate();

    // Retention's first step runs at start.
    collector.extra = vec!["--retention-days".into(), "1".into()];
    collector.restart();
    wait_until("retention to delete the expired events", LONG, || {
        collector.count() < 3
    });
    let fresh = envelope_at("fresh", now_millis(), 10);
    assert_eq!(send_lines(&collector.socket, &[fresh]), vec!["ok"]);
    wait_until("the new event to be stored", LONG, || {
        collector.query_i64("SELECT count(*) FROM events WHERE session_id = 'fresh'") == 1
    });
    let new_seq = collector.query_i64("SELECT seq FROM events WHERE session_id = 'fresh'");
    assert!(
        new_seq > highest_before,
        "the new event got seq {new_seq}, already handed out (highest was {highest_before})"
    );
}

/// Starts a collector whose open-files limit (soft and hard) is `limit`.
fn start_with_open_files_limit(dir: &std::path::Path, limit: u64) -> Collector {
    use std::os::unix::process::CommandExt;
    let mut collector = Collector {
        child: None,
        dir: dir.to_owned(),
        db: dir.join("data/events.db"),
        socket: dir.join("run/collector.sock"),
        spool: dir.join("spool"),
        log: dir.join("collector.log"),
        extra: Vec::new(),
    };
    let mut command = collector.command();
    // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
    unsafe {
        command.pre_exec(move || {
            let value = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &value) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    collector.child = Some(command.spawn().expect("start the collector"));
    collector
}

/// The number of descriptors the process has open.
fn open_descriptors(collector: &Collector) -> usize {
    let pid = collector.child.as_ref().expect("running").id();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

#[test]
fn running_out_of_file_descriptors_once_must_not_kill_the_http_server_for_good() {
    let temp = tempfile::tempdir().unwrap();
    let mut collector = start_with_open_files_limit(temp.path(), 64);
    let address = http_address(&collector);
    let token = token(&collector);
    let token = Some(token.as_str());
    wait_until("the API to answer", LONG, || {
        get(&address, "/api/health", token, Duration::from_secs(5)).map(|(status, _)| status)
            == Some(200)
    });
    // Each accepted connection costs the collector descriptors; open more
    // than it has left and keep them open until it has run out.
    let mut clients = Vec::new();
    let socket_address: std::net::SocketAddr = address.parse().unwrap();
    for _ in 0..120 {
        match TcpStream::connect_timeout(&socket_address, Duration::from_millis(500)) {
            Ok(stream) => clients.push(stream),
            Err(_) => break,
        }
        if collector.log_text().contains("stopped accepting") {
            break;
        }
    }
    wait_until(
        "the collector to run out of descriptors (or fail)",
        LONG,
        || {
            let gone = collector
                .child
                .as_mut()
                .is_some_and(|child| child.try_wait().ok().flatten().is_some());
            gone || open_descriptors(&collector) >= 62
                || collector.log_text().contains("stopped accepting")
        },
    );
    drop(clients);
    // The bug was a collector that lives on with its HTTP server dead. Either
    // answer is right: the listener came back, or the process ended with a
    // failure so its supervisor (systemd's Restart=on-failure) restarts it,
    // which is what a release build does when tiny_http panics at EMFILE
    // (the release profile aborts on panic).
    let mut exited = None;
    wait_until(
        "the API to answer again, or the process to fail",
        LONG,
        || {
            exited = collector
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            exited.is_some()
                || get(&address, "/api/health", token, Duration::from_secs(2))
                    .is_some_and(|(status, body)| status == 200 && body.contains(r#""ok":true"#))
        },
    );
    if let Some(status) = exited {
        assert!(
            !status.success(),
            "the collector exited with success: {status}"
        );
        collector.child = None;
        return;
    }
    assert!(
        collector.log_text().contains("stopped accepting"),
        "the lost listener was not logged: {}",
        collector.log_text()
    );
    let (_, metrics) = get(&address, "/metrics", token, Duration::from_secs(5)).unwrap();
    assert!(
        metrics.contains("hooktrail_http_listener_restarts_total 1")
            || !metrics.contains("hooktrail_http_listener_restarts_total 0"),
        "{metrics}"
    );
}

#[test]
fn clients_that_never_read_their_response_must_not_freeze_the_api() {
    let temp = tempfile::tempdir().unwrap();
    let collector = Collector::start(temp.path(), &[]);
    let address = http_address(&collector);
    // About 9 MB of events: one page of them is more than the socket
    // buffers of a client that does not read can take.
    let big: Vec<String> = (0..10)
        .map(|index| envelope_at("big", now_millis() + index, 900_000))
        .collect();
    assert!(send_lines(&collector.socket, &big)
        .iter()
        .all(|reply| reply == "ok"));
    collector.wait_rows(10, LONG);
    // More clients that ask for the big page and never read it than there
    // are HTTP workers.
    let token = token(&collector);
    let request = format!(
        "GET /api/events?limit=1000 HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    let stalled: Vec<TcpStream> = (0..12)
        .map(|_| {
            let mut stream = TcpStream::connect(&address).unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            stream
        })
        .collect();
    let started = Instant::now();
    let answer = get(
        &address,
        "/api/health",
        Some(&token),
        Duration::from_secs(30),
    );
    let waited = started.elapsed();
    assert_eq!(answer.map(|(status, _)| status), Some(200));
    assert!(
        waited < Duration::from_secs(20),
        "a normal request waited {waited:?} behind clients that do not read"
    );
    drop(stalled);
}

#[test]
fn another_local_user_must_not_read_the_api_without_a_token() {
    use std::os::unix::fs::PermissionsExt;
    let temp = tempfile::tempdir().unwrap();
    let collector = Collector::start(temp.path(), &[]);
    let address = http_address(&collector);
    let token = token(&collector);
    assert_eq!(token.len(), 64);
    let file = collector.dir.join(".local/state/hooktrail/http-token");
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().unwrap()), 0o700);
    // On loopback the start banner holds the page's link for the person who
    // started the collector (issue 23), with a one-time code (issue 24): no
    // line may hold the token.
    let log = collector.log_text();
    let holding: Vec<&str> = log.lines().filter(|line| line.contains(&token)).collect();
    assert!(holding.is_empty(), "the token reached the log: {holding:?}");
    assert!(
        log.contains(&format!("open the page: http://{address}/#code=")),
        "{log}"
    );

    // Without the token: nothing but the page shell.
    for path in [
        "/api/events",
        "/api/sessions",
        "/api/health",
        "/metrics",
        "/ws",
    ] {
        let (status, _) = get(&address, path, None, LONG).unwrap();
        assert_eq!(status, 401, "{path} answered without the token");
    }
    assert_eq!(get(&address, "/", None, LONG).unwrap().0, 200);
    assert_eq!(
        get(&address, "/api/events", Some(&token), LONG).unwrap().0,
        200
    );

    // The page's address, with a one-time code in the fragment: never the
    // token, which a browser's history would keep.
    let url = std::process::Command::new(support::process::BINARY)
        .arg("url")
        .args(collector.command().get_args())
        .env_clear()
        .env("HOME", &collector.dir)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&url.stdout);
    let code = printed.trim().rsplit_once("/#code=").map(|(_, code)| code);
    assert!(
        code.is_some_and(|code| code.len() == 32 && code.bytes().all(|b| b.is_ascii_hexdigit())),
        "{printed}"
    );
    assert!(!printed.contains(&token), "the token is not in the link");
}

/// The process's peak resident set, in bytes (`VmHWM`).
fn peak_rss(collector: &Collector) -> u64 {
    let pid = collector.child.as_ref().expect("running").id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kilobytes: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|value| value.parse().ok())
        .unwrap();
    kilobytes * 1024
}

/// A WebSocket that completes its handshake and then never reads.
fn stalled_websocket(address: &str, token: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nOrigin: http://{address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    stream.set_read_timeout(Some(LONG)).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

#[test]
fn stalled_websocket_clients_must_not_hold_events_without_a_byte_bound() {
    let temp = tempfile::tempdir().unwrap();
    let collector = Collector::start(temp.path(), &[]);
    let address = http_address(&collector);
    let token = token(&collector);
    let stalled: Vec<TcpStream> = (0..4)
        .map(|_| stalled_websocket(&address, &token))
        .collect();
    wait_until("the clients to be live", LONG, || {
        get(&address, "/api/health", Some(&token), LONG)
            .is_some_and(|(_, body)| body.contains(r#""clients":4"#))
    });
    // 300 events of 700 KB, ten at a time: about 210 MB through the hub.
    for chunk in 0..30 {
        let lines: Vec<String> = (0..10)
            .map(|index| envelope_at("ws", now_millis() + chunk * 10 + index, 700_000))
            .collect();
        assert!(send_lines(&collector.socket, &lines)
            .iter()
            .all(|reply| reply == "ok"));
    }
    collector.wait_rows(300, LONG);
    let peak = peak_rss(&collector);
    eprintln!("peak RSS {} MB", peak >> 20);
    assert!(
        peak < 120 << 20,
        "peak RSS {} MB with stalled WebSocket clients",
        peak >> 20
    );
    drop(stalled);
}

/// Reads one WebSocket text frame (server frames are unmasked) from
/// `stream`, or `None` at a close frame; pings and pongs are skipped.
fn read_text_frame(stream: &mut TcpStream) -> Option<String> {
    loop {
        let mut head = [0u8; 2];
        stream.read_exact(&mut head).unwrap();
        let length = match head[1] & 0x7f {
            126 => {
                let mut bytes = [0u8; 2];
                stream.read_exact(&mut bytes).unwrap();
                u16::from_be_bytes(bytes) as usize
            }
            127 => {
                let mut bytes = [0u8; 8];
                stream.read_exact(&mut bytes).unwrap();
                u64::from_be_bytes(bytes) as usize
            }
            length => length as usize,
        };
        let mut payload = vec![0u8; length];
        stream.read_exact(&mut payload).unwrap();
        match head[0] & 0x0f {
            0x1 => return Some(String::from_utf8(payload).unwrap()),
            0x8 => return None,
            _ => {}
        }
    }
}

#[test]
fn a_websocket_client_too_slow_for_its_queue_must_catch_up_not_be_closed() {
    let temp = tempfile::tempdir().unwrap();
    let collector = Collector::start(temp.path(), &[]);
    let address = http_address(&collector);
    let token = token(&collector);
    let mut slow = stalled_websocket(&address, &token);
    let live = read_text_frame(&mut slow).expect("the live message");
    assert!(live.contains(r#""type":"live""#), "{live}");
    // 2,000 events of 40 KB (80 KB each in the hub's count): 160 MB against
    // the 64 MB queue, sent while the client reads nothing.
    let total = 2_000;
    for chunk in 0..(total / 50) {
        let lines: Vec<String> = (0..50)
            .map(|index| envelope_at("slow", now_millis() + chunk * 50 + index, 40_000))
            .collect();
        assert!(send_lines(&collector.socket, &lines)
            .iter()
            .all(|reply| reply == "ok"));
    }
    collector.wait_rows(total, LONG);
    wait_until("the client's queue to overflow", LONG, || {
        get(&address, "/api/health", Some(&token), LONG)
            .is_some_and(|(_, body)| !body.contains(r#""dropped_slow":0"#))
    });
    // Now read at the client's pace: every seq once, in order, no close.
    let mut seqs = Vec::new();
    while seqs.len() < total as usize {
        let text = read_text_frame(&mut slow).expect("a frame, not a close");
        let message: serde_json::Value = serde_json::from_str(&text).unwrap();
        if let Some(events) = message["events"].as_array() {
            seqs.extend(events.iter().map(|event| event["seq"].as_i64().unwrap()));
        }
    }
    assert_eq!(seqs, (1..=total).collect::<Vec<i64>>());
    let peak = peak_rss(&collector);
    eprintln!("peak RSS {} MB", peak >> 20);
    assert!(peak < 200 << 20, "peak RSS {} MB", peak >> 20);
    let (_, health) = get(&address, "/api/health", Some(&token), LONG).unwrap();
    assert!(health.contains(r#""clients":1"#), "{health}");
}

#[test]
fn a_page_of_large_events_must_end_at_a_byte_budget_not_only_at_its_limit() {
    let temp = tempfile::tempdir().unwrap();
    let collector = Collector::start(temp.path(), &[]);
    let address = http_address(&collector);
    let token = token(&collector);
    // 12 events of 1 MB: a 500-event page would hold all 12 MB.
    let lines: Vec<String> = (0..12)
        .map(|index| envelope_at("page", now_millis() + index, 1_000_000))
        .collect();
    assert!(send_lines(&collector.socket, &lines)
        .iter()
        .all(|reply| reply == "ok"));
    collector.wait_rows(12, LONG);
    // Walking the pages with the cursor still reaches every event, and no
    // page is much over the 4 MiB budget.
    let mut after = 0i64;
    let mut seen = 0;
    let mut pages = 0;
    loop {
        let (status, body) = get(
            &address,
            &format!("/api/events?after={after}&limit=500"),
            Some(&token),
            LONG,
        )
        .expect("an answer");
        assert_eq!(status, 200, "{}", &body[..body.len().min(300)]);
        assert!(body.len() < 6 << 20, "a page of {} bytes", body.len());
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        let events = page["events"].as_array().unwrap().len();
        seen += events;
        pages += 1;
        after = page["next"].as_i64().unwrap();
        if !page["more"].as_bool().unwrap() {
            break;
        }
        assert!(events > 0, "a page with `more` must move on");
    }
    assert_eq!(seen, 12);
    assert!(pages >= 3, "12 MB in {pages} pages");
}

/// One request on an open keep-alive connection; its status and body.
fn keep_alive_get(stream: &mut TcpStream, address: &str, path: &str, token: &str) -> (u16, String) {
    use std::io::BufRead;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        if header == "\r\n" || header.is_empty() {
            break;
        }
        if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn a_listener_with_no_new_connection_for_its_read_timeout_must_keep_accepting() {
    // The listener's SO_RCVTIMEO (30 s, for the accepted sockets) also
    // applied to accept: after 30 s without a new connection the accept
    // loop ended, and its restart answered 500 to a keep-alive client.
    let temp = tempfile::tempdir().unwrap();
    let collector = Collector::start(temp.path(), &[]);
    let address = http_address(&collector);
    let token = token(&collector);
    let mut stream = TcpStream::connect(&address).unwrap();
    stream.set_read_timeout(Some(LONG)).unwrap();
    let started = Instant::now();
    let mut requests = 0;
    // A request every 2 s (each resets the connection's own read timeout)
    // for 36 s: past the listener's 30 s.
    while started.elapsed() < Duration::from_secs(36) {
        let (status, body) = keep_alive_get(&mut stream, &address, "/api/sessions", &token);
        requests += 1;
        assert_eq!(
            status,
            200,
            "request {requests} after {:?}: {body}",
            started.elapsed()
        );
        assert!(
            !collector.log_text().contains("stopped accepting"),
            "{}",
            collector.log_text()
        );
        let next = Instant::now() + Duration::from_secs(2);
        wait_until("the next request's time", LONG, || Instant::now() >= next);
    }
    // A new connection is still accepted.
    let (status, _) = get(&address, "/api/health", Some(&token), LONG).expect("an answer");
    assert_eq!(status, 200);
}

#[test]
fn unfinished_socket_lines_must_not_take_memory_without_a_total_bound() {
    use std::os::unix::net::UnixStream;
    let temp = tempfile::tempdir().unwrap();
    let collector = Collector::start(temp.path(), &[]);
    // 40 connections, each 7 MiB of a line that never ends (under the 8 MiB
    // line limit): about 280 MB if every partial line were kept.
    let chunk = vec![b'x'; 7 << 20];
    let mut connections = Vec::new();
    for _ in 0..40 {
        let mut stream = UnixStream::connect(&collector.socket).unwrap();
        stream.set_write_timeout(Some(LONG)).unwrap();
        // A connection closed for the budget fails the write: that is the fix.
        let _ = stream.write_all(&chunk);
        connections.push(stream);
    }
    // The last connection's bytes are read by now or its write would not
    // have returned; one more line on a fresh connection proves the loop
    // went round.
    let fresh = envelope_at("after", now_millis(), 10);
    assert_eq!(send_lines(&collector.socket, &[fresh]), vec!["ok"]);
    let peak = peak_rss(&collector);
    eprintln!("peak RSS {} MB", peak >> 20);
    assert!(
        peak < 150 << 20,
        "peak RSS {} MB with unfinished socket lines",
        peak >> 20
    );
    drop(connections);
}

#[test]
fn large_redis_entries_must_not_be_read_a_thousand_at_a_time() {
    let temp = tempfile::tempdir().unwrap();
    let redis = hooktrail_testkit::RedisServer::start();
    // 300 entries of 512 KB wait in the stream: about 150 MB.
    let lines: Vec<String> = (0..300)
        .map(|index| envelope_at("big", now_millis() + index, 512 * 1024))
        .collect();
    for chunk in lines.chunks(20) {
        support::process::xadd_all(redis.port, "hooktrail:events", chunk);
    }
    let collector = Collector::start(temp.path(), &["--redis-url", &redis.url(), "--group", "g"]);
    collector.wait_rows(300, LONG);
    let peak = peak_rss(&collector);
    eprintln!("peak RSS {} MB", peak >> 20);
    assert!(
        peak < 100 << 20,
        "peak RSS {} MB reading large Redis entries",
        peak >> 20
    );
}

#[test]
fn maxlen_trimming_unread_entries_must_be_counted_and_logged_not_silent() {
    let temp = tempfile::tempdir().unwrap();
    let redis = hooktrail_testkit::RedisServer::start();
    let key = "hooktrail:events";
    // The group exists (the collector ran before), then the collector is
    // down while 200 events arrive and the stream is trimmed to 50.
    redis.command(&["XGROUP", "CREATE", key, "g", "$", "MKSTREAM"]);
    let lines: Vec<String> = (0..200)
        .map(|index| envelope_at("trimmed", now_millis() + index, 10))
        .collect();
    support::process::xadd_all(redis.port, key, &lines);
    redis.command(&["XTRIM", key, "MAXLEN", "50"]);
    let collector = Collector::start(temp.path(), &["--redis-url", &redis.url(), "--group", "g"]);
    collector.wait_rows(50, LONG);
    let address = http_address(&collector);
    let token = token(&collector);
    let metrics = get(&address, "/metrics", Some(&token), LONG).unwrap().1;
    assert!(
        metrics.contains("hooktrail_redis_trimmed_unread_total 150"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hooktrail_redis_stream_length 50"),
        "{metrics}"
    );
    assert!(
        collector.log_text().contains("150 entries of stream"),
        "{}",
        collector.log_text()
    );
}

#[test]
fn a_failed_write_to_rejected_jsonl_must_not_delete_the_spooled_line() {
    let temp = tempfile::tempdir().unwrap();
    let spool = temp.path().join("spool");
    let good = envelope_at("spooled", now_millis(), 10);
    hooktrail_shared::spool::append(&spool, &good).unwrap();
    hooktrail_shared::spool::append(&spool, "this line is not an envelope").unwrap();
    // rejected.jsonl cannot be appended to: it is a directory.
    std::fs::create_dir(spool.join(hooktrail_shared::spool::REJECTED_FILE)).unwrap();
    let collector = Collector::start(temp.path(), &[]);
    collector.wait_rows(1, LONG);
    wait_until("the drainer to give its verdict on the file", LONG, || {
        collector
            .log_text()
            .contains("cannot record a rejected line")
    });
    // Two more passes of the drainer (one a second) leave it in place.
    let log_length = collector.log_text().matches("cannot record").count();
    wait_until("another drain pass", LONG, || {
        collector.log_text().matches("cannot record").count() > log_length
    });
    let kept: String = std::fs::read_dir(&spool)
        .unwrap()
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("spool-"))
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default())
        .collect();
    assert!(
        kept.contains("this line is not an envelope"),
        "the rejected line is gone from the spool and recorded nowhere"
    );
    collector.wait_rows(1, LONG);
}

#[test]
fn unknown_hook_names_must_not_grow_metrics_without_bound() {
    let temp = tempfile::tempdir().unwrap();
    let collector = Collector::start(temp.path(), &[]);
    let address = http_address(&collector);
    let token = token(&collector);
    // 3,000 hook names nobody knows, then a known one.
    let mut lines: Vec<String> = (0..3000)
        .map(|index| {
            let payload = format!(
                r#"{{"session_id":"metrics-names","hook_event_name":"MadeUpHook{index:04}"}}"#
            );
            Envelope::from_hook_stdin(payload.as_bytes(), new_event_id(), now_millis(), "h".into())
                .to_json()
        })
        .collect();
    lines.push(envelope_at("metrics-names", now_millis(), 10));
    for chunk in lines.chunks(500) {
        assert!(send_lines(&collector.socket, chunk)
            .iter()
            .all(|reply| reply == "ok"));
    }
    collector.wait_rows(3001, LONG);
    let (status, body) = get(&address, "/metrics", Some(&token), LONG).unwrap();
    assert_eq!(status, 200);
    let series: Vec<&str> = body
        .lines()
        .filter(|line| line.starts_with("hooktrail_events_stored_by_hook_total{"))
        .collect();
    assert!(series.len() <= 40, "{} hook series", series.len());
    assert!(
        series.contains(&r#"hooktrail_events_stored_by_hook_total{hook="Notification"} 1"#),
        "a known hook keeps its series: {series:?}"
    );
    let other = series
        .iter()
        .find_map(|line| {
            line.strip_prefix(r#"hooktrail_events_stored_by_hook_total{hook="other"} "#)
        })
        .expect("an `other` series");
    let kept: u64 = series
        .iter()
        .filter(|line| line.contains("MadeUpHook"))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(other.parse::<u64>().unwrap() + kept, 3000, "nothing lost");
    assert!(body.len() < 64 * 1024, "/metrics is {} bytes", body.len());
}

#[test]
fn a_collector_off_loopback_without_tls_refuses_actions_and_says_so_at_start() {
    let temp = tempfile::tempdir().unwrap();
    let token = "a-token-for-a-listener-on-every-address";
    let collector = Collector::start(temp.path(), &["--http", "0.0.0.0:0", "--token", token]);
    let address = http_address(&collector);
    wait_until("the warning at start", LONG, || {
        collector
            .log_text()
            .contains("refuses approvals and budget overrides")
    });
    let (status, body) = get(&address, "/api/capabilities", Some(token), LONG).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""actions_allowed":false"#), "{body}");
}
