//! The budget thread: keeps the verdict of every configured budget current
//! (DESIGN §4 `budgets`), for `/api/budgets`, `/metrics`, the socket's `ok`
//! reply and the Redis mirror that hooks read.
//!
//! It watches the database for commits (`PRAGMA data_version` on its own
//! read-only connection, every [`POLL`]) and recomputes after each, so a
//! verdict trails the usage that changed it by one poll and one short
//! computation, never by a hook's round trip. The writer knows nothing of
//! budgets: a collector without budgets pays nothing, and a slow budget sum
//! never delays an acknowledgement.
//!
//! **Invariant:** a refusal is only ever derived from committed, priced
//! usage; an unknown price counts as nothing spent, never as over.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hooktrail_shared::budget::{self, Action, Budget, Budgets, Scope, Standing, Verdict};
use hooktrail_shared::config::RedisConfig;
use hooktrail_shared::envelope::HookEvent;
use hooktrail_shared::signed::{self, Key, Kind, SignedMessage, Unsigned};
use hooktrail_shared::time::now_millis;

use crate::alerts::body::BudgetFacts;
use crate::log;
use crate::store::budget_alerts::BudgetAlerts;
use crate::store::{read, spend};

/// How often the thread looks for new commits.
const POLL: Duration = Duration::from_millis(25);
/// Recompute at least this often without commits, so a day or month
/// rolling over lifts its verdicts.
const REFRESH: Duration = Duration::from_secs(10);
/// How long a signed refusal stays good: a hook never acts on an older one,
/// so a lifted limit (a grant, a new day) frees work within this time even
/// where the collector cannot delete what it mirrored.
const VERDICT_LIFETIME_MS: i64 = 30_000;
/// Sessions with no event for this long get no verdict: a session budget
/// only refuses sessions that may still send events.
const ACTIVE_FOR_MS: i64 = 7 * 24 * 3_600_000;

/// One budget instance and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InstanceVerdict {
    /// The budget's name.
    pub(crate) budget: String,
    /// Its scope's name (`session`, `project`, `machine`, `all`).
    pub(crate) scope: &'static str,
    /// Its period's name (`lifetime`, `day`, `month`).
    pub(crate) period: &'static str,
    /// The session id or machine this instance counts, "" for a project or all.
    pub(crate) subject: String,
    /// The window start (UTC ms), 0 for a session's lifetime.
    pub(crate) window_start: i64,
    /// What happens at the limit.
    pub(crate) action: Action,
    /// The warning threshold in percent, if any.
    pub(crate) warn_at: Option<f64>,
    /// Spend against limit.
    pub(crate) verdict: Verdict,
}

/// Why a hook must refuse work: the strongest refusing verdict that applies.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Refusal {
    /// `Deny` or `Ask` (a `Warn` budget never refuses).
    pub(crate) action: Action,
    /// The budget that refuses.
    pub(crate) budget: String,
    /// The text Claude Code shows.
    pub(crate) reason: String,
}

/// Every verdict as of one computation.
#[derive(Debug, Default, Clone)]
pub(crate) struct Snapshot {
    /// One per budget instance with spend (and every session instance of an
    /// active session), in config order.
    pub(crate) instances: Vec<InstanceVerdict>,
    /// Refusals by session id.
    pub(crate) sessions: HashMap<String, Refusal>,
    /// Refusals by machine, from machine and global budgets: what a session
    /// the collector has not seen yet gets.
    pub(crate) machines: HashMap<String, Refusal>,
    /// The global budgets' refusal, for a machine the collector has not seen.
    pub(crate) everywhere: Option<Refusal>,
    /// When it was computed (UTC ms); 0 before the first computation.
    pub(crate) computed_at: i64,
}

impl Snapshot {
    /// The refusal for an event of `session_id` on `machine`, if any.
    pub(crate) fn refusal_for(&self, session_id: &str, machine: &str) -> Option<&Refusal> {
        self.refusal_with_key(session_id, machine)
            .map(|(refusal, _)| refusal)
    }

