//! The command line. With no arguments this is hook mode, which Claude Code
//! runs; everything else is for people and may print to stdout.
#![allow(
    clippy::print_stdout,
    reason = "the people-facing subcommands print their answers"
)]

use std::io::IsTerminal;

use crate::{check, hook, install, redact};

const USAGE: &str = "\
hooktrail-emit: records a Claude Code hook event (hooktrail).

Usage:
  hooktrail-emit                 hook mode: reads the hook JSON on stdin and
                                 delivers it to Redis, the collector's socket
                                 or the spool; prints nothing, exits 0
  hooktrail-emit install [--scope user|project|local] [--settings FILE] [--dry-run] [--force] [--otel]
                                 registers this binary for every observer-safe
                                 hook event in Claude Code's settings; refuses
                                 while the hooktrail plugin is enabled (both:
                                 every event twice) unless --force;
                                 --otel [--otel-endpoint URL] [--otel-protocol
                                 http/protobuf|http/json] also turns on Claude
                                 Code's OpenTelemetry towards the collector's
                                 OTLP receiver (env; yours are kept)
  hooktrail-emit uninstall [--scope user|project|local] [--settings FILE] [--dry-run]
                                 removes only hooktrail's entries (and the env
                                 variables install --otel added)
  hooktrail-emit check           explains where the config came from,
                                 the active redaction rules, and whether
                                 Redis, the socket and the spool work; exits
                                 1 when neither Redis nor the socket takes
                                 events
  hooktrail-emit redact [--privacy full|redacted|metadata] [FILE]
                                 prints what a hook would send for the
                                 payload(s) in FILE (or stdin), one per line,
                                 and on stderr which redaction rules fired
  hooktrail-emit --version | --help

Scopes: user = ~/.claude/settings.json (default), project = ./.claude/settings.json,
local = ./.claude/settings.local.json.

Environment: HOOKTRAIL_CONFIG, HOOKTRAIL_REDIS_URL, HOOKTRAIL_REDIS_TRANSPORT,
HOOKTRAIL_REDIS_KEY, HOOKTRAIL_REDIS_MAXLEN, HOOKTRAIL_REDIS_CA_FILE,
HOOKTRAIL_MODE, HOOKTRAIL_PRIVACY (full | redacted | metadata),
HOOKTRAIL_SOCKET, HOOKTRAIL_SPOOL_DIR, HOOKTRAIL_STATE_DIR,
HOOKTRAIL_BREAKER_SECONDS, HOOKTRAIL_DEBUG=1 (diagnostics on stderr),
HOOKTRAIL_LOG=FILE (diagnostics appended to FILE).
";

/// Parses the arguments, runs the chosen mode and returns the exit code.
pub fn run() -> u8 {
    let arguments: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|argument| argument.to_string_lossy().into_owned())
        .collect();
    let Some(first) = arguments.first() else {
        hook::run();
        return 0;
    };
    let rest = &arguments[1..];
    let code = match first.as_str() {
        "install" => install::run(install::Action::Install, rest),
        "uninstall" => install::run(install::Action::Uninstall, rest),
        "check" => check::run(rest),
        "redact" => redact::run(rest),
        "--version" | "-V" | "version" => {
            println!("hooktrail-emit {}", env!("CARGO_PKG_VERSION"));
            0
        }
        "--help" | "-h" | "help" => {
            print!("{USAGE}");
            0
        }
        other => {
            if std::io::stdin().is_terminal() {
                eprint!("hooktrail-emit: unknown argument {other:?}\n\n{USAGE}");
                2
            } else {
                // A hook entry with stray arguments must still record the
                // event and exit 0: a non-zero code would disturb Claude Code.
                hook::run();
                0
            }
        }
    };
    // What the commands for people printed. Hook mode's own writes (a
    // verified decision) flush themselves, so a hook never sets up stdout.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    code
}
