//! The Redis source, on one thread with one connection at a time.
//!
//! Stream transport (durable, the default): the collector reads the stream
//! through a consumer group (`--group`, default the host name) as a consumer
//! named after this host, so a restarted collector is the same consumer:
//! 1. `XGROUP CREATE <key> <group> 0 MKSTREAM` (an existing group is kept),
//!    so entries added before the first start are read too;
//! 2. its own pending entries first (`XREADGROUP ... 0`): what it had read
//!    but not acknowledged when it stopped or lost the connection;
//! 3. then new entries with `XREADGROUP ... BLOCK`, and every few seconds
//!    `XAUTOCLAIM` of entries pending longer than the claim idle time with any
//!    consumer of the group (a dead collector's, or our own whose `XACK` was
//!    lost);
//! 4. `XACK` only after the writer reports the commit. Redelivered entries
//!    are harmless: the writer stores each event id once.
//!
//! Pub/sub transport: `SUBSCRIBE`; at most once by nature (a message
//! published while the collector is disconnected or too slow is lost).
//!
//! Any failure drops the connection and reconnects with exponential backoff
//! and jitter; each change of the link state is logged once.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use hooktrail_shared::config::{redact_url, RedisConfig, Transport};
use hooktrail_shared::redact::Redactor;
use hooktrail_shared::spool;
use redis::{Client, Connection, RedisError, Value};

use crate::event::Source;
use crate::ingest::{self, Committed, NewEvent, Submission, WriterQueue};
use crate::log;
use crate::service::spawn_thread;
use crate::settings::Tuning;
use crate::stats::{RedisLink, Stats};

/// Most entries asked for per read.
const READ_COUNT: usize = 1000;

/// The bytes one read should bring at most: the next read's `COUNT` is this
/// divided by the largest entry of the last read (the first read asks for
/// [`FIRST_READ_COUNT`]). A fixed count of 1,000 entries of 512 KB took
/// 1 GB; with [`MAX_IN_FLIGHT`] submissions this bounds the reader's
/// entries in memory to about 8 × 8 MiB.
const READ_BYTE_BUDGET: usize = 8 << 20;

/// `COUNT` of a read before any entry size is known.
const FIRST_READ_COUNT: usize = 16;

/// Submissions sent to the writer and not yet acknowledged, at most: bounds
/// what a restart would redeliver and the memory held for acks.
const MAX_IN_FLIGHT: usize = 8;

/// How long a blocking read waits when nothing is in flight; bounds how late
/// a shutdown is noticed.
const BLOCK_IDLE: Duration = Duration::from_millis(500);

/// How long a read waits while acks are due, so they are sent promptly.
const BLOCK_BUSY: Duration = Duration::from_millis(5);

/// Time between `XAUTOCLAIM` scans and pending-count updates.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(5);

/// Connect timeout; reads get the block time plus this.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(5);

/// Backoff bounds between reconnection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The stream entry ids of one submission, sent back by the writer after
/// the commit.
type AckBatch = (Vec<String>, Committed);

/// The Redis source thread: everything it needs, by name.
/// [`RedisSource::spawn`] starts it.
pub(crate) struct RedisSource {
    /// URL, transport, key.
    pub(crate) config: RedisConfig,
    /// Consumer group of the stream transport.
    pub(crate) group: String,
    /// This collector's consumer name in the group.
    pub(crate) consumer: String,
    /// Where events go.
    pub(crate) queue: WriterQueue,
    /// Counters and the link state.
    pub(crate) stats: Arc<Stats>,
    /// Claim idle time and drain deadline.
    pub(crate) tuning: Tuning,
    /// Stops intake.
    pub(crate) shutdown: Arc<AtomicBool>,
    /// Where rejected entries are recorded (`rejected.jsonl`).
    pub(crate) spool_dir: PathBuf,
    /// This collector's redaction rules, applied again to every event
    /// received (its own: two collectors in one process keep theirs).
    pub(crate) redactor: Arc<Redactor>,
}

impl RedisSource {
    /// Starts the reader thread: it reads until shutdown, reconnecting as
    /// needed, then waits (up to the drain deadline) for the commits of what
    /// it read and acknowledges them.
    pub(crate) fn spawn(self) -> Result<JoinHandle<()>, String> {
        spawn_thread("redis", move || {
            let (ack_sender, ack_receiver) = crossbeam_channel::unbounded();
            let seed =
                hooktrail_shared::time::now_millis() as u64 ^ ((std::process::id() as u64) << 32);
            RedisReader {
                setup: self,
                ack_sender,
                ack_receiver,
                in_flight: 0,
                read_count: FIRST_READ_COUNT,
                unread_trimmed_seen: 0,
                to_ack: Vec::new(),
                last_error: None,
                jitter: seed | 1,
                known_sessions: ingest::KnownSessions::default(),
            }
            .run()
        })
    }
}

