//! At a turn boundary, the token usage the transcript gained since the last
//! read (DESIGN §3, `usage`).
//!
//! Only four events run this (`Stop`, `SubagentStop`, `PreCompact`,
//! `SessionEnd`): once per turn, never per tool call, so every other event's
//! hot path is unchanged. The transcript lives on the machine where Claude
//! runs, which may not be the collector's, so the emitter reads it and ships
//! what it found with the event.
//!
//! The read is bounded in bytes ([`BYTE_BUDGET`]) and time ([`TIME_BUDGET`]);
//! what is left is read at the next boundary. The offset of each transcript
//! is kept in a small state file, together with the file's identity, so a
//! rotated or rewritten transcript is read again from its start. Reading a
//! part twice (two hooks racing, a lost state file) is harmless: the
//! collector keys each response by its message id, so it counts once.
//!
//! Nothing here can fail the hook: a missing, unreadable, truncated or
//! half-written transcript gives no usage, and the event goes out as usual.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hooktrail_shared::paths;
use hooktrail_shared::transcript::{self, TranscriptKind, TranscriptUsage};
use serde::Deserialize;

use crate::diag::debug;

/// The hooks at which a turn's usage is read.
const BOUNDARY_HOOKS: [&str; 4] = ["Stop", "SubagentStop", "PreCompact", "SessionEnd"];

/// The most transcript bytes one hook reads. A turn rarely adds more than a
/// few MB; a larger one is finished at the next boundary.
pub const BYTE_BUDGET: u64 = 16 * 1024 * 1024;

/// The most time one hook spends scanning.
pub const TIME_BUDGET: Duration = Duration::from_millis(50);

/// The two payload fields this step needs; parsed only at boundaries.
#[derive(Deserialize)]
struct TranscriptPaths {
    #[serde(default)]
    transcript_path: Option<String>,
    #[serde(default)]
    agent_transcript_path: Option<String>,
}

/// Whether `hook` is a turn boundary, checked before anything else is done.
pub fn is_boundary(hook: &str) -> bool {
    BOUNDARY_HOOKS.contains(&hook)
}

/// Reads what the transcript named by `payload` gained since the last read,
/// for a boundary `hook`; `None` when there is nothing to report or nothing
/// could be read.
pub fn read_since_last(hook: &str, payload: &str, state_dir: &Path) -> Option<TranscriptUsage> {
    if !is_boundary(hook) {
        return None;
    }
    let paths: TranscriptPaths = serde_json::from_str(payload).ok()?;
    // A subagent's turn is in its own transcript; the main transcript's
    // boundaries (Stop, PreCompact, SessionEnd) read the session's.
    let (kind, path) = match (hook, paths.agent_transcript_path) {
        ("SubagentStop", Some(path)) if !path.is_empty() => (TranscriptKind::Agent, path),
        _ => (TranscriptKind::Session, paths.transcript_path?),
    };
    match read_part(Path::new(&path), kind, state_dir) {
        Ok(usage) => usage,
        Err(error) => {
            debug!("usage: {path}: {error}");
            None
        }
    }
}

/// Where one transcript was read up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Offset {
    /// The file's device and inode: a different file under the same path (a
    /// rotation, a rewrite) is read from its start.
    device: u64,
    inode: u64,
    /// Bytes already read.
    offset: u64,
}

fn read_part(
    path: &Path,
    kind: TranscriptKind,
    state_dir: &Path,
) -> std::io::Result<Option<TranscriptUsage>> {
    let deadline = Instant::now() + TIME_BUDGET;
    let mut file = File::open(path)?;
    let metadata = file.metadata()?;
    let state_file = offset_file(state_dir, path);
    let previous = read_offset(&state_file);
    let from = match previous {
        Some(known)
            if known.device == metadata.dev()
                && known.inode == metadata.ino()
                && known.offset <= metadata.len() =>
        {
            known.offset
        }
        _ => 0,
    };
    let available = metadata.len() - from;
    if available == 0 {
        return Ok(None);
    }
    let wanted = available.min(BYTE_BUDGET);
    file.seek(SeekFrom::Start(from))?;
    let mut piece = Vec::with_capacity(wanted as usize);
    file.take(wanted).read_to_end(&mut piece)?;
    let scanned = transcript::scan(&piece, Some(deadline));
    // A budget-sized piece without a single newline is one enormous line
    // (a huge tool result): step over it rather than stall on it forever.
    let consumed = if scanned.consumed == 0 && wanted == BYTE_BUDGET {
        piece.len()
    } else {
        scanned.consumed
    };
    let to = from + consumed as u64;
    if to != from {
        let offset = Offset {
            device: metadata.dev(),
            inode: metadata.ino(),
            offset: to,
        };
        if let Err(error) = write_offset(&state_file, offset) {
            debug!(
                "usage: cannot keep the offset in {}: {error}",
                state_file.display()
            );
        }
    }
    if scanned.responses.is_empty()
        && scanned.bad_lines == 0
        && scanned.tool_use_ids.is_empty()
        && scanned.agent_ids.is_empty()
    {
        return Ok(None);
    }
    Ok(Some(TranscriptUsage {
        transcript: kind,
        from,
        to,
        more: to < metadata.len(),
        bad_lines: scanned.bad_lines,
        responses: scanned.responses,
        tool_use_ids: scanned.tool_use_ids,
        agent_ids: scanned.agent_ids,
    }))
}

