//! The collector socket's line protocol.
//!
//! A client writes one envelope per line (`\n`-terminated JSON). For each line,
//! in order, the collector answers exactly one line: [`OK_REPLY`] once that
//! event is committed to SQLite (or was already stored), or
//! `error <reason>` when it rejects the line. A client that does not get `ok`
//! must treat the event as not delivered.

/// The reply to a line whose event is committed.
pub const OK_REPLY: &str = "ok";

/// The prefix of the reply to a rejected line, followed by a human reason.
pub const ERROR_REPLY_PREFIX: &str = "error ";

/// The longest line the collector accepts, newline excluded. The emitter
/// shortens payloads well below this (see [`crate::envelope::MAX_PAYLOAD_BYTES`]).
pub const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

/// Formats the reply to a rejected line; the reason is kept on one line.
pub fn error_reply(reason: &str) -> String {
    let one_line: String = reason
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    format!("{ERROR_REPLY_PREFIX}{one_line}\n")
}
