//! A session's timeline (`/api/sessions/{id}/timeline`, DESIGN §7), built
//! from its events with no SQLite: one lane for the main agent and one per
//! subagent; tool calls, permission waits and compactions as spans;
//! prompts, stops, failures, subagent and session starts and ends as
//! markers. `crate::store::read::timeline` reads what it is built from and
//! `crate::serve::api` writes it as JSON.
//!
//! Invariants: events are pushed in `seq` order (a span's end follows its
//! start); every span and marker names a lane that exists; a span's `end`
//! is never before its `start`.
//!
//! A new kind of span (a model request from OpenTelemetry, say) is a new
//! [`Happening`] and [`SpanKind`]: [`TimelineBuilder::push`] opens and
//! closes it, and nothing else changes.

use std::collections::HashMap;

use hooktrail_shared::envelope::HookEvent;

/// The most characters of a prompt a timeline marker carries.
pub(crate) const MARKER_TEXT_CHARS: usize = 120;

/// A subagent of the session, as the `agents` table knows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct AgentLane {
    pub(crate) agent_id: String,
    pub(crate) agent_type: Option<String>,
    pub(crate) started_ts: Option<i64>,
    pub(crate) stopped_ts: Option<i64>,
    pub(crate) state: Option<String>,
}

impl AgentLane {
    /// What the lane is called: the agent's type, else `agent`.
    pub(crate) fn label(&self) -> &str {
        match self.agent_type.as_deref() {
            Some(kind) if !kind.is_empty() => kind,
            _ => "agent",
        }
    }
}

/// One lane of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lane {
    /// The main agent: always lane 0.
    Main,
    /// A subagent the `agents` table knows.
    Agent(AgentLane),
    /// An agent id seen only on events (its start was never reported).
    Seen(String),
}

/// One event of the session, in the terms the timeline needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TimelineEvent {
    pub(crate) seq: i64,
    pub(crate) ts: i64,
    /// `None`: the main agent.
    pub(crate) agent_id: Option<String>,
    pub(crate) what: Happening,
}

/// What an event was.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Happening {
    /// A hook fired.
    Hook(HookFacts),
}

/// What the timeline uses of a hook event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HookFacts {
    pub(crate) hook: HookEvent,
    pub(crate) tool: Option<String>,
    pub(crate) tool_use_id: Option<String>,
    /// The prompt of a `UserPromptSubmit` or the error of a failure
    /// (already cut to a few hundred characters).
    pub(crate) text: Option<String>,
}

/// What a span shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpanKind {
    /// A tool call: `PreToolUse` until its `PostToolUse(Failure)` or
    /// `PermissionDenied`.
    Tool,
    /// A `PermissionRequest` until that agent's next event other than a
    /// `Notification`.
    Permission,
    /// `PreCompact` until `PostCompact`.
    Compact,
    /// An API request, from Claude Code's OpenTelemetry `api_request`
    /// (issue 22): model time.
    Model,
}

impl SpanKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SpanKind::Tool => "tool",
            SpanKind::Permission => "permission",
            SpanKind::Compact => "compact",
            SpanKind::Model => "model",
        }
    }
}

/// How a span ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Still open, or its end never came.
    Pending,
    /// A tool call that succeeded.
    Ok,
    /// A tool call that failed or was denied by the person.
    Failed,
    /// A tool call a budget refused (issue 19).
    Denied,
    /// A wait or compaction that ended.
    Done,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Denied => "denied",
            Outcome::Done => "done",
        }
    }
}

/// An API request Claude Code reported (OpenTelemetry `api_request`): it
/// ended at `end` and took `end - start`, in the lane of the agent whose
/// transcript row it joined (the main agent when none).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ModelRequest {
    pub(crate) agent_id: Option<String>,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) model: Option<String>,
}

/// An API error Claude Code reported (OpenTelemetry `api_error`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiErrorMark {
    pub(crate) agent_id: Option<String>,
    pub(crate) ts: i64,
    /// Status, error and attempt (`529 Overloaded, attempt 2`).
    pub(crate) text: String,
}

/// A span of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Span {
    /// Index into the lanes.
    pub(crate) lane: usize,
    pub(crate) kind: SpanKind,
    /// The tool's name, or what the wait was for.
    pub(crate) label: Option<String>,
    /// When it started (ms).
    pub(crate) start: i64,
    /// When it ended; `None` while open.
    pub(crate) end: Option<i64>,
    pub(crate) outcome: Outcome,
    /// The event that opened it, for its payload.
    pub(crate) seq: i64,
    /// The event that closed it.
    pub(crate) end_seq: Option<i64>,
}

