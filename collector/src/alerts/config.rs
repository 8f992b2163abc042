//! The `alerts` and `public_url` keys of the config file (DESIGN §4):
//! destinations, rules, and the secrets they name.
//!
//! The shared loader ignores keys it does not know, so the emitter never
//! parses this part; the collector reads the same file once more at start.
//! Every problem is an error that stops the collector with the key it is
//! about: someone who asked for alerts and gets none is worse off than one
//! told at once.
//!
//! Secrets (a webhook's URL or HMAC key, a Slack URL, an ntfy token) never
//! sit in the config itself: the config names a file, which must be a
//! regular file of ours that no other user can read (0600), at most 64 KiB.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use hooktrail_shared::paths;

/// Largest secret file accepted: a URL or a key, never a document.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Default delivery timeout of each attempt (HTTP request or command).
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default of `retry_base_ms`: the first retry waits this long, each next
/// one twice as long as the one before.
const DEFAULT_RETRY_BASE_MS: u64 = 5_000;

/// The longest wait between two attempts, whatever the backoff reached.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);

/// An alert not delivered after this long is given up (`failed`).
const GIVE_UP_AFTER: Duration = Duration::from_secs(86_400);

/// Default of `rate_per_minute`.
const DEFAULT_RATE_PER_MINUTE: u32 = 30;

/// Default of `keep_days`: how long delivered and given-up alerts stay in
/// the outbox (and in `/api/alerts`).
const DEFAULT_KEEP_DAYS: u64 = 30;

/// The least `keep_days` accepted: an outbox row is also the memory of its
/// episode, and the time rules look back one day (`store/outbox.rs`), so a
/// pruned episode must be older than that or it would be raised again.
const MIN_KEEP_DAYS: u64 = 2;

/// Everything about alerts, resolved at start.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// Where alerts go, by name, in the config's order.
    pub(crate) destinations: Vec<Destination>,
    /// What raises an alert, and to whom.
    pub(crate) rules: Vec<Rule>,
    /// The page's address as the people alerted reach it (a VPN name, an SSH
    /// tunnel), for the deep link in each alert.
    pub(crate) public_url: String,
    /// How a failed delivery is retried.
    pub(crate) retry: RetryPolicy,
    /// How long sent and given-up alerts are kept (`keep_days`); pending
    /// ones are kept until delivered or given up.
    pub(crate) keep_for: Duration,
}

/// Retries of a failed delivery: exponential from `base`, at most
/// `max_delay` apart, given up after `give_up_after`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    /// The wait before the first retry (`alerts.retry_base_ms`; tests make it
    /// short so a receiver down for 30 s does not cost minutes of waiting).
    pub(crate) base: Duration,
    /// Cap of the exponential wait.
    pub(crate) max_delay: Duration,
    /// Age after which an undelivered alert is marked `failed`.
    pub(crate) give_up_after: Duration,
}

impl RetryPolicy {
    /// The wait after the `attempts`-th failed attempt (1 = the first).
    pub(crate) fn delay(&self, attempts: u32) -> Duration {
        let factor = 1u32 << attempts.saturating_sub(1).min(20);
        self.base.saturating_mul(factor).min(self.max_delay)
    }
}

/// One named destination.
#[derive(Debug, Clone)]
pub(crate) struct Destination {
    /// The name rules use in `to`, and the label in `/metrics`.
    pub(crate) name: String,
    /// How an alert is delivered there.
    pub(crate) kind: DestinationKind,
    /// Longest time one attempt may take.
    pub(crate) timeout: Duration,
    /// Most deliveries per minute; the rest wait (in order), none is dropped.
    pub(crate) rate_per_minute: u32,
}

/// How a destination is reached. Secret values come from files.
#[derive(Clone)]
pub(crate) enum DestinationKind {
    /// A JSON POST signed with HMAC-SHA256 of the body.
    Webhook {
        /// May be a secret (a token in the path): never logged.
        url: String,
        /// The HMAC key, from `secret_file`.
        secret: Vec<u8>,
    },
    /// A Slack incoming webhook (the URL is the secret).
    Slack { url: String },
    /// An ntfy topic URL, with an optional access token.
    Ntfy { url: String, token: Option<String> },
    /// A program run without a shell, the alert as JSON on its stdin.
    Command { argv: Vec<String> },
}

