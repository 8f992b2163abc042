//! The subcommands for people: `install`, `uninstall`, `check`, `--version`,
//! `--help`, run as the real binary on real settings files.

mod common;

use std::path::Path;

use common::{Stdin, World};
use hooktrail_shared::envelope::HookEvent;
use hooktrail_testkit::{RedisServer, Silence, SilentListener};
use serde_json::{json, Value};

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn binary_path() -> String {
    Path::new(common::BINARY)
        .canonicalize()
        .unwrap()
        .display()
        .to_string()
}

fn user_settings() -> Value {
    json!({
        "model": "opus",
        "permissions": {"allow": ["Bash(ls:*)"]},
        "hooks": {
            "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "/usr/local/bin/guard.sh", "timeout": 10}]}],
            "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}]
        },
        "statusLine": {"type": "command", "command": "echo hi"}
    })
}

fn backups(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("hooktrail-backup"))
        .collect()
}

#[test]
fn install_merges_idempotently_and_uninstall_restores_the_original() {
    let world = World::new();
    let settings = world.path("home/.claude/settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    let original = user_settings();
    std::fs::write(&settings, serde_json::to_string_pretty(&original).unwrap()).unwrap();

    let run = world.run(&["install"], Stdin::Null);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let installed = read_json(&settings);
    let binary = binary_path();
    let hooks = installed["hooks"].as_object().unwrap();
    for event in HookEvent::OBSERVER_SAFE {
        let groups = hooks[event.name()]
            .as_array()
            .unwrap_or_else(|| panic!("{} missing", event.name()));
        let ours: Vec<&Value> = groups
            .iter()
            .filter(|group| group["hooks"][0]["command"] == binary.as_str())
            .collect();
        assert_eq!(ours.len(), 1, "{}", event.name());
        assert_eq!(
            ours[0]["hooks"][0],
            json!({"type": "command", "command": binary, "args": [], "timeout": 5})
        );
        assert_eq!(
            ours[0].get("matcher").is_some(),
            event.takes_matcher(),
            "{}",
            event.name()
        );
        if event.takes_matcher() {
            assert_eq!(ours[0]["matcher"], "*");
        }
    }
    assert!(hooks.get("WorktreeCreate").is_none());
    assert!(hooks.get("MessageDisplay").is_none());
    // Other keys and hooks are kept, in their order.
    assert_eq!(installed["model"], "opus");
    assert_eq!(installed["statusLine"], original["statusLine"]);
    assert_eq!(hooks["PreToolUse"][0], original["hooks"]["PreToolUse"][0]);
    assert_eq!(hooks["Stop"][0], original["hooks"]["Stop"][0]);
    let keys: Vec<&String> = installed.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["model", "permissions", "hooks", "statusLine"]);
    // A backup of the previous file was written.
    let first_backups = backups(settings.parent().unwrap());
    assert_eq!(first_backups.len(), 1);
    assert_eq!(
        read_json(&settings.parent().unwrap().join(&first_backups[0])),
        original
    );

    // Idempotent: a second install changes nothing and writes no backup.
    let run = world.run(&["install"], Stdin::Null);
    assert_eq!(run.code, Some(0));
    assert!(String::from_utf8_lossy(&run.stdout).contains("nothing changed"));
    assert_eq!(read_json(&settings), installed);
    assert_eq!(backups(settings.parent().unwrap()).len(), 1);

    // Uninstall removes exactly what install added.
    let run = world.run(&["uninstall"], Stdin::Null);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(read_json(&settings), original);
}

#[test]
fn install_never_registers_worktree_create_or_message_display_and_removes_old_ones() {
    let world = World::new();
    let settings = world.path("settings.json");
    std::fs::write(
        &settings,
        r#"{"hooks":{"WorktreeCreate":[{"hooks":[{"type":"command","command":"/old/bin/hooktrail-emit"}]}],
                     "MessageDisplay":[{"hooks":[{"type":"command","command":"/old/bin/hooktrail-emit"},{"type":"command","command":"/other/tool"}]}]}}"#,
    )
    .unwrap();
    let run = world.run(
        &["install", "--settings", settings.to_str().unwrap()],
        Stdin::Null,
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let installed = read_json(&settings);
    assert!(installed["hooks"].get("WorktreeCreate").is_none());
    assert_eq!(
        installed["hooks"]["MessageDisplay"],
        json!([{"hooks": [{"type": "command", "command": "/other/tool"}]}])
    );
}

