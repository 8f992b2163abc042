//! The collector's side of privacy: a database nobody else can read, and
//! secrets redacted in whatever arrives unredacted (older emitters, spool
//! files written before an upgrade), counted per rule in `/metrics`; each
//! collector by its own settings, even two in one process.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use hooktrail_shared::envelope::{new_event_id, Envelope};
use hooktrail_testkit::wait_until;
use support::process::{send_lines, Collector};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// An envelope as an emitter without redaction would send it.
fn unredacted(payload: &str) -> String {
    Envelope::from_hook_stdin(payload.as_bytes(), new_event_id(), 1, "oldhost".into()).to_json()
}

#[test]
fn database_files_are_0600_even_in_a_directory_others_can_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::set_permissions(
        dir.path().join("data"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let collector = Collector::start(dir.path(), &[]);
    send_lines(&collector.socket, &[support::process::envelope(1)]);
    collector.wait_rows(1, Duration::from_secs(20));
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", collector.db.display());
        assert_eq!(mode(std::path::Path::new(&path)), 0o600, "{path}");
    }
}

#[test]
fn an_existing_database_others_can_read_is_tightened_with_one_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(dir.path(), &[]);
    send_lines(&collector.socket, &[support::process::envelope(1)]);
    collector.wait_rows(1, Duration::from_secs(20));
    collector.terminate();
    std::fs::set_permissions(&collector.db, std::fs::Permissions::from_mode(0o644)).unwrap();
    collector.restart();
    wait_until("the tightening", Duration::from_secs(20), || {
        mode(&collector.db) == 0o600
    });
    let log = collector.log_text();
    assert_eq!(log.matches("made the database private").count(), 1, "{log}");
}

#[test]
fn secrets_from_an_emitter_without_redaction_are_redacted_before_storage() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &[]);
    let secret = "AKIAIOSFODNN7EXAMPLQ";
    let lines = [
        unredacted(&format!(
            r#"{{"session_id":"s1","hook_event_name":"UserPromptSubmit","prompt_id":"p","prompt":"deploy with {secret} now"}}"#
        )),
        unredacted(
            r#"{"session_id":"s1","hook_event_name":"PreToolUse","tool_name":"Bash","tool_use_id":"t1","tool_input":{"command":"export GITHUB_TOKEN=ghp_0123456789abcdefghijklmnopqrstuvwxyzAB && gh pr list"}}"#,
        ),
    ];
    // Through the socket, and through the spool as an old spool file.
    send_lines(&collector.socket, &lines[..1]);
    std::fs::create_dir_all(&collector.spool).unwrap();
    std::fs::write(
        collector.spool.join("spool-1.jsonl"),
        format!("{}\n", lines[1]),
    )
    .unwrap();
    collector.wait_rows(2, Duration::from_secs(30));
    let stored = collector.rows("SELECT payload, redactions FROM events ORDER BY seq");
    let everything = format!("{stored:?}");
    assert!(!everything.contains(secret), "{everything}");
    assert!(!everything.contains("ghp_0123"), "{everything}");
    assert!(
        everything.contains("[REDACTED:aws-access-key-id]"),
        "{everything}"
    );
    let titles = collector.rows("SELECT title FROM sessions");
    assert!(!format!("{titles:?}").contains(secret));
}

/// A v1 envelope line written by hand, as a raw socket or Redis producer
/// writes it: the payload's JSON text goes in exactly as given.
fn raw_envelope(session: &str, payload: &str) -> String {
    format!(
        r#"{{"v":1,"id":"{}","ts":1700000000000,"machine":"raw","session_id":"{session}","hook":"UserPromptSubmit","payload":{payload}}}"#,
        new_event_id()
    )
}

