//! Query-string parsing for the API and the WebSocket, as pure functions
//! (no I/O, no panics on any input: they are fuzzed).
//!
//! Rules shared by every route: `name=value` pairs separated by `&`, values
//! percent-decoded (`+` is a space), an empty value is the same as an absent
//! parameter, a repeated or unknown parameter is an error, and every error
//! names the parameter so the 400 response says what to fix.

use std::fmt;

use crate::event::CommittedEvent;

/// The longest parameter value accepted (text search, ids).
pub(crate) const MAX_VALUE_BYTES: usize = 1024;
/// Default page size of `/api/events`.
pub(crate) const DEFAULT_LIMIT: usize = 100;
/// Largest page size of `/api/events`.
pub(crate) const MAX_LIMIT: usize = 1000;

/// A parameter the caller got wrong; becomes a 400 with a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// The parameter's name (or `query` for malformed syntax).
    pub parameter: String,
    /// What is wrong with it, as a sentence fragment.
    pub message: String,
}

impl ParamError {
    fn new(parameter: &str, message: impl Into<String>) -> ParamError {
        ParamError {
            parameter: parameter.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ParamError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "bad parameter `{}`: {}",
            self.parameter, self.message
        )
    }
}

/// Decodes one name or value of a query string (form encoding: `%XX`
/// escapes, and `+` for a space); refuses bad escapes and invalid UTF-8, so
/// a malformed request is answered 400. The API's session ids in the path
/// are decoded by it too. Strict, unlike the emitter's lenient decoding of
/// a Redis URL's user and password (`decode_url_userinfo`).
pub(crate) fn decode_query_component(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let high = bytes
                    .get(index + 1)
                    .and_then(|b| (*b as char).to_digit(16))?;
                let low = bytes
                    .get(index + 2)
                    .and_then(|b| (*b as char).to_digit(16))?;
                out.push((high * 16 + low) as u8);
                index += 3;
            }
            b'+' => {
                out.push(b' ');
                index += 1;
            }
            other => {
                out.push(other);
                index += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Splits a query string into decoded pairs, refusing repeats and names
/// outside `allowed`. Empty values are dropped (absent).
pub(crate) fn parse_pairs(
    query: &str,
    allowed: &[&str],
) -> Result<Vec<(String, String)>, ParamError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for part in query.split('&').filter(|part| !part.is_empty()) {
        let (raw_name, raw_value) = part.split_once('=').unwrap_or((part, ""));
        let name = decode_query_component(raw_name).ok_or_else(|| {
            ParamError::new(
                "query",
                "a parameter name is not valid percent-encoded UTF-8",
            )
        })?;
        if !allowed.contains(&name.as_str()) {
            let shown: String = name.chars().take(40).collect();
            return Err(ParamError::new(
                &shown,
                format!("unknown parameter; allowed: {}", allowed.join(", ")),
            ));
        }
        if seen.contains(&name) {
            return Err(ParamError::new(&name, "given more than once"));
        }
        seen.push(name.clone());
        let value = decode_query_component(raw_value)
            .ok_or_else(|| ParamError::new(&name, "not valid percent-encoded UTF-8"))?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(ParamError::new(
                &name,
                format!("longer than {MAX_VALUE_BYTES} bytes"),
            ));
        }
        if value.chars().any(|c| c == '\0') {
            return Err(ParamError::new(&name, "contains a NUL character"));
        }
        if !value.is_empty() {
            pairs.push((name, value));
        }
    }
    Ok(pairs)
}

fn parse_integer(name: &str, value: &str, minimum: i64, maximum: i64) -> Result<i64, ParamError> {
    let number: i64 = value.parse().map_err(|_| {
        ParamError::new(
            name,
            format!(
                "expected an integer, got {:?}",
                value.chars().take(40).collect::<String>()
            ),
        )
    })?;
    if number < minimum || number > maximum {
        return Err(ParamError::new(
            name,
            format!("must be between {minimum} and {maximum}"),
        ));
    }
    Ok(number)
}