impl Span {
    fn close(&mut self, ts: i64, seq: i64, outcome: Outcome) {
        self.end = Some(ts.max(self.start));
        self.end_seq = Some(seq);
        self.outcome = outcome;
    }
}

/// What a marker marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MarkerKind {
    /// A prompt, stop, failure, subagent or session start or end.
    Hook(HookEvent),
    /// A call or prompt a budget refused; the text is the reason.
    BudgetRefused,
    /// An API error Claude Code reported (OpenTelemetry `api_error`); the
    /// text is the status, the error and the attempt.
    ApiError,
}

impl MarkerKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            MarkerKind::Hook(hook) => hook.name(),
            MarkerKind::BudgetRefused => "BudgetRefused",
            MarkerKind::ApiError => "ApiError",
        }
    }
}

/// A point on the timeline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Marker {
    pub(crate) lane: usize,
    pub(crate) kind: MarkerKind,
    pub(crate) ts: i64,
    pub(crate) seq: i64,
    pub(crate) text: Option<String>,
}

/// A built timeline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Timeline {
    pub(crate) lanes: Vec<Lane>,
    pub(crate) spans: Vec<Span>,
    pub(crate) markers: Vec<Marker>,
}

impl Timeline {
    /// Where the axis ends: at the session's end or last event; a span
    /// still open runs on to now.
    pub(crate) fn axis_end(&self, last_ts: i64, ended_ts: Option<i64>, now: i64) -> i64 {
        let open = self.spans.iter().any(|span| span.end.is_none());
        match ended_ts {
            Some(ended) => ended.max(last_ts),
            None if open => now.max(last_ts),
            None => last_ts,
        }
    }
}

/// Builds a [`Timeline`] from events pushed in `seq` order.
#[derive(Debug)]
pub(crate) struct TimelineBuilder {
    timeline: Timeline,
    /// Lane index per agent id.
    lane_of: HashMap<String, usize>,
    /// Open tool spans by `tool_use_id`.
    open_tools: HashMap<String, usize>,
    /// The open permission wait of each lane.
    open_permission: HashMap<usize, usize>,
    /// The open compaction (one per session).
    open_compact: Option<usize>,
}

impl TimelineBuilder {
    /// Starts with the main lane, then one lane per known subagent.
    pub(crate) fn new(agents: Vec<AgentLane>) -> TimelineBuilder {
        let mut lanes = Vec::with_capacity(agents.len() + 1);
        lanes.push(Lane::Main);
        let mut lane_of = HashMap::new();
        for agent in agents {
            lane_of.insert(agent.agent_id.clone(), lanes.len());
            lanes.push(Lane::Agent(agent));
        }
        TimelineBuilder {
            timeline: Timeline {
                lanes,
                spans: Vec::new(),
                markers: Vec::new(),
            },
            lane_of,
            open_tools: HashMap::new(),
            open_permission: HashMap::new(),
            open_compact: None,
        }
    }

    /// The lane of `agent`, added when first seen.
    fn lane(&mut self, agent: Option<String>) -> usize {
        let Some(agent) = agent else { return 0 };
        if let Some(lane) = self.lane_of.get(&agent) {
            return *lane;
        }
        let lanes = &mut self.timeline.lanes;
        self.lane_of.insert(agent.clone(), lanes.len());
        lanes.push(Lane::Seen(agent));
        lanes.len() - 1
    }

    /// Opens a span and returns its index.
    fn open(
        &mut self,
        lane: usize,
        kind: SpanKind,
        label: Option<String>,
        event: (i64, i64),
    ) -> usize {
        let (seq, ts) = event;
        self.timeline.spans.push(Span {
            lane,
            kind,
            label,
            start: ts,
            end: None,
            outcome: Outcome::Pending,
            seq,
            end_seq: None,
        });
        self.timeline.spans.len() - 1
    }

    /// Adds one event; events come in `seq` order.
    pub(crate) fn push(&mut self, event: TimelineEvent) {
        let TimelineEvent {
            seq,
            ts,
            agent_id,
            what,
        } = event;
        let lane = self.lane(agent_id);
        match what {
            Happening::Hook(facts) => self.push_hook(lane, (seq, ts), facts),
        }
    }

