//! Remote approval, the hook's side (issue 18, DESIGN §2): the real binary
//! on a `PermissionRequest`, a real `redis-server` or a socket that answers
//! like the collector, and decisions signed here with the shared key (or
//! not). The hook prints Claude Code's own output only for a decision it
//! verified; a forged, replayed, expired one or one for another input is
//! ignored (nothing on stdout, exit 0, after the wait's deadline).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{envelope, fixture_line, stream_envelopes, World};
use hooktrail_shared::signed::{
    input_hash, payload_input_hash, Key, Kind, SignedMessage, Unsigned, Verdict,
};
use hooktrail_shared::time::now_millis;
use hooktrail_testkit::{wait_until, RedisServer};
use serde_json::{json, Value};

/// How long the hooks of these tests wait for a decision.
const WAIT_SECONDS: u64 = 2;

const ALLOW: &str = r#"{"hookSpecificOutput":{"decision":{"behavior":"allow"},"hookEventName":"PermissionRequest"}}"#;

/// A world whose hooks wait (`approvals.wait = always`) with a fresh key.
fn waiting_world() -> (World, Key) {
    let mut world = World::new();
    world.set("HOOKTRAIL_APPROVALS_WAIT", "always");
    world.set("HOOKTRAIL_APPROVALS_WAIT_SECONDS", WAIT_SECONDS.to_string());
    let key_file = world.path("home/.config/hooktrail/approvals.key");
    let (key, created) = Key::load_or_create(&key_file).expect("key file");
    assert!(created);
    (world, key)
}

/// A running hook.
struct Hook {
    child: Child,
    started: Instant,
}

impl Hook {
    fn start(world: &World, id: &str, payload: &str) -> Hook {
        let mut command = world.command(&[]);
        command
            .env("HOOKTRAIL_TEST_EVENT_ID", id)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn hooktrail-emit");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(payload.as_bytes())
            .unwrap();
        Hook {
            child,
            started: Instant::now(),
        }
    }

    /// Exit code 0 is asserted; returns stdout and the time taken.
    fn finish(self) -> (String, Duration) {
        let output = self.child.wait_with_output().unwrap();
        let elapsed = self.started.elapsed();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        (String::from_utf8(output.stdout).unwrap(), elapsed)
    }
}

/// What a decision must match, from the envelope the hook sent.
struct Request {
    event_id: String,
    session_id: String,
    input_hash: String,
    wait_until: i64,
}

impl Request {
    fn from_envelope(sent: &Value) -> Request {
        Request {
            event_id: sent["id"].as_str().unwrap().to_owned(),
            session_id: sent["session_id"].as_str().unwrap().to_owned(),
            input_hash: payload_input_hash(&sent["payload"].to_string()).unwrap(),
            wait_until: sent["wait_until"]
                .as_i64()
                .expect("wait_until on a waiting request"),
        }
    }

    fn decision(&self, verdict: Verdict, reason: &str) -> Unsigned {
        Unsigned {
            kind: Kind::Permission,
            event_id: self.event_id.clone(),
            session_id: self.session_id.clone(),
            input_hash: self.input_hash.clone(),
            verdict,
            reason: reason.to_owned(),
            by: "owner".to_owned(),
            exp: self.wait_until as u64,
        }
    }
}

fn permission_request() -> String {
    fixture_line("PermissionRequest")
}

/// The envelope with `id` in the stream, once it is there.
fn sent_to_stream(redis: &RedisServer, id: &str) -> Value {
    let mut found = None;
    wait_until("the request in the stream", Duration::from_secs(5), || {
        found = stream_envelopes(redis, "hooktrail:events")
            .into_iter()
            .find(|sent| sent["id"] == id);
        found.is_some()
    });
    found.unwrap()
}

/// Runs one hook through Redis and pushes `make(request)` as its decisions.
fn through_redis(
    redis: &RedisServer,
    world: &World,
    id: &str,
    make: impl Fn(&Request) -> Vec<String>,
) -> (String, Duration) {
    let hook = Hook::start(world, id, &permission_request());
    let request = Request::from_envelope(&sent_to_stream(redis, id));
    for line in make(&request) {
        redis.command(&["LPUSH", &format!("hooktrail:events:decision:{id}"), &line]);
    }
    hook.finish()
}

