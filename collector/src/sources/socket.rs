//! The Unix-socket source: a `mio` event loop on one thread serving any
//! number of emitters (up to a connection limit).
//!
//! Protocol (`hooktrail_shared::protocol`): newline-delimited envelopes; for
//! each line, in order, `ok` once its event is committed (or was already
//! stored), or `error <reason>` when the line is rejected. Lines read in one
//! burst from a connection go to the writer as one submission; replies wait
//! in a per-connection queue until the writer reports the commit, so they
//! always leave in line order.
//!
//! **Invariants:** the socket file is 0600 in a 0700 directory; a live
//! collector on the same path is never displaced (we connect first), a stale
//! file is replaced; a line over `MAX_LINE_BYTES` is rejected without being
//! buffered whole (the line splitting is [`crate::sources::framing::LineFramer`]).

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use hooktrail_shared::protocol::{self, MAX_LINE_BYTES};
use hooktrail_shared::redact::Redactor;
use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::event::Source;
use crate::ingest::{self, Committed, NewEvent, Submission, WriterQueue};
use crate::log;
use crate::service::spawn_thread;
use crate::settings::Tuning;
use crate::sources::framing::{Frame, LineFramer};
use crate::stats::Stats;

/// Remote decisions (issue 18) for hooks that wait on this socket: the
/// approvals side posts one, the event loop writes it on the connection that
/// delivered the request (after its `ok`) and reports whether it went out.
#[derive(Default)]
pub struct DecisionMailbox {
    /// Decisions posted, not yet handled by the event loop.
    posted: Mutex<Vec<PostedDecision>>,
    /// Wakes the event loop; set once it runs.
    waker: OnceLock<Arc<Waker>>,
}

/// One decision on its way to a waiting hook.
struct PostedDecision {
    /// The request it answers.
    event_id: String,
    /// The signed line, without its newline.
    line: String,
    /// Told whether the line was written to the hook's connection.
    done: Sender<bool>,
}

impl DecisionMailbox {
    /// Hands `line` to the hook waiting on `event_id`; true once it is
    /// written to that hook's connection, false when no connection waits
    /// for it (the hook ended, or it waits elsewhere) or within `timeout`.
    pub(crate) fn deliver(&self, event_id: &str, line: String, timeout: Duration) -> bool {
        let Some(waker) = self.waker.get() else {
            return false;
        };
        let (done, outcome) = crossbeam_channel::bounded(1);
        self.posted
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(PostedDecision {
                event_id: event_id.to_owned(),
                line,
                done,
            });
        let _ = waker.wake();
        outcome.recv_timeout(timeout).unwrap_or(false)
    }
}

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);

/// Replies waiting in one connection's output before it is read from again:
/// a client that writes without reading its replies is slowed, not buffered
/// without bound.
const MAX_BUFFERED_OUTPUT: usize = 1 << 20;

/// Most bytes all connections' line buffers may hold together. Each may
/// hold a partial line of up to `MAX_LINE_BYTES` (8 MiB), so 1,024
/// connections sending partial lines could take 8 GiB (825 MB RSS was seen);
/// over this budget the connection with the largest buffer is closed (its
/// client gets no `ok` and spools). An emitter writes its line at once, so
/// only a client that trickles or withholds a line's end is cut.
const MAX_LINE_BUFFERS_TOTAL: usize = 64 << 20;

/// Bytes read per `read` call.
const READ_CHUNK: usize = 64 * 1024;

/// A bound socket, ready for `SocketSource`. Removes its file when dropped, if
/// the file is still the one it bound.
#[derive(Debug)]
pub struct SocketListener {
    /// The listening socket.
    listener: UnixListener,
    /// Its path, removed at shutdown.
    path: PathBuf,
    /// Device and inode of the file we bound, so we never remove a file a
    /// newer collector put there.
    identity: (u64, u64),
}

