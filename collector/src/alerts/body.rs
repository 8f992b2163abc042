//! An alert's body: one JSON object built from what the database stores
//! (already redacted, by the emitter and again by the collector), never
//! from a raw payload.
//!
//! ```json
//! {"v":1,"delivery_id":"…","rule":"waiting>=20s","when":"waiting","raised_at":1732312345678,
//!  "summary":"waiting for you: Bash ls -la · \"fix the tests\" on box (api)",
//!  "session":{"id":"…","title":"…","machine":"box","project":"/home/dev/api","state":"waiting",
//!             "state_detail":"…","state_since":…,"cost_usd":0.42,"model":"…"},
//!  "url":"http://127.0.0.1:7717/#/session/…"}
//! ```
//!
//! Text that came from a session (its title is the first prompt, the
//! detail can be a command) is cut to a few hundred characters, and every
//! invisible or direction-changing character in it is written as a visible
//! `\u202E`-style escape (issue 24): a phone notification must not show
//! `rm -rf /` as something else.

use serde_json::{json, Value};

use crate::alerts::config::Rule;

/// Longest title kept in an alert, in characters.
const MAX_TITLE_CHARS: usize = 160;
/// Longest state detail kept (an error, a command).
const MAX_DETAIL_CHARS: usize = 400;

/// What the database says about the session an alert is about.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionFacts {
    /// The session id (also in the deep link).
    pub(crate) session_id: String,
    /// Its title (the first prompt), when known.
    pub(crate) title: Option<String>,
    /// The machine it runs on.
    pub(crate) machine: String,
    /// Its directory: the project, for people and for rule filters.
    pub(crate) cwd: Option<String>,
    /// Its state as shown (`gone_quiet` included).
    pub(crate) state: String,
    /// When it entered that state (unix ms): part of the episode key.
    pub(crate) state_since: i64,
    /// What it waits for, the error, the end reason.
    pub(crate) state_detail: Option<String>,
    /// Its cost so far; `None` while no response has a price.
    pub(crate) cost_usd: Option<f64>,
    /// The model it used last.
    pub(crate) model: Option<String>,
}

/// A budget instance at its warning or its limit, as the budget thread
/// computed it (`budget` rules).
#[derive(Debug, Clone)]
pub(crate) struct BudgetFacts {
    /// The budget's name.
    pub(crate) name: String,
    /// `session`, `project`, `machine` or `all`.
    pub(crate) scope: &'static str,
    /// `lifetime`, `day` or `month`.
    pub(crate) period: &'static str,
    /// The session id or machine the instance counts, "" for a project or all.
    pub(crate) subject: String,
    /// The window's start (UTC ms), 0 for a session's lifetime.
    pub(crate) window_start: i64,
    /// `warning` or `over`.
    pub(crate) standing: &'static str,
    /// Spent in the window, USD.
    pub(crate) spent_usd: f64,
    /// The limit in force (grants included), USD.
    pub(crate) limit_usd: f64,
}

/// What an alert is about.
pub(crate) enum Subject<'a> {
    /// One session.
    Session(&'a SessionFacts),
    /// Every session's cost of one day (`cost` rules with `per: day`).
    Day { day_start_ms: i64, cost_usd: f64 },
    /// A budget crossing its warning or its limit, with its session for a
    /// session budget.
    Budget {
        budget: &'a BudgetFacts,
        session: Option<&'a SessionFacts>,
    },
}