/// The 13 events an earlier version registered.
const OLD_EVENTS: [&str; 13] = [
    "SessionStart",
    "SessionEnd",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PermissionRequest",
    "Notification",
    "Stop",
    "SubagentStart",
    "SubagentStop",
    "PreCompact",
    "CwdChanged",
];

#[test]
fn install_upgrades_an_older_installation_to_every_safe_event_without_duplicates() {
    let world = World::new();
    let settings = world.path("home/.claude/settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    let binary = binary_path();
    let mut hooks = serde_json::Map::new();
    for event in OLD_EVENTS {
        let entry = json!({"type": "command", "command": binary, "args": [], "timeout": 5});
        let group = if HookEvent::from_name(event).takes_matcher() {
            json!({"matcher": "*", "hooks": [entry]})
        } else {
            json!({"hooks": [entry]})
        };
        hooks.insert(event.to_owned(), json!([group]));
    }
    std::fs::write(&settings, json!({"hooks": hooks}).to_string()).unwrap();

    // `check` sees the gap before the upgrade.
    let before = world.run(&["check"], Stdin::Null);
    let out = String::from_utf8_lossy(&before.stdout);
    assert!(out.contains("13 of 30 events registered"), "{out}");
    assert!(out.contains("missing: PostToolBatch"), "{out}");

    for _ in 0..2 {
        let run = world.run(&["install"], Stdin::Null);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
    }
    let installed = read_json(&settings);
    let hooks = installed["hooks"].as_object().unwrap();
    assert_eq!(hooks.len(), 30, "{:?}", hooks.keys().collect::<Vec<_>>());
    for event in HookEvent::OBSERVER_SAFE {
        let groups = hooks[event.name()].as_array().unwrap();
        assert_eq!(groups.len(), 1, "one entry for {}", event.name());
        assert_eq!(groups[0].get("matcher").is_some(), event.takes_matcher());
    }
    for never in ["WorktreeCreate", "FileChanged", "MessageDisplay"] {
        assert!(hooks.get(never).is_none(), "{never} registered");
    }
    let after = world.run(&["check"], Stdin::Null);
    let out = String::from_utf8_lossy(&after.stdout);
    assert!(out.contains("30 of 30 events registered"), "{out}");
    assert!(!out.contains("missing:"), "{out}");
}

#[test]
fn dry_run_prints_the_result_and_writes_nothing() {
    let world = World::new();
    let settings = world.path("proj/.claude/settings.local.json");
    let run = world.run(&["install", "--scope", "local", "--dry-run"], Stdin::Null);
    // --scope local is relative to the current directory, the world's root.
    let local = world.path(".claude/settings.local.json");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let printed: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(
        printed["hooks"]["SessionStart"][0]["hooks"][0]["command"],
        binary_path()
    );
    assert!(
        !local.exists() && !settings.exists(),
        "dry run writes nothing"
    );
}

#[test]
fn project_scope_creates_the_settings_file() {
    let world = World::new();
    let run = world.run(&["install", "--scope", "project"], Stdin::Null);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let created = read_json(&world.path(".claude/settings.json"));
    assert_eq!(
        created["hooks"].as_object().unwrap().len(),
        HookEvent::OBSERVER_SAFE.len()
    );
    let run = world.run(&["uninstall", "--scope", "project"], Stdin::Null);
    assert_eq!(run.code, Some(0));
    assert_eq!(read_json(&world.path(".claude/settings.json")), json!({}));
}

#[test]
fn install_refuses_a_broken_settings_file_and_leaves_it_alone() {
    let world = World::new();
    let settings = world.path("settings.json");
    std::fs::write(&settings, "{ not json").unwrap();
    let run = world.run(
        &["install", "--settings", settings.to_str().unwrap()],
        Stdin::Null,
    );
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("not valid JSON"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&settings).unwrap(), "{ not json");
}

