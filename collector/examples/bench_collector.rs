//! `scripts/bench-collector`: the collector's throughput, latency and memory
//! on ~1 KB real-shaped events (issue 3). Prints one report:
//! (a) the ceiling: plain batched rusqlite inserts with the same schema,
//!     filling the same columns as the writer (until 2026-12-03 it left
//!     `prompt_id` and `permission_mode` empty, with their two indexes:
//!     `--redis-only` still prints that one as (a'));
//! (b) ingest of a pre-filled Redis stream through to `XACK`, timed from
//!     the collector's start, and (with `--redis-only`) also from its first
//!     event read, which is how (a) is timed: (a) opens and migrates its
//!     database before its clock starts;
//! (c) ingest from the socket with 8 concurrent pipelined writers;
//! (d) latency from emitter start to committed row at 500 events/s;
//! (e) the collector's peak RSS;
//! (f) (c) again with alerts on: 50 alerts in flight to a webhook that takes
//!     10 s to answer, and a session cost rule checked on every commit
//!     (issue 20: a slow receiver must not slow ingest);
//! (g) search freshness: from an event's acknowledgement (its commit) to
//!     its text being in the search index, at a steady 1,000 events/s
//!     (issue 21: the index follows the writer instead of sitting in the
//!     acknowledgement path). (b) also reports when its 200,000 events were
//!     all searchable.
//! (h) with `--otlp-load` only (c), and (c) again while an OTLP exporter
//!     posts 1,000 records/s (10 JSON exports/s of 100 `api_request` and
//!     `tool_result` records) to the collector's receiver (issue 22: the
//!     hooks' ingest must not slow down under OpenTelemetry traffic).
//!
//! With `--redis-only`, only the ceiling without the index and (b), with
//! their ratio and the CPU each spent per event (issue 21 item 1: a quick
//! repeatable A/B of the Redis ingest), in `BENCH_ROUNDS` rounds (3) whose
//! median ratio is the figure. `BENCH_FILL_REDIS_PORT=N` only fills that
//! redis-server's stream (for `scripts/profile-ingest`).
//! `--without-redacted-with` sends the
//! envelopes as emitters older than `redacted_with` did, so the collector
//! redacts each again.
//!
//! Runs the release collector binary next to this example
//! (`target/<triple>/release/hooktrail-collector`, or `BENCH_COLLECTOR`),
//! and `hooktrail-emit`
//! from the same directory for (d) when it has been built.

// A benchmark prints its figures and paces its load with sleeps; both are
// its job, unlike in the daemons and tests the bans protect.
#![allow(clippy::print_stdout, clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hooktrail_shared::envelope::{new_event_id, Envelope};
use hooktrail_shared::redact::{Redactor, Settings as RedactionSettings};
use hooktrail_testkit::{wait_until, RedisServer};

const EVENTS: usize = 200_000;
const WRITERS: usize = 8;
const KEY: &str = "hooktrail:events";

