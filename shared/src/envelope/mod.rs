//! The v1 envelope (DESIGN §3) and the wire types around it.
//!
//! Two directions:
//! - The emitter builds an [`Envelope`] from whatever arrived on stdin with
//!   [`Envelope::from_hook_stdin`]: valid JSON is kept verbatim as `payload`,
//!   anything else becomes a `hook: "Invalid"` event holding the raw text, and
//!   oversized payloads are shortened (never dropped).
//! - The collector turns a received line back into an [`Envelope`] with
//!   [`parse_line`], which also accepts the older camelCase envelope.
//!
//! [`HookInput`] is the wire type: it mirrors the few fields of Claude Code's
//! hook JSON that the envelope lifts, and nothing else, so unknown and future
//! fields pass through `payload` untouched.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

pub use crate::time::{now_millis, parse_rfc3339_millis};
use crate::transcript::TranscriptUsage;

/// The envelope version this crate writes and reads.
pub const ENVELOPE_VERSION: u32 = 1;

/// The largest serialized payload the emitter sends. Larger payloads have
/// their longest strings shortened until they fit; see [`shorten_strings`].
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// The longest envelope line the emitter writes: the payload at its limit
/// plus the lifted fields, each at most [`MAX_LIFTED_CHARS`] (escaped, up to
/// six bytes a character), the id and the rest. Spool forwarding sends no
/// longer line to Redis.
pub const MAX_LINE_BYTES: usize = MAX_PAYLOAD_BYTES + 256 * 1024;

/// The most characters kept of each field lifted from the payload (session
/// id, agent id, hook, tool, tool_use_id, cwd); the payload keeps them whole
/// as far as its own limit allows.
pub const MAX_LIFTED_CHARS: usize = 4096;

/// The `hook` of an event whose stdin was not a JSON object.
pub const INVALID_HOOK: &str = "Invalid";

/// The `hook` of an event whose payload named no `hook_event_name`.
pub const UNKNOWN_HOOK: &str = "Unknown";

/// The longest event id accepted from a sender.
pub const MAX_ID_CHARS: usize = 128;

/// Claude Code's hook events, as named in `hook_event_name`: the 33 of
/// Claude Code 2.1.330 (DESIGN §2 has the table of when each fires and why
/// it is or is not registered).
///
/// `#[serde(other)]` makes a future event name parse as [`HookEvent::Other`]
/// instead of failing, so new Claude Code versions never break a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum HookEvent {
    PreToolUse,
    PostToolUse,
    PostToolUseFailure,
    PostToolBatch,
    UserPromptSubmit,
    UserPromptExpansion,
    SessionStart,
    SessionEnd,
    Stop,
    StopFailure,
    Setup,
    PreCompact,
    PostCompact,
    SubagentStart,
    SubagentStop,
    TeammateIdle,
    TaskCreated,
    TaskCompleted,
    Notification,
    PermissionRequest,
    PermissionDenied,
    Elicitation,
    ElicitationResult,
    PreModelSwitch,
    PostModelSwitch,
    ConfigChange,
    /// Replaces worktree creation when hooked (the hook must create the
    /// directory and print its path): never registered by `install`.
    WorktreeCreate,
    WorktreeRemove,
    InstructionsLoaded,
    CwdChanged,
    /// Its matcher is the list of files to watch, and registering it starts
    /// a file watcher; `*` does not mean every file. Never registered by
    /// `install`: a person who wants it adds it with their own file list.
    FileChanged,
    DirectoryAdded,
    /// Display-only text that is already in the transcript, fired per
    /// batch of shown lines in the terminal UI: it would multiply the rows
    /// stored for nothing new. Never registered by `install`.
    MessageDisplay,
    /// Any event name this version does not know.
    #[serde(other)]
    Other,
}

