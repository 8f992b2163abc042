//! The configuration shared by both programs (DESIGN §4).
//!
//! Precedence, lowest first: built-in defaults, the JSON file
//! (`$HOOKTRAIL_CONFIG` or `$XDG_CONFIG_HOME/hooktrail/config.json`), then
//! `HOOKTRAIL_*` environment variables. The collector applies its command-line
//! flags on top. Loading never fails: a missing, unreadable, malformed or
//! unsafe file is reported in [`LoadedConfig::problems`], so a hook still
//! delivers (to the socket or the spool) with what is left.
//!
//! A broken file must never weaken privacy (issue 16): a file that cannot be
//! read or parsed, or a key of the wrong type or with an unknown value, is a
//! config *error* ([`Config::config_error`]). Every key that could still be
//! read is kept (a wrong key is dropped alone), but privacy is `metadata`
//! until the file is fixed, and every event says so (envelope
//! `config_error`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::paths::{self, EnvLookup};
use crate::redact::Privacy;
use crate::regular_file;

/// The largest config file read. Real ones are a few hundred bytes; the
/// bound keeps `HOOKTRAIL_CONFIG=/dev/zero`-like mistakes from costing
/// gigabytes (only regular files are read at all).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Stream key or channel name used when none is configured.
pub const DEFAULT_KEY: &str = "hooktrail:events";

/// Approximate stream length kept by `XADD ... MAXLEN ~` when none is configured.
pub const DEFAULT_MAXLEN: u64 = 1_000_000;

/// The smallest `maxlen` used. Redis trims entries whether or not the
/// collector has read them, so a tiny bound would drop events during any
/// pause of the collector; smaller values are raised to this.
pub const MIN_MAXLEN: u64 = 1_000;

/// The largest `maxlen` used: Redis reads it as a signed 64-bit number and
/// answers every `XADD` with an error above it (every event would then miss
/// Redis and open the breaker).
pub const MAX_MAXLEN: u64 = i64::MAX as u64;

/// `value` within [`MIN_MAXLEN`]..=[`MAX_MAXLEN`], with a problem noted
/// (naming `origin`) when it had to move.
fn bounded_maxlen(value: u64, origin: &str, problems: &mut Vec<String>) -> u64 {
    let bounded = value.clamp(MIN_MAXLEN, MAX_MAXLEN);
    if bounded != value {
        problems.push(format!(
            "{origin}: maxlen {value} is out of range ({MIN_MAXLEN} to {MAX_MAXLEN}); using {bounded}"
        ));
    }
    bounded
}

/// Where events go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Socket of the local collector only (then the spool).
    Local,
    /// Redis first, then the socket, then the spool.
    Redis,
}

/// How events travel through Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `XADD` to a stream read by consumer groups: durable, the default.
    Stream,
    /// `PUBLISH` to a channel: at most once, only to subscribers listening now.
    PubSub,
}

impl Transport {
    /// Parses `stream` or `pubsub` (also `pub/sub`, `pub-sub`).
    pub fn parse(text: &str) -> Option<Transport> {
        match text.trim().to_ascii_lowercase().as_str() {
            "stream" | "streams" => Some(Transport::Stream),
            "pubsub" | "pub/sub" | "pub-sub" => Some(Transport::PubSub),
            _ => None,
        }
    }

    /// The name used in config files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Stream => "stream",
            Transport::PubSub => "pubsub",
        }
    }
}

/// Redis settings; present only when a URL is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user[:password]@]host[:port][/db]` or `rediss://` for TLS.
    /// May hold a password: never log it, use [`redact_url`].
    pub url: String,
    /// Stream or pub/sub.
    pub transport: Transport,
    /// Stream key or channel name.
    pub key: String,
    /// `MAXLEN ~` bound of the stream.
    pub maxlen: u64,
    /// PEM file of the CA that signed a `rediss://` server's certificate; when
    /// absent, the emitter trusts the system's CA bundle (`$SSL_CERT_FILE` or
    /// the distribution's one bundle file).
    pub ca_file: Option<PathBuf>,
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Redis first, or the local socket only.
    pub mode: Mode,
    /// Redis settings, `None` when no URL is configured.
    pub redis: Option<RedisConfig>,
    /// The collector's Unix socket.
    pub socket: PathBuf,
    /// The spool directory (0700, files 0600).
    pub spool_dir: PathBuf,
    /// Where the emitter keeps its small state files (the Redis breaker).
    pub state_dir: PathBuf,
    /// The config file that was read, if any.
    pub file: Option<PathBuf>,
    /// Privacy level, user patterns and drop rules (`privacy`, `redact`):
    /// what is taken out of a payload before it leaves the machine.
    pub redaction: crate::redact::Settings,
    /// Set when the config file (or `$HOOKTRAIL_PRIVACY`) had an error: the
    /// privacy level is then forced to `metadata`, so a typo can never send
    /// more than the person asked for, and every event carries the flag so
    /// the collector's page shows that the config needs fixing.
    pub config_error: bool,
    /// Spending limits (`budgets`, `budgets_offline`): the collector keeps
    /// their verdicts, and a hook acts on them only when any is configured.
    pub budgets: crate::budget::Budgets,
    /// `approvals`: whether a `PermissionRequest` hook waits for a decision
    /// made on the page, how long, and where the shared key is (issue 18).
    pub approvals: crate::approvals::ApprovalsConfig,
}

