//! Remote approval, the collector's side (issue 18, DESIGN §2, §6, §7).
//!
//! A person decides a pending `PermissionRequest` on the page
//! (`POST /api/approvals/{event_id}`, see `serve::approvals`). Here the
//! decision is recorded once (`store::decisions`: a second one is a 409),
//! bound to the stored request (its session and the hash of its redacted
//! tool call), signed with the shared key, and handed to the hook where it
//! waits: `LPUSH` + `EXPIRE` on `<key>:decision:<event_id>` when the event
//! came through Redis, a line on the waiting socket connection when it came
//! through the socket. Whether the hook took it is recorded too.
//!
//! Also here: the key (created at the first start with approvals on), the
//! named tokens with their roles, the away switch and its mirrors (Redis
//! keys, a file next to the socket) that the hooks read.

use hooktrail_shared::signed::constant_time_equal;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hooktrail_shared::approvals::WaitPolicy;
use hooktrail_shared::config::RedisConfig;
use hooktrail_shared::signed::{payload_input_hash, Key, Kind, SignedMessage, Unsigned, Verdict};
use hooktrail_shared::time::now_millis;
use serde::Deserialize;

use crate::log;
use crate::settings::Settings;
use crate::sources::socket::DecisionMailbox;
use crate::store::decisions::{Claim, DecisionStore};

/// How long a decision waits for the socket loop to write it.
const SOCKET_DELIVERY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a decision stays in Redis for a hook that has not started its
/// `BLPOP` yet.
const REDIS_DECISION_TTL_SECONDS: u64 = 600;

/// The longest reason kept, in characters.
pub(crate) const MAX_REASON_CHARS: usize = 1000;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything; decide nothing.
    Viewer,
    /// Read, and decide permission requests.
    Approver,
    /// A role this version does not know: treated as a viewer.
    #[serde(other)]
    Unknown,
}

/// One named token of the tokens file.
#[derive(Debug, Clone, Deserialize)]
struct NamedToken {
    /// Who holds it: recorded as `decided_by`.
    name: String,
    /// What it may do.
    role: Role,
    /// The secret itself.
    token: String,
}

/// The tokens file: `{"tokens": [{"name", "role", "token"}]}`, 0600.
#[derive(Debug, Default, Deserialize)]
struct TokensFile {
    #[serde(default)]
    tokens: Vec<NamedToken>,
}

/// The named tokens (besides the API's own token, which is the approver
/// `owner`).
#[derive(Debug, Default)]
pub struct NamedTokens {
    /// Name and role by token.
    by_token: HashMap<String, (String, Role)>,
}

