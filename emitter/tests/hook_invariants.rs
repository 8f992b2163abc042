//! Hook mode without Redis and with bad input: the collector socket (ok and
//! error), no collector (the spool, 0600 in 0700), every kind of bad stdin,
//! bad configs, concurrent emitters, a panic. Every run proves exit 0 and an
//! empty stdout; every event is found afterwards.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{envelope, fixture_line, ids, stream_envelopes, Answer, FakeCollector, Stdin, World};
use hooktrail_testkit::RedisServer;

fn spooled(world: &World) -> Vec<serde_json::Value> {
    world
        .spool_lines()
        .iter()
        .map(|line| envelope(line))
        .collect()
}

#[test]
fn every_fixture_payload_goes_to_a_collector_that_answers_ok() {
    let world = World::new();
    let collector = FakeCollector::start(&world.socket(), Answer::Ok);
    for (index, payload) in hooktrail_testkit::all_fixtures().iter().enumerate() {
        let run = world.hook_with_id(&format!("sock-{index}"), payload);
        run.assert_silent_success();
        let received = envelope(&collector.next_line());
        assert_eq!(received["id"], format!("sock-{index}"));
        assert_eq!(received["payload"], envelope(payload));
        assert_eq!(received["hook"], envelope(payload)["hook_event_name"]);
    }
    assert!(world.spool_lines().is_empty());
}

#[test]
fn a_collector_that_answers_an_error_means_spooled() {
    let world = World::new();
    let collector = FakeCollector::start(&world.socket(), Answer::Error);
    world
        .hook_with_id("rejected-1", &fixture_line("Stop"))
        .assert_silent_success();
    assert_eq!(envelope(&collector.next_line())["id"], "rejected-1");
    assert_eq!(ids(&spooled(&world)), ["rejected-1"]);
}

#[test]
fn a_socket_that_accepts_and_never_answers_costs_the_short_budget_then_spools() {
    let world = World::new();
    // Bound, listening, never accepted: the connect succeeds (backlog), the
    // reply never comes.
    let _listener = std::os::unix::net::UnixListener::bind(world.socket()).unwrap();
    let run = world.hook_with_id("mute-1", &fixture_line("Stop"));
    run.assert_silent_success();
    assert!(
        run.elapsed < Duration::from_millis(800),
        "{:?}",
        run.elapsed
    );
    assert_eq!(ids(&spooled(&world)), ["mute-1"]);
}

