//! The page of events that `/api/events` and the WebSocket replay share.
//!
//! Exact filters are served by (column, seq) indexes and a search of three
//! characters or more by the trigram index `events_fts`. A search combined
//! with another filter walks the search's hits once, checking the filter on
//! each, and the rest (`agent=main` alone, a one- or two-character search)
//! walk the table in `seq` windows; both stop at a time budget and return
//! the scan position as `next`, so they answer quickly and the client pages
//! on.

use std::time::{Duration, Instant};

use rusqlite::{params_from_iter, Connection};

use crate::event::{CommittedEvent, Source};
use crate::query::{EventColumns, EventsQuery, Order};
use crate::search::fts_phrase;

use super::{max_seq, text};

/// Rows per window of a filtered scan that no index serves.
const SCAN_WINDOW: i64 = 20_000;
/// Time budget of one filtered scan before it returns a partial page: under
/// the API's 20 ms target, since only the rare filters no index serves
/// alone (`agent=main`, a short search, a search combined with a filter)
/// take it.
const SCAN_BUDGET: Duration = Duration::from_millis(15);

/// Payload bytes after which a page ends early (with `more` set), whatever
/// its `limit`: 500 events of 8 MB each would otherwise be 4 GB in one
/// response or one WebSocket replay frame. The page always holds at least
/// one event, so a cursor always moves on.
pub(crate) const PAGE_BYTES: usize = 4 << 20;

fn source_name(text: &str) -> &'static str {
    match text {
        "redis" => Source::Redis.as_str(),
        "spool" => Source::Spool.as_str(),
        "socket" => Source::Socket.as_str(),
        "import" => Source::Import.as_str(),
        _ => "other",
    }
}

/// The columns [`row_to_event`] reads, in order.
pub(crate) const EVENT_COLUMNS: &str =
    "seq, id, ts, received_at, machine, session_id, agent_id, hook, tool, tool_use_id, cwd, source, payload, prompt_id, permission_mode, config_error";

/// The parameters of one window: the search phrase (when the index serves
/// it), the window's bounds, then the filters' values.
fn window_values(
    search: &Option<String>,
    filter_values: &[String],
    low: i64,
    high: i64,
) -> Vec<rusqlite::types::Value> {
    let mut values: Vec<rusqlite::types::Value> = Vec::with_capacity(filter_values.len() + 3);
    if let Some(phrase) = search {
        values.push(phrase.clone().into());
    }
    values.push(low.into());
    values.push(high.into());
    values.extend(filter_values.iter().cloned().map(Into::into));
    values
}

/// Reads one `events` row selected with [`EVENT_COLUMNS`].
pub(crate) fn row_to_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<CommittedEvent> {
    let source: String = row.get(11)?;
    Ok(CommittedEvent {
        seq: row.get(0)?,
        id: row.get(1)?,
        ts: row.get(2)?,
        received_at: row.get(3)?,
        machine: row.get(4)?,
        session_id: row.get(5)?,
        agent_id: row.get(6)?,
        hook: row.get(7)?,
        tool: row.get(8)?,
        tool_use_id: row.get(9)?,
        cwd: row.get(10)?,
        source: source_name(&source),
        payload: row.get(12)?,
        prompt_id: row.get(13)?,
        permission_mode: row.get(14)?,
        state: None,
        config_error: row.get::<_, Option<i64>>(15)?.is_some_and(|flag| flag != 0),
    })
}

/// A page of events and where to continue.
#[derive(Debug)]
pub(crate) struct EventPage {
    /// The events, in the requested order.
    pub(crate) events: Vec<CommittedEvent>,
    /// The cursor to continue from (`after` ascending, `before` descending).
    pub(crate) next: i64,
    /// Whether more rows may lie beyond `next` right now.
    pub(crate) more: bool,
}

