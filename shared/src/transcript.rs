//! Token usage read from Claude Code's transcripts.
//!
//! No hook payload carries tokens or cost, but every hook names the session's
//! transcript (`transcript_path`), and `SubagentStop` names the subagent's
//! (`agent_transcript_path`). Each is a JSONL file where every API response
//! the session received is written as one or more `"type":"assistant"` lines
//! holding `message.usage`.
//!
//! The counting rules, which are Claude Code's own:
//! - **One response per `message.id`** (with `requestId` where present): a
//!   response with several content blocks is written as several lines that
//!   repeat its usage, so summing lines over-counts.
//! - **Its last written usage wins**: the first lines of a streamed response
//!   may carry partial output counts.
//! - **`<synthetic>` messages don't count**: Claude Code writes them itself
//!   (an interrupted turn, an API error), no API call made them.
//! - **Sidechain (subagent) responses count once, for their agent**: they are
//!   kept, marked as sidechain, and a reader that sees the same response twice
//!   (in the main transcript and the agent's) keys them the same.
//!
//! [`scan`] applies the rules to one piece of a transcript and reports how far
//! it got, so a caller can resume from there next time. It never fails: lines
//! that are not JSON or not a response are counted and skipped, and a
//! half-written last line is left for the next read.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::time::parse_rfc3339_millis;

/// The model name Claude Code gives the messages it writes itself.
pub const SYNTHETIC_MODEL: &str = "<synthetic>";

/// The usage of one API response, as its transcript last wrote it.
///
/// Field names are short because a turn with many tool calls sends one of
/// these per response in its envelope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseUsage {
    /// `message.id`: with `request_id`, the key that makes a response count
    /// once however often it is written or sent.
    pub message_id: String,
    /// `requestId`, where the transcript has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// `message.model`: what the price depends on.
    pub model: String,
    /// The line's `timestamp` in milliseconds, for per-day rollups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
    /// `isSidechain`: the response belongs to a subagent.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sidechain: bool,
    /// `agentId`, where the line names the subagent it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// `input_tokens`: uncached input.
    #[serde(default)]
    pub input: u64,
    /// `output_tokens`.
    #[serde(default)]
    pub output: u64,
    /// Cache writes with the 5-minute lifetime (priced at 1.25× input). When
    /// the transcript has no `cache_creation` split, all cache writes are
    /// counted here, the API's default lifetime.
    #[serde(default)]
    pub cache_write_5m: u64,
    /// Cache writes with the 1-hour lifetime (priced at 2× input).
    #[serde(default)]
    pub cache_write_1h: u64,
    /// `cache_read_input_tokens` (priced at 0.1× input).
    #[serde(default)]
    pub cache_read: u64,
    /// `server_tool_use.web_search_requests` (priced per search).
    #[serde(default)]
    pub web_search: u64,
    /// `usage.inference_geo`: requests served in the US cost 1.1×.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_geo: Option<String>,
    /// `usage.speed`: `fast` requests are priced at the model's fast-mode
    /// rates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<String>,
    /// The prompt the response answered: `promptId` of the last user line
    /// before it (response lines carry none). A part read at a `Stop` can
    /// hold responses of earlier prompts (the first read after `install`, a
    /// `more` carry-over), so the collector bills each response to this,
    /// not to the prompt of the event that shipped it (issue 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_id: Option<String>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl ResponseUsage {
    /// The key under which a response counts once: `message_id` and, where
    /// present, `request_id`.
    pub fn key(&self) -> String {
        match &self.request_id {
            Some(request) => format!("{}:{request}", self.message_id),
            None => self.message_id.clone(),
        }
    }

    /// All input-side tokens: uncached, cache writes and cache reads.
    pub fn total_input(&self) -> u64 {
        self.input + self.cache_write_5m + self.cache_write_1h + self.cache_read
    }
}

/// Which transcript a [`TranscriptUsage`] was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TranscriptKind {
    /// The session's own transcript (`transcript_path`).
    Session,
    /// A subagent's transcript (`agent_transcript_path` of `SubagentStop`):
    /// its responses belong to the event's `agent_id`.
    Agent,
}

