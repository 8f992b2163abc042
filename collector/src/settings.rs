//! The collector's effective settings: the shared configuration (file and
//! environment, DESIGN §4) with the command-line flags of DESIGN §5 on top.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hooktrail_shared::config::{self, RedisConfig, Transport};
use hooktrail_shared::paths;

use crate::cost::PriceTable;
use crate::defaults::DEFAULT_HTTP;

/// The usage text printed by `--help` and after a flag error.
pub(crate) const USAGE: &str = "\
usage: hooktrail-collector [--config FILE] [--db FILE] [--socket PATH] [--http ADDR]
                           [--redis-url URL] [--transport stream|pubsub] [--key NAME]
                           [--group NAME] [--spool-dir DIR] [--retention-days N]
                           [--token TOKEN] [--token-file FILE] [--no-token]
                           [--prices FILE] [--quiet-after SECONDS]
                           [--waiting-quiet-after SECONDS] [--page-token-lifetime SECONDS]
                           [--otlp ADDR|on|off]
       hooktrail-collector url [the same flags]
       hooktrail-collector alert test NAME [the same flags]
       hooktrail-collector token rotate [the same flags]
       hooktrail-collector away on|off [--machine NAME] [--db FILE] [--config FILE]

Stores every hooktrail event from Redis, the local socket and the spool in
SQLite, and serves the live UI.

  --config FILE        config file (default $XDG_CONFIG_HOME/hooktrail/config.json)
  --db FILE            database (default $XDG_DATA_HOME/hooktrail/events.db)
  --socket PATH        Unix socket emitters deliver to (\"off\" disables it)
  --http ADDR          UI and API address (default 127.0.0.1:7717; \"off\" disables it)
  --redis-url URL      redis://[user:password@]host[:port][/db] or rediss:// (TLS);
                       also $HOOKTRAIL_REDIS_URL, which keeps the password off the command line
  --transport T        stream (durable, default) or pubsub (at most once)
  --key NAME           stream key or channel (default hooktrail:events)
  --group NAME         stream consumer group (default: this host's name)
  --spool-dir DIR      spool directory to drain
  --retention-days N   delete events older than N days (default: keep everything)
  --token TOKEN        bearer token for the HTTP API; prefer $HOOKTRAIL_TOKEN
  --token-file FILE    without a token, the one generated at first start is kept here
                       (0600; default $XDG_STATE_HOME/hooktrail/http-token)
  --no-token           serve the loopback API without a token: every local user can read it
  alert test NAME      send a sample alert to the destination NAME (config \"alerts\"),
                       print its answer, and exit (1 when it was not delivered)
  url                  print the page's address with a one-time code (valid 5 minutes,
                       once) in the fragment, and exit; the page trades it for a page token
  token rotate         replace the generated token (the running collector follows within
                       a second); every page token and unused code stops working
  --page-token-lifetime S  a page token the page stops renewing (its tab closed or
                       asleep) works this long (default 900)
  away on|off          the away switch of remote approval (approvals.wait = \"away\"):
                       for every machine, or one with --machine NAME
  --prices FILE        a price table whose models replace or add to the built-in one
                       (same format as collector/prices.json; also $HOOKTRAIL_PRICES)
  --quiet-after S      a working session with no event for S seconds shows as
                       gone quiet (default 600; also $HOOKTRAIL_QUIET_AFTER)
  --waiting-quiet-after S
                       a session waiting for you (a permission or idle prompt) with no
                       event for S seconds shows as gone quiet (default 3600; also
                       $HOOKTRAIL_WAITING_QUIET_AFTER)
  --otlp ADDR           receive Claude Code's OpenTelemetry (OTLP/HTTP, /v1/logs and
                       /v1/metrics) on ADDR; \"on\" is 127.0.0.1:4318 (default off; also
                       $HOOKTRAIL_OTLP and the config's otlp.listen). Off loopback it
                       needs --token, sent as Authorization: Bearer
  --help, --version

usage: hooktrail-collector import [DIR] [--db FILE] [--config FILE] [--prices FILE]

Stores the sessions, agents, prompts, tool calls and usage of the Claude Code
transcripts under DIR (default $CLAUDE_CONFIG_DIR/projects, else
~/.claude/projects) in the same database, marked as imported. Importing again
adds nothing; sessions the hooks already recorded keep their live events. It
can run while the collector runs.
";

/// Everything the collector needs to run, resolved from defaults, the config
/// file, the environment and the flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The SQLite database file.
    pub database: PathBuf,
    /// The Unix socket to listen on; `None` when disabled with `--socket off`.
    pub socket: Option<PathBuf>,
    /// The HTTP address; `None` when disabled with `--http off`.
    pub http: Option<SocketAddr>,
    /// Redis to read from; `None` in local mode.
    pub redis: Option<RedisConfig>,
    /// Consumer group name for the stream transport.
    pub group: String,
    /// Consumer name inside the group. Stable across restarts of this
    /// collector so that it reads back its own pending entries.
    pub consumer: String,
    /// The spool directory that is drained at start and periodically.
    pub spool_dir: PathBuf,
    /// Events older than this are deleted; `None` keeps everything.
    pub retention: Option<Duration>,
    /// The bearer token of the HTTP API.
    pub token: Option<String>,
    /// Where the token generated when none is given is kept (0600 in a
    /// 0700 directory), so the page and `hooktrail-collector url` can read
    /// it; `None` with `--no-token`, which leaves a loopback API open to
    /// every local user.
    pub token_file: Option<PathBuf>,
    /// Where the token comes from, which says whether `token rotate` can
    /// replace it and the collector should follow its file.
    pub token_origin: TokenOrigin,
    /// How long a page token works unless the page renews it (it also
    /// needs its binder cookie, so none left on disk works: DESIGN §7).
    pub page_token_lifetime: Duration,
    /// The prices costs are computed with: the built-in table, with the
    /// models of `--prices` replacing or adding to it.
    pub prices: Arc<PriceTable>,
    /// A working session without an event for this long is shown as gone
    /// quiet: its process most likely died.
    pub quiet_after: Duration,
    /// The same for a session waiting for its user (a permission request,
    /// an idle prompt): longer, since people take their time to answer.
    pub waiting_quiet_after: Duration,
    /// The redaction rules applied to every event received (the config
    /// file's `privacy` and `redact`, as the emitters use them).
    pub redaction: hooktrail_shared::redact::Settings,
    /// Alert destinations and rules (the config's `alerts` and
    /// `public_url`, DESIGN §4); `None` when no alerts are configured.
    pub alerts: Option<Arc<crate::alerts::AlertSettings>>,
    /// Spending limits from the config (`budgets`): a budget thread keeps
    /// their verdicts when any is set.
    pub budgets: Arc<hooktrail_shared::budget::Budgets>,
    /// The config file's `approvals` (issue 18): whether remote approval is
    /// on (and so the key is created at start) and where the key is.
    pub approvals: hooktrail_shared::approvals::ApprovalsConfig,
    /// The OTLP receiver (issue 22): `None` (the default) when off.
    pub otlp: Option<crate::otlp::OtlpSettings>,
    /// Tuning knobs that tests and benchmarks change.
    pub tuning: Tuning,
}

/// Where the HTTP API's token comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOrigin {
    /// `--token` or `$HOOKTRAIL_TOKEN`: fixed until a restart.
    Given,
    /// The generated token in `token_file`: `token rotate` replaces it.
    File,
    /// `--no-token`: none.
    Off,
}

/// Whether a page served at `http` may take actions (approvals, budget
/// overrides): only on a loopback listener. Off loopback the token and
/// every action would cross the network in clear (this collector serves
/// no TLS); reach it through an SSH tunnel or a TLS reverse proxy to a
/// loopback listener instead (README, "Remote access").
pub fn actions_allowed_on(http: Option<SocketAddr>) -> bool {
    http.is_some_and(|address| address.ip().is_loopback())
}

impl Settings {
    /// Whether the page may take actions: see [`actions_allowed_on`].
    pub fn actions_allowed(&self) -> bool {
        actions_allowed_on(self.http)
    }
}

/// The longest retention accepted: longer is a typo, and its arithmetic
/// would overflow.
const MAX_RETENTION_DAYS: f64 = 100.0 * 365.0;

/// The default of `--quiet-after`.
pub(crate) const DEFAULT_QUIET_AFTER: Duration = Duration::from_secs(600);

/// The default of `--waiting-quiet-after`: an hour.
pub(crate) const DEFAULT_WAITING_QUIET_AFTER: Duration = Duration::from_secs(3600);

/// Limits and intervals with sensible defaults, separated so that tests can
/// shorten them without new flags.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Most events committed in one transaction.
    pub max_batch: usize,
    /// Capacity, in submissions, of the channel feeding the writer.
    pub queue_capacity: usize,
    /// Most socket connections open at once.
    pub max_connections: usize,
    /// A socket connection with nothing in flight is closed after this long.
    pub idle_timeout: Duration,
    /// How often the spool directory is checked.
    pub spool_interval: Duration,
    /// Entries pending this long with another consumer are claimed back.
    pub claim_idle: Duration,
    /// How long shutdown waits for queued events to be committed and acked.
    pub drain_deadline: Duration,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            max_batch: 2000,
            queue_capacity: 16,
            max_connections: 1024,
            idle_timeout: Duration::from_secs(60),
            spool_interval: Duration::from_secs(1),
            claim_idle: Duration::from_secs(30),
            drain_deadline: Duration::from_secs(20),
        }
    }
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Invocation {
    /// Run with these settings; `warnings` are config problems to log.
    Run {
        settings: Box<Settings>,
        warnings: Vec<String>,
    },
    /// Print this text to stdout and exit 0 (`--help`, `--version`).
    Print(String),
    /// `import [DIR]`: import the transcripts under `dir` with these
    /// settings (only the database and prices matter).
    Import {
        settings: Box<Settings>,
        dir: PathBuf,
        warnings: Vec<String>,
    },
}

