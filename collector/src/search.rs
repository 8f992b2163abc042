//! What the full-text index (`events_fts`, DESIGN §6) holds for an event,
//! and how a `q=` search becomes an FTS5 query. Pure functions: the source
//! threads extract the text (so the writer only inserts it), the migration
//! backfills old rows with the same function, and the readers build queries.
//!
//! The index holds the text people search for: prompts, commands, file
//! paths, patterns and URLs of tool inputs, tool outputs and errors,
//! notification and assistant messages. Not JSON keys or ids. Each event's
//! text is capped at [`MAX_SEARCH_TEXT`] bytes (its tool output at
//! [`MAX_OUTPUT_TEXT`]) and holds each distinct line once, so a huge or
//! repetitive tool output costs the writer no more than a small one.

use hooktrail_shared::envelope::{HookEvent, INVALID_HOOK};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// The most bytes of text indexed per event. Trigram indexing costs the
/// writer tens of nanoseconds per byte, so this bounds what one event costs.
pub(crate) const MAX_SEARCH_TEXT: usize = 2048;

/// The most bytes of a tool's output indexed per event: outputs are the
/// bulk of the text and the least searched part of it.
pub(crate) const MAX_OUTPUT_TEXT: usize = 1024;

/// The shortest search the trigram index can answer; shorter ones scan.
pub(crate) const MIN_INDEXED_QUERY_CHARS: usize = 3;

/// The payload fields that hold searchable text, borrowed as raw JSON:
/// everything else is skipped without being built, and a huge field is
/// never turned into a `Value` (see [`push_raw`]).
#[derive(Deserialize, Default)]
struct Searchable<'a> {
    #[serde(default, borrow)]
    prompt: Option<&'a RawValue>,
    #[serde(default, borrow)]
    tool_input: Option<&'a RawValue>,
    #[serde(default, borrow)]
    tool_response: Option<&'a RawValue>,
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
    #[serde(default, borrow)]
    message: Option<&'a RawValue>,
    #[serde(default, borrow)]
    last_assistant_message: Option<&'a RawValue>,
    #[serde(default, borrow)]
    compact_summary: Option<&'a RawValue>,
    #[serde(default, borrow, rename = "_raw")]
    raw: Option<&'a RawValue>,
}

/// Fields up to this size are parsed whole; larger ones are read as string
/// tokens from their first [`HUGE_FIELD_WINDOW`] bytes, so a 700 KB message
/// costs no 700 KB copy on the source thread (which, across threads, kept
/// peak memory high under a flood of large events).
const WHOLE_FIELD_BYTES: usize = 64 * 1024;

/// How much of a huge field is looked at: far more than the text kept.
const HUGE_FIELD_WINDOW: usize = 16 * 1024;

/// Appends the text of one raw JSON field to `out`, up to `limit` bytes.
fn push_raw(out: &mut String, raw: &RawValue, limit: usize) {
    let text = raw.get();
    if text.len() <= WHOLE_FIELD_BYTES {
        if let Ok(value) = serde_json::from_str::<Value>(text) {
            push_strings(out, &value, limit);
        }
        return;
    }
    // The string values among the window's tokens (a string followed by
    // `:` is a key, left out); one cut by the window is closed before it is
    // read, dropping a trailing incomplete escape.
    let bytes = text.as_bytes();
    let end = HUGE_FIELD_WINDOW.min(bytes.len());
    let mut at = 0;
    while at < end && out.len() < limit {
        let Some(open) = bytes[at..end].iter().position(|&byte| byte == b'"') else {
            break;
        };
        let start = at + open;
        let mut close = start + 1;
        while close < bytes.len() && bytes[close] != b'"' {
            close += if bytes[close] == b'\\' { 2 } else { 1 };
        }
        let token = if close < end {
            text.get(start..=close).map(str::to_owned)
        } else {
            let mut cut = end.min(bytes.len());
            if let Some(backslash) = bytes[start..cut].iter().rposition(|&byte| byte == b'\\') {
                if start + backslash + 6 > cut {
                    cut = start + backslash;
                }
            }
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            Some(format!("{}\"", &text[start..cut.max(start + 1)]))
        };
        at = close + 1;
        let is_key = bytes
            .get(at..)
            .and_then(|rest| rest.iter().find(|byte| !byte.is_ascii_whitespace()))
            == Some(&b':');
        if is_key {
            continue;
        }
        if let Some(string) = token.and_then(|token| serde_json::from_str::<String>(&token).ok()) {
            push_strings(out, &Value::String(string), limit);
        }
        if close >= end {
            break;
        }
    }
}