/// The envelope's `usage` (DESIGN §3): the responses a transcript gained
/// since the emitter last read it, sent with a turn-boundary event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptUsage {
    /// Which transcript was read.
    pub transcript: TranscriptKind,
    /// The byte range read, `[from, to)`: shows what a hook covered, so a gap
    /// or a re-read can be told apart when checking completeness.
    pub from: u64,
    pub to: u64,
    /// Set when the budget stopped the read before the end of the file; the
    /// next boundary reads the rest.
    #[serde(default, skip_serializing_if = "is_false")]
    pub more: bool,
    /// Lines that looked like responses but could not be read.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bad_lines: u64,
    /// One entry per response, keyed by [`ResponseUsage::key`].
    pub responses: Vec<ResponseUsage>,
    /// The ids of the `tool_use` blocks the part holds, each once: the tool
    /// calls the transcript says happened, which the collector compares with
    /// the hook events it received (the completeness check, DESIGN §7).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_use_ids: Vec<String>,
    /// The subagent ids the part names (`agentId` of a subagent's lines, and
    /// of the `Agent` tool's result in the session's transcript), each once:
    /// the subagents whose `SubagentStart` the collector expects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agent_ids: Vec<String>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// What [`scan`] found in one piece of a transcript.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    /// One entry per response, in the order each was first seen, with the
    /// usage of its last line in the piece.
    pub responses: Vec<ResponseUsage>,
    /// How many bytes of the piece were read up to the end of a whole line:
    /// the next read starts here. A half-written last line (no newline yet)
    /// is not consumed.
    pub consumed: usize,
    /// Lines that were not JSON or had an unreadable usage: counted, skipped.
    pub bad_lines: u64,
    /// Set when the deadline cut the scan short (possibly at the very end of
    /// what was given); the rest is read next time.
    pub stopped_early: bool,
    /// The `tool_use` block ids of the piece, each once, in order.
    pub tool_use_ids: Vec<String>,
    /// The subagent ids the piece names, each once, in order.
    pub agent_ids: Vec<String>,
    /// The prompt in effect at the end of what was consumed (`promptId` of
    /// the last user line), to start the next piece's scan with.
    pub prompt_id: Option<String>,
    /// The bytes `responses`, `tool_use_ids` and `agent_ids` take as JSON
    /// (counted only under a [`Scanner::with_json_limit`]).
    pub json_bytes: usize,
    /// Where the piece's last response line left its agent's turn; `None`
    /// when the piece has no response line. A subagent whose transcript
    /// ends in [`Turn::Ended`] has written its last response (the emitter
    /// stops re-reading it).
    pub last_turn: Option<Turn>,
}

/// Whether a response's `stop_reason` ends its agent's turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// `tool_use` or `pause_turn` (or no `stop_reason`): another response
    /// follows.
    Continues,
    /// Any other reason (`end_turn`, `max_tokens`, `stop_sequence`,
    /// `refusal`, ...): the agent answered, or stopped for good.
    Ended,
}

impl Turn {
    /// The turn a response with this `stop_reason` leaves: the same rule
    /// as the import's `Stop` (a turn ends unless the model called a tool or
    /// paused).
    pub fn of_stop_reason(stop_reason: Option<&str>) -> Turn {
        match stop_reason {
            None | Some("tool_use" | "pause_turn") => Turn::Continues,
            Some(_) => Turn::Ended,
        }
    }
}

/// The parts of a transcript line the counting needs; everything else is
/// skipped by serde without being stored.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(default, borrow, rename = "type")]
    kind: Option<&'a str>,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default, rename = "requestId")]
    request_id: Option<String>,
    #[serde(default, rename = "isSidechain")]
    is_sidechain: bool,
    #[serde(default, rename = "agentId")]
    agent_id: Option<String>,
    #[serde(default, borrow)]
    timestamp: Option<&'a str>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    content: ToolUseBlocks,
    #[serde(default)]
    stop_reason: Option<String>,
}

/// The `tool_use` blocks of a message's `content`, read without keeping
/// anything else; a `content` that is a string (or anything but a list)
/// has none.
#[derive(Default)]
struct ToolUseBlocks(Vec<String>);