fn host_name() -> String {
    hostname::get()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "hooktrail".to_owned())
}

/// Where Claude Code keeps its transcripts: `$CLAUDE_CONFIG_DIR/projects`,
/// else `~/.claude/projects`.
fn default_projects_dir(env: paths::EnvLookup) -> PathBuf {
    match env("CLAUDE_CONFIG_DIR").filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("projects"),
        None => PathBuf::from(env("HOME").unwrap_or_default())
            .join(".claude")
            .join("projects"),
    }
}

/// Parses the arguments (without the program name) on top of the shared
/// configuration. `env` is the environment lookup, so tests can supply one.
///
/// Each setting comes from its flag, else its environment variable, else
/// the config file, else its default ([`Given::flag_or_env`]); the steps
/// below resolve one group of settings each.
pub fn parse(args: &[String], env: paths::EnvLookup) -> Result<Invocation, String> {
    if args.first().map(String::as_str) == Some("import") {
        return parse_import(&args[1..], env);
    }
    let flags = match read_flags(args)? {
        Ok(flags) => flags,
        Err(print) => return Ok(print),
    };
    // `--config` acts exactly like $HOOKTRAIL_CONFIG.
    let config_flag = flags.get("--config");
    let lookup = |name: &str| -> Option<String> {
        if name == "HOOKTRAIL_CONFIG" {
            if let Some(path) = &config_flag {
                return Some(path.clone());
            }
        }
        env(name)
    };
    let given = Given {
        flags: &flags,
        env: &lookup,
    };
    let loaded = config::load_with(&lookup);
    let warnings = loaded.problems.clone();
    let shared = loaded.config;
    let redis = resolve_redis(shared.redis.clone(), &flags)?;
    let (token, token_file) = resolve_token(&given);
    let http = resolve_http(&given, token.is_some())?;
    // In this order, so that of two mistakes the same one is reported.
    let retention = parse_retention(flags.get("--retention-days"))?;
    let prices = load_prices(&given)?;
    let quiet_after = quiet_limit(
        "--quiet-after",
        given.flag_or_env("--quiet-after", "HOOKTRAIL_QUIET_AFTER"),
        DEFAULT_QUIET_AFTER,
        MAX_QUIET_AFTER_SECONDS,
    )?;
    let waiting_quiet_after = quiet_limit(
        "--waiting-quiet-after",
        given.flag_or_env("--waiting-quiet-after", "HOOKTRAIL_WAITING_QUIET_AFTER"),
        DEFAULT_WAITING_QUIET_AFTER,
        MAX_WAITING_QUIET_AFTER_SECONDS,
    )?;
    let alerts = crate::alerts::config::load(
        shared.file.as_deref(),
        &lookup,
        http.map(|address| format!("http://{address}")),
    )?
    .map(Arc::new);
    let page_token_lifetime = parse_page_token_lifetime(flags.get("--page-token-lifetime"))?;
    let otlp = crate::otlp::settings(
        shared.file.as_deref(),
        given.flag_or_env("--otlp", "HOOKTRAIL_OTLP"),
        token.as_deref(),
    )?;
    let host = host_name();
    Ok(Invocation::Run {
        settings: Box::new(Settings {
            database: given
                .flag_or_env("--db", "HOOKTRAIL_DB")
                .map(|path| paths::expand(&path, &lookup))
                .unwrap_or_else(|| paths::default_database_file(&lookup)),
            socket: match flags.get("--socket") {
                Some(text) if text == "off" => None,
                Some(text) => Some(paths::expand(&text, &lookup)),
                None => Some(shared.socket.clone()),
            },
            http,
            redis,
            group: flags.get("--group").unwrap_or_else(|| host.clone()),
            consumer: host,
            spool_dir: flags
                .get("--spool-dir")
                .map(|path| paths::expand(&path, &lookup))
                .unwrap_or(shared.spool_dir),
            retention,
            token_origin: token_origin(&token, &token_file),
            token,
            token_file,
            page_token_lifetime,
            prices: Arc::new(prices),
            redaction: shared.redaction.clone(),
            budgets: Arc::new(shared.budgets.clone()),
            approvals: shared.approvals.clone(),
            quiet_after,
            waiting_quiet_after,
            alerts,
            otlp,
            tuning: Tuning::default(),
        }),
        warnings,
    })
}

