//! Spending limits (DESIGN §4 `budgets`): what a budget is, which ones apply
//! to an event, and the verdict for a given spend.
//!
//! Pure: no I/O and no clock. The collector measures the spend (from its
//! `usage` table) and calls [`evaluate`]; the emitter only needs to know that
//! budgets exist ([`Budgets::is_empty`]) and what to do when the collector
//! cannot be asked ([`Offline`]). Keeping the rules here, and the spend in the
//! store, lets the verdict logic be tested with literal numbers.
//!
//! **Invariant:** a budget's window is half-open, `[start, end)`, in UTC
//! milliseconds, so an API response belongs to exactly one day and one month.

use serde_json::Value;

use crate::time::{civil_from_days, days_from_civil};

/// What a budget covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One session at a time: each session has its own spend.
    Session,
    /// Sessions whose working directory matches a glob (`*` any run of
    /// characters, `?` one character), together.
    Project {
        /// The cwd glob, as written in the config.
        glob: String,
    },
    /// One machine's sessions, together; every machine separately when no
    /// name is given.
    Machine {
        /// Only this machine, when set.
        name: Option<String>,
    },
    /// Every session on every machine, together.
    All,
}

impl Scope {
    /// The name used in the config and in verdict reasons.
    pub fn as_str(&self) -> &'static str {
        match self {
            Scope::Session => "session",
            Scope::Project { .. } => "project",
            Scope::Machine { .. } => "machine",
            Scope::All => "all",
        }
    }
}

/// Over which stretch of time spend adds up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// A session's whole life (the only period of a session budget).
    Lifetime,
    /// A UTC calendar day.
    Day,
    /// A UTC calendar month.
    Month,
}

impl Period {
    /// The name used in the config and in verdict reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Lifetime => "lifetime",
            Period::Day => "day",
            Period::Month => "month",
        }
    }
}

/// What happens once the spend reaches the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Refuse further tool calls, subagents and prompts.
    Deny,
    /// Put the person in the loop through Claude Code's own permission prompt.
    Ask,
    /// Only alert; nothing is refused.
    Warn,
}

impl Action {
    /// The name used in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deny => "deny",
            Action::Ask => "ask",
            Action::Warn => "warn",
        }
    }
}

/// One configured limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Unique name: the `/metrics` label, the key of grants, and what
    /// reasons and alerts call it. From the config's `name`, else derived
    /// from scope, period and position.
    pub name: String,
    /// What it covers.
    pub scope: Scope,
    /// Over which time spend adds up.
    pub period: Period,
    /// The limit in USD, before grants.
    pub usd: f64,
    /// What happens at the limit.
    pub action: Action,
    /// The warning threshold in percent of the limit, if any.
    pub warn_at: Option<f64>,
}

/// What a hook does when it cannot learn a verdict (the event went to the
/// spool): the collector is unreachable, so nothing is known about spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Offline {
    /// Let the work go on, logged and counted (the default: availability).
    #[default]
    Allow,
    /// Refuse tool calls and prompts until the collector answers again.
    Deny,
}

// `Config` is `Eq`: a budget's floats are never NaN (parsing refuses any
// `usd` or `warn_at` that is not a finite number in range).
impl Eq for Budget {}
impl Eq for Budgets {}

/// Every configured budget, and the offline policy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Budgets {
    /// The budgets in config order.
    pub list: Vec<Budget>,
    /// What hooks do when the collector cannot be reached
    /// (`budgets_offline`).
    pub offline: Offline,
}

impl Budgets {
    /// No budget is configured: hooks skip every budget step.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Reads the config's `budgets` array and `budgets_offline` string.
    /// A malformed entry is left out with a problem naming it; the others
    /// still apply, so one typo never lifts every limit.
    pub fn from_config(
        budgets: Option<&Value>,
        offline: Option<&Value>,
        problems: &mut Vec<String>,
    ) -> Budgets {
        let mut list: Vec<Budget> = Vec::new();
        match budgets {
            None | Some(Value::Null) => {}
            Some(Value::Array(entries)) => {
                for (index, entry) in entries.iter().enumerate() {
                    match parse_budget(index, entry) {
                        Ok(budget) if list.iter().any(|other| other.name == budget.name) => {
                            problems.push(format!(
                                "budgets[{index}]: the name {:?} is used twice; left out",
                                budget.name
                            ));
                        }
                        Ok(budget) => list.push(budget),
                        Err(problem) => {
                            problems.push(format!("budgets[{index}]: {problem}; left out"))
                        }
                    }
                }
            }
            Some(_) => problems.push("budgets: not an array; no budget applies".to_owned()),
        }
        let offline = match offline {
            None | Some(Value::Null) => Offline::Allow,
            Some(Value::String(text)) if text == "allow" => Offline::Allow,
            Some(Value::String(text)) if text == "deny" => Offline::Deny,
            Some(other) => {
                problems.push(format!(
                    "budgets_offline: {other} is not \"allow\" or \"deny\"; using \"allow\""
                ));
                Offline::Allow
            }
        };
        Budgets { list, offline }
    }
}

