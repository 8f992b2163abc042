//! Redis for a short-lived process: URL parsing, one connection opened under a
//! [`Deadline`], and just enough hand-written RESP to send pipelined commands
//! and read their replies.
//!
//! Why not the `redis` crate: its connect, read and write timeouts are
//! separate and can add up to twice the budget, and it sends `CLIENT SETINFO`
//! on connect (DESIGN §9). Here DNS, TCP connect, the TLS handshake, `AUTH`,
//! `SELECT` and the command all take their timeouts from one deadline, and
//! `AUTH`/`SELECT` travel in the same write as the first command, so a hook
//! costs one round trip.
//!
//! TLS (`rediss://`) is rustls with the ring provider (aws-lc-rs costs about
//! 35 ms per start here), trusting the configured CA file or, without one, the
//! system's CA bundle: one file (`$SSL_CERT_FILE` or the distribution's
//! bundle), not the whole certificate directory that made native roots cost
//! about 5 ms per start (DESIGN §9).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use hooktrail_shared::config::{RedisConfig, Transport};

use crate::deadline::Deadline;

/// Whether the connection is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `redis://`: plain TCP.
    Plain,
    /// `rediss://`: TLS.
    Tls,
}

/// Where and how to connect, parsed from a Redis URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Plain TCP or TLS, from the scheme.
    pub security: Security,
    /// Host name or IP address (IPv6 without brackets); also the TLS server
    /// name.
    pub host: String,
    /// TCP port, 6379 when the URL has none.
    pub port: u16,
    /// ACL user for `AUTH user password`; `None` for `AUTH password`.
    pub user: Option<String>,
    /// Password; no `AUTH` is sent without one.
    pub password: Option<String>,
    /// Database for `SELECT`; 0 needs no command.
    pub db: u32,
}

impl Target {
    /// Parses `redis://[user[:password]@]host[:port][/db]` or `rediss://...`.
    /// User and password may be percent-encoded. Errors never hold the
    /// password.
    pub fn parse(url: &str) -> Result<Target, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| "the Redis URL has no scheme (use redis:// or rediss://)".to_owned())?;
        let security = match scheme.to_ascii_lowercase().as_str() {
            "redis" => Security::Plain,
            "rediss" => Security::Tls,
            other => {
                return Err(format!(
                    "unsupported Redis URL scheme {other:?} (use redis:// or rediss://)"
                ))
            }
        };
        // The user-info ends at the last '@' (as `config::redact_url` reads
        // it): passwords often hold an unencoded '/', '?' or '#'.
        let (userinfo, after_userinfo) = match rest.rsplit_once('@') {
            Some((info, after)) => (Some(info), after),
            None => (None, rest),
        };
        let end = after_userinfo
            .find(['/', '?', '#'])
            .unwrap_or(after_userinfo.len());
        let (hostport, tail) = after_userinfo.split_at(end);
        let (mut user, mut password) = (None, None);
        if let Some(info) = userinfo {
            let (name, secret) = match info.split_once(':') {
                Some((name, secret)) => (name, Some(secret)),
                None => (info, None),
            };
            user = Some(decode_url_userinfo(name)).filter(|name| !name.is_empty());
            password = secret
                .map(decode_url_userinfo)
                .filter(|secret| !secret.is_empty());
        }
        let (host, port) = split_host_port(hostport)?;
        let db = match tail.strip_prefix('/') {
            Some(path) => {
                let path = path.split(['?', '#']).next().unwrap_or("");
                if path.is_empty() {
                    0
                } else {
                    path.parse()
                        .map_err(|_| format!("the Redis URL's database {path:?} is not a number"))?
                }
            }
            None => 0,
        };
        Ok(Target {
            security,
            host,
            port,
            user,
            password,
            db,
        })
    }
}

fn split_host_port(hostport: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "the Redis URL has an unclosed '[' in its host".to_owned())?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("the Redis URL has no host".to_owned());
    }
    let port = match port {
        Some(text) if !text.is_empty() => text
            .parse()
            .map_err(|_| format!("the Redis URL's port {text:?} is not a number"))?,
        _ => 6379,
    };
    Ok((host.to_owned(), port))
}

