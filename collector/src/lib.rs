//! hooktrail's collector: stores every event in SQLite and serves the live UI.
//!
//! The map of this crate is ARCHITECTURE.md ("`collector/`"): every module
//! and folder in one line each (`cost` and `state`, the pure price table and
//! session states, at the bottom; `store`, `sources`, the `budgets`,
//! `approvals` and `alerts` threads, then `serve` and `import` above them),
//! the layers imports follow ("Layers", written there once), and "Entry
//! points": each thread, what it owns and what it may touch.
//!
//! `run` below starts and wires the long-lived threads, each by a struct
//! with named fields and `spawn(self)`, which returns the thread's handle;
//! the writer starts its checkpointer, and the HTTP thread its workers and
//! one thread per WebSocket client.
//!
//! **Invariant:** only the writer thread writes to SQLite, and a source
//! acknowledges an event (XACK, `ok`, spool file deletion) only after the
//! writer committed it.
//!
//! The public surface is the re-exports below, on purpose: what the binary,
//! the integration tests, the benchmarks and the fuzz targets use.

mod alerts;
mod approvals;
mod budgets;
mod cost;
mod defaults;
mod event;
mod hub;
mod import;
mod ingest;
mod log;
mod otlp;
mod query;
mod search;
mod serve;
mod service;
mod settings;
mod sources;
mod state;
mod stats;
mod store;
mod timeline;

// The public surface, on purpose: what the binary, the integration tests, the
// benchmarks (`collector/examples`) and the fuzz targets (`fuzz/`) use.
// Everything else is `pub(crate)`.
pub use crate::alerts::AlertSettings;
pub use crate::approvals::{Approvals, Role};
pub use crate::budgets::BudgetControl;
pub use crate::cost::PriceTable;
pub use crate::event::{CommittedEvent, Source};
pub use crate::hub::Hub;
pub use crate::import::{run as import_transcripts, ImportSummary};
pub use crate::otlp::{OtlpAuth, OtlpSettings};
pub use crate::query::{
    parse_events_query, parse_sessions_query, parse_socket_query, parse_stats_query, EventFilter,
};
pub use crate::search::searchable_text;
pub use crate::serve::auth::{codes_dir, create_code, rotate_token, CODE_LIFETIME};
pub use crate::serve::gate::{HttpContext, PageAuth};
pub use crate::serve::http::HttpServer;
pub use crate::settings::{parse as parse_settings, Invocation, Settings, TokenOrigin, Tuning};
pub use crate::sources::framing::{Frame, LineFramer};
pub use crate::sources::socket::SocketListener;
pub use crate::stats::{OtlpCounters, RedisLink, Stats};
pub use crate::store::open::open as open_database;
pub use crate::store::schema::{
    index_event_text, migrate as migrate_schema, rebuild_search_index, REBUILD_EVENT_COUNTS,
};

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::sources::redis::RedisSource;
use crate::sources::socket::{self, SocketSource};
use crate::sources::spool::SpoolSource;
use crate::store::retention::Retention;

/// The listeners of one collector, bound before [`run`] so that tests and
/// benchmarks can bind free ports and read their addresses first.
#[derive(Default)]
pub struct Bound {
    /// The Unix socket, unless disabled.
    pub socket: Option<SocketListener>,
    /// The HTTP server, unless disabled.
    pub http: Option<tiny_http::Server>,
    /// The OTLP receiver's listener, when `--otlp` (or `otlp.listen`) is on.
    pub otlp: Option<tiny_http::Server>,
}

/// Binds the socket and the HTTP address named in `settings`.
pub fn bind(settings: &Settings) -> Result<Bound, String> {
    let socket = match &settings.socket {
        Some(path) => Some(socket::bind(path)?),
        None => None,
    };
    let http = match settings.http {
        Some(address) => {
            let server = tiny_http::Server::http(address)
                .map_err(|error| format!("cannot serve HTTP on {address}: {error}"))?;
            // Now, before a client can connect: a connection accepted
            // before the HTTP thread sets it (the database opens in
            // between) kept Nagle, and each answer waited 40 ms.
            if let Some(bound) = server.server_addr().to_ip() {
                serve::fd::set_listener_nodelay(bound);
            }
            Some(server)
        }
        None => None,
    };
    let otlp = match &settings.otlp {
        Some(otlp) => Some(
            tiny_http::Server::http(otlp.listen)
                .map_err(|error| format!("cannot receive OTLP on {}: {error}", otlp.listen))?,
        ),
        None => None,
    };
    Ok(Bound { socket, http, otlp })
}

