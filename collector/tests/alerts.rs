//! Alerts (issue 20), end to end: a real collector process, sessions
//! delivered by the real emitter over its socket, and a real HTTP receiver
//! started here (a small `TcpListener` server) that verifies each alert's
//! HMAC-SHA256 signature; the outbox is read back from SQLite.
//!
//! The collector's retry base is shortened with `alerts.retry_base_ms` (a
//! documented config key), so "receiver down, then up" takes seconds, not
//! the minutes the default backoff would.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use hooktrail_testkit::wait_until;
use serde_json::{json, Value};
use support::in_process::http_get;
use support::process::{emit, send_lines, stop_with_usage, Collector, BINARY};

const SECRET: &str = "test-webhook-key-0123456789";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    /// Header names lower-cased.
    headers: HashMap<String, String>,
    body: String,
    /// Whether `X-Hooktrail-Signature` is the HMAC of the body with SECRET.
    signature_ok: bool,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
    fn delivery(&self) -> &str {
        &self.headers["x-hooktrail-delivery"]
    }
}

/// A real HTTP server on a loopback port: records each request (before it
/// answers), verifies the signature, answers 200 after `delay_ms`.
struct Receiver {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    /// How long it takes to answer each request.
    delay_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start() -> Receiver {
        Receiver::start_on(0, Arc::new(Mutex::new(Vec::new())))
    }

    fn start_on(port: u16, received: Arc<Mutex<Vec<Received>>>) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the receiver");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (received, delay_ms, stop) = (received.clone(), delay_ms.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (received, delay_ms, stop) =
                                (received.clone(), delay_ms.clone(), stop.clone());
                            std::thread::spawn(move || serve(stream, &received, &delay_ms, &stop));
                        }
                        Err(_) => {
                            #[allow(clippy::disallowed_methods)]
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
            })
        };
        Receiver {
            port,
            received,
            delay_ms,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn shut(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shut();
    }
}

fn serve(
    stream: TcpStream,
    received: &Mutex<Vec<Received>>,
    delay_ms: &AtomicU64,
    stop: &AtomicBool,
) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = HashMap::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body = String::from_utf8(body).unwrap();
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(body.as_bytes());
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let signature_ok =
            headers.get("x-hooktrail-signature") == Some(&format!("sha256={expected}"));
        received.lock().unwrap().push(Received {
            headers,
            body,
            signature_ok,
        });
        let until = Instant::now() + Duration::from_millis(delay_ms.load(Ordering::Relaxed));
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut writer = &stream;
        if writer
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\nreceived",
            )
            .is_err()
        {
            return;
        }
    }
}

/// Writes the config (with the webhook's secret in a 0600 file) where the
/// test collector reads it, and returns the collector's directory.
fn configure(dir: &Path, alerts: Value) -> PathBuf {
    configure_with(dir, alerts, json!({}))
}

/// [`configure`], with more top-level keys (`budgets`).
fn configure_with(dir: &Path, alerts: Value, more: Value) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let config_dir = dir.join("config/hooktrail");
    std::fs::create_dir_all(&config_dir).unwrap();
    let secret = config_dir.join("webhook.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut config = json!({ "alerts": alerts, "public_url": "http://hooktrail.example:7717" });
    for (key, value) in more.as_object().unwrap() {
        config[key] = value.clone();
    }
    std::fs::write(config_dir.join("config.json"), config.to_string()).unwrap();
    dir.to_owned()
}

fn webhook(name: &str, receiver_url: &str) -> Value {
    json!({ "name": name, "kind": "webhook", "url": receiver_url, "secret_file": "~/config/hooktrail/webhook.secret" })
}

/// One hook payload of session `session`, as Claude Code sends it.
fn hook(session: &str, event: &str, extra: Value) -> Value {
    let mut payload = json!({
        "session_id": session,
        "transcript_path": format!("/nonexistent/{session}.jsonl"),
        "cwd": "/home/dev/api",
        "hook_event_name": event,
    });
    for (key, value) in extra.as_object().unwrap() {
        payload[key] = value.clone();
    }
    payload
}

