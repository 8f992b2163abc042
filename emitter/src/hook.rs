//! Hook mode: what runs on every Claude Code hook event.
//!
//! 1. Read all of stdin, whatever it holds (nothing, binary, 20 MiB).
//! 2. Build the v1 envelope (`shared::envelope`) and redact its payload
//!    (`shared::redact`, at the configured privacy level), so that every
//!    path below, Redis, the socket and the spool, only ever sees the
//!    redacted line.
//! 3. Deliver it: Redis when configured and its breaker is closed (one
//!    1-second budget), else the collector's socket (a short budget), else the
//!    spool. After a Redis delivery, forward what the spool holds.
//! 4. Exit 0 with nothing on stdout, always; even a panic spools the event
//!    and exits 0 (see [`install_panic_hook`]).

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use hooktrail_shared::config::{self, redact_url, RedisConfig};
use hooktrail_shared::envelope::{
    new_event_id, Envelope, HookStdin, MAX_ID_CHARS, MAX_PAYLOAD_BYTES, MAX_STDIN_KEPT,
};
use hooktrail_shared::redact::{Redactor, Settings};
use hooktrail_shared::time::now_millis;
use hooktrail_shared::{paths, spool};

use crate::breaker;
use crate::budget::{self, Check};
use crate::deadline::Deadline;
use crate::decision::{self, Waiting};
use crate::diag::{self, debug};
use crate::forward;
use crate::hookenv::{self, HookEnv};
use crate::redis::{self, delivery_result, encode_delivery, Connection, Delivery, Failure, Target};
use crate::socket;
use crate::usage;

/// Stdin as read, for the panic hook to spool when no envelope exists yet.
static STDIN: OnceLock<Vec<u8>> = OnceLock::new();
/// The envelope line, for the panic hook to spool.
static LINE: OnceLock<String> = OnceLock::new();
/// The configured spool directory, for the panic hook.
static SPOOL_DIR: OnceLock<PathBuf> = OnceLock::new();
/// Set once the event is delivered or spooled: a later panic has nothing to save.
static SETTLED: AtomicBool = AtomicBool::new(false);
/// The configured redaction, for the panic hook's fallback line.
static REDACTOR: OnceLock<Redactor> = OnceLock::new();
/// Set while the payload is being redacted: a panic there must not retry the
/// same redaction, so the fallback line then keeps no text at all.
static REDACTING: AtomicBool = AtomicBool::new(false);

/// Where the event ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Redis accepted it.
    Redis,
    /// The collector answered `ok`.
    Socket,
    /// It was appended to the spool.
    Spool,
    /// Even the spool failed (told in the diagnostics).
    Lost,
}

/// Runs hook mode. Returns only after the event is delivered or spooled.
pub fn run() {
    diag::init();
    install_panic_hook();
    let (input, total) = read_stdin();
    let stdin: &[u8] = STDIN.get_or_init(|| input);
    let loaded = config::load_for_hook(&hookenv::lookup);
    for problem in &loaded.problems {
        debug!("config: {problem}");
    }
    let mut config = loaded.config;
    let _ = SPOOL_DIR.set(config.spool_dir.clone());
    // Moved, not cloned: nothing after this reads the config's redaction.
    let privacy = config.redaction.privacy;
    let redaction = std::mem::replace(
        &mut config.redaction,
        Settings {
            privacy,
            patterns: Vec::new(),
            drop: Vec::new(),
            disabled: Vec::new(),
        },
    );
    let redactor = REDACTOR.get_or_init(|| Redactor::new(redaction));

    let id = given_event_id().unwrap_or_else(new_event_id);
    let machine = hostname::get()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "unknown".to_owned());
    let read = if total > stdin.len() as u64 {
        HookStdin::Cut { kept: stdin, total }
    } else {
        HookStdin::Whole(stdin)
    };
    let mut envelope = Envelope::from_hook_input(read, id, now_millis(), machine);
    // A broken config forced the `metadata` level: say so on every event.
    envelope.config_error = config.config_error;
    REDACTING.store(true, Ordering::SeqCst);
    let report = redactor.redact_built_envelope(&mut envelope);
    REDACTING.store(false, Ordering::SeqCst);
    // One match on the name (no allocation), then every step below that
    // only some events take costs the others an enum comparison.
    let event = envelope.event();
    // Five events of 33, at most once per model response: every other event
    // skips this.
    if usage::is_boundary(event) {
        // The usage gets what the line has left under its size limit.
        let room = usage::room_in_line(envelope.to_json().len());
        envelope.usage =
            usage::read_since_last(event, envelope.payload.get(), &config.state_dir, room);
    }
    // One comparison for every event but a PermissionRequest.
    let waiting = decision::prepare(&config, event, &mut envelope);
    // Two comparisons for every event but PreToolUse and UserPromptSubmit.
    let budget_check = budget::prepare(&config, event, &mut envelope);
    let line: &str = LINE.get_or_init(|| envelope.to_json());
    drop(envelope);
    if !report.is_empty() {
        // Rule names and counts only: never the matched text.
        debug!("redacted: {:?}", report.counts);
    }

    if HookEnv::get().is_set("HOOKTRAIL_TEST_PANIC") {
        // Fault injection for the test that proves a panic still spools the
        // event, prints nothing and exits 0.
        panic!("HOOKTRAIL_TEST_PANIC is set");
    }

    let route = deliver(&config, line, waiting.as_ref(), budget_check.as_ref());
    SETTLED.store(true, Ordering::SeqCst);
    debug!("event {} ({} bytes): {route:?}", event_id(line), line.len());
    // The process ends next: freeing the config's strings one by one would
    // only touch their pages again.
    std::mem::forget(config);
}

