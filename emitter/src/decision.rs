//! Remote approval (issue 18, DESIGN §2 "Remote approval"): on a
//! `PermissionRequest`, and only when `approvals.wait` says so, the hook
//! waits for a decision made on the page, after delivering the event as
//! usual, and prints Claude Code's own `PermissionRequest` output for a
//! decision it has verified.
//!
//! - Redis: `BLPOP <key>:decision:<event_id>` on the connection that carried
//!   the `XADD`, within the wait's deadline.
//! - The socket: one more line on the connection that answered `ok`.
//! - The spool: no wait (the collector cannot have seen the event).
//!
//! Every other event pays one comparison of its `HookEvent` ([`prepare`]
//! returns at once): it reads no key file and builds nothing.
//!
//! **Fail closed on trust, open on availability**: a decision acts only if
//! its signature, kind, event, session, input hash and expiry check out
//! (`hooktrail_shared::signed`); no key, no decision in time, a forged,
//! replayed or unreadable one all end the same way as today: nothing on
//! stdout, exit 0, and Claude Code asks in the terminal (or, in `-p` mode,
//! refuses).
//!
//! Measured with the real CLI (DESIGN §2): the terminal's dialog does not wait
//! for this hook; the first answer wins, and a key pressed there ends the
//! waiting hook. So a person at the terminal is never held up by the wait.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hooktrail_shared::approvals::WaitPolicy;
use hooktrail_shared::config::{Config, RedisConfig};
use hooktrail_shared::envelope::{Envelope, HookEvent};
use hooktrail_shared::signed::{
    payload_input_hash, Expected, Key, Kind, SignedMessage, Verdict, MAX_MESSAGE_BYTES,
};
use hooktrail_shared::time::now_millis;

use crate::deadline::Deadline;
use crate::diag::debug;
use crate::redis::{encode, Connection, Failure, Reply};

/// How many unusable messages a wait skips before giving up: a stranger who
/// can write to Redis must not keep the hook busy, only fail to approve.
const MAX_MESSAGES_READ: usize = 8;

/// Everything a waiting hook needs once the event is delivered.
pub struct Waiting {
    /// Never or away: away waits only while the switch is on.
    pub policy: WaitPolicy,
    /// The envelope line marked with `wait_until`, sent instead of the plain
    /// one when the hook does wait (the spool always gets the plain line).
    pub line: String,
    /// The machine, for the away switch's Redis keys.
    machine: String,
    /// The event waited on.
    event_id: String,
    /// Its session, as the collector stored it.
    session_id: String,
    /// Hash of the redacted tool call sent.
    input_hash: String,
    /// The shared key that signs decisions.
    key: Key,
    /// The end of the wait (`approvals.wait_seconds` from the hook's start).
    deadline: Deadline,
}

/// Decides whether this event (`event`, the envelope's) waits. `None` for
/// every event but a
/// `PermissionRequest` whose tool the config lets wait and whose key can be
/// read; then the envelope line marked with `wait_until` is built too.
pub fn prepare(config: &Config, event: HookEvent, envelope: &mut Envelope) -> Option<Waiting> {
    if event != HookEvent::PermissionRequest {
        return None;
    }
    let approvals = &config.approvals;
    if !approvals.may_wait_for(envelope.tool.as_deref()) {
        return None;
    }
    let key = match Key::load(&approvals.key_file) {
        Ok(key) => key,
        Err(error) => {
            // Without the key no decision could be verified: do not wait.
            debug!("approvals: not waiting: {error}");
            return None;
        }
    };
    let input_hash = payload_input_hash(envelope.payload.get())?;
    let wait = Duration::from_secs(approvals.wait_seconds);
    envelope.wait_until = Some(now_millis() + wait.as_millis() as i64);
    let line = envelope.to_json();
    envelope.wait_until = None;
    Some(Waiting {
        policy: approvals.wait,
        line,
        machine: envelope.machine.clone(),
        event_id: envelope.id.clone(),
        session_id: envelope.session_id.clone().unwrap_or_default(),
        input_hash,
        key,
        deadline: Deadline::after(wait),
    })
}

/// With `wait = away`, asks Redis whether the away switch is on for this
/// machine or for all (`GET <key>:away:<machine>`, `GET <key>:away:*`), on
/// the connection that will carry the event. A failure here is a Redis
/// failure like any other.
pub fn away_on_redis(
    connection: &mut Connection,
    redis: &RedisConfig,
    waiting: &Waiting,
) -> Result<bool, Failure> {
    let mut commands = Vec::with_capacity(128);
    let machine_key = format!("{}:away:{}", redis.key, waiting.machine);
    let all_key = format!("{}:away:*", redis.key);
    encode(&mut commands, &[b"GET", machine_key.as_bytes()]);
    encode(&mut commands, &[b"GET", all_key.as_bytes()]);
    let replies = connection.request(&commands, 2)?;
    Ok(replies
        .iter()
        .any(|reply| matches!(reply, Reply::Bulk(Some(value)) if value.as_slice() == b"1")))
}

/// The file next to the collector's socket in which a local collector
/// mirrors the away switch for this machine (`1` = on).
pub fn away_file(socket: &Path) -> PathBuf {
    socket.with_extension("away")
}