#[derive(Deserialize)]
struct Block {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

impl<'de> Deserialize<'de> for ToolUseBlocks {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ToolUseBlocks;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("message content")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut ids = Vec::new();
                while let Some(block) = seq.next_element::<Option<Block>>()? {
                    if let Some(Block {
                        kind: Some(kind),
                        id: Some(id),
                    }) = block
                    {
                        if kind == "tool_use" && !id.is_empty() {
                            ids.push(id);
                        }
                    }
                }
                Ok(ToolUseBlocks(ids))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(ToolUseBlocks::default())
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(ToolUseBlocks::default())
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(ToolUseBlocks::default())
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(ToolUseBlocks::default())
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(ToolUseBlocks::default())
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(ToolUseBlocks::default())
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(ToolUseBlocks::default())
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
    #[serde(default)]
    cache_creation: Option<CacheCreation>,
    #[serde(default)]
    server_tool_use: Option<ServerToolUse>,
    #[serde(default)]
    inference_geo: Option<String>,
    #[serde(default)]
    speed: Option<String>,
}

#[derive(Deserialize)]
struct CacheCreation {
    #[serde(default)]
    ephemeral_1h_input_tokens: u64,
}

#[derive(Deserialize)]
struct ServerToolUse {
    #[serde(default)]
    web_search_requests: u64,
}

/// The literal every response line holds; lines without it are skipped
/// without being parsed, which is what keeps a scan of a turn that read large
/// files (tool results are `"type":"user"` lines) at disk speed.
const ASSISTANT_MARKER: &[u8] = b"\"assistant\"";
/// The second literal a response line holds.
const USAGE_MARKER: &[u8] = b"\"usage\"";

/// Reads the responses in `piece` (whole lines of a transcript, possibly
/// ending in a half-written one), applying the counting rules of the module
/// doc. Stops at `deadline` (checked between lines) with what it has.
pub fn scan(piece: &[u8], deadline: Option<Instant>) -> Scan {
    let mut scanner = Scanner::default();
    scanner.feed(piece, deadline);
    scanner.finish()
}

/// [`scan`] fed piece by piece, so a reader can go through a large part of a
/// transcript with one small buffer: each piece is read up to the end of its
/// last whole line, and the rest is given again at the front of the next.
#[derive(Debug, Default)]
pub struct Scanner {
    result: Scan,
    index: HashMap<String, usize>,
    /// Tool-use and agent ids already listed, so each is listed once.
    seen_ids: HashSet<String>,
    lines_since_check: u32,
    /// The most JSON bytes the findings may take, when bounded: an
    /// envelope has a size limit, and what does not fit is left unconsumed
    /// for the next read rather than lost.
    json_limit: Option<usize>,
    /// Under a limit, the JSON size of each entry of `result.responses`, so
    /// a response written again (its last usage wins) is counted once.
    response_bytes: Vec<usize>,
}

/// What one line adds to a scan, worked out before it is taken, so a line
/// that would pass the size limit can be left whole for the next read.
struct LineFindings {
    agent_id: Option<String>,
    prompt_id: Option<String>,
    tool_use_ids: Vec<String>,
    response: Option<ResponseUsage>,
    /// The response's JSON size with its comma (under a limit only).
    response_bytes: usize,
    bad_lines: u64,
    /// The turn a response line leaves (`None` for other lines).
    turn: Option<Turn>,
}

impl Scanner {
    /// A scanner whose findings stay within `limit` bytes of JSON, starting
    /// inside `prompt_id` (the prompt the previous piece ended in).
    pub fn with_json_limit(limit: usize, prompt_id: Option<String>) -> Scanner {
        let mut scanner = Scanner {
            json_limit: Some(limit),
            ..Scanner::default()
        };
        scanner.result.prompt_id = prompt_id;
        scanner
    }