/// A loaded configuration and what a person should know about how.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The effective configuration.
    pub config: Config,
    /// One line per setting that did not come from the defaults, saying where
    /// it came from (for `hooktrail-emit check`). Secrets are redacted.
    pub origins: Vec<String>,
    /// Problems found while loading: unreadable, malformed or unsafe files,
    /// unknown values. Each names the file or variable.
    pub problems: Vec<String>,
    /// The problems that are errors (they set [`Config::config_error`]):
    /// `check` names them and exits non-zero.
    pub errors: Vec<String>,
}

/// What loading found wrong, sorted by weight: a warning leaves the
/// settings as asked; an error forces the `metadata` privacy level.
#[derive(Default)]
struct Findings {
    /// Every problem, warnings and errors, in the order found.
    problems: Vec<String>,
    /// The errors among them.
    errors: Vec<String>,
}

impl Findings {
    fn error(&mut self, message: String) {
        self.problems.push(message.clone());
        self.errors.push(message);
    }
}

/// The file as written by people; every key optional, unknown keys ignored.
/// Read key by key from a JSON value (not derived), so that one key of the
/// wrong type costs that key alone, never the rest of the file.
#[derive(Debug, Default)]
struct FileConfig {
    mode: Option<String>,
    redis: FileRedisConfig,
    socket: Option<String>,
    spool_dir: Option<String>,
    state_dir: Option<String>,
    privacy: Option<String>,
    redact: Option<Value>,
    approvals: Option<Value>,
    budgets: Option<Value>,
    budgets_offline: Option<Value>,
}

#[derive(Debug, Default)]
struct FileRedisConfig {
    url: Option<String>,
    transport: Option<String>,
    key: Option<String>,
    /// Any JSON value, checked later: a negative or fractional number must
    /// not make the whole file unreadable.
    maxlen: Option<Value>,
    ca_file: Option<String>,
}

/// The JSON type of `value`, for messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Takes the string at `key` of `object`; a value of another type is an
/// error naming `name` (a `null` counts as absent).
fn take_string(
    object: &mut Map<String, Value>,
    key: &str,
    name: &str,
    file: &str,
    findings: &mut Findings,
) -> Option<String> {
    match object.remove(key)? {
        Value::String(text) => Some(text),
        Value::Null => None,
        other => {
            findings.error(format!(
                "config file {file}: {name} must be a string, not {}; ignoring it",
                json_type(&other)
            ));
            None
        }
    }
}

impl FileConfig {
    /// Reads the known keys of a parsed file, each on its own.
    fn from_value(value: Value, file: &str, findings: &mut Findings) -> FileConfig {
        let mut object = match value {
            Value::Object(object) => object,
            other => {
                findings.error(format!(
                    "config file {file} must hold a JSON object, not {}; ignoring it",
                    json_type(&other)
                ));
                return FileConfig::default();
            }
        };
        let mut take =
            |key: &str, findings: &mut Findings| take_string(&mut object, key, key, file, findings);
        let mode = take("mode", findings);
        let socket = take("socket", findings);
        let spool_dir = take("spool_dir", findings);
        let state_dir = take("state_dir", findings);
        let privacy = take("privacy", findings);
        let redis = match object.remove("redis") {
            None | Some(Value::Null) => FileRedisConfig::default(),
            Some(Value::Object(mut redis)) => {
                let mut take = |key: &str, findings: &mut Findings| {
                    take_string(&mut redis, key, &format!("redis.{key}"), file, findings)
                };
                FileRedisConfig {
                    url: take("url", findings),
                    transport: take("transport", findings),
                    key: take("key", findings),
                    ca_file: take("ca_file", findings),
                    maxlen: redis.remove("maxlen").filter(|value| !value.is_null()),
                }
            }
            Some(other) => {
                findings.error(format!(
                    "config file {file}: redis must be an object, not {}; ignoring it",
                    json_type(&other)
                ));
                FileRedisConfig::default()
            }
        };
        FileConfig {
            mode,
            redis,
            socket,
            spool_dir,
            state_dir,
            privacy,
            redact: object.remove("redact"),
            approvals: object.remove("approvals"),
            budgets: object.remove("budgets"),
            budgets_offline: object.remove("budgets_offline"),
        }
    }
}

