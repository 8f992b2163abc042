//! What the sources hand to the writer: parsed events grouped in
//! submissions, each with the acknowledgement to run once it is committed.
//!
//! Parsing happens in the source threads, so the one writer thread spends its
//! time in SQLite only.

use std::collections::BTreeMap;
use std::sync::Arc;

use hooktrail_shared::envelope::{self, Envelope, HookEvent, RejectReason};
use serde::Deserialize;

use crate::event::{CommittedEvent, Source};
use crate::state;
use crate::stats::Stats;
use hooktrail_shared::redact::Redactor;
use hooktrail_shared::transcript::{lift_plain_string, TranscriptUsage};

/// One event ready to insert, with the facts the `sessions` and `agents`
/// tables need, lifted from its payload once by the source thread.
#[derive(Debug)]
pub(crate) struct NewEvent {
    /// The row as it will be stored and published; `seq` is set by the writer.
    pub(crate) row: CommittedEvent,
    /// `row.hook` as the event it names ([`HookEvent::Other`] when this
    /// version does not know it), looked up once here.
    pub(crate) hook: HookEvent,
    /// `transcript_path` of the payload, for `sessions`.
    pub(crate) transcript_path: Option<String>,
    /// `reason` of a `SessionEnd` payload.
    pub(crate) end_reason: Option<String>,
    /// `agent_type` of the payload, for `agents`.
    pub(crate) agent_type: Option<String>,
    /// `agent_transcript_path` of a `SubagentStop` payload.
    pub(crate) agent_transcript_path: Option<String>,
    /// The subagent started by this call: `tool_response.agentId` of the
    /// `PostToolUse` of the `Agent` tool. Links that agent to this
    /// `tool_use_id`.
    pub(crate) spawned_agent_id: Option<String>,
    /// What the event does to its session's and agent's state, worked out
    /// here so the writer only stores it.
    pub(crate) transitions: state::Transitions,
    /// The model in use: `model` of `SessionStart`, `to_model` of
    /// `PostModelSwitch`.
    pub(crate) model: Option<String>,
    /// The session's title: the text of a main-agent `UserPromptSubmit`,
    /// shortened.
    pub(crate) title: Option<String>,
    /// The token usage the emitter read from the transcript at a turn
    /// boundary (envelope `usage`).
    pub(crate) usage: Option<TranscriptUsage>,
    /// Which redaction rules replaced something, by the emitter or here,
    /// and how often (the `redactions` column).
    pub(crate) redactions: Option<BTreeMap<String, u64>>,
    /// On a `PermissionRequest` whose hook waits for a remote decision: the
    /// envelope's `wait_until` (the writer records it as pending).
    pub(crate) wait_until: Option<i64>,
    /// The envelope's `budget_check`: the socket's `ok` then carries the
    /// session's signed refusal, if one applies.
    pub(crate) budget_check: bool,
}

/// The longest session title kept, in characters.
const TITLE_CHARS: usize = 200;

/// The few payload fields the writer's side tables need.
#[derive(Deserialize, Default)]
struct PayloadFacts {
    #[serde(default)]
    transcript_path: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    agent_type: Option<String>,
    #[serde(default)]
    agent_transcript_path: Option<String>,
    #[serde(default)]
    tool_response: Option<ToolResponseFacts>,
    #[serde(default)]
    notification_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    trigger: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    to_model: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
}

#[derive(Deserialize, Default)]
struct ToolResponseFacts {
    #[serde(default, rename = "agentId")]
    agent_id: Option<String>,
}

