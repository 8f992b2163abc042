//! Socket-descriptor workarounds: `tiny_http` exposes neither its listener
//! nor its accepted sockets, so these find them by address in
//! `/proc/self/fd` (Linux only).

use std::net::SocketAddr;

/// Which end of a socket an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// This process's side (`getsockname`).
    Local,
    /// The other side (`getpeername`); listeners have none.
    Peer,
}

/// The address of `end` of the socket `fd`, if it is an IP socket.
fn socket_address(fd: i32, end: End) -> Option<SocketAddr> {
    // SAFETY: `storage` is large enough for any address; the kernel writes at
    // most `length` bytes and we read only the family it reports.
    unsafe {
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        let mut length = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let pointer = &mut storage as *mut libc::sockaddr_storage as *mut libc::sockaddr;
        let result = match end {
            End::Peer => libc::getpeername(fd, pointer, &mut length),
            End::Local => libc::getsockname(fd, pointer, &mut length),
        };
        if result != 0 {
            return None;
        }
        match storage.ss_family as i32 {
            libc::AF_INET => {
                let address = &*(pointer as *const libc::sockaddr_in);
                let ip = std::net::Ipv4Addr::from(u32::from_be(address.sin_addr.s_addr));
                Some(SocketAddr::from((ip, u16::from_be(address.sin_port))))
            }
            libc::AF_INET6 => {
                let address = &*(pointer as *const libc::sockaddr_in6);
                let ip = std::net::Ipv6Addr::from(address.sin6_addr.s6_addr);
                Some(SocketAddr::from((ip, u16::from_be(address.sin6_port))))
            }
            _ => None,
        }
    }
}

/// This process's open file descriptors, from `/proc/self/fd` (none when
/// it cannot be read).
fn open_descriptors() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flat_map(|entries| entries.flatten())
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
}

/// Sets `TCP_NODELAY` on the listening socket bound to `local`, so every
/// accepted connection inherits it (Linux copies it at accept): without it,
/// a response written as head and body waits up to 40 ms on the client's
/// delayed ACK. `tiny_http` does not expose its sockets, so the listener is
/// found by address in `/proc/self/fd`. Returns whether it was found.
pub(crate) fn set_listener_nodelay(local: SocketAddr) -> bool {
    for fd in open_descriptors() {
        if socket_address(fd, End::Local) == Some(local) && socket_address(fd, End::Peer).is_none()
        {
            let enable: libc::c_int = 1;
            // SAFETY: setsockopt with a pointer to a live c_int and its size.
            let result = unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NODELAY,
                    &enable as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            return result == 0;
        }
    }
    false
}

/// Finds the accepted socket whose peer is `remote` and whose local port is
/// `local_port`, and returns a duplicate of it.
pub(crate) fn find_socket(local_port: u16, remote: SocketAddr) -> Option<std::net::TcpStream> {
    use std::os::fd::FromRawFd;
    for fd in open_descriptors() {
        let matches = |fd: i32| {
            socket_address(fd, End::Peer) == Some(remote)
                && socket_address(fd, End::Local).map(|local| local.port()) == Some(local_port)
        };
        if !matches(fd) {
            continue;
        }
        // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor we own, or -1.
        let duplicate = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if duplicate < 0 {
            return None;
        }
        if matches(duplicate) {
            // SAFETY: `duplicate` is a connected TCP socket we own.
            return Some(unsafe { std::net::TcpStream::from_raw_fd(duplicate) });
        }
        // SAFETY: closing the descriptor we just created.
        unsafe { libc::close(duplicate) };
    }
    None
}

/// A duplicate of the listening socket bound to `local`, found the same way
/// as in [`set_listener_nodelay`]. `tiny_http`'s accept thread ends on its
/// first accept error (`EMFILE` when the process runs out of descriptors)
/// and closes its listener; holding a duplicate keeps the socket bound, with
/// its backlog, so a new server can be started on it.
pub(crate) fn duplicate_listener(local: SocketAddr) -> Option<std::net::TcpListener> {
    use std::os::fd::FromRawFd;
    for fd in open_descriptors() {
        if socket_address(fd, End::Local) != Some(local) || socket_address(fd, End::Peer).is_some()
        {
            continue;
        }
        // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor we own, or -1.
        let duplicate = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if duplicate < 0 {
            return None;
        }
        // SAFETY: `duplicate` is a listening TCP socket we own.
        return Some(unsafe { std::net::TcpListener::from_raw_fd(duplicate) });
    }
    None
}

/// Sets `SO_RCVTIMEO` and `SO_SNDTIMEO` on a listening socket: Linux copies
/// both to every socket it accepts, and `tiny_http` offers no other way to
/// give its connections a time limit. A client that stops reading its
/// response then holds a worker for at most `write` per blocked write,
/// and one that sends nothing holds its connection for at most `read`.
/// Returns whether both were set.
pub(crate) fn set_accepted_timeouts(
    listener: &std::net::TcpListener,
    read: std::time::Duration,
    write: std::time::Duration,
) -> bool {
    use std::os::fd::AsRawFd;
    let set = |option: libc::c_int, duration: std::time::Duration| {
        let value = libc::timeval {
            tv_sec: duration.as_secs() as libc::time_t,
            tv_usec: duration.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: setsockopt with a pointer to a live timeval and its size.
        unsafe {
            libc::setsockopt(
                listener.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                &value as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            ) == 0
        }
    };
    set(libc::SO_RCVTIMEO, read) & set(libc::SO_SNDTIMEO, write)
}

/// How many of this process's descriptors refer to the same socket as
/// `listener` (itself included), or `None` when `/proc/self/fd` cannot be
/// read (out of descriptors, say). `tiny_http`'s accept thread can also end
/// by panicking (it unwraps a failed `try_clone` of an accepted socket at
/// `EMFILE`), which reports nothing; its listener descriptor closing is the
/// only trace, and this sees it.
pub(crate) fn descriptors_sharing(listener: &std::net::TcpListener) -> Option<usize> {
    use std::os::fd::AsRawFd;
    let own = std::fs::read_link(format!("/proc/self/fd/{}", listener.as_raw_fd())).ok()?;
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some(
        entries
            .flatten()
            .filter(|entry| std::fs::read_link(entry.path()).ok().as_ref() == Some(&own))
            .count(),
    )
}