/// One `budgets` entry, or why it cannot be used.
fn parse_budget(index: usize, entry: &Value) -> Result<Budget, String> {
    let object = entry.as_object().ok_or("not an object")?;
    for key in object.keys() {
        if !matches!(
            key.as_str(),
            "name" | "scope" | "period" | "usd" | "action" | "warn_at" | "project" | "machine"
        ) {
            return Err(format!("unknown key {key:?}"));
        }
    }
    let text = |key: &str| -> Result<Option<&str>, String> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(value)) => Ok(Some(value.as_str())),
            Some(other) => Err(format!("{key} must be a string, not {other}")),
        }
    };
    let scope = match text("scope")?.ok_or("scope is missing")? {
        "session" => Scope::Session,
        "project" => Scope::Project {
            glob: text("project")?
                .filter(|glob| !glob.is_empty())
                .ok_or("a project budget needs \"project\": a cwd glob")?
                .to_owned(),
        },
        "machine" => Scope::Machine {
            name: text("machine")?.map(str::to_owned),
        },
        "all" => Scope::All,
        other => {
            return Err(format!(
                "scope {other:?} is not session, project, machine or all"
            ))
        }
    };
    let period = match (&scope, text("period")?) {
        (Scope::Session, None) => Period::Lifetime,
        (Scope::Session, Some(_)) => return Err("a session budget has no period".to_owned()),
        (_, Some("day")) => Period::Day,
        (_, Some("month")) => Period::Month,
        (_, None) => return Err("period is missing (\"day\" or \"month\")".to_owned()),
        (_, Some(other)) => return Err(format!("period {other:?} is not \"day\" or \"month\"")),
    };
    let usd = object
        .get("usd")
        .and_then(Value::as_f64)
        .filter(|usd| usd.is_finite() && *usd > 0.0)
        .ok_or("usd must be a number above 0")?;
    let action = match text("action")? {
        None | Some("deny") => Action::Deny,
        Some("ask") => Action::Ask,
        Some("warn") => Action::Warn,
        Some(other) => return Err(format!("action {other:?} is not deny, ask or warn")),
    };
    let warn_at = match object.get("warn_at") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_f64()
                .filter(|percent| *percent > 0.0 && *percent < 100.0)
                .ok_or("warn_at must be a percentage between 0 and 100")?,
        ),
    };
    let name = match text("name")? {
        Some(name) if valid_name(name) => name.to_owned(),
        Some(name) => return Err(format!("name {name:?} must be 1-64 of A-Z a-z 0-9 - _ .")),
        None => match period {
            Period::Lifetime => format!("{}-{index}", scope.as_str()),
            _ => format!("{}-{}-{index}", scope.as_str(), period.as_str()),
        },
    };
    Ok(Budget {
        name,
        scope,
        period,
        usd,
        action,
        warn_at,
    })
}

/// A budget name is a label in `/metrics` and part of Redis keys: keep it plain.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

/// Where a budget's spend is counted for one event: the budget and the
/// instance of its scope (which session, which machine) and window.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance<'a> {
    /// The budget.
    pub budget: &'a Budget,
    /// Which part of the scope: the session id, the machine, or "" for a
    /// project or all.
    pub subject: String,
    /// The window, `[start, end)` in UTC ms; `None` for a session's lifetime.
    pub window: Option<(i64, i64)>,
}

/// Who an event belongs to, for choosing budgets.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The event's session.
    pub session_id: &'a str,
    /// The machine it ran on.
    pub machine: &'a str,
    /// Its working directory.
    pub cwd: &'a str,
    /// Its time (UTC ms), which picks the day or month.
    pub ts: i64,
}

