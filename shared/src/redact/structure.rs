//! The redactions that need the payload's structure: the `metadata` level
//! and the drop rules. Both parse the payload only when they will change it:
//! the metadata level always does (it keeps little), a drop rule only after a
//! borrowed probe of `tool_name` and the file path says it applies, so a
//! typical `Bash` or prompt event pays for one skim of its keys and nothing
//! else.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::settings::{glob_matches, DropRule};
use super::Report;

/// The replacement of a dropped path, and its rule name.
pub const DROP_RULE: &str = "drop-path";
/// The replacement of a field removed by the metadata level, and its rule name.
pub const METADATA_RULE: &str = "metadata";

/// Top-level payload keys the metadata level keeps: names, ids, times, paths
/// of the session, outcomes and usage. Everything else (the prompt, tool
/// inputs, messages, errors) is replaced and only its size is kept.
const METADATA_KEEPS: [&str; 25] = [
    "session_id",
    "transcript_path",
    "agent_transcript_path",
    "cwd",
    "old_cwd",
    "new_cwd",
    "hook_event_name",
    "permission_mode",
    "prompt_id",
    "agent_id",
    "agent_type",
    "effort",
    "tool_name",
    "tool_use_id",
    "duration_ms",
    "is_interrupt",
    "stop_hook_active",
    "source",
    "reason",
    "trigger",
    "notification_type",
    "model",
    "usage",
    "matcher",
    "_sizes",
];

fn marker(rule: &str) -> Value {
    Value::String(format!("[REDACTED:{rule}]"))
}

/// The payload with only its metadata; `None` when it already was (a payload
/// redacted twice is not counted twice).
pub fn metadata_only(payload: &str, report: &mut Report) -> Option<String> {
    let value: Value = serde_json::from_str(payload).ok()?;
    let Value::Object(fields) = value else {
        // Not an object (never the case for a hook payload): keep its size.
        let mut kept = Map::new();
        kept.insert("_raw".to_owned(), marker(METADATA_RULE));
        kept.insert(
            "_sizes".to_owned(),
            serde_json::json!({ "_raw": payload.len() }),
        );
        report.add(METADATA_RULE);
        return serde_json::to_string(&kept).ok();
    };
    let already = marker(METADATA_RULE);
    let mut sizes = match fields.get("_sizes") {
        Some(Value::Object(sizes)) => sizes.clone(),
        _ => Map::new(),
    };
    let mut kept = Map::new();
    let mut removed = 0;
    for (key, value) in fields {
        let done = value == already
            || value.get("_redacted").and_then(Value::as_str) == Some(METADATA_RULE);
        if METADATA_KEEPS.contains(&key.as_str()) || done {
            kept.insert(key, value);
            continue;
        }
        let size = serde_json::to_string(&value)
            .map(|text| text.len())
            .unwrap_or(0);
        sizes.insert(key.clone(), Value::from(size));
        removed += 1;
        // A tool's response keeps its outcome: the flags and counts
        // (`interrupted`, `isImage`, `exitCode`, `numLines`), not the text.
        let replacement = match (key.as_str(), value) {
            ("tool_response", Value::Object(response)) => {
                let mut outcome: Map<String, Value> = response
                    .into_iter()
                    .filter(|(_, field)| field.is_boolean() || field.is_number())
                    .collect();
                outcome.insert("_redacted".to_owned(), Value::from(METADATA_RULE));
                Value::Object(outcome)
            }
            _ => already.clone(),
        };
        kept.insert(key, replacement);
    }
    if removed == 0 {
        return None;
    }
    kept.insert("_sizes".to_owned(), Value::Object(sizes));
    report.add_many(METADATA_RULE, removed);
    serde_json::to_string(&kept).ok()
}

/// What a drop rule needs to know, read without building the payload.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(default, borrow)]
    tool_name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_input: Option<ProbeInput<'a>>,
}

#[derive(Deserialize)]
struct ProbeInput<'a> {
    #[serde(default, borrow)]
    file_path: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    notebook_path: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    path: Option<Cow<'a, str>>,
}