/// Reads stdin to its end, keeping at most [`MAX_STDIN_KEPT`] bytes, and
/// returns them with the total read. Reading the rest (and dropping it)
/// keeps the writer from blocking or getting `SIGPIPE`; keeping it did cost
/// 820 MB of memory for 200 MB of input.
fn read_stdin() -> (Vec<u8>, u64) {
    // Most hook payloads are a few KB: one read instead of a doubling series
    // (and no more, since every fresh page costs a fault of about 2 µs here).
    let mut input = Vec::with_capacity(8 * 1024);
    let mut stdin = std::io::stdin().lock();
    if let Err(error) = (&mut stdin)
        .take(MAX_STDIN_KEPT as u64)
        .read_to_end(&mut input)
    {
        // Keep what was read: a broken stdin still makes an event.
        debug!("reading stdin: {error}");
        return (input, 0);
    }
    let mut total = input.len() as u64;
    if input.len() == MAX_STDIN_KEPT {
        let mut scratch = vec![0u8; 64 * 1024];
        loop {
            match stdin.read(&mut scratch) {
                Ok(0) => break,
                Ok(read) => total += read as u64,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => {
                    debug!("reading stdin: {error}");
                    break;
                }
            }
        }
    }
    (input, total)
}

/// The variable through which a test (or the chaos suite, which records the
/// ids it hands out) names the event's id. Only this test-only name is
/// honoured: an id taken from a general-looking variable that leaked into a
/// shell (`HOOKTRAIL_EVENT_ID` was) made every later event a duplicate of the
/// first, and the collector stores each id once.
pub const TEST_EVENT_ID_VARIABLE: &str = "HOOKTRAIL_TEST_EVENT_ID";

/// The id given in [`TEST_EVENT_ID_VARIABLE`], when it is one the collector
/// will accept: an id it would reject would leave the event in the spool
/// forever, so a fresh one is used instead.
fn given_event_id() -> Option<String> {
    hookenv::lookup(TEST_EVENT_ID_VARIABLE).filter(|id| {
        !id.trim().is_empty()
            && id.trim() == id
            && id.chars().count() <= MAX_ID_CHARS
            && !id.contains(['"', '\\'])
            && !id.chars().any(char::is_control)
    })
}

