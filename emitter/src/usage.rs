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
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hooktrail_shared::envelope::{HookEvent, MAX_LINE_BYTES};
use hooktrail_shared::transcript::{self, TranscriptKind, TranscriptUsage, Turn};
use hooktrail_shared::{paths, regular_file};
use serde::Deserialize;

use crate::diag::debug;

/// The hooks at which a turn's usage is read. `PostToolBatch` fires once
/// per model response with tool calls, so budgets see spend at most one
/// response late (issue 19); it reads the transcript of the agent that made
/// the calls, by the same byte and time budget.
const BOUNDARY_HOOKS: [HookEvent; 5] = [
    HookEvent::Stop,
    HookEvent::SubagentStop,
    HookEvent::PreCompact,
    HookEvent::SessionEnd,
    HookEvent::PostToolBatch,
];

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
    /// Set on a subagent's `PostToolBatch`: its transcript is beside the
    /// session's (`<session>/subagents/agent-<id>.jsonl`).
    #[serde(default)]
    agent_id: Option<String>,
}

/// Where Claude Code keeps a subagent's transcript: beside the session's,
/// `<dir>/<session>/subagents/agent-<id>.jsonl`. `None` for an id that could
/// leave that folder.
fn subagent_transcript(session: &Path, agent_id: &str) -> Option<PathBuf> {
    let safe = !agent_id.is_empty()
        && agent_id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    let stem = session.file_stem()?;
    safe.then(|| {
        session
            .with_file_name(stem)
            .join("subagents")
            .join(format!("agent-{agent_id}.jsonl"))
    })
}

/// Whether `event` is a turn boundary, checked before anything else is done.
pub fn is_boundary(event: HookEvent) -> bool {
    BOUNDARY_HOOKS.contains(&event)
}

/// What the `usage` wrapper (`transcript`, `from`, `to`, flags, its key and
/// brackets) may take around the responses and ids, with a wide margin.
const WRAPPER_BYTES: usize = 1024;

/// The least room worth a read: with less (a payload that already fills
/// its line), the transcript is left whole for the next boundary.
pub const MIN_ROOM: usize = 64 * 1024;

/// The most subagent transcripts a session's pending list keeps; the
/// oldest are dropped past it, so the list cannot grow without bound.
const MAX_PENDING_AGENTS: usize = 256;

/// The largest pending list read (256 paths of 4 KiB).
const MAX_PENDING_BYTES: u64 = 1024 * 1024;

/// How long after its `SubagentStop` a subagent whose transcript has not
/// shown the end of its turn stays pending, re-read at each of its
/// session's boundaries. Claude Code writes the last response 10 to 250 ms
/// after that hook (measured with the real CLI); the main agent's next
/// boundary (its `PostToolBatch`) often comes before that, so reading to
/// the file's end then proves nothing. A transcript that ends its turn is
/// done at once; this bounds the re-reads of one that never does (an
/// interrupted agent), generously, since a re-read of a file with nothing
/// new costs one `stat`.
const AGENT_GRACE: Duration = Duration::from_secs(10);

/// The largest offset file read: one line of numbers and a prompt id.
const MAX_OFFSET_BYTES: u64 = 4096;

/// The bytes of a transcript's start hashed with its offset: a file
/// rewritten in place (`cat new > t`) or replaced under a reused inode
/// keeps its identity but not its first line, and is then read again from
/// its start.
const HEAD_BYTES: u64 = 1024;

/// The bytes the envelope's `usage` may take, when the envelope line without
/// it is `line_without_usage` bytes long: together they stay within
/// [`MAX_LINE_BYTES`], the limit every transport and the spool's forwarder
/// holds lines to.
pub fn room_in_line(line_without_usage: usize) -> usize {
    MAX_LINE_BYTES.saturating_sub(line_without_usage + WRAPPER_BYTES)
}