/// Runs the collector until `shutdown` is set, then stops intake, commits
/// and acknowledges what is queued, and returns. `Err` means it could not
/// start (the database cannot be opened, say).
pub fn run(settings: Settings, bound: Bound, shutdown: Arc<AtomicBool>) -> Result<(), String> {
    run_with_stats(settings, bound, shutdown, Arc::new(Stats::default()))
}

/// [`run`] with counters the caller keeps (tests and benchmarks read them).
///
/// The steps, in order: open the database, start the backfill and the
/// writer, the notifiers, then the sources (after the approval key and the
/// budgets exist, so the first hook can be answered), the away mirror and
/// the HTTP server; wait for shutdown; join in the order that drains the
/// queue ([`Running::join`]).
pub fn run_with_stats(
    settings: Settings,
    bound: Bound,
    shutdown: Arc<AtomicBool>,
    stats: Arc<Stats>,
) -> Result<(), String> {
    stats
        .started_ms
        .store(hooktrail_shared::time::now_millis(), Ordering::Relaxed);
    let connection = open_store(&settings)?;
    let hub = hub::Hub::new();
    let mut running = Running::default();
    // The live feed carries rows other processes commit too (an import):
    // the backfill reads them for the hub (serve/backfill.rs).
    if bound.http.is_some() {
        let backfill = serve::backfill::Backfill {
            database: settings.database.clone(),
            wake: hub.attach_backfill(store::read::max_seq(&connection).unwrap_or(0)),
            hub: hub.clone(),
            shutdown: shutdown.clone(),
        };
        running.helpers.push(backfill.spawn()?);
    }
    let (queue, writer) = start_writer(&settings, connection, &stats, &hub, &shutdown)?;
    running.writer = Some(writer);
    // Delivers what the writer raised; it never holds up the writer.
    if let Some(alerts) = &settings.alerts {
        let notifier = alerts::notifier::Notifier {
            database: settings.database.clone(),
            settings: alerts.clone(),
            shutdown: shutdown.clone(),
        };
        running.notifiers = notifier.spawn()?;
    }
    // Before any source accepts: the key exists once a hook can be answered.
    let decisions = Arc::new(socket::DecisionMailbox::default());
    let approvals = approvals::Approvals::start(&settings, decisions.clone())?;
    let (budget_verdicts, budget_answerer, budget_thread) = start_budgets(&settings, &shutdown)?;
    running.helpers.extend(budget_thread);
    let redactor = hooktrail_shared::redact::Redactor::new(settings.redaction.clone());
    // So an operator can compare it with `hooktrail-emit check`'s: events
    // from emitters with another one are redacted here again.
    log::info(&format!(
        "redaction: privacy {}, fingerprint {}",
        settings.redaction.privacy.as_str(),
        redactor.fingerprint().as_str()
    ));
    let wiring = SourceWiring {
        queue,
        stats: stats.clone(),
        shutdown: shutdown.clone(),
        redactor: Arc::new(redactor),
        decisions,
        budgets: budget_answerer,
    };
    running.sources = start_sources(&settings, bound.socket, bound.otlp, wiring)?;
    if let Some(approvals) = &approvals {
        running.helpers.push(approvals::mirror_away(
            approvals.clone(),
            settings.database.clone(),
            shutdown.clone(),
        )?);
    }
    if let Some(server) = bound.http {
        let context = HttpContext {
            database: settings.database.clone(),
            stats: stats.clone(),
            hub: hub.clone(),
            token: settings.token.clone(),
            quiet_after: settings.quiet_after,
            waiting_quiet_after: settings.waiting_quiet_after,
            page: page_auth(&settings),
            budgets: budget_verdicts,
            approvals,
        };
        running.http = Some(start_http(&settings, server, context, &shutdown)?);
    }
    log::info(&format!(
        "storing events in {} (spool {})",
        settings.database.display(),
        settings.spool_dir.display()
    ));
    service::notify_ready();
    service::wait_for_shutdown(&shutdown, &stats);
    log::info("stopping: no new events; committing and acknowledging what is queued");
    service::notify_stopping();
    running.join();
    log::info("stopped");
    Ok(())
}