/// Decodes the `%XX` escapes of a Redis URL's user or password, leniently:
/// a `%` not followed by two hex digits stays as written, `+` is a `+`, and
/// bytes that are not UTF-8 are replaced, because a password is whatever
/// the person typed and a URL that parses must not lose its credentials.
fn decode_url_userinfo(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
        match (bytes[index], hex(index + 1), hex(index + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                index += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What kind of failure a Redis attempt met; all of them open the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The URL or the TLS settings cannot work; no network was touched.
    Setup,
    /// Nothing listens there (connection refused or reset).
    Refused,
    /// The deadline passed: a server that does not answer, or never accepts.
    Timeout,
    /// Another I/O or TLS error.
    Io,
    /// The server answered with an error (`NOAUTH`, `WRONGTYPE`, ...).
    Reply,
}

/// Why a Redis attempt failed, for the diagnostics and `check`.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The class of failure.
    pub kind: FailureKind,
    /// A one-line description for a person; never holds a password.
    pub detail: String,
}

impl Failure {
    fn new(kind: FailureKind, detail: impl Into<String>) -> Failure {
        Failure {
            kind,
            detail: detail.into(),
        }
    }

    fn io(step: &str, error: io::Error) -> Failure {
        let kind = match error.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => FailureKind::Timeout,
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => FailureKind::Refused,
            _ => FailureKind::Io,
        };
        Failure::new(kind, format!("{step}: {error}"))
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{:?}: {}", self.kind, self.detail)
    }
}

/// One RESP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...`.
    Error(String),
    /// `:1`.
    Integer(i64),
    /// `$n` bulk string; `None` for nil.
    Bulk(Option<Vec<u8>>),
    /// `*n` array; `None` for nil.
    Array(Option<Vec<Reply>>),
}

/// Appends one command in RESP form to `out`.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    push_header(out, b'*', args.len());
    for arg in args {
        push_header(out, b'$', arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

fn push_header(out: &mut Vec<u8>, kind: u8, number: usize) {
    out.push(kind);
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = number;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
}

/// Appends the delivery command for one envelope line: `XADD <key> MAXLEN ~
/// <maxlen> * event <line>` for the stream, `PUBLISH <key> <line>` for pub/sub.
pub fn encode_delivery(out: &mut Vec<u8>, redis: &RedisConfig, line: &[u8]) {
    match redis.transport {
        Transport::Stream => {
            let maxlen = redis.maxlen.to_string();
            encode(
                out,
                &[
                    b"XADD",
                    redis.key.as_bytes(),
                    b"MAXLEN",
                    b"~",
                    maxlen.as_bytes(),
                    b"*",
                    b"event",
                    line,
                ],
            );
        }
        Transport::PubSub => encode(out, &[b"PUBLISH", redis.key.as_bytes(), line]),
    }
}

/// How Redis answered one delivery command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Stored in the stream, or published to at least one subscriber.
    Delivered,
    /// Published to nobody: not delivered, but Redis itself works.
    NoReceivers,
}

/// Interprets the reply to [`encode_delivery`]'s command.
pub fn delivery_result(transport: Transport, reply: &Reply) -> Result<Delivery, Failure> {
    match (transport, reply) {
        (Transport::Stream, Reply::Bulk(Some(_)) | Reply::Simple(_)) => Ok(Delivery::Delivered),
        (Transport::PubSub, Reply::Integer(count)) if *count > 0 => Ok(Delivery::Delivered),
        (Transport::PubSub, Reply::Integer(_)) => Ok(Delivery::NoReceivers),
        (_, Reply::Error(message)) => Err(Failure::new(
            FailureKind::Reply,
            format!("Redis answered: {message}"),
        )),
        (_, other) => Err(Failure::new(
            FailureKind::Reply,
            format!("unexpected reply {other:?}"),
        )),
    }
}

/// A TCP stream whose every read and write times out at the deadline.
struct DeadlineTcp {
    /// The connected socket.
    tcp: TcpStream,
    /// The deadline of the current exchange; replaced by
    /// [`Connection::set_deadline`] for a new one.
    deadline: Deadline,
}

impl Read for DeadlineTcp {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        self.tcp.set_read_timeout(Some(self.deadline.timeout()?))?;
        self.tcp.read(buffer)
    }
}