/// Issue 16, item 5: `\u0041KIA…` is `AKIA…` to `json_extract` and to the
/// search index, so the collector must redact what the escapes spell.
#[test]
fn a_unicode_escaped_key_from_a_raw_producer_is_redacted_before_storage_and_search() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &[]);
    let line = raw_envelope(
        "s-escaped",
        r#"{"session_id":"s-escaped","hook_event_name":"UserPromptSubmit","prompt_id":"p","prompt":"key \u0041KIAIOSFODNN7EXAMPLE and \u0067hp_0123456789abcdefghijklmnopqrstuvwxyzAB"}"#,
    );
    send_lines(&collector.socket, &[line]);
    collector.wait_rows(1, Duration::from_secs(30));
    collector.wait_indexed(Duration::from_secs(30));
    let stored = collector.rows("SELECT json_extract(payload, '$.prompt'), redactions FROM events");
    let everything = format!("{stored:?}");
    assert!(!everything.contains("AKIAIOSFODNN7EXAMPLE"), "{everything}");
    assert!(!everything.contains("ghp_0123"), "{everything}");
    assert_eq!(
        stored[0][0],
        "key [REDACTED:aws-access-key-id] and [REDACTED:github-token]"
    );
    assert!(stored[0][1].contains("aws-access-key-id"), "{everything}");
    let found = collector.query_i64(
        r#"SELECT count(*) FROM events_fts WHERE events_fts MATCH '"AKIAIOSFODNN7EXAMPLE"'"#,
    );
    assert_eq!(found, 0, "search finds the key");
    let control = collector
        .query_i64(r#"SELECT count(*) FROM events_fts WHERE events_fts MATCH '"REDACTED:aws"'"#);
    assert_eq!(control, 1, "the search index holds the redacted prompt");
    let titles = collector.rows("SELECT title FROM sessions");
    assert!(!format!("{titles:?}").contains("AKIAIOSFODNN7EXAMPLE"));
}

/// Issue 16, item 4: an older emitter shortened a string before it
/// redacted it, so a token cut in two reached the collector as
/// `ghp_` and 14 characters, which no rule matched.
#[test]
fn a_token_cut_by_the_shortening_of_an_older_emitter_is_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &[]);
    let line = raw_envelope(
        "s-cut",
        r#"{"session_id":"s-cut","hook_event_name":"UserPromptSubmit","prompt_id":"p","prompt":"long text ghp_Zq8v1Xw3Ty5Ur7…[hooktrail: shortened from 1100000 bytes]"}"#,
    );
    send_lines(&collector.socket, &[line]);
    collector.wait_rows(1, Duration::from_secs(30));
    collector.wait_indexed(Duration::from_secs(30));
    let stored = collector.rows("SELECT json_extract(payload, '$.prompt'), redactions FROM events");
    let everything = format!("{stored:?}");
    assert!(!everything.contains("Zq8v1Xw3"), "{everything}");
    assert_eq!(
        stored[0][0],
        "long text [REDACTED:github-token]…[hooktrail: shortened from 1100000 bytes]"
    );
    assert!(stored[0][1].contains("github-token"), "{everything}");
}