    /// [`Snapshot::refusal_for`], with the key its mirror has (`s:ID`,
    /// `m:NAME` or `*`), which [`RefusalTimes`] keeps the start of.
    fn refusal_with_key(&self, session_id: &str, machine: &str) -> Option<(&Refusal, String)> {
        if let Some(refusal) = self.sessions.get(session_id) {
            return Some((refusal, format!("s:{session_id}")));
        }
        if let Some(refusal) = self.machines.get(machine) {
            return Some((refusal, format!("m:{machine}")));
        }
        self.everywhere
            .as_ref()
            .map(|refusal| (refusal, "*".to_owned()))
    }

    /// Every refusal's key (see [`Snapshot::refusal_with_key`]).
    fn refusal_keys(&self) -> impl Iterator<Item = String> + '_ {
        let sessions = self.sessions.keys().map(|id| format!("s:{id}"));
        let machines = self.machines.keys().map(|name| format!("m:{name}"));
        sessions
            .chain(machines)
            .chain(self.everywhere.iter().map(|_| "*".to_owned()))
    }
}

/// When each refusal in force began (unix ms), by its key: an event made
/// before its refusal began was not refused by its hook.
#[derive(Debug, Default)]
struct RefusalTimes {
    /// Start of each refusal in force.
    since: HashMap<String, i64>,
}

impl RefusalTimes {
    fn update(&mut self, snapshot: &Snapshot) {
        let keys: Vec<String> = snapshot.refusal_keys().collect();
        self.since.retain(|key, _| keys.contains(key));
        for key in keys {
            self.since.entry(key).or_insert(snapshot.computed_at);
        }
    }
}

/// The verdicts shared by the budget thread (writer) and its readers.
#[derive(Debug, Default)]
pub struct Verdicts {
    /// The latest snapshot; replaced whole, so readers never see half of one.
    current: RwLock<Arc<Snapshot>>,
    /// Events refused by their hooks, per budget, since the start
    /// (`hooktrail_budget_denials_total`).
    denials: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Verdicts {
    /// The latest snapshot.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .map(|guard| guard.clone())
            .unwrap_or_default()
    }

    /// The refusals counted per budget since the start.
    pub(crate) fn denials(&self) -> Vec<(String, u64)> {
        let counts = self
            .denials
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        counts
            .iter()
            .map(|(name, count)| (name.clone(), *count))
            .collect()
    }

    fn count_denial(&self, budget: &str) {
        let mut counts = self
            .denials
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        *counts.entry(budget.to_owned()).or_default() += 1;
    }

    fn replace(&self, snapshot: Snapshot) {
        if let Ok(mut guard) = self.current.write() {
            *guard = Arc::new(snapshot);
        }
    }
}

/// What the HTTP side needs of budgets: the verdicts to show, the budgets
/// to check a grant against, and where grants are recorded.
pub struct BudgetControl {
    /// The latest verdicts.
    pub(crate) verdicts: Arc<Verdicts>,
    /// The configured budgets.
    pub(crate) budgets: Arc<Budgets>,
    /// Records grants (its own read-write connection).
    pub(crate) grants: std::sync::Mutex<spend::GrantStore>,
}

impl std::fmt::Debug for BudgetControl {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("BudgetControl")
            .finish_non_exhaustive()
    }
}

