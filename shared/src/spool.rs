//! The spool: append-only JSONL files that hold events nobody took yet.
//!
//! Files are `spool-<minute>.jsonl` (mode 0600) in a 0700 directory, one
//! envelope per line. The protocol is safe against any number of concurrent
//! appenders and drainers:
//! - An appender opens the current file with `O_APPEND`, takes `flock(LOCK_EX)`,
//!   checks that the path still names the inode it opened (a drainer may have
//!   claimed it meanwhile; if so it opens again), writes its whole line with
//!   one `write`, and unlocks. A write that fails part way is cut off again,
//!   and a file left ending mid-line gets a newline first, so a failed append
//!   never corrupts the next one (see `append_whole_lines`).
//! - A drainer ([`claim`]) opens a file, takes `flock(LOCK_EX)` (so no append
//!   is half done; a hook never waits for it, see [`LockWait`]), renames it to `spool-<minute>.jsonl.claimed-<tag>` and keeps
//!   the lock while it works. It reads the lines, delivers them, and only then
//!   deletes the file ([`ClaimedFile::finish`]).
//! - A hook that forwards the spool to Redis ([`Claimer::Forwarder`]) reads a
//!   bounded part of a claimed file and, when it stops early, gives the file
//!   back with the offset it reached in the name ([`ClaimedFile::release_at`]),
//!   so nothing is copied or put back. A file holding a line too large for
//!   Redis is set aside for the collector ([`ClaimedFile::finish_forwarding`]).
//! - A claimed file whose lock can be taken belongs to a drainer that died; the
//!   next drainer claims it again. Redelivery is harmless: events are stored
//!   once by id.
//! - Every append creates the marker file [`PENDING_MARKER`] *after* writing
//!   its line, so "is there anything to forward?" costs one system call instead
//!   of a directory walk (the emitter asks this on its hot path). A forwarder
//!   removes the marker *before* claiming ([`take_pending`]): an append that
//!   races the drain re-creates it, so a line is never left unmarked.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::paths::ensure_private_dir;

const PREFIX: &str = "spool-";
const SUFFIX: &str = ".jsonl";
const CLAIMED_MARK: &str = ".claimed-";

/// The file of rejected lines a drainer could not parse, kept for a person.
pub const REJECTED_FILE: &str = "rejected.jsonl";

/// The marker that says the spool may hold lines: created by every append,
/// removed by a forwarder before it claims. Its name does not start with
/// `spool-`, so [`claim`] never takes it for a spool file.
pub const PENDING_MARKER: &str = ".pending";