impl NamedTokens {
    /// Reads the tokens file; a missing file is no named tokens, a file
    /// others can read or that is not ours is refused with an error.
    pub(crate) fn load(path: &Path) -> Result<NamedTokens, String> {
        use std::os::unix::fs::MetadataExt;
        let name = path.display();
        let metadata = match std::fs::symlink_metadata(path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(NamedTokens::default())
            }
            Err(error) => return Err(format!("tokens file {name}: {error}")),
        };
        if !metadata.is_file()
            || metadata.uid() != hooktrail_shared::paths::euid()
            || metadata.mode() & 0o077 != 0
        {
            return Err(format!(
                "tokens file {name}: must be a regular file of ours that nobody else can read (chmod 600 {name})"
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("tokens file {name}: {error}"))?;
        let file: TokensFile =
            serde_json::from_str(&text).map_err(|error| format!("tokens file {name}: {error}"))?;
        let by_token = file
            .tokens
            .into_iter()
            .filter(|entry| entry.token.len() >= 16)
            .map(|entry| (entry.token, (entry.name, entry.role)))
            .collect();
        Ok(NamedTokens { by_token })
    }

    /// The name and role of `token`, compared in constant time per entry.
    pub(crate) fn lookup(&self, token: &str) -> Option<(&str, Role)> {
        self.by_token.iter().find_map(|(known, (name, role))| {
            constant_time_equal(known.as_bytes(), token.as_bytes())
                .then_some((name.as_str(), *role))
        })
    }
}

/// The outcome of one decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Recorded, signed and handed over; whether the hook took it.
    Decided {
        /// `hook` or `not_taken`.
        delivered: &'static str,
    },
    /// No such waiting request.
    NotFound,
    /// Decided already, or the hook stopped waiting.
    Conflict(&'static str),
}

/// Remote approval's state in a running collector.
pub struct Approvals {
    /// Signs decisions.
    key: Key,
    /// Records decisions (its own read-write connection).
    store: Mutex<DecisionStore>,
    /// Where Redis-delivered hooks wait.
    redis: Option<RedisConfig>,
    /// Where socket-delivered hooks wait.
    mailbox: Arc<DecisionMailbox>,
    /// Tokens besides the API's own.
    pub(crate) tokens: NamedTokens,
    /// Why decisions are refused on this collector (a non-loopback
    /// listener without TLS), if they are.
    pub(crate) refused: Option<String>,
    /// The socket whose `.away` mirror file this collector writes.
    socket: Option<PathBuf>,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Approvals")
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

impl Approvals {
    /// Sets remote approval up when it is on: the config's `approvals.wait`
    /// is not `never`, or the key file exists. Creates the key at the first
    /// start. `None` when it is off.
    pub(crate) fn start(
        settings: &Settings,
        mailbox: Arc<DecisionMailbox>,
    ) -> Result<Option<Arc<Approvals>>, String> {
        let config = &settings.approvals;
        let wanted = config.wait != WaitPolicy::Never || config.key_file.exists();
        if !wanted {
            return Ok(None);
        }
        let (key, created) =
            Key::load_or_create(&config.key_file).map_err(|error| error.to_string())?;
        if created {
            log::info(&format!(
                "approvals: created the shared key {} (copy it, 0600, to other machines whose hooks should wait)",
                config.key_file.display()
            ));
        }
        let tokens = match &settings.token_file {
            Some(path) => NamedTokens::load(&path.with_file_name("tokens.json"))?,
            None => NamedTokens::default(),
        };
        let refused = settings
            .http
            .filter(|address| !address.ip().is_loopback())
            .map(|address| {
                format!(
                    "approvals are refused on {address}: it is not a loopback address and this collector serves no TLS, so the token would cross the network in clear; reach the page through an SSH tunnel or a TLS reverse proxy to a loopback listener"
                )
            });
        if let Some(reason) = &refused {
            log::warn(reason);
        }
        Ok(Some(Arc::new(Approvals {
            key,
            store: Mutex::new(DecisionStore::open(&settings.database)?),
            redis: settings.redis.clone(),
            mailbox,
            tokens,
            refused,
            socket: settings.socket.clone(),
        })))
    }

    /// Decides one request: records it once, signs it, hands it to the
    /// waiting hook and records whether the hook took it.
    pub(crate) fn decide(
        &self,
        event_id: &str,
        verdict: Verdict,
        reason: &str,
        decided_by: &str,
    ) -> Result<Outcome, String> {
        let store = self
            .store
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let now = now_millis();
        let request = store
            .request(event_id)
            .map_err(|error| format!("reading the request: {error}"))?;
        let Some(request) = request else {
            return Ok(Outcome::NotFound);
        };
        if request.decided {
            return Ok(Outcome::Conflict("this request is decided already"));
        }
        if request.expires_at <= now {
            return Ok(Outcome::Conflict(
                "the hook stopped waiting for this request",
            ));
        }
        let input_hash = payload_input_hash(&request.payload).unwrap_or_default();
        let claimed = store
            .claim(&Claim {
                event_id,
                verdict: verdict.as_str(),
                reason,
                decided_by,
                input_hash: &input_hash,
                now,
            })
            .map_err(|error| format!("recording the decision: {error}"))?;
        if !claimed {
            return Ok(Outcome::Conflict("this request is decided already"));
        }
        let message = SignedMessage::sign(
            &self.key,
            Unsigned {
                kind: Kind::Permission,
                event_id: event_id.to_owned(),
                session_id: request.session_id.clone(),
                input_hash,
                verdict,
                reason: reason.to_owned(),
                by: decided_by.to_owned(),
                exp: request.expires_at.max(0) as u64,
            },
        );
        let taken = match request.source.as_str() {
            "redis" => self.deliver_redis(event_id, &message.to_line()),
            "socket" => self
                .mailbox
                .deliver(event_id, message.to_line(), SOCKET_DELIVERY_TIMEOUT),
            _ => false,
        };
        let delivered = if taken { "hook" } else { "not_taken" };
        if let Err(error) = store.set_delivered(event_id, delivered) {
            log::warn(&format!("approvals: cannot record the delivery: {error}"));
        }
        Ok(Outcome::Decided { delivered })
    }