impl Write for DeadlineTcp {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        self.tcp.set_write_timeout(Some(self.deadline.timeout()?))?;
        self.tcp.write(buffer)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The byte stream under a connection.
enum Wire {
    /// `redis://`.
    Plain(DeadlineTcp),
    /// `rediss://`; boxed because the TLS state is large.
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, DeadlineTcp>>),
}

impl Wire {
    fn tcp_mut(&mut self) -> &mut DeadlineTcp {
        match self {
            Wire::Plain(tcp) => tcp,
            Wire::Tls(stream) => &mut stream.sock,
        }
    }
}

impl Read for Wire {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(tcp) => tcp.read(buffer),
            Wire::Tls(stream) => stream.read(buffer),
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(tcp) => tcp.write(buffer),
            Wire::Tls(stream) => stream.write(buffer),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Wire::Plain(tcp) => tcp.flush(),
            Wire::Tls(stream) => stream.flush(),
        }
    }
}

/// One open Redis connection.
pub struct Connection {
    /// The socket, plain or TLS.
    wire: Wire,
    /// `AUTH` and `SELECT`, encoded, still to be sent in front of the first
    /// request so they cost no round trip of their own.
    prelude: Vec<u8>,
    /// The commands in the prelude, in order (`"AUTH"`, `"SELECT"`), to name
    /// the one that was refused.
    prelude_steps: Vec<&'static str>,
    /// Bytes received and not parsed yet.
    buffer: Vec<u8>,
    /// Where parsing resumes in `buffer`.
    position: usize,
}

impl Connection {
    /// Resolves, connects and (for `rediss://`) prepares TLS, all before the
    /// deadline. `AUTH` and `SELECT` are queued for the first request.
    pub fn open(
        target: &Target,
        ca_file: Option<&Path>,
        deadline: Deadline,
    ) -> Result<Connection, Failure> {
        let tls = match target.security {
            Security::Tls => Some(tls_connection(target, ca_file)?),
            Security::Plain => None,
        };
        let addresses = resolve(&target.host, target.port, deadline)?;
        let mut last_error = None;
        let mut connected = None;
        for address in addresses {
            let timeout = deadline
                .timeout()
                .map_err(|error| Failure::io("connect", error))?;
            match TcpStream::connect_timeout(&address, timeout) {
                Ok(tcp) => {
                    connected = Some(tcp);
                    break;
                }
                Err(error) => {
                    last_error = Some(Failure::io(&format!("connect to {address}"), error))
                }
            }
        }
        let tcp = connected.ok_or_else(|| {
            last_error.unwrap_or_else(|| {
                Failure::new(
                    FailureKind::Io,
                    format!("{} resolves to no address", target.host),
                )
            })
        })?;
        let _ = tcp.set_nodelay(true);
        let tcp = DeadlineTcp { tcp, deadline };
        let wire = match tls {
            Some(connection) => Wire::Tls(Box::new(rustls::StreamOwned::new(connection, tcp))),
            None => Wire::Plain(tcp),
        };
        let mut prelude = Vec::new();
        let mut prelude_steps = Vec::new();
        if let Some(password) = &target.password {
            match &target.user {
                Some(user) => encode(
                    &mut prelude,
                    &[b"AUTH", user.as_bytes(), password.as_bytes()],
                ),
                None => encode(&mut prelude, &[b"AUTH", password.as_bytes()]),
            }
            prelude_steps.push("AUTH");
        }
        if target.db != 0 {
            encode(&mut prelude, &[b"SELECT", target.db.to_string().as_bytes()]);
            prelude_steps.push("SELECT");
        }
        Ok(Connection {
            wire,
            prelude,
            prelude_steps,
            buffer: Vec::new(),
            position: 0,
        })
    }

    /// Starts a new exchange with its own deadline (spool forwarding gets a
    /// budget of its own after the hook's event is delivered).
    pub fn set_deadline(&mut self, deadline: Deadline) {
        self.wire.tcp_mut().deadline = deadline;
    }