/// Loads the configuration from the process environment.
pub fn load() -> LoadedConfig {
    load_with(&paths::process_env)
}

/// Loads the configuration with the given environment lookup (for tests).
pub fn load_with(env: EnvLookup) -> LoadedConfig {
    load_explained(env, true)
}

/// What a hook loads: the same settings, problems and errors as
/// [`load_with`], but [`LoadedConfig::origins`] left empty. The origins are
/// for a person (`check`); formatting them was a third of the hook's
/// config loading (issue 21).
pub fn load_for_hook(env: EnvLookup) -> LoadedConfig {
    load_explained(env, false)
}

fn load_explained(env: EnvLookup, explain: bool) -> LoadedConfig {
    let (mut loading, file, file_path) = Loading::start(env, explain);
    // The order of the steps is the order of `origins` and `problems`.
    let redis = loading.redis(file.redis);
    let socket = loading.path(
        "socket",
        file.socket,
        "HOOKTRAIL_SOCKET",
        paths::default_socket_file,
    );
    let spool_dir = loading.path(
        "spool_dir",
        file.spool_dir,
        "HOOKTRAIL_SPOOL_DIR",
        paths::default_spool_dir,
    );
    let state_dir = loading.path(
        "state_dir",
        file.state_dir,
        "HOOKTRAIL_STATE_DIR",
        paths::default_state_dir,
    );
    let mode = loading.mode(file.mode, redis.is_some());
    let (redaction, config_error) = loading.redaction(file.privacy, file.redact);
    let Loading {
        mut origins,
        mut findings,
        file_path: file_name,
        explain,
        ..
    } = loading;
    let approvals =
        crate::approvals::from_config(file.approvals, env, &mut origins, &mut findings.problems);
    let budgets = crate::budget::Budgets::from_config(
        file.budgets.as_ref(),
        file.budgets_offline.as_ref(),
        &mut findings.problems,
    );
    if !budgets.is_empty() {
        origins.push(format!("budgets: from {}", file_name.display()));
    }
    if !explain {
        // The approvals' origins are fixed texts, pushed as they are read.
        origins = Vec::new();
    }
    LoadedConfig {
        config: Config {
            mode,
            redis: redis.filter(|_| mode == Mode::Redis),
            socket,
            spool_dir,
            state_dir,
            file: file_path,
            redaction,
            config_error,
            budgets,
            approvals,
        },
        origins,
        problems: findings.problems,
        errors: findings.errors,
    }
}

/// Which layer a setting's value came from.
#[derive(Debug, Clone, Copy)]
enum Layer {
    /// The config file.
    File,
    /// The named environment variable.
    Env(&'static str),
}

/// One load in progress: where values come from, and what it noted so far.
/// Every setting is "the file's value, then the variable's, noting where it
/// came from": the methods below say it once each way it is done.
struct Loading<'e> {
    env: EnvLookup<'e>,
    /// The config file's path, as origins and problems name it (formatted
    /// only for a message that is written).
    file_path: PathBuf,
    /// One line per setting that did not come from the defaults; left
    /// empty, and nothing formatted for it, when not `explain`.
    origins: Vec<String>,
    /// Whether `origins` is filled (for `check`), or not (a hook).
    explain: bool,
    findings: Findings,
}

impl<'e> Loading<'e> {
    /// Reads the config file (`$HOOKTRAIL_CONFIG`, else the default one).
    /// Returns the load, what could be read of the file, and the file's
    /// path when it was used.
    fn start(env: EnvLookup<'e>, explain: bool) -> (Loading<'e>, FileConfig, Option<PathBuf>) {
        let mut findings = Findings::default();
        let explicit_file = env("HOOKTRAIL_CONFIG");
        let file_path = explicit_file
            .as_deref()
            .map(|path| paths::expand(path, env))
            .unwrap_or_else(|| paths::default_config_file(env));
        let (file, file_used) = read_file(&file_path, explicit_file.is_some(), &mut findings);
        let mut origins = Vec::new();
        if !explain {
        } else if file_used {
            origins.push(format!("config file: {}", file_path.display()));
        } else if findings.problems.is_empty() {
            origins.push(format!(
                "config file: none ({} does not exist)",
                file_path.display()
            ));
        }
        let used = file_used.then(|| file_path.clone());
        let loading = Loading {
            env,
            file_path,
            origins,
            explain,
            findings,
        };
        (loading, file, used)
    }