/// `import [DIR] [flags]`: the flags as for a run, and the directory.
fn parse_import(args: &[String], env: paths::EnvLookup) -> Result<Invocation, String> {
    let mut rest: Vec<String> = Vec::new();
    let mut dir: Option<String> = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg.starts_with('-') {
            rest.push(arg.clone());
            if !arg.contains('=') && !matches!(arg.as_str(), "--help" | "-h" | "--version" | "-V") {
                if let Some(value) = iter.next() {
                    rest.push(value.clone());
                }
            }
        } else if dir.is_none() {
            dir = Some(arg.clone());
        } else {
            return Err(format!("import takes one directory, not also {arg:?}"));
        }
    }
    match parse(&rest, env)? {
        Invocation::Run { settings, warnings } => {
            let dir = match dir {
                Some(dir) => paths::expand(&dir, env),
                None => default_projects_dir(env),
            };
            Ok(Invocation::Import {
                settings,
                dir,
                warnings,
            })
        }
        other => Ok(other),
    }
}

/// The flags that take a value.
const VALUE_FLAGS: [&str; 17] = [
    "--config",
    "--db",
    "--socket",
    "--http",
    "--redis-url",
    "--transport",
    "--key",
    "--group",
    "--spool-dir",
    "--retention-days",
    "--token",
    "--prices",
    "--quiet-after",
    "--waiting-quiet-after",
    "--token-file",
    "--page-token-lifetime",
    "--otlp",
];