    /// Reads the whole lines of `piece`; returns how many bytes of it were
    /// consumed. After the deadline, or when the next line's findings would
    /// pass the JSON limit, it stops, and [`Scanner::stopped_early`] says so.
    pub fn feed(&mut self, piece: &[u8], deadline: Option<Instant>) -> usize {
        let mut start = 0;
        while start < piece.len() && !self.result.stopped_early {
            let Some(length) = memchr::memchr(b'\n', &piece[start..]) else {
                break;
            };
            let line = &piece[start..start + length];
            let mut findings = self.findings_of(line);
            if let Some(limit) = self.json_limit {
                let added = self.json_added(&findings);
                if self.result.json_bytes + added > limit {
                    if self.result.json_bytes > 0 || self.result.consumed + start > 0 {
                        // Left whole for the next read, with room there.
                        self.result.stopped_early = true;
                        break;
                    }
                    // One line that could never fit (ids of megabytes):
                    // counted and passed by, so the reader cannot stall.
                    findings = LineFindings {
                        agent_id: None,
                        prompt_id: findings.prompt_id,
                        tool_use_ids: Vec::new(),
                        response: None,
                        response_bytes: 0,
                        bad_lines: 1,
                        turn: findings.turn,
                    };
                } else {
                    self.result.json_bytes += added;
                }
            }
            start += length + 1;
            self.take(findings);
            self.lines_since_check += 1;
            if self.lines_since_check >= 64 {
                self.lines_since_check = 0;
                if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    self.result.stopped_early = true;
                }
            }
        }
        self.result.consumed += start;
        start
    }

    fn findings_of(&self, line: &[u8]) -> LineFindings {
        let mut tool_use_ids = Vec::new();
        let mut bad_lines = 0;
        let prompt_id = lift_plain_string(line, "promptId");
        let mut turn = None;
        let mut response = read_line(line, &mut bad_lines, &mut tool_use_ids, &mut turn);
        let mut response_bytes = 0;
        if let Some(response) = response.as_mut() {
            response.prompt_id = prompt_id.clone().or_else(|| self.result.prompt_id.clone());
            if self.json_limit.is_some() {
                response_bytes = serde_json::to_string(response).map_or(0, |text| text.len()) + 1;
            }
        }
        LineFindings {
            agent_id: lift_plain_string(line, "agentId"),
            prompt_id,
            tool_use_ids,
            response,
            response_bytes,
            bad_lines,
            turn,
        }
    }

    /// The JSON bytes `findings` would add: each new id with its quotes and
    /// comma, a new response whole, a response written again by the change
    /// of its size.
    fn json_added(&self, findings: &LineFindings) -> usize {
        let id_bytes = |id: &String| serde_json::to_string(id).map_or(0, |text| text.len()) + 1;
        let mut added = 0;
        if let Some(agent_id) = &findings.agent_id {
            if !self.seen_ids.contains(&format!("a:{agent_id}")) {
                added += id_bytes(agent_id);
            }
        }
        for id in &findings.tool_use_ids {
            if !self.seen_ids.contains(&format!("t:{id}")) {
                added += id_bytes(id);
            }
        }
        if let Some(response) = &findings.response {
            let size = findings.response_bytes;
            added += match self.index.get(&response.key()) {
                Some(&at) => size.saturating_sub(self.response_bytes[at]),
                None => size,
            };
        }
        added
    }

    fn take(&mut self, findings: LineFindings) {
        if let Some(agent_id) = findings.agent_id {
            if self.seen_ids.insert(format!("a:{agent_id}")) {
                self.result.agent_ids.push(agent_id);
            }
        }
        for id in findings.tool_use_ids {
            if self.seen_ids.insert(format!("t:{id}")) {
                self.result.tool_use_ids.push(id);
            }
        }
        if findings.prompt_id.is_some() {
            self.result.prompt_id = findings.prompt_id;
        }
        self.result.bad_lines += findings.bad_lines;
        if findings.turn.is_some() {
            self.result.last_turn = findings.turn;
        }
        let size = findings.response_bytes;
        let Some(response) = findings.response else {
            return;
        };
        match self.index.get(&response.key()) {
            Some(&at) => {
                self.result.responses[at] = response;
                if self.json_limit.is_some() {
                    self.response_bytes[at] = self.response_bytes[at].max(size);
                }
            }
            None => {
                self.index
                    .insert(response.key(), self.result.responses.len());
                self.result.responses.push(response);
                if self.json_limit.is_some() {
                    self.response_bytes.push(size);
                }
            }
        }
    }

