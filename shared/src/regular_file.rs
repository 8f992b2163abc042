//! Opening the files a hook reads and writes (transcripts, the config file,
//! its state files) so that no path can stall it.
//!
//! A plain `open` of a FIFO blocks until a writer comes, and a read of
//! `/dev/zero` never ends: a `transcript_path` naming either hung the hook
//! for good (issue 16). So every such file is opened `O_NONBLOCK | O_NOCTTY`
//! (std adds `O_CLOEXEC`), which returns at once whatever the path names,
//! then `fstat`-checked on the open descriptor (no race with a rename) to be
//! a regular file, and read within a size bound. Anything else is an error
//! the caller turns into "nothing read", never into a wait.
//!
//! `O_NONBLOCK` changes nothing for a regular file: reads and writes of
//! one still complete (Linux ignores the flag there).

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The flags every open here adds: return at once on a FIFO or a device,
/// and never make a terminal the process's controlling one.
const FLAGS: i32 = libc::O_NONBLOCK | libc::O_NOCTTY;

/// Opens `path` for reading; fails unless it is a regular file.
pub fn open(path: &Path) -> io::Result<(File, Metadata)> {
    let file = open_checked(OpenOptions::new().read(true), path)?;
    let metadata = file.metadata()?;
    Ok((file, metadata))
}

/// Opens (creating with `mode` if needed) `path` for writing, without
/// truncating it; fails unless it is a regular file. The caller writes and
/// then cuts the file to length, so a FIFO or a device planted under the
/// name is never written to.
pub fn open_for_write(path: &Path, mode: u32) -> io::Result<File> {
    open_checked(OpenOptions::new().write(true).create(true).mode(mode), path)
}

/// Opens (creating with `mode` if needed) `path` for appending; fails
/// unless it is a regular file.
pub fn open_for_append(path: &Path, mode: u32) -> io::Result<File> {
    open_checked(
        OpenOptions::new().append(true).create(true).mode(mode),
        path,
    )
}

/// Opens with `options` and [`FLAGS`]; fails unless it is a regular file.
fn open_checked(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    let file = options.custom_flags(FLAGS).open(path)?;
    check_regular(&file.metadata()?)?;
    Ok(file)
}

/// Reads the whole of a regular file of at most `limit` bytes. A larger
/// file is an error (`FileTooLarge`), not a prefix: half a config file or
/// half a state file is worse than none.
pub fn read(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let (file, metadata) = open(path)?;
    if metadata.len() > limit {
        return Err(too_large(metadata.len(), limit));
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    // `take` also bounds a file that grows while it is read.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64, limit));
    }
    Ok(bytes)
}

/// [`read`], as UTF-8 text.
pub fn read_to_string(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read(path, limit)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

fn check_regular(metadata: &Metadata) -> io::Result<()> {
    let kind = metadata.file_type();
    if kind.is_file() {
        return Ok(());
    }
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("it is {what}, not a regular file"),
    ))
}

fn too_large(size: u64, limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!("it holds {size} bytes or more, over the {limit}-byte limit"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfifo(path: &Path) {
        let name = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path this test made.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn a_fifo_a_device_and_a_directory_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        for path in [fifo.as_path(), Path::new("/dev/zero"), dir.path()] {
            let error = read(path, 1024).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{path:?}");
        }
        assert!(open_for_write(&fifo, 0o600).is_err());
        assert!(open_for_append(&fifo, 0o600).is_err());
    }

    #[test]
    fn a_regular_file_is_read_within_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "12345").unwrap();
        assert_eq!(read_to_string(&file, 5).unwrap(), "12345");
        assert_eq!(
            read(&file, 4).unwrap_err().kind(),
            io::ErrorKind::FileTooLarge
        );
    }
}