/// The flags given, by name; the last of a repeated flag wins.
struct Flags(Vec<(String, String)>);

impl Flags {
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .rev()
            .find(|(flag, _)| flag == name)
            .map(|(_, value)| value.clone())
    }
}

/// Reads the flags (`--name value` or `--name=value`); `Ok(Err(..))` for
/// `--help` and `--version`, which print and run nothing.
fn read_flags(args: &[String]) -> Result<Result<Flags, Invocation>, String> {
    let mut flags: Vec<(String, String)> = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        match name.as_str() {
            "--help" | "-h" => return Ok(Err(Invocation::Print(USAGE.to_owned()))),
            "--no-token" => flags.push((name, String::new())),
            "--version" | "-V" => {
                return Ok(Err(Invocation::Print(format!(
                    "hooktrail-collector {}\n",
                    env!("CARGO_PKG_VERSION")
                ))))
            }
            known if VALUE_FLAGS.contains(&known) => {
                let value = match inline {
                    Some(value) => value,
                    None => iter
                        .next()
                        .cloned()
                        .ok_or_else(|| format!("{name} needs a value"))?,
                };
                flags.push((name, value));
            }
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(Ok(Flags(flags)))
}

/// Where a setting can be given, highest first: its flag, then its
/// environment variable (the config file and the default are the
/// caller's, as they differ per setting).
struct Given<'a> {
    flags: &'a Flags,
    env: paths::EnvLookup<'a>,
}

impl Given<'_> {
    /// The flag's value, else the environment variable's.
    fn flag_or_env(&self, flag: &str, variable: &str) -> Option<String> {
        self.flags.get(flag).or_else(|| (self.env)(variable))
    }
}

