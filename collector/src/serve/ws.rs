//! `/ws`: the live feed. Replays from the client's cursor, then goes live,
//! with no gap and no duplicate across the switch.
//!
//! Each client has its own thread. The order of operations is what makes the
//! switch exact:
//! 1. subscribe to the hub (from here on, every commit lands in our queue);
//! 2. replay from SQLite in pages after the cursor, until a page reaches the
//!    newest row of its snapshot (everything committed before step 1 is in
//!    that snapshot, because the writer publishes only after it commits);
//! 3. go live: events from the queue with `seq` at or below the cursor were
//!    already replayed and are skipped.
//!
//! If the queue overflows, during the replay or live, the thread sends what
//! the queue holds (live), subscribes again and replays on from its cursor
//! (steps 1 to 3 again): a client that
//! falls behind reads from the database instead of being closed, and the hub
//! holds at most one bounded queue for it. The hub never waits on a client
//! ([`crate::hub`]); a client that takes nothing for [`WRITE_LIMIT`] is
//! dropped.
//!
//! Messages (server to client, JSON text):
//! - `{"type":"events","cursor":N,"events":[...]}`: a batch, in `seq` order;
//!   `cursor` is the position covered (it also advances past events that the
//!   filters skipped), so a reconnect passes `after=cursor`.
//! - `{"type":"live","cursor":N}`: the replay is done.
//! - `{"type":"reset","cursor":N}`: the client's `after` is beyond the
//!   newest stored `seq` N (the database was replaced, or emptied): what
//!   the client shows is not in this database. It should drop it and load
//!   again from N; the feed goes on from N (a `live` message follows).
//!
//! The hub carries every committed `seq`, also rows another process (an
//! import) wrote, in order (`crate::hub`, `serve::backfill`).
//!
//! The thread sleeps in `mio::Poll` on the client's socket and on a
//! `mio::Waker` the hub pokes after each publish, and pings every 15 s.
//! `tiny_http` hands the upgraded connection over as a boxed stream without
//! its file descriptor, so the thread finds the socket by its addresses in
//! `/proc/self/fd` and works on a duplicate of it, keeping the box alive
//! until the end. If that fails, it falls back to a write-only loop on the
//! box (pings still detect a dead peer).

use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};
use tiny_http::{Header, Request, Response};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use crate::hub::{text_frame_header, Subscription, DEFAULT_QUEUE_CAPACITY};
use crate::query::{self, EventFilter, EventsQuery, Order};
use crate::serve::fd::find_socket;
use crate::serve::gate::{header_value, respond_bad_parameter, respond_error, Shared};
use crate::serve::json::push_event_list;
use crate::store::read::{max_seq, open_read_only, read_events};

/// The most WebSocket clients served at once.
pub(crate) const MAX_CLIENTS: i64 = 256;
/// Interval of heartbeat pings.
const PING_INTERVAL: Duration = Duration::from_secs(15);
/// A client silent (no pong, no frame) for this long is closed.
const SILENCE_LIMIT: Duration = Duration::from_secs(60);
/// How long a blocked write may wait for the client before it is dropped.
const WRITE_LIMIT: Duration = Duration::from_secs(30);
/// Events per replay page and per live batch.
const BATCH: usize = 500;
/// Live chunks of at least this many events go to clients without filters
/// as the chunk's shared message; smaller ones (a commit of a few events)
/// are gathered into this client's own frames, so a trickle of commits is
/// not a trickle of frames.
const SHARED_CHUNK_EVENTS: usize = 32;
/// Bytes of event JSON after which a live frame is sent: a stalled client's
/// unsent frame (held by tungstenite until the socket drains) stays this
/// small, and the rest waits in its hub queue, which is byte-bounded and
/// drops the client when full. Without it one frame took up to the whole
/// 16 MB queue, copied once more into the write buffer, per client.
const FRAME_BYTES: usize = 1 << 20;