/// Issue 16, item 19: settings kept in a dotfiles repository are a
/// symbolic link to it; `install` replaced the link with a regular file.
#[test]
fn install_and_uninstall_write_through_a_settings_symlink() {
    let world = World::new();
    let dotfiles = world.path("dotfiles/claude");
    std::fs::create_dir_all(&dotfiles).unwrap();
    let target = dotfiles.join("settings.json");
    std::fs::write(
        &target,
        serde_json::to_string_pretty(&user_settings()).unwrap(),
    )
    .unwrap();
    let link_dir = world.path("home/.claude");
    std::fs::create_dir_all(&link_dir).unwrap();
    let link = link_dir.join("settings.json");
    // A relative link, as `stow` and most dotfile managers make them.
    std::os::unix::fs::symlink("../../dotfiles/claude/settings.json", &link).unwrap();

    for action in ["install", "uninstall"] {
        let run = world.run(&[action, "--settings", link.to_str().unwrap()], Stdin::Null);
        assert_eq!(run.code, Some(0), "{action}: {}", run.stderr);
        let kind = std::fs::symlink_metadata(&link).unwrap().file_type();
        assert!(kind.is_symlink(), "{action} replaced the link with a file");
        let through_link = read_json(&link);
        assert_eq!(through_link, read_json(&target));
        assert_eq!(
            through_link["hooks"].get("SessionStart").is_some(),
            action == "install",
            "{action}"
        );
        assert!(
            backups(&link_dir).is_empty(),
            "{action}: a backup beside the link"
        );
    }
    // One backup per change, beside the file the link names.
    assert_eq!(backups(&dotfiles).len(), 2, "{:?}", backups(&dotfiles));
    assert_eq!(read_json(&target), user_settings());
}

#[test]
fn check_reports_a_working_redis_and_exits_0() {
    let server = RedisServer::start_with(&["--requirepass", "check-pw"]);
    let mut world = World::new();
    world.set(
        "HOOKTRAIL_REDIS_URL",
        format!("redis://:check-pw@127.0.0.1:{}", server.port),
    );
    let run = world.run(&["check"], Stdin::Null);
    let out = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.code, Some(0), "{out}");
    assert!(
        out.contains("redis.url: from $HOOKTRAIL_REDIS_URL"),
        "{out}"
    );
    assert!(out.contains("redis://:***@127.0.0.1"), "{out}");
    assert!(!out.contains("check-pw"), "password leaked: {out}");
    assert!(out.contains("PING answered"), "{out}");
    assert!(out.contains("A hook now would send it to Redis"), "{out}");
    assert!(
        out.contains("spool_dir: from $HOOKTRAIL_SPOOL_DIR"),
        "{out}"
    );
    // check sends no event.
    assert_eq!(server.command(&["EXISTS", "hooktrail:events"]), "0");
}

#[test]
fn check_with_nothing_listening_explains_and_exits_1() {
    let listener = SilentListener::start(0, Silence::AcceptAndNeverAnswer);
    let mut world = World::new();
    world.set(
        "HOOKTRAIL_REDIS_URL",
        format!("redis://127.0.0.1:{}", listener.port),
    );
    let run = world.run(&["check"], Stdin::Null);
    let out = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.code, Some(1), "{out}");
    assert!(out.contains("FAILS"), "{out}");
    assert!(out.contains("no collector"), "{out}");
    assert!(out.contains("writable, mode 0700"), "{out}");
    assert!(
        out.contains("A hook now would write it to the spool"),
        "{out}"
    );
}

#[test]
fn check_finds_a_listening_collector() {
    let world = World::new();
    let _collector = common::FakeCollector::start(&world.socket(), common::Answer::Ok);
    let run = world.run(&["check"], Stdin::Null);
    let out = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.code, Some(0), "{out}");
    assert!(out.contains("Redis: not configured"), "{out}");
    assert!(out.contains("a collector is listening"), "{out}");
    assert!(out.contains("send it to the collector's socket"), "{out}");
}

