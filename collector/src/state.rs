//! What each session and agent is doing, derived from its hook events.
//!
//! A pure function of one event: [`transition`] says which state the event
//! puts its session (and its agent) in, or nothing when the event says
//! nothing about it (a file change, a model switch). The writer applies the
//! transitions in event-time order and stores the state with the time it was
//! entered; the read side adds the one state that no event announces, "gone
//! quiet" (see [`shown_state`] and [`QuietLimits`]).
//!
//! | event | state |
//! | --- | --- |
//! | `UserPromptSubmit`, `UserPromptExpansion`, `PreToolUse` (with its tool), `PostToolUse`, `PostToolUseFailure`, `PostToolBatch`, `PermissionDenied`, `ElicitationResult`, `SubagentStart` | working |
//! | `PermissionRequest`, `Elicitation`, `Notification` of type `permission_prompt`, `idle_prompt` or `elicitation_dialog` | waiting for you |
//! | `Stop`, `SessionStart` (except after a compaction), `TeammateIdle` | idle |
//! | `StopFailure` | failed, with its error |
//! | `PreCompact` | compacting, until `PostCompact` (then idle after a manual compaction, working after an automatic one) |
//! | `SessionEnd` (session), `SubagentStop` (agent) | ended, with its reason |

use std::time::Duration;

use hooktrail_shared::envelope::HookEvent;

/// A state an event can put a session or agent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Working,
    Waiting,
    Idle,
    Failed,
    Compacting,
    Ended,
}

/// The state shown for a `working`, `compacting` or `waiting` session with
/// no event for longer than its quiet limit ([`QuietLimits`]): usually the
/// process died.
pub(crate) const GONE_QUIET: &str = "gone_quiet";

/// Every state a reader can see, in display order (for `/metrics`).
pub(crate) const SHOWN_STATES: [&str; 7] = [
    "working",
    "waiting",
    "compacting",
    "idle",
    "failed",
    GONE_QUIET,
    "ended",
];

impl State {
    /// The stored and served name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::Working => "working",
            State::Waiting => "waiting",
            State::Idle => "idle",
            State::Failed => "failed",
            State::Compacting => "compacting",
            State::Ended => "ended",
        }
    }
}

/// What an event does to the tool shown as running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToolChange {
    /// The event says nothing about tools.
    Keep,
    /// A tool started.
    Set(String),
    /// No tool runs now.
    Clear,
}

/// One state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transition {
    pub(crate) state: State,
    /// Why, where it matters: the error of a failed turn, the reason a
    /// session ended, what a permission request is for.
    pub(crate) detail: Option<String>,
    pub(crate) tool: ToolChange,
}

/// The payload facts the transitions read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventFacts<'a> {
    /// The event; a name this version does not know changes no state.
    pub(crate) hook: HookEvent,
    pub(crate) tool: Option<&'a str>,
    /// `notification_type` of a `Notification`.
    pub(crate) notification_type: Option<&'a str>,
    /// `error` of a `StopFailure`.
    pub(crate) error: Option<&'a str>,
    /// `reason` of a `SessionEnd`.
    pub(crate) reason: Option<&'a str>,
    /// `trigger` of `PreCompact`/`PostCompact` (`manual` or `auto`).
    pub(crate) trigger: Option<&'a str>,
    /// `source` of a `SessionStart` (`startup`, `resume`, `clear`, `compact`).
    pub(crate) source: Option<&'a str>,
}

/// Whose state an event changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Transitions {
    /// The session's.
    pub(crate) session: Option<Transition>,
    /// The subagent's, for an event a subagent caused.
    pub(crate) agent: Option<Transition>,
}

fn to(state: State, detail: Option<&str>, tool: ToolChange) -> Option<Transition> {
    Some(Transition {
        state,
        detail: detail.map(str::to_owned),
        tool,
    })
}