/// Why a grant was refused, for a 4xx answer.
#[derive(Debug, PartialEq)]
pub(crate) enum GrantRefused {
    /// No budget by that name (404).
    UnknownBudget,
    /// The subject or amount does not fit the budget (400), and why.
    Invalid(&'static str),
}

impl BudgetControl {
    /// Checks and records a grant of `usd` more for `subject` of `budget`,
    /// in the budget's current window.
    pub(crate) fn grant(
        &self,
        budget: &str,
        subject: &str,
        usd: f64,
        by: &str,
        reason: &str,
    ) -> Result<Result<(), GrantRefused>, String> {
        let Some(found) = self.budgets.list.iter().find(|b| b.name == budget) else {
            return Ok(Err(GrantRefused::UnknownBudget));
        };
        if !(usd.is_finite() && usd > 0.0 && usd <= 1_000_000.0) {
            return Ok(Err(GrantRefused::Invalid(
                "usd must be above 0 and at most 1000000",
            )));
        }
        let fits = match &found.scope {
            Scope::Session => !subject.is_empty(),
            Scope::Machine { name: Some(name) } => subject == name,
            Scope::Machine { name: None } => !subject.is_empty(),
            Scope::Project { .. } | Scope::All => subject.is_empty(),
        };
        if !fits {
            return Ok(Err(GrantRefused::Invalid(
                "subject must be the session id (session budgets), the machine (machine budgets) or empty (project and all)",
            )));
        }
        let now = now_millis();
        let window_start = budget::window(found.period, now).map_or(0, |bounds| bounds.0);
        let mut store = self
            .grants
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        store
            .record(&spend::Grant {
                budget,
                subject,
                window_start,
                usd,
                granted_by: by,
                reason,
                now,
            })
            .map_err(|error| error.to_string())?;
        Ok(Ok(()))
    }
}

/// Signs refusals for hooks: what the socket's `ok` reply carries.
pub(crate) struct Answerer {
    /// The latest verdicts.
    pub(crate) verdicts: Arc<Verdicts>,
    /// The shared key (`approvals.key_file`) the hooks verify with.
    pub(crate) key: Key,
}

impl Answerer {
    /// The signed refusal for an event of `session_id` on `machine`, as one
    /// line without its newline; `None` when nothing refuses it.
    pub(crate) fn reply_for(&self, session_id: &str, machine: &str) -> Option<String> {
        let snapshot = self.verdicts.snapshot();
        let refusal = snapshot.refusal_for(session_id, machine)?;
        Some(sign(&self.key, session_id, refusal, now_millis()).to_line())
    }
}

/// A refusal signed for `subject`: the session it answers, `machine:NAME`
/// for a machine's sessions the collector has not seen, `*` for every
/// session. The hook checks the subject against what it asked for.
pub(crate) fn sign(key: &Key, subject: &str, refusal: &Refusal, now: i64) -> SignedMessage {
    SignedMessage::sign(
        key,
        Unsigned {
            kind: Kind::Budget,
            event_id: String::new(),
            session_id: subject.to_owned(),
            input_hash: String::new(),
            verdict: match refusal.action {
                Action::Ask => signed::Verdict::Ask,
                _ => signed::Verdict::Deny,
            },
            reason: refusal.reason.clone(),
            by: format!("budget:{}", refusal.budget),
            exp: (now + VERDICT_LIFETIME_MS).max(0) as u64,
        },
    )
}

/// Starts the budget thread with [`BudgetThread::spawn`].
pub(crate) struct BudgetThread {
    /// The database to read (its own read-only connection).
    pub(crate) database: PathBuf,
    /// The configured budgets; never empty (no thread runs without any).
    pub(crate) budgets: Arc<Budgets>,
    /// Where the verdicts go.
    pub(crate) verdicts: Arc<Verdicts>,
    /// Set when the collector stops.
    pub(crate) shutdown: Arc<AtomicBool>,
    /// Where Redis-delivered hooks read verdicts, with the key that signs
    /// them; `None` without Redis.
    pub(crate) mirror: Option<(RedisConfig, Key)>,
    /// The alert rules, for `budget` alerts (`store/budget_alerts.rs`);
    /// `None` without alerts.
    pub(crate) alerts: Option<crate::store::outbox::WriterRules>,
}

impl BudgetThread {
    pub(crate) fn spawn(self) -> Result<JoinHandle<()>, String> {
        std::thread::Builder::new()
            .name("budgets".to_owned())
            .spawn(move || self.run())
            .map_err(|error| format!("cannot start the budget thread: {error}"))
    }