impl Budgets {
    /// The budgets that apply to an event, each with its scope instance.
    pub fn applying<'a>(&'a self, subject: Subject<'_>) -> Vec<Instance<'a>> {
        self.list
            .iter()
            .filter_map(|budget| {
                let instance = |subject_key: &str| Instance {
                    budget,
                    subject: subject_key.to_owned(),
                    window: window(budget.period, subject.ts),
                };
                match &budget.scope {
                    Scope::Session => Some(instance(subject.session_id)),
                    Scope::Project { glob } => {
                        glob_matches(glob, subject.cwd).then(|| instance(""))
                    }
                    Scope::Machine { name: Some(name) } => {
                        (name == subject.machine).then(|| instance(subject.machine))
                    }
                    Scope::Machine { name: None } => Some(instance(subject.machine)),
                    Scope::All => Some(instance("")),
                }
            })
            .collect()
    }
}

/// The UTC window of `period` that holds `ts`.
pub fn window(period: Period, ts: i64) -> Option<(i64, i64)> {
    const DAY: i64 = 86_400_000;
    match period {
        Period::Lifetime => None,
        Period::Day => {
            let start = ts.div_euclid(DAY) * DAY;
            Some((start, start + DAY))
        }
        Period::Month => {
            let (year, month, _) = civil_from_days(ts.div_euclid(DAY));
            let start = days_from_civil(year, month, 1) * DAY;
            let (next_year, next_month) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
            Some((start, days_from_civil(next_year, next_month, 1) * DAY))
        }
    }
}

/// `*` matches any run of characters (also `/`), `?` one character; the
/// rest literally. Iterative with one backtrack point, so no input is slow.
pub fn glob_matches(glob: &str, text: &str) -> bool {
    let pattern: Vec<char> = glob.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Where a spend stands against its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Below the warning threshold (or no threshold and below the limit).
    Under,
    /// At or past the warning threshold, below the limit.
    Warning,
    /// At or past the limit (plus grants).
    Over,
}

impl Standing {
    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Under => "under",
            Standing::Warning => "warning",
            Standing::Over => "over",
        }
    }
}

/// A budget instance's spend measured against its limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Where the spend stands.
    pub standing: Standing,
    /// USD spent in the window (or the session's life).
    pub spent: f64,
    /// The limit in force: the configured USD plus what approvers granted.
    pub limit: f64,
    /// Set when the standing is `Over` and the action refuses work: the text
    /// the hook shows Claude Code, e.g. `hooktrail: session budget $5.00
    /// reached ($5.12 spent)`.
    pub reason: Option<String>,
}