    /// A hook event at (`seq`, `ts`) on `lane`.
    fn push_hook(&mut self, lane: usize, at: (i64, i64), facts: HookFacts) {
        let (seq, ts) = at;
        let HookFacts {
            hook,
            tool,
            tool_use_id,
            text,
        } = facts;
        // A permission wait ends at that agent's next event but a
        // notification (which the wait itself sends).
        if hook != HookEvent::Notification {
            if let Some(index) = self.open_permission.remove(&lane) {
                let span = &mut self.timeline.spans[index];
                span.end = Some(ts);
                span.end_seq = Some(seq);
                span.outcome = Outcome::Done;
            }
        }
        match hook {
            HookEvent::PreToolUse => {
                let index = self.open(lane, SpanKind::Tool, tool, at);
                if let Some(id) = tool_use_id {
                    self.open_tools.insert(id, index);
                }
            }
            HookEvent::PostToolUse
            | HookEvent::PostToolUseFailure
            | HookEvent::PermissionDenied => {
                if let Some(index) = tool_use_id.and_then(|id| self.open_tools.remove(&id)) {
                    let outcome = match hook {
                        HookEvent::PostToolUse => Outcome::Ok,
                        _ => Outcome::Failed,
                    };
                    self.timeline.spans[index].close(ts, seq, outcome);
                }
            }
            HookEvent::PermissionRequest => {
                let index = self.open(lane, SpanKind::Permission, tool, at);
                self.open_permission.insert(lane, index);
            }
            HookEvent::PreCompact => {
                self.open_compact = Some(self.open(lane, SpanKind::Compact, None, at));
            }
            HookEvent::PostCompact => {
                if let Some(index) = self.open_compact.take() {
                    let span = &mut self.timeline.spans[index];
                    span.end = Some(ts);
                    span.end_seq = Some(seq);
                    span.outcome = Outcome::Done;
                }
            }
            HookEvent::UserPromptSubmit
            | HookEvent::Stop
            | HookEvent::StopFailure
            | HookEvent::SubagentStart
            | HookEvent::SubagentStop
            | HookEvent::SessionStart
            | HookEvent::SessionEnd => self.timeline.markers.push(Marker {
                lane,
                kind: MarkerKind::Hook(hook),
                ts,
                seq,
                text: text.map(|text| marker_text(&text)),
            }),
            _ => {}
        }
    }

    /// Marks what budgets refused (issue 19), given as (seq, reason) in seq
    /// order after every event was pushed: a refused tool call's span ends
    /// where it began with outcome `denied`, and a `BudgetRefused` marker
    /// with the reason sits at the refused call or prompt.
    pub(crate) fn mark_budget_refusals(
        &mut self,
        refusals: impl IntoIterator<Item = (i64, String)>,
    ) {
        let Timeline { spans, markers, .. } = &mut self.timeline;
        for (seq, reason) in refusals {
            let at = match spans
                .iter_mut()
                .find(|span| span.seq == seq && span.kind == SpanKind::Tool)
            {
                Some(span) => {
                    span.outcome = Outcome::Denied;
                    span.end = Some(span.start);
                    span.end_seq = Some(seq);
                    Some((span.lane, span.start))
                }
                None => markers
                    .iter()
                    .find(|marker| marker.seq == seq)
                    .map(|marker| (marker.lane, marker.ts)),
            };
            if let Some((lane, ts)) = at {
                markers.push(Marker {
                    lane,
                    kind: MarkerKind::BudgetRefused,
                    ts,
                    seq,
                    text: Some(reason),
                });
            }
        }
    }

    /// Adds each API request as a model span in its agent's lane (after
    /// the events; they have no seq of their own, so `seq` is 0).
    pub(crate) fn add_model_requests(&mut self, requests: impl IntoIterator<Item = ModelRequest>) {
        for request in requests {
            let lane = self.lane(request.agent_id);
            self.timeline.spans.push(Span {
                lane,
                kind: SpanKind::Model,
                label: request.model,
                start: request.start.min(request.end),
                end: Some(request.end),
                outcome: Outcome::Ok,
                seq: 0,
                end_seq: None,
            });
        }
    }

