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
//!
//! Layout: this file holds the types and the emitter's side; `shorten.rs`
//! the shortening of oversized payloads (it knows nothing of envelopes);
//! `parse.rs` the collector's side, [`parse_line`]. Times come from
//! [`crate::time`].

mod parse;
mod shorten;

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

pub use parse::{parse_line, RejectReason};
use shorten::{bounded_value, first_chars, shortened_marker, Limits};
pub use shorten::{fit_payload, shorten_strings, MORE_MEMBERS_KEY, SHORTENED_MARKER_START};

use crate::transcript::TranscriptUsage;

use crate::time::now_millis;

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

/// Defines [`HookEvent`] from one list of its variants, so that the enum,
/// [`HookEvent::ALL`], [`HookEvent::name`] and [`HookEvent::from_name`]
/// cannot disagree: each name is the variant's own identifier
/// (`stringify!`), which is how Claude Code spells it and how serde reads it.
macro_rules! hook_events {
    ($(#[$enum_meta:meta])* pub enum HookEvent { $($(#[$meta:meta])* $variant:ident,)* }) => {
        $(#[$enum_meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
        pub enum HookEvent {
            $($(#[$meta])* $variant,)*
            /// Any event name this version does not know.
            #[serde(other)]
            Other,
        }

        impl HookEvent {
            /// Every event this version knows, in the order of DESIGN §2's
            /// table.
            pub const ALL: &'static [HookEvent] = &[$(HookEvent::$variant),*];

            /// The event's name as Claude Code spells it.
            pub fn name(self) -> &'static str {
                match self {
                    $(HookEvent::$variant => stringify!($variant),)*
                    HookEvent::Other => "Other",
                }
            }

            /// Parses an event name; unknown names give [`HookEvent::Other`].
            /// A match on the string, with no allocation and no serde, so the
            /// emitter's hot path reads it once per event.
            pub fn from_name(name: &str) -> HookEvent {
                match name {
                    $(stringify!($variant) => HookEvent::$variant,)*
                    _ => HookEvent::Other,
                }
            }
        }
    };
}

hook_events! {
    /// Claude Code's hook events, as named in `hook_event_name`: the 33 of
    /// Claude Code 2.1.330 (DESIGN §2 has the table of when each fires and why
    /// it is or is not registered).
    ///
    /// `#[serde(other)]` makes a future event name parse as [`HookEvent::Other`]
    /// instead of failing, so new Claude Code versions never break a hook.
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
    }
}

impl HookEvent {
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
    /// The fingerprint of the redaction `payload` went through
    /// (`crate::redact::Fingerprint`: this version's rules with these
    /// settings): a collector whose own is the same need not redact it
    /// again. Absent from envelopes no redaction ran on; a value that is
    /// not a string is read as absent, never a rejected envelope.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_text"
    )]
    pub redacted_with: Option<String>,
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

/// A string, or `None` for any other JSON value: an optional field that
/// only says what the sender did, so no value of it rejects an envelope.
pub(super) fn lenient_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Lenient {
        Text(String),
        Other(serde::de::IgnoredAny),
    }
    Ok(match Lenient::deserialize(deserializer)? {
        Lenient::Text(text) => Some(text),
        Lenient::Other(_) => None,
    })
}

/// A fresh event id: a UUID v7, so ids sort by creation time.
pub fn new_event_id() -> String {
    crate::event_id::new_v7(now_millis().max(0) as u64)
}

/// How much a bounded parse of an oversized payload keeps of one string (the
/// payload's limit) and of one key (a lifted field's).
const PARSE_LIMITS: Limits = Limits {
    string_bytes: MAX_PAYLOAD_BYTES,
    key_chars: MAX_LIFTED_CHARS,
};

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
            redacted_with: None,
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
        } else if let Some((mut value, shortened)) = trimmed
            .and_then(|json| bounded_value(json.as_bytes(), cut_from.is_some(), PARSE_LIMITS))
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
        let bounded =
            |text: Option<Cow<str>>| text.map(|text| first_chars(&text, MAX_LIFTED_CHARS));
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

    /// The hook event this envelope holds, [`HookEvent::Other`] for a name
    /// this version does not know (and for [`INVALID_HOOK`] and
    /// [`UNKNOWN_HOOK`]); `hook` keeps the name as received.
    pub fn event(&self) -> HookEvent {
        HookEvent::from_name(&self.hook)
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
    fn every_known_name_parses_back_to_its_event() {
        for &event in HookEvent::ALL {
            assert_eq!(HookEvent::from_name(event.name()), event);
        }
        for name in ["", "Other", "stop", INVALID_HOOK, UNKNOWN_HOOK] {
            assert_eq!(HookEvent::from_name(name), HookEvent::Other, "{name:?}");
        }
        assert_eq!(
            build(PRE_TOOL_USE.as_bytes()).event(),
            HookEvent::PreToolUse
        );
        assert_eq!(build(b"not json").event(), HookEvent::Other);
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
}