/// With `wait = away` on the socket: whether the local collector's mirror
/// file says away. Read like the key file: ours, regular, small, no block.
pub fn away_on_socket(socket: &Path) -> bool {
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(away_file(socket))
    else {
        return false;
    };
    let usable = file
        .metadata()
        .is_ok_and(|m| m.is_file() && m.uid() == hooktrail_shared::paths::euid() && m.len() < 64);
    let mut text = String::new();
    usable && file.take(64).read_to_string(&mut text).is_ok() && text.trim() == "1"
}

/// Whether this hook waits, given the policy and (for away) the switch.
pub fn applies(waiting: Option<&Waiting>, away: impl FnOnce(&Waiting) -> bool) -> Option<&Waiting> {
    waiting.filter(|waiting| waiting.policy != WaitPolicy::Away || away(waiting))
}

/// Waits on Redis for the decision, on the connection that delivered the
/// event, and acts on the first one that verifies.
pub fn await_redis(connection: &mut Connection, redis: &RedisConfig, waiting: &Waiting) {
    let list = format!("{}:decision:{}", redis.key, waiting.event_id);
    connection.set_deadline(waiting.deadline);
    for _ in 0..MAX_MESSAGES_READ {
        // Redis must time out first, so its nil arrives before our read
        // deadline; BLPOP 0 would mean "forever".
        let Some(left) = waiting
            .deadline
            .remaining()
            .and_then(|left| left.checked_sub(Duration::from_millis(250)))
            .filter(|left| left.as_millis() >= 10)
        else {
            break;
        };
        let seconds = format!("{:.3}", left.as_secs_f64());
        let mut command = Vec::with_capacity(96);
        encode(
            &mut command,
            &[b"BLPOP", list.as_bytes(), seconds.as_bytes()],
        );
        match connection.request(&command, 1) {
            Ok(replies) => match replies.into_iter().next() {
                Some(Reply::Array(Some(mut pair))) if pair.len() == 2 => {
                    if let Some(Reply::Bulk(Some(message))) = pair.pop() {
                        if act_on(&message, waiting) {
                            return;
                        }
                    }
                }
                Some(Reply::Array(None) | Reply::Bulk(None)) => {
                    debug!("approvals: no decision in time");
                    return;
                }
                other => {
                    debug!("approvals: unexpected BLPOP reply {other:?}");
                    return;
                }
            },
            Err(failure) => {
                debug!("approvals: waiting on Redis: {failure}");
                return;
            }
        }
    }
}

/// Waits on the socket connection that answered `ok` for one more line, the
/// decision; `already` holds what arrived after the `ok` line.
pub fn await_socket(mut stream: UnixStream, mut already: Vec<u8>, waiting: &Waiting) {
    let mut read = 0;
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = already.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = already.drain(..=end).collect();
            read += 1;
            if act_on(&line[..end], waiting) || read >= MAX_MESSAGES_READ {
                return;
            }
        }
        if already.len() > MAX_MESSAGES_READ * MAX_MESSAGE_BYTES {
            debug!("approvals: the collector sent an overlong line");
            return;
        }
        let Ok(timeout) = waiting.deadline.timeout() else {
            debug!("approvals: no decision in time");
            return;
        };
        if stream.set_read_timeout(Some(timeout)).is_err() {
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                debug!("approvals: the collector closed the connection without a decision");
                return;
            }
            Ok(count) => already.extend_from_slice(&chunk[..count]),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => {
                debug!("approvals: waiting on the socket: {error}");
                return;
            }
        }
    }
}

/// Verifies one message and, when it checks out, prints the decision.
/// Returns whether it acted. Rejections are logged by reason only.
fn act_on(message: &[u8], waiting: &Waiting) -> bool {
    let Some(message) = SignedMessage::parse(message) else {
        debug!("approvals: ignored a message that is not a decision");
        return false;
    };
    let expected = Expected {
        kind: Kind::Permission,
        event_id: &waiting.event_id,
        session_id: &waiting.session_id,
        input_hash: &waiting.input_hash,
    };
    if let Err(rejection) = message.verify(&waiting.key, &expected, now_millis().max(0) as u64) {
        debug!("approvals: ignored a decision: {rejection:?}");
        return false;
    }
    let decision = match message.verdict {
        Verdict::Allow => serde_json::json!({"behavior": "allow"}),
        Verdict::Deny => serde_json::json!({
            "behavior": "deny",
            "message": deny_message(&message.by, &message.reason),
        }),
        Verdict::Ask | Verdict::Other => {
            debug!(
                "approvals: ignored a decision with verdict {:?}",
                message.verdict
            );
            return false;
        }
    };
    let output = serde_json::json!({"hookSpecificOutput": {
        "hookEventName": HookEvent::PermissionRequest.name(),
        "decision": decision,
    }});
    // The one place hook mode writes stdout (DESIGN §2).
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(output.to_string().as_bytes())
        .and_then(|()| stdout.flush());
    debug!(
        "approvals: {} by {:?}: {written:?}",
        message.verdict.as_str(),
        message.by
    );
    true
}

/// What Claude Code shows the model (and the transcript keeps) on a deny.
fn deny_message(by: &str, reason: &str) -> String {
    if reason.trim().is_empty() {
        format!("hooktrail: denied by {by}")
    } else {
        format!("hooktrail: denied by {by}: {reason}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deny_message_names_who_and_why() {
        assert_eq!(
            deny_message("owner", "not now"),
            "hooktrail: denied by owner: not now"
        );
        assert_eq!(deny_message("owner", " "), "hooktrail: denied by owner");
    }
}