/// The outbox rows as (destination, rule, state).
fn outbox(collector: &Collector) -> Vec<(String, String, String)> {
    collector
        .rows("SELECT destination, rule, state FROM outbox ORDER BY id")
        .into_iter()
        .map(|row| (row[0].clone(), row[1].clone(), row[2].clone()))
        .collect()
}

/// Waits until every alert is recorded as sent, then checks there are `count`.
fn assert_all_sent(collector: &Collector, count: usize) {
    wait_until("every alert sent", Duration::from_secs(10), || {
        outbox(collector)
            .iter()
            .all(|(_, _, state)| state == "sent")
    });
    assert_eq!(outbox(collector).len(), count, "{:?}", outbox(collector));
}

#[test]
fn a_session_that_waits_fails_and_ends_raises_one_signed_alert_per_matching_rule() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let script_out = dir.path().join("out; touch pwned");
    configure(
        dir.path(),
        json!({
            "destinations": [
                webhook("hook", &receiver.url()),
                // No shell: the odd file name is one argument, nothing runs it.
                {"name": "script", "kind": "command", "argv": ["/usr/bin/tee", "-a", script_out.display().to_string()]},
            ],
            "rules": [
                {"when": "waiting", "after_seconds": 1, "to": ["hook"]},
                {"when": "failed", "to": ["hook"]},
                {"when": "ended", "to": ["hook", "script"]},
                {"when": "gone_quiet", "to": ["hook"]},
                {"when": "cost", "amount_usd": 1000, "to": ["hook"]},
                {"when": "failed", "name": "other-machine", "machines": ["elsewhere"], "to": ["hook"]},
                {"when": "ended", "name": "other-project", "projects": ["web"], "to": ["hook"]},
            ],
        }),
    );
    let collector = Collector::start(dir.path(), &[]);
    let state = dir.path().join("emitter-state");
    let session = "sess-alerts-1";
    emit(
        &collector,
        &state,
        &hook(session, "SessionStart", json!({"source": "startup"})),
    );
    emit(
        &collector,
        &state,
        &hook(
            session,
            "UserPromptSubmit",
            json!({"prompt": "deploy \u{202E}it"}),
        ),
    );
    emit(
        &collector,
        &state,
        &hook(
            session,
            "PermissionRequest",
            json!({"tool_name": "Bash", "tool_input": {"command": "rm -rf /tmp/x\u{200B}y"}}),
        ),
    );
    // A second waiting event in the same wait is the same episode.
    emit(
        &collector,
        &state,
        &hook(
            session,
            "Notification",
            json!({"notification_type": "permission_prompt", "message": "Claude needs your permission"}),
        ),
    );
    wait_until("the waiting alert", Duration::from_secs(20), || {
        !receiver.requests().is_empty()
    });
    emit(
        &collector,
        &state,
        &hook(
            session,
            "PostToolUse",
            json!({"tool_name": "Bash", "tool_input": {"command": "ls"}, "tool_response": {}}),
        ),
    );
    emit(
        &collector,
        &state,
        &hook(session, "StopFailure", json!({"error": "rate_limit"})),
    );
    emit(
        &collector,
        &state,
        &hook(session, "SessionEnd", json!({"reason": "other"})),
    );
    wait_until("three webhook alerts", Duration::from_secs(20), || {
        receiver.requests().len() >= 3
    });
    wait_until("the command's alert", Duration::from_secs(20), || {
        std::fs::read_to_string(&script_out).is_ok_and(|text| text.contains("\"when\":\"ended\""))
    });
    // A sentinel session's wait: once its alert arrived, the ticks after
    // the first session's episodes have run, and raised nothing more.
    emit(
        &collector,
        &state,
        &hook(
            "sess-sentinel",
            "PermissionRequest",
            json!({"tool_name": "Bash", "tool_input": {}}),
        ),
    );
    wait_until("the sentinel's alert", Duration::from_secs(20), || {
        receiver.requests().len() >= 4
    });
    wait_until(
        "every alert recorded as sent",
        Duration::from_secs(10),
        || {
            outbox(&collector)
                .iter()
                .all(|(_, _, state)| state == "sent")
        },
    );

    let requests = receiver.requests();
    let whens: Vec<(String, String)> = requests
        .iter()
        .map(|request| {
            let alert = request.json();
            (
                alert["when"].as_str().unwrap().to_owned(),
                alert["session"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        whens,
        [
            ("waiting", session),
            ("failed", session),
            ("ended", session),
            ("waiting", "sess-sentinel")
        ]
        .map(|(when, id)| (when.to_owned(), id.to_owned())),
        "exactly one alert per matching rule, in order"
    );
    for request in &requests {
        assert!(request.signature_ok, "signature verified: {request:?}");
        assert_eq!(
            request.json()["delivery_id"].as_str(),
            Some(request.delivery())
        );
    }
    let mut ids: Vec<&str> = requests.iter().map(Received::delivery).collect();
    ids.dedup();
    assert_eq!(ids.len(), 4, "a unique delivery id per alert");
    let waiting = requests[0].json();
    assert_eq!(
        waiting["session"]["machine"].as_str().map(str::is_empty),
        Some(false)
    );
    assert_eq!(waiting["session"]["project"], "/home/dev/api");
    assert_eq!(
        waiting["session"]["title"], "deploy \\u202Eit",
        "bidi escaped: {waiting}"
    );
    assert_eq!(
        waiting["url"],
        format!("http://hooktrail.example:7717/#/session/{session}")
    );
    assert!(!waiting.to_string().contains('\u{202E}') && !waiting.to_string().contains('\u{200B}'));
    assert_eq!(requests[1].json()["session"]["state_detail"], "rate_limit");

    let script = std::fs::read_to_string(&script_out).unwrap();
    assert_eq!(script.lines().count(), 1, "{script}");
    assert!(
        !dir.path().join("pwned").exists(),
        "no shell ran the argument"
    );
    assert_eq!(
        outbox(&collector)
            .iter()
            .filter(|(destination, _, _)| destination == "script")
            .count(),
        1
    );
}

/// The case: the receiver is down for 30 s, and the alert arrives
/// afterwards, with the delivery id it was raised with.
#[test]
fn an_alert_raised_while_the_receiver_is_down_for_30_s_arrives_once_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = hooktrail_testkit::free_port();
    configure(
        dir.path(),
        json!({
            "destinations": [webhook("hook", &format!("http://127.0.0.1:{port}/hook"))],
            "rules": [{"when": "failed", "to": ["hook"]}],
            "retry_base_ms": 200,
        }),
    );
    let collector = Collector::start(dir.path(), &[]);
    emit(
        &collector,
        &dir.path().join("state"),
        &hook("sess-down", "StopFailure", json!({"error": "overloaded"})),
    );
    wait_until("the alert to be raised", Duration::from_secs(20), || {
        collector.query_i64("SELECT count(*) FROM outbox") == 1
    });
    let down_since = Instant::now();
    let raised = collector.rows("SELECT delivery_id FROM outbox")[0][0].clone();
    // The outage: polled, not slept, until 30 s have passed and the
    // collector has failed several times.
    wait_until("30 s of failed attempts", Duration::from_secs(90), || {
        down_since.elapsed() >= Duration::from_secs(30)
            && collector.query_i64("SELECT attempts FROM outbox") >= 5
    });
    let error = collector.rows("SELECT last_error, state FROM outbox");
    assert_eq!(error[0][1], "pending", "not given up after 30 s");
    assert!(
        !error[0][0].contains(&port.to_string()) || !error[0][0].contains("/hook"),
        "URL scrubbed: {error:?}"
    );
    let receiver = Receiver::start_on(port, Arc::new(Mutex::new(Vec::new())));
    // The backoff doubles from 200 ms: the next attempt is at most ~26 s away.
    wait_until(
        "the alert after the receiver came up",
        Duration::from_secs(60),
        || !receiver.requests().is_empty(),
    );
    wait_until("sent", Duration::from_secs(10), || {
        outbox(&collector)[0].2 == "sent"
    });
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].signature_ok);
    assert_eq!(requests[0].json()["when"], "failed");
    assert_eq!(
        requests[0].delivery(),
        raised,
        "the delivery id it was raised with"
    );
}