/// Appends the string leaves of `value` to `out`, one line at a time,
/// until `out` holds `limit` bytes. A line already in `out` is left out:
/// repeated lines (a build log, a grep of one pattern) add nothing to a
/// substring search and would cost the writer as much as new text.
fn push_strings(out: &mut String, value: &Value, limit: usize) {
    if out.len() >= limit {
        return;
    }
    match value {
        Value::String(text) => {
            for line in text.lines() {
                let line = line.trim();
                if line.is_empty() || out.len() >= limit || out.contains(line) {
                    continue;
                }
                if !out.is_empty() {
                    out.push('\n');
                }
                let room = limit.saturating_sub(out.len());
                let mut cut = line.len().min(room);
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                out.push_str(&line[..cut]);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| push_strings(out, item, limit)),
        Value::Object(map) => map.values().for_each(|item| push_strings(out, item, limit)),
        _ => {}
    }
}

/// The text the search index holds for one event (`None`: nothing to
/// index). `PostToolUse` indexes its output, not its input again: the
/// `PreToolUse` of the same call holds the input.
pub fn searchable_text(hook: &str, payload: &str) -> Option<String> {
    text_of(HookEvent::from_name(hook), hook, payload)
}

/// [`searchable_text`] for an event whose [`HookEvent`] is known already
/// (`name` is the stored name, for `Invalid`, which is no hook event).
pub(crate) fn text_of(hook: HookEvent, name: &str, payload: &str) -> Option<String> {
    let wanted = matches!(
        hook,
        HookEvent::UserPromptSubmit
            | HookEvent::UserPromptExpansion
            | HookEvent::PreToolUse
            | HookEvent::PostToolUse
            | HookEvent::PostToolUseFailure
            | HookEvent::PermissionRequest
            | HookEvent::PermissionDenied
            | HookEvent::Notification
            | HookEvent::Stop
            | HookEvent::StopFailure
            | HookEvent::SubagentStop
            | HookEvent::PostCompact
    ) || name == INVALID_HOOK;
    if !wanted {
        return None;
    }
    let facts: Searchable = serde_json::from_str(payload).unwrap_or_default();
    let mut out = String::new();
    let fields = [
        &facts.prompt,
        if hook == HookEvent::PostToolUse {
            &None
        } else {
            &facts.tool_input
        },
        &facts.error,
        &facts.message,
        &facts.last_assistant_message,
        &facts.compact_summary,
        &facts.raw,
    ];
    for value in fields.into_iter().flatten() {
        push_raw(&mut out, value, MAX_SEARCH_TEXT);
    }
    if let Some(output) = facts.tool_response {
        let limit = (out.len() + MAX_OUTPUT_TEXT).min(MAX_SEARCH_TEXT);
        push_raw(&mut out, output, limit);
    }
    (!out.is_empty()).then_some(out)
}

/// The FTS5 query for a `q=` search: the whole text as one quoted phrase,
/// which the trigram tokenizer matches as a case-insensitive substring.
/// `None` when the text is too short for trigrams (the caller scans).
pub(crate) fn fts_phrase(text: &str) -> Option<String> {
    if text.chars().count() < MIN_INDEXED_QUERY_CHARS {
        return None;
    }
    Some(format!("\"{}\"", text.replace('"', "\"\"")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_inputs_outputs_and_prompts_are_indexed_and_keys_are_not() {
        let pre =
            r#"{"session_id":"s","tool_input":{"command":"cargo test -p x","description":"Run"}}"#;
        let text = searchable_text("PreToolUse", pre).unwrap();
        assert!(text.contains("cargo test -p x") && text.contains("Run"));
        assert!(!text.contains("session_id"));
        let post = r#"{"tool_input":{"command":"ls"},"tool_response":{"stdout":"a.rs\nb.rs","interrupted":false}}"#;
        let text = searchable_text("PostToolUse", post).unwrap();
        assert_eq!(text, "a.rs\nb.rs");
        assert_eq!(
            searchable_text("UserPromptSubmit", r#"{"prompt":"fix the build"}"#).as_deref(),
            Some("fix the build")
        );
        assert_eq!(searchable_text("SessionStart", r#"{"source":"x"}"#), None);
        assert_eq!(searchable_text("PreToolUse", "not json"), None);
    }

    #[test]
    fn a_huge_output_is_capped_on_a_character_boundary() {
        let payload = format!(
            r#"{{"tool_response":{{"stdout":"{}"}}}}"#,
            "é".repeat(10_000)
        );
        let text = searchable_text("PostToolUse", &payload).unwrap();
        assert!(text.len() <= MAX_OUTPUT_TEXT && text.len() > MAX_OUTPUT_TEXT - 4);
        let prompt = format!(r#"{{"prompt":"{}"}}"#, "ab".repeat(5_000));
        let text = searchable_text("UserPromptSubmit", &prompt).unwrap();
        assert_eq!(text.len(), MAX_SEARCH_TEXT);
    }

    #[test]
    fn a_huge_field_is_read_from_its_start_without_being_built_whole() {
        let message = format!("first words {}", "m".repeat(700_000));
        let payload = format!(r#"{{"message":"{message}"}}"#);
        let text = searchable_text("Notification", &payload).unwrap();
        assert!(text.starts_with("first words mmm"), "{}", &text[..40]);
        assert_eq!(text.len(), MAX_SEARCH_TEXT);
        let output = format!(
            r#"{{"tool_response":{{"stdout":"{}","stderr":"oops"}}}}"#,
            "line\\n".repeat(50_000)
        );
        let text = searchable_text("PostToolUse", &output).unwrap();
        assert_eq!(text, "line");
    }

    #[test]
    fn repeated_lines_are_indexed_once() {
        let payload = format!(
            r#"{{"tool_response":{{"stdout":"{}tail line"}}}}"#,
            r"src/main.rs:12:fn main() {\n".repeat(20)
        );
        assert_eq!(
            searchable_text("PostToolUse", &payload).as_deref(),
            Some("src/main.rs:12:fn main() {\ntail line")
        );
    }

    #[test]
    fn a_search_is_one_quoted_phrase_and_short_ones_scan() {
        assert_eq!(fts_phrase("ab"), None);
        assert_eq!(
            fts_phrase(r#"say "hi" OR x"#).as_deref(),
            Some(r#""say ""hi"" OR x""#)
        );
    }
}