    /// Sends `commands` (already RESP-encoded, `count` of them) in one write
    /// and reads their replies. Stops at the deadline; replies read before it
    /// are returned by [`Connection::request_partial`].
    pub fn request(&mut self, commands: &[u8], count: usize) -> Result<Vec<Reply>, Failure> {
        let (replies, failure) = self.request_partial(commands, count);
        match failure {
            Some(failure) => Err(failure),
            None => Ok(replies),
        }
    }

    /// Like [`Connection::request`], but also returns the replies that
    /// arrived before a failure, so a pipeline knows which commands took
    /// effect.
    pub fn request_partial(
        &mut self,
        commands: &[u8],
        count: usize,
    ) -> (Vec<Reply>, Option<Failure>) {
        let mut replies = Vec::with_capacity(count);
        let prelude_steps = std::mem::take(&mut self.prelude_steps);
        let written = if self.prelude.is_empty() {
            self.wire.write_all(commands)
        } else {
            let mut joined = std::mem::take(&mut self.prelude);
            joined.extend_from_slice(commands);
            self.wire.write_all(&joined)
        };
        if let Err(error) = written.and_then(|()| self.wire.flush()) {
            return (replies, Some(Failure::io("send", error)));
        }
        for step in prelude_steps {
            match self.read_reply() {
                Ok(Reply::Error(message)) => {
                    return (
                        replies,
                        Some(Failure::new(
                            FailureKind::Reply,
                            format!("{step} refused: {message}"),
                        )),
                    );
                }
                Ok(_) => {}
                Err(failure) => return (replies, Some(failure)),
            }
        }
        for _ in 0..count {
            match self.read_reply() {
                Ok(reply) => replies.push(reply),
                Err(failure) => return (replies, Some(failure)),
            }
        }
        (replies, None)
    }

    /// Reads one reply within [`ReplyLimits`]: a Redis that answers with
    /// something deeper, longer or larger fails the request (and opens the
    /// breaker) instead of exhausting the stack or the memory.
    fn read_reply(&mut self) -> Result<Reply, Failure> {
        let mut elements_left = MAX_REPLY_ELEMENTS;
        self.read_reply_within(0, &mut elements_left)
    }

