//! `hooktrail-emit`: the hook that Claude Code runs on every hook event.
//!
//! Layout (one module per concern, hot path first):
//! - [`cli`]: the command line. No arguments means hook mode; `install`,
//!   `uninstall`, `check`, `--version` and `--help` are for people.
//! - [`hook`]: hook mode. Reads all of stdin, builds the envelope, and
//!   delivers it to Redis, else the collector's socket, else the spool. Also
//!   the panic hook that spools what it can and exits 0.
//! - [`hookenv`]: the few variables hook mode reads, found in one pass over
//!   the environment.
//! - [`deadline`]: one time budget that every step of a delivery is cut from.
//! - [`redis`]: Redis URLs, a connection (DNS, TCP, TLS, AUTH) under one
//!   deadline, and hand-written RESP.
//! - [`socket`]: one line to the collector's Unix socket, waiting for `ok`.
//! - [`decision`]: on a `PermissionRequest` only, and only when
//!   `approvals.wait` says so, waits for a signed decision made on the page
//!   and prints Claude Code's own output for one it has verified.
//! - [`breaker`]: the state file that makes hooks skip a failing Redis.
//! - [`forward`]: after a Redis delivery, sends what the spool holds.
//! - [`usage`]: at turn boundaries only, the token usage the transcript
//!   gained since the last read, shipped in the envelope.
//! - [`diag`]: diagnostics, to stderr with `HOOKTRAIL_DEBUG=1` or to the file
//!   named by `HOOKTRAIL_LOG`, and nowhere otherwise.
//! - [`install`]: merges (and removes) hook entries in Claude Code settings.
//! - [`check`]: explains to a person what a hook would do now.
//! - [`plugin`]: the Claude Code plugin's hooks.json (generated from
//!   `install`'s list) and whether the plugin is active beside `install`.
//! - [`redact`]: shows a person what a payload becomes and which redaction
//!   rules fired.
//!
//! **Invariants of hook mode** (DESIGN §2): nothing is written to stdout
//! (but a verified decision, see [`decision`]),
//! the exit code is always 0, stdin is always read to its end, and the event is
//! delivered or spooled. Redis gets one 1-second budget for everything, the
//! socket a short one, so a hook never takes much more than a second.

// The entry point is the C `main`, not std's: see [`main`]. Unit tests keep
// the test harness's own entry.
#![cfg_attr(not(test), no_main)]

mod breaker;
mod budget;
mod check;
mod cli;
mod deadline;
mod decision;
mod diag;
mod forward;
mod hook;
mod hookenv;
mod install;
mod plugin;
mod redact;
mod redis;
mod socket;
mod telemetry;
mod usage;

/// The process entry, called by the C runtime instead of std's `lang_start`.
///
/// std's start-up does work a hook pays for on every event and never uses
/// (issue 12): it reads `/proc/self/maps` and sets up a signal stack with
/// `SIGSEGV`/`SIGBUS` handlers to report a stack overflow by name, among some
/// dozen system calls. What of it the emitter relies on is done here, and
/// nothing else:
/// - fds 0, 1 and 2 are made valid (`/dev/null` for a closed one), so no file
///   or socket the hook opens can become its stdout or stderr;
/// - `SIGPIPE` is ignored, so a collector or a stderr reader that goes away
///   is an error to handle, not the death of the hook.
///
/// `std::env::args` still works (glibc hands the arguments to std's
/// initializer), panics still run the panic hook (which spools the event and
/// exits 0), and stdout is flushed before returning (by [`cli::run`]), as
/// std's exit would. A stack overflow now ends in a plain `SIGSEGV` instead
/// of a message.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    sanitize_standard_fds();
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    libc::c_int::from(cli::run())
}

/// The std entry of unit-test builds, whose harness replaces it; it keeps the
/// code reachable from [`cli::run`] counted as used there.
#[cfg(test)]
fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(cli::run())
}

/// Opens `/dev/null` in place of a closed fd 0, 1 or 2 (one `poll` when all
/// are open, as they are under Claude Code).
#[cfg(not(test))]
fn sanitize_standard_fds() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: the pointer and count describe `fds`; a zero timeout returns at
    // once.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
    if ready <= 0 {
        return;
    }
    for entry in fds {
        if entry.revents & libc::POLLNVAL != 0 {
            // SAFETY: a plain open of a constant path; the lowest free fd is
            // the closed one, which is the point.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}