/// The threads [`run_with_stats`] started, by the order they stop in.
#[derive(Default)]
struct Running {
    /// One per source: they stop intake first and drop their queue handles.
    sources: Vec<std::thread::JoinHandle<()>>,
    /// The writer: it stops once every source has dropped its queue handle
    /// and the queue is empty.
    writer: Option<std::thread::JoinHandle<()>>,
    /// One per alert destination.
    notifiers: Vec<std::thread::JoinHandle<()>>,
    /// The HTTP server.
    http: Option<std::thread::JoinHandle<()>>,
    /// The backfill, budget and away-mirror threads.
    helpers: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Joins every thread: the sources before the writer, so what they
    /// queued is committed and acknowledged before the writer stops.
    fn join(self) {
        let threads = self
            .sources
            .into_iter()
            .chain(self.writer)
            .chain(self.notifiers)
            .chain(self.http)
            .chain(self.helpers);
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// Opens the database read-write and, with alerts configured, gives the
/// writer's connection their rules.
fn open_store(settings: &Settings) -> Result<rusqlite::Connection, String> {
    let connection = store::open::open(&settings.database)?;
    if let Some(rules) = writer_rules(settings) {
        store::outbox::install(&connection, &rules)
            .map_err(|error| format!("cannot set up alerts: {error}"))?;
    }
    Ok(connection)
}

/// Starts the writer thread on `connection`; returns the queue the
/// sources send to, and the thread.
fn start_writer(
    settings: &Settings,
    connection: rusqlite::Connection,
    stats: &Arc<Stats>,
    hub: &Arc<Hub>,
    shutdown: &Arc<AtomicBool>,
) -> Result<(ingest::WriterQueue, std::thread::JoinHandle<()>), String> {
    let (sender, receiver) = crossbeam_channel::bounded(settings.tuning.queue_capacity.max(1));
    let queue = ingest::WriterQueue {
        sender,
        bytes: ingest::ByteBudget::new(ingest::MAX_QUEUED_BYTES),
        stats: stats.clone(),
    };
    let writer = store::writer::Writer {
        connection,
        queue: receiver,
        stats: stats.clone(),
        hub: hub.clone(),
        max_batch: settings.tuning.max_batch,
        retention: match settings.retention {
            Some(age) => Retention::DeleteOlderThan(age),
            None => Retention::KeepAll,
        },
        shutdown: shutdown.clone(),
        drain_deadline: settings.tuning.drain_deadline,
        prices: settings.prices.clone(),
    };
    Ok((queue, writer.spawn()?))
}

/// What every source thread is built from, beside its own settings.
struct SourceWiring {
    /// The writer's queue; dropped once every source has its clone, so
    /// the writer stops when the sources do.
    queue: ingest::WriterQueue,
    /// Counters.
    stats: Arc<Stats>,
    /// Stops intake.
    shutdown: Arc<AtomicBool>,
    /// This collector's redaction rules (never a process-wide one: two
    /// collectors in one process, as in the tests, each keep their own).
    redactor: Arc<hooktrail_shared::redact::Redactor>,
    /// Remote decisions for hooks waiting on the socket.
    decisions: Arc<socket::DecisionMailbox>,
    /// Signs budget refusals into the socket's `ok`.
    budgets: Option<Arc<budgets::Answerer>>,
}

/// Starts the socket (when bound), the spool drainer, the Redis reader
/// (when configured) and the OTLP receiver (when bound); returns their
/// threads.
fn start_sources(
    settings: &Settings,
    socket: Option<SocketListener>,
    otlp: Option<tiny_http::Server>,
    wiring: SourceWiring,
) -> Result<Vec<std::thread::JoinHandle<()>>, String> {
    let mut sources = start_otlp(settings, otlp, &wiring)?;
    if let Some(listener) = socket {
        log::info(&format!("listening on {}", listener.path().display()));
        let source = SocketSource {
            listener,
            queue: wiring.queue.clone(),
            stats: wiring.stats.clone(),
            tuning: settings.tuning.clone(),
            shutdown: wiring.shutdown.clone(),
            decisions: wiring.decisions.clone(),
            budgets: wiring.budgets.clone(),
            redactor: wiring.redactor.clone(),
        };
        sources.push(source.spawn()?);
    }
    let spool = SpoolSource {
        dir: settings.spool_dir.clone(),
        queue: wiring.queue.clone(),
        stats: wiring.stats.clone(),
        interval: settings.tuning.spool_interval,
        shutdown: wiring.shutdown.clone(),
        drain_deadline: settings.tuning.drain_deadline,
        redactor: wiring.redactor.clone(),
    };
    sources.push(spool.spawn()?);
    if let Some(redis) = &settings.redis {
        let source = RedisSource {
            config: redis.clone(),
            group: settings.group.clone(),
            consumer: settings.consumer.clone(),
            queue: wiring.queue.clone(),
            stats: wiring.stats.clone(),
            tuning: settings.tuning.clone(),
            shutdown: wiring.shutdown.clone(),
            spool_dir: settings.spool_dir.clone(),
            redactor: wiring.redactor.clone(),
        };
        sources.push(source.spawn()?);
    } else {
        wiring.stats.set_redis_link(RedisLink::Disabled);
    }
    // The writer stops once every source has dropped its queue handle:
    // `wiring.queue` goes here.
    Ok(sources)
}

/// Starts the HTTP server thread, with the warning that actions are
/// refused off loopback without TLS.
fn start_http(
    settings: &Settings,
    server: tiny_http::Server,
    context: HttpContext,
    shutdown: &Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, String> {
    log::info(&format!(
        "serving the UI on http://{}",
        server.server_addr()
    ));
    if !settings.actions_allowed() {
        log::warn(
            "HTTP is served off loopback without TLS: the page shows events but refuses approvals and budget overrides; reach a loopback collector through an SSH tunnel or a TLS reverse proxy to act (README, \"Remote access\")",
        );
    }
    HttpServer {
        server,
        context,
        shutdown: shutdown.clone(),
    }
    .spawn()
}

/// Starts the OTLP receiver's threads when `--otlp` is on (issue 22): a
/// source like the others, feeding the writer's queue.
fn start_otlp(
    settings: &Settings,
    server: Option<tiny_http::Server>,
    wiring: &SourceWiring,
) -> Result<Vec<std::thread::JoinHandle<()>>, String> {
    let (Some(server), Some(otlp)) = (server, &settings.otlp) else {
        return Ok(Vec::new());
    };
    log::info(&format!(
        "receiving OpenTelemetry (OTLP/HTTP) on http://{}",
        server.server_addr()
    ));
    otlp::receiver::Receiver {
        server,
        auth: otlp.auth.clone(),
        queue: wiring.queue.clone(),
        shutdown: wiring.shutdown.clone(),
        counters: wiring.stats.otlp.clone(),
        redactor: wiring.redactor.clone(),
    }
    .spawn()
}

/// What [`start_budgets`] starts: the verdicts (for the HTTP side), the
/// socket's signer, and the thread.
type BudgetParts = (
    Option<Arc<budgets::BudgetControl>>,
    Option<Arc<budgets::Answerer>>,
    Option<std::thread::JoinHandle<()>>,
);

/// The alert rules as the writer and the budget thread raise them, when
/// alerts are configured.
fn writer_rules(settings: &Settings) -> Option<store::outbox::WriterRules> {
    settings
        .alerts
        .as_ref()
        .map(|alerts| store::outbox::WriterRules {
            rules: alerts.rules.clone(),
            public_url: alerts.public_url.clone(),
            quiet_after_ms: settings.quiet_after.as_millis() as i64,
        })
}

/// Starts the budget thread when budgets are configured, with the shared
/// key (created at the first start, as for approvals) that signs the
/// verdicts hooks act on.
fn start_budgets(settings: &Settings, shutdown: &Arc<AtomicBool>) -> Result<BudgetParts, String> {
    if settings.budgets.is_empty() {
        return Ok((None, None, None));
    }
    let key_file = &settings.approvals.key_file;
    let (key, created) = hooktrail_shared::signed::Key::load_or_create(key_file)
        .map_err(|error| format!("budgets: {error}"))?;
    if created {
        log::info(&format!(
            "budgets: created the shared key {} (copy it, 0600, to other machines whose hooks should enforce budgets)",
            key_file.display()
        ));
    }
    let verdicts = Arc::new(budgets::Verdicts::default());
    let thread = budgets::BudgetThread {
        database: settings.database.clone(),
        budgets: settings.budgets.clone(),
        verdicts: verdicts.clone(),
        shutdown: shutdown.clone(),
        mirror: settings.redis.clone().map(|config| (config, key.clone())),
        alerts: writer_rules(settings),
    }
    .spawn()?;
    log::info(&format!(
        "budgets: {} configured",
        settings.budgets.list.len()
    ));
    let answerer = Arc::new(budgets::Answerer {
        verdicts: verdicts.clone(),
        key,
    });
    let control = Arc::new(budgets::BudgetControl {
        verdicts,
        budgets: settings.budgets.clone(),
        grants: std::sync::Mutex::new(store::spend::GrantStore::open(&settings.database)?),
    });
    Ok((Some(control), Some(answerer), Some(thread)))
}

/// `import [DIR]`: imports the transcripts, prints the summary line on
/// stdout; returns the exit code.
fn run_import(settings: &Settings, dir: &std::path::Path) -> i32 {
    let machine = settings.consumer.clone();
    let show_progress = import::progress_wanted();
    // The config's `privacy` and `redact`, as for every event received: a
    // person who chose `metadata` must not find their old prompts stored
    // in full because they came through the import.
    let redactor = hooktrail_shared::redact::Redactor::new(settings.redaction.clone());
    match import::run(
        dir,
        &settings.database,
        settings.prices.clone(),
        &machine,
        show_progress,
        &redactor,
    ) {
        Ok(summary) => {
            let _ = writeln!(std::io::stdout(), "{}", summary.line());
            if std::env::var_os("HOOKTRAIL_IMPORT_PHASES").is_some() {
                let _ = writeln!(std::io::stdout(), "{}", summary.phases_line());
            }
            0
        }
        Err(message) => {
            log::error(&format!("import: {message}"));
            1
        }
    }
}

/// How the page signs in: codes beside the token file, which is followed
/// through rotations when the token came from it.
fn page_auth(settings: &Settings) -> serve::gate::PageAuth {
    let has_token = settings.token_origin != settings::TokenOrigin::Off;
    serve::gate::PageAuth {
        token_file: settings
            .token_file
            .clone()
            .filter(|_| settings.token_origin == settings::TokenOrigin::File),
        codes_dir: settings
            .token_file
            .as_deref()
            .filter(|_| has_token)
            .map(serve::auth::codes_dir),
        page_token_lifetime: settings.page_token_lifetime,
    }
}

/// The page's address with a fresh one-time code in the fragment (which
/// browsers never send): the page trades the code for a page token once,
/// so the link in the browser's history is dead after that, or after five
/// minutes. What `hooktrail-collector url` prints, and what the collector
/// prints at start on loopback.
fn page_link(settings: &Settings, address: std::net::SocketAddr) -> Result<String, String> {
    let fragment = match (&settings.token, page_auth(settings).codes_dir) {
        (Some(_), Some(dir)) => format!("#code={}", serve::auth::create_code(&dir)?),
        _ => String::new(),
    };
    Ok(format!("http://{address}/{fragment}"))
}

/// `hooktrail-collector url`: prints [`page_link`] on stdout.
fn print_page_url(settings: &Settings) -> i32 {
    let Some(address) = settings.http else {
        log::error("HTTP is off (--http off): there is no page");
        return 1;
    };
    match page_link(settings, address) {
        Ok(link) => {
            let _ = writeln!(std::io::stdout(), "{link}");
            0
        }
        Err(message) => {
            log::error(&message);
            1
        }
    }
}

/// First contact, as Jupyter does it: on loopback the collector prints the
/// page's link once it is listening, on stderr (the journal under systemd,
/// which only this user and the administrators read), so the person who
/// started it can click it. The link holds a one-time code, never the token.
/// Off loopback a token must be given, and no link goes to logs that may be
/// shipped elsewhere.
fn announce_page(bound: &Bound, settings: &Settings) {
    let address = bound
        .http
        .as_ref()
        .and_then(|server| server.server_addr().to_ip());
    if let Some(address) = address.filter(|address| address.ip().is_loopback()) {
        match page_link(settings, address) {
            Ok(link) => log::info(&format!(
                "open the page: {link} (`hooktrail-collector url` prints a new link)"
            )),
            Err(message) => log::warn(&format!("cannot make the page's link: {message}")),
        }
    }
}

/// `hooktrail-collector token rotate`: a new generated token.
fn run_token_rotate(settings: &Settings) -> i32 {
    let path = match (settings.token_origin, &settings.token_file) {
        (settings::TokenOrigin::File, Some(path)) => path,
        (settings::TokenOrigin::Given, _) => {
            log::error("the token comes from --token or $HOOKTRAIL_TOKEN: change it there and restart the collector");
            return 1;
        }
        _ => {
            log::error("there is no token to rotate (--no-token)");
            return 1;
        }
    };
    match serve::auth::rotate_token(path) {
        Ok(()) => {
            log::info(&format!(
                "a new token is in {}; a running collector uses it within a second; open pages need a new link: hooktrail-collector url",
                path.display()
            ));
            0
        }
        Err(message) => {
            log::error(&message);
            1
        }
    }
}

/// `hooktrail-collector away on|off [--machine NAME]`: records the away
/// switch in the database; a running collector mirrors it to the hooks
/// within a second. Returns the exit code.
fn run_away(args: &mut Vec<String>) -> Option<i32> {
    if args.first().map(String::as_str) != Some("away") {
        return None;
    }
    args.remove(0);
    let on = match args.first().map(String::as_str) {
        Some("on") => true,
        Some("off") => false,
        _ => {
            log::error("away: say on or off (hooktrail-collector away on|off [--machine NAME])");
            return Some(2);
        }
    };
    args.remove(0);
    let mut machine = "*".to_owned();
    if let Some(at) = args.iter().position(|arg| arg == "--machine") {
        let Some(name) = args.get(at + 1).filter(|name| !name.is_empty()).cloned() else {
            log::error("away: --machine needs a machine name");
            return Some(2);
        };
        machine = name;
        args.drain(at..=at + 1);
    }
    let settings = match settings::parse(args, &hooktrail_shared::paths::process_env) {
        Ok(Invocation::Run { settings, .. }) => settings,
        Ok(_) => return Some(2),
        Err(message) => {
            log::error(&message);
            return Some(2);
        }
    };
    let recorded = store::decisions::DecisionStore::open(&settings.database).and_then(|store| {
        store
            .set_away(&machine, on, hooktrail_shared::time::now_millis())
            .map_err(|error| error.to_string())
    });
    match recorded {
        Ok(()) => {
            let whom = if machine == "*" {
                "every machine".to_owned()
            } else {
                machine
            };
            let _ = writeln!(
                std::io::stdout(),
                "away {} for {whom}",
                if on { "on" } else { "off" }
            );
            Some(0)
        }
        Err(message) => {
            log::error(&format!("away: {message}"));
            Some(1)
        }
    }
}

/// Runs the collector from the process arguments; returns the exit code.
pub fn run_from_args() -> i32 {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(code) = run_away(&mut args) {
        return code;
    }
    let print_url = args.first().is_some_and(|first| first == "url");
    if print_url {
        args.remove(0);
    }
    let mut alert_test = None;
    if args.first().is_some_and(|first| first == "alert") {
        if args.len() < 3 || args[1] != "test" || args[2].starts_with('-') {
            log::error("usage: hooktrail-collector alert test NAME [--config FILE]");
            return 2;
        }
        alert_test = Some(args[2].clone());
        args.drain(..3);
    }
    let rotate = args.len() >= 2 && args[0] == "token" && args[1] == "rotate";
    if rotate {
        args.drain(..2);
    }
    let (mut settings, warnings) =
        match settings::parse(&args, &hooktrail_shared::paths::process_env) {
            Ok(Invocation::Print(text)) => {
                let _ = std::io::stdout().write_all(text.as_bytes());
                return 0;
            }
            Ok(Invocation::Run { settings, warnings }) => (*settings, warnings),
            Ok(Invocation::Import {
                settings,
                dir,
                warnings,
            }) => {
                for warning in warnings {
                    log::warn(&warning);
                }
                return run_import(&settings, &dir);
            }
            Err(message) => {
                log::error(&message);
                let _ = std::io::stderr().write_all(settings::USAGE.as_bytes());
                return 2;
            }
        };
    for warning in warnings {
        log::warn(&warning);
    }
    if let Some(name) = alert_test {
        return alerts::send_test(settings.alerts.as_deref(), &name);
    }
    if rotate {
        return run_token_rotate(&settings);
    }
    if settings.token.is_none() && settings.http.is_some() {
        if let Some(path) = &settings.token_file {
            match settings::load_or_create_token(path) {
                Ok(token) => settings.token = Some(token),
                Err(message) => {
                    log::error(&message);
                    return 1;
                }
            }
        }
    }
    if print_url {
        return print_page_url(&settings);
    }
    service::raise_open_files_limit();
    let shutdown = Arc::new(AtomicBool::new(false));
    if let Err(error) = service::install_signal_handlers(&shutdown) {
        log::error(&format!("cannot install signal handlers: {error}"));
        return 1;
    }
    let bound = match bind(&settings) {
        Ok(bound) => bound,
        Err(message) => {
            log::error(&message);
            return 1;
        }
    };
    announce_page(&bound, &settings);
    match run(settings, bound, shutdown) {
        Ok(()) => 0,
        Err(message) => {
            log::error(&message);
            1
        }
    }
}