/// Events waiting for the writer (queued or in the commit under way) from
/// which clients hold their sends: a burst, not a trickle (at 1,000 events/s
/// the writer holds one or two).
const INGEST_BACKLOG: i64 = 1_000;
/// The longest a client holds its sends for one backlog: live events are at
/// most this much later than they would be, plus the send.
const MAX_YIELD: Duration = Duration::from_secs(1);

const SOCKET: Token = Token(0);
const WAKE: Token = Token(1);

/// Checks a `/ws` request and, if it is acceptable, upgrades it on a thread
/// of its own.
pub(crate) fn start(request: Request, query_string: &str, shared: &Arc<Shared>) {
    let query = match query::parse_socket_query(query_string) {
        Ok(query) => query,
        Err(error) => return respond_bad_parameter(request, &error),
    };
    if !shared.token_ok(&request, query.ticket.as_deref()) {
        return respond_error(
            request,
            401,
            "this collector needs its token: pass `?ticket=` from POST /api/ws-ticket or `Authorization: Bearer TOKEN`",
        );
    }
    if !shared.origin_allowed(&request) {
        return respond_error(
            request,
            403,
            "WebSocket refused: its Origin is not this page's own",
        );
    }
    let upgrade = header_value(&request, "Upgrade").unwrap_or("");
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return respond_error(request, 426, "/ws needs a WebSocket upgrade");
    }
    if header_value(&request, "Sec-WebSocket-Version").map(str::trim) != Some("13") {
        return respond_error(request, 426, "WebSocket version 13 is required");
    }
    let Some(key) = header_value(&request, "Sec-WebSocket-Key").map(|key| key.trim().to_owned())
    else {
        return respond_error(request, 400, "missing Sec-WebSocket-Key");
    };
    let stats = shared.context.stats.clone();
    // Reserve the slot before spawning, so a burst of upgrades on several
    // HTTP workers cannot pass the limit together.
    let count = ClientCount::reserve(stats);
    if count.0.websocket_clients.load(Ordering::Relaxed) > MAX_CLIENTS {
        drop(count);
        return respond_error(request, 503, "too many WebSocket clients");
    }
    let shared = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("ws-client".into())
        .spawn(move || {
            // Client threads run only when ingest leaves the CPU idle
            // (SCHED_IDLE; nice 19 where that is refused): under a burst
            // they fall behind, their queues hold the burst, and they catch
            // up after it. At nice 19 alone, 50 clients together weighed as
            // much as the writer and took a third of a burst's CPU.
            // SAFETY: sched_setscheduler and setpriority on this thread's
            // own id (Linux: per thread), with a live sched_param.
            unsafe {
                let parameters = libc::sched_param { sched_priority: 0 };
                if libc::sched_setscheduler(0, libc::SCHED_IDLE, &parameters) != 0 {
                    libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19);
                }
            }
            let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
            let remote = request.remote_addr().copied();
            let response = Response::empty(101).with_header(
                Header::from_bytes(&b"Sec-WebSocket-Accept"[..], accept.as_bytes())
                    .expect("accept header"),
            );
            let upgraded = request.upgrade("websocket", response);
            let _count = count;
            let local_port = shared.local_port;
            match remote.and_then(|remote| find_socket(local_port, remote)) {
                Some(socket) => {
                    let _keep_alive = upgraded;
                    if socket.set_nonblocking(true).is_ok() {
                        let mut socket = mio::net::TcpStream::from_std(socket);
                        if let Ok(poll) = Poll::new() {
                            if poll
                                .registry()
                                .register(
                                    &mut socket,
                                    SOCKET,
                                    Interest::READABLE | Interest::WRITABLE,
                                )
                                .is_ok()
                            {
                                run(
                                    socket,
                                    poll,
                                    Reading::Polled,
                                    query.after,
                                    query.filter,
                                    &shared,
                                );
                            }
                        }
                    }
                }
                None => {
                    if let Ok(poll) = Poll::new() {
                        run(
                            upgraded,
                            poll,
                            Reading::WriteOnly,
                            query.after,
                            query.filter,
                            &shared,
                        );
                    }
                }
            }
        });
    if spawned.is_err() {
        // The request moved into the closure that failed to spawn; nothing to answer.
    }
}