/// The alert's JSON text.
pub(crate) fn build(
    delivery_id: &str,
    rule: &Rule,
    subject: &Subject<'_>,
    public_url: &str,
    raised_at: i64,
) -> String {
    let (summary, session, url) = match subject {
        Subject::Session(facts) => (
            session_summary(rule, facts),
            session_value(facts),
            Value::String(format!(
                "{public_url}/#/session/{}",
                percent_encode(&facts.session_id)
            )),
        ),
        Subject::Day {
            day_start_ms,
            cost_usd,
        } => (
            format!(
                "today's cost reached ${cost_usd:.2} (rule {})",
                visible(&rule.name, MAX_TITLE_CHARS)
            ),
            json!({ "day_start": day_start_ms, "cost_usd": cost_usd }),
            Value::String(format!("{public_url}/#/overview")),
        ),
        Subject::Budget { budget, session } => (
            budget_summary(budget, *session),
            session.map_or(Value::Null, session_value),
            Value::String(match session {
                Some(facts) => format!(
                    "{public_url}/#/session/{}",
                    percent_encode(&facts.session_id)
                ),
                None => format!("{public_url}/#/overview"),
            }),
        ),
    };
    let mut body = json!({
        "v": 1,
        "delivery_id": delivery_id,
        "rule": rule.name,
        "when": rule.when.word(),
        "raised_at": raised_at,
        "summary": summary,
        "session": session,
        "url": url,
    });
    if let Subject::Budget { budget, .. } = subject {
        body["budget"] = json!({
            "name": visible(&budget.name, MAX_TITLE_CHARS),
            "scope": budget.scope,
            "period": budget.period,
            "subject": visible(&budget.subject, MAX_TITLE_CHARS),
            "window_start": budget.window_start,
            "standing": budget.standing,
            "spent_usd": budget.spent_usd,
            "limit_usd": budget.limit_usd,
        });
    }
    body.to_string()
}

/// `budget api reached: $5.12 of $5.00 · "fix the tests" on box`.
fn budget_summary(budget: &BudgetFacts, session: Option<&SessionFacts>) -> String {
    let what = if budget.standing == "over" {
        "reached"
    } else {
        "at its warning"
    };
    let mut line = format!(
        "budget {} {what}: ${:.2} of ${:.2}",
        visible(&budget.name, 60),
        budget.spent_usd,
        budget.limit_usd
    );
    match session {
        Some(facts) => line.push_str(&title_on_machine(facts)),
        None if !budget.subject.is_empty() => {
            line.push_str(&format!(" ({})", visible(&budget.subject, 60)));
        }
        None => {}
    }
    line
}

/// A sample body for `alert test NAME`.
pub(crate) fn sample(delivery_id: &str, public_url: &str, now: i64) -> String {
    let rule = Rule {
        name: "test".to_owned(),
        when: crate::alerts::config::Condition::Waiting { after_seconds: 0 },
        machines: Vec::new(),
        projects: Vec::new(),
        to: Vec::new(),
    };
    let facts = SessionFacts {
        session_id: "hooktrail-test".to_owned(),
        title: Some("a test alert from hooktrail-collector alert test".to_owned()),
        machine: hostname::get()
            .ok()
            .and_then(|name| name.into_string().ok())
            .unwrap_or_default(),
        cwd: std::env::current_dir()
            .ok()
            .map(|dir| dir.display().to_string()),
        state: "waiting".to_owned(),
        state_since: now,
        state_detail: Some("nothing: this is a test".to_owned()),
        cost_usd: Some(0.0),
        model: None,
    };
    build(
        delivery_id,
        &rule,
        &Subject::Session(&facts),
        public_url,
        now,
    )
}

fn session_value(facts: &SessionFacts) -> Value {
    json!({
        "id": facts.session_id,
        "title": facts.title.as_deref().map(|title| visible(title, MAX_TITLE_CHARS)),
        "machine": visible(&facts.machine, MAX_TITLE_CHARS),
        "project": facts.cwd.as_deref().map(|cwd| visible(cwd, MAX_DETAIL_CHARS)),
        "state": facts.state,
        "state_detail": facts.state_detail.as_deref().map(|detail| visible(detail, MAX_DETAIL_CHARS)),
        "state_since": facts.state_since,
        "cost_usd": facts.cost_usd,
        "model": facts.model,
    })
}