impl DestinationKind {
    /// The kind's config name.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            DestinationKind::Webhook { .. } => "webhook",
            DestinationKind::Slack { .. } => "slack",
            DestinationKind::Ntfy { .. } => "ntfy",
            DestinationKind::Command { .. } => "command",
        }
    }

    /// Secret strings to blank out of any error text before it is stored or
    /// logged (an HTTP library may quote the URL).
    pub(crate) fn secrets(&self) -> Vec<&str> {
        match self {
            DestinationKind::Webhook { url, .. } | DestinationKind::Slack { url } => vec![url],
            DestinationKind::Ntfy { url, token } => {
                let mut secrets = vec![url.as_str()];
                secrets.extend(token.as_deref());
                secrets
            }
            DestinationKind::Command { .. } => Vec::new(),
        }
    }
}

impl std::fmt::Debug for DestinationKind {
    /// Names the kind only: URLs, keys and tokens stay out of debug output.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DestinationKind::Command { argv } => write!(formatter, "Command({argv:?})"),
            other => formatter.write_str(other.as_str()),
        }
    }
}

/// One rule: a condition, optional filters, and its destinations. The
/// writer keeps the rules with its connection (serialized), hence serde.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Rule {
    /// Part of each alert's once-per-episode key: the config's `name`, else
    /// one made from the condition (`waiting>=20s`), so reordering rules
    /// raises nothing twice.
    pub(crate) name: String,
    /// What raises it.
    pub(crate) when: Condition,
    /// Only sessions on these machines (empty: any).
    pub(crate) machines: Vec<String>,
    /// Only sessions in these projects: a directory (the session's directory
    /// or one below it) or a directory's last name (empty: any).
    pub(crate) projects: Vec<String>,
    /// Destination names.
    pub(crate) to: Vec<String>,
}

/// The conditions of DESIGN §4.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub(crate) enum Condition {
    /// Waiting for you for at least this long.
    Waiting { after_seconds: u64 },
    /// A turn ended on an API error (`StopFailure`).
    Failed,
    /// Working or compacting with no event for `--quiet-after`.
    GoneQuiet,
    /// The session ended.
    Ended,
    /// A budget crossed its warning or its limit (raised by the budgets code).
    Budget,
    /// A session's, or a day's, cost reached an amount.
    Cost { amount_usd: f64, per: CostPer },
    /// A permission request waits for a decision (raised by the approvals code).
    ApprovalPending,
}

impl Condition {
    /// The config's `when` word.
    pub(crate) fn word(&self) -> &'static str {
        match self {
            Condition::Waiting { .. } => "waiting",
            Condition::Failed => "failed",
            Condition::GoneQuiet => "gone_quiet",
            Condition::Ended => "ended",
            Condition::Budget => "budget",
            Condition::Cost { .. } => "cost",
            Condition::ApprovalPending => "approval_pending",
        }
    }
}

/// What a `cost` rule sums.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum CostPer {
    /// One session's running total.
    Session,
    /// Every session's cost since midnight UTC.
    Day,
}

impl Rule {
    /// Whether a session on `machine` in directory `cwd` passes the filters.
    pub(crate) fn admits(&self, machine: &str, cwd: Option<&str>) -> bool {
        let machine_ok =
            self.machines.is_empty() || self.machines.iter().any(|wanted| wanted == machine);
        let project_ok = self.projects.is_empty()
            || cwd.is_some_and(|cwd| self.projects.iter().any(|wanted| in_project(cwd, wanted)));
        machine_ok && project_ok
    }
}

/// `cwd` is the project directory `wanted`, below it, or (for a name
/// without a slash) a directory of that name.
fn in_project(cwd: &str, wanted: &str) -> bool {
    let cwd = cwd.trim_end_matches('/');
    if wanted.contains('/') {
        let wanted = wanted.trim_end_matches('/');
        return cwd == wanted
            || cwd
                .strip_prefix(wanted)
                .is_some_and(|rest| rest.starts_with('/'));
    }
    cwd.rsplit('/').next() == Some(wanted)
}