/// Whether any of `rules` may apply to a payload whose `tool_name` is
/// `tool` (`None`: it has none): a rule for every tool, or one whose tool
/// globs match. `false` means [`drop_paths`] would change nothing.
pub fn may_drop(rules: &[DropRule], tool: Option<&str>) -> bool {
    rules.iter().any(|rule| {
        rule.tools.is_empty()
            || tool.is_some_and(|tool| rule.tools.iter().any(|glob| glob_matches(glob, tool)))
    })
}

/// The payload with the paths of every applying drop rule replaced; `None`
/// when no rule applies (the common case, decided without building a value).
pub fn drop_paths(payload: &str, rules: &[DropRule], report: &mut Report) -> Option<String> {
    if no_rule_names_a_tool_in(payload, rules) {
        return None;
    }
    let probe: Probe = serde_json::from_str(payload).ok()?;
    let tool = probe.tool_name.as_deref();
    let file = probe.tool_input.as_ref().and_then(|input| {
        input
            .file_path
            .as_deref()
            .or(input.notebook_path.as_deref())
            .or(input.path.as_deref())
    });
    let base_name = file.map(|path| path.rsplit('/').next().unwrap_or(path));
    let applies = |rule: &DropRule| {
        let tool_ok = rule.tools.is_empty()
            || tool.is_some_and(|tool| rule.tools.iter().any(|glob| glob_matches(glob, tool)));
        let file_ok = rule.files.is_empty()
            || base_name.is_some_and(|name| rule.files.iter().any(|glob| glob_matches(glob, name)));
        tool_ok && file_ok
    };
    let applying: Vec<&DropRule> = rules.iter().filter(|rule| applies(rule)).collect();
    if applying.is_empty() {
        return None;
    }
    let mut value: Value = serde_json::from_str(payload).ok()?;
    let dropped = marker(DROP_RULE);
    let mut count = 0;
    for rule in applying {
        for path in &rule.paths {
            if let Some(slot) = path_mut(&mut value, path) {
                if *slot != dropped {
                    *slot = dropped.clone();
                    count += 1;
                }
            }
        }
    }
    if count == 0 {
        return None;
    }
    report.add_many(DROP_RULE, count);
    serde_json::to_string(&value).ok()
}

/// Whether no rule can apply to `payload`, told without parsing it (the
/// parse cost the collector's second redaction of a 1.4 KB tool event a
/// fifth of its time, issue 21): every rule names its tools literally, and
/// none of those names is a JSON string of the payload. Conservative: a
/// rule for any tool, a name with a wildcard or with a byte JSON could
/// escape other than as `\u`, or a `\u` escape anywhere in the payload
/// (which could spell a name) leaves the answer to the parse.
fn no_rule_names_a_tool_in(payload: &str, rules: &[DropRule]) -> bool {
    let plain_name = |tool: &Cow<'static, str>| {
        !tool.is_empty()
            && tool
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"_-.:".contains(&byte))
    };
    let literal = rules
        .iter()
        .all(|rule| !rule.tools.is_empty() && rule.tools.iter().all(plain_name));
    let bytes = payload.as_bytes();
    if !literal || memchr::memmem::find(bytes, b"\\u").is_some() {
        return false;
    }
    // One SIMD search per name (a tool's name is rare in other payloads,
    // so its few hits are checked for the quotes around them).
    !rules.iter().flat_map(|rule| &rule.tools).any(|tool| {
        memchr::memmem::find_iter(bytes, tool.as_bytes())
            .any(|at| at > 0 && bytes[at - 1] == b'"' && bytes.get(at + tool.len()) == Some(&b'"'))
    })
}

fn path_mut<'v>(value: &'v mut Value, path: &str) -> Option<&'v mut Value> {
    path.split('.')
        .try_fold(value, |current, key| current.as_object_mut()?.get_mut(key))
}

#[cfg(test)]
mod tests {
    use super::super::settings::default_drop_rules;
    use super::*;