impl HookEvent {
    /// Every event this version knows, in the order of DESIGN §2's table.
    pub const ALL: &'static [HookEvent] = &[
        HookEvent::PreToolUse,
        HookEvent::PostToolUse,
        HookEvent::PostToolUseFailure,
        HookEvent::PostToolBatch,
        HookEvent::UserPromptSubmit,
        HookEvent::UserPromptExpansion,
        HookEvent::SessionStart,
        HookEvent::SessionEnd,
        HookEvent::Stop,
        HookEvent::StopFailure,
        HookEvent::Setup,
        HookEvent::PreCompact,
        HookEvent::PostCompact,
        HookEvent::SubagentStart,
        HookEvent::SubagentStop,
        HookEvent::TeammateIdle,
        HookEvent::TaskCreated,
        HookEvent::TaskCompleted,
        HookEvent::Notification,
        HookEvent::PermissionRequest,
        HookEvent::PermissionDenied,
        HookEvent::Elicitation,
        HookEvent::ElicitationResult,
        HookEvent::PreModelSwitch,
        HookEvent::PostModelSwitch,
        HookEvent::ConfigChange,
        HookEvent::WorktreeCreate,
        HookEvent::WorktreeRemove,
        HookEvent::InstructionsLoaded,
        HookEvent::CwdChanged,
        HookEvent::FileChanged,
        HookEvent::DirectoryAdded,
        HookEvent::MessageDisplay,
    ];

    /// Events that `hooktrail-emit install` registers: every event where a
    /// silent hook that exits 0 only observes (checked against the real CLI).
    /// `WorktreeCreate`, `FileChanged` and `MessageDisplay` are left out on
    /// purpose (see their docs).
    pub const OBSERVER_SAFE: &'static [HookEvent] = &[
        HookEvent::PreToolUse,
        HookEvent::PostToolUse,
        HookEvent::PostToolUseFailure,
        HookEvent::PostToolBatch,
        HookEvent::UserPromptSubmit,
        HookEvent::UserPromptExpansion,
        HookEvent::SessionStart,
        HookEvent::SessionEnd,
        HookEvent::Stop,
        HookEvent::StopFailure,
        HookEvent::Setup,
        HookEvent::PreCompact,
        HookEvent::PostCompact,
        HookEvent::SubagentStart,
        HookEvent::SubagentStop,
        HookEvent::TeammateIdle,
        HookEvent::TaskCreated,
        HookEvent::TaskCompleted,
        HookEvent::Notification,
        HookEvent::PermissionRequest,
        HookEvent::PermissionDenied,
        HookEvent::Elicitation,
        HookEvent::ElicitationResult,
        HookEvent::PreModelSwitch,
        HookEvent::PostModelSwitch,
        HookEvent::ConfigChange,
        HookEvent::WorktreeRemove,
        HookEvent::InstructionsLoaded,
        HookEvent::CwdChanged,
        HookEvent::DirectoryAdded,
    ];

    /// The event's name as Claude Code spells it.
    pub fn name(self) -> &'static str {
        match self {
            HookEvent::PreToolUse => "PreToolUse",
            HookEvent::PostToolUse => "PostToolUse",
            HookEvent::PostToolUseFailure => "PostToolUseFailure",
            HookEvent::PostToolBatch => "PostToolBatch",
            HookEvent::UserPromptSubmit => "UserPromptSubmit",
            HookEvent::UserPromptExpansion => "UserPromptExpansion",
            HookEvent::SessionStart => "SessionStart",
            HookEvent::SessionEnd => "SessionEnd",
            HookEvent::Stop => "Stop",
            HookEvent::StopFailure => "StopFailure",
            HookEvent::Setup => "Setup",
            HookEvent::PreCompact => "PreCompact",
            HookEvent::PostCompact => "PostCompact",
            HookEvent::SubagentStart => "SubagentStart",
            HookEvent::SubagentStop => "SubagentStop",
            HookEvent::TeammateIdle => "TeammateIdle",
            HookEvent::TaskCreated => "TaskCreated",
            HookEvent::TaskCompleted => "TaskCompleted",
            HookEvent::Notification => "Notification",
            HookEvent::PermissionRequest => "PermissionRequest",
            HookEvent::PermissionDenied => "PermissionDenied",
            HookEvent::Elicitation => "Elicitation",
            HookEvent::ElicitationResult => "ElicitationResult",
            HookEvent::PreModelSwitch => "PreModelSwitch",
            HookEvent::PostModelSwitch => "PostModelSwitch",
            HookEvent::ConfigChange => "ConfigChange",
            HookEvent::WorktreeCreate => "WorktreeCreate",
            HookEvent::WorktreeRemove => "WorktreeRemove",
            HookEvent::InstructionsLoaded => "InstructionsLoaded",
            HookEvent::CwdChanged => "CwdChanged",
            HookEvent::FileChanged => "FileChanged",
            HookEvent::DirectoryAdded => "DirectoryAdded",
            HookEvent::MessageDisplay => "MessageDisplay",
            HookEvent::Other => "Other",
        }
    }

    /// Parses an event name; unknown names give [`HookEvent::Other`].
    pub fn from_name(name: &str) -> HookEvent {
        serde_json::from_value(Value::String(name.to_owned())).unwrap_or(HookEvent::Other)
    }

    /// Whether the event's settings entry takes a matcher (`"*"` catches
    /// everything); Claude Code ignores a matcher on the others.
    pub fn takes_matcher(self) -> bool {
        matches!(
            self,
            HookEvent::PreToolUse
                | HookEvent::PostToolUse
                | HookEvent::PostToolUseFailure
                | HookEvent::UserPromptExpansion
                | HookEvent::SessionStart
                | HookEvent::SessionEnd
                | HookEvent::StopFailure
                | HookEvent::Setup
                | HookEvent::PreCompact
                | HookEvent::PostCompact
                | HookEvent::SubagentStart
                | HookEvent::SubagentStop
                | HookEvent::Notification
                | HookEvent::PermissionRequest
                | HookEvent::PermissionDenied
                | HookEvent::Elicitation
                | HookEvent::ElicitationResult
                | HookEvent::PreModelSwitch
                | HookEvent::PostModelSwitch
                | HookEvent::ConfigChange
                | HookEvent::InstructionsLoaded
                | HookEvent::DirectoryAdded
        )
    }
}

/// The wire type: the fields of Claude Code's hook JSON that the envelope
/// lifts. Everything else stays in the payload. Borrowed where possible so the
/// emitter's hot path copies little.
#[derive(Debug, Default, Deserialize)]
pub struct HookInput<'a> {
    #[serde(default, borrow)]
    pub session_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub agent_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub hook_event_name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub tool_name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub tool_use_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub cwd: Option<Cow<'a, str>>,
}