/// How one page is read: the search phrase when the trigram index serves
/// it, the filters' SQL and values, the table or index walked, and whether
/// that walk is indexed (one window) or scanned in [`SCAN_WINDOW`]s.
struct ScanPlan {
    search: Option<String>,
    filter_sql: String,
    filter_values: Vec<String>,
    /// Whether an index serves the whole filter: the page is one window.
    indexed: bool,
    /// The `FROM` clause, with the index named (see [`ScanPlan::new`]).
    from: &'static str,
    /// `events_fts MATCH ? AND ` for a search, else empty.
    match_sql: &'static str,
    /// The seq column the windows bound and the page orders by.
    seq_column: &'static str,
}

impl ScanPlan {
    fn new(request: &EventsQuery) -> ScanPlan {
        let filter = &request.filter;
        // A search of three characters or more goes through the trigram
        // index (rows by rowid = seq); shorter ones scan the payloads.
        let search = filter.text.as_deref().and_then(fts_phrase);
        let (filter_sql, filter_values) = match &search {
            Some(_) => filter.without_text().sql(),
            None => filter.sql(),
        };
        let agent_indexed = filter.agent.as_deref().is_some_and(|agent| agent != "main");
        // An index serves "no filter" (the primary key), a search (events_fts)
        // and each exact filter but `agent=main` ((column, seq) indexes).
        let exact_indexed = filter.session.is_some()
            || filter.hook.is_some()
            || filter.tool.is_some()
            || filter.machine.is_some()
            || agent_indexed;
        // A search alone walks its index in seq order and stops at the page;
        // combined with another filter it walks it in windows under the
        // budget, since the other filter may reject most of the search's hits.
        let indexed = match (&search, filter.text.is_some()) {
            (Some(_), _) => !exact_indexed && filter.agent.is_none(),
            (None, true) => false,
            (None, false) => filter.is_empty() || exact_indexed,
        };
        // With an exact filter the page walks that filter's (column, seq)
        // index, named here: planner statistics from a uniform past (five
        // machines, each a fifth of the rows) otherwise pick the seq order and
        // filter, which is slow when the newest rows are all of another value.
        // The most selective kind of filter wins: a session, an agent, a hook,
        // a tool, then a machine.
        let walk = if filter.session.is_some() {
            "events INDEXED BY events_session_seq"
        } else if agent_indexed {
            "events INDEXED BY events_agent_seq"
        } else if filter.hook.is_some() {
            "events INDEXED BY events_hook_seq"
        } else if filter.tool.is_some() {
            "events INDEXED BY events_tool_seq"
        } else if filter.machine.is_some() {
            "events INDEXED BY events_machine_seq"
        } else {
            "events"
        };
        let (from, match_sql, seq_column) = if search.is_some() {
            (
                "events_fts JOIN events ON events.seq = events_fts.rowid",
                "events_fts MATCH ? AND ",
                "events_fts.rowid",
            )
        } else {
            (walk, "", "seq")
        };
        ScanPlan {
            search,
            filter_sql,
            filter_values,
            indexed,
            from,
            match_sql,
            seq_column,
        }
    }

    /// The statement of one window, in `direction` (`""` or `" DESC"`).
    fn sql(&self, direction: &str) -> String {
        let ScanPlan {
            from,
            match_sql,
            seq_column,
            filter_sql,
            ..
        } = self;
        format!(
            "SELECT {EVENT_COLUMNS} FROM {from} WHERE {match_sql}{seq_column} > ? AND {seq_column} < ?{filter_sql} ORDER BY {seq_column}{direction} LIMIT ?"
        )
    }
}

/// The events of a page being filled, and their payload bytes.
struct PageFill {
    limit: usize,
    events: Vec<CommittedEvent>,
    bytes: usize,
}

impl PageFill {
    fn full(&self) -> bool {
        self.events.len() >= self.limit || self.bytes >= PAGE_BYTES
    }

    /// Reads the window (`low`, `high`) into the page, up to what it lacks.
    fn read_window(
        &mut self,
        statement: &mut rusqlite::CachedStatement<'_>,
        plan: &ScanPlan,
        low: i64,
        high: i64,
    ) -> rusqlite::Result<()> {
        let remaining = (self.limit - self.events.len()) as i64;
        let mut values = window_values(&plan.search, &plan.filter_values, low, high);
        values.push(remaining.into());
        let rows = statement.query_map(params_from_iter(values), row_to_event)?;
        for row in rows {
            let event = row?;
            self.bytes += event.payload.len();
            self.events.push(event);
            if self.bytes >= PAGE_BYTES {
                break;
            }
        }
        Ok(())
    }
}