/// The config's Redis with `--redis-url`, `--transport` and `--key` on
/// top; only `redis://` and `rediss://` URLs.
fn resolve_redis(
    configured: Option<RedisConfig>,
    flags: &Flags,
) -> Result<Option<RedisConfig>, String> {
    let mut redis = configured;
    if let Some(url) = flags.get("--redis-url") {
        let base = redis.clone().unwrap_or(RedisConfig {
            url: String::new(),
            transport: Transport::Stream,
            key: config::DEFAULT_KEY.to_owned(),
            maxlen: config::DEFAULT_MAXLEN,
            ca_file: None,
        });
        redis = Some(RedisConfig { url, ..base });
    }
    let Some(redis) = redis.as_mut() else {
        if flags.get("--transport").is_some() || flags.get("--key").is_some() {
            return Err(
                "--transport and --key need a Redis URL (--redis-url or $HOOKTRAIL_REDIS_URL)"
                    .to_owned(),
            );
        }
        return Ok(None);
    };
    if let Some(text) = flags.get("--transport") {
        redis.transport = Transport::parse(&text).ok_or_else(|| {
            format!("--transport: unknown transport {text:?} (use stream or pubsub)")
        })?;
    }
    if let Some(key) = flags.get("--key") {
        redis.key = key;
    }
    // The emitter reads the same config and speaks only these two, so a
    // unix:// URL here would make every hook fail over to the socket.
    if !(redis.url.starts_with("redis://") || redis.url.starts_with("rediss://")) {
        return Err(format!(
            "Redis URL {} must start with redis:// or rediss://",
            config::redact_url(&redis.url)
        ));
    }
    Ok(Some(redis.clone()))
}

/// The API token (`--token`, `$HOOKTRAIL_TOKEN`) and the file a generated
/// one is kept in (none with `--no-token`).
fn resolve_token(given: &Given<'_>) -> (Option<String>, Option<PathBuf>) {
    let token = given
        .flag_or_env("--token", "HOOKTRAIL_TOKEN")
        .filter(|token| !token.is_empty());
    let token_file = if given.flags.get("--no-token").is_some() {
        None
    } else {
        Some(
            given
                .flags
                .get("--token-file")
                .map(|path| paths::expand(&path, given.env))
                .unwrap_or_else(|| paths::default_state_dir(given.env).join("http-token")),
        )
    };
    (token, token_file)
}

/// The HTTP address (`off` disables it); a non-loopback one needs a token.
fn resolve_http(given: &Given<'_>, has_token: bool) -> Result<Option<SocketAddr>, String> {
    let http_text = given
        .flag_or_env("--http", "HOOKTRAIL_HTTP")
        .unwrap_or_else(|| DEFAULT_HTTP.to_owned());
    if http_text == "off" {
        return Ok(None);
    }
    let addresses: Vec<SocketAddr> = http_text
        .to_socket_addrs()
        .map_err(|error| format!("--http {http_text}: {error}"))?
        .collect();
    let address = *addresses
        .first()
        .ok_or_else(|| format!("--http {http_text}: no address"))?;
    if addresses.iter().any(|address| !address.ip().is_loopback()) && !has_token {
        return Err(format!(
            "refusing to serve HTTP on the non-loopback address {http_text} without a token: set $HOOKTRAIL_TOKEN (or --token)"
        ));
    }
    Ok(Some(address))
}

/// `--retention-days`: a positive number of days, at most
/// [`MAX_RETENTION_DAYS`]; none keeps everything.
fn parse_retention(text: Option<String>) -> Result<Option<Duration>, String> {
    let Some(text) = text else {
        return Ok(None);
    };
    let days: f64 = text
        .trim()
        .parse()
        .ok()
        .filter(|days: &f64| *days > 0.0 && *days <= MAX_RETENTION_DAYS)
        .ok_or_else(|| {
            format!("--retention-days: not a number of days between 0 and {MAX_RETENTION_DAYS}: {text:?}")
        })?;
    Ok(Some(Duration::from_secs_f64(days * 86_400.0)))
}

