//! The import's progress bar: on stderr when it is a terminal, redrawn at
//! most ten times a second; nothing otherwise.

use std::io::Write;
use std::time::Duration;

/// The least time between two redraws.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// Width of the bar in characters.
const BAR_WIDTH: usize = 30;

pub(crate) struct Progress {
    /// Whether to draw at all (stderr is a terminal).
    enabled: bool,
    /// Bytes to read in all.
    total: u64,
    /// When the bar was last drawn.
    last_draw: Option<Duration>,
}

impl Progress {
    pub(crate) fn new(enabled: bool, total: u64) -> Progress {
        Progress {
            enabled,
            total,
            last_draw: None,
        }
    }

    /// Redraws the bar, unless it was drawn less than [`REDRAW_EVERY`] ago.
    pub(crate) fn draw(&mut self, done: u64, elapsed: Duration) {
        if !self.enabled
            || self
                .last_draw
                .is_some_and(|last| elapsed.saturating_sub(last) < REDRAW_EVERY)
        {
            return;
        }
        self.last_draw = Some(elapsed);
        let line = render(done, self.total, elapsed);
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r{line}\x1b[K");
        let _ = stderr.flush();
    }

    /// Clears the bar before the summary.
    pub(crate) fn done(&mut self) {
        if self.enabled && self.last_draw.is_some() {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r\x1b[K");
            let _ = stderr.flush();
        }
    }
}

/// `[#####.....] 512.0/1024.0 MB  85.3 MB/s  ETA 0:06`
pub(crate) fn render(done: u64, total: u64, elapsed: Duration) -> String {
    let fraction = if total == 0 {
        1.0
    } else {
        (done as f64 / total as f64).min(1.0)
    };
    let filled = (fraction * BAR_WIDTH as f64).round() as usize;
    let seconds = elapsed.as_secs_f64().max(1e-3);
    let rate = done as f64 / seconds;
    let eta = if rate > 0.0 {
        let left = total.saturating_sub(done) as f64 / rate;
        format!("{}:{:02}", (left / 60.0) as u64, (left % 60.0) as u64)
    } else {
        "?".to_owned()
    };
    format!(
        "[{}{}] {:.1}/{:.1} MB  {:.1} MB/s  ETA {eta}",
        "#".repeat(filled),
        ".".repeat(BAR_WIDTH - filled),
        done as f64 / 1e6,
        total as f64 / 1e6,
        rate / 1e6,
    )
}

/// Whether stderr is a terminal.
pub(crate) fn stderr_is_terminal() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(2) == 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_shows_bytes_rate_and_eta() {
        let line = render(50_000_000, 100_000_000, Duration::from_secs(1));
        assert!(
            line.starts_with(&format!("[{}{}]", "#".repeat(15), ".".repeat(15))),
            "{line}"
        );
        assert!(line.contains("50.0/100.0 MB"), "{line}");
        assert!(line.contains("50.0 MB/s"), "{line}");
        assert!(line.contains("ETA 0:01"), "{line}");
    }
}
