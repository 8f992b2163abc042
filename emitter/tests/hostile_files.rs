//! Hostile and careless files around the hook (issue 16): a FIFO or a device
//! where a transcript or the config file should be, a config with one
//! mistake, a transcript too big for one envelope, a transcript rewritten in
//! place, and the pending list of subagent transcripts. Each test drives the
//! real `hooktrail-emit` and reads back what it spooled.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Answer, FakeCollector, World};
use hooktrail_shared::envelope::MAX_LINE_BYTES;
use serde_json::{json, Value};

/// Far more than a hook may take; a hook still running then is stuck.
const STUCK_AFTER: Duration = Duration::from_secs(10);

fn mkfifo(path: &Path) {
    let name = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path this test made.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// What one bounded run left behind.
struct Finished {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
    elapsed: Duration,
}

/// A running emitter, killed if the test gives up on it.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the emitter with `stdin` and `arguments`, failing (and killing it)
/// when it is still running after [`STUCK_AFTER`]: a hook that waits on a
/// FIFO would otherwise hang the test too.
fn run_bounded(world: &World, arguments: &[&str], stdin: &str) -> Finished {
    use std::io::{Read, Write};
    let mut command: Command = world.command(arguments);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut running = Running(command.spawn().expect("spawn hooktrail-emit"));
    let _ = running.0.stdin.take().unwrap().write_all(stdin.as_bytes());
    let mut status = None;
    hooktrail_testkit::wait_until(
        &format!("hooktrail-emit {arguments:?} to finish (else it is stuck)"),
        STUCK_AFTER,
        || {
            status = running.0.try_wait().unwrap();
            status.is_some()
        },
    );
    let elapsed = started.elapsed();
    let mut stdout = Vec::new();
    let mut stderr = String::new();
    running
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    running
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Finished {
        code: status.and_then(|status| status.code()),
        stdout,
        stderr,
        elapsed,
    }
}

/// Runs one hook and checks its invariants: exit 0, nothing on stdout,
/// well within its budget.
fn hook(world: &World, payload: &Value) {
    let run = run_bounded(world, &[], &payload.to_string());
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert!(run.stdout.is_empty(), "stdout must stay empty");
    assert!(
        run.elapsed < Duration::from_secs(3),
        "the hook took {:?}",
        run.elapsed
    );
}

/// The spooled envelopes, in order.
fn spooled(world: &World) -> Vec<Value> {
    world
        .spool_lines()
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn boundary(name: &str, transcript: &Path, extra: Value) -> Value {
    let mut payload = json!({"session_id": "s-hostile", "transcript_path": transcript,
        "cwd": "/home/dev/project", "prompt_id": "p-stop", "hook_event_name": name});
    if let (Some(object), Some(more)) = (payload.as_object_mut(), extra.as_object()) {
        object.extend(more.clone());
    }
    payload
}

/// One response line; `pad` lengthens its ids, so its usage JSON is big.
fn response(id: &str, pad: usize) -> String {
    let long = "x".repeat(pad);
    json!({"type": "assistant", "requestId": format!("req_{id}{long}"), "timestamp": "2026-11-28T10:00:00.000Z",
           "message": {"id": format!("msg_{id}{long}"), "model": "claude-sonnet-4-5",
                       "usage": {"input_tokens": 1, "output_tokens": 2}}})
    .to_string()
        + "\n"
}

fn user(prompt_id: &str) -> String {
    json!({"type": "user", "promptId": prompt_id, "message": {"role": "user", "content": "go"}})
        .to_string()
        + "\n"
}

/// The message ids of every response the envelopes carried.
fn shipped_ids(envelopes: &[Value]) -> Vec<String> {
    envelopes
        .iter()
        .flat_map(|envelope| {
            envelope["usage"]["responses"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|response| response["message_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_fifo_transcript_path_neither_hangs_the_hook_nor_loses_the_event() {
    let world = World::new();
    let fifo = world.path("transcript.jsonl");
    mkfifo(&fifo);
    std::fs::create_dir(world.path("sub")).unwrap();
    let dotted = world.path("sub/../transcript.jsonl");
    hook(&world, &boundary("Stop", &fifo, json!({})));
    hook(
        &world,
        &boundary(
            "SubagentStop",
            &fifo,
            json!({"agent_id": "a1", "agent_transcript_path": fifo}),
        ),
    );
    hook(&world, &boundary("PreCompact", &dotted, json!({})));
    hook(
        &world,
        &boundary("SessionEnd", Path::new("/dev/zero"), json!({})),
    );
    let events = spooled(&world);
    let hooks: Vec<&str> = events.iter().map(|e| e["hook"].as_str().unwrap()).collect();
    assert_eq!(hooks, ["Stop", "SubagentStop", "PreCompact", "SessionEnd"]);
    assert!(events.iter().all(|event| event.get("usage").is_none()));
}

#[test]
fn a_fifo_in_the_pending_subagent_list_does_not_hang_the_next_stop() {
    let world = World::new();
    let session = world.path("s.jsonl");
    let agent = world.path("agent-a1.jsonl");
    std::fs::write(&session, response("m1", 0)).unwrap();
    std::fs::write(&agent, response("a1", 0)).unwrap();
    hook(
        &world,
        &boundary(
            "SubagentStop",
            &session,
            json!({"agent_id": "a1", "agent_transcript_path": agent}),
        ),
    );
    // The listed subagent transcript is now a FIFO.
    std::fs::remove_file(&agent).unwrap();
    mkfifo(&agent);
    hook(&world, &boundary("Stop", &session, json!({})));
    hook(&world, &boundary("Stop", &session, json!({})));
    let events = spooled(&world);
    assert_eq!(events.len(), 3);
    assert_eq!(shipped_ids(&events), ["msg_a1", "msg_m1"]);
}

#[test]
fn a_config_file_that_is_a_fifo_or_dev_zero_is_a_config_error_not_a_stall() {
    let mut world = World::new();
    let fifo = world.path("config.json");
    mkfifo(&fifo);
    let prompt = json!({"session_id": "s", "hook_event_name": "UserPromptSubmit",
        "prompt": "the launch plan is secret"});
    for config in [fifo.clone(), PathBuf::from("/dev/zero")] {
        world.set("HOOKTRAIL_CONFIG", config.display().to_string());
        hook(&world, &prompt);
        let check = run_bounded(&world, &["check"], "");
        assert_eq!(
            check.code,
            Some(1),
            "{}",
            String::from_utf8_lossy(&check.stdout)
        );
        let out = String::from_utf8_lossy(&check.stdout).into_owned();
        assert!(out.contains("CONFIG ERROR"), "{out}");
        assert!(out.contains(&config.display().to_string()), "{out}");
    }
    let events = spooled(&world);
    assert_eq!(events.len(), 2);
    for event in events {
        assert_eq!(event["config_error"], true, "{event}");
        assert!(!event.to_string().contains("launch plan"), "{event}");
    }
}

/// Writes `text` as the config file and returns the envelope of one prompt
/// (delivered to a listening collector, so `check` has a working path and
/// its exit code speaks of the config alone) and `check`'s output and code.
fn with_config(text: &str, prompt: &str) -> (Value, String, Option<i32>) {
    let mut world = World::new();
    let config = world.path("config.json");
    std::fs::write(&config, text).unwrap();
    world.set("HOOKTRAIL_CONFIG", config.display().to_string());
    let collector = FakeCollector::start(&world.socket(), Answer::Ok);
    hook(
        &world,
        &json!({"session_id": "s", "hook_event_name": "UserPromptSubmit", "prompt": prompt}),
    );
    let event = serde_json::from_str(&collector.next_line()).unwrap();
    let check = run_bounded(&world, &["check"], "");
    (
        event,
        String::from_utf8_lossy(&check.stdout).into_owned(),
        check.code,
    )
}

#[test]
fn a_config_with_one_syntax_or_type_error_never_weakens_privacy() {
    for (config, named) in [
        (r#"{"privacy":"metadata",}"#, "not valid JSON"),
        (r#"{"privacy":"metadata","redis":{"url":5}}"#, "redis.url"),
        (r#"{"privacy":"metdata"}"#, "unknown privacy level"),
        (r#"["privacy","metadata"]"#, "must hold a JSON object"),
    ] {
        let (event, check, code) = with_config(config, "the launch plan is secret");
        assert!(
            !event.to_string().contains("launch plan"),
            "{config}: the prompt left in clear: {event}"
        );
        assert_eq!(event["config_error"], true, "{config}: {event}");
        assert_eq!(code, Some(1), "{config}: check must fail: {check}");
        assert!(check.contains("CONFIG ERROR"), "{config}: {check}");
        assert!(check.contains(named), "{config}: {check}");
    }
}

#[test]
fn a_config_with_a_wrong_key_keeps_the_users_redact_patterns_and_every_other_key() {
    let (event, check, code) = with_config(
        r#"{"redact":{"patterns":[{"name":"acme","prefix":"acme_"}]},"spool_dir":["x"]}"#,
        "deploy with acme_0123456789abcdefghijklmnop",
    );
    assert!(!event.to_string().contains("acme_0123"), "{event}");
    assert_eq!(event["config_error"], true);
    assert_eq!(code, Some(1));
    assert!(check.contains("spool_dir must be a string"), "{check}");
    // The pattern of the same file is still in force.
    assert!(check.contains("acme"), "{check}");
    assert!(check.contains("metadata"), "{check}");
}

#[test]
fn a_good_config_gives_no_flag_and_check_passes_its_config_part() {
    let (event, check, code) = with_config(r#"{"privacy":"full"}"#, "hello there");
    assert!(event.get("config_error").is_none(), "{event}");
    assert!(event.to_string().contains("hello there"), "{event}");
    assert!(!check.contains("CONFIG ERROR"), "{check}");
    assert_eq!(code, Some(0), "{check}");
}

#[test]
fn a_transcript_too_big_for_one_envelope_is_carried_over_with_more_and_nothing_is_lost() {
    let world = World::new();
    let transcript = world.path("t.jsonl");
    // About 4.5 MB of responses whose usage JSON is as big: long ids, so
    // that even the few hundred responses a loaded machine reads within the
    // time budget pass the line limit when nothing caps them.
    let count = 2_000;
    let mut text = user("p0");
    for index in 0..count {
        text.push_str(&response(&format!("{index:05}-"), 1_000));
    }
    std::fs::write(&transcript, &text).unwrap();
    let mut previous_to = 0;
    // Each read is bounded in time too, so on a loaded machine it takes
    // more hooks; the loop ends at the first hook with nothing left.
    for _ in 0..300 {
        hook(&world, &boundary("Stop", &transcript, json!({})));
        let events = spooled(&world);
        let last = events.last().unwrap();
        if last.get("usage").is_none() {
            break;
        }
        assert_eq!(last["usage"]["from"], previous_to, "no gap, no overlap");
        previous_to = last["usage"]["to"].as_u64().unwrap();
    }
    let lines = world.spool_lines();
    for line in &lines {
        assert!(
            line.len() <= MAX_LINE_BYTES,
            "an envelope of {} bytes passes the {MAX_LINE_BYTES}-byte limit",
            line.len()
        );
    }
    let events = spooled(&world);
    assert!(
        events.iter().any(|event| event["usage"]["more"] == true),
        "the usage was carried over"
    );
    let ids = shipped_ids(&events);
    assert_eq!(ids.len(), count, "every response shipped exactly once");
    assert_eq!(previous_to, text.len() as u64);
}

#[test]
fn each_response_is_billed_to_its_own_prompt_also_across_a_carry_over() {
    let world = World::new();
    let transcript = world.path("t.jsonl");
    let text = user("p0")
        + &response("r0", 0)
        + &user("p1")
        + &response("r1", 0)
        + &user("p2")
        + &response("r2", 0);
    std::fs::write(&transcript, &text).unwrap();
    hook(
        &world,
        &boundary("Stop", &transcript, json!({"prompt_id": "p2"})),
    );
    // The next part starts inside p2: its response has no user line before it.
    let mut grown = text.clone();
    grown.push_str(&response("r3", 0));
    std::fs::write(&transcript, &grown).unwrap();
    hook(
        &world,
        &boundary("Stop", &transcript, json!({"prompt_id": "p3"})),
    );
    let prompts: Vec<(String, String)> = spooled(&world)
        .iter()
        .flat_map(|event| event["usage"]["responses"].as_array().cloned().unwrap())
        .map(|response| {
            (
                response["message_id"].as_str().unwrap().to_owned(),
                response["prompt_id"].as_str().unwrap_or("none").to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [("r0", "p0"), ("r1", "p1"), ("r2", "p2"), ("r3", "p2")]
        .iter()
        .map(|(id, prompt)| (format!("msg_{id}"), prompt.to_string()))
        .collect();
    assert_eq!(prompts, expected);
}

#[test]
fn a_transcript_rewritten_in_place_is_read_again_from_its_start() {
    let world = World::new();
    let transcript = world.path("t.jsonl");
    let first = json!({"type": "queue-operation", "sessionId": "old"}).to_string() + "\n";
    std::fs::write(&transcript, first + &response("a", 0) + &response("b", 0)).unwrap();
    hook(&world, &boundary("Stop", &transcript, json!({})));
    // `cat new > t`: the same inode, new content, longer than what was read.
    let first = json!({"type": "queue-operation", "sessionId": "new"}).to_string() + "\n";
    let rewritten =
        first + &response("c", 0) + &response("d", 0) + &response("e", 0) + &response("f", 0);
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&transcript).unwrap());
    std::fs::write(&transcript, &rewritten).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&transcript).unwrap()),
        inode
    );
    hook(&world, &boundary("Stop", &transcript, json!({})));
    // Shrunk below the offset: read from the start too.
    let shrunk = json!({"type": "queue-operation", "sessionId": "third"}).to_string()
        + "\n"
        + &response("g", 0);
    std::fs::write(&transcript, &shrunk).unwrap();
    hook(&world, &boundary("Stop", &transcript, json!({})));
    assert_eq!(
        shipped_ids(&spooled(&world)),
        ["msg_a", "msg_b", "msg_c", "msg_d", "msg_e", "msg_f", "msg_g"]
    );
}

#[test]
fn an_unfinished_subagent_transcript_stays_pending_once_until_read_to_its_end() {
    let world = World::new();
    let session = world.path("s.jsonl");
    let agent = world.path("s/subagents/agent-a1.jsonl");
    std::fs::create_dir_all(agent.parent().unwrap()).unwrap();
    std::fs::write(&session, response("m1", 0)).unwrap();
    // About five envelopes' worth of usage: the three SubagentStop hooks
    // read three, the Stops the rest.
    let count = 15_000;
    let mut text: String = (0..count - 1)
        .map(|index| response(&format!("a{index:05}-"), 150))
        .collect();
    // The agent's last response ends its turn: once that is read, the
    // agent is done (one that never ends its turn stays 10 s, DESIGN §3).
    let mut last: serde_json::Value =
        serde_json::from_str(&response(&format!("a{:05}-", count - 1), 150)).unwrap();
    last["message"]["stop_reason"] = json!("end_turn");
    text.push_str(&(last.to_string() + "\n"));
    std::fs::write(&agent, &text).unwrap();
    let agent_stop = boundary(
        "SubagentStop",
        &session,
        json!({"agent_id": "a1", "agent_transcript_path": agent}),
    );
    // Noted three times (three SubagentStop hooks of one agent).
    for _ in 0..3 {
        hook(&world, &agent_stop);
    }
    let pending = std::fs::read_dir(world.state_dir().join("transcripts"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|ext| ext == "agents"))
        .expect("a pending list");
    for _ in 0..300 {
        hook(&world, &boundary("Stop", &session, json!({})));
        match std::fs::read_to_string(&pending) {
            Ok(list) => assert_eq!(list.lines().count(), 1, "each agent once: {list}"),
            Err(_) => break,
        }
    }
    assert!(
        !pending.exists(),
        "read to its end, the agent leaves the list"
    );
    let ids = shipped_ids(&spooled(&world));
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        unique.len(),
        count + 1,
        "every response of both transcripts"
    );
    for line in world.spool_lines() {
        assert!(line.len() <= MAX_LINE_BYTES);
    }
}
