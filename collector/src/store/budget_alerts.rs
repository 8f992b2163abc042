//! `budget` alerts (issue 20, DESIGN §4): a budget instance crossing its
//! warning or its limit.
//!
//! Only the budget thread knows where a budget stands (it sums the spend
//! after each commit; the writer knows nothing of budgets, `budgets.rs`),
//! so it raises these itself, on a read-write connection of its own, in
//! one short transaction per computation that found a new crossing. A
//! crossing is derived from committed spend alone, so it is as durable as a
//! state change the writer commits: after a `kill -9`, the restarted thread
//! finds the same crossing and raises it unless the outbox holds it.
//!
//! Once per episode: `budget:<name>:<subject>:<window start>:<warning|over>:
//! <limit in cents>` (a grant raises the limit, so crossing the new one is
//! a new episode; a new day or month is a new window). The thread keeps the
//! episodes of the crossings in force that it already raised, so a budget
//! that stays over costs nothing per computation.
//!
//! Rule filters: a session budget's alert is about its session (its machine
//! and directory); a machine budget's is about that machine (a rule naming
//! projects never matches it); a project or global budget's matches only
//! rules without filters.

use std::collections::HashSet;
use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::alerts::body::{BudgetFacts, Subject};
use crate::alerts::config::{Condition, Rule};
use crate::log;
use crate::store::outbox::{self, WriterRules};
use hooktrail_shared::time::now_millis;

/// The budget thread's side of the outbox.
pub(crate) struct BudgetAlerts {
    /// Its own read-write connection (busy timeout), beside the writer's.
    connection: Connection,
    /// The rules (only `budget` ones matter here).
    rules: WriterRules,
    /// Episodes of the crossings in force already in the outbox.
    raised: HashSet<String>,
    /// Whether the last attempt failed, so the log says it once per streak.
    failing: bool,
}

/// The episode key of a crossing (see the module doc).
fn episode(crossing: &BudgetFacts) -> String {
    format!(
        "budget:{}:{}:{}:{}:{:.0}",
        crossing.name,
        crossing.subject,
        crossing.window_start,
        crossing.standing,
        crossing.limit_usd * 100.0
    )
}

impl BudgetAlerts {
    /// Opens the database for budget alerts, when a rule asks for them.
    pub(crate) fn open(path: &Path, rules: WriterRules) -> Result<Option<BudgetAlerts>, String> {
        if !rules
            .rules
            .iter()
            .any(|rule| rule.when == Condition::Budget)
        {
            return Ok(None);
        }
        Ok(Some(BudgetAlerts {
            connection: crate::store::open::open(path)?,
            rules,
            raised: HashSet::new(),
            failing: false,
        }))
    }

    /// Raises the alerts of the crossings not raised yet (`crossings`: every
    /// instance at its warning or over, as just computed). A failure is
    /// logged (once per streak) and tried again at the next computation.
    pub(crate) fn raise(&mut self, crossings: &[BudgetFacts]) {
        let current: Vec<(&BudgetFacts, String)> = crossings
            .iter()
            .map(|crossing| (crossing, episode(crossing)))
            .collect();
        self.raised
            .retain(|raised| current.iter().any(|(_, episode)| episode == raised));
        let fresh: Vec<&(&BudgetFacts, String)> = current
            .iter()
            .filter(|(_, episode)| !self.raised.contains(episode))
            .collect();
        if fresh.is_empty() {
            return;
        }
        match self.queue_all(&fresh) {
            Ok(()) => {
                self.failing = false;
                self.raised
                    .extend(fresh.into_iter().map(|(_, episode)| episode.clone()));
            }
            Err(error) => {
                if !std::mem::replace(&mut self.failing, true) {
                    log::warn(&format!("alerts: cannot raise budget alerts: {error}"));
                }
            }
        }
    }

    /// One transaction: each fresh crossing, for each `budget` rule whose
    /// filters admit it.
    fn queue_all(&mut self, fresh: &[&(&BudgetFacts, String)]) -> rusqlite::Result<()> {
        let now = now_millis();
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (crossing, episode) in fresh.iter().copied() {
            let session = if crossing.scope == "session" {
                outbox::session_facts(&transaction, &crossing.subject)?
            } else {
                None
            };
            let subject = Subject::Budget {
                budget: crossing,
                session: session.as_ref(),
            };
            for rule in self
                .rules
                .rules
                .iter()
                .filter(|rule| admits(rule, crossing, &subject))
            {
                outbox::queue(&transaction, &self.rules, rule, episode, &subject, now)?;
            }
        }
        transaction.commit()
    }
}

/// Whether `rule` is a `budget` rule whose filters admit the crossing (see
/// the module doc).
fn admits(rule: &Rule, crossing: &BudgetFacts, subject: &Subject<'_>) -> bool {
    if rule.when != Condition::Budget {
        return false;
    }
    match subject {
        Subject::Budget {
            session: Some(facts),
            ..
        } => rule.admits(&facts.machine, facts.cwd.as_deref()),
        _ if crossing.scope == "machine" => rule.admits(&crossing.subject, None),
        _ => rule.machines.is_empty() && rule.projects.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crossing(standing: &'static str, limit_usd: f64) -> BudgetFacts {
        BudgetFacts {
            name: "api".into(),
            scope: "session",
            period: "lifetime",
            subject: "s".into(),
            window_start: 0,
            standing,
            spent_usd: 0.9,
            limit_usd,
        }
    }

    #[test]
    fn each_crossing_is_raised_once_and_a_grant_makes_a_new_episode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let connection = crate::store::open::open(&path).unwrap();
        connection
            .execute(
                "INSERT INTO sessions (session_id, machine, cwd, first_ts, last_ts) VALUES ('s', 'box', '/p', 1, 1)",
                [],
            )
            .unwrap();
        let rule = |name: &str, machines: Vec<String>| Rule {
            name: name.into(),
            when: Condition::Budget,
            machines,
            projects: vec![],
            to: vec!["me".into()],
        };
        let rules = WriterRules {
            rules: vec![
                rule("budget", vec![]),
                rule("elsewhere", vec!["other".into()]),
            ],
            public_url: "http://h".into(),
            quiet_after_ms: 600_000,
        };
        let mut alerts = BudgetAlerts::open(&path, rules).unwrap().unwrap();
        alerts.raise(&[crossing("warning", 1.0)]);
        alerts.raise(&[crossing("warning", 1.0)]);
        alerts.raise(&[crossing("over", 1.0)]);
        // A restart forgets what it raised; the outbox does not.
        alerts.raised.clear();
        alerts.raise(&[crossing("over", 1.0)]);
        alerts.raise(&[crossing("over", 2.0)]);
        let episodes: Vec<String> = connection
            .prepare("SELECT rule || ' ' || episode FROM outbox ORDER BY id")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            episodes,
            [
                "budget budget:api:s:0:warning:100",
                "budget budget:api:s:0:over:100",
                "budget budget:api:s:0:over:200"
            ]
        );
        let body: String = connection
            .query_row("SELECT body FROM outbox ORDER BY id LIMIT 1", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert!(
            body.contains("\"standing\":\"warning\"") && body.contains("\"machine\":\"box\""),
            "{body}"
        );
    }
}