    /// Whether the deadline (or the JSON limit) stopped the scan.
    pub fn stopped_early(&self) -> bool {
        self.result.stopped_early
    }

    /// What was found; `consumed` counts every piece fed.
    pub fn finish(self) -> Scan {
        self.result
    }
}

/// One line's response, if it is one that counts, by the rules of the
/// module doc. Lines that cannot be responses are skipped without being
/// parsed; a response line that is not JSON counts in `bad_lines`. The ids
/// of the line's `tool_use` blocks are added to `tool_use_ids`.
pub fn response_of_line(
    line: &[u8],
    bad_lines: &mut u64,
    tool_use_ids: &mut Vec<String>,
) -> Option<ResponseUsage> {
    read_line(line, bad_lines, tool_use_ids, &mut None)
}

/// [`response_of_line`], also telling the `turn` an assistant line leaves
/// (a `<synthetic>` one too: an API error ends its agent's turn).
fn read_line(
    line: &[u8],
    bad_lines: &mut u64,
    tool_use_ids: &mut Vec<String>,
    turn: &mut Option<Turn>,
) -> Option<ResponseUsage> {
    if memmem(line, ASSISTANT_MARKER).is_none() || memmem(line, USAGE_MARKER).is_none() {
        return None;
    }
    let Ok(parsed) = serde_json::from_slice::<Line>(line) else {
        *bad_lines += 1;
        return None;
    };
    if parsed.kind != Some("assistant") {
        return None;
    }
    let mut message = parsed.message?;
    *turn = Some(Turn::of_stop_reason(message.stop_reason.as_deref()));
    let model = message.model.take().unwrap_or_default();
    if model == SYNTHETIC_MODEL {
        return None;
    }
    tool_use_ids.append(&mut message.content.0);
    response_of(
        message.id,
        model,
        message.usage?,
        LineFields {
            request_id: parsed.request_id,
            timestamp: parsed.timestamp,
            sidechain: parsed.is_sidechain,
            agent_id: parsed.agent_id,
        },
    )
}

/// The line-level fields a response is read from besides its message.
struct LineFields<'a> {
    request_id: Option<String>,
    timestamp: Option<&'a str>,
    sidechain: bool,
    agent_id: Option<String>,
}

/// The response of an assistant line whose message has `usage`, by the
/// rules of the module doc (shared by [`response_of_line`] and
/// [`response_of_parsed`]).
fn response_of(
    message_id: Option<String>,
    model: String,
    usage: Usage,
    line: LineFields<'_>,
) -> Option<ResponseUsage> {
    let message_id = message_id.filter(|id| !id.is_empty())?;
    // Claude Code's own split: the 1-hour part is what the breakdown says
    // (at most the total), and everything else written is a 5-minute write.
    let total_written = usage.cache_creation_input_tokens;
    let cache_write_1h = usage
        .cache_creation
        .map_or(0, |split| split.ephemeral_1h_input_tokens)
        .min(total_written);
    let cache_write_5m = total_written - cache_write_1h;
    Some(ResponseUsage {
        message_id,
        request_id: line.request_id.filter(|id| !id.is_empty()),
        model,
        ts: line.timestamp.and_then(parse_rfc3339_millis),
        sidechain: line.sidechain,
        agent_id: line.agent_id.filter(|id| !id.is_empty()),
        input: usage.input_tokens,
        output: usage.output_tokens,
        cache_write_5m,
        cache_write_1h,
        cache_read: usage.cache_read_input_tokens,
        web_search: usage
            .server_tool_use
            .map(|tools| tools.web_search_requests)
            .unwrap_or(0),
        inference_geo: usage.inference_geo.filter(|geo| !geo.is_empty()),
        speed: usage.speed.filter(|speed| !speed.is_empty()),
        prompt_id: None,
    })
}