/// The columns the exact filters look at, borrowed from wherever the event
/// is (a stored row, a live event).
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventColumns<'a> {
    pub(crate) session_id: Option<&'a str>,
    pub(crate) agent_id: Option<&'a str>,
    pub(crate) machine: Option<&'a str>,
    pub(crate) hook: Option<&'a str>,
    pub(crate) tool: Option<&'a str>,
}

/// The event filters shared by `/api/events` and `/ws`; they combine (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Exact `session_id`.
    pub session: Option<String>,
    /// Exact `agent_id`; the value `main` selects events of the main agent
    /// (no `agent_id`).
    pub agent: Option<String>,
    /// Exact `machine`.
    pub machine: Option<String>,
    /// Exact `hook`.
    pub hook: Option<String>,
    /// Exact `tool`.
    pub tool: Option<String>,
    /// Text search, case-insensitive: through the search index
    /// (`events_fts`, the searchable text of each event) when it has three
    /// characters or more, else as a substring of the payload JSON text;
    /// live events are matched against their payload text.
    pub text: Option<String>,
}

impl EventFilter {
    /// Whether no filter is set.
    pub fn is_empty(&self) -> bool {
        *self == EventFilter::default()
    }

    /// The same test as the SQL built by [`EventFilter::sql`], for live
    /// events that never go through SQLite.
    pub fn matches(&self, event: &CommittedEvent) -> bool {
        self.matches_columns(EventColumns {
            session_id: event.session_id.as_deref(),
            agent_id: event.agent_id.as_deref(),
            machine: Some(&event.machine),
            hook: Some(&event.hook),
            tool: event.tool.as_deref(),
        }) && self.text.as_deref().is_none_or(|text| {
            event
                .payload
                .to_ascii_lowercase()
                .contains(&text.to_ascii_lowercase())
        })
    }

    /// The exact filters (all but the text search) on an event's columns:
    /// for live events, and for a search's hits read without their payload.
    pub(crate) fn matches_columns(&self, event: EventColumns<'_>) -> bool {
        let exact = |wanted: &Option<String>, actual: Option<&str>| {
            wanted.as_deref().is_none_or(|w| Some(w) == actual)
        };
        let agent_ok = match self.agent.as_deref() {
            None => true,
            Some("main") => event.agent_id.is_none(),
            Some(wanted) => event.agent_id == Some(wanted),
        };
        agent_ok
            && exact(&self.session, event.session_id)
            && exact(&self.machine, event.machine)
            && exact(&self.hook, event.hook)
            && exact(&self.tool, event.tool)
    }

    /// The filter without its text search.
    pub(crate) fn without_text(&self) -> EventFilter {
        EventFilter {
            text: None,
            ..self.clone()
        }
    }

    /// SQL conditions (joined with AND, each starting with ` AND `) and their
    /// parameters, in order.
    pub fn sql(&self) -> (String, Vec<String>) {
        let mut sql = String::new();
        let mut values = Vec::new();
        let mut add = |column: &str, value: &Option<String>| {
            if let Some(value) = value {
                sql.push_str(&format!(" AND {column} = ?"));
                values.push(value.clone());
            }
        };
        add("session_id", &self.session);
        add("machine", &self.machine);
        add("hook", &self.hook);
        add("tool", &self.tool);
        match self.agent.as_deref() {
            None => {}
            Some("main") => sql.push_str(" AND agent_id IS NULL"),
            Some(agent) => {
                sql.push_str(" AND agent_id = ?");
                values.push(agent.to_owned());
            }
        }
        if let Some(text) = &self.text {
            sql.push_str(" AND instr(lower(payload), ?) > 0");
            values.push(text.to_ascii_lowercase());
        }
        (sql, values)
    }

    fn take(&mut self, name: &str, value: String) -> bool {
        let slot = match name {
            "session" => &mut self.session,
            "agent" => &mut self.agent,
            "machine" => &mut self.machine,
            "hook" => &mut self.hook,
            "tool" => &mut self.tool,
            "q" => &mut self.text,
            _ => return false,
        };
        *slot = Some(value);
        true
    }
}