/// Reads one page of events (the body of `/api/events` and the WebSocket
/// replay), inside the caller's transaction if there is one.
pub(crate) fn read_events(
    connection: &Connection,
    request: &EventsQuery,
) -> rusqlite::Result<EventPage> {
    let newest = max_seq(connection)?;
    let plan = ScanPlan::new(request);
    if let Some(phrase) = &plan.search {
        if !request.filter.without_text().is_empty() {
            return read_search_with_filters(connection, request, phrase, newest);
        }
    }
    let page = PageFill {
        limit: request.limit,
        events: Vec::new(),
        bytes: 0,
    };
    match request.order {
        Order::Ascending => read_ascending(connection, request, &plan, page, newest),
        Order::Descending => read_descending(connection, request, &plan, page, newest),
    }
}

/// The windows of an ascending page, from `after` up, until the page is
/// full or [`SCAN_BUDGET`] is spent.
fn read_ascending(
    connection: &Connection,
    request: &EventsQuery,
    plan: &ScanPlan,
    mut page: PageFill,
    newest: i64,
) -> rusqlite::Result<EventPage> {
    let started = Instant::now();
    let upper = request.before.unwrap_or(newest + 1).min(newest + 1);
    let mut low = request.after.unwrap_or(0);
    let mut statement = connection.prepare_cached(&plan.sql(""))?;
    while low < upper - 1 && !page.full() {
        let high = if plan.indexed {
            upper
        } else {
            (low.saturating_add(SCAN_WINDOW + 1)).min(upper)
        };
        page.read_window(&mut statement, plan, low, high)?;
        low = if page.full() {
            page.events.last().map(|e| e.seq).unwrap_or(high - 1)
        } else {
            high - 1
        };
        if started.elapsed() > SCAN_BUDGET {
            break;
        }
    }
    let next = page
        .events
        .last()
        .map(|e| e.seq)
        .unwrap_or(low)
        .max(low.min(upper - 1))
        .max(request.after.unwrap_or(0));
    Ok(EventPage {
        more: next < upper - 1,
        next,
        events: page.events,
    })
}

/// The windows of a descending page, from `before` down, until the page is
/// full or [`SCAN_BUDGET`] is spent.
fn read_descending(
    connection: &Connection,
    request: &EventsQuery,
    plan: &ScanPlan,
    mut page: PageFill,
    newest: i64,
) -> rusqlite::Result<EventPage> {
    let started = Instant::now();
    let lower = request.after.unwrap_or(0);
    let mut high = request.before.unwrap_or(newest + 1).min(newest + 1);
    let mut statement = connection.prepare_cached(&plan.sql(" DESC"))?;
    while high > lower + 1 && !page.full() {
        let low = if plan.indexed {
            lower
        } else {
            high.saturating_sub(SCAN_WINDOW + 1).max(lower)
        };
        page.read_window(&mut statement, plan, low, high)?;
        high = if page.full() {
            page.events.last().map(|e| e.seq).unwrap_or(low + 1)
        } else {
            low + 1
        };
        if started.elapsed() > SCAN_BUDGET {
            break;
        }
    }
    let next = page.events.last().map(|e| e.seq).unwrap_or(high).min(high);
    Ok(EventPage {
        more: next > lower + 1,
        next,
        events: page.events,
    })
}

/// How many hits a filtered search examines between two looks at the clock.
const HITS_PER_CLOCK_CHECK: usize = 64;

/// What one walk of a search's hits found.
struct SearchWalk {
    /// The hits the filter kept, in the walk's order.
    hits: Vec<i64>,
    /// The last hit examined: the cursor when the walk stopped early.
    last_examined: Option<i64>,
    /// Whether the walk reached the end of the range.
    exhausted: bool,
}

