//! `/api/sessions/{id}/timeline`: the session's timeline, built by
//! [`crate::timeline`] from what [`crate::store::read::timeline`] reads,
//! written as compact rows (DESIGN §7).

use std::fmt::Write as _;

use hooktrail_shared::time::now_millis;
use rusqlite::Connection;
use serde_json::{json, Value};

use crate::query;
use crate::serve::gate::ApiResponse;
use crate::serve::json::push_json_string;
use crate::store::read::otel;
use crate::store::read::timeline::{self as read, SessionBounds};
use crate::store::spend::refused_events;
use crate::timeline::{Lane, Timeline, TimelineBuilder};

/// `/api/sessions/{id}/timeline`: one lane for the main agent and one per
/// subagent; tool calls, permission waits, compactions and (from Claude
/// Code's OpenTelemetry) API requests as spans, and prompts, stops,
/// failures and API errors as markers (see [`crate::timeline`]).
pub(super) fn timeline_route(
    connection: &mut Connection,
    session_id: &str,
    query_string: &str,
) -> Result<ApiResponse, rusqlite::Error> {
    if let Err(error) = query::parse_pairs(query_string, &[]) {
        return Ok(ApiResponse::bad_parameter(&error));
    }
    let now = now_millis();
    let transaction = connection.transaction()?;
    let Some(bounds) = read::session_bounds(&transaction, session_id)? else {
        return Ok(ApiResponse::error(404, "no such session"));
    };
    let mut builder = TimelineBuilder::new(read::agent_lanes(&transaction, session_id)?);
    read::for_each_event(&transaction, session_id, |event| builder.push(event))?;
    builder.mark_budget_refusals(refused_events(&transaction, session_id)?);
    builder.add_model_requests(otel::model_spans(&transaction, session_id)?);
    builder.mark_api_errors(otel::api_errors(&transaction, session_id)?);
    transaction.finish()?;
    let timeline = builder.finish();
    Ok(ApiResponse::json_text(
        200,
        timeline_json(session_id, &timeline, bounds, now),
    ))
}

fn lane_json(lane: &Lane) -> Value {
    match lane {
        Lane::Main => json!({"agent_id": Value::Null, "label": "main"}),
        Lane::Agent(agent) => json!({
            "agent_id": agent.agent_id,
            "label": agent.label(),
            "started_ts": agent.started_ts,
            "stopped_ts": agent.stopped_ts,
            "state": agent.state,
        }),
        Lane::Seen(agent_id) => json!({"agent_id": agent_id, "label": "agent"}),
    }
}

fn push_optional_string(body: &mut String, text: Option<&str>) {
    match text {
        Some(text) => push_json_string(body, text),
        None => body.push_str("null"),
    }
}

/// The answer: spans as `[lane, kind, label, start, end, outcome, seq,
/// end_seq]` and markers as `[lane, hook, ts, seq, text]`; an open span's
/// end is null (it runs to the axis' end). Written as text: a `Value` per
/// span cost more than the query for 5,000 events.
fn timeline_json(session_id: &str, timeline: &Timeline, bounds: SessionBounds, now: i64) -> String {
    let end = timeline.axis_end(bounds.last_ts, bounds.ended_ts, now);
    let null_or = |value: Option<i64>| value.map_or("null".to_owned(), |value| value.to_string());
    let mut body =
        String::with_capacity(timeline.spans.len() * 64 + timeline.markers.len() * 96 + 512);
    body.push_str("{\"session_id\":");
    push_json_string(&mut body, session_id);
    let _ = write!(
        body,
        ",\"start\":{},\"end\":{end},\"lanes\":",
        bounds.first_ts
    );
    body.push_str(&Value::Array(timeline.lanes.iter().map(lane_json).collect()).to_string());
    body.push_str(
        ",\"span_columns\":[\"lane\",\"kind\",\"label\",\"start\",\"end\",\"outcome\",\"seq\",\"end_seq\"],\"spans\":[",
    );
    for (index, span) in timeline.spans.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        let _ = write!(body, "[{},\"{}\",", span.lane, span.kind.as_str());
        push_optional_string(&mut body, span.label.as_deref());
        let _ = write!(
            body,
            ",{},{},\"{}\",{},{}]",
            span.start,
            null_or(span.end),
            span.outcome.as_str(),
            span.seq,
            null_or(span.end_seq)
        );
    }
    body.push_str("],\"marker_columns\":[\"lane\",\"hook\",\"ts\",\"seq\",\"text\"],\"markers\":[");
    for (index, marker) in timeline.markers.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        let _ = write!(body, "[{},", marker.lane);
        push_json_string(&mut body, marker.kind.name());
        let _ = write!(body, ",{},{},", marker.ts, marker.seq);
        push_optional_string(&mut body, marker.text.as_deref());
        body.push(']');
    }
    body.push_str("]}");
    body
}
