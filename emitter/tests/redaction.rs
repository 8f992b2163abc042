//! Secrets never leave the machine (issue 12): a secret planted in a prompt,
//! in a Bash command and in a `Read` of a `.env` file reaches neither Redis,
//! nor the collector's socket, nor the spool, at any privacy level; and the
//! `redact` command shows what a payload becomes.

mod common;

use common::{envelope, stream_envelopes, Answer, FakeCollector, Stdin, World};
use serde_json::{json, Value};

/// Secrets made up for the test (right shapes, never real keys).
const GITHUB_TOKEN: &str = "ghp_Zq8v1Xw3Ty5Ur7Ws9Qp2Lm4Nk6Jh8Gf0Dc1B";
const AWS_SECRET: &str = "Qm7Tz2Xv9Lp4Wr8Ks1Nd6Jf3Hb5Gc0Yx2Vt7Ua9w";
const DB_PASSWORD: &str = "Tr0ub4dor-and-3-horses";
const STRIPE_KEY: &str = "sk_live_9Fq2Wz7Xc4Vb1Nm8Lk5Jh3Gd";

const SECRETS: [&str; 4] = [GITHUB_TOKEN, AWS_SECRET, DB_PASSWORD, STRIPE_KEY];

/// The three hook payloads of a session that leaks: a prompt, a Bash command,
/// a `Read` of `.env`.
fn leaking_payloads() -> Vec<(&'static str, String)> {
    let env_file = format!(
        "# local settings\nDB_HOST=localhost\nDB_PASSWORD={DB_PASSWORD}\nSTRIPE_SECRET_KEY={STRIPE_KEY}\n"
    );
    vec![
        (
            "prompt",
            json!({"session_id": "s-redact", "cwd": "/home/dev/project", "hook_event_name": "UserPromptSubmit",
                   "prompt": format!("push with my token {GITHUB_TOKEN} please")})
            .to_string(),
        ),
        (
            "bash",
            json!({"session_id": "s-redact", "cwd": "/home/dev/project", "hook_event_name": "PreToolUse",
                   "tool_name": "Bash", "tool_use_id": "toolu_bash",
                   "tool_input": {"command": format!("export AWS_SECRET_ACCESS_KEY={AWS_SECRET} && aws s3 ls"),
                                  "description": "list buckets"}})
            .to_string(),
        ),
        (
            "read-env",
            json!({"session_id": "s-redact", "cwd": "/home/dev/project", "hook_event_name": "PostToolUse",
                   "tool_name": "Read", "tool_use_id": "toolu_read",
                   "tool_input": {"file_path": "/home/dev/project/.env"},
                   "tool_response": {"type": "text", "file": {"filePath": "/home/dev/project/.env",
                                     "content": env_file, "numLines": 4, "startLine": 1, "totalLines": 4}}})
            .to_string(),
        ),
    ]
}

fn assert_no_secret(where_: &str, privacy: &str, what: &str, line: &str) {
    for secret in SECRETS {
        assert!(
            !line.contains(secret),
            "{what} at privacy {privacy}: a secret reached {where_}: {line}"
        );
    }
    let value = envelope(line);
    assert_eq!(value["session_id"], "s-redact", "{line}");
    let redactions = value["redactions"]
        .as_object()
        .unwrap_or_else(|| panic!("{what} at privacy {privacy}: no redactions recorded: {line}"));
    assert!(!redactions.is_empty());
}

#[derive(Debug, Clone, Copy)]
enum Path {
    Redis,
    Socket,
    Spool,
}

