//! The Redis breaker: a small state file that makes hooks skip a failing
//! Redis for a while instead of each spending up to the whole Redis budget.
//!
//! The file is `<state_dir>/redis-breaker` (0600, in a 0700 directory). Its
//! first line is the expiry in milliseconds since the epoch; the second says
//! why it opened, for `check`. It is rewritten in place (see [`trip`]); a
//! reader that catches it half written treats it as expired, which costs one
//! more Redis attempt at most. Reading it is one `open` on the hot path: when
//! it does not exist the breaker is closed.
//!
//! After the expiry, hooks try Redis again; the first success removes the
//! file, a failure writes a new expiry.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hooktrail_shared::paths::ensure_private_dir;
use hooktrail_shared::regular_file;
use hooktrail_shared::time::now_millis;

/// The largest breaker file read: an expiry and one line of reason.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// The state file's name in the state directory.
pub const FILE_NAME: &str = "redis-breaker";

/// How long the breaker stays open when `HOOKTRAIL_BREAKER_SECONDS` is unset.
pub const DEFAULT_OPEN_FOR: Duration = Duration::from_secs(30);

/// The longest the breaker stays open, whatever `HOOKTRAIL_BREAKER_SECONDS`
/// says; a state file claiming more is garbled and counts as expired.
pub const MAX_OPEN_FOR: Duration = Duration::from_secs(24 * 3600);

/// The breaker as a hook finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// No state file: use Redis.
    Closed,
    /// Redis failed recently: skip it for `remaining`. `reason` is what the
    /// failing hook wrote.
    Open {
        /// Time until hooks try Redis again.
        remaining: Duration,
        /// Why it opened, as written by the hook that opened it.
        reason: String,
    },
    /// The file is there but its time is up: try Redis, and remove the file
    /// on success.
    Expired,
}

/// The state file of `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

/// Reads the breaker. An unreadable or garbled file counts as expired, so
/// Redis is tried and the next outcome rewrites or removes it.
pub fn state(state_dir: &Path) -> State {
    // Never a plain read: a FIFO or a device under the name must not stall
    // the hook (issue 16).
    let text = match regular_file::read_to_string(&path(state_dir), MAX_FILE_BYTES) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return State::Closed,
        Err(_) => return State::Expired,
    };
    let mut lines = text.lines();
    let expiry: i64 = match lines.next().and_then(|line| line.trim().parse().ok()) {
        Some(expiry) => expiry,
        None => return State::Expired,
    };
    let left = expiry.saturating_sub(now_millis());
    if left > 0 && left as u128 <= MAX_OPEN_FOR.as_millis() {
        State::Open {
            remaining: Duration::from_millis(left as u64),
            reason: lines.next().unwrap_or("").to_owned(),
        }
    } else {
        State::Expired
    }
}

/// How long a tripped breaker stays open: `HOOKTRAIL_BREAKER_SECONDS` (may be
/// fractional) up to [`MAX_OPEN_FOR`], or [`DEFAULT_OPEN_FOR`] when it is not
/// a number of seconds.
pub fn open_for() -> Duration {
    parse_open_for(std::env::var("HOOKTRAIL_BREAKER_SECONDS").ok().as_deref())
}

fn parse_open_for(text: Option<&str>) -> Duration {
    // `Duration::from_secs_f64` panics on values like 1e300; the fallible
    // form and the clamp keep any text from doing harm.
    text.and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|seconds| !seconds.is_nan())
        .and_then(|seconds| {
            Duration::try_from_secs_f64(seconds.min(MAX_OPEN_FOR.as_secs_f64())).ok()
        })
        .unwrap_or(DEFAULT_OPEN_FOR)
}

/// Opens the breaker for `duration`, noting `reason` (which must hold no
/// password).
///
/// The file is rewritten in place, not through a temporary file and a rename:
/// ext4 starts writeback on every rename over an existing file (its
/// `auto_da_alloc` heuristic), which cost about 0.3 ms on each failing hook.
/// A reader that catches the file half written fails to parse the expiry and
/// treats the breaker as expired, which only means one more Redis attempt.
pub fn trip(state_dir: &Path, duration: Duration, reason: &str) -> std::io::Result<()> {
    ensure_private_dir(state_dir)?;
    let expiry = now_millis().saturating_add(duration.min(MAX_OPEN_FOR).as_millis() as i64);
    let one_line: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let content = format!("{expiry}\n{one_line}\n");
    let mut file = regular_file::open_for_write(&path(state_dir), 0o600)?;
    file.write_all(content.as_bytes())?;
    // Cut what a longer earlier reason left behind (never to zero, which
    // would trigger the same writeback as a rename).
    file.set_len(content.len() as u64)
}

/// Closes the breaker (Redis works again).
pub fn reset(state_dir: &Path) {
    let _ = fs::remove_file(path(state_dir));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn breaker_seconds_are_range_checked_never_a_panic() {
        for (text, expected) in [
            (Some("2.5"), Duration::from_millis(2500)),
            (Some("0"), Duration::ZERO),
            (Some("1e300"), MAX_OPEN_FOR),
            (Some("1e19"), MAX_OPEN_FOR),
            (Some("inf"), MAX_OPEN_FOR),
            (Some("-5"), DEFAULT_OPEN_FOR),
            (Some("NaN"), DEFAULT_OPEN_FOR),
            (Some("soon"), DEFAULT_OPEN_FOR),
            (None, DEFAULT_OPEN_FOR),
        ] {
            assert_eq!(parse_open_for(text), expected, "{text:?}");
        }
    }

    #[test]
    fn a_garbled_expiry_counts_as_expired() {
        let temp = tempfile::tempdir().unwrap();
        for garbage in ["-9223372036854775808", "9223372036854775807"] {
            fs::write(path(temp.path()), garbage).unwrap();
            assert_eq!(state(temp.path()), State::Expired, "{garbage}");
        }
    }

    #[test]
    fn trip_opens_then_expires_and_reset_closes() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("state");
        assert_eq!(state(&dir), State::Closed);
        trip(&dir, Duration::from_secs(30), "timeout\nsecond line").unwrap();
        match state(&dir) {
            State::Open { remaining, reason } => {
                assert!(remaining > Duration::from_secs(29));
                assert_eq!(reason, "timeout second line");
            }
            other => panic!("expected open, got {other:?}"),
        }
        assert_eq!(
            fs::metadata(path(&dir)).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        trip(&dir, Duration::ZERO, "x").unwrap();
        assert_eq!(state(&dir), State::Expired);
        reset(&dir);
        assert_eq!(state(&dir), State::Closed);
        fs::write(path(&dir), "garbage").unwrap();
        assert_eq!(state(&dir), State::Expired);
    }
}