    fn run(self) {
        let mut connection = None;
        let mut last_version = -1i64;
        let mut last_compute = Instant::now();
        let mut mirror = self
            .mirror
            .as_ref()
            .map(|(config, key)| RedisMirror::new(config, key));
        let mut audit = Audit {
            store: spend::GrantStore::open(&self.database).ok(),
            after: None,
            times: RefusalTimes::default(),
        };
        let mut alerts = self.alerts.clone().and_then(|rules| {
            BudgetAlerts::open(&self.database, rules)
                .map_err(|error| log::warn(&format!("budgets: no budget alerts: {error}")))
                .ok()
                .flatten()
        });
        while !self.shutdown.load(Ordering::Relaxed) {
            if connection.is_none() {
                connection = read::open_read_only(&self.database).ok();
            }
            if let Some(open) = &connection {
                let version = open
                    .query_row("PRAGMA data_version", [], |row| row.get::<_, i64>(0))
                    .unwrap_or(-1);
                if version != last_version || last_compute.elapsed() >= REFRESH {
                    match compute(open, &self.budgets, now_millis()) {
                        Ok(snapshot) => {
                            if let Some(mirror) = mirror.as_mut() {
                                mirror.publish(&snapshot);
                            }
                            audit.times.update(&snapshot);
                            audit.record(open, &snapshot, &self.verdicts);
                            if let Some(alerts) = alerts.as_mut() {
                                alerts.raise(&crossings(&snapshot));
                            }
                            self.verdicts.replace(snapshot);
                            last_version = version;
                            last_compute = Instant::now();
                        }
                        Err(error) => {
                            log::warn(&format!("budgets: cannot read spend: {error}"));
                            connection = None;
                        }
                    }
                }
            }
            // Polling is the design here (see the module doc): one pragma
            // per tick on a connection of its own.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(POLL);
        }
    }
}

/// Every budget instance at its warning or over, for `budget` alerts.
fn crossings(snapshot: &Snapshot) -> Vec<BudgetFacts> {
    snapshot
        .instances
        .iter()
        .filter(|instance| instance.verdict.standing != Standing::Under)
        .map(|instance| BudgetFacts {
            name: instance.budget.clone(),
            scope: instance.scope,
            period: instance.period,
            subject: instance.subject.clone(),
            window_start: instance.window_start,
            standing: instance.verdict.standing.as_str(),
            spent_usd: instance.verdict.spent,
            limit_usd: instance.verdict.limit,
        })
        .collect()
}

/// Records which guarded events their hooks refused (DESIGN §6 `decisions`,
/// kind `budget`): the timeline marks them and `/metrics` counts them.
///
/// The hook refuses on the verdict it read during its delivery, which is
/// the one in force when the event was made; so an event is recorded as
/// refused when a refusing verdict for it had begun by the event's time.
/// A verdict that began within the same few milliseconds may be
/// attributed either way: the record is an audit of what the verdicts
/// said, the hook's own output is what Claude Code obeyed.
struct Audit {
    /// Where refusals are recorded; `None` when it cannot be opened.
    store: Option<spend::GrantStore>,
    /// The last event seq looked at; `None` before the first look (which
    /// starts from the newest event: older ones were audited before).
    after: Option<i64>,
    /// When each refusal began.
    times: RefusalTimes,
}

impl Audit {
    fn record(
        &mut self,
        connection: &rusqlite::Connection,
        snapshot: &Snapshot,
        verdicts: &Verdicts,
    ) {
        let after = match self.after {
            Some(after) => after,
            None => {
                self.after = spend::newest_seq(connection).ok();
                return;
            }
        };
        let Ok(events) = spend::guarded_events_after(connection, after) else {
            return;
        };
        for event in &events {
            self.after = Some(event.seq);
            let Some((refusal, key)) = snapshot.refusal_with_key(&event.session_id, &event.machine)
            else {
                continue;
            };
            let began = self.times.since.get(&key).copied().unwrap_or(i64::MAX);
            let refused = match (HookEvent::from_name(&event.hook), refusal.action) {
                (_, Action::Deny) => "deny",
                (HookEvent::PreToolUse, Action::Ask) => "ask",
                _ => continue,
            };
            if began > event.ts {
                continue;
            }
            verdicts.count_denial(&refusal.budget);
            if let Some(store) = self.store.as_mut() {
                if let Err(error) =
                    store.record_refusal(event, refused, &refusal.budget, &refusal.reason)
                {
                    log::warn(&format!("budgets: cannot record a refusal: {error}"));
                }
            }
        }
    }
}

/// Keeps the signed refusals where Redis-delivered hooks read them, in the
/// same round trip as their `XADD` (DESIGN §2 "Budgets"):
/// `<key>:verdict:session:<id>`, `<key>:verdict:machine:<name>` and
/// `<key>:verdict:all`. Each is set with the signed refusal's lifetime and
/// renewed at every computation (at least every [`REFRESH`]); a refusal
/// that ends is deleted at once.
struct RedisMirror<'a> {
    /// The stream key the verdict keys are named after.
    config: &'a RedisConfig,
    /// Signs the refusals.
    key: &'a Key,
    /// The open connection, reopened after a failure.
    connection: Option<redis::Connection>,
    /// The keys set last time, to delete those no longer refusing.
    published: Vec<String>,
}