/// One line a person reads on a phone: what happened, to which session.
fn session_summary(rule: &Rule, facts: &SessionFacts) -> String {
    let what = match facts.state.as_str() {
        "waiting" => "waiting for you",
        "failed" => "failed",
        "ended" => "ended",
        "gone_quiet" => "gone quiet",
        _ => rule.when.word(),
    };
    let what = if rule.when.word() == "cost" {
        "cost alert"
    } else {
        what
    };
    let mut line = what.to_owned();
    if let Some(detail) = facts
        .state_detail
        .as_deref()
        .filter(|text| !text.is_empty())
    {
        line.push_str(": ");
        line.push_str(&visible(detail, 120));
    }
    line.push_str(&title_on_machine(facts));
    if let Some(project) = facts
        .cwd
        .as_deref()
        .and_then(|cwd| cwd.rsplit('/').find(|part| !part.is_empty()))
    {
        line.push_str(&format!(" ({})", visible(project, 60)));
    }
    if let Some(cost) = facts.cost_usd {
        line.push_str(&format!(" · ${cost:.2}"));
    }
    line
}

/// ` · "fix the tests" on box`: the session's title (else its id) and machine.
fn title_on_machine(facts: &SessionFacts) -> String {
    let title = facts
        .title
        .as_deref()
        .map(|title| visible(title, 80))
        .unwrap_or_else(|| visible(&facts.session_id, 40));
    format!(" · \"{title}\" on {}", visible(&facts.machine, 60))
}

/// `text` cut to `max` characters (with `…`), every invisible or
/// direction-changing character written as a visible `\u202E` escape.
pub(crate) fn visible(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 4));
    for (count, c) in text.chars().enumerate() {
        if count == max {
            out.push('…');
            break;
        }
        if is_invisible(c) {
            out.push_str(&format!("\\u{:04X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Characters a reader cannot see or that reorder what they see: controls
/// (line breaks too: an alert line is one line), bidi embeddings,
/// overrides, isolates and marks, zero-width and joiner characters, the
/// soft hyphen, invisible operators, the BOM, tag characters, interlinear
/// annotations and variation selectors.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c as u32,
        0x00..=0x1F | 0x7F..=0x9F
        | 0xAD
        | 0x34F
        | 0x61C
        | 0x115F | 0x1160
        | 0x17B4 | 0x17B5
        | 0x180B..=0x180F
        | 0x200B..=0x200F
        | 0x2028..=0x202E
        | 0x2060..=0x206F
        | 0x3164
        | 0xFE00..=0xFE0F
        | 0xFEFF
        | 0xFFA0
        | 0xFFF9..=0xFFFB
        | 0x1D173..=0x1D17A
        | 0xE0000..=0xE0FFF)
}

/// Percent-encodes a session id for the link's fragment.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::config::Condition;

    fn rule() -> Rule {
        Rule {
            name: "failed".into(),
            when: Condition::Failed,
            machines: vec![],
            projects: vec![],
            to: vec!["me".into()],
        }
    }

    #[test]
    fn bidi_and_invisible_characters_in_command_text_are_escaped_visibly() {
        let facts = SessionFacts {
            session_id: "s/1".into(),
            title: Some("fix\u{202E}txt.exe".into()),
            machine: "box".into(),
            cwd: Some("/home/dev/api".into()),
            state: "failed".into(),
            state_since: 5,
            state_detail: Some("rm -rf /\u{200B}tmp\nnext".into()),
            cost_usd: Some(1.5),
            model: None,
        };
        let body: Value = serde_json::from_str(&build(
            "d1",
            &rule(),
            &Subject::Session(&facts),
            "http://h:1",
            9,
        ))
        .unwrap();
        assert_eq!(body["session"]["title"], "fix\\u202Etxt.exe");
        assert_eq!(
            body["session"]["state_detail"],
            "rm -rf /\\u200Btmp\\u000Anext"
        );
        let summary = body["summary"].as_str().unwrap();
        assert!(
            summary.starts_with("failed: rm -rf /\\u200Btmp"),
            "{summary}"
        );
        assert!(
            summary.contains("(api)") && summary.contains("$1.50"),
            "{summary}"
        );
        assert!(!summary.chars().any(is_invisible));
        assert_eq!(body["url"], "http://h:1/#/session/s%2F1");
        assert_eq!(body["delivery_id"], "d1");
    }

    #[test]
    fn long_text_is_cut() {
        assert_eq!(visible(&"x".repeat(10), 4), "xxxx…");
        assert_eq!(visible("héllo", 10), "héllo");
    }
}
