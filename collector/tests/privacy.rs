//! The collector's side of privacy: a database nobody else can read, and
//! secrets redacted in whatever arrives unredacted (older emitters, spool
//! files written before an upgrade), counted per rule in `/metrics`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{send_lines, Collector};
use hooktrail_shared::envelope::{new_event_id, Envelope};
use hooktrail_testkit::wait_until;

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
    send_lines(&collector.socket, &[common::envelope(1)]);
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
    send_lines(&collector.socket, &[common::envelope(1)]);
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