    /// Adds each API error as a marker in its agent's lane.
    pub(crate) fn mark_api_errors(&mut self, errors: impl IntoIterator<Item = ApiErrorMark>) {
        for error in errors {
            let lane = self.lane(error.agent_id);
            self.timeline.markers.push(Marker {
                lane,
                kind: MarkerKind::ApiError,
                ts: error.ts,
                seq: 0,
                text: Some(marker_text(&error.text)),
            });
        }
    }

    pub(crate) fn finish(self) -> Timeline {
        self.timeline
    }
}

/// A marker's text: whitespace runs as one space, cut at
/// [`MARKER_TEXT_CHARS`] with an ellipsis.
fn marker_text(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(MARKER_TEXT_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(seq: i64, agent: Option<&str>, hook: HookEvent) -> TimelineEvent {
        TimelineEvent {
            seq,
            ts: 1000 + seq * 10,
            agent_id: agent.map(str::to_owned),
            what: Happening::Hook(HookFacts {
                hook,
                tool: None,
                tool_use_id: None,
                text: None,
            }),
        }
    }

    fn tool(seq: i64, agent: Option<&str>, kind: HookEvent, id: &str) -> TimelineEvent {
        let mut event = hook(seq, agent, kind);
        let Happening::Hook(facts) = &mut event.what;
        facts.tool = Some("Bash".into());
        facts.tool_use_id = Some(id.into());
        event
    }

    fn with_text(mut event: TimelineEvent, value: &str) -> TimelineEvent {
        let Happening::Hook(facts) = &mut event.what;
        facts.text = Some(value.into());
        event
    }

    fn build(agents: Vec<AgentLane>, events: Vec<TimelineEvent>) -> TimelineBuilder {
        let mut builder = TimelineBuilder::new(agents);
        for event in events {
            builder.push(event);
        }
        builder
    }

    fn summary(timeline: &Timeline) -> Vec<(usize, &'static str, &'static str, i64, Option<i64>)> {
        timeline
            .spans
            .iter()
            .map(|s| {
                (
                    s.lane,
                    s.kind.as_str(),
                    s.outcome.as_str(),
                    s.seq,
                    s.end_seq,
                )
            })
            .collect()
    }

    #[test]
    fn tool_calls_close_on_their_post_and_failures_on_theirs() {
        let timeline = build(
            vec![],
            vec![
                tool(1, None, HookEvent::PreToolUse, "a"),
                tool(2, None, HookEvent::PreToolUse, "b"),
                tool(3, None, HookEvent::PostToolUseFailure, "b"),
                tool(4, None, HookEvent::PostToolUse, "a"),
                tool(5, None, HookEvent::PreToolUse, "c"),
                tool(6, None, HookEvent::PostToolUse, "unknown"),
            ],
        )
        .finish();
        assert_eq!(
            summary(&timeline),
            vec![
                (0, "tool", "ok", 1, Some(4)),
                (0, "tool", "failed", 2, Some(3)),
                (0, "tool", "pending", 5, None),
            ]
        );
        assert_eq!(timeline.spans[0].label.as_deref(), Some("Bash"));
        assert_eq!(timeline.spans[0].end, Some(1040));
        // An open span runs the axis on to now; without one it ends at the
        // last event, and an ended session ends at its end.
        assert_eq!(timeline.axis_end(1060, None, 9000), 9000);
        assert_eq!(timeline.axis_end(1060, Some(1100), 9000), 1100);
    }

    #[test]
    fn a_permission_wait_ends_at_the_next_event_but_a_notification() {
        let mut request = tool(1, None, HookEvent::PermissionRequest, "a");
        request.ts = 1005;
        let timeline = build(
            vec![],
            vec![
                request,
                hook(2, None, HookEvent::Notification),
                hook(3, Some("sub"), HookEvent::Stop),
                tool(4, None, HookEvent::PostToolUse, "a"),
            ],
        )
        .finish();
        // The subagent's stop is on its own (new) lane: the wait goes on.
        assert_eq!(
            summary(&timeline),
            vec![(0, "permission", "done", 1, Some(4))]
        );
        assert_eq!(timeline.lanes, vec![Lane::Main, Lane::Seen("sub".into())]);
        assert_eq!(timeline.markers[0].lane, 1);
        assert_eq!(timeline.axis_end(1040, None, 9000), 1040);
    }

    #[test]
    fn compactions_are_spans_and_prompts_are_markers_with_short_text() {
        let long = format!("fix\n\n  the {}", "x".repeat(200));
        let timeline = build(
            vec![AgentLane {
                agent_id: "sub".into(),
                agent_type: Some(String::new()),
                ..AgentLane::default()
            }],
            vec![
                hook(1, None, HookEvent::SessionStart),
                with_text(hook(2, None, HookEvent::UserPromptSubmit), &long),
                hook(3, None, HookEvent::PreCompact),
                hook(4, None, HookEvent::PostCompact),
                hook(5, Some("sub"), HookEvent::SubagentStop),
                hook(6, None, HookEvent::Other),
            ],
        )
        .finish();
        assert_eq!(summary(&timeline), vec![(0, "compact", "done", 3, Some(4))]);
        let Lane::Agent(agent) = &timeline.lanes[1] else {
            panic!("{:?}", timeline.lanes)
        };
        assert_eq!(agent.label(), "agent");
        let markers: Vec<(usize, &str, i64)> = timeline
            .markers
            .iter()
            .map(|m| (m.lane, m.kind.name(), m.seq))
            .collect();
        assert_eq!(
            markers,
            vec![
                (0, "SessionStart", 1),
                (0, "UserPromptSubmit", 2),
                (1, "SubagentStop", 5)
            ]
        );
        let text = timeline.markers[1].text.as_deref().unwrap();
        assert!(text.starts_with("fix the xxx"), "{text}");
        assert_eq!(text.chars().count(), MARKER_TEXT_CHARS + 1);
        assert!(text.ends_with('…'));
    }

    #[test]
    fn budget_refusals_deny_the_call_and_mark_the_call_or_prompt() {
        let mut builder = build(
            vec![],
            vec![
                hook(1, None, HookEvent::UserPromptSubmit),
                tool(2, None, HookEvent::PreToolUse, "a"),
                tool(3, None, HookEvent::PreToolUse, "b"),
            ],
        );
        builder.mark_budget_refusals([
            (1, "daily: $5.00 spent".to_owned()),
            (3, "session: $1.00 spent".to_owned()),
            (99, "nothing to mark".to_owned()),
        ]);
        let timeline = builder.finish();
        assert_eq!(
            summary(&timeline),
            vec![
                (0, "tool", "pending", 2, None),
                (0, "tool", "denied", 3, Some(3))
            ]
        );
        assert_eq!(timeline.spans[1].end, Some(timeline.spans[1].start));
        let refused: Vec<(i64, i64, Option<&str>)> = timeline
            .markers
            .iter()
            .filter(|m| m.kind == MarkerKind::BudgetRefused)
            .map(|m| (m.seq, m.ts, m.text.as_deref()))
            .collect();
        assert_eq!(
            refused,
            vec![
                (1, 1010, Some("daily: $5.00 spent")),
                (3, 1030, Some("session: $1.00 spent"))
            ]
        );
    }

    #[test]
    fn api_requests_are_model_spans_in_their_agents_lane_and_errors_markers() {
        let mut builder = TimelineBuilder::new(vec![AgentLane {
            agent_id: "a1".into(),
            ..AgentLane::default()
        }]);
        builder.add_model_requests([
            ModelRequest {
                agent_id: None,
                start: 100,
                end: 900,
                model: Some("claude-sonnet-4-5".into()),
            },
            ModelRequest {
                agent_id: Some("a1".into()),
                start: 1_000,
                end: 1_500,
                model: None,
            },
            ModelRequest {
                agent_id: Some("a9".into()),
                start: 2_000,
                end: 2_100,
                model: None,
            },
        ]);
        builder.mark_api_errors([ApiErrorMark {
            agent_id: None,
            ts: 50,
            text: "529 Overloaded, attempt 1".into(),
        }]);
        let timeline = builder.finish();
        let spans: Vec<_> = timeline
            .spans
            .iter()
            .map(|span| (span.lane, span.kind, span.start, span.end))
            .collect();
        assert_eq!(
            spans,
            vec![
                (0, SpanKind::Model, 100, Some(900)),
                (1, SpanKind::Model, 1_000, Some(1_500)),
                // An agent only OpenTelemetry knows gets a lane of its own.
                (2, SpanKind::Model, 2_000, Some(2_100)),
            ]
        );
        assert_eq!(timeline.markers[0].kind.name(), "ApiError");
        assert_eq!(
            timeline.markers[0].text.as_deref(),
            Some("529 Overloaded, attempt 1")
        );
    }
}