#[test]
fn an_alert_in_flight_when_the_collector_is_killed_arrives_after_the_restart_with_the_same_delivery_id(
) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    // The first request is held until the collector is gone.
    receiver.delay_ms.store(4_000, Ordering::Relaxed);
    configure(
        dir.path(),
        json!({
            "destinations": [webhook("hook", &receiver.url())],
            "rules": [{"when": "ended", "to": ["hook"]}],
            "retry_base_ms": 200,
        }),
    );
    let mut collector = Collector::start(dir.path(), &[]);
    emit(
        &collector,
        &dir.path().join("state"),
        &hook("sess-kill", "SessionEnd", json!({"reason": "other"})),
    );
    wait_until("the delivery to start", Duration::from_secs(20), || {
        !receiver.requests().is_empty()
    });
    collector.kill9();
    receiver.delay_ms.store(0, Ordering::Relaxed);
    assert_eq!(
        outbox(&collector)[0].2,
        "pending",
        "not recorded as sent before the answer"
    );
    collector.restart();
    wait_until(
        "the alert again after the restart",
        Duration::from_secs(30),
        || outbox(&collector)[0].2 == "sent",
    );
    let requests = receiver.requests();
    assert!(requests.len() >= 2, "{requests:?}");
    assert!(requests
        .iter()
        .all(|request| request.delivery() == requests[0].delivery()));
    assert!(requests.iter().all(|request| request.signature_ok));
    assert_eq!(
        collector.query_i64("SELECT count(*) FROM outbox"),
        1,
        "raised once"
    );
}

