//! Events as JSON text, written straight into the response body (no
//! `serde_json::Value` per event): the shape of an event in `/api/events`
//! and in the WebSocket's `events` messages (DESIGN §7).

use std::fmt::Write as _;

use crate::event::CommittedEvent;

fn push_json_string(out: &mut String, text: &str) {
    out.push_str(&serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned()));
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