/// The transitions of one event; `from_subagent` when the event carries an
/// `agent_id`.
pub(crate) fn transition(facts: &EventFacts<'_>, from_subagent: bool) -> Transitions {
    use State::*;
    let tool_name = || ToolChange::Set(facts.tool.unwrap_or("?").to_owned());
    let change = match facts.hook {
        HookEvent::UserPromptSubmit
        | HookEvent::UserPromptExpansion
        | HookEvent::ElicitationResult => to(Working, None, ToolChange::Clear),
        HookEvent::PreToolUse => to(Working, None, tool_name()),
        HookEvent::PostToolUse
        | HookEvent::PostToolUseFailure
        | HookEvent::PostToolBatch
        | HookEvent::PermissionDenied => to(Working, None, ToolChange::Clear),
        HookEvent::PermissionRequest => {
            to(Waiting, facts.tool.or(Some("permission")), ToolChange::Keep)
        }
        HookEvent::Elicitation => to(Waiting, Some("elicitation"), ToolChange::Keep),
        HookEvent::Notification => match facts.notification_type {
            Some(kind @ ("permission_prompt" | "idle_prompt" | "elicitation_dialog")) => {
                to(Waiting, Some(kind), ToolChange::Keep)
            }
            _ => None,
        },
        HookEvent::Stop => to(Idle, None, ToolChange::Clear),
        HookEvent::StopFailure => to(Failed, facts.error.or(Some("error")), ToolChange::Clear),
        HookEvent::PreCompact => to(Compacting, facts.trigger, ToolChange::Keep),
        HookEvent::PostCompact => match facts.trigger {
            Some("auto") => to(Working, None, ToolChange::Keep),
            _ => to(Idle, None, ToolChange::Clear),
        },
        HookEvent::SessionStart => match facts.source {
            // Fired between PreCompact and PostCompact: still compacting.
            Some("compact") => None,
            source => to(Idle, source, ToolChange::Clear),
        },
        HookEvent::SessionEnd => to(Ended, facts.reason.or(Some("unknown")), ToolChange::Clear),
        HookEvent::SubagentStart => to(Working, None, ToolChange::Keep),
        HookEvent::SubagentStop => to(Ended, Some("done"), ToolChange::Clear),
        HookEvent::TeammateIdle => to(Idle, None, ToolChange::Clear),
        _ => None,
    };
    if !from_subagent {
        // The main agent's own events; SubagentStart/Stop without an agent
        // id say nothing about the session.
        let session = match facts.hook {
            HookEvent::SubagentStart | HookEvent::SubagentStop | HookEvent::TeammateIdle => None,
            _ => change,
        };
        return Transitions {
            session,
            agent: None,
        };
    }
    // A subagent's event: its own state, and the session's only where the
    // subagent makes the session work or wait (its end is not the
    // session's end, and a subagent going idle leaves the session working).
    let session = match &change {
        Some(Transition {
            state: Working | Waiting,
            ..
        }) if facts.hook != HookEvent::SubagentStart => change.clone(),
        _ => None,
    };
    Transitions {
        session,
        agent: change,
    }
}

/// How long a session may go without an event, by the state it is in,
/// before it shows as gone quiet: its Claude Code most likely died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuietLimits {
    /// For `working` and `compacting` (`--quiet-after`): a turn sends
    /// events every few seconds, so minutes of silence mean trouble.
    pub(crate) working_ms: i64,
    /// For `waiting` (`--waiting-quiet-after`): a person may take a long
    /// lunch before answering a permission prompt, so the limit is longer;
    /// without one a session whose process died while it asked would show
    /// as waiting for you forever.
    pub(crate) waiting_ms: i64,
}

impl QuietLimits {
    /// The limits of the two durations.
    pub(crate) fn new(working: Duration, waiting: Duration) -> QuietLimits {
        QuietLimits {
            working_ms: working.as_millis() as i64,
            waiting_ms: waiting.as_millis() as i64,
        }
    }
}