/// The file's `alerts` key, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAlerts {
    #[serde(default)]
    destinations: Vec<FileDestination>,
    #[serde(default)]
    rules: Vec<FileRule>,
    retry_base_ms: Option<u64>,
    keep_days: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDestination {
    name: String,
    kind: String,
    url: Option<String>,
    url_file: Option<String>,
    secret_file: Option<String>,
    token_file: Option<String>,
    argv: Option<Vec<String>>,
    timeout_seconds: Option<f64>,
    rate_per_minute: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    name: Option<String>,
    when: String,
    after_seconds: Option<u64>,
    amount_usd: Option<f64>,
    per: Option<String>,
    #[serde(default)]
    machines: Vec<String>,
    #[serde(default)]
    projects: Vec<String>,
    to: Vec<String>,
}

/// The two top-level keys this module reads.
#[derive(Deserialize)]
struct FileTop {
    alerts: Option<serde_json::Value>,
    public_url: Option<String>,
}

/// Reads `alerts` and `public_url` from the config file (or
/// `$HOOKTRAIL_ALERTS`, JSON text, and `$HOOKTRAIL_PUBLIC_URL`). `None`
/// when no alerts are configured. `default_url` is the page's own address.
pub(crate) fn load(
    file: Option<&Path>,
    env: paths::EnvLookup,
    default_url: Option<String>,
) -> Result<Option<AlertSettings>, String> {
    let mut top = FileTop {
        alerts: None,
        public_url: None,
    };
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("config file {}: {error}", path.display()))?;
        // The shared loader already accepted this file as JSON.
        top = serde_json::from_str(&text).unwrap_or(top);
    }
    let mut alerts_origin = "the config file's \"alerts\"".to_owned();
    if let Some(text) = env("HOOKTRAIL_ALERTS").filter(|text| !text.trim().is_empty()) {
        top.alerts = Some(
            serde_json::from_str(&text)
                .map_err(|error| format!("$HOOKTRAIL_ALERTS is not JSON: {error}"))?,
        );
        alerts_origin = "$HOOKTRAIL_ALERTS".to_owned();
    }
    if let Some(url) = env("HOOKTRAIL_PUBLIC_URL").filter(|url| !url.is_empty()) {
        top.public_url = Some(url);
    }
    let Some(value) = top.alerts else {
        return Ok(None);
    };
    let parsed: FileAlerts =
        serde_json::from_value(value).map_err(|error| format!("{alerts_origin}: {error}"))?;
    let public_url = top
        .public_url
        .or(default_url)
        .unwrap_or_else(|| format!("http://{}", crate::defaults::DEFAULT_HTTP));
    if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
        return Err(format!(
            "public_url must start with http:// or https://, not {public_url:?}"
        ));
    }
    resolve(parsed, public_url, env).map(Some)
}

fn resolve(
    parsed: FileAlerts,
    public_url: String,
    env: paths::EnvLookup,
) -> Result<AlertSettings, String> {
    let mut destinations: Vec<Destination> = Vec::new();
    for file in parsed.destinations {
        let destination = destination(file, env)?;
        if destinations
            .iter()
            .any(|seen| seen.name == destination.name)
        {
            return Err(format!(
                "alerts: two destinations are named {:?}",
                destination.name
            ));
        }
        destinations.push(destination);
    }
    let mut rules: Vec<Rule> = Vec::new();
    for (index, file) in parsed.rules.into_iter().enumerate() {
        let rule = rule(file).map_err(|error| format!("alerts.rules[{index}]: {error}"))?;
        for name in &rule.to {
            if !destinations.iter().any(|known| &known.name == name) {
                return Err(format!(
                    "alerts.rules[{index}]: \"to\" names {name:?}, which is not a destination"
                ));
            }
        }
        if rules.iter().any(|seen| seen.name == rule.name) {
            return Err(format!(
                "alerts.rules[{index}]: another rule has the name {:?}; give one a \"name\"",
                rule.name
            ));
        }
        rules.push(rule);
    }
    let keep_days = parsed.keep_days.unwrap_or(DEFAULT_KEEP_DAYS);
    if !(MIN_KEEP_DAYS..=36_500).contains(&keep_days) {
        return Err(format!(
            "alerts.keep_days {keep_days} is not in {MIN_KEEP_DAYS}..=36500 (a kept alert also stops its episode from alerting again)"
        ));
    }
    Ok(AlertSettings {
        keep_for: Duration::from_secs(keep_days * 86_400),
        destinations,
        rules,
        public_url: public_url.trim_end_matches('/').to_owned(),
        retry: RetryPolicy {
            base: Duration::from_millis(
                parsed.retry_base_ms.unwrap_or(DEFAULT_RETRY_BASE_MS).max(1),
            ),
            max_delay: MAX_RETRY_DELAY,
            give_up_after: GIVE_UP_AFTER,
        },
    })
}

