//! Delivery to the local collector's Unix socket (`shared::protocol`): one
//! envelope line, then one reply line; only `ok` means delivered.
//!
//! The connect is non-blocking: a collector whose accept queue is full (or a
//! socket file nobody listens on) fails at once instead of hanging, and the
//! write and the wait for the reply take their timeouts from one deadline.

use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::FromRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use hooktrail_shared::protocol::OK_REPLY;

use crate::deadline::Deadline;

/// Refuses a listener run by another user: without `XDG_RUNTIME_DIR` the
/// socket lives under a predictable `/tmp` path, and whoever answers `ok` there
/// would receive every hook payload. Our own collector runs as us (or, as a
/// system service, is started by root).
fn check_peer(stream: &UnixStream) -> Result<(), String> {
    use std::os::unix::io::AsRawFd;
    let mut credentials = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut length = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `length` bytes into `credentials`,
    // which is a properly sized, initialized ucred.
    let result = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut credentials as *mut libc::ucred).cast(),
            &mut length,
        )
    };
    if result != 0 {
        return Err(format!("peer credentials: {}", io::Error::last_os_error()));
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let own = unsafe { libc::getuid() };
    if credentials.uid != own && credentials.uid != 0 {
        return Err(format!(
            "the socket's listener runs as uid {}, not as us ({own}); not sending to it",
            credentials.uid
        ));
    }
    Ok(())
}

/// The socket's budget in hook mode, on top of Redis's.
pub const HOOK_BUDGET: Duration = Duration::from_millis(300);

/// Connects without blocking; `EAGAIN` (a full accept queue) is an error.
pub fn connect(path: &Path) -> io::Result<UnixStream> {
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: an all-zero sockaddr_un is a valid value of the type.
    let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= address.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long",
        ));
    }
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (slot, byte) in address.sun_path.iter_mut().zip(bytes) {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket that nothing else owns.
    let stream = unsafe { UnixStream::from_raw_fd(fd) };
    let length = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
    // SAFETY: `address` is a valid sockaddr_un and `length` covers the path
    // and its terminating zero.
    let result =
        unsafe { libc::connect(fd, (&address as *const libc::sockaddr_un).cast(), length) };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// What [`deliver`] returns: the open connection, the bytes that arrived
/// after the `ok` line, and the verdict that came on the `ok` line itself
/// (`ok <signed refusal>`, when a budget refuses).
pub type Delivered = (UnixStream, Vec<u8>, Option<Vec<u8>>);

/// Sends one envelope line and waits for `ok` until the deadline. Returns
/// the open connection and what arrived after the `ok` line: a hook waiting
/// for a remote decision reads it there (`decision::await_socket`).
pub fn deliver(path: &Path, line: &str, deadline: Deadline) -> Result<Delivered, String> {
    let mut stream =
        connect(path).map_err(|error| format!("connect to {}: {error}", path.display()))?;
    check_peer(&stream)?;
    let mut message = Vec::with_capacity(line.len() + 1);
    message.extend_from_slice(line.as_bytes());
    message.push(b'\n');
    let mut sent = 0;
    while sent < message.len() {
        let timeout = deadline
            .timeout()
            .map_err(|error| format!("send: {error}"))?;
        stream
            .set_write_timeout(Some(timeout))
            .map_err(|error| format!("send: {error}"))?;
        match stream.write(&message[sent..]) {
            Ok(0) => return Err("send: the collector closed the socket".to_owned()),
            Ok(written) => sent += written,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(format!("send: {error}")),
        }
    }
    let mut reply = Vec::new();
    let mut chunk = [0u8; 256];
    while !reply.contains(&b'\n') {
        let timeout = deadline
            .timeout()
            .map_err(|_| "no reply from the collector in time".to_owned())?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|error| format!("receive: {error}"))?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => reply.extend_from_slice(&chunk[..read]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(format!("receive: {error}")),
        }
        if reply.len() > 64 * 1024 {
            break;
        }
    }
    let first = reply.split(|&byte| byte == b'\n').next().unwrap_or(&[]);
    let first_length = first.len();
    let first = String::from_utf8_lossy(first);
    if reply.contains(&b'\n') && first.trim() == OK_REPLY {
        let rest = reply.split_off(first_length + 1);
        Ok((stream, rest, None))
    } else if let (true, Some(verdict)) = (
        reply.contains(&b'\n'),
        first
            .strip_prefix(OK_REPLY)
            .and_then(|tail| tail.strip_prefix(' ')),
    ) {
        // `ok <signed budget verdict>` (issue 19): delivered, with a verdict.
        let verdict = verdict.trim_end().as_bytes().to_vec();
        let rest = reply.split_off(first_length + 1);
        Ok((stream, rest, Some(verdict)))
    } else {
        Err(format!(
            "the collector did not answer ok: {:?}",
            first.trim()
        ))
    }
}
