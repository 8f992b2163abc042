//! What a session page lists from the session's events (its tool calls,
//! hook counts and prompts), read in one walk of the session's events.
//!
//! Reading the `tool_calls` and `prompts` views instead cost one probe of
//! the `tool_use_id` index per call and seven probes of the `prompt_id`
//! index per prompt, each fetching the events it found, plus a third pass
//! for the hook counts: about 80 ms for a session of 1,000 prompts and
//! 20,000 events (issue 21 item 4). One pass through the (session_id, seq)
//! index fetches each event once, extracts a payload field only where a
//! list shows it, and joins in memory.
//!
//! Invariant: the rows are the ones the views give, in the same order.
//! Calls: each `PreToolUse`, once per `PostToolUse`/`PostToolUseFailure`
//! of the same `tool_use_id` in the session (by the outcome's seq), else
//! once as pending; in seq order. Prompts: each `UserPromptSubmit` with a
//! `prompt_id`, by start, its figures counted over the session's events of
//! the same `prompt_id`.
//!
//! The page reads a session again each time the sessions list is redrawn
//! (every few seconds while events arrive), so each HTTP thread keeps its
//! last walk of a long session ([`CACHED_FROM_EVENTS`] events or more) and
//! reads only the events stored since. Events are never updated and seqs
//! only grow, so a session's first seq, last seq and event count tell
//! whether the kept walk still holds exactly its events (an [`Extent`]);
//! anything else (a deletion, another database) walks afresh. Prompts'
//! cost and tokens are summed afresh on every read: a usage row can
//! change without a new event.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use hooktrail_shared::envelope::HookEvent;
use rusqlite::types::{Type, Value};
use rusqlite::Connection;

use super::sessions::{CallOutcome, PromptRow, StoredError, ToolCallRow};

/// The most prompts one session page lists.
const PROMPTS_LISTED: usize = 500;

/// A session page's lists, from [`session_activity`].
#[derive(Debug, Default, PartialEq)]
pub(crate) struct SessionActivity {
    /// Every tool call, in seq order (the `tool_calls` view's rows).
    pub(crate) calls: Vec<ToolCallRow>,
    /// Events per hook name, by name.
    pub(crate) hooks: Vec<(String, i64)>,
    /// The first [`PROMPTS_LISTED`] prompts, by start (the `prompts` view's rows).
    pub(crate) prompts: Vec<PromptRow>,
}

/// A session with fewer events is walked afresh on every read: that
/// costs a few milliseconds, and keeping it would only cost memory.
const CACHED_FROM_EVENTS: usize = 2_000;

/// Which events of a session a walk holds. Since events are never updated
/// and a new event always takes a seq above every stored one, an equal
/// extent means the same events, and a later `last` with `count` grown by
/// exactly the events after the old `last` means those were only added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Extent {
    first: i64,
    last: i64,
    count: i64,
}

/// One thread's walk of one session, kept for its next read.
struct KeptWalk {
    /// The database file (a connection's path).
    database: String,
    session_id: String,
    extent: Extent,
    events: Vec<Walked>,
    hooks: BTreeMap<String, i64>,
}

thread_local! {
    /// The last long session this HTTP thread walked.
    static KEPT_WALK: RefCell<Option<KeptWalk>> = const { RefCell::new(None) };
}

/// One event of the walk, with the one payload field a list reads.
struct Walked {
    seq: i64,
    ts: i64,
    hook: HookEvent,
    agent_id: Option<String>,
    tool: Option<String>,
    tool_use_id: Option<String>,
    prompt_id: Option<String>,
    /// A prompt's text, an outcome's or a `StopFailure`'s `error`, as stored.
    detail: Value,
    /// An outcome's `duration_ms`, as stored.
    duration: Value,
}

/// Reads `session_id`'s tool calls, hook counts and prompts in one pass
/// over its events (see the module's invariant).
pub(crate) fn session_activity(
    connection: &Connection,
    session_id: &str,
) -> rusqlite::Result<SessionActivity> {
    let kept = current_walk(connection, session_id)?;
    let activity = SessionActivity {
        calls: tool_calls(&kept.events)?,
        hooks: kept
            .hooks
            .iter()
            .map(|(hook, count)| (hook.clone(), *count))
            .collect(),
        prompts: prompts(connection, session_id, &kept.events)?,
    };
    if kept.events.len() >= CACHED_FROM_EVENTS && !kept.database.is_empty() {
        KEPT_WALK.with(|slot| *slot.borrow_mut() = Some(kept));
    }
    Ok(activity)
}