/// The Redis reader's state: its setup and what the loop keeps.
struct RedisReader {
    /// What [`RedisSource::spawn`] was given.
    setup: RedisSource,
    /// Commit reports from the writer: entry ids to `XACK`.
    ack_sender: Sender<AckBatch>,
    /// Where commit reports arrive.
    ack_receiver: Receiver<AckBatch>,
    /// Submissions whose commit report has not arrived yet.
    in_flight: usize,
    /// Entries found trimmed before the group read them, at the last
    /// check: only a rise is counted and logged, and the figure falls back
    /// to 0 once the group reads past the gap (Redis then re-estimates
    /// `entries-read`).
    unread_trimmed_seen: u64,
    /// `COUNT` of the next read, adapted to the entries' size so a read
    /// stays within [`READ_BYTE_BUDGET`].
    read_count: usize,
    /// Entry ids committed (or rejected) and not yet acknowledged to Redis;
    /// kept across reconnections.
    to_ack: Vec<String>,
    /// Last link error logged, so a retry loop logs once.
    last_error: Option<String>,
    /// State of the jitter generator.
    jitter: u64,
    /// Sessions whose payload facts are already read, so most entries are
    /// parsed once.
    known_sessions: ingest::KnownSessions,
}

impl RedisReader {
    /// Reads until shutdown, reconnecting as needed; at shutdown waits (up
    /// to the drain deadline) for the commits of what it read and
    /// acknowledges them.
    fn run(mut self) {
        let client = match self.client() {
            Ok(client) => client,
            Err(error) => {
                self.setup.stats.set_redis_link(RedisLink::Down);
                log::error(&format!(
                    "redis: unusable configuration for {}: {error}; not reading from Redis",
                    redact_url(&self.setup.config.url)
                ));
                return;
            }
        };
        self.setup.stats.set_redis_link(RedisLink::Connecting);
        let mut backoff = BACKOFF_MIN;
        while !self.setup.shutdown.load(Ordering::Relaxed) {
            let started = Instant::now();
            let result = match self.setup.config.transport {
                Transport::Stream => self.stream_session(&client),
                Transport::PubSub => self.pubsub_session(&client),
            };
            match result {
                Ok(()) => break,
                Err(error) => {
                    self.link_down(&error);
                    if started.elapsed() > Duration::from_secs(10) {
                        backoff = BACKOFF_MIN;
                    }
                    let pause = self.with_jitter(backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    let until = Instant::now() + pause;
                    while Instant::now() < until && !self.setup.shutdown.load(Ordering::Relaxed) {
                        self.collect_acks(Duration::from_millis(20));
                    }
                }
            }
        }
        self.finish();
    }

    fn client(&self) -> Result<Client, String> {
        client_for(&self.setup.config)
    }

    fn connect(&self, client: &Client, read_timeout: Duration) -> Result<Connection, RedisError> {
        let connection = client.get_connection_with_timeout(NETWORK_TIMEOUT)?;
        connection.set_read_timeout(Some(read_timeout))?;
        connection.set_write_timeout(Some(NETWORK_TIMEOUT))?;
        Ok(connection)
    }

    fn link_up(&mut self) {
        self.setup
            .stats
            .redis_connects
            .fetch_add(1, Ordering::Relaxed);
        let previous = self.setup.stats.set_redis_link(RedisLink::Up);
        if previous != RedisLink::Up {
            let again = if self.last_error.take().is_some() {
                " again"
            } else {
                ""
            };
            log::info(&format!(
                "redis: reading {} {:?} from {}{again}",
                self.setup.config.transport.as_str(),
                self.setup.config.key,
                redact_url(&self.setup.config.url)
            ));
        }
    }

    fn link_down(&mut self, error: &RedisError) {
        let previous = self.setup.stats.set_redis_link(RedisLink::Down);
        let text = error.to_string();
        if previous == RedisLink::Up || self.last_error.is_none() {
            log::warn(&format!(
                "redis: {} unreachable or failing ({text}); retrying with backoff",
                redact_url(&self.setup.config.url)
            ));
            self.last_error = Some(text);
        }
    }

    fn with_jitter(&mut self, pause: Duration) -> Duration {
        // xorshift64: plenty for spreading reconnections of many collectors.
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        let factor = 0.5 + (self.jitter % 1000) as f64 / 1000.0;
        pause.mul_f64(factor)
    }

    /// Takes the writer's commit reports (waiting up to `wait` for the
    /// first) and queues their ids for `XACK`.
    fn collect_acks(&mut self, wait: Duration) {
        let mut first = true;
        loop {
            let report = if first && !wait.is_zero() && self.in_flight > 0 {
                self.ack_receiver.recv_timeout(wait).ok()
            } else {
                self.ack_receiver.try_recv().ok()
            };
            first = false;
            match report {
                Some((ids, _)) => {
                    self.in_flight = self.in_flight.saturating_sub(1);
                    self.to_ack.extend(ids);
                }
                None => return,
            }
        }
    }

    fn send_acks(&mut self, connection: &mut Connection) -> Result<(), RedisError> {
        if self.to_ack.is_empty() {
            return Ok(());
        }
        let mut command = redis::cmd("XACK");
        command
            .arg(&self.setup.config.key)
            .arg(&self.setup.group)
            .arg(&self.to_ack);
        let _: i64 = command.query(connection)?;
        self.acknowledged();
        Ok(())
    }

    /// Counts the ids Redis just acknowledged and forgets them.
    fn acknowledged(&mut self) {
        self.setup
            .stats
            .source(Source::Redis)
            .acknowledged
            .fetch_add(self.to_ack.len() as u64, Ordering::Relaxed);
        self.to_ack.clear();
    }

    /// Sends the due `XACK` and `read` in one round trip (a pipeline), so
    /// acknowledging costs the reader no extra wait. The acks are counted only
    /// once Redis answered.
    fn acknowledge_and_read(
        &mut self,
        connection: &mut Connection,
        read: &redis::Cmd,
    ) -> Result<Value, RedisError> {
        let mut pipeline = redis::pipe();
        if !self.to_ack.is_empty() {
            pipeline
                .cmd("XACK")
                .arg(&self.setup.config.key)
                .arg(&self.setup.group)
                .arg(&self.to_ack)
                .ignore();
        }
        pipeline.add_command(read.clone());
        let (reply,): (Value,) = pipeline.query(connection)?;
        if !self.to_ack.is_empty() {
            self.acknowledged();
        }
        Ok(reply)
    }

    /// One connection's life in stream mode. `Ok` only at shutdown.
    fn stream_session(&mut self, client: &Client) -> Result<(), RedisError> {
        let mut connection = self.connect(client, BLOCK_IDLE + NETWORK_TIMEOUT)?;
        let created: Result<(), RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.setup.config.key)
            .arg(&self.setup.group)
            .arg("0")
            .arg("MKSTREAM")
            .query(&mut connection);
        if let Err(error) = created {
            if error.code() != Some("BUSYGROUP") {
                return Err(error);
            }
        }
        self.link_up();
        // Our own pending entries first: what a previous run of this
        // consumer read and never acknowledged.
        let mut pending_cursor = Some("0-0".to_owned());
        let mut next_maintenance = Instant::now();
        while !self.setup.shutdown.load(Ordering::Relaxed) {
            self.collect_acks(Duration::ZERO);
            if self.in_flight >= MAX_IN_FLIGHT {
                self.send_acks(&mut connection)?;
                self.collect_acks(Duration::from_millis(100));
                continue;
            }
            if Instant::now() >= next_maintenance {
                next_maintenance = Instant::now() + MAINTENANCE_INTERVAL;
                self.send_acks(&mut connection)?;
                self.maintenance(&mut connection)?;
                continue;
            }
            let mut read = redis::cmd("XREADGROUP");
            read.arg("GROUP")
                .arg(&self.setup.group)
                .arg(&self.setup.consumer)
                .arg("COUNT")
                .arg(self.read_count);
            match &pending_cursor {
                Some(cursor) => {
                    read.arg("STREAMS").arg(&self.setup.config.key).arg(cursor);
                }
                None => {
                    let block = if self.in_flight > 0 || !self.to_ack.is_empty() {
                        BLOCK_BUSY
                    } else {
                        BLOCK_IDLE
                    };
                    read.arg("BLOCK")
                        .arg(block.as_millis() as u64)
                        .arg("STREAMS")
                        .arg(&self.setup.config.key)
                        .arg(">");
                }
            }
            let reply = self.acknowledge_and_read(&mut connection, &read)?;
            let entries = stream_entries(reply);
            self.adapt_read_count(&entries);
            if pending_cursor.is_some() {
                match entries.last() {
                    Some((id, _)) => pending_cursor = Some(id.clone()),
                    None => pending_cursor = None,
                }
            }
            self.submit_entries(entries);
        }
        self.collect_acks(Duration::ZERO);
        self.send_acks(&mut connection)?;
        Ok(())
    }