fn destination(file: FileDestination, env: paths::EnvLookup) -> Result<Destination, String> {
    let name = file.name.clone();
    let at = |what: &str| format!("alerts destination {name:?}: {what}");
    if name.is_empty() || name.contains(['"', '\\', '\n']) {
        return Err(at(
            "a name must be non-empty, without quotes or backslashes",
        ));
    }
    let secret = |key: &str, path: &Option<String>| -> Result<Option<String>, String> {
        path.as_deref()
            .map(|path| {
                read_secret_file(&paths::expand(path, env))
                    .map_err(|error| at(&format!("{key}: {error}")))
            })
            .transpose()
    };
    let url = match (&file.url, secret("url_file", &file.url_file)?) {
        (Some(_), Some(_)) => return Err(at("give \"url\" or \"url_file\", not both")),
        (Some(url), None) => Some(url.clone()),
        (None, from_file) => from_file,
    };
    if let Some(url) = &url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(at("the URL must start with http:// or https://"));
        }
    }
    let need_url = || {
        url.clone()
            .ok_or_else(|| at("needs \"url\" or \"url_file\""))
    };
    let kind = match file.kind.as_str() {
        "webhook" => DestinationKind::Webhook {
            url: need_url()?,
            secret: secret("secret_file", &file.secret_file)?
                .ok_or_else(|| at("a webhook needs \"secret_file\" (the HMAC-SHA256 key its receiver verifies)"))?
                .into_bytes(),
        },
        "slack" => {
            if file.url.is_some() {
                return Err(at("a Slack webhook URL is a secret: put it in a 0600 file named by \"url_file\""));
            }
            DestinationKind::Slack { url: need_url()? }
        }
        "ntfy" => DestinationKind::Ntfy {
            url: need_url()?,
            token: secret("token_file", &file.token_file)?,
        },
        "command" => {
            let argv = file.argv.clone().unwrap_or_default();
            if argv.is_empty() || argv[0].is_empty() {
                return Err(at("a command needs \"argv\": [program, arguments...] (run without a shell)"));
            }
            DestinationKind::Command { argv }
        }
        other => {
            return Err(at(&format!(
                "unknown kind {other:?} (use webhook, slack, ntfy or command)"
            )))
        }
    };
    let unused = match kind {
        DestinationKind::Webhook { .. } => file.argv.is_some() || file.token_file.is_some(),
        DestinationKind::Slack { .. } => {
            file.argv.is_some() || file.token_file.is_some() || file.secret_file.is_some()
        }
        DestinationKind::Ntfy { .. } => file.argv.is_some() || file.secret_file.is_some(),
        DestinationKind::Command { .. } => {
            url.is_some() || file.token_file.is_some() || file.secret_file.is_some()
        }
    };
    if unused {
        return Err(at(&format!(
            "has a key a {} destination does not use",
            kind.as_str()
        )));
    }
    let timeout = match file.timeout_seconds {
        Some(seconds) if seconds > 0.0 && seconds <= 300.0 => Duration::from_secs_f64(seconds),
        Some(seconds) => return Err(at(&format!("timeout_seconds {seconds} is not in 0..=300"))),
        None => DEFAULT_TIMEOUT,
    };
    Ok(Destination {
        name,
        kind,
        timeout,
        rate_per_minute: file
            .rate_per_minute
            .unwrap_or(DEFAULT_RATE_PER_MINUTE)
            .max(1),
    })
}

