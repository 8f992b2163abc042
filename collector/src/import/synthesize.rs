//! One transcript file turned into hook-like events, usage and the ids the
//! completeness check needs.
//!
//! Claude Code's transcripts (docs/TRANSCRIPTS.md: the fields read here) hold
//! what the hooks would have reported, so the import writes the same events
//! the hooks would have sent, and every view (`tool_calls`, `prompts`), the
//! `sessions` and `agents` tables and the API work on imported history
//! unchanged:
//!
//! | transcript | event |
//! | --- | --- |
//! | the file's first line with a time | `SessionStart` (`SubagentStart` in a subagent's file) |
//! | a `user` line with a prompt's text (not a command's output, not meta) | `UserPromptSubmit`, once per `promptId` |
//! | a `tool_use` block of an `assistant` line | `PreToolUse` |
//! | its `tool_result` in a later `user` line | `PostToolUse`, or `PostToolUseFailure` when `is_error`, with `duration_ms` from the two times |
//! | an `assistant` response that ends the turn (`stop_reason` not `tool_use`) | `Stop`, at the `stop_hook_summary` line's time when there is one |
//! | a `<synthetic>` API error message | `StopFailure` with its `error` |
//! | a `system` `compact_boundary` | `PreCompact` and `PostCompact` |
//! | the file's last line with a time | `SessionEnd` (reason `transcript_end`; `SubagentStop` in a subagent's file) |
//!
//! Each event's id is derived from the session, the agent, the line's
//! `uuid` and the event's kind ([`derived_id`]), so importing twice stores
//! nothing new. Usage goes through the shared counting rules
//! ([`transcript::response_of_line`]).
//!
//! The file is read as a stream of lines, never whole: memory is bounded by
//! the longest line ([`MAX_LINE_BYTES`]) and the events of one batch. Lines
//! that are not JSON objects are counted as bad and skipped; Claude Code's
//! bookkeeping lines (`api-request`, `attachment`, `file-history-snapshot`,
//! …) are recognized by their first bytes and skipped without parsing.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use hooktrail_shared::envelope::{shorten_strings, Envelope, HookEvent};
use hooktrail_shared::redact::Redactor;
use hooktrail_shared::time::parse_rfc3339_millis;
use hooktrail_shared::transcript::{self, lift_plain_string, memmem, ResponseUsage, Turn};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::skim;
use crate::event::Source;
use crate::ingest::{KnownSessions, NewEvent};
use crate::store::writer::{ImportedUsage, TranscriptIds};

/// The longest line kept; a longer one is counted as bad and skipped
/// without being held in memory.
pub(crate) const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// The largest `tool_input` stored as it is; a larger one has its longest
/// strings shortened, as the emitter shortens oversized payloads.
const MAX_TOOL_INPUT_BYTES: usize = 64 * 1024;

/// The longest tool error text kept.
const MAX_ERROR_CHARS: usize = 2000;
// The skimmer keeps more of a tool result than an error text needs, so
// error texts come out the same as from the whole line.
const _: () = assert!(skim::KEEP_CHARS > MAX_ERROR_CHARS);

/// The end reason of an imported session: its transcript ends there.
pub(crate) const IMPORTED_END_REASON: &str = "transcript_end";

/// Which kind of transcript a file is, from where it lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// `<project>/<session_id>.jsonl`.
    Session { session_id: String },
    /// `<project>/<session_id>/subagents/agent-<agent_id>.jsonl`.
    Subagent {
        session_id: String,
        agent_id: String,
    },
}

impl FileKind {
    /// The session the file belongs to.
    pub(crate) fn session_id(&self) -> &str {
        match self {
            FileKind::Session { session_id } | FileKind::Subagent { session_id, .. } => session_id,
        }
    }

    /// The subagent, for a subagent's file.
    pub(crate) fn agent_id(&self) -> Option<&str> {
        match self {
            FileKind::Subagent { agent_id, .. } => Some(agent_id),
            FileKind::Session { .. } => None,
        }
    }
}

/// Where the events and rows of the files read so far go; the import hands
/// it to the store in batches.
#[derive(Default)]
pub(crate) struct Output {
    /// Synthesized events, in transcript order.
    pub(crate) events: Vec<NewEvent>,
    /// Responses with their attribution.
    pub(crate) usage: Vec<ImportedUsage>,
    /// Tool call and subagent ids per file.
    pub(crate) transcript_ids: Vec<TranscriptIds>,
    /// Payload bytes held in `events`, to bound a batch's memory.
    pub(crate) payload_bytes: usize,
    /// Lets the ingest skip re-reading payload facts it already has.
    pub(crate) known: KnownSessions,
    /// The line buffers, kept from file to file (see [`LineBuffers`]).
    lines: LineBuffers,
}

/// The reading thread's two line buffers. They live as long as its
/// [`Output`], not one file: a line split across two read-ahead chunks is
/// copied, often 100 KB or more, and each file's first such line used to
/// grow a new buffer, which the allocator maps fresh above 256 KB
/// (`import::keep_large_allocations_apart`) and the kernel then faults in
/// page by page: about 50,000 minor faults per GB of transcripts.
#[derive(Default)]
struct LineBuffers {
    /// A line split across the reader's buffer, or longer than it, copied.
    line: Vec<u8>,
    /// The line with its tool results' bodies cut ([`skim`]).
    skimmed: Vec<u8>,
}

/// A line buffer larger than this after a file is dropped, not kept: a
/// rare huge line must not hold its memory for the rest of the import.
const KEEP_LINE_BUFFER_BYTES: usize = 4 * 1024 * 1024;

impl LineBuffers {
    /// The buffers to keep for the next file.
    fn kept(line: Vec<u8>, skimmed: Vec<u8>) -> LineBuffers {
        let keep = |buffer: Vec<u8>| {
            if buffer.capacity() > KEEP_LINE_BUFFER_BYTES {
                Vec::new()
            } else {
                buffer
            }
        };
        LineBuffers {
            line: keep(line),
            skimmed: keep(skimmed),
        }
    }
}

/// What reading one file found, for the summary.
#[derive(Debug, Default, Clone)]
pub(crate) struct FileCounts {
    /// Lines that were not JSON objects (or too long): skipped.
    pub(crate) bad_lines: u64,
    /// Responses found (after collapsing repeated lines of one response).
    pub(crate) responses: u64,
    /// Whether the file looked binary and was skipped whole.
    pub(crate) binary: bool,
    /// Where the file ends: its last line with a time ([`LastLine`]), for
    /// the end of a session whose own transcript is missing.
    pub(crate) last_line: Option<LastLine>,
}