    /// Notes where a setting came from, for `check` (nothing when not
    /// explaining).
    fn note(&mut self, what: &str, layer: Layer) {
        if self.explain {
            let origin = self.origin(what, layer);
            self.origins.push(origin);
        }
    }

    /// `what: from <file>` or `what: from $VAR`. Formatted only for a
    /// setting that is present, so a hook formats nothing it won't use.
    fn origin(&self, what: &str, layer: Layer) -> String {
        match layer {
            Layer::File => format!("{what}: from {}", self.file_path.display()),
            Layer::Env(variable) => format!("{what}: from ${variable}"),
        }
    }

    /// A bad value in the file is an error (privacy falls to `metadata`); a
    /// bad variable is a warning, as before: it is set for one shell, and
    /// `check` shows it.
    fn complain(&mut self, layer: Layer, message: String) {
        match layer {
            Layer::File => self.findings.error(message),
            Layer::Env(_) => self.findings.problems.push(message),
        }
    }

    /// The file's value, then `variable`'s: the order in which they apply.
    fn layers(&self, file: Option<String>, variable: &'static str) -> [(Option<String>, Layer); 2] {
        [
            (file, Layer::File),
            ((self.env)(variable), Layer::Env(variable)),
        ]
    }

    /// A text setting: the file's, overridden by `variable`'s; each one
    /// present is noted.
    fn text(&mut self, what: &str, file: Option<String>, variable: &'static str) -> Option<String> {
        let mut chosen = None;
        for (value, layer) in self.layers(file, variable) {
            if let Some(value) = value {
                self.note(what, layer);
                chosen = Some(value);
            }
        }
        chosen
    }

