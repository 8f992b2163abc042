//! What the full-text index (`events_fts`, DESIGN §6) holds for an event,
//! and how a `q=` search becomes an FTS5 query. Pure functions: the source
//! threads extract the text (so the writer only inserts it), the migration
//! backfills old rows with the same function, and the readers build queries.
//!
//! The index holds the text people search for: prompts, commands, file
//! paths, patterns and URLs of tool inputs, tool outputs and errors,
//! notification and assistant messages. Not JSON keys or ids. Each event's
//! text is capped at [`MAX_SEARCH_TEXT`] bytes, so a huge tool output costs
//! the writer no more than a small one.

use serde::Deserialize;
use serde_json::Value;

/// The most bytes of text indexed per event.
pub(crate) const MAX_SEARCH_TEXT: usize = 4096;

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

/// Appends the string leaves of `value` to `out` (space-separated) until
/// `out` holds [`MAX_SEARCH_TEXT`] bytes.
fn push_strings(out: &mut String, value: &Value) {
    if out.len() >= MAX_SEARCH_TEXT {
        return;
    }
    match value {
        Value::String(text) => {
            if !out.is_empty() {
                out.push('\n');
            }
            let room = MAX_SEARCH_TEXT - out.len();
            let mut cut = text.len().min(room);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            out.push_str(&text[..cut]);
        }
        Value::Array(items) => items.iter().for_each(|item| push_strings(out, item)),
        Value::Object(map) => map.values().for_each(|item| push_strings(out, item)),
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
        &facts.tool_response,
        &facts.raw,
    ];
    for value in fields.into_iter().flatten() {
        push_strings(&mut out, value);
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
        assert!(text.len() <= MAX_SEARCH_TEXT && text.len() > MAX_SEARCH_TEXT - 4);
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
