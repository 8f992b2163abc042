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
use hooktrail_shared::envelope::now_millis;

use crate::log;
use crate::store::{read, spend};

/// How often the thread looks for new commits.
const POLL: Duration = Duration::from_millis(25);
/// Recompute at least this often without commits, so a day or month
/// rolling over lifts its verdicts.
const REFRESH: Duration = Duration::from_secs(10);
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
        self.sessions
            .get(session_id)
            .or_else(|| self.machines.get(machine))
            .or(self.everywhere.as_ref())
    }
}

/// The verdicts shared by the budget thread (writer) and its readers.
#[derive(Debug, Default)]
pub struct Verdicts {
    /// The latest snapshot; replaced whole, so readers never see half of one.
    current: RwLock<Arc<Snapshot>>,
}

impl Verdicts {
    /// The latest snapshot.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .map(|guard| guard.clone())
            .unwrap_or_default()
    }

    fn replace(&self, snapshot: Snapshot) {
        if let Ok(mut guard) = self.current.write() {
            *guard = Arc::new(snapshot);
        }
    }
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
            if !windows.contains_key(&bounds) {
                windows.insert(bounds, spend::window_spend(connection, bounds.0, bounds.1)?);
            }
        }
        let places = window.and_then(|bounds| windows.get(&bounds)).map(Vec::as_slice);
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
            let mut list: Vec<(String, f64)> =
                by_machine.into_iter().map(|(machine, usd)| (machine.to_owned(), usd)).collect();
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
        let Some(refusal) = refusing(instance) else { continue };
        match budget_of(&instance.budget).map(|budget| &budget.scope) {
            Some(Scope::Session) => stronger(&mut snapshot.sessions, &instance.subject, refusal),
            Some(Scope::Machine { .. }) => stronger(&mut snapshot.machines, &instance.subject, refusal),
            Some(Scope::All) => {
                snapshot.everywhere = Some(match snapshot.everywhere.take() {
                    Some(held) if !outranks(&refusal, &held) => held,
                    _ => refusal,
                })
            }
            Some(Scope::Project { glob }) => {
                for session in sessions.iter().filter(|s| budget::glob_matches(glob, &s.cwd)) {
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

    fn snapshot(budgets: &Budgets, sessions: &[spend::SessionSpend], places: &[spend::PlaceSpend]) -> Snapshot {
        let instances = budgets
            .list
            .iter()
            .flat_map(|budget| {
                spends(budget, sessions, places).into_iter().map(|(subject, spent)| InstanceVerdict {
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
        let sessions = [session("s1", "a", "/p", 0.031), session("s2", "a", "/p", 0.01)];
        let snapshot = snapshot(&budgets, &sessions, &[]);
        let refusal = snapshot.refusal_for("s1", "a").expect("s1 is over");
        assert_eq!(refusal.reason, "hooktrail: session budget $0.03 reached ($0.03 spent)");
        assert!(snapshot.refusal_for("s2", "a").is_none());
    }

    #[test]
    fn a_day_budget_refuses_every_session_and_unseen_ones_on_every_machine() {
        let budgets = budgets(json!([{"scope": "all", "period": "day", "usd": 1, "action": "ask"}]));
        let sessions = [session("s1", "a", "/p", 0.6), session("s2", "b", "/q", 0.5)];
        let places = [place("a", "/p", 0.6), place("b", "/q", 0.5)];
        let snapshot = snapshot(&budgets, &sessions, &places);
        assert_eq!(snapshot.refusal_for("s2", "b").map(|r| r.action), Some(Action::Ask));
        assert!(snapshot.refusal_for("new-session", "new-machine").is_some());
    }

    #[test]
    fn deny_outranks_ask_and_warn_never_refuses() {
        let budgets = budgets(json!([
            {"name": "soft", "scope": "machine", "period": "day", "usd": 1, "action": "ask"},
            {"name": "hard", "scope": "project", "project": "/p*", "period": "day", "usd": 1},
            {"name": "loud", "scope": "all", "period": "day", "usd": 0.5, "action": "warn"}
        ]));
        let sessions = [session("s1", "a", "/p/x", 2.0), session("s2", "a", "/q", 0.0)];
        let places = [place("a", "/p/x", 2.0)];
        let snapshot = snapshot(&budgets, &sessions, &places);
        assert_eq!(snapshot.refusal_for("s1", "a").map(|r| r.budget.as_str()), Some("hard"));
        assert_eq!(snapshot.refusal_for("s2", "a").map(|r| r.budget.as_str()), Some("soft"));
        assert!(snapshot.everywhere.is_none(), "a warn budget refuses nothing");
    }
}