impl<'a> RedisMirror<'a> {
    fn new(config: &'a RedisConfig, key: &'a Key) -> RedisMirror<'a> {
        RedisMirror {
            config,
            key,
            connection: None,
            published: Vec::new(),
        }
    }

    fn publish(&mut self, snapshot: &Snapshot) {
        let now = now_millis();
        let prefix = format!("{}:verdict", self.config.key);
        let mut entries: Vec<(String, String)> = Vec::new();
        for (session, refusal) in &snapshot.sessions {
            entries.push((
                format!("{prefix}:session:{session}"),
                sign(self.key, session, refusal, now).to_line(),
            ));
        }
        for (machine, refusal) in &snapshot.machines {
            let subject = format!("machine:{machine}");
            entries.push((
                format!("{prefix}:machine:{machine}"),
                sign(self.key, &subject, refusal, now).to_line(),
            ));
        }
        if let Some(refusal) = &snapshot.everywhere {
            entries.push((
                format!("{prefix}:all"),
                sign(self.key, "*", refusal, now).to_line(),
            ));
        }
        if entries.is_empty() && self.published.is_empty() {
            return;
        }
        if self.connection.is_none() {
            self.connection = crate::sources::redis::client_for(self.config)
                .ok()
                .and_then(|client| {
                    client
                        .get_connection_with_timeout(Duration::from_secs(2))
                        .ok()
                });
        }
        let Some(connection) = self.connection.as_mut() else {
            return;
        };
        let mut pipe = redis::pipe();
        for (key, line) in &entries {
            pipe.cmd("SET")
                .arg(key)
                .arg(line)
                .arg("PX")
                .arg(VERDICT_LIFETIME_MS)
                .ignore();
        }
        for stale in self
            .published
            .iter()
            .filter(|key| !entries.iter().any(|(set, _)| set == *key))
        {
            pipe.cmd("DEL").arg(stale).ignore();
        }
        match pipe.query::<()>(connection) {
            Ok(()) => self.published = entries.into_iter().map(|(key, _)| key).collect(),
            Err(error) => {
                log::warn(&format!(
                    "budgets: cannot mirror verdicts to Redis: {error}"
                ));
                self.connection = None;
            }
        }
    }
}

/// Computes every verdict as of `now` from the database.
pub(crate) fn compute(
    connection: &rusqlite::Connection,
    budgets: &Budgets,
    now: i64,
) -> rusqlite::Result<Snapshot> {
    let sessions = spend::active_sessions(connection, now - ACTIVE_FOR_MS)?;
    let granted: HashMap<(String, String, i64), f64> = spend::grants(connection)?
        .into_iter()
        .map(|(name, subject, start, usd)| ((name, subject, start), usd))
        .collect();
    let mut windows: HashMap<(i64, i64), Vec<spend::PlaceSpend>> = HashMap::new();
    let mut instances = Vec::new();
    for budget in &budgets.list {
        let window = budget::window(budget.period, now);
        if let Some(bounds) = window {
            if let std::collections::hash_map::Entry::Vacant(entry) = windows.entry(bounds) {
                entry.insert(spend::window_spend(connection, bounds.0, bounds.1)?);
            }
        }
        let places = window
            .and_then(|bounds| windows.get(&bounds))
            .map(Vec::as_slice);
        for (subject, spent) in spends(budget, &sessions, places.unwrap_or(&[])) {
            let window_start = window.map_or(0, |bounds| bounds.0);
            let extra = granted
                .get(&(budget.name.clone(), subject.clone(), window_start))
                .copied()
                .unwrap_or(0.0);
            instances.push(InstanceVerdict {
                budget: budget.name.clone(),
                scope: budget.scope.as_str(),
                period: budget.period.as_str(),
                subject,
                window_start,
                action: budget.action,
                warn_at: budget.warn_at,
                verdict: budget::evaluate(budget, spent, extra),
            });
        }
    }
    Ok(refusals(budgets, &sessions, instances, now))
}