/// A transcript's last line with a time: where its end event goes, and what
/// names that event. A grown transcript has another last line, so its end
/// gets a new id and replaces the earlier one (`store::import::
/// retire_replaced_ends`) instead of leaving a stale end before the new
/// lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LastLine {
    /// The line's time.
    pub(crate) ts: i64,
    /// The line's `uuid` (its time when it has none).
    pub(crate) key: String,
}

/// How a file is read: what it is and what to do with its events.
pub(crate) struct FileJob<'a> {
    /// The transcript.
    pub(crate) path: &'a Path,
    /// Session or subagent transcript.
    pub(crate) kind: &'a FileKind,
    /// The machine the history is imported on (transcripts are local).
    pub(crate) machine: &'a str,
    /// The redaction rules each event goes through, as a hook's does.
    pub(crate) redactor: &'a Redactor,
    /// Whether the session already has live events: then only its usage
    /// and ids are stored, its events are left to the hooks.
    pub(crate) live: bool,
    /// Bumped as bytes are read, for the progress bar.
    pub(crate) bytes_read: &'a AtomicU64,
    /// A subagent's type, from the `agent-<id>.meta.json` beside its file
    /// (read ahead: `super::agent_meta`).
    pub(crate) agent_type: Option<String>,
}

#[cfg(test)]
impl<'a> FileJob<'a> {
    /// A job of the tests: machine `m`, not live.
    pub(crate) fn for_test(
        path: &'a Path,
        kind: &'a FileKind,
        redactor: &'a Redactor,
        bytes_read: &'a AtomicU64,
    ) -> FileJob<'a> {
        let agent_type = kind
            .agent_id()
            .and_then(|agent| super::agent_meta::read_agent_type(path, agent));
        FileJob {
            path,
            kind,
            machine: "m",
            redactor,
            live: false,
            bytes_read,
            agent_type,
        }
    }
}

/// Reads one transcript into `output`, from the file itself (the import
/// reads ahead on a thread of its own: [`read_from`]).
#[cfg(test)]
pub(crate) fn read_file(job: &FileJob<'_>, output: &mut Output) -> std::io::Result<FileCounts> {
    let file = std::fs::File::open(job.path)?;
    read_from(
        job,
        std::io::BufReader::with_capacity(1024 * 1024, file),
        output,
    )
}

/// Reads one transcript into `output` from `reader`, which holds the bytes
/// of `job.path` (read ahead by the import's reading thread).
pub(crate) fn read_from(
    job: &FileJob<'_>,
    mut reader: impl BufRead,
    output: &mut Output,
) -> std::io::Result<FileCounts> {
    let mut counts = FileCounts::default();
    // A file with NUL bytes at its start is not a transcript (JSONL text
    // never holds one): skipped whole, not counted line by line.
    if reader.fill_buf()?.iter().take(4096).any(|&byte| byte == 0) {
        counts.binary = true;
        let skipped = std::io::copy(&mut reader.by_ref().take(u64::MAX), &mut std::io::sink())?;
        job.bytes_read.fetch_add(skipped, Ordering::Relaxed);
        return Ok(counts);
    }
    let mut state = FileState::new(job);
    let LineBuffers {
        mut line,
        mut skimmed,
    } = std::mem::take(&mut output.lines);
    loop {
        let buffer = match reader.fill_buf() {
            Ok(buffer) => buffer,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if buffer.is_empty() {
            break;
        }
        // Most lines lie whole in the buffer: read there, not copied.
        if let Some(at) = memchr::memchr(b'\n', buffer) {
            job.bytes_read.fetch_add(at as u64 + 1, Ordering::Relaxed);
            state.raw_line(&buffer[..at], &mut skimmed, output, &mut counts);
            reader.consume(at + 1);
            continue;
        }
        line.clear();
        let (read, whole) = read_line_capped(&mut reader, &mut line, MAX_LINE_BYTES)?;
        job.bytes_read.fetch_add(read as u64, Ordering::Relaxed);
        if !whole {
            counts.bad_lines += 1;
            continue;
        }
        state.raw_line(&line, &mut skimmed, output, &mut counts);
    }
    state.finish(output, &mut counts);
    output.lines = LineBuffers::kept(line, skimmed);
    Ok(counts)
}

/// Reads up to and including the next newline into `line`; a line longer
/// than `max` is consumed but not kept (`whole` is false). Returns the
/// bytes consumed.
fn read_line_capped(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut whole = true;
    loop {
        let buffer = match reader.fill_buf() {
            Ok(buffer) => buffer,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if buffer.is_empty() {
            return Ok((consumed, whole));
        }
        let (take, done) = match memchr::memchr(b'\n', buffer) {
            Some(at) => (at + 1, true),
            None => (buffer.len(), false),
        };
        if whole && line.len() + take <= max {
            line.extend_from_slice(&buffer[..take]);
        } else {
            whole = false;
            line.clear();
        }
        reader.consume(take);
        consumed += take;
        if done {
            return Ok((consumed, whole));
        }
    }
}

/// The parts of a transcript line the import reads; everything else is
/// skipped by serde without being kept.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(default, borrow, deserialize_with = "borrowed_text", rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed_text")]
    subtype: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed_text")]
    uuid: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed_text")]
    timestamp: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        deserialize_with = "borrowed_text",
        rename = "promptId"
    )]
    prompt_id: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        deserialize_with = "borrowed_text",
        rename = "agentId"
    )]
    agent_id: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        deserialize_with = "borrowed_text",
        rename = "permissionMode"
    )]
    permission_mode: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed_text")]
    cwd: Option<Cow<'a, str>>,
    /// `None` when absent, `Some(None)` for `null`.
    #[serde(default, rename = "isSidechain", deserialize_with = "present")]
    is_sidechain: Option<Option<bool>>,
    /// Only for the line's response ([`transcript::response_of_parsed`]).
    #[serde(default, borrow, rename = "requestId")]
    request_id: Option<&'a RawValue>,
    #[serde(default, rename = "isMeta")]
    is_meta: Option<bool>,
    #[serde(default, rename = "isCompactSummary")]
    is_compact_summary: Option<bool>,
    #[serde(default, rename = "isApiErrorMessage")]
    is_api_error: Option<bool>,
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
    #[serde(default, borrow)]
    message: Option<Message<'a>>,
    #[serde(default, borrow, rename = "toolUseResult")]
    tool_use_result: Option<&'a RawValue>,
    #[serde(default, borrow, rename = "compactMetadata")]
    compact_metadata: Option<CompactMetadata<'a>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(default, borrow, deserialize_with = "borrowed_text")]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed_text")]
    model: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed_text")]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    content: Option<Content<'a>>,
    /// Only for the line's response ([`transcript::response_of_parsed`]).
    #[serde(default, borrow)]
    usage: Option<&'a RawValue>,
}