/// Reads what the transcript named by `payload` gained since the last read,
/// for a boundary `event`, within `room` bytes of JSON; `None` when there is
/// nothing to report or nothing could be read. What does not fit is left
/// for the next boundary (`more`), never skipped.
pub fn read_since_last(
    event: HookEvent,
    payload: &str,
    state_dir: &Path,
    room: usize,
) -> Option<TranscriptUsage> {
    read_within(event, payload, state_dir, TIME_BUDGET, room)
}

/// How far one read got, besides what it found.
#[derive(Debug, Default, Clone, Copy)]
struct ReadOutcome {
    /// The JSON bytes its findings take, out of the room.
    json_bytes: usize,
    /// Set when the read stopped before the end of the file (budget, room):
    /// a pending subagent transcript stays pending.
    unfinished: bool,
    /// Where the last response line read left the turn (`None`: no
    /// response line was read): a subagent's transcript that ends its turn
    /// is complete.
    turn: Option<Turn>,
}

impl ReadOutcome {
    /// Whether a subagent's transcript read this far may still gain its last
    /// response.
    fn may_grow(&self) -> bool {
        self.unfinished || self.turn != Some(Turn::Ended)
    }
}

/// [`read_since_last`] with its time budget given (tests give a long one, so
/// a slow debug build reads as much as a release build).
fn read_within(
    event: HookEvent,
    payload: &str,
    state_dir: &Path,
    budget: Duration,
    room: usize,
) -> Option<TranscriptUsage> {
    if !is_boundary(event) {
        return None;
    }
    let deadline = Instant::now() + budget;
    let paths: TranscriptPaths = serde_json::from_str(payload).ok()?;
    if let (HookEvent::PostToolBatch, Some(agent_id), Some(session)) =
        (event, &paths.agent_id, &paths.transcript_path)
    {
        let agent = subagent_transcript(Path::new(session), agent_id)?;
        return read_logged(&agent, TranscriptKind::Agent, state_dir, deadline, room).0;
    }
    match (event, paths.agent_transcript_path) {
        // A subagent's turn is in its own transcript.
        (HookEvent::SubagentStop, Some(agent)) if !agent.is_empty() => {
            let agent = Path::new(&agent);
            let (usage, outcome) =
                read_logged(agent, TranscriptKind::Agent, state_dir, deadline, room);
            // Claude Code can write the agent's last response just after
            // this hook read the file (seen: 10 to 250 ms later), so the
            // session's boundaries read it again until it ends its turn.
            if let (Some(session), true) = (&paths.transcript_path, outcome.may_grow()) {
                if agent.is_file() {
                    let pending = PendingAgent {
                        stopped_at_ms: now_ms(),
                        path: agent.as_os_str(),
                    };
                    remember_agents(state_dir, Path::new(session), &[pending]);
                }
            }
            usage
        }
        // The main transcript's boundaries (Stop, PreCompact, SessionEnd)
        // read the session's, then what the subagents that stopped since
        // wrote after their own SubagentStop.
        _ => {
            let session = PathBuf::from(paths.transcript_path?);
            let (mut usage, outcome) =
                read_logged(&session, TranscriptKind::Session, state_dir, deadline, room);
            let room = room.saturating_sub(outcome.json_bytes);
            read_pending_agents(state_dir, &session, deadline, room, &mut usage);
            usage
        }
    }
}