fn lock(file: &File, blocking: bool) -> io::Result<()> {
    let operation = if blocking {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    loop {
        // SAFETY: flock on an open descriptor owned by `file`.
        let result = unsafe { libc::flock(file.as_raw_fd(), operation) };
        if result == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

fn same_inode(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        (Ok(open), Ok(named)) => open.ino() == named.ino() && open.dev() == named.dev(),
        _ => false,
    }
}

/// One file per minute keeps each file small, so a hook that forwards the
/// spool after a long outage reads and puts back little at a time.
fn current_file_name(now_millis: i64) -> String {
    format!("{PREFIX}{}{SUFFIX}", now_millis / 60_000)
}

/// How long an appender waits for another appender's lock on the current file
/// before it writes to a file of its own instead.
const APPEND_LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(50);

/// Appends one line (a newline is added) to the spool in `dir`, creating the
/// directory (0700) and file (0600) as needed. A directory that is not ours
/// and private ([`ensure_private_dir`]) is refused. Returns the file written.
pub fn append(dir: &Path, line: &str) -> io::Result<PathBuf> {
    append_lines(dir, std::iter::once(line))
}

/// Appends several lines with one write, under one lock.
pub fn append_lines<'a>(
    dir: &Path,
    lines: impl IntoIterator<Item = &'a str>,
) -> io::Result<PathBuf> {
    let mut buffer = Vec::new();
    for line in lines {
        buffer.extend_from_slice(line.as_bytes());
        buffer.push(b'\n');
    }
    let now = crate::time::now_millis();
    let mut path = dir.join(current_file_name(now));
    if buffer.is_empty() {
        return Ok(path);
    }
    // Checked on every append, not only when creating it: an existing
    // directory may be someone else's, or readable by others.
    ensure_private_dir(dir)?;
    let started = std::time::Instant::now();
    for attempt in 0.. {
        let file = open_for_append(&path)?;
        // Never block on the lock: a drainer that claimed this file (renamed
        // it after we opened it) holds its lock until the writer commits,
        // which can take seconds when the database is busy.
        if let Err(error) = lock(&file, false) {
            if error.kind() != io::ErrorKind::WouldBlock {
                return Err(error);
            }
            if !same_inode(&file, &path) {
                // Claimed: the path now names a new file (or none).
                continue;
            }
            if started.elapsed() > APPEND_LOCK_PATIENCE {
                // Another appender is slow; write a file of our own.
                path = dir.join(format!(
                    "{PREFIX}{}-{}{SUFFIX}",
                    now / 60_000,
                    std::process::id()
                ));
                continue;
            }
            #[allow(clippy::disallowed_methods)] // A short backoff while another appender writes.
            std::thread::sleep(std::time::Duration::from_micros(200));
            continue;
        }
        if !same_inode(&file, &path) {
            // A drainer claimed this file between our open and our lock.
            if attempt > 10_000 {
                return Err(io::Error::other("spool file keeps being claimed"));
            }
            continue;
        }
        append_whole_lines(&file, &buffer)?;
        drop(file);
        // The line is written whatever happens to the marker; a missing marker
        // only delays forwarding until the next append or a collector's drain.
        let _ = mark_pending(dir);
        return Ok(path);
    }
    unreachable!("the loop returns")
}

/// Appends `buffer` (whole lines) to `file`, whose lock the caller holds, so
/// that the file never ends in part of a line that the next append would
/// merge into (both lines would then be rejected):
/// - a write that fails part way (`ENOSPC`, `EFBIG` at a file size limit)
///   is cut off again, back to the length before it;
/// - a file that already ends mid-line (an appender killed mid-write, or a
///   cut that failed too) gets a newline first, so that fragment stays a
///   line of its own.
fn append_whole_lines(file: &File, buffer: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let before = file.metadata()?.len();
    let mut last = [b'\n'];
    if before > 0 {
        file.read_exact_at(&mut last, before - 1)?;
    }
    let mut whole = Vec::new();
    let data = if last[0] == b'\n' {
        buffer
    } else {
        whole.reserve(buffer.len() + 1);
        whole.push(b'\n');
        whole.extend_from_slice(buffer);
        &whole
    };
    if let Err(error) = (&*file).write_all(data) {
        // Shrinking is allowed even past a size limit or on a full disk.
        let _ = file.set_len(before);
        return Err(error);
    }
    Ok(())
}

/// Creates the [`PENDING_MARKER`] in `dir` (an existing one is left as is).
pub fn mark_pending(dir: &Path) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(dir.join(PENDING_MARKER))
        .map(drop)
}

/// Whether the [`PENDING_MARKER`] exists: one `stat`, no directory walk.
pub fn has_pending(dir: &Path) -> bool {
    fs::symlink_metadata(dir.join(PENDING_MARKER)).is_ok()
}

/// Removes the [`PENDING_MARKER`] and says whether it was there, with one
/// `unlink`. A forwarder calls this *before* [`claim`], and only claims when
/// it returns true; a forwarder that stops before it has taken everything
/// calls [`mark_pending`] again.
pub fn take_pending(dir: &Path) -> bool {
    fs::remove_file(dir.join(PENDING_MARKER)).is_ok()
}

fn open_for_append(path: &Path) -> io::Result<File> {
    // Readable too: an append looks at the file's last byte first.
    // Non-blocking, and then refused unless it is a regular file: a FIFO
    // planted under a spool name would otherwise hang the open or the
    // write (of a hook, or of the collector's drain recording a rejected
    // line).
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(path)?;
    regular_file(file, path)
}