fn main() {
    let events: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(EVENTS);
    let binaries = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    // `BENCH_COLLECTOR=PATH` measures another build (an A/B in one run).
    let collector = std::env::var_os("BENCH_COLLECTOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| binaries.join("hooktrail-collector"));
    assert!(
        collector.exists(),
        "build the collector first: cargo build --release -p hooktrail-collector"
    );
    let temp = tempfile::tempdir().unwrap();
    eprintln!("bench: generating {events} events of ~1 KB");
    // The emitter redacts every envelope and names the redaction in it;
    // `--without-redacted-with` sends them as emitters older than
    // `redacted_with` did, so the collector redacts each again.
    let sent = if std::env::args().any(|arg| arg == "--without-redacted-with") {
        Sent::WithoutRedactedWith
    } else {
        Sent::AsTheEmitterDoes
    };
    let redactor = Redactor::new(RedactionSettings::default());
    let lines: Vec<String> = (0..events)
        .map(|index| envelope(index, sent, &redactor))
        .collect();
    let average = lines.iter().map(String::len).sum::<usize>() / lines.len();
    // `BENCH_FILL_REDIS_PORT=N`: only puts the envelopes into the stream of
    // the redis-server on that port (for `scripts/profile-ingest`).
    if let Some(port) = std::env::var("BENCH_FILL_REDIS_PORT")
        .ok()
        .and_then(|text| text.parse().ok())
    {
        for chunk in lines.chunks(10_000) {
            hooktrail_testkit::xadd_all(port, KEY, chunk);
        }
        return;
    }
    if std::env::args().any(|arg| arg == "--otlp-load") {
        otlp_load_report(&collector, temp.path(), &lines, average);
        return;
    }
    if std::env::args().any(|arg| arg == "--redis-only") {
        redis_only_report(&collector, temp.path(), &lines, average);
        return;
    }

    let (plain, _) = ceiling(&temp.path().join("plain.db"), &lines, Search::Off);
    let (ceiling, _) = ceiling(&temp.path().join("ceiling.db"), &lines, Search::On);
    let RedisRun {
        rate: redis_rate,
        rss: redis_rss,
        searchable,
        ..
    } = redis_ingest(&collector, temp.path(), &lines);
    let (socket_rate, socket_rss) = socket_ingest(&collector, temp.path(), &lines);
    let alerts_rate = socket_ingest_with_slow_alerts(&collector, temp.path(), &lines);
    let latency = latency(&collector, &binaries.join("hooktrail-emit"), temp.path());
    let fresh = freshness(&collector, temp.path());

    println!("hooktrail collector benchmark ({events} events, {average} bytes each on average, {} cores)", cores());
    println!(
        "(a) ceiling, batched rusqlite inserts, same schema:  {:>9.0} events/s  (search index filled as the writer does)",
        ceiling
    );
    println!(
        "    the same without filling the search index:       {:>9.0} events/s  (the index costs {:.0}%)",
        plain,
        (1.0 - ceiling / plain) * 100.0
    );
    println!(
        "(b) Redis stream -> SQLite -> XACK:                  {:>9.0} events/s  ({:.2} of a, {:.2} of a without the index; target >= 0.85)",
        redis_rate,
        redis_rate / ceiling,
        redis_rate / plain
    );
    println!(
        "    all {events} searchable {:.2} s after the start, {:.2} s after the last XACK",
        searchable.after_start.as_secs_f64(),
        searchable.after_ingest.as_secs_f64()
    );
    println!(
        "(c) socket, {WRITERS} concurrent writers -> ok:            {:>9.0} events/s  ({:.2} of a)",
        socket_rate,
        socket_rate / ceiling
    );
    match latency {
        Some((p50, p99, count)) => println!(
            "(d) emitter start -> committed row at 500/s:          p50 {p50:.2} ms, p99 {p99:.2} ms ({count} events, via the socket)"
        ),
        None => println!("(d) emitter start -> committed row: skipped, hooktrail-emit is not built next to the collector"),
    }
    println!(
        "(f) (c) with alerts to a receiver answering in 10 s: {:>9.0} events/s  ({:.2} of c)",
        alerts_rate,
        alerts_rate / socket_rate
    );
    println!(
        "(g) search freshness, acknowledged -> searchable at 1,000/s: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} events; target p99 <= 1 s)",
        fresh.p50, fresh.p99, fresh.max, fresh.count
    );
    println!(
        "(e) collector peak RSS:                              {:.1} MB in (b), {:.1} MB in (c)",
        redis_rss as f64 / 1024.0,
        socket_rss as f64 / 1024.0
    );
}

/// `--redis-only`: the ceiling without the index, then (b), and what each
/// spent per event, in `BENCH_ROUNDS` rounds (3 by default). This VM's
/// speed moves by up to 2x within minutes (other guests on the host), so
/// each round's ratio compares a ceiling and a (b) run back to back, and
/// the median of the rounds is the figure.
fn redis_only_report(binary: &Path, dir: &Path, lines: &[String], average: usize) {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(3)
        .max(1);
    println!(
        "hooktrail collector benchmark, Redis only ({} events, {average} bytes each on average, {} cores, {rounds} rounds)",
        lines.len(),
        cores(),
    );
    let mut rounds_done = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        let round_dir = dir.join(format!("round-{round}"));
        rounds_done.push(redis_only_round(binary, &round_dir, lines, round));
    }
    println!(
        "(b) / (a) from the first event read, median of {rounds} rounds: {}; target >= 0.85",
        median_of(rounds_done.iter().map(|ratios| ratios.steady))
    );
    println!(
        "(b) / (a) from the collector's start, median of {rounds} rounds: {}",
        median_of(rounds_done.iter().map(|ratios| ratios.overall))
    );
    println!(
        "(b) / (a') from the first event read, median of {rounds} rounds: {}",
        median_of(rounds_done.iter().map(|ratios| ratios.against_empty))
    );
}

/// One round's (b) / (a), timed both ways.
struct RoundRatios {
    /// From the collector's spawn.
    overall: f64,
    /// From its first event read, as (a) is timed.
    steady: f64,
    /// The same against (a'), the ceiling leaving two columns empty.
    against_empty: f64,
}

