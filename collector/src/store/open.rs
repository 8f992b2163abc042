//! Opening the database read-write: the file made private (0600) before
//! SQLite touches it, a file that is not a database refused, WAL mode, the
//! pragmas the writer relies on, and the migrations.
//!
//! Every read-write connection comes from [`open`]: the writer's, the
//! import's, and the small ones of decisions and budget grants. It sits
//! below all of them, so none of them imports another for it.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::log;
use crate::store::schema;

/// How long SQLite itself waits for a lock before the writer sees `SQLITE_BUSY`
/// and retries the batch (counting a write error).
const BUSY_TIMEOUT: Duration = Duration::from_millis(1000);

/// Opens (creating if needed) the database read-write, sets the pragmas the
/// writer relies on and applies the migrations.
pub fn open(path: &Path) -> Result<Connection, String> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        if !dir.exists() {
            hooktrail_shared::paths::ensure_private_dir(dir).map_err(|error| {
                format!(
                    "cannot create the database directory {}: {error}",
                    dir.display()
                )
            })?;
        }
    }
    let name = path.display();
    make_private(path)?;
    let mut connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|error| format!("cannot open the database {name}: {error}"))?;
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .map_err(|error| format!("database {name}: {error}"))?;
    // A collector and an import starting together on a new file both try
    // this switch; the loser finds the file locked and tries again.
    let mode: String = schema::retry_while_busy(|| {
        connection.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
    })
    .map_err(|error| format!("cannot switch {name} to WAL mode: {error}"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!(
            "database {name} refused WAL mode (journal_mode is {mode})"
        ));
    }
    connection
        .execute_batch(
            "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-16384; PRAGMA temp_store=MEMORY;",
        )
        .map_err(|error| format!("database {name}: {error}"))?;
    schema::migrate(&mut connection)
        .map_err(|error| format!("cannot migrate the database {name}: {error}"))?;
    Ok(connection)
}

/// The first bytes of every SQLite 3 database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Refuses an existing `--db` file that is not a SQLite database (or an
/// empty file, which SQLite makes one): a typo or a hostile path
/// (`--db /proc/version`, `--db ~/.ssh/id_ed25519`) must be left as it
/// was, its mode included. The file is opened without blocking, so a FIFO
/// cannot hang the start.
fn check_is_database(path: &Path) -> Result<(), String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let refuse = |why: &str| {
        Err(format!(
            "refusing to use {} as the database: {why}; nothing was changed",
            path.display()
        ))
    };
    let metadata = std::fs::metadata(path)
        .map_err(|error| format!("cannot read the database {}: {error}", path.display()))?;
    if !metadata.is_file() {
        return refuse("it is not a regular file");
    }
    if metadata.len() == 0 {
        return Ok(());
    }
    let mut header = Vec::with_capacity(SQLITE_HEADER.len());
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .and_then(|file| {
            file.take(SQLITE_HEADER.len() as u64)
                .read_to_end(&mut header)
        })
        .map_err(|error| format!("cannot read the database {}: {error}", path.display()))?;
    if header.as_slice() != SQLITE_HEADER {
        return refuse("it is not a SQLite database");
    }
    Ok(())
}

/// Creates the database file 0600 before SQLite opens it (so there is no
/// moment when it exists with wider permissions; SQLite gives the WAL and
/// shared-memory files the database's mode), and tightens an existing
/// database, WAL and SHM that others can read, with one log line, once
/// [`check_is_database`] has found it is one.
fn make_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => return Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => {
            return Err(format!(
                "cannot create the database {}: {error}",
                path.display()
            ))
        }
    }
    check_is_database(path)?;
    let mut tightened = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = std::path::PathBuf::from(name);
        let Ok(metadata) = std::fs::symlink_metadata(&file) else {
            continue;
        };
        let mode = metadata.permissions().mode() & 0o777;
        if metadata.is_file() && mode & 0o077 != 0 {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode & 0o700))
                .map_err(|error| {
                    format!(
                        "cannot make {} private (mode {mode:04o}): {error}",
                        file.display()
                    )
                })?;
            tightened.push(format!("{} ({mode:04o})", file.display()));
        }
    }
    if !tightened.is_empty() {
        log::warn(&format!(
            "made the database private (0600): {} could be read by other users",
            tightened.join(", ")
        ));
    }
    Ok(())
}