/// The spend of each instance of `budget`: (subject, USD).
fn spends(
    budget: &Budget,
    sessions: &[spend::SessionSpend],
    places: &[spend::PlaceSpend],
) -> Vec<(String, f64)> {
    match &budget.scope {
        Scope::Session => sessions
            .iter()
            .map(|session| (session.session_id.clone(), session.usd))
            .collect(),
        Scope::Project { glob } => vec![(
            String::new(),
            places
                .iter()
                .filter(|place| budget::glob_matches(glob, &place.cwd))
                .map(|place| place.usd)
                .sum(),
        )],
        Scope::Machine { name } => {
            let mut by_machine: HashMap<&str, f64> = HashMap::new();
            if let Some(name) = name {
                by_machine.insert(name, 0.0);
            }
            for place in places {
                if name.as_deref().is_none_or(|name| name == place.machine) {
                    *by_machine.entry(&place.machine).or_default() += place.usd;
                }
            }
            let mut list: Vec<(String, f64)> = by_machine
                .into_iter()
                .map(|(machine, usd)| (machine.to_owned(), usd))
                .collect();
            list.sort_by(|a, b| a.0.cmp(&b.0));
            list
        }
        Scope::All => vec![(String::new(), places.iter().map(|place| place.usd).sum())],
    }
}

/// Builds the snapshot: each active session's and machine's strongest refusal.
fn refusals(
    budgets: &Budgets,
    sessions: &[spend::SessionSpend],
    instances: Vec<InstanceVerdict>,
    now: i64,
) -> Snapshot {
    let refusing = |instance: &InstanceVerdict| -> Option<Refusal> {
        let reason = instance.verdict.reason.clone()?;
        (instance.verdict.standing == Standing::Over).then(|| Refusal {
            action: instance.action,
            budget: instance.budget.clone(),
            reason,
        })
    };
    let budget_of = |name: &str| budgets.list.iter().find(|budget| budget.name == name);
    let mut snapshot = Snapshot {
        computed_at: now,
        ..Snapshot::default()
    };
    for instance in &instances {
        let Some(refusal) = refusing(instance) else {
            continue;
        };
        match budget_of(&instance.budget).map(|budget| &budget.scope) {
            Some(Scope::Session) => stronger(&mut snapshot.sessions, &instance.subject, refusal),
            Some(Scope::Machine { .. }) => {
                stronger(&mut snapshot.machines, &instance.subject, refusal)
            }
            Some(Scope::All) => {
                snapshot.everywhere = Some(match snapshot.everywhere.take() {
                    Some(held) if !outranks(&refusal, &held) => held,
                    _ => refusal,
                })
            }
            Some(Scope::Project { glob }) => {
                for session in sessions
                    .iter()
                    .filter(|s| budget::glob_matches(glob, &s.cwd))
                {
                    stronger(&mut snapshot.sessions, &session.session_id, refusal.clone());
                }
            }
            None => {}
        }
    }
    // A session also answers to its machine's and the global budgets.
    let global = snapshot.everywhere.clone();
    for session in sessions {
        let inherited = snapshot.machines.get(&session.machine).cloned();
        for refusal in inherited.into_iter().chain(global.clone()) {
            stronger(&mut snapshot.sessions, &session.session_id, refusal);
        }
    }
    if let Some(refusal) = global {
        let machines: Vec<String> = snapshot.machines.keys().cloned().collect();
        for machine in machines {
            stronger(&mut snapshot.machines, &machine, refusal.clone());
        }
    }
    snapshot.instances = instances;
    snapshot
}

/// Keeps in `map[key]` whichever of the held and the new refusal is stronger.
fn stronger(map: &mut HashMap<String, Refusal>, key: &str, refusal: Refusal) {
    match map.get(key) {
        Some(held) if !outranks(&refusal, held) => {}
        _ => {
            map.insert(key.to_owned(), refusal);
        }
    }
}