fn event_id(line: &str) -> &str {
    // The id is the second field of every envelope this binary writes.
    line.split("\"id\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("?")
}

/// Delivers `line` (or, when this hook waits for a remote decision, the
/// waiting's line marked with `wait_until`), then waits on the same
/// connection. The spool always gets the plain line: a spooled event never
/// waits.
fn deliver(
    config: &config::Config,
    line: &str,
    waiting: Option<&Waiting>,
    check: Option<&Check>,
) -> Route {
    if let Some(redis) = &config.redis {
        match breaker::state(&config.state_dir) {
            breaker::State::Open { remaining, .. } => {
                debug!(
                    "redis: breaker open for {} ms more; skipping Redis",
                    remaining.as_millis()
                );
            }
            state => match deliver_redis(redis, line, waiting, check) {
                Ok((Delivery::Delivered, mut connection, waits)) => {
                    if state == breaker::State::Expired {
                        breaker::reset(&config.state_dir);
                    }
                    SETTLED.store(true, Ordering::SeqCst);
                    let forwarded = forward::forward_spool(
                        &mut connection,
                        redis,
                        &config.spool_dir,
                        forward::BUDGET,
                    );
                    if forwarded.sent + forwarded.passed_oversized > 0 {
                        debug!(
                            "forward: sent {} spooled events, passed {} oversized ones by",
                            forwarded.sent, forwarded.passed_oversized
                        );
                    }
                    if let Some(waiting) = waits {
                        decision::await_redis(&mut connection, redis, waiting);
                    }
                    return Route::Redis;
                }
                Ok((Delivery::NoReceivers, _, _)) => {
                    if state == breaker::State::Expired {
                        breaker::reset(&config.state_dir);
                    }
                    debug!(
                        "redis: PUBLISH to {:?} reached no subscriber; not delivered",
                        redis.key
                    );
                }
                Err(failure) => {
                    let open_for = breaker::open_for();
                    debug!(
                        "redis {}: {failure}; opening the breaker for {} s",
                        redact_url(&redis.url),
                        open_for.as_secs_f64()
                    );
                    if let Err(error) =
                        breaker::trip(&config.state_dir, open_for, &failure.to_string())
                    {
                        debug!(
                            "breaker: cannot write {}: {error}",
                            breaker::path(&config.state_dir).display()
                        );
                    }
                }
            },
        }
    }
    let waits = decision::applies(waiting, |_| decision::away_on_socket(&config.socket));
    let sent = waits.map_or(line, |waiting| waiting.line.as_str());
    match socket::deliver(&config.socket, sent, Deadline::after(socket::HOOK_BUDGET)) {
        Ok((stream, rest, verdict)) => {
            if let Some(check) = check {
                budget::act_on_socket(check, verdict.as_deref());
            }
            if let Some(waiting) = waits {
                decision::await_socket(stream, rest, waiting);
            }
            return Route::Socket;
        }
        Err(error) => debug!("socket: {error}"),
    }
    if let Some(check) = check {
        budget::act_offline(check);
    }
    match spool::append(&config.spool_dir, line) {
        Ok(path) => {
            debug!("spooled to {}", path.display());
            return Route::Spool;
        }
        Err(error) => debug!(
            "cannot append to the spool in {}: {error}",
            config.spool_dir.display()
        ),
    }
    // The configured spool is someone else's, or unwritable: keep the event
    // in the user's private fallback spool rather than lose it.
    let fallback = paths::fallback_spool_dir(&paths::process_env);
    if fallback != config.spool_dir {
        match spool::append(&fallback, line) {
            Ok(path) => {
                debug!("spooled to the fallback spool {}", path.display());
                return Route::Spool;
            }
            Err(error) => debug!(
                "cannot append to the fallback spool in {}: {error}",
                fallback.display()
            ),
        }
    }
    debug!("EVENT LOST: no spool takes it");
    Route::Lost
}

/// Sends one event to Redis within [`redis::HOOK_BUDGET`]; returns the open
/// connection so the spool can be forwarded over it, and the waiting when
/// this hook waits for a decision there (with `away`, after asking Redis
/// whether the switch is on: one more round trip, on PermissionRequest only).
fn deliver_redis<'a>(
    redis: &RedisConfig,
    line: &str,
    waiting: Option<&'a Waiting>,
    check: Option<&Check>,
) -> Result<(Delivery, Connection, Option<&'a Waiting>), Failure> {
    let deadline = Deadline::after(redis::HOOK_BUDGET);
    let target = Target::parse(&redis.url).map_err(|detail| Failure {
        kind: redis::FailureKind::Setup,
        detail,
    })?;
    let mut connection = Connection::open(&target, redis.ca_file.as_deref(), deadline)?;
    let mut away = Ok(false);
    let waits = decision::applies(waiting, |waiting| {
        away = decision::away_on_redis(&mut connection, redis, waiting);
        matches!(away, Ok(true))
    });
    away?;
    let line = waits.map_or(line, |waiting| waiting.line.as_str());
    let mut command = Vec::with_capacity(line.len() + 96);
    encode_delivery(&mut command, redis, line.as_bytes());
    if let Some(check) = check {
        budget::encode_query(&mut command, redis, check);
    }
    let replies = connection.request(&command, 1 + usize::from(check.is_some()))?;
    if let Some(check) = check {
        budget::act_on_redis(check, replies.get(1));
    }
    let reply = replies.first().ok_or_else(|| Failure {
        kind: redis::FailureKind::Io,
        detail: "no reply".to_owned(),
    })?;
    Ok((delivery_result(redis.transport, reply)?, connection, waits))
}

