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

use serde::Deserialize;
use serde_json::Value;

/// The most bytes of text indexed per event. Trigram indexing costs the
/// writer tens of nanoseconds per byte, so this bounds what one event costs.
pub(crate) const MAX_SEARCH_TEXT: usize = 2048;

/// The most bytes of a tool's output indexed per event: outputs are the
/// bulk of the text and the least searched part of it.
pub(crate) const MAX_OUTPUT_TEXT: usize = 1024;

/// The shortest search the trigram index can answer; shorter ones scan.
pub(crate) const MIN_INDEXED_QUERY_CHARS: usize = 3;

/// The payload fields that hold searchable text; everything else is skipped
/// without being built.
#[derive(Deserialize, Default)]
struct Searchable {
    #[serde(default)]
    prompt: Option<Value>,
    #[serde(default)]
    tool_input: Option<Value>,
    #[serde(default)]
    tool_response: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    message: Option<Value>,
    #[serde(default)]
    last_assistant_message: Option<Value>,
    #[serde(default)]
    compact_summary: Option<Value>,
    #[serde(default, rename = "_raw")]
    raw: Option<Value>,
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
    let wanted = matches!(
        hook,
        "UserPromptSubmit"
            | "UserPromptExpansion"
            | "PreToolUse"
            | "PostToolUse"
            | "PostToolUseFailure"
            | "PermissionRequest"
            | "PermissionDenied"
            | "Notification"
            | "Stop"
            | "StopFailure"
            | "SubagentStop"
            | "PostCompact"
            | "Invalid"
    );
    if !wanted {
        return None;
    }
    let facts: Searchable = serde_json::from_str(payload).unwrap_or_default();
    let mut out = String::new();
    let fields = [
        &facts.prompt,
        if hook == "PostToolUse" {
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
        push_strings(&mut out, value, MAX_SEARCH_TEXT);
    }
    if let Some(output) = &facts.tool_response {
        let limit = (out.len() + MAX_OUTPUT_TEXT).min(MAX_SEARCH_TEXT);
        push_strings(&mut out, output, limit);
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
