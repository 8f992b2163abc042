//! Remote approval, the collector's side (issue 18): the real collector
//! binary with approvals on, a waiting request sent over its real socket (a
//! connection kept open, as a hook keeps it) or XADDed to a real
//! redis-server (read back with BLPOP, as a hook waits), and the HTTP API:
//! 200 for the owner, 403 for a viewer or a foreign Origin, 404 unknown, 409
//! decided or expired; the decision the hook receives verifies with the key
//! the collector created.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hooktrail_shared::signed::{payload_input_hash, Expected, Key, Kind, SignedMessage, Verdict};
use hooktrail_shared::time::now_millis;
use hooktrail_testkit::{fixture, free_port, wait_until, xadd_all, RedisServer};
use serde_json::{json, Value};

const COLLECTOR: &str = env!("CARGO_BIN_EXE_hooktrail-collector");

/// A viewer's token, written to `tokens.json` before the start.
const VIEWER_TOKEN: &str = "viewer-token-0123456789abcdef";

struct Running {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    token: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn start(extra: &[&str], http: &str) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config/hooktrail");
        let state = dir.path().join("state/hooktrail");
        for private in [&config, &state] {
            std::fs::create_dir_all(private).unwrap();
            std::fs::set_permissions(private, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        std::fs::write(
            config.join("config.json"),
            r#"{"approvals": {"wait": "always"}}"#,
        )
        .unwrap();
        let tokens = state.join("tokens.json");
        std::fs::write(
            &tokens,
            json!({"tokens": [{"name": "phone", "role": "viewer", "token": VIEWER_TOKEN}]})
                .to_string(),
        )
        .unwrap();
        std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
        let port = free_port();
        let child = Command::new(COLLECTOR)
            .args(["--db", &dir.path().join("events.db").display().to_string()])
            .args([
                "--socket",
                &dir.path().join("run/collector.sock").display().to_string(),
            ])
            .args([
                "--spool-dir",
                &dir.path().join("spool").display().to_string(),
            ])
            .args(["--http", &http.replace("PORT", &port.to_string())])
            .args(extra)
            .env_clear()
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("collector.log")).unwrap())
            .spawn()
            .expect("start the collector");
        let socket = dir.path().join("run/collector.sock");
        wait_until("the collector's socket", Duration::from_secs(20), || {
            UnixStream::connect(&socket).is_ok()
        });
        // The socket is bound before the collector starts its threads.
        let key = config.join("approvals.key");
        wait_until(
            "the collector to create the key",
            Duration::from_secs(20),
            || key.exists(),
        );
        let token_file = state.join("http-token");
        let given = extra
            .iter()
            .position(|arg| *arg == "--token")
            .map(|at| extra[at + 1].to_owned());
        let token = given.unwrap_or_else(|| {
            std::fs::read_to_string(token_file)
                .unwrap()
                .trim()
                .to_owned()
        });
        Running {
            child,
            dir,
            port,
            token,
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn key(&self) -> Key {
        Key::load(&self.path("config/hooktrail/approvals.key"))
            .expect("the key the collector created")
    }

    fn owner(&self) -> String {
        format!("Bearer {}", self.token)
    }

    fn decide(&self, event_id: &str, decision: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let body = json!({"decision": decision, "reason": "checked"}).to_string();
        http(
            self.port,
            "POST",
            &format!("/api/approvals/{event_id}"),
            headers,
            &body,
        )
    }
}

/// One HTTP/1.1 request; returns the status and the JSON body.
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let status = reply.split(' ').nth(1).unwrap().parse().unwrap();
    let json = reply.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

/// A waiting `PermissionRequest` envelope, from the real fixture.
fn waiting_request(id: &str, wait_until: i64) -> String {
    let payload = fixture("failures")
        .into_iter()
        .find(|line| line.contains("\"PermissionRequest\""))
        .unwrap();
    let payload: Value = serde_json::from_str(&payload).unwrap();
    json!({"v": 1, "id": id, "ts": now_millis(), "machine": "m1",
           "session_id": payload["session_id"], "agent_id": null, "hook": "PermissionRequest",
           "tool": payload["tool_name"], "tool_use_id": null, "cwd": payload["cwd"],
           "wait_until": wait_until, "payload": payload})
    .to_string()
}

/// Sends the line like a waiting hook and returns the connection, after `ok`.
fn send_waiting(socket: &Path, line: &str) -> BufReader<UnixStream> {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.write_all(format!("{line}\n").as_bytes()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut reply = String::new();
    reader.read_line(&mut reply).unwrap();
    assert_eq!(reply, "ok\n");
    reader
}

fn expected_for(line: &str) -> (String, String, String) {
    let sent: Value = serde_json::from_str(line).unwrap();
    (
        sent["id"].as_str().unwrap().to_owned(),
        sent["session_id"].as_str().unwrap().to_owned(),
        payload_input_hash(&sent["payload"].to_string()).unwrap(),
    )
}

fn verify(key: &Key, message: &str, line: &str) -> SignedMessage {
    let (event_id, session_id, input_hash) = expected_for(line);
    let message = SignedMessage::parse(message.trim().as_bytes()).expect("a signed decision");
    let expected = Expected {
        kind: Kind::Permission,
        event_id: &event_id,
        session_id: &session_id,
        input_hash: &input_hash,
    };
    message
        .verify(key, &expected, now_millis() as u64)
        .expect("the decision verifies");
    message
}

fn pending(running: &Running) -> Vec<Value> {
    let (status, body) = http(
        running.port,
        "GET",
        "/api/approvals?state=pending",
        &[("Authorization", &running.owner())],
        "",
    );
    assert_eq!(status, 200, "{body}");
    body["approvals"].as_array().unwrap().clone()
}

#[test]
fn a_decision_reaches_the_hook_waiting_on_the_socket_once_and_only_for_an_approver() {
    let running = Running::start(&[], "127.0.0.1:PORT");
    let key_mode = std::fs::metadata(running.path("config/hooktrail/approvals.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        key_mode & 0o777,
        0o600,
        "the key file the collector created"
    );
    let line = waiting_request("wait-socket-1", now_millis() + 60_000);
    let mut hook = send_waiting(&running.path("run/collector.sock"), &line);
    wait_until("the request to be pending", Duration::from_secs(10), || {
        pending(&running).len() == 1
    });
    let listed = &pending(&running)[0];
    assert_eq!(listed["event_id"], "wait-socket-1");
    assert_eq!(listed["tool_input"]["url"], "http://127.0.0.1:9/x");

    let owner = running.owner();
    let viewer = format!("Bearer {VIEWER_TOKEN}");
    let (status, _) = running.decide("wait-socket-1", "allow", &[("Authorization", &viewer)]);
    assert_eq!(status, 403, "a viewer may not decide");
    let (status, _) = http(
        running.port,
        "GET",
        "/api/approvals?state=pending",
        &[("Authorization", &viewer)],
        "",
    );
    assert_eq!(status, 200, "a viewer may read");
    let (status, _) = running.decide("wait-socket-1", "allow", &[]);
    assert_eq!(status, 401, "no token");
    let (status, _) = running.decide(
        "wait-socket-1",
        "allow",
        &[("Authorization", &owner), ("Origin", "http://evil.example")],
    );
    assert_eq!(status, 403, "a foreign Origin");
    let (status, _) = running.decide("no-such-request", "allow", &[("Authorization", &owner)]);
    assert_eq!(status, 404);

    let (status, body) = running.decide("wait-socket-1", "deny", &[("Authorization", &owner)]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["delivered"], "hook");
    let mut message = String::new();
    hook.read_line(&mut message).unwrap();
    let message = verify(&running.key(), &message, &line);
    assert_eq!(
        (
            message.verdict,
            message.by.as_str(),
            message.reason.as_str()
        ),
        (Verdict::Deny, "owner", "checked")
    );

    let (status, _) = running.decide("wait-socket-1", "allow", &[("Authorization", &owner)]);
    assert_eq!(status, 409, "a second decision");
    let (status, decided) = http(
        running.port,
        "GET",
        "/api/approvals?state=decided",
        &[("Authorization", &owner)],
        "",
    );
    assert_eq!(status, 200);
    let row = &decided["approvals"][0];
    assert_eq!(
        (
            row["verdict"].as_str(),
            row["decided_by"].as_str(),
            row["delivered"].as_str()
        ),
        (Some("deny"), Some("owner"), Some("hook"))
    );
    assert!(pending(&running).is_empty());
}

#[test]
fn a_request_whose_hook_stopped_waiting_is_expired_and_refused_with_409() {
    let running = Running::start(&[], "127.0.0.1:PORT");
    let until = now_millis() + 1_500;
    let line = waiting_request("wait-short", until);
    let _hook = send_waiting(&running.path("run/collector.sock"), &line);
    wait_until("the request to be pending", Duration::from_secs(10), || {
        pending(&running).len() == 1
    });
    wait_until("the wait to pass", Duration::from_secs(10), || {
        now_millis() > until
    });
    let (status, _) = running.decide(
        "wait-short",
        "allow",
        &[("Authorization", &running.owner())],
    );
    assert_eq!(status, 409);
    let (_, expired) = http(
        running.port,
        "GET",
        "/api/approvals?state=expired",
        &[("Authorization", &running.owner())],
        "",
    );
    assert_eq!(expired["approvals"][0]["event_id"], "wait-short");
    assert!(pending(&running).is_empty());
}

#[test]
fn a_decision_reaches_the_hook_blocked_in_blpop_on_redis() {
    let redis = RedisServer::start();
    let running = Running::start(&["--redis-url", &redis.url()], "127.0.0.1:PORT");
    let line = waiting_request("wait-redis-1", now_millis() + 60_000);
    xadd_all(redis.port, "hooktrail:events", std::slice::from_ref(&line));
    wait_until("the request to be pending", Duration::from_secs(10), || {
        pending(&running).len() == 1
    });
    let port = redis.port;
    let hook = std::thread::spawn(move || {
        hooktrail_testkit::redis_cli(
            port,
            None,
            &["BLPOP", "hooktrail:events:decision:wait-redis-1", "20"],
        )
    });
    // The hook is blocked once Redis lists a client in BLPOP. Not
    // `blocked_clients:1`: the collector's own XREADGROUP BLOCK counts as a
    // blocked client too, and the test then decided before the hook waited.
    wait_until(
        "the hook to block in BLPOP",
        Duration::from_secs(10),
        || redis.command(&["CLIENT", "LIST"]).contains("cmd=blpop"),
    );
    let (status, body) = running.decide(
        "wait-redis-1",
        "allow",
        &[("Authorization", &running.owner())],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["delivered"], "hook");
    let popped = hook.join().unwrap();
    let message = popped
        .lines()
        .find(|text| text.starts_with('{'))
        .expect("the decision popped");
    assert_eq!(
        verify(&running.key(), message, &line).verdict,
        Verdict::Allow
    );
}

#[test]
fn approvals_are_refused_on_a_non_loopback_listener_without_tls() {
    let running = Running::start(
        &["--token", "a-long-enough-token-for-this-test-0123"],
        "0.0.0.0:PORT",
    );
    let line = waiting_request("wait-remote", now_millis() + 60_000);
    let _hook = send_waiting(&running.path("run/collector.sock"), &line);
    wait_until("the request to be pending", Duration::from_secs(10), || {
        pending(&running).len() == 1
    });
    let (status, body) = running.decide(
        "wait-remote",
        "allow",
        &[("Authorization", &running.owner())],
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not a loopback address"),
        "{body}"
    );
    let log = std::fs::read_to_string(running.path("collector.log")).unwrap();
    assert!(log.contains("approvals are refused"), "{log}");
}

#[test]
fn the_away_switch_is_mirrored_where_hooks_read_it() {
    let redis = RedisServer::start();
    let running = Running::start(&["--redis-url", &redis.url()], "127.0.0.1:PORT");
    let away = |state: &str, extra: &[&str]| {
        let output = Command::new(COLLECTOR)
            .args(["away", state])
            .args(extra)
            .args(["--db", &running.path("events.db").display().to_string()])
            .env_clear()
            .env("HOME", running.dir.path())
            .env("XDG_CONFIG_HOME", running.path("config"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let mirror = running.path("run/collector.away");
    assert_eq!(away("on", &[]), "away on for every machine\n");
    wait_until("the mirror file", Duration::from_secs(10), || {
        std::fs::read_to_string(&mirror).is_ok_and(|text| text.trim() == "1")
    });
    assert_eq!(
        std::fs::metadata(&mirror).unwrap().permissions().mode() & 0o777,
        0o600
    );
    wait_until("the Redis mirror", Duration::from_secs(10), || {
        redis.command(&["GET", "hooktrail:events:away:*"]).trim() == "1"
    });
    assert_eq!(away("off", &[]), "away off for every machine\n");
    wait_until("the mirror file to go", Duration::from_secs(10), || {
        !mirror.exists()
    });
    assert_eq!(away("on", &["--machine", "laptop"]), "away on for laptop\n");
    wait_until(
        "the machine's Redis mirror",
        Duration::from_secs(10),
        || {
            redis
                .command(&["GET", "hooktrail:events:away:laptop"])
                .trim()
                == "1"
        },
    );
    let (status, listed) = http(
        running.port,
        "GET",
        "/api/approvals?state=pending",
        &[("Authorization", &running.owner())],
        "",
    );
    assert_eq!(status, 200);
    assert_eq!(listed["away"][0]["machine"], "laptop");
}
