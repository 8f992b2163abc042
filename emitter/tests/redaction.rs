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
    assert!(stdout.contains("built-in rules (17)"), "{stdout}");
    assert!(stdout.contains("disabled: jwt"), "{stdout}");
    assert!(stdout.contains("user pattern acme-token"), "{stdout}");
}

/// The one envelope a hook spooled for `payload` (no Redis, no collector).
fn spooled(world: &World, payload: &[u8]) -> String {
    let run = world.hook(Stdin::Bytes(payload.to_vec()));
    run.assert_silent_success();
    let mut lines = world.spool_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines.remove(0)
}

/// Issue 16, item 4: a prompt over 1 MiB is shortened, and the cut fell
/// inside a token; the 18 characters kept of it (`ghp_` and 14) matched no
/// rule and left the machine with `redactions: null`.
#[test]
fn a_secret_cut_by_the_one_mebibyte_shortening_leaves_no_part_behind() {
    let world = World::new();
    // Prose up to 900 kB, then tokens only, so that the cut (a little under
    // 1 MiB) falls inside one of them.
    let mut prompt = "lorem ipsum dolor sit amet ".repeat(900_000 / 27);
    while prompt.len() < 1_200_000 {
        prompt.push(' ');
        prompt.push_str(GITHUB_TOKEN);
    }
    let payload = json!({"session_id": "s-redact", "hook_event_name": "UserPromptSubmit",
                         "prompt_id": "p", "prompt": prompt})
    .to_string();
    let line = spooled(&world, payload.as_bytes());
    let value = envelope(&line);
    assert_eq!(value["truncated"], true, "the payload was not shortened");
    let kept = value["payload"]["prompt"].as_str().unwrap();
    assert!(kept.contains("…[hooktrail: shortened from"), "no marker");
    assert!(
        !line.contains("ghp_"),
        "a part of a token left the machine: {}",
        &kept[kept.len() - 200..]
    );
    assert!(
        value["redactions"]["github-token"].as_u64() > Some(0),
        "{}",
        value["redactions"]
    );
}

/// Issue 16, item 5: `\u0041KIA…` in a payload's JSON is `AKIA…`, and it
/// passed the raw-text scan.
#[test]
fn a_secret_written_with_unicode_escapes_is_redacted() {
    let world = World::new();
    let payload = r#"{"session_id":"s-redact","hook_event_name":"UserPromptSubmit","prompt_id":"p","prompt":"key \u0041KIAIOSFODNN7EXAMPLE, token \u0067hp_Zq8v1Xw3Ty5Ur7Ws9Qp2Lm4Nk6Jh8Gf0Dc1B, \u00e9t\u00e9"}"#;
    let line = spooled(&world, payload.as_bytes());
    let value = envelope(&line);
    assert_eq!(
        value["payload"]["prompt"],
        "key [REDACTED:aws-access-key-id], token [REDACTED:github-token], été",
        "{line}"
    );
    assert_eq!(value["redactions"]["aws-access-key-id"], 1, "{line}");
    assert_eq!(value["redactions"]["github-token"], 1, "{line}");

    // Escapes without a secret leave the payload byte for byte as it came.
    let world = World::new();
    let clean = r#"{"session_id":"s-redact","hook_event_name":"UserPromptSubmit","prompt":"caf\u00e9 \u001b[31mred\u001b[0m a\/b"}"#;
    let line = spooled(&world, clean.as_bytes());
    assert!(line.contains(clean), "{line}");
    assert!(envelope(&line).get("redactions").is_none(), "{line}");
}

/// Issue 16, item 24: secrets no rule covered, each as a hook sees it.
#[test]
fn secrets_no_rule_covered_before_are_redacted_by_the_hook() {
    let registry_auth = "b2N0bzpUcjBiNGRvci1yZWdpc3RyeS1wYXNz"; // octo:Tr0b4dor-registry-pass
    let key_data = "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlFb3dJQkFBS0NBUUVBMXc5cQotLS0tLUVORCBSU0EgUFJJVkFURSBLRVktLS0tLQo=";
    let bash = |command: String| {
        json!({"session_id": "s-redact", "hook_event_name": "PreToolUse", "tool_name": "Bash",
               "tool_use_id": "toolu_1", "tool_input": {"command": command}})
    };
    let read = |path: &str, content: String| {
        json!({"session_id": "s-redact", "hook_event_name": "PostToolUse", "tool_name": "Read",
               "tool_use_id": "toolu_2", "tool_input": {"file_path": path},
               "tool_response": {"type": "text", "file": {"filePath": path, "content": content}}})
    };
    let cases = [
        ("aws-secret-key", AWS_SECRET, bash(format!("aws configure set aws_secret_access_key {AWS_SECRET}"))),
        ("secret-assignment", DB_PASSWORD, bash(format!("DB_PASS={DB_PASSWORD} ./migrate.sh"))),
        ("mysql-password", DB_PASSWORD, bash(format!("mysql -h db -u app -p{DB_PASSWORD} shop < dump.sql"))),
        (
            "registry-auth",
            registry_auth,
            read("/home/dev/.docker/config.json", format!("{{\n  \"auths\": {{\n    \"ghcr.io\": {{\n      \"auth\": \"{registry_auth}\"\n    }}\n  }}\n}}\n")),
        ),
        (
            "private-key",
            "MIIEowIBAAKCAQEA1w9q",
            read("/home/dev/.kube/config", format!("users:\n- name: admin\n  user:\n    client-key-data: {key_data}\n")),
        ),
        ("drop-path", DB_PASSWORD, read("/srv/app/prod.env", format!("MODE=fast\nDB_PASS={DB_PASSWORD}\n"))),
        ("drop-path", DB_PASSWORD, read("/srv/app/.env.production", format!("DB_PASS={DB_PASSWORD}\n"))),
    ];
    for (rule, secret, payload) in cases {
        let world = World::new();
        let line = spooled(&world, payload.to_string().as_bytes());
        let value = envelope(&line);
        let decoded = value["payload"].to_string();
        assert!(
            !line.contains(secret) && !decoded.contains(secret),
            "{rule}: {line}"
        );
        assert!(!decoded.contains(key_data), "{rule}: {line}");
        assert!(
            value["redactions"][rule].as_u64() > Some(0),
            "{rule}: {line}"
        );
    }
}