/// The session's events as they are now: this thread's kept walk when it
/// still holds them, extended by the events stored since when only those
/// were added, else a fresh walk.
fn current_walk(connection: &Connection, session_id: &str) -> rusqlite::Result<KeptWalk> {
    let database = connection.path().unwrap_or_default().to_owned();
    let now = extent(connection, session_id)?;
    let kept = KEPT_WALK
        .with(|slot| slot.borrow_mut().take())
        .filter(|kept| {
            kept.database == database
                && kept.session_id == session_id
                && kept.extent.first == now.first
                && kept.extent.last <= now.last
        });
    if let Some(mut kept) = kept {
        if kept.extent == now {
            return Ok(kept);
        }
        let before = kept.events.len() as i64;
        walk(connection, session_id, kept.extent.last, &mut kept)?;
        if kept.extent.count + kept.events.len() as i64 - before == now.count {
            kept.extent = now;
            return Ok(kept);
        }
    }
    let mut fresh = KeptWalk {
        database,
        session_id: session_id.to_owned(),
        extent: now,
        events: Vec::new(),
        hooks: BTreeMap::new(),
    };
    walk(connection, session_id, i64::MIN, &mut fresh)?;
    Ok(fresh)
}

/// The session's first and last seq and its event count, from the
/// (session_id, seq) index alone.
fn extent(connection: &Connection, session_id: &str) -> rusqlite::Result<Extent> {
    connection
        .prepare_cached(
            "SELECT COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0), COUNT(*) FROM events WHERE session_id = ?1",
        )?
        .query_row([session_id], |row| {
            Ok(Extent {
                first: row.get(0)?,
                last: row.get(1)?,
                count: row.get(2)?,
            })
        })
}

/// Appends the session's events after seq `after` to `kept`, in seq
/// order; payload fields are extracted only for prompts, tool outcomes and
/// `StopFailure`. Counts each hook name as stored (a name this version
/// does not know counts under its own name).
fn walk(
    connection: &Connection,
    session_id: &str,
    after: i64,
    kept: &mut KeptWalk,
) -> rusqlite::Result<()> {
    let mut statement = connection.prepare_cached(
        "SELECT seq, ts, hook, agent_id, tool, tool_use_id, prompt_id, \
         CASE hook WHEN 'UserPromptSubmit' THEN json_extract(payload, '$.prompt') \
                   WHEN 'PostToolUse' THEN json_extract(payload, '$.error') \
                   WHEN 'PostToolUseFailure' THEN json_extract(payload, '$.error') \
                   WHEN 'StopFailure' THEN json_extract(payload, '$.error') END, \
         CASE hook WHEN 'PostToolUse' THEN json_extract(payload, '$.duration_ms') \
                   WHEN 'PostToolUseFailure' THEN json_extract(payload, '$.duration_ms') END \
         FROM events WHERE session_id = ?1 AND seq > ?2 ORDER BY seq",
    )?;
    let mut rows = statement.query(rusqlite::params![session_id, after])?;
    while let Some(row) = rows.next()? {
        let hook = row.get_ref(2)?.as_str()?;
        match kept.hooks.get_mut(hook) {
            Some(count) => *count += 1,
            None => {
                kept.hooks.insert(hook.to_owned(), 1);
            }
        }
        kept.events.push(Walked {
            seq: row.get(0)?,
            ts: row.get(1)?,
            hook: HookEvent::from_name(hook),
            agent_id: row.get(3)?,
            tool: row.get(4)?,
            tool_use_id: row.get(5)?,
            prompt_id: row.get(6)?,
            detail: row.get(7)?,
            duration: row.get(8)?,
        });
    }
    Ok(())
}

/// Whether a hook ends a call, and how.
fn call_outcome(hook: HookEvent) -> Option<CallOutcome> {
    match hook {
        HookEvent::PostToolUse => Some(CallOutcome::Ok),
        HookEvent::PostToolUseFailure => Some(CallOutcome::Failed),
        _ => None,
    }
}

/// The calls, joined as the `tool_calls` view joins them.
fn tool_calls(events: &[Walked]) -> rusqlite::Result<Vec<ToolCallRow>> {
    let mut outcomes: HashMap<&str, Vec<&Walked>> = HashMap::new();
    for event in events {
        if let (Some(_), Some(id)) = (call_outcome(event.hook), event.tool_use_id.as_deref()) {
            outcomes.entry(id).or_default().push(event);
        }
    }
    let mut calls = Vec::new();
    for pre in events.iter().filter(|e| e.hook == HookEvent::PreToolUse) {
        let posts = pre.tool_use_id.as_deref().and_then(|id| outcomes.get(id));
        match posts {
            Some(posts) => {
                for post in posts {
                    calls.push(call_row(pre, Some(post))?);
                }
            }
            None => calls.push(call_row(pre, None)?),
        }
    }
    Ok(calls)
}