/// Reads the session's pending subagent transcripts into `usage`. The list
/// is claimed by a rename (a `SubagentStop` racing with this one starts a
/// new list), read, and what may still grow ([`ReadOutcome::may_grow`],
/// within [`AGENT_GRACE`] of its stop) goes back on the new list, once
/// each, at most [`MAX_PENDING_AGENTS`] of them: a list kept whole
/// whenever one read ran out of time grew without bound.
fn read_pending_agents(
    state_dir: &Path,
    session: &Path,
    deadline: Instant,
    mut room: usize,
    usage: &mut Option<TranscriptUsage>,
) {
    let list = pending_agents_file(state_dir, session);
    let claimed = list.with_extension("agents-claimed");
    if fs::rename(&list, &claimed).is_err() {
        return;
    }
    let text = regular_file::read(&claimed, MAX_PENDING_BYTES);
    let _ = fs::remove_file(&claimed);
    let text = match text {
        Ok(text) => text,
        Err(error) => {
            debug!(
                "usage: dropping the pending list {}: {error}",
                list.display()
            );
            return;
        }
    };
    let now = now_ms();
    let grace_ms = AGENT_GRACE.as_millis() as u64;
    let mut unfinished = Vec::new();
    for agent in PendingAgent::parse_list(&text) {
        if Instant::now() >= deadline || room < MIN_ROOM {
            unfinished.push(agent);
            continue;
        }
        let (late, outcome) = read_logged(
            Path::new(agent.path),
            TranscriptKind::Session,
            state_dir,
            deadline,
            room,
        );
        room = room.saturating_sub(outcome.json_bytes);
        let in_grace = now < agent.stopped_at_ms.saturating_add(grace_ms);
        if outcome.unfinished || (outcome.may_grow() && in_grace) {
            unfinished.push(agent);
        }
        let Some(late) = late else {
            continue;
        };
        let merged = usage.get_or_insert_with(|| TranscriptUsage {
            transcript: TranscriptKind::Session,
            from: 0,
            to: 0,
            more: false,
            bad_lines: 0,
            responses: Vec::new(),
            tool_use_ids: Vec::new(),
            agent_ids: Vec::new(),
        });
        merged.bad_lines += late.bad_lines;
        merged.more |= late.more;
        merged.responses.extend(late.responses);
        merged.tool_use_ids.extend(late.tool_use_ids);
        merged.agent_ids.extend(late.agent_ids);
    }
    let keep = unfinished.len().saturating_sub(MAX_PENDING_AGENTS);
    if !unfinished.is_empty() {
        remember_agents(state_dir, session, &unfinished[keep..]);
    }
}

/// [`read_part`], with a failure told in the diagnostics.
fn read_logged(
    path: &Path,
    kind: TranscriptKind,
    state_dir: &Path,
    deadline: Instant,
    room: usize,
) -> (Option<TranscriptUsage>, ReadOutcome) {
    if room < MIN_ROOM {
        debug!(
            "usage: no room left in the envelope; {} waits",
            path.display()
        );
        return (
            None,
            ReadOutcome {
                json_bytes: 0,
                unfinished: true,
                turn: None,
            },
        );
    }
    match read_part(path, kind, state_dir, deadline, room) {
        Ok(read) => read,
        Err(error) => {
            debug!("usage: {}: {error}", path.display());
            (None, ReadOutcome::default())
        }
    }
}

/// `<state_dir>/transcripts/<hash of the session's transcript>.agents`: the
/// subagent transcripts of a session that stopped since its last boundary.
fn pending_agents_file(state_dir: &Path, session: &Path) -> PathBuf {
    offset_file(state_dir, session).with_extension("agents")
}

/// A subagent transcript on its session's pending list: one line,
/// `<stopped_at_ms>\t<path>`. A line of older emitters is the path alone
/// (it starts with `/`), read as stopped long ago: its grace is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PendingAgent<'a> {
    /// When its `SubagentStop` ran, in milliseconds since the epoch.
    stopped_at_ms: u64,
    /// Its transcript.
    path: &'a std::ffi::OsStr,
}