/// An optional string, borrowed from the line unless it has escapes.
///
/// serde's `borrow` borrows a `Cow<str>` field but not an
/// `Option<Cow<str>>` one, which it always copies into a `String`. Derived,
/// each of these fields cost an allocation per line, and [`response_of`],
/// which parses a line again when its `type` or `timestamp` was not
/// borrowed, parsed every assistant line twice: a tenth of the reading
/// thread's time (BENCHMARKS.md, "Issue 21, import: direct reads").
fn borrowed_text<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    struct Text;
    impl<'de> serde::de::Visitor<'de> for Text {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a string or null")
        }
        fn visit_borrowed_str<E: serde::de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(text)))
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(text.to_owned())))
        }
        fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(text)))
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_str(self)
        }
    }
    deserializer.deserialize_option(Text)
}

/// A field that is present (`null` included): tells `null` from absent.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

impl Line<'_> {
    /// `isSidechain: true`.
    fn sidechain(&self) -> bool {
        self.is_sidechain == Some(Some(true))
    }
}

#[derive(Deserialize)]
struct CompactMetadata<'a> {
    #[serde(default, borrow, deserialize_with = "borrowed_text")]
    trigger: Option<Cow<'a, str>>,
}

/// A message's `content`: the text of a plain prompt, or content blocks.
enum Content<'a> {
    Text(Cow<'a, str>),
    Blocks(Vec<Block<'a>>),
    Other,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(default, borrow, deserialize_with = "borrowed_text", rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed_text")]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed_text")]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    input: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "borrowed_text")]
    tool_use_id: Option<Cow<'a, str>>,
    #[serde(default)]
    is_error: Option<bool>,
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "borrowed_text")]
    text: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = Content<'a>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("message content")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                text: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Borrowed(text)))
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(text.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(text)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut blocks = Vec::new();
                while let Some(block) = seq.next_element::<Block<'de>>()? {
                    blocks.push(block);
                }
                Ok(Content::Blocks(blocks))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Content::Other)
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(Content::Other)
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Content::Other)
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Content::Other)
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Content::Other)
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Content::Other)
            }
        }
        deserializer.deserialize_any(Visitor(std::marker::PhantomData))
    }
}

/// The payload of a synthesized event: the hook fields it stands for, in
/// the order Claude Code writes them (`prompt_id` and `permission_mode`
/// before any tool input, which the ingest relies on).
#[derive(Serialize, Default)]
struct Payload<'a> {
    session_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    transcript_path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cwd: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    permission_mode: Option<&'a str>,
    hook_event_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_transcript_path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_use_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_input: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_response: Option<AgentResponse<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_interrupt: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
}

/// The one `tool_response` field kept from an `Agent` call's result: the
/// subagent it started, which links the agent to the call.
#[derive(Serialize)]
struct AgentResponse<'a> {
    #[serde(rename = "agentId")]
    agent_id: &'a str,
}

/// A tool call seen, waiting for its result.
struct PendingTool {
    ts: i64,
    name: String,
}

/// A turn that ended, waiting for its `Stop` time.
struct PendingStop {
    message_id: String,
    ts: i64,
    uuid: String,
}

/// What one file's reading keeps between lines.
struct FileState<'j> {
    job: &'j FileJob<'j>,
    path_text: String,
    /// The subagent of a subagent's file.
    file_agent: Option<&'j str>,
    /// The subagent's type, from the `agent-<id>.meta.json` beside its file.
    agent_type: Option<String>,
    cwd: Option<String>,
    permission_mode: Option<String>,
    /// The prompt the lines belong to (`promptId` of the last user line).
    prompt_id: Option<String>,
    /// The last prompt a `UserPromptSubmit` was made for.
    submitted_prompt: Option<String>,
    model: Option<String>,
    first: Option<(i64, String)>,
    last_ts: Option<i64>,
    /// The last line with a time, in file order: names the end event.
    last_line: Option<LastLine>,
    started: bool,
    pending_tools: HashMap<String, PendingTool>,
    pending_stop: Option<PendingStop>,
    /// The last response seen; repeated lines of one response replace it.
    pending_usage: Option<ImportedUsage>,
    ids: TranscriptIds,
}