/// One call: its `PreToolUse` and the outcome it was joined to.
fn call_row(pre: &Walked, post: Option<&Walked>) -> rusqlite::Result<ToolCallRow> {
    let (duration_ms, error) = match post {
        Some(post) => (
            duration(&post.duration, post.ts - pre.ts)?,
            stored_error(&post.detail),
        ),
        None => (None, None),
    };
    Ok(ToolCallRow {
        seq: pre.seq,
        agent_id: pre.agent_id.clone(),
        tool: pre.tool.clone(),
        tool_use_id: pre.tool_use_id.clone(),
        started_ts: pre.ts,
        finished_ts: post.map(|post| post.ts),
        duration_ms,
        outcome: post
            .and_then(|post| call_outcome(post.hook))
            .unwrap_or(CallOutcome::Pending),
        error,
    })
}

/// The hook's `duration_ms`, else the times' difference. A duration that
/// is text fails the read, as reading the view's column as `f64` did.
fn duration(stored: &Value, elapsed: i64) -> rusqlite::Result<Option<f64>> {
    match stored {
        Value::Null => Ok(Some(elapsed as f64)),
        Value::Integer(ms) => Ok(Some(*ms as f64)),
        Value::Real(ms) => Ok(Some(*ms)),
        Value::Text(_) => Err(rusqlite::Error::InvalidColumnType(
            6,
            "duration_ms".to_owned(),
            Type::Text,
        )),
        Value::Blob(_) => Err(rusqlite::Error::InvalidColumnType(
            6,
            "duration_ms".to_owned(),
            Type::Blob,
        )),
    }
}

fn stored_error(stored: &Value) -> Option<StoredError> {
    match stored {
        Value::Text(text) => Some(StoredError::Text(text.clone())),
        Value::Integer(number) => Some(StoredError::Integer(*number)),
        Value::Real(number) => Some(StoredError::Real(*number)),
        _ => None,
    }
}

/// What one prompt led to, counted over the session's events of its id.
#[derive(Default)]
struct PromptFigures<'e> {
    /// The first event that ended it (main agent: `Stop`, `StopFailure`,
    /// `SessionEnd`), by ts then seq.
    ended_by: Option<&'e Walked>,
    /// Its first `StopFailure` (any agent), whose `error` it shows.
    failure: Option<&'e Walked>,
    tool_calls: i64,
    tool_failures: i64,
}

impl<'e> PromptFigures<'e> {
    fn add(&mut self, event: &'e Walked) {
        match event.hook {
            HookEvent::PreToolUse => self.tool_calls += 1,
            HookEvent::PostToolUseFailure => self.tool_failures += 1,
            _ => {}
        }
        if event.hook == HookEvent::StopFailure && self.failure.is_none() {
            self.failure = Some(event);
        }
        let ends = matches!(
            event.hook,
            HookEvent::Stop | HookEvent::StopFailure | HookEvent::SessionEnd
        );
        if ends && event.agent_id.is_none() && self.ended_by.is_none_or(|done| event.ts < done.ts) {
            self.ended_by = Some(event);
        }
    }
}

/// The first [`PROMPTS_LISTED`] prompts by start, with their figures; cost
/// and tokens are summed as the `prompts` view sums them.
fn prompts(
    connection: &Connection,
    session_id: &str,
    events: &[Walked],
) -> rusqlite::Result<Vec<PromptRow>> {
    let mut figures: HashMap<&str, PromptFigures<'_>> = HashMap::new();
    for event in events {
        if let Some(prompt_id) = event.prompt_id.as_deref() {
            figures.entry(prompt_id).or_default().add(event);
        }
    }
    let mut submits: Vec<&Walked> = events
        .iter()
        .filter(|e| e.hook == HookEvent::UserPromptSubmit && e.prompt_id.is_some())
        .collect();
    submits.sort_by_key(|submit| submit.ts);
    let mut usage = connection.prepare_cached(
        "SELECT SUM(cost_usd), CASE WHEN COUNT(*) > 0 THEN CAST(TOTAL(input_tokens + output_tokens \
         + cache_write_5m_tokens + cache_write_1h_tokens + cache_read_tokens) AS INTEGER) END \
         FROM usage INDEXED BY usage_prompt WHERE prompt_id = ?1 AND session_id IS ?2",
    )?;
    let mut rows = Vec::with_capacity(submits.len().min(PROMPTS_LISTED));
    for submit in submits.into_iter().take(PROMPTS_LISTED) {
        let prompt_id = submit.prompt_id.clone().unwrap_or_default();
        let found = figures.get(prompt_id.as_str());
        let (cost_usd, tokens) = usage.query_row([prompt_id.as_str(), session_id], |row| {
            Ok((row.get(0)?, super::lenient_count(row, 1)?))
        })?;
        rows.push(PromptRow {
            prompt: text_or_fail(&submit.detail, "prompt")?,
            started_ts: submit.ts,
            ended_ts: found.and_then(|f| f.ended_by).map(|done| done.ts),
            ended_by: found
                .and_then(|f| f.ended_by)
                .map(|done| done.hook.name().to_owned()),
            error: match found.and_then(|f| f.failure) {
                Some(failure) => text_or_fail(&failure.detail, "error")?,
                None => None,
            },
            tool_calls: found.map_or(0, |f| f.tool_calls),
            tool_failures: found.map_or(0, |f| f.tool_failures),
            cost_usd,
            tokens,
            prompt_id,
        });
    }
    Ok(rows)
}