impl<'a> PendingAgent<'a> {
    /// The entries of a list, each path once (with its latest stop), in
    /// the order each path was first noted.
    fn parse_list(text: &'a [u8]) -> Vec<PendingAgent<'a>> {
        let mut agents: Vec<PendingAgent<'a>> = Vec::new();
        let mut index = std::collections::HashMap::new();
        for line in text.split(|&byte| byte == b'\n') {
            let Some(agent) = PendingAgent::parse(line) else {
                continue;
            };
            match index.get(agent.path) {
                Some(&at) => {
                    let known: &mut PendingAgent = &mut agents[at];
                    known.stopped_at_ms = known.stopped_at_ms.max(agent.stopped_at_ms);
                }
                None => {
                    index.insert(agent.path, agents.len());
                    agents.push(agent);
                }
            }
        }
        agents
    }

    fn parse(line: &'a [u8]) -> Option<PendingAgent<'a>> {
        if line.is_empty() {
            return None;
        }
        let tab = line.iter().position(|&byte| byte == b'\t');
        let stopped_at_ms = tab.and_then(|at| std::str::from_utf8(&line[..at]).ok()?.parse().ok());
        let (stopped_at_ms, path) = match (tab, stopped_at_ms) {
            (Some(at), Some(ms)) => (ms, &line[at + 1..]),
            _ => (0, line),
        };
        (!path.is_empty()).then(|| PendingAgent {
            stopped_at_ms,
            path: std::ffi::OsStr::from_bytes(path),
        })
    }
}

/// Milliseconds since the epoch (0 before it: a clock that wrong only
/// shortens a grace).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// Adds stopped subagents' transcripts to their session's pending list.
fn remember_agents(state_dir: &Path, session: &Path, agents: &[PendingAgent<'_>]) {
    let list = pending_agents_file(state_dir, session);
    let mut text = Vec::new();
    for agent in agents {
        text.extend_from_slice(agent.stopped_at_ms.to_string().as_bytes());
        text.push(b'\t');
        text.extend_from_slice(agent.path.as_bytes());
        text.push(b'\n');
    }
    let written = list
        .parent()
        .map_or(Ok(()), paths::ensure_private_dir)
        .and_then(|()| regular_file::open_for_append(&list, 0o600))
        .and_then(|mut handle| std::io::Write::write_all(&mut handle, &text));
    if let Err(error) = written {
        debug!(
            "usage: cannot note subagents in {}: {error}",
            list.display()
        );
    }
}

/// Where one transcript was read up to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Offset {
    /// The file's device and inode: a different file under the same path (a
    /// rotation, a rewrite) is read from its start.
    device: u64,
    inode: u64,
    /// Bytes already read.
    offset: u64,
    /// How many of the file's first bytes `head_hash` covers (0: none, as
    /// in offset files of older emitters).
    head_len: u64,
    /// FNV-1a of those bytes: a file rewritten in place keeps its inode,
    /// not its first line.
    head_hash: u64,
    /// The prompt in effect at `offset`, for the responses before the next
    /// part's first user line.
    prompt_id: Option<String>,
}

fn read_part(
    path: &Path,
    kind: TranscriptKind,
    state_dir: &Path,
    deadline: Instant,
    room: usize,
) -> std::io::Result<(Option<TranscriptUsage>, ReadOutcome)> {
    // Never a plain open: a FIFO would block it for good (issue 16).
    let (file, metadata) = regular_file::open(path)?;
    let state_file = offset_file(state_dir, path);
    let previous = read_offset(&state_file).filter(|known| {
        known.device == metadata.dev()
            && known.inode == metadata.ino()
            && known.offset <= metadata.len()
            && (known.head_len == 0
                || head_hash(&file, known.head_len).ok() == Some(known.head_hash))
    });
    let (from, prompt_id) = match previous {
        Some(known) => (known.offset, known.prompt_id),
        None => (0, None),
    };
    let available = metadata.len() - from;
    if available == 0 {
        return Ok((None, ReadOutcome::default()));
    }
    let wanted = available.min(BYTE_BUDGET);
    let (scanned, read) = scan_part(&file, from, wanted, deadline, room, prompt_id)?;
    // A budget-sized part without a single newline is one enormous line
    // (a huge tool result): step over it rather than stall on it forever.
    let consumed = if scanned.consumed == 0 && read == BYTE_BUDGET {
        read as usize
    } else {
        scanned.consumed
    };
    let to = from + consumed as u64;
    if to != from {
        let head_len = to.min(HEAD_BYTES);
        let offset = Offset {
            device: metadata.dev(),
            inode: metadata.ino(),
            offset: to,
            head_len,
            head_hash: head_hash(&file, head_len)?,
            prompt_id: scanned.prompt_id,
        };
        if let Err(error) = write_offset(&state_file, &offset) {
            debug!(
                "usage: cannot keep the offset in {}: {error}",
                state_file.display()
            );
        }
    }
    let outcome = ReadOutcome {
        json_bytes: scanned.json_bytes,
        unfinished: to < metadata.len(),
        turn: scanned.last_turn,
    };
    if scanned.responses.is_empty()
        && scanned.bad_lines == 0
        && scanned.tool_use_ids.is_empty()
        && scanned.agent_ids.is_empty()
    {
        return Ok((None, outcome));
    }
    Ok((
        Some(TranscriptUsage {
            transcript: kind,
            from,
            to,
            more: to < metadata.len(),
            bad_lines: scanned.bad_lines,
            responses: scanned.responses,
            tool_use_ids: scanned.tool_use_ids,
            agent_ids: scanned.agent_ids,
        }),
        outcome,
    ))
}

/// FNV-1a of the first `length` bytes of `file`.
fn head_hash(file: &File, length: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut head = vec![0u8; length as usize];
    file.read_exact_at(&mut head, 0)?;
    Ok(fnv1a(&head))
}

/// FNV-1a: stable across versions and builds, unlike std's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The first read's size. Reading a 10 MB turn into one fresh 10 MB buffer
/// costs about 2,500 page faults (2 µs each here); one buffer of this size,
/// reused, costs a tenth of that.
const CHUNK: usize = 1024 * 1024;

/// Scans `wanted` bytes of `file` from `from` through one reused buffer
/// (grown only for a line longer than it), keeping what it finds within
/// `room` bytes of JSON; returns what was found and how many bytes were
/// read.
fn scan_part(
    file: &File,
    from: u64,
    wanted: u64,
    deadline: Instant,
    room: usize,
    prompt_id: Option<String>,
) -> std::io::Result<(transcript::Scan, u64)> {
    use std::os::unix::fs::FileExt;
    let mut scanner = transcript::Scanner::with_json_limit(room, prompt_id);
    let mut buffer = vec![0u8; CHUNK.min(wanted as usize)];
    let mut filled = 0;
    let mut read: u64 = 0;
    while read < wanted && !scanner.stopped_early() {
        if filled == buffer.len() {
            // One line is longer than the buffer: make room for the rest.
            buffer.resize((buffer.len() * 2).min(wanted as usize), 0);
        }
        let room = (buffer.len() - filled).min((wanted - read) as usize);
        let count = file.read_at(&mut buffer[filled..filled + room], from + read)?;
        if count == 0 {
            break;
        }
        filled += count;
        read += count as u64;
        let consumed = scanner.feed(&buffer[..filled], Some(deadline));
        buffer.copy_within(consumed..filled, 0);
        filled -= consumed;
    }
    Ok((scanner.finish(), read))
}

/// `<state_dir>/transcripts/<hash of the path>`: one small file per
/// transcript, so hooks of different sessions never share one.
fn offset_file(state_dir: &Path, transcript: &Path) -> PathBuf {
    let hash = fnv1a(transcript.as_os_str().as_encoded_bytes());
    state_dir.join("transcripts").join(format!("{hash:016x}"))
}

fn read_offset(file: &Path) -> Option<Offset> {
    let text = regular_file::read_to_string(file, MAX_OFFSET_BYTES).ok()?;
    let mut words = text.split_whitespace();
    let mut number = || words.next()?.parse::<u64>().ok();
    let (device, inode, offset) = (number()?, number()?, number()?);
    // Offset files of older emitters end here: no head to check.
    let (head_len, head_hash) = (number().unwrap_or(0), number().unwrap_or(0));
    let prompt_id = words.next().filter(|word| *word != "-").map(str::to_owned);
    Some(Offset {
        device,
        inode,
        offset,
        head_len: head_len.min(offset),
        head_hash,
        prompt_id,
    })
}

fn write_offset(file: &Path, offset: &Offset) -> std::io::Result<()> {
    if let Some(parent) = file.parent() {
        paths::ensure_private_dir(parent)?;
    }
    // Rewritten in place, like the breaker: a rename over an existing file
    // makes ext4 start writeback, which the hook would wait for. Cut to its
    // new length after the write (never to zero first, for the same reason).
    let mut handle = regular_file::open_for_write(file, 0o600)?;
    let prompt = offset
        .prompt_id
        .as_deref()
        .filter(|prompt| !prompt.is_empty() && !prompt.contains(char::is_whitespace))
        .unwrap_or("-");
    let line = format!(
        "{} {} {} {} {} {prompt}\n",
        offset.device, offset.inode, offset.offset, offset.head_len, offset.head_hash
    );
    std::io::Write::write_all(&mut handle, line.as_bytes())?;
    handle.set_len(line.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(120);
    const ROOM: usize = 1024 * 1024;

    fn response(id: &str, output: u64) -> String {
        response_ending(id, output, "tool_use")
    }

    /// A response line with this `stop_reason` (`end_turn`: its agent's
    /// last).
    fn response_ending(id: &str, output: u64, stop_reason: &str) -> String {
        format!(
            r#"{{"type":"assistant","requestId":"req_{id}","message":{{"id":"msg_{id}","model":"claude-sonnet-4-5","stop_reason":"{stop_reason}","usage":{{"input_tokens":1,"output_tokens":{output}}}}}}}"#
        ) + "\n"
    }

    /// A session transcript with one response and a subagent's beside it,
    /// and the payloads of the main agent's boundaries and the agent's stop.
    struct SessionWithAgent {
        dir: tempfile::TempDir,
        session: PathBuf,
        agent: PathBuf,
        main: String,
        agent_stop: String,
    }

    impl SessionWithAgent {
        fn new(agent_text: &str) -> SessionWithAgent {
            let dir = tempfile::tempdir().unwrap();
            let session = dir.path().join("s.jsonl");
            let agent = dir.path().join("s/subagents/agent-a1.jsonl");
            fs::create_dir_all(agent.parent().unwrap()).unwrap();
            fs::write(&session, response("m1", 1)).unwrap();
            fs::write(&agent, agent_text).unwrap();
            let main = serde_json::json!({"transcript_path": session}).to_string();
            let agent_stop = serde_json::json!({"transcript_path": session,
                "agent_transcript_path": agent, "agent_id": "a1"})
            .to_string();
            SessionWithAgent {
                dir,
                session,
                agent,
                main,
                agent_stop,
            }
        }
    }

    /// The lines of a session's pending list.
    fn pending(state: &Path, session: &Path) -> Vec<String> {
        fs::read_to_string(pending_agents_file(state, session))
            .map(|text| text.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    #[test]
    fn each_boundary_reads_only_what_the_transcript_gained() {
        let dir = tempfile::tempdir().unwrap();
        let transcript = dir.path().join("t.jsonl");
        fs::write(&transcript, response("a", 5)).unwrap();
        let payload = serde_json::json!({"transcript_path": transcript}).to_string();
        let state = dir.path().join("state");
        let first = read_within(HookEvent::Stop, &payload, &state, LONG, ROOM).unwrap();
        assert_eq!(first.responses.len(), 1);
        assert_eq!(first.from, 0);
        assert!(read_within(HookEvent::Stop, &payload, &state, LONG, ROOM).is_none());
        let mut text = fs::read_to_string(&transcript).unwrap();
        text.push_str(&response("b", 6));
        text.push_str(&response("c", 7)[..20]);
        fs::write(&transcript, &text).unwrap();
        let second = read_within(HookEvent::Stop, &payload, &state, LONG, ROOM).unwrap();
        assert_eq!(second.responses.len(), 1);
        assert_eq!(second.responses[0].message_id, "msg_b");
        assert_eq!(second.from, first.to);
        assert!(second.more, "the half-written line is left for later");
    }

    #[test]
    fn lines_longer_than_the_read_buffer_and_many_buffers_are_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let transcript = dir.path().join("t.jsonl");
        let huge = format!(
            "{{\"type\":\"user\",\"message\":{{\"content\":\"{}\"}}}}\n",
            "x".repeat(3 * CHUNK)
        );
        let mut text = String::new();
        for index in 0..3000 {
            text.push_str(&response(&index.to_string(), 1));
            if index == 1500 {
                text.push_str(&huge);
            }
        }
        fs::write(&transcript, &text).unwrap();
        let payload = serde_json::json!({"transcript_path": transcript}).to_string();
        let read = read_within(HookEvent::Stop, &payload, dir.path(), LONG, ROOM).unwrap();
        assert_eq!(read.responses.len(), 3000);
        assert_eq!(read.to, text.len() as u64);
        assert!(!read.more);
    }

    #[test]
    fn a_subagent_response_written_after_its_subagent_stop_is_read_at_the_next_stop() {
        let SessionWithAgent {
            dir,
            agent,
            main: stop,
            agent_stop,
            ..
        } = SessionWithAgent::new(&response("a1", 1));
        let first =
            read_within(HookEvent::SubagentStop, &agent_stop, dir.path(), LONG, ROOM).unwrap();
        assert_eq!(first.responses.len(), 1);
        // The agent's last response lands after its SubagentStop read.
        append(&agent, &response("a2", 9));
        let at_stop = read_within(HookEvent::Stop, &stop, dir.path(), LONG, ROOM).unwrap();
        assert_eq!(message_ids(&at_stop), ["msg_m1", "msg_a2"]);
        // Read once: the next boundary has nothing left to read.
        assert!(read_within(HookEvent::Stop, &stop, dir.path(), LONG, ROOM).is_none());
    }

    #[test]
    fn the_pending_list_keeps_each_unread_agent_once_and_at_most_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let session = dir.path().join("s.jsonl");
        fs::write(&session, response("m1", 1)).unwrap();
        let mut agents = Vec::new();
        for index in 0..MAX_PENDING_AGENTS + 44 {
            let agent = dir.path().join(format!("agent-{index}.jsonl"));
            fs::write(&agent, response_ending(&format!("a{index}"), 1, "end_turn")).unwrap();
            agents.push(agent);
        }
        let names: Vec<PendingAgent> = agents
            .iter()
            .map(|agent| PendingAgent {
                stopped_at_ms: now_ms(),
                path: agent.as_os_str(),
            })
            .collect();
        // Every agent noted twice, as a list kept whole would have grown.
        remember_agents(dir.path(), &session, &names);
        remember_agents(dir.path(), &session, &names);
        let stop = serde_json::json!({"transcript_path": session}).to_string();
        // No time left: nothing is read, every agent stays pending, once,
        // and only the newest MAX_PENDING_AGENTS of them.
        read_within(HookEvent::Stop, &stop, dir.path(), Duration::ZERO, ROOM);
        let kept = pending(dir.path(), &session);
        assert_eq!(kept.len(), MAX_PENDING_AGENTS);
        assert!(kept[0].ends_with(&format!("\t{}", agents[44].display())));
        // With time, each is read, each has ended its turn, and the list
        // is gone.
        let read = read_within(HookEvent::Stop, &stop, dir.path(), LONG, ROOM).unwrap();
        assert_eq!(read.responses.len(), MAX_PENDING_AGENTS);
        assert!(!pending_agents_file(dir.path(), &session).exists());
    }

    /// Appends `lines` to the transcript at `path`, as Claude Code does.
    fn append(path: &Path, lines: &str) {
        let mut text = fs::read_to_string(path).unwrap();
        text.push_str(lines);
        fs::write(path, text).unwrap();
    }

    /// The message ids of what a read found, in order.
    fn message_ids(read: &TranscriptUsage) -> Vec<&str> {
        read.responses
            .iter()
            .map(|response| response.message_id.as_str())
            .collect()
    }

    /// The real CLI's order (scripts/e2e-cli, `subagent`): the agent's
    /// `SubagentStop`, then the main agent's `PostToolBatch`, and only then
    /// the agent's last response lands; the main `Stop` must read it.
    #[test]
    fn a_subagent_stays_pending_until_its_transcript_ends_its_turn() {
        let SessionWithAgent {
            dir,
            session,
            agent,
            main,
            agent_stop,
        } = SessionWithAgent::new(&response("a1", 1));
        read_within(HookEvent::SubagentStop, &agent_stop, dir.path(), LONG, ROOM).unwrap();
        // The main agent's PostToolBatch reads the agent to its end, which
        // still ends in a tool call: it stays pending.
        read_within(HookEvent::PostToolBatch, &main, dir.path(), LONG, ROOM).unwrap();
        assert_eq!(pending(dir.path(), &session).len(), 1);
        append(&agent, &response_ending("a2", 9, "end_turn"));
        let at_stop = read_within(HookEvent::Stop, &main, dir.path(), LONG, ROOM).unwrap();
        assert_eq!(message_ids(&at_stop), ["msg_a2"]);
        assert!(pending(dir.path(), &session).is_empty(), "its turn ended");
    }

    #[test]
    fn a_subagent_that_ended_its_turn_before_its_stop_is_not_pending() {
        let SessionWithAgent {
            dir,
            session,
            agent_stop,
            ..
        } = SessionWithAgent::new(&(response("a1", 1) + &response_ending("a2", 3, "end_turn")));
        let read =
            read_within(HookEvent::SubagentStop, &agent_stop, dir.path(), LONG, ROOM).unwrap();
        assert_eq!(read.responses.len(), 2);
        assert!(pending(dir.path(), &session).is_empty());
    }

    #[test]
    fn a_pending_agent_past_its_grace_or_from_an_older_emitter_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let session = dir.path().join("s.jsonl");
        fs::write(&session, response("m1", 1)).unwrap();
        let interrupted = dir.path().join("agent-x.jsonl");
        let older = dir.path().join("agent-y.jsonl");
        fs::write(&interrupted, response("x1", 1)).unwrap();
        fs::write(&older, response("y1", 1)).unwrap();
        // Stopped long ago, and a line as older emitters wrote it (the path
        // alone): neither ended its turn, both are past their grace.
        let list = pending_agents_file(dir.path(), &session);
        fs::create_dir_all(list.parent().unwrap()).unwrap();
        fs::write(
            &list,
            format!("1\t{}\n{}\n", interrupted.display(), older.display()),
        )
        .unwrap();
        let main = serde_json::json!({"transcript_path": session}).to_string();
        let read = read_within(HookEvent::Stop, &main, dir.path(), LONG, ROOM).unwrap();
        assert_eq!(read.responses.len(), 3);
        assert!(pending(dir.path(), &session).is_empty());
    }

    #[test]
    fn pending_lines_parse_with_and_without_a_time() {
        let text = b"12\t/a b/agent-1.jsonl\n/old/agent-2.jsonl\n\n40\t/a b/agent-1.jsonl\nx\t/c\n";
        let agents = PendingAgent::parse_list(text);
        let got: Vec<(u64, &str)> = agents
            .iter()
            .map(|agent| (agent.stopped_at_ms, agent.path.to_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                (40, "/a b/agent-1.jsonl"),
                (0, "/old/agent-2.jsonl"),
                (0, "x\t/c"),
            ]
        );
    }

    #[test]
    fn other_hooks_and_missing_transcripts_give_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let payload = r#"{"transcript_path":"/nonexistent/t.jsonl"}"#;
        assert!(read_within(HookEvent::PreToolUse, payload, dir.path(), LONG, ROOM).is_none());
        assert!(read_within(HookEvent::Stop, payload, dir.path(), LONG, ROOM).is_none());
        assert!(read_within(HookEvent::Stop, "not json", dir.path(), LONG, ROOM).is_none());
    }

    #[test]
    fn a_rewritten_transcript_is_read_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let transcript = dir.path().join("t.jsonl");
        fs::write(&transcript, response("a", 5) + &response("b", 5)).unwrap();
        let payload = serde_json::json!({"transcript_path": transcript}).to_string();
        read_within(HookEvent::Stop, &payload, dir.path(), LONG, ROOM).unwrap();
        fs::remove_file(&transcript).unwrap();
        fs::write(&transcript, response("c", 5)).unwrap();
        let again = read_within(HookEvent::SessionEnd, &payload, dir.path(), LONG, ROOM).unwrap();
        assert_eq!(again.from, 0);
        assert_eq!(again.responses[0].message_id, "msg_c");
    }
}