/// The state a reader sees: the stored one, or "gone quiet" for a working,
/// compacting or waiting session without an event for longer than its
/// limit in `limits`.
pub(crate) fn shown_state(
    stored: Option<&str>,
    last_ts: i64,
    now: i64,
    limits: QuietLimits,
) -> &str {
    let stored = stored.unwrap_or("idle");
    let silent = now - last_ts;
    match stored {
        "working" | "compacting" if silent > limits.working_ms => GONE_QUIET,
        "waiting" if silent > limits.waiting_ms => GONE_QUIET,
        _ => stored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(hook: HookEvent) -> EventFacts<'static> {
        EventFacts {
            hook,
            tool: None,
            notification_type: None,
            error: None,
            reason: None,
            trigger: None,
            source: None,
        }
    }

    fn session_state(events: &[EventFacts<'_>]) -> Option<State> {
        let mut state = None;
        for event in events {
            if let Some(change) = transition(event, false).session {
                state = Some(change.state);
            }
        }
        state
    }

    #[test]
    fn a_turn_with_a_tool_and_a_permission_wait() {
        let pre = EventFacts {
            tool: Some("Bash"),
            ..facts(HookEvent::PreToolUse)
        };
        let change = transition(&pre, false).session.unwrap();
        assert_eq!(change.tool, ToolChange::Set("Bash".into()));
        assert_eq!(
            session_state(&[
                facts(HookEvent::UserPromptSubmit),
                pre,
                facts(HookEvent::PermissionRequest)
            ]),
            Some(State::Waiting)
        );
        assert_eq!(
            session_state(&[
                facts(HookEvent::PermissionRequest),
                facts(HookEvent::PostToolUse),
                facts(HookEvent::Stop)
            ]),
            Some(State::Idle)
        );
    }

    #[test]
    fn compaction_spans_the_session_start_it_causes() {
        let manual = |hook| EventFacts {
            trigger: Some("manual"),
            ..facts(hook)
        };
        let compact_start = EventFacts {
            source: Some("compact"),
            ..facts(HookEvent::SessionStart)
        };
        assert_eq!(
            session_state(&[manual(HookEvent::PreCompact), compact_start]),
            Some(State::Compacting)
        );
        assert_eq!(
            session_state(&[
                manual(HookEvent::PreCompact),
                compact_start,
                manual(HookEvent::PostCompact)
            ]),
            Some(State::Idle)
        );
    }

    #[test]
    fn failures_and_ends_keep_their_reason() {
        let failure = EventFacts {
            error: Some("server_error"),
            ..facts(HookEvent::StopFailure)
        };
        let change = transition(&failure, false).session.unwrap();
        assert_eq!(
            (change.state, change.detail.as_deref()),
            (State::Failed, Some("server_error"))
        );
        let end = EventFacts {
            reason: Some("other"),
            ..facts(HookEvent::SessionEnd)
        };
        assert_eq!(
            transition(&end, false).session.unwrap().detail.as_deref(),
            Some("other")
        );
        assert_eq!(
            transition(&facts(HookEvent::FileChanged), false),
            Transitions::default()
        );
    }

    #[test]
    fn a_subagent_has_its_own_state_and_its_stop_does_not_end_the_session() {
        let stop = transition(&facts(HookEvent::SubagentStop), true);
        assert_eq!(stop.agent.unwrap().state, State::Ended);
        assert!(stop.session.is_none());
        let asks = transition(&facts(HookEvent::PermissionRequest), true);
        assert_eq!(asks.session.unwrap().state, State::Waiting);
        assert_eq!(asks.agent.unwrap().state, State::Waiting);
        assert!(transition(&facts(HookEvent::SubagentStart), false)
            .session
            .is_none());
    }

    #[test]
    fn a_working_session_without_events_has_gone_quiet() {
        let limits = QuietLimits {
            working_ms: 500,
            waiting_ms: 2000,
        };
        assert_eq!(shown_state(Some("working"), 0, 1000, limits), GONE_QUIET);
        assert_eq!(shown_state(Some("working"), 0, 400, limits), "working");
        assert_eq!(shown_state(Some("waiting"), 0, 1000, limits), "waiting");
        assert_eq!(shown_state(Some("waiting"), 0, 3000, limits), GONE_QUIET);
        assert_eq!(shown_state(Some("idle"), 0, 3000, limits), "idle");
        assert_eq!(shown_state(None, 0, 1000, limits), "idle");
    }
}