impl<'j> FileState<'j> {
    fn new(job: &'j FileJob<'j>) -> FileState<'j> {
        FileState {
            job,
            path_text: job.path.display().to_string(),
            file_agent: job.kind.agent_id(),
            agent_type: job.agent_type.clone(),
            cwd: None,
            permission_mode: None,
            prompt_id: None,
            submitted_prompt: None,
            model: None,
            first: None,
            last_ts: None,
            last_line: None,
            started: false,
            pending_tools: HashMap::new(),
            pending_stop: None,
            pending_usage: None,
            ids: TranscriptIds {
                session_id: job.kind.session_id().to_owned(),
                ..TranscriptIds::default()
            },
        }
    }

    fn session_id(&self) -> &'j str {
        self.job.kind.session_id()
    }

    /// One line as read, with or without its newline: blank and
    /// bookkeeping lines are skipped, tool results' bodies cut ([`skim`]).
    fn raw_line(
        &mut self,
        line: &[u8],
        skimmed: &mut Vec<u8>,
        output: &mut Output,
        counts: &mut FileCounts,
    ) {
        let mut line = line;
        while let [rest @ .., b'\n' | b'\r'] = line {
            line = rest;
        }
        if line.iter().all(u8::is_ascii_whitespace) || starts_as_bookkeeping(line) {
            return;
        }
        let parsed = if skim::cut_tool_results(line, skimmed) {
            skimmed.as_slice()
        } else {
            line
        };
        // The cut line names an attachment exactly when the whole one does
        // (see `skim`), and is searched much faster.
        if is_attachment(parsed) {
            return;
        }
        self.line(line, parsed, output, counts);
    }

    /// One whole line, without its newline (`bytes`), and what serde reads
    /// of it (`parsed`: the same line, or its copy with the bodies of tool
    /// results cut, [`skim`]). Bookkeeping lines never come here.
    fn line(&mut self, bytes: &[u8], parsed: &[u8], output: &mut Output, counts: &mut FileCounts) {
        let line: Line<'_> = match serde_json::from_slice(parsed) {
            Ok(line) => line,
            Err(_) => {
                counts.bad_lines += 1;
                return;
            }
        };
        let Some(kind) = line.kind.as_deref() else {
            // A JSON object that is no transcript line: foreign.
            counts.bad_lines += 1;
            return;
        };
        let ts = line.timestamp.as_deref().and_then(parse_rfc3339_millis);
        if let Some(cwd) = line.cwd.as_deref() {
            if self.cwd.as_deref() != Some(cwd) {
                self.cwd = Some(cwd.to_owned());
            }
        }
        if let Some(mode) = line.permission_mode.as_deref() {
            if self.permission_mode.as_deref() != Some(mode) {
                self.permission_mode = Some(mode.to_owned());
            }
        }
        let Some(ts) = ts else {
            return;
        };
        if self.first.is_none() {
            self.first = Some((ts, line.uuid.as_deref().unwrap_or("").to_owned()));
        }
        self.last_ts = Some(self.last_ts.map_or(ts, |last| last.max(ts)));
        self.last_line = Some(LastLine {
            ts,
            key: match line.uuid.as_deref() {
                Some(uuid) if !uuid.is_empty() => uuid.to_owned(),
                _ => format!("at-{ts}"),
            },
        });
        match kind {
            "user" => self.user_line(&line, ts, output),
            "assistant" => self.assistant_line(&line, bytes, ts, output, counts),
            "system" => self.system_line(&line, ts, output),
            _ => {}
        }
    }

    /// The agent a line belongs to: the file's, or a sidechain line's own.
    fn agent_of(&self, line: &Line<'_>) -> Option<String> {
        match self.file_agent {
            Some(agent) => Some(agent.to_owned()),
            None if line.sidechain() => line.agent_id.as_deref().map(str::to_owned),
            None => None,
        }
    }

    fn user_line(&mut self, line: &Line<'_>, ts: i64, output: &mut Output) {
        self.flush_stop(None, output);
        if let Some(prompt) = line.prompt_id.as_deref() {
            if self.prompt_id.as_deref() != Some(prompt) {
                self.prompt_id = Some(prompt.to_owned());
            }
        }
        let agent = self.agent_of(line);
        if let Some(agent) = line
            .tool_use_result
            .and_then(|result| lift_plain_string(result.get().as_bytes(), "agentId"))
        {
            if !self.ids.agent_ids.contains(&agent) {
                self.ids.agent_ids.push(agent);
            }
        }
        if let (Some(agent), None) = (&agent, &self.file_agent) {
            if !self.ids.agent_ids.contains(agent) {
                self.ids.agent_ids.push(agent.clone());
            }
        }
        let Some(message) = &line.message else {
            return;
        };
        let mut prompt_text: Option<Cow<'_, str>> = None;
        match &message.content {
            Some(Content::Text(text)) => prompt_text = Some(Cow::Borrowed(text.as_ref())),
            Some(Content::Blocks(blocks)) => {
                let mut texts = Vec::new();
                for block in blocks {
                    match block.kind.as_deref() {
                        Some("tool_result") => self.tool_result(line, block, ts, output),
                        Some("text") => {
                            if let Some(text) = &block.text {
                                texts.push(text.as_ref());
                            }
                        }
                        _ => {}
                    }
                }
                if !texts.is_empty()
                    && blocks
                        .iter()
                        .all(|block| block.kind.as_deref() != Some("tool_result"))
                {
                    prompt_text = Some(Cow::Owned(texts.join("\n")));
                }
            }
            _ => {}
        }
        // A subagent's first line is its task, not a prompt of the session;
        // so is a sidechain line of a main transcript, even one without an
        // `agentId` (older Claude Code wrote subagents' lines there).
        if self.file_agent.is_some() || agent.is_some() || line.sidechain() {
            return;
        }
        let Some(text) = prompt_text else {
            return;
        };
        if line.is_meta == Some(true)
            || line.is_compact_summary == Some(true)
            || is_command_text(&text)
        {
            return;
        }
        let prompt_id = match line.prompt_id.as_deref() {
            Some(prompt) => prompt.to_owned(),
            // Transcripts older than `promptId` get one prompt per prompt
            // line, named after the line. The derived id is what the next
            // lines (tool calls, the Stop) belong to, but it is no
            // `promptId` of the transcript: the next prompt line without
            // one is a new prompt, not this one again.
            None => {
                let derived = match line.uuid.as_deref() {
                    Some(uuid) if !uuid.is_empty() => uuid.to_owned(),
                    _ => format!("line-at-{ts}"),
                };
                self.prompt_id = Some(derived.clone());
                derived
            }
        };
        if self.submitted_prompt.as_deref() == Some(prompt_id.as_str()) {
            return;
        }
        self.submitted_prompt = Some(prompt_id);
        self.emit(
            output,
            HookEvent::UserPromptSubmit,
            ts,
            line.uuid.as_deref().unwrap_or(""),
            None,
            Payload {
                prompt: Some(&text),
                ..Payload::default()
            },
        );
    }

    fn tool_result(&mut self, line: &Line<'_>, block: &Block<'_>, ts: i64, output: &mut Output) {
        let Some(tool_use_id) = block.tool_use_id.as_deref() else {
            return;
        };
        let pending = self.pending_tools.remove(tool_use_id);
        let name = pending.as_ref().map(|tool| tool.name.clone());
        let duration = pending.as_ref().map(|tool| (ts - tool.ts).max(0));
        let failed = block.is_error == Some(true);
        let error = failed.then(|| error_text(block.content)).flatten();
        let spawned = match (name.as_deref(), line.tool_use_result) {
            (Some("Agent" | "Task"), Some(result)) => {
                lift_plain_string(result.get().as_bytes(), "agentId")
            }
            _ => None,
        };
        let hook = if failed {
            HookEvent::PostToolUseFailure
        } else {
            HookEvent::PostToolUse
        };
        self.emit(
            output,
            hook,
            ts,
            line.uuid.as_deref().unwrap_or(""),
            Some(tool_use_id),
            Payload {
                tool_name: name.as_deref(),
                tool_use_id: Some(tool_use_id),
                duration_ms: duration,
                error: error.as_deref(),
                is_interrupt: failed.then_some(false),
                tool_response: spawned
                    .as_deref()
                    .map(|agent_id| AgentResponse { agent_id }),
                ..Payload::default()
            },
        );
    }

    fn assistant_line(
        &mut self,
        line: &Line<'_>,
        bytes: &[u8],
        ts: i64,
        output: &mut Output,
        counts: &mut FileCounts,
    ) {
        let Some(message) = &line.message else {
            return;
        };
        let model = message.model.as_deref().unwrap_or("");
        let main_agent = self.file_agent.is_none() && !line.sidechain();
        if model == transcript::SYNTHETIC_MODEL {
            if main_agent && line.is_api_error == Some(true) {
                self.flush_stop(None, output);
                let error = line
                    .error
                    .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
                    .unwrap_or_else(|| "error".to_owned());
                let uuid = line.uuid.as_deref().unwrap_or("");
                self.emit(
                    output,
                    HookEvent::StopFailure,
                    ts,
                    uuid,
                    None,
                    Payload {
                        error: Some(&error),
                        ..Payload::default()
                    },
                );
            }
            return;
        }
        if !model.is_empty() && self.model.as_deref() != Some(model) {
            self.model = Some(model.to_owned());
        }
        let message_id = message.id.as_deref().unwrap_or("");
        if self
            .pending_stop
            .as_ref()
            .is_some_and(|stop| stop.message_id != message_id)
        {
            self.flush_stop(None, output);
        }
        self.usage(line, bytes, output, counts);
        if let Some(Content::Blocks(blocks)) = &message.content {
            for block in blocks {
                if block.kind.as_deref() != Some("tool_use") {
                    continue;
                }
                let Some(id) = block.id.as_deref().filter(|id| !id.is_empty()) else {
                    continue;
                };
                if self.pending_tools.contains_key(id)
                    || self
                        .ids
                        .tool_use_ids
                        .iter()
                        .rev()
                        .take(64)
                        .any(|seen| seen == id)
                {
                    continue;
                }
                self.ids.tool_use_ids.push(id.to_owned());
                let name = block.name.as_deref().unwrap_or("?");
                self.pending_tools.insert(
                    id.to_owned(),
                    PendingTool {
                        ts,
                        name: name.to_owned(),
                    },
                );
                let shortened;
                let input = match block.input {
                    Some(raw) if raw.get().len() > MAX_TOOL_INPUT_BYTES => {
                        shortened = shorten_raw(raw);
                        shortened.as_deref()
                    }
                    other => other,
                };
                self.emit(
                    output,
                    HookEvent::PreToolUse,
                    ts,
                    line.uuid.as_deref().unwrap_or(""),
                    Some(id),
                    Payload {
                        tool_name: Some(name),
                        tool_use_id: Some(id),
                        tool_input: input,
                        ..Payload::default()
                    },
                );
            }
        }
        let ends_turn = Turn::of_stop_reason(message.stop_reason.as_deref()) == Turn::Ended;
        if main_agent && ends_turn {
            self.pending_stop = Some(PendingStop {
                message_id: message_id.to_owned(),
                ts,
                uuid: line.uuid.as_deref().unwrap_or("").to_owned(),
            });
        }
    }

    /// The line's response, by the shared counting rules; repeated lines of
    /// one response collapse here, the upsert does the rest.
    fn usage(
        &mut self,
        line: &Line<'_>,
        bytes: &[u8],
        output: &mut Output,
        counts: &mut FileCounts,
    ) {
        let Some(response) = response_of(line, bytes) else {
            return;
        };
        let agent_id = self
            .agent_of(line)
            .or_else(|| response.agent_id.clone().filter(|_| response.sidechain));
        let same = self
            .pending_usage
            .as_ref()
            .is_some_and(|pending| pending.response.key() == response.key());
        let usage = ImportedUsage {
            session_id: self.session_id().to_owned(),
            agent_id,
            prompt_id: self.prompt_id.clone(),
            machine: self.job.machine.to_owned(),
            cwd: self.cwd.clone(),
            response,
        };
        if same {
            if let Some(pending) = &mut self.pending_usage {
                pending.response = usage.response;
            }
        } else if let Some(previous) = self.pending_usage.replace(usage) {
            counts.responses += 1;
            output.usage.push(previous);
        }
    }

    fn system_line(&mut self, line: &Line<'_>, ts: i64, output: &mut Output) {
        match line.subtype.as_deref() {
            Some("stop_hook_summary") => self.flush_stop(Some(ts), output),
            Some("compact_boundary") if self.file_agent.is_none() => {
                self.flush_stop(None, output);
                let trigger = line
                    .compact_metadata
                    .as_ref()
                    .and_then(|meta| meta.trigger.as_deref())
                    .unwrap_or("manual")
                    .to_owned();
                let uuid = line.uuid.as_deref().unwrap_or("").to_owned();
                for hook in [HookEvent::PreCompact, HookEvent::PostCompact] {
                    self.emit(
                        output,
                        hook,
                        ts,
                        &uuid,
                        None,
                        Payload {
                            trigger: Some(&trigger),
                            ..Payload::default()
                        },
                    );
                }
            }
            _ => {}
        }
    }

    /// Emits the `Stop` of a turn that ended, at `at` (the Stop hook's
    /// summary line) or at its last response line.
    fn flush_stop(&mut self, at: Option<i64>, output: &mut Output) {
        let Some(stop) = self.pending_stop.take() else {
            return;
        };
        let ts = at.unwrap_or(stop.ts).max(stop.ts);
        let model = self.model.clone();
        self.emit(
            output,
            HookEvent::Stop,
            ts,
            &stop.uuid,
            None,
            Payload {
                transcript_path: Some(&self.path_text.clone()),
                model: model.as_deref(),
                ..Payload::default()
            },
        );
    }

    /// Emits the start event before the first other one.
    fn ensure_started(&mut self, output: &mut Output) {
        if self.started {
            return;
        }
        self.started = true;
        let Some((ts, _)) = self.first.clone() else {
            return;
        };
        let path = self.path_text.clone();
        let agent_type = self.agent_type.clone();
        match self.file_agent {
            None => self.emit(
                output,
                HookEvent::SessionStart,
                ts,
                "",
                None,
                Payload {
                    transcript_path: Some(&path),
                    source: Some("startup"),
                    ..Payload::default()
                },
            ),
            Some(_) => self.emit(
                output,
                HookEvent::SubagentStart,
                ts,
                "",
                None,
                Payload {
                    agent_type: Some(agent_type.as_deref().unwrap_or("")),
                    ..Payload::default()
                },
            ),
        }
    }

    /// The end of the file: the turn and the session (or subagent) end here.
    fn finish(mut self, output: &mut Output, counts: &mut FileCounts) {
        self.flush_stop(None, output);
        if let Some(usage) = self.pending_usage.take() {
            counts.responses += 1;
            output.usage.push(usage);
        }
        self.ensure_started(output);
        counts.last_line = self.last_line.clone();
        if let (Some(ts), Some(last_line)) = (self.last_ts, self.last_line.clone()) {
            let path = self.path_text.clone();
            let agent_type = self.agent_type.clone();
            let end_key = format!("end-after:{}", last_line.key);
            match self.file_agent {
                None => self.end_session(output, ts, &end_key, Some(path.as_str())),
                Some(_) => self.emit(
                    output,
                    HookEvent::SubagentStop,
                    ts,
                    &end_key,
                    None,
                    Payload {
                        agent_type: Some(agent_type.as_deref().unwrap_or("")),
                        agent_transcript_path: Some(&path),
                        ..Payload::default()
                    },
                ),
            }
        }
        if let Some(agent) = self.file_agent {
            if !self.ids.agent_ids.iter().any(|seen| seen == agent) {
                self.ids.agent_ids.push(agent.to_owned());
            }
        }
        if !self.ids.tool_use_ids.is_empty() || !self.ids.agent_ids.is_empty() {
            output.transcript_ids.push(self.ids);
        }
    }

    /// Emits the session's `SessionEnd` at `ts`, named by `end_key`.
    fn end_session(
        &mut self,
        output: &mut Output,
        ts: i64,
        end_key: &str,
        transcript_path: Option<&str>,
    ) {
        self.emit(
            output,
            HookEvent::SessionEnd,
            ts,
            end_key,
            None,
            Payload {
                transcript_path,
                reason: Some(IMPORTED_END_REASON),
                ..Payload::default()
            },
        );
    }

    /// Builds one event through the ingest's own path (the same facts,
    /// transitions and title as a hook's) and adds it to `output`, unless
    /// the session's events are left to its hooks.
    fn emit(
        &mut self,
        output: &mut Output,
        hook: HookEvent,
        ts: i64,
        line_uuid: &str,
        tool_use_id: Option<&str>,
        payload: Payload<'_>,
    ) {
        if self.job.live {
            return;
        }
        if !self.started && !matches!(hook, HookEvent::SessionStart | HookEvent::SubagentStart) {
            self.ensure_started(output);
        }
        let session_id = self.session_id();
        let agent_id = self.file_agent;
        let payload = Payload {
            session_id,
            cwd: self.cwd.as_deref(),
            prompt_id: self.prompt_id.as_deref(),
            permission_mode: self.permission_mode.as_deref(),
            hook_event_name: hook.name(),
            agent_id,
            agent_type: payload
                .agent_type
                .or(agent_id.and(self.agent_type.as_deref())),
            ..payload
        };
        // Serialized straight into a raw value: serde_json wrote it, so it
        // is not parsed again to be checked (`RawValue::from_string`).
        let Ok(raw) = serde_json::value::to_raw_value(&payload) else {
            return;
        };
        let id = derived_id(&[
            session_id,
            agent_id.unwrap_or(""),
            line_uuid,
            hook.name(),
            tool_use_id.unwrap_or(""),
        ]);
        output.payload_bytes += raw.get().len();
        let envelope = Envelope {
            v: hooktrail_shared::envelope::ENVELOPE_VERSION,
            id,
            ts,
            machine: self.job.machine.to_owned(),
            session_id: Some(session_id.to_owned()),
            agent_id: agent_id.map(str::to_owned),
            hook: hook.name().to_owned(),
            tool: payload.tool_name.map(str::to_owned),
            tool_use_id: tool_use_id.map(str::to_owned),
            cwd: self.cwd.clone(),
            truncated: false,
            usage: None,
            redactions: None,
            redacted_with: None,
            config_error: false,
            wait_until: None,
            budget_check: false,
            payload: raw,
        };
        let mut event = NewEvent::from_envelope_remembering(
            envelope,
            Source::Import,
            self.job.redactor,
            Some(&mut output.known),
        );
        if matches!(hook, HookEvent::Stop | HookEvent::StopFailure) {
            event.model = self.model.clone();
        }
        output.events.push(event);
    }
}