/// The built-in price table, with `--prices` (or `$HOOKTRAIL_PRICES`)
/// replacing or adding models.
fn load_prices(given: &Given<'_>) -> Result<PriceTable, String> {
    let Some(path) = given.flag_or_env("--prices", "HOOKTRAIL_PRICES") else {
        return Ok(PriceTable::embedded());
    };
    let path = paths::expand(&path, given.env);
    let text = std::fs::read_to_string(&path)
        .map_err(|error| format!("--prices {}: {error}", path.display()))?;
    PriceTable::with_overrides(&text)
        .map_err(|error| format!("--prices {}: {error}", path.display()))
}

/// `--page-token-lifetime`: seconds, from one to a week.
fn parse_page_token_lifetime(text: Option<String>) -> Result<Duration, String> {
    let Some(text) = text else {
        return Ok(crate::serve::auth::DEFAULT_PAGE_TOKEN_LIFETIME);
    };
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|seconds| (1..=7 * 86_400).contains(seconds))
        .map(Duration::from_secs)
        .ok_or_else(|| {
            format!("--page-token-lifetime: not a number of seconds between 1 and 604800: {text:?}")
        })
}

/// Where the token comes from: given, a generated file, or none.
fn token_origin(token: &Option<String>, token_file: &Option<PathBuf>) -> TokenOrigin {
    match (token, token_file) {
        (Some(_), _) => TokenOrigin::Given,
        (None, Some(_)) => TokenOrigin::File,
        (None, None) => TokenOrigin::Off,
    }
}

/// The longest `--quiet-after`: thirty days.
const MAX_QUIET_AFTER_SECONDS: u64 = 30 * 86_400;

/// The longest `--waiting-quiet-after`: a hundred years, which is how to
/// say "a waiting session never goes quiet".
const MAX_WAITING_QUIET_AFTER_SECONDS: u64 = 36_500 * 86_400;

/// A quiet limit (`--quiet-after`, `--waiting-quiet-after`) from its flag or
/// variable: whole seconds from one to `max`.
fn quiet_limit(
    name: &str,
    text: Option<String>,
    default: Duration,
    max: u64,
) -> Result<Duration, String> {
    let Some(text) = text else {
        return Ok(default);
    };
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|seconds| (1..=max).contains(seconds))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{name}: not a number of seconds between 1 and {max}: {text:?}"))
}

