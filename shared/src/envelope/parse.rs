//! Reading a received line back into an [`Envelope`] ([`parse_line`]): the
//! v1 form this crate writes, and the older camelCase form (`eventType`,
//! `timestamp`, `data`) of emitters before it, so that their spool files and
//! streams still load.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{Envelope, HookInput, ENVELOPE_VERSION, MAX_ID_CHARS, UNKNOWN_HOOK};
use crate::time::parse_rfc3339_millis;

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
    #[serde(default, deserialize_with = "super::lenient_text")]
    redacted_with: Option<String>,
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
    match any.v {
        Some(version) => from_v1(any, version, id),
        None => from_camel_case(any, id),
    }
}

/// A line with `"v"`: the envelope this crate writes.
fn from_v1(any: AnyEnvelope, version: u32, id: String) -> Result<Envelope, RejectReason> {
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
    Ok(Envelope {
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
        redacted_with: any.redacted_with,
        config_error: any.config_error,
        wait_until: any.wait_until,
        budget_check: any.budget_check,
        payload,
    })
}

/// A line without `"v"`: the older camelCase envelope, whose hook JSON is
/// in `data` and whose `timestamp` is milliseconds or RFC 3339 text.
fn from_camel_case(any: AnyEnvelope, id: String) -> Result<Envelope, RejectReason> {
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
        redacted_with: None,
        config_error: false,
        wait_until: None,
        budget_check: false,
        payload: data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// `redacted_with` only says what the sender did: any value that is not
    /// a string reads as absent (so the collector redacts), never as a
    /// rejected event.
    #[test]
    fn redacted_with_of_any_shape_never_rejects_the_envelope() {
        let line = |value: &str| {
            format!(
                r#"{{"v":1,"id":"a","ts":1,"hook":"Stop","redacted_with":{value},"payload":{{}}}}"#
            )
        };
        let read = |value: &str| parse_line(line(value).as_bytes()).unwrap().redacted_with;
        assert_eq!(
            read(r#""00ff00ff00ff00ff""#).as_deref(),
            Some("00ff00ff00ff00ff")
        );
        for other in ["5", "null", "[1,2]", r#"{"a":"b"}"#, "true"] {
            assert_eq!(read(other), None, "{other}");
        }
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
}