/// One reserved place in the client count, given back when the client's
/// thread ends (or when the thread could not be started).
struct ClientCount(Arc<crate::stats::Stats>);

impl ClientCount {
    fn reserve(stats: Arc<crate::stats::Stats>) -> ClientCount {
        stats.websocket_clients.fetch_add(1, Ordering::Relaxed);
        ClientCount(stats)
    }
}

impl Drop for ClientCount {
    fn drop(&mut self) {
        self.0.websocket_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a client's loop ended.
#[derive(Debug)]
enum Ended {
    /// The client closed, vanished or could not keep up with writes.
    Gone,
    /// We close it, with this code and reason.
    Close(CloseCode, String),
}

struct Client<'a, S: Read + Write> {
    /// The WebSocket over the client's socket.
    socket: WebSocket<S>,
    /// Sleeps on the socket (when [`Reading::Polled`]) and the hub's waker.
    poll: Poll,
    /// Whether the loop can read the client's frames.
    reading: Reading,
    /// Filters for replay and live events.
    filter: EventFilter,
    /// Position covered so far: every event with `seq` at or below it was
    /// sent or filtered out.
    cursor: i64,
    /// The collector's shared state.
    shared: &'a Shared,
    /// When the client last sent anything (pong or frame).
    last_heard: Instant,
    /// Poll's event buffer.
    events: Events,
}

/// How a client's thread can use its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// The socket is registered in `poll` and non-blocking: the loop reads
    /// the client's frames (pongs, close) and closes a silent client.
    Polled,
    /// Only the boxed stream `tiny_http` handed over (the socket was not
    /// found): the loop writes, and pings still detect a dead peer.
    WriteOnly,
}

fn run<S: Read + Write>(
    stream: S,
    poll: Poll,
    reading: Reading,
    after: Option<i64>,
    filter: EventFilter,
    shared: &Shared,
) {
    let config = WebSocketConfig::default()
        .max_message_size(Some(64 << 10))
        .max_frame_size(Some(64 << 10));
    let socket = WebSocket::from_raw_socket(stream, Role::Server, Some(config));
    let mut client = Client {
        socket,
        poll,
        reading,
        filter,
        cursor: 0,
        shared,
        last_heard: Instant::now(),
        events: Events::with_capacity(16),
    };
    let ended = client.serve(after);
    if let Ended::Close(code, reason) = ended {
        let _ = client.socket.close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        let deadline = Instant::now() + Duration::from_secs(2);
        // Flush the close frame and wait briefly for the client's reply.
        while Instant::now() < deadline {
            match client.socket.flush() {
                Err(tungstenite::Error::Io(error))
                    if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
                Ok(()) if client.reading == Reading::WriteOnly => break,
                Ok(()) => match client.socket.read() {
                    Err(tungstenite::Error::Io(error))
                        if error.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => break,
                    Ok(_) => continue,
                },
            }
            let _ = client
                .poll
                .poll(&mut client.events, Some(Duration::from_millis(100)));
        }
    }
}

fn would_block(error: &tungstenite::Error) -> bool {
    matches!(error, tungstenite::Error::Io(error) if error.kind() == std::io::ErrorKind::WouldBlock)
}