#[test]
fn a_verified_allow_or_deny_through_redis_prints_claude_codes_output() {
    let redis = RedisServer::start();
    let (mut world, key) = waiting_world();
    world.set("HOOKTRAIL_REDIS_URL", redis.url());
    let (stdout, elapsed) = through_redis(&redis, &world, "approve-1", |request| {
        vec![SignedMessage::sign(&key, request.decision(Verdict::Allow, "")).to_line()]
    });
    assert_eq!(
        serde_json::from_str::<Value>(&stdout).unwrap(),
        serde_json::from_str::<Value>(ALLOW).unwrap()
    );
    assert!(elapsed < Duration::from_secs(WAIT_SECONDS), "{elapsed:?}");
    let (stdout, _) = through_redis(&redis, &world, "approve-2", |request| {
        vec![SignedMessage::sign(&key, request.decision(Verdict::Deny, "no; not today")).to_line()]
    });
    assert_eq!(
        serde_json::from_str::<Value>(&stdout).unwrap(),
        json!({"hookSpecificOutput": {"hookEventName": "PermissionRequest",
            "decision": {"behavior": "deny", "message": "hooktrail: denied by owner: no; not today"}}})
    );
}

#[test]
fn forged_replayed_expired_and_other_input_decisions_through_redis_are_ignored() {
    let redis = RedisServer::start();
    let (mut world, key) = waiting_world();
    world.set("HOOKTRAIL_REDIS_URL", redis.url());
    let other_key = Key::generate();
    type Tamper = fn(&mut Unsigned);
    let cases: [(&str, bool, Tamper); 5] = [
        ("forged", true, |_| {}),
        ("replayed", false, |decision| {
            decision.event_id = "another-request".to_owned()
        }),
        ("other-input", false, |decision| {
            decision.input_hash = input_hash("Bash", Some(&json!({"command": "rm -rf /"})))
        }),
        ("other-session", false, |decision| {
            decision.session_id = "another".to_owned()
        }),
        ("expired", false, |decision| {
            decision.exp = now_millis() as u64 - 1
        }),
    ];
    // One hook per case, side by side: each waits out its deadline.
    let handles: Vec<_> = cases
        .into_iter()
        .map(|(name, forged, tamper)| {
            let hook = Hook::start(&world, name, &permission_request());
            (name, forged, tamper, hook)
        })
        .collect();
    for (name, forged, tamper, hook) in handles {
        let request = Request::from_envelope(&sent_to_stream(&redis, name));
        let mut decision = request.decision(Verdict::Allow, "");
        tamper(&mut decision);
        let signer = if forged { &other_key } else { &key };
        let line = SignedMessage::sign(signer, decision).to_line();
        redis.command(&["LPUSH", &format!("hooktrail:events:decision:{name}"), &line]);
        let (stdout, elapsed) = hook.finish();
        assert_eq!(stdout, "", "{name}: acted on a bad decision");
        assert!(
            elapsed >= Duration::from_secs(WAIT_SECONDS - 1),
            "{name}: {elapsed:?}"
        );
        assert!(
            elapsed < Duration::from_secs(WAIT_SECONDS + 3),
            "{name}: {elapsed:?}"
        );
    }
}

#[test]
fn a_valid_decision_after_a_forged_one_is_still_taken() {
    let redis = RedisServer::start();
    let (mut world, key) = waiting_world();
    world.set("HOOKTRAIL_REDIS_URL", redis.url());
    let (stdout, _) = through_redis(&redis, &world, "after-forged", |request| {
        let forged = SignedMessage::sign(&Key::generate(), request.decision(Verdict::Deny, ""));
        let valid = SignedMessage::sign(&key, request.decision(Verdict::Allow, ""));
        // LPUSH puts the last first: push the valid one first, so BLPOP
        // reads the forged one, then the valid one.
        vec![valid.to_line(), "not json".to_owned(), forged.to_line()]
    });
    assert_eq!(
        serde_json::from_str::<Value>(&stdout).unwrap(),
        serde_json::from_str::<Value>(ALLOW).unwrap()
    );
}

#[test]
fn no_decision_within_the_deadline_prints_nothing() {
    let redis = RedisServer::start();
    let (mut world, _key) = waiting_world();
    world.set("HOOKTRAIL_REDIS_URL", redis.url());
    let (stdout, elapsed) = through_redis(&redis, &world, "nobody", |_| Vec::new());
    assert_eq!(stdout, "");
    assert!(
        elapsed >= Duration::from_secs(WAIT_SECONDS - 1),
        "{elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(WAIT_SECONDS + 3),
        "{elapsed:?}"
    );
}