    #[test]
    fn metadata_keeps_names_ids_sizes_and_outcomes() {
        let payload = r#"{"session_id":"s","hook_event_name":"PostToolUse","tool_name":"Bash","tool_input":{"command":"cat x"},"tool_response":{"stdout":"secret text","interrupted":false,"exitCode":0},"duration_ms":12}"#;
        let mut report = Report::default();
        let out = metadata_only(payload, &mut report).unwrap();
        let value: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["tool_name"], "Bash");
        assert_eq!(value["duration_ms"], 12);
        assert_eq!(value["tool_input"], "[REDACTED:metadata]");
        assert_eq!(value["tool_response"]["interrupted"], false);
        assert_eq!(value["tool_response"]["exitCode"], 0);
        assert!(value["tool_response"].get("stdout").is_none());
        assert_eq!(value["_sizes"]["tool_input"], 19);
        assert!(!out.contains("cat x") && !out.contains("secret text"));
        assert_eq!(report.count(METADATA_RULE), 2);
        // Again: nothing more to remove, nothing counted.
        let mut again = Report::default();
        assert!(metadata_only(&out, &mut again).is_none());
        assert!(again.is_empty());
    }

    #[test]
    fn drop_rules_apply_by_tool_and_file_name() {
        let rules = default_drop_rules();
        let env_read = r#"{"tool_name":"Read","tool_input":{"file_path":"/p/.env.local"},"tool_response":{"file":{"content":"A=1"}}}"#;
        let mut report = Report::default();
        let out = drop_paths(env_read, &rules, &mut report).unwrap();
        assert!(
            out.contains(r#""tool_response":"[REDACTED:drop-path]""#),
            "{out}"
        );
        assert_eq!(report.count(DROP_RULE), 1);
        let code_read = r#"{"tool_name":"Read","tool_input":{"file_path":"/p/main.rs"},"tool_response":"fn main"}"#;
        assert!(drop_paths(code_read, &rules, &mut Report::default()).is_none());
        let write =
            r#"{"tool_name":"Write","tool_input":{"file_path":"/k/id_ed25519","content":"KEY"}}"#;
        let out = drop_paths(write, &rules, &mut Report::default()).unwrap();
        assert!(!out.contains("KEY"), "{out}");
    }

    /// The check that skips the parse (issue 21) decides only when no rule
    /// can apply; a tool name spelled with an escape, a wildcard rule or a
    /// rule for every tool still drop what they did.
    #[test]
    fn the_drop_rules_skip_the_parse_only_when_no_rule_can_apply() {
        let rules = default_drop_rules();
        let bash = r#"{"tool_name":"Bash","tool_input":{"command":"cat .env"},"tool_response":{"stdout":"A=1\nRead"}}"#;
        assert!(no_rule_names_a_tool_in(bash, &rules));
        assert!(drop_paths(bash, &rules, &mut Report::default()).is_none());
        let escaped = r#"{"tool_name":"\u0052ead","tool_input":{"file_path":"/p/.env"},"tool_response":"A=1"}"#;
        assert!(!no_rule_names_a_tool_in(escaped, &rules));
        let out = drop_paths(escaped, &rules, &mut Report::default()).unwrap();
        assert!(!out.contains("A=1"), "{out}");
        let rule = |tools: &[&'static str]| DropRule {
            tools: tools.iter().map(|&tool| Cow::Borrowed(tool)).collect(),
            files: Vec::new(),
            paths: vec!["tool_response".into()],
        };
        for rules in [vec![rule(&["Ba*"])], vec![rule(&[])]] {
            assert!(!no_rule_names_a_tool_in(bash, &rules));
            let out = drop_paths(bash, &rules, &mut Report::default()).unwrap();
            assert!(!out.contains("A=1"), "{out}");
        }
        let read =
            r#"{"tool_name":"Read","tool_input":{"file_path":"/p/.env"},"tool_response":"A=1"}"#;
        assert!(!no_rule_names_a_tool_in(read, &rules));
        assert!(!no_rule_names_a_tool_in(
            read,
            &[rule(&["Bash"]), rule(&["Read"])]
        ));
        assert!(no_rule_names_a_tool_in(
            read,
            &[rule(&["Bash"]), rule(&["Rea"])]
        ));
    }
}