fn run_session(privacy: &str, path: Path) {
    let mut world = World::new();
    world.set("HOOKTRAIL_PRIVACY", privacy);
    let server = match path {
        Path::Redis => {
            let server = hooktrail_testkit::RedisServer::start();
            world.set("HOOKTRAIL_REDIS_URL", server.url());
            Some(server)
        }
        _ => None,
    };
    let collector = match path {
        Path::Socket => Some(FakeCollector::start(&world.socket(), Answer::Ok)),
        _ => None,
    };
    let payloads = leaking_payloads();
    let mut received = Vec::new();
    for (what, payload) in &payloads {
        let run = world.hook(Stdin::Bytes(payload.as_bytes().to_vec()));
        run.assert_silent_success();
        for secret in SECRETS {
            assert!(!run.stderr.contains(secret), "stderr: {}", run.stderr);
        }
        if let Some(collector) = &collector {
            received.push((*what, collector.next_line()));
        }
    }
    match path {
        Path::Redis => {
            let envelopes = stream_envelopes(server.as_ref().unwrap(), "hooktrail:events");
            assert_eq!(envelopes.len(), payloads.len());
            for ((what, _), value) in payloads.iter().zip(&envelopes) {
                received.push((what, value.to_string()));
            }
            assert!(world.spool_lines().is_empty());
        }
        Path::Socket => assert!(world.spool_lines().is_empty()),
        Path::Spool => {
            let lines = world.spool_lines();
            assert_eq!(lines.len(), payloads.len());
            for ((what, _), line) in payloads.iter().zip(lines) {
                received.push((what, line));
            }
        }
    }
    assert_eq!(received.len(), payloads.len(), "{path:?}");
    for (what, line) in &received {
        assert_no_secret(&format!("{path:?}"), privacy, what, line);
        let payload = &envelope(line)["payload"];
        match (privacy, *what) {
            ("metadata", _) => {
                assert!(payload.get("_sizes").is_some(), "{line}");
            }
            ("redacted", "read-env") => {
                assert_eq!(payload["tool_response"], "[REDACTED:drop-path]", "{line}");
            }
            (_, "read-env") => {
                // Full keeps the file, without its secrets.
                let content = payload["tool_response"]["file"]["content"]
                    .as_str()
                    .unwrap();
                assert!(content.contains("DB_HOST=localhost"), "{line}");
                assert!(
                    content.contains("DB_PASSWORD=[REDACTED:secret-assignment]"),
                    "{line}"
                );
                assert!(
                    content.contains("STRIPE_SECRET_KEY=[REDACTED:stripe-key]"),
                    "{line}"
                );
            }
            (_, "prompt") => {
                assert_eq!(
                    payload["prompt"],
                    "push with my token [REDACTED:github-token] please"
                );
            }
            _ => {}
        }
    }
}

#[test]
fn planted_secrets_reach_neither_redis_nor_socket_nor_spool_at_any_privacy_level() {
    for privacy in ["full", "redacted", "metadata"] {
        for path in [Path::Redis, Path::Socket, Path::Spool] {
            run_session(privacy, path);
        }
    }
}

#[test]
fn a_clean_payload_is_sent_byte_for_byte_without_redactions() {
    let world = World::new();
    let payload = common::fixture_line("PostToolUse");
    let run = world.hook(Stdin::Bytes(payload.as_bytes().to_vec()));
    run.assert_silent_success();
    let lines = world.spool_lines();
    assert_eq!(lines.len(), 1);
    let value: Value = envelope(&lines[0]);
    assert!(value.get("redactions").is_none(), "{}", lines[0]);
    let expected: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(value["payload"], expected);
}

#[test]
fn redact_command_shows_the_result_and_the_rules_and_never_the_secret() {
    let world = World::new();
    let input: String = leaking_payloads()
        .into_iter()
        .map(|(_, payload)| payload + "\n")
        .collect();
    let run = world.run(&["redact"], Stdin::Bytes(input.into_bytes()));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let stdout = String::from_utf8(run.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    for line in stdout.lines() {
        serde_json::from_str::<Value>(line).unwrap();
    }
    for secret in SECRETS {
        assert!(!stdout.contains(secret) && !run.stderr.contains(secret));
    }
    assert!(stdout.contains("[REDACTED:github-token]"), "{stdout}");
    assert!(stdout.contains("[REDACTED:drop-path]"), "{stdout}");
    assert!(
        run.stderr.contains("fired: github-token x1"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("fired: drop-path x1"), "{}", run.stderr);

    let file = world.path("payload.json");
    std::fs::write(&file, leaking_payloads()[1].1.as_bytes()).unwrap();
    let run = world.run(
        &["redact", "--privacy", "full", file.to_str().unwrap()],
        Stdin::Null,
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("fired: aws-secret-key x1"),
        "{}",
        run.stderr
    );
}

#[test]
fn check_lists_the_privacy_level_and_the_active_rules() {
    let mut world = World::new();
    let config = world.path("config.json");
    std::fs::write(
        &config,
        r#"{"privacy": "metadata", "redact": {"disable": ["jwt"],
            "patterns": [{"name": "acme-token", "prefix": "acme_", "chars": "A-Za-z0-9", "min_len": 20}]}}"#,
    )
    .unwrap();
    world.set("HOOKTRAIL_CONFIG", config.display().to_string());
    let run = world.run(&["check"], Stdin::Null);
    let stdout = String::from_utf8(run.stdout).unwrap();
    assert!(stdout.contains("privacy: metadata"), "{stdout}");
    assert!(stdout.contains("built-in rules (15)"), "{stdout}");
    assert!(stdout.contains("disabled: jwt"), "{stdout}");
    assert!(stdout.contains("user pattern acme-token"), "{stdout}");
}