/// `file` if it is a regular file (checked on the open descriptor, so the
/// answer is about what was opened), else an error naming `path`.
fn regular_file(file: File, path: &Path) -> io::Result<File> {
    if file.metadata()?.file_type().is_file() {
        return Ok(file);
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} is not a regular file", path.display()),
    ))
}

/// How long a drainer waits for an appender's lock on one file before it
/// passes the file by until its next pass. Appenders hold the lock for one
/// write; a holder that keeps it longer (a stopped or hostile process) must
/// not stall the drain, or the collector's shutdown behind it.
const DRAIN_LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

/// Takes the lock, retrying for at most `patience`; `WouldBlock` when it
/// stays held.
fn lock_within(file: &File, patience: std::time::Duration) -> io::Result<()> {
    let started = std::time::Instant::now();
    loop {
        match lock(file, false) {
            Err(error)
                if error.kind() == io::ErrorKind::WouldBlock && started.elapsed() < patience =>
            {
                #[allow(clippy::disallowed_methods)] // A short backoff while an appender writes.
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            result => return result,
        }
    }
}

/// A spool file taken by one drainer, locked for as long as it is held.
#[derive(Debug)]
pub struct ClaimedFile {
    /// Where the claimed file now lives (its claimed name).
    pub path: PathBuf,
    /// Holds the `flock` that tells other drainers this file is taken.
    file: File,
}

impl ClaimedFile {
    /// Reads every complete line. A final line without its newline (an
    /// appender killed mid-write, which `O_APPEND` single writes make very
    /// unlikely) is returned too, so the caller can reject it visibly.
    pub fn read_lines(&mut self) -> io::Result<Vec<Vec<u8>>> {
        let mut content = Vec::new();
        (&self.file).read_to_end(&mut content)?;
        Ok(content
            .split(|&byte| byte == b'\n')
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .map(<[u8]>::to_vec)
            .collect())
    }

    /// Deletes the file: every line in it has been delivered.
    pub fn finish(self) -> io::Result<()> {
        match fs::remove_file(&self.path) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }

    /// Where the lines not forwarded yet start: 0, or the offset a
    /// forwarder left off at ([`ClaimedFile::release_at`]), read from the
    /// file's name.
    pub fn resume_offset(&self) -> u64 {
        self.name().offset
    }

    /// Whether a forwarder passed by a line too large to send
    /// ([`ClaimedFile::release_at`]), read from the file's name.
    pub fn passed_oversized(&self) -> bool {
        self.name().passed_oversized
    }

    /// The file's length in bytes.
    pub fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Reads up to `buffer.len()` bytes at `offset` (fewer only at the end
    /// of the file), so a forwarder reads a bounded part of a large file.
    pub fn read_at(&self, offset: u64, buffer: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let mut filled = 0;
        while filled < buffer.len() {
            match self
                .file
                .read_at(&mut buffer[filled..], offset + filled as u64)
            {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(filled)
    }

    /// Gives the file back unfinished: the lines before `offset` are
    /// delivered. The offset (and whether an oversized line was passed by)
    /// goes into the file's name, `spool-<minute>.at-<offset>[.skipped].jsonl`,
    /// so the next forwarder resumes there without copying anything. A
    /// drainer reads such a file from its start; the lines it delivers twice
    /// are stored once by id.
    pub fn release_at(self, offset: u64, passed_oversized: bool) -> io::Result<()> {
        let name = SpoolName {
            offset,
            passed_oversized,
            set_aside: false,
            ..self.name()
        };
        self.rename_to(&name)
    }

    /// A forwarder is done with the file. Without an oversized line passed
    /// by, it is deleted ([`ClaimedFile::finish`]). With one, it is set
    /// aside as `spool-<minute>.oversized.jsonl`: forwarders leave it alone
    /// and the collector's drainer stores what it holds (a line over
    /// [`MAX_LINE_BYTES`](crate::envelope::MAX_LINE_BYTES) never goes to
    /// Redis).
    pub fn finish_forwarding(self, passed_oversized: bool) -> io::Result<()> {
        if !passed_oversized {
            return self.finish();
        }
        let name = SpoolName {
            offset: 0,
            passed_oversized: false,
            set_aside: true,
            ..self.name()
        };
        self.rename_to(&name)
    }

    fn name(&self) -> SpoolName {
        let file_name = self
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        SpoolName::parse(&file_name)
    }

    /// Renames the claimed file to `name`'s form; the lock is released when
    /// `self` is dropped, after the rename.
    fn rename_to(self, name: &SpoolName) -> io::Result<()> {
        let parent = self.path.parent().unwrap_or(Path::new("."));
        fs::rename(&self.path, parent.join(name.to_file_name()))
    }
}

/// What a spool file's name says: `<stem>[.at-<offset>][.skipped].jsonl`,
/// or `<stem>.oversized.jsonl`, each maybe followed by a claim's mark.
/// `<stem>` is `spool-<minute>` or `spool-<minute>-<pid>` and has no dot.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SpoolName {
    /// `spool-<minute>` or `spool-<minute>-<pid>`: keeps the file's place in
    /// the oldest-first order whatever else the name says.
    stem: String,
    /// Where the lines not forwarded yet start.
    offset: u64,
    /// A forwarder passed an oversized line by: keep the file at the end.
    passed_oversized: bool,
    /// Set aside for the collector's drainer; forwarders skip it.
    set_aside: bool,
}

impl SpoolName {
    fn parse(file_name: &str) -> SpoolName {
        let base = file_name.split(CLAIMED_MARK).next().unwrap_or(file_name);
        let base = base.strip_suffix(SUFFIX).unwrap_or(base);
        let mut parts = base.split('.');
        let mut name = SpoolName {
            stem: parts.next().unwrap_or_default().to_owned(),
            offset: 0,
            passed_oversized: false,
            set_aside: false,
        };
        for part in parts {
            match part {
                "skipped" => name.passed_oversized = true,
                "oversized" => name.set_aside = true,
                _ => {
                    if let Some(offset) = part.strip_prefix("at-").and_then(|n| n.parse().ok()) {
                        name.offset = offset;
                    }
                }
            }
        }
        name
    }

    fn to_file_name(&self) -> String {
        let mut name = self.stem.clone();
        if self.set_aside {
            name.push_str(".oversized");
        } else {
            if self.offset > 0 {
                name.push_str(&format!(".at-{}", self.offset));
            }
            if self.passed_oversized {
                name.push_str(".skipped");
            }
        }
        name.push_str(SUFFIX);
        name
    }
}

/// Who claims, which decides how held locks and set-aside files are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimer {
    /// The collector's drainer: waits for a held lock (appenders hold it for
    /// one write) and takes every spool file, set-aside ones included.
    Drainer,
    /// A hook forwarding to Redis: passes a held lock by (it may be a
    /// drainer's, held until its database commit, seconds when the database
    /// is busy) and leaves files set aside for the collector alone
    /// ([`ClaimedFile::finish_forwarding`]).
    Forwarder,
}

/// The spool files one [`claim_files`] call took.
#[derive(Debug)]
pub struct Claim {
    /// The claimed files, oldest first.
    pub files: Vec<ClaimedFile>,
    /// Whether a file was passed by because its lock was held (at once for
    /// a [`Claimer::Forwarder`], after [`DRAIN_LOCK_PATIENCE`] for a
    /// [`Claimer::Drainer`]): the spool is not known to be empty, so the
    /// pending marker must stay.
    pub passed_busy: bool,
    /// Entries with a spool file's name that are not regular files (a FIFO,
    /// a device, a symbolic link): never opened for reading, never renamed,
    /// so the claimer can name them to a person.
    pub not_regular: Vec<PathBuf>,
}

/// Claims spool files in `dir`, oldest first, up to `limit` of them. `tag`
/// makes claimed names unique per drainer (a pid and a counter, say).
/// A missing directory means nothing to claim. Claims as the collector's
/// [`Claimer::Drainer`].
pub fn claim(dir: &Path, tag: &str, limit: usize) -> io::Result<Vec<ClaimedFile>> {
    claim_files(dir, tag, limit, Claimer::Drainer).map(|claim| claim.files)
}

/// [`claim`] for the given [`Claimer`]; a hook claims as a
/// [`Claimer::Forwarder`], so that no lock on its path can make it wait.
pub fn claim_files(dir: &Path, tag: &str, limit: usize, claimer: Claimer) -> io::Result<Claim> {
    let mut claim = Claim {
        files: Vec::new(),
        passed_busy: false,
        not_regular: Vec::new(),
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(claim),
        Err(error) => return Err(error),
    };
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| {
            name.starts_with(PREFIX) && (name.ends_with(SUFFIX) || name.contains(CLAIMED_MARK))
        })
        .filter(|name| claimer == Claimer::Drainer || !SpoolName::parse(name).set_aside)
        .collect();
    names.sort();
    for (index, name) in names.into_iter().enumerate() {
        if claim.files.len() >= limit {
            break;
        }
        let path = dir.join(&name);
        // Non-blocking and without following a link, then checked on the
        // descriptor: a FIFO under a spool name opens at once and is passed
        // by, instead of hanging the read (and every drain after it).
        let file = match File::options()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
            .open(&path)
        {
            Ok(file) => file,
            Err(error) if error.raw_os_error() == Some(libc::ELOOP) => {
                claim.not_regular.push(path);
                continue;
            }
            Err(_) => continue,
        };
        let Ok(file) = regular_file(file, &path) else {
            claim.not_regular.push(path);
            continue;
        };
        let abandoned_claim = name.contains(CLAIMED_MARK);
        let patience = match claimer {
            Claimer::Drainer => DRAIN_LOCK_PATIENCE,
            Claimer::Forwarder => std::time::Duration::ZERO,
        };
        if abandoned_claim {
            // Taken by a live drainer if we cannot lock it right now.
            if lock(&file, false).is_err() {
                continue;
            }
        } else if let Err(error) = lock_within(&file, patience) {
            if error.kind() != io::ErrorKind::WouldBlock {
                return Err(error);
            }
            claim.passed_busy = true;
            continue;
        }
        if !same_inode(&file, &path) {
            continue;
        }
        let base = name.split(CLAIMED_MARK).next().unwrap_or(&name);
        let new_path = dir.join(format!("{base}{CLAIMED_MARK}{tag}-{index}"));
        if fs::rename(&path, &new_path).is_err() {
            continue;
        }
        claim.files.push(ClaimedFile {
            path: new_path,
            file,
        });
    }
    Ok(claim)
}

/// Records a line a drainer rejected, with the reason, in [`REJECTED_FILE`]
/// so that nothing vanishes silently.
pub fn record_rejected(dir: &Path, line: &[u8], reason: &str) -> io::Result<()> {
    let record = serde_json::json!({
        "reason": reason,
        "line": String::from_utf8_lossy(line),
        "at": crate::time::now_millis(),
    });
    ensure_private_dir(dir)?;
    let file = open_for_append(&dir.join(REJECTED_FILE))?;
    // Bounded: a lock held for good (a stopped process) must not stall the
    // drain; the caller then keeps the spool file and tries again later.
    lock_within(&file, DRAIN_LOCK_PATIENCE)?;
    append_whole_lines(&file, format!("{record}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn append_creates_private_files_and_claim_reads_them_back() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("spool");
        let path = append(&dir, "{\"a\":1}").unwrap();
        append(&dir, "{\"a\":2}").unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let mut claimed = claim(&dir, "t", 10).unwrap();
        assert_eq!(claimed.len(), 1);
        let lines = claimed[0].read_lines().unwrap();
        assert_eq!(lines, vec![b"{\"a\":1}".to_vec(), b"{\"a\":2}".to_vec()]);
        // A second drainer cannot take the claimed file while it is held.
        assert!(claim(&dir, "u", 10).unwrap().is_empty());
        // New appends go to a fresh file, not the claimed one.
        append(&dir, "{\"a\":3}").unwrap();
        let mut second = claim(&dir, "u", 10).unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].read_lines().unwrap(), vec![b"{\"a\":3}".to_vec()]);
        claimed.pop().unwrap().finish().unwrap();
        second.pop().unwrap().finish().unwrap();
        assert!(claim(&dir, "v", 10).unwrap().is_empty());
    }

    #[test]
    fn appends_mark_the_spool_pending_and_a_racing_append_marks_it_again() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("spool");
        assert!(!has_pending(&dir));
        assert!(!take_pending(&dir));
        append(&dir, "a").unwrap();
        assert!(has_pending(&dir));
        assert_eq!(
            fs::metadata(dir.join(PENDING_MARKER))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        // A forwarder takes the marker, then claims.
        assert!(take_pending(&dir));
        assert!(!has_pending(&dir));
        let mut claimed = claim(&dir, "f", 10).unwrap();
        // An append racing the drain leaves the marker behind for the next one.
        append(&dir, "b").unwrap();
        assert!(has_pending(&dir));
        assert_eq!(claimed[0].read_lines().unwrap(), vec![b"a".to_vec()]);
        claimed.pop().unwrap().finish().unwrap();
        assert!(take_pending(&dir));
        let mut again = claim(&dir, "g", 10).unwrap();
        assert_eq!(again.len(), 1, "the marker is not a spool file");
        assert_eq!(again[0].read_lines().unwrap(), vec![b"b".to_vec()]);
    }

    #[test]
    fn an_appender_never_waits_long_on_a_held_lock() {
        let temp = tempfile::tempdir().unwrap();
        let first = append(temp.path(), "first").unwrap();
        // Someone holds the current file's lock and does not let go (a stuck
        // appender, or a drainer that claimed it after we opened it).
        let holder = File::options().append(true).open(&first).unwrap();
        lock(&holder, true).unwrap();
        let started = std::time::Instant::now();
        let second = append(temp.path(), "second").unwrap();
        assert!(
            started.elapsed() < std::time::Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        assert_ne!(first, second, "the line went to a file of its own");
        drop(holder);
        let mut lines = Vec::new();
        for mut file in claim(temp.path(), "t", 10).unwrap() {
            lines.extend(file.read_lines().unwrap());
            file.finish().unwrap();
        }
        lines.sort();
        assert_eq!(lines, vec![b"first".to_vec(), b"second".to_vec()]);
    }

    #[test]
    fn a_skipping_claimer_passes_a_held_file_by_and_says_so() {
        let temp = tempfile::tempdir().unwrap();
        let path = append(temp.path(), "held").unwrap();
        let holder = File::open(&path).unwrap();
        lock(&holder, true).unwrap();
        let passed = claim_files(temp.path(), "t", 10, Claimer::Forwarder).unwrap();
        assert!(passed.files.is_empty());
        assert!(passed.passed_busy);
        drop(holder);
        let taken = claim_files(temp.path(), "t", 10, Claimer::Forwarder).unwrap();
        assert_eq!(taken.files.len(), 1);
        assert!(!taken.passed_busy);
    }

    #[test]
    fn a_fifo_under_a_spool_name_is_passed_by_named_and_never_read() {
        use std::os::unix::ffi::OsStrExt;
        let temp = tempfile::tempdir().unwrap();
        let fifo = temp.path().join("spool-1.jsonl");
        let name = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        append(temp.path(), "real").unwrap();
        let mut claim = claim_files(temp.path(), "t", 10, Claimer::Drainer).unwrap();
        assert_eq!(claim.not_regular, vec![fifo.clone()]);
        assert_eq!(claim.files.len(), 1);
        assert_eq!(claim.files[0].read_lines().unwrap(), vec![b"real".to_vec()]);
        assert!(fifo.exists(), "the FIFO keeps its name");
        // Nor can an appender be made to write into one.
        let rejected = temp.path().join(REJECTED_FILE);
        let name = std::ffi::CString::new(rejected.as_os_str().as_bytes()).unwrap();
        // SAFETY: as above.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        assert!(record_rejected(temp.path(), b"x", "test").is_err());
    }

    #[test]
    fn a_drainer_passes_a_file_whose_lock_stays_held() {
        let temp = tempfile::tempdir().unwrap();
        let path = append(temp.path(), "held").unwrap();
        let holder = File::open(&path).unwrap();
        lock(&holder, true).unwrap();
        let started = std::time::Instant::now();
        let passed = claim_files(temp.path(), "t", 10, Claimer::Drainer).unwrap();
        assert!(passed.files.is_empty() && passed.passed_busy);
        assert!(started.elapsed() < DRAIN_LOCK_PATIENCE * 3);
        drop(holder);
        assert_eq!(claim(temp.path(), "t", 10).unwrap().len(), 1);
    }

    #[test]
    fn an_append_after_a_torn_line_starts_a_line_of_its_own() {
        let temp = tempfile::tempdir().unwrap();
        let path = append(temp.path(), "whole").unwrap();
        // An appender killed mid-write left half a line behind.
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"torn")
            .unwrap();
        append(temp.path(), "next").unwrap();
        let mut claimed = claim(temp.path(), "t", 10).unwrap();
        assert_eq!(
            claimed[0].read_lines().unwrap(),
            vec![b"whole".to_vec(), b"{\"torn".to_vec(), b"next".to_vec()]
        );
    }

    #[test]
    fn abandoned_claim_is_taken_again() {
        let temp = tempfile::tempdir().unwrap();
        append(temp.path(), "x").unwrap();
        let claimed = claim(temp.path(), "dead", 10).unwrap();
        // Dropping the claim without finishing releases the lock, as a
        // drainer's death would.
        drop(claimed);
        let mut again = claim(temp.path(), "alive", 10).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].read_lines().unwrap(), vec![b"x".to_vec()]);
    }

    #[test]
    fn a_released_file_resumes_at_its_offset_and_an_oversized_one_is_set_aside() {
        let temp = tempfile::tempdir().unwrap();
        append_lines(temp.path(), ["a", "b"]).unwrap();
        let first = claim_files(temp.path(), "f", 1, Claimer::Forwarder)
            .unwrap()
            .files
            .pop()
            .unwrap();
        assert_eq!(
            (first.resume_offset(), first.passed_oversized()),
            (0, false)
        );
        first.release_at(2, true).unwrap();
        let again = claim_files(temp.path(), "g", 1, Claimer::Forwarder)
            .unwrap()
            .files
            .pop()
            .unwrap();
        assert_eq!((again.resume_offset(), again.passed_oversized()), (2, true));
        let mut rest = [0u8; 8];
        let read = again.read_at(2, &mut rest).unwrap();
        assert_eq!(&rest[..read], b"b\n");
        again.finish_forwarding(true).unwrap();
        // Set aside: forwarders leave it, the drainer takes it whole.
        let forwarder = claim_files(temp.path(), "h", 1, Claimer::Forwarder).unwrap();
        assert!(forwarder.files.is_empty() && !forwarder.passed_busy);
        let mut drained = claim(temp.path(), "d", 1).unwrap();
        assert_eq!(
            drained[0].read_lines().unwrap(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
    }

    #[test]
    fn concurrent_appenders_and_a_drainer_lose_nothing() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        let writers: Vec<_> = (0..4)
            .map(|writer| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    for index in 0..500 {
                        append(&dir, &format!("{writer}-{index}")).unwrap();
                    }
                })
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        let drain = |seen: &mut std::collections::HashSet<Vec<u8>>| {
            for mut file in claim(&dir, "d", 100).unwrap() {
                for line in file.read_lines().unwrap() {
                    assert!(seen.insert(line), "a line was drained twice");
                }
                file.finish().unwrap();
            }
        };
        while writers.iter().any(|writer| !writer.is_finished()) {
            drain(&mut seen);
        }
        for writer in writers {
            writer.join().unwrap();
        }
        drain(&mut seen);
        assert_eq!(seen.len(), 2000);
    }
}