#[test]
fn a_receiver_that_takes_10_s_to_answer_does_not_hold_up_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    receiver.delay_ms.store(10_000, Ordering::Relaxed);
    configure(
        dir.path(),
        json!({
            "destinations": [webhook("slow", &receiver.url())],
            "rules": [{"when": "ended", "to": ["slow"]}],
        }),
    );
    let collector = Collector::start(dir.path(), &[]);
    let now = hooktrail_shared::time::now_millis();
    // 50 sessions end (50 alerts for a receiver that answers in 10 s), then
    // 5,000 more events arrive.
    let ends: Vec<String> = (0..50)
        .map(|index| {
            envelope(
                &hook(
                    &format!("slow-{index}"),
                    "SessionEnd",
                    json!({"reason": "other"}),
                ),
                now,
            )
        })
        .collect();
    send_lines(&collector.socket, &ends);
    wait_until(
        "the first delivery to be in flight",
        Duration::from_secs(20),
        || !receiver.requests().is_empty(),
    );
    let started = Instant::now();
    let lines: Vec<String> = (0..5_000).map(support::process::envelope).collect();
    for chunk in lines.chunks(500) {
        send_lines(&collector.socket, chunk);
    }
    collector.wait_rows(5_050, Duration::from_secs(20));
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "ingest waited for the receiver: {took:?}"
    );
    assert_eq!(
        receiver.requests().len(),
        1,
        "the destination still waits for its first answer"
    );
    assert_eq!(
        collector.query_i64("SELECT count(*) FROM outbox WHERE state = 'pending'"),
        50
    );
}

/// An envelope line for a payload, stamped `ts`.
fn envelope(payload: &Value, ts: i64) -> String {
    hooktrail_shared::envelope::Envelope::from_hook_stdin(
        payload.to_string().as_bytes(),
        hooktrail_shared::envelope::new_event_id(),
        ts,
        "testhost".into(),
    )
    .to_json()
}

/// Runs the collector binary to its end with the test's config.
fn run_collector(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BINARY)
        .args(args)
        .env_clear()
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .output()
        .unwrap()
}

#[test]
fn alert_test_sends_a_signed_sample_and_prints_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    configure(
        dir.path(),
        json!({"destinations": [webhook("me", &receiver.url())], "rules": []}),
    );
    let output = run_collector(dir.path(), &["alert", "test", "me"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("delivered to me (webhook)") && stdout.contains("HTTP 200 received"),
        "{stdout}"
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].signature_ok);
    assert!(!stdout.contains(SECRET));

    let output = run_collector(dir.path(), &["alert", "test", "nobody"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no destination named \"nobody\""));
}

#[test]
fn a_webhook_secret_file_others_can_read_stops_the_collector_with_its_name() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    configure(
        dir.path(),
        json!({"destinations": [webhook("me", "http://127.0.0.1:9/hook")], "rules": []}),
    );
    let secret = dir.path().join("config/hooktrail/webhook.secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let db = dir.path().join("db").display().to_string();
    let output = run_collector(
        dir.path(),
        &["--db", &db, "--socket", "off", "--http", "off"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("webhook.secret") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET));
}