/// Ends a session whose own transcript is missing (only its subagents'
/// files were found, say after Claude Code removed the session's file): at
/// the latest of its subagents' last lines, so it does not stay `working`
/// for good. An import that later finds the session's transcript replaces
/// this end with the transcript's own (the latest end is kept).
pub(crate) fn end_orphan_session(job: &FileJob<'_>, last_line: &LastLine, output: &mut Output) {
    let mut state = FileState::new(job);
    // No SessionStart: the session's start is not known.
    state.started = true;
    let end_key = format!("orphan-end-after:{}", last_line.key);
    state.end_session(output, last_line.ts, &end_key, None);
}

/// The response of an assistant `line` (`bytes` as read), as
/// [`transcript::response_of_line`] reads it, from the fields already
/// parsed; the line is parsed again only where the two parsers could
/// differ (a `type` or `timestamp` with escapes, which it cannot borrow,
/// or an `isSidechain` of `null`, which it refuses).
fn response_of(line: &Line<'_>, bytes: &[u8]) -> Option<ResponseUsage> {
    if !transcript::has_response_markers(bytes) {
        return None;
    }
    let borrowed = |text: &Option<Cow<'_, str>>| !matches!(text, Some(Cow::Owned(_)));
    if !borrowed(&line.kind) || !borrowed(&line.timestamp) || line.is_sidechain == Some(None) {
        let mut ignored_bad = 0;
        let mut ignored_ids = Vec::new();
        return transcript::response_of_line(bytes, &mut ignored_bad, &mut ignored_ids);
    }
    let message = line.message.as_ref()?;
    transcript::response_of_parsed(transcript::ParsedResponseLine {
        message_id: message.id.as_deref(),
        model: message.model.as_deref(),
        usage_json: message.usage.map(RawValue::get),
        request_id_json: line.request_id.map(RawValue::get),
        timestamp: line.timestamp.as_deref(),
        sidechain: line.sidechain(),
        agent_id: line.agent_id.as_deref(),
    })
}

