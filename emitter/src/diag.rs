//! Diagnostics: silent unless a person asks for them.
//!
//! Hook mode must not write to stdout, and writes to stderr only when
//! `HOOKTRAIL_DEBUG=1` (stderr of some hooks is shown to the user). With
//! `HOOKTRAIL_LOG=/path/file` every message is appended to that file instead
//! (and to stderr as well when debugging is on). Messages must never hold a
//! password: callers pass URLs through `redact_url`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Mutex, OnceLock};

/// Where diagnostics go, decided once from the environment.
struct Sink {
    /// `HOOKTRAIL_DEBUG=1`: write each message to stderr.
    stderr: bool,
    /// `HOOKTRAIL_LOG`: the open log file (append mode), if one was named and
    /// could be opened.
    file: Option<Mutex<File>>,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Reads `HOOKTRAIL_DEBUG` and `HOOKTRAIL_LOG`. Later calls change nothing.
pub fn init() {
    SINK.get_or_init(|| {
        // The hook's one pass over the environment (`hookenv`) answers.
        let env = crate::hookenv::HookEnv::get();
        let stderr = env
            .value_os("HOOKTRAIL_DEBUG")
            .is_some_and(|value| *value == *std::ffi::OsStr::new("1"));
        let file = env
            .value_os("HOOKTRAIL_LOG")
            .filter(|path| !path.is_empty())
            .and_then(|path| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY)
                    .open(path)
                    .ok()
            })
            .map(Mutex::new);
        Sink { stderr, file }
    });
}

/// Whether any message would be written; lets callers skip formatting.
pub fn enabled() -> bool {
    SINK.get()
        .is_some_and(|sink| sink.stderr || sink.file.is_some())
}

/// Writes one message (a line is added). Never fails, never panics.
pub fn write(message: std::fmt::Arguments) {
    let Some(sink) = SINK.get() else { return };
    if !sink.stderr && sink.file.is_none() {
        return;
    }
    let line = format!(
        "hooktrail-emit[{}] {}: {message}\n",
        std::process::id(),
        hooktrail_shared::time::now_millis()
    );
    if sink.stderr {
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
    if let Some(file) = &sink.file {
        // A poisoned lock still holds a usable file.
        let mut file = file.lock().unwrap_or_else(|poison| poison.into_inner());
        let _ = file.write_all(line.as_bytes());
    }
}

/// Writes a diagnostic when diagnostics are on; formats nothing otherwise.
macro_rules! debug {
    ($($arg:tt)*) => {
        if $crate::diag::enabled() {
            $crate::diag::write(format_args!($($arg)*));
        }
    };
}
pub(crate) use debug;