impl SocketListener {
    /// The path it listens on.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketListener {
    fn drop(&mut self) {
        if let Ok(metadata) = fs::symlink_metadata(&self.path) {
            if (metadata.dev(), metadata.ino()) == self.identity {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// Binds the socket at `path`: makes its directory 0700, replaces a stale
/// socket file left by a crash, refuses to displace a live collector, and
/// makes the socket 0600.
pub(crate) fn bind(path: &Path) -> Result<SocketListener, String> {
    let name = path.display();
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        hooktrail_shared::paths::ensure_private_dir(dir).map_err(|error| {
            format!(
                "cannot create the socket directory {}: {error}",
                dir.display()
            )
        })?;
    }
    if let Ok(metadata) = fs::symlink_metadata(path) {
        if !metadata.file_type().is_socket() {
            return Err(format!(
                "{name} exists and is not a socket; move it away or choose another --socket"
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "another collector is already listening on {name}; stop it first or choose another --socket"
            ));
        }
        fs::remove_file(path)
            .map_err(|error| format!("cannot replace the stale socket {name}: {error}"))?;
        log::info(&format!("replaced the stale socket file {name}"));
    }
    let listener = std::os::unix::net::UnixListener::bind(path)
        .map_err(|error| format!("cannot listen on {name}: {error}"))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .map_err(|error| format!("cannot make {name} private: {error}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|error| format!("cannot listen on {name}: {error}"))?;
    let metadata = fs::symlink_metadata(path).map_err(|error| format!("{name}: {error}"))?;
    Ok(SocketListener {
        listener: UnixListener::from_std(listener),
        path: path.to_owned(),
        identity: (metadata.dev(), metadata.ino()),
    })
}

/// A reply owed to a client for one line, in line order.
enum Reply {
    /// `ok` once the connection's submission with this number is committed;
    /// for an event that asked for its budget verdict, with its session and
    /// machine, so the `ok` can carry a refusal.
    AfterCommit(u64, Option<Box<(String, String)>>),
    /// An `error ...` line, ready now.
    Rejected(String),
}

/// Turns the frames of one read turn into events to submit and replies
/// owed, in line order.
struct LineReplies<'a> {
    /// Parsed events of this turn, submitted together.
    events: &'a mut Vec<NewEvent>,
    /// The connection's replies in line order.
    replies: &'a mut VecDeque<Reply>,
    /// Reasons of the lines rejected in this turn, for the log.
    rejected: &'a mut Vec<String>,
    /// Number of the submission this turn's events go into.
    number: u64,
    /// Counters.
    stats: &'a Stats,
    /// The collector's redaction rules.
    redactor: &'a Redactor,
    /// Sessions whose payload facts were read already.
    known_sessions: &'a mut ingest::KnownSessions,
    /// The connection's requests whose hooks wait for a decision.
    waiting: &'a mut Vec<(String, i64)>,
}

impl LineReplies<'_> {
    fn take(&mut self, frame: Frame<'_>) {
        let reason = match frame {
            Frame::Oversized(length) => {
                let counters = self.stats.source(Source::Socket);
                counters.received.fetch_add(1, Ordering::Relaxed);
                counters.rejected.fetch_add(1, Ordering::Relaxed);
                format!("line longer than {MAX_LINE_BYTES} bytes ({length} bytes)")
            }
            Frame::Line(line) => match ingest::parse_counted_remembering(
                line,
                Source::Socket,
                self.stats,
                self.redactor,
                Some(self.known_sessions),
            ) {
                Ok(event) => {
                    if let Some(until) = event.wait_until {
                        self.waiting.push((event.row.id.clone(), until));
                    }
                    let verdict_for = event.budget_check.then(|| {
                        Box::new((
                            event.row.session_id.clone().unwrap_or_default(),
                            event.row.machine.clone(),
                        ))
                    });
                    self.events.push(event);
                    self.replies
                        .push_back(Reply::AfterCommit(self.number, verdict_for));
                    return;
                }
                Err(reason) => reason.0,
            },
        };
        self.replies
            .push_back(Reply::Rejected(protocol::error_reply(&reason)));
        self.rejected.push(reason);
    }
}

/// One emitter's connection.
struct Connection {
    /// The socket.
    stream: UnixStream,
    /// Splits what is read into lines within [`MAX_LINE_BYTES`].
    framer: LineFramer,
    /// Reply bytes not yet written.
    output: Vec<u8>,
    /// Replies owed, in line order.
    replies: VecDeque<Reply>,
    /// Number of the last submission sent to the writer.
    submitted: u64,
    /// Number of the last submission up to which every submission of this
    /// connection was committed; see [`advance_committed`].
    committed: u64,
    /// Submissions committed after one that is not (yet): they wait here
    /// until the gap closes, which it never does for a submission the
    /// writer gave up at shutdown.
    committed_ahead: std::collections::BTreeSet<u64>,
    /// The socket may have more to read (edge-triggered readiness).
    readable: bool,
    /// The client closed its side; the connection ends once replies are out.
    read_closed: bool,
    /// Last read or write, for the idle timeout.
    last_activity: Instant,
    /// Requests sent on this connection whose hooks wait for a remote
    /// decision, with the time (unix ms) they stop waiting: the connection
    /// stays open until then, whatever the idle timeout.
    waiting: Vec<(String, i64)>,
}

impl Connection {
    fn has_pending(&self) -> bool {
        !self.replies.is_empty() || !self.output.is_empty()
    }

    /// Whether a hook still waits on this connection for a decision.
    fn hook_waits(&self, now: i64) -> bool {
        self.waiting.iter().any(|(_, until)| *until > now)
    }
}

/// The event loop's state.
struct Server {
    /// The listening socket.
    listener: SocketListener,
    /// Readiness of every socket.
    poll: Poll,
    /// Lets the writer wake the loop when a commit is done.
    waker: Arc<Waker>,
    /// Open connections by token.
    connections: HashMap<usize, Connection>,
    /// Next token to hand out (never reused, so a late commit report cannot
    /// reach the wrong connection).
    next_token: usize,
    /// Where parsed lines go.
    queue: WriterQueue,
    /// Commit reports from the writer: (connection token, submission number).
    done_sender: Sender<(usize, u64, Committed)>,
    /// Where commit reports arrive.
    done_receiver: Receiver<(usize, u64, Committed)>,
    /// Counters.
    stats: Arc<Stats>,
    /// Limits.
    tuning: Tuning,
    /// When the last rejected line was logged, so a misbehaving client
    /// cannot flood the log.
    last_reject_log: Option<Instant>,
    /// Rejections not logged since the last log line.
    unlogged_rejects: u64,
    /// Sessions whose payload facts are already read, so most lines are
    /// parsed once.
    known_sessions: ingest::KnownSessions,
    /// Remote decisions to write to waiting hooks.
    decisions: Arc<DecisionMailbox>,
    /// Signs budget refusals into `ok` replies.
    budgets: Option<Arc<crate::budgets::Answerer>>,
    /// The collector's redaction rules.
    redactor: Arc<Redactor>,
}

/// The socket source thread: everything it needs, by name.
/// [`SocketSource::spawn`] starts it.
pub(crate) struct SocketSource {
    /// The bound socket (see [`bind`]).
    pub(crate) listener: SocketListener,
    /// Where parsed lines go.
    pub(crate) queue: WriterQueue,
    /// Counters.
    pub(crate) stats: Arc<Stats>,
    /// Connection limit, idle timeout and drain deadline.
    pub(crate) tuning: Tuning,
    /// Stops intake.
    pub(crate) shutdown: Arc<AtomicBool>,
    /// Remote decisions for hooks waiting on this socket (issue 18).
    pub(crate) decisions: Arc<DecisionMailbox>,
    /// Signs budget refusals into the `ok` of events that ask for them
    /// (issue 19); `None` without budgets.
    pub(crate) budgets: Option<Arc<crate::budgets::Answerer>>,
    /// This collector's redaction rules, applied again to every event
    /// received (its own: two collectors in one process keep theirs).
    pub(crate) redactor: Arc<Redactor>,
}

impl SocketSource {
    /// Starts the event loop's thread: it serves the socket until `shutdown`
    /// is set, then stops reading, waits (up to the drain deadline) for the
    /// replies of lines already read, and returns.
    pub(crate) fn spawn(self) -> Result<JoinHandle<()>, String> {
        spawn_thread("socket", move || self.run())
    }

    fn run(self) {
        let SocketSource {
            listener,
            queue,
            stats,
            tuning,
            shutdown,
            decisions,
            budgets,
            redactor,
        } = self;
        let result = (|| -> io::Result<()> {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let _ = decisions.waker.set(waker.clone());
            let (done_sender, done_receiver) = crossbeam_channel::unbounded();
            let mut server = Server {
                listener,
                poll,
                waker,
                connections: HashMap::new(),
                next_token: 2,
                queue,
                done_sender,
                done_receiver,
                stats,
                tuning,
                last_reject_log: None,
                unlogged_rejects: 0,
                known_sessions: ingest::KnownSessions::default(),
                decisions,
                budgets,
                redactor,
            };
            server.poll.registry().register(
                &mut server.listener.listener,
                LISTENER,
                Interest::READABLE,
            )?;
            server.run(&shutdown)
        })();
        if let Err(error) = result {
            log::error(&format!("socket: event loop failed: {error}"));
        }
    }
}

impl Server {
    fn run(&mut self, shutdown: &AtomicBool) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut last_sweep = Instant::now();
        let mut draining_since: Option<Instant> = None;
        loop {
            if draining_since.is_none() && shutdown.load(Ordering::Relaxed) {
                // Stop intake: no new connections, no new lines.
                let _ = self.poll.registry().deregister(&mut self.listener.listener);
                draining_since = Some(Instant::now());
            }
            if let Some(since) = draining_since {
                let pending = self
                    .connections
                    .values()
                    .any(|connection| !connection.replies.is_empty());
                if !pending || since.elapsed() > self.tuning.drain_deadline {
                    self.flush_all();
                    return Ok(());
                }
            }
            match self
                .poll
                .poll(&mut events, Some(Duration::from_millis(200)))
            {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => {
                        if draining_since.is_none() {
                            self.accept();
                        }
                    }
                    WAKER => {}
                    Token(token) => {
                        if let Some(connection) = self.connections.get_mut(&token) {
                            if event.is_readable() || event.is_read_closed() || event.is_error() {
                                connection.readable = true;
                            }
                        }
                        if event.is_writable() {
                            self.write(token);
                        }
                    }
                }
            }
            self.apply_commits();
            self.deliver_decisions();
            if draining_since.is_none() {
                let ready: Vec<usize> = self
                    .connections
                    .iter()
                    .filter(|(_, connection)| {
                        connection.readable && connection.output.len() < MAX_BUFFERED_OUTPUT
                    })
                    .map(|(token, _)| *token)
                    .collect();
                let mut line_buffers: usize = self
                    .connections
                    .values()
                    .map(|connection| connection.framer.allocated())
                    .sum();
                for token in ready {
                    let before = self.line_buffer_of(token);
                    self.read(token);
                    line_buffers = line_buffers - before + self.line_buffer_of(token);
                    if line_buffers > MAX_LINE_BUFFERS_TOTAL {
                        line_buffers = self.close_largest_line_buffers(line_buffers);
                    }
                }
            }
            if last_sweep.elapsed() > Duration::from_millis(250) {
                last_sweep = Instant::now();
                self.sweep();
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.listener.accept() {
                Ok((mut stream, _)) => {
                    if self.connections.len() >= self.tuning.max_connections {
                        let _ = stream.write_all(
                            protocol::error_reply("too many connections; try again later")
                                .as_bytes(),
                        );
                        log::warn("socket: connection limit reached; refusing a connection");
                        continue;
                    }
                    let token = self.next_token;
                    self.next_token += 1;
                    if let Err(error) = self.poll.registry().register(
                        &mut stream,
                        Token(token),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::warn(&format!("socket: cannot register a connection: {error}"));
                        continue;
                    }
                    self.connections.insert(
                        token,
                        Connection {
                            stream,
                            framer: LineFramer::new(MAX_LINE_BYTES),
                            output: Vec::new(),
                            replies: VecDeque::new(),
                            submitted: 0,
                            committed: 0,
                            committed_ahead: std::collections::BTreeSet::new(),
                            readable: true,
                            read_closed: false,
                            last_activity: Instant::now(),
                            waiting: Vec::new(),
                        },
                    );
                    self.stats
                        .socket_connections
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    log::warn(&format!("socket: accept failed: {error}"));
                    return;
                }
            }
        }
    }

    /// Reads what is available, splits it into lines and submits the valid
    /// ones as one submission.
    fn read(&mut self, token: usize) {
        let Some(connection) = self.connections.get_mut(&token) else {
            return;
        };
        let mut closed = false;
        let mut buffer = [0u8; READ_CHUNK];
        let mut events = Vec::new();
        let number = connection.submitted + 1;
        let mut rejected = Vec::new();
        let mut line_replies = LineReplies {
            events: &mut events,
            replies: &mut connection.replies,
            rejected: &mut rejected,
            number,
            stats: &self.stats,
            redactor: &self.redactor,
            known_sessions: &mut self.known_sessions,
            waiting: &mut connection.waiting,
        };
        // Read a bounded amount per turn so one busy client cannot starve
        // the others. Each chunk is split and parsed as it arrives, so the
        // framer never holds more than a partial line.
        for _ in 0..16 {
            match connection.stream.read(&mut buffer) {
                Ok(0) => {
                    closed = true;
                    connection.readable = false;
                    break;
                }
                Ok(count) => {
                    connection.last_activity = Instant::now();
                    connection.framer.push(&buffer[..count]);
                    while let Some(frame) = connection.framer.next_frame() {
                        line_replies.take(frame);
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    connection.readable = false;
                    break;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    closed = true;
                    connection.readable = false;
                    break;
                }
            }
        }
        if closed {
            connection.read_closed = true;
            // A last line without its newline is still a line.
            while let Some(frame) = connection.framer.finish() {
                line_replies.take(frame);
            }
        }
        if !events.is_empty() {
            connection.submitted = number;
            let done = self.done_sender.clone();
            let waker = self.waker.clone();
            let submission = Submission {
                source: Source::Socket,
                events,
                acknowledge: Box::new(move |committed| {
                    let _ = done.send((token, number, committed));
                    let _ = waker.wake();
                }),
                otel: None,
            };
            if self.queue.submit(submission).is_err() {
                log::error("socket: the writer has stopped; closing the connection");
                self.close(token);
                return;
            }
        }
        for reason in rejected {
            self.log_reject(&reason);
        }
        self.flush_ready(token);
    }

    fn log_reject(&mut self, reason: &str) {
        let now = Instant::now();
        if self
            .last_reject_log
            .is_none_or(|last| now.duration_since(last) > Duration::from_secs(10))
        {
            let also = if self.unlogged_rejects > 0 {
                format!(
                    " ({} more rejected since the last such line)",
                    self.unlogged_rejects
                )
            } else {
                String::new()
            };
            log::warn(&format!("socket: rejected a line: {reason}{also}"));
            self.last_reject_log = Some(now);
            self.unlogged_rejects = 0;
        } else {
            self.unlogged_rejects += 1;
        }
    }

    /// Applies the writer's commit reports and sends the replies now due.
    fn apply_commits(&mut self) {
        let mut touched = Vec::new();
        while let Ok((token, number, _)) = self.done_receiver.try_recv() {
            if let Some(connection) = self.connections.get_mut(&token) {
                advance_committed(
                    &mut connection.committed,
                    &mut connection.committed_ahead,
                    number,
                );
                touched.push(token);
            }
        }
        touched.dedup();
        for token in touched {
            self.flush_ready(token);
        }
    }

    /// Writes each posted decision to the connection whose hook waits for
    /// it, and reports whether it went out whole.
    fn deliver_decisions(&mut self) {
        let posted = std::mem::take(
            &mut *self
                .decisions
                .posted
                .lock()
                .unwrap_or_else(|poison| poison.into_inner()),
        );
        for decision in posted {
            let found = self.connections.iter_mut().find_map(|(token, connection)| {
                let at = connection
                    .waiting
                    .iter()
                    .position(|(event_id, _)| *event_id == decision.event_id)?;
                connection.waiting.remove(at);
                connection
                    .output
                    .extend_from_slice(decision.line.as_bytes());
                connection.output.push(b'\n');
                Some(*token)
            });
            let written = found.is_some_and(|token| {
                self.write(token);
                self.connections
                    .get(&token)
                    .is_some_and(|connection| connection.output.is_empty())
            });
            let _ = decision.done.send(written);
        }
    }

    /// Moves the replies that are due into the output and writes it.
    fn flush_ready(&mut self, token: usize) {
        let Some(connection) = self.connections.get_mut(&token) else {
            return;
        };
        let mut acknowledged = 0;
        while let Some(reply) = connection.replies.front() {
            match reply {
                Reply::AfterCommit(number, verdict_for) if *number <= connection.committed => {
                    connection.output.extend_from_slice(b"ok");
                    let refusal = verdict_for.as_ref().and_then(|subject| {
                        let answerer = self.budgets.as_ref()?;
                        answerer.reply_for(&subject.0, &subject.1)
                    });
                    if let Some(line) = refusal {
                        connection.output.push(b' ');
                        connection.output.extend_from_slice(line.as_bytes());
                    }
                    connection.output.push(b'\n');
                    acknowledged += 1;
                }
                Reply::AfterCommit(..) => break,
                Reply::Rejected(text) => connection.output.extend_from_slice(text.as_bytes()),
            }
            connection.replies.pop_front();
        }
        self.stats
            .source(Source::Socket)
            .acknowledged
            .fetch_add(acknowledged, Ordering::Relaxed);
        self.write(token);
    }

    fn write(&mut self, token: usize) {
        let Some(connection) = self.connections.get_mut(&token) else {
            return;
        };
        let mut written = 0;
        let mut failed = false;
        while written < connection.output.len() {
            match connection.stream.write(&connection.output[written..]) {
                Ok(0) => {
                    failed = true;
                    break;
                }
                Ok(count) => written += count,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        connection.output.drain(..written);
        if written > 0 {
            connection.last_activity = Instant::now();
        }
        if failed || (connection.read_closed && !connection.has_pending()) {
            self.close(token);
        }
    }

    fn close(&mut self, token: usize) {
        if let Some(mut connection) = self.connections.remove(&token) {
            let _ = self.poll.registry().deregister(&mut connection.stream);
            self.stats
                .socket_connections
                .fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The memory `token`'s line buffer holds (0 once it is closed).
    fn line_buffer_of(&self, token: usize) -> usize {
        self.connections
            .get(&token)
            .map_or(0, |connection| connection.framer.allocated())
    }

    /// Closes the connections with the largest line buffers until all of
    /// them together are within [`MAX_LINE_BUFFERS_TOTAL`]; returns the new
    /// total.
    fn close_largest_line_buffers(&mut self, mut total: usize) -> usize {
        let mut by_size: Vec<(usize, usize)> = self
            .connections
            .iter()
            .map(|(token, connection)| (connection.framer.allocated(), *token))
            .collect();
        by_size.sort_unstable_by(|left, right| right.cmp(left));
        for (size, token) in by_size {
            if total <= MAX_LINE_BUFFERS_TOTAL || size == 0 {
                break;
            }
            if let Some(connection) = self.connections.get_mut(&token) {
                let _ = connection.stream.write_all(
                    protocol::error_reply("collector busy: too many unfinished lines").as_bytes(),
                );
            }
            self.close(token);
            total -= size;
            self.stats
                .socket_closed_over_budget
                .fetch_add(1, Ordering::Relaxed);
            log::warn("socket: unfinished lines over the memory budget; closed the largest");
        }
        total
    }

    /// Closes idle connections and finished half-closed ones.
    fn sweep(&mut self) {
        let idle = self.tuning.idle_timeout;
        let now = hooktrail_shared::time::now_millis();
        let expired: Vec<usize> = self
            .connections
            .iter()
            .filter(|(_, connection)| {
                (!connection.has_pending()
                    && connection.last_activity.elapsed() > idle
                    && !connection.hook_waits(now))
                    || (connection.read_closed && !connection.has_pending())
            })
            .map(|(token, _)| *token)
            .collect();
        for token in expired {
            self.close(token);
        }
    }

    fn flush_all(&mut self) {
        self.apply_commits();
        let tokens: Vec<usize> = self.connections.keys().copied().collect();
        for token in tokens {
            self.flush_ready(token);
        }
    }
}
/// Records that submission `number` committed, and moves `committed` up
/// only through consecutive numbers. `committed = max(committed, number)`
/// would answer `ok` for the lines of a submission the writer gave up at
/// shutdown (it is never acknowledged) as soon as a later one committed:
/// the client would drop events that were never stored.
fn advance_committed(
    committed: &mut u64,
    committed_ahead: &mut std::collections::BTreeSet<u64>,
    number: u64,
) {
    if number <= *committed {
        return;
    }
    committed_ahead.insert(number);
    while committed_ahead.remove(&(*committed + 1)) {
        *committed += 1;
    }
}

#[cfg(test)]
mod commit_order_tests {
    use super::advance_committed;

    #[test]
    fn a_submission_given_up_at_shutdown_must_not_be_answered_ok_when_a_later_one_commits() {
        let mut committed = 0;
        let mut ahead = std::collections::BTreeSet::new();
        advance_committed(&mut committed, &mut ahead, 1);
        assert_eq!(committed, 1);
        // Submission 2 was given up; 3 and 4 committed.
        advance_committed(&mut committed, &mut ahead, 3);
        advance_committed(&mut committed, &mut ahead, 4);
        assert_eq!(committed, 1, "lines of submission 2 would get ok");
        // Were 2 committed late after all, everything moves on.
        advance_committed(&mut committed, &mut ahead, 2);
        assert_eq!(committed, 4);
        assert!(ahead.is_empty());
    }
}