#[test]
fn version_and_help_print_to_stdout() {
    let world = World::new();
    let run = world.run(&["--version"], Stdin::Null);
    assert_eq!(run.code, Some(0));
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        format!("hooktrail-emit {}", env!("CARGO_PKG_VERSION"))
    );
    let run = world.run(&["--help"], Stdin::Null);
    assert_eq!(run.code, Some(0));
    let help = String::from_utf8_lossy(&run.stdout);
    for word in [
        "install",
        "uninstall",
        "check",
        "--scope",
        "HOOKTRAIL_DEBUG",
    ] {
        assert!(help.contains(word), "{word} missing from --help");
    }
}

/// The hooktrail Claude Code plugin registers the same hooks: with both,
/// every event arrives twice (issue 23). `install` refuses, `check` warns.
#[test]
fn install_refuses_while_the_hooktrail_plugin_is_enabled_and_check_warns() {
    let world = World::new();
    let settings = world.path("home/.claude/settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    let original = "{\"enabledPlugins\": {\"hooktrail@hooktrail\": true}}\n";
    std::fs::write(&settings, original).unwrap();

    let refused = world.run(&["install"], Stdin::Null);
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("every event arrives twice"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("hooktrail@hooktrail"),
        "{}",
        refused.stderr
    );
    assert_eq!(std::fs::read_to_string(&settings).unwrap(), original);

    let forced = world.run(&["install", "--force"], Stdin::Null);
    assert_eq!(forced.code, Some(0), "{}", forced.stderr);
    let check = world.run(&["check"], Stdin::Null);
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(
        report.contains("Plugin: the hooktrail plugin (hooktrail@hooktrail) is enabled"),
        "{report}"
    );
    assert!(
        report.contains("WARNING: the hooktrail plugin registers these events too"),
        "{report}"
    );

    // Disabled, it is no reason to refuse.
    world.run(&["uninstall"], Stdin::Null);
    std::fs::write(
        &settings,
        "{\"enabledPlugins\": {\"hooktrail@hooktrail\": false}}\n",
    )
    .unwrap();
    assert_eq!(world.run(&["install"], Stdin::Null).code, Some(0));
}

#[test]
fn install_otel_writes_the_telemetry_env_keeps_the_users_and_uninstall_takes_only_its_own() {
    let world = World::new();
    let settings = world.path("home/.claude/settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    let mut original = user_settings();
    original["env"] = json!({"OTEL_METRIC_EXPORT_INTERVAL": "60000", "MY_TOOL": "1"});
    std::fs::write(&settings, serde_json::to_string_pretty(&original).unwrap()).unwrap();

    let run = world.run(
        &["install", "--otel", "--otel-protocol", "http/json"],
        Stdin::Null,
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let env = read_json(&settings)["env"].clone();
    assert_eq!(env["CLAUDE_CODE_ENABLE_TELEMETRY"], "1");
    assert_eq!(env["OTEL_LOGS_EXPORTER"], "otlp");
    assert_eq!(env["OTEL_METRICS_EXPORTER"], "otlp");
    assert_eq!(env["OTEL_EXPORTER_OTLP_PROTOCOL"], "http/json");
    assert_eq!(env["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://127.0.0.1:4318");
    assert_eq!(env["OTEL_LOGS_EXPORT_INTERVAL"], "2000");
    // The user's own value stays.
    assert_eq!(env["OTEL_METRIC_EXPORT_INTERVAL"], "60000");
    assert_eq!(env["MY_TOOL"], "1");

    let run = world.run(&["check"], Stdin::Null);
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        out.contains("CLAUDE_CODE_ENABLE_TELEMETRY=1 (added by hooktrail)"),
        "{out}"
    );
    assert!(
        out.contains("OTEL_METRIC_EXPORT_INTERVAL=60000 (yours)"),
        "{out}"
    );

    let run = world.run(&["install", "--otel-protocol", "grpc"], Stdin::Null);
    assert_eq!(run.code, Some(1));

    let run = world.run(&["uninstall"], Stdin::Null);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(read_json(&settings), original);
}