fn rule(file: FileRule) -> Result<Rule, String> {
    let when = match file.when.as_str() {
        "waiting" => Condition::Waiting {
            after_seconds: file.after_seconds.unwrap_or(0),
        },
        "failed" => Condition::Failed,
        "gone_quiet" => Condition::GoneQuiet,
        "ended" => Condition::Ended,
        "budget" => Condition::Budget,
        "approval_pending" => Condition::ApprovalPending,
        "cost" => {
            let amount_usd = file
                .amount_usd
                .filter(|amount| amount.is_finite() && *amount > 0.0)
                .ok_or("a cost rule needs \"amount_usd\", a positive number")?;
            let per = match file.per.as_deref().unwrap_or("session") {
                "session" => CostPer::Session,
                "day" => CostPer::Day,
                other => return Err(format!("\"per\" is \"session\" or \"day\", not {other:?}")),
            };
            Condition::Cost { amount_usd, per }
        }
        other => {
            return Err(format!(
                "unknown \"when\" {other:?} (use waiting, failed, gone_quiet, ended, budget, cost or approval_pending)"
            ))
        }
    };
    if file.after_seconds.is_some() && !matches!(when, Condition::Waiting { .. }) {
        return Err("\"after_seconds\" is for \"waiting\" rules".to_owned());
    }
    if (file.amount_usd.is_some() || file.per.is_some()) && !matches!(when, Condition::Cost { .. })
    {
        return Err("\"amount_usd\" and \"per\" are for \"cost\" rules".to_owned());
    }
    if file.to.is_empty() {
        return Err("\"to\" names no destination".to_owned());
    }
    let name = file.name.unwrap_or_else(|| match when {
        Condition::Waiting { after_seconds } => format!("waiting>={after_seconds}s"),
        Condition::Cost { amount_usd, per } => format!(
            "cost>={amount_usd}usd/{}",
            if per == CostPer::Day {
                "day"
            } else {
                "session"
            }
        ),
        other => other.word().to_owned(),
    });
    Ok(Rule {
        name,
        when,
        machines: file.machines,
        projects: file.projects,
        to: file.to,
    })
}