/// `<state_dir>/transcripts/<hash of the path>`: one small file per
/// transcript, so hooks of different sessions never share one.
fn offset_file(state_dir: &Path, transcript: &Path) -> PathBuf {
    // FNV-1a: stable across versions and builds, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in transcript.as_os_str().as_encoded_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    state_dir.join("transcripts").join(format!("{hash:016x}"))
}

fn read_offset(file: &Path) -> Option<Offset> {
    let text = fs::read_to_string(file).ok()?;
    let mut numbers = text.split_whitespace().map(|word| word.parse::<u64>());
    Some(Offset {
        device: numbers.next()?.ok()?,
        inode: numbers.next()?.ok()?,
        offset: numbers.next()?.ok()?,
    })
}

fn write_offset(file: &Path, offset: Offset) -> std::io::Result<()> {
    if let Some(parent) = file.parent() {
        paths::ensure_private_dir(parent)?;
    }
    // Rewritten in place, like the breaker: a rename over an existing file
    // makes ext4 start writeback, which the hook would wait for.
    let mut handle = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(file)?;
    std::io::Write::write_all(
        &mut handle,
        format!("{} {} {}\n", offset.device, offset.inode, offset.offset).as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(id: &str, output: u64) -> String {
        format!(
            r#"{{"type":"assistant","requestId":"req_{id}","message":{{"id":"msg_{id}","model":"claude-sonnet-4-5","usage":{{"input_tokens":1,"output_tokens":{output}}}}}}}"#
        ) + "\n"
    }

    #[test]
    fn each_boundary_reads_only_what_the_transcript_gained() {
        let dir = tempfile::tempdir().unwrap();
        let transcript = dir.path().join("t.jsonl");
        fs::write(&transcript, response("a", 5)).unwrap();
        let payload = serde_json::json!({"transcript_path": transcript}).to_string();
        let state = dir.path().join("state");
        let first = read_since_last("Stop", &payload, &state).unwrap();
        assert_eq!(first.responses.len(), 1);
        assert_eq!(first.from, 0);
        assert!(read_since_last("Stop", &payload, &state).is_none());
        let mut text = fs::read_to_string(&transcript).unwrap();
        text.push_str(&response("b", 6));
        text.push_str(&response("c", 7)[..20]);
        fs::write(&transcript, &text).unwrap();
        let second = read_since_last("Stop", &payload, &state).unwrap();
        assert_eq!(second.responses.len(), 1);
        assert_eq!(second.responses[0].message_id, "msg_b");
        assert_eq!(second.from, first.to);
        assert!(second.more, "the half-written line is left for later");
    }

    #[test]
    fn other_hooks_and_missing_transcripts_give_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let payload = r#"{"transcript_path":"/nonexistent/t.jsonl"}"#;
        assert!(read_since_last("PreToolUse", payload, dir.path()).is_none());
        assert!(read_since_last("Stop", payload, dir.path()).is_none());
        assert!(read_since_last("Stop", "not json", dir.path()).is_none());
    }

    #[test]
    fn a_rewritten_transcript_is_read_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let transcript = dir.path().join("t.jsonl");
        fs::write(&transcript, response("a", 5) + &response("b", 5)).unwrap();
        let payload = serde_json::json!({"transcript_path": transcript}).to_string();
        read_since_last("Stop", &payload, dir.path()).unwrap();
        fs::remove_file(&transcript).unwrap();
        fs::write(&transcript, response("c", 5)).unwrap();
        let again = read_since_last("SessionEnd", &payload, dir.path()).unwrap();
        assert_eq!(again.from, 0);
        assert_eq!(again.responses[0].message_id, "msg_c");
    }
}