/// A deny outranks an ask: the stricter action wins.
fn outranks(new: &Refusal, held: &Refusal) -> bool {
    new.action == Action::Deny && held.action != Action::Deny
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn budgets(value: serde_json::Value) -> Budgets {
        let mut problems = Vec::new();
        let budgets = Budgets::from_config(Some(&value), None, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        budgets
    }

    fn session(id: &str, machine: &str, cwd: &str, usd: f64) -> spend::SessionSpend {
        spend::SessionSpend {
            session_id: id.to_owned(),
            machine: machine.to_owned(),
            cwd: cwd.to_owned(),
            usd,
        }
    }

    fn place(machine: &str, cwd: &str, usd: f64) -> spend::PlaceSpend {
        spend::PlaceSpend {
            machine: machine.to_owned(),
            cwd: cwd.to_owned(),
            usd,
        }
    }

    fn snapshot(
        budgets: &Budgets,
        sessions: &[spend::SessionSpend],
        places: &[spend::PlaceSpend],
    ) -> Snapshot {
        let instances = budgets
            .list
            .iter()
            .flat_map(|budget| {
                spends(budget, sessions, places)
                    .into_iter()
                    .map(|(subject, spent)| InstanceVerdict {
                        budget: budget.name.clone(),
                        scope: budget.scope.as_str(),
                        period: budget.period.as_str(),
                        subject,
                        window_start: 0,
                        action: budget.action,
                        warn_at: budget.warn_at,
                        verdict: budget::evaluate(budget, spent, 0.0),
                    })
            })
            .collect();
        refusals(budgets, sessions, instances, 1)
    }

    #[test]
    fn a_session_over_its_budget_is_refused_and_others_are_not() {
        let budgets = budgets(json!([{"scope": "session", "usd": 0.03}]));
        let sessions = [
            session("s1", "a", "/p", 0.031),
            session("s2", "a", "/p", 0.01),
        ];
        let snapshot = snapshot(&budgets, &sessions, &[]);
        let refusal = snapshot.refusal_for("s1", "a").expect("s1 is over");
        assert_eq!(
            refusal.reason,
            "hooktrail: session budget $0.03 reached ($0.03 spent)"
        );
        assert!(snapshot.refusal_for("s2", "a").is_none());
    }

    #[test]
    fn a_day_budget_refuses_every_session_and_unseen_ones_on_every_machine() {
        let budgets =
            budgets(json!([{"scope": "all", "period": "day", "usd": 1, "action": "ask"}]));
        let sessions = [session("s1", "a", "/p", 0.6), session("s2", "b", "/q", 0.5)];
        let places = [place("a", "/p", 0.6), place("b", "/q", 0.5)];
        let snapshot = snapshot(&budgets, &sessions, &places);
        assert_eq!(
            snapshot.refusal_for("s2", "b").map(|r| r.action),
            Some(Action::Ask)
        );
        assert!(snapshot.refusal_for("new-session", "new-machine").is_some());
    }

    #[test]
    fn deny_outranks_ask_and_warn_never_refuses() {
        let budgets = budgets(json!([
            {"name": "soft", "scope": "machine", "period": "day", "usd": 1, "action": "ask"},
            {"name": "hard", "scope": "project", "project": "/p*", "period": "day", "usd": 1},
            {"name": "loud", "scope": "all", "period": "day", "usd": 0.5, "action": "warn"}
        ]));
        let sessions = [
            session("s1", "a", "/p/x", 2.0),
            session("s2", "a", "/q", 0.0),
        ];
        let places = [place("a", "/p/x", 2.0)];
        let snapshot = snapshot(&budgets, &sessions, &places);
        assert_eq!(
            snapshot.refusal_for("s1", "a").map(|r| r.budget.as_str()),
            Some("hard")
        );
        assert_eq!(
            snapshot.refusal_for("s2", "a").map(|r| r.budget.as_str()),
            Some("soft")
        );
        assert!(
            snapshot.everywhere.is_none(),
            "a warn budget refuses nothing"
        );
    }
}
