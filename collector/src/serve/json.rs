//! Events as JSON text, written straight into the response body (no
//! `serde_json::Value` per event): the shape of an event in `/api/events`
//! and in the WebSocket's `events` messages (DESIGN §7).

use std::fmt::Write as _;

use crate::event::CommittedEvent;

/// Appends `text` as a JSON string, escaped as serde_json escapes it.
pub(crate) fn push_json_string(out: &mut String, text: &str) {
    out.reserve(text.len() + 2);
    out.push('"');
    let mut start = 0;
    for (index, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[start..index]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escape);
        }
        start = index + 1;
    }
    out.push_str(&text[start..]);
    out.push('"');
}

/// Writes one JSON object's members straight into a response body, for
/// rows read by the hundred (a `serde_json::Value` per row spent more time
/// in allocation than the query did).
pub(crate) struct ObjectWriter<'a> {
    out: &'a mut String,
    /// Whether no member was written yet (no comma before the next).
    empty: bool,
}

impl<'a> ObjectWriter<'a> {
    /// Opens an object at the end of `out`.
    pub(crate) fn open(out: &'a mut String) -> ObjectWriter<'a> {
        out.push('{');
        ObjectWriter { out, empty: true }
    }

    fn key(&mut self, key: &str) -> &mut String {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
        self.out
    }

    pub(crate) fn str(&mut self, key: &str, value: &str) -> &mut Self {
        push_json_string(self.key(key), value);
        self
    }

    pub(crate) fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        push_optional(self.key(key), value);
        self
    }

    pub(crate) fn int(&mut self, key: &str, value: i64) -> &mut Self {
        let _ = write!(self.key(key), "{value}");
        self
    }

    pub(crate) fn opt_int(&mut self, key: &str, value: Option<i64>) -> &mut Self {
        match value {
            Some(value) => self.int(key, value),
            None => self.raw(key, "null"),
        }
    }

    /// A number, or `null` when absent or not finite (JSON has no NaN).
    pub(crate) fn opt_float(&mut self, key: &str, value: Option<f64>) -> &mut Self {
        match value.filter(|value| value.is_finite()) {
            Some(value) => {
                let _ = write!(self.key(key), "{value}");
                self
            }
            None => self.raw(key, "null"),
        }
    }

    pub(crate) fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.raw(key, if value { "true" } else { "false" })
    }

    /// A member whose value is JSON text already.
    pub(crate) fn raw(&mut self, key: &str, json: &str) -> &mut Self {
        self.key(key).push_str(json);
        self
    }

    /// A member whose value the caller writes into the returned body next
    /// (one JSON value, nothing else).
    pub(crate) fn nested(&mut self, key: &str) -> &mut String {
        self.key(key)
    }

    /// Closes the object.
    pub(crate) fn close(self) {
        self.out.push('}');
    }
}

fn push_optional(out: &mut String, text: Option<&str>) {
    match text {
        Some(text) => push_json_string(out, text),
        None => out.push_str("null"),
    }
}

/// Appends one event as a JSON object. The payload is embedded as JSON when
/// it is valid JSON, else as a string.
pub(crate) fn push_event_json(out: &mut String, event: &CommittedEvent) {
    let _ = write!(out, "{{\"seq\":{},\"id\":", event.seq);
    push_json_string(out, &event.id);
    let _ = write!(
        out,
        ",\"ts\":{},\"received_at\":{},\"machine\":",
        event.ts, event.received_at
    );
    push_json_string(out, &event.machine);
    out.push_str(",\"session_id\":");
    push_optional(out, event.session_id.as_deref());
    out.push_str(",\"agent_id\":");
    push_optional(out, event.agent_id.as_deref());
    out.push_str(",\"hook\":");
    push_json_string(out, &event.hook);
    out.push_str(",\"tool\":");
    push_optional(out, event.tool.as_deref());
    out.push_str(",\"tool_use_id\":");
    push_optional(out, event.tool_use_id.as_deref());
    out.push_str(",\"cwd\":");
    push_optional(out, event.cwd.as_deref());
    out.push_str(",\"source\":");
    push_json_string(out, event.source);
    out.push_str(",\"prompt_id\":");
    push_optional(out, event.prompt_id.as_deref());
    out.push_str(",\"permission_mode\":");
    push_optional(out, event.permission_mode.as_deref());
    if let Some(state) = event.state {
        out.push_str(",\"state\":");
        push_json_string(out, state);
    }
    if event.config_error {
        out.push_str(",\"config_error\":true");
    }
    out.push_str(",\"payload\":");
    if serde_json::from_str::<&serde_json::value::RawValue>(&event.payload).is_ok() {
        out.push_str(event.payload.trim());
    } else {
        push_json_string(out, &event.payload);
    }
    out.push('}');
}

/// Appends `events` as the elements of a JSON array (without the brackets),
/// each as [`push_event_json`] writes it.
pub(crate) fn push_event_list(out: &mut String, events: &[CommittedEvent]) {
    for (index, event) in events.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_event_json(out, event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for text in [
            "",
            "plain",
            "quote \" backslash \\ slash /",
            "lines\nand\rtabs\t, \u{8} \u{c} \u{0} \u{1f} \u{7f}",
            "unicode é 日本 🙂 and \u{2028}",
        ] {
            let mut ours = String::new();
            push_json_string(&mut ours, text);
            assert_eq!(ours, serde_json::to_string(text).unwrap());
        }
    }

    #[test]
    fn an_object_writer_writes_valid_json_with_null_for_absent_and_non_finite_numbers() {
        let mut out = String::new();
        let mut object = ObjectWriter::open(&mut out);
        object
            .str("a", "x\"y")
            .opt_str("b", None)
            .int("c", -3)
            .opt_int("d", None)
            .opt_float("e", Some(0.25))
            .opt_float("f", Some(f64::NAN))
            .bool("g", true);
        object.nested("h").push_str("[1]");
        object.close();
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"a": "x\"y", "b": null, "c": -3, "d": null, "e": 0.25, "f": null, "g": true, "h": [1]})
        );
    }
}