impl<S: Read + Write> Client<'_, S> {
    fn serve(&mut self, after: Option<i64>) -> Ended {
        let waker = match Waker::new(self.poll.registry(), WAKE) {
            Ok(waker) => Arc::new(waker),
            Err(_) => return Ended::Gone,
        };
        let hub = self.shared.context.hub.clone();
        let mut subscription = hub.subscribe(DEFAULT_QUEUE_CAPACITY, Some(waker.clone()));
        let started = match after {
            Some(after) => self.resume(after, &mut subscription, &waker),
            None => self.open_database().map(|connection| {
                self.cursor = max_seq(&connection).unwrap_or(0);
            }),
        };
        if let Err(ended) = started {
            return ended;
        }
        if let Err(ended) = self.send(format!("{{\"type\":\"live\",\"cursor\":{}}}", self.cursor)) {
            return ended;
        }
        loop {
            if let Err(ended) = self.live(&subscription) {
                return ended;
            }
            // The live queue overflowed: send what it holds (shared frames,
            // already built), then read on from the database, from the
            // cursor, as a resume does, and go live again.
            while subscription.has_queued() {
                if let Err(ended) = self.drain(&subscription) {
                    return ended;
                }
            }
            if let Err(ended) = self.catch_up(&mut subscription, &waker) {
                return ended;
            }
        }
    }

    /// The database, read-only, or the close that says it is not readable.
    fn open_database(&self) -> Result<rusqlite::Connection, Ended> {
        open_read_only(&self.shared.context.database).map_err(|error| {
            Ended::Close(
                CloseCode::Again,
                format!("database not readable: {error}")
                    .chars()
                    .take(120)
                    .collect(),
            )
        })
    }

    /// Starts from the client's cursor `after`: a `reset` if it is beyond
    /// the newest stored `seq`, then the replay.
    fn resume(
        &mut self,
        after: i64,
        subscription: &mut Subscription,
        waker: &Arc<Waker>,
    ) -> Result<(), Ended> {
        self.cursor = after;
        // A cursor from another database (replaced, or emptied) would wait
        // for seqs that come only after it: tell the client, and go on from
        // the newest row.
        let newest = max_seq(&self.open_database()?).unwrap_or(after);
        if after > newest {
            self.cursor = newest;
            self.send(format!("{{\"type\":\"reset\",\"cursor\":{newest}}}"))?;
        }
        self.catch_up(subscription, waker)
    }

    /// Replays from SQLite after the cursor until a page reaches the newest
    /// row, with `subscription` listening (from before the replay, so the
    /// live queue holds whatever the replay's snapshots missed). A queue
    /// that overflowed (before or during the replay) is replaced by a new
    /// subscription and the replay goes on from the cursor: a client too
    /// slow for the live queue reads from the database instead of being
    /// closed, and the hub holds at most one bounded queue for it.
    fn catch_up(
        &mut self,
        subscription: &mut Subscription,
        waker: &Arc<Waker>,
    ) -> Result<(), Ended> {
        let hub = self.shared.context.hub.clone();
        if subscription.overflowed() {
            *subscription = hub.subscribe(DEFAULT_QUEUE_CAPACITY, Some(waker.clone()));
        }
        let mut connection = self.open_database()?;
        loop {
            self.replay(&mut connection)?;
            if !subscription.overflowed() {
                return Ok(());
            }
            *subscription = hub.subscribe(DEFAULT_QUEUE_CAPACITY, Some(waker.clone()));
        }
    }

    fn replay(&mut self, connection: &mut rusqlite::Connection) -> Result<(), Ended> {
        loop {
            self.yield_to_ingest()?;
            let request = EventsQuery {
                after: Some(self.cursor),
                before: None,
                limit: BATCH,
                order: Order::Ascending,
                filter: self.filter.clone(),
            };
            let page = {
                let transaction = connection.transaction().map_err(|_| Ended::Gone)?;
                let page = read_events(&transaction, &request)
                    .map_err(|_| Ended::Close(CloseCode::Error, "database read failed".into()))?;
                let _ = transaction.finish();
                page
            };
            self.cursor = self.cursor.max(page.next);
            let more = page.more;
            if !page.events.is_empty() {
                let mut body = String::with_capacity(page.events.len() * 1024);
                body.push_str(&format!(
                    "{{\"type\":\"events\",\"cursor\":{},\"events\":[",
                    self.cursor
                ));
                push_event_list(&mut body, &page.events);
                body.push_str("]}");
                drop(page);
                // Written as is after its header: a page is up to 4 MiB of
                // payloads, and a client that reads slowly would otherwise
                // hold it twice (tungstenite copies a message it writes).
                self.send_frame(&text_frame_header(body.len()))?;
                self.send_frame(body.as_bytes())?;
            }
            self.read_frames()?;
            if self.shared.shutdown.load(Ordering::Relaxed) {
                return Err(Ended::Close(CloseCode::Away, "collector stopping".into()));
            }
            if !more {
                return Ok(());
            }
        }
    }

    /// Sends live events until the client ends (`Err`) or its queue
    /// overflows (`Ok`: the caller catches up from the database).
    fn live(&mut self, subscription: &Subscription) -> Result<(), Ended> {
        let mut next_ping = Instant::now() + PING_INTERVAL;
        loop {
            self.yield_to_ingest()?;
            if subscription.overflowed() {
                return Ok(());
            }
            subscription.rearm();
            self.drain(subscription)?;
            if self.shared.shutdown.load(Ordering::Relaxed) {
                return Err(Ended::Close(CloseCode::Away, "collector stopping".into()));
            }
            let now = Instant::now();
            if now >= next_ping {
                if self.reading == Reading::Polled
                    && now.duration_since(self.last_heard) > SILENCE_LIMIT
                {
                    return Err(Ended::Gone);
                }
                self.socket
                    .write(Message::Ping(Vec::new().into()))
                    .map_err(|_| Ended::Gone)?;
                self.flush()?;
                next_ping = now + PING_INTERVAL;
            }
            if subscription.has_queued() || subscription.overflowed() {
                continue;
            }
            let timeout = next_ping
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(500));
            let _ = self.poll.poll(&mut self.events, Some(timeout));
            self.read_frames()?;
        }
    }

    /// Sends what the hub queued, in `seq` order. A chunk of
    /// [`SHARED_CHUNK_EVENTS`] events or more that a client without filters
    /// has not seen any of goes out as the chunk's own frame, built once for
    /// every such client and written to the socket as is; other events are
    /// copied into this client's frames (at most [`BATCH`] events or
    /// [`FRAME_BYTES`] each).
    fn drain(&mut self, subscription: &Subscription) -> Result<(), Ended> {
        let mut body = String::new();
        let mut count = 0;
        let unfiltered = self.filter.is_empty();
        // Bounded, so the loop around reads the client's frames and sees a
        // shutdown while commits keep coming.
        for _ in 0..16 {
            let Some(chunk) = subscription.try_recv() else {
                break;
            };
            let (first, last) = chunk.seqs();
            if last <= self.cursor {
                continue;
            }
            if unfiltered && first > self.cursor && chunk.events.len() >= SHARED_CHUNK_EVENTS {
                self.send_events(&mut body, &mut count)?;
                self.cursor = last;
                self.send_frame(&chunk.frame())?;
                continue;
            }
            for live in &chunk.events {
                let event = &live.event;
                if event.seq <= self.cursor {
                    continue;
                }
                self.cursor = event.seq;
                if !self.filter.matches(event) {
                    continue;
                }
                body.push(if count == 0 { '[' } else { ',' });
                body.push_str(live.json());
                count += 1;
                if count >= BATCH || body.len() >= FRAME_BYTES {
                    self.send_events(&mut body, &mut count)?;
                }
            }
        }
        self.send_events(&mut body, &mut count)
    }

    /// Holds this client's sends while the writer has a backlog of at least
    /// [`INGEST_BACKLOG`] events, for at most [`MAX_YIELD`]. Client threads
    /// run at SCHED_IDLE, but what they send wakes the readers, which run at
    /// normal priority when they are on this machine (and the kernel copies
    /// for every client): 50 readers of a burst took a third of its ingest.
    /// Held, the events wait in the hub's bounded queue (or in the database,
    /// past it) and go out when the burst has been stored.
    fn yield_to_ingest(&mut self) -> Result<(), Ended> {
        let stats = &self.shared.context.stats;
        let started = Instant::now();
        while stats.writer_queue.load(Ordering::Relaxed) >= INGEST_BACKLOG
            && started.elapsed() < MAX_YIELD
        {
            if self.shared.shutdown.load(Ordering::Relaxed) {
                return Err(Ended::Close(CloseCode::Away, "collector stopping".into()));
            }
            let _ = self
                .poll
                .poll(&mut self.events, Some(Duration::from_millis(10)));
            self.read_frames()?;
        }
        Ok(())
    }

    /// Sends the `count` events of `body` (a JSON array not yet closed), if
    /// any, as one message, and empties it.
    fn send_events(&mut self, body: &mut String, count: &mut usize) -> Result<(), Ended> {
        if *count == 0 {
            return Ok(());
        }
        body.push(']');
        let message = format!(
            "{{\"type\":\"events\",\"cursor\":{},\"events\":{body}}}",
            self.cursor
        );
        body.clear();
        *count = 0;
        self.send(message)
    }

    /// Reads whatever frames the client sent (pongs, pings, close).
    fn read_frames(&mut self) -> Result<(), Ended> {
        if self.reading == Reading::WriteOnly {
            return Ok(());
        }
        loop {
            match self.socket.read() {
                Ok(Message::Close(_)) => {
                    let _ = self.flush();
                    return Err(Ended::Gone);
                }
                Ok(_) => self.last_heard = Instant::now(),
                Err(error) if would_block(&error) => return Ok(()),
                Err(_) => return Err(Ended::Gone),
            }
        }
    }

    fn send(&mut self, text: String) -> Result<(), Ended> {
        match self.socket.write(Message::text(text)) {
            Ok(()) => {}
            Err(error) if would_block(&error) => {}
            Err(_) => return Err(Ended::Gone),
        }
        self.flush()
    }

    /// Writes a whole frame built elsewhere (a chunk's, shared by every
    /// client) straight to the socket, after what tungstenite holds, waiting
    /// for the socket as [`Client::flush`] does: no copy per client.
    fn send_frame(&mut self, frame: &[u8]) -> Result<(), Ended> {
        self.flush()?;
        let deadline = Instant::now() + WRITE_LIMIT;
        let mut written = 0;
        while written < frame.len() {
            match self.socket.get_mut().write(&frame[written..]) {
                Ok(0) => return Err(Ended::Gone),
                Ok(count) => written += count,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    self.wait_for_socket(deadline)?
                }
                Err(_) => return Err(Ended::Gone),
            }
        }
        Ok(())
    }

    /// Waits a little for the socket to take more, or ends the client at
    /// `deadline` or at shutdown.
    fn wait_for_socket(&mut self, deadline: Instant) -> Result<(), Ended> {
        if Instant::now() >= deadline || self.shared.shutdown.load(Ordering::Relaxed) {
            return Err(Ended::Gone);
        }
        let _ = self
            .poll
            .poll(&mut self.events, Some(Duration::from_millis(250)));
        Ok(())
    }

    /// Flushes, waiting for the socket to drain (bounded by [`WRITE_LIMIT`]).
    fn flush(&mut self) -> Result<(), Ended> {
        let deadline = Instant::now() + WRITE_LIMIT;
        loop {
            match self.socket.flush() {
                Ok(()) => return Ok(()),
                Err(error) if would_block(&error) => self.wait_for_socket(deadline)?,
                Err(_) => return Err(Ended::Gone),
            }
        }
    }
}