#[test]
fn slack_and_ntfy_get_their_own_shapes_with_secrets_from_0600_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let config = dir.path().join("config/hooktrail");
    std::fs::create_dir_all(&config).unwrap();
    for (name, text) in [
        ("slack.url", receiver.url()),
        ("ntfy.token", "tk_secret_token".to_owned()),
    ] {
        std::fs::write(config.join(name), text).unwrap();
        std::fs::set_permissions(config.join(name), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    configure(
        dir.path(),
        json!({
            "destinations": [
                {"name": "chat", "kind": "slack", "url_file": "~/config/hooktrail/slack.url"},
                {"name": "phone", "kind": "ntfy", "url": receiver.url(), "token_file": "~/config/hooktrail/ntfy.token"},
            ],
            "rules": [{"when": "failed", "to": ["chat", "phone"]}],
        }),
    );
    let collector = Collector::start(dir.path(), &[]);
    emit(
        &collector,
        &dir.path().join("state"),
        &hook("sess-chat", "StopFailure", json!({"error": "server_error"})),
    );
    wait_until("both deliveries", Duration::from_secs(20), || {
        receiver.requests().len() >= 2
    });
    let requests = receiver.requests();
    let link = "http://hooktrail.example:7717/#/session/sess-chat";
    let slack = requests
        .iter()
        .find(|request| request.body.starts_with('{'))
        .expect("the Slack request");
    let text = slack.json()["text"].as_str().unwrap().to_owned();
    assert!(
        text.starts_with("hooktrail: failed: server_error") && text.ends_with(link),
        "{text}"
    );
    let ntfy = requests
        .iter()
        .find(|request| !request.body.starts_with('{'))
        .expect("the ntfy request");
    assert!(
        ntfy.body.starts_with("failed: server_error"),
        "{}",
        ntfy.body
    );
    assert_eq!(ntfy.headers["click"], link);
    assert_eq!(ntfy.headers["title"], "hooktrail: failed");
    assert_eq!(ntfy.headers["authorization"], "Bearer tk_secret_token");
    wait_until("both recorded as sent", Duration::from_secs(10), || {
        outbox(&collector)
            .iter()
            .all(|(_, _, state)| state == "sent")
    });
    assert!(!collector.log_text().contains("tk_secret_token"));
}

/// A `PermissionRequest` envelope whose hook waits for a decision until
/// `wait_until` (the writer records it as a pending decision).
fn waiting_request(session: &str, id: &str, wait_until: Option<i64>) -> String {
    let payload = hook(
        session,
        "PermissionRequest",
        json!({"tool_name": "Bash", "tool_input": {"command": "git push"}}),
    );
    json!({"v": 1, "id": id, "ts": hooktrail_shared::time::now_millis(), "machine": "testhost",
           "session_id": session, "agent_id": null, "hook": "PermissionRequest", "tool": "Bash",
           "tool_use_id": null, "cwd": "/home/dev/api", "wait_until": wait_until, "payload": payload})
    .to_string()
}

/// The alerts received, as (when, detail) in order, once `count` arrived.
fn received_whens(receiver: &Receiver, count: usize) -> Vec<Value> {
    wait_until(&format!("{count} alerts"), Duration::from_secs(60), || {
        receiver.requests().len() >= count
    });
    let requests = receiver.requests();
    for request in &requests {
        assert!(request.signature_ok, "signature verified: {request:?}");
        assert_eq!(
            request.json()["delivery_id"].as_str(),
            Some(request.delivery())
        );
    }
    requests.iter().map(Received::json).collect()
}

/// `approval_pending` (a decision recorded pending, in the writer's
/// transaction) and `budget` (a session budget at its warning, then over,
/// raised by the budget thread), each once per episode, signed.
#[test]
fn a_pending_approval_and_a_budget_crossing_its_warning_and_its_limit_alert_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    configure_with(
        dir.path(),
        json!({
            "destinations": [webhook("hook", &receiver.url())],
            "rules": [
                {"when": "approval_pending", "to": ["hook"]},
                {"when": "budget", "to": ["hook"]},
                {"when": "budget", "name": "other-machine", "machines": ["elsewhere"], "to": ["hook"]},
            ],
        }),
        json!({"budgets": [{"name": "per-session", "scope": "session", "usd": 0.03, "warn_at": 50}]}),
    );
    let collector = Collector::start(dir.path(), &["--no-token"]);
    let port = support::process::http_port(&collector);
    let session = "sess-approve-budget";
    let later = hooktrail_shared::time::now_millis() + 120_000;
    // A request whose hook waits, sent twice (a retry: the same event id),
    // and one whose hook does not wait: one alert.
    let waiting = waiting_request(session, "evt-wait-1", Some(later));
    send_lines(&collector.socket, std::slice::from_ref(&waiting));
    send_lines(&collector.socket, &[waiting]);
    send_lines(
        &collector.socket,
        &[waiting_request(session, "evt-nowait", None)],
    );
    let approval = &received_whens(&receiver, 1)[0];
    assert_eq!(approval["when"], "approval_pending");
    assert_eq!(approval["session"]["id"], session);
    assert_eq!(approval["session"]["state"], "waiting");
    assert_eq!(approval["session"]["state_detail"], "permission for Bash");

    // $0.018 of $0.03: past the 50 % warning; then $0.033: over; then more,
    // once the budget thread has seen it: nothing new.
    send_lines(
        &collector.socket,
        &[stop_with_usage(session, "testhost", "r1", 6_000)],
    );
    received_whens(&receiver, 2);
    send_lines(
        &collector.socket,
        &[stop_with_usage(session, "testhost", "r2", 5_000)],
    );
    received_whens(&receiver, 3);
    send_lines(
        &collector.socket,
        &[stop_with_usage(session, "testhost", "r3", 1_000)],
    );
    let host = format!("127.0.0.1:{port}");
    wait_until(
        "the budget thread to count $0.036",
        Duration::from_secs(20),
        || {
            let reply = http_get(port, "/api/budgets", &[("Host", &host)]);
            let answer: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
            answer["budgets"].as_array().is_some_and(|budgets| {
                budgets.iter().any(|entry| {
                    entry["subject"] == session && entry["spent_usd"].as_f64() > Some(0.0359)
                })
            })
        },
    );
    // A sentinel: a second waiting request's alert.
    send_lines(
        &collector.socket,
        &[waiting_request(session, "evt-wait-2", Some(later))],
    );
    let all = received_whens(&receiver, 4);
    let whens: Vec<(String, String)> = all
        .iter()
        .map(|alert| {
            (
                alert["when"].as_str().unwrap().to_owned(),
                alert["budget"]["standing"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        whens,
        [
            ("approval_pending", ""),
            ("budget", "warning"),
            ("budget", "over"),
            ("approval_pending", "")
        ]
        .map(|(when, standing)| (when.to_owned(), standing.to_owned())),
        "one alert per episode: {all:?}"
    );
    let over = &all[2];
    assert_eq!(over["budget"]["name"], "per-session");
    assert_eq!(over["budget"]["limit_usd"], 0.03);
    assert_eq!(over["session"]["id"], session);
    assert_eq!(
        over["url"],
        format!("http://hooktrail.example:7717/#/session/{session}")
    );
    assert!(
        over["summary"]
            .as_str()
            .unwrap()
            .starts_with("budget per-session reached: $0.03 of $0.03"),
        "{over}"
    );
    assert_all_sent(&collector, 4);
}

/// `cost` rules: a session's cost, and the day's, over an amount; each
/// once, the session rule once per session.
#[test]
fn session_and_day_cost_rules_alert_once_each_when_the_amount_is_reached() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    configure(
        dir.path(),
        json!({
            "destinations": [webhook("hook", &receiver.url())],
            "rules": [
                {"when": "cost", "amount_usd": 0.01, "to": ["hook"]},
                {"when": "cost", "amount_usd": 0.025, "per": "day", "to": ["hook"]},
            ],
        }),
    );
    let collector = Collector::start(dir.path(), &[]);
    // $0.006, then $0.015 for the first session: over $0.01 at the second.
    send_lines(
        &collector.socket,
        &[stop_with_usage("cost-a", "testhost", "a1", 2_000)],
    );
    send_lines(
        &collector.socket,
        &[stop_with_usage("cost-a", "testhost", "a2", 3_000)],
    );
    let first = &received_whens(&receiver, 1)[0];
    assert_eq!(first["when"], "cost");
    assert_eq!(first["rule"], "cost>=0.01usd/session");
    assert_eq!(first["session"]["id"], "cost-a");
    let cost = first["session"]["cost_usd"].as_f64().unwrap();
    assert!((cost - 0.015).abs() < 1e-9, "{first}");
    // More for the same session: the same episode. Another session over
    // $0.01: its own alert. The day reaches $0.03: one day alert (the day
    // is summed every 30 s).
    send_lines(
        &collector.socket,
        &[stop_with_usage("cost-a", "testhost", "a3", 1_000)],
    );
    send_lines(
        &collector.socket,
        &[stop_with_usage("cost-b", "testhost", "b1", 4_000)],
    );
    let all = received_whens(&receiver, 3);
    let rules: Vec<(String, String)> = all
        .iter()
        .map(|alert| {
            (
                alert["rule"].as_str().unwrap().to_owned(),
                alert["session"]["id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rules,
        [
            ("cost>=0.01usd/session", "cost-a"),
            ("cost>=0.01usd/session", "cost-b"),
            ("cost>=0.025usd/day", "")
        ]
        .map(|(rule, session)| (rule.to_owned(), session.to_owned())),
        "{all:?}"
    );
    let day = &all[2];
    assert!(
        day["session"]["cost_usd"].as_f64().unwrap() >= 0.025,
        "{day}"
    );
    assert_eq!(day["url"], "http://hooktrail.example:7717/#/overview");
    // A later usage keeps the day over: no second day alert. The sentinel
    // is a third session over its amount.
    send_lines(
        &collector.socket,
        &[stop_with_usage("cost-c", "testhost", "c1", 4_000)],
    );
    let all = received_whens(&receiver, 4);
    assert_eq!(all[3]["session"]["id"], "cost-c");
    assert_all_sent(&collector, 4);
}

/// `alerts.keep_days`: delivered and given-up alerts older than that are
/// deleted (at start, then hourly); pending ones and recent ones stay.
#[test]
fn delivered_and_given_up_alerts_older_than_keep_days_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    configure(
        dir.path(),
        json!({
            "destinations": [webhook("hook", "http://127.0.0.1:9/hook")],
            "rules": [{"when": "ended", "to": ["hook"]}],
            "keep_days": 3,
        }),
    );
    let mut collector = Collector::start(dir.path(), &[]);
    assert!(collector.terminate().success());
    let now = hooktrail_shared::time::now_millis();
    let day = 86_400_000;
    {
        let connection = rusqlite::Connection::open(&collector.db).unwrap();
        // The pending one is far in the future to attempt: it stays pending.
        for (episode, state, age) in [
            ("old-sent", "sent", 10 * day),
            ("old-failed", "failed", 10 * day),
            ("old-pending", "pending", 10 * day),
            ("new-sent", "sent", day),
            ("gone-destination", "sent", 10 * day),
        ] {
            let destination = if episode == "gone-destination" {
                "removed"
            } else {
                "hook"
            };
            connection
                .execute(
                    "INSERT INTO outbox (delivery_id, destination, rule, episode, body, created_at, state, attempts, next_attempt_at)
                     VALUES (?1, ?2, 'ended', ?1, '{}', ?3, ?4, 0, ?5)",
                    rusqlite::params![episode, destination, now - age, state, now + day],
                )
                .unwrap();
        }
    }
    collector.restart();
    wait_until(
        "the old alerts to be pruned",
        Duration::from_secs(20),
        || collector.query_i64("SELECT count(*) FROM outbox") == 2,
    );
    let kept: Vec<String> = collector
        .rows("SELECT episode FROM outbox ORDER BY id")
        .into_iter()
        .map(|row| row[0].clone())
        .collect();
    assert_eq!(kept, ["old-pending", "new-sent"]);
    assert!(
        collector
            .log_text()
            .contains("removed 3 delivered or given-up alerts older than 3 days"),
        "{}",
        collector.log_text()
    );
}