/// Reads the payload facts leniently: fields of an unexpected type (a
/// `tool_response` that is a string, say) are ignored, never fatal.
fn payload_facts(payload: &str) -> PayloadFacts {
    #[derive(Deserialize)]
    struct Loose {
        #[serde(default)]
        transcript_path: Option<serde_json::Value>,
        #[serde(default)]
        reason: Option<serde_json::Value>,
        #[serde(default)]
        agent_type: Option<serde_json::Value>,
        #[serde(default)]
        agent_transcript_path: Option<serde_json::Value>,
        #[serde(default)]
        tool_response: Option<serde_json::Value>,
        #[serde(default)]
        notification_type: Option<serde_json::Value>,
        #[serde(default)]
        error: Option<serde_json::Value>,
        #[serde(default)]
        trigger: Option<serde_json::Value>,
        #[serde(default)]
        source: Option<serde_json::Value>,
        #[serde(default)]
        model: Option<serde_json::Value>,
        #[serde(default)]
        to_model: Option<serde_json::Value>,
        #[serde(default)]
        prompt: Option<serde_json::Value>,
    }
    let text = |value: Option<serde_json::Value>| match value {
        Some(serde_json::Value::String(text)) => Some(text),
        _ => None,
    };
    match serde_json::from_str::<PayloadFacts>(payload) {
        Ok(facts) => facts,
        Err(_) => match serde_json::from_str::<Loose>(payload) {
            Ok(loose) => PayloadFacts {
                transcript_path: text(loose.transcript_path),
                reason: text(loose.reason),
                agent_type: text(loose.agent_type),
                agent_transcript_path: text(loose.agent_transcript_path),
                tool_response: loose
                    .tool_response
                    .and_then(|value| value.get("agentId").cloned())
                    .map(|id| ToolResponseFacts {
                        agent_id: text(Some(id)),
                    }),
                notification_type: text(loose.notification_type),
                error: text(loose.error),
                trigger: text(loose.trigger),
                source: text(loose.source),
                model: text(loose.model),
                to_model: text(loose.to_model),
                prompt: text(loose.prompt),
            },
            Err(_) => PayloadFacts::default(),
        },
    }
}

/// Hooks whose payload facts the state, model or title need: rare next to
/// tool events, so reading their payload a second time costs little.
const FACT_HOOKS: [HookEvent; 10] = [
    HookEvent::UserPromptSubmit,
    HookEvent::Notification,
    HookEvent::StopFailure,
    HookEvent::PreCompact,
    HookEvent::PostCompact,
    HookEvent::SessionStart,
    HookEvent::SessionEnd,
    HookEvent::PostModelSwitch,
    HookEvent::SubagentStart,
    HookEvent::SubagentStop,
];

/// Whether the event is the `PostToolUse` of the `Agent` tool, whose
/// response names the subagent it started.
fn spawns_agent(hook: HookEvent, tool: Option<&str>) -> bool {
    hook == HookEvent::PostToolUse && tool == Some("Agent")
}

/// Most sessions a [`KnownSessions`] remembers before it starts over.
const KNOWN_SESSIONS_LIMIT: usize = 4096;

/// Sessions whose transcript path a source thread has already read from a
/// payload. The `sessions` row keeps the first transcript path it gets, so
/// later events of a known session need their payload read a second time
/// only for the rarer facts, and a cheap substring test tells whether those
/// can be there at all. This saves most events a second JSON pass.
#[derive(Debug, Default)]
pub(crate) struct KnownSessions {
    /// Session ids seen with a transcript path; cleared when it reaches
    /// [`KNOWN_SESSIONS_LIMIT`], which only costs a few extra parses.
    sessions: std::collections::HashSet<String>,
}

