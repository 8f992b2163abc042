//! Issue 16, item 13: a FIFO in the spool directory stalled the collector's
//! drain (the drain renamed it, then blocked reading it), so the real spool
//! file behind it was never stored, and SIGTERM no longer stopped the
//! collector. The real binary, a real FIFO, the rows read back with SQL.

mod support;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use hooktrail_testkit::wait_until;
use support::process::{envelope, Collector};

fn mkfifo(path: &Path) {
    let name = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
}

/// A private spool directory holding a FIFO under the first spool name,
/// then a real spool file with `count` events.
fn spool_with_fifo(spool: &Path, count: usize) -> std::path::PathBuf {
    std::fs::create_dir_all(spool).unwrap();
    std::fs::set_permissions(spool, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let fifo = spool.join("spool-1.jsonl");
    mkfifo(&fifo);
    let lines: String = (0..count).map(|index| envelope(index) + "\n").collect();
    std::fs::write(spool.join("spool-2.jsonl"), lines).unwrap();
    fifo
}

#[test]
fn a_fifo_in_the_spool_neither_stalls_the_drain_nor_stops_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = spool_with_fifo(&dir.path().join("spool"), 3);
    let mut collector = Collector::start(dir.path(), &["--no-token"]);
    collector.wait_rows(3, Duration::from_secs(20));
    assert!(fifo.exists(), "the FIFO is left where it was, not claimed");
    wait_until("the log to name the FIFO", Duration::from_secs(10), || {
        collector
            .log_text()
            .contains("spool-1.jsonl: not a regular file")
    });
    // The next drains pass it by too: a file spooled later is stored.
    std::fs::write(collector.spool.join("spool-3.jsonl"), envelope(99) + "\n").unwrap();
    collector.wait_rows(4, Duration::from_secs(20));
    assert_stops_promptly(&mut collector);
}

/// SIGTERM stops the collector, cleanly and within a few seconds.
fn assert_stops_promptly(collector: &mut Collector) {
    let started = Instant::now();
    let status = collector.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "SIGTERM took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_spool_file_whose_lock_stays_held_does_not_stall_the_drain_or_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::set_permissions(&spool, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    std::fs::write(spool.join("spool-1.jsonl"), envelope(1) + "\n").unwrap();
    std::fs::write(spool.join("spool-2.jsonl"), envelope(2) + "\n").unwrap();
    // A stopped appender holds the first file's lock for good.
    let holder = std::fs::File::open(spool.join("spool-1.jsonl")).unwrap();
    // SAFETY: flock on a descriptor we own.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&holder), libc::LOCK_EX) },
        0
    );
    let mut collector = Collector::start(dir.path(), &["--no-token"]);
    collector.wait_rows(1, Duration::from_secs(20));
    assert_stops_promptly(&mut collector);
    // Once the lock is let go, the next start stores the held file too.
    drop(holder);
    collector.restart();
    collector.wait_rows(2, Duration::from_secs(20));
}