/// Whether a line is one of Claude Code's bookkeeping lines, which start
/// with their `type` (`api-request`, `file-history-snapshot`, `cost-state`,
/// …), or a context `attachment`: skipped without parsing, since they hold
/// no event and are a large share of a transcript's bytes.
#[cfg(test)]
fn is_bookkeeping(line: &[u8]) -> bool {
    starts_as_bookkeeping(line) || is_attachment(line)
}

/// Whether a line starts with a `type` that holds no event.
fn starts_as_bookkeeping(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"{\"type\":") else {
        return false;
    };
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    !(rest.starts_with(b"\"user\"")
        || rest.starts_with(b"\"assistant\"")
        || rest.starts_with(b"\"system\""))
}

/// Whether a line is (or holds) a context `attachment`.
fn is_attachment(line: &[u8]) -> bool {
    memmem(line, b"\"type\": \"attachment\"").is_some()
        || memmem(line, b"\"type\":\"attachment\"").is_some()
}

/// Whether a user line's text is a slash command or its output, which the
/// hooks do not report as a prompt.
fn is_command_text(text: &str) -> bool {
    let text = text.trim_start();
    text.starts_with("<command-name>")
        || text.starts_with("<command-message>")
        || text.starts_with("<local-command-")
}

/// The text of a failed tool's result, shortened.
fn error_text(content: Option<&RawValue>) -> Option<String> {
    #[derive(Deserialize)]
    struct TextBlock {
        #[serde(default)]
        text: Option<String>,
    }
    let raw = content?.get();
    let text = match serde_json::from_str::<String>(raw) {
        Ok(text) => text,
        Err(_) => serde_json::from_str::<Vec<TextBlock>>(raw)
            .ok()?
            .into_iter()
            .filter_map(|block| block.text)
            .collect::<Vec<_>>()
            .join("\n"),
    };
    Some(match text.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    })
}