/// What [`response_of_parsed`] needs of an assistant line (`"type":
/// "assistant"`) that the caller has parsed already, so that the line is
/// not parsed twice. The string fields are as the line has them (already
/// unescaped); `request_id` and `usage` are their raw JSON text, read here
/// with the same types as [`response_of_line`] reads them.
#[derive(Debug, Default, Clone, Copy)]
pub struct ParsedResponseLine<'a> {
    /// `message.id`.
    pub message_id: Option<&'a str>,
    /// `message.model`.
    pub model: Option<&'a str>,
    /// `message.usage`, raw JSON.
    pub usage_json: Option<&'a str>,
    /// `requestId`, raw JSON.
    pub request_id_json: Option<&'a str>,
    /// `timestamp`.
    pub timestamp: Option<&'a str>,
    /// `isSidechain` (false when absent).
    pub sidechain: bool,
    /// `agentId`.
    pub agent_id: Option<&'a str>,
}

/// The response [`response_of_line`] reads from the same line, given its
/// fields parsed by the caller: `None` where it would find none (no usage,
/// no message id, the synthetic model, a `usage` or `requestId` of the
/// wrong type). The caller checks what `response_of_line` checks of the
/// line as a whole: it is JSON of the same shape, an assistant line, and
/// holds the literal strings `"assistant"` and `"usage"`
/// ([`has_response_markers`]).
pub fn response_of_parsed(line: ParsedResponseLine<'_>) -> Option<ResponseUsage> {
    let model = line.model.unwrap_or_default();
    if model == SYNTHETIC_MODEL {
        return None;
    }
    let usage = serde_json::from_str::<Option<Usage>>(line.usage_json?).ok()??;
    let request_id = match line.request_id_json {
        Some(raw) => serde_json::from_str::<Option<String>>(raw).ok()?,
        None => None,
    };
    response_of(
        line.message_id.map(str::to_owned),
        model.to_owned(),
        usage,
        LineFields {
            request_id,
            timestamp: line.timestamp,
            sidechain: line.sidechain,
            agent_id: line.agent_id.map(str::to_owned),
        },
    )
}

/// Whether `line` holds the two literal strings [`response_of_line`]
/// requires before it parses a line at all.
pub fn has_response_markers(line: &[u8]) -> bool {
    memmem(line, ASSISTANT_MARKER).is_some() && memmem(line, USAGE_MARKER).is_some()
}

/// The value of the first `"key": "…"` in a JSON `line`, when it is a plain
/// string (no escapes, at most 128 bytes). A key inside a string value has
/// its quotes escaped, so only a real key matches. Used for `agentId`,
/// which Claude Code writes before any large field of a line.
pub fn lift_plain_string(line: &[u8], key: &str) -> Option<String> {
    let mut pattern = Vec::with_capacity(key.len() + 2);
    pattern.push(b'"');
    pattern.extend_from_slice(key.as_bytes());
    pattern.push(b'"');
    let at = memmem(line, &pattern)? + pattern.len();
    let rest = trim_json_space(&line[at..]).strip_prefix(b":")?;
    let rest = trim_json_space(rest).strip_prefix(b"\"")?;
    let end = rest.iter().position(|&byte| byte == b'"')?;
    let value = &rest[..end];
    if value.is_empty() || value.len() > 128 || value.contains(&b'\\') {
        return None;
    }
    std::str::from_utf8(value).ok().map(str::to_owned)
}