#[test]
fn no_collector_spools_into_a_private_directory() {
    let world = World::new();
    let payload = fixture_line("PreToolUse");
    world
        .hook_with_id("spool-1", &payload)
        .assert_silent_success();
    let events = spooled(&world);
    assert_eq!(ids(&events), ["spool-1"]);
    assert_eq!(events[0]["payload"], envelope(&payload));
    let dir_mode = std::fs::metadata(world.spool_dir())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    for entry in std::fs::read_dir(world.spool_dir()).unwrap() {
        let mode = entry.unwrap().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(
        world.spool_dir().join(".pending").exists(),
        "an append marks the spool pending"
    );
}

fn assert_invalid_event_spooled(world: &World, input: Stdin, expected_raw: &str) {
    let run = world.hook(input);
    run.assert_silent_success();
    let events = spooled(world);
    let last = events.last().expect("an event");
    assert_eq!(last["hook"], "Invalid");
    assert_eq!(last["payload"]["_raw"], expected_raw);
}

#[test]
fn empty_stdin_still_makes_an_event() {
    let world = World::new();
    assert_invalid_event_spooled(&world, Stdin::Bytes(Vec::new()), "");
}

#[test]
fn stdin_from_dev_null_still_makes_an_event() {
    let world = World::new();
    assert_invalid_event_spooled(&world, Stdin::Null, "");
}

#[test]
fn a_closed_stdin_still_makes_an_event() {
    let world = World::new();
    assert_invalid_event_spooled(&world, Stdin::Closed, "");
}

#[test]
fn binary_garbage_becomes_an_invalid_event() {
    let world = World::new();
    let garbage: Vec<u8> = (0..4096u32)
        .map(|index| (index * 7919 % 256) as u8)
        .collect();
    let expected = String::from_utf8_lossy(&garbage).into_owned();
    assert_invalid_event_spooled(&world, Stdin::Bytes(garbage), &expected);
}

#[test]
fn invalid_utf8_inside_json_becomes_an_invalid_event_with_the_text() {
    let world = World::new();
    let bytes = b"{\"hook_event_name\":\"Stop\",\"x\":\"\xff\xfe\"}".to_vec();
    let expected = String::from_utf8_lossy(&bytes).into_owned();
    assert_invalid_event_spooled(&world, Stdin::Bytes(bytes), &expected);
}

#[test]
fn not_json_text_becomes_an_invalid_event() {
    let world = World::new();
    assert_invalid_event_spooled(
        &world,
        Stdin::Bytes(b"hello, not json".to_vec()),
        "hello, not json",
    );
}

#[test]
fn a_20_mib_payload_is_shortened_marked_and_delivered() {
    let server = RedisServer::start();
    let mut world = World::new();
    world.set("HOOKTRAIL_REDIS_URL", server.url());
    let big = "y".repeat(20 * 1024 * 1024);
    let payload = format!(
        r#"{{"session_id":"s-big","hook_event_name":"PostToolUse","tool_name":"Read","tool_use_id":"toolu_big","tool_response":{{"content":"{big}"}},"small":"kept"}}"#
    );
    let run = world.hook_with_id("big-1", &payload);
    run.assert_silent_success();
    let stored = stream_envelopes(&server, "hooktrail:events");
    assert_eq!(ids(&stored), ["big-1"]);
    let event = &stored[0];
    assert_eq!(event["truncated"], true);
    assert_eq!(event["tool_use_id"], "toolu_big");
    assert_eq!(event["payload"]["small"], "kept");
    let content = event["payload"]["tool_response"]["content"]
        .as_str()
        .unwrap();
    assert!(content.len() < 2 * 1024 * 1024);
    assert!(
        content.ends_with("shortened from 20971520 bytes]"),
        "{}",
        &content[content.len() - 80..]
    );
}

#[test]
fn a_20_mib_payload_is_spooled_when_nothing_else_works() {
    let world = World::new();
    let payload = format!(
        r#"{{"hook_event_name":"PostToolUse","blob":"{}"}}"#,
        "z".repeat(20 * 1024 * 1024)
    );
    world
        .hook_with_id("big-spool", &payload)
        .assert_silent_success();
    let events = spooled(&world);
    assert_eq!(ids(&events), ["big-spool"]);
    assert_eq!(events[0]["truncated"], true);
}

#[test]
fn a_config_file_with_a_password_that_others_can_read_is_refused_but_the_event_is_kept() {
    let server = RedisServer::start_with(&["--requirepass", "file-secret"]);
    let mut world = World::new();
    let config = world.path("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"redis":{{"url":"redis://:file-secret@127.0.0.1:{}"}}}}"#,
            server.port
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    world
        .set("HOOKTRAIL_CONFIG", config.display().to_string())
        .set("HOOKTRAIL_DEBUG", "1");
    let run = world.hook_with_id("leaky-1", &fixture_line("Stop"));
    run.assert_silent_success();
    assert!(
        run.stderr.contains(&config.display().to_string()),
        "stderr must name the file: {}",
        run.stderr
    );
    assert!(run.stderr.contains("chmod 600"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("file-secret"),
        "password leaked: {}",
        run.stderr
    );
    assert_eq!(
        ids(&spooled(&world)),
        ["leaky-1"],
        "delivered without Redis"
    );
    assert_eq!(server.command(&["EXISTS", "hooktrail:events"]), "0");
    // Once private, the file is used, and the spooled event is forwarded
    // right after the hook's own.
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    world
        .hook_with_id("private-1", &fixture_line("Stop"))
        .assert_silent_success();
    assert_eq!(
        ids(&stream_envelopes(&server, "hooktrail:events")),
        ["private-1", "leaky-1"]
    );
    assert!(world.spool_lines().is_empty());
}

#[test]
fn without_debug_nothing_is_written_to_stderr_either() {
    let mut world = World::new();
    let config = world.path("config.json");
    std::fs::write(&config, "{broken").unwrap();
    world.set("HOOKTRAIL_CONFIG", config.display().to_string());
    let run = world.hook(Stdin::Bytes(fixture_line("Stop").into_bytes()));
    run.assert_silent_success();
    assert_eq!(
        run.stderr, "",
        "diagnostics only with HOOKTRAIL_DEBUG=1 or HOOKTRAIL_LOG"
    );
    assert_eq!(spooled(&world).len(), 1);
}

#[test]
fn a_malformed_config_is_reported_and_ignored() {
    let mut world = World::new();
    let config = world.path("config.json");
    std::fs::write(&config, "{\"redis\": {\"url\": ").unwrap();
    world
        .set("HOOKTRAIL_CONFIG", config.display().to_string())
        .set("HOOKTRAIL_DEBUG", "1");
    let run = world.hook_with_id("malformed-1", &fixture_line("Stop"));
    run.assert_silent_success();
    assert!(run.stderr.contains("not valid JSON"), "{}", run.stderr);
    assert_eq!(ids(&spooled(&world)), ["malformed-1"]);
}

#[test]
fn an_unreadable_config_is_reported_and_ignored() {
    let mut world = World::new();
    // A directory cannot be read as a file, even by root.
    let config = world.path("config-dir.json");
    std::fs::create_dir(&config).unwrap();
    let log = world.path("emit.log");
    world
        .set("HOOKTRAIL_CONFIG", config.display().to_string())
        .set("HOOKTRAIL_LOG", log.display().to_string());
    let run = world.hook_with_id("unreadable-1", &fixture_line("Stop"));
    run.assert_silent_success();
    assert_eq!(
        run.stderr, "",
        "HOOKTRAIL_LOG alone writes to the file, not stderr"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("cannot read config file"), "{logged}");
    assert!(logged.contains(&config.display().to_string()), "{logged}");
    assert_eq!(ids(&spooled(&world)), ["unreadable-1"]);
}

#[test]
fn concurrent_emitters_into_one_spool_lose_nothing() {
    let world = std::sync::Arc::new(World::new());
    let threads: Vec<_> = (0..8)
        .map(|thread| {
            let world = world.clone();
            std::thread::spawn(move || {
                for index in 0..15 {
                    world
                        .hook_with_id(&format!("c{thread}-{index}"), &fixture_line("PreToolUse"))
                        .assert_silent_success();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let mut found = ids(&spooled(&world));
    found.sort();
    let mut expected: Vec<String> = (0..8)
        .flat_map(|t| (0..15).map(move |i| format!("c{t}-{i}")))
        .collect();
    expected.sort();
    assert_eq!(found, expected);
}

#[test]
fn a_panic_still_spools_the_event_prints_nothing_and_exits_0() {
    let mut world = World::new();
    world.set("HOOKTRAIL_TEST_PANIC", "1");
    let run = world.hook_with_id("panic-1", &fixture_line("Stop"));
    run.assert_silent_success();
    assert_eq!(run.stderr, "", "the panic message is a diagnostic too");
    let events = spooled(&world);
    assert_eq!(ids(&events), ["panic-1"]);
    assert_eq!(events[0]["hook"], "Stop");
}

#[test]
fn stray_arguments_with_piped_stdin_still_record_the_event() {
    let world = World::new();
    let run = world.run(
        &["--unexpected"],
        Stdin::Bytes(fixture_line("Stop").into_bytes()),
    );
    run.assert_silent_success();
    assert_eq!(spooled(&world).len(), 1);
}

#[test]
fn an_event_id_the_collector_would_reject_is_replaced_not_spooled_forever() {
    let world = World::new();
    let too_long = "x".repeat(200);
    for given in ["bad\u{1}id", " padded ", too_long.as_str()] {
        world
            .hook_with_id(given, &fixture_line("Stop"))
            .assert_silent_success();
    }
    let events = spooled(&world);
    assert_eq!(events.len(), 3);
    for event in &events {
        let line = serde_json::to_string(event).unwrap();
        let parsed = hooktrail_shared::envelope::parse_line(line.as_bytes())
            .expect("the collector accepts the replacement id");
        assert_eq!(
            parsed.id.len(),
            36,
            "a fresh UUID replaced {:?}",
            event["id"]
        );
    }
}

/// Issue 13, item 5: an append that failed part way (a full disk, or a file
/// size limit) left half a line in the spool file, and the next append
/// merged into it, so both events were rejected. The file size limit of
/// `RLIMIT_FSIZE` gives the short write without root or a small filesystem.
#[test]
fn a_failed_spool_append_leaves_no_partial_line_for_the_next_to_merge_into() {
    use std::os::unix::process::CommandExt;
    let world = World::new();
    let first = format!(
        r#"{{"v":1,"id":"before-1","ts":1,"machine":"m","hook":"Stop","payload":{}}}"#,
        fixture_line("Stop")
    );
    hooktrail_shared::spool::append(&world.spool_dir(), &first).unwrap();
    let limit = first.len() as u64 + 200;
    // A payload that cannot fit under the limit, whichever file it goes to.
    let big = format!(
        r#"{{"hook_event_name":"Stop","padding":"{}"}}"#,
        "p".repeat(4000)
    );
    let mut command = world.command(&[]);
    // SAFETY: setrlimit and signal are async-signal-safe; they run in the
    // child between fork and exec. SIGXFSZ ignored makes the write fail with
    // EFBIG instead of killing the process.
    unsafe {
        command.pre_exec(move || {
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    common::execute(command, Stdin::Bytes(big.into_bytes())).assert_silent_success();
    let assert_whole_lines = |when: &str| {
        for entry in std::fs::read_dir(world.spool_dir()).unwrap() {
            let path = entry.unwrap().path();
            if !path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("spool-")
            {
                continue;
            }
            let content = std::fs::read(&path).unwrap();
            assert!(
                content.is_empty() || content.ends_with(b"\n"),
                "{when}: {} ends mid-line",
                path.display()
            );
        }
    };
    assert_whole_lines("after the failed append");
    world
        .hook_with_id("after-1", &fixture_line("Stop"))
        .assert_silent_success();
    assert_whole_lines("after the next append");
    for line in world.spool_lines() {
        hooktrail_shared::envelope::parse_line(line.as_bytes())
            .unwrap_or_else(|reason| panic!("a spooled line is rejected ({reason}): {line}"));
    }
    let mut found = ids(&spooled(&world));
    found.sort();
    assert_eq!(found, ["after-1", "before-1"]);
}

/// Issue 13, item 15: the size limit was enforced by shortening long
/// strings only, so a payload of millions of short strings (69 MB) was
/// stored whole, and 200 MB of input took 820 MB of memory. Now arrays and
/// objects keep their first members when shortening strings is not enough,
/// and stdin past 32 MiB is read but not kept.
#[test]
fn a_payload_of_many_short_strings_is_held_to_the_size_limit() {
    use hooktrail_shared::envelope::{MAX_LINE_BYTES, MAX_PAYLOAD_BYTES};
    let world = World::new();
    for (id, items) in [("short-20mb", 5_000_000), ("short-69mb", 17_000_000)] {
        let mut payload = String::with_capacity(items * 4 + 200);
        payload.push_str(
            r#"{"session_id":"s-many","hook_event_name":"PostToolUse","tool_name":"Grep","items":["#,
        );
        for index in 0..items {
            payload.push_str(if index == 0 { r#""a""# } else { r#","a""# });
        }
        payload.push_str(r#"],"after":"kept when whole"}"#);
        world.hook_with_id(id, &payload).assert_silent_success();
        drop(payload);
        let line = world
            .spool_lines()
            .into_iter()
            .find(|line| line.contains(id))
            .unwrap_or_else(|| panic!("{id}: not spooled"));
        assert!(
            line.len() <= MAX_LINE_BYTES,
            "{id}: a line of {} bytes",
            line.len()
        );
        let event = envelope(&line);
        let stored_payload = serde_json::to_string(&event["payload"]).unwrap();
        assert!(
            stored_payload.len() <= MAX_PAYLOAD_BYTES,
            "{id}: a payload of {} bytes",
            stored_payload.len()
        );
        assert_eq!(event["hook"], "PostToolUse", "{id}");
        assert_eq!(event["session_id"], "s-many", "{id}");
        assert_eq!(event["truncated"], true, "{id}");
        let kept = event["payload"]["items"].as_array().unwrap();
        assert!(kept.len() > 1000, "{id}: {} items kept", kept.len());
        assert!(
            kept.last()
                .unwrap()
                .as_str()
                .unwrap()
                .contains("more items"),
            "{id}: the cut is marked"
        );
    }
}

/// Issue 13, item 12: `"hook_event_name": ""` gave an envelope with
/// `"hook": ""`, which the collector's parser rejected, so the event was
/// never stored (and a spooled copy was retried forever).
#[test]
fn an_empty_hook_event_name_gives_an_event_the_collector_stores() {
    let world = World::new();
    let collector = FakeCollector::start(&world.socket(), Answer::Ok);
    world
        .hook_with_id(
            "nameless-1",
            r#"{"session_id":"s1","hook_event_name":"","x":1}"#,
        )
        .assert_silent_success();
    let line = collector.next_line();
    let parsed = hooktrail_shared::envelope::parse_line(line.as_bytes())
        .unwrap_or_else(|reason| panic!("the collector rejects it ({reason}): {line}"));
    assert_eq!(parsed.hook, "Unknown");
    assert_eq!(parsed.id, "nameless-1");
    assert_eq!(envelope(&line)["payload"]["hook_event_name"], "");
}

/// Issue 13, item 14: `HOOKTRAIL_EVENT_ID` leaked into a shell made every
/// later event reuse the same id, so the collector kept only the first.
/// Only the test-only `HOOKTRAIL_TEST_EVENT_ID` names an id now.
#[test]
fn a_leaked_event_id_variable_does_not_turn_later_events_into_duplicates() {
    let mut world = World::new();
    world.set("HOOKTRAIL_EVENT_ID", "leaked-id");
    for _ in 0..2 {
        world
            .hook(Stdin::Bytes(fixture_line("Stop").into_bytes()))
            .assert_silent_success();
    }
    let found = ids(&spooled(&world));
    assert_eq!(found.len(), 2);
    assert_ne!(found[0], found[1], "two events, two ids");
    assert!(found.iter().all(|id| id != "leaked-id"), "{found:?}");
}

/// A directory that belongs to another user: made and handed over when we
/// are root, else the root directory (which is root's, and not ours).
fn someone_elses_dir(world: &World) -> std::path::PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return std::path::PathBuf::from("/");
    }
    let dir = world.path("theirs");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
    // SAFETY: chown on a NUL-terminated path this test made.
    assert_eq!(unsafe { libc::chown(path.as_ptr(), 65534, 65534) }, 0);
    dir
}

fn spool_lines_in(dir: &std::path::Path) -> Vec<String> {
    common::spool_lines(dir)
}

/// Issue 13, item 13: an existing spool directory was used as found, so a
/// directory another user made first (0777, say) received our events. It
/// is refused now, and the event goes to the user's private fallback spool.
#[test]
fn a_spool_dir_someone_else_owns_is_refused_and_the_event_kept_privately() {
    let mut world = World::new();
    let theirs = someone_elses_dir(&world);
    let mode_before = std::fs::metadata(&theirs).unwrap().permissions().mode();
    world.set("HOOKTRAIL_SPOOL_DIR", theirs.display().to_string());
    world
        .hook_with_id("private-1", &fixture_line("Stop"))
        .assert_silent_success();
    assert!(
        spool_lines_in(&theirs).is_empty(),
        "nothing written in their directory"
    );
    assert_eq!(
        std::fs::metadata(&theirs).unwrap().permissions().mode(),
        mode_before,
        "their directory is left as it was"
    );
    let fallback = world.path("run/hooktrail/spool");
    let kept: Vec<_> = spool_lines_in(&fallback)
        .iter()
        .map(|l| envelope(l))
        .collect();
    assert_eq!(ids(&kept), ["private-1"]);
    for dir in [world.path("run/hooktrail"), fallback] {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
    }
}

/// Issue 13, item 13: an existing spool directory of ours with a loose mode
/// (0755) kept it, so other users could list and read the spooled events.
#[test]
fn an_existing_spool_dir_of_ours_with_a_loose_mode_is_tightened() {
    let world = World::new();
    std::fs::create_dir_all(world.spool_dir()).unwrap();
    std::fs::set_permissions(world.spool_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    world
        .hook_with_id("tight-1", &fixture_line("Stop"))
        .assert_silent_success();
    let mode = std::fs::metadata(world.spool_dir())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
    assert_eq!(ids(&spooled(&world)), ["tight-1"]);
}

/// Issue 13, item 13: with `HOME` unset the spool (and the config and the
/// breaker) fell back to `/tmp/.local/...`, a path every user shares. Now
/// they live in the user's private base directory, here
/// `$XDG_RUNTIME_DIR/hooktrail`.
#[test]
fn with_home_unset_the_spool_is_private_to_the_user_not_under_shared_tmp() {
    let mut world = World::new();
    for name in [
        "HOME",
        "XDG_STATE_HOME",
        "XDG_CONFIG_HOME",
        "HOOKTRAIL_SPOOL_DIR",
        "HOOKTRAIL_STATE_DIR",
    ] {
        world.unset(name);
    }
    world
        .hook_with_id("homeless-1", &fixture_line("Stop"))
        .assert_silent_success();
    let base = world.path("run/hooktrail");
    let spool = base.join(".local/state/hooktrail/spool");
    let kept: Vec<_> = spool_lines_in(&spool).iter().map(|l| envelope(l)).collect();
    assert_eq!(ids(&kept), ["homeless-1"]);
    let mode = std::fs::metadata(&base).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}