/// "median (rounds: r1, r2, ...)".
fn median_of(ratios: impl Iterator<Item = f64>) -> String {
    let mut ratios: Vec<f64> = ratios.collect();
    ratios.sort_by(f64::total_cmp);
    format!(
        "{:.2} (rounds: {})",
        ratios[ratios.len() / 2],
        ratios
            .iter()
            .map(|ratio| format!("{ratio:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Writes what earlier phases left dirty in the page cache to disk before
/// a timed phase starts: on this VM, the writeback of one phase's few
/// hundred MB otherwise lands in the next one, whichever it is (a round's
/// last phase ran 25-35% slower than its first in the same run).
fn settle() {
    let _ = Command::new("sync").status();
}

/// One round of `--redis-only`; returns (b) / (a). The round's databases
/// are deleted at its end, so rounds start alike.
fn redis_only_round(binary: &Path, dir: &Path, lines: &[String], round: usize) -> RoundRatios {
    let ratio = redis_only_round_in(binary, dir, lines, round);
    let _ = std::fs::remove_dir_all(dir);
    ratio
}

fn redis_only_round_in(binary: &Path, dir: &Path, lines: &[String], round: usize) -> RoundRatios {
    std::fs::create_dir_all(dir).unwrap();
    let (plain, plain_cpu) = ceiling(&dir.join("plain.db"), lines, Search::Off);
    let (empty, empty_cpu) =
        ceiling_with(&dir.join("empty.db"), lines, Search::Off, Columns::Envelope);
    let redis = redis_ingest(binary, dir, lines);
    let per_event = |seconds: f64| seconds * 1e6 / lines.len() as f64;
    println!("round {round}, load average {}", load_average());
    println!(
        "(a) ceiling without the search index:                {plain:>9.0} events/s  ({:.2} us CPU per event)",
        per_event(plain_cpu)
    );
    println!(
        "(a') the same leaving prompt_id, permission_mode empty: {empty:>6.0} events/s  ({:.2} us CPU per event; (a) until 2026-12-03)",
        per_event(empty_cpu)
    );
    println!(
        "(b) Redis stream -> SQLite -> XACK:                  {:>9.0} events/s  ({:.2} of a; {:.2} of a')",
        redis.rate,
        redis.rate / plain,
        redis.rate / empty
    );
    println!(
        "    from its first event read, as (a) is timed:       {:>9.0} events/s  ({:.2} of a; target >= 0.85; {:.2} of a'; {} ms before it)",
        redis.steady_rate,
        redis.steady_rate / plain,
        redis.steady_rate / empty,
        redis.startup.as_millis()
    );
    println!(
        "    CPU per event: writer {:.2} us ({:.2} of a's, {:.2} of a''s), redis thread {:.2} us, redis-server {:.2} us",
        per_event(redis.writer_cpu),
        redis.writer_cpu / plain_cpu,
        redis.writer_cpu / empty_cpu,
        per_event(redis.reader_cpu),
        per_event(redis.server_cpu)
    );
    println!(
        "    indexed for search by the last XACK: {} events; all searchable {:.2} s after it",
        redis.indexed_during,
        redis.searchable.after_ingest.as_secs_f64()
    );
    RoundRatios {
        overall: redis.rate / plain,
        steady: redis.steady_rate / plain,
        against_empty: redis.steady_rate / empty,
    }
}

/// The 1-minute load average, as `/proc/loadavg` gives it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
}

/// How the benchmark's envelopes were sent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// Redacted by the emitter's redaction, which names itself in
    /// `redacted_with`, as every emitter of this version sends them.
    AsTheEmitterDoes,
    /// Without `redacted_with`, as older emitters sent them (redacted, but
    /// not saying how), so the collector redacts each again.
    WithoutRedactedWith,
}

/// A real-shaped PostToolUse envelope of about 1 KB.
fn envelope(index: usize, sent: Sent, redactor: &Redactor) -> String {
    let payload = format!(
        r#"{{"session_id":"3fbea859-b92d-4bc3-9607-{:012}","transcript_path":"/home/dev/.claude/projects/-home-dev-project/3fbea859.jsonl","cwd":"/home/dev/project","prompt_id":"fb8a183b-c921-4343-9c45-0ebbbf01b5d9","permission_mode":"default","effort":{{"level":"medium"}},"hook_event_name":"PostToolUse","tool_name":"Bash","tool_input":{{"command":"grep -rn 'fn main' src/ | head -{}","description":"Find entry points"}},"tool_response":{{"stdout":"{}","stderr":"","interrupted":false,"isImage":false}},"tool_use_id":"toolu_{index:08}","duration_ms":{}}}"#,
        index % 50,
        index % 100,
        "src/main.rs:12:fn main() {\\n".repeat(20),
        index % 1000
    );
    let mut envelope = Envelope::from_hook_stdin(
        payload.as_bytes(),
        new_event_id(),
        1_732_312_345_678 + index as i64,
        "benchhost".into(),
    );
    if sent == Sent::AsTheEmitterDoes {
        redactor.redact_built_envelope(&mut envelope);
    }
    envelope.to_json()
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// Whether the ceiling also fills the search index.
#[derive(Clone, Copy, PartialEq)]
enum Search {
    /// Each row's searchable text goes into `events_fts`, as the writer does
    /// (the text is extracted before the clock starts, as the collector's
    /// source threads do it off the writer).
    On,
    /// Rows only.
    Off,
}

/// (a): the same schema and pragmas as the collector, rows inserted in
/// batches of 2,000 with one cached statement, filling every column the
/// writer fills for these events. The rate and the CPU seconds it took.
fn ceiling(db: &Path, lines: &[String], search: Search) -> (f64, f64) {
    ceiling_with(db, lines, search, Columns::Lifted)
}

/// Which columns the ceiling fills.
#[derive(Clone, Copy, PartialEq)]
enum Columns {
    /// The envelope's own fields only, leaving `prompt_id` and
    /// `permission_mode` empty: the ceiling of issue 3, written before
    /// migration 3 added those two columns and their indexes, and never
    /// updated; kept as (a') to compare with earlier figures.
    Envelope,
    /// Also `prompt_id` and `permission_mode`, lifted from the payload as
    /// the collector's source threads do (before the clock starts): the
    /// collector stores them (DESIGN §6), and each has an index of its own.
    /// The ceiling (a) since 2026-12-03.
    Lifted,
}

fn ceiling_with(db: &Path, lines: &[String], search: Search, columns: Columns) -> (f64, f64) {
    let mut connection = hooktrail_collector::open_database(db).unwrap();
    let rows: Vec<Envelope> = lines
        .iter()
        .map(|line| hooktrail_shared::envelope::parse_line(line.as_bytes()).unwrap())
        .collect();
    let texts: Vec<Option<String>> = rows
        .iter()
        .map(|row| match search {
            Search::On => hooktrail_collector::searchable_text(&row.hook, row.payload.get()),
            Search::Off => None,
        })
        .collect();
    let lifted: Vec<(Option<String>, Option<String>)> = rows
        .iter()
        .map(|row| match columns {
            Columns::Lifted => {
                let payload = row.payload.get().as_bytes();
                (
                    hooktrail_shared::transcript::lift_plain_string(payload, "prompt_id"),
                    hooktrail_shared::transcript::lift_plain_string(payload, "permission_mode"),
                )
            }
            Columns::Envelope => (None, None),
        })
        .collect();
    let mut lifted = lifted.iter();
    let mut texts = texts.iter();
    settle();
    let started = Instant::now();
    let cpu_before = thread_cpu_seconds();
    for chunk in rows.chunks(2000) {
        let transaction = connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        {
            let mut insert = transaction
                .prepare_cached(
                    "INSERT OR IGNORE INTO events
                     (id, ts, received_at, machine, session_id, agent_id, hook, tool, tool_use_id, cwd, source, payload, prompt_id, permission_mode)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                )
                .unwrap();
            let mut index_text = transaction
                .prepare_cached("INSERT INTO events_fts (rowid, text) VALUES (?1, ?2)")
                .unwrap();
            for row in chunk {
                let (prompt_id, permission_mode) = lifted.next().unwrap();
                let changed = insert
                    .execute(rusqlite::params![
                        row.id,
                        row.ts,
                        row.ts,
                        row.machine,
                        row.session_id,
                        row.agent_id,
                        row.hook,
                        row.tool,
                        row.tool_use_id,
                        row.cwd,
                        "redis",
                        row.payload.get(),
                        prompt_id,
                        permission_mode,
                    ])
                    .unwrap();
                if let (1, Some(Some(text))) = (changed, texts.next()) {
                    index_text
                        .execute(rusqlite::params![transaction.last_insert_rowid(), text])
                        .unwrap();
                }
            }
        }
        transaction.commit().unwrap();
    }
    let elapsed = started.elapsed();
    let cpu = thread_cpu_seconds() - cpu_before;
    eprintln!(
        "bench: (a) ceiling ({}): {:.2}s wall, {:.2}s CPU",
        if search == Search::On {
            "search index on"
        } else {
            "search index off"
        },
        elapsed.as_secs_f64(),
        cpu
    );
    (rate(rows.len(), elapsed), cpu)
}

/// CPU seconds (user + system) used so far by the calling thread.
fn thread_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

struct Running {
    child: Child,
    socket: PathBuf,
    db: PathBuf,
}

impl Running {
    fn start(binary: &Path, dir: &Path, extra: &[&str]) -> Running {
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("run/c.sock");
        let db = dir.join("events.db");
        let child = Command::new(binary)
            .args([
                "--db",
                &db.display().to_string(),
                "--socket",
                &socket.display().to_string(),
            ])
            .args([
                "--spool-dir",
                &dir.join("spool").display().to_string(),
                "--http",
                "off",
            ])
            .args(extra)
            .env("HOME", dir)
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let running = Running { child, socket, db };
        wait_until("collector socket", Duration::from_secs(20), || {
            UnixStream::connect(&running.socket).is_ok()
        });
        running
    }

    /// Peak resident set size in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|line| line.starts_with("VmHWM:"))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    }

    /// CPU seconds (user + system) per collector thread, by thread name,
    /// so a run shows which thread is the bottleneck.
    fn thread_cpu_seconds(&self) -> Vec<(String, f64)> {
        let ticks = 100.0; // USER_HZ on Linux
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.child.id())) else {
            return Vec::new();
        };
        let mut threads: Vec<(String, f64)> = tasks
            .flatten()
            .filter_map(|task| {
                let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
                let name = stat[stat.find('(')? + 1..stat.rfind(')')?].to_owned();
                let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
                let user: f64 = fields.get(11)?.parse().ok()?;
                let system: f64 = fields.get(12)?.parse().ok()?;
                Some((name, (user + system) / ticks))
            })
            .filter(|(_, seconds)| *seconds > 0.0)
            .collect();
        threads.sort_by(|a, b| b.1.total_cmp(&a.1));
        threads
    }

    fn report_threads(&self, what: &str, elapsed: Duration) {
        let threads: Vec<String> = self
            .thread_cpu_seconds()
            .iter()
            .map(|(name, seconds)| format!("{name} {seconds:.2}s"))
            .collect();
        eprintln!(
            "bench: {what}: {:.2}s wall; collector CPU per thread: {}",
            elapsed.as_secs_f64(),
            threads.join(", ")
        );
    }

    fn count(&self) -> i64 {
        let Ok(connection) = rusqlite::Connection::open_with_flags(
            &self.db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        ) else {
            return 0;
        };
        connection
            .query_row("SELECT count(*) FROM events", [], |row| row.get(0))
            .unwrap_or(0)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// When (b)'s events were all in the search index.
struct Searchable {
    /// From the collector's start.
    after_start: Duration,
    /// From the moment the last event was acknowledged.
    after_ingest: Duration,
}

/// What (b) measured.
struct RedisRun {
    /// Events per second, from the collector's start to the last `XACK`.
    rate: f64,
    /// Events per second from the first event read (its `received_at`) to
    /// the last `XACK`: the like-for-like figure against (a), whose clock
    /// also starts at its first insert, after opening and migrating its
    /// database.
    steady_rate: f64,
    /// From the collector's spawn to its first event read: process start,
    /// opening and migrating a new database, the consumer group.
    startup: Duration,
    /// The collector's peak RSS in KiB.
    rss: u64,
    /// When the events were all searchable.
    searchable: Searchable,
    /// CPU seconds of the writer thread until the last `XACK`.
    writer_cpu: f64,
    /// CPU seconds of the Redis source thread until the last `XACK`.
    reader_cpu: f64,
    /// CPU seconds `redis-server` spent from the collector's start to the
    /// last `XACK` (its `INFO cpu`, which also counts the bench's polling).
    server_cpu: f64,
    /// Events the search index had taken in by the last `XACK`: work the
    /// writer did for the index during the ingest.
    indexed_during: i64,
}

/// CPU seconds (user + system) `redis-server` has used, from `INFO cpu`.
fn redis_server_cpu(redis: &RedisServer) -> f64 {
    redis
        .command(&["INFO", "cpu"])
        .lines()
        .filter_map(|line| {
            let (name, value) = line.trim().split_once(':')?;
            matches!(name, "used_cpu_sys" | "used_cpu_user")
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// (b): XADD everything, then start the collector and time it until the
/// group has nothing pending and nothing left to read; then until the
/// search index has caught up with every stored event.
fn redis_ingest(binary: &Path, dir: &Path, lines: &[String]) -> RedisRun {
    let redis = RedisServer::start();
    eprintln!("bench: filling the stream");
    for chunk in lines.chunks(10_000) {
        hooktrail_testkit::xadd_all(redis.port, KEY, chunk);
    }
    let server_cpu_before = redis_server_cpu(&redis);
    settle();
    let started = Instant::now();
    let spawned_at = hooktrail_shared::time::now_millis();
    let running = Running::start(
        binary,
        &dir.join("redis"),
        &["--redis-url", &redis.url(), "--group", "bench"],
    );
    // Polled every 5 ms (not wait_until's 50 ms) so the timing error stays
    // small next to a run of a second or two.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let info = redis.command(&["XINFO", "GROUPS", KEY]);
        let fields: Vec<&str> = info.lines().collect();
        let value = |name: &str| {
            fields
                .iter()
                .position(|field| *field == name)
                .and_then(|at| fields.get(at + 1))
                .copied()
        };
        if value("pending") == Some("0") && value("lag") == Some("0") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the stream to be ingested and acknowledged"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = started.elapsed();
    let mark = MarkReader::open(&running.db);
    let startup = Duration::from_millis(
        (mark.first_received_at() - spawned_at).clamp(0, elapsed.as_millis() as i64) as u64,
    );
    // Read within a few ms of the last XACK: an index step started since
    // then has not committed (it moves the mark at its commit).
    let indexed_during = mark.indexed_seq();
    let server_cpu = redis_server_cpu(&redis) - server_cpu_before;
    running.report_threads("(b) redis", elapsed);
    let threads = running.thread_cpu_seconds();
    let cpu_of = |name: &str| {
        threads
            .iter()
            .find(|(thread, _)| thread == name)
            .map_or(0.0, |(_, seconds)| *seconds)
    };
    let (writer_cpu, reader_cpu) = (cpu_of("writer"), cpu_of("redis"));
    assert_eq!(running.count(), lines.len() as i64);
    let ingested = Instant::now();
    while mark.behind() > 0 {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the search index to catch up"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let searchable = Searchable {
        after_start: started.elapsed(),
        after_ingest: ingested.elapsed(),
    };
    RedisRun {
        rate: rate(lines.len(), elapsed),
        steady_rate: rate(lines.len(), elapsed - startup),
        startup,
        rss: running.peak_rss_kib(),
        searchable,
        writer_cpu,
        reader_cpu,
        server_cpu,
        indexed_during,
    }
}

/// A read-only look at the search index's mark (migration 13).
struct MarkReader {
    connection: rusqlite::Connection,
}

impl MarkReader {
    /// Waits until the collector has migrated the database.
    fn open(db: &Path) -> MarkReader {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(connection) = rusqlite::Connection::open_with_flags(
                db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            ) {
                if connection
                    .prepare("SELECT indexed_seq FROM search_index_mark")
                    .is_ok()
                {
                    return MarkReader { connection };
                }
            }
            assert!(
                Instant::now() < deadline,
                "the collector did not create {}",
                db.display()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The mark: every event with a `seq` up to it is searchable.
    /// When the collector read its first event (ms since the epoch).
    fn first_received_at(&self) -> i64 {
        self.connection
            .query_row("SELECT MIN(received_at) FROM events", [], |row| row.get(0))
            .unwrap()
    }

    fn indexed_seq(&self) -> i64 {
        self.connection
            .query_row("SELECT indexed_seq FROM search_index_mark", [], |row| {
                row.get(0)
            })
            .unwrap_or(0)
    }

    /// Stored events past the mark (by `seq`).
    fn behind(&self) -> i64 {
        self.connection
            .query_row(
                "SELECT COALESCE(MAX(seq), 0) - (SELECT indexed_seq FROM search_index_mark) FROM events",
                [],
                |row| row.get(0),
            )
            .unwrap_or(1)
    }
}

/// (g)'s figures, in milliseconds.
struct Freshness {
    p50: f64,
    p99: f64,
    max: f64,
    count: usize,
}

/// (g): one socket client writes an event every millisecond (on time, not
/// waiting for answers) and notes when each `ok` comes back, which the
/// collector sends after the commit; a poller reads the index mark every
/// 2 ms. An event's freshness is from its `ok` to the first poll whose
/// mark covers its `seq` (so up to 2 ms too long).
fn freshness(binary: &Path, dir: &Path) -> Freshness {
    let running = Running::start(binary, &dir.join("freshness"), &[]);
    let count = 10_000;
    let redactor = Redactor::new(RedactionSettings::default());
    let lines: Vec<String> = (0..count)
        .map(|index| envelope(index, Sent::AsTheEmitterDoes, &redactor))
        .collect();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let done = done.clone();
        let db = running.db.clone();
        std::thread::spawn(move || {
            let mark = MarkReader::open(&db);
            let mut polls: Vec<(Instant, i64)> = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) || mark.behind() > 0 {
                polls.push((Instant::now(), mark.indexed_seq()));
                std::thread::sleep(Duration::from_millis(2));
            }
            polls.push((Instant::now(), mark.indexed_seq()));
            polls
        })
    };
    let mut stream = UnixStream::connect(&running.socket).unwrap();
    let reader = stream.try_clone().unwrap();
    let answers = std::thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        let mut line = String::new();
        (0..count)
            .map(|_| {
                line.clear();
                reader.read_line(&mut line).unwrap();
                assert_eq!(line, "ok\n");
                Instant::now()
            })
            .collect::<Vec<Instant>>()
    });
    let origin = Instant::now();
    for (index, line) in lines.iter().enumerate() {
        let due = origin + Duration::from_millis(index as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        stream.write_all(line.as_bytes()).unwrap();
        stream.write_all(b"\n").unwrap();
    }
    let acknowledged = answers.join().unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let polls = poller.join().unwrap();
    let connection = rusqlite::Connection::open_with_flags(
        &running.db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut seq_of = connection
        .prepare("SELECT seq FROM events WHERE id = ?1")
        .unwrap();
    let mut delays: Vec<f64> = lines
        .iter()
        .zip(&acknowledged)
        .map(|(line, acked)| {
            let id = hooktrail_shared::envelope::parse_line(line.as_bytes())
                .unwrap()
                .id;
            let seq: i64 = seq_of.query_row([id], |row| row.get(0)).unwrap();
            let at = polls.partition_point(|(_, mark)| *mark < seq);
            let searchable = polls
                .get(at)
                .map_or(polls[polls.len() - 1].0, |poll| poll.0);
            searchable.saturating_duration_since(*acked).as_secs_f64() * 1000.0
        })
        .collect();
    delays.sort_by(f64::total_cmp);
    let at =
        |quantile: f64| delays[((delays.len() as f64 * quantile) as usize).min(delays.len() - 1)];
    Freshness {
        p50: at(0.50),
        p99: at(0.99),
        max: delays[delays.len() - 1],
        count: delays.len(),
    }
}

/// (c): 8 writers, each pipelining its share of the events on one
/// connection; timed until every `ok` is back.
fn socket_ingest(binary: &Path, dir: &Path, lines: &[String]) -> (f64, u64) {
    let running = Running::start(binary, &dir.join("socket"), &[]);
    let elapsed = write_concurrently(&running, lines);
    running.report_threads("(c) socket", elapsed);
    assert_eq!(running.count(), lines.len() as i64);
    (rate(lines.len(), elapsed), running.peak_rss_kib())
}

/// (f): the socket ingest of (c) while 50 alerts wait on a webhook that
/// answers each request after 10 s.
fn socket_ingest_with_slow_alerts(binary: &Path, dir: &Path, lines: &[String]) -> f64 {
    use std::os::unix::fs::PermissionsExt;
    let receiver = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port();
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let requests = requests.clone();
        std::thread::spawn(move || {
            for stream in receiver.incoming().flatten() {
                let requests = requests.clone();
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 65536];
                    let _ = (&stream).read(&mut buffer);
                    requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    std::thread::sleep(Duration::from_secs(10));
                    let _ = (&stream).write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                });
            }
        });
    }
    let dir = dir.join("alerts");
    let config = dir.join("config/hooktrail");
    std::fs::create_dir_all(&config).unwrap();
    let secret = config.join("webhook.secret");
    std::fs::write(&secret, "bench-key").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let alerts = serde_json::json!({"alerts": {
        "destinations": [{"name": "slow", "kind": "webhook", "url": format!("http://127.0.0.1:{port}/"),
                          "secret_file": secret.display().to_string()}],
        "rules": [{"when": "ended", "to": ["slow"]},
                  {"when": "cost", "amount_usd": 1e9, "to": ["slow"]},
                  {"when": "waiting", "to": ["slow"]}]}});
    std::fs::write(config.join("config.json"), alerts.to_string()).unwrap();
    let running = Running::start(binary, &dir, &[]);
    let now = hooktrail_shared::time::now_millis();
    let ends: Vec<String> = (0..50)
        .map(|index| {
            let payload = format!(
                r#"{{"session_id":"ended-{index}","cwd":"/p","hook_event_name":"SessionEnd","reason":"other"}}"#
            );
            Envelope::from_hook_stdin(payload.as_bytes(), new_event_id(), now, "benchhost".into())
                .to_json()
        })
        .collect();
    write_concurrently(&running, &ends);
    wait_until("the first alert in flight", Duration::from_secs(30), || {
        requests.load(std::sync::atomic::Ordering::Relaxed) > 0
    });
    let elapsed = write_concurrently(&running, lines);
    running.report_threads("(f) socket with slow alerts", elapsed);
    assert_eq!(running.count(), (lines.len() + ends.len()) as i64);
    eprintln!(
        "bench: (f) webhook requests started during the run: {} (one at a time, in order)",
        requests.load(std::sync::atomic::Ordering::Relaxed)
    );
    rate(lines.len(), elapsed)
}

/// Writes `lines` from 8 concurrent pipelined socket clients, each waiting
/// for its `ok`s; the time it took.
fn write_concurrently(running: &Running, lines: &[String]) -> Duration {
    let share = lines.len().div_ceil(WRITERS);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for chunk in lines.chunks(share) {
            let socket = running.socket.clone();
            scope.spawn(move || {
                let mut stream = UnixStream::connect(&socket).unwrap();
                let reader = stream.try_clone().unwrap();
                let expected = chunk.len();
                let replies = std::thread::spawn(move || {
                    let mut reader = BufReader::new(reader);
                    let mut line = String::new();
                    for _ in 0..expected {
                        line.clear();
                        reader.read_line(&mut line).unwrap();
                        assert_eq!(line, "ok\n");
                    }
                });
                let mut buffer = Vec::new();
                for group in chunk.chunks(100) {
                    buffer.clear();
                    for line in group {
                        buffer.extend_from_slice(line.as_bytes());
                        buffer.push(b'\n');
                    }
                    stream.write_all(&buffer).unwrap();
                }
                replies.join().unwrap();
            });
        }
    });
    started.elapsed()
}