fn trim_json_space(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|byte| !matches!(byte, b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// Searchers one thread keeps, at most: the import and the collector look
/// for a handful of fixed needles; a caller with many would otherwise grow
/// the cache without bound, so past this it searches without one.
const KEPT_FINDERS: usize = 16;

/// The first position of `needle` in `haystack` (SIMD-accelerated: every
/// line of a transcript is searched this way before any parsing).
///
/// `memchr::memmem::find` builds a searcher for its needle on every call,
/// about 2,000 instructions, more than searching a short line costs: it
/// was 4% of the import's reading thread (issue 21). The same few needles
/// are searched for in every line and payload, so each thread keeps the
/// searchers it built.
pub fn memmem(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    use memchr::memmem::Finder;
    use std::cell::RefCell;
    thread_local! {
        static FINDERS: RefCell<Vec<Finder<'static>>> = const { RefCell::new(Vec::new()) };
    }
    FINDERS.with_borrow_mut(|finders| {
        if let Some(finder) = finders.iter().find(|finder| finder.needle() == needle) {
            return finder.find(haystack);
        }
        if finders.len() >= KEPT_FINDERS {
            return memchr::memmem::find(haystack, needle);
        }
        let finder = Finder::new(needle).into_owned();
        let found = finder.find(haystack);
        finders.push(finder);
        found
    })
}

/// Totals of token kinds, summed over responses (by model, say).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenTotals {
    pub input: u64,
    pub output: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub cache_read: u64,
    pub web_search: u64,
}

impl TokenTotals {
    /// Adds one response's usage.
    pub fn add(&mut self, usage: &ResponseUsage) {
        self.input += usage.input;
        self.output += usage.output;
        self.cache_write_5m += usage.cache_write_5m;
        self.cache_write_1h += usage.cache_write_1h;
        self.cache_read += usage.cache_read;
        self.web_search += usage.web_search;
    }
}

/// Totals per model over a whole transcript's text, by the counting rules:
/// the reference that tests compare the live pipeline with.
pub fn totals_by_model(transcript: &[u8]) -> std::collections::BTreeMap<String, TokenTotals> {
    let mut totals = std::collections::BTreeMap::<String, TokenTotals>::new();
    for response in scan(transcript, None).responses {
        totals
            .entry(response.model.clone())
            .or_default()
            .add(&response);
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kept searchers find what a fresh search finds, for the same
    /// needle many times, for more needles than are kept, and for an empty
    /// needle or haystack.
    #[test]
    fn the_last_response_line_tells_whether_its_turn_ended() {
        let line = |id: &str, stop: &str| {
            format!(
                r#"{{"type":"assistant","message":{{"id":"{id}","model":"m","stop_reason":{stop},"usage":{{"input_tokens":1}}}}}}"#
            ) + "\n"
        };
        let user = "{\"type\":\"user\",\"message\":{\"content\":\"hi\"}}\n";
        let turn = |text: String| scan(text.as_bytes(), None).last_turn;
        assert_eq!(turn(user.to_owned()), None);
        assert_eq!(
            turn(line("a", "\"tool_use\"") + user),
            Some(Turn::Continues)
        );
        assert_eq!(turn(line("a", "null")), Some(Turn::Continues));
        assert_eq!(turn(line("a", "\"pause_turn\"")), Some(Turn::Continues));
        assert_eq!(
            turn(line("a", "\"tool_use\"") + &line("b", "\"end_turn\"")),
            Some(Turn::Ended)
        );
        assert_eq!(
            turn(line("b", "\"end_turn\"") + &line("c", "\"tool_use\"")),
            Some(Turn::Continues)
        );
        assert_eq!(turn(line("a", "\"max_tokens\"")), Some(Turn::Ended));
    }

    #[test]
    fn kept_searchers_find_what_a_fresh_search_finds() {
        let haystack =
            br#"{"type":"assistant","message":{"usage":{"input_tokens":3}},"agentId":"a1"}"#;
        let mut needles: Vec<Vec<u8>> = (0..40).map(|n| format!("\"k{n}\"").into_bytes()).collect();
        needles.extend([
            b"\"usage\"".to_vec(),
            b"agentId".to_vec(),
            Vec::new(),
            b"}".to_vec(),
        ]);
        for _ in 0..3 {
            for needle in &needles {
                for text in [&haystack[..], b"", b"\"k3\" and \"k39\""] {
                    assert_eq!(
                        memmem(text, needle),
                        memchr::memmem::find(text, needle),
                        "{:?} in {:?}",
                        String::from_utf8_lossy(needle),
                        String::from_utf8_lossy(text)
                    );
                }
            }
        }
    }

    fn assistant(id: &str, request: &str, model: &str, output: u64, extra: &str) -> String {
        format!(
            r#"{{"parentUuid":"p","isSidechain":false,"type":"assistant","requestId":"{request}","timestamp":"2026-11-28T09:00:00.000Z","message":{{"id":"{id}","type":"message","role":"assistant","model":"{model}","content":[{{"type":"text","text":"hi \"usage\""}}],"usage":{{"input_tokens":10,"cache_creation_input_tokens":30,"cache_read_input_tokens":5,"cache_creation":{{"ephemeral_5m_input_tokens":20,"ephemeral_1h_input_tokens":10}},"output_tokens":{output}{extra}}}}}}}"#
        )
    }

    #[test]
    fn one_response_written_as_several_lines_counts_once_with_its_last_usage() {
        let text = format!(
            "{}\n{}\n{}\n",
            assistant("msg_1", "req_1", "claude-sonnet-4-5", 1, ""),
            assistant("msg_1", "req_1", "claude-sonnet-4-5", 42, ""),
            assistant("msg_2", "req_2", "claude-sonnet-4-5", 7, ""),
        );
        let scanned = scan(text.as_bytes(), None);
        assert_eq!(scanned.responses.len(), 2);
        assert_eq!(scanned.responses[0].output, 42);
        assert_eq!(scanned.responses[0].cache_write_5m, 20);
        assert_eq!(scanned.responses[0].cache_write_1h, 10);
        assert_eq!(scanned.responses[0].cache_read, 5);
        assert_eq!(scanned.consumed, text.len());
    }

    #[test]
    fn synthetic_messages_and_other_lines_do_not_count() {
        let text = format!(
            "{}\n{}\nnot json with \"assistant\" \"usage\"\n{{\"type\":\"user\",\"message\":{{\"role\":\"user\",\"content\":\"usage assistant\"}}}}\n",
            assistant("msg_s", "", SYNTHETIC_MODEL, 3, ""),
            assistant("msg_3", "req_3", "claude-haiku-4-5", 3, ""),
        );
        let scanned = scan(text.as_bytes(), None);
        assert_eq!(scanned.responses.len(), 1);
        assert_eq!(scanned.responses[0].model, "claude-haiku-4-5");
        assert_eq!(scanned.bad_lines, 1);
    }

    #[test]
    fn a_half_written_last_line_is_left_for_the_next_read() {
        let whole = assistant("msg_1", "req_1", "m", 1, "");
        let text = format!("{whole}\n{}", &whole[..40]);
        let scanned = scan(text.as_bytes(), None);
        assert_eq!(scanned.responses.len(), 1);
        assert_eq!(scanned.consumed, whole.len() + 1);
    }

    #[test]
    fn cache_writes_without_a_split_count_as_five_minute_writes_and_web_searches_count() {
        let line = r#"{"type":"assistant","message":{"id":"msg_9","model":"m","usage":{"input_tokens":1,"cache_creation_input_tokens":99,"output_tokens":2,"server_tool_use":{"web_search_requests":3}}}}"#;
        let scanned = scan(format!("{line}\n").as_bytes(), None);
        let response = &scanned.responses[0];
        assert_eq!((response.cache_write_5m, response.cache_write_1h), (99, 0));
        assert_eq!(response.web_search, 3);
        assert_eq!(response.request_id, None);
        assert_eq!(response.key(), "msg_9");
    }

    #[test]
    fn tool_use_ids_and_agent_ids_are_collected_once_each() {
        let text = concat!(
            r#"{"type":"assistant","requestId":"r1","message":{"id":"m1","model":"m","content":[{"type":"tool_use","id":"toolu_a","name":"Agent","input":{"x":"\"agentId\": \"no\""}}],"usage":{"input_tokens":1}}}"#,
            "\n",
            r#"{"type":"assistant","requestId":"r1","message":{"id":"m1","model":"m","content":[{"type":"tool_use","id":"toolu_a","name":"Agent","input":{}}],"usage":{"input_tokens":1}}}"#,
            "\n",
            r#"{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_a","content":"ok"}]},"toolUseResult":{"status":"completed","agentId": "a123"}}"#,
            "\n",
            r#"{"type":"assistant","message":{"id":"m2","model":"m","content":"plain text","usage":{"input_tokens":1}}}"#,
            "\n",
        );
        let scanned = scan(text.as_bytes(), None);
        assert_eq!(scanned.tool_use_ids, vec!["toolu_a".to_owned()]);
        assert_eq!(scanned.agent_ids, vec!["a123".to_owned()]);
        assert_eq!(scanned.responses.len(), 2);
        assert_eq!(scanned.bad_lines, 0);
    }
}