    /// A setting with a few named values, from `current`: the file's, then
    /// `variable`'s. A value `parse` does not know is complained about
    /// (`unknown` writes the message from the origin and the text) and
    /// changes nothing.
    fn choice<T>(
        &mut self,
        (what, file, variable): (&str, Option<String>, &'static str),
        mut current: T,
        parse: impl Fn(&str) -> Option<T>,
        unknown: impl Fn(&str, &str) -> String,
    ) -> T {
        for (value, layer) in self.layers(file, variable) {
            let Some(text) = value else { continue };
            match parse(&text) {
                Some(parsed) => {
                    current = parsed;
                    self.note(what, layer);
                }
                None => {
                    let message = unknown(&self.origin(what, layer), &text);
                    self.complain(layer, message);
                }
            }
        }
        current
    }

    /// A path: `variable`'s, else the file's, else `default`; `~` and
    /// variables in it expanded.
    fn path(
        &mut self,
        what: &str,
        file: Option<String>,
        variable: &'static str,
        default: fn(EnvLookup) -> PathBuf,
    ) -> PathBuf {
        let (value, layer) = match ((self.env)(variable), file) {
            (Some(value), _) => (value, Layer::Env(variable)),
            (None, Some(value)) => (value, Layer::File),
            (None, None) => return default(self.env),
        };
        self.note(what, layer);
        paths::expand(&value, self.env)
    }

    /// The Redis settings; `Some` when a URL is configured.
    fn redis(&mut self, file: FileRedisConfig) -> Option<RedisConfig> {
        let url = self.text("redis.url", file.url, "HOOKTRAIL_REDIS_URL");
        let transport = self.choice(
            ("redis.transport", file.transport, "HOOKTRAIL_REDIS_TRANSPORT"),
            Transport::Stream,
            Transport::parse,
            |origin, text| format!("{origin}: unknown transport {text:?} (use \"stream\" or \"pubsub\"); using stream"),
        );
        let key = self
            .text("redis.key", file.key, "HOOKTRAIL_REDIS_KEY")
            .unwrap_or_else(|| DEFAULT_KEY.to_owned());
        let maxlen = self.maxlen(file.maxlen);
        // The file's CA file is not listed among the origins; the variable is.
        let mut ca_file = file.ca_file.map(|path| paths::expand(&path, self.env));
        if let Some(value) = (self.env)("HOOKTRAIL_REDIS_CA_FILE") {
            self.note("redis.ca_file", Layer::Env("HOOKTRAIL_REDIS_CA_FILE"));
            ca_file = Some(paths::expand(&value, self.env));
        }
        Some(RedisConfig {
            url: url?,
            transport,
            key,
            maxlen,
            ca_file,
        })
    }

    /// `redis.maxlen`: a JSON number in the file, text in the variable, each
    /// held within [`MIN_MAXLEN`]..=[`MAX_MAXLEN`].
    fn maxlen(&mut self, file: Option<Value>) -> u64 {
        let mut maxlen = DEFAULT_MAXLEN;
        if let Some(value) = file {
            let origin = self.origin("redis.maxlen", Layer::File);
            match value.as_u64() {
                Some(number) => {
                    maxlen = bounded_maxlen(number, &origin, &mut self.findings.problems);
                    self.origins.push(origin);
                }
                None => self.findings.error(format!(
                    "{origin}: not a whole number of entries: {value}; using {DEFAULT_MAXLEN}"
                )),
            }
        }
        if let Some(text) = (self.env)("HOOKTRAIL_REDIS_MAXLEN") {
            let origin = self.origin("redis.maxlen", Layer::Env("HOOKTRAIL_REDIS_MAXLEN"));
            match text.trim().parse() {
                Ok(number) => {
                    maxlen = bounded_maxlen(number, &origin, &mut self.findings.problems);
                    self.origins.push(origin);
                }
                Err(_) => self.findings.problems.push(format!(
                    "$HOOKTRAIL_REDIS_MAXLEN: not a whole number: {text:?}"
                )),
            }
        }
        maxlen
    }

    /// `mode`: Redis when a URL is configured, unless the file or
    /// `$HOOKTRAIL_MODE` says otherwise; `redis` without a URL falls back to
    /// the local socket.
    fn mode(&mut self, file: Option<String>, has_url: bool) -> Mode {
        let default = if has_url { Mode::Redis } else { Mode::Local };
        let mode = self.choice(
            ("mode", file, "HOOKTRAIL_MODE"),
            default,
            |text| match text.trim().to_ascii_lowercase().as_str() {
                "local" => Some(Mode::Local),
                "redis" => Some(Mode::Redis),
                _ => None,
            },
            |origin, text| format!("{origin}: unknown mode {text:?} (use \"local\" or \"redis\")"),
        );
        if mode == Mode::Redis && !has_url {
            self.findings.problems.push("mode is \"redis\" but no Redis URL is configured (redis.url or $HOOKTRAIL_REDIS_URL); using the local socket".to_owned());
            return Mode::Local;
        }
        mode
    }

    /// The privacy level and redaction rules, and whether the config had an
    /// error (which forces the `metadata` level). Every problem of these
    /// settings (an unknown level, a pattern that cannot be read) is an
    /// error: each one could mean less is redacted than the person asked
    /// for.
    fn redaction(
        &mut self,
        privacy: Option<String>,
        redact: Option<Value>,
    ) -> (crate::redact::Settings, bool) {
        let mut problems = Vec::new();
        let mut redaction = crate::redact::settings::from_config(
            privacy,
            redact,
            (self.env)("HOOKTRAIL_PRIVACY"),
            &mut self.origins,
            &mut problems,
        );
        for problem in problems {
            self.findings.error(problem);
        }
        let config_error = !self.findings.errors.is_empty();
        if config_error {
            redaction.privacy = Privacy::Metadata;
            self.findings.problems.push(
                "because of the config error above, hooks use the privacy level \"metadata\" and mark every event until it is fixed".to_owned(),
            );
        }
        (redaction, config_error)
    }
}

/// Reads and checks the config file. Returns what could be read of it
/// (default when nothing could) and whether it was used.
fn read_file(path: &Path, explicit: bool, findings: &mut Findings) -> (FileConfig, bool) {
    let read = read_own_file(path);
    if matches!(&read, Err(error) if error.kind() == std::io::ErrorKind::NotFound && !explicit) {
        return (FileConfig::default(), false);
    }
    let name = path.display().to_string();
    let (text, metadata) = match read {
        Ok(read) => read,
        Err(error) => {
            findings.error(format!(
                "cannot read config file {name}: {error}; ignoring it"
            ));
            return (FileConfig::default(), false);
        }
    };
    let value: Value = match serde_json::from_slice(&text) {
        Ok(value) => value,
        Err(error) => {
            findings.error(format!(
                "config file {name} is not valid JSON ({error}); ignoring it"
            ));
            return (FileConfig::default(), false);
        }
    };
    let mut parsed = FileConfig::from_value(value, &name, findings);
    let mode = metadata.mode();
    if parsed.redis.url.as_deref().is_some_and(url_has_password) && mode & 0o077 != 0 {
        // The password is not used, so that the person notices; the rest of
        // the file (privacy, redaction) still is.
        findings.error(format!(
            "refusing the Redis settings of config file {name}: it holds a Redis password and other users can read it (mode {:04o}); run: chmod 600 {name}",
            mode & 0o7777
        ));
        parsed.redis = FileRedisConfig::default();
    }
    (parsed, true)
}

/// Reads a config file that we or root own: a regular file of at most
/// [`MAX_CONFIG_BYTES`], opened so that a FIFO or a device cannot stall or
/// flood the hook. A file another user owns is refused: it could send our
/// events to their Redis (with `HOME` unset, the default path was once
/// under a `/tmp` anyone can write in).
fn read_own_file(path: &Path) -> std::io::Result<(Vec<u8>, std::fs::Metadata)> {
    use std::io::Read;
    let (file, metadata) = regular_file::open(path)?;
    let own = paths::euid();
    if metadata.uid() != own && metadata.uid() != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "it belongs to uid {}, not to us (uid {own}) or root",
                metadata.uid()
            ),
        ));
    }
    let mut text = Vec::with_capacity(metadata.len().min(MAX_CONFIG_BYTES) as usize);
    file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("it is larger than {MAX_CONFIG_BYTES} bytes"),
        ));
    }
    Ok((text, metadata))
}