/// (d): one emitter process per event at a steady 500/s (delivering to the
/// collector's socket); a reader polls the database every millisecond and
/// notes when each event's row appears.
fn latency(binary: &Path, emitter: &Path, dir: &Path) -> Option<(f64, f64, usize)> {
    if !emitter.exists() {
        return None;
    }
    let dir = dir.join("latency");
    let running = Running::start(binary, &dir, &[]);
    let count = 2500;
    let interval = Duration::from_micros(2000);
    let db = running.db.clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut seen: Vec<(usize, Instant)> = Vec::new();
            // The socket is bound before the database is migrated: wait
            // until the events table can be queried.
            let connection = loop {
                if let Ok(connection) = rusqlite::Connection::open_with_flags(
                    &db,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                ) {
                    if connection.prepare("SELECT seq FROM events LIMIT 0").is_ok() {
                        break connection;
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            let mut last = 0i64;
            let mut statement = connection
                .prepare("SELECT seq, tool_use_id FROM events WHERE seq > ?1")
                .unwrap();
            while !done.load(std::sync::atomic::Ordering::Relaxed) || seen.len() < count {
                let now = Instant::now();
                let rows: Vec<(i64, Option<String>)> = statement
                    .query_map([last], |row| Ok((row.get(0)?, row.get(1)?)))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                for (seq, tool_use_id) in rows {
                    last = last.max(seq);
                    if let Some(index) = tool_use_id
                        .and_then(|id| id.strip_prefix("lat_").and_then(|n| n.parse().ok()))
                    {
                        seen.push((index, now));
                    }
                }
                if done.load(std::sync::atomic::Ordering::Relaxed) && seen.len() >= count {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            seen
        })
    };
    let mut started = vec![Instant::now(); count];
    let mut children = Vec::new();
    let origin = Instant::now();
    for (index, start) in started.iter_mut().enumerate() {
        let due = origin + interval * index as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let payload = format!(
            r#"{{"session_id":"lat","cwd":"/p","hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{{"command":"{}"}},"tool_use_id":"lat_{index}"}}"#,
            "x".repeat(700)
        );
        *start = Instant::now();
        let mut child = Command::new(emitter)
            .env_clear()
            .env("HOME", &dir)
            .env("HOOKTRAIL_MODE", "local")
            .env("HOOKTRAIL_SOCKET", &running.socket)
            .env("HOOKTRAIL_SPOOL_DIR", dir.join("spool"))
            .env("HOOKTRAIL_STATE_DIR", dir.join("state"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(payload.as_bytes())
            .unwrap();
        children.push(child);
        children.retain_mut(|child| !matches!(child.try_wait(), Ok(Some(_))));
    }
    for mut child in children {
        let _ = child.wait();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = watcher.join().unwrap();
    let mut latencies: Vec<f64> = seen
        .iter()
        .map(|(index, at)| at.duration_since(started[*index]).as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let at = |quantile: f64| {
        latencies[((latencies.len() as f64 * quantile) as usize).min(latencies.len() - 1)]
    };
    Some((at(0.50), at(0.99), latencies.len()))
}

/// `--otlp-load`: (c) without and with 1,000 OTLP records/s, and the ratio.
fn otlp_load_report(binary: &Path, dir: &Path, lines: &[String], average: usize) {
    let (plain, _) = socket_ingest(binary, &dir.join("plain"), lines);
    let (loaded, records, seconds) =
        socket_ingest_under_otlp_load(binary, &dir.join("otlp"), lines);
    println!(
        "hooktrail collector benchmark, OTLP load ({} events, {average} bytes each on average, {} cores)",
        lines.len(),
        cores()
    );
    println!("(c) socket, {WRITERS} concurrent writers -> ok:            {plain:>9.0} events/s");
    println!(
        "(h) (c) with 1,000 OTLP records/s arriving:          {loaded:>9.0} events/s  ({:.2} of c; {records} records stored, {:.0}/s)",
        loaded / plain,
        records as f64 / seconds
    );
}

/// (h): (c) while a thread posts 10 OTLP/JSON log exports of 100 records a
/// second to the receiver; the ingest rate, the OTLP records stored and
/// over how many seconds the load ran.
fn socket_ingest_under_otlp_load(binary: &Path, dir: &Path, lines: &[String]) -> (f64, i64, f64) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let running = Running::start(binary, dir, &["--otlp", &address]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut sent = 0u64;
            let mut exports = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Each export on its own thread: an answer waits for the
                // writer's commit, and the load must not slow down with it.
                let body = otlp_export(sent);
                exports.push(std::thread::spawn(move || post_export(port, &body)));
                sent += 1;
                // Paced: export n goes out at n × 100 ms.
                let next = Duration::from_millis(100 * sent);
                if let Some(wait) = next.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            let elapsed = started.elapsed();
            for export in exports {
                assert_eq!(export.join().unwrap(), 200, "the OTLP export was refused");
            }
            elapsed
        })
    };
    // Let the load settle before timing.
    std::thread::sleep(Duration::from_secs(1));
    let elapsed = write_concurrently(&running, lines);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let load_seconds = load.join().unwrap().as_secs_f64();
    running.report_threads("(h) socket under OTLP load", elapsed);
    assert_eq!(running.count(), lines.len() as i64);
    let records = {
        let connection = rusqlite::Connection::open(&running.db).unwrap();
        connection
            .query_row("SELECT COUNT(*) FROM otel_events", [], |row| row.get(0))
            .unwrap()
    };
    (rate(lines.len(), elapsed), records, load_seconds)
}

/// One OTLP/JSON logs export of 100 records (half `api_request`, half
/// `tool_result`), unique by `export`.
fn otlp_export(export: u64) -> String {
    let records: Vec<serde_json::Value> = (0..100u64)
        .map(|index| {
            let sequence = export * 100 + index;
            let name = if index % 2 == 0 { "api_request" } else { "tool_result" };
            let text = |key: &str, value: String| {
                serde_json::json!({"key": key, "value": {"stringValue": value}})
            };
            serde_json::json!({
                "timeUnixNano": (1_764_000_000_000_000_000u64 + sequence * 1_000_000).to_string(),
                "body": {"stringValue": format!("claude_code.{name}")},
                "attributes": [
                    text("event.name", name.to_owned()),
                    text("session.id", format!("otel-bench-{}", export % 20)),
                    text("prompt.id", format!("prompt-{}", export % 50)),
                    text("request_id", format!("req_bench_{sequence:012}")),
                    text("tool_use_id", format!("toolu_bench_{sequence:012}")),
                    text("model", "claude-sonnet-4-5".to_owned()),
                    text("input_tokens", "2345".to_owned()),
                    text("output_tokens", "156".to_owned()),
                    text("duration_ms", "1234".to_owned()),
                    {"key": "cost_usd", "value": {"doubleValue": 0.0123}},
                    {"key": "event.sequence", "value": {"intValue": sequence.to_string()}},
                ]
            })
        })
        .collect();
    serde_json::json!({"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]}).to_string()
}

/// POSTs one export to `/v1/logs`; the status.
fn post_export(port: u16, body: &str) -> u16 {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST /v1/logs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}