    /// One reply at nesting `depth`, taking each element from
    /// `elements_left`. The recursion is bounded by [`MAX_REPLY_DEPTH`].
    fn read_reply_within(
        &mut self,
        depth: usize,
        elements_left: &mut usize,
    ) -> Result<Reply, Failure> {
        if depth > MAX_REPLY_DEPTH {
            return Err(protocol_error("nested too deeply"));
        }
        *elements_left = elements_left
            .checked_sub(1)
            .ok_or_else(|| protocol_error("too many elements"))?;
        let line = self.read_line()?;
        let (kind, rest) = line
            .split_first()
            .ok_or_else(|| protocol_error("empty reply line"))?;
        let text = || String::from_utf8_lossy(rest).into_owned();
        let number = || -> Result<i64, Failure> {
            std::str::from_utf8(rest)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| protocol_error("bad length"))
        };
        Ok(match kind {
            b'+' => Reply::Simple(text()),
            b'-' => Reply::Error(text()),
            b':' => Reply::Integer(number()?),
            b'$' => match usize::try_from(number()?) {
                Err(_) => Reply::Bulk(None),
                Ok(length) if length > MAX_REPLY_BYTES => {
                    return Err(protocol_error("bulk string too long"))
                }
                Ok(length) => {
                    let data = self.read_exact(length + 2)?;
                    Reply::Bulk(Some(data[..length].to_vec()))
                }
            },
            b'*' => match usize::try_from(number()?) {
                Err(_) => Reply::Array(None),
                Ok(length) if length > *elements_left => {
                    return Err(protocol_error("too many elements"))
                }
                Ok(length) => {
                    let mut items = Vec::with_capacity(length);
                    for _ in 0..length {
                        items.push(self.read_reply_within(depth + 1, elements_left)?);
                    }
                    Reply::Array(Some(items))
                }
            },
            // RESP3 types are never asked for (no HELLO); anything else is a
            // broken stream.
            _ => return Err(protocol_error("unknown reply type")),
        })
    }

    fn read_line(&mut self) -> Result<Vec<u8>, Failure> {
        let mut searched: usize = 0;
        loop {
            let unread = &self.buffer[self.position..];
            // Resume the search where the last one stopped (less one byte, in
            // case "\r" ended the previous read), so a long line costs one pass.
            let from = searched.saturating_sub(1);
            if let Some(at) = unread[from..].windows(2).position(|pair| pair == b"\r\n") {
                let line = unread[..from + at].to_vec();
                self.position += from + at + 2;
                return Ok(line);
            }
            if unread.len() > MAX_REPLY_BYTES {
                return Err(protocol_error("reply line too long"));
            }
            searched = unread.len();
            self.fill()?;
        }
    }

    fn read_exact(&mut self, length: usize) -> Result<Vec<u8>, Failure> {
        while self.buffer.len() - self.position < length {
            self.fill()?;
        }
        let data = self.buffer[self.position..self.position + length].to_vec();
        self.position += length;
        Ok(data)
    }

    /// Reads what has arrived into `buffer`, through a chunk on the stack:
    /// growing `buffer` by a zeroed 16 KB for every read cost 40% of a
    /// whole hook's instructions and four page faults, for a 22-byte `XADD`
    /// reply (issue 21).
    fn fill(&mut self) -> Result<(), Failure> {
        if self.position > 0 && self.position == self.buffer.len() {
            self.buffer.clear();
            self.position = 0;
        }
        let mut chunk = [0u8; READ_CHUNK];
        match self.wire.read(&mut chunk) {
            Ok(0) => Err(Failure::new(
                FailureKind::Refused,
                "Redis closed the connection",
            )),
            Ok(read) => {
                self.buffer.extend_from_slice(&chunk[..read]);
                Ok(())
            }
            Err(error) => Err(Failure::io("receive", error)),
        }
    }
}

/// The most bytes one read takes: replies here are ids, counts and short
/// errors; a longer one takes more reads.
const READ_CHUNK: usize = 2048;

/// The deepest reply nesting accepted. The commands sent here answer with
/// a plain value (`XADD` an id, `PUBLISH` a count, `AUTH`/`SELECT` `+OK`);
/// the bound is what keeps a hostile server's `*1\r\n*1\r\n...` from
/// recursing until the stack overflows (which no panic hook can catch).
const MAX_REPLY_DEPTH: usize = 8;

/// The most values (arrays and their elements, all levels) in one reply.
const MAX_REPLY_ELEMENTS: usize = 1024;

/// The longest reply line or bulk string accepted: replies here are ids and
/// short error messages, and an unending line would otherwise be buffered
/// until the deadline.
const MAX_REPLY_BYTES: usize = 64 * 1024;

fn protocol_error(what: &str) -> Failure {
    Failure::new(
        FailureKind::Io,
        format!("malformed reply from Redis ({what})"),
    )
}

/// Addresses for `host`, within the deadline. IP literals and `localhost` need
/// no resolver; other names are resolved on a helper thread so a slow DNS
/// server cannot outlast the budget. The static glibc's `getaddrinfo` reads
/// /etc/hosts and asks DNS itself (checked under strace: no NSS module is
/// loaded), so those work; other name services (mDNS, LDAP) do not.
fn resolve(host: &str, port: u16, deadline: Deadline) -> Result<Vec<SocketAddr>, Failure> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
        ]);
    }
    let (sender, receiver) = mpsc::channel();
    let name = (host.to_owned(), port);
    let spawned = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || {
            let _ = sender.send(name.to_socket_addrs().map(Iterator::collect::<Vec<_>>));
        });
    if let Err(error) = spawned {
        return Err(Failure::io("start the resolver thread", error));
    }
    let timeout = deadline
        .timeout()
        .map_err(|error| Failure::io("resolve", error))?;
    match receiver.recv_timeout(timeout) {
        Ok(Ok(addresses)) => Ok(addresses),
        Ok(Err(error)) => Err(Failure::new(
            FailureKind::Io,
            format!("cannot resolve {host}: {error}"),
        )),
        Err(_) => Err(Failure::new(
            FailureKind::Timeout,
            format!("resolving {host} took longer than the budget"),
        )),
    }
}