    /// `LPUSH` + `EXPIRE` on the request's decision list, then `LLEN`: a
    /// hook blocked in `BLPOP` takes the message at once, so an empty list
    /// means it was taken.
    fn deliver_redis(&self, event_id: &str, line: &str) -> bool {
        let Some(config) = &self.redis else {
            return false;
        };
        let list = format!("{}:decision:{event_id}", config.key);
        let result = crate::sources::redis::client_for(config)
            .and_then(|client| {
                client
                    .get_connection_with_timeout(Duration::from_secs(2))
                    .map_err(|error| error.to_string())
            })
            .and_then(|mut connection| {
                let (_, _, left): (i64, i64, i64) = redis::pipe()
                    .cmd("LPUSH")
                    .arg(&list)
                    .arg(line)
                    .cmd("EXPIRE")
                    .arg(&list)
                    .arg(REDIS_DECISION_TTL_SECONDS)
                    .cmd("LLEN")
                    .arg(&list)
                    .query(&mut connection)
                    .map_err(|error| error.to_string())?;
                Ok(left == 0)
            });
        result.unwrap_or_else(|error| {
            log::warn(&format!(
                "approvals: cannot hand the decision to Redis: {error}"
            ));
            false
        })
    }

    /// Turns the away switch on or off and mirrors it at once.
    pub(crate) fn set_away(&self, machine: &str, on: bool) -> Result<(), String> {
        self.store
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .set_away(machine, on, now_millis())
            .map_err(|error| format!("recording the away switch: {error}"))
    }

    /// The socket whose `.away` mirror this collector keeps.
    pub(crate) fn socket(&self) -> Option<&Path> {
        self.socket.as_deref()
    }

    /// The Redis config, for the away mirror.
    pub(crate) fn redis(&self) -> Option<&RedisConfig> {
        self.redis.as_ref()
    }
}

/// Mirrors the away switch where hooks read it, every second, until
/// `shutdown`: `SET <key>:away:<machine> 1 PX 5000` in Redis (so a switch
/// turned off, or a collector gone, lapses within seconds) and `1` in the
/// file next to the socket for this machine.
pub(crate) fn mirror_away(
    approvals: Arc<Approvals>,
    database: PathBuf,
    shutdown: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, String> {
    crate::service::spawn_thread("away", move || {
        let machine = hostname::get()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut redis = None;
        while !shutdown.load(Ordering::Relaxed) {
            let on: Vec<String> = crate::store::read::open_read_only(&database)
                .and_then(|connection| crate::store::decisions::away_machines(&connection))
                .map(|rows| rows.into_iter().map(|(machine, _)| machine).collect())
                .unwrap_or_default();
            if let Some(socket) = approvals.socket() {
                let here = on.iter().any(|name| name == "*" || *name == machine);
                write_away_file(&socket.with_extension("away"), here);
            }
            if let Some(config) = approvals.redis() {
                mirror_to_redis(config, &on, &mut redis);
            }
            for _ in 0..10 {
                if shutdown.load(Ordering::Relaxed) {
                    break;
                }
                // The mirror is refreshed each second; a signal ends the wait
                // within a tenth.
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    })
}

fn write_away_file(path: &Path, on: bool) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if !on {
        let _ = std::fs::remove_file(path);
        return;
    }
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .and_then(|mut file| file.write_all(b"1\n"));
    if let Err(error) = written {
        log::warn(&format!(
            "approvals: cannot write {}: {error}",
            path.display()
        ));
    }
}

fn mirror_to_redis(
    config: &RedisConfig,
    on: &[String],
    connection: &mut Option<redis::Connection>,
) {
    if on.is_empty() {
        return;
    }
    if connection.is_none() {
        *connection = crate::sources::redis::client_for(config)
            .ok()
            .and_then(|client| {
                client
                    .get_connection_with_timeout(Duration::from_secs(2))
                    .ok()
            });
    }
    let Some(open) = connection.as_mut() else {
        return;
    };
    let mut pipe = redis::pipe();
    for machine in on {
        pipe.cmd("SET")
            .arg(format!("{}:away:{machine}", config.key))
            .arg("1")
            .arg("PX")
            .arg(5000)
            .ignore();
    }
    if pipe.query::<()>(open).is_err() {
        *connection = None;
    }
}
