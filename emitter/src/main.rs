//! `hooktrail-emit`: the hook that Claude Code runs on every hook event.
//!
//! Layout (one module per concern, hot path first):
//! - [`cli`]: the command line. No arguments means hook mode; `install`,
//!   `uninstall`, `check`, `--version` and `--help` are for people.
//! - [`hook`]: hook mode. Reads all of stdin, builds the envelope, and
//!   delivers it to Redis, else the collector's socket, else the spool. Also
//!   the panic hook that spools what it can and exits 0.
//! - [`deadline`]: one time budget that every step of a delivery is cut from.
//! - [`redis`]: Redis URLs, a connection (DNS, TCP, TLS, AUTH) under one
//!   deadline, and hand-written RESP.
//! - [`socket`]: one line to the collector's Unix socket, waiting for `ok`.
//! - [`breaker`]: the state file that makes hooks skip a failing Redis.
//! - [`forward`]: after a Redis delivery, sends what the spool holds.
//! - [`diag`]: diagnostics, to stderr with `HOOKTRAIL_DEBUG=1` or to the file
//!   named by `HOOKTRAIL_LOG`, and nowhere otherwise.
//! - [`install`]: merges (and removes) hook entries in Claude Code settings.
//! - [`check`]: explains to a person what a hook would do now.
//! - [`redact`]: shows a person what a payload becomes and which redaction
//!   rules fired.
//!
//! **Invariants of hook mode** (DESIGN §2): nothing is written to stdout,
//! the exit code is always 0, stdin is always read to its end, and the event is
//! delivered or spooled. Redis gets one 1-second budget for everything, the
//! socket a short one, so a hook never takes much more than a second.

mod breaker;
mod check;
mod cli;
mod deadline;
mod diag;
mod forward;
mod hook;
mod install;
mod redact;
mod redis;
mod socket;

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(cli::run())
}