#[test]
fn other_events_and_hooks_without_a_key_never_wait() {
    let redis = RedisServer::start();
    let (mut world, _key) = waiting_world();
    world.set("HOOKTRAIL_REDIS_URL", redis.url());
    let pre_tool_use = fixture_line("PreToolUse");
    let run = world.hook_with_id("pre-tool-use", &pre_tool_use);
    run.assert_silent_success();
    assert!(run.elapsed < Duration::from_secs(1), "{:?}", run.elapsed);
    let sent = sent_to_stream(&redis, "pre-tool-use");
    assert!(sent.get("wait_until").is_none(), "{sent}");
    // Without the key nothing could be verified: the request does not wait.
    std::fs::remove_file(world.path("home/.config/hooktrail/approvals.key")).unwrap();
    let run = world.hook_with_id("no-key", &permission_request());
    run.assert_silent_success();
    assert!(run.elapsed < Duration::from_secs(1), "{:?}", run.elapsed);
    assert!(sent_to_stream(&redis, "no-key").get("wait_until").is_none());
}

/// A socket that answers every line `ok`, then, for a waiting request, the
/// decisions `make` builds from it.
fn decide_on_socket(path: &Path, make: impl Fn(&Request) -> Vec<String> + Send + 'static) {
    let listener = UnixListener::bind(path).expect("bind the test socket");
    std::thread::spawn(move || {
        // Connections stay open, as the collector keeps a waiting one.
        let mut open = Vec::new();
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            let mut writer = stream.try_clone().unwrap();
            open.push(stream.try_clone().unwrap());
            let mut line = String::new();
            if BufReader::new(stream).read_line(&mut line).is_err() {
                continue;
            }
            let _ = writer.write_all(b"ok\n");
            let sent = envelope(line.trim());
            if sent.get("wait_until").is_some() {
                for decision in make(&Request::from_envelope(&sent)) {
                    let _ = writer.write_all(format!("{decision}\n").as_bytes());
                }
            }
        }
    });
}

#[test]
fn a_verified_decision_on_the_socket_is_taken_and_a_forged_one_ignored() {
    let (world, key) = waiting_world();
    let signer = key.clone();
    decide_on_socket(&world.socket(), move |request| {
        let signing = if request.event_id == "socket-allow" {
            signer.clone()
        } else {
            Key::generate()
        };
        let decision = Unsigned {
            kind: Kind::Permission,
            event_id: request.event_id.clone(),
            session_id: request.session_id.clone(),
            input_hash: request.input_hash.clone(),
            verdict: Verdict::Allow,
            reason: String::new(),
            by: "owner".to_owned(),
            exp: request.wait_until as u64,
        };
        vec![SignedMessage::sign(&signing, decision).to_line()]
    });
    let (stdout, elapsed) = Hook::start(&world, "socket-allow", &permission_request()).finish();
    assert_eq!(
        serde_json::from_str::<Value>(&stdout).unwrap(),
        serde_json::from_str::<Value>(ALLOW).unwrap()
    );
    assert!(elapsed < Duration::from_secs(WAIT_SECONDS), "{elapsed:?}");
    let (stdout, elapsed) = Hook::start(&world, "socket-forged", &permission_request()).finish();
    assert_eq!(stdout, "");
    assert!(
        elapsed >= Duration::from_secs(WAIT_SECONDS - 1),
        "{elapsed:?}"
    );
}

#[test]
fn with_wait_away_the_hook_waits_only_while_the_switch_is_on() {
    let redis = RedisServer::start();
    let (mut world, _key) = waiting_world();
    world.set("HOOKTRAIL_APPROVALS_WAIT", "away");
    world.set("HOOKTRAIL_REDIS_URL", redis.url());
    let run = world.hook_with_id("away-off", &permission_request());
    run.assert_silent_success();
    assert!(sent_to_stream(&redis, "away-off")
        .get("wait_until")
        .is_none());
    redis.command(&["SET", "hooktrail:events:away:*", "1"]);
    let (stdout, elapsed) = Hook::start(&world, "away-on", &permission_request()).finish();
    assert_eq!(stdout, "");
    assert!(
        elapsed >= Duration::from_secs(WAIT_SECONDS - 1),
        "{elapsed:?}"
    );
    assert!(sent_to_stream(&redis, "away-on")
        .get("wait_until")
        .is_some());
    // On the socket, a local collector's mirror file says away.
    let (mut world, _key) = waiting_world();
    world.set("HOOKTRAIL_APPROVALS_WAIT", "away");
    let collector = common::FakeCollector::start(&world.socket(), common::Answer::Ok);
    world
        .hook_with_id("socket-away-off", &permission_request())
        .assert_silent_success();
    assert!(envelope(&collector.next_line()).get("wait_until").is_none());
    std::fs::write(world.socket().with_extension("away"), "1\n").unwrap();
    world
        .hook_with_id("socket-away-on", &permission_request())
        .assert_silent_success();
    assert!(envelope(&collector.next_line()).get("wait_until").is_some());
}