/// A text field: text or nothing; another type fails the read, as reading
/// the view's column as a string did.
fn text_or_fail(stored: &Value, name: &str) -> rusqlite::Result<Option<String>> {
    match stored {
        Value::Null => Ok(None),
        Value::Text(text) => Ok(Some(text.clone())),
        other => Err(rusqlite::Error::InvalidColumnType(
            0,
            name.to_owned(),
            other.data_type(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::types::ValueRef;

    use super::*;

    const SESSION: &str = "s-long";

    fn database(dir: &std::path::Path) -> Connection {
        let mut connection = Connection::open(dir.join("events.db")).unwrap();
        // Thousands of single-row inserts: no sync each.
        connection
            .pragma_update(None, "synchronous", "OFF")
            .unwrap();
        crate::store::schema::migrate(&mut connection).unwrap();
        connection
    }

    /// Stores one event of [`SESSION`]; its seq is the next one.
    fn add(
        connection: &Connection,
        ts: i64,
        hook: &str,
        fields: (Option<&str>, Option<&str>, &str),
        payload: &str,
    ) {
        let (agent, tool_use, prompt) = fields;
        connection
            .execute(
                "INSERT INTO events (id, ts, received_at, machine, session_id, agent_id, hook, tool, tool_use_id, \
                 source, payload, prompt_id) VALUES (?1, ?2, ?2, 'box', ?3, ?4, ?5, 'Bash', ?6, 'hook', ?7, ?8)",
                rusqlite::params![format!("e{ts}-{hook}"), ts, SESSION, agent, hook, tool_use, payload, prompt],
            )
            .unwrap();
    }

    /// A prompt with calls that succeed, fail, never finish, finish twice
    /// and report odd durations, a subagent's stop, and a hook this
    /// version does not know.
    fn add_prompt(connection: &Connection, index: i64) {
        let ts = index * 1_000;
        let prompt = format!("p{index}");
        let id = |call: i64| format!("tu-{index}-{call}");
        add(
            connection,
            ts,
            "UserPromptSubmit",
            (None, None, &prompt),
            &format!(r#"{{"prompt":"step {index}"}}"#),
        );
        for call in 0..4 {
            add(
                connection,
                ts + call * 10 + 1,
                "PreToolUse",
                (None, Some(&id(call)), &prompt),
                "{}",
            );
        }
        add(
            connection,
            ts + 50,
            "PostToolUse",
            (None, Some(&id(0)), &prompt),
            r#"{"duration_ms":7}"#,
        );
        add(
            connection,
            ts + 60,
            "PostToolUse",
            (None, Some(&id(1)), &prompt),
            r#"{"duration_ms":2.5}"#,
        );
        add(
            connection,
            ts + 70,
            "PostToolUseFailure",
            (None, Some(&id(1)), &prompt),
            r#"{"error":"boom"}"#,
        );
        add(
            connection,
            ts + 80,
            "PostToolUseFailure",
            (None, Some(&id(2)), &prompt),
            r#"{"error":3}"#,
        );
        add(
            connection,
            ts + 90,
            "Stop",
            (Some("agent-1"), None, &prompt),
            "{}",
        );
        add(
            connection,
            ts + 95,
            "FutureHook",
            (None, None, &prompt),
            "{}",
        );
        if index % 3 == 0 {
            add(
                connection,
                ts + 99,
                "StopFailure",
                (None, None, &prompt),
                r#"{"error":"rate limited"}"#,
            );
        } else {
            add(connection, ts + 99, "Stop", (None, None, &prompt), "{}");
        }
    }

    /// What the session page read before the walk: the views.
    fn from_views(connection: &Connection) -> SessionActivity {
        let mut calls = connection
            .prepare(
                "SELECT seq, agent_id, tool, tool_use_id, started_ts, finished_ts, duration_ms, outcome, error \
                 FROM tool_calls WHERE session_id = ?1 ORDER BY seq",
            )
            .unwrap();
        let calls = calls
            .query_map([SESSION], |row| {
                Ok(ToolCallRow {
                    seq: row.get(0)?,
                    agent_id: row.get(1)?,
                    tool: row.get(2)?,
                    tool_use_id: row.get(3)?,
                    started_ts: row.get(4)?,
                    finished_ts: row.get(5)?,
                    duration_ms: row.get(6)?,
                    outcome: match row.get_ref(7)?.as_str()? {
                        "ok" => CallOutcome::Ok,
                        "failed" => CallOutcome::Failed,
                        _ => CallOutcome::Pending,
                    },
                    error: match row.get_ref(8)? {
                        ValueRef::Text(text) => Some(StoredError::Text(
                            String::from_utf8_lossy(text).into_owned(),
                        )),
                        ValueRef::Integer(number) => Some(StoredError::Integer(number)),
                        _ => None,
                    },
                })
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut hooks = connection
            .prepare("SELECT hook, COUNT(*) FROM events WHERE session_id = ?1 GROUP BY hook ORDER BY hook")
            .unwrap();
        let hooks = hooks
            .query_map([SESSION], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut prompts = connection
            .prepare(
                "SELECT prompt_id, prompt, started_ts, ended_ts, outcome, error, tool_calls, tool_failures, cost_usd, tokens \
                 FROM prompts WHERE session_id = ?1 ORDER BY started_ts LIMIT 500",
            )
            .unwrap();
        let prompts = prompts
            .query_map([SESSION], |row| {
                Ok(PromptRow {
                    prompt_id: row.get(0)?,
                    prompt: row.get(1)?,
                    started_ts: row.get(2)?,
                    ended_ts: row.get(3)?,
                    ended_by: row.get(4)?,
                    error: row.get(5)?,
                    tool_calls: row.get(6)?,
                    tool_failures: row.get(7)?,
                    cost_usd: row.get(8)?,
                    tokens: row.get::<_, Option<i64>>(9)?.unwrap_or(0),
                })
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        SessionActivity {
            calls,
            hooks,
            prompts,
        }
    }

    /// A read on a thread of its own: no kept walk.
    fn fresh_read(dir: &std::path::Path) -> SessionActivity {
        let dir = dir.to_owned();
        std::thread::spawn(move || session_activity(&database(&dir), SESSION).unwrap())
            .join()
            .unwrap()
    }

    #[test]
    fn the_walk_gives_the_views_rows_fresh_extended_and_after_a_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let connection = database(dir.path());
        for index in 0..200 {
            add_prompt(&connection, index);
        }
        connection
            .execute(
                "INSERT INTO usage (key, message_id, session_id, prompt_id, model, input_tokens, output_tokens, cost_usd, origin) \
                 VALUES ('u1', 'u1', ?1, 'p3', 'm', 10, 5, 0.25, 'hook')",
                [SESSION],
            )
            .unwrap();
        let first = session_activity(&connection, SESSION).unwrap();
        assert_eq!(first, from_views(&connection));
        assert!(
            first.calls.len() >= 800 && first.prompts.len() == 200,
            "{}",
            first.calls.len()
        );
        assert!(
            KEPT_WALK.with(|slot| slot.borrow().is_some()),
            "a long session's walk is kept"
        );

        // New events, one finishing a call of the first prompt: the kept
        // walk is extended, and the join sees the late outcome.
        add(
            &connection,
            500_000,
            "PostToolUse",
            (None, Some("tu-0-3"), "p0"),
            r#"{"duration_ms":1}"#,
        );
        add_prompt(&connection, 600);
        let extended = session_activity(&connection, SESSION).unwrap();
        assert_eq!(extended, from_views(&connection));
        assert_eq!(extended, fresh_read(dir.path()));
        // Calls of p0: tu-0-0, tu-0-1 twice (two outcomes), tu-0-2, tu-0-3.
        assert_eq!(extended.calls[4].outcome, CallOutcome::Ok);

        // The oldest events deleted (retention): a fresh walk.
        connection
            .execute("DELETE FROM events WHERE ts < 5000", [])
            .unwrap();
        let after_delete = session_activity(&connection, SESSION).unwrap();
        assert_eq!(after_delete, from_views(&connection));
        assert_ne!(after_delete, extended);
    }
}
