//! hooktrail's own library: what the emitter and the collector must agree on.
//!
//! Layout:
//! - [`budget`]: spending limits: which apply to an event and the verdict
//!   for a spend (pure; the collector measures the spend).
//! - [`envelope`]: the v1 envelope (DESIGN §3), the wire type that mirrors
//!   Claude Code's hook JSON, the older camelCase envelope, and the shortening
//!   of oversized payloads.
//! - [`event_id`]: UUID v7 event ids from the `getrandom` system call.
//! - [`config`]: the one JSON config file of both programs, with environment
//!   overrides and the refusal of a world-readable file that holds a password.
//! - [`paths`]: XDG locations and private (0700) directories.
//! - [`spool`]: the append-only JSONL spool, safe against concurrent emitters
//!   and a concurrent drainer.
//! - [`protocol`]: the collector socket's line protocol.
//! - [`regular_file`]: opens that never stall on a FIFO or a device, with a
//!   size bound: every file a hook reads or writes goes through it.
//! - [`transcript`]: token usage read from Claude Code's transcripts, counted
//!   once per API response.
//! - [`time`]: the clock, RFC 3339 timestamps and civil dates; imports
//!   nothing of the crate, so no module needs another for a date.
//! - [`redact`]: secrets out of payloads before they leave the machine: the
//!   built-in detectors, the user's patterns and drop rules, privacy levels.
//!
//! - [`approvals`]: the `approvals` settings (when a `PermissionRequest`
//!   hook waits for a decision made on the page).
//! - [`signed`]: the shared key and the signed messages (decisions) the
//!   collector sends back to a waiting hook.
//!
//! **Invariant:** this crate does no network I/O. It reads and writes local
//! files only, so both programs can use it on their hot paths.

pub mod approvals;
pub mod budget;
pub mod config;
pub mod envelope;
pub mod event_id;
pub mod paths;
pub mod protocol;
pub mod redact;
pub mod regular_file;
pub mod signed;
pub mod spool;
pub mod time;
pub mod transcript;