/// Which way a page of events runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Oldest first, from `after` (the default; `next` goes in `after`).
    Ascending,
    /// Newest first, down from `before` (`next` goes in `before`).
    Descending,
}

/// A parsed `/api/events` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsQuery {
    /// Only events with `seq` greater than this.
    pub after: Option<i64>,
    /// Only events with `seq` less than this.
    pub before: Option<i64>,
    /// Page size, 1..=[`MAX_LIMIT`].
    pub limit: usize,
    /// Direction of the page.
    pub order: Order,
    /// Filters.
    pub filter: EventFilter,
}

const FILTER_NAMES: [&str; 6] = ["session", "agent", "machine", "hook", "tool", "q"];

/// Parses the query string of `/api/events`.
pub fn parse_events_query(query: &str) -> Result<EventsQuery, ParamError> {
    let allowed = [&FILTER_NAMES[..], &["after", "before", "limit", "order"]].concat();
    let mut parsed = EventsQuery {
        after: None,
        before: None,
        limit: DEFAULT_LIMIT,
        order: Order::Ascending,
        filter: EventFilter::default(),
    };
    for (name, value) in parse_pairs(query, &allowed)? {
        match name.as_str() {
            "after" => parsed.after = Some(parse_integer("after", &value, 0, i64::MAX)?),
            "before" => parsed.before = Some(parse_integer("before", &value, 0, i64::MAX)?),
            "limit" => parsed.limit = parse_integer("limit", &value, 1, MAX_LIMIT as i64)? as usize,
            "order" => {
                parsed.order = match value.as_str() {
                    "asc" => Order::Ascending,
                    "desc" => Order::Descending,
                    _ => return Err(ParamError::new("order", "must be `asc` or `desc`")),
                }
            }
            _ => {
                parsed.filter.take(&name, value);
            }
        }
    }
    if let (Some(after), Some(before)) = (parsed.after, parsed.before) {
        if after >= before {
            return Err(ParamError::new("before", "must be greater than `after`"));
        }
    }
    Ok(parsed)
}

/// A parsed `/ws` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketQuery {
    /// Replay events with `seq` greater than this, then go live; absent means
    /// live only (from the newest committed event).
    pub after: Option<i64>,
    /// Filters, applied to the replay and to live events alike.
    pub filter: EventFilter,
    /// A one-use ticket from `POST /api/ws-ticket`, for browsers that cannot
    /// set headers on a WebSocket (never the token: a URL gets logged).
    pub ticket: Option<String>,
}

/// Parses the query string of `/ws`.
pub fn parse_socket_query(query: &str) -> Result<SocketQuery, ParamError> {
    let allowed = [&FILTER_NAMES[..], &["after", "ticket"]].concat();
    let mut parsed = SocketQuery {
        after: None,
        filter: EventFilter::default(),
        ticket: None,
    };
    for (name, value) in parse_pairs(query, &allowed)? {
        match name.as_str() {
            "after" => parsed.after = Some(parse_integer("after", &value, 0, i64::MAX)?),
            "ticket" => parsed.ticket = Some(value),
            _ => {
                parsed.filter.take(&name, value);
            }
        }
    }
    Ok(parsed)
}

/// The order of `/api/sessions` (`sort=`); sessions waiting for the user
/// come first in every order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionSort {
    /// Most recent event first (the default).
    Recent,
    /// Highest cost first; sessions without priced usage last.
    Cost,
    /// Longest first (first event to end, or to the last event).
    Duration,
}

/// A parsed `/api/sessions` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionsQuery {
    /// Only this machine's sessions.
    pub machine: Option<String>,
    /// At most this many sessions.
    pub limit: usize,
    /// Their order.
    pub sort: SessionSort,
}

