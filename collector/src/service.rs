//! The process's services: signals and systemd, and starting named threads.
//!
//! SIGTERM and SIGINT set the shutdown flag (a second SIGINT exits at once);
//! `READY=1` once listening, `STOPPING=1` at shutdown, and `WATCHDOG=1` while
//! the writer is alive. Every long-lived thread is started with
//! [`spawn_thread`], so each has a name in `top -H` and a start failure reads
//! the same everywhere.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use crate::stats::Stats;

/// Makes SIGTERM and SIGINT request a clean shutdown. A second SIGINT while
/// shutting down exits immediately with status 130, for a person at a
/// terminal who does not want to wait.
pub(crate) fn install_signal_handlers(shutdown: &Arc<AtomicBool>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    signal_hook::flag::register_conditional_shutdown(SIGINT, 130, shutdown.clone())?;
    signal_hook::flag::register(SIGTERM, shutdown.clone())?;
    signal_hook::flag::register(SIGINT, shutdown.clone())?;
    Ok(())
}

/// Tells systemd (`Type=notify`) the collector is ready; a no-op elsewhere.
pub(crate) fn notify_ready() {
    let _ = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status("collecting")]);
}

/// Tells systemd the collector is stopping.
pub(crate) fn notify_stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// Waits for the shutdown flag. Under a systemd watchdog, pings it at half
/// the interval, but only while the writer's heartbeat is recent and the
/// HTTP listener accepts (or has been restarting for less than the
/// interval): a writer stuck, or an API unreachable, for longer than the
/// interval gets the service restarted.
pub(crate) fn wait_for_shutdown(shutdown: &AtomicBool, stats: &Stats) {
    let watchdog = sd_notify::watchdog_enabled();
    let mut next_ping = Instant::now();
    while !shutdown.load(Ordering::Relaxed) {
        if let Some(interval) = watchdog {
            if Instant::now() >= next_ping {
                let age = hooktrail_shared::time::now_millis()
                    - stats.writer_heartbeat_ms.load(Ordering::Relaxed);
                // A dead HTTP listener that restarting has not brought back
                // within the interval also stops the pings.
                let listener_down_since = stats.http_listener_down_since_ms.load(Ordering::Relaxed);
                let listener_ok = listener_down_since == 0
                    || ((hooktrail_shared::time::now_millis() - listener_down_since) as u128)
                        < interval.as_millis();
                if age >= 0 && (age as u128) < interval.as_millis() && listener_ok {
                    let _ = sd_notify::notify(&[NotifyState::Watchdog]);
                }
                next_ping = Instant::now() + interval / 2;
            }
        }
        // The signal and watchdog loop's tick.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a thread named `name` running `body`; the error names the thread.
pub(crate) fn spawn_thread(
    name: &str,
    body: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(body)
        .map_err(|error| format!("cannot start the {name} thread: {error}"))
}

/// Raises the soft limit on open files to the hard limit: every HTTP,
/// WebSocket and socket client holds a descriptor, and the usual soft limit
/// (1,024) is reached long before the hard one. Returns the limit in force.
pub(crate) fn raise_open_files_limit() -> Option<libc::rlim_t> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit with a pointer to a live rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return Some(raised.rlim_cur);
            }
        }
    }
    Some(limit.rlim_cur)
}