/// One event, as carried on every transport and stored in one row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// Envelope version, [`ENVELOPE_VERSION`].
    pub v: u32,
    /// The event id (a UUID v7 from the emitter): the key that makes
    /// redelivery idempotent.
    pub id: String,
    /// When the emitter ran, in milliseconds since the Unix epoch.
    pub ts: i64,
    /// The emitting machine's hostname.
    pub machine: String,
    /// Claude Code's session id, when the payload has one.
    pub session_id: Option<String>,
    /// The subagent's id, when a subagent caused the event.
    pub agent_id: Option<String>,
    /// The hook event name, [`INVALID_HOOK`] or [`UNKNOWN_HOOK`].
    pub hook: String,
    /// The tool's name for tool events.
    pub tool: Option<String>,
    /// Pairs `PreToolUse` with `PostToolUse`/`PostToolUseFailure`.
    pub tool_use_id: Option<String>,
    /// The session's working directory.
    pub cwd: Option<String>,
    /// Set when strings of the payload were shortened to fit
    /// [`MAX_PAYLOAD_BYTES`].
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated: bool,
    /// At turn boundaries, the token usage the transcript gained since the
    /// emitter last read it (see `transcript`). Absent on every other event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TranscriptUsage>,
    /// Which redaction rules replaced something in `payload`, and how many
    /// times (`crate::redact`). Absent when nothing was redacted, and in
    /// envelopes of emitters older than redaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redactions: Option<BTreeMap<String, u64>>,
    /// Set when the emitter's config file (or `$HOOKTRAIL_PRIVACY`) had an
    /// error: the payload was then redacted at the `metadata` level, and
    /// the collector shows that the config needs fixing. Absent otherwise.
    #[serde(default, skip_serializing_if = "is_false")]
    pub config_error: bool,
    /// On a `PermissionRequest` whose hook waits for a decision made on the
    /// page (issue 18): the Unix milliseconds until which it waits. The
    /// collector lists the request as pending only until then (nobody
    /// listens after). Absent on every other event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_until: Option<i64>,
    /// Set on a `PreToolUse` or `UserPromptSubmit` whose hook acts on budget
    /// verdicts (issue 19): the collector's socket then answers `ok` with
    /// the signed verdict of the event's session on the same line, when one
    /// refuses work. Absent (false) everywhere else, so older collectors
    /// and every other event see the envelope unchanged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub budget_check: bool,
    /// The hook JSON as received (one line: JSON whitespace newlines are
    /// turned into spaces, which changes no value).
    pub payload: Box<RawValue>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// A fresh event id: a UUID v7, so ids sort by creation time.
pub fn new_event_id() -> String {
    crate::event_id::new_v7(now_millis().max(0) as u64)
}

/// What the emitter read of a hook's stdin.
#[derive(Debug, Clone, Copy)]
pub enum HookStdin<'a> {
    /// All of it.
    Whole(&'a [u8]),
    /// The first [`MAX_STDIN_KEPT`] bytes of more: the emitter read the rest
    /// to its end without keeping it, so that memory stays bounded.
    Cut {
        /// The bytes kept.
        kept: &'a [u8],
        /// How many bytes stdin held in all.
        total: u64,
    },
}

/// The most bytes of a hook's stdin the emitter keeps; it reads (and drops)
/// the rest. Well above any real payload (a 20 MiB one is still shortened
/// string by string), and it bounds the emitter's memory whatever the input.
pub const MAX_STDIN_KEPT: usize = 32 * 1024 * 1024;

impl Envelope {
    /// Builds the envelope of one hook invocation from its raw stdin.
    ///
    /// Never fails: stdin that is not a JSON object becomes an
    /// [`INVALID_HOOK`] event with `payload = {"_raw": "<text>"}`, and a payload
    /// over [`MAX_PAYLOAD_BYTES`] is shortened and marked `truncated`.
    pub fn from_hook_stdin(stdin: &[u8], id: String, ts: i64, machine: String) -> Envelope {
        Envelope::from_hook_input(HookStdin::Whole(stdin), id, ts, machine)
    }

    /// [`Envelope::from_hook_stdin`] for stdin that may have been cut at
    /// [`MAX_STDIN_KEPT`]. Whatever the input, the payload fits in
    /// [`MAX_PAYLOAD_BYTES`] and the line in [`MAX_LINE_BYTES`]: strings
    /// are shortened first, then arrays and objects keep only their first
    /// members (a payload of millions of short strings has nothing long to
    /// shorten), and the parse of a large payload keeps a bounded amount of
    /// it in memory.
    pub fn from_hook_input(input: HookStdin, id: String, ts: i64, machine: String) -> Envelope {
        let (stdin, cut_from) = match input {
            HookStdin::Whole(stdin) => (stdin, None),
            // A cut may fall inside a UTF-8 character: drop its first bytes.
            HookStdin::Cut { kept, total } => match std::str::from_utf8(kept) {
                Err(error) if error.error_len().is_none() => {
                    (&kept[..error.valid_up_to()], Some(total))
                }
                _ => (kept, Some(total)),
            },
        };
        let mut envelope = Envelope {
            v: ENVELOPE_VERSION,
            id,
            ts,
            machine,
            session_id: None,
            agent_id: None,
            hook: INVALID_HOOK.to_owned(),
            tool: None,
            tool_use_id: None,
            cwd: None,
            truncated: false,
            usage: None,
            redactions: None,
            config_error: false,
            wait_until: None,
            budget_check: false,
            payload: to_raw(&Value::Null),
        };
        let trimmed = std::str::from_utf8(stdin)
            .ok()
            .map(str::trim)
            .filter(|text| text.starts_with('{'));
        if let Some(json) =
            trimmed.filter(|json| json.len() <= MAX_PAYLOAD_BYTES && cut_from.is_none())
        {
            // The common case: a payload that fits is kept verbatim.
            if let Ok(input) = serde_json::from_str::<HookInput>(json) {
                envelope.lift(
                    input.session_id,
                    input.agent_id,
                    input.hook_event_name,
                    input.tool_name,
                    input.tool_use_id,
                    input.cwd,
                );
                envelope.payload = one_line_raw(json);
                return envelope;
            }
        } else if let Some((mut value, shortened)) =
            trimmed.and_then(|json| bounded_value(json.as_bytes(), cut_from.is_some()))
        {
            let text = |key: &str| {
                value
                    .get(key)
                    .and_then(Value::as_str)
                    .map(|text| Cow::Owned(text.to_owned()))
            };
            let lifted = (
                text("session_id"),
                text("agent_id"),
                text("hook_event_name"),
                text("tool_name"),
                text("tool_use_id"),
                text("cwd"),
            );
            envelope.lift(lifted.0, lifted.1, lifted.2, lifted.3, lifted.4, lifted.5);
            let fitted = fit_payload(&mut value, MAX_PAYLOAD_BYTES);
            envelope.truncated = shortened || fitted || cut_from.is_some();
            envelope.payload = to_raw(&value);
            return envelope;
        }
        // Not a JSON object: keep the text (at most the payload limit of it).
        let cut = &stdin[..stdin.len().min(MAX_PAYLOAD_BYTES)];
        let mut raw = String::from_utf8_lossy(cut).into_owned();
        let original = cut_from.unwrap_or(stdin.len() as u64);
        if original > cut.len() as u64 {
            raw.push_str(&shortened_marker(original));
            envelope.truncated = true;
        }
        let mut value = serde_json::json!({ "_raw": raw });
        envelope.truncated |= shorten_strings(&mut value, MAX_PAYLOAD_BYTES);
        envelope.payload = to_raw(&value);
        envelope
    }