/// The verdict for `spent` USD against `budget`, with `granted` USD added to
/// its limit by approvers.
pub fn evaluate(budget: &Budget, spent: f64, granted: f64) -> Verdict {
    let limit = budget.usd + granted.max(0.0);
    let standing = if spent >= limit {
        Standing::Over
    } else if budget
        .warn_at
        .is_some_and(|percent| spent >= limit * percent / 100.0)
    {
        Standing::Warning
    } else {
        Standing::Under
    };
    let refuses = standing == Standing::Over && budget.action != Action::Warn;
    let reason = refuses.then(|| {
        let what = match (&budget.scope, budget.period) {
            (Scope::Session, _) => "session budget".to_owned(),
            (scope, period) => format!(
                "{} {} budget {}",
                scope.as_str(),
                period.as_str(),
                budget.name
            ),
        };
        format!("hooktrail: {what} ${limit:.2} reached (${spent:.2} spent)")
    });
    Verdict {
        standing,
        spent,
        limit,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn budgets(value: Value) -> (Budgets, Vec<String>) {
        let mut problems = Vec::new();
        let budgets = Budgets::from_config(Some(&value), None, &mut problems);
        (budgets, problems)
    }

    #[test]
    fn the_issues_example_parses_with_defaults() {
        let (budgets, problems) = budgets(json!([
            {"scope": "session", "usd": 5, "action": "deny"},
            {"scope": "all", "period": "day", "usd": 50, "warn_at": 80}
        ]));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(budgets.list.len(), 2);
        assert_eq!(budgets.list[0].name, "session-0");
        assert_eq!(budgets.list[0].period, Period::Lifetime);
        assert_eq!(budgets.list[1].name, "all-day-1");
        assert_eq!(budgets.list[1].action, Action::Deny);
        assert_eq!(budgets.list[1].warn_at, Some(80.0));
        assert_eq!(budgets.offline, Offline::Allow);
    }

    #[test]
    fn a_malformed_entry_is_left_out_and_named_but_the_others_hold() {
        let (budgets, problems) = budgets(json!([
            {"scope": "session", "usd": -1},
            {"scope": "sesion", "usd": 5},
            {"scope": "project", "period": "day", "usd": 5},
            {"scope": "machine", "usd": 5},
            {"scope": "all", "period": "day", "usd": 50, "actoin": "deny"},
            {"scope": "all", "period": "week", "usd": 50},
            {"scope": "session", "usd": 2}
        ]));
        assert_eq!(budgets.list.len(), 1, "{budgets:?}");
        assert_eq!(budgets.list[0].usd, 2.0);
        assert_eq!(problems.len(), 6, "{problems:?}");
        assert!(problems[1].contains("budgets[1]") && problems[1].contains("sesion"));
        assert!(problems[4].contains("actoin"));
    }

    #[test]
    fn budgets_that_apply_follow_scope_glob_and_machine() {
        let (budgets, _) = budgets(json!([
            {"scope": "session", "usd": 5},
            {"scope": "project", "project": "/home/dev/acme*", "period": "day", "usd": 20},
            {"scope": "machine", "machine": "box-b", "period": "month", "usd": 100},
            {"scope": "machine", "period": "day", "usd": 30},
            {"scope": "all", "period": "day", "usd": 50}
        ]));
        let subject = Subject {
            session_id: "s1",
            machine: "box-a",
            cwd: "/home/dev/acme/api",
            ts: 1_733_200_000_000,
        };
        let names: Vec<(&str, String)> = budgets
            .applying(subject)
            .into_iter()
            .map(|instance| (instance.budget.name.as_str(), instance.subject))
            .collect();
        assert_eq!(
            names,
            vec![
                ("session-0", "s1".to_owned()),
                ("project-day-1", String::new()),
                ("machine-day-3", "box-a".to_owned()),
                ("all-day-4", String::new()),
            ]
        );
    }

    #[test]
    fn windows_are_utc_days_and_calendar_months() {
        // 2024-02-29T13:00:00Z
        let ts = 1_709_211_600_000;
        assert_eq!(
            window(Period::Day, ts),
            Some((1_709_164_800_000, 1_709_251_200_000))
        );
        // February 2024 (a leap year): Feb 1 to Mar 1.
        assert_eq!(
            window(Period::Month, ts),
            Some((1_706_745_600_000, 1_709_251_200_000))
        );
        // December rolls into the next year.
        let december = 1_733_200_000_000; // 2024-12-03
        assert_eq!(
            window(Period::Month, december),
            Some((1_733_011_200_000, 1_735_689_600_000))
        );
        assert_eq!(window(Period::Lifetime, ts), None);
    }

    #[test]
    fn glob_matching_is_literal_apart_from_star_and_question_mark() {
        assert!(glob_matches("/home/*/acme*", "/home/dev/acme/api"));
        assert!(glob_matches("*", ""));
        assert!(!glob_matches("/home/dev/acme", "/home/dev/acme/api"));
        assert!(glob_matches("/srv/?pp", "/srv/app"));
        assert!(!glob_matches("/srv/[a]pp", "/srv/app"));
        assert!(!glob_matches(&"*a".repeat(50), &"a".repeat(49)));
    }

    #[test]
    fn verdicts_warn_then_refuse_and_grants_raise_the_limit() {
        let (budgets, _) = budgets(json!([
            {"scope": "session", "usd": 5, "warn_at": 80},
            {"scope": "all", "period": "day", "usd": 50, "action": "warn"}
        ]));
        let session = &budgets.list[0];
        assert_eq!(evaluate(session, 3.0, 0.0).standing, Standing::Under);
        assert_eq!(evaluate(session, 4.0, 0.0).standing, Standing::Warning);
        let over = evaluate(session, 5.12, 0.0);
        assert_eq!(over.standing, Standing::Over);
        assert_eq!(
            over.reason.as_deref(),
            Some("hooktrail: session budget $5.00 reached ($5.12 spent)")
        );
        let granted = evaluate(session, 5.12, 5.0);
        assert_eq!(granted.standing, Standing::Under);
        assert_eq!(granted.limit, 10.0);
        let warn_only = evaluate(&budgets.list[1], 60.0, 0.0);
        assert_eq!(warn_only.standing, Standing::Over);
        assert_eq!(warn_only.reason, None);
    }
}