/// A tool input over [`MAX_TOOL_INPUT_BYTES`] with its longest strings
/// shortened.
fn shorten_raw(raw: &RawValue) -> Option<Box<RawValue>> {
    let mut value: serde_json::Value = serde_json::from_str(raw.get()).ok()?;
    shorten_strings(&mut value, MAX_TOOL_INPUT_BYTES);
    RawValue::from_string(value.to_string()).ok()
}

/// A stable id for a synthesized event, shaped like a UUID (version 8, the
/// "custom" one): two 64-bit FNV-1a hashes of the parts with different
/// seeds, each mixed by SplitMix64's finalizer. The same transcript line
/// gives the same id in every import and every build.
pub(crate) fn derived_id(parts: &[&str]) -> String {
    fn hash(seed: u64, parts: &[&str]) -> u64 {
        let mut hash = seed;
        for part in parts {
            for &byte in part.as_bytes().iter().chain(&[0xff]) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        hash ^= hash >> 30;
        hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        hash ^= hash >> 27;
        hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
        hash ^ (hash >> 31)
    }
    let high = hash(0xcbf2_9ce4_8422_2325, parts);
    let low = hash(0x6c62_272e_07bb_0142, parts);
    let high = (high & !0xf000) | 0x8000;
    let low = (low & !(0xc000 << 48)) | (0x8000 << 48);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xffff,
        low >> 48,
        low & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields_are_borrowed_unless_escaped() {
        let text = r#"{"type":"assistant","timestamp":"2026-01-02T03:04:05\u002e000Z","cwd":null,"message":{"id":"msg_1","model":"m","content":[{"type":"tool_use","id":"t1","name":"Bash"}]}}"#;
        let line: Line<'_> = serde_json::from_str(text).unwrap();
        let borrowed = |field: &Option<Cow<'_, str>>| matches!(field, Some(Cow::Borrowed(_)));
        assert!(borrowed(&line.kind));
        assert_eq!(line.timestamp.as_deref(), Some("2026-01-02T03:04:05.000Z"));
        assert!(!borrowed(&line.timestamp), "an escaped value is copied");
        assert!(
            line.cwd.is_none() && line.uuid.is_none(),
            "null and absent are None"
        );
        let message = line.message.as_ref().unwrap();
        assert!(borrowed(&message.id) && borrowed(&message.model));
        let Some(Content::Blocks(blocks)) = &message.content else {
            panic!("blocks");
        };
        assert!(borrowed(&blocks[0].kind) && borrowed(&blocks[0].name));
        assert!(serde_json::from_str::<Line<'_>>(r#"{"type":5}"#).is_err());
    }

    #[test]
    fn a_response_is_read_from_the_parsed_line_as_from_the_bytes() {
        let usage = r#"{"input_tokens":3,"output_tokens":5,"cache_creation_input_tokens":7,"cache_read_input_tokens":11,"cache_creation":{"ephemeral_1h_input_tokens":2},"server_tool_use":{"web_search_requests":1},"inference_geo":"eu","speed":"fast"}"#;
        let lines = [
            format!(r#"{{"type":"assistant","timestamp":"2026-01-02T03:04:05.678Z","requestId":"req_1","isSidechain":true,"agentId":"a1","message":{{"id":"msg_1","model":"claude-x","content":[{{"type":"tool_use","id":"t1","name":"Bash","input":{{}}}}],"usage":{usage}}}}}"#),
            format!(r#"{{"type":"assistant","timestamp":"2026-01-02T03:04:05Z","message":{{"id":"msg_2","model":"claude-x","content":"hi","usage":{usage}}}}}"#),
            // Fields the bytes' parser refuses or cannot borrow.
            format!(r#"{{"type":"assistant","timestamp":"2026-01-02T03:04:05\u002e000Z","message":{{"id":"msg_3","model":"m","usage":{usage}}}}}"#),
            format!(r#"{{"type":"assistant","isSidechain":null,"timestamp":"2026-01-02T03:04:05Z","message":{{"id":"msg_4","model":"m","usage":{usage}}}}}"#),
            format!(r#"{{"type":"assistant","requestId":5,"timestamp":"2026-01-02T03:04:05Z","message":{{"id":"msg_5","model":"m","usage":{usage}}}}}"#),
            format!(r#"{{"type":"assistant","requestId":null,"timestamp":"2026-01-02T03:04:05Z","message":{{"id":"msg_6","model":"m","usage":{usage}}}}}"#),
            r#"{"type":"assistant","timestamp":"2026-01-02T03:04:05Z","message":{"id":"msg_7","model":"m","usage":{"input_tokens":"3"}}}"#.to_owned(),
            r#"{"type":"assistant","timestamp":"2026-01-02T03:04:05Z","message":{"id":"msg_8","model":"m","usage":null}}"#.to_owned(),
            format!(r#"{{"type":"assistant","timestamp":"2026-01-02T03:04:05Z","message":{{"id":"","model":"m","usage":{usage}}}}}"#),
            format!(r#"{{"type":"assistant","timestamp":"2026-01-02T03:04:05Z","message":{{"model":"<synthetic>","id":"msg_9","usage":{usage}}}}}"#),
            format!(r#"{{"type":"assistant","message":{{"id":"msg_10","usage":{usage}}}}}"#),
        ];
        let mut read = 0;
        for text in &lines {
            let line: Line<'_> = serde_json::from_str(text).expect("a line");
            let expected = transcript::response_of_line(text.as_bytes(), &mut 0, &mut Vec::new());
            read += usize::from(expected.is_some());
            assert_eq!(response_of(&line, text.as_bytes()), expected, "{text}");
        }
        assert_eq!(read, 4);
    }

    #[test]
    fn line_buffers_are_kept_for_the_next_file_unless_huge() {
        let kept = LineBuffers::kept(
            Vec::with_capacity(300 * 1024),
            Vec::with_capacity(KEEP_LINE_BUFFER_BYTES + 1),
        );
        assert!(kept.line.capacity() >= 300 * 1024);
        assert_eq!(kept.skimmed.capacity(), 0);
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let one = derived_id(&["s", "", "u1", "PreToolUse", "t1"]);
        assert_eq!(one, derived_id(&["s", "", "u1", "PreToolUse", "t1"]));
        assert_ne!(one, derived_id(&["s", "", "u1", "PostToolUse", "t1"]));
        assert_ne!(
            derived_id(&["ab", "c"]),
            derived_id(&["a", "bc"]),
            "parts are separated"
        );
        assert_eq!(one.len(), 36);
        assert_eq!(&one[14..15], "8");
    }

    #[test]
    fn bookkeeping_lines_are_recognized_by_their_first_bytes() {
        assert!(is_bookkeeping(br#"{"type":"api-request-blob","x":1}"#));
        assert!(is_bookkeeping(br#"{"type": "cost-state"}"#));
        assert!(!is_bookkeeping(br#"{"type":"user","message":{}}"#));
        assert!(is_bookkeeping(
            br#"{"parentUuid":null,"attachment":{"type":"date"},"type": "attachment"}"#
        ));
        assert!(!is_bookkeeping(
            br#"{"parentUuid":null,"type":"user","message":{"content":"\"type\": \"attachment\""}}"#
        ));
    }

    #[test]
    fn a_cut_line_names_an_attachment_exactly_when_the_whole_line_does() {
        let body = "x\\\"type\\\":\\\"attachment\\\" ".repeat(2000);
        let marker = r#"{"type":"attachment","n":1}"#;
        let lines = [
            // A tool result that holds an attachment block, after a long body.
            format!(
                r#"{{"type":"user","message":{{"content":[{{"type":"tool_result","content":"{body}"}},{marker}]}}}}"#
            ),
            // The marker only inside the body (escaped): no attachment.
            format!(r#"{{"type":"user","toolUseResult":{{"stdout":"{body}"}}}}"#),
            // A body ending in `\"type` right before `:"attachment"`.
            format!(r#"{{"type":"user","toolUseResult":{{"a":"{body}\"type":"attachment"}}}}"#),
        ];
        for line in &lines {
            let mut cut = Vec::new();
            let parsed: &[u8] = if skim::cut_tool_results(line.as_bytes(), &mut cut) {
                &cut
            } else {
                line.as_bytes()
            };
            assert_eq!(
                is_attachment(parsed),
                is_attachment(line.as_bytes()),
                "{line:.80}"
            );
        }
        let mut cut = Vec::new();
        assert!(skim::cut_tool_results(lines[0].as_bytes(), &mut cut));
        assert!(is_attachment(&cut));
        assert!(!skim::cut_tool_results(lines[2].as_bytes(), &mut cut));
    }

    #[test]
    fn lines_are_read_alike_whole_in_the_buffer_or_across_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s1.jsonl");
        let long = "y".repeat(3 * 1024 * 1024);
        let text = format!(
            "{}\n{}\r\n\n{}\n{}",
            r#"{"type":"user","uuid":"u1","timestamp":"2026-01-01T00:00:00.000Z","promptId":"p1","message":{"content":"hello"}}"#,
            r#"{"type":"assistant","uuid":"a1","timestamp":"2026-01-01T00:00:01.000Z","message":{"id":"m1","model":"claude-x","stop_reason":"end_turn","content":[]}}"#,
            format_args!(
                r#"{{"type":"user","uuid":"u2","timestamp":"2026-01-01T00:00:02.000Z","promptId":"p2","message":{{"content":"{long}"}}}}"#
            ),
            r#"{"type":"system","subtype":"stop_hook_summary","uuid":"s1","timestamp":"2026-01-01T00:00:03.000Z"}"#,
        );
        std::fs::write(&path, &text).unwrap();
        let kind = FileKind::Session {
            session_id: "s1".to_owned(),
        };
        let redactor = Redactor::new(hooktrail_shared::redact::Settings::default());
        let bytes_read = AtomicU64::new(0);
        let job = FileJob::for_test(&path, &kind, &redactor, &bytes_read);
        let mut output = Output::default();
        let counts = read_file(&job, &mut output).unwrap();
        assert_eq!(bytes_read.load(Ordering::Relaxed), text.len() as u64);
        assert_eq!(counts.bad_lines, 0);
        let hooks: Vec<&str> = output
            .events
            .iter()
            .map(|event| event.row.hook.as_str())
            .collect();
        assert_eq!(
            hooks,
            [
                "SessionStart",
                "UserPromptSubmit",
                "Stop",
                "UserPromptSubmit",
                "SessionEnd"
            ]
        );
        assert_eq!(counts.last_line.map(|last| last.key), Some("s1".to_owned()));
    }

    #[test]
    fn an_overlong_line_is_consumed_but_not_kept() {
        let text = format!("{}\nshort\n", "x".repeat(100));
        let mut reader = std::io::BufReader::with_capacity(16, text.as_bytes());
        let mut line = Vec::new();
        assert_eq!(
            read_line_capped(&mut reader, &mut line, 50).unwrap(),
            (101, false)
        );
        line.clear();
        assert_eq!(
            read_line_capped(&mut reader, &mut line, 50).unwrap(),
            (6, true)
        );
        assert_eq!(line, b"short\n");
    }
}