/// Reads a secret: a regular file of ours (not a symlink), that neither
/// group nor others can read, at most 64 KiB; its text, trimmed.
pub(crate) fn read_secret_file(path: &PathBuf) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let name = path.display();
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|error| format!("cannot open {name}: {error}"))?;
    let metadata = file
        .metadata()
        .map_err(|error| format!("cannot read {name}: {error}"))?;
    if !metadata.is_file() {
        return Err(format!("{name} is not a regular file"));
    }
    if metadata.uid() != paths::euid() {
        return Err(format!(
            "{name} belongs to uid {}, not to us",
            metadata.uid()
        ));
    }
    if metadata.mode() & 0o077 != 0 {
        return Err(format!(
            "{name} can be read by other users (mode {:04o}); run: chmod 600 {name}",
            metadata.mode() & 0o7777
        ));
    }
    if metadata.len() > MAX_SECRET_BYTES {
        return Err(format!("{name} is larger than 64 KiB"));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|error| format!("cannot read {name}: {error}"))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("{name} is empty"));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings_from(
        alerts: serde_json::Value,
        dir: &Path,
    ) -> Result<Option<AlertSettings>, String> {
        let file = dir.join("config.json");
        std::fs::write(&file, serde_json::json!({ "alerts": alerts }).to_string()).unwrap();
        let home = dir.display().to_string();
        let env = move |name: &str| (name == "HOME").then(|| home.clone());
        load(Some(&file), &env, None)
    }

    fn private_file(dir: &Path, name: &str, text: &str, mode: u32) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path.display().to_string()
    }

    #[test]
    fn the_issue_shape_parses_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let secret = private_file(dir.path(), "webhook.secret", "key\n", 0o600);
        let settings = settings_from(
            serde_json::json!({"destinations": [{"name": "me", "kind": "webhook", "url": "http://127.0.0.1:9999/hook", "secret_file": secret}],
                               "rules": [{"when": "waiting", "after_seconds": 20, "to": ["me"]}, {"when": "failed", "to": ["me"]}]}),
            dir.path(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(settings.rules[0].name, "waiting>=20s");
        assert_eq!(
            settings.rules[0].when,
            Condition::Waiting { after_seconds: 20 }
        );
        assert_eq!(settings.rules[1].when, Condition::Failed);
        assert_eq!(settings.public_url, "http://127.0.0.1:7717");
        match &settings.destinations[0].kind {
            DestinationKind::Webhook { secret, .. } => assert_eq!(secret, b"key"),
            other => panic!("{other:?}"),
        }
        assert_eq!(settings.destinations[0].timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn a_secret_file_others_can_read_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let secret = private_file(dir.path(), "webhook.secret", "key", 0o644);
        let error = settings_from(
            serde_json::json!({"destinations": [{"name": "me", "kind": "webhook", "url": "http://x/", "secret_file": secret}]}),
            dir.path(),
        )
        .unwrap_err();
        assert!(
            error.contains("webhook.secret") && error.contains("chmod 600"),
            "{error}"
        );
    }

    #[test]
    fn slack_urls_only_from_files_and_rules_name_known_destinations() {
        let dir = tempfile::tempdir().unwrap();
        let error = settings_from(
            serde_json::json!({"destinations": [{"name": "chat", "kind": "slack", "url": "https://hooks.slack.com/x"}]}),
            dir.path(),
        )
        .unwrap_err();
        assert!(error.contains("url_file"), "{error}");
        let error = settings_from(
            serde_json::json!({"destinations": [{"name": "run", "kind": "command", "argv": ["true"]}],
                               "rules": [{"when": "ended", "to": ["nobody"]}]}),
            dir.path(),
        )
        .unwrap_err();
        assert!(error.contains("nobody"), "{error}");
        let error = settings_from(
            serde_json::json!({"destinations": [], "rules": [{"when": "soon", "to": []}]}),
            dir.path(),
        )
        .unwrap_err();
        assert!(error.contains("soon"), "{error}");
        let error = settings_from(
            serde_json::json!({"destinations": [], "rulez": []}),
            dir.path(),
        )
        .unwrap_err();
        assert!(error.contains("rulez"), "{error}");
    }

    #[test]
    fn project_and_machine_filters() {
        let rule = Rule {
            name: "r".into(),
            when: Condition::Ended,
            machines: vec!["box".into()],
            projects: vec!["/home/dev/api".into(), "web".into()],
            to: vec![],
        };
        assert!(rule.admits("box", Some("/home/dev/api")));
        assert!(rule.admits("box", Some("/home/dev/api/sub")));
        assert!(!rule.admits("box", Some("/home/dev/api2")));
        assert!(rule.admits("box", Some("/srv/web")));
        assert!(!rule.admits("other", Some("/srv/web")));
        assert!(!rule.admits("box", None));
    }

    #[test]
    fn keep_days_defaults_to_30_and_must_outlast_the_lookback() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings_from(serde_json::json!({}), dir.path())
            .unwrap()
            .unwrap();
        assert_eq!(settings.keep_for, Duration::from_secs(30 * 86_400));
        let error = settings_from(serde_json::json!({"keep_days": 1}), dir.path()).unwrap_err();
        assert!(error.contains("keep_days 1"), "{error}");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            base: Duration::from_secs(5),
            max_delay: Duration::from_secs(3600),
            give_up_after: GIVE_UP_AFTER,
        };
        assert_eq!(policy.delay(1), Duration::from_secs(5));
        assert_eq!(policy.delay(2), Duration::from_secs(10));
        assert_eq!(policy.delay(4), Duration::from_secs(40));
        assert_eq!(policy.delay(40), Duration::from_secs(3600));
    }
}