fn tls_connection(
    target: &Target,
    ca_file: Option<&Path>,
) -> Result<rustls::ClientConnection, Failure> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};

    let setup = |what: String| Failure::new(FailureKind::Setup, what);
    let mut roots = rustls::RootCertStore::empty();
    let system_bundle;
    let ca_file = match ca_file {
        Some(path) => Some(path),
        None => {
            system_bundle = system_ca_bundle();
            system_bundle.as_deref()
        }
    };
    match ca_file {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path).map_err(|error| {
                setup(format!(
                    "cannot read the CA file {}: {error}",
                    path.display()
                ))
            })?;
            for certificate in certificates {
                let certificate = certificate.map_err(|error| {
                    setup(format!(
                        "bad certificate in the CA file {}: {error}",
                        path.display()
                    ))
                })?;
                roots.add(certificate).map_err(|error| {
                    setup(format!(
                        "unusable certificate in {}: {error}",
                        path.display()
                    ))
                })?;
            }
            if roots.is_empty() {
                return Err(setup(format!(
                    "the CA file {} holds no certificate",
                    path.display()
                )));
            }
        }
        None => {
            return Err(setup(
                "no CA file is configured (redis.ca_file) and no system CA bundle was found; set redis.ca_file".to_owned(),
            ))
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| setup(format!("TLS setup: {error}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(target.host.clone()).map_err(|error| {
        setup(format!(
            "{:?} is not a valid TLS server name: {error}",
            target.host
        ))
    })?;
    rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|error| setup(format!("TLS setup: {error}")))
}

/// The system's CA bundle: `$SSL_CERT_FILE`, else the first bundle file that
/// exists among the usual distribution paths.
fn system_ca_bundle() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("SSL_CERT_FILE").filter(|path| !path.is_empty()) {
        return Some(path.into());
    }
    [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/ssl/cert.pem",
    ]
    .iter()
    .map(std::path::PathBuf::from)
    .find(|path| path.is_file())
}

/// The budget Redis gets in hook mode: everything from DNS to the reply.
pub const HOOK_BUDGET: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_with_users_passwords_tls_and_databases() {
        let target = Target::parse("rediss://alice:p%40ss%3Aw@cache.example:6380/3").unwrap();
        assert_eq!(target.security, Security::Tls);
        assert_eq!(target.host, "cache.example");
        assert_eq!(target.port, 6380);
        assert_eq!(target.user.as_deref(), Some("alice"));
        assert_eq!(target.password.as_deref(), Some("p@ss:w"));
        assert_eq!(target.db, 3);
        let target = Target::parse("redis://u:ab/c+d=@10.0.0.1:7000/2").unwrap();
        assert_eq!(target.password.as_deref(), Some("ab/c+d="));
        assert_eq!(
            (target.host.as_str(), target.port, target.db),
            ("10.0.0.1", 7000, 2)
        );
        let target = Target::parse("redis://:secret@127.0.0.1").unwrap();
        assert_eq!(
            (target.user, target.password.as_deref(), target.port),
            (None, Some("secret"), 6379)
        );
        let target = Target::parse("redis://[::1]:7000/").unwrap();
        assert_eq!(
            (target.host.as_str(), target.port, target.db),
            ("::1", 7000, 0)
        );
        assert!(Target::parse("http://x").is_err());
        assert!(Target::parse("redis://h:notaport").is_err());
        let error = Target::parse("redis://u:topsecret@h:x").unwrap_err();
        assert!(!error.contains("topsecret"));
    }

    #[test]
    fn encodes_resp_arrays() {
        let mut out = Vec::new();
        encode(&mut out, &[b"SET", b"k", b""]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
        out.clear();
        push_header(&mut out, b'$', 1234567);
        assert_eq!(out, b"$1234567\r\n");
    }
}