/// The HTTP API's token when none was given: read from `path`, or
/// generated (32 random bytes, hex) into it at the first start. Loopback TCP
/// is reachable by every local user, so without a token any of them could
/// read every event; the file is 0600 in a 0700 directory, so only this user
/// (and the page, through `hooktrail-collector url`) gets it. A file that is
/// not ours or is readable by others is refused, not trusted.
pub(crate) fn load_or_create_token(path: &std::path::Path) -> Result<String, String> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let describe = |error: std::io::Error| format!("token file {}: {error}", path.display());
    if let Some(dir) = path.parent() {
        paths::ensure_private_dir(dir).map_err(describe)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(metadata) => {
            // SAFETY: getuid has no preconditions and cannot fail.
            let own = unsafe { libc::getuid() };
            if !metadata.is_file() || metadata.uid() != own || metadata.mode() & 0o077 != 0 {
                return Err(format!(
                    "token file {}: not a private (0600) file of ours; refusing to use it",
                    path.display()
                ));
            }
            let token = std::fs::read_to_string(path).map_err(describe)?;
            let token = token.trim();
            if token.len() >= 32 {
                return Ok(token.to_owned());
            }
            std::fs::remove_file(path).map_err(describe)?;
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(describe(error)),
    }
    let mut bytes = [0u8; 32];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the buffer.
    let filled = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if filled != bytes.len() as isize {
        return Err("cannot read random bytes for the HTTP token".to_owned());
    }
    let token: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(describe)?;
    file.write_all(format!("{token}\n").as_bytes())
        .map_err(describe)?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse_with(args: &[&str], vars: &[(&str, &str)]) -> Result<Invocation, String> {
        let temp = std::env::temp_dir().join("hooktrail-settings-test-none");
        let mut map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.entry("HOME".into())
            .or_insert(temp.display().to_string());
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(&args, &move |name: &str| map.get(name).cloned())
    }

    fn settings(result: Result<Invocation, String>) -> Settings {
        match result.unwrap() {
            Invocation::Run { settings, .. } => *settings,
            Invocation::Print(text) => panic!("printed {text}"),
            Invocation::Import { .. } => panic!("an import"),
        }
    }

    #[test]
    fn no_flags_is_local_mode_with_xdg_paths() {
        let settings = settings(parse_with(
            &[],
            &[("XDG_DATA_HOME", "/d"), ("XDG_RUNTIME_DIR", "/r")],
        ));
        assert!(settings.redis.is_none());
        assert_eq!(settings.database, PathBuf::from("/d/hooktrail/events.db"));
        assert_eq!(
            settings.socket,
            Some(PathBuf::from("/r/hooktrail/collector.sock"))
        );
        assert_eq!(settings.http, Some(DEFAULT_HTTP.parse().unwrap()));
    }

    #[test]
    fn flags_override_and_token_comes_from_env() {
        let settings = settings(parse_with(
            &[
                "--redis-url",
                "redis://h:1",
                "--transport=pubsub",
                "--key",
                "k",
                "--group",
                "g",
                "--http",
                "0.0.0.0:9",
            ],
            &[("HOOKTRAIL_TOKEN", "t")],
        ));
        let redis = settings.redis.unwrap();
        assert_eq!(redis.transport, Transport::PubSub);
        assert_eq!(redis.key, "k");
        assert_eq!(settings.group, "g");
        assert_eq!(settings.token.as_deref(), Some("t"));
    }

    #[test]
    fn absurd_retention_and_quiet_limits_are_refused_not_wrapped() {
        for days in ["1e300", "1e9", "0", "-1", "NaN", "inf"] {
            let error = parse_with(&["--retention-days", days], &[]).unwrap_err();
            assert!(error.contains("--retention-days"), "{days}: {error}");
        }
        assert!(parse_with(&["--quiet-after", "0"], &[]).is_err());
        let from_flag = settings(parse_with(&["--quiet-after", "90"], &[]));
        assert_eq!(from_flag.quiet_after, Duration::from_secs(90));
        assert_eq!(from_flag.waiting_quiet_after, Duration::from_secs(3600));
        assert!(parse_with(&["--waiting-quiet-after", "0"], &[]).is_err());
        let from_env = settings(parse_with(&[], &[("HOOKTRAIL_WAITING_QUIET_AFTER", "120")]));
        assert_eq!(from_env.waiting_quiet_after, Duration::from_secs(120));
        assert!(parse_with(&["--prices", "/nonexistent/prices.json"], &[]).is_err());
    }

    #[test]
    fn import_takes_a_directory_and_the_database_flags() {
        match parse_with(&["import", "/t/projects", "--db", "/d/x.db"], &[]).unwrap() {
            Invocation::Import { settings, dir, .. } => {
                assert_eq!(dir, PathBuf::from("/t/projects"));
                assert_eq!(settings.database, PathBuf::from("/d/x.db"));
            }
            _ => panic!("not an import"),
        }
        match parse_with(&["import"], &[("HOME", "/h"), ("HOOKTRAIL_DB", "/e.db")]).unwrap() {
            Invocation::Import { settings, dir, .. } => {
                assert_eq!(dir, PathBuf::from("/h/.claude/projects"));
                assert_eq!(settings.database, PathBuf::from("/e.db"));
            }
            _ => panic!("not an import"),
        }
        assert!(parse_with(&["import", "a", "b"], &[]).is_err());
    }

    #[test]
    fn non_loopback_http_without_token_is_refused() {
        let error = parse_with(&["--http", "0.0.0.0:7717"], &[]).unwrap_err();
        assert!(error.contains("token"), "{error}");
        assert!(parse_with(&["--bogus"], &[]).is_err());
        assert!(matches!(
            parse_with(&["--help"], &[]).unwrap(),
            Invocation::Print(_)
        ));
    }

    #[test]
    fn actions_are_allowed_on_a_loopback_listener_only() {
        let loopback = settings(parse_with(&[], &[]));
        assert!(loopback.actions_allowed());
        let wide = settings(parse_with(&["--http", "0.0.0.0:7717", "--token", "t"], &[]));
        assert!(
            !wide.actions_allowed(),
            "the token would cross the network in clear"
        );
        let off = settings(parse_with(&["--http", "off"], &[]));
        assert!(!off.actions_allowed());
        assert_eq!(wide.token_origin, TokenOrigin::Given);
        assert_eq!(loopback.token_origin, TokenOrigin::File);
        let lifetime = settings(parse_with(&["--page-token-lifetime", "60"], &[]));
        assert_eq!(lifetime.page_token_lifetime, Duration::from_secs(60));
        assert!(parse_with(&["--page-token-lifetime", "0"], &[]).is_err());
    }
}
