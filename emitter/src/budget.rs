//! Budgets at the hook (issue 19, DESIGN §2 "Budgets"): on `PreToolUse` and
//! `UserPromptSubmit` only, and only when the config has budgets, the hook
//! learns the collector's verdict within the delivery it already does and
//! refuses the work when a verified verdict says the limit is reached.
//!
//! - Redis: one `MGET` of `<key>:verdict:session:<id>`,
//!   `<key>:verdict:machine:<machine>` and `<key>:verdict:all`, pipelined
//!   with the `XADD` (one round trip, as without budgets).
//! - The socket: the envelope carries `budget_check`, and the collector's
//!   `ok` carries the signed refusal on the same line.
//! - The spool: nothing can be learned; `budgets_offline` decides (allow by
//!   default, logged).
//!
//! **Fail closed on trust, open on availability**: a verdict acts only when
//! its signature, kind, subject and expiry check out; anything else is no
//! verdict. Every other event pays one comparison ([`prepare`]).

use std::io::Write;

use hooktrail_shared::budget::Offline;
use hooktrail_shared::config::{Config, RedisConfig};
use hooktrail_shared::envelope::{Envelope, HookEvent};
use hooktrail_shared::signed::{Expected, Key, Kind, SignedMessage, Verdict};
use hooktrail_shared::time::now_millis;

use crate::diag::debug;
use crate::redis::{encode, Reply};

/// Which guarded event this is: they refuse differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guarded {
    /// `PreToolUse` (the `Agent` tool included): `permissionDecision`.
    ToolCall,
    /// `UserPromptSubmit`: `decision: block`.
    Prompt,
}

/// What a guarded event needs to act on a verdict.
pub struct Check {
    /// Which event.
    guarded: Guarded,
    /// The event's session: the subject of a session verdict.
    session_id: String,
    /// Its machine: the subject of a machine verdict.
    machine: String,
    /// Where the key that verifies verdicts is: read only when a verdict
    /// came back, so the common case (no refusal) opens no file.
    key_file: std::path::PathBuf,
    /// What to do when the collector cannot be asked.
    offline: Offline,
}

/// `Some` for a `PreToolUse` or `UserPromptSubmit` (`event`, the
/// envelope's) when budgets are configured; marks the envelope with `budget_check` so the socket's `ok`
/// carries the verdict. The key is read later, only if a verdict arrives.
pub fn prepare(config: &Config, event: HookEvent, envelope: &mut Envelope) -> Option<Check> {
    let guarded = match event {
        HookEvent::PreToolUse => Guarded::ToolCall,
        HookEvent::UserPromptSubmit => Guarded::Prompt,
        _ => return None,
    };
    if config.budgets.is_empty() {
        return None;
    }
    envelope.budget_check = true;
    Some(Check {
        guarded,
        session_id: envelope.session_id.clone().unwrap_or_default(),
        machine: envelope.machine.clone(),
        key_file: config.approvals.key_file.clone(),
        offline: config.budgets.offline,
    })
}

/// Appends the `MGET` of the three verdict keys to `commands` (after the
/// `XADD`, so both go in one write and come back in one read).
pub fn encode_query(commands: &mut Vec<u8>, redis: &RedisConfig, check: &Check) {
    let prefix = &redis.key;
    let session = format!("{prefix}:verdict:session:{}", check.session_id);
    let machine = format!("{prefix}:verdict:machine:{}", check.machine);
    let all = format!("{prefix}:verdict:all");
    encode(
        commands,
        &[
            b"MGET",
            session.as_bytes(),
            machine.as_bytes(),
            all.as_bytes(),
        ],
    );
}

/// Acts on the `MGET` reply: the first of the session's, the machine's and
/// the global verdict that verifies.
pub fn act_on_redis(check: &Check, reply: Option<&Reply>) {
    let Some(Reply::Array(Some(values))) = reply else {
        debug!("budgets: no verdict reply from Redis");
        return;
    };
    let subjects = [
        check.session_id.clone(),
        format!("machine:{}", check.machine),
        "*".to_owned(),
    ];
    for (value, subject) in values.iter().zip(&subjects) {
        if let Reply::Bulk(Some(line)) = value {
            if act_on(check, line, subject) {
                return;
            }
        }
    }
}

/// Acts on what followed `ok ` on the socket's reply line, if anything.
pub fn act_on_socket(check: &Check, verdict: Option<&[u8]>) {
    if let Some(line) = verdict {
        act_on(check, line, &check.session_id);
    }
}

/// The event went to the spool: no verdict could be learned.
pub fn act_offline(check: &Check) {
    match check.offline {
        Offline::Allow => {
            debug!("budgets: the collector could not be asked; allowed (budgets_offline)")
        }
        Offline::Deny => print(
            check,
            Verdict::Deny,
            "hooktrail: the collector cannot be reached and budgets_offline is \"deny\"",
        ),
    }
}

/// Verifies one signed verdict for `subject` and, when it checks out,
/// refuses the work. Returns whether it acted.
fn act_on(check: &Check, line: &[u8], subject: &str) -> bool {
    let Some(message) = SignedMessage::parse(line) else {
        debug!("budgets: ignored a verdict that is not a signed message");
        return false;
    };
    let key = match Key::load(&check.key_file) {
        Ok(key) => key,
        Err(error) => {
            // No key, no verdict that could be trusted: the work goes on.
            debug!("budgets: ignored a verdict: {error}");
            return false;
        }
    };
    let expected = Expected {
        kind: Kind::Budget,
        event_id: "",
        session_id: subject,
        input_hash: "",
    };
    if let Err(rejection) = message.verify(&key, &expected, now_millis().max(0) as u64) {
        debug!("budgets: ignored a verdict: {rejection:?}");
        return false;
    }
    match message.verdict {
        Verdict::Deny | Verdict::Ask => {
            print(check, message.verdict, &message.reason);
            true
        }
        _ => false,
    }
}

/// Writes Claude Code's own refusal for the guarded event (DESIGN §2: one of
/// the two places hook mode writes stdout).
fn print(check: &Check, verdict: Verdict, reason: &str) {
    let output = match (check.guarded, verdict) {
        (Guarded::ToolCall, Verdict::Ask) => serde_json::json!({"hookSpecificOutput": {
            "hookEventName": HookEvent::PreToolUse.name(),
            "permissionDecision": "ask",
            "permissionDecisionReason": reason,
        }}),
        (Guarded::ToolCall, _) => serde_json::json!({"hookSpecificOutput": {
            "hookEventName": HookEvent::PreToolUse.name(),
            "permissionDecision": "deny",
            "permissionDecisionReason": reason,
        }}),
        // A prompt was typed by the person, who is in the loop already: an
        // `ask` budget lets it through; a `deny` one blocks it.
        (Guarded::Prompt, Verdict::Ask) => return,
        (Guarded::Prompt, _) => serde_json::json!({"decision": "block", "reason": reason}),
    };
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(output.to_string().as_bytes())
        .and_then(|()| stdout.flush());
    debug!("budgets: refused ({}): {written:?}", verdict.as_str());
}