/// Whether a Redis URL carries a password in its user-info part.
pub fn url_has_password(url: &str) -> bool {
    userinfo(url).is_some_and(|info| info.contains(':') && !info.ends_with(':'))
}

/// The `user:password` part of a URL: everything between the scheme and the
/// last `@`. Passwords often hold `/`, `?` or `#` unencoded (base64 ones do),
/// so the authority is not cut at those first, as a strict URL parser would.
fn userinfo(url: &str) -> Option<&str> {
    let after_scheme = url.split_once("://").map(|(_, rest)| rest).unwrap_or(url);
    after_scheme.rsplit_once('@').map(|(info, _)| info)
}

/// The URL with its password replaced by `***`, for logs and `check`.
pub fn redact_url(url: &str) -> String {
    match userinfo(url) {
        Some(info) if info.contains(':') => {
            let user = info.split(':').next().unwrap_or("");
            url.replacen(info, &format!("{user}:***"), 1)
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn load_from(vars: &[(&str, String)]) -> LoadedConfig {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        load_with(&move |name: &str| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_local_mode_without_redis() {
        let temp = tempfile::tempdir().unwrap();
        let loaded = load_from(&[("HOME", temp.path().display().to_string())]);
        assert_eq!(loaded.config.mode, Mode::Local);
        assert!(loaded.config.redis.is_none());
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    }

    #[test]
    fn environment_overrides_file() {
        let temp = tempfile::tempdir().unwrap();
        let file = temp.path().join("c.json");
        fs::write(&file, r#"{"redis":{"url":"redis://a:6379","transport":"pubsub","key":"k1"},"socket":"/x.sock"}"#).unwrap();
        let loaded = load_from(&[
            ("HOOKTRAIL_CONFIG", file.display().to_string()),
            ("HOOKTRAIL_REDIS_URL", "redis://b:6380".into()),
        ]);
        let redis = loaded.config.redis.unwrap();
        assert_eq!(redis.url, "redis://b:6380");
        assert_eq!(redis.transport, Transport::PubSub);
        assert_eq!(redis.key, "k1");
        assert_eq!(loaded.config.socket, PathBuf::from("/x.sock"));
        assert_eq!(loaded.config.mode, Mode::Redis);
    }

    #[test]
    fn readable_file_with_password_is_refused_and_named() {
        let temp = tempfile::tempdir().unwrap();
        let file = temp.path().join("c.json");
        fs::write(&file, r#"{"redis":{"url":"redis://u:secret@h:1"}}"#).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let loaded = load_from(&[("HOOKTRAIL_CONFIG", file.display().to_string())]);
        assert!(loaded.config.redis.is_none());
        assert!(
            loaded.problems[0].contains(&file.display().to_string()),
            "{:?}",
            loaded.problems
        );
        assert!(!loaded.problems[0].contains("secret"));
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        let loaded = load_from(&[("HOOKTRAIL_CONFIG", file.display().to_string())]);
        assert!(loaded.config.redis.is_some(), "{:?}", loaded.problems);
    }

    #[test]
    fn malformed_file_is_reported_not_fatal() {
        let temp = tempfile::tempdir().unwrap();
        let file = temp.path().join("c.json");
        fs::write(&file, "{not json").unwrap();
        let loaded = load_from(&[("HOOKTRAIL_CONFIG", file.display().to_string())]);
        assert_eq!(loaded.config.mode, Mode::Local);
        assert_eq!(loaded.errors.len(), 1, "{:?}", loaded.errors);
        assert!(loaded.config.config_error);
        assert_eq!(loaded.config.redaction.privacy, Privacy::Metadata);
    }

    #[test]
    fn one_wrong_key_costs_that_key_alone_and_forces_metadata() {
        let temp = tempfile::tempdir().unwrap();
        let file = temp.path().join("c.json");
        fs::write(
            &file,
            r#"{"privacy":"full","socket":"/x.sock","redis":{"url":5,"key":"k"},"spool_dir":["x"],
                "redact":{"patterns":[{"name":"acme","prefix":"acme_"}]}}"#,
        )
        .unwrap();
        let loaded = load_from(&[("HOOKTRAIL_CONFIG", file.display().to_string())]);
        let config = &loaded.config;
        assert!(config.config_error);
        assert_eq!(config.redaction.privacy, Privacy::Metadata);
        assert_eq!(config.socket, PathBuf::from("/x.sock"), "kept");
        assert_eq!(config.redaction.patterns.len(), 1, "kept");
        assert!(config.redis.is_none());
        assert_eq!(loaded.errors.len(), 2, "{:?}", loaded.errors);
        assert!(
            loaded.errors[0].contains("spool_dir"),
            "{:?}",
            loaded.errors
        );
        assert!(
            loaded.errors[1].contains("redis.url"),
            "{:?}",
            loaded.errors
        );
    }

    #[test]
    fn a_clean_file_and_a_bad_variable_are_no_config_error() {
        let temp = tempfile::tempdir().unwrap();
        let file = temp.path().join("c.json");
        fs::write(&file, r#"{"privacy":"full"}"#).unwrap();
        let loaded = load_from(&[
            ("HOOKTRAIL_CONFIG", file.display().to_string()),
            ("HOOKTRAIL_MODE", "sideways".to_owned()),
        ]);
        assert!(!loaded.config.config_error, "{:?}", loaded.errors);
        assert_eq!(loaded.config.redaction.privacy, Privacy::Full);
        assert_eq!(loaded.problems.len(), 1);
        // An unknown privacy level is an error wherever it comes from.
        let loaded = load_from(&[
            ("HOOKTRAIL_CONFIG", file.display().to_string()),
            ("HOOKTRAIL_PRIVACY", "metdata".to_owned()),
        ]);
        assert!(loaded.config.config_error);
        assert_eq!(loaded.config.redaction.privacy, Privacy::Metadata);
    }

    #[test]
    fn a_config_path_naming_a_device_or_a_huge_file_is_an_error_read_no_further() {
        let temp = tempfile::tempdir().unwrap();
        let huge = temp.path().join("huge.json");
        fs::write(&huge, vec![b' '; MAX_CONFIG_BYTES as usize + 1]).unwrap();
        for path in ["/dev/zero".to_owned(), huge.display().to_string()] {
            let loaded = load_from(&[("HOOKTRAIL_CONFIG", path.clone())]);
            assert!(loaded.config.config_error, "{path}");
            assert!(loaded.errors[0].contains(&path), "{:?}", loaded.errors);
        }
    }

    #[test]
    fn maxlen_is_range_checked_from_the_file_and_the_environment() {
        let temp = tempfile::tempdir().unwrap();
        let file = temp.path().join("c.json");
        let maxlen_of = |file_value: &str, env_value: Option<&str>| {
            fs::write(
                &file,
                format!(r#"{{"redis":{{"url":"redis://h","maxlen":{file_value}}}}}"#),
            )
            .unwrap();
            let mut vars = vec![("HOOKTRAIL_CONFIG", file.display().to_string())];
            if let Some(value) = env_value {
                vars.push(("HOOKTRAIL_REDIS_MAXLEN", value.to_owned()));
            }
            let loaded = load_from(&vars);
            (loaded.config.redis.unwrap().maxlen, loaded.problems)
        };
        assert_eq!(maxlen_of("5000", None), (5000, vec![]));
        let (maxlen, problems) = maxlen_of("0", None);
        assert_eq!(maxlen, MIN_MAXLEN);
        assert!(problems[0].contains("out of range"), "{problems:?}");
        // A bad value costs the setting, not the whole file (it is an
        // error, and the last problem says what that does to privacy).
        let (maxlen, problems) = maxlen_of("-1", None);
        assert_eq!((maxlen, problems.len()), (DEFAULT_MAXLEN, 2));
        assert_eq!(maxlen_of("2.5", None).0, DEFAULT_MAXLEN);
        assert_eq!(
            maxlen_of("5000", Some("18446744073709551615")).0,
            MAX_MAXLEN
        );
        assert_eq!(maxlen_of("5000", Some("lots")).0, 5000);
    }

    #[test]
    fn a_config_file_another_user_owns_is_refused() {
        let temp = tempfile::tempdir().unwrap();
        let file = temp.path().join("c.json");
        fs::write(&file, r#"{"redis":{"url":"redis://attacker:6379"}}"#).unwrap();
        let load = || load_from(&[("HOOKTRAIL_CONFIG", file.display().to_string())]);
        assert!(load().config.redis.is_some(), "our own file is used");
        if paths::euid() == 0 {
            let path = std::ffi::CString::new(file.to_str().unwrap()).unwrap();
            // SAFETY: chown on a NUL-terminated path this test made.
            assert_eq!(unsafe { libc::chown(path.as_ptr(), 65534, 65534) }, 0);
            let loaded = load();
            assert!(loaded.config.redis.is_none());
            assert!(
                loaded.problems[0].contains("belongs to uid 65534"),
                "{:?}",
                loaded.problems
            );
        }
    }

    #[test]
    fn a_hook_loads_what_check_loads_without_the_origins() {
        let temp = tempfile::tempdir().unwrap();
        let file = temp.path().join("c.json");
        let home = temp.path().display().to_string();
        let files = [
            None,
            Some(
                r#"{"redis":{"url":"redis://h:1","transport":"pubsub","key":"k","maxlen":5,"ca_file":"~/ca.pem"},"socket":"$HOME/s.sock","spool_dir":"/sp","state_dir":"/st","mode":"redis","privacy":"full"}"#,
            ),
            Some(
                r#"{"privacy":"metdata","mode":"sideways","redis":{"url":5},"redact":{"patterns":[{"name":"acme","prefix":"acme_"}],"drop":[{"paths":["tool_response"]}],"disable":["jwt"]}}"#,
            ),
            Some(r#"{"approvals":{"wait":"always"},"budgets":[{"scope":"session","usd":5}]}"#),
            Some("{not json"),
            Some("[1]"),
        ];
        let variables = [
            vec![],
            vec![
                ("HOOKTRAIL_REDIS_URL", "redis://e:2".to_owned()),
                ("HOOKTRAIL_REDIS_MAXLEN", "lots".to_owned()),
                ("HOOKTRAIL_SOCKET", "${HOME}/x.sock".to_owned()),
                ("HOOKTRAIL_PRIVACY", "metadata".to_owned()),
                ("HOOKTRAIL_MODE", "local".to_owned()),
            ],
        ];
        for text in files {
            for extra in &variables {
                let mut vars = vec![("HOME", home.clone())];
                if let Some(text) = text {
                    fs::write(&file, text).unwrap();
                    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
                    vars.push(("HOOKTRAIL_CONFIG", file.display().to_string()));
                }
                vars.extend(extra.iter().cloned());
                let map: HashMap<String, String> = vars
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect();
                let lookup = move |name: &str| map.get(name).cloned();
                let full = load_with(&lookup);
                let hook = load_for_hook(&lookup);
                assert_eq!(hook.config, full.config, "{text:?} {extra:?}");
                assert_eq!(hook.problems, full.problems, "{text:?} {extra:?}");
                assert_eq!(hook.errors, full.errors, "{text:?} {extra:?}");
                assert!(hook.origins.is_empty(), "{:?}", hook.origins);
            }
        }
    }

    #[test]
    fn redaction_hides_only_the_password() {
        assert_eq!(
            redact_url("rediss://user:pw@host:6379/0"),
            "rediss://user:***@host:6379/0"
        );
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
        // A base64 password with '/' and '+' must not leak either.
        assert_eq!(
            redact_url("redis://u:ab/c+d=@h:6379/0"),
            "redis://u:***@h:6379/0"
        );
        assert!(url_has_password("redis://:ab/cd@h"));
        assert!(url_has_password("redis://:pw@h"));
        assert!(!url_has_password("redis://user@h"));
    }
}