    /// Sets the lifted fields, each cut to [`MAX_LIFTED_CHARS`]; a missing or
    /// empty event name gives [`UNKNOWN_HOOK`].
    fn lift(
        &mut self,
        session_id: Option<Cow<str>>,
        agent_id: Option<Cow<str>>,
        hook: Option<Cow<str>>,
        tool: Option<Cow<str>>,
        tool_use_id: Option<Cow<str>>,
        cwd: Option<Cow<str>>,
    ) {
        let bounded = |text: Option<Cow<str>>| text.map(|text| bounded_field(&text));
        self.session_id = bounded(session_id);
        self.agent_id = bounded(agent_id);
        // An empty name would be an event the collector could not file.
        self.hook = bounded(hook)
            .filter(|hook| !hook.trim().is_empty())
            .unwrap_or_else(|| UNKNOWN_HOOK.to_owned());
        self.tool = bounded(tool);
        self.tool_use_id = bounded(tool_use_id);
        self.cwd = bounded(cwd);
    }

    /// The envelope as one line of JSON, without the trailing newline.
    pub fn to_json(&self) -> String {
        // Serializing plain strings, numbers and an already valid RawValue
        // cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn one_line_raw(json: &str) -> Box<RawValue> {
    // Raw newlines can only be JSON whitespace (inside strings they must be
    // escaped), so replacing them with spaces keeps every value.
    let text = if json.contains(['\n', '\r']) {
        json.replace(['\n', '\r'], " ")
    } else {
        json.to_owned()
    };
    RawValue::from_string(text).unwrap_or_else(|_| to_raw(&Value::Null))
}

fn to_raw(value: &Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(value)
        .unwrap_or_else(|_| RawValue::from_string("null".to_owned()).expect("null is valid JSON"))
}

/// A lifted field, cut to [`MAX_LIFTED_CHARS`] characters.
fn bounded_field(text: &str) -> String {
    match text.char_indices().nth(MAX_LIFTED_CHARS) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// How the marker ending a shortened string starts; the redaction reads it
/// to find where a cut may have split a secret.
pub const SHORTENED_MARKER_START: &str = "…[hooktrail: shortened from ";

fn shortened_marker(original: u64) -> String {
    format!("{SHORTENED_MARKER_START}{original} bytes]")
}

/// The most values (of any kind, at any depth) a bounded parse keeps; the
/// rest of each array or object is counted, not kept.
const KEEP_VALUES: usize = 65_536;

/// The most string bytes a bounded parse keeps in all (one string keeps at
/// most [`MAX_PAYLOAD_BYTES`]).
const KEEP_STRING_BYTES: usize = 8 * 1024 * 1024;

/// What a bounded parse may still keep.
struct Keep {
    /// Values left to keep.
    values: usize,
    /// String bytes left to keep.
    string_bytes: usize,
    /// Set when anything was cut or left out.
    shortened: bool,
}

/// Parses a large JSON object keeping a bounded part of it: every string at
/// most [`MAX_PAYLOAD_BYTES`] (marked), at most [`KEEP_VALUES`] values and
/// [`KEEP_STRING_BYTES`] of strings (later members counted, not kept). So a
/// payload of millions of short strings costs a bounded amount of memory
/// instead of a `Value` many times its size. When `cut` (stdin was cut),
/// running out of input keeps what was parsed before. Returns the value
/// and whether anything was left out, or `None` for input that is not JSON.
fn bounded_value(json: &[u8], cut: bool) -> Option<(Value, bool)> {
    let mut value = Value::Null;
    let mut keep = Keep {
        values: KEEP_VALUES,
        string_bytes: KEEP_STRING_BYTES,
        shortened: false,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let parsed = serde::de::DeserializeSeed::deserialize(
        Slot {
            target: &mut value,
            keep: &mut keep,
        },
        &mut deserializer,
    )
    .and_then(|()| deserializer.end());
    match parsed {
        Ok(()) => {}
        Err(error) if cut && error.classify() == serde_json::error::Category::Eof => {}
        Err(_) => return None,
    }
    value.is_object().then_some((value, keep.shortened))
}

/// One place in the value being built by [`bounded_value`]. It is filled in
/// as the parse goes, so a parse cut short keeps what came before.
struct Slot<'k> {
    /// Where the parsed value goes.
    target: &'k mut Value,
    /// The budget shared by the whole parse.
    keep: &'k mut Keep,
}

impl<'de> serde::de::DeserializeSeed<'de> for Slot<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Slot<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<(), E> {
        *self.target = Value::Bool(value);
        Ok(())
    }

    fn visit_i64<E>(self, value: i64) -> Result<(), E> {
        *self.target = Value::from(value);
        Ok(())
    }

    fn visit_u64<E>(self, value: u64) -> Result<(), E> {
        *self.target = Value::from(value);
        Ok(())
    }

    fn visit_f64<E>(self, value: f64) -> Result<(), E> {
        *self.target = Value::from(value);
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        *self.target = Value::Null;
        Ok(())
    }

    fn visit_str<E>(self, text: &str) -> Result<(), E> {
        let keep = MAX_PAYLOAD_BYTES.min(self.keep.string_bytes);
        let kept = if text.len() > keep {
            self.keep.shortened = true;
            let mut end = keep;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}{}", &text[..end], shortened_marker(text.len() as u64))
        } else {
            text.to_owned()
        };
        self.keep.string_bytes = self.keep.string_bytes.saturating_sub(kept.len());
        *self.target = Value::String(kept);
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut sequence: A) -> Result<(), A::Error> {
        *self.target = Value::Array(Vec::new());
        let Value::Array(items) = self.target else {
            unreachable!("just set")
        };
        let mut left_out = 0u64;
        // The marker goes in even when the input ends early (stdin was cut).
        let parsed = loop {
            if self.keep.values == 0 {
                match sequence.next_element::<serde::de::IgnoredAny>() {
                    Ok(Some(_)) => left_out += 1,
                    Ok(None) => break Ok(()),
                    Err(error) => break Err(error),
                }
                continue;
            }
            self.keep.values -= 1;
            items.push(Value::Null);
            let slot = Slot {
                target: items.last_mut().expect("just pushed"),
                keep: self.keep,
            };
            match sequence.next_element_seed(slot) {
                Ok(Some(())) => {}
                Ok(None) => {
                    items.pop();
                    break Ok(());
                }
                Err(error) => break Err(error),
            }
        };
        if left_out > 0 {
            self.keep.shortened = true;
            items.push(Value::String(more_items_marker(left_out)));
        }
        parsed
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        *self.target = Value::Object(serde_json::Map::new());
        let Value::Object(members) = self.target else {
            unreachable!("just set")
        };
        let mut left_out = 0u64;
        // The marker goes in even when the input ends early (stdin was cut).
        let parsed = loop {
            if self.keep.values == 0 {
                match map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>() {
                    Ok(Some(_)) => left_out += 1,
                    Ok(None) => break Ok(()),
                    Err(error) => break Err(error),
                }
                continue;
            }
            let key = match map.next_key::<Cow<str>>() {
                Ok(Some(key)) => key,
                Ok(None) => break Ok(()),
                Err(error) => break Err(error),
            };
            self.keep.values -= 1;
            let key = bounded_field(&key);
            self.keep.string_bytes = self.keep.string_bytes.saturating_sub(key.len());
            let slot = Slot {
                target: members.entry(key).or_insert(Value::Null),
                keep: self.keep,
            };
            if let Err(error) = map.next_value_seed(slot) {
                break Err(error);
            }
        };
        if left_out > 0 {
            self.keep.shortened = true;
            members.insert(MORE_MEMBERS_KEY.to_owned(), Value::from(left_out));
        }
        parsed
    }
}

