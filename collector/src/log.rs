//! Log lines on stderr (the journal under systemd), one line each, with a
//! level prefix systemd understands (`<4>` warning, `<6>` info) when stderr
//! is the journal, and a plain prefix otherwise.

use std::io::Write;
use std::sync::OnceLock;

fn journal() -> bool {
    static JOURNAL: OnceLock<bool> = OnceLock::new();
    *JOURNAL.get_or_init(|| std::env::var_os("JOURNAL_STREAM").is_some())
}

fn emit(level: u8, word: &str, message: &str) {
    let line = if journal() {
        format!("<{level}>{message}\n")
    } else {
        format!("hooktrail-collector: {word}{message}\n")
    };
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// A normal state change worth a line (started, connected, recovered).
pub(crate) fn info(message: &str) {
    emit(6, "", message);
}

/// Something went wrong and is being handled (retried, rejected, skipped).
pub(crate) fn warn(message: &str) {
    emit(4, "warning: ", message);
}

/// Something stops the collector.
pub(crate) fn error(message: &str) {
    emit(3, "error: ", message);
}