/// A collector run in this process (as the benchmarks and some tests do)
/// with its own directory and the privacy level `privacy`.
fn start_in_process(
    dir: &std::path::Path,
    privacy: hooktrail_shared::redact::Privacy,
    shutdown: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Result<(), String>> {
    let args: Vec<String> = [
        "--db",
        &dir.join("events.db").display().to_string(),
        "--spool-dir",
        &dir.join("spool").display().to_string(),
        "--socket",
        &dir.join("s.sock").display().to_string(),
        "--http",
        "off",
    ]
    .map(str::to_owned)
    .to_vec();
    let home = dir.display().to_string();
    let env = move |name: &str| (name == "HOME").then(|| home.clone());
    let mut settings = match hooktrail_collector::parse_settings(&args, &env).unwrap() {
        hooktrail_collector::Invocation::Run { settings, .. } => *settings,
        _ => panic!("not a run"),
    };
    settings.redaction.privacy = privacy;
    let bound = hooktrail_collector::bind(&settings).unwrap();
    let shutdown = shutdown.clone();
    std::thread::spawn(move || hooktrail_collector::run(settings, bound, shutdown))
}

#[test]
fn two_collectors_in_one_process_each_redact_at_their_own_privacy_level() {
    use hooktrail_shared::redact::Privacy;
    let shutdown = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (metadata_dir, full_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // A process-wide redactor gave both the level of whichever started
    // first, so one of the two checks below failed.
    let runners = [
        start_in_process(metadata_dir.path(), Privacy::Metadata, &shutdown),
        start_in_process(full_dir.path(), Privacy::Full, &shutdown),
    ];
    let line = unredacted(
        r#"{"session_id":"s1","hook_event_name":"UserPromptSubmit","prompt_id":"p","prompt":"the plan for friday"}"#,
    );
    let stored = |dir: &std::path::Path| {
        let socket = dir.join("s.sock");
        wait_until("the socket is listening", Duration::from_secs(30), || {
            socket.exists()
        });
        assert_eq!(send_lines(&socket, &[line.clone()]), vec!["ok"]);
        let output = std::process::Command::new("sqlite3")
            .arg(dir.join("events.db"))
            .arg("SELECT payload FROM events")
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let metadata_payload = stored(metadata_dir.path());
    let full_payload = stored(full_dir.path());
    shutdown.store(true, std::sync::atomic::Ordering::Relaxed);
    for runner in runners {
        runner.join().unwrap().unwrap();
    }
    assert!(
        full_payload.contains("the plan for friday"),
        "{full_payload}"
    );
    assert!(!metadata_payload.is_empty());
    assert!(
        !metadata_payload.contains("the plan for friday"),
        "{metadata_payload}"
    );
}

/// Runs the real emitter on `payload` with `privacy` as its level and no
/// config file, delivering to the collector's socket (the collector keeps
/// the default level, `redacted`).
fn emit_with_privacy(collector: &Collector, payload: &str, privacy: &str) {
    let config = collector.dir.join("emitter-config");
    support::process::run_emitter(
        collector,
        payload.as_bytes(),
        &[
            ("XDG_CONFIG_HOME", config.to_str().unwrap()),
            ("HOOKTRAIL_PRIVACY", privacy),
        ],
    );
}

/// Issue 21: the collector skips its second redaction only for an envelope
/// redacted with its very settings (`redacted_with`). The real emitter at
/// the `full` level keeps what `Read` returned of a `.env` file; the
/// collector, at `redacted`, still drops it. At the same level, what the
/// emitter sent is stored as sent, with the emitter's counts.
#[test]
fn the_collector_redacts_again_what_an_emitter_redacted_with_other_settings() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &["--no-token"]);
    let read_env = |session: &str| {
        format!(
            r#"{{"session_id":"{session}","hook_event_name":"PostToolUse","tool_name":"Read","tool_use_id":"t-{session}","tool_input":{{"file_path":"/app/.env"}},"tool_response":{{"file":{{"content":"PLAN=friday"}}}},"prompt":"AKIAIOSFODNN7EXAMPLQ"}}"#
        )
    };
    emit_with_privacy(&collector, &read_env("full"), "full");
    emit_with_privacy(&collector, &read_env("same"), "redacted");
    collector.wait_rows(2, Duration::from_secs(30));
    let stored = |session: &str| {
        collector.rows(&format!(
            "SELECT payload, redactions FROM events WHERE session_id = '{session}'"
        ))[0]
            .clone()
    };
    for session in ["full", "same"] {
        let row = stored(session);
        assert!(!row[0].contains("PLAN=friday"), "{session}: {row:?}");
        assert!(
            row[0].contains("[REDACTED:drop-path]"),
            "{session}: {row:?}"
        );
        assert!(
            row[0].contains("[REDACTED:aws-access-key-id]"),
            "{session}: {row:?}"
        );
        assert!(row[1].contains("\"drop-path\":1"), "{session}: {row:?}");
    }
    // Only the `full` emitter's event was redacted again, and `/api/health`
    // says so (an operator's sign of emitters with other settings).
    let port = support::process::http_port(&collector);
    let host = format!("127.0.0.1:{port}");
    let reply = support::in_process::http_get(port, "/api/health", &[("Host", &host)]);
    let health: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(health["sources"]["socket"]["redacted_again"], 1, "{health}");
    assert_eq!(health["sources"]["socket"]["stored"], 2, "{health}");
}

/// The fingerprint an operator compares: `hooktrail-emit check` prints the
/// one the collector logs at start when both read the same config, and
/// another one for another privacy level.
#[test]
fn emitter_check_and_collector_log_name_the_same_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &[]);
    let fingerprint_in = |text: &str| {
        let at = text
            .find("fingerprint ")
            .or_else(|| text.find("fingerprint: "))?;
        let rest = text[at..].split_once(' ')?.1;
        Some(rest.chars().take(16).collect::<String>())
    };
    let logged = wait_for_log_fingerprint(&collector, fingerprint_in);
    let check = |privacy: &str| {
        let emitter =
            std::path::Path::new(support::process::BINARY).with_file_name("hooktrail-emit");
        let output = std::process::Command::new(emitter)
            .arg("check")
            .env_clear()
            .env("HOME", &collector.dir)
            .env("XDG_CONFIG_HOME", collector.dir.join("config"))
            .env("HOOKTRAIL_PRIVACY", privacy)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        fingerprint_in(&stdout).unwrap_or_else(|| panic!("no fingerprint in {stdout}"))
    };
    assert_eq!(check("redacted"), logged);
    assert_ne!(check("full"), logged);
}

fn wait_for_log_fingerprint(
    collector: &Collector,
    find: impl Fn(&str) -> Option<String>,
) -> String {
    let mut found = None;
    wait_until(
        "the collector logs its fingerprint",
        Duration::from_secs(20),
        || {
            found = find(&collector.log_text());
            found.is_some()
        },
    );
    found.unwrap()
}