/// Whether `payload` holds a key that a rare fact is read from, anywhere
/// (as `str::contains` on each quoted name would tell): SIMD searches
/// built once, 40% fewer instructions than three `str::contains` on a
/// 1.4 KB tool event (issue 21).
fn names_a_rare_fact(payload: &str) -> bool {
    static KEYS: std::sync::LazyLock<[memchr::memmem::Finder<'static>; 3]> =
        std::sync::LazyLock::new(|| {
            [
                memchr::memmem::Finder::new("\"reason\""),
                memchr::memmem::Finder::new("\"agent_type\""),
                memchr::memmem::Finder::new("\"agent_transcript_path\""),
            ]
        });
    KEYS.iter()
        .any(|key| key.find(payload.as_bytes()).is_some())
}

impl KnownSessions {
    /// Whether this event's payload must be read for facts the side tables
    /// still need.
    fn needs_facts_for(
        &self,
        session_id: &Option<String>,
        hook: HookEvent,
        tool: Option<&str>,
        payload: &str,
    ) -> bool {
        let transcript_needed = session_id
            .as_deref()
            .is_some_and(|session| !self.sessions.contains(session));
        transcript_needed
            || spawns_agent(hook, tool)
            || FACT_HOOKS.contains(&hook)
            || names_a_rare_fact(payload)
    }

    fn remember(&mut self, session_id: &str) {
        if self.sessions.len() >= KNOWN_SESSIONS_LIMIT {
            self.sessions.clear();
        }
        self.sessions.insert(session_id.to_owned());
    }
}

impl NewEvent {
    /// Builds the row of an envelope received now from `source`, redacted
    /// with `redactor` (this collector's rules: each collector passes its
    /// own, so two in one process never share a privacy level). With
    /// `known`, it skips reading payload facts the side tables already have
    /// (see [`KnownSessions`]); without, it reads every payload fact.
    pub(crate) fn from_envelope_remembering(
        envelope: Envelope,
        source: Source,
        redactor: &Redactor,
        known: Option<&mut KnownSessions>,
    ) -> NewEvent {
        let mut envelope = envelope;
        // Again here, for whatever arrives unredacted: older emitters, spool
        // files written before an upgrade, other publishers. An envelope an
        // emitter already redacted with this very redaction (its
        // `redacted_with` is ours) would pass unchanged, so it is not
        // scanned again (`redact::Fingerprint`).
        redactor.redact_received_envelope(&mut envelope);
        let hook = HookEvent::from_name(&envelope.hook);
        let payload: String = Box::<str>::from(envelope.payload).into();
        let facts = match known {
            None => payload_facts(&payload),
            Some(known) => {
                if known.needs_facts_for(
                    &envelope.session_id,
                    hook,
                    envelope.tool.as_deref(),
                    &payload,
                ) {
                    let facts = payload_facts(&payload);
                    if let (Some(session), Some(_)) = (&envelope.session_id, &facts.transcript_path)
                    {
                        known.remember(session);
                    }
                    facts
                } else {
                    PayloadFacts::default()
                }
            }
        };
        let spawned_agent_id = if spawns_agent(hook, envelope.tool.as_deref()) {
            facts.tool_response.and_then(|response| response.agent_id)
        } else {
            None
        };
        let from_subagent = envelope.agent_id.is_some();
        let transitions = state::transition(
            &state::EventFacts {
                hook,
                tool: envelope.tool.as_deref(),
                notification_type: facts.notification_type.as_deref(),
                error: facts.error.as_deref(),
                reason: facts.reason.as_deref(),
                trigger: facts.trigger.as_deref(),
                source: facts.source.as_deref(),
            },
            from_subagent,
        );
        let model = match hook {
            HookEvent::SessionStart => facts.model,
            HookEvent::PostModelSwitch => facts.to_model,
            _ => None,
        };
        let title = match (hook, from_subagent, facts.prompt) {
            (HookEvent::UserPromptSubmit, false, Some(prompt)) => Some(shorten_title(&prompt)),
            _ => None,
        };
        // Claude Code writes `prompt_id` and `permission_mode` among the
        // first top-level keys, before any tool input, so the first match
        // is the top-level one; this saves every tool event a second JSON
        // pass.
        let prompt_id = lift_plain_string(payload.as_bytes(), "prompt_id");
        let permission_mode = lift_plain_string(payload.as_bytes(), "permission_mode");
        let state = transitions
            .session
            .as_ref()
            .map(|change| change.state.as_str());
        NewEvent {
            hook,
            budget_check: envelope.budget_check,
            wait_until: envelope
                .wait_until
                .filter(|_| hook == HookEvent::PermissionRequest),
            transitions,
            model,
            title,
            usage: envelope.usage,
            redactions: envelope.redactions,
            transcript_path: facts.transcript_path,
            end_reason: if hook == HookEvent::SessionEnd {
                facts.reason
            } else {
                None
            },
            agent_type: facts.agent_type,
            agent_transcript_path: facts.agent_transcript_path,
            spawned_agent_id,
            row: CommittedEvent {
                seq: 0,
                id: envelope.id,
                ts: envelope.ts,
                received_at: hooktrail_shared::time::now_millis(),
                machine: envelope.machine,
                session_id: envelope.session_id,
                agent_id: envelope.agent_id,
                hook: envelope.hook,
                tool: envelope.tool,
                tool_use_id: envelope.tool_use_id,
                cwd: envelope.cwd,
                source: source.as_str(),
                payload,
                prompt_id,
                permission_mode,
                state,
                config_error: envelope.config_error,
            },
        }
    }
}

/// A prompt as a one-line title of at most [`TITLE_CHARS`] characters.
fn shorten_title(prompt: &str) -> String {
    let line = prompt.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(TITLE_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// Parses one received line and counts it as received (and rejected when it
/// fails), so every source counts the same way.
pub(crate) fn parse_counted(
    line: &[u8],
    source: Source,
    stats: &Stats,
    redactor: &Redactor,
) -> Result<NewEvent, RejectReason> {
    parse_counted_remembering(line, source, stats, redactor, None)
}

/// [`parse_counted`] for a source thread that keeps a [`KnownSessions`].
pub(crate) fn parse_counted_remembering(
    line: &[u8],
    source: Source,
    stats: &Stats,
    redactor: &Redactor,
    known: Option<&mut KnownSessions>,
) -> Result<NewEvent, RejectReason> {
    let counters = stats.source(source);
    counters
        .received
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match envelope::parse_line(line) {
        Ok(mut envelope) => {
            // Redacted here to count it; `from_envelope_remembering` then
            // finds its own fingerprint and does not redact it twice.
            if redactor.redact_received_envelope(&mut envelope) {
                counters
                    .redacted_again
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(NewEvent::from_envelope_remembering(
                envelope, source, redactor, known,
            ))
        }
        Err(reason) => {
            counters
                .rejected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err(reason)
        }
    }
}

/// What the writer reports back for one submission, after its transaction
/// committed.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Committed {
    /// Events newly stored.
    pub(crate) stored: usize,
    /// Events whose id was already stored.
    pub(crate) duplicates: usize,
}

/// Run by the writer after the submission's events are committed (never
/// before, never for events that were not stored). Must return quickly: it
/// typically sends on a channel and wakes a thread.
pub(crate) type Acknowledge = Box<dyn FnOnce(Committed) + Send>;

/// A group of events from one source that is acknowledged as a whole.
pub(crate) struct Submission {
    /// Which source the events came from, for the counters.
    pub(crate) source: Source,
    /// The events, in the order received.
    pub(crate) events: Vec<NewEvent>,
    /// Acknowledges the events to their source once committed.
    pub(crate) acknowledge: Acknowledge,
    /// Claude Code's OpenTelemetry records from one OTLP export (the
    /// receiver's submissions carry these and no events); stored by
    /// `store::otel` on the writer thread.
    pub(crate) otel: Option<Box<crate::otlp::records::Batch>>,
}

impl std::fmt::Debug for Submission {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Submission")
            .field("source", &self.source)
            .field("events", &self.events.len())
            .finish()
    }
}

/// Payload bytes the writer's queue may hold at once, over all queued
/// submissions: the count bound alone (16 submissions) let sixteen batches
/// of 8 MB events, 128 MB and more, wait in memory.
pub(crate) const MAX_QUEUED_BYTES: usize = 32 << 20;

/// The bytes queued for the writer, shared by every sender and released by
/// the writer once a submission is stored (see [`QueuedBytes`]).
#[derive(Debug)]
pub(crate) struct ByteBudget {
    /// Bytes held by queued and in-flight submissions.
    used: std::sync::Mutex<usize>,
    /// Signalled when bytes are released.
    released: std::sync::Condvar,
    /// The bound. A submission larger than it still goes through an empty
    /// queue, or it could never be stored.
    limit: usize,
}

impl ByteBudget {
    pub(crate) fn new(limit: usize) -> Arc<ByteBudget> {
        Arc::new(ByteBudget {
            used: std::sync::Mutex::new(0),
            released: std::sync::Condvar::new(),
            limit,
        })
    }

    /// Waits until `bytes` fit, then takes them.
    fn take(self: &Arc<ByteBudget>, bytes: usize) -> QueuedBytes {
        let mut used = self
            .used
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        while *used > 0 && *used + bytes > self.limit {
            used = self
                .released
                .wait(used)
                .unwrap_or_else(|poison| poison.into_inner());
        }
        *used += bytes;
        QueuedBytes {
            budget: self.clone(),
            bytes,
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        *self
            .used
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// A submission's share of the [`ByteBudget`], given back when dropped: the
/// writer drops it once the submission is stored and acknowledged, so the
/// bound covers the batch being written too, not only the channel.
#[derive(Debug)]
pub(crate) struct QueuedBytes {
    budget: Arc<ByteBudget>,
    bytes: usize,
}

impl Drop for QueuedBytes {
    fn drop(&mut self) {
        let mut used = self
            .budget
            .used
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        *used = used.saturating_sub(self.bytes);
        self.budget.released.notify_all();
    }
}

/// What travels to the writer: the submission and the bytes it holds.
pub(crate) type Queued = (Submission, QueuedBytes);

/// The sending side of the writer's queue, shared by the sources. Keeps the
/// queue-depth gauge in step with what is sent.
#[derive(Clone)]
pub(crate) struct WriterQueue {
    /// The bounded channel to the writer: a full queue blocks the source,
    /// which is the back-pressure that keeps memory bounded.
    pub(crate) sender: crossbeam_channel::Sender<Queued>,
    /// The bound on the bytes queued, next to the channel's bound on
    /// submissions: a source waits for whichever is reached first.
    pub(crate) bytes: Arc<ByteBudget>,
    /// Where the queue depth gauge lives.
    pub(crate) stats: Arc<Stats>,
}

impl WriterQueue {
    /// Queues a submission, waiting while the queue is full (in submissions
    /// or in bytes). Fails only when the writer has stopped, in which case
    /// nothing will be acknowledged.
    pub(crate) fn submit(&self, submission: Submission) -> Result<(), Submission> {
        let count = submission.events.len() as i64;
        let bytes = submission
            .events
            .iter()
            .map(|event| event.row.payload.len() + 512)
            .sum();
        let held = self.bytes.take(bytes);
        self.stats
            .writer_queue
            .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
        self.sender.send((submission, held)).map_err(|error| {
            self.stats
                .writer_queue
                .fetch_sub(count, std::sync::atomic::Ordering::Relaxed);
            error.into_inner().0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hooktrail_shared::redact::{Privacy, Settings as RedactionSettings};

    /// The rules a collector without a config file applies.
    fn default_redactor() -> Redactor {
        Redactor::new(RedactionSettings::default())
    }

    #[test]
    fn the_byte_budget_holds_a_sender_until_the_writer_releases_bytes() {
        let budget = ByteBudget::new(100);
        // Larger than the whole budget: still admitted into an empty queue.
        let big = budget.take(150);
        assert_eq!(budget.used(), 150);
        let (taken, waiting) = std::sync::mpsc::channel();
        let other = budget.clone();
        let thread = std::thread::spawn(move || {
            let held = other.take(60);
            taken.send(()).unwrap();
            held
        });
        // The second sender waits while the first 150 bytes are held...
        assert!(waiting
            .recv_timeout(std::time::Duration::from_millis(200))
            .is_err());
        drop(big);
        // ...and goes through once they are released.
        waiting
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the waiting sender to get its bytes");
        let held = thread.join().unwrap();
        assert_eq!(budget.used(), 60);
        drop(held);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn agent_tool_response_links_the_subagent() {
        let line = r#"{"v":1,"id":"e1","ts":5,"machine":"m","session_id":"s","agent_id":null,"hook":"PostToolUse","tool":"Agent","tool_use_id":"toolu_1","cwd":"/p","payload":{"transcript_path":"/t","tool_response":{"agentId":"a1"}}}"#;
        let event = NewEvent::from_envelope_remembering(
            envelope::parse_line(line.as_bytes()).unwrap(),
            Source::Socket,
            &default_redactor(),
            None,
        );
        assert_eq!(event.spawned_agent_id.as_deref(), Some("a1"));
        assert_eq!(event.transcript_path.as_deref(), Some("/t"));
        let odd = r#"{"v":1,"id":"e2","ts":5,"hook":"PostToolUse","tool":"Agent","payload":{"tool_response":"text","reason":7}}"#;
        let event = NewEvent::from_envelope_remembering(
            envelope::parse_line(odd.as_bytes()).unwrap(),
            Source::Socket,
            &default_redactor(),
            None,
        );
        assert_eq!(event.spawned_agent_id, None);
    }

    #[test]
    fn a_secret_arriving_unredacted_is_redacted_before_it_is_stored() {
        let line = r#"{"v":1,"id":"e4","ts":5,"machine":"m","session_id":"s","hook":"UserPromptSubmit","payload":{"prompt":"use ghp_0123456789abcdefghijklmnopqrstuvwxyzAB please"}}"#;
        let event = NewEvent::from_envelope_remembering(
            envelope::parse_line(line.as_bytes()).unwrap(),
            Source::Spool,
            &default_redactor(),
            None,
        );
        assert!(
            !event.row.payload.contains("ghp_0123"),
            "{}",
            event.row.payload
        );
        assert!(
            event.row.payload.contains("[REDACTED:github-token]"),
            "{}",
            event.row.payload
        );
        assert_eq!(event.redactions.unwrap()["github-token"], 1);
        assert!(!event.title.unwrap_or_default().contains("ghp_0123"));
    }

    #[test]
    fn prompt_id_and_permission_mode_are_lifted_and_escaped_values_are_left_out() {
        let payload = r#"{"session_id":"s","prompt_id":"p-1","permission_mode":"default","tool_input":{"prompt_id":"nested"}}"#;
        assert_eq!(
            lift_plain_string(payload.as_bytes(), "prompt_id").as_deref(),
            Some("p-1")
        );
        assert_eq!(
            lift_plain_string(payload.as_bytes(), "permission_mode").as_deref(),
            Some("default")
        );
        assert_eq!(
            lift_plain_string(r#"{"prompt_id":"a\"b"}"#.as_bytes(), "prompt_id"),
            None
        );
        assert_eq!(
            lift_plain_string(r#"{"x":1}"#.as_bytes(), "prompt_id"),
            None
        );
        assert_eq!(
            lift_plain_string(r#"{"prompt_id" : "spaced"}"#.as_bytes(), "prompt_id").as_deref(),
            Some("spaced")
        );
    }

    #[test]
    fn a_main_prompt_titles_its_session() {
        let line = r#"{"v":1,"id":"e3","ts":5,"machine":"m","session_id":"s","hook":"UserPromptSubmit","payload":{"prompt_id":"p","prompt":"  fix   the\nbuild  "}}"#;
        let event = NewEvent::from_envelope_remembering(
            envelope::parse_line(line.as_bytes()).unwrap(),
            Source::Socket,
            &default_redactor(),
            Some(&mut KnownSessions::default()),
        );
        assert_eq!(event.title.as_deref(), Some("fix the build"));
        assert_eq!(event.row.prompt_id.as_deref(), Some("p"));
        assert_eq!(
            event.transitions.session.unwrap().state,
            state::State::Working
        );
        assert_eq!(
            shorten_title(&"x".repeat(500)).chars().count(),
            TITLE_CHARS + 1
        );
    }

    #[test]
    fn each_redactor_applies_its_own_privacy_level() {
        let line = r#"{"v":1,"id":"e5","ts":5,"machine":"m","session_id":"s","hook":"UserPromptSubmit","payload":{"prompt":"the secret plan"}}"#;
        let with = |privacy| {
            let redactor = Redactor::new(RedactionSettings {
                privacy,
                ..RedactionSettings::default()
            });
            NewEvent::from_envelope_remembering(
                envelope::parse_line(line.as_bytes()).unwrap(),
                Source::Socket,
                &redactor,
                None,
            )
        };
        // Built in either order, neither leaks into the other.
        let metadata = with(Privacy::Metadata);
        let full = with(Privacy::Full);
        assert!(full.row.payload.contains("the secret plan"));
        assert!(!metadata.row.payload.contains("the secret plan"));
    }
}