/// Replaces the panic behaviour: print nothing (unless debugging), spool the
/// event if it was not delivered yet, and `_exit(0)`. The release profile
/// aborts on panic, but the hook runs before the abort, so the exit code
/// stays 0 there too.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        debug!("panic: {info}");
        if !SETTLED.swap(true, Ordering::SeqCst) {
            let spool_dir = SPOOL_DIR
                .get()
                .cloned()
                .unwrap_or_else(|| paths::default_spool_dir(&paths::process_env));
            let line = match LINE.get() {
                Some(line) => line.clone(),
                None => fallback_line(STDIN.get().map(Vec::as_slice).unwrap_or_default()),
            };
            if let Err(error) = spool::append(&spool_dir, &line) {
                debug!("EVENT LOST after a panic: {}: {error}", spool_dir.display());
            }
        }
        // SAFETY: _exit ends the process at once without running anything
        // else; that is the point.
        unsafe { libc::_exit(0) }
    }));
}

/// A minimal `Invalid` envelope built without the envelope code (which may be
/// what panicked), holding the raw input shortened to the payload limit and
/// redacted like any payload. When the redaction itself panicked, it holds no
/// text at all: an event without its text beats a secret in the spool.
fn fallback_line(stdin: &[u8]) -> String {
    let cut = &stdin[..stdin.len().min(MAX_PAYLOAD_BYTES / 2)];
    let payload = if REDACTING.load(Ordering::SeqCst) {
        format!(
            r#"{{"_raw":"[REDACTED:unredactable {} bytes]"}}"#,
            stdin.len()
        )
    } else {
        let text = serde_json::to_string(&String::from_utf8_lossy(cut))
            .unwrap_or_else(|_| "\"\"".to_owned());
        let payload = format!(r#"{{"_raw":{text}}}"#);
        match REDACTOR.get() {
            Some(redactor) => redactor.redact_payload(&payload).text.into_owned(),
            None => Redactor::new(Settings::default())
                .redact_payload(&payload)
                .text
                .into_owned(),
        }
    };
    let id = given_event_id().unwrap_or_else(new_event_id);
    format!(
        r#"{{"v":1,"id":"{id}","ts":{},"machine":"unknown","session_id":null,"agent_id":null,"hook":"Invalid","tool":null,"tool_use_id":null,"cwd":null,"truncated":{},"payload":{payload}}}"#,
        now_millis(),
        cut.len() < stdin.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_line_is_a_valid_invalid_envelope() {
        let line = fallback_line(b"\xff\x00 not json \"quoted\"");
        let envelope = hooktrail_shared::envelope::parse_line(line.as_bytes()).unwrap();
        assert_eq!(envelope.hook, "Invalid");
        assert!(envelope.payload.get().contains("quoted"));
    }

    #[test]
    fn fallback_line_is_redacted() {
        let line = fallback_line(b"export GITHUB_TOKEN=ghp_0123456789abcdefghijABCDEFGHIJklmnop");
        assert!(!line.contains("ghp_0123"), "{line}");
        assert!(line.contains("[REDACTED:github-token]"), "{line}");
    }

    #[test]
    fn event_id_is_read_back_from_the_line() {
        assert_eq!(event_id(r#"{"v":1,"id":"abc","ts":1}"#), "abc");
    }
}
