//! The configuration shared by both programs (DESIGN §4).
//!
//! Precedence, lowest first: built-in defaults, the JSON file
//! (`$HOOKTRAIL_CONFIG` or `$XDG_CONFIG_HOME/hooktrail/config.json`), then
//! `HOOKTRAIL_*` environment variables. The collector applies its command-line
//! flags on top. Loading never fails: a missing, unreadable, malformed or
//! unsafe file is reported in [`LoadedConfig::problems`] and ignored, so a hook
//! still delivers (to the socket or the spool) with what is left.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::paths::{self, EnvLookup};

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
}

/// The file as written by people; every key optional, unknown keys ignored.
#[derive(Debug, Default, Deserialize)]
struct FileConfig {
    mode: Option<String>,
    redis: Option<FileRedisConfig>,
    socket: Option<String>,
    spool_dir: Option<String>,
    state_dir: Option<String>,
    privacy: Option<String>,
    redact: Option<serde_json::Value>,
    /// Checked entry by entry in `budget`: one bad entry must not lift the rest.
    budgets: Option<serde_json::Value>,
    budgets_offline: Option<serde_json::Value>,
    approvals: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct FileRedisConfig {
    url: Option<String>,
    transport: Option<String>,
    key: Option<String>,
    /// Any JSON value, checked here: a negative or fractional number must
    /// not make the whole file unreadable.
    maxlen: Option<serde_json::Value>,
    ca_file: Option<String>,
}

/// Loads the configuration from the process environment.
pub fn load() -> LoadedConfig {
    load_with(&paths::process_env)
}

/// Loads the configuration with the given environment lookup (for tests).
pub fn load_with(env: EnvLookup) -> LoadedConfig {
    let mut origins = Vec::new();
    let mut problems = Vec::new();
    let explicit_file = env("HOOKTRAIL_CONFIG");
    let file_path = explicit_file
        .as_deref()
        .map(|path| paths::expand(path, env))
        .unwrap_or_else(|| paths::default_config_file(env));
    let (file, file_used) = read_file(&file_path, explicit_file.is_some(), &mut problems);
    let file_name = file_path.display().to_string();
    if file_used {
        origins.push(format!("config file: {file_name}"));
    } else if problems.is_empty() {
        origins.push(format!("config file: none ({file_name} does not exist)"));
    }

    let from_file = |what: &str| format!("{what}: from {file_name}");
    let from_env = |what: &str, var: &str| format!("{what}: from ${var}");
    // Where a setting came from: the file, or the named variable. Described
    // only when the setting is present, so a hook formats nothing it won't use.
    let describe = |what: &str, variable: Option<&str>| match variable {
        Some(var) => from_env(what, var),
        None => from_file(what),
    };

    let file_redis = file.redis.unwrap_or_default();
    let mut url = None;
    if let Some(value) = file_redis.url {
        origins.push(from_file("redis.url"));
        url = Some(value);
    }
    if let Some(value) = env("HOOKTRAIL_REDIS_URL") {
        origins.push(from_env("redis.url", "HOOKTRAIL_REDIS_URL"));
        url = Some(value);
    }

    let mut transport = Transport::Stream;
    for (value, variable) in [
        (file_redis.transport, None),
        (
            env("HOOKTRAIL_REDIS_TRANSPORT"),
            Some("HOOKTRAIL_REDIS_TRANSPORT"),
        ),
    ] {
        if let Some(text) = value {
            let origin = describe("redis.transport", variable);
            match Transport::parse(&text) {
                Some(parsed) => {
                    transport = parsed;
                    origins.push(origin);
                }
                None => problems.push(format!("{origin}: unknown transport {text:?} (use \"stream\" or \"pubsub\"); using stream")),
            }
        }
    }

    let mut key = DEFAULT_KEY.to_owned();
    if let Some(value) = file_redis.key {
        origins.push(from_file("redis.key"));
        key = value;
    }
    if let Some(value) = env("HOOKTRAIL_REDIS_KEY") {
        origins.push(from_env("redis.key", "HOOKTRAIL_REDIS_KEY"));
        key = value;
    }

    let mut maxlen = DEFAULT_MAXLEN;
    if let Some(value) = file_redis.maxlen {
        let origin = from_file("redis.maxlen");
        match value.as_u64() {
            Some(number) => {
                maxlen = bounded_maxlen(number, &origin, &mut problems);
                origins.push(origin);
            }
            None => problems.push(format!(
                "{origin}: not a whole number of entries: {value}; using {DEFAULT_MAXLEN}"
            )),
        }
    }
    if let Some(text) = env("HOOKTRAIL_REDIS_MAXLEN") {
        let origin = from_env("redis.maxlen", "HOOKTRAIL_REDIS_MAXLEN");
        match text.trim().parse() {
            Ok(number) => {
                maxlen = bounded_maxlen(number, &origin, &mut problems);
                origins.push(origin);
            }
            Err(_) => problems.push(format!(
                "$HOOKTRAIL_REDIS_MAXLEN: not a whole number: {text:?}"
            )),
        }
    }

    let mut ca_file = file_redis.ca_file.map(|path| paths::expand(&path, env));
    if let Some(value) = env("HOOKTRAIL_REDIS_CA_FILE") {
        origins.push(from_env("redis.ca_file", "HOOKTRAIL_REDIS_CA_FILE"));
        ca_file = Some(paths::expand(&value, env));
    }

    let path_setting = |file_value: Option<String>,
                        var: &str,
                        what: &str,
                        default: PathBuf,
                        origins: &mut Vec<String>| {
        if let Some(value) = env(var) {
            origins.push(from_env(what, var));
            paths::expand(&value, env)
        } else if let Some(value) = file_value {
            origins.push(from_file(what));
            paths::expand(&value, env)
        } else {
            default
        }
    };
    let socket = path_setting(
        file.socket,
        "HOOKTRAIL_SOCKET",
        "socket",
        paths::default_socket_file(env),
        &mut origins,
    );
    let spool_dir = path_setting(
        file.spool_dir,
        "HOOKTRAIL_SPOOL_DIR",
        "spool_dir",
        paths::default_spool_dir(env),
        &mut origins,
    );
    let state_dir = path_setting(
        file.state_dir,
        "HOOKTRAIL_STATE_DIR",
        "state_dir",
        paths::default_state_dir(env),
        &mut origins,
    );

    let mut mode = if url.is_some() {
        Mode::Redis
    } else {
        Mode::Local
    };
    for (value, variable) in [
        (file.mode, None),
        (env("HOOKTRAIL_MODE"), Some("HOOKTRAIL_MODE")),
    ] {
        if let Some(text) = value {
            let origin = describe("mode", variable);
            match text.trim().to_ascii_lowercase().as_str() {
                "local" => {
                    mode = Mode::Local;
                    origins.push(origin);
                }
                "redis" => {
                    mode = Mode::Redis;
                    origins.push(origin);
                }
                _ => problems.push(format!(
                    "{origin}: unknown mode {text:?} (use \"local\" or \"redis\")"
                )),
            }
        }
    }
    if mode == Mode::Redis && url.is_none() {
        problems.push("mode is \"redis\" but no Redis URL is configured (redis.url or $HOOKTRAIL_REDIS_URL); using the local socket".to_owned());
        mode = Mode::Local;
    }

    let redaction = crate::redact::settings::from_config(
        file.privacy,
        file.redact,
        env("HOOKTRAIL_PRIVACY"),
        &mut origins,
        &mut problems,
    );

    let budgets = crate::budget::Budgets::from_config(
        file.budgets.as_ref(),
        file.budgets_offline.as_ref(),
        &mut problems,
    );
    if !budgets.is_empty() {
        origins.push(from_file("budgets"));
    }
    let approvals = crate::approvals::from_config(file.approvals, env, &mut origins, &mut problems);

    let redis = match (mode, url) {
        (Mode::Redis, Some(url)) => Some(RedisConfig {
            url,
            transport,
            key,
            maxlen,
            ca_file,
        }),
        _ => None,
    };
    LoadedConfig {
        config: Config {
            mode,
            redis,
            socket,
            spool_dir,
            state_dir,
            file: file_used.then_some(file_path),
            redaction,
            budgets,
            approvals,
        },
        origins,
        problems,
    }
}

/// Reads and checks the config file. Returns the parsed file (default when
/// unusable) and whether it was used.
fn read_file(path: &Path, explicit: bool, problems: &mut Vec<String>) -> (FileConfig, bool) {
    let name = path.display();
    let text = match read_own_file(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && !explicit => {
            return (FileConfig::default(), false);
        }
        Err(error) => {
            problems.push(format!(
                "cannot read config file {name}: {error}; ignoring it"
            ));
            return (FileConfig::default(), false);
        }
    };
    let parsed: FileConfig = match serde_json::from_str(&text) {
        Ok(parsed) => parsed,
        Err(error) => {
            problems.push(format!(
                "config file {name} is not valid JSON ({error}); ignoring it"
            ));
            return (FileConfig::default(), false);
        }
    };
    let holds_password = parsed
        .redis
        .as_ref()
        .and_then(|redis| redis.url.as_deref())
        .is_some_and(url_has_password);
    if holds_password {
        if let Ok(metadata) = fs::metadata(path) {
            let mode = metadata.permissions().mode();
            if mode & 0o077 != 0 {
                problems.push(format!(
                    "refusing config file {name}: it holds a Redis password and other users can read it (mode {:04o}); run: chmod 600 {name}",
                    mode & 0o7777
                ));
                return (FileConfig::default(), false);
            }
        }
    }
    (parsed, true)
}

/// Reads a config file that we or root own. A file another user owns is
/// refused: it could send our events to their Redis (with `HOME` unset, the
/// default path was once under a `/tmp` anyone can write in).
fn read_own_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let mut file = fs::File::open(path)?;
    let metadata = file.metadata()?;
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
    let mut text = String::with_capacity(metadata.len() as usize);
    file.read_to_string(&mut text)?;
    Ok(text)
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
        assert_eq!(loaded.problems.len(), 1);
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
        // A bad value costs the setting, not the whole file.
        let (maxlen, problems) = maxlen_of("-1", None);
        assert_eq!((maxlen, problems.len()), (DEFAULT_MAXLEN, 1));
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