/// Walks the search's hits in (`lower`, `upper`) in the request's order,
/// checking each hit's filter columns, until [`EventsQuery::limit`] hits
/// are kept or [`SCAN_BUDGET`] is spent.
fn walk_search_hits(
    connection: &Connection,
    request: &EventsQuery,
    phrase: &str,
    (lower, upper): (i64, i64),
) -> rusqlite::Result<SearchWalk> {
    let direction = match request.order {
        Order::Ascending => "ASC",
        Order::Descending => "DESC",
    };
    let sql = format!(
        "SELECT e.seq, e.session_id, e.agent_id, e.machine, e.hook, e.tool \
         FROM events_fts JOIN events AS e ON e.seq = events_fts.rowid \
         WHERE events_fts MATCH ?1 AND events_fts.rowid > ?2 AND events_fts.rowid < ?3 \
         ORDER BY events_fts.rowid {direction}"
    );
    let started = Instant::now();
    let mut walk = SearchWalk {
        hits: Vec::new(),
        last_examined: None,
        exhausted: true,
    };
    let mut examined = 0usize;
    let mut statement = connection.prepare_cached(&sql)?;
    let mut rows = statement.query(rusqlite::params![phrase, lower, upper])?;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        if request.filter.matches_columns(EventColumns {
            session_id: text(row, 1)?,
            agent_id: text(row, 2)?,
            machine: text(row, 3)?,
            hook: text(row, 4)?,
            tool: text(row, 5)?,
        }) {
            walk.hits.push(seq);
        }
        walk.last_examined = Some(seq);
        examined += 1;
        if walk.hits.len() >= request.limit
            || (examined.is_multiple_of(HITS_PER_CLOCK_CHECK) && started.elapsed() > SCAN_BUDGET)
        {
            walk.exhausted = false;
            break;
        }
    }
    Ok(walk)
}

/// The events of `seqs`, in that order, until their payloads pass
/// [`PAGE_BYTES`].
fn events_by_seq(connection: &Connection, seqs: &[i64]) -> rusqlite::Result<Vec<CommittedEvent>> {
    let mut events = Vec::with_capacity(seqs.len());
    let mut page_bytes = 0usize;
    let mut select = connection.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE seq = ?1"
    ))?;
    for seq in seqs {
        let event = select.query_row([seq], row_to_event)?;
        page_bytes += event.payload.len();
        events.push(event);
        if page_bytes >= PAGE_BYTES {
            break;
        }
    }
    Ok(events)
}

/// A search combined with exact filters: one walk of the search's hits in
/// `seq` order (the MATCH evaluated once, not once per window), each hit's
/// filter columns checked here, until the page is full, its payloads pass
/// [`PAGE_BYTES`] or [`SCAN_BUDGET`] is spent. The last hit examined is then
/// the cursor, so a filter that rejects every hit still answers in time.
fn read_search_with_filters(
    connection: &Connection,
    request: &EventsQuery,
    phrase: &str,
    newest: i64,
) -> rusqlite::Result<EventPage> {
    let lower = request.after.unwrap_or(0);
    let upper = request.before.unwrap_or(newest + 1).min(newest + 1);
    let walk = walk_search_hits(connection, request, phrase, (lower, upper))?;
    let events = events_by_seq(connection, &walk.hits)?;
    // Where the next page starts: after the last event returned when the
    // page was cut by its size, else after the last hit examined, else (the
    // hits ran out) at the end of the range.
    let cut_by_bytes = events.len() < walk.hits.len();
    let position = if cut_by_bytes {
        events.last().map(|event| event.seq)
    } else if walk.exhausted {
        None
    } else {
        walk.last_examined
    };
    Ok(match request.order {
        Order::Ascending => {
            let next = position.unwrap_or(upper - 1).max(lower);
            EventPage {
                more: next < upper - 1,
                next,
                events,
            }
        }
        Order::Descending => {
            let next = position.unwrap_or(lower + 1).min(upper);
            EventPage {
                more: next > lower + 1,
                next,
                events,
            }
        }
    })
}