/// The key added to an object whose later members were left out; its value
/// is how many.
pub const MORE_MEMBERS_KEY: &str = "_hooktrail_more_members";

fn more_items_marker(count: u64) -> String {
    format!("…[hooktrail: {count} more items]")
}

/// Makes `value` fit in `budget` bytes serialized: the longest strings are
/// shortened first ([`shorten_strings`]); if that is not enough (many short
/// strings), arrays and objects keep only their first members
/// ([`keep_first_members`]). Returns whether anything changed.
pub fn fit_payload(value: &mut Value, budget: usize) -> bool {
    let shortened = shorten_strings(value, budget);
    if serialized_len(value) <= budget {
        return shortened;
    }
    let widest = widest_container(value);
    // The largest number of members per container that fits.
    let (mut low, mut high) = (0, widest);
    while low < high {
        let middle = (low + high).div_ceil(2);
        if len_keeping(value, middle) <= budget {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    keep_first_members(value, low);
    true
}

/// Counts bytes written, to measure serialized sizes without building them.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn serialized_len<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut counter = ByteCounter(0);
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

fn widest_container(value: &Value) -> usize {
    match value {
        Value::Array(items) => items
            .iter()
            .map(widest_container)
            .fold(items.len(), usize::max),
        Value::Object(map) => map
            .values()
            .map(widest_container)
            .fold(map.len(), usize::max),
        _ => 0,
    }
}

/// The serialized size of `value` if each array and object kept only its
/// first `members` (plus a marker, counted as [`MARKER_ALLOWANCE`]).
fn len_keeping(value: &Value, members: usize) -> usize {
    let marker = |total: usize| {
        if total > members {
            MARKER_ALLOWANCE + 1
        } else {
            0
        }
    };
    match value {
        Value::Array(items) => {
            let kept = items.len().min(members);
            2 + kept.saturating_sub(1)
                + items[..kept]
                    .iter()
                    .map(|item| len_keeping(item, members))
                    .sum::<usize>()
                + marker(items.len())
        }
        Value::Object(map) => {
            let kept = map.len().min(members);
            2 + kept.saturating_sub(1)
                + map
                    .iter()
                    .take(kept)
                    .map(|(key, item)| serialized_len(key) + 1 + len_keeping(item, members))
                    .sum::<usize>()
                + marker(map.len())
        }
        leaf => serialized_len(leaf),
    }
}

/// Cuts every array and object to its first `members`, marking each cut.
fn keep_first_members(value: &mut Value, members: usize) {
    match value {
        Value::Array(items) => {
            let total = items.len();
            items.truncate(members);
            items
                .iter_mut()
                .for_each(|item| keep_first_members(item, members));
            if total > members {
                items.push(Value::String(more_items_marker((total - members) as u64)));
            }
        }
        Value::Object(map) => {
            let total = map.len();
            let kept: serde_json::Map<String, Value> = std::mem::take(map)
                .into_iter()
                .take(members)
                .map(|(key, mut item)| {
                    keep_first_members(&mut item, members);
                    (key, item)
                })
                .collect();
            *map = kept;
            if total > members {
                map.insert(
                    MORE_MEMBERS_KEY.to_owned(),
                    Value::from((total - members) as u64),
                );
            }
        }
        _ => {}
    }
}

/// Shortens the longest strings of `value` until its serialized form fits in
/// `budget` bytes. Each shortened string ends with a marker saying how long it
/// was. Returns whether anything was shortened.
pub fn shorten_strings(value: &mut Value, budget: usize) -> bool {
    let mut shortened = false;
    for _ in 0..4 {
        let size = serde_json::to_string(value).map(|s| s.len()).unwrap_or(0);
        if size <= budget {
            break;
        }
        let mut lengths = Vec::new();
        collect_string_lengths(value, &mut lengths);
        if lengths.is_empty() {
            break;
        }
        let excess = size - budget;
        // The largest cap whose cuts remove at least `excess` bytes, markers
        // included.
        let removed_at = |cap: usize| -> usize {
            lengths
                .iter()
                .filter(|&&len| len > cap + MARKER_ALLOWANCE)
                .map(|&len| len - cap - MARKER_ALLOWANCE)
                .sum()
        };
        let (mut low, mut high) = (0usize, lengths.iter().copied().max().unwrap_or(0));
        while low < high {
            let middle = (low + high).div_ceil(2);
            if removed_at(middle) >= excess {
                low = middle;
            } else {
                high = middle - 1;
            }
        }
        if cut_strings(value, low) {
            shortened = true;
        } else {
            break;
        }
    }
    shortened
}

/// Room kept for the marker appended to a shortened string.
const MARKER_ALLOWANCE: usize = 64;

fn collect_string_lengths(value: &Value, lengths: &mut Vec<usize>) {
    match value {
        Value::String(text) => lengths.push(text.len()),
        Value::Array(items) => items
            .iter()
            .for_each(|item| collect_string_lengths(item, lengths)),
        Value::Object(map) => map
            .values()
            .for_each(|item| collect_string_lengths(item, lengths)),
        _ => {}
    }
}

fn cut_strings(value: &mut Value, cap: usize) -> bool {
    match value {
        Value::String(text) if text.len() > cap + MARKER_ALLOWANCE => {
            // A string shortened before (while parsing) keeps its first length.
            let original = text
                .rsplit_once(SHORTENED_MARKER_START)
                .and_then(|(_, rest)| rest.strip_suffix(" bytes]")?.parse().ok())
                .unwrap_or(text.len());
            let mut end = cap;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str(&shortened_marker(original as u64));
            true
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |any, item| cut_strings(item, cap) | any),
        Value::Object(map) => map
            .values_mut()
            .fold(false, |any, item| cut_strings(item, cap) | any),
        _ => false,
    }
}

/// Why a received line was not accepted as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectReason(pub String);

impl std::fmt::Display for RejectReason {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// Every field of both envelope forms, all optional; [`parse_line`] decides
/// which form a line is.
#[derive(Deserialize)]
struct AnyEnvelope<'a> {
    v: Option<u32>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    ts: Option<i64>,
    machine: Option<String>,
    session_id: Option<String>,
    agent_id: Option<String>,
    hook: Option<String>,
    tool: Option<String>,
    tool_use_id: Option<String>,
    cwd: Option<String>,
    #[serde(default)]
    truncated: bool,
    /// Kept raw: a malformed `usage` loses the usage, never the event.
    #[serde(default)]
    usage: Option<Box<RawValue>>,
    #[serde(default)]
    redactions: Option<BTreeMap<String, u64>>,
    #[serde(default)]
    config_error: bool,
    wait_until: Option<i64>,
    #[serde(default)]
    budget_check: bool,
    payload: Option<Box<RawValue>>,
    // The older camelCase envelope.
    timestamp: Option<Value>,
    #[serde(rename = "sessionId")]
    session_id_camel: Option<String>,
    #[serde(rename = "machineId")]
    machine_id: Option<String>,
    #[serde(rename = "workingDirectory")]
    working_directory: Option<String>,
    #[serde(rename = "eventType")]
    event_type: Option<String>,
    #[serde(rename = "hookType")]
    hook_type: Option<String>,
    data: Option<Box<RawValue>>,
}

/// Parses one received line (without its newline) into an envelope, accepting
/// the v1 form and the older camelCase form.
pub fn parse_line(line: &[u8]) -> Result<Envelope, RejectReason> {
    let text =
        std::str::from_utf8(line).map_err(|error| RejectReason(format!("not UTF-8 ({error})")))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(RejectReason("empty line".to_owned()));
    }
    if !trimmed.starts_with('{') {
        return Err(RejectReason("not a JSON object".to_owned()));
    }
    let any: AnyEnvelope = serde_json::from_str(trimmed)
        .map_err(|error| RejectReason(format!("not a valid envelope: {error}")))?;
    let id = any
        .id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| RejectReason("missing \"id\"".to_owned()))?;
    if id.chars().count() > MAX_ID_CHARS || id.chars().any(char::is_control) {
        return Err(RejectReason(format!(
            "\"id\" is longer than {MAX_ID_CHARS} characters or holds control characters"
        )));
    }
    let id = id.to_owned();
    if let Some(version) = any.v {
        if version != ENVELOPE_VERSION {
            return Err(RejectReason(format!(
                "unsupported envelope version {version}"
            )));
        }
        let payload = any
            .payload
            .ok_or_else(|| RejectReason("missing \"payload\"".to_owned()))?;
        let ts = any
            .ts
            .ok_or_else(|| RejectReason("missing \"ts\"".to_owned()))?;
        // An event without a name is still an event: older emitters sent
        // `"hook": ""` for an empty `hook_event_name`, and rejecting it lost it.
        let hook = any
            .hook
            .filter(|hook| !hook.trim().is_empty())
            .unwrap_or_else(|| UNKNOWN_HOOK.to_owned());
        return Ok(Envelope {
            v: ENVELOPE_VERSION,
            id,
            ts,
            machine: any.machine.unwrap_or_else(|| "unknown".to_owned()),
            session_id: any.session_id,
            agent_id: any.agent_id,
            hook,
            tool: any.tool,
            tool_use_id: any.tool_use_id,
            cwd: any.cwd,
            truncated: any.truncated,
            usage: any
                .usage
                .and_then(|raw| serde_json::from_str(raw.get()).ok()),
            redactions: any.redactions,
            config_error: any.config_error,
            wait_until: any.wait_until,
            budget_check: any.budget_check,
            payload,
        });
    }
    let camel_hook = [&any.event_type, &any.hook_type]
        .into_iter()
        .flatten()
        .find(|name| !name.trim().is_empty())
        .cloned();
    if camel_hook.is_none() && any.data.is_none() && any.session_id_camel.is_none() {
        return Err(RejectReason(
            "neither a v1 envelope (\"v\") nor a camelCase one (\"eventType\", \"data\")"
                .to_owned(),
        ));
    }
    let data = any
        .data
        .unwrap_or_else(|| RawValue::from_string("{}".to_owned()).expect("{} is valid JSON"));
    let input: HookInput = serde_json::from_str(data.get()).unwrap_or_default();
    let ts = match &any.timestamp {
        Some(Value::Number(number)) => number
            .as_i64()
            .or_else(|| number.as_f64().map(|f| f as i64)),
        Some(Value::String(text)) => text
            .trim()
            .parse::<i64>()
            .ok()
            .or_else(|| parse_rfc3339_millis(text)),
        _ => None,
    }
    .ok_or_else(|| RejectReason("missing or unreadable \"timestamp\"".to_owned()))?;
    Ok(Envelope {
        v: ENVELOPE_VERSION,
        id,
        ts,
        machine: any.machine_id.unwrap_or_else(|| "unknown".to_owned()),
        session_id: any
            .session_id_camel
            .or(input.session_id.map(Cow::into_owned)),
        agent_id: input.agent_id.map(Cow::into_owned),
        hook: camel_hook
            .or(input.hook_event_name.map(Cow::into_owned))
            .filter(|hook| !hook.trim().is_empty())
            .unwrap_or_else(|| UNKNOWN_HOOK.to_owned()),
        tool: input.tool_name.map(Cow::into_owned),
        tool_use_id: input.tool_use_id.map(Cow::into_owned),
        cwd: any.working_directory.or(input.cwd.map(Cow::into_owned)),
        truncated: false,
        usage: None,
        redactions: None,
        config_error: false,
        wait_until: None,
        budget_check: false,
        payload: data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRE_TOOL_USE: &str = r#"{"session_id":"s1","cwd":"/p","hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"ls"},"tool_use_id":"toolu_1","future_field":[1,2]}"#;

    fn build(stdin: &[u8]) -> Envelope {
        Envelope::from_hook_stdin(stdin, "id-1".into(), 1_700_000_000_000, "host".into())
    }

    #[test]
    fn lifts_fields_and_keeps_payload_verbatim() {
        let envelope = build(PRE_TOOL_USE.as_bytes());
        assert_eq!(envelope.hook, "PreToolUse");
        assert_eq!(envelope.tool.as_deref(), Some("Bash"));
        assert_eq!(envelope.tool_use_id.as_deref(), Some("toolu_1"));
        assert_eq!(envelope.session_id.as_deref(), Some("s1"));
        assert_eq!(envelope.cwd.as_deref(), Some("/p"));
        assert_eq!(envelope.payload.get(), PRE_TOOL_USE);
        let back = parse_line(envelope.to_json().as_bytes()).unwrap();
        assert_eq!(back.payload.get(), PRE_TOOL_USE);
        assert_eq!(back.id, "id-1");
    }

    #[test]
    fn unknown_event_names_pass() {
        let envelope = build(br#"{"hook_event_name":"SomethingNew2027","x":1}"#);
        assert_eq!(envelope.hook, "SomethingNew2027");
        assert_eq!(HookEvent::from_name("SomethingNew2027"), HookEvent::Other);
        assert_eq!(
            HookEvent::from_name("SubagentStop"),
            HookEvent::SubagentStop
        );
    }

    #[test]
    fn invalid_input_becomes_an_invalid_event_with_the_raw_text() {
        for input in [
            &b"not json"[..],
            b"",
            b"\xff\xfe\x00binary",
            b"[1,2]",
            b"{\"a\":",
        ] {
            let envelope = build(input);
            assert_eq!(envelope.hook, INVALID_HOOK, "{input:?}");
            let payload: Value = serde_json::from_str(envelope.payload.get()).unwrap();
            assert_eq!(
                payload["_raw"],
                Value::String(String::from_utf8_lossy(input).into_owned())
            );
            assert!(parse_line(envelope.to_json().as_bytes()).is_ok());
        }
    }

    #[test]
    fn pretty_printed_payload_becomes_one_line() {
        let envelope = build(b"{\n  \"hook_event_name\": \"Stop\",\r\n  \"a\": \"x\"\n}\n");
        assert!(!envelope.to_json().contains('\n'));
        assert_eq!(envelope.hook, "Stop");
    }

    #[test]
    fn oversized_payload_is_shortened_and_marked_not_dropped() {
        let big = "x".repeat(20 * 1024 * 1024);
        let stdin = format!(
            r#"{{"hook_event_name":"PostToolUse","tool_name":"Read","tool_response":{{"content":"{big}"}},"small":"keep"}}"#
        );
        let envelope = build(stdin.as_bytes());
        assert!(envelope.truncated);
        assert!(envelope.payload.get().len() <= MAX_PAYLOAD_BYTES);
        let payload: Value = serde_json::from_str(envelope.payload.get()).unwrap();
        assert_eq!(payload["small"], "keep");
        assert!(payload["tool_response"]["content"]
            .as_str()
            .unwrap()
            .ends_with("shortened from 20971520 bytes]"));
        assert_eq!(envelope.tool.as_deref(), Some("Read"));
    }

    #[test]
    fn many_short_strings_are_held_to_the_limit_by_keeping_first_members() {
        let items: Vec<String> = (0..600_000).map(|index| format!("s{index}")).collect();
        let stdin =
            serde_json::json!({"hook_event_name": "Stop", "cwd": "/w", "items": items, "last": 1})
                .to_string();
        assert!(stdin.len() > 4 * MAX_PAYLOAD_BYTES);
        let envelope = build(stdin.as_bytes());
        assert!(envelope.truncated);
        assert!(envelope.payload.get().len() <= MAX_PAYLOAD_BYTES);
        assert!(envelope.to_json().len() <= MAX_LINE_BYTES);
        assert_eq!(
            (envelope.hook.as_str(), envelope.cwd.as_deref()),
            ("Stop", Some("/w"))
        );
        let payload: Value = serde_json::from_str(envelope.payload.get()).unwrap();
        let kept = payload["items"].as_array().unwrap();
        assert_eq!(kept[0], "s0");
        assert!(kept
            .last()
            .unwrap()
            .as_str()
            .unwrap()
            .contains("more items"));
    }

    #[test]
    fn cut_stdin_keeps_what_came_before_the_cut() {
        let stdin = format!(
            r#"{{"hook_event_name":"PostToolUse","tool_name":"Read","big":"{}"#,
            "é".repeat(1000)
        );
        // Cut inside a two-byte character, as a cut at a byte count may be.
        let kept = &stdin.as_bytes()[..stdin.len() - 1];
        let envelope = Envelope::from_hook_input(
            HookStdin::Cut {
                kept,
                total: 1 << 30,
            },
            "id".into(),
            1,
            "host".into(),
        );
        assert_eq!(envelope.hook, "PostToolUse");
        assert_eq!(envelope.tool.as_deref(), Some("Read"));
        assert!(envelope.truncated);
        // Cut text that is not JSON stays an Invalid event with its text.
        let text = Envelope::from_hook_input(
            HookStdin::Cut {
                kept: b"plain text",
                total: 1 << 30,
            },
            "id".into(),
            1,
            "host".into(),
        );
        assert_eq!(text.hook, INVALID_HOOK);
        assert!(text
            .payload
            .get()
            .contains("shortened from 1073741824 bytes"));
    }

    #[test]
    fn lifted_fields_are_bounded() {
        let long = "c".repeat(3 * MAX_LIFTED_CHARS);
        let envelope = build(format!(r#"{{"hook_event_name":"Stop","cwd":"{long}"}}"#).as_bytes());
        assert_eq!(envelope.cwd.unwrap().len(), MAX_LIFTED_CHARS);
    }

    #[test]
    fn oversized_garbage_is_shortened_too() {
        let garbage = vec![b'a'; 3 * 1024 * 1024];
        let envelope = build(&garbage);
        assert_eq!(envelope.hook, INVALID_HOOK);
        assert!(envelope.truncated);
        assert!(envelope.payload.get().len() <= MAX_PAYLOAD_BYTES);
    }

    #[test]
    fn camel_case_envelope_is_accepted() {
        let line = br#"{"id":"legacy-1","timestamp":"2024-11-22T21:52:25.678Z","sessionId":"s9","machineId":"old-box","workingDirectory":"/w","eventType":"PostToolUse","hookType":"PostToolUse","data":{"tool_name":"Edit","tool_use_id":"toolu_9","session_id":"s9"}}"#;
        let envelope = parse_line(line).unwrap();
        assert_eq!(envelope.id, "legacy-1");
        assert_eq!(envelope.ts, 1_732_312_345_678);
        assert_eq!(envelope.machine, "old-box");
        assert_eq!(envelope.session_id.as_deref(), Some("s9"));
        assert_eq!(envelope.cwd.as_deref(), Some("/w"));
        assert_eq!(envelope.hook, "PostToolUse");
        assert_eq!(envelope.tool.as_deref(), Some("Edit"));
        assert_eq!(envelope.tool_use_id.as_deref(), Some("toolu_9"));
        let numeric =
            br#"{"id":"legacy-2","timestamp":1732312345678,"eventType":"Stop","data":{}}"#;
        assert_eq!(parse_line(numeric).unwrap().ts, 1_732_312_345_678);
    }

    #[test]
    fn bad_lines_are_rejected_with_a_reason() {
        for (line, expected) in [
            (&b"\xff"[..], "not UTF-8"),
            (b"", "empty"),
            (b"[1]", "not a JSON object"),
            (b"{\"v\":1}", "missing \"id\""),
            (b"{\"v\":2,\"id\":\"a\"}", "unsupported envelope version 2"),
            (
                b"{\"v\":1,\"id\":\"a\",\"ts\":1,\"hook\":\"X\"}",
                "missing \"payload\"",
            ),
            (b"{\"id\":\"a\",\"other\":1}", "neither"),
            (b"{\"v\":1,\"id\":\"a\",", "not a valid envelope"),
        ] {
            let error = parse_line(line).unwrap_err();
            assert!(error.0.contains(expected), "{line:?}: {error}");
        }
    }

    #[test]
    fn an_empty_hook_name_is_stored_as_unknown_not_rejected() {
        for stdin in [
            &br#"{"hook_event_name":""}"#[..],
            br#"{"hook_event_name":"  "}"#,
        ] {
            assert_eq!(build(stdin).hook, UNKNOWN_HOOK);
        }
        // Lines an older emitter wrote, and camelCase ones, parse too.
        for line in [
            &br#"{"v":1,"id":"a","ts":1,"hook":"","payload":{}}"#[..],
            br#"{"v":1,"id":"a","ts":1,"payload":{}}"#,
            br#"{"id":"a","timestamp":1,"eventType":"","data":{"hook_event_name":""}}"#,
        ] {
            assert_eq!(parse_line(line).unwrap().hook, UNKNOWN_HOOK, "{line:?}");
        }
    }

    #[test]
    fn rfc3339_offsets() {
        assert_eq!(parse_rfc3339_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_millis("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(
            parse_rfc3339_millis("2000-02-29T00:00:00.5Z"),
            Some(951_782_400_500)
        );
        assert_eq!(parse_rfc3339_millis("nope"), None);
    }
}