/// Parses the query string of `/api/sessions`.
pub fn parse_sessions_query(query: &str) -> Result<SessionsQuery, ParamError> {
    let mut parsed = SessionsQuery {
        machine: None,
        limit: 500,
        sort: SessionSort::Recent,
    };
    for (name, value) in parse_pairs(query, &["machine", "limit", "sort"])? {
        match name.as_str() {
            "machine" => parsed.machine = Some(value),
            "sort" => {
                parsed.sort = match value.as_str() {
                    "recent" => SessionSort::Recent,
                    "cost" => SessionSort::Cost,
                    "duration" => SessionSort::Duration,
                    _ => {
                        return Err(ParamError::new(
                            "sort",
                            "must be `recent`, `cost` or `duration`",
                        ))
                    }
                }
            }
            _ => parsed.limit = parse_integer("limit", &value, 1, 5000)? as usize,
        }
    }
    Ok(parsed)
}

/// A parsed `/api/stats` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsQuery {
    /// Bucket width in seconds.
    pub bucket_seconds: i64,
    /// Start (ms since the epoch); `None`: one hour before `now`.
    pub since_ms: Option<i64>,
}

/// The most buckets one `/api/stats` answer may hold.
pub(crate) const MAX_BUCKETS: i64 = 10_000;

/// Parses the query string of `/api/stats`; `now_ms` bounds the bucket count.
pub fn parse_stats_query(query: &str, now_ms: i64) -> Result<StatsQuery, ParamError> {
    let mut parsed = StatsQuery {
        bucket_seconds: 60,
        since_ms: None,
    };
    for (name, value) in parse_pairs(query, &["bucket", "since"])? {
        match name.as_str() {
            "bucket" => parsed.bucket_seconds = parse_integer("bucket", &value, 1, 86_400)?,
            _ => parsed.since_ms = Some(parse_integer("since", &value, 0, i64::MAX / 2)?),
        }
    }
    let since = parsed.since_ms.unwrap_or(now_ms - 3_600_000);
    if (now_ms - since) / 1000 / parsed.bucket_seconds > MAX_BUCKETS {
        return Err(ParamError::new(
            "bucket",
            format!("too small for this `since`: more than {MAX_BUCKETS} buckets"),
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_combine_and_empty_values_are_absent() {
        let parsed =
            parse_events_query("after=&limit=10&hook=PreToolUse&tool=Bash&q=a%20b+c").unwrap();
        assert_eq!(parsed.after, None);
        assert_eq!(parsed.limit, 10);
        assert_eq!(parsed.filter.hook.as_deref(), Some("PreToolUse"));
        assert_eq!(parsed.filter.text.as_deref(), Some("a b c"));
        let (sql, values) = parsed.filter.sql();
        assert_eq!(
            sql,
            " AND hook = ? AND tool = ? AND instr(lower(payload), ?) > 0"
        );
        assert_eq!(values.len(), 3);
    }

    #[test]
    fn bad_parameters_name_themselves() {
        for (query, parameter) in [
            ("limit=0", "limit"),
            ("limit=abc", "limit"),
            ("limit=1001", "limit"),
            ("after=-1", "after"),
            ("after=5&before=5", "before"),
            ("after=1&after=2", "after"),
            ("colour=red", "colour"),
            ("q=%zz", "q"),
            ("q=%ff", "q"),
            ("order=up", "order"),
        ] {
            assert_eq!(
                parse_events_query(query).unwrap_err().parameter,
                parameter,
                "{query}"
            );
        }
        assert_eq!(
            parse_stats_query("bucket=1&since=0", 1_700_000_000_000)
                .unwrap_err()
                .parameter,
            "bucket"
        );
    }

    #[test]
    fn matches_agrees_with_the_main_agent_shorthand() {
        let filter = EventFilter {
            agent: Some("main".into()),
            ..Default::default()
        };
        let event = |agent_id: Option<&str>| CommittedEvent {
            agent_id: agent_id.map(str::to_owned),
            ..CommittedEvent::for_test(1)
        };
        assert!(filter.matches(&event(None)));
        assert!(!filter.matches(&event(Some("a1"))));
    }
}