    /// Claims entries left pending too long by any consumer of the group,
    /// and refreshes the pending count.
    fn maintenance(&mut self, connection: &mut Connection) -> Result<(), RedisError> {
        let mut cursor = "0-0".to_owned();
        let mut claimed = 0;
        for _ in 0..10 {
            let reply: Value = redis::cmd("XAUTOCLAIM")
                .arg(&self.setup.config.key)
                .arg(&self.setup.group)
                .arg(&self.setup.consumer)
                .arg(self.setup.tuning.claim_idle.as_millis() as u64)
                .arg(&cursor)
                .arg("COUNT")
                .arg(self.read_count)
                .query(connection)?;
            let Value::Array(mut parts) = reply else {
                break;
            };
            parts.resize(3, Value::Nil);
            let next = text(&parts[0]).unwrap_or_else(|| "0-0".to_owned());
            let entries = entry_list(std::mem::take(&mut parts[1]));
            self.adapt_read_count(&entries);
            // Entries trimmed from the stream while pending cannot be read:
            // acknowledge them so they stop counting as pending.
            if let Value::Array(deleted) = &parts[2] {
                self.to_ack.extend(deleted.iter().filter_map(text));
            }
            claimed += entries.len();
            self.submit_entries(entries);
            if next == "0-0" {
                break;
            }
            cursor = next;
        }
        // One line per pass: the read count adapts to entry sizes, so a
        // pass may take several XAUTOCLAIM calls.
        if claimed > 0 {
            log::info(&format!(
                "redis: claimed {claimed} entries left pending by a stopped consumer"
            ));
        }
        // Not fatal: an ACL without XINFO, or an old Redis, only loses the
        // figures; a broken link shows in the XPENDING below.
        let _ = self.stream_info(connection);
        let summary: Value = redis::cmd("XPENDING")
            .arg(&self.setup.config.key)
            .arg(&self.setup.group)
            .query(connection)?;
        if let Value::Array(parts) = summary {
            if let Some(Value::Int(count)) = parts.first() {
                self.setup
                    .stats
                    .redis_pending
                    .store(*count, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Reads the stream's length and the group's lag for `/metrics`, and
    /// detects entries trimmed before the group read them. `MAXLEN ~` trims
    /// by length, not by what groups acknowledged, so while the collector is
    /// down old unread entries can go: `entries-added - length` entries left
    /// the stream, the group read `entries-read` of the first ones, and the
    /// difference was never read. Redis 7 reports both (and `lag` turns nil
    /// in that case); an older Redis reports neither, and nothing is counted.
    fn stream_info(&mut self, connection: &mut Connection) -> Result<(), RedisError> {
        let stream: Value = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(&self.setup.config.key)
            .query(connection)?;
        let stream = fields(stream);
        let length = integer_field(&stream, "length");
        let entries_added = integer_field(&stream, "entries-added");
        let groups: Value = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&self.setup.config.key)
            .query(connection)?;
        let Value::Array(groups) = groups else {
            return Ok(());
        };
        let ours = groups.into_iter().map(fields).find(|group| {
            group.iter().any(|(name, value)| {
                name == "name" && text(value).as_deref() == Some(&self.setup.group)
            })
        });
        let stats = &self.setup.stats;
        stats
            .redis_stream_length
            .store(length.unwrap_or(-1), Ordering::Relaxed);
        let Some(group) = ours else {
            return Ok(());
        };
        stats.redis_group_lag.store(
            integer_field(&group, "lag").unwrap_or(-1),
            Ordering::Relaxed,
        );
        // `entries-read` is nil for a group that never read since it was
        // created on an empty stream: with `last-delivered-id` 0-0 it read
        // nothing. Otherwise nil means Redis cannot count (a deletion inside
        // the range), and the loss goes uncounted.
        let never_read = group.iter().any(|(name, value)| {
            name == "last-delivered-id" && text(value).as_deref() == Some("0-0")
        });
        let read = integer_field(&group, "entries-read").or(never_read.then_some(0));
        let (Some(length), Some(added), Some(read)) = (length, entries_added, read) else {
            return Ok(());
        };
        let unread_trimmed = (added - length - read).max(0) as u64;
        if unread_trimmed > self.unread_trimmed_seen {
            let lost = unread_trimmed - self.unread_trimmed_seen;
            stats
                .redis_trimmed_unread
                .fetch_add(lost, Ordering::Relaxed);
            log::warn(&format!(
                "redis: {lost} entries of stream {:?} were trimmed or deleted before group {:?} read them: those events are lost (raise the emitters' maxlen, see README)",
                self.setup.config.key, self.setup.group
            ));
        }
        self.unread_trimmed_seen = unread_trimmed;
        Ok(())
    }

    /// Sets the next read's `COUNT` from the largest entry just read, so a
    /// read brings at most about [`READ_BYTE_BUDGET`] bytes.
    fn adapt_read_count(&mut self, entries: &[(String, Option<Vec<u8>>)]) {
        let Some(largest) = entries
            .iter()
            .map(|(id, body)| id.len() + body.as_ref().map_or(0, Vec::len))
            .max()
        else {
            return;
        };
        self.read_count = (READ_BYTE_BUDGET / largest.max(1)).clamp(1, READ_COUNT);
    }

    /// Parses entries and submits the valid ones; rejected and empty
    /// entries are recorded and acknowledged at once (they would otherwise
    /// come back forever).
    fn submit_entries(&mut self, entries: Vec<(String, Option<Vec<u8>>)>) {
        if entries.is_empty() {
            return;
        }
        let mut ids = Vec::with_capacity(entries.len());
        let mut events: Vec<NewEvent> = Vec::with_capacity(entries.len());
        for (id, body) in entries {
            let Some(body) = body else {
                // Trimmed or without an `event` field: nothing to store.
                self.to_ack.push(id);
                continue;
            };
            match ingest::parse_counted_remembering(
                &body,
                Source::Redis,
                &self.setup.stats,
                &self.setup.redactor,
                Some(&mut self.known_sessions),
            ) {
                Ok(event) => {
                    events.push(event);
                    ids.push(id);
                }
                Err(reason) => {
                    log::warn(&format!("redis: rejected stream entry {id}: {reason}"));
                    match spool::record_rejected(&self.setup.spool_dir, &body, &reason.0) {
                        Ok(()) => self.to_ack.push(id),
                        // Not acknowledged: the entry stays pending in Redis
                        // (read again at the next start, or claimed), so it
                        // is not lost with nowhere else recorded.
                        Err(error) => log::warn(&format!(
                            "redis: cannot record rejected entry {id} ({error}); leaving it unacknowledged"
                        )),
                    }
                }
            }
        }
        if events.is_empty() {
            return;
        }
        let done = self.ack_sender.clone();
        let submission = Submission {
            source: Source::Redis,
            events,
            acknowledge: Box::new(move |committed| {
                let _ = done.send((ids, committed));
            }),
            otel: None,
        };
        if self.setup.queue.submit(submission).is_ok() {
            self.in_flight += 1;
        }
    }

    /// One connection's life in pub/sub mode. `Ok` only at shutdown.
    fn pubsub_session(&mut self, client: &Client) -> Result<(), RedisError> {
        let mut connection = self.connect(client, BLOCK_IDLE)?;
        let mut pubsub = connection.as_pubsub();
        pubsub.subscribe(&self.setup.config.key)?;
        self.link_up();
        while !self.setup.shutdown.load(Ordering::Relaxed) {
            let message = match pubsub.get_message() {
                Ok(message) => message,
                Err(error) if error.is_timeout() => continue,
                Err(error) => return Err(error),
            };
            let body = message.get_payload_bytes();
            match ingest::parse_counted_remembering(
                body,
                Source::Redis,
                &self.setup.stats,
                &self.setup.redactor,
                Some(&mut self.known_sessions),
            ) {
                Ok(event) => {
                    let stats = self.setup.stats.clone();
                    let submission = Submission {
                        source: Source::Redis,
                        events: vec![event],
                        acknowledge: Box::new(move |_| {
                            // Nothing to acknowledge to Redis: counted as
                            // acknowledged once stored.
                            stats
                                .source(Source::Redis)
                                .acknowledged
                                .fetch_add(1, Ordering::Relaxed);
                        }),
                        otel: None,
                    };
                    let _ = self.setup.queue.submit(submission);
                }
                Err(reason) => {
                    log::warn(&format!("redis: rejected a pub/sub message: {reason}"));
                    if let Err(error) =
                        spool::record_rejected(&self.setup.spool_dir, body, &reason.0)
                    {
                        log::warn(&format!("redis: cannot record a rejected message: {error}"));
                    }
                }
            }
        }
        Ok(())
    }

    /// At shutdown: waits for the commits of what was read and acknowledges
    /// them on a fresh connection if needed.
    fn finish(&mut self) {
        let deadline = Instant::now() + self.setup.tuning.drain_deadline;
        while self.in_flight > 0 && Instant::now() < deadline {
            self.collect_acks(Duration::from_millis(50));
        }
        self.collect_acks(Duration::ZERO);
        if self.to_ack.is_empty() || self.setup.config.transport == Transport::PubSub {
            return;
        }
        let result = self
            .client()
            .map_err(|error| RedisError::from(std::io::Error::other(error)))
            .and_then(|client| self.connect(&client, NETWORK_TIMEOUT))
            .and_then(|mut connection| self.send_acks(&mut connection));
        if let Err(error) = result {
            log::warn(&format!(
                "redis: could not acknowledge {} committed entries at shutdown ({error}); they will be read again and stored once",
                self.to_ack.len()
            ));
        }
    }
}

/// A bulk or simple string as text.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

/// The name and value pairs of an `XINFO` reply (a RESP2 flat array or a
/// RESP3 map).
fn fields(value: Value) -> Vec<(String, Value)> {
    match value {
        Value::Map(pairs) => pairs
            .into_iter()
            .filter_map(|(name, value)| Some((text(&name)?, value)))
            .collect(),
        Value::Array(items) => {
            let mut pairs = Vec::new();
            let mut items = items.into_iter();
            while let (Some(name), Some(value)) = (items.next(), items.next()) {
                if let Some(name) = text(&name) {
                    pairs.push((name, value));
                }
            }
            pairs
        }
        _ => Vec::new(),
    }
}

/// The integer field `name` of [`fields`], if present and not nil.
fn integer_field(pairs: &[(String, Value)], name: &str) -> Option<i64> {
    pairs
        .iter()
        .find(|(field, _)| field == name)
        .and_then(|(_, value)| match value {
            Value::Int(number) => Some(*number),
            _ => None,
        })
}

/// The entries of an `XREADGROUP` reply (RESP2 arrays or RESP3 maps), as
/// (id, value of the `event` field).
fn stream_entries(reply: Value) -> Vec<(String, Option<Vec<u8>>)> {
    match reply {
        Value::Array(streams) => streams
            .into_iter()
            .flat_map(|stream| match stream {
                Value::Array(mut pair) if pair.len() == 2 => {
                    entry_list(pair.pop().unwrap_or_default())
                }
                _ => Vec::new(),
            })
            .collect(),
        Value::Map(streams) => streams
            .into_iter()
            .flat_map(|(_, entries)| entry_list(entries))
            .collect(),
        _ => Vec::new(),
    }
}

/// A list of `[id, [field, value, ...]]` entries.
fn entry_list(value: Value) -> Vec<(String, Option<Vec<u8>>)> {
    let Value::Array(entries) = value else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter_map(|entry| {
            let Value::Array(mut parts) = entry else {
                return None;
            };
            parts.resize(2, Value::Nil);
            let fields = parts.pop().unwrap_or_default();
            let id = text(&parts[0])?;
            let pairs: Vec<(Value, Value)> = match fields {
                Value::Array(flat) => {
                    let mut flat = flat.into_iter();
                    std::iter::from_fn(|| Some((flat.next()?, flat.next()?))).collect()
                }
                Value::Map(pairs) => pairs,
                _ => Vec::new(),
            };
            let body = pairs
                .into_iter()
                .find_map(|(name, value)| match (name, value) {
                    (Value::BulkString(name), Value::BulkString(bytes)) if name == b"event" => {
                        Some(bytes)
                    }
                    _ => None,
                });
            Some((id, body))
        })
        .collect()
}

/// A client for the configured Redis (with its CA file for `rediss://`);
/// also used to deliver remote decisions (`crate::approvals`).
pub(crate) fn client_for(config: &RedisConfig) -> Result<Client, String> {
    match &config.ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|error| format!("cannot read the CA file {}: {error}", path.display()))?;
            Client::build_with_tls(
                config.url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
            .map_err(|error| error.to_string())
        }
        None => Client::open(config.url.as_str()).map_err(|error| error.to_string()),
    }
}
